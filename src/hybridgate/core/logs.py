"""Logging set-up: one line per request, text or JSON. Prompts and secrets are never
logged: request handlers log model names, status, timings and token counts only.

Records go through a queue to a listener thread, so writing to stderr never happens
on the event loop (profiling showed the write at ~6% of a proxied request's CPU).
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import queue
import sys
import time


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
               "level": record.levelname.lower(), "logger": record.name,
               "msg": record.getMessage()}
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)


_listener: logging.handlers.QueueListener | None = None


def configure_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    global _listener
    out = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        out.setFormatter(JsonFormatter())
    else:
        out.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    if _listener is not None:
        _listener.stop()
    q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _listener = logging.handlers.QueueListener(q, out)
    _listener.start()
    atexit.register(_listener.stop)
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(q)]
    root.setLevel(level)
