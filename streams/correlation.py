"""The correlation id of what a process is doing now (the API request's command, the job a
worker runs): a context variable that log records carry, set where the work begins."""

from __future__ import annotations

from contextvars import ContextVar

current_correlation: ContextVar[str] = ContextVar("cairn_correlation", default="")
