"""The learned router: which requests need the strong (frontier) model.

Score = the blend of two linear models over the same features, each z-scored:

    gain(x)    = P(strong correct | x) - P(weak correct | x)     two logistic regressions
    topic(x)   = ridge regression of each training question's subject-average gain
    score(x)   = 0.5 * z(gain(x)) + 0.5 * z(topic(x))

``gain`` reads the request itself (words and structure); ``topic`` learns which kinds of
question the weak model tends to lose, distilled into one weight vector (a 57-way
subject classifier did no better and was 50x larger). docs/routing.md has the
measurements behind each choice.

The artefact is one ``.npz`` of plain arrays: vocabulary, idf, weights, z-score
statistics, and score quantiles for calibration (threshold for a target strong share).
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix, hstack

from hybridgate.routing import features
from hybridgate.routing.labels import Labels

FORMAT = 1
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
        return self._blend(p_strong - p_weak, topic)

    def _blend(self, gain: np.ndarray, topic: np.ndarray) -> np.ndarray:
        """score = 0.5 * z(gain) + 0.5 * z(topic), z-scored with the training statistics."""
        return 0.5 * (gain - self.z[0]) / self.z[1] + 0.5 * (topic - self.z[2]) / self.z[3]

    def score(self, text: str) -> float:
        """One request, the serving path: plain numpy on the few non-zero columns
        (building a scipy matrix for one row costs more than the maths)."""
        idx, w = features.tfidf_one(text, self.vocab, self.idf)
        s = (features.structure([text])[0] - self.struct_mean) / self.struct_std
        n = len(self.vocab)
        z_strong = w @ self.w_strong[idx] + s @ self.w_strong[n:-1] + self.w_strong[-1]
        z_weak = w @ self.w_weak[idx] + s @ self.w_weak[n:-1] + self.w_weak[-1]
        gain = 1 / (1 + np.exp(-z_strong)) - 1 / (1 + np.exp(-z_weak))
        topic = w @ self.w_topic[idx] + self.w_topic[-1]
        return float(self._blend(gain, topic))

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
            meta=np.array(json.dumps(self.meta)))

    @classmethod
    def load(cls, path: str | Path | None = None) -> Router:
        """``None``: the router shipped in the package (trained on the MMLU train split)."""
        src = path if path is not None else resources.files("hybridgate.routing").joinpath(
            "router.npz")
        try:
            with resources.as_file(src) if path is None else nullcontext(Path(src)) as p, \
                    np.load(p, allow_pickle=False) as d:
                if int(d["format"]) != FORMAT:
                    raise RouterFileError(f"{src}: router format {int(d['format'])}, "
                                          f"expected {FORMAT}")
                terms = d["terms"].tolist()
                return cls(vocab={t: i for i, t in enumerate(terms)}, idf=d["idf"],
                           struct_mean=d["struct_mean"], struct_std=d["struct_std"],
                           w_strong=d["w_strong"], w_weak=d["w_weak"], w_topic=d["w_topic"],
                           z=d["z"], quantiles=d["quantiles"],
                           meta=json.loads(str(d["meta"])))
        except RouterFileError:
            raise
        except (OSError, KeyError, ValueError) as e:
            raise RouterFileError(f"cannot load router file {src}: {e}") from None


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


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
    router = Router(vocab, idf, mean.astype(np.float32), std.astype(np.float32), w_strong,
                    w_weak, w_topic, z, np.zeros(101), {})
    router.quantiles = np.percentile(router.score_many(texts), np.arange(101))
    router.meta = {"trained_on": len(texts), "seconds": round(time.time() - t0, 1),
                   "features": len(vocab), "C": C, "alpha": alpha,
                   "created": time.strftime("%Y-%m-%d")}
    return router
