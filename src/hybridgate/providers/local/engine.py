"""The blocking token loop over one llama.cpp model.

Runs only on the model's own worker thread (a llama.cpp context is not thread-safe).
We drive ``Llama.generate`` ourselves rather than ``create_completion`` so that usage
is exact in every mode (we count the tokens we sampled), stop strings and
cancellation are checked per token, and prompt-prefix reuse of the KV cache works
across requests.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import llama_cpp
import numpy as np
from llama_cpp import Llama, LlamaGrammar
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from hybridgate.core.errors import InvalidRequest
from hybridgate.providers.local.control import ControlText
from hybridgate.providers.local.textstream import StopTextStream

_STRUCTURE = frozenset('{}[]":,`')  # JSON punctuation (and fences): not content

KV_TYPES = {"f16": llama_cpp.GGML_TYPE_F16, "q8_0": llama_cpp.GGML_TYPE_Q8_0,
            "q4_0": llama_cpp.GGML_TYPE_Q4_0}


@dataclass(slots=True)
class SamplingParams:
    max_tokens: int | None  # None: as many as the context allows, capped by the model default
    temperature: float = 0.8
    top_p: float = 0.95
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    grammar: LlamaGrammar | None = None
    confidence: bool = False  # keep the sampled tokens' log-probabilities (a cascade's)


@dataclass(slots=True)
class GenerationResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop", "length" or "cancelled"
    seconds: float = 0.0  # time on the model thread (prefill + decode), queueing excluded
    # with ``confidence``: (token text, log-probability) per sampled token
    token_logprobs: list[tuple[str, float]] | None = None

    @property
    def confidence(self) -> float | None:
        """Mean log-probability of the sampled tokens that carry content (not only JSON
        punctuation or whitespace: those are near-certain, and would dilute the doubt in
        a call's values), or None when not measured. Chosen on BFCL simple_python (an
        AUC of 0.81 for telling right calls from wrong against 0.74 for the plain mean;
        docs/benchmarks.md), not on the categories the cascade is judged on."""
        if not self.token_logprobs:
            return None
        content = [lp for text, lp in self.token_logprobs
                   if text.strip() and not set(text.strip()) <= _STRUCTURE]
        every = content or [lp for _, lp in self.token_logprobs]
        return sum(every) / len(every)


class Engine:
    """One loaded GGUF model and its chat template."""

    def __init__(self, path: Path, *, n_ctx: int, n_threads: int, n_batch: int,
                 kv_cache_type: str, flash_attn: bool | None, default_max_tokens: int,
                 vocab_only: bool = False) -> None:
        """``vocab_only``: the template and tokenizer without the weights, for a model
        that llama-server decodes (providers/local/server.py)."""
        kv = KV_TYPES[kv_cache_type]
        # A quantized V cache needs flash attention in llama.cpp.
        fa = flash_attn if flash_attn is not None else kv_cache_type != "f16"
        self.llm = Llama(str(path), n_ctx=n_ctx, n_threads=n_threads,
                         n_threads_batch=n_threads, n_batch=n_batch, type_k=kv, type_v=kv,
                         flash_attn=fa, verbose=False, vocab_only=vocab_only)
        self.n_ctx = n_ctx if vocab_only else self.llm.n_ctx()
        self.default_max_tokens = default_max_tokens
        template = self.llm.metadata.get("tokenizer.chat_template")
        self.chat_template = template
        self.supports_tools_natively = bool(template and "tools" in template)
        self.formatter = None
        if template:
            self.formatter = Jinja2ChatFormatter(
                template,
                eos_token=self._special_text(self.llm.token_eos()),
                bos_token=self._special_text(self.llm.token_bos()))
        self.control = ControlText(self._control_texts())

    def _control_texts(self) -> list[str]:
        """The text of every control token (role markers, end of turn, BOS/EOS...)."""
        vocab = self.llm._model.vocab
        out = []
        for tok in range(llama_cpp.llama_vocab_n_tokens(vocab)):
            if llama_cpp.llama_vocab_get_attr(vocab, tok) & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL:
                out.append(self._special_text(tok))
        return out

    def _special_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self.llm.detokenize([token], special=True).decode("utf-8", "replace")

    def close(self) -> None:
        self.llm.close()

    # ------------------------------------------------------------------ prompts

    def render_chat(self, messages: list[dict], tools: list[dict] | None) -> str:
        if self.formatter is None:
            raise InvalidRequest("this local model has no chat template; use /v1/completions",
                                 param="model", code="unsupported_model")
        try:
            return self.formatter(messages=self.control.escape(messages),
                                  tools=self.control.escape(tools)).prompt
        except Exception as e:  # the template's own raise_exception, or a Jinja error
            raise InvalidRequest(f"the model's chat template rejected these messages: {e}",
                                 param="messages") from None

    def tokenize_prompt(self, prompt: str, templated: bool) -> list[int]:
        """A plain prompt is all client text (BOS added, no special tokens parsed); a
        rendered chat prompt already holds BOS and the template's markers as text, and
        client text in it was escaped by ``render_chat`` (see ``ControlText``)."""
        if not templated:
            return self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
        tokens: list[int] = []
        for piece, special in self.control.segments(prompt):
            tokens += self.llm.tokenize(piece.encode("utf-8"), add_bos=False, special=special)
        return tokens

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    # ------------------------------------------------------------------ generation

    def budget(self, prompt_tokens: int, requested: int | None) -> int:
        """Tokens we may generate; a request that cannot fit is the client's error (400)."""
        room = self.n_ctx - prompt_tokens
        if room <= 0:
            raise InvalidRequest(
                f"this model's maximum context length is {self.n_ctx} tokens; the prompt "
                f"has {prompt_tokens}", param="messages", code="context_length_exceeded")
        if requested is None:
            return min(room, self.default_max_tokens)
        if requested > room:
            raise InvalidRequest(
                f"this model's maximum context length is {self.n_ctx} tokens; you asked for "
                f"{prompt_tokens} prompt + {requested} completion tokens",
                param="max_tokens", code="context_length_exceeded")
        return requested

    def generate(self, tokens: list[int], params: SamplingParams,
                 cancel: threading.Event, emit: Callable[[str], None]) -> GenerationResult:
        """Sample until EOG, a stop string, the token budget or ``cancel``; emit text."""
        limit = self.budget(len(tokens), params.max_tokens)
        if limit == 0:
            return GenerationResult("", len(tokens), 0, "length")
        self.llm.set_seed(params.seed if params.seed is not None else random.getrandbits(31))
        if params.seed is not None:
            # Reproducible means the same logits too: a prompt evaluated on top of a reused
            # prefix of the KV cache gives logits a few ulps off a fresh evaluation, which
            # at temperature 1 is enough to sample another first token. Seeded requests
            # therefore start from an empty cache.
            self.llm.reset()
        text = StopTextStream(params.stop)
        parts: list[str] = []
        produced = 0
        finish = "length"
        vocab = self.llm._model.vocab
        seen: list[tuple[str, float]] | None = [] if params.confidence else None
        gen: Iterator[int] = self.llm.generate(
            tokens, temp=params.temperature, top_p=params.top_p,
            presence_penalty=params.presence_penalty,
            frequency_penalty=params.frequency_penalty, grammar=params.grammar)
        try:
            for token in gen:
                if cancel.is_set():
                    finish = "cancelled"
                    break
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    finish = "stop"
                    break
                produced += 1
                raw = self.llm.detokenize([token])
                if seen is not None:
                    seen.append((raw.decode("utf-8", "replace"), self._logprob(token)))
                piece = text.feed(raw)
                if piece:
                    parts.append(piece)
                    emit(piece)
                if text.stopped:
                    finish = "stop"
                    break
                if produced >= limit:
                    break
        finally:
            gen.close()
        if not text.stopped:
            tail = text.flush()
            if tail:
                parts.append(tail)
                emit(tail)
        return GenerationResult("".join(parts), len(tokens), produced, finish,
                                token_logprobs=seen)

    def _logprob(self, token: int) -> float:
        """log p(token) under the model's own distribution (temperature 1, no grammar)
        at the position just sampled: the last output row of the context's logits."""
        ptr = llama_cpp.llama_get_logits_ith(self.llm._ctx.ctx, -1)
        logits = np.ctypeslib.as_array(ptr, shape=(self.llm.n_vocab(),))
        top = logits.max()
        return float(logits[token] - top - np.log(np.exp(logits - top).sum()))
