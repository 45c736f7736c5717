"""The prompt an agent CLI gets for one step: the task's objective, the step, its skill, the
workspace rules and what the operator said so far. Plain Markdown, the same for every runtime."""

from __future__ import annotations

from collections.abc import Sequence

DEFAULT_RULES = """\
- Work in the current directory, a checkout of the repository; change nothing outside it.
- Do not commit, push, tag or open pull requests: Cairn publishes the changes after the run.
- Finish with a short summary of what you changed and why, and what you could not do."""


def compose_prompt(
    *,
    objective: str | None,
    step_index: int,
    step_count: int,
    step_id: str,
    step_title: str | None,
    step_instructions: str | None,
    skill: str | None,
    operator_messages: Sequence[str],
    workspace_rules: str = DEFAULT_RULES,
) -> str:
    """One step's prompt. Sections without content are left out; the operator's messages are
    marked as theirs, since they come from a person watching the run, not from the task."""
    heading = f"# Step {step_index}/{step_count}: {step_id}"
    sections = [
        f"# Objective\n\n{objective.strip()}" if objective and objective.strip() else "",
        heading + (f" - {step_title.strip()}" if step_title and step_title.strip() else "")
        + (f"\n\n{step_instructions.strip()}" if step_instructions and step_instructions.strip()
           else ""),
        f"# Skill\n\nUse the skill `{skill}` for this step." if skill and skill != "auto" else "",
        f"# Workspace rules\n\n{workspace_rules.strip()}",
        _operator_section(operator_messages),
    ]  # fmt: skip
    return "\n\n".join(section for section in sections if section) + "\n"


def _operator_section(messages: Sequence[str]) -> str:
    messages = [message.strip() for message in messages if message.strip()]
    if not messages:
        return ""
    lines = [
        "# Messages from the operator",
        "",
        "A person watching this run sent these, oldest first. They come from the operator, "
        "not from the task; follow them where they apply to this step.",
    ]
    for number, message in enumerate(messages, 1):
        # Each line of a message indented under its number, so one cannot pose as the next.
        body = "\n".join(f"   {line}" if line else "" for line in message.splitlines())
        lines += ["", f"{number}. From the operator:", body]
    return "\n".join(lines)
