"""The token loop over a GGUF model run by Hugging Face transformers, with a TurboQuant cache.

Why a second engine: llama.cpp's KV cache types stop at q4_0; transformers lets us own the
cache, so long contexts can live in TurboQuant codes (hybridgate.turboquant.kv_cache). It
has the same interface as ``engine.Engine`` (render, tokenize, budget, generate), so the
local provider's request handling, streaming and cancellation are shared. It is slower than
llama.cpp per token (float32 weights, Python per step): the trade is memory for speed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

from hybridgate.core.errors import InvalidRequest
from hybridgate.providers.local.control import ControlText
from hybridgate.providers.local.engine import Engine, GenerationResult, SamplingParams
from hybridgate.providers.local.textstream import StopTextStream
from hybridgate.turboquant.kv_cache import TurboQuantCache, cache_nbytes

PREFILL_CHUNK = 512  # long prompts go through the cache in chunks: bounded activations


class TransformersEngine:
    def __init__(self, path: Path, *, n_ctx: int, n_threads: int, kv_cache: str,
                 kv_bits: float, kv_residual: int, default_max_tokens: int) -> None:
        torch.set_num_threads(n_threads)
        self.tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        self.model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                          dtype=torch.float32).eval()
        self.n_ctx = n_ctx
        self.default_max_tokens = default_max_tokens
        self.kv_cache, self.kv_bits, self.kv_residual = kv_cache, kv_bits, kv_residual
        self.chat_template: str | None = self.tokenizer.chat_template
        self.supports_tools_natively = bool(self.chat_template and "tools" in self.chat_template)
        eos = self.model.generation_config.eos_token_id
        self.eos = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            self.eos.add(self.tokenizer.eos_token_id)
        self.last_cache_bytes = 0  # what the last request's cache held at its end
        self.control = ControlText(
            t.content for t in self.tokenizer.added_tokens_decoder.values() if t.special)

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]

    def render_chat(self, messages: list[dict], tools: list[dict] | None) -> str:
        if not self.chat_template:
            raise InvalidRequest("this local model has no chat template; use /v1/completions",
                                 param="model", code="unsupported_model")
        try:
            return self.tokenizer.apply_chat_template(
                self.control.escape(messages), tools=self.control.escape(tools),
                tokenize=False, add_generation_prompt=True)
        except Exception as e:  # the template's own raise_exception, or a Jinja error
            raise InvalidRequest(f"the model's chat template rejected these messages: {e}",
                                 param="messages") from None

    def tokenize_prompt(self, prompt: str, templated: bool) -> list[int]:
        """As ``Engine.tokenize_prompt``: client text never becomes control tokens."""
        if not templated:
            return self.tokenizer(prompt, add_special_tokens=True,
                                  split_special_tokens=True).input_ids
        tokens: list[int] = []
        for piece, special in self.control.segments(prompt):
            tokens += self.tokenizer(piece, add_special_tokens=False,
                                     split_special_tokens=not special).input_ids
        return tokens

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    budget = Engine.budget

    def new_cache(self) -> DynamicCache | TurboQuantCache:
        if self.kv_cache == "turboquant":
            return TurboQuantCache(self.model.config, bits=self.kv_bits,
                                   residual=self.kv_residual)
        return DynamicCache(config=self.model.config)

    @staticmethod
    def _sample(logits: torch.Tensor, params: SamplingParams, counts: dict[int, int],
                rng: torch.Generator) -> int:
        for token, n in counts.items():  # OpenAI's presence and frequency penalties
            logits[token] -= params.presence_penalty + params.frequency_penalty * n
        if params.temperature <= 0:
            return int(logits.argmax())
        probs = torch.softmax(logits / params.temperature, dim=-1)
        if params.top_p < 1:
            sorted_p, order = probs.sort(descending=True)
            keep = sorted_p.cumsum(0) - sorted_p < params.top_p
            probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
        return int(torch.multinomial(probs, 1, generator=rng))

    def generate(self, tokens: list[int], params: SamplingParams,
                 cancel: threading.Event, emit: Callable[[str], None]) -> GenerationResult:
        if params.grammar is not None:  # constrained output needs llama.cpp's grammars
            raise InvalidRequest("tool_choice 'required' or a named tool, and json response "
                                 "formats, need a llama.cpp local model (provider: local)",
                                 param="model", code="unsupported_model")
        limit = self.budget(len(tokens), params.max_tokens)
        rng = torch.Generator()
        rng.manual_seed(params.seed if params.seed is not None else torch.seed())
        cache = self.new_cache()
        text = StopTextStream(params.stop)
        parts: list[str] = []

        def put(piece: str) -> None:
            parts.append(piece)
            emit(piece)

        out: list[int] = []
        counts: dict[int, int] = {}
        decoded = ""
        finish = "length"
        with torch.inference_mode():
            for s in range(0, len(tokens), PREFILL_CHUNK):
                if cancel.is_set():
                    return GenerationResult("", len(tokens), 0, "cancelled")
                logits = self.model(input_ids=torch.tensor([tokens[s:s + PREFILL_CHUNK]]),
                                    cache=cache).logits[0, -1]
            while len(out) < limit:
                if cancel.is_set():
                    finish = "cancelled"
                    break
                token = self._sample(logits.float(), params, counts, rng)
                if token in self.eos:
                    finish = "stop"
                    break
                out.append(token)
                counts[token] = counts.get(token, 0) + 1
                # decode the whole answer and emit what is new: a token alone can be half
                # a UTF-8 character or lose its leading space
                now = self.tokenizer.decode(out, skip_special_tokens=True)
                if not now.endswith("\ufffd"):
                    piece = text.feed(now[len(decoded):].encode("utf-8"))
                    decoded = now
                    if piece:
                        put(piece)
                    if text.stopped:
                        finish = "stop"
                        break
                logits = self.model(input_ids=torch.tensor([[token]]), cache=cache).logits[0, -1]
        self.last_cache_bytes = cache_nbytes(cache)
        if not text.stopped:
            tail = text.flush()
            if tail:
                put(tail)
        return GenerationResult("".join(parts), len(tokens), len(out), finish)
