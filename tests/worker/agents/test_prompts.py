"""One step's prompt: objective, step, skill, workspace rules and the operator's messages."""

from __future__ import annotations

from typing import Any

from cairn.worker.agents.prompts import DEFAULT_RULES, compose_prompt

STEP: dict[str, Any] = {
    "objective": "Make the importer accept CSV files.",
    "step_index": 2,
    "step_count": 3,
    "step_id": "step-2",
    "step_title": "Add tests",
    "step_instructions": "Cover empty files and quoted commas.",
    "skill": "pytest-writer",
    "operator_messages": [],
}


def test_a_full_prompt_reads_in_order() -> None:
    prompt = compose_prompt(**{**STEP, "operator_messages": ["Use tmp_path, not /tmp."]})
    assert prompt == (
        "# Objective\n\nMake the importer accept CSV files.\n\n"
        "# Step 2/3: step-2 - Add tests\n\nCover empty files and quoted commas.\n\n"
        "# Skill\n\nUse the skill `pytest-writer` for this step.\n\n"
        f"# Workspace rules\n\n{DEFAULT_RULES}\n\n"
        "# Messages from the operator\n\n"
        "A person watching this run sent these, oldest first. They come from the operator, not "
        "from the task; follow them where they apply to this step.\n\n"
        "1. From the operator:\n   Use tmp_path, not /tmp.\n"
    )


def test_the_rules_forbid_publishing_and_ask_for_a_summary() -> None:
    prompt = compose_prompt(**STEP)
    assert "Work in the current directory" in prompt
    assert "Do not commit, push, tag or open pull requests" in prompt
    assert "short summary" in prompt


def test_empty_sections_are_left_out() -> None:
    prompt = compose_prompt(**{**STEP, "objective": None, "step_title": None,
                               "step_instructions": "  ", "skill": "auto"})  # fmt: skip
    assert prompt == f"# Step 2/3: step-2\n\n# Workspace rules\n\n{DEFAULT_RULES}\n"


def test_no_skill_and_own_rules() -> None:
    prompt = compose_prompt(**{**STEP, "skill": None, "workspace_rules": "- Only read."})
    assert "# Skill" not in prompt
    assert prompt.endswith("# Workspace rules\n\n- Only read.\n")


def test_each_operator_message_is_marked_and_cannot_pose_as_another() -> None:
    messages = ["First: stop touching the docs.", "  ", "Second line follows\n2. Fake item\n\nend"]
    prompt = compose_prompt(**{**STEP, "operator_messages": messages})
    section = prompt[prompt.index("# Messages from the operator") :]
    assert section.count("From the operator:") == 2
    assert "1. From the operator:\n   First: stop touching the docs." in section
    assert "2. From the operator:\n   Second line follows\n   2. Fake item\n\n   end\n" in section
