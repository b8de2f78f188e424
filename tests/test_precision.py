"""--precision: bf16 autocast of the forward pass, fp32 weights and checkpoints, a recorded choice, exact resume."""

import pytest
import torch

from fewlabels.errors import FewLabelsError
from fewlabels.train import TrainConfig, resume, train
from fewlabels.train import precision as precision_mod
from fewlabels.train.loop import Trainer
from fewlabels.train.precision import AUTO_MIN_SPEEDUP, choose

SETTINGS = dict(dataset="digits", labels_per_class=10, iterations=30, eval_every=10, checkpoint_every=10,
                batch_size=16, uratio=2, seed=1, augment="hand", algorithm="fixmatch", keep_checkpoints=3)


def weights(run):
    ckpt = torch.load(run / "last.pt", weights_only=True)
    return ckpt, {**{f"model.{k}": v for k, v in ckpt["model"].items()},
                  **{f"ema.{k}": v for k, v in ckpt["ema"]["module"].items()}}


@pytest.mark.kernels
def test_a_bf16_run_learns_and_keeps_fp32_weights_and_records_its_precision(tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "run"
    res = train(TrainConfig(**{**SETTINGS, "algorithm": "supervised", "iterations": 60, "eval_every": 30,
                               "checkpoint_every": 60}, precision="bf16", out=str(out)), progress=False)
    assert res["precision"] == "bf16"
    ckpt, tensors = weights(out)
    assert ckpt["config"]["precision"] == "bf16"
    assert "precision: bf16" in (out / "config.yaml").read_text().replace("'", "")
    assert {v.dtype for v in tensors.values() if v.is_floating_point()} == {torch.float32}
    for state in ckpt["optimizer"]["state"].values():
        assert all(v.dtype == torch.float32 for v in state.values() if torch.is_tensor(v) and v.is_floating_point())
    import csv
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])  # the loss falls
    assert res["test_accuracy"] > 0.5  # ten classes: chance is 0.1


def test_a_bf16_run_resumes_bit_identical(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    reference, broken = tmp_path / "ref", tmp_path / "broken"
    train(TrainConfig(**SETTINGS, precision="bf16", out=str(reference)), progress=False)
    real = Trainer.save_checkpoint

    def dying(self):
        real(self)
        if self.step == 20:
            raise KeyboardInterrupt  # stands in for the process dying after the step-20 checkpoint

    monkeypatch.setattr(Trainer, "save_checkpoint", dying)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**SETTINGS, precision="bf16", out=str(broken)), progress=False)
    monkeypatch.setattr(Trainer, "save_checkpoint", real)
    res = resume(broken, progress=False)
    assert res["precision"] == "bf16"  # the resume kept it
    (ca, a), (cb, b) = weights(reference), weights(broken)
    assert ca["step"] == cb["step"] == 30
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_auto_takes_bf16_only_with_native_units_and_a_measured_gain(monkeypatch):
    model, sample, cpu = torch.nn.Linear(2, 2), torch.zeros(4, 1, 8, 8), torch.device("cpu")
    assert choose("fp32", cpu, model, sample, True).precision == "fp32"
    assert choose("bf16", cpu, model, sample, True).precision == "bf16"
    assert choose("auto", cpu, model, None, True).precision == "fp32"  # feature vectors
    monkeypatch.setattr(precision_mod, "native_bf16", lambda device: False)
    assert choose("auto", cpu, model, sample, True).precision == "fp32"
    monkeypatch.setattr(precision_mod, "native_bf16", lambda device: True)
    monkeypatch.setattr(precision_mod, "measure_speedup", lambda *a, **k: AUTO_MIN_SPEEDUP + 0.5)
    picked = choose("auto", cpu, model, sample, True)
    assert picked.precision == "bf16" and picked.speedup == AUTO_MIN_SPEEDUP + 0.5
    monkeypatch.setattr(precision_mod, "measure_speedup", lambda *a, **k: 1.05)
    assert choose("auto", cpu, model, sample, True).precision == "fp32"


def test_auto_is_resolved_before_the_run_folder_is_written(tmp_path, monkeypatch):
    """config.yaml and results.json hold fp32 or bf16, never auto: a resume never re-decides."""
    monkeypatch.setattr(precision_mod, "native_bf16", lambda device: True)
    monkeypatch.setattr(precision_mod, "measure_speedup", lambda *a, **k: 2.0)
    out = tmp_path / "run"
    res = train(TrainConfig(**{**SETTINGS, "iterations": 4, "eval_every": 4, "checkpoint_every": 4}, precision="auto",
                            out=str(out)), progress=False)
    assert res["precision"] == "bf16" and res["precision_measured_speedup"] == 2.0
    assert torch.load(out / "last.pt", weights_only=True)["config"]["precision"] == "bf16"


def test_measuring_leaves_the_model_and_the_random_streams_alone():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 3))

    class Pair(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model

        def forward(self, x):
            return self.net(x.float()), x

    pair = Pair()
    before = {k: v.clone() for k, v in pair.state_dict().items()}
    sample = torch.rand(8, 1, 8, 8)
    state = torch.get_rng_state()
    precision_mod.measure_speedup(pair, sample, torch.device("cpu"), channels_last=True, steps=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(before[k], v) for k, v in pair.state_dict().items())


@pytest.mark.parametrize("value", ["fp16", "", 3])
def test_an_unknown_precision_is_refused_in_one_sentence(value):
    with pytest.raises(FewLabelsError, match="precision must be"):
        TrainConfig(precision=value).validate()
