"""Table of repository forms: what each resolves to, what a person is shown, and which forms
are refused (local ones unless CAIRN_ALLOW_LOCAL_REPOSITORIES is on)."""

from __future__ import annotations

import pytest

from cairn.domain.jobs.repositories import Remote, repository_form, resolve_repository

GITHUB = "https://github.com/"


@pytest.mark.parametrize(
    ("value", "base", "allow_local", "expected"),
    [
        pytest.param(
            "octo/repo", GITHUB, False,
            Remote("https://github.com/octo/repo.git", "https://github.com/octo/repo.git", False),
            id="owner-repo",
        ),
        pytest.param(
            " octo/repo ", "https://github.com", False,
            Remote("https://github.com/octo/repo.git", "https://github.com/octo/repo.git", False),
            id="base-without-slash-trimmed-value",
        ),
        pytest.param(
            "octo/repo.git", "https://git.example.com/mirrors//", False,
            Remote(
                "https://git.example.com/mirrors/octo/repo.git",
                "https://git.example.com/mirrors/octo/repo.git",
                False,
            ),
            id="owner-repo-git-base-with-a-path",
        ),
        pytest.param(
            "octo/repo", "file:///srv/remotes/", False,
            Remote("file:///srv/remotes/octo/repo.git", "file:///srv/remotes/octo/repo.git", True),
            id="base-file-url",
        ),
        pytest.param(
            "octo/repo", "/srv/remotes", False,
            Remote("/srv/remotes/octo/repo.git", "/srv/remotes/octo/repo.git", True),
            id="base-local-folder",
        ),
        pytest.param(
            "octo/repo", "https://ci:s3cret@git.example.com/", False,
            Remote(
                "https://ci:s3cret@git.example.com/octo/repo.git",
                "https://git.example.com/octo/repo.git",
                False,
            ),
            id="base-credentials-never-displayed",
        ),
        pytest.param(
            "https://gitlab.example.com/group/sub/repo", GITHUB, False,
            Remote(
                "https://gitlab.example.com/group/sub/repo",
                "https://gitlab.example.com/group/sub/repo",
                False,
            ),
            id="https-as-given",
        ),
        pytest.param(
            "git@github.com:octo/repo.git", GITHUB, False,
            Remote("git@github.com:octo/repo.git", "git@github.com:octo/repo.git", False),
            id="scp-like-as-given",
        ),
        pytest.param(
            "/srv/git/repo.git", GITHUB, True,
            Remote("/srv/git/repo.git", "/srv/git/repo.git", True),
            id="local-path-allowed",
        ),
        pytest.param(
            "file:///srv/git/repo.git", GITHUB, True,
            Remote("file:///srv/git/repo.git", "file:///srv/git/repo.git", True),
            id="file-url-allowed",
        ),
    ],
)  # fmt: skip
def test_resolve_repository(value: str, base: str, allow_local: bool, expected: Remote) -> None:
    assert resolve_repository(value, git_base_url=base, allow_local=allow_local) == expected


@pytest.mark.parametrize("value", ["/srv/git/repo.git", "file:///srv/git/repo.git"])
def test_local_forms_are_off_unless_allowed(value: str) -> None:
    with pytest.raises(ValueError, match="CAIRN_ALLOW_LOCAL_REPOSITORIES=true") as caught:
        resolve_repository(value, git_base_url=GITHUB, allow_local=False)
    assert "local repositories are off" in str(caught.value)


@pytest.mark.parametrize(
    "value",
    [
        "my repo", "http://github.com/octo/repo", "ssh://github.com/octo/repo",
        "https://github.com", "https://u:p@github.com/octo/repo", "https://github.com/o/r?x=1",
        "../etc", "octo/..", "relative/path/repo", "file://host/srv/repo", "file:///",
        "/srv/repo\nx", "",
    ],
)  # fmt: skip
def test_other_forms_are_refused_naming_the_forms(value: str) -> None:
    with pytest.raises(ValueError, match="owner/repo") as caught:
        resolve_repository(value, git_base_url=GITHUB, allow_local=True)
    assert "p@" not in str(caught.value)


@pytest.mark.parametrize(
    ("value", "form"),
    [
        ("octo/repo", "owner_repo"),
        ("https://github.com/octo/repo", "https"),
        ("git@github.com:octo/repo", "scp"),
        ("/srv/repo", "local"),
        ("file:///srv/repo", "local"),
        ("ftp://x/y", None),
    ],
)
def test_repository_form(value: str, form: str | None) -> None:
    assert repository_form(value) == form


def test_a_bad_base_url_is_refused() -> None:
    with pytest.raises(ValueError, match="CAIRN_GIT_BASE_URL"):
        resolve_repository("octo/repo", git_base_url="github.com", allow_local=False)
