"""Route groups: policies first, then the learned router's score.

In order, for a request to a route group (e.g. ``auto`` = {weak: local, strong: gpt-4.1}):

1. residency: a request tagged sensitive (``x-hybridgate-residency: local``) or in which
   personal data is detected (email, card number, IBAN, US SSN) anywhere an upstream
   would see it (every message, tool call and tool definition: ``guard.pii``) stays on
   the group's local member; with no local member it is refused (403) rather than sent;
2. tenant allowlist: a member the caller's tenant may not use is never chosen; with one
   member left, that member (with none, 403);
3. images or audio: the strong member (the local model reads text only);
4. context: a prompt that cannot fit the weak local model's context goes strong;
5. nothing to score (no text): the weak member;
6. a cascade (non-streamed): the weak member, escalated by ``execute`` when unsure;
7. otherwise the router's score against the group's threshold.

Pinned models need no policy but the allowlist and the residency tag: a request naming
a model gets that model, or a 403 if its tenant may not use it or if it is tagged
``x-hybridgate-residency: local`` and the model is remote (``routing.resolve``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from hybridgate.config.settings import RouteGroup
from hybridgate.core.errors import ModelNotAllowed, ResidencyViolation
from hybridgate.core.types import ChatRequest
from hybridgate.guard.pii import detect, outbound_text
from hybridgate.routing.router import Router, RouterFileError

log = logging.getLogger("hybridgate.routing")

CHARS_PER_TOKEN = 3.5  # a cautious estimate; the local provider counts exactly later


@dataclass(frozen=True)
class Decision:
    member: str  # "weak" | "strong"
    # "score" | "residency:<kind>" | "allowlist" | "images" | "context" | "empty" |
    # "default" | "cascade"
    reason: str
    score: float | None = None
    threshold: float | None = None

    def header(self) -> str:
        out = f"{self.member}; reason={self.reason}"
        if self.score is not None and self.threshold is not None:
            out += f"; score={self.score:.4f}; threshold={self.threshold:.4f}"
        return out


class RoutedGroup:
    def __init__(self, group: RouteGroup, weak_cfg: object, local: frozenset[str]) -> None:
        """``weak_cfg``: the weak member's config entry (its context size); ``local``: the
        names of the models that run on this machine (``Registry.local_names``)."""
        self.group = group
        self.weak_local = group.weak in local
        self.strong_local = group.strong in local
        n_ctx = getattr(weak_cfg, "n_ctx", None)
        self.weak_ctx = n_ctx if self.weak_local and isinstance(n_ctx, int) else None
        self.router: Router | None = None
        self.threshold = group.threshold
        try:
            self.router = Router.load(group.router)
        except RouterFileError as e:
            if group.on_router_error == "fail":
                raise
            log.error("route group %s: %s; every request goes %s", group.name, e,
                      group.default)
        if self.router is not None and self.threshold is None:
            self.threshold = self.router.threshold_for_share(group.strong_share)

    def decide(self, req: ChatRequest, sensitive: bool,
               allowed: frozenset[str] | None = None) -> tuple[Decision, str]:
        """Returns (decision, the text that was scored or inspected). ``allowed``: the
        models the caller's tenant may use (None: any)."""
        g = self.group
        ok_weak = allowed is None or g.weak in allowed
        ok_strong = allowed is None or g.strong in allowed
        if not (ok_weak or ok_strong):
            raise ModelNotAllowed(f"this key's tenant may use neither member of route "
                                  f"'{g.name}' ({g.weak}, {g.strong})", param="model")
        text, has_media = _request_text(req)
        outbound = outbound_text(req)
        kind = "tagged" if sensitive else detect(outbound)
        if kind:
            if self.weak_local and ok_weak:
                return Decision("weak", f"residency:{kind}"), text
            if self.strong_local and ok_strong:
                return Decision("strong", f"residency:{kind}"), text
            raise ResidencyViolation(
                f"the request carries personal data ({kind}) and route '{g.name}' "
                "has no local model (that this key may use) to keep it on-premises")
        if not (ok_weak and ok_strong):
            return Decision("weak" if ok_weak else "strong", "allowlist"), text
        if has_media:
            return Decision("strong", "images"), text
        if self.weak_ctx is not None:
            need = len(outbound) / CHARS_PER_TOKEN + (req.token_limit or 0)
            if need > self.weak_ctx:
                return Decision("strong", "context"), text
        if not text.strip():
            return Decision("weak", "empty"), text
        if g.cascade and not req.stream:  # the weak member first; execute escalates
            return Decision("weak", "cascade"), text
        if self.router is None or self.threshold is None:
            return Decision(self.group.default, "default"), text
        score = self.router.score(text)
        member = "strong" if score > self.threshold else "weak"
        return Decision(member, "score", score, self.threshold), text

    def member(self, decision: Decision) -> str:
        return self.group.weak if decision.member == "weak" else self.group.strong


def _request_text(req: ChatRequest) -> tuple[str, bool]:
    """The last user message's text (what RouteLLM scores), and whether media is attached."""
    has_media = any(isinstance(m.content, list) and any(p.type != "text" for p in m.content)
                    for m in req.messages)
    for m in reversed(req.messages):
        if m.role == "user":
            return m.text(), has_media
    return "", has_media
