"""The learned router: which requests need the strong (frontier) model.

Two parts, blended by how familiar the request is:

    inner(x)   = 0.5 * z(gain(x)) + 0.5 * z(topic(x))             what the words say
        gain(x)  = P(strong correct | x) - P(weak correct | x)    two logistic regressions
        topic(x) = ridge regression of each training question's subject-average gain
    cross(x)   = z(z(length) + z(ridge over cross-domain features))  what the shape says
    trust(x)   = familiarity.trust(mean cosine to the 5 nearest training prompts)
    score(x)   = trust(x) * inner(x) + (1 - trust(x)) * cross(x)

``inner`` reads words and structure and knows which kinds of question the weak model
tends to lose, but only for kinds it was trained on: elsewhere it is close to random.
``cross`` starts from the prompt's length (the baseline a router must not fall below)
and adds a regression over features that mean the same in any domain (length, sentences,
numbers, options, code, reasoning and constraint markers, requested output length), and
is fitted *within* each training domain (features and gains centred per group, each
source of labels weighted equally), so it learns what makes one request of a kind harder than
another rather than which kinds are hard. Far from the training prompts the score is
``cross`` alone. docs/routing.md has the measurements behind each choice.

The artefact is one ``.npz`` of plain arrays: vocabulary, idf, weights, z-score
statistics, the familiarity index, and score quantiles for calibration (threshold for a
target strong share). Format-1 files (before the cross-domain part) still load and
score as before.
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix, hstack

from hybridgate.routing import features
from hybridgate.routing.familiarity import Familiarity
from hybridgate.routing.labels import Labels

FORMAT = 2
FORMATS = (1, 2)  # files this version reads
MAX_FEATURES = 30_000


class RouterFileError(RuntimeError):
    """A router file is missing or unreadable; the message names it."""


@dataclass
class Router:
    vocab: dict[str, int]
    idf: np.ndarray
    struct_mean: np.ndarray
    struct_std: np.ndarray
    w_strong: np.ndarray  # logistic weights, last entry the intercept
    w_weak: np.ndarray
    w_topic: np.ndarray  # ridge weights (over tf-idf only), last entry the intercept
    z: np.ndarray  # mean/std of gain and topic scores on the training set
    quantiles: np.ndarray  # score quantiles 0..100 on the training set
    meta: dict
    # the cross-domain part (None in format-1 files: the score is ``inner`` alone)
    cross_mean: np.ndarray | None = None
    cross_std: np.ndarray | None = None
    w_cross: np.ndarray | None = None  # over standardised cross features, already z-scaled
    familiarity: Familiarity | None = None

    # ------------------------------------------------------------------ scoring

    def _matrix(self, texts: list[str]) -> tuple[csr_matrix, csr_matrix]:
        x = features.tfidf(texts, self.vocab, self.idf)
        s = (features.structure(texts) - self.struct_mean) / self.struct_std
        return x, hstack([x, csr_matrix(s)]).tocsr()

    def score_many(self, texts: list[str]) -> np.ndarray:
        x, xs = self._matrix(texts)
        p_strong = _sigmoid(xs @ self.w_strong[:-1] + self.w_strong[-1])
        p_weak = _sigmoid(xs @ self.w_weak[:-1] + self.w_weak[-1])
        topic = x @ self.w_topic[:-1] + self.w_topic[-1]
        inner = self._blend(p_strong - p_weak, topic)
        if self.familiarity is None:
            return inner
        return self._with_cross(inner, self._cross(features.cross(texts)),
                                self.familiarity.trust(self.familiarity.of_many(x)))

    def _blend(self, gain: np.ndarray, topic: np.ndarray) -> np.ndarray:
        """inner = 0.5 * z(gain) + 0.5 * z(topic), z-scored with the training statistics."""
        return 0.5 * (gain - self.z[0]) / self.z[1] + 0.5 * (topic - self.z[2]) / self.z[3]

    def _cross(self, c: np.ndarray) -> np.ndarray:
        assert self.cross_mean is not None and self.cross_std is not None
        assert self.w_cross is not None
        return ((c - self.cross_mean) / self.cross_std) @ self.w_cross

    @staticmethod
    def _with_cross(inner: np.ndarray, cross: np.ndarray, trust: np.ndarray) -> np.ndarray:
        return trust * inner + (1 - trust) * cross

    def score(self, text: str) -> float:
        """One request, the serving path: plain numpy on the few non-zero columns
        (building a scipy matrix for one row costs more than the maths)."""
        idx, w = features.tfidf_one(text, self.vocab, self.idf)
        s_row, c_row = features.rows(text)
        s = (np.array(s_row, dtype=np.float32) - self.struct_mean) / self.struct_std
        n = len(self.vocab)
        z_strong = w @ self.w_strong[idx] + s @ self.w_strong[n:-1] + self.w_strong[-1]
        z_weak = w @ self.w_weak[idx] + s @ self.w_weak[n:-1] + self.w_weak[-1]
        gain = 1 / (1 + np.exp(-z_strong)) - 1 / (1 + np.exp(-z_weak))
        topic = w @ self.w_topic[idx] + self.w_topic[-1]
        inner = self._blend(gain, topic)
        if self.familiarity is None:
            return float(inner)
        trust = self.familiarity.trust(self.familiarity.of(idx, w))
        return float(self._with_cross(inner, self._cross(np.array(c_row)), trust))

    def threshold_for_share(self, strong_share: float) -> float:
        """Scores above this go strong: ``strong_share`` of the calibration set did."""
        q = 100 * (1 - min(max(strong_share, 0.0), 1.0))
        return float(np.interp(q, np.arange(101), self.quantiles))

    # ------------------------------------------------------------------ files

    def save(self, path: str | Path) -> None:
        terms = np.array(sorted(self.vocab, key=self.vocab.__getitem__))
        np.savez_compressed(
            path, format=np.array(FORMAT), terms=terms, idf=self.idf,
            struct_mean=self.struct_mean, struct_std=self.struct_std,
            w_strong=self.w_strong.astype(np.float32), w_weak=self.w_weak.astype(np.float32),
            w_topic=self.w_topic.astype(np.float32), z=self.z, quantiles=self.quantiles,
            meta=np.array(json.dumps(self.meta)), **self._cross_arrays())

    def _cross_arrays(self) -> dict[str, np.ndarray]:
        if self.familiarity is None:
            return {}
        return {"cross_mean": self.cross_mean, "cross_std": self.cross_std,
                "w_cross": self.w_cross, **self.familiarity.arrays()}

    @classmethod
    def load(cls, path: str | Path | None = None) -> Router:
        """``None``: the router shipped in the package (trained on the MMLU train split)."""
        src = path if path is not None else resources.files("hybridgate.routing").joinpath(
            "router.npz")
        try:
            with resources.as_file(src) if path is None else nullcontext(Path(src)) as p, \
                    np.load(p, allow_pickle=False) as d:
                if int(d["format"]) not in FORMATS:
                    raise RouterFileError(f"{src}: router format {int(d['format'])}, "
                                          f"this version reads {FORMATS}")
                terms = d["terms"].tolist()
                return cls(vocab={t: i for i, t in enumerate(terms)}, idf=d["idf"],
                           struct_mean=d["struct_mean"], struct_std=d["struct_std"],
                           w_strong=d["w_strong"], w_weak=d["w_weak"], w_topic=d["w_topic"],
                           z=d["z"], quantiles=d["quantiles"],
                           meta=json.loads(str(d["meta"])),
                           **_cross_fields(d) if "w_cross" in d else {})
        except RouterFileError:
            raise
        except (OSError, KeyError, ValueError) as e:
            raise RouterFileError(f"cannot load router file {src}: {e}") from None


def _cross_fields(d: Any) -> dict:
    return {"cross_mean": d["cross_mean"], "cross_std": d["cross_std"],
            "w_cross": d["w_cross"],
            "familiarity": Familiarity.from_arrays({k: d[k] for k in d.files
                                                    if k.startswith("fam_")})}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


CROSS_ALPHA = 100.0  # ridge penalty of the cross-domain part (standardised features)


def family(group: str) -> str:
    """Kinds of request, for the familiarity index's shared-term filter: MMLU's 57
    subject files are one kind, each BIG-bench task (``bb_*``) is its own."""
    return group.split("_", 1)[0] if group.startswith(("mmlu_", "mt_bench")) else group


def source(group: str) -> str:
    """Groups of one benchmark count as one when weighting the cross-domain fit: MMLU's
    57 subjects, or BIG-bench's tasks, are one source each, not 57 or 14 domains
    (weighting each BIG-bench task as a source let them outvote MMLU and cost 0.017
    APGR on the MMLU test split)."""
    return "bb" if group.startswith("bb_") else family(group)


def fit_cross(c: np.ndarray, gain: np.ndarray, groups: list[str],
              weights: np.ndarray | None = None, alpha: float = CROSS_ALPHA
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, std, weights) of the cross-domain part: z(prompt length) plus a ridge
    regression of the gain on standardised features, both centred within each group
    (what makes a request harder than others *of its kind*, not which kinds are hard),
    each source of groups weighted equally and split evenly among its groups.

    The length term is the floor the routing issue names (a router should never be worse
    than knowing only the prompt's length); the regression moves away from it only as
    far as the data of many kinds agrees. Weights are scaled to unit spread on the
    training prompts, like the z-scored inner part."""
    from sklearn.linear_model import Ridge

    mean, std = c.mean(0), c.std(0) + 1e-6
    x = (c - mean) / std
    y = gain.astype(float).copy()
    g = np.array(groups)
    src = np.array([source(v) for v in groups])
    per_source = {f: len(set(g[src == f])) for f in set(src)}
    sw = np.zeros(len(y))
    for grp in set(groups):
        m = g == grp
        x[m] -= x[m].mean(0)
        y[m] -= y[m].mean()
        sw[m] = 1.0 / m.sum() / per_source[source(grp)]
    if weights is not None:
        sw = sw * weights
    sw *= len(y) / sw.sum()
    w = Ridge(alpha=alpha, fit_intercept=False).fit(x, y, sample_weight=sw).coef_
    z = (c - mean) / std
    w = w / (float((z @ w).std()) or 1.0)
    w[features.CROSS.index("log_chars")] += 1.0  # + z(length)
    return mean, std, w / (float((z @ w).std()) or 1.0)


def train(labels: Labels, weights: np.ndarray | None = None, C: float = 1.0,
          alpha: float = 1.0, max_features: int = MAX_FEATURES) -> Router:
    """Fit the router on labelled prompts (optionally weighted, e.g. user feedback)."""
    from sklearn.linear_model import LogisticRegression, Ridge

    t0 = time.time()
    texts = labels.prompts
    vocab, idf = features.build_vocab(texts, max_features)
    x = features.tfidf(texts, vocab, idf)
    s = features.structure(texts)
    mean, std = s.mean(0), s.std(0) + 1e-6
    xs = hstack([x, csr_matrix((s - mean) / std)]).tocsr()

    def logistic(y: np.ndarray) -> np.ndarray:
        """P(right | x); a score y in 0..1 counts as y of a right answer and 1 - y of a
        wrong one (each prompt twice, weighted), which for 0/1 labels is plain LR."""
        if (y >= 1).all() or (y <= 0).all():  # one class only: a constant model
            p = 0.999 if (y >= 1).all() else 0.001
            return np.concatenate([np.zeros(xs.shape[1]), [np.log(p / (1 - p))]])
        w = np.ones(len(y)) if weights is None else weights
        soft = (y > 0) & (y < 1)
        rows = np.concatenate([np.arange(len(y)), np.nonzero(soft)[0]])
        target = np.concatenate([y > 0, np.zeros(soft.sum(), bool)])
        sw = np.concatenate([w * np.where(soft, y, 1.0), (w * (1 - y))[soft]])
        m = LogisticRegression(C=C, max_iter=3000).fit(xs[rows], target, sample_weight=sw)
        return np.concatenate([m.coef_[0], m.intercept_])

    w_strong, w_weak = logistic(labels.strong), logistic(labels.weak)
    gain = labels.strong.astype(float) - labels.weak.astype(float)
    groups = np.array(labels.groups)
    prior = {g: gain[groups == g].mean() for g in set(labels.groups)}
    ridge = Ridge(alpha=alpha).fit(x, np.array([prior[g] for g in labels.groups]),
                                   sample_weight=weights)
    w_topic = np.concatenate([ridge.coef_, [ridge.intercept_]])
    g_train = _sigmoid(xs @ w_strong[:-1] + w_strong[-1]) - _sigmoid(xs @ w_weak[:-1]
                                                                      + w_weak[-1])
    t_train = x @ w_topic[:-1] + w_topic[-1]
    z = np.array([g_train.mean(), g_train.std() + 1e-9, t_train.mean(), t_train.std() + 1e-9])
    c = features.cross(texts)
    c_mean, c_std, w_cross = fit_cross(c, gain, labels.groups, weights)
    fam, own = Familiarity.build(x, [family(g) for g in labels.groups])
    router = Router(vocab, idf, mean.astype(np.float32), std.astype(np.float32), w_strong,
                    w_weak, w_topic, z, np.zeros(101), {}, c_mean, c_std, w_cross, fam)
    # calibrate on the scores the training prompts would get as unseen requests of their
    # kind: familiarity to the *other* training prompts
    inner = router._blend(g_train, t_train)
    scores = router._with_cross(inner, router._cross(c), fam.trust(own))
    router.quantiles = np.percentile(scores, np.arange(101))
    router.meta = {"trained_on": len(texts), "seconds": round(time.time() - t0, 1),
                   "features": len(vocab), "C": C, "alpha": alpha,
                   "created": time.strftime("%Y-%m-%d")}
    return router
