
import numpy as np
import pytest

from hybridgate.routing.labels import LabelsError, drop_contaminated, read_labels, split
from hybridgate.routing.metrics import curve
from hybridgate.routing.router import Router, RouterFileError, train
from tests.conftest import SHARED_DATA

ROUTELLM = SHARED_DATA / "routellm"


def test_bad_labels_name_file_and_line(tmp_path):
    f = tmp_path / "x.csv"
    f.write_text("prompt,weak,strong\nq1,True,False\nq2,maybe,True\n")
    with pytest.raises(LabelsError, match=r"x\.csv:3: weak must be true/false"):
        read_labels([f])
    f.write_text("prompt,weak\n")
    with pytest.raises(LabelsError, match=r"x\.csv:1"):
        read_labels([f])
    f.write_text("prompt,weak,strong,extra\nq1,True,False,ignored\nq2,1,0,x\n")
    labels = read_labels([f])
    assert labels.weak.tolist() == [True, True] and labels.strong.tolist() == [False, False]


@pytest.fixture(scope="module")
def mmlu():
    labels = drop_contaminated(read_labels([ROUTELLM / "mmlu"]),
                               ROUTELLM / "mmlu-contaminated_prompts.jsonl")
    return split(labels)


def test_fixed_split(mmlu):
    tr, te = mmlu
    assert (len(tr), len(te)) == (7018, 7019)
    assert not set(tr.prompts[:200]) & set(te.prompts)


def test_shipped_router_on_test_split(mmlu):
    _, te = mmlu
    c = curve(Router.load().score_many(te.prompts), te.weak, te.strong)
    # Our measured figures (docs/routing.md): above RouteLLM's best (0.603 / 35.5%) and
    # the TF-IDF baseline (0.651 / 27.9%); short of the 0.70 / 22% goal.
    assert c.apgr > 0.675
    assert c.cpt(0.5) < 0.27


def test_train_save_load_roundtrip(tmp_path, mmlu):
    tr, _ = mmlu
    small = tr.subset(np.arange(0, len(tr), 7))
    r = train(small)
    r.save(tmp_path / "r.npz")
    r2 = Router.load(tmp_path / "r.npz")
    assert np.allclose(r.score_many(small.prompts[:20]), r2.score_many(small.prompts[:20]),
                       atol=1e-4)
    # calibration: the threshold for a 30% strong share sends ~30% of training prompts strong
    share = (r2.score_many(small.prompts) > r2.threshold_for_share(0.3)).mean()
    assert share == pytest.approx(0.3, abs=0.02)


def test_missing_or_corrupt_router_file(tmp_path):
    with pytest.raises(RouterFileError, match="nope.npz"):
        Router.load(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(RouterFileError, match="bad.npz"):
        Router.load(bad)


def test_empty_and_odd_text_scores():
    r = Router.load()
    assert np.isfinite(r.score("")) and np.isfinite(r.score("🙂" * 50))
