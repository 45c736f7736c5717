"""One attempt of a job on this worker, in stages: prepare (workspace, checkout, branches,
skills, context), execute (the steps, worker/steps.py), publish (commit, push, PR). Each
stage reports what it does through the job's fenced writes (commands/jobs/held.py); artifacts
go to the artifact store as they are made and their events out with the next write."""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
from pathlib import Path
from typing import Any

from cairn.commands.jobs.held import Held
from cairn.commands.jobs.job import load_job
from cairn.commands.jobs.pulls import load_pulls, pull_id
from cairn.commands.planning.import_plans import submit_plan_from_file
from cairn.commands.planning.proposals import submit_proposals_from_file
from cairn.domain.errors import CairnError, ValidationFailed
from cairn.domain.jobs.branches import Branches, resolve_branches
from cairn.domain.jobs.events import JobBranchResolved, JobPublished
from cairn.domain.jobs.job import Job
from cairn.domain.jobs.publishing import pr_body, pr_title
from cairn.domain.jobs.repositories import resolve_repository
from cairn.worker.attempt import Attempt, RunTools, worker_token
from cairn.worker.failures import Cancelled, StageFailed
from cairn.worker.gitops import Git, GitFailed, askpass_env
from cairn.worker.mirrors import Mirrors
from cairn.worker.orchestrator import ServiceApply
from cairn.worker.process import minimal_env
from cairn.worker.publish import PublishContext, publish
from cairn.worker.redaction import Redactor
from cairn.worker.secrets import resolve_secrets
from cairn.worker.skills import SkillNotFound, SkillRef, materialize_skills
from cairn.worker.steps import Steps
from cairn.worker.workspace import make_workspace

MAX_CHAIN = 50  # follow-ups of follow-ups looked back through for their pull request
log = logging.getLogger("cairn.worker")
EXCLUDED = (".cairn/", ".agents/", ".claude/", ".gemini/")  # never committed


class JobRun(Attempt):
    """One attempt of one job; `stage(name)` runs a stage and returns (outcome, detail)."""

    def __init__(self, job: Job, held: Held, tools: RunTools) -> None:
        super().__init__(job, held, tools)
        self.steps: Steps | None = None
        self.service_apply: ServiceApply | None = None  # an orchestrator run's apply job

    def waits(self, stage: str) -> bool:
        """Whether a stage may take a while (so what led up to it is written first)."""
        if self.job.job_type == "noop":
            return stage == "execute" and bool(self.job.normalized.get("sleepMs"))
        if self.job.job_type == "orchestrator":
            # Past a verify that passed, a cancel no longer turns the run's end: the change is
            # live, and it is the run's success (a cancel comes in time only before).
            return stage != "publish"
        return True

    async def stage(self, name: str) -> tuple[str, dict[str, Any]]:
        if name == "prepare":
            return "succeeded", await self.prepare()
        if name == "execute":
            return "succeeded", await self.execute()
        return await self.publish()

    # ---- prepare --------------------------------------------------------------------------

    async def prepare(self) -> dict[str, Any]:
        if self.job.job_type == "noop":
            return {}
        if self.job.job_type == "orchestrator":
            self.service_apply = ServiceApply(self)
            return await self.service_apply.prepare()
        data_dir = Path(self.tools.settings.data_dir)
        self.workspace = make_workspace(data_dir, self.job.id, self.job.attempt)
        if self.job.job_type != "task":
            return {"workspace": str(self.workspace.root)}
        secrets = await self._secrets()
        token = secrets.get("repo") or worker_token()
        self.publish_token = secrets.get("publish") or token
        self.redactor = Redactor([v for v in (*secrets.values(), token) if v], env=os.environ)
        ws = self.workspace
        env = minimal_env(ws.home, extra=askpass_env(ws.home, token))
        self.git = Git(env=env, redact=self.redactor.redact)
        try:
            remote = resolve_repository(
                str(self.job.normalized.get("repository") or ""),
                git_base_url=self.execution.git_base_url,
                allow_local=self.execution.allow_local_repositories,
            )
        except ValueError as e:
            raise StageFailed("prepare", _error("bad_repository", str(e)), retryable=False) from e
        git_spec = self.task.get("git") or {}
        try:
            checkout = await Mirrors(self.tools.mirrors_root, self.git).checkout(
                remote, ws.repo, branch=git_spec.get("startingBranch")
            )
        except GitFailed as e:
            missing = "does not exist" in str(e)
            raise StageFailed("prepare", _git_error(e), retryable=not missing) from e
        self.start_commit, self.remote_url = checkout.head, remote.url
        await self._exclude(ws.repo)
        self.branches = self._branches(checkout.default_branch)
        resolved = JobBranchResolved(
            epoch=self.held.epoch, repository=remote.display, default=self.branches.default,
            starting=self.branches.starting, new=self.branches.new, working=self.branches.working,
        )  # fmt: skip
        await self.held.write(lambda job: [resolved])
        self.skills = self._skills()
        await self.add_json("task_context.json", self._context(remote.display))
        return {"repository": remote.display, "default_branch": checkout.default_branch,
                "head": checkout.head, "mirror_reused": checkout.fetched,
                "checkout_s": round(checkout.seconds, 3)}  # fmt: skip

    async def _secrets(self) -> dict[str, str]:
        auth = self.job.normalized.get("auth") or {}
        refs = {purpose: ref for purpose, ref in (("repo", auth.get("repoAuthRef")),
                ("publish", auth.get("publishAuthRef"))) if ref}  # fmt: skip
        try:
            return await resolve_secrets(refs, env=os.environ, vault_addr=self.execution.vault_addr)
        except CairnError as e:
            raise StageFailed("prepare", _error("secret_unavailable", e.message),
                              retryable=False) from e  # fmt: skip

    def _branches(self, default: str) -> Branches:
        git_spec = self.task.get("git") or {}
        skill = (self.task.get("skill") or {}).get("id")
        try:
            return resolve_branches(
                default=default, requested_starting=git_spec.get("startingBranch"),
                requested_new=git_spec.get("newBranch"), job_id=self.job.id, skill=skill,
                steps=len(self.task.get("steps") or []), today=datetime.date.today(),
            )  # fmt: skip
        except ValidationFailed as e:
            raise StageFailed("prepare", _error("bad_branch", e.message), retryable=False) from e

    def _skills(self) -> list[SkillRef]:
        assert self.workspace is not None
        names = [(self.task.get("skill") or {}).get("id") or "auto"]
        names += [(s.get("skill") or {}).get("id") or "auto" for s in self.task.get("steps") or []]
        wanted = list(dict.fromkeys(n for n in names if n != "auto"))
        try:
            return materialize_skills(wanted, self.execution.skills_dirs,
                                      self.tools.skills_cache, self.workspace)  # fmt: skip
        except SkillNotFound as e:
            raise StageFailed("prepare", _error("unknown_skill", str(e)), retryable=False) from e

    async def _exclude(self, repo: Path) -> None:
        exclude = repo / ".git" / "info" / "exclude"
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with exclude.open("a") as out:
            out.write("".join(f"\n{path}" for path in EXCLUDED) + "\n")
        (repo / ".cairn").mkdir(exist_ok=True)

    def _context(self, repository: str) -> dict[str, Any]:
        assert self.workspace is not None and self.branches is not None
        ws = self.workspace
        return {
            "job": {"id": self.job.id, "attempt": self.job.attempt, "type": self.job.job_type,
                    "project": self.job.project, "task_id": self.job.task_id},
            "payload": self.job.normalized,
            "repository": repository,
            "branches": self.branches.__dict__,
            "runtime": self.job.normalized.get("targetRuntime"),
            "model": (self.task.get("runtime") or {}).get("model"),
            "effort": (self.task.get("runtime") or {}).get("effort"),
            "skills": [{"name": s.name, "sha256": s.sha256} for s in self.skills],
            "workspace": {"root": str(ws.root), "repo": str(ws.repo), "home": str(ws.home),
                          "skills_active": str(ws.skills_active),
                          "artifacts": str(ws.artifacts)},
        }  # fmt: skip

    # ---- execute --------------------------------------------------------------------------

    async def execute(self) -> dict[str, Any]:
        if self.service_apply is not None:
            detail = await self.service_apply.execute()
            self.summary = "verify passed after the restart"
            return detail
        self.steps = Steps(self)
        detail = await self.steps.execute()
        self.summary = self.steps.summary
        if self.task.get("proposeTasks") and self.workspace is not None:
            # What the agent proposed: submitted, merged into an open proposal, or reported
            # as rejected (with paths) here; never a reason to fail the run.
            report = await submit_proposals_from_file(
                self.held.store, self.held.job, self.workspace.repo
            )
            detail["proposals"] = report
            counts = {k: len(report.get(k) or []) for k in ("submitted", "merged", "rejected")}
            self.summary += "; proposals: " + ", ".join(f"{n} {k}" for k, n in counts.items())
        return detail

    async def after(self, job: Job) -> None:
        """Once the attempt's outcome is written: a planning job's plan goes to its import
        (or the reason there is none)."""
        if self.workspace is None or job.job_type != "task":
            return
        try:
            await submit_plan_from_file(self.held.store, job, self.workspace.repo)
        except CairnError as e:
            log.warning("plan of %s not recorded: %s", job.id, e.message)

    # ---- publish --------------------------------------------------------------------------

    async def publish(self) -> tuple[str, dict[str, Any]]:
        mode = (self.task.get("publish") or {}).get("mode", "none")
        if self.job.job_type != "task" or self.git is None or self.branches is None:
            self.publish_outcome = "PUBLISH_DISABLED" if self.job.job_type == "task" else None
            return "skipped", {"mode": mode}
        assert self.workspace is not None and self.steps is not None
        spec = self.task.get("publish") or {}
        titles = [s.title for s in self.steps.plan]
        title = pr_title(titles, self.task.get("instructions"), self.job.id)
        actor = await self._submitter()
        ctx = PublishContext(
            git=self.git, repo=self.workspace.repo, mode=mode, branches=self.branches,
            job_id=self.job.id, actor=actor,
            commit_message=self._commit_message(spec), pr_title=title,
            pr_body=pr_body(
                given=spec.get("prBody"), instructions=self.task.get("instructions"),
                step_titles=titles, job_id=self.job.id, actor=actor, gate=None,
                diffstat=self.steps.diffstat),
            pr_base=spec.get("prBaseBranch"),
            author_name=self.execution.git_author_name,
            author_email=self.execution.git_author_email,
            changed_paths=self.steps.changed_paths, evidence=self.steps.evidence,
            skip_reason=spec.get("verificationSkipReason"),
            gh_env=minimal_env(self.workspace.home, passthrough=("GH_HOST",),
                               extra={"GH_TOKEN": self.publish_token or "",
                                      "GH_PROMPT_DISABLED": "1", "NO_COLOR": "1"}),
            redact=self.redactor.redact, start_commit=self.start_commit,
            remote_url=self.remote_url, open_pr=await self._open_pr(),
        )  # fmt: skip
        result = await publish(ctx)
        self.publish_outcome = result.outcome
        published = JobPublished(epoch=self.held.epoch, outcome=result.outcome,
                                 branch=result.branch, pr_url=result.pr_url,
                                 commit=result.commit, detail=result.detail)  # fmt: skip
        record = {"outcome": result.outcome, "branch": result.branch, "pr_url": result.pr_url,
                  "commit": result.commit, "detail": result.detail}  # fmt: skip
        await self.add_json("publish_result.json", record)
        await self.add_json("run_summary.json", self.run_summary(record))
        self.held.hold_back([published])
        detail = {"mode": mode, **record}
        if result.outcome == "FAILED":
            raise StageFailed("publish", {"code": "publish_failed", "message": str(
                result.detail.get("reason") or "publishing failed"), **detail},
                retryable=bool(result.detail.get("retryable", False)))  # fmt: skip
        # A publish that published nothing (mode none, no changes) did not succeed at anything.
        nothing = result.outcome in ("PUBLISH_DISABLED", "NO_CHANGES")
        return ("skipped" if nothing else "succeeded"), detail

    def _commit_message(self, spec: dict[str, Any]) -> str | None:
        """The payload's message, else the one the agent wrote in .cairn (a pipeline's last
        step); None lets publishing write one naming the job (publishing redacts it)."""
        assert self.workspace is not None
        given = spec.get("commitMessage")
        written = self.workspace.repo / ".cairn" / "commit_message.txt"
        if not given and written.is_file():
            given = written.read_text(errors="replace")[:10_000].strip() or None
        return given or None

    async def _open_pr(self) -> str | None:
        """A follow-up's pull request: the one an earlier job of its chain opened (or updated)
        from the branch this run works on, while it is open; a push updates it, and no second
        one is opened. A merged or closed one is not reused: this run opens its own."""
        working = self.branches.working if self.branches else None
        followed, hops = self.job.follows, 0
        while followed is not None and hops < MAX_CHAIN:
            try:
                earlier = await load_job(self.held.store, followed)
            except CairnError:
                return None
            publish = earlier.publish or {}
            url = publish.get("pr_url")
            if url and publish.get("branch") == working:
                pr_id = pull_id(self.held.store.keys, earlier.project, str(url))
                known = (await load_pulls(self.held.store, [pr_id])).get(pr_id)
                return str(url) if known is None or known.state == "open" else None
            followed, hops = earlier.follows, hops + 1
        return None

    async def _submitter(self) -> str:
        """Who submitted the job (the first event's actor), for the commit's trailer."""
        try:
            first = await self.held.store.read_aggregate(self.job.id)
        except CairnError:
            return "unknown"
        return first[0].actor if first else "unknown"

    def run_summary(self, publish_record: dict[str, Any] | None) -> dict[str, Any]:
        """What the attempt did: stages, steps, outcome, changes, durations."""
        loop_now = asyncio.get_running_loop().time()
        return {
            "job_id": self.job.id, "attempt": self.job.attempt,
            "stages": self.held.job.stages, "steps": self.held.job.steps,
            "changes": {"paths": self.steps.changed_paths if self.steps else [],
                        "diffstat": self.steps.diffstat if self.steps else ""},
            "publish": publish_record, "duration_s": round(loop_now - self.started, 3),
        }  # fmt: skip

def _error(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message}


def _git_error(error: GitFailed) -> dict[str, Any]:
    return {"code": "git_failed", "message": str(error), "command": error.command,
            "stderr": error.stderr[-2000:]}  # fmt: skip


__all__ = ["Attempt", "Cancelled", "JobRun", "RunTools", "StageFailed"]
