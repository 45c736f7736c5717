"""Skills: found by name, copied once per content into a read-only cache, linked where each
agent CLI looks, and never committed."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from cairn.worker.skills import SkillNotFound, find_skill, materialize_skills, skill_digest
from cairn.worker.workspace import Workspace, make_workspace
from tests.worker.conftest import run_git

JOB = "job-03-01jd5x2k7qabcdefgh12345678"


def skill(root: Path, name: str, text: str = "# Skill\n") -> Path:
    folder = root / name
    (folder / "scripts").mkdir(parents=True)
    (folder / "SKILL.md").write_text(text)
    (folder / "scripts" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (folder / "scripts" / "run.sh").chmod(0o755)
    return folder


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    workspace = make_workspace(tmp_path / "data", JOB, 1)
    run_git("init", "-q", str(workspace.repo))
    return workspace


def test_find_skill_takes_the_first_folder_that_has_it(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    (first / "lint").mkdir(parents=True)  # no SKILL.md: not a skill
    found = skill(second, "lint")

    assert find_skill("lint", [first, second]) == found


@pytest.mark.parametrize("name", ["missing", "../b/lint", "", ".."])
def test_an_unknown_skill_names_itself_and_where_it_was_looked_for(
    tmp_path: Path, name: str
) -> None:
    skill(tmp_path / "b", "lint")
    dirs = [tmp_path / "a", tmp_path / "b"]

    with pytest.raises(SkillNotFound) as caught:
        find_skill(name, dirs)

    assert caught.value.name == name and caught.value.looked_in == dirs
    message = str(caught.value)
    assert f"skill '{name}' not found" in message
    assert str(tmp_path / "a") in message and str(tmp_path / "b") in message


def test_no_skills_folders_says_which_setting_to_set() -> None:
    with pytest.raises(SkillNotFound, match="CAIRN_SKILLS_DIRS is empty"):
        find_skill("lint", [])


def test_materialized_skills_are_read_only_copies_linked_for_every_agent(
    tmp_path: Path, workspace: Workspace
) -> None:
    source = skill(tmp_path / "skills", "lint", "# Lint\n")
    cache = tmp_path / "cache"

    [ref] = materialize_skills(["lint", "lint"], [tmp_path / "skills"], cache, workspace)

    assert (ref.name, ref.sha256) == ("lint", skill_digest(source))
    assert ref.path == cache / ref.sha256 / "lint"
    assert mode(ref.path / "SKILL.md") == 0o444
    assert mode(ref.path / "scripts" / "run.sh") == 0o555
    assert mode(ref.path) == mode(ref.path / "scripts") == mode(ref.path.parent) == 0o555
    assert (workspace.skills_active / "lint").resolve() == ref.path
    for place in (".agents/skills", ".claude/skills", ".gemini/skills"):
        assert (workspace.repo / place / "lint" / "SKILL.md").read_text() == "# Lint\n"
        assert not (workspace.repo / place).readlink().is_absolute()
    # Never committed: the links are excluded, so the checkout looks untouched.
    assert run_git("status", "--porcelain", "--untracked-files=all", cwd=workspace.repo) == ""
    exclude = (workspace.repo / ".git" / "info" / "exclude").read_text().splitlines()
    assert {"/.agents/skills", "/.claude/skills", "/.gemini/skills"} <= set(exclude)


def test_the_cache_is_shared_by_content(tmp_path: Path, workspace: Workspace) -> None:
    skill(tmp_path / "skills", "lint")
    cache = tmp_path / "cache"
    [first] = materialize_skills(["lint"], [tmp_path / "skills"], cache, workspace)
    other = make_workspace(tmp_path / "data", "job-03-other0000000000000000", 1)
    run_git("init", "-q", str(other.repo))

    [again] = materialize_skills(["lint"], [tmp_path / "skills"], cache, other)
    assert again == first and len(list(cache.iterdir())) == 1

    (tmp_path / "skills" / "lint" / "SKILL.md").chmod(0o644)
    (tmp_path / "skills" / "lint" / "SKILL.md").write_text("# Lint, changed\n")
    [changed] = materialize_skills(["lint"], [tmp_path / "skills"], cache, other)
    assert changed.sha256 != first.sha256
    assert (first.path / "SKILL.md").read_text() == "# Skill\n"  # the old copy is untouched
    assert (
        (other.repo / ".claude" / "skills" / "lint" / "SKILL.md").read_text().endswith("changed\n")
    )
    exclude = (other.repo / ".git" / "info" / "exclude").read_text().splitlines()
    assert exclude.count("/.claude/skills") == 1


def test_skills_the_repository_keeps_itself_stay_and_ours_go_beside_them(
    tmp_path: Path, workspace: Workspace
) -> None:
    skill(tmp_path / "skills", "lint")
    own = workspace.repo / ".claude" / "skills" / "house-style"
    own.mkdir(parents=True)
    (own / "SKILL.md").write_text("# House style\n")
    run_git("add", "-A", cwd=workspace.repo)
    run_git("-c", "user.name=a", "-c", "user.email=a@x", "commit", "-qm", "own", cwd=workspace.repo)

    materialize_skills(["lint"], [tmp_path / "skills"], tmp_path / "cache", workspace)

    claude = workspace.repo / ".claude" / "skills"
    assert not claude.is_symlink() and (claude / "house-style" / "SKILL.md").exists()
    assert (claude / "lint" / "SKILL.md").exists()
    assert run_git("status", "--porcelain", "--untracked-files=all", cwd=workspace.repo) == ""


def test_an_unknown_skill_fails_before_anything_is_linked(
    tmp_path: Path, workspace: Workspace
) -> None:
    skill(tmp_path / "skills", "lint")

    with pytest.raises(SkillNotFound):
        materialize_skills(["lint", "nope"], [tmp_path / "skills"], tmp_path / "cache", workspace)

    assert not any(workspace.skills_active.iterdir())
    assert not (workspace.repo / ".claude").exists()


def test_two_skills_with_the_same_files_each_get_their_copy(
    tmp_path: Path, workspace: Workspace
) -> None:
    skill(tmp_path / "skills", "lint")
    skill(tmp_path / "skills", "lint-copy")

    refs = materialize_skills(
        ["lint", "lint-copy"], [tmp_path / "skills"], tmp_path / "cache", workspace
    )

    assert [ref.path.name for ref in refs] == ["lint", "lint-copy"]
    assert all((ref.path / "SKILL.md").exists() for ref in refs)
