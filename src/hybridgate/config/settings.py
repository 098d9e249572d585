"""Load and validate the gateway's YAML config.

Zero config means: the default catalog model served locally plus the local
embedding model.  Secrets are never written in the file; they are ``${ENV_VAR}``
references resolved at load time (``${VAR:-default}`` gives a fallback).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import yaml
from msgspec import Meta, Struct, field

DEFAULT_LOCAL_MODEL = "qwen2.5-coder-0.5b-instruct"
DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


PiiMode = Literal["off", "detect", "redact", "pseudonymize", "block", "local"]


class ConfigError(ValueError):
    """The config file is unreadable or invalid; the message says where."""


def hybridgate_home() -> Path:
    """Cache and state directory (``HYBRIDGATE_HOME``, default ``~/.cache/hybridgate``)."""
    return Path(os.environ.get("HYBRIDGATE_HOME") or Path.home() / ".cache" / "hybridgate")


class ServerConfig(Struct, kw_only=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 8080
    # Bodies above this many bytes are refused with 413 before they are read in full.
    max_body_bytes: Annotated[int, Meta(ge=1024)] = 8 * 1024 * 1024
    log_format: Literal["text", "json"] = "text"
    # Seconds a request may take across all its attempts (a model's `deadline` or the
    # x-hybridgate-deadline header may only shorten it).
    deadline: Annotated[float, Meta(gt=0)] = 600.0
    retry_backoff: Annotated[float, Meta(ge=0)] = 0.25  # first wait; doubles, jittered
    retry_backoff_max: Annotated[float, Meta(ge=0)] = 8.0
    metrics: bool = True  # count requests for GET /metrics (Prometheus)
    # /metrics without a key even when gateway keys are configured (a scraper on a
    # private network); otherwise it needs an admin key, as the dashboard does.
    metrics_public: bool = False


class BreakerConfig(Struct, kw_only=True, forbid_unknown_fields=True):
    """A circuit breaker per model: open when at least ``min_requests`` ended in the last
    ``window`` seconds and ``failure_ratio`` of them failed; after ``cooldown`` seconds one
    probe request is let through (half-open), and its outcome closes or re-opens it."""

    enabled: bool = True
    failure_ratio: Annotated[float, Meta(gt=0, le=1)] = 0.5
    window: Annotated[float, Meta(gt=0)] = 30.0
    min_requests: Annotated[int, Meta(ge=1)] = 10
    cooldown: Annotated[float, Meta(gt=0)] = 30.0


# Upstream statuses worth another try: timeouts, conflicts, rate limits, server errors,
# Anthropic's 529 overloaded. Connection errors and timeouts always count.
RETRY_ON = [408, 409, 429, 500, 502, 503, 504, 529]


class ModelCommon(Struct, kw_only=True, forbid_unknown_fields=True):
    """What every model entry takes besides its provider's own fields: readiness and
    reliability, with the names LiteLLM's users know."""

    optional: bool = False  # a load failure leaves /readyz at 200 (the model is 503)
    num_retries: Annotated[int, Meta(ge=0, le=10)] = 2  # more tries on the same model
    retry_on: list[int] = field(default_factory=lambda: list(RETRY_ON))
    fallbacks: list[str] = field(default_factory=list)  # tried in order after this one
    context_window_fallbacks: list[str] = field(default_factory=list)  # prompt too long
    # an upstream's content-policy refusal is never retried on the same model; these may
    # take it (none: the client gets the refusal, a 400 with code content_filter)
    content_policy_fallbacks: list[str] = field(default_factory=list)
    deadline: Annotated[float, Meta(gt=0)] | None = None  # s, all attempts (server's too)
    # s from the request to a stream's first output; past it, the attempt has failed
    # (retried, or the next fallback). Between chunks, `timeout` bounds remote streams.
    ttft_timeout: Annotated[float, Meta(gt=0)] | None = None
    # s between a stream's chunks once it has started (local streams included); past it
    # the stream ends with an error event, never a clean end
    idle_timeout: Annotated[float, Meta(gt=0)] | None = None
    # tool calls and structured answers checked, repaired or asked again (execute/checks);
    # off only to measure what a model does without them (bench/bfcl.py)
    output_checks: bool = True


class LocalModel(ModelCommon, kw_only=True, forbid_unknown_fields=True, tag="local",
                 tag_field="provider"):
    """A GGUF model run in-process by llama.cpp."""

    name: str
    model: str = DEFAULT_LOCAL_MODEL  # catalog name or a path to a .gguf file
    n_threads: Annotated[int, Meta(ge=1)] | None = None  # default: all cores
    n_ctx: Annotated[int, Meta(ge=256)] = 4096
    n_batch: Annotated[int, Meta(ge=8)] = 512
    kv_cache_type: Literal["f16", "q8_0", "q4_0"] = "f16"
    flash_attn: bool | None = None  # default: on when the KV cache is quantized
    default_max_tokens: Annotated[int, Meta(ge=1)] = 1024
    # requests that may wait behind the one being generated; one more is a 503
    # (model_overloaded), which a route group or `fallbacks` answer elsewhere
    max_queue: Annotated[int, Meta(ge=0)] | None = None
    # tool_choice auto: a grammar allows free text or valid calls only (a call, once
    # begun, matches a declared tool's parameters)
    auto_tool_grammar: bool = False
    # `embedded`: llama.cpp in this process, one request at a time. `server`: llama.cpp's
    # own server (scripts/install_llama_server.sh), supervised by the gateway and spoken
    # to over loopback: `parallel` sequences decoded together (continuous batching),
    # shared prompt prefixes reused, optional speculative decoding (docs/local-tier.md).
    engine: Literal["embedded", "server"] = "embedded"
    parallel: Annotated[int, Meta(ge=1, le=64)] = 8  # sequences decoded together (server)
    # `ngram`: drafts from n-grams already in the prompt (input-grounded work: editing,
    # extraction); `draft`: a small `draft_model` proposes, the model verifies
    speculative: Literal["off", "ngram", "draft"] = "off"
    draft_model: str | None = None  # catalog name or .gguf path, for speculative: draft
    draft_max: Annotated[int, Meta(ge=1, le=64)] = 16  # tokens proposed per step
    server_binary: str | None = None  # default: llama-server beside this Python, then PATH

    def __post_init__(self) -> None:
        if self.engine == "embedded" and self.speculative != "off":
            raise ValueError(f"model {self.name!r}: speculative decoding needs engine: server")
        if (self.speculative == "draft") != (self.draft_model is not None):
            raise ValueError(f"model {self.name!r}: speculative: draft and draft_model go "
                             "together")


class TransformersModel(ModelCommon, kw_only=True, forbid_unknown_fields=True,
                        tag="transformers", tag_field="provider"):
    """The same GGUF weights run by Hugging Face transformers (float32 on the CPU), for its
    KV cache: ``kv_cache: turboquant`` keeps long contexts in ~kv_bits bits per channel."""

    name: str
    model: str = DEFAULT_LOCAL_MODEL  # catalog name or a path to a .gguf file
    kv_cache: Literal["turboquant", "full"] = "turboquant"
    kv_bits: Annotated[float, Meta(ge=2.5, le=8)] = 3.5  # effective, norms included
    kv_residual: Annotated[int, Meta(ge=1)] = 128  # recent tokens kept exact
    n_threads: Annotated[int, Meta(ge=1)] | None = None
    n_ctx: Annotated[int, Meta(ge=256)] = 8192
    default_max_tokens: Annotated[int, Meta(ge=1)] = 1024
    max_queue: Annotated[int, Meta(ge=0)] | None = None  # as for `provider: local`


class OpenAIModel(ModelCommon, kw_only=True, forbid_unknown_fields=True, tag="openai",
                  tag_field="provider"):
    """Any OpenAI-compatible HTTP API (OpenAI, vLLM, Ollama, Groq, OpenRouter, ...)."""

    name: str
    base_url: str
    api_key: str | None = None
    model: str | None = None  # upstream model name; defaults to ``name``
    timeout: Annotated[float, Meta(gt=0)] = 120.0
    connect_timeout: Annotated[float, Meta(gt=0)] = 10.0
    headers: dict[str, str] = field(default_factory=dict)
    embeddings: bool = False  # serve /v1/embeddings for this model instead of chat


class AnthropicModel(ModelCommon, kw_only=True, forbid_unknown_fields=True,
                     tag="anthropic", tag_field="provider"):
    """Anthropic's Messages API, translated to and from OpenAI's format."""

    name: str
    api_key: str | None = None
    base_url: str = "https://api.anthropic.com"
    model: str | None = None
    timeout: Annotated[float, Meta(gt=0)] = 120.0
    connect_timeout: Annotated[float, Meta(gt=0)] = 10.0
    anthropic_version: str = "2023-06-01"
    default_max_tokens: Annotated[int, Meta(ge=1)] = 4096


class EmbeddingModel(ModelCommon, kw_only=True, forbid_unknown_fields=True,
                     tag="sentence_transformers", tag_field="provider"):
    """A sentence-transformers embedding model run in-process on the CPU."""

    name: str
    model: str = DEFAULT_EMBEDDING_MODEL  # the packaged MiniLM, or a local model directory
    batch_size: Annotated[int, Meta(ge=1)] = 32


ModelEntry = LocalModel | TransformersModel | OpenAIModel | AnthropicModel | EmbeddingModel


class PriceOverride(Struct, kw_only=True, forbid_unknown_fields=True):
    """USD per 1M tokens for a model id (a gateway model name or an upstream model name)."""

    id: str
    input: Annotated[float, Meta(ge=0)]
    output: Annotated[float, Meta(ge=0)]
    cached_input: Annotated[float, Meta(ge=0)] | None = None
    source: str = "user config"


class RouteGroup(Struct, kw_only=True, forbid_unknown_fields=True):
    """A routed model name: each request goes to ``weak`` or ``strong`` by the router's score.

    ``strong_share`` sets the threshold from the router's calibration (the share of
    requests that would go strong); ``threshold`` sets it directly.
    """

    name: str
    weak: str = ""  # mode "route": both members are required
    strong: str = ""
    # "fanout": every one of ``members`` is asked at once, and ``synthesizer`` merges
    # their answers into consensus, unique insights and contradictions (execute/fanout)
    mode: Literal["route", "fanout"] = "route"
    members: list[str] = field(default_factory=list)
    synthesizer: str | None = None
    pii: PiiMode | None = None  # what personal data in its requests meets (guard/scrub)
    # answer repeated requests from the cache: true (exact) or "semantic" (exact, then
    # the same question in other words: cache/semantic)
    cache: bool | Literal["semantic"] = False
    strong_share: Annotated[float, Meta(ge=0, le=1)] = 0.2
    threshold: float | None = None
    router: str | None = None  # a router .npz; default: the one shipped in the package
    # A missing or corrupt router file: "fail" refuses to start; "default" sends every
    # request of this group to `default` and says so in x-hybridgate-route.
    on_router_error: Literal["fail", "default"] = "fail"
    default: Literal["weak", "strong"] = "weak"
    keep_text: bool = True  # keep the scored text in the ledger, for retraining
    # Cascade: the weak member answers every non-streamed chat request the policies
    # leave to the router, and its answer goes to the strong member when it is invalid
    # (after the checks' repair and one re-ask) or its confidence (the local engine's
    # mean token log-probability) is low: below `cascade_threshold`, or, without one,
    # among the lowest `cascade_share` of the weak member's recent answers.
    cascade: bool = False
    cascade_share: Annotated[float, Meta(ge=0, le=1)] = 0.3
    cascade_threshold: float | None = None


class CacheConfig(Struct, kw_only=True, forbid_unknown_fields=True):
    """The answer cache (``cache/exact``, ``cache/semantic``); tenants and route groups
    opt in."""

    ttl: Annotated[int, Meta(ge=1)] = 3600  # seconds an answer is kept
    max_entries: Annotated[int, Meta(ge=1)] = 10000  # the in-process cache (no redis:)
    # semantic tier: a cached question is a candidate when its static vector (MiniLM's
    # word pieces distilled, ~0.2 ms a question) reaches `prefilter` (null: every one
    # the search finds) and its numbers, names, ... match; the full MiniLM then confirms
    # it at `similarity` (with a margin: the entry's nearest other cached question, in
    # static similarity, + `margin` as well). Calibrated on bench/data/cache_pairs
    # (docs/benchmarks.md).
    prefilter: Annotated[float, Meta(ge=-1, le=1)] | None = 0.76
    similarity: Annotated[float, Meta(ge=0, le=1)] = 0.81
    margin: Annotated[float, Meta(ge=-1, le=1)] | None = None  # None: crowding off
    semantic_max_entries: Annotated[int, Meta(ge=1)] = 100_000  # questions per process
    embedding_model: str = DEFAULT_EMBEDDING_MODEL  # the packaged MiniLM or a directory


class AuditConfig(Struct, kw_only=True, forbid_unknown_fields=True):
    """The tamper-evident audit log (``ledger/audit``), kept with the ledger."""

    enabled: bool = True
    # an ed25519 seed, 64 hex digits, e.g. ${HYBRIDGATE_AUDIT_KEY} (`hybridgate audit
    # keygen`); without one, tree heads are written unsigned
    signing_key: str | None = None
    head_every: Annotated[int, Meta(ge=1)] = 1000  # records between tree heads...
    head_interval: Annotated[float, Meta(gt=0)] = 60.0  # ...or seconds, whichever first
    # `hybridgate audit prune` keeps at least this long (the EU AI Act asks deployers
    # for six months)
    retention_days: Annotated[int, Meta(ge=183)] = 183


class LedgerConfig(Struct, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = True
    # sqlite:///path/to/ledger.db (default: $HYBRIDGATE_HOME/ledger.db) or postgresql://...
    url: str | None = None
    # true: a request whose record cannot be committed gets a 503 (nothing unrecorded).
    # false: records spill to an append-only file and are replayed when the database is back.
    required: bool = True
    spill_path: str | None = None  # default: $HYBRIDGATE_HOME/ledger-spill.jsonl
    baseline_model: str = "gpt-4.1"  # what the same tokens would have cost on the frontier
    local_hardware: str = "cpu-2core"  # hardware profile pricing local requests
    local_utilization: Annotated[float, Meta(gt=0, le=1)] = 0.5
    electricity_usd_per_kwh: Annotated[float, Meta(ge=0)] = 0.13
    max_batch: Annotated[int, Meta(ge=1)] = 512
    hardware: list[dict[str, Any]] = field(default_factory=list)  # extra hardware profiles
    # Keep what clients ask to keep (Responses' store / previous_response_id, chat
    # completions' store: true) for callers without a tenant; tenants set their own.
    store: bool = False
    audit: AuditConfig = field(default_factory=AuditConfig)


class TracingConfig(Struct, kw_only=True, forbid_unknown_fields=True):
    """OpenTelemetry traces over OTLP/HTTP (the ``tracing`` extra). Off until an
    endpoint is given: the gateway calls nothing it was not told to."""

    endpoint: str | None = None  # e.g. http://collector:4318/v1/traces
    service_name: str = "hybridgate"
    headers: dict[str, str] = field(default_factory=dict)  # e.g. a vendor's auth header
    capture_content: bool = False  # prompts and answers in spans (off: never)


class Limits(Struct, kw_only=True, forbid_unknown_fields=True):
    """Budgets and rate limits, on a tenant and on a key (a key in a tenant is bound by
    both); enforced across every process and replica through ``redis:``
    (``gate/limits``)."""

    max_budget_usd: Annotated[float, Meta(ge=0)] | None = None
    budget_period: Literal["1h", "1d", "7d", "30d"] | None = None  # None: never resets
    rpm_limit: Annotated[int, Meta(ge=0)] | None = None  # requests per minute
    tpm_limit: Annotated[int, Meta(ge=0)] | None = None  # tokens (in + out) per minute
    max_parallel_requests: Annotated[int, Meta(ge=0)] | None = None

    @property
    def limited(self) -> bool:
        return any(v is not None for v in (self.max_budget_usd, self.rpm_limit,
                                           self.tpm_limit, self.max_parallel_requests))


class Tenant(Limits, kw_only=True, forbid_unknown_fields=True):
    """A team or customer. ``models`` is its allowlist of configured models (not route
    groups): a route group serves it only through members on the list. None: all."""

    name: str
    models: list[str] | None = None
    store: bool | None = None  # keep stored responses / completions (None: ledger.store)
    # personal data in its chat requests: off | detect | redact | pseudonymize | block |
    # local (guard/scrub); with a route group's too, the stricter one holds
    pii: PiiMode | None = None
    cache: bool | Literal["semantic"] = False  # as a route group's cache:


class ApiKey(Limits, kw_only=True, forbid_unknown_fields=True):
    """A gateway key. Give the secret as ``key: ${ENV_VAR}`` or only its hash as
    ``key_sha256`` (``hybridgate keys new`` prints both); ``id`` is what the ledger shows."""

    id: str
    key: str | None = None
    key_sha256: str | None = None
    tenant: str | None = None  # a name from ``tenants``; none: no allowlist
    admin: bool = False  # may read /metrics and the dashboard (/ui)

    def __post_init__(self) -> None:
        if (self.key is None) == (self.key_sha256 is None):
            raise ValueError(f"key {self.id!r}: give exactly one of key or key_sha256")
        if self.key is not None and len(self.key) < 16:
            raise ValueError(f"key {self.id!r}: the secret must be at least 16 characters")
        if self.key_sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}",
                                                            self.key_sha256.lower()):
            raise ValueError(f"key {self.id!r}: key_sha256 must be 64 hex digits")


class Config(Struct, kw_only=True, forbid_unknown_fields=True):
    server: ServerConfig = field(default_factory=ServerConfig)
    models: list[ModelEntry] = field(default_factory=list)
    # What ``model: auto`` (and a request naming no known route) resolves to until the
    # router lands: a model name from ``models``. Defaults to the first local chat model.
    default_model: str | None = None
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    prices: list[PriceOverride] = field(default_factory=list)
    routes: list[RouteGroup] = field(default_factory=list)
    # Gateway keys: with none, every request is served (a loopback-only default);
    # with any, /v1/* needs `Authorization: Bearer <key>`.
    keys: list[ApiKey] = field(default_factory=list)
    tenants: list[Tenant] = field(default_factory=list)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    tracing: TracingConfig = field(default_factory=TracingConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    # redis://host:port/db shared by every process and replica: breaker state lives
    # there (in-process without it), and budgets and rate limits (which need it)
    redis: str | None = None
    # Redis unreachable while limits are configured: "deny" answers 503 (fail closed),
    # "allow" serves without limits until it is back (fail open)
    on_redis_error: Literal["deny", "allow"] = "deny"
    # The pii: modes find names of people, places and organisations, and street
    # addresses, too (guard/names); false: identifiers only
    pii_names: bool = True
    # Which model reads them: "encoder" (MiniLM and a trained head, guard/names_encoder:
    # the embeddings extra; ~11 ms for a short new message) or "small" (a spaCy model,
    # ~2 ms, finds fewer: docs/benchmarks.md)
    pii_names_model: Literal["encoder", "small"] = "encoder"

    def __post_init__(self) -> None:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate model names: {', '.join(dupes)}")
        if "auto" in names:
            raise ValueError("'auto' is reserved for the router; pick another model name")
        for m in self.models:
            for field_name in ("fallbacks", "context_window_fallbacks",
                               "content_policy_fallbacks"):
                for other in getattr(m, field_name):
                    if other not in names:
                        raise ValueError(f"model {m.name!r}: {field_name} names {other!r}, "
                                         "which is not in models")
                    if other == m.name:
                        raise ValueError(f"model {m.name!r}: {field_name} names itself")
        if self.redis is not None and not self.redis.startswith(("redis://", "rediss://",
                                                                 "unix://")):
            raise ValueError("redis must be a redis://, rediss:// or unix:// URL")
        limited = [f"{kind} {x.name if kind == 'tenant' else x.id!r}"
                   for kind, xs in (("tenant", self.tenants), ("key", self.keys))
                   for x in xs if x.limited]
        if limited and self.redis is None:
            raise ValueError(f"budgets and rate limits ({', '.join(limited)}) need `redis:` "
                             "so that every process and replica counts against them")
        if self.default_model is not None and self.default_model not in names:
            raise ValueError(f"default_model {self.default_model!r} is not in models")
        for g in self.routes:
            if g.name in names:
                raise ValueError(f"route group {g.name!r} has the name of a model")
            if g.mode == "fanout":
                if len(g.members) < 2 or g.synthesizer is None:
                    raise ValueError(f"route group {g.name!r}: a fanout needs two or more "
                                     "members and a synthesizer")
                needed = [*g.members, g.synthesizer]
            else:
                needed = [g.weak, g.strong]
            for member in needed:
                if member not in names:
                    raise ValueError(f"route group {g.name!r}: {member!r} is not in models")
        groups = [g.name for g in self.routes]
        if len(set(groups)) != len(groups):
            raise ValueError("duplicate route group names")
        self._check_access(names)

    def _check_access(self, names: list[str]) -> None:
        tenants = [t.name for t in self.tenants]
        if len(set(tenants)) != len(tenants):
            raise ValueError("duplicate tenant names")
        for t in self.tenants:
            unknown = [m for m in t.models or () if m not in names]
            if unknown:
                raise ValueError(f"tenant {t.name!r}: {', '.join(map(repr, unknown))} not in "
                                 "models (allowlists name models, not route groups)")
        ids = [k.id for k in self.keys]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate key ids")
        for k in self.keys:
            if k.tenant is not None and k.tenant not in tenants:
                raise ValueError(f"key {k.id!r}: tenant {k.tenant!r} is not in tenants")


def default_config(local_model: str = DEFAULT_LOCAL_MODEL, embeddings: bool = True) -> Config:
    """Zero configuration: one local chat model and the local embedding model."""
    models: list[ModelEntry] = [LocalModel(name=local_model, model=local_model)]
    if embeddings:
        models.append(EmbeddingModel(name=DEFAULT_EMBEDDING_MODEL))
    return Config(models=models)


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(value: Any, where: str = "") -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of the parsed YAML."""
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            var, default = m.group(1), m.group(2)
            if var in os.environ:
                return os.environ[var]
            if default is not None:
                return default
            raise ConfigError(f"{where}: environment variable {var} is not set")
        return _ENV_REF.sub(sub, value)
    return value


def parse_config(data: Any, source: str = "<config>") -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    try:
        return msgspec.convert(_expand_env(data), Config)
    except (msgspec.ValidationError, ValueError) as e:
        raise ConfigError(f"{source}: {e}") from None


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read a YAML config; ``None`` gives the zero-config default."""
    if path is None:
        return default_config()
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read {p}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: invalid YAML: {e}") from None
    cfg = parse_config(data, str(p))
    if not cfg.models:
        cfg = msgspec.structs.replace(cfg, models=default_config().models)
    return cfg
