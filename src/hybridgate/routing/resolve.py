"""Which configured model serves a request: names only, never providers.

A request names a model (pinned: that model), a route group from ``routes:`` (the
policies and the learned router pick its weak or strong member), or ``auto`` without
such a group (the default model: the first local chat model unless ``default_model``
says otherwise). The tenant allowlist and the residency tag are enforced here, so a
name that leaves this module is one the caller may be served by; ``execute`` turns it
into a provider.
"""

from __future__ import annotations

from dataclasses import dataclass

from hybridgate.config.settings import Config, EmbeddingModel, OpenAIModel, RouteGroup
from hybridgate.core.errors import ModelNotAllowed, ModelNotFound, ResidencyViolation
from hybridgate.core.types import ChatRequest
from hybridgate.routing.policy import Decision, RoutedGroup

AUTO = "auto"


@dataclass(frozen=True, slots=True)
class Choice:
    """The routing stage's answer for one request."""

    model: str  # the configured model that serves it
    group: RouteGroup | None = None  # the route group it came through, if any
    decision: Decision | None = None  # why that member (route groups only)
    text: str = ""  # what the router scored (route groups only; for the ledger)
    # What execute tries, in order: the model, its `fallbacks`, a route group's other
    # member and its fallbacks; and the `context_window_fallbacks` for a prompt too long.
    # Only models this caller may be served by (allowlist, residency) are listed.
    candidates: tuple[str, ...] = ()
    context: tuple[str, ...] = ()
    policy: tuple[str, ...] = ()  # `content_policy_fallbacks`, for a refused request


class Routes:
    def __init__(self, config: Config, local: frozenset[str]) -> None:
        """``local``: the names of the models that run on this machine."""
        entries = {m.name: m for m in config.models}
        self.fallbacks = {m.name: tuple(m.fallbacks) for m in config.models}
        self.context_fallbacks = {m.name: tuple(m.context_window_fallbacks)
                                  for m in config.models}
        self.policy_fallbacks = {m.name: tuple(m.content_policy_fallbacks)
                                 for m in config.models}
        self.names = tuple(entries)  # in config order, as /v1/models lists them
        self._plans: dict[tuple, tuple[tuple[str, ...], ...]] = {}  # see plan()
        self.models = frozenset(entries)
        self.local = local
        # Route groups load their router file now: a broken file fails start-up, loudly.
        self.groups: dict[str, RoutedGroup] = {
            g.name: RoutedGroup(g, entries[g.weak], local) for g in config.routes
            if g.mode == "route"}
        # fan-out groups (execute/fanout): their members, for /v1/models and allowlists
        self.fanouts = {g.name: (*g.members, g.synthesizer) for g in config.routes
                        if g.mode == "fanout"}
        self.default = config.default_model or self._first_chat_model(config, local)

    @staticmethod
    def _first_chat_model(config: Config, local: frozenset[str]) -> str | None:
        chat = [m.name for m in config.models if not isinstance(m, EmbeddingModel)
                and not (isinstance(m, OpenAIModel) and m.embeddings)]
        on_site = [n for n in chat if n in local]
        return (on_site or chat or [None])[0]

    def pinned(self, name: str, allowed: frozenset[str] | None = None,
               local_only: bool = False) -> str:
        """The model a request naming ``name`` gets (a route group's weak member for the
        endpoints that are not routed). ``allowed``: the models the caller's tenant may
        use (None: any); ``local_only``: tagged ``x-hybridgate-residency: local``."""
        if name in self.groups:
            name = self.groups[name].group.weak
        if name == AUTO:
            if self.default is None:
                raise ModelNotFound("no chat model is configured for 'auto'", param="model")
            name = self.default
        if name not in self.models:
            raise ModelNotFound(f"the model '{name}' does not exist", param="model")
        if allowed is not None and name not in allowed:
            raise ModelNotAllowed(f"this key's tenant is not allowed to use the model "
                                  f"'{name}'", param="model")
        if local_only and name not in self.local:
            raise ResidencyViolation(
                f"the request is tagged x-hybridgate-residency: local and the model "
                f"'{name}' is remote; name a local model or a route group with one")
        return name

    def choose(self, req: ChatRequest, local_only: bool = False,
               allowed: frozenset[str] | None = None) -> Choice:
        """One model per chat request: a pinned model, or a route group's decision."""
        group = self.groups.get(req.model)
        if group is None:
            return self.plan(self.pinned(req.model, allowed, local_only), allowed, local_only)
        decision, text = group.decide(req, local_only, allowed)
        model = self.pinned(group.member(decision), allowed)
        g = group.group
        # data that must stay on-premises may only fall back to local models
        stay = local_only or decision.reason.startswith("residency")
        # the other member stands in, unless it cannot serve this request at all
        other = None if decision.reason in ("images", "context") else (
            g.strong if model == g.weak else g.weak)
        return self.plan(model, allowed, stay, g, decision, text, partner=other)

    def plan(self, model: str, allowed: frozenset[str] | None, local_only: bool,
             group: RouteGroup | None = None, decision: Decision | None = None,
             text: str = "", partner: str | None = None) -> Choice:
        """``model`` and everything that may stand in for it, in order (the lists depend
        only on the config and the key: worked out once per combination)."""
        key = (model, allowed, local_only, partner)
        lists = self._plans.get(key)
        if lists is None:
            lists = self._plans[key] = self._stand_ins(*key)
        return Choice(model, group, decision, text, *lists)

    def _stand_ins(self, model: str, allowed: frozenset[str] | None, local_only: bool,
                   partner: str | None) -> tuple[tuple[str, ...], ...]:
        chain = [model, *self.fallbacks[model]]
        if partner is not None:
            chain += [partner, *self.fallbacks[partner]]
        context = [c for m in chain for c in self.context_fallbacks.get(m, ())]
        policy = [c for m in chain for c in self.policy_fallbacks.get(m, ())]

        def ok(name: str) -> bool:
            return ((allowed is None or name in allowed)
                    and (not local_only or name in self.local))

        return (tuple(dict.fromkeys(n for n in chain if n == model or ok(n))),
                tuple(dict.fromkeys(n for n in context if ok(n))),
                tuple(dict.fromkeys(n for n in policy if ok(n))))

    def visible(self, allowed: frozenset[str] | None) -> tuple[list[str], list[str]]:
        """What /v1/models lists for a caller: the models it may use, and the route
        groups with at least one member it may use."""
        if allowed is None:
            return list(self.names), [*self.groups, *self.fanouts]
        return ([n for n in self.names if n in allowed],
                [n for n, g in self.groups.items()
                 if g.group.weak in allowed or g.group.strong in allowed]
                + [n for n, ms in self.fanouts.items() if all(m in allowed for m in ms)])
