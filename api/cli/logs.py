"""Process logs: one line a record, with its UTC time (ISO 8601), level and logger name; or,
with CAIRN_LOG_FORMAT=json, one JSON object a line (ts, level, logger, message, and the
correlation id of the command or job it was written for), for a log shipper."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import orjson

from cairn.domain.errors import CairnError
from cairn.streams.correlation import current_correlation

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FORMATS = ("text", "json")


class UtcFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(UtcFormatter):
    """One JSON object a record; `correlation_id` when the record was written for a command
    or a job (the context variable set where that work began, or the record's own extra)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        correlation = getattr(record, "correlation_id", "") or current_correlation.get()
        if correlation:
            entry["correlation_id"] = correlation
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure_logging(level: int = logging.INFO, log_format: str = "text") -> None:
    """Send every logger's records (uvicorn's too: run it with log_config=None) to stderr."""
    if log_format not in LOG_FORMATS:
        raise CairnError(f"CAIRN_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, "
                         f"not {log_format!r}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else UtcFormatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
