"""Configure logging once at an entry point: readable text on a terminal, JSON lines otherwise.

Every record logged while a request is served carries that request's id as `request_id`.
"""

import json
import logging
import sys
from contextvars import ContextVar
from typing import Any

_STANDARD_ATTRIBUTES = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message"}
# Set by the request middleware; copied into worker threads with the rest of the context.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


class RequestIdFilter(logging.Filter):
    """Add the id of the request being served, if any, to every record as `request_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach the request id and keep the record."""
        request_id = request_id_var.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        return True


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object, with the `extra` fields at top level."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a JSON line."""
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_extra_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """Render a record as one readable line, with the `extra` fields as key=value pairs."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a text line."""
        fields = " ".join(f"{key}={value}" for key, value in _extra_fields(record).items())
        line = (
            f"{self.formatTime(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        )
        if fields:
            line = f"{line} {fields}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def configure_logging(log_format: str, *, verbose: bool = False) -> None:
    """Send logs to stderr as text on a terminal and as JSON elsewhere (or as `log_format` says)."""
    is_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if is_json else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD_ATTRIBUTES and not key.startswith("_")
    }
