"""The access log's batched lines look exactly like the configured formatter's."""

from __future__ import annotations

import json
import logging
import re

import pytest

from hybridgate.core import logs


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    logs.stop_logging()
    logs._out = logs._queue_handler = None
    root.handlers[:] = handlers
    root.setLevel(level)


def _lines(capsys, fmt: str) -> list[str]:
    logs.configure_logging(fmt)
    log = logs.AccessLog()
    for i in range(40):  # more than one GIL-yield batch
        log.add("chat id=%s status=%s ms=%.1f", f"req-{i}", 200, 1.25)
    log.flush()
    logging.getLogger("hybridgate.other").info("via the queue")
    logs.stop_logging()  # drains the queue into stderr
    return capsys.readouterr().err.splitlines()


def test_text_lines_match_the_formatter(capsys, restore_logging):
    lines = _lines(capsys, "text")
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    assert len(lines) == 41
    assert re.fullmatch(stamp + r" INFO hybridgate.request chat id=req-0 status=200 ms=1.2",
                        lines[0]), lines[0]
    assert lines[39].endswith("id=req-39 status=200 ms=1.2")
    assert re.fullmatch(stamp + " INFO hybridgate.other via the queue", lines[40])


def test_json_lines_match_the_formatter(capsys, restore_logging):
    docs = [json.loads(line) for line in _lines(capsys, "json")]
    assert docs[0]["msg"] == "chat id=req-0 status=200 ms=1.2"
    assert {k: docs[0][k] for k in ("level", "logger")} == {
        "level": "info", "logger": "hybridgate.request"}
    assert set(docs[0]) == set(docs[40]) == {"ts", "level", "logger", "msg"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", docs[0]["ts"])


def test_without_configure_logging_records_go_through_logging(caplog, restore_logging):
    log = logs.AccessLog()
    with caplog.at_level(logging.INFO, logger="hybridgate.request"):
        log.add("chat id=%s", "req-x")
        log.flush()
    assert [r.getMessage() for r in caplog.records] == ["chat id=req-x"]
