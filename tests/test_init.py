"""Starting from an encoder: --init loads exactly the backbone (and the head when asked), refuses mismatches."""

import hashlib
import json
import subprocess
import sys

import pytest
import torch

from fewlabels import models
from fewlabels.errors import FewLabelsError
from fewlabels.train import TrainConfig, prepare, train
from fewlabels.train.loop import Trainer

BASE = dict(dataset="digits", labels_per_class=4, batch_size=8, uratio=2, seed=1)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    out = tmp_path_factory.mktemp("enc") / "simclr"
    torch.set_num_threads(1)
    train(TrainConfig(**BASE, algorithm="simclr", iterations=3, eval_every=3, checkpoint_every=3, out=str(out)),
          progress=False)
    return out


def _trainer(**settings):
    return Trainer(prepare(TrainConfig(**{**BASE, "algorithm": "supervised", "iterations": 4, **settings})), progress=False)


def test_init_loads_exactly_the_backbone_and_its_normalization(encoder):
    ema = torch.load(encoder / "last.pt", weights_only=True)["ema"]["module"]
    fresh = _trainer().model.state_dict()
    model = _trainer(init=str(encoder), seed=2).model.state_dict()
    for key, value in model.items():
        if key.startswith(("backbone.", "mean", "std")):
            assert torch.equal(value, ema[key]), key
        elif key.startswith("head."):
            assert not torch.equal(value, ema[key]), key  # the head is the new run's own
    assert any(not torch.equal(fresh[k], model[k]) for k in fresh if k.startswith("backbone."))
    with_head = _trainer(init=str(encoder), init_head=True).model.state_dict()
    assert torch.equal(with_head["head.weight"], ema["head.weight"])


def test_init_from_a_plain_state_dict_file_and_the_record(encoder, tmp_path):
    file = tmp_path / "enc.pt"
    state = torch.load(encoder / "last.pt", weights_only=True)["ema"]["module"]
    torch.save(state, file)
    res = train(TrainConfig(**BASE, algorithm="supervised", iterations=2, eval_every=2, init=str(file),
                            out=str(tmp_path / "r")), progress=False)
    assert res["init"]["sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    assert res["init"]["path"] == str(file) and res["init"]["tensors"] > 10
    assert json.loads((tmp_path / "r" / "results.json").read_text())["init"] == res["init"]


def test_mismatches_are_one_sentence_naming_the_first(encoder, tmp_path):
    with pytest.raises(FewLabelsError, match=r"'backbone.0.weight' has shape \(16, 1, 3, 3\) there but \(32, 1, 3, 3\)"):
        _trainer(init=str(encoder), model="cnn-wide")
    other_channels = models.get("cnn", (3, 8, 8), 10).state_dict()
    torch.save(other_channels, tmp_path / "rgb.pt")
    with pytest.raises(FewLabelsError, match=r"'mean' has shape \(1, 3, 1, 1\) there but \(1, 1, 1, 1\) here \(other input"):
        _trainer(init=str(tmp_path / "rgb.pt"))
    torch.save({"backbone.0.weight": torch.zeros(16, 1, 3, 3)}, tmp_path / "partial.pt")
    with pytest.raises(FewLabelsError, match="has no 'backbone.1.weight': it was written for another model"):
        _trainer(init=str(tmp_path / "partial.pt"))
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(FewLabelsError, match="is not a state_dict"):
        _trainer(init=str(tmp_path / "list.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(FewLabelsError, match="cannot be read as a PyTorch state_dict"):
        _trainer(init=str(tmp_path / "junk.pt"))
    with pytest.raises(FewLabelsError, match="does not exist"):
        _trainer(init=str(tmp_path / "missing"))
    ten_classes = torch.load(encoder / "last.pt", weights_only=True)["ema"]["module"]
    ten_classes["head.weight"] = torch.zeros(3, ten_classes["head.weight"].shape[1])
    torch.save(ten_classes, tmp_path / "three.pt")
    with pytest.raises(FewLabelsError, match="other classes; --init-head needs the same classes"):
        _trainer(init=str(tmp_path / "three.pt"), init_head=True)


def test_freeze_backbone_trains_the_head_only(encoder):
    trainer = _trainer(init=str(encoder), freeze_backbone=True)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.run()
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("backbone."))  # running stats too
    assert not torch.equal(before["head.weight"], after["head.weight"])


def test_backbone_lr_scale_gives_the_backbone_its_own_rate(encoder):
    trainer = _trainer(init=str(encoder), backbone_lr_scale=0.1, lr=0.05)
    backbone = {id(p) for p in trainer.model.backbone.parameters()}
    groups = [g for g in trainer.optimizer.param_groups if any(id(p) in backbone for p in g["params"])]
    assert len(groups) == 2 and all(g["lr"] == pytest.approx(0.005) for g in groups)
    head_group = next(g for g in trainer.optimizer.param_groups if any(p is trainer.model.head.weight for p in g["params"]))
    assert head_group["lr"] == pytest.approx(0.05)


@pytest.mark.parametrize("flags, words", [
    (["--freeze-backbone"], "freeze_backbone must be used with --init"),
    (["--init-head"], "init_head must be used with --init"),
    (["--backbone-lr-scale", "-1"], "backbone_lr_scale must be a number of 0 or more and at most 100"),
])
def test_cli_refuses_encoder_flags_without_an_encoder(tmp_path, flags, words):
    out = tmp_path / "r"
    proc = subprocess.run([sys.executable, "-m", "fewlabels", "train", "--dataset", "digits", "--iterations", "2",
                           "--out", str(out), "--quiet", *flags], capture_output=True, text=True)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()


def test_python_api_and_estimator_take_init(encoder):
    import numpy as np
    from sklearn.datasets import load_digits

    import fewlabels
    from fewlabels.sklearn import SemiSupervisedClassifier

    run = fewlabels.fit("digits", labels_per_class=4, algorithm="supervised", iterations=2, init=str(encoder))
    assert run.results["init"]["path"] == str(encoder)
    X, y = load_digits(return_X_y=True)
    X = (X.reshape(-1, 8, 8) / 16.0).astype("float32")
    y_few = np.where(np.arange(len(y)) % 10 == 0, y, -1)
    clf = SemiSupervisedClassifier(algorithm="supervised", iterations=2, init=str(encoder)).fit(X, y_few)
    assert clf.run_.results["init"]["tensors"] > 10
