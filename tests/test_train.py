"""Short real training runs on digits, the run folder, and determinism."""

import csv
import json
import os

import pytest
import torch
import yaml

from fewlabels.errors import FewLabelsError
from fewlabels.models.ema import EMA
from fewlabels.train import TrainConfig, train
from fewlabels.train.optim import cosine_schedule, make_optimizer
from fewlabels.train.streams import IndexStream


def digits_config(tmp_path, **kw):
    base = dict(dataset="digits", labels_per_class=5, iterations=120, eval_every=60, batch_size=32, uratio=4,
                out=str(tmp_path / "run"))
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.kernels
def test_fixmatch_on_digits_learns_and_writes_the_run_folder(tmp_path):
    res = train(digits_config(tmp_path), progress=False)
    # chance is 0.10; 50 labels + unlabeled data reach ~0.9 in 120 steps
    assert res["test_accuracy"] > 0.75
    assert res["num_labeled"] == 50 and res["iterations"] == 120
    assert res["final_mask_rate"] > 0.1
    assert res["final_pseudo_label_acc"] > 0.8
    run = tmp_path / "run"
    names = sorted(p.name for p in run.iterdir())
    assert names == ["checkpoint-00000120.pt", "config.yaml", "last.pt", "metrics.csv", "results.json"]
    assert os.path.samefile(run / "last.pt", run / "checkpoint-00000120.pt")  # a link, not a second write
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["algorithm"] == "fixmatch" and cfg["labels_per_class"] == 5
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [60, 120]
    assert json.loads((run / "results.json").read_text())["test_accuracy"] == pytest.approx(res["test_accuracy"])
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["step"] == 120 and set(ckpt) >= {"model", "ema", "optimizer", "scheduler", "algorithm", "streams"}


@pytest.mark.kernels
def test_supervised_on_digits_learns(tmp_path):
    res = train(digits_config(tmp_path, algorithm="supervised"), progress=False)
    assert res["test_accuracy"] > 0.6
    assert res["uratio"] == 0


def test_same_seed_same_result_different_seed_different(tmp_path):
    a = train(digits_config(tmp_path, iterations=15, eval_every=15, out=str(tmp_path / "a")), progress=False)
    b = train(digits_config(tmp_path, iterations=15, eval_every=15, out=str(tmp_path / "b")), progress=False)
    c = train(digits_config(tmp_path, iterations=15, eval_every=15, seed=1, out=str(tmp_path / "c")), progress=False)
    wa = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["model"]
    wb = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["model"]
    wc = torch.load(tmp_path / "c" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    assert a["test"]["confusion_matrix"] == b["test"]["confusion_matrix"]
    assert c["test"]["n"] == a["test"]["n"]


def test_existing_run_is_not_overwritten_without_consent(tmp_path):
    cfg = digits_config(tmp_path, iterations=2, eval_every=2)
    train(cfg, progress=False)
    before = (tmp_path / "run" / "results.json").read_text()
    with pytest.raises(FewLabelsError, match="already holds a run"):
        train(cfg, progress=False)
    assert (tmp_path / "run" / "results.json").read_text() == before
    train(cfg, progress=False, overwrite=True)


@pytest.mark.parametrize(
    "kw, fragment",
    [
        ({"iterations": 0}, "iterations must be a whole number"),
        ({"algorithm": "fixmach"}, "did you mean 'fixmatch'"),
        ({"model": "resnet"}, "Unknown model 'resnet'"),
        ({"model": "mlp"}, "does not take images"),
        ({"labels_per_class": 1000}, "labeled samples but 1000 labels"),
        ({"options": {"threshold": 2}}, "threshold must be in (0, 1]"),
        ({"ema_decay": 1.0}, "ema_decay must be in [0, 1)"),
    ],
)
def test_bad_config_fails_before_writing_anything(tmp_path, kw, fragment):
    with pytest.raises(FewLabelsError) as err:
        train(digits_config(tmp_path, **kw), progress=False)
    assert fragment in str(err.value)
    assert not (tmp_path / "run").exists()


def test_output_under_a_file_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(FewLabelsError, match="blocked by the file"):
        train(digits_config(tmp_path, out=str(blocker / "run")), progress=False)


def test_ema_warmup_and_average():
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = EMA(model, decay=0.999)
    assert ema.current_decay() == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)
    assert ema.module.weight.item() == pytest.approx(0.9)  # 0.1 * 0 + 0.9 * 1
    for _ in range(10000):
        ema.update(model)
    assert ema.current_decay() == pytest.approx(0.999)
    assert ema.module.weight.item() == pytest.approx(1.0, abs=1e-3)


def test_cosine_schedule_and_no_weight_decay_on_biases():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    opt = make_optimizer(model, lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    decayed = {id(p) for p in opt.param_groups[0]["params"]}
    assert decayed == {id(model[0].weight)}
    assert opt.param_groups[1]["weight_decay"] == 0.0 and opt.defaults["nesterov"]
    sched = cosine_schedule(opt, total_steps=100)
    for _ in range(100):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.19509, rel=1e-3)  # cos(7 pi / 16)


def test_index_stream_covers_every_index_each_epoch_and_resumes():
    s = IndexStream(torch.arange(10).numpy(), batch_size=4, seed=3)
    seen = torch.cat([s.next() for _ in range(5)])  # 20 items = 2 epochs
    assert sorted(seen[:10].tolist()) == list(range(10)) and sorted(seen[10:].tolist()) == list(range(10))
    state = s.state_dict()
    expected = [s.next() for _ in range(3)]
    t = IndexStream(torch.arange(10).numpy(), batch_size=4, seed=3)
    t.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(expected, [t.next() for _ in range(3)]))


def test_index_stream_ranks_split_the_global_batch():
    full = IndexStream(torch.arange(16).numpy(), batch_size=8, seed=0).next()
    r0 = IndexStream(torch.arange(16).numpy(), batch_size=4, seed=0, rank=0, world_size=2).next()
    r1 = IndexStream(torch.arange(16).numpy(), batch_size=4, seed=0, rank=1, world_size=2).next()
    assert torch.equal(torch.sort(torch.cat([r0, r1])).values, torch.sort(full).values)
    assert not set(r0.tolist()) & set(r1.tolist())


def test_tensorboard_scalars_when_the_package_is_there(tmp_path, monkeypatch):
    """With the optional tensorboard extra, each evaluation's numbers go to out/tensorboard as scalars."""
    import sys
    import types

    written = []

    class FakeWriter:
        def __init__(self, log_dir):
            written.append(("dir", log_dir))

        def add_scalar(self, tag, value, step):
            written.append((tag, value, step))

        def flush(self):
            pass

        def close(self):
            written.append(("closed",))

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    train(digits_config(tmp_path, iterations=4, eval_every=2), progress=False)
    assert written[0] == ("dir", str(tmp_path / "run" / "tensorboard"))
    tags = {(w[0], w[2]) for w in written if len(w) == 3}
    assert {("test_acc", 2), ("test_acc", 4), ("loss", 4), ("mask_rate", 2)} <= tags
    assert written[-1] == ("closed",)


def test_no_tensorboard_package_means_no_tensorboard_folder(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    train(digits_config(tmp_path, iterations=2, eval_every=2), progress=False)
    assert not (tmp_path / "run" / "tensorboard").exists()
