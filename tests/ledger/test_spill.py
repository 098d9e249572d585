"""The spill file is shared by every process of a gateway (``--workers N``): one may
replay it while another appends. Nothing appended may be lost."""

from __future__ import annotations

import threading
import time

from hybridgate.ledger.record import Record
from hybridgate.ledger.writer import Ledger
from tests.ledger.helpers import ledger_rows


def _records(prefix: str, n: int) -> list[Record]:
    return [Record(id=f"{prefix}-{i}", ts=time.time(), requested_model="m", endpoint="chat",
                   status=200) for i in range(n)]


def test_replaying_while_another_writer_appends_loses_nothing(tmp_path):
    """Two ledgers on one spill path stand for two worker processes (flock locks are per
    open file, so they contend as processes do): one appends batch after batch while the
    other replays over and over. Every record must reach the database exactly once."""
    spill = tmp_path / "ledger-spill.jsonl"
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    appender = Ledger(url, required=False, spill_path=spill)
    replayer = Ledger(url, required=False, spill_path=spill)
    replayer.store.connect()
    written: list[str] = []
    stop = threading.Event()

    def append() -> None:
        batch = 0
        while not stop.is_set():
            recs = _records(f"req-{batch}", 20)
            appender._spill(recs)
            written.extend(r.id for r in recs)
            batch += 1

    t = threading.Thread(target=append)
    t.start()
    try:
        deadline = time.time() + 3
        while time.time() < deadline:
            replayer._replay_spill()
    finally:
        stop.set()
        t.join()
    replayer._replay_spill()
    replayer.store.close()
    rows = ledger_rows(url)
    assert len(written) > 1000, "too few appends to prove anything"
    missing = [i for i in written if i not in rows]
    assert not missing, f"{len(missing)} of {len(written)} spilled records were lost"
    assert not list(tmp_path.glob("ledger-spill.jsonl*"))


def test_a_claim_left_by_a_crashed_replayer_is_replayed(tmp_path):
    spill = tmp_path / "ledger-spill.jsonl"
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url, required=False, spill_path=spill)
    ledger._spill(_records("a", 3))
    spill.rename(tmp_path / "ledger-spill.jsonl.replay-otherhost-123-dead")  # it died here
    ledger._spill(_records("b", 2))
    ledger.store.connect()
    ledger._replay_spill()
    ledger.store.close()
    assert set(ledger_rows(url)) == {"a-0", "a-1", "a-2", "b-0", "b-1"}
    assert not list(tmp_path.glob("ledger-spill.jsonl*"))
