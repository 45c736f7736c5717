"""Pipelines: the steps a board task's run goes through, by the task's type. A run of a task
whose spec names no steps takes the pipeline of its `pipeline_template`, else of its
`task_type`; each step is one runtime invocation in the execute stage.

The last step of a pipeline prepares the change for publishing (a commit message in
`.cairn/commit_message.txt`); the commit itself is Cairn's, in the publish stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cairn.domain.errors import ValidationFailed


@dataclass(frozen=True, slots=True)
class PipelineStep:
    id: str
    title: str
    instructions: str

    def as_payload(self) -> dict[str, str]:
        """The step as the job contract's `task.steps[]` entry."""
        return {"id": self.id, "title": self.title, "instructions": self.instructions}


COMMIT_MESSAGE_FILE = ".cairn/commit_message.txt"


def _step(step_id: str, title: str, instructions: str) -> PipelineStep:
    return PipelineStep(step_id, title, instructions)


PLAN = _step("plan", "Plan", "Read the relevant code and write a short plan of the change "
             "(what to change, where, and how to verify it) to .cairn/plan.md. Change no code.")
PLAN_IMPL = _step("plan_impl", "Plan the implementation", "Turn .cairn/plan.md into an ordered "
                  "list of concrete edits and the tests that prove them; update .cairn/plan.md.")
IMPLEMENT = _step("implement", "Implement", "Make the change the plan describes, with tests.")
VERIFY = _step("verify", "Verify", "Run the project's tests and linters; fix what fails. Report "
               "the exact commands you ran and their results.")
REVIEW = _step("review", "Review", "Review the whole diff as a strict reviewer would: "
               "correctness, edge cases, naming, tests that would catch a regression. Fix what "
               "you find.")
COMMIT = _step("commit", "Prepare the commit", "Write a commit message for the whole change "
               f"to {COMMIT_MESSAGE_FILE}: a first line under 72 characters, a blank line, then "
               "why. Do not run git commit or git push: publishing is Cairn's.")
REPRODUCE = _step("reproduce", "Reproduce", "Reproduce the bug with a failing test; note the "
                  "cause in .cairn/plan.md.")
FIX = _step("fix", "Fix", "Fix the cause so the new test passes, without weakening other tests.")
RESEARCH = _step("research", "Research", "Investigate the question and write findings, with "
                 "sources and file references, to .cairn/research.md. Change no code.")
DOCS = _step("write_docs", "Write the documentation", "Write or update the documentation the "
             "task asks for; keep examples runnable.")
TESTS = _step("write_tests", "Write the tests", "Write the tests the task asks for; each must "
              "fail without the behaviour it checks.")
CHORE = _step("do_chore", "Do the chore", "Make the change the task asks for, keeping behaviour "
              "the same unless it says otherwise.")
REFACTOR = _step("refactor", "Refactor", "Restructure the code as the task asks without "
                 "changing behaviour; keep every test passing.")

PIPELINES: Mapping[str, tuple[PipelineStep, ...]] = {
    "feature": (PLAN, PLAN_IMPL, IMPLEMENT, VERIFY, REVIEW, COMMIT),
    "bug_fix": (REPRODUCE, FIX, VERIFY, REVIEW, COMMIT),
    "hotfix": (FIX, VERIFY, COMMIT),
    "chore": (CHORE, VERIFY, COMMIT),
    "refactor": (PLAN, REFACTOR, VERIFY, REVIEW, COMMIT),
    "docs": (DOCS, REVIEW, COMMIT),
    "test": (TESTS, VERIFY, COMMIT),
    "research": (RESEARCH,),
}


def pipeline_for(task_type: str, template: str | None = None) -> tuple[PipelineStep, ...]:
    """The steps of a run: the pipeline named by `template` if given, else the task type's."""
    name = template or task_type
    if name not in PIPELINES:
        reason = f"unknown pipeline {name!r}; known: {', '.join(sorted(PIPELINES))}"
        raise ValidationFailed(reason, [{"path": "pipeline_template", "reason": reason}])
    return PIPELINES[name]
