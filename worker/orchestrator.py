"""Orchestrator runs on the worker (domain/orchestrator/runs.py).

The plan job is a task job: its two agent steps run as any other (the sandbox, transcripts),
with two checks of its own here: `analyze` may not change a file, and the change `patch` made
may only touch the service's `allowedPaths` (symlinks count as outside). Either failing fails
the job before its publish, so nothing is committed.

The apply job runs the operator's commands, never anything the agent wrote, outside the
sandbox with the worker's rights (the store's settings aside), in the service's checkout on
this worker (`<data dir>/services/<name>`): the proposal committed on the service's branch
(trailers name the run and the approver), `build`, `restart`, `verify`; when one of them fails
after a commit, or a cancel comes, the `rollback`. A retried attempt (its worker died) goes on
from what the branch shows: the run's commit there is not made again, its revert there means
the rollback was under way, and a restart is always followed by a verify before success."""

from __future__ import annotations

import asyncio
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cairn.commands.orchestrator.runs import load_run
from cairn.domain.jobs.events import JobStepFinished, JobStepStarted
from cairn.domain.jobs.repositories import resolve_repository
from cairn.domain.orchestrator.paths import outside
from cairn.worker.attempt import Attempt, worker_token
from cairn.worker.failures import Cancelled, StageFailed
from cairn.worker.gitops import Git, GitFailed, askpass_env
from cairn.worker.live import LiveOutput
from cairn.worker.process import Limits, minimal_env, run_process
from cairn.worker.redaction import Redactor
from cairn.worker.workspace import make_workspace

RUN_TRAILER = "Cairn-Run"
ROLLBACK_TRAILER = "Cairn-Rollback"
HTTP_TRY_S = 5.0  # one health check request at most
LOGS_MAX = 64 * 1024  # of a service's logs, given to the analysis
PLAN_MAX = 8_000  # the end of an analysis's output kept as its plan (no last message named)


def marker(run: Attempt) -> dict[str, Any] | None:
    found = run.job.normalized.get("orchestrator")
    return found if isinstance(found, dict) else None


# ---- the plan job's checks ------------------------------------------------------------------


async def plan_begins(run: Attempt) -> None:
    """Before `analyze`: the service's recent logs (its catalog's logs command, the operator's,
    run outside the sandbox with the service's environment) where the agent reads them."""
    found = marker(run)
    if found is None or found.get("phase") != "plan" or not found.get("logs"):
        return
    assert run.workspace is not None
    command = found["logs"]
    log_path = run.workspace.artifacts / "service_logs.txt"
    live = LiveOutput(run.tools.output, run.job.id, 0, log_path, run.redactor,
                      min(run.execution.artifact_max_bytes, LOGS_MAX))  # fmt: skip
    home = Path(os.environ.get("HOME") or "/")
    env = {**minimal_env(home, passthrough=[str(n) for n in found.get("env") or []]),
           "HOME": str(home)}  # fmt: skip
    timeout_s = float(command.get("timeoutSeconds") or 60)
    try:
        result = await run_process(["bash", "-lc", str(command["run"])], cwd=run.workspace.repo,
                                   env=env, on_output=live.feed,
                                   limits=Limits(step_s=timeout_s, idle_s=timeout_s,
                                                 deadline=None),
                                   should_stop=run.held.cancel_requested)  # fmt: skip
    finally:
        await live.close()
    if result.exit_status != 0:
        ended = result.stopped or f"exit status {result.exit_status}"
        with log_path.open("a") as f:
            f.write(f"\n[cairn: the logs command ended with {ended}]\n")
    folder = run.workspace.repo / ".cairn"
    folder.mkdir(exist_ok=True)
    (folder / "service_logs.txt").write_text(log_path.read_text(errors="replace"))
    await run.add_file("service_logs.txt", log_path)


async def plan_step_done(run: Attempt, index: int, before: str, after: str) -> None:
    """After `analyze` (step 1): nothing changed, and its plan is kept for `patch`."""
    found = marker(run)
    if found is None or found.get("phase") != "plan" or index != 1:
        return
    assert run.git is not None and run.workspace is not None
    diff = await run.git.diff(run.workspace.repo, before, after)
    if diff.paths:
        shown = ", ".join(diff.paths[:20])
        raise StageFailed("execute", {
            "code": "analyze_changed_files", "files": diff.paths[:200],
            "message": f"the analyze step may only read, but it changed {shown}; nothing was "
                       "committed"}, retryable=False)  # fmt: skip
    steps = run.held.job.steps
    said = str((steps[-1] if steps else {}).get("message") or "").strip()
    plan = said or _output_end(run.workspace.artifacts / "logs" / "steps" / "step-1.log")
    folder = run.workspace.repo / ".cairn"
    folder.mkdir(exist_ok=True)
    (folder / "plan.md").write_text(plan + "\n")
    path = run.workspace.artifacts / "plan.md"
    path.write_text(run.redactor.redact(plan) + "\n")
    await run.add_file("plan.md", path)


async def plan_done(run: Attempt, changed: list[str]) -> dict[str, Any]:
    """The patch's files against the service's `allowedPaths`; the files for the run."""
    found = marker(run)
    if found is None or found.get("phase") != "plan":
        return {}
    assert run.workspace is not None
    allowed = [str(p) for p in found.get("allowedPaths") or []]
    refused = outside(changed, allowed)
    refused += [p for p in changed if p not in refused and _through_link(run.workspace.repo, p)]
    if refused:
        shown = ", ".join(refused[:20]) + (f" (and {len(refused) - 20} more)"
                                           if len(refused) > 20 else "")  # fmt: skip
        raise StageFailed("execute", {
            "code": "outside_allowed_paths", "files": refused[:200],
            "message": f"the patch changed files outside allowedPaths ({', '.join(allowed)}): "
                       f"{shown}; nothing was committed"}, retryable=False)  # fmt: skip
    # What the approver sees is redacted; the commit is not. A change holding text the redactor
    # hides is never applied without a person's approval (domain/orchestrator/runs.py).
    assert run.git is not None and run.start_commit is not None
    now = await run.git.snapshot(run.workspace.repo)
    patch = (await run.git.diff(run.workspace.repo, run.start_commit, now)).patch
    hidden = run.redactor.redact(patch) != patch
    return {"changed": changed[:500], **({"redacted": True} if hidden else {})}


def _output_end(log: Path) -> str:
    """The end of what the analysis printed, when its CLI named no last message."""
    text = log.read_text(errors="replace").strip() if log.is_file() else ""
    return text[-PLAN_MAX:] or "(the analysis printed nothing)"


def _through_link(repo: Path, path: str) -> bool:
    """Whether `path`, or a folder on the way to it, is a symlink in the checkout."""
    current = repo
    for part in path.split("/"):
        current = current / part
        if current.is_symlink():
            return True
    return False


# ---- the apply job --------------------------------------------------------------------------


class ServiceApply:
    """One attempt of an apply job."""

    def __init__(self, run: Attempt) -> None:
        found = marker(run)
        assert found is not None
        self.run, self.marker = run, found
        self.spec: dict[str, Any] = found["spec"]
        self.run_id = str(found["run"])
        self.checkout = Path(run.tools.settings.data_dir) / "services" / str(self.spec["name"])
        self.index = 0
        self.summary: list[dict[str, Any]] = []
        self.commit: str | None = None
        self.verify: dict[str, Any] | None = None
        self.rolling_back = False  # a rollback runs to its end, a cancel or not
        # The operator's commands run code the agent may have patched: they get PATH, HOME, the
        # locale and the variables the service names (`env`), never the worker's tokens or keys.
        home = Path(os.environ.get("HOME") or "/")
        named = [str(n) for n in self.spec.get("env") or []]
        self.env = minimal_env(home, passthrough=named)
        self.env.update({"HOME": str(home), "CAIRN_RUN_ID": self.run_id,
                         "CAIRN_SERVICE": str(self.spec["name"])})

    async def prepare(self) -> dict[str, Any]:
        run = self.run
        ours = await load_run(run.held.store, self.run_id)
        if ours.apply_job != run.job.id or ours.state not in ("applying", "verifying"):
            raise StageFailed("prepare", {"code": "not_the_run_s", "message": f"run {ours.id} is "
                              f"{ours.state} and its apply job is {ours.apply_job}, not this "
                              "one: nothing is applied"}, retryable=False)  # fmt: skip
        data_dir = Path(run.tools.settings.data_dir)
        run.workspace = make_workspace(data_dir, run.job.id, run.job.attempt)
        token = worker_token()
        run.redactor = Redactor([token] if token else [], env=os.environ)
        env = minimal_env(run.workspace.home, extra=askpass_env(run.workspace.home, token))
        self.git = run.git = Git(env=env, redact=run.redactor.redact)
        try:
            execution = run.execution
            remote = resolve_repository(str(self.spec["repository"]),
                                        git_base_url=execution.git_base_url,
                                        allow_local=execution.allow_local_repositories)  # fmt: skip
        except ValueError as e:
            raise StageFailed("prepare", {"code": "bad_repository", "message": str(e)},
                              retryable=False) from e  # fmt: skip
        branch = str(self.spec["branch"])
        try:
            if not (self.checkout / ".git").is_dir():
                self.checkout.parent.mkdir(parents=True, exist_ok=True)
                await self.git.run("clone", "--quiet", remote.url, str(self.checkout),
                                   cwd=self.checkout.parent)  # fmt: skip
            else:
                await self.git.run("remote", "set-url", "origin", remote.url, cwd=self.checkout)
            await self._sync()
        except GitFailed as e:
            raise StageFailed("prepare", {"code": "git_failed", "message": str(e)},
                              retryable=True) from e  # fmt: skip
        head = await self._rev("HEAD")
        return {"checkout": str(self.checkout), "branch": branch, "head": head}

    async def _sync(self) -> None:
        """The checkout as the branch is on origin (a last run's tracked changes, dropped)."""
        branch = str(self.spec["branch"])
        await self.git.run("fetch", "--quiet", "--prune", "origin", cwd=self.checkout)
        await self.git.run("checkout", "--quiet", "-B", branch, f"origin/{branch}",
                           cwd=self.checkout)  # fmt: skip
        # Untracked files stay: they are the service's own (a pid file, a log, a build).
        await self.git.run("reset", "--quiet", "--hard", f"origin/{branch}", cwd=self.checkout)

    async def _rev(self, name: str) -> str:
        return (await self.git.run("rev-parse", name, cwd=self.checkout)).stdout.strip()

    # ---- execute ----------------------------------------------------------------------------

    async def execute(self) -> dict[str, Any]:
        try:
            return await self._execute()
        finally:
            await self.run.add_json("run_summary.json", {
                "run": self.run_id, "service": self.spec["name"], "job": self.run.job.id,
                "attempt": self.run.job.attempt, "commit": self.commit, "verify": self.verify,
                "steps": self.summary})  # fmt: skip

    async def _execute(self) -> dict[str, Any]:
        ours = await self._on_branch()
        if ours.get(ROLLBACK_TRAILER):
            # An earlier attempt was rolling back when its worker died: finish the rollback.
            self.commit = ours.get(RUN_TRAILER)
            rolled = await self._rollback_rest("the rollback an earlier attempt began")
            raise self._rolled(rolled, "an earlier attempt's rollback, finished here")
        self.commit = ours.get(RUN_TRAILER) or await self._commit_step()
        for name in ("build", "restart", "verify"):
            if await self.run.held.cancel_requested():
                await self._cancelled(name)
            passed, why = await self._command_step(name)
            if passed is None:
                await self._cancelled(name)
            if not passed:
                if self.commit is None:
                    raise StageFailed("execute", self._error(f"{name}_failed", f"{name} "
                                      f"failed ({why}); there was no change to roll back"),
                                      retryable=False)  # fmt: skip
                rolled = await self._rollback(f"{name} failed ({why})")
                raise self._rolled(rolled, f"{name} failed ({why})")
        return {"commit": self.commit, "verify": self.verify, "rolled_back": False}

    def _error(self, code: str, message: str, **more: Any) -> dict[str, Any]:
        return {"code": code, "message": message, "commit": self.commit, "verify": self.verify,
                **more}  # fmt: skip

    def _rolled(self, rolled: bool, why: str) -> StageFailed:
        if rolled:
            return StageFailed("execute", self._error(
                "rolled_back", f"{why}; rolled back, and the verify passed after it",
                rolled_back=True), retryable=False)  # fmt: skip
        return StageFailed("execute", self._error(
            "rollback_failed", f"{why}; the rollback failed too: the service needs a person",
            rolled_back=False), retryable=False)  # fmt: skip

    async def _cancelled(self, during: str) -> None:
        """A cancel: once the change is on the branch, the rollback runs first (before any
        restart, the revert alone: the service still runs what it ran)."""
        rolled = None
        if self.commit is not None:
            rolled = await self._rollback(f"cancelled during {during}",
                                          restarted=during != "build")  # fmt: skip
        raise Cancelled({"stage": "execute", "step": during, "commit": self.commit,
                         "rolled_back": bool(rolled), "verify": self.verify})  # fmt: skip

    async def _on_branch(self) -> dict[str, str]:
        """This run's trailers on the service's branch: its commit, its revert."""
        log = await self.git.run("log", "-n", "200", "--format=%H%x00%B%x1e", "HEAD",
                                 cwd=self.checkout)  # fmt: skip
        found: dict[str, str] = {}
        for record in log.stdout.split("\x1e"):
            sha, _, body = record.strip().partition("\x00")
            for line in body.splitlines():
                key, _, value = line.partition(":")
                if value.strip() == self.run_id and key in (RUN_TRAILER, ROLLBACK_TRAILER):
                    found.setdefault(key, sha)
        return found

    # ---- steps --------------------------------------------------------------------------------

    async def _begin(self, name: str, title: str) -> tuple[int, LiveOutput, float]:
        run = self.run
        assert run.workspace is not None
        self.index += 1
        started = JobStepStarted(epoch=run.held.epoch, index=self.index, step_id=name,
                                 title=title, sandbox={"kind": "none", "reason": "the "
                                 "operator's command, outside the agent sandbox"})  # fmt: skip
        await run.held.write(lambda job: [started])
        log_path = run.workspace.artifacts / "logs" / "steps" / f"step-{self.index}.log"
        live = LiveOutput(run.tools.output, run.job.id, self.index, log_path, run.redactor,
                          run.execution.artifact_max_bytes)  # fmt: skip
        return self.index, live, asyncio.get_running_loop().time()

    async def _end(self, index: int, name: str, live: LiveOutput, began: float, outcome: str,
                   *, exit_status: int | None = None, message: str = "") -> None:  # fmt: skip
        run = self.run
        await live.close()
        await run.add_file(f"logs/steps/step-{index}.log", live.log_path)
        took = int((asyncio.get_running_loop().time() - began) * 1000)
        error = None if outcome == "succeeded" else {"code": f"{name}_{outcome}", "step": name,
                                                      "message": message}  # fmt: skip
        finished = JobStepFinished(epoch=run.held.epoch, index=index, step_id=name,
                                   outcome=outcome, exit_status=exit_status, duration_ms=took,
                                   error=error, message=message or None)  # fmt: skip
        await run.held.write(lambda job: [finished])
        self.summary.append({"step": name, "outcome": outcome, "exit_status": exit_status,
                             "duration_ms": took, "message": message,
                             "log": f"logs/steps/step-{index}.log"})  # fmt: skip

    async def _commit_step(self) -> str | None:
        """The proposal on the service's branch, as one commit with the run's trailers."""
        proposal = self.marker.get("proposal") or None
        if not proposal or not proposal.get("head"):
            return None
        index, live, began = await self._begin("commit", "Commit the change")
        try:
            sha = await self._apply_proposal(proposal, live)
        except StageFailed as e:
            await self._end(index, "commit", live, began, "failed", message=str(e.error["message"]))
            raise
        except GitFailed as e:
            await self._end(index, "commit", live, began, "failed", message=str(e))
            raise StageFailed("execute", {"code": "commit_failed", "message": str(e)},
                              retryable=True) from e  # fmt: skip
        await self._end(index, "commit", live, began, "succeeded", message=f"committed {sha}")
        return sha

    async def _apply_proposal(self, proposal: dict[str, Any], live: LiveOutput) -> str:
        git, repo, branch = self.git, self.checkout, str(self.spec["branch"])
        base, head = str(proposal["base"]), str(proposal["head"])
        await git.run("fetch", "--quiet", "origin", str(proposal["branch"]), cwd=repo)
        raw = await git.run("diff", "--raw", "--no-renames", "-z", base, head, cwd=repo)
        fields = raw.stdout.split("\0")
        paths = [fields[i + 1] for i in range(0, len(fields) - 1, 2) if fields[i].startswith(":")]
        links = [fields[i + 1] for i in range(0, len(fields) - 1, 2)
                 if fields[i].startswith(":") and " 120000 " in f"{fields[i]} "]  # fmt: skip
        refused = sorted({*outside(paths, list(self.spec["allowedPaths"])), *links})
        if refused:
            raise StageFailed("execute", self._error(
                "outside_allowed_paths", "the proposal changes files outside allowedPaths: "
                f"{', '.join(refused[:20])}; nothing was committed", files=refused[:200]),
                retryable=False)  # fmt: skip
        patch = await git.run("diff", "--binary", "--no-renames", base, head, cwd=repo)
        assert self.run.workspace is not None
        saved = self.run.workspace.artifacts / "patches" / "apply.patch"
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(self.run.redactor.redact(patch.stdout))
        await self.run.add_file("patches/apply.patch", saved)
        for tries in (1, 2):
            await git.run("apply", "--index", "--whitespace=nowarn", "-", cwd=repo,
                          input=patch.stdout.encode())  # fmt: skip
            sha = await self._commit(self._message())
            await live.feed(f"committed {sha} on {branch}: {', '.join(paths) or 'no file'}\n")
            pushed = await git.run("push", "--quiet", "origin", f"HEAD:{branch}", cwd=repo,
                                   check=tries == 2)  # fmt: skip
            if pushed.exit_status == 0:
                return sha
            await live.feed("the branch moved meanwhile: applying again on its new head\n")
            await self._sync()
        raise AssertionError("unreachable")

    def _message(self) -> str:
        instruction = str(self.marker.get("instruction") or "").strip()
        title = (instruction.splitlines() or ["an orchestrator run"])[0][:72]
        approver = self.marker.get("approvedBy") or "not required"
        return (f"{title}\n\nApplied by Cairn's orchestrator run {self.run_id} on service "
                f"{self.spec['name']}.\n\n{RUN_TRAILER}: {self.run_id}\n"
                f"Approved-by: {approver}\nRequested-by: {self.marker.get('submittedBy')}\n")

    async def _commit(self, message: str) -> str:
        """Commit what is staged, and only that: the service's own files in its checkout (a
        pid file, a log) are never part of a run's commit."""
        execution = self.run.execution
        name, email = execution.git_author_name, execution.git_author_email
        identity = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
                    "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}  # fmt: skip
        text = self.run.redactor.redact(message).encode()
        await self.git.run("commit", "--quiet", "--no-verify", "--allow-empty",
                           "--cleanup=whitespace", "--file=-", cwd=self.checkout, input=text,
                           env=identity)  # fmt: skip
        return await self._rev("HEAD")

    async def _command_step(self, name: str, *, within: LiveOutput | None = None
                            ) -> tuple[bool | None, str]:  # fmt: skip
        """Run the catalog's `name` command (or health check): passed (None: cancelled), and
        why not. `within`: a rollback's log, which it writes into instead of a step of its own."""
        command: dict[str, Any] = self.spec.get(name) or {}
        if within is not None:
            return await self._run_command(name, command, within)
        index, live, began = await self._begin(name, name.capitalize())
        passed, why, status = None, "", None
        try:
            passed, why = await self._run_command(name, command, live)
            status = self._status
        finally:
            outcome = "cancelled" if passed is None else "succeeded" if passed else "failed"
            await self._end(index, name, live, began, outcome, exit_status=status,
                            message=why)  # fmt: skip
        return passed, why

    async def _run_command(self, name: str, command: dict[str, Any], live: LiveOutput
                           ) -> tuple[bool | None, str]:  # fmt: skip
        self._status: int | None = None
        if command.get("http"):
            passed, why = await self._health(command["http"], live)
        else:
            passed, why = await self._shell(str(command.get("run") or "true"),
                                            float(command.get("timeoutSeconds") or 300), live)
        if name == "verify" and passed is not None:
            live.settle()  # what the redactor held back, out (the verify's last lines)
            self.verify = {"passed": passed, "output": live.tail[-4000:], "why": why}
        return passed, why

    async def _shell(self, text: str, timeout_s: float, live: LiveOutput
                     ) -> tuple[bool | None, str]:  # fmt: skip
        await live.feed(f"$ {text}\n")
        limits = Limits(step_s=timeout_s, idle_s=timeout_s, deadline=None)
        result = await run_process(["bash", "-lc", text], cwd=self.checkout, env=self.env,
                                   on_output=live.feed, limits=limits,
                                   should_stop=self._cancelled_now,
                                   grace_s=self.run.tools.cancel_grace_s)  # fmt: skip
        self._status = result.exit_status
        if result.stopped == "cancelled":
            return None, "cancelled"
        if result.stopped is not None:
            return False, f"timed out after {timeout_s:g} s"
        if result.exit_status != 0:
            return False, f"exit status {result.exit_status}"
        return True, "exit status 0"

    async def _health(self, http: dict[str, Any], live: LiveOutput) -> tuple[bool | None, str]:
        url, expect = str(http["url"]), int(http.get("expectStatus") or 200)
        tries = int(http.get("retries") or 10)
        pause = float(http.get("windowSeconds") or 30) / tries
        status: int | str = "no answer"
        for attempt in range(1, tries + 1):
            if await self._cancelled_now():
                return None, "cancelled"
            status = await asyncio.to_thread(_get_status, url, min(HTTP_TRY_S, max(pause, 1.0)))
            await live.feed(f"try {attempt}/{tries}: GET {url} -> {status}\n")
            if status == expect:
                return True, f"{url} answered {status}"
            if attempt < tries:
                await asyncio.sleep(pause)
        return False, f"{url} answered {status}, not {expect}, {tries} times over " \
                      f"{float(http.get('windowSeconds') or 30):g} s"

    async def _cancelled_now(self) -> bool:
        return not self.rolling_back and await self.run.held.cancel_requested()

    # ---- rollback -----------------------------------------------------------------------------

    async def _rollback(self, why: str, *, restarted: bool = True) -> bool:
        """Undo the run's change: revert its commit (and rebuild, restart, verify, once the
        service was restarted), or the catalog's rollback command."""
        index, live, began = await self._begin("rollback", "Roll back")
        await live.feed(f"rolling back: {why}\n")
        self.rolling_back = True
        passed = False
        try:
            rollback = self.spec.get("rollback") or {"mode": "revert"}
            if rollback.get("mode") == "command":
                ok, _ = await self._shell(str(rollback["run"]),
                                             float(rollback.get("timeoutSeconds") or 600), live)
                passed = bool(ok)
            else:
                await self._revert(live)
                passed = await self._rebuild(live) if restarted else True
        except GitFailed as e:
            await live.feed(f"{e}\n")
        finally:
            await self._end(index, "rollback", live, began, "succeeded" if passed else "failed",
                            message="rolled back" if passed else "the rollback failed")  # fmt: skip
        return passed

    async def _rollback_rest(self, why: str) -> bool:
        """The rest of a rollback whose revert is on the branch already."""
        index, live, began = await self._begin("rollback", "Roll back")
        await live.feed(f"going on with {why}\n")
        self.rolling_back = True
        passed = False
        try:
            rollback = self.spec.get("rollback") or {"mode": "revert"}
            if rollback.get("mode") == "command":
                ok, _ = await self._shell(str(rollback["run"]),
                                          float(rollback.get("timeoutSeconds") or 600), live)
                passed = bool(ok)
            else:
                passed = await self._rebuild(live)
        finally:
            await self._end(index, "rollback", live, began, "succeeded" if passed else "failed",
                            message="rolled back" if passed else "the rollback failed")  # fmt: skip
        return passed

    async def _revert(self, live: LiveOutput) -> None:
        assert self.commit is not None
        git, repo, branch = self.git, self.checkout, str(self.spec["branch"])
        for tries in (1, 2):
            await git.run("revert", "--no-edit", "--no-commit", self.commit, cwd=repo)
            message = (f"Revert the change of orchestrator run {self.run_id}\n\nThis reverts "
                       f"commit {self.commit}.\n\n{ROLLBACK_TRAILER}: {self.run_id}\n")  # fmt: skip
            sha = await self._commit(message)
            pushed = await git.run("push", "--quiet", "origin", f"HEAD:{branch}", cwd=repo,
                                   check=tries == 2)  # fmt: skip
            if pushed.exit_status == 0:
                await live.feed(f"reverted {self.commit} as {sha} on {branch}\n")
                return
            await self._sync()

    async def _rebuild(self, live: LiveOutput) -> bool:
        for name in ("build", "restart", "verify"):
            await live.feed(f"--- {name}\n")
            passed, why = await self._command_step(name, within=live)
            await live.feed(f"--- {name}: {why}\n")
            if not passed:
                return False
        return True


def _get_status(url: str, timeout_s: float) -> int | str:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except (OSError, ValueError) as e:
        return f"no answer ({type(e).__name__})"

