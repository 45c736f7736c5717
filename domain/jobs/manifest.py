"""Manifest jobs: a named, versioned list of sources to ingest, sent as YAML text or an object."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, JsonValue, ValidationError, field_validator, model_validator

from cairn.domain.credentials import ensure_no_credentials
from cairn.domain.errors import ValidationFailed
from cairn.domain.jobs.kinds import (
    ContractModel,
    ContractSettings,
    JobType,
    NormalizedJob,
    refusal,
    validation_failed,
)

MAX_MANIFEST_CHARS = 256 * 1024
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")


class ManifestSource(ContractModel):
    name: str | None = None
    uri: str | None = None
    path: str | None = None
    options: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("uri")
    @classmethod
    def _check_uri(cls, value: str | None) -> str | None:
        if value is not None and not _URI.fullmatch(value):
            raise ValueError(
                "must be a URI with a scheme, e.g. https://host/path or s3://bucket/key"
            )
        return value

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or "\x00" in value):
            raise ValueError("must be a non-blank path")
        return value

    @model_validator(mode="after")
    def _check_location(self) -> ManifestSource:
        if self.uri is None and self.path is None:
            raise ValueError("a source needs a uri or a path")
        return self


class Manifest(ContractModel):
    name: str
    version: str | int
    sources: list[ManifestSource] = Field(min_length=1)
    options: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("version", mode="plain")
    @classmethod
    def _check_version(cls, value: Any) -> str | int:
        # bool is an int to Python, and YAML turns `version: 2024-01-01` into a date.
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError("must be a string or an integer (quote versions like '1.0')")
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be blank")
        return value


def normalize_manifest(payload: dict[str, Any], settings: ContractSettings) -> NormalizedJob:
    """Validate a manifest job (`{"manifest": <YAML text or object>}`); it needs `manifest` only."""
    errors = [
        {"path": f"payload.{key}", "reason": "unknown field; a manifest job has only `manifest`"}
        for key in payload
        if key != "manifest"
    ]
    if "manifest" not in payload:
        errors.append({"path": "payload.manifest", "reason": "required (YAML text or an object)"})
    if errors:
        raise refusal(errors)
    document = payload["manifest"]
    if isinstance(document, str):
        document = parse_manifest_text(document)
        # YAML escapes can spell a token that the scan of the raw text could not see.
        ensure_no_credentials(document, "payload.manifest")
    if not isinstance(document, dict):
        reason = "must be a YAML mapping or an object with name, version and sources"
        raise refusal([{"path": "payload.manifest", "reason": reason}])
    try:
        manifest = Manifest.model_validate(document)
    except ValidationError as exc:
        raise validation_failed(exc, "payload.manifest") from None
    return NormalizedJob(
        job_type="manifest",
        submitted_type="manifest",
        original=payload,
        normalized={"manifest": manifest.model_dump(by_alias=True)},
        required_capabilities=["manifest"],
    )


def parse_manifest_text(text: str) -> Any:
    """Parse manifest YAML safely (no tags, no aliases), or raise ValidationFailed."""
    import yaml  # only manifest jobs need PyYAML, so the rest of domain/ never loads it

    def refuse(reason: str) -> ValidationFailed:
        return refusal([{"path": "payload.manifest", "reason": reason}])

    if len(text) > MAX_MANIFEST_CHARS:
        raise refuse(f"is longer than {MAX_MANIFEST_CHARS} characters")
    try:
        for event in yaml.parse(text, yaml.SafeLoader):
            # Aliases let a few lines expand into an enormous document ("billion laughs"), and
            # explicit tags reach constructors that crash on odd input; plain data needs neither.
            if isinstance(event, yaml.AliasEvent):
                raise refuse("may not use YAML aliases (*name)")
            if getattr(event, "tag", None) is not None:
                raise refuse("may not use YAML tags (!tag)")
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        where = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        raise refuse(f"is not valid YAML{where}: {exc.problem or exc.context}") from None
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError):
        # PyYAML's safe constructors raise ValueError on scalars such as `2024-13-01`.
        raise refuse("is not valid YAML") from None


MANIFEST = JobType(name="manifest", normalize=normalize_manifest)
