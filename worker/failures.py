"""How a stage ends early: a failure (with the error that goes into the job's outcome and
whether another attempt may help) or a cancel (with where it stopped)."""

from __future__ import annotations

from typing import Any


class StageFailed(Exception):
    """A stage failed; `error` goes into the job's outcome, `retryable` decides a retry, and
    `retry_after_s` (a vendor's rate limit) holds it back at least that long."""

    def __init__(self, stage: str, error: dict[str, Any], *, retryable: bool = True,
                 retry_after_s: float | None = None) -> None:  # fmt: skip
        super().__init__(error.get("message", stage))
        self.stage, self.error, self.retryable = stage, error, retryable
        self.retry_after_s = retry_after_s


class Cancelled(Exception):
    """The job's cancel was requested while it ran; `where` names the step it stopped in."""

    def __init__(self, where: dict[str, Any] | None = None) -> None:
        super().__init__("cancelled")
        self.where = where or {}
