"""The execute stage: one runtime invocation per step, in order, stopping at the first
failure. Before each step the worker honours a cancel or a pause and hands over the operator's
messages; each step's output goes live to the job's output stream and whole to its log; what
it changed is a patch. Cairn decides the outcome from exit statuses and the CLI's structured
result (worker/agents/failures.py), never from the agent's words."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cairn.commands.jobs.job import load_job
from cairn.domain.errors import CairnError
from cairn.domain.jobs.contract import ResolvedRuntime, resolve_runtime
from cairn.domain.jobs.events import JobStepFinished, JobStepStarted
from cairn.domain.jobs.followups import PUSHED
from cairn.domain.jobs.publishing import Evidence, step_evidence
from cairn.worker.agents.clis import CLIS
from cairn.worker.agents.environment import prepare_home, step_env
from cairn.worker.agents.failures import Failure, Watch, classify
from cairn.worker.agents.invocation import Invocation, build_invocation
from cairn.worker.agents.prompts import compose_prompt
from cairn.worker.agents.replies import final_message
from cairn.worker.agents.usage import codex_model, codex_thread_total, parse_usage
from cairn.worker.attempt import Attempt
from cairn.worker.failures import Cancelled, StageFailed
from cairn.worker.followups import Continuation, continue_from, keep_session
from cairn.worker.live import LiveOutput
from cairn.worker.live_sessions import SessionServer
from cairn.worker.orchestrator import plan_begins, plan_done, plan_step_done
from cairn.worker.process import LaunchFailed, Limits, ProcessResult, run_process
from cairn.worker.special import run_container_job, run_manifest_job
from cairn.worker.steering import Hold, Turn, add_step_usage, steering_prompt
from cairn.worker.transcribe import StepTranscript

PAUSE_POLL_S = 0.5
STEERED = "steered"  # should_stop's answer when an operator's message came for the agent
BREACHES = ("memory_limit", "process_limit", "disk_limit")  # the sandbox's (worker/sandbox.py)
LIMITS = {
    "step_timeout": "the step timeout (CAIRN_STEP_TIMEOUT_S)",
    "idle_timeout": "the idle timeout (CAIRN_IDLE_TIMEOUT_S)",
    "job_timeout": "the job timeout (CAIRN_JOB_TIMEOUT_S)",
}
VERIFY_WORDS = ("verify", "test", "lint", "check")


@dataclass(frozen=True)
class PlannedStep:
    index: int  # 1-based
    step_id: str
    title: str | None
    instructions: str | None
    skill: str | None


class Steps:
    """The steps of one attempt, and what they left: changed paths, diff stat, evidence."""

    def __init__(self, run: Attempt) -> None:
        self.run = run
        task = run.task
        given = task.get("steps") or []
        if given:
            self.plan = [
                PlannedStep(i, s.get("id") or f"step-{i}", s.get("title"), s.get("instructions"),
                            (s.get("skill") or {}).get("id"))
                for i, s in enumerate(given, 1)
            ]
        else:
            self.plan = [PlannedStep(1, "step-1", None, task.get("instructions"), None)]
        self.changed_paths: list[str] = []
        self.diffstat = ""
        self.evidence: list[Evidence] = []
        self.summary = ""
        live = run.tools.live
        self.live = (SessionServer(run, live, idle_s=run.execution.live_idle_s)
                     if live is not None and run.job.job_type == "task" else None)  # fmt: skip

    async def execute(self) -> dict[str, Any]:
        job = self.run.job
        if job.job_type == "noop":
            await self._noop(float(job.normalized.get("sleepMs") or 0) / 1000)
            self.summary = "noop"
            return {"handler": "noop"}
        if job.job_type == "manifest":
            return await run_manifest_job(self.run)
        if job.job_type != "task":
            message = f"this worker has no handler for {job.job_type} jobs"
            raise StageFailed("execute", {"code": "no_handler", "message": message},
                              retryable=False)  # fmt: skip
        assert self.run.git is not None and self.run.workspace is not None
        base = await self.run.git.snapshot(self.run.workspace.repo)
        container = self.run.task.get("container") or {}
        if container.get("enabled"):
            detail = await run_container_job(self.run, container)
            await self._changes(base, await self.run.git.snapshot(self.run.workspace.repo))
            self.summary = f"the container {container.get('image')} exited 0"
            return detail
        previous = base
        await plan_begins(self.run)
        try:
            for step in self.plan:
                before, previous = previous, await self._step(step, previous)
                await plan_step_done(self.run, step.index, before, previous)
        finally:
            if self.live is not None:  # the agent's work is over: so are its live sessions
                with contextlib.suppress(CairnError):
                    await self.live.close_all("job_ended")
        await self._changes(base, previous)
        planned = await plan_done(self.run, self.changed_paths)
        last = self.plan[-1]
        self.summary = f"{len(self.plan)} step(s) ran; the last, {last.step_id}, exited 0"
        return {"steps": len(self.plan), "files": len(self.changed_paths), **planned}

    async def _noop(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(left, 0.5))
            if left > 0.5 and await self.run.held.cancel_requested():
                raise Cancelled({"stage": "execute"})

    async def _boundary(self, step: PlannedStep) -> list[str]:
        """Before a step: a cancel ends the job, a pause holds it here; the operator's
        messages so far, for the prompt (also written to .cairn/operator_messages.md)."""
        held = self.run.held
        while True:
            job = await held.refresh()
            if job.status == "cancel_requested":
                raise Cancelled({"stage": "execute", "step": step.step_id, "index": step.index,
                                 "before_step": True})  # fmt: skip
            if self.live is not None:
                await self.live.follow(job)
                job = held.job  # what following it wrote (a hand-back's message, a cancel)
                if job.status == "cancel_requested":
                    continue
            if not job.paused and not (self.live is not None and self.live.holding):
                break
            await asyncio.sleep(PAUSE_POLL_S)
        messages = [str(m.get("text", "")) for m in job.operator_messages]
        if messages and self.run.workspace is not None:
            path = self.run.workspace.repo / ".cairn" / "operator_messages.md"
            path.write_text("".join(f"- {self.run.redactor.redact(m)}\n" for m in messages))
        return messages

    async def _step(self, step: PlannedStep, previous: str) -> str:
        run, held = self.run, self.run.held
        assert run.workspace is not None and run.git is not None
        messages = await self._boundary(step)
        runtime = resolve_runtime(run.job.normalized, run.tools.defaults)
        mode = runtime.mode or ""
        if mode == "shell":
            prompt = step.instructions or run.task.get("instructions") or ""
        else:
            prompt = compose_prompt(
                objective=run.task.get("instructions"), step_index=step.index,
                step_count=len(self.plan), step_id=step.step_id, step_title=step.title,
                step_instructions=step.instructions,
                skill=step.skill or (run.task.get("skill") or {}).get("id"),
                operator_messages=messages,
            )  # fmt: skip
        prepare_home(mode, run.workspace.home, os.environ)
        continuation = await self._continuation(step, mode, prompt)
        turn = Turn(prompt=continuation.prompt if continuation else prompt,
                    resume=continuation.resume if continuation else None,
                    before=continuation.before if continuation else None)  # fmt: skip
        if continuation is not None and messages:  # said while the follow-up waited its turn
            turn.prompt += "\n\n" + steering_prompt(messages)
        invocation = self._invocation(runtime, step, turn)
        env, passed = step_env(mode, run.workspace.home, os.environ, run.execution.agent_env)
        sandbox = run.tools.sandbox
        guard = sandbox.guard(run.workspace)
        started = JobStepStarted(epoch=held.epoch, index=step.index, step_id=step.step_id,
                                 title=step.title, env=passed, agent=self._agent(mode),
                                 sandbox=sandbox.describe())  # fmt: skip
        await held.write(lambda job: [started])
        artifacts = run.workspace.artifacts
        transcript = StepTranscript(
            mode, step.index, artifacts / "transcript" / f"step-{step.index}.jsonl",
            command=run.redactor.redact(prompt) if mode == "shell" else "",
            root=str(run.workspace.repo), attempt=run.job.attempt,
        )  # fmt: skip
        if continuation is not None:
            transcript.note("cairn", continuation.note)
        transcript.prompt(run.redactor.redact(turn.prompt))  # what the agent was told
        log_path = artifacts / "logs" / "steps" / f"step-{step.index}.log"
        live = LiveOutput(run.tools.output, run.job.id, step.index, log_path, run.redactor,
                          run.execution.artifact_max_bytes, transcript,
                          terminal=self.live.show if self.live else None)  # fmt: skip
        execution = run.execution
        hold = Hold(guard)
        if self.live is not None:
            self.live.hold_agent = lambda: hold.follow(True)
        step_began = asyncio.get_running_loop().time()
        watch = Watch(mode)
        seen: list[Failure] = []  # a failure the output showed before the CLI gave up
        heard = len(messages)  # the operator's messages this step's prompt has
        named = 0  # how often the CLI named its session before this turn
        usage: dict[str, Any] | None = None
        spent_s = 0.0

        async def on_output(chunk: str) -> None:
            await live.feed(chunk)
            if not seen and (found := watch.feed(chunk)) is not None:
                seen.append(found)

        async def should_stop() -> bool | str | None:
            if seen or guard.stopping():
                hold.release()  # a held process could not take its SIGTERM
                return True if seen else guard.stopping()
            job = await held.refresh()
            if job.status == "cancel_requested":
                hold.release()
                return True
            if self.live is not None:
                await self.live.follow(job)
                job = held.job  # what following it wrote (a hand-back's message, a cancel)
                if job.status == "cancel_requested":
                    hold.release()
                    return True
            taken = self.live is not None and self.live.holding
            hold.follow(job.paused or taken)
            # Steered once this turn's CLI named its session (so it has the last message), and
            # not while paused (the message waits for the resume).
            steerable = (mode in CLIS and transcript.parser.sessions_seen > named
                         and not job.paused and not taken)  # fmt: skip
            return STEERED if steerable and len(job.operator_messages) > heard else None

        launch_error: str | None = None
        result: ProcessResult | None = None
        try:
            while True:
                argv = sandbox.command(invocation.argv, run.workspace,
                                       read_only=run.tools.readable)  # fmt: skip
                sandbox.hand_over(run.workspace)
                offset = live.settle()
                if shutil.which(invocation.argv[0], path=env.get("PATH")) is None:
                    # In the sandbox bubblewrap starts whatever is asked: say it before, as a
                    # launch outside it would.
                    raise LaunchFailed(f"{invocation.argv[0]!r} is not on the step's PATH")
                named = transcript.parser.sessions_seen
                # The turns of a step share its time (a steered step gets no more of it).
                left_s = execution.step_timeout_s - (asyncio.get_running_loop().time()
                                                     - step_began)  # fmt: skip
                limits = Limits(step_s=max(left_s, 0.1), idle_s=execution.idle_timeout_s,
                                deadline=run.started + execution.job_timeout_s,
                                held=hold.times)  # fmt: skip
                result = await run_process(
                    argv, cwd=run.workspace.repo, env=env, on_output=on_output, limits=limits,
                    should_stop=should_stop, grace_s=run.tools.cancel_grace_s,
                    stdin=invocation.stdin, on_start=guard.started,
                    terminal=self.live is not None,
                )  # fmt: skip
                hold.release()
                spent_s += result.duration_s
                live.settle()
                text = live.text_since(offset)
                turn_usage = parse_usage(mode, text, model=runtime.model or self._codex_model(mode),
                                         prices=execution.prices, before=turn.before)  # fmt: skip
                usage = add_step_usage(usage, turn_usage)
                turn.before = codex_thread_total(text) or turn.before if mode == "codex" else None
                if result.stopped != STEERED:
                    break
                # An operator spoke while the agent worked: its turn ends here, and the same
                # session goes on with what they said.
                job = held.job
                said = [str(m.get("text", "")) for m in job.operator_messages[heard:]]
                heard = len(job.operator_messages)
                transcript.finish(None)
                transcript.note("cairn", "Cairn stopped the agent's turn to pass on an "
                                         "operator's message; the session goes on.")  # fmt: skip
                for text_said in said:
                    transcript.note("operator", run.redactor.redact(text_said))
                turn = Turn(prompt=steering_prompt(said), resume=transcript.session_id,
                            before=turn.before)  # fmt: skip
                invocation = self._invocation(runtime, step, turn)
        except LaunchFailed as e:
            result, launch_error = None, self._missing_cli(mode, e.message)
            await live.feed(f"{launch_error}\n")
        finally:
            hold.release()
            if self.live is not None:
                self.live.hold_agent = None  # the step's process is gone
            await guard.stop()
            await live.close()
        transcript.finish(result.exit_status if result else None)
        await run.add_file(f"logs/steps/step-{step.index}.log", log_path)
        current = await run.git.snapshot(run.workspace.repo)
        diff = await run.git.diff(run.workspace.repo, previous, current)
        redacted_patch = run.redactor.redact(diff.patch)
        patch_path = artifacts / "patches" / "steps" / f"step-{step.index}.patch"
        patch_path.parent.mkdir(parents=True, exist_ok=True)
        patch_path.write_text(redacted_patch)
        await run.add_file(f"patches/steps/step-{step.index}.patch", patch_path)
        transcript.end(redacted_patch, diff.numstat, usage)
        await run.add_file(f"transcript/step-{step.index}.jsonl", transcript.path)
        await transcript.send(run.tools.output, run.job.id)
        # The CLI reports its result at its end: from the tail when the log was cut.
        text = live.tail if live.cut else log_path.read_text(errors="replace")
        failure = seen[0] if seen else None
        if failure is None and result is not None and result.stopped is None and mode in CLIS:
            failure = classify(mode, result.exit_status, run.redactor.redact(text))
        if guard.breach is not None and result is not None:
            # Past a sandbox limit: stopped by the guard, or cut by the kernel at it.
            failure = Failure(guard.breach.code, f"stopped: {guard.breach.message}",
                              retryable=False)  # fmt: skip
        refused = transcript.refused_edits
        ended = result is not None and result.stopped is None and result.exit_status == 0
        if failure is None and refused and not diff.files and ended:
            # The CLI kept the agent from writing (a read-only sandbox, a permission mode) and
            # exited 0: nothing was done, which is no success.
            failure = Failure("edits_refused", "the agent's edits were refused by its CLI ("
                              f"{'; '.join(refused[:3])}) and nothing changed: give the step "
                              "an edit mode", retryable=False)  # fmt: skip
        outcome, error = _outcome(result, step, len(self.plan), live.tail[-4000:], failure)
        if result is None:
            error = {"code": "cli_missing", "message": launch_error, "step": step.step_id}
        self._note_evidence(step, mode, prompt, result if failure is None else None)
        if mode in CLIS:
            keep_session(Path(run.tools.settings.data_dir), run.job.id, mode, run.workspace,
                         turn.before if mode == "codex" else None)  # fmt: skip
        finished = JobStepFinished(
            epoch=held.epoch, index=step.index, step_id=step.step_id, outcome=outcome,
            exit_status=result.exit_status if result else None,
            duration_ms=int(spent_s * 1000), files=diff.files,
            insertions=diff.insertions, deletions=diff.deletions, usage=usage, error=error,
            message=final_message(mode, run.redactor.redact(text)),
            session_id=transcript.session_id, refused_edits=refused[:20],
            transcript_entries=len(transcript.entries),
        )  # fmt: skip
        await held.write(lambda job: [finished])
        if outcome == "cancelled":
            raise Cancelled({"stage": "execute", "step": step.step_id, "index": step.index})
        if error is not None:
            retryable = failure.retryable if failure else result is not None
            raise StageFailed("execute", error, retryable=retryable,
                              retry_after_s=failure.retry_after_s if failure else None)
        return current

    def _invocation(self, runtime: ResolvedRuntime, step: PlannedStep, turn: Turn) -> Invocation:
        try:
            return build_invocation(runtime, turn.prompt, self.run.execution, resume=turn.resume)
        except CairnError as e:
            refused = {"code": e.code, "message": e.message, "step": step.step_id}
            raise StageFailed("execute", refused, retryable=False) from e

    async def _continuation(self, step: PlannedStep, mode: str, prompt: str
                            ) -> Continuation | None:  # fmt: skip
        """A follow-up's first step goes on from the job it follows."""
        run = self.run
        followed = run.job.follows
        if followed is None or step.index != 1 or mode not in CLIS or run.workspace is None:
            return None
        try:
            publish = (await load_job(run.held.store, followed)).publish or {}
        except CairnError:
            publish = {}
        return continue_from(
            Path(run.tools.settings.data_dir), run.tools.artifacts, run.workspace,
            followed=followed, session=run.job.resume_session, runtime=mode, prompt=prompt,
            message=str(run.task.get("instructions") or ""),
            # Pushed, or nothing new to push: the branch this run starts from has that work.
            published=publish.get("outcome") in (*PUSHED, "NO_CHANGES"),
        )  # fmt: skip

    def _agent(self, mode: str) -> dict[str, Any] | None:
        """The agent as the step's event records it: CLI, version, how it signed in."""
        found = self.run.tools.agents.get(mode)
        if found is None:
            return None
        return {"cli": found.cli.binary, "version": found.version,
                "signin": found.signin.kind or "none"}  # fmt: skip

    def _missing_cli(self, mode: str, reason: str) -> str:
        cli = CLIS.get(mode)
        if cli is None:
            return reason
        return (f"the {mode} CLI is not installed on this worker ({reason}): install "
                f"{cli.spec} with `cairn agents install {mode}`, or run the job on a worker "
                "that has it")  # fmt: skip

    def _codex_model(self, mode: str) -> str | None:
        """The model codex runs when none is asked for: the job's config.toml's."""
        if mode != "codex" or self.run.workspace is None:
            return None
        config = self.run.workspace.home / ".codex" / "config.toml"
        return codex_model(config.read_text()) if config.is_file() else None

    def _note_evidence(self, step: PlannedStep, mode: str, command: str,
                       result: ProcessResult | None) -> None:  # fmt: skip
        if result is None or result.exit_status is None:
            return
        if mode == "shell":
            found = step_evidence(command, exit_status=result.exit_status, step_id=step.step_id)
        elif any(word in f"{step.step_id} {step.title or ''}".lower() for word in VERIFY_WORDS):
            # An agent's verification step: it tested or linted, and Cairn has its status.
            found = Evidence(kind="agent_step", command=f"{step.step_id}: {step.title or ''}",
                             exit_status=result.exit_status, step_id=step.step_id)  # fmt: skip
        else:
            found = None
        if found is not None:
            self.evidence.append(found)

    async def _changes(self, base: str, final: str) -> None:
        run = self.run
        assert run.workspace is not None and run.git is not None
        diff = await run.git.diff(run.workspace.repo, base, final)
        self.changed_paths = diff.paths
        self.diffstat = f"{diff.files} file(s) changed, +{diff.insertions} -{diff.deletions}"
        path = run.workspace.artifacts / "changes.patch"
        path.write_text(run.redactor.redact(diff.patch))
        await run.add_file("changes.patch", path)


def _outcome(result: ProcessResult | None, step: PlannedStep, count: int, tail: str,
             failure: Failure | None = None) -> tuple[str, dict[str, Any] | None]:  # fmt: skip
    """The step's outcome and, when it failed, the error for the job's outcome."""
    where = f"step {step.index}/{count} ({step.step_id})"
    if result is None:
        return "failed", None
    if failure is not None:  # the CLI's own result (or what it printed) says what went wrong
        return "failed", {"code": failure.code, "step": step.step_id, "index": step.index,
                          "exit_status": result.exit_status,
                          "message": f"{where}: {failure.message}",
                          "retry": "retried" if failure.retryable else "not retried",
                          "log_tail": tail[-2000:]}  # fmt: skip
    if result.stopped == "cancelled":
        return "cancelled", None
    if result.stopped is not None:
        limit = LIMITS[result.stopped]
        after = f"{result.limit_s:g}s" if result.limit_s is not None else "its limit"
        message = f"{where} hit {limit} after {after}"
        return "timed_out", {"code": result.stopped, "message": message, "step": step.step_id,
                             "log_tail": tail[-2000:]}  # fmt: skip
    if result.exit_status != 0:
        return "failed", {"code": "step_failed", "step": step.step_id, "index": step.index,
                          "exit_status": result.exit_status,
                          "message": f"{where} exited with status {result.exit_status}",
                          "log_tail": tail[-2000:]}  # fmt: skip
    return "succeeded", None
