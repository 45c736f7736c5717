"""`cairn services`: the orchestrator's service catalog from a YAML file (every entry checked
before any is written, so a file with one mistake changes nothing), and a list of it."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from cairn.api.cli.everyday import out
from cairn.api.cli.remote import api_of
from cairn.commands.settings import Settings
from cairn.domain.errors import CairnError, ValidationFailed
from cairn.domain.orchestrator.services import parse_service


def add_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    services = command("services", run_services, "the orchestrator's services: apply a YAML "
                       "list of them, or list them")  # fmt: skip
    services.add_argument("action", choices=["apply", "list"], help="apply FILE, or list")
    services.add_argument("file", nargs="?", help="apply: a YAML list of services")
    services.add_argument("--json", action="store_true", help="print what the API answered")


def run_services(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "list":
        found = api_of(settings).get("/api/orchestrator/services")["items"]
        out(args, found, [_line(s) for s in found] or ["no services yet"])
        return 0
    if not args.file:
        raise CairnError("apply needs the YAML file: cairn services apply services.yaml")
    specs = read_services(Path(args.file), settings)  # all checked before the API is asked
    api = api_of(settings)
    shown = [api.call("PUT", f"/api/orchestrator/services/{s['name']}", body=s) for s in specs]
    out(args, shown, [f"applied {s['name']}" for s in specs])
    return 0


def read_services(path: Path, settings: Settings) -> list[dict[str, Any]]:
    """Every service of the file, checked; ValidationFailed naming `services[i].field`."""
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise CairnError(f"{path}: cannot be read as YAML ({e})") from e
    if isinstance(document, dict) and "services" in document:
        document = document["services"]
    if not isinstance(document, list) or not document:
        wanted = [{"path": "services", "reason": "a non-empty list"}]
        raise ValidationFailed(f"{path}: expected a list of services", errors=wanted)
    contract = settings.contract()
    specs, errors, names = [], [], set()
    for i, entry in enumerate(document):
        try:
            spec = parse_service(entry, contract, prefix=f"services[{i}]")
        except ValidationFailed as e:
            errors += e.errors
            continue
        if spec["name"] in names:
            errors.append({"path": f"services[{i}].name", "reason": "named twice in the file"})
        names.add(spec["name"])
        specs.append(spec)
    if errors:
        first = errors[0]
        raise ValidationFailed(f"{path}: {first['path']}: {first['reason']} (nothing applied)",
                               errors=errors)  # fmt: skip
    return specs


def _line(service: dict[str, Any]) -> str:
    spec, check = service["spec"], service.get("lastCheck") or {}
    verified = ("never verified" if not check else
                f"last verify {'passed' if check.get('passed') else 'FAILED'}")  # fmt: skip
    return (f"{service['name']:<20} {spec['repository']}@{spec['branch']}  "
            f"{'protected  ' if spec.get('protected') else ''}{verified}")
