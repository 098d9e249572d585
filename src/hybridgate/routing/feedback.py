"""Turn the gateway's own traffic, with client feedback, into router training labels.

A routed request has the text the router scored (``route_text``), the member that served
it (``route_decision``), and feedback: a quality ``score`` in [0, 1] and/or a
``preferred_route``. We read them as RouteLLM-style labels (weak correct?, strong
correct?), assuming the strong model answers well:

- preferred "strong" (or the strong model's name)  -> weak wrong, strong right
- preferred "weak" (or the weak model's name)      -> both right (no gain from strong)
- served weak, score >= 0.5                        -> both right
- served weak, score < 0.5                         -> weak wrong, strong right
- served strong with only a score                  -> says nothing about weak: skipped
"""

from __future__ import annotations

import numpy as np

from hybridgate.ledger.store import Store
from hybridgate.routing.labels import Labels


def feedback_labels(store: Store) -> Labels:
    rows = store.query(
        "SELECT route_text, route_decision, route, feedback_score, preferred_route "
        "FROM requests WHERE route_text IS NOT NULL AND route_decision IS NOT NULL "
        "AND (feedback_score IS NOT NULL OR preferred_route IS NOT NULL)")
    prompts, weak, strong = [], [], []
    for text, decision, route, score, preferred in rows:
        served = decision.split(":", 1)[0]
        pref = (preferred or "").lower()
        if pref in ("strong", "weak"):
            want = pref
        elif pref:
            # a model name: compare with the member that served this request
            want = served if pref == (route or "").lower() else (
                "strong" if served == "weak" else "weak")
        elif served == "weak" and score is not None:
            want = "weak" if score >= 0.5 else "strong"
        else:
            continue
        prompts.append(text)
        weak.append(want == "weak")
        strong.append(True)
    return Labels(prompts, np.array(weak, float), np.array(strong, float),
                  ["feedback"] * len(prompts))
