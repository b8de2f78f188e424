"""Symmetry discovery: verdicts on data with a known answer, the choice of views, --augment, bad input.

The verdicts hold on at least 9 of 10 seeds (checked by `python bench/symmetries.py --part seeds`; see BENCHMARKS.md);
here a few fixed seeds keep the tests cheap.
"""

import json

import pytest
import torch
import yaml

from fewlabels import data
from fewlabels.augment import Weak
from fewlabels.cli import main
from fewlabels.errors import FewLabelsError
from fewlabels.symmetry import CHANGES, KEEPS, SYMMETRIC, analyse, choose
from fewlabels.symmetry.choice import SUBGROUPS, elements, generated, subgroup_of
from fewlabels.symmetry.controls import mirror_pairs, rotated_digits
from fewlabels.symmetry.transforms import DIHEDRAL, dihedral, orbit

pytestmark = pytest.mark.symmetry_analysis


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FEWLABELS_CACHE", str(tmp_path / "cache"))


def report_on(source, seed, labels_per_class, names=None):
    sp = data.split(source.train.y, labels_per_class, None, 0, seed)
    x = source.train.x
    return analyse(x[sp.unlabeled], x[sp.labeled], source.train.y[sp.labeled], source.train.classes, names, seed=seed)


def by_name(report):
    return {c["name"]: c for c in report["candidates"]}


def collide(row, a, b):
    return any({c["from"], c["to"]} == {a, b} for c in row["collisions"] or [])


@pytest.mark.parametrize("seed", [0, 3])
def test_digits_flips_and_half_turns_change_the_label_and_6_meets_9(seed):
    rows = by_name(report_on(data.load("digits"), seed, 20, ["hflip", "rot180"]))
    assert rows["hflip"]["verdict"] == CHANGES
    assert rows["rot180"]["verdict"] == CHANGES
    assert collide(rows["rot180"], "6", "9")


def test_fashion_mnist_keeps_flips_and_refuses_quarter_turns():
    if data.where("fashion-mnist") is None:
        pytest.skip("Fashion-MNIST is not on this machine")
    rows = by_name(report_on(data.load("fashion-mnist"), 0, 20, ["hflip", "rot90"]))
    assert rows["hflip"]["verdict"] in (KEEPS, SYMMETRIC)
    assert rows["rot90"]["verdict"] == CHANGES


@pytest.mark.parametrize("seed", [0, 1])
def test_randomly_turned_digits_are_already_symmetric_under_quarter_turns_and_keep_them(seed):
    report = report_on(rotated_digits(seed), seed, 20)
    assert by_name(report)["rot90"]["verdict"] == SYMMETRIC
    assert {"rot90", "rot180", "rot270"} <= set(choose(report)["symmetries"])


@pytest.mark.parametrize("seed", [0, 1])
def test_two_mirror_image_classes_refuse_hflip_with_that_collision(seed):
    rows = by_name(report_on(mirror_pairs(seed), seed, 20, ["hflip"]))
    assert rows["hflip"]["verdict"] == CHANGES
    assert collide(rows["hflip"], "as drawn", "mirrored")


def test_same_seed_same_report():
    a = report_on(data.load("digits"), 2, 4, ["hflip", "rotate", "translate"])
    b = report_on(data.load("digits"), 2, 4, ["hflip", "rotate", "translate"])
    a.pop("seconds"), b.pop("seconds")
    assert a == b


def test_non_square_images_skip_quarter_turns_and_say_so():
    x = torch.randint(0, 255, (200, 1, 8, 12), dtype=torch.uint8)
    y = torch.arange(200) % 2
    report = analyse(x[20:], x[:20], y[:20], ["a", "b"], seed=0)
    names = {c["name"] for c in report["candidates"]}
    assert names.isdisjoint({"rot90", "rot270", "transpose", "antitranspose"}) and "rot180" in names
    assert any("not square" in n for n in report["notes"])


def test_one_label_per_class_gives_label_free_scores_only_and_says_so():
    src = data.load("digits")
    report = report_on(src, 0, 1, ["hflip", "scale"])
    assert any("fewer than 2 labels per class" in n for n in report["notes"])
    for row in report["candidates"]:
        assert row["invariance"] is None and row["collisions"] is None and 0.0 <= row["distinguishability"] <= 1.0


def test_unknown_transformation_is_one_sentence_and_exit_2(tmp_path, capsys):
    assert main(["symmetries", "--dataset", "digits", "--transformations", "hflipp", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "did you mean 'hflip'" in err
    with pytest.raises(FewLabelsError):
        analyse(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), None, None, ["a"], ["spin"])


def test_command_writes_table_json_and_grid(tmp_path, capsys):
    out = tmp_path / "sym"
    assert main(["symmetries", "--dataset", "digits", "--labels-per-class", "10", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "rot180" in printed and "--augment auto would use" in printed
    report = json.loads((out / "symmetries.json").read_text())
    assert len(report["candidates"]) == 10 and report["auto_choice"]["symmetries"] == []
    assert (out / "symmetries.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_square_symmetries_compose_into_subgroups():
    probe = torch.arange(16).view(1, 1, 4, 4)
    assert len(orbit("rot90")) == 4 and len(orbit("hflip")) == 2 and len(orbit("transpose")) == 2
    assert torch.equal(dihedral(probe, *DIHEDRAL["transpose"]), probe.transpose(-1, -2))
    for group in SUBGROUPS:  # closed under composition
        found = {tuple(dihedral(dihedral(probe, *a), *b).flatten().tolist()) for a in elements(group) for b in elements(group)}
        assert found == {tuple(dihedral(probe, *e).flatten().tolist()) for e in elements(group)}
    assert subgroup_of({"rot90", "rot180", "rot270", "hflip"}) == ("rot90", "rot180", "rot270")
    assert set(generated(["rot90"])) == {"rot90", "rot180", "rot270"}


def test_choice_honours_an_explicit_hflip():
    report = {"candidates": [{"name": n, "verdict": KEEPS if n == "hflip" else CHANGES} for n in DIHEDRAL]}
    assert choose(report)["symmetries"] == ["hflip"]
    assert choose(report, hflip=False)["symmetries"] == []
    assert choose(report, hflip=False)["sla_group"] == "rot4"
    report = {"candidates": [{"name": n, "verdict": CHANGES} for n in DIHEDRAL]}
    assert choose(report, hflip=True)["symmetries"] == ["hflip"]


def test_weak_view_draws_only_the_group_s_elements_deterministically():
    x = torch.arange(64, dtype=torch.uint8).view(1, 1, 8, 8).repeat(64, 1, 1, 1)
    view = Weak(hflip=False, pad_fraction=0.0, symmetries=elements(("rot90", "rot180", "rot270")))
    a = view(x, torch.Generator().manual_seed(0))
    b = view(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    allowed = [dihedral(x[:1], *e).float() / 255 for e in elements(("rot90", "rot180", "rot270"))]
    kinds = {next(i for i, e in enumerate(allowed) if torch.equal(img[None], e)) for img in a}
    assert kinds == {0, 1, 2, 3}
    plain = Weak(hflip=False, pad_fraction=0.125)  # without symmetries, the same draws as before
    assert torch.equal(plain(x, torch.Generator().manual_seed(1)), Weak(False, 0.125, None)(x, torch.Generator().manual_seed(1)))


def tiny(tmp_path, **kw):
    from fewlabels.train import TrainConfig

    base = dict(dataset="digits", labels_per_class=4, iterations=4, eval_every=4, batch_size=16, uratio=2,
                out=str(tmp_path / "run"))
    base.update(kw)
    return TrainConfig(**base)


def test_train_augment_auto_records_its_choice_and_resume_reuses_it(tmp_path, monkeypatch, capsys):
    from fewlabels.symmetry import choice as choice_mod
    from fewlabels.train import resume, train

    cfg = tiny(tmp_path, checkpoint_every=2, iterations=4)
    res = train(cfg, progress=True)  # the choice is said on the run's second line
    assert "augment auto: views use no flips or quarter turns" in capsys.readouterr().out.splitlines()[1]
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["augment"] == "auto" and saved["augment_choice"]["symmetries"] == []
    assert "hflip" in saved["augment_choice"]["verdicts"]
    assert res["augment_choice"] == saved["augment_choice"]
    # a second run on the same split reads the cache
    cfg2 = tiny(tmp_path, out=str(tmp_path / "run2"))
    train(cfg2, progress=False)
    assert cfg2.augment_choice["cached"] is True

    def refuse(*a, **k):
        raise AssertionError("resume must not analyse again")

    monkeypatch.setattr(choice_mod, "analyse", refuse)
    monkeypatch.setattr(choice_mod, "analyse_split", refuse)
    resume(tmp_path / "run", progress=False)


def test_explicit_settings_win_over_auto(tmp_path):
    from fewlabels.train.preparation import prepare

    p = prepare(tiny(tmp_path, augment="all", hflip=False))
    assert p.symmetries is not None and all(not m for _, m in p.symmetries) and len(p.symmetries) == 4
    p = prepare(tiny(tmp_path, augment="hand"))
    assert p.symmetries is None and p.hflip is False
    p = prepare(tiny(tmp_path, augment="rot180"))
    assert p.symmetries == [(0, False), (2, False)]
    with pytest.raises(FewLabelsError, match="--augment takes"):
        prepare(tiny(tmp_path, augment="spin"))
    with pytest.raises(FewLabelsError, match="predicts the transformations"):  # SLA's default rot4 vs the views' turns
        prepare(tiny(tmp_path, algorithm="sla", augment="rot90"))


def test_a_run_folder_from_before_augment_resumes_as_hand_set(tmp_path, monkeypatch):
    from fewlabels.symmetry import choice as choice_mod
    from fewlabels.train import resume, train

    train(tiny(tmp_path, augment="hand", iterations=4, checkpoint_every=2), progress=False)
    run = tmp_path / "run"
    old = torch.load(run / "last.pt", weights_only=True)
    for key in ("augment", "augment_choice"):
        old["config"].pop(key)
    torch.save(old, run / "last.pt")
    on_disk = yaml.safe_load((run / "config.yaml").read_text())
    for key in ("augment", "augment_choice"):
        on_disk.pop(key)
    (run / "config.yaml").write_text(yaml.safe_dump(on_disk, sort_keys=False))

    def refuse(*a, **k):
        raise AssertionError("an old run resumes with its own views, without the analysis")

    monkeypatch.setattr(choice_mod, "analyse_split", refuse)
    res = resume(run, progress=False)
    assert res["augment"] == "hand" and res["augment_choice"] is None


def test_with_too_few_labels_auto_falls_back_to_the_dataset_s_flips():
    from fewlabels.symmetry import UNKNOWN

    report = {"candidates": [{"name": n, "verdict": UNKNOWN} for n in DIHEDRAL]}
    assert choose(report, unjudged_hflip=True)["symmetries"] == ["hflip"]
    assert choose(report)["symmetries"] == []


@pytest.mark.parametrize("n", [6, 30])
def test_tiny_data_is_judged_or_said_not_to_be(n):
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 255, (n + 4, 1, 8, 8), dtype=torch.uint8, generator=gen)
    y = torch.arange(n + 4) % 2
    report = analyse(x[4:], x[:4], y[:4], ["a", "b"], seed=0)
    assert len(report["candidates"]) == 10
    if n < 20:
        assert any("nothing was judged" in note for note in report["notes"])


# ---- issue 32: verdicts with their uncertainty, a bounded analysis, and two refusals of the command

def test_resamples_that_disagree_make_the_verdict_uncertain():
    from fewlabels.symmetry.analysis import UNCERTAIN, vote

    point = (SYMMETRIC, "told apart 50%")
    split = [(SYMMETRIC, "a")] * 7 + [(CHANGES, "b")] * 5
    verdict, reason, votes = vote(point, split)
    assert verdict == UNCERTAIN and votes == {SYMMETRIC: 7, CHANGES: 5} and "7 of 12" in reason
    assert vote(point, [(SYMMETRIC, "a")] * 10 + [(CHANGES, "b")] * 2)[0] == SYMMETRIC


def test_resamples_with_too_few_labels_abstain_rather_than_contradict():
    from fewlabels.symmetry.analysis import UNCERTAIN, vote

    point = (CHANGES, "g permutes classes")
    said, why, _ = vote(point, [(CHANGES, "a")] * 7 + [(UNCERTAIN, "too few labels")] * 5)
    assert said == CHANGES and "5 had too few labels to judge" in why
    assert vote(point, [(CHANGES, "a")] * 5 + [(UNCERTAIN, "too few labels")] * 7)[0] == UNCERTAIN  # most abstain
    assert vote(point, [(CHANGES, "a")] * 5 + [(SYMMETRIC, "b")] * 2 + [(UNCERTAIN, "c")] * 5)[0] == UNCERTAIN
    assert vote((UNCERTAIN, "too few"), [(UNCERTAIN, "too few")] * 12)[1] == "too few (12 of 12 resamples agree)"


def test_auto_leaves_uncertain_flips_out_and_names_the_flag_that_decides():
    from fewlabels.symmetry.analysis import UNCERTAIN
    from fewlabels.symmetry.choice import describe

    report = {"candidates": [{"name": n, "verdict": KEEPS if n == "hflip" else UNCERTAIN if n == "transpose" else CHANGES}
                             for n in DIHEDRAL]}
    made = choose(report)
    assert made["symmetries"] == ["hflip"] and made["uncertain"] == ["transpose"]
    assert made["sla_group"] == "rot4"  # uncertain is not "distinguishable and label-changing" either
    line = describe(made)
    assert "uncertain: transpose" in line and "--augment hflip,transpose" in line


@pytest.mark.parametrize("seed", [0, 1])
def test_data_in_random_orientation_is_not_called_label_changing_under_its_own_symmetry(seed):
    from fewlabels.symmetry.controls import random_orientation

    rows = by_name(report_on(random_orientation(data.load("digits"), "transposed", seed), seed, 4, ["transpose"]))
    assert rows["transpose"]["verdict"] != CHANGES
    assert rows["transpose"]["distinguishability_sd"] < 0.05  # thousands of images: a tight label-free score


def test_two_labels_per_class_of_mirror_image_classes_are_uncertain_not_symmetric():
    from fewlabels.symmetry.analysis import UNCERTAIN

    rows = by_name(report_on(mirror_pairs(0), 0, 2, ["hflip"]))
    assert rows["hflip"]["verdict"] == UNCERTAIN
    assert sum(rows["hflip"]["votes"].values()) == 12


def test_every_score_has_a_spread_and_a_vote():
    report = report_on(data.load("digits"), 0, 4, ["hflip", "rotate"])
    for row in report["candidates"]:
        assert {"distinguishability_sd", "agreement_sd", "votes", "collision_share"} <= set(row)
        assert {"delta_loglik_sd", "accuracy_drop_sd"} <= set(row["invariance"])
        assert "resamples agree" in row["reason"] or row["verdict"] == "uncertain"


def test_a_large_label_count_is_subsampled_per_class_and_the_estimate_comes_first():
    from fewlabels.symmetry.analysis import MAX_PER_CLASS

    src = data.load("digits")
    said = []
    x, y = src.train.x, src.train.y  # every image labeled: ~135 per class
    report = analyse(x, x, y, src.train.classes, ["hflip"], seed=0, progress=said.append)
    assert report["labeled"] == len(y) and report["labeled_used"] <= MAX_PER_CLASS * 10
    assert any("labels used" in n for n in report["notes"])
    assert said and said[0].startswith("symmetry analysis:") and "about" in said[0]


def test_analyse_split_copies_only_the_labels_it_uses(monkeypatch):
    from fewlabels.symmetry import choice as choice_mod
    from fewlabels.symmetry.analysis import MAX_PER_CLASS

    seen = {}

    def fake(pool, xl, yl, classes, **kw):
        seen["labels"] = len(yl)
        return {"format": 0, "seconds": 0.0, "notes": [], "candidates": []}

    monkeypatch.setattr(choice_mod, "analyse", fake)
    src = data.load("digits")
    labeled = torch.arange(len(src.train.y)).numpy()
    choice_mod.analyse_split(src.train.x, src.train.y, labeled, labeled[:0], src.train.classes, use_cache=False)
    assert seen["labels"] <= MAX_PER_CLASS * 10


def _bad_seed(c):
    from test_bad_input import Expect

    return Expect(["symmetries", "--dataset", "digits", "--seed", "-1", "--out", c.out], ["--seed", "-1"])


def _empty_out(c):
    from test_bad_input import Expect

    return Expect(["symmetries", "--dataset", "digits", "--out", ""], ["--out is empty"])


@pytest.mark.parametrize("make", [_bad_seed, _empty_out], ids=["seed-negative", "out-empty"])
def test_symmetries_refuses_in_one_sentence(make, tmp_path, capsys, monkeypatch, request):
    from test_bad_input import Ctx, assert_one_line_error, run_main

    monkeypatch.chdir(tmp_path)
    expect = make(Ctx(tmp_path, request))
    code, out, err = run_main(expect.argv, capsys)
    assert_one_line_error(code, out, err, expect.fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "nothing may be written"


# ---- issue 32, the all-labels regression: a collision some resamples' judges see must not make a clear flip uncertain

def test_fashion_mnist_with_every_label_keeps_hflip_not_uncertain():
    if data.where("fashion-mnist") is None:
        pytest.skip("Fashion-MNIST is not on this machine")
    src = data.load("fashion-mnist")
    x, y = src.train.x, src.train.y  # all 60,000 labeled, the pool drawn from them (train --algorithm supervised)
    report = analyse(x, x, y, src.train.classes, ["hflip"], seed=0)
    row = by_name(report)["hflip"]
    assert row["verdict"] in (KEEPS, SYMMETRIC), row["reason"]


def _inv(per_class=50, delta=-0.1, worst=0.1):
    return {"folds": 4, "labels_per_class": per_class, "delta_loglik": delta, "worst_class_drop": worst,
            "worst_class": 0, "worst_class_name": "a"}


def _clash():
    return {"from": "Sneaker", "to": "Sandal", "share": 0.6, "share_back": 0.3, "count": 13, "examples": []}


def test_with_many_labels_a_collision_few_resamples_find_does_not_count():
    from fewlabels.symmetry.verdict import corroborate, verdict

    scores = [[_clash()]] + [[_clash()] if r < 4 else [] for r in range(12)]  # full data, then 4 of 12 resamples
    corroborate(scores, per_class=50)
    assert not scores[0][0]["counts"] and scores[0][0]["resample_share"] == pytest.approx(4 / 12, abs=1e-3)
    said, why = verdict(0.81, _inv(), 0.59, scores[0])
    assert said == KEEPS and "Sneaker <-> Sandal" in why and "noise" in why
    stable = [[_clash()]] + [[_clash()] if r < 8 else [] for r in range(12)]
    corroborate(stable, per_class=50)
    assert verdict(0.81, _inv(), 0.59, stable[0])[0] == CHANGES
    few = [[_clash()]] + [[_clash()] if r < 4 else [] for r in range(12)]
    corroborate(few, per_class=4)  # with 4 labels per class every resample's collision still counts
    assert verdict(0.81, _inv(), 0.59, few[0])[0] == CHANGES


def test_a_few_labels_per_class_do_not_turn_invariance_noise_into_changes():
    from fewlabels.symmetry.verdict import verdict

    said, why = verdict(0.80, _inv(per_class=4, delta=-0.9, worst=1.0), 0.7, [])
    assert said == KEEPS and "too few labels per class to measure" in why
    assert verdict(0.80, _inv(per_class=20, worst=0.9), 0.7, [])[0] == CHANGES
    assert verdict(0.80, _inv(per_class=20, delta=-0.9), 0.7, [])[0] == KEEPS  # calibration, not a label change


def test_describe_names_why_each_flip_is_uncertain():
    from fewlabels.symmetry.analysis import UNCERTAIN
    from fewlabels.symmetry.choice import describe

    rows = {"hflip": {"votes": {KEEPS: 8, CHANGES: 4}, "reason": "the evidence disagrees"},
            "transpose": {"votes": {UNCERTAIN: 12}, "reason": "told apart 50%, but too few labels to tell whether g swaps"}}
    report = {"candidates": [{"name": n, "verdict": UNCERTAIN if n in rows else CHANGES, **rows.get(n, {})}
                             for n in DIHEDRAL]}
    line = describe(choose(report))
    assert "hflip (resamples disagree: 8 of 12 keeps the label, 4 of 12 changes the label)" in line
    assert "transpose (too few labels to rule out a swap of classes)" in line
    assert "--augment hflip,transpose" in line
