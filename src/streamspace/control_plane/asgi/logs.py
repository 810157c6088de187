"""Process logging: plain text or JSON (LOG_FORMAT=json), each line with pod name and request id."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

from streamspace.control_plane.asgi.request_context import request_id_var

_SECRET = re.compile(r"\b((?:token|ticket|stream)=)[^&\s\"']+")


class _ContextFilter(logging.Filter):
    def __init__(self, pod_name: str) -> None:
        super().__init__()
        self.pod_name = pod_name

    def filter(self, record: logging.LogRecord) -> bool:
        record.pod_name = self.pod_name
        record.request_id = request_id_var.get()
        message = record.getMessage()
        if "token=" in message or "ticket=" in message:
            # stream tokens, events tickets (and old clients' login tokens) ride in WebSocket
            # URLs: never log them
            record.msg, record.args = _SECRET.sub(r"\1[redacted]", message), None
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "pod_name": getattr(record, "pod_name", "-"),
            "request_id": getattr(record, "request_id", "-"),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(*, fmt: str, level: str, pod_name: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextFilter(pod_name))
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s [%(pod_name)s] [%(request_id)s] %(name)s: %(message)s"
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("uvicorn.access").setLevel("WARNING")
