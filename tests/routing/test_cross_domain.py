"""The router's cross-domain part: familiarity decides how far the words are trusted, and
the cross-domain model learns what makes a request harder *within* its kind."""

import numpy as np
import pytest

from hybridgate.routing import features
from hybridgate.routing.labels import Labels
from hybridgate.routing.router import Router, fit_cross, train

MATHS = ["What is {a} plus {b}?", "Compute {a} times {b}.", "Subtract {b} from {a}.",
         "Is {a} a prime number?", "What is the remainder of {a} divided by {b}?"]
HISTORY = ["Who ruled {a} in the year {b}?", "When did the empire of {a} fall?",
           "Which treaty ended the war between {a} and {b}?"]


def _labels(n: int = 300, seed: int = 0) -> Labels:
    rng = np.random.default_rng(seed)
    prompts, weak, strong, groups = [], [], [], []
    for i in range(n):
        hard = i % 2 == 0
        if i % 3:
            t = MATHS[i % len(MATHS)].format(a=rng.integers(10, 999), b=rng.integers(2, 99))
            group = "maths"
        else:
            t = HISTORY[i % len(HISTORY)].format(a=f"kingdom{rng.integers(50)}",
                                                 b=rng.integers(800, 1900))
            group = "history"
        if hard:  # within each kind, hard requests are the long multi-step ones
            t += " Explain each step, and check the result twice before you answer."
        prompts.append(t)
        weak.append(float(not hard and rng.random() < 0.9))
        strong.append(float(rng.random() < 0.9))
        groups.append(group)
    return Labels(prompts, np.array(weak), np.array(strong), groups)


def test_familiarity_is_high_near_the_training_prompts_and_low_far_from_them():
    labels = _labels()
    r = train(labels)
    fam = r.familiarity
    assert fam is not None
    near = fam.of(*features.tfidf_one("What is 17 plus 23?", r.vocab, r.idf))
    far = fam.of(*features.tfidf_one("Compose haiku regarding autumn leaves near Kyoto temples.",
                                     r.vocab, r.idf))
    assert far == 0.0 < fam.lo < near
    assert fam.trust(near) > 0.0 and fam.trust(far) == 0.0
    assert fam.trust(fam.of(*features.tfidf_one(labels.prompts[0], r.vocab, r.idf))) == 1.0
    # one prompt at a time (the serving path) and many at once agree
    texts = labels.prompts[:40] + ["Compose haiku regarding autumn leaves near Kyoto temples."]
    x = features.tfidf(texts, r.vocab, r.idf)
    one = [fam.of(*features.tfidf_one(t, r.vocab, r.idf)) for t in texts]
    assert np.allclose(fam.of_many(x), one, atol=1e-3)


def test_far_from_training_the_score_is_the_cross_domain_part_alone():
    r = train(_labels())
    text = "Compose haiku regarding autumn leaves near Kyoto temples; explain each step."
    assert r.familiarity is not None and r.w_cross is not None
    cross = float(r._cross(features.cross([text]))[0])
    assert r.score(text) == pytest.approx(cross, abs=1e-9)
    assert r.score_many([text])[0] == pytest.approx(cross, abs=1e-6)


def test_cross_part_learns_within_kind_difficulty_on_top_of_length():
    """Two groups: in one the weak model is always wrong (a kind that is hard), and the
    prompts of that group are long. Within each group the hard requests carry the
    multi-step wording, at the same length. The regression must learn the wording from
    within the groups (a group-level model would learn only "long kind = hard"), and the
    length term must still rank a longer request above a shorter one."""
    rng = np.random.default_rng(1)
    prompts, gain, groups = [], [], []
    for i in range(400):
        long_kind = i % 2 == 0
        hard = rng.random() < 0.5
        p = ("Please read this long and careful description. " * 6 if long_kind else "Q: ")
        # the same length either way: only the wording tells the hard ones apart
        p += f"item {i}." + (" Explain why, step by step." if hard else " Say it in a word, ok.")
        prompts.append(p)
        gain.append((0.8 if long_kind else 0.0) + (0.5 if hard else 0.0))
        groups.append("long" if long_kind else "short")
    c = features.cross(prompts)
    mean, std, w = fit_cross(c, np.array(gain), groups)
    s = ((c - mean) / std) @ w
    hard = np.array([p.endswith("step by step.") for p in prompts])
    long_kind = long_kind_of(groups)
    assert np.ptp([len(p) for p in np.array(prompts)[long_kind]]) < 10
    for kind in (long_kind, ~long_kind):  # within each kind, the hard ones rank higher
        assert s[kind & hard].mean() > s[kind & ~hard].mean() + 0.3
    reasoning = features.CROSS.index("reasoning")
    assert w[reasoning] > 0
    assert s[long_kind & ~hard].mean() > s[~long_kind & ~hard].mean()  # the length term
    assert s.std() == pytest.approx(1.0, abs=1e-6)


def long_kind_of(groups: list[str]) -> np.ndarray:
    return np.array([g == "long" for g in groups])


def test_format_1_router_files_still_load_and_score_without_the_cross_part(tmp_path):
    r = train(_labels())
    r.familiarity = None
    r.save(tmp_path / "old.npz")
    with np.load(tmp_path / "old.npz") as d:
        arrays = {k: d[k] for k in d.files}
    arrays["format"] = np.array(1)
    np.savez(tmp_path / "old.npz", **arrays)
    old = Router.load(tmp_path / "old.npz")
    assert old.familiarity is None
    text = "What is 12 plus 30?"
    assert np.isfinite(old.score(text))
    assert old.score(text) == pytest.approx(old.score_many([text])[0], abs=1e-6)


def test_cross_features_are_linear_time_on_hostile_text():
    import time

    for body in ("(" * 1_000_000, "a " * 500_000, "1." * 500_000, "\n A. " * 200_000):
        t0 = time.perf_counter()
        features.cross([body])
        assert time.perf_counter() - t0 < 3.0
