"""Live sessions as the job's facts: opened on a running job for a capped time, one takeover at
a time, ended once whatever ends it, handed back only by a takeover, all ended with the job."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cairn.domain.errors import InvalidTransition, NotAllowed, NotFound, ValidationFailed
from cairn.domain.jobs.job import Job
from cairn.domain.jobs.live import (
    decide_end,
    decide_hand_back,
    decide_open,
    end_all,
    past_ttl,
    takeover_of,
)
from tests.domain.jobs.test_controls import apply, finished, queued, running

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def opened(job: Job, sid: str, mode: str = "watch", ttl: int = 600) -> Job:
    return apply(job, decide_open(job, session_id=sid, mode=mode, actor="ann", ttl_s=ttl,
                                  max_ttl_s=1800, now=NOW))  # fmt: skip


def test_a_session_opens_on_a_running_job_only_and_its_ttl_is_capped() -> None:
    for job in (queued(), finished()):
        with pytest.raises(InvalidTransition):
            opened(job, "s1")
    job = opened(running(), "s1", ttl=99_999)
    assert job.live_sessions[0]["ttl_s"] == 1800
    assert job.live_sessions[0]["expires_at"] == "2026-12-07T12:30:00Z"
    for mode, ttl, path in (("stare", 60, "mode"), ("watch", 3, "ttl_s")):
        with pytest.raises(ValidationFailed) as refused:
            opened(job, "s2", mode, ttl)
        assert refused.value.errors[0]["path"] == path


def test_one_takeover_at_a_time_and_watchers_besides() -> None:
    job = opened(opened(running(), "s1", "takeover"), "s2")
    with pytest.raises(InvalidTransition) as refused:
        opened(job, "s3", "takeover")
    assert "one takeover at a time" in refused.value.message
    assert takeover_of(job) is not None and takeover_of(job)["session_id"] == "s1"  # type: ignore[index]


def test_a_session_ends_once_whatever_ends_it() -> None:
    job = opened(running(), "s1", "takeover")
    with pytest.raises(InvalidTransition):
        decide_hand_back(opened(job, "s2"), "s2", actor="ann", note="")
    ended = apply(job, decide_hand_back(job, "s1", actor="ann", note=" fixed the lockfile "))
    assert ended.live_sessions == [] and ended.live_ended[0]["note"] == "fixed the lockfile"
    assert ended.live_ended[0]["why"] == "handed_back"
    assert decide_end(ended, "s1", "ttl") == []  # a TTL crossing the hand-back: nothing
    with pytest.raises(NotFound):
        decide_end(ended, "nope", "closed")
    assert takeover_of(ended) is None
    assert opened(ended, "s3", "takeover").live_sessions[0]["mode"] == "takeover"


def test_sessions_past_their_time_and_all_of_them_at_the_job_s_end() -> None:
    job = opened(opened(running(), "s1", ttl=60), "s2", ttl=600)
    later = datetime(2026, 12, 7, 12, 5, tzinfo=UTC)
    assert [s["session_id"] for s in past_ttl(job, later)] == ["s1"]
    closed = apply(job, end_all(job, "job_ended"))
    assert closed.live_sessions == [] and {s["why"] for s in closed.live_ended} == {"job_ended"}


def test_a_person_ends_only_their_own_session_unless_an_admin() -> None:
    job = opened(running(), "s1", "takeover")
    with pytest.raises(NotAllowed):
        decide_hand_back(job, "s1", actor="bob", note="")
    with pytest.raises(NotAllowed):
        decide_end(job, "s1", "closed", actor="bob")
    assert decide_end(job, "s1", "closed", actor="root", admin=True)
    later = datetime(2026, 11, 21, 12, 2, tzinfo=UTC)  # the events' time is TS, noon
    ended = apply(job, decide_end(job, "s1", "closed", actor="ann", now=later))
    assert ended.live_ended[0]["duration_s"] == pytest.approx(120, abs=1)
