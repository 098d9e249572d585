"""A Hugging Face transformers KV cache: recent tokens exact, older tokens in TurboQuant codes.

Why: the KV cache, not the weights, is what grows with context. Each layer keeps

    window  the last ``residual`` tokens' keys and values in the model's dtype: recent
            tokens get most of the attention and are cheap to keep exact;
    codes   every older token as TurboQuant_mse codes, per KV head: packed b-bit indices
            and one float16 norm per vector (per channel group).

``update`` returns [decode(codes), window, new states], so attention reads dequantized keys;
that is the CPU path (the same trade transformers' own QuantizedCache makes). Scoring packed
keys without decoding them is the GPU kernel's job.

Bits: ``bits`` is an *effective* budget per channel, averaged over keys and values, norms
included. ``plan_kv`` picks the split that fits it: the paper's outlier setting (the
highest-variance channels of each head, chosen from the first states the layer codes, at one
more bit than the rest, each group with its own rotation and fp16 norm), keys one bit above
values. At head dim 64 and 3.5 bits: keys 32 channels at 4 bits + 32 at 3, values 32 at 3 +
32 at 2. Each head's vectors are coded minus their mean (the keys' bias offset), and the
first ``sink`` tokens stay exact in full-attention layers.

Gemma 3's sliding-window layers keep at most ``sliding_window - 1`` past tokens like
transformers' own ``DynamicSlidingWindowLayer``; codes that slide out are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers.cache_utils import Cache, DynamicLayer, get_layer_types_and_kwargs

from hybridgate.turboquant.mixed import TurboQuantMixed
from hybridgate.turboquant.quantizer import MSECodes

_NORM_BITS = 16  # norms are stored as float16


@dataclass(frozen=True)
class BitPlan:
    """``outliers`` channels at ``bits + 1`` bits, the rest at ``bits``."""

    d: int
    bits: int
    outliers: int = 0

    @property
    def groups(self) -> int:
        return 2 if self.outliers else 1

    @property
    def effective_bits(self) -> float:
        """Storage per channel, norms included."""
        return (self.d * self.bits + self.outliers + _NORM_BITS * self.groups) / self.d


def plan_kv(d: int, target: float) -> tuple[BitPlan, BitPlan]:
    """Key and value plans whose average effective bits is the largest that fits ``target``.

    Keys get one more bit than values (an error in a key moves every softmax weight; an
    error in a value is averaged away), and both split off ``n`` outlier channels at one
    more bit: keys n at b + 1 and d - n at b, values n at b and d - n at b - 1. Measured on
    Qwen2.5 0.5B (docs/benchmarks.md): one group at 3 bits for both gave 2.9x the
    perplexity; this split at 3.5 bits gave +0.8%.
    """
    best: tuple[BitPlan, BitPlan] | None = None
    for bits in range(2, 8):  # outlier channels get bits + 1 <= 8
        for n in range(0, d, max(d // 8, 1)):
            keys, values = BitPlan(d, bits, n), BitPlan(d, bits - 1, n)
            average = (keys.effective_bits + values.effective_bits) / 2
            if average <= target + 1e-9 and (best is None or average > _average(best)):
                best = (keys, values)
    if best is None:
        raise ValueError(f"kv_bits {target} is below the smallest plan for head dim {d} "
                         f"({_average((BitPlan(d, 2), BitPlan(d, 1))):.2f} bits)")
    return best


def _average(plans: tuple[BitPlan, BitPlan]) -> float:
    return sum(p.effective_bits for p in plans) / len(plans)


class _Rows:
    """An append-only 2-D array with amortised O(1) appends and cheap trimming at the front."""

    def __init__(self, width: int, dtype: type) -> None:
        self._buf = np.empty((256, width), dtype=dtype)
        self._start = self._end = 0

    def append(self, rows: np.ndarray) -> None:
        n = len(rows)
        if self._end + n > len(self._buf):
            live = self.view()
            capacity = max(2 * len(live) + n, 256)
            self._buf = np.concatenate([live, np.empty((capacity - len(live),
                                                        self._buf.shape[1]), self._buf.dtype)])
            self._start, self._end = 0, len(live)
        self._buf[self._end:self._end + n] = rows
        self._end += n

    def drop_front(self, n: int) -> None:
        self._start = min(self._start + n, self._end)

    def view(self) -> np.ndarray:
        return self._buf[self._start:self._end]

    @property
    def nbytes(self) -> int:
        return self.view().nbytes


class _HeadCodec:
    """One KV head's vectors (keys or values): ``TurboQuantMixed`` codes in growable rows."""

    def __init__(self, plan: BitPlan, sample: np.ndarray, seed: int) -> None:
        d = plan.d
        # outliers by variance around the mean: the offset itself is subtracted below
        energy = sample.var(axis=0) if len(sample) else np.zeros(d)
        top = np.argsort(-energy, kind="stable")[:plan.outliers]
        self.q = TurboQuantMixed(d, top, outlier_bits=plan.bits + 1, bits=plan.bits,
                                 seed=seed)
        self.packed = [_Rows(-(-len(ch) * q.bits // 8), np.uint8) for ch, q in self.q.groups]
        self.norms = [_Rows(1, np.float16) for _ in self.q.groups]
        # Keys carry a large per-channel offset (projection biases, e.g. Qwen2's k_proj): code
        # x - mean so the error scales with the part that varies between tokens.
        self.mean = (sample.mean(axis=0) if len(sample) else np.zeros(d)).astype(np.float32)

    def append(self, x: np.ndarray) -> None:
        for codes, packed, norms in zip(self.q.encode(x - self.mean), self.packed, self.norms,
                                        strict=True):
            packed.append(codes.packed)
            norms.append(codes.norms.astype(np.float16)[:, None])

    def drop_front(self, n: int) -> None:
        for rows in (*self.packed, *self.norms):
            rows.drop_front(n)

    def decode(self) -> np.ndarray:
        codes = [MSECodes(p.view(), n.view()[:, 0].astype(np.float32))
                 for p, n in zip(self.packed, self.norms, strict=True)]
        return self.q.decode(codes) + self.mean

    @property
    def nbytes(self) -> int:
        return self.mean.nbytes + sum(r.nbytes for r in (*self.packed, *self.norms))


class TurboQuantLayer(DynamicLayer):
    """One attention layer's cache; ``sliding_window`` set for local-attention layers."""

    is_croppable = False

    def __init__(self, bits: float = 3.5, residual: int = 128,
                 sliding_window: int | None = None, seed: int = 0, sink: int = 4) -> None:
        super().__init__()
        if residual < 1:
            raise ValueError("residual must be at least 1 token")
        self.target_bits = bits
        self.sliding_window = sliding_window
        self.is_sliding = sliding_window is not None
        # a sliding layer never holds more than sliding_window - 1 past tokens
        self.residual = min(residual, sliding_window - 1) if sliding_window else residual
        self.seed = seed
        # The first tokens draw a large share of attention in most heads ("attention sinks"):
        # full-attention layers keep them exact. Sliding layers lose them anyway.
        self.sink = 0 if sliding_window else sink
        self._sink_k: torch.Tensor | None = None
        self._sink_v: torch.Tensor | None = None
        self.cumulative_length = 0
        self.plans: tuple[BitPlan, BitPlan] | None = None  # keys, values
        self._codecs: list[list[_HeadCodec]] | None = None  # [keys, values] x heads
        self._coded = 0  # tokens held as codes

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self.plans = plan_kv(key_states.shape[-1], self.target_bits)

    # -- rows are token-major per head: token t of batch b is row t * batch + b --

    @staticmethod
    def _head_rows(states: torch.Tensor, head: int) -> np.ndarray:
        x = states[:, head].transpose(0, 1)  # (tokens, batch, d)
        return x.reshape(-1, x.shape[-1]).to(torch.float32).numpy()

    def _encode(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        if self._codecs is None:
            assert self.plans is not None
            heads = keys.shape[1]
            self._codecs = [[_HeadCodec(plan, self._head_rows(s, h), self.seed + 7 * h + j)
                             for h in range(heads)]
                            for j, (s, plan) in enumerate(zip((keys, values), self.plans,
                                                              strict=True))]
        for codecs, states in zip(self._codecs, (keys, values), strict=True):
            for h, codec in enumerate(codecs):
                codec.append(self._head_rows(states, h))
        self._coded += keys.shape[-2]

    def _decoded(self, like: torch.Tensor) -> list[torch.Tensor]:
        batch = like.shape[0]
        out = []
        for codecs in self._codecs or []:
            heads = [torch.from_numpy(c.decode()).view(self._coded, batch, -1).transpose(0, 1)
                     for c in codecs]
            out.append(torch.stack(heads, dim=1).to(like.dtype))
        return out

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object,
               **kwargs: object) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self.cumulative_length += key_states.shape[-2]
        window_k = torch.cat([self.keys, key_states], dim=-2)
        window_v = torch.cat([self.values, value_states], dim=-2)
        parts_k, parts_v = [window_k], [window_v]  # chronological: sink, codes, window, new
        if self._coded:
            old_k, old_v = self._decoded(key_states)
            parts_k.insert(0, old_k)
            parts_v.insert(0, old_v)
        if self._sink_k is not None:
            parts_k.insert(0, self._sink_k)
            parts_v.insert(0, self._sink_v)
        full_k, full_v = torch.cat(parts_k, -2), torch.cat(parts_v, -2)
        held = 0 if self._sink_k is None else self._sink_k.shape[-2]
        take = min(self.sink - held, window_k.shape[-2])
        if take > 0:  # the sink fills first, before anything is coded
            self._sink_k = torch.cat([p for p in (self._sink_k, window_k[..., :take, :])
                                      if p is not None], -2)
            self._sink_v = torch.cat([p for p in (self._sink_v, window_v[..., :take, :])
                                      if p is not None], -2)
            window_k, window_v = window_k[..., take:, :], window_v[..., take:, :]
        spill = window_k.shape[-2] - self.residual
        if spill > 0:  # the oldest window tokens leave for the codes
            self._encode(window_k[..., :spill, :], window_v[..., :spill, :])
            window_k, window_v = window_k[..., spill:, :], window_v[..., spill:, :]
        self.keys, self.values = window_k.contiguous(), window_v.contiguous()
        if self.sliding_window is not None and self._codecs is not None:
            excess = self._coded + self.keys.shape[-2] - (self.sliding_window - 1)
            if excess > 0:
                for codecs in self._codecs:
                    for codec in codecs:
                        codec.drop_front(excess * key_states.shape[0])
                self._coded -= excess
        return full_k, full_v

    def get_seq_length(self) -> int:
        return self.cumulative_length

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        if self.sliding_window is None:
            return self.cumulative_length + query_length, 0
        offset = max(self.cumulative_length - self.sliding_window + 1, 0)
        held = min(self.cumulative_length, self.sliding_window - 1)
        return held + query_length, offset

    def get_max_length(self) -> int:
        return self.sliding_window if self.sliding_window is not None else -1

    def reset(self) -> None:
        super().reset()
        self.cumulative_length = 0
        self._codecs = None
        self._coded = 0
        self._sink_k = self._sink_v = None

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        raise NotImplementedError("the TurboQuant cache does not support beam search")

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("the TurboQuant cache cannot be cropped")

    @property
    def nbytes(self) -> int:
        """Bytes held now: codes, norms and the exact window."""
        coded = sum(c.nbytes for codecs in self._codecs or [] for c in codecs)
        exact = [t for t in (self.keys, self.values, self._sink_k, self._sink_v) if t is not None]
        return coded + sum(t.nbytes for t in exact)


class TurboQuantCache(Cache):
    """A cache for a whole model: full-attention and sliding-window layers alike."""

    def __init__(self, config: object, bits: float = 3.5, residual: int = 128,
                 seed: int = 0, sink: int = 4) -> None:
        text = config.get_text_config(decoder=True)  # type: ignore[attr-defined]
        layer_types, layer_kwargs = get_layer_types_and_kwargs(text)
        layers: list[TurboQuantLayer] = []
        for i, (kind, kw) in enumerate(zip(layer_types, layer_kwargs, strict=True)):
            if kind == "full_attention":
                layers.append(TurboQuantLayer(bits, residual, seed=seed + 1000 * i, sink=sink))
            elif kind == "sliding_attention":
                layers.append(TurboQuantLayer(bits, residual, kw["sliding_window"],
                                              seed=seed + 1000 * i))
            else:
                raise ValueError(f"the TurboQuant cache does not support {kind!r} layers")
        super().__init__(layers=layers)  # type: ignore[arg-type]
        self.bits = bits

    @property
    def nbytes(self) -> int:
        return sum(layer.nbytes for layer in self.layers)  # type: ignore[attr-defined]

    @property
    def effective_bits(self) -> float | None:
        plans = [layer.plans for layer in self.layers if layer.plans]  # type: ignore[attr-defined]
        return _average(plans[0]) if plans else None


def cache_nbytes(cache: Cache) -> int:
    """Bytes a cache holds now: a TurboQuant cache's codes and window, or plain tensors."""
    if isinstance(cache, TurboQuantCache):
        return cache.nbytes
    return sum(t.nbytes for layer in cache.layers for t in (layer.keys, layer.values)
               if t is not None)
