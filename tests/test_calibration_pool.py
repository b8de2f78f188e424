"""A temperature without a validation split: the unlabeled pool's weak-view ensemble (evaluate/pool_calibration.py).

The estimator reads pool images and the run's views, never a label: it softens an overconfident model on held-out
data, keeps T at 1 or its lower end when the evidence is thin, and a run records it where predict, the report
and the export read it.
"""

import csv
import dataclasses

import numpy as np
import pytest
import torch

from fewlabels.data import load as load_data
from fewlabels.evaluate import calibration
from fewlabels.evaluate.calibration import expected_calibration_error, nll, scaled_probs, served_reliability
from fewlabels.evaluate.pool_calibration import METHOD, MIN_POOL, WIDE, fit_temperature_to, pool_estimate
from fewlabels.train import TrainConfig, train

POOL_RUN = dict(dataset="digits", labels_per_class=4, val_per_class=0, iterations=60, eval_every=60, checkpoint_every=60,
                batch_size=32, algorithm="fixmatch", seed=0)


def synthetic(n: int, seed: int, scale: float = 5.0, views: int = 4, jitter: float = 0.3):
    """A model whose logits are ``scale`` times too large; its views' logits are the honest ones, jittered.

    Labels are drawn from softmax(b): b is the true posterior's logits, so T = scale is the right answer.
    """
    g = torch.Generator().manual_seed(seed)
    b = 1.5 * torch.randn(n, 5, generator=g, dtype=torch.float64)
    y = torch.multinomial(torch.softmax(b, 1), 1, generator=g).flatten()
    clean = scale * b
    view_logits = torch.stack([b + jitter * torch.randn(n, 5, generator=g, dtype=torch.float64) for _ in range(views)])
    return clean, view_logits, y


def test_the_pool_estimate_lowers_the_nll_of_an_overconfident_model_on_held_out_labels():
    clean, views, _ = synthetic(1500, 0)
    got = pool_estimate(clean, views)  # no label is passed: the estimator has none to read
    assert got["temperature_fitted_on"] == METHOD and "temperature_note" not in got
    assert 3.0 < got["temperature"] < 7.0  # it undoes most of the 5x
    lo, hi = got["temperature_interval"]
    assert lo <= got["temperature_estimate"] <= hi and hi < WIDE * lo
    held, _, held_y = synthetic(1500, 1)
    t = got["temperature"]
    assert nll(held, held_y, t) < nll(held, held_y) - 0.1
    assert expected_calibration_error(scaled_probs(held, t), held_y) < expected_calibration_error(scaled_probs(held, 1.0), held_y)


def test_fit_temperature_to_one_hot_targets_is_the_nll_fit():
    clean, _, y = synthetic(800, 2)
    onehot = torch.nn.functional.one_hot(y, 5).double()
    assert fit_temperature_to(clean, onehot) == pytest.approx(calibration.fit_temperature(clean, y), rel=1e-3)


def test_a_pool_too_small_gives_no_temperature():
    clean, views, _ = synthetic(MIN_POOL - 1, 3)
    got = pool_estimate(clean, views)
    assert got["temperature"] is None and "--val-per-class" in got["temperature_note"]


def test_an_unsure_estimate_keeps_its_lower_end():
    """A small pool where 5% of the images are 10x overconfident: resamples swing T, and the lower end is kept."""
    g = torch.Generator().manual_seed(4)
    b = torch.randn(MIN_POOL, 5, generator=g, dtype=torch.float64)
    scale = torch.ones(MIN_POOL, 1, dtype=torch.float64)
    scale[: MIN_POOL // 20] = 10.0
    got = pool_estimate(b * scale, torch.stack([b] * 4))
    lo, hi = got["temperature_interval"]
    assert hi > 1.2 * WIDE * lo  # the construction exercises the guard, with room to spare
    assert got["temperature"] == lo < got["temperature_estimate"] and "unsure" in got["temperature_note"]


def test_a_model_the_pool_finds_underconfident_is_never_sharpened():
    clean, views, _ = synthetic(600, 5, scale=0.5)  # logits half the honest size: the fit says T ~ 0.5
    got = pool_estimate(clean, views)
    assert got["temperature_estimate"] < 0.8 and got["temperature"] == 1.0 and "never below 1" in got["temperature_note"]


@pytest.fixture(scope="module")
def pool_run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("pool") / "run"
    return out, train(TrainConfig(**POOL_RUN, out=str(out)), progress=False)


def test_a_run_without_a_validation_split_records_the_pool_temperature(pool_run):
    _, res = pool_run
    assert res["num_validation"] == 0
    assert res["temperature_fitted_on"] == METHOD and res["temperature"] >= 1.0
    assert res["temperature_fit_n"] >= MIN_POOL and len(res["temperature_interval"]) == 2
    assert res["temperature_strong_views"] > 0  # the uncertainty's other side, recorded, not served
    assert {"ece_before", "ece_after", "nll_before", "nll_after"} <= set(res)  # the test set scores it


def test_the_pool_estimate_reads_no_label(tmp_path, monkeypatch):
    """Poisoned test labels give the same T, and no labeled fit runs at all (fit_temperature would raise)."""
    torch.set_num_threads(1)

    def refuse(*args, **kwargs):
        raise AssertionError("a label-based fit ran without a validation split")

    monkeypatch.setattr(calibration, "fit_temperature", refuse)
    settings = {**POOL_RUN, "iterations": 20, "eval_every": 20, "checkpoint_every": 20}
    source = load_data("digits")
    poisoned = dataclasses.replace(source, test=dataclasses.replace(source.test, y=(source.test.y + 1) % 10))
    a = train(TrainConfig(**settings, out=str(tmp_path / "a")), source=source, progress=False)
    b = train(TrainConfig(**settings, out=str(tmp_path / "b")), source=poisoned, progress=False)
    assert a["temperature_fitted_on"] == METHOD and a["temperature"] == b["temperature"]
    assert a["temperature_interval"] == b["temperature_interval"]
    assert a["ece_before"] != b["ece_before"]  # the poison reached the scores, not the fit


def test_a_method_that_never_read_the_pool_gets_no_temperature(tmp_path):
    res = train(TrainConfig(**{**POOL_RUN, "algorithm": "supervised", "iterations": 10, "eval_every": 10,
                               "checkpoint_every": 10}, out=str(tmp_path / "run")), progress=False)
    assert res["temperature"] is None and "unlabeled pool" in res["temperature_note"]


def test_a_method_the_estimate_was_not_checked_on_gets_no_temperature(tmp_path):
    res = train(TrainConfig(**{**POOL_RUN, "algorithm": "pimodel", "iterations": 10, "eval_every": 10,
                               "checkpoint_every": 10}, out=str(tmp_path / "run")), progress=False)
    assert res["temperature"] is None and "not checked on pimodel" in res["temperature_note"]
    # what it serves is still scored: the network's own probabilities, before and after alike
    assert res["ece_after"] == res["ece_before"] and res["nll_after"] == res["nll_before"] and res["ece_before"] > 0


def test_the_methods_served_a_pool_temperature_are_the_ones_it_was_checked_on():
    from fewlabels import algorithms

    served = {name for name in algorithms.names() if algorithms.get_class(name).pool_calibration}
    assert served == {"fixmatch", "flexmatch", "freematch", "softmatch", "uda", "distill"}


def test_predict_serves_the_pool_temperature(pool_run, tmp_path, capsys):
    from test_bad_input import run_main

    from fewlabels.api import load

    out, res = pool_run
    run = load(str(out))
    x = load_data("digits").test.x[:20]
    np.save(tmp_path / "x.npy", x.numpy())
    code, stdout, err = run_main(["predict", out, tmp_path / "x.npy", "--out", tmp_path / "p.csv", "--quiet"], capsys)
    assert code == 0, err
    assert f"temperature {res['temperature']:g}" in stdout
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    got = torch.tensor([[float(r[f"p_{c}"]) for c in run.classes] for r in rows], dtype=torch.float64)
    torch.testing.assert_close(got, scaled_probs(run.logits(x), res["temperature"]), atol=2e-6, rtol=0)
    assert not np.allclose(got.numpy(), scaled_probs(run.logits(x), 1.0).numpy(), atol=1e-4) or res["temperature"] == 1.0


def test_the_report_draws_the_reliability_of_the_served_probabilities(pool_run, capsys):
    from test_bad_input import run_main

    from fewlabels.api import load

    out, res = pool_run
    run = load(str(out))
    test = load_data("digits").test
    served = served_reliability(run, test.x, test.y)
    assert served["temperature"] == res["temperature"]
    expected = expected_calibration_error(scaled_probs(run.logits(test.x), res["temperature"]), test.y)
    assert served["ece"] == pytest.approx(expected, abs=1e-6)  # float32 logits divided before or after the cast
    code, _, err = run_main(["report", out, "--quiet"], capsys)
    assert code == 0, err
    html = (out / "report.html").read_text()
    assert "of the probabilities predict serves" in html


def test_the_bench_scores_a_finished_run_as_the_run_served_it(pool_run):
    """bench/calibration.py --finished restores a run folder and rescores it: its figures are the run's own.

    The weak-view estimate it refits from the restored checkpoint equals the one the run recorded (same pool images,
    same views, same seed), and ECE at the served T equals results.json's ece_after: evidence gathered later from
    finished runs is about the models as they were served, or this fails.
    """
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from calibration_finished import finished_row

    out, res = pool_run
    row = finished_row(out, {})
    # margins: the bench predicts in other batch sizes than the run did, which some kernels round differently
    assert row["rescored_accuracy"] == pytest.approx(res["test_accuracy"], abs=2.5e-3)  # the weights restored
    assert row["candidates"]["served"]["temperature"] == pytest.approx(res["temperature"], abs=1e-4)
    assert row["candidates"]["pool-weak"]["temperature"] == pytest.approx(res["temperature_estimate"], rel=1e-2)
    assert row["candidates"]["served"]["ece"] == pytest.approx(res["ece_after"], abs=2e-3)
    assert row["candidates"]["none"]["ece"] == pytest.approx(res["ece_before"], abs=2e-3)
    assert 0.0 <= row["agree"]["strong"] <= row["agree"]["weak"] <= 1.0
