"""llama.cpp's own server as the local engine: several requests decoded together.

The embedded engine decodes one sequence at a time, so a team's eighth client waits for
seven answers. ``llama-server`` (built from the same llama.cpp source as the in-process
wheel, scripts/install_llama_server.sh) puts up to ``parallel`` sequences into every
batch, lets new requests join between steps, keeps each slot's KV cache for the next
request with the same prefix, and can decode speculatively. Writing that scheduler
ourselves would duplicate the engine; supervising it is small.

The split of work keeps every guarantee of the embedded path: the gateway renders the
chat template, tokenizes (client text as text, never as control tokens: ``ControlText``),
builds the grammar and parses tool calls; the server receives token ids and a GBNF
grammar and only decodes. It listens on 127.0.0.1 only, on a port picked at start, and
answers only with a key made at each start (passed in its environment, not its argv,
which every local user can read): another process on the host cannot use the model
around the gateway's keys, budgets and ledger.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from hybridgate.config.settings import LocalModel
from hybridgate.core.errors import UpstreamError, UpstreamUnavailable
from hybridgate.models.store import ModelStoreError, resolve_gguf
from hybridgate.providers.http import Upstream
from hybridgate.providers.local.engine import GenerationResult, SamplingParams
from hybridgate.providers.sse import iter_events

log = logging.getLogger("hybridgate.local")

_STOP_TYPES = {"eos": "stop", "word": "stop", "limit": "length"}
_ENCODE = msgspec.json.Encoder()
_DECODE = msgspec.json.Decoder()
# prompt lookup matches the last 4 tokens (llama.cpp's default, 12, rarely finds a match
# in a short prompt); measured with it: docs/benchmarks.md
NGRAM_N = 4
START_TIMEOUT = 120.0  # s for a model to load (the 1.5B model takes ~3 s here)


def find_binary(configured: str | None) -> Path:
    """``server_binary``, else ``$HYBRIDGATE_LLAMA_SERVER``, else the one the install
    script put beside this Python, else ``llama-server`` on PATH."""
    for candidate in (configured, os.environ.get("HYBRIDGATE_LLAMA_SERVER"),
                      str(Path(sys.executable).parent / "llama-server"),
                      shutil.which("llama-server")):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise UpstreamUnavailable(
        "engine: server needs llama.cpp's llama-server; build it with "
        "`scripts/install_llama_server.sh .venv/bin/pip` (make install does)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the gateway dies, even by SIGKILL, so no
    orphaned engine keeps the cores busy (Linux's PR_SET_PDEATHSIG). Not SIGTERM: an
    orphan has no one left to answer, and a graceful stop under load took over 15 s."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except OSError:
        pass


class ShareClock:
    """Each request's share of the engine's busy time.

    With several sequences in one batch, a request's wall time is not its cost: eight
    requests decoded together for 10 s cost 10 s of hardware, not 80. The clock runs at
    1/n while n requests are active; a request's share is how far it advanced while the
    request ran, so the shares of all requests add up to the time the engine was busy.
    """

    def __init__(self) -> None:
        self._active = 0
        self._virtual = 0.0
        self._last = time.perf_counter()

    def _advance(self) -> float:
        t = time.perf_counter()
        if self._active:
            self._virtual += (t - self._last) / self._active
        self._last = t
        return self._virtual

    def enter(self) -> float:
        mark = self._advance()
        self._active += 1
        return mark

    def leave(self, mark: float) -> float:
        share = self._advance() - mark
        self._active -= 1
        return share


class LlamaServer:
    """One supervised llama-server process: started with the gateway, restarted when it
    dies, stopped with the gateway."""

    def __init__(self, cfg: LocalModel, gguf: Path, threads: int) -> None:
        self.name = cfg.name
        self.cfg = cfg
        binary = find_binary(cfg.server_binary)
        kv = cfg.kv_cache_type
        fa = cfg.flash_attn if cfg.flash_attn is not None else kv != "f16"
        self.argv = [
            str(binary), "--model", str(gguf), "--alias", cfg.name,
            # every slot holds a whole request; one unified cache lets a long request use
            # room the others do not need
            "--ctx-size", str(cfg.n_ctx * cfg.parallel), "--parallel", str(cfg.parallel),
            "--kv-unified", "--cont-batching",
            "--threads", str(threads), "--threads-batch", str(threads),
            "--batch-size", str(max(cfg.n_batch, 64)), "--ubatch-size", str(cfg.n_batch),
            "--cache-type-k", kv, "--cache-type-v", kv, "--flash-attn", "on" if fa else "off",
            "--no-webui", "--jinja", "--log-disable", "--no-slots",
        ]
        if cfg.speculative == "ngram":
            # prompt lookup: the last NGRAM_N tokens found earlier in the context propose
            # what followed them there
            self.argv += ["--spec-type", "ngram-simple",
                          "--spec-ngram-simple-size-n", str(NGRAM_N),
                          "--spec-ngram-simple-size-m", str(cfg.draft_max)]
        elif cfg.speculative == "draft":
            assert cfg.draft_model is not None  # config checks
            try:
                draft = resolve_gguf(cfg.draft_model)
            except ModelStoreError as e:
                raise UpstreamUnavailable(str(e)) from None
            # the type is named: with a draft model alone, llama-server loads it and
            # does not speculate
            self.argv += ["--spec-type", "draft-simple", "--model-draft", str(draft),
                          "--spec-draft-n-max", str(cfg.draft_max),
                          "--threads-draft", str(threads)]
        self.proc: asyncio.subprocess.Process | None = None
        self.upstream: Upstream | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=40)
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self.upstream is not None

    async def start(self) -> None:
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise())

    async def _spawn(self) -> None:
        port = _free_port()
        key = secrets.token_urlsafe(32)
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, "--host", "127.0.0.1", "--port", str(port),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, preexec_fn=_die_with_parent,
            env={**os.environ, "LLAMA_API_KEY": key})
        self._reader = asyncio.create_task(self._read_stderr(self.proc))
        base = f"http://127.0.0.1:{port}"
        try:
            await self._wait_healthy(base)
        except BaseException:
            await self._stop_process()
            raise
        upstream = Upstream(f"local:{self.name}", base, {"authorization": f"Bearer {key}"},
                            timeout=600.0, connect_timeout=5.0)
        await upstream.start()
        self.upstream = upstream
        log.info("llama-server for %s up on %s (pid %d)", self.name, base, self.proc.pid)

    async def _read_stderr(self, proc: asyncio.subprocess.Process) -> None:
        """Keep the last lines the server wrote: they say why it died."""
        assert proc.stderr is not None
        async for line in proc.stderr:
            self._stderr.append(line.decode("utf-8", "replace").rstrip())

    async def _wait_healthy(self, base: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.returncode is not None:
                    break
                try:
                    async with session.get(base + "/health") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass  # not listening yet
                await asyncio.sleep(0.1)
        tail = " | ".join(list(self._stderr)[-5:]) or "no output"
        raise UpstreamUnavailable(f"local model {self.name}: llama-server did not start "
                                  f"({tail})")

    async def _supervise(self) -> None:
        """Restart a server that died (with a growing pause if it keeps dying);
        requests in between fail over as ``UpstreamUnavailable``."""
        pause = 1.0
        while not self._closing:
            assert self.proc is not None
            code = await self.proc.wait()
            if self._closing:
                return
            upstream, self.upstream = self.upstream, None
            if upstream is not None:
                await upstream.close()
            log.error("llama-server for %s exited with %s; restarting (last output: %s)",
                      self.name, code, " | ".join(list(self._stderr)[-3:]))
            while not self._closing:
                await asyncio.sleep(pause)
                try:
                    await self._spawn()
                    pause = 1.0
                    break
                except UpstreamUnavailable as e:
                    log.error("%s", e)
                    pause = min(pause * 2, 30.0)

    async def _stop_process(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def close(self) -> None:
        self._closing = True
        if self.upstream is not None:
            await self.upstream.close()
            self.upstream = None
        await self._stop_process()
        for task in (self._supervisor, self._reader):
            if task is not None:
                task.cancel()

    # ------------------------------------------------------------------ generation

    async def generate(self, tokens: list[int], params: SamplingParams, limit: int,
                       clock: ShareClock) -> AsyncIterator[str | GenerationResult]:
        """Stream one generation: text pieces, then the ``GenerationResult``.

        Leaving early closes the connection; the server cancels the sequence at its next
        step. ``limit`` is the token budget the engine already checked against the
        context. The result's seconds are this request's share of the engine's time.
        """
        upstream = self.upstream
        if upstream is None:
            raise UpstreamUnavailable(f"local model {self.name} is restarting")
        body: dict[str, Any] = {
            "prompt": tokens, "n_predict": limit, "stream": True,
            # the embedded engine's sampler (llama-cpp-python's defaults), stated in full
            "temperature": params.temperature, "top_p": params.top_p, "top_k": 40,
            "min_p": 0.05, "repeat_penalty": 1.0,
            "presence_penalty": params.presence_penalty,
            "frequency_penalty": params.frequency_penalty,
            "seed": params.seed if params.seed is not None else -1,
            # seeded: from an empty cache, as embedded (a reused prefix's logits differ
            # by a few ulps from a fresh evaluation)
            "cache_prompt": params.seed is None,
            "stop": params.stop, "n_probs": 1 if params.confidence else 0,
            "sse_ping_interval": -1,
        }
        if params.grammar is not None:
            body["grammar"] = params.grammar._grammar  # the GBNF text it was built from
        parts: list[str] = []
        seen: list[tuple[str, float]] | None = [] if params.confidence else None
        final: dict[str, Any] | None = None
        mark = clock.enter()
        try:
            async with upstream.post_stream("/completion", _ENCODE.encode(body)) as blocks:
                async for event in iter_events(blocks):
                    doc = _DECODE.decode(event.data)
                    if seen is not None:
                        seen += [(p.get("token", ""), float(p.get("logprob", 0.0)))
                                 for p in doc.get("completion_probabilities") or ()]
                    piece = doc.get("content") or ""
                    if piece:
                        parts.append(piece)
                        yield piece
                    if doc.get("stop"):
                        final = doc
                        break
        except UpstreamError as e:
            if self.upstream is None and not isinstance(e, UpstreamUnavailable):
                # died under us: the supervisor restarts it; execute may fail over
                raise UpstreamUnavailable(f"local model {self.name} is restarting") from None
            raise
        finally:
            share = clock.leave(mark)
        if final is None:
            raise UpstreamError(f"local model {self.name}: the engine's stream ended early")
        finish = _STOP_TYPES.get(final.get("stop_type", ""), "stop")
        produced = int(final.get("tokens_predicted") or 0)
        if final.get("stop_type") == "eos":
            produced -= 1  # the end-of-generation token: not counted (as embedded)
        yield GenerationResult("".join(parts), len(tokens), produced, finish,
                               seconds=share, token_logprobs=seen)
