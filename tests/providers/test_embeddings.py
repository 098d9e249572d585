"""The in-process MiniLM: concurrent callers of ``vectors`` share one encode call and
each gets its own rows, the same as asking alone; a failure reaches every waiter."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from hybridgate.config.settings import EmbeddingModel
from hybridgate.core.errors import UpstreamUnavailable
from hybridgate.providers.embeddings import EmbeddingProvider


def test_concurrent_callers_share_one_encode():
    async def main() -> None:
        p = EmbeddingProvider(EmbeddingModel(name="e"))
        with pytest.raises(UpstreamUnavailable):
            await p.vectors(["not loaded yet"])
        await p.start()
        texts = [f"question number {i} about cats" for i in range(12)]
        alone = [(await p.vectors([t]))[0] for t in texts[:2]]
        batches: list[int] = []
        encode = p._vectors
        p._vectors = lambda ts: (batches.append(len(ts)), encode(ts))[1]  # type: ignore[method-assign]
        got = await asyncio.gather(*(p.vectors([t]) for t in texts),
                                   p.vectors(texts[:3]))
        assert len(batches) <= 2 and sum(batches) == 15  # the first call, then the rest
        for t, v in zip(texts, got, strict=False):
            assert v.shape == (1, 384)
            assert float(v[0] @ p._vectors([t])[0]) == pytest.approx(1.0, abs=1e-5)
        assert np.allclose(got[0][0], alone[0], atol=1e-5)
        assert np.allclose(got[-1], np.stack([g[0] for g in got[:3]]), atol=1e-5)

        def broken(ts: list[str]) -> None:
            raise RuntimeError("model went away")
        p._vectors = broken  # type: ignore[method-assign,assignment]
        results = await asyncio.gather(p.vectors(["a"]), p.vectors(["b"]),
                                       return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)
        await p.close()

    asyncio.run(main())


def test_backlog_counts_the_texts_waiting_behind_a_running_call():
    async def main() -> None:
        p = EmbeddingProvider(EmbeddingModel(name="e"))
        await p.start()
        encode = p._vectors
        gate = threading.Event()
        p._vectors = lambda ts: (gate.wait(10), encode(ts))[1]  # type: ignore[method-assign]
        assert p.backlog() == 0
        first = asyncio.create_task(p.vectors(["running"]))
        await asyncio.sleep(0.05)  # the first call is in the model now
        assert p.backlog() == 0
        rest = [asyncio.create_task(p.vectors(t)) for t in (["a", "b", "c"], ["d", "e"])]
        await asyncio.sleep(0)
        assert p.backlog() == 5
        gate.set()
        await asyncio.gather(first, *rest)
        assert p.backlog() == 0
        await p.close()
    asyncio.run(main())
