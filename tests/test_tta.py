"""Flip test-time augmentation: only where the views flip, the mean of the two predictions, the same everywhere."""

from types import SimpleNamespace

import pytest
import torch
from test_bad_input import assert_one_line_error, run_main

from fewlabels.errors import FewLabelsError
from fewlabels.evaluate.tta import ServedRun, flip_average, recorded, resolve, served_module
from fewlabels.train import TrainConfig, train

SHORT = dict(dataset="digits", labels_per_class=10, iterations=20, eval_every=20, checkpoint_every=20, batch_size=16,
             algorithm="supervised", augment="hand", seed=0)


class Symmetric(torch.nn.Module):
    """A net that sees x + mirror(x): its output is the same, bit for bit, for an image and its mirror."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.head = torch.nn.Conv2d(1, 3, 3), torch.nn.Linear(3 * 6 * 6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x + x.flip(-1)).flatten(1))


def test_tta_of_a_flip_symmetric_model_equals_the_plain_prediction():
    net, x = Symmetric(), torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(flip_average(net, x), net(x))


def test_tta_is_the_mean_of_the_two_predictions_and_the_export_applies_the_same():
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(2 * 6 * 6, 3)).eval()
    x = torch.rand(4, 1, 8, 8)
    run = SimpleNamespace(is_image=True, config=SimpleNamespace(tta="hflip"), results={"temperature": 2.0},
                          logits=lambda xb: net(xb), as_input=lambda xb: xb)
    with torch.no_grad():
        expected = (net(x) + net(x.flip(-1))) / 2
        assert not torch.allclose(expected, net(x))  # the flip matters for this net
        torch.testing.assert_close(flip_average(net, x), expected)
        torch.testing.assert_close(ServedRun(run, "hflip", 2.0).logits(x), expected / 2)
        exported = torch.jit.trace(served_module(net, run).eval(), x)
        torch.testing.assert_close(exported(x), expected / 2)
        run.config.tta = "none"
        torch.testing.assert_close(served_module(net, run)(x), net(x) / 2)


def test_hflip_is_refused_where_the_views_never_flip():
    assert resolve("auto", False) == ("none", "auto: the views never flip images")
    assert resolve("auto", True)[0] == "hflip"
    assert resolve("none", True)[0] == "none"
    with pytest.raises(FewLabelsError, match="never flip"):
        resolve("hflip", False)
    with pytest.raises(FewLabelsError, match="never flip"):
        recorded(SimpleNamespace(tta="none"), "hflip")
    assert recorded(SimpleNamespace(tta="auto")) == "none"  # a run from before --tta: no flip recorded


def test_digits_runs_skip_tta_and_refuse_it_when_asked(tmp_path):
    res = train(TrainConfig(**SHORT, out=str(tmp_path / "plain")), progress=False)
    assert res["tta"] == "none" and "test_accuracy_tta" not in res
    with pytest.raises(FewLabelsError, match="never flip"):
        train(TrainConfig(**SHORT, tta="hflip", out=str(tmp_path / "asked")), progress=False)
    assert not (tmp_path / "asked").exists()  # refused before the run folder


def test_a_flipping_run_reports_both_figures_and_evaluate_and_predict_use_its_choice(tmp_path, capsys):
    out = tmp_path / "run"
    res = train(TrainConfig(**SHORT, hflip=True, out=str(out)), progress=False)
    assert res["tta"] == "hflip"
    assert 0 <= res["test_accuracy_tta"] <= 1 and 0 <= res["test_accuracy"] <= 1  # beside, not instead
    code, stdout, err = run_main(["evaluate", out, "--json", tmp_path / "e.json", "--quiet"], capsys)
    assert code == 0, err
    import json
    record = json.loads((tmp_path / "e.json").read_text())
    assert record["tta"] == "hflip" and "accuracy_tta" in record and "accuracy" in record
    assert "flip test-time augmentation" in stdout
    code, _, err = run_main(["evaluate", out, "--json", tmp_path / "f.json", "--tta", "none", "--quiet"], capsys)
    assert code == 0 and "accuracy_tta" not in json.loads((tmp_path / "f.json").read_text())


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tta") / "run"
    train(TrainConfig(**SHORT, out=str(out)), progress=False)
    return out


CASES = {  # argv after the run folder is filled in; each refuses --tta hflip where the views never flip
    "evaluate": lambda run, tmp: ["evaluate", run, "--tta", "hflip", "--json", tmp / "e.json"],
    "predict": lambda run, tmp: ["predict", run, tmp / "x.npy", "--tta", "hflip", "--out", tmp / "p.csv"],
    "train": lambda run, tmp: ["train", "--dataset", "digits", "--labels-per-class", "2", "--iterations", "2",
                               "--augment", "hand", "--tta", "hflip", "--out", tmp / "new"],
}


@pytest.mark.parametrize("command", list(CASES))
def test_tta_hflip_on_a_digits_run_is_one_sentence_and_writes_nothing(command, digits_run, tmp_path, capsys):
    import numpy as np

    np.save(tmp_path / "x.npy", np.zeros((2, 8, 8), dtype=np.uint8))
    before = sorted(p.name for p in tmp_path.iterdir())
    code, stdout, err = run_main(CASES[command](digits_run, tmp_path), capsys)
    assert_one_line_error(code, stdout, err, ["--tta hflip", "never flip"])
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_a_users_channels_last_array_is_flipped_along_its_width():
    """Run.predict_proba takes (N, H, W, C) arrays: the flip must mirror the width, never swap the colour channels."""
    torch.manual_seed(2)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten(), torch.nn.Linear(2 * 6 * 6, 3)).eval()
    nchw = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    run = SimpleNamespace(is_image=True, logits=lambda xb: net(torch.as_tensor(xb).float() / 255),
                          as_input=lambda xb: torch.as_tensor(xb).permute(0, 3, 1, 2) if xb.shape[-1] == 3 else torch.as_tensor(xb))
    with torch.no_grad():
        expected = (run.logits(nchw) + run.logits(nchw.flip(-1))) / 2
        torch.testing.assert_close(ServedRun(run, "hflip").logits(nchw.permute(0, 2, 3, 1).numpy()), expected)
