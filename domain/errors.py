"""Cairn's error hierarchy: one root, each named for the condition, each with a stable code.

Every error carries what a person needs to act: a message saying what was wrong and what
would be allowed, and structured `details` (field paths, allowed targets, blockers) that the
API puts into problem+json unchanged.
"""

from __future__ import annotations

from typing import Any


class CairnError(Exception):
    """Root of every error Cairn raises on purpose."""

    code = "error"
    status = 400

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class DomainError(CairnError):
    """A command was refused by the rules of the domain; nothing was appended."""

    code = "domain_error"
    status = 409


class InvalidTransition(DomainError):
    code = "invalid_transition"


class DependencyUnresolved(DomainError):
    code = "dependency_unresolved"


class ClaimRequired(DomainError):
    code = "claim_required"


class DependencyCycle(DomainError):
    code = "dependency_cycle"


class CrossProjectDependency(DomainError):
    code = "cross_project_dependency"
    status = 422


class SelfDependency(DomainError):
    code = "self_dependency"
    status = 422


class VersionConflict(DomainError):
    code = "version_conflict"


class NotFound(DomainError):
    code = "not_found"
    status = 404


class NotAllowed(DomainError):
    """The actor may not do this here (another must: four eyes, say)."""

    code = "not_allowed"
    status = 403


class StaleLease(DomainError):
    """A worker wrote for a job whose lease it no longer holds (fencing)."""

    code = "stale_lease"


class ValidationFailed(CairnError):
    """Input did not match the contract; `details['errors']` lists `{path, reason}` items."""

    code = "validation_error"
    status = 422

    def __init__(self, message: str, errors: list[dict[str, str]]) -> None:
        super().__init__(message, errors=errors)
        self.errors = errors


class CorruptStream(CairnError):
    """An aggregate's stored events cannot be folded (a version out of order, no creation
    event, data that does not decode). Reloading cannot help: the log needs a person."""

    code = "corrupt_stream"
    status = 500


class UnknownEvent(CairnError):
    """A stored event of a type or schema this version of Cairn does not know (written by a
    newer one, or with no upcaster to the current schema)."""

    code = "unknown_event"
    status = 500


class InfrastructureError(CairnError):
    """The store could not be reached or answered unexpectedly (translated driver errors)."""

    code = "store_unavailable"
    status = 503


class StoreUnavailable(InfrastructureError):
    """The store is down, restarting, loading its data or stalled: the same call may succeed
    shortly, so callers retry with backoff and HTTP answers 503 with Retry-After."""

    code = "store_unavailable"
