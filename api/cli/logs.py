"""Process logs: one line a record, with its UTC time (ISO 8601), level and logger name."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class UtcFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def configure_logging(level: int = logging.INFO) -> None:
    """Send every logger's records (uvicorn's too: run it with log_config=None) to stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(UtcFormatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
