"""Temperature scaling: fitted on held-out labels (the validation split), never the test set; used by predict."""

import csv
import dataclasses
import json

import pytest
import torch

from fewlabels.data import load as load_data
from fewlabels.evaluate.calibration import expected_calibration_error, fit_temperature, nll, scaled_probs
from fewlabels.train import TrainConfig, train

SHORT = dict(dataset="digits", labels_per_class=20, val_per_class=15, iterations=150, eval_every=150,
             checkpoint_every=150, batch_size=32, algorithm="supervised", augment="hand", seed=0)


def overconfident(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A synthetic model that is right ~70% of the time and says so with logits 6x too large."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 5, (n,), generator=g)
    logits = torch.randn(n, 5, generator=g)
    logits[torch.arange(n), y] += 1.5
    return 6 * logits, y


def test_temperature_scaling_lowers_the_nll_of_an_overconfident_model_on_held_out_data():
    fit_logits, fit_y = overconfident(2000, 0)
    held_logits, held_y = overconfident(2000, 1)
    t = fit_temperature(fit_logits, fit_y)
    assert t > 2  # it undoes most of the 6x
    assert nll(held_logits, held_y, t) < nll(held_logits, held_y)
    assert expected_calibration_error(scaled_probs(held_logits, t), held_y) < \
        expected_calibration_error(scaled_probs(held_logits, 1.0), held_y)
    assert torch.equal(scaled_probs(held_logits, t).argmax(1), held_logits.argmax(1))  # no prediction changes


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("cal") / "run"
    return out, train(TrainConfig(**SHORT, out=str(out)), progress=False)


@pytest.mark.kernels
def test_a_run_with_a_validation_split_records_its_temperature_and_ece_is_not_worse_on_test(digits_run):
    _, res = digits_run
    assert res["temperature_fitted_on"] == "validation" and res["temperature_fit_n"] == 150
    assert 0.05 <= res["temperature"] <= 20
    # on the test set, which the fit never saw. The NLL is what T minimizes; the ECE of 450 test images in 15 bins moves
    # by ~0.01 between seeds when T is near 1 (digits' EMA model is already calibrated: ECE ~0.02), hence the margin.
    assert res["nll_after"] <= res["nll_before"] + 1e-9
    assert res["ece_after"] <= res["ece_before"] + 0.015


def test_the_test_labels_play_no_part_in_the_fit(tmp_path):
    """Poison every test label: the same run fits the same temperature (only the reported ECE changes)."""
    torch.set_num_threads(1)
    settings = {**SHORT, "iterations": 30, "eval_every": 30, "checkpoint_every": 30}
    source = load_data("digits")
    poisoned = dataclasses.replace(source, test=dataclasses.replace(source.test, y=(source.test.y + 1) % 10))
    a = train(TrainConfig(**settings, out=str(tmp_path / "a")), source=source, progress=False)
    b = train(TrainConfig(**settings, out=str(tmp_path / "b")), source=poisoned, progress=False)
    assert a["temperature"] == b["temperature"]
    assert a["test_accuracy"] != b["test_accuracy"]  # the poison reached the test figures


def test_without_a_validation_split_no_temperature_is_fitted(tmp_path):
    res = train(TrainConfig(**{**SHORT, "val_per_class": 0, "iterations": 10, "eval_every": 10, "checkpoint_every": 10},
                            out=str(tmp_path / "run")), progress=False)
    assert res["temperature"] is None and "validation" in res["temperature_note"]


def test_predict_probabilities_use_the_run_temperature(digits_run, tmp_path, capsys):
    import numpy as np
    from test_bad_input import run_main

    from fewlabels.api import load

    out, res = digits_run
    run = load(str(out))
    x = load_data("digits").test.x[:20]
    np.save(tmp_path / "x.npy", x.numpy())
    code, stdout, err = run_main(["predict", out, tmp_path / "x.npy", "--out", tmp_path / "p.csv", "--quiet"], capsys)
    assert code == 0, err
    assert f"temperature {res['temperature']:g}" in stdout
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    expected = scaled_probs(run.logits(x), res["temperature"])
    got = torch.tensor([[float(r[f"p_{c}"]) for c in run.classes] for r in rows], dtype=torch.float64)
    torch.testing.assert_close(got, expected, atol=2e-6, rtol=0)
    code, stdout, err = run_main(["evaluate", out, "--json", tmp_path / "e.json", "--quiet"], capsys)
    record = json.loads((tmp_path / "e.json").read_text())
    assert code == 0 and record["temperature"] == res["temperature"] and "ece_calibrated" in record
