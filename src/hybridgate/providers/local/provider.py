"""LocalProvider: a GGUF model on this machine, run by llama.cpp.

Two engines behind one provider. ``embedded`` (the default): llama.cpp in-process, one
request at a time on the model's own worker thread; requests queue in arrival order (the
executor's FIFO queue) and the event loop stays free while tokens are generated. Tokens
cross to the loop through an asyncio queue; when the client goes away, the generator is
closed, which sets a flag the token loop checks before every token. ``server``:
llama.cpp's own server decodes up to ``parallel`` requests together (server.py); the
worker thread then only renders templates and tokenizes.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonschema

from hybridgate.config.settings import LocalModel
from hybridgate.core import schemas
from hybridgate.core.errors import (
    InvalidOutput,
    InvalidRequest,
    UpstreamError,
    UpstreamUnavailable,
)
from hybridgate.core.ids import new_id, now
from hybridgate.core.types import (
    AssistantMessage,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    ChunkChoice,
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    Delta,
    FunctionCallDelta,
    Tool,
    ToolCallDelta,
    Usage,
)
from hybridgate.models.catalog import get_model
from hybridgate.models.store import ModelStoreError, resolve_gguf
from hybridgate.providers.base import Provider
from hybridgate.providers.local import constraints
from hybridgate.providers.local.engine import Engine, GenerationResult, SamplingParams
from hybridgate.providers.local.prompt import template_messages
from hybridgate.providers.local.server import LlamaServer, ShareClock
from hybridgate.providers.local.toolcalls import ToolMarkupSplitter, parse_tool_calls

_DONE = object()


class _ChatPlan:
    """Everything decided about a chat request before the first token."""

    def __init__(self, tokens: list[int], params: SamplingParams, tools: list[Tool] | None,
                 schema: dict[str, Any] | None) -> None:
        self.tokens = tokens
        self.params = params
        self.tools = tools  # tools the model may call (None: plain text answer)
        self.schema = schema  # response_format json_schema to validate against


class LocalProvider(Provider):
    kind = "local"
    owned_by = "local"
    supports_completions = True

    def __init__(self, cfg: LocalModel) -> None:
        super().__init__(cfg.name)
        self.cfg = cfg
        self.engine: Engine | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-{cfg.name}")
        self._in_flight = 0  # requests generating or waiting for the model thread
        self._depth: Any = None  # the queue-depth gauge, with metrics
        self._speed: Callable[[str, int, float], None] | None = None
        self.server: LlamaServer | None = None  # engine: server
        # how many sequences decode at once (the transformers engine has one, and no
        # `engine` field)
        self.served = getattr(cfg, "engine", "embedded") == "server"
        self.running = cfg.parallel if self.served else 1
        self._clock = ShareClock()
        entry = get_model(cfg.model)
        self.supports_chat = entry.chat if entry is not None else True

    async def start(self) -> None:
        try:
            path = resolve_gguf(self.cfg.model)
        except ModelStoreError as e:
            raise UpstreamUnavailable(str(e)) from None
        threads = self.cfg.n_threads or os.cpu_count() or 1
        engine = await asyncio.get_running_loop().run_in_executor(
            self._executor, lambda: self._load(path, threads))
        if self.served:
            server = LlamaServer(self.cfg, path, threads)
            try:
                await server.start()
            except BaseException:
                engine.close()
                raise
            self.server = server
        self.engine = engine
        if not engine.chat_template:
            self.supports_chat = False

    def _load(self, path: Path, threads: int) -> Engine:
        """Runs on the model thread: the engine this provider drives."""
        cfg = self.cfg
        return Engine(path, n_ctx=cfg.n_ctx, n_threads=threads, n_batch=cfg.n_batch,
                      kv_cache_type=cfg.kv_cache_type, flash_attn=cfg.flash_attn,
                      default_max_tokens=cfg.default_max_tokens,
                      vocab_only=self.served)

    async def close(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await server.close()
        engine, self.engine = self.engine, None
        if engine is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, engine.close)
        self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def ready(self) -> bool:
        return self.engine is not None and (not self.served or
                                            (self.server is not None and self.server.ready))

    def observe(self, metrics: Any) -> None:
        self._depth = metrics.queue_gauge(self.name)
        self._speed = metrics.local_speed

    # ------------------------------------------------------------------ admission

    @contextmanager
    def _slot(self) -> Iterator[None]:
        """One request's place: the ones generating (one, or ``parallel`` with the
        server engine) and ``max_queue`` waiting behind them; past that, 503
        ``model_overloaded`` at once (execute then tries elsewhere)."""
        limit = self.cfg.max_queue
        if limit is not None and self._in_flight >= limit + self.running:
            raise UpstreamUnavailable(
                f"local model {self.name} is busy ({self._in_flight} requests ahead; "
                f"max_queue {limit})", code="model_overloaded")
        self._in_flight += 1
        if self._depth is not None:
            self._depth.inc()
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._depth is not None:
                self._depth.dec()

    async def _in_slot(self, stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """``stream`` while holding a slot; closed at once when the client leaves, so
        the model stops at the next token."""
        with self._slot():
            try:
                async for item in stream:
                    yield item
            finally:
                await stream.aclose()  # type: ignore[attr-defined]

    async def chat(self, req: ChatRequest) -> ChatResponse:
        with self._slot():
            return await self._chat(req)

    def chat_stream(self, req: ChatRequest) -> AsyncIterator[ChatChunk]:
        return self._in_slot(self._chat_stream(req))

    async def complete(self, req: CompletionRequest) -> CompletionResponse:
        with self._slot():
            return await self._complete(req)

    def complete_stream(self, req: CompletionRequest) -> AsyncIterator[CompletionResponse]:
        return self._in_slot(self._complete_stream(req))

    def _engine(self) -> Engine:
        if self.engine is None:
            raise UpstreamUnavailable(f"local model {self.name} is not loaded")
        return self.engine

    # ------------------------------------------------------------------ planning

    @staticmethod
    def _check_n(n: int | None) -> None:
        if n is not None and n > 1:
            raise InvalidRequest("n > 1 is not supported by local models", param="n",
                                 code="unsupported_value")

    def _plan_chat(self, req: ChatRequest) -> _ChatPlan:
        """Runs on the worker thread: tokenizing is CPU work."""
        engine = self._engine()
        self._check_n(req.n)
        choice = req.tool_choice
        tools = req.tools if req.tools and choice != "none" else None
        messages, template_tools = template_messages(req.messages, tools,
                                                     engine.supports_tools_natively)
        prompt = engine.render_chat(messages, template_tools)
        tokens = engine.tokenize_prompt(prompt, templated=True)
        grammar = None
        schema = None
        bound = constraints.string_bound(engine.budget(len(tokens), req.token_limit))
        if tools and choice == "required":
            grammar = constraints.tool_call(tools, bound)
        elif tools and choice is not None and not isinstance(choice, str):
            named = [t for t in tools if t.function.name == choice.function.name]
            grammar = constraints.tool_call(named, bound)
            tools = named
        elif tools and self.cfg.auto_tool_grammar and req.response_format is None:
            grammar = constraints.text_or_calls(tools, bound)
        elif req.response_format is not None and req.response_format.type == "json_object":
            grammar = constraints.any_json(bound)
        elif req.response_format is not None and req.response_format.type == "json_schema":
            assert req.response_format.json_schema is not None  # checked in api/
            schema = req.response_format.json_schema.schema or {}
            grammar = constraints.json_schema(schema, bound)
        params = SamplingParams(
            max_tokens=req.token_limit,
            temperature=req.temperature if req.temperature is not None else 0.8,
            top_p=req.top_p if req.top_p is not None else 0.95,
            stop=req.stop_list, seed=req.seed,
            presence_penalty=req.presence_penalty or 0.0,
            frequency_penalty=req.frequency_penalty or 0.0,
            grammar=grammar)
        return _ChatPlan(tokens, params, tools, schema)

    def _plan_completion(self, req: CompletionRequest) -> tuple[list[int], SamplingParams]:
        engine = self._engine()
        self._check_n(req.n)
        if req.echo or req.suffix:
            raise InvalidRequest("echo and suffix are not supported by local models",
                                 param="echo" if req.echo else "suffix")
        prompt = req.prompt
        if isinstance(prompt, list):
            if len(prompt) != 1 and not all(isinstance(t, int) for t in prompt):
                raise InvalidRequest("local models take one prompt per request", param="prompt")
            if all(isinstance(t, int) for t in prompt):
                tokens = list(prompt)  # type: ignore[arg-type]
            else:
                first = prompt[0]
                tokens = (list(first) if isinstance(first, list)
                          else engine.tokenize_prompt(first, templated=False))
        else:
            tokens = engine.tokenize_prompt(prompt, templated=False)
        if not tokens:
            raise InvalidRequest("prompt is empty", param="prompt")
        params = SamplingParams(
            max_tokens=req.max_tokens if req.max_tokens is not None else 16,
            temperature=req.temperature if req.temperature is not None else 0.8,
            top_p=req.top_p if req.top_p is not None else 0.95,
            stop=req.stop_list, seed=req.seed,
            presence_penalty=req.presence_penalty or 0.0,
            frequency_penalty=req.frequency_penalty or 0.0)
        return tokens, params

    # ------------------------------------------------------------------ the bridge

    async def _run(self, job: Callable[[threading.Event, Callable[[Any], None]], Any]
                   ) -> AsyncIterator[Any]:
        """Run ``job(cancel, emit)`` on the model thread; yield what it emits, then its result.

        Leaving early (client disconnect, error) sets ``cancel``; a job still waiting in
        the queue is dropped without running.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancel = threading.Event()

        def emit(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            if cancel.is_set():
                return
            t0 = time.perf_counter()
            try:
                result = job(cancel, emit)
                if isinstance(result, GenerationResult):  # the engine's own time, not queueing
                    result.seconds = time.perf_counter() - t0
                    if self._speed is not None:
                        self._speed(self.name, result.completion_tokens, result.seconds)
                emit((_DONE, result, None))
            except BaseException as e:  # crosses threads; re-raised on the loop
                emit((_DONE, None, e))

        future = loop.run_in_executor(self._executor, work)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, tuple) and item and item[0] is _DONE:
                    _, result, error = item
                    if error is not None:
                        if isinstance(error, InvalidRequest):
                            raise error
                        raise UpstreamError(f"local model {self.name} failed: {error}") from None
                    yield result
                    return
                yield item
        finally:
            cancel.set()
            future.cancel()

    def _generation(self, tokens: list[int], params: SamplingParams
                    ) -> AsyncIterator[str | GenerationResult]:
        """Text pieces, then the ``GenerationResult``, from whichever engine runs."""
        engine = self._engine()
        if self.server is not None:
            return self._served(engine, tokens, params)
        return self._run(lambda c, e: engine.generate(tokens, params, c, e))

    async def _served(self, engine: Engine, tokens: list[int], params: SamplingParams
                      ) -> AsyncIterator[str | GenerationResult]:
        assert self.server is not None
        limit = engine.budget(len(tokens), params.max_tokens)
        if limit == 0:
            yield GenerationResult("", len(tokens), 0, "length")
            return
        stream = self.server.generate(tokens, params, limit, self._clock)
        try:
            async for item in stream:
                if isinstance(item, GenerationResult) and self._speed is not None:
                    self._speed(self.name, item.completion_tokens, item.seconds)
                yield item
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    async def _generate(self, tokens: list[int], params: SamplingParams) -> GenerationResult:
        """A whole generation, no streaming: the last item is the result."""
        result: GenerationResult | None = None
        stream = self._generation(tokens, params)
        try:
            async for item in stream:
                result = item  # type: ignore[assignment]
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        assert isinstance(result, GenerationResult)
        return result

    async def _plan(self, fn: Callable[[], Any]) -> Any:
        """Tokenizing a long prompt is CPU work: do it on the model thread too."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    # ------------------------------------------------------------------ chat

    def _validate_schema(self, plan: _ChatPlan, text: str, finish: str) -> None:
        if plan.schema is None or finish != "stop":
            return
        try:
            schemas.validator(plan.schema).validate(json.loads(text))
        except (ValueError, jsonschema.ValidationError) as e:
            msg = getattr(e, "message", str(e))
            err = InvalidOutput(f"local model output does not match the json_schema: {msg}")
            err.answer = text
            raise err from None

    async def _chat(self, req: ChatRequest) -> ChatResponse:
        plan: _ChatPlan = await self._plan(lambda: self._plan_chat(req))
        plan.params.confidence = True  # a cascade may ask how sure the model was
        result = await self._generate(plan.tokens, plan.params)
        content: str | None = result.text
        finish = result.finish_reason
        calls = None
        if plan.tools:
            content, found = parse_tool_calls(result.text, plan.tools)
            if found:
                calls, finish = found, "tool_calls"
                content = content or None
        # (a non-streamed answer is checked, repaired or re-asked in execute/checks)
        msg = AssistantMessage(content=content)
        if calls:
            msg.tool_calls = calls
        resp = ChatResponse(
            id=new_id("chatcmpl"), created=now(), model=self.name,
            choices=[Choice(index=0, message=msg, finish_reason=finish)],
            usage=Usage.of(result.prompt_tokens, result.completion_tokens, result.seconds))
        if result.confidence is not None:
            resp.confidence = result.confidence
        return resp

    async def _chat_stream(self, req: ChatRequest) -> AsyncIterator[ChatChunk]:
        plan: _ChatPlan = await self._plan(lambda: self._plan_chat(req))
        cid, created = new_id("chatcmpl"), now()

        def chunk(delta: Delta, finish: str | None = None) -> ChatChunk:
            return ChatChunk(id=cid, created=created, model=self.name,
                             choices=[ChunkChoice(index=0, delta=delta, finish_reason=finish)])

        yield chunk(Delta(role="assistant", content=""))
        splitter = ToolMarkupSplitter() if plan.tools else None
        result: GenerationResult | None = None
        async for item in self._generation(plan.tokens, plan.params):
            if isinstance(item, GenerationResult):
                result = item
                break
            text = splitter.feed(item) if splitter else item
            if text:
                yield chunk(Delta(content=text))
        assert result is not None
        finish = result.finish_reason
        if splitter is not None:
            tail = splitter.flush()
            if tail:
                yield chunk(Delta(content=tail))
            if splitter.markup is not None:
                after, calls = parse_tool_calls(splitter.markup, plan.tools or [])
                if calls:
                    finish = "tool_calls"
                    if after:  # text after a fenced call
                        yield chunk(Delta(content=after))
                    for i, call in enumerate(calls):
                        yield chunk(Delta(tool_calls=[ToolCallDelta(
                            index=i, id=call.id, type="function",
                            function=FunctionCallDelta(name=call.function.name,
                                                       arguments=call.function.arguments))]))
                else:
                    yield chunk(Delta(content=splitter.markup))
        self._validate_schema(plan, result.text, finish)
        yield chunk(Delta(), finish)
        yield ChatChunk(id=cid, created=created, model=self.name, choices=[],
                        usage=Usage.of(result.prompt_tokens, result.completion_tokens,
                                       result.seconds))

    # ------------------------------------------------------------------ completions

    async def _complete(self, req: CompletionRequest) -> CompletionResponse:
        tokens, params = await self._plan(lambda: self._plan_completion(req))
        result = await self._generate(tokens, params)
        return CompletionResponse(
            id=new_id("cmpl"), created=now(), model=self.name,
            choices=[CompletionChoice(index=0, text=result.text,
                                      finish_reason=result.finish_reason)],
            usage=Usage.of(result.prompt_tokens, result.completion_tokens, result.seconds))

    async def _complete_stream(self, req: CompletionRequest
                               ) -> AsyncIterator[CompletionResponse]:
        tokens, params = await self._plan(lambda: self._plan_completion(req))
        cid, created = new_id("cmpl"), now()
        async for item in self._generation(tokens, params):
            if isinstance(item, GenerationResult):
                yield CompletionResponse(id=cid, created=created, model=self.name, choices=[
                    CompletionChoice(index=0, text="", finish_reason=item.finish_reason)])
                yield CompletionResponse(id=cid, created=created, model=self.name, choices=[],
                                         usage=Usage.of(item.prompt_tokens,
                                                        item.completion_tokens, item.seconds))
                return
            yield CompletionResponse(id=cid, created=created, model=self.name, choices=[
                CompletionChoice(index=0, text=item, finish_reason=None)])
