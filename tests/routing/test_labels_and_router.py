
import numpy as np
import pytest

from hybridgate.routing.labels import (
    LabelsError,
    dedupe,
    drop_contaminated,
    normalize,
    read_labels,
    split,
)
from hybridgate.routing.metrics import curve
from hybridgate.routing.router import Router, RouterFileError, train
from tests.conftest import SHARED_DATA

ROUTELLM = SHARED_DATA / "routellm"


def test_bad_labels_name_file_and_line(tmp_path):
    f = tmp_path / "x.csv"
    f.write_text("prompt,weak,strong\nq1,True,False\nq2,maybe,True\n")
    with pytest.raises(LabelsError, match=r"x\.csv:3: weak must be true/false or a number"):
        read_labels([f])
    f.write_text("prompt,weak\n")
    with pytest.raises(LabelsError, match=r"x\.csv:1"):
        read_labels([f])
    f.write_text("prompt,weak,strong,extra\nq1,True,False,ignored\nq2,1,0,x\n")
    labels = read_labels([f])
    assert labels.weak.tolist() == [1.0, 1.0] and labels.strong.tolist() == [0.0, 0.0]
    f.write_text("prompt,weak,strong\nq1,nan,1\n")
    with pytest.raises(LabelsError, match=r"x\.csv:2: weak"):
        read_labels([f])


def test_judge_scores_are_rescaled_together(tmp_path):
    """MT-Bench style 1-10 scores: one affine map for both columns, so PGR is the same."""
    f = tmp_path / "judged.csv"
    f.write_text("prompt,weak,strong\nq1,2,10\nq2,6,8\nq3,9,9\n")
    labels = read_labels([f])
    assert labels.weak.tolist() == pytest.approx([0.0, 0.5, 0.875])
    assert labels.strong.tolist() == pytest.approx([1.0, 0.75, 0.875])
    raw_w, raw_s = np.array([2.0, 6, 9]), np.array([10.0, 8, 9])
    scores = np.array([0.3, 0.9, 0.1])
    assert curve(scores, labels.weak, labels.strong).apgr == pytest.approx(
        curve(scores, raw_w, raw_s).apgr)


def test_training_on_scores_ranks_like_the_scores(tmp_path):
    """Soft labels: prompts whose strong score beats the weak one by more rank higher."""
    rows = ["prompt,weak,strong"]
    for i in range(40):
        rows.append(f"prove the theorem number {i},0.2,0.9")
        rows.append(f"say hello to friend {i},0.8,0.8")
    f = tmp_path / "s.csv"
    f.write_text("\n".join(rows) + "\n")
    r = train(read_labels([f]))
    assert r.score("prove the theorem number 99") > r.score("say hello to friend 99")


@pytest.fixture(scope="module")
def mmlu():
    labels = drop_contaminated(read_labels([ROUTELLM / "mmlu"]),
                               ROUTELLM / "mmlu-contaminated_prompts.jsonl")
    return split(labels)


def test_fixed_split(mmlu):
    tr, te = mmlu
    assert (len(tr), len(te)) == (6966, 6966)
    # no prompt text, however cased or spaced, on both sides: the whole split is checked
    assert not {normalize(p) for p in tr.prompts} & {normalize(p) for p in te.prompts}
    assert len({normalize(p) for p in tr.prompts}) == len(tr)


def test_dedupe_merges_repeats_and_averages_their_labels(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("prompt,weak,strong\nWhat is 2+2?,1,1\nwhat  is 2+2? ,0,1\nOther,1,0\n")
    d = dedupe(read_labels([f]))
    assert d.prompts == ["What is 2+2?", "Other"]
    assert list(d.weak) == [0.5, 1.0] and list(d.strong) == [1.0, 0.0]


def test_shipped_router_on_test_split(mmlu):
    _, te = mmlu
    c = curve(Router.load().score_many(te.prompts), te.weak, te.strong)
    # Our measured figures (docs/routing.md, de-duplicated split): 0.655 / 28.1% for the
    # router with the cross-domain part (0.653 / 28.1% for the MMLU-only one before it),
    # about what knowing each question's subject gives (0.659 / 29.0%); random is 0.50.
    assert c.apgr > 0.645
    assert c.cpt(0.5) < 0.29


def test_train_save_load_roundtrip(tmp_path, mmlu):
    tr, te = mmlu
    small = tr.subset(np.arange(0, len(tr), 7))
    r = train(small)
    r.save(tmp_path / "r.npz")
    r2 = Router.load(tmp_path / "r.npz")
    assert np.allclose(r.score_many(small.prompts[:20]), r2.score_many(small.prompts[:20]),
                       atol=1e-4)
    assert r2.familiarity is not None and r2.w_cross is not None
    # calibration: the threshold for a 30% strong share sends ~30% of *unseen* prompts of
    # the same kind strong (the quantiles are taken as if each training prompt were new)
    share = (r2.score_many(te.prompts) > r2.threshold_for_share(0.3)).mean()
    assert share == pytest.approx(0.3, abs=0.04)


def test_cli_train_with_extra_labels_used_whole(tmp_path):
    from click.testing import CliRunner

    from hybridgate.cli.main import cli

    d = ROUTELLM / "mmlu"
    extra = tmp_path / "my_domain.csv"
    extra.write_text("prompt,weak,strong\n" + "".join(
        f"Refactor module {i} of the billing service,{i % 2},1\n" for i in range(40)))
    out = tmp_path / "r.npz"
    res = CliRunner().invoke(cli, ["router", "train", "--labels", str(d / "mmlu_anatomy.csv"),
                                   "--split", "train", "--with-labels", str(extra),
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    anatomy = len(split(read_labels([d / "mmlu_anatomy.csv"]))[0])
    assert Router.load(out).meta["trained_on"] == anatomy + 40  # all 40, not half


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
