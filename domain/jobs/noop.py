"""The `noop` job type: does nothing, needs capability `noop`. For health checks and
benchmarks of the queue engine itself (submit -> claim -> stages -> succeeded)."""

from __future__ import annotations

from typing import Any

from cairn.domain.errors import ValidationFailed
from cairn.domain.jobs.kinds import ContractSettings, JobType, NormalizedJob


def normalize_noop(payload: dict[str, Any], settings: ContractSettings) -> NormalizedJob:
    """`{}` or `{"sleepMs": n}` (0 to 600,000): the worker waits that long, then succeeds."""
    unknown = sorted(set(payload) - {"sleepMs"})
    if unknown:
        raise ValidationFailed(
            f"unknown field {unknown[0]!r} in a noop payload",
            [{"path": f"payload.{k}", "reason": "unknown field"} for k in unknown],
        )
    sleep = payload.get("sleepMs", 0)
    if isinstance(sleep, bool) or not isinstance(sleep, int) or not 0 <= sleep <= 600_000:
        raise ValidationFailed(
            "sleepMs must be an integer from 0 to 600000",
            [{"path": "payload.sleepMs", "reason": "integer 0..600000"}],
        )
    return NormalizedJob(
        job_type="noop",
        submitted_type="noop",
        original=payload,
        normalized={"sleepMs": sleep},
        required_capabilities=["noop"],
    )


NOOP = JobType("noop", normalize_noop)
