"""Table of payloads for every rule of the job contract: accepted with their normalized view and
capabilities, or refused with the exact error paths and what the reason must say."""

from __future__ import annotations

import re
from typing import Any, get_args

import pytest

from cairn.domain.credentials import find_credentials, redact_credentials
from cairn.domain.errors import ValidationFailed
from cairn.domain.jobs.contract import ResolvedRuntime, WorkerDefaults, resolve_runtime
from cairn.domain.jobs.kinds import ContractSettings, NormalizedJob
from cairn.domain.jobs.publishing import SKIP_CATEGORIES, SkipCategory
from cairn.domain.jobs.registry import normalize_job
from cairn.domain.jobs.repositories import check_repository

DEFAULTS = ContractSettings()
LOCAL = ContractSettings(allow_local_repositories=True)
SKIP = {"category": "docs_only", "reason": "Only the README changed", "ticket": "OPS-12"}
GITHUB_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0" * 2
SECRETS = {
    "github": GITHUB_TOKEN,
    "github_pat": "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "gitlab": "glpat-abcdefghij0123456789",
    "openai": "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
    "anthropic": "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "slack": "xoxb-1234567890-abcdefghij",
    "pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
    "basic_auth": "https://deploy:hunter2@github.com/octo/repo",
    "token_url": "https://x-token-123@github.com/octo/repo",
}


def task(repository: str | None = "octo/repo", **fields: Any) -> dict[str, Any]:
    """A task payload whose `task` holds `fields` (instructions given unless overridden)."""
    payload: dict[str, Any] = {"task": {"instructions": "Fix the flaky test", **fields}}
    if repository is not None:
        payload["repository"] = repository
    return payload


def top(payload: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**payload, **fields}


def lookup(view: Any, path: str) -> Any:
    """Follow a dotted path with `[i]` indexes through the normalized view."""
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        view = view[int(part[1:-1])] if part.startswith("[") else view[part]
    return view


def accepted(
    case_id: str,
    payload: Any,
    fields: dict[str, Any],
    capabilities: list[str],
    *,
    job_type: str = "task",
    settings: ContractSettings = DEFAULTS,
) -> Any:
    return pytest.param(job_type, payload, settings, fields, capabilities, id=case_id)


def refused(
    case_id: str,
    payload: Any,
    paths: list[str],
    reason: str,
    *,
    job_type: str = "task",
    settings: ContractSettings = DEFAULTS,
    secret: str | None = None,
) -> Any:
    return pytest.param(job_type, payload, settings, paths, reason, secret, id=case_id)


CODEX_PR = ["codex", "git", "gh"]

ACCEPTED = [
    accepted("repo-owner-slash-repo", task(), {"repository": "octo/repo"}, CODEX_PR),
    accepted(
        "repo-https-url",
        task("https://github.com/octo/repo.git"),
        {"repository": "https://github.com/octo/repo.git"},
        CODEX_PR,
    ),
    accepted(
        "repo-scp-like",
        task("git@gitlab.example.com:group/sub/repo.git"),
        {"repository": "git@gitlab.example.com:group/sub/repo.git"},
        CODEX_PR,
    ),
    accepted(
        "defaults-filled",
        task(),
        {
            "targetRuntime": "codex",
            "task.publish.mode": "pr",
            "task.skill": {"id": "auto", "args": {}, "requiredCapabilities": []},
            "task.runtime": {"mode": None, "model": None, "effort": None},
            "task.steps": [],
            "task.proposeTasks": False,
            "task.container": None,
            "auth": {"repoAuthRef": None, "publishAuthRef": None},
        },
        CODEX_PR,
    ),
    accepted(
        "gemini-cli-alias",
        top(task(), targetRuntime="gemini_cli"),
        {"targetRuntime": "gemini"},
        ["gemini", "git", "gh"],
    ),
    accepted(
        "claude-publish-none-no-gh",
        top(task(publish={"mode": "none"}), targetRuntime="claude"),
        {"task.publish.mode": "none"},
        ["claude", "git"],
    ),
    accepted("publish-branch-no-gh", task(publish={"mode": "branch"}), {}, ["codex", "git"]),
    accepted(
        "capabilities-order-dedup-lowercase",
        top(
            task(
                skill={"id": "auto", "requiredCapabilities": ["Node", "gpu"]},
                steps=[
                    {"title": "a", "skill": {"id": "lint", "requiredCapabilities": ["python"]}},
                    {"title": "b", "skill": {"id": "test", "requiredCapabilities": ["NODE"]}},
                ],
            ),
            requiredCapabilities=["GPU", "git", "Codex"],
        ),
        {"requiredCapabilities": ["gpu", "git", "codex"]},
        ["gpu", "git", "codex", "gh", "node", "python"],
    ),
    accepted(
        "universal-is-its-own-capability",
        top(task(), targetRuntime="universal"),
        {"targetRuntime": "universal"},
        ["universal", "git", "gh"],
    ),
    accepted(
        "runtime-mode-beats-universal",
        top(
            task(runtime={"mode": "claude", "model": "opus", "effort": "high"}),
            targetRuntime="universal",
        ),
        {
            "targetRuntime": "universal",
            "task.runtime": {"mode": "claude", "model": "opus", "effort": "high"},
        },
        ["claude", "git", "gh"],
    ),
    accepted(
        "runtime-mode-fills-target-runtime",
        task(runtime={"mode": "gemini_cli"}),
        {"targetRuntime": "gemini", "task.runtime.mode": "gemini"},
        ["gemini", "git", "gh"],
    ),
    accepted(
        "container-enabled-adds-docker",
        task(
            container={
                "enabled": True,
                "image": "python:3.12",
                "command": ["pytest", "-q"],
                "env": {"PYTHONHASHSEED": "0"},
                "timeoutSeconds": 600,
            }
        ),
        {"task.container.image": "python:3.12", "task.container.timeoutSeconds": 600},
        ["codex", "git", "gh", "docker"],
    ),
    accepted(
        "container-disabled-allows-steps",
        task(container={"enabled": False}, steps=[{"title": "one"}]),
        {"task.container.enabled": False},
        CODEX_PR,
    ),
    accepted(
        "steps-renumbered",
        task(steps=[{"id": "zeta", "title": "a"}, {"title": "b"}, {"id": "step-9", "title": "c"}]),
        {"task.steps[0].id": "step-1", "task.steps[1].id": "step-2", "task.steps[2].id": "step-3"},
        CODEX_PR,
    ),
    accepted(
        "explicit-task-skill-needs-no-instructions",
        task(instructions=None, skill={"id": "triage", "args": {"label": "bug"}}),
        {"task.instructions": None, "task.skill.id": "triage", "task.skill.args": {"label": "bug"}},
        CODEX_PR,
    ),
    accepted(
        "explicit-first-step-skill-needs-no-instructions",
        task(instructions="  ", steps=[{"skill": {"id": "upgrade-deps"}}, {"title": "then"}]),
        {"task.instructions": None, "task.steps[0].skill.id": "upgrade-deps"},
        CODEX_PR,
    ),
    accepted(
        "git-branches-trimmed-blank-unset",
        task(git={"startingBranch": "  main ", "newBranch": "   "}),
        {"task.git": {"startingBranch": "main", "newBranch": None}},
        CODEX_PR,
    ),
    accepted(
        "publish-default-from-settings",
        task(),
        {"task.publish.mode": "branch"},
        ["codex", "git"],
        settings=ContractSettings(default_publish_mode="branch"),
    ),
    accepted(
        "default-repository",
        task(repository=None),
        {"repository": "octo/default"},
        CODEX_PR,
        settings=ContractSettings(default_repository="octo/default"),
    ),
    accepted(
        "auth-references",
        top(
            task(),
            auth={
                "repoAuthRef": "env://GITHUB_TOKEN",
                "publishAuthRef": "vault://kv/ci/github#token",
            },
        ),
        {
            "auth": {
                "repoAuthRef": "env://GITHUB_TOKEN",
                "publishAuthRef": "vault://kv/ci/github#token",
            }
        },
        CODEX_PR,
    ),
    accepted(
        "auth-file-reference",
        top(task(), auth={"repo_auth_ref": "file:///run/secrets/github"}),
        {"auth.repoAuthRef": "file:///run/secrets/github"},
        CODEX_PR,
    ),
    accepted(
        "snake-case-input",
        {
            "repository": "octo/repo",
            "target_runtime": "claude",
            "required_capabilities": ["GPU"],
            "task": {
                "instructions": "x",
                "propose_tasks": True,
                "git": {"starting_branch": "dev", "new_branch": "fix/x"},
                "publish": {"mode": "pr", "pr_base_branch": "dev", "pr_title": "Fix"},
            },
        },
        {
            "targetRuntime": "claude",
            "task.proposeTasks": True,
            "task.git": {"startingBranch": "dev", "newBranch": "fix/x"},
            "task.publish.prBaseBranch": "dev",
            "task.publish.prTitle": "Fix",
        },
        ["gpu", "claude", "git", "gh"],
    ),
    accepted(
        "near-misses-are-not-credentials",
        task(
            instructions="Pin sk-learn, rename task-identifier-for-the-scheduler, drop ghp_ "
            "checks; mail ops@example.com about https://example.com/a@b and git@github.com:o/r"
        ),
        {},
        CODEX_PR,
    ),
    accepted(
        "legacy-codex-exec",
        {
            "repository": "octo/repo",
            "instruction": "Bump the version",
            "codex": {"model": "gpt-5-codex", "effort": "high"},
            "ref": "release",
            "publishMode": "branch",
        },
        {
            "targetRuntime": "codex",
            "task.instructions": "Bump the version",
            "task.runtime": {"mode": None, "model": "gpt-5-codex", "effort": "high"},
            "task.git.startingBranch": "release",
            "task.publish.mode": "branch",
        },
        ["codex", "git"],
        job_type="codex_exec",
    ),
    accepted(
        "legacy-codex-skill-inputs",
        {
            "skillId": "triage",
            "inputs": {"repo": "octo/from-inputs", "publishMode": "none", "n": 3},
        },
        {
            "repository": "octo/from-inputs",
            "task.skill.id": "triage",
            "task.skill.args": {"repo": "octo/from-inputs", "publishMode": "none", "n": 3},
            "task.publish.mode": "none",
            "task.instructions": None,
        },
        ["codex", "git"],
        job_type="codex_skill",
    ),
    accepted(
        "legacy-publish-mode-from-publish-object",
        {"repository": "octo/repo", "instruction": "x", "publish": {"mode": "branch"}},
        {"task.publish.mode": "branch"},
        ["codex", "git"],
        job_type="codex_exec",
    ),
    accepted(
        "legacy-publish-mode-first-found",
        {
            "skillId": "s",
            "repository": "octo/top",
            "publishMode": "none",
            "inputs": {"repo": "octo/ignored", "publishMode": "pr"},
            "publish": {"mode": "branch"},
        },
        {"repository": "octo/top", "task.publish.mode": "none"},
        ["codex", "git"],
        job_type="codex_skill",
    ),
    accepted(
        "legacy-publish-default",
        {"repository": "octo/repo", "instruction": "x"},
        {"task.publish.mode": "pr"},
        CODEX_PR,
        job_type="codex_exec",
    ),
    accepted(
        "manifest-yaml-text",
        {"manifest": "name: docs\nversion: '2'\nsources:\n  - uri: https://example.com/a.md\n"},
        {
            "manifest.name": "docs",
            "manifest.version": "2",
            "manifest.sources[0].uri": "https://example.com/a.md",
        },
        ["manifest"],
        job_type="manifest",
    ),
    accepted(
        "manifest-object",
        {
            "manifest": {
                "name": "data",
                "version": 3,
                "sources": [{"path": "data/"}],
                "options": {"k": [1]},
            }
        },
        {
            "manifest.version": 3,
            "manifest.sources[0].path": "data/",
            "manifest.options": {"k": [1]},
        },
        ["manifest"],
        job_type="manifest",
    ),
    accepted(
        "repo-local-path-when-allowed",
        task("/srv/git/repo.git"),
        {"repository": "/srv/git/repo.git"},
        CODEX_PR,
        settings=LOCAL,
    ),
    accepted(
        "repo-file-url-when-allowed",
        task("file:///srv/git/repo.git"),
        {"repository": "file:///srv/git/repo.git"},
        CODEX_PR,
        settings=LOCAL,
    ),
    accepted(
        "publish-base-branch-alias",
        task(publish={"baseBranch": " dev "}),
        {"task.publish.prBaseBranch": "dev"},
        CODEX_PR,
    ),
    accepted(
        "publish-base-branch-alias-equal-to-pr-base",
        task(publish={"base_branch": "dev", "prBaseBranch": "dev"}),
        {"task.publish.prBaseBranch": "dev"},
        CODEX_PR,
    ),
    accepted(
        "verification-skip-reason",
        task(publish={"verificationSkipReason": SKIP}),
        {"task.publish.verificationSkipReason": SKIP},
        CODEX_PR,
    ),
    accepted(
        "verification-skip-reason-without-ticket",
        task(publish={"verification_skip_reason": {"category": "other", "reason": " why "}}),
        {
            "task.publish.verificationSkipReason": {
                "category": "other",
                "reason": "why",
                "ticket": None,
            }
        },
        CODEX_PR,
    ),
    accepted(
        "verification-skip-reason-unset",
        task(),
        {"task.publish.verificationSkipReason": None},
        CODEX_PR,
    ),
    accepted(
        "legacy-exec-publish-skip-reason-and-base",
        {
            "repository": "octo/repo",
            "instruction": "x",
            "publish": {"baseBranch": "dev", "verificationSkipReason": SKIP},
        },
        {"task.publish.prBaseBranch": "dev", "task.publish.verificationSkipReason": SKIP},
        CODEX_PR,
        job_type="codex_exec",
    ),
    accepted(
        "legacy-skill-publish-skip-reason",
        {"skillId": "s", "repository": "o/r", "publish": {"verificationSkipReason": SKIP}},
        {"task.publish.verificationSkipReason": SKIP},
        CODEX_PR,
        job_type="codex_skill",
    ),
    accepted(
        "legacy-skill-inputs-instruction-becomes-instructions",
        {"skillId": "triage", "inputs": {"repo": "o/r", "instruction": "Label the new issues"}},
        {
            "task.instructions": "Label the new issues",
            "task.skill.args": {"repo": "o/r", "instruction": "Label the new issues"},
        },
        CODEX_PR,
        job_type="codex_skill",
    ),
    accepted(
        "legacy-top-level-instruction-beats-inputs",
        {
            "skillId": "s",
            "repository": "o/r",
            "instruction": "top",
            "inputs": {"instruction": "in"},
        },
        {"task.instructions": "top"},
        CODEX_PR,
        job_type="codex_skill",
    ),
    accepted(
        "legacy-local-repository-when-allowed",
        {"repository": "/srv/git/repo.git", "instruction": "x"},
        {"repository": "/srv/git/repo.git"},
        CODEX_PR,
        job_type="codex_exec",
        settings=LOCAL,
    ),
]


def at(path: str) -> str:
    return f"payload.{path}"


REFUSED = [
    refused("repo-free-text", task("my repo"), [at("repository")], "owner/repo"),
    refused(
        "repo-http-not-https", task("http://github.com/octo/repo"), [at("repository")], "https://"
    ),
    refused(
        "repo-ssh-scheme", task("ssh://github.com/octo/repo"), [at("repository")], "git@host:path"
    ),
    refused(
        "repo-https-without-path", task("https://github.com"), [at("repository")], "owner/repo"
    ),
    refused("repo-dot-segments", task("../etc"), [at("repository")], "owner/repo"),
    refused("repo-missing-no-default", task(repository=None), [at("repository")], "required"),
    refused(
        "unknown-runtime", top(task(), targetRuntime="cursor"), [at("targetRuntime")], "'claude'"
    ),
    refused(
        "instructions-missing-auto-skill",
        task(instructions=None),
        [at("task.instructions")],
        "required",
    ),
    refused(
        "instructions-missing-skill-only-on-second-step",
        task(instructions="", steps=[{"title": "a"}, {"skill": {"id": "lint"}}]),
        [at("task.instructions")],
        "first step",
    ),
    refused(
        "step-runtime-and-model",
        task(steps=[{"title": "a", "runtime": {"mode": "claude"}, "model": "opus"}]),
        [at("task.steps[0].runtime"), at("task.steps[0].model")],
        "on the task",
    ),
    refused(
        "step-target-runtime-effort-repository",
        task(
            steps=[{"title": "a"}, {"targetRuntime": "codex", "effort": "low", "repository": "o/r"}]
        ),
        [
            at("task.steps[1].targetRuntime"),
            at("task.steps[1].effort"),
            at("task.steps[1].repository"),
        ],
        "never on a step",
    ),
    refused(
        "step-repo-git-publish-container",
        task(steps=[{"repo": "o/r", "git": {}, "publish": {}, "container": {}}]),
        [at(f"task.steps[0].{key}") for key in ("repo", "git", "publish", "container")],
        "container is set once on the task",
    ),
    refused(
        "container-missing-image",
        task(container={"enabled": True, "command": ["make"]}),
        [at("task.container.image")],
        "required when the container is enabled",
    ),
    refused(
        "container-missing-command",
        task(container={"enabled": True, "image": "alpine", "command": []}),
        [at("task.container.command")],
        "required when the container is enabled",
    ),
    refused(
        "container-reserved-env",
        task(
            container={
                "enabled": True,
                "image": "a",
                "command": ["b"],
                "env": {"PATH": "/x", "CAIRN_X": "1", "GIT_DIR": "/g", "OK": "1"},
            }
        ),
        [
            at("task.container.env.PATH"),
            at("task.container.env.CAIRN_X"),
            at("task.container.env.GIT_DIR"),
        ],
        "reserved",
    ),
    refused(
        "container-enabled-with-steps",
        task(container={"enabled": True, "image": "a", "command": ["b"]}, steps=[{"title": "s"}]),
        [at("task.steps")],
        "enabled container",
    ),
    refused(
        "container-timeout-not-positive",
        task(container={"enabled": False, "timeoutSeconds": 0}),
        [at("task.container.timeoutSeconds")],
        "greater than 0",
    ),
    refused(
        "auth-raw-secret",
        top(task(), auth={"repoAuthRef": "hunter2-plain-password"}),
        [at("auth.repoAuthRef")],
        "never a secret value",
        secret="hunter2-plain-password",
    ),
    refused(
        "auth-vault-without-field",
        top(task(), auth={"publishAuthRef": "vault://kv/ci/github"}),
        [at("auth.publishAuthRef")],
        "vault://mount/path#field",
    ),
    refused(
        "auth-relative-file",
        top(task(), auth={"publishAuthRef": "file://secrets/gh"}),
        [at("auth.publishAuthRef")],
        "file:///path",
    ),
    refused(
        "credential-github-in-step",
        task(steps=[{"title": "a"}, {"instructions": f"use {SECRETS['github']} to push"}]),
        [at("task.steps[1].instructions")],
        "GitHub token",
        secret=SECRETS["github"],
    ),
    refused(
        "credential-github-pat-in-nested-list",
        task(skill={"args": {"deep": {"list": [1, "x", SECRETS["github_pat"]]}}}),
        [at("task.skill.args.deep.list[2]")],
        "GitHub token",
        secret=SECRETS["github_pat"],
    ),
    refused(
        "credential-gitlab-in-pr-body",
        task(publish={"prBody": f"token={SECRETS['gitlab']}"}),
        [at("task.publish.prBody")],
        "GitLab token",
        secret=SECRETS["gitlab"],
    ),
    refused(
        "credential-openai-in-container-env",
        task(container={"env": {"OPENAI_API_KEY": SECRETS["openai"]}}),
        [at("task.container.env.OPENAI_API_KEY")],
        "OpenAI or Anthropic API key",
        secret=SECRETS["openai"],
    ),
    refused(
        "credential-anthropic-in-args",
        task(skill={"args": {"key": SECRETS["anthropic"]}}),
        [at("task.skill.args.key")],
        "Anthropic",
        secret=SECRETS["anthropic"],
    ),
    refused(
        "credential-aws-in-instructions",
        task(instructions=f"aws id {SECRETS['aws']}"),
        [at("task.instructions")],
        "AWS access key",
        secret=SECRETS["aws"],
    ),
    refused(
        "credential-slack-in-branch",
        task(git={"newBranch": SECRETS["slack"]}),
        [at("task.git.newBranch")],
        "Slack token",
        secret=SECRETS["slack"],
    ),
    refused(
        "credential-pem-in-args",
        task(skill={"args": {"pem": [SECRETS["pem"]]}}),
        [at("task.skill.args.pem[0]")],
        "PEM private key",
        secret="MIIEowIBAAKCAQEA",
    ),
    refused(
        "credential-basic-auth-url-as-repository",
        task(SECRETS["basic_auth"]),
        [at("repository")],
        "URL with user info",
        secret="hunter2",
    ),
    refused(
        "credential-token-url-in-instructions",
        task(instructions=f"clone {SECRETS['token_url']}"),
        [at("task.instructions")],
        "URL with user info",
        secret="x-token-123",
    ),
    refused(
        "credential-as-object-key",
        task(skill={"args": {SECRETS["github"]: True}}),
        [at("task.skill.args.<redacted key>")],
        "key looks like a GitHub token",
        secret=SECRETS["github"],
    ),
    refused(
        "credential-in-legacy-inputs",
        {"skillId": "s", "inputs": {"token": SECRETS["github"]}},
        [at("inputs.token")],
        "GitHub token",
        job_type="codex_skill",
        secret=SECRETS["github"],
    ),
    refused(
        "credential-in-manifest-yaml",
        {"manifest": f"name: a\nversion: 1\nsources:\n  - uri: {SECRETS['token_url']}\n"},
        [at("manifest")],
        "URL with user info",
        job_type="manifest",
        secret="x-token-123",
    ),
    refused(
        "credential-in-manifest-object",
        {
            "manifest": {
                "name": "a",
                "version": 1,
                "sources": [{"uri": "s3://b/k", "options": {"k": SECRETS["aws"]}}],
            }
        },
        [at("manifest.sources[0].options.k")],
        "AWS",
        job_type="manifest",
        secret=SECRETS["aws"],
    ),
    refused("unknown-top-level-key", top(task(), priority=5), [at("priority")], "unknown field"),
    refused(
        "unknown-nested-key", task(git={"base": "main"}), [at("task.git.base")], "unknown field"
    ),
    refused(
        "duplicate-camel-and-snake",
        top(task(), targetRuntime="codex", target_runtime="codex"),
        [at("target_runtime")],
        "unknown field",
    ),
    refused(
        "publish-mode-unknown", task(publish={"mode": "merge"}), [at("task.publish.mode")], "'pr'"
    ),
    refused(
        "branch-name-invalid",
        task(git={"newBranch": "fix it"}),
        [at("task.git.newBranch")],
        "branch name",
    ),
    refused(
        "capability-not-a-word",
        top(task(), requiredCapabilities=["gpu+cuda"]),
        [at("requiredCapabilities")],
        "capabilities",
    ),
    refused(
        "propose-tasks-not-bool", task(proposeTasks="yes"), [at("task.proposeTasks")], "boolean"
    ),
    refused("skill-id-blank", task(skill={"id": "  "}), [at("task.skill.id")], "blank"),
    refused(
        "legacy-disabled",
        {"repository": "octo/repo", "instruction": "x"},
        ["type"],
        "CAIRN_LEGACY_JOBS",
        job_type="codex_exec",
        settings=ContractSettings(legacy_jobs_enabled=False),
    ),
    refused(
        "legacy-exec-needs-instruction",
        {"repository": "o/r"},
        [at("instruction")],
        "required",
        job_type="codex_exec",
    ),
    refused(
        "legacy-skill-needs-skill-id",
        {"repository": "o/r", "inputs": {}},
        [at("skillId")],
        "required",
        job_type="codex_skill",
    ),
    refused(
        "legacy-unknown-key",
        {"instruction": "x", "repository": "o/r", "priority": 1},
        [at("priority")],
        "unknown field",
        job_type="codex_exec",
    ),
    refused(
        "legacy-unknown-codex-key",
        {"instruction": "x", "repository": "o/r", "codex": {"mode": "fast"}},
        [at("codex.mode")],
        "model, effort",
        job_type="codex_exec",
    ),
    refused(
        "legacy-bad-publish-mode-maps-back",
        {"skillId": "s", "inputs": {"repo": "o/r", "publishMode": "merge"}},
        [at("inputs.publishMode")],
        "'pr'",
        job_type="codex_skill",
    ),
    refused(
        "legacy-bad-ref-maps-back",
        {"instruction": "x", "repository": "o/r", "ref": "a..b"},
        [at("ref")],
        "branch name",
        job_type="codex_exec",
    ),
    refused(
        "legacy-bad-repo-maps-back",
        {"skillId": "s", "inputs": {"repo": "not a repo"}},
        [at("inputs.repo")],
        "owner/repo",
        job_type="codex_skill",
    ),
    refused(
        "legacy-model-not-string-maps-back",
        {"instruction": "x", "repository": "o/r", "codex": {"model": 5}},
        [at("codex.model")],
        "string",
        job_type="codex_exec",
    ),
    refused("manifest-missing", {}, [at("manifest")], "required", job_type="manifest"),
    refused(
        "manifest-missing-name",
        {"manifest": {"version": 1, "sources": [{"uri": "https://x/y"}]}},
        [at("manifest.name")],
        "required",
        job_type="manifest",
    ),
    refused(
        "manifest-empty-sources",
        {"manifest": {"name": "a", "version": 1, "sources": []}},
        [at("manifest.sources")],
        "at least 1",
        job_type="manifest",
    ),
    refused(
        "manifest-source-without-location",
        {"manifest": {"name": "a", "version": 1, "sources": [{"name": "x"}]}},
        [at("manifest.sources[0]")],
        "uri or a path",
        job_type="manifest",
    ),
    refused(
        "manifest-version-bool",
        {"manifest": {"name": "a", "version": True, "sources": [{"path": "p"}]}},
        [at("manifest.version")],
        "string or an integer",
        job_type="manifest",
    ),
    refused(
        "manifest-yaml-syntax",
        {"manifest": "name: [unclosed\n"},
        [at("manifest")],
        "not valid YAML",
        job_type="manifest",
    ),
    refused(
        "manifest-yaml-scalar",
        {"manifest": "just text"},
        [at("manifest")],
        "mapping",
        job_type="manifest",
    ),
    refused(
        "manifest-yaml-aliases",
        {"manifest": "a: &x [1]\nb: *x\n"},
        [at("manifest")],
        "aliases",
        job_type="manifest",
    ),
    refused(
        "manifest-yaml-tags",
        {"manifest": "name: !!binary aGk=\nversion: 1\nsources: [{path: p}]\n"},
        [at("manifest")],
        "tags",
        job_type="manifest",
    ),
    refused(
        "manifest-yaml-date-version",
        {"manifest": "name: a\nversion: 2024-01-01\nsources: [{path: p}]\n"},
        [at("manifest.version")],
        "string or an integer",
        job_type="manifest",
    ),
    refused(
        "manifest-extra-key",
        {"manifest": {"name": "a"}, "priority": 1},
        [at("priority")],
        "only `manifest`",
        job_type="manifest",
    ),
    refused(
        "unknown-job-type",
        task(),
        ["type"],
        "codex_exec, codex_skill, manifest, noop, task",
        job_type="shell",
    ),
    refused("payload-not-object", ["not", "an", "object"], ["payload"], "JSON object"),
    refused(
        "container-env-reserved-CAIRN_ARTIFACTS_DIR",
        task(container={"env": {"CAIRN_ARTIFACTS_DIR": "/x"}}),
        [at("task.container.env.CAIRN_ARTIFACTS_DIR")],
        "reserved; the worker sets it",
    ),
    refused(
        "container-env-reserved-CAIRN_JOB_ID",
        task(container={"env": {"CAIRN_JOB_ID": "/x"}}),
        [at("task.container.env.CAIRN_JOB_ID")],
        "reserved; the worker sets it",
    ),
    refused(
        "container-env-reserved-CAIRN_WORKSPACE",
        task(container={"env": {"CAIRN_WORKSPACE": "/x"}}),
        [at("task.container.env.CAIRN_WORKSPACE")],
        "reserved; the worker sets it",
    ),
    refused(
        "container-env-reserved-CAIRN_REPO_DIR",
        task(container={"env": {"CAIRN_REPO_DIR": "/x"}}),
        [at("task.container.env.CAIRN_REPO_DIR")],
        "reserved; the worker sets it",
    ),
    refused(
        "container-env-reserved-HOME",
        task(container={"env": {"HOME": "/x"}}),
        [at("task.container.env.HOME")],
        "reserved; the worker sets it",
    ),
    refused(
        "container-env-reserved-home",
        task(container={"env": {"home": "/x"}}),
        [at("task.container.env.home")],
        "reserved; the worker sets it",
    ),
    refused(
        "repo-local-path-off",
        task("/srv/git/repo.git"),
        [at("repository")],
        "CAIRN_ALLOW_LOCAL_REPOSITORIES=true",
    ),
    refused(
        "repo-file-url-off",
        task("file:///srv/git/repo.git"),
        [at("repository")],
        "local repositories are off",
    ),
    refused(
        "repo-relative-path-even-when-local-allowed",
        task("srv/git/repo"),
        [at("repository")],
        "an absolute local path or a file:/// URL",
        settings=LOCAL,
    ),
    refused(
        "repo-file-url-with-host",
        task("file://host/srv/repo"),
        [at("repository")],
        "owner/repo",
        settings=LOCAL,
    ),
    refused(
        "legacy-local-repository-off-maps-back",
        {"skillId": "s", "inputs": {"repo": "/srv/git/repo.git"}},
        [at("inputs.repo")],
        "CAIRN_ALLOW_LOCAL_REPOSITORIES=true",
        job_type="codex_skill",
    ),
    refused(
        "publish-base-branch-alias-conflict",
        task(publish={"baseBranch": "dev", "prBaseBranch": "main"}),
        [at("task.publish.baseBranch")],
        "alias of prBaseBranch",
    ),
    refused(
        "publish-base-branch-invalid",
        task(publish={"baseBranch": "a..b"}),
        [at("task.publish.baseBranch")],
        "branch name",
    ),
    refused(
        "legacy-base-branch-conflict-maps-back",
        {
            "instruction": "x",
            "repository": "o/r",
            "publish": {"baseBranch": "a", "prBaseBranch": "b"},
        },
        [at("publish.baseBranch")],
        "alias of prBaseBranch",
        job_type="codex_exec",
    ),
    refused(
        "skip-reason-unknown-category",
        task(publish={"verificationSkipReason": {"category": "lazy", "reason": "x"}}),
        [at("task.publish.verificationSkipReason.category")],
        "'docs_only'",
    ),
    refused(
        "skip-reason-missing-reason",
        task(publish={"verificationSkipReason": {"category": "other"}}),
        [at("task.publish.verificationSkipReason.reason")],
        "required",
    ),
    refused(
        "skip-reason-blank-reason",
        task(publish={"verificationSkipReason": {"category": "other", "reason": "   "}}),
        [at("task.publish.verificationSkipReason.reason")],
        "at least 1 character",
    ),
    refused(
        "skip-reason-too-long",
        task(publish={"verificationSkipReason": {"category": "other", "reason": "x" * 2001}}),
        [at("task.publish.verificationSkipReason.reason")],
        "at most 2000 characters",
    ),
    refused(
        "skip-reason-empty-ticket",
        task(publish={"verificationSkipReason": {**SKIP, "ticket": ""}}),
        [at("task.publish.verificationSkipReason.ticket")],
        "at least 1 character",
    ),
    refused(
        "skip-reason-ticket-too-long",
        task(publish={"verificationSkipReason": {**SKIP, "ticket": "T" * 201}}),
        [at("task.publish.verificationSkipReason.ticket")],
        "at most 200 characters",
    ),
    refused(
        "skip-reason-unknown-key",
        task(publish={"verificationSkipReason": {**SKIP, "by": "me"}}),
        [at("task.publish.verificationSkipReason.by")],
        "unknown field",
    ),
    refused(
        "skip-reason-not-an-object",
        task(publish={"verificationSkipReason": "docs only"}),
        [at("task.publish.verificationSkipReason")],
        "valid dictionary",
    ),
    refused(
        "legacy-skip-reason-maps-back",
        {
            "skillId": "s",
            "repository": "o/r",
            "publish": {"verificationSkipReason": {"category": "x", "reason": "y"}},
        },
        [at("publish.verificationSkipReason.category")],
        "'no_tests_exist'",
        job_type="codex_skill",
    ),
    refused(
        "legacy-inputs-instruction-not-text-maps-back",
        {"skillId": "s", "repository": "o/r", "inputs": {"instruction": 5}},
        [at("inputs.instruction")],
        "string",
        job_type="codex_skill",
    ),
]


@pytest.mark.parametrize(("job_type", "payload", "settings", "fields", "capabilities"), ACCEPTED)
def test_accepted(
    job_type: str,
    payload: Any,
    settings: ContractSettings,
    fields: dict[str, Any],
    capabilities: list[str],
) -> None:
    job = normalize_job(job_type, payload, settings)

    assert isinstance(job, NormalizedJob)
    assert job.original == payload
    for path, expected in fields.items():
        assert lookup(job.normalized, path) == expected, path
    assert job.required_capabilities == capabilities
    assert job.is_legacy == job_type.startswith("codex_")
    assert any("deprecated" in w for w in job.warnings) == job.is_legacy


@pytest.mark.parametrize(("job_type", "payload", "settings", "paths", "reason", "secret"), REFUSED)
def test_refused(
    job_type: str,
    payload: Any,
    settings: ContractSettings,
    paths: list[str],
    reason: str,
    secret: str | None,
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalize_job(job_type, payload, settings)

    errors = caught.value.errors
    assert [e["path"] for e in errors] == paths
    assert any(reason in e["reason"] for e in errors), errors
    if secret is not None:
        assert secret not in repr(caught.value.errors)
        assert secret not in caught.value.message


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_redact_credentials_removes_each_kind(kind: str) -> None:
    secret = SECRETS[kind]
    text = f"before {secret} after"

    redacted = redact_credentials(text)

    assert redacted.startswith("before [redacted ")
    assert find_credentials(redacted) == []
    assert find_credentials({"k": [text]}, "event.data")[0]["path"] == "event.data.k[0]"


def test_original_is_a_copy_the_caller_cannot_change() -> None:
    payload = task(skill={"id": "s", "args": {"list": [1]}})
    job = normalize_job("task", payload, DEFAULTS)
    payload["task"]["skill"]["args"]["list"].append(2)

    assert job.original["task"]["skill"]["args"]["list"] == [1]
    assert job.normalized["task"]["skill"]["args"]["list"] == [1]


WORKER = WorkerDefaults(
    mode="claude", models={"codex": "gpt-5-codex", "claude": "sonnet"}, efforts={"codex": "medium"}
)


@pytest.mark.parametrize(
    ("payload", "worker", "expected"),
    [
        pytest.param(
            task(), WORKER, ResolvedRuntime("codex", "gpt-5-codex", "medium"), id="worker-model"
        ),
        pytest.param(
            task(runtime={"model": "o3", "effort": "low"}),
            WORKER,
            ResolvedRuntime("codex", "o3", "low"),
            id="task-wins",
        ),
        pytest.param(
            task(), WorkerDefaults(), ResolvedRuntime("codex", None, None), id="cli-default"
        ),
        pytest.param(
            top(task(), targetRuntime="universal"),
            WORKER,
            ResolvedRuntime("claude", "sonnet", None),
            id="universal-runs-worker-mode",
        ),
        pytest.param(
            top(task(runtime={"mode": "gemini"}), targetRuntime="claude"),
            WORKER,
            ResolvedRuntime("gemini", None, None),
            id="mode-beats-target",
        ),
    ],
)
def test_resolve_runtime(
    payload: dict[str, Any], worker: WorkerDefaults, expected: ResolvedRuntime
) -> None:
    normalized = normalize_job("task", payload, DEFAULTS).normalized

    assert resolve_runtime(normalized, worker) == expected


def test_default_runtime_is_recorded_at_submission() -> None:
    settings = ContractSettings(default_runtime="claude")
    job = normalize_job("task", task(), settings)

    assert job.normalized["targetRuntime"] == "claude"
    assert job.required_capabilities == ["claude", "git", "gh"]
    assert resolve_runtime(job.normalized, WorkerDefaults(mode="codex")).mode == "claude"


@pytest.mark.parametrize(
    "bad",
    [
        {"default_publish_mode": "merge"},
        {"default_runtime": "vim"},
        {"default_repository": "not a repository"},
        {"default_repository": " octo/repo "},
    ],
)
def test_settings_refuse_a_bad_default(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ContractSettings(**bad)


def test_the_base_branch_alias_is_folded_into_pr_base_branch() -> None:
    job = normalize_job("task", task(publish={"baseBranch": "dev"}), DEFAULTS)

    assert "baseBranch" not in job.normalized["task"]["publish"]
    assert normalize_job("task", job.normalized, DEFAULTS).normalized == job.normalized


def test_a_skip_reason_category_list_is_documented() -> None:
    assert set(SKIP_CATEGORIES) == set(get_args(SkipCategory))
    assert {"docs_only", "no_tests_exist", "emergency", "other"} <= set(SKIP_CATEGORIES)
    assert all(SKIP_CATEGORIES.values())


def test_a_bad_repository_names_local_forms_only_where_they_are_on() -> None:
    payload = task("my repo")
    with pytest.raises(ValidationFailed) as off:
        normalize_job("task", payload, DEFAULTS)
    with pytest.raises(ValidationFailed) as on:
        normalize_job("task", payload, LOCAL)

    assert "local" not in off.value.errors[0]["reason"]
    assert "absolute local path" in on.value.errors[0]["reason"]


def test_a_stored_local_job_still_resolves_its_runtime() -> None:
    job = normalize_job("task", task("/srv/git/repo.git"), LOCAL)

    assert resolve_runtime(job.normalized, WorkerDefaults()).mode == "codex"


def test_check_repository_is_strict_unless_local_is_allowed() -> None:
    with pytest.raises(ValueError, match="CAIRN_ALLOW_LOCAL_REPOSITORIES"):
        check_repository("/srv/repo")
    assert check_repository(" /srv/repo ", allow_local=True) == "/srv/repo"
    assert check_repository(None) is None
