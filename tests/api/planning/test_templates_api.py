"""The template catalog over HTTP: the built-in pipelines are there on a fresh install and
editable like any other; every save is a version and old ones stay readable; expand fills the
inputs; bad input is problem+json naming the field and appends nothing."""

from __future__ import annotations

from typing import Any

import httpx

from cairn.streams.keys import Keys
from cairn.streams.store import EventStore

RELEASE = {
    "slug": "release", "title": "Release", "description": "Cut a release",
    "inputs": [{"name": "version", "type": "string"},
               {"name": "env", "type": "enum", "choices": ["staging", "prod"],
                "default": "staging"},
               {"name": "retries", "type": "integer", "default": 1},
               {"name": "dry_run", "type": "boolean", "default": True}],
    "steps": [{"id": "tag", "title": "Tag {{version}}",
               "instructions": "Tag {{version}} for {{env}}; {{retries}} retries, dry run "
                               "{{dry_run}}."}],
}  # fmt: skip


async def log_length(store: EventStore, keys: Keys) -> int:
    return sum([await store.redis.xlen(keys.log(p)) for p in keys.all_partitions()])


async def test_builtins_are_versions_one_and_a_save_is_a_new_version(
    api: httpx.AsyncClient,
) -> None:
    listed = (await api.get("/api/templates")).json()["items"]
    assert {"feature", "bug_fix", "docs"} <= {t["slug"] for t in listed}
    docs = (await api.get("/api/templates/docs")).json()
    assert docs["version"] == 1 and docs["builtin"] and docs["steps"][0]["id"] == "write_docs"
    edited = {"slug": "docs", "title": "Docs", "base_version": 1,
              "steps": [{"id": "write", "title": "Write", "instructions": "Write the docs."}]}
    saved = await api.post("/api/templates", json=edited)
    assert saved.status_code == 201, saved.text
    assert saved.json()["version"] == 2 and saved.json()["versions"] == [1, 2]
    again = await api.post("/api/templates", json={**edited, "base_version": 2})
    assert again.status_code == 200 and again.json()["version"] == 2
    stale = await api.post("/api/templates", json={**edited, "title": "Old", "base_version": 1})
    assert stale.status_code == 409 and stale.json()["latest_version"] == 2
    assert (await api.get("/api/templates/docs")).json()["steps"][0]["id"] == "write"
    old = (await api.get("/api/templates/docs", params={"version": 1})).json()
    assert old["steps"][0]["id"] == "write_docs" and old["latest_version"] == 2
    missing = await api.get("/api/templates/docs", params={"version": 3})
    assert missing.status_code == 404 and "has 1, 2" in missing.json()["detail"]
    assert (await api.get("/api/templates/nothing-here")).status_code == 404
    assert (await api.get("/api/templates/Not%20a%20slug")).status_code == 404


async def test_expand_fills_inputs_and_names_each_bad_one(
    api: httpx.AsyncClient, store: EventStore, keys: Keys
) -> None:
    created = await api.post("/api/templates", json=RELEASE)
    assert created.status_code == 201 and created.json()["version"] == 1
    url = "/api/templates/release/expand"
    done = await api.post(url, json={"inputs": {"version": "1.4", "env": "prod"}})
    assert done.status_code == 200
    assert done.json()["steps"] == [{"id": "tag", "title": "Tag 1.4", "instructions":
                                     "Tag 1.4 for prod; 1 retries, dry run true."}]  # fmt: skip
    before = await log_length(store, keys)
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({}, {"inputs.version"}),
        ({"version": "1", "colour": "red"}, {"inputs.colour"}),
        ({"version": 2, "retries": "three", "dry_run": "yes", "env": "dev"},
         {"inputs.version", "inputs.retries", "inputs.dry_run", "inputs.env"}),
    ]
    for inputs, paths in cases:
        bad = await api.post(url, json={"inputs": inputs})
        assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
        assert {e["path"] for e in bad.json()["errors"]} == paths, bad.json()
    assert (await api.post("/api/templates/nothing/expand", json={})).status_code == 404
    assert await log_length(store, keys) == before


async def test_a_bad_template_is_refused_by_field_and_appends_nothing(
    api: httpx.AsyncClient, store: EventStore, keys: Keys
) -> None:
    before = await log_length(store, keys)
    bad_bodies: list[tuple[dict[str, Any], str]] = [
        ({**RELEASE, "slug": "Not A Slug"}, "slug"),
        ({**RELEASE, "steps": []}, "steps"),
        ({**RELEASE, "inputs": [{"name": "version", "type": "colour"}]}, "inputs[0].type"),
        ({**RELEASE, "inputs": [{"name": "version", "type": "integer", "default": "x"}]},
         "inputs[0].default"),
        ({**RELEASE, "inputs": []}, "steps[0].title"),
    ]  # fmt: skip
    for body, path in bad_bodies:
        bad = await api.post("/api/templates", json=body)
        assert bad.status_code == 422, bad.text
        assert path in [e["path"] for e in bad.json()["errors"]], bad.json()
    assert await log_length(store, keys) == before
