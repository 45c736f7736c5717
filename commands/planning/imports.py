"""PRD import commands: preview (writes no event), commit (the import and all its tasks and
edges in one append, idempotently), and auto_ready's release of tasks to ready."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cairn.commands.runner import (
    CommandResult,
    Plan,
    command_id_for,
    guards_of,
    id_for_key,
    load_states,
    run_command,
    writes,
)
from cairn.commands.tasks.task import load_closure, load_tasks
from cairn.domain.errors import NotFound, VersionConflict
from cairn.domain.planning.import_events import import_event_from
from cairn.domain.planning.imports import ImportJob, decide_commit, decide_release, evolve
from cairn.domain.planning.preview import (
    Diff,
    ImportRequest,
    diff,
    plan_request,
    preview_view,
    request_digest,
    source_digest,
)
from cairn.domain.planning.preview import Plan as ImportPlan
from cairn.domain.tasks.states import Flags
from cairn.streams.envelope import Envelope
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore, Meta

PREVIEW_TTL_S = 7 * 86_400


def fold_import(events: list[Envelope]) -> ImportJob | None:
    """An import's state from its stream (None if it has no events)."""
    state: ImportJob | None = None
    for e in events:
        state = evolve(state, import_event_from(e.type, e.schema, e.data), e.agg, e.ver, e.ts)
    return state


async def load_import(store: EventStore, import_id: str) -> ImportJob | None:
    return (await load_states(store, [import_id], "import", fold_import)).get(import_id)


def import_id_for(keys: Keys, project: str, document: str) -> str:
    """One import aggregate per document and project: a re-import finds its tasks."""
    return id_for_key(keys, "import", project, f"prd:{document}")


@dataclass(frozen=True, slots=True)
class Previewed:
    request: ImportRequest
    plan: ImportPlan
    changes: Diff
    import_id: str
    preview_id: str
    task_ids: dict[str, str]
    state: ImportJob | None

    def view(self) -> dict[str, Any]:
        revision = self.state.revision if self.state else 0
        return preview_view(self.request, self.plan, self.changes, self.preview_id, revision,
                            self.import_id)  # fmt: skip


async def preview_import(
    store: EventStore, request: ImportRequest, *, remember: bool = True
) -> Previewed:
    """Plan the request and compare it with the document's last import; no event is written
    (the request is kept a while under its preview id, so it can be committed by id)."""
    plan = plan_request(request)
    import_id = import_id_for(store.keys, request.project, plan.document)
    state = await load_import(store, import_id)
    previewed = _compared(store.keys, request, plan, import_id, state)
    if remember:
        partition = store.keys.partition_of(request.project)
        await store.redis.set(store.keys.preview(partition, previewed.preview_id),
                              request.model_dump_json(), ex=PREVIEW_TTL_S)  # fmt: skip
    return previewed


def _compared(keys: Keys, request: ImportRequest, plan: ImportPlan, import_id: str,
              state: ImportJob | None) -> Previewed:  # fmt: skip
    previous = state.tasks if state else {}
    task_ids = {
        t.key: previous[t.key].task_id if t.key in previous
        else id_for_key(keys, "task", request.project, f"{import_id}:{t.key}")
        for t in plan.graph.tasks
    }  # fmt: skip
    changes = diff(previous, plan.graph, task_ids)
    digest = request_digest(request, state.revision if state else 0)
    preview_id = f"preview-{keys.partition_of(request.project):02d}-{digest}"
    return Previewed(request, plan, changes, import_id, preview_id, task_ids, state)


async def recall_preview(store: EventStore, preview_id: str) -> ImportRequest:
    """The request a preview was made from, while it is kept."""
    raw = None
    if store.keys.is_aggregate_id(preview_id) and preview_id.startswith("preview-"):
        partition = store.keys.partition_of_id(preview_id)
        raw = await store.redis.get(store.keys.preview(partition, preview_id))
    if raw is None:
        raise NotFound(f"preview {preview_id} is unknown or expired (previews are kept "
                       f"{PREVIEW_TTL_S // 86_400} days); preview again, or commit with the "
                       "preview's body", preview_id=preview_id)  # fmt: skip
    return ImportRequest.model_validate_json(raw)


async def commit_import(
    store: EventStore, request: ImportRequest, flags: Flags, *, actor: str,
    preview_id: str | None = None,
) -> tuple[CommandResult, Previewed]:  # fmt: skip
    """Write the import's new revision with every task and edge it changes, in one append
    (one partition: the import's tasks are in its project). The same request committed
    again changes nothing; a preview id that no longer matches (the document was imported
    again since) is refused."""
    first = await preview_import(store, request, remember=False)
    committed = first.state is not None and first.state.status == "committed"
    if committed and preview_id and first.state and first.state.preview_id == preview_id:
        # this very preview was committed already
        return CommandResult(first.import_id, first.state.version, "", duplicate=True), first
    if preview_id is not None and preview_id != first.preview_id:
        raise VersionConflict(
            f"the preview {preview_id} is out of date: the document was imported again "
            "since (or the request differs); preview again", preview_id=preview_id,
            current_preview_id=first.preview_id,
        )  # fmt: skip
    outcome = {"previewed": first}
    read = [first.state]  # the first try decides on the state the preview read; a retry reads

    async def plan() -> Plan:
        state = read.pop() if read else await load_import(store, first.import_id)
        now = _compared(store.keys, request, first.plan, first.import_id, state)
        outcome["previewed"] = now
        imported = (state.tasks if state else {}).values()
        tasks = await load_closure(store, [t.task_id for t in imported])
        decision = decide_commit(
            state, now.import_id, request, now.plan, now.changes, now.task_ids, tasks, flags,
            preview_id=now.preview_id, source_sha256=source_digest(request),
        )  # fmt: skip
        versions = {now.import_id: state.version if state else 0,
                    **{i: t.version for i, t in tasks.items()}}  # fmt: skip
        return Plan(writes=writes(decision, versions),
                    guards=guards_of(list(tasks), versions, set(decision)),
                    subject_version=versions[now.import_id])  # fmt: skip

    result = await run_command(
        store, first.import_id, plan, meta=Meta(actor=actor),
        command_id=command_id_for("import-commit", first.import_id, first.preview_id),
    )  # fmt: skip
    return result, outcome["previewed"]


async def release_import_tasks(
    store: EventStore, import_id: str, flags: Flags, *, actor: str = "scheduler"
) -> CommandResult:
    """auto_ready: move the import's next unblocked tasks to ready, within its hint; the
    blockers read must be unchanged at append (the dependency guard)."""

    async def plan() -> Plan:
        state = await load_import(store, import_id)
        if state is None:
            raise NotFound(f"import {import_id} does not exist", import_id=import_id)
        tasks = await load_tasks(store, state.order)
        outside = [b for t in tasks.values() for b in t.blocked_by if b not in tasks]
        tasks.update(await load_tasks(store, outside))
        decision = decide_release(state, tasks, flags)
        versions = {import_id: state.version, **{i: t.version for i, t in tasks.items()}}
        moving = [tasks[i] for i in decision if i != import_id]
        blockers = [b for t in moving for b in t.blocked_by]
        return Plan(writes=writes(decision, versions),
                    guards=guards_of(blockers, versions, set(decision)),
                    subject_version=state.version)  # fmt: skip

    return await run_command(store, import_id, plan, meta=Meta(actor=actor))
