"""Data as a user brings it: every label given is used, photos shrink to a CPU-sized resolution, the model and the
algorithm follow the data, feature vectors get label propagation, and bad input is one sentence."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import fewlabels
from fewlabels import algorithms, models
from fewlabels.cli import main
from fewlabels.data import folder
from fewlabels.data.resize import fitted_size, resize_images
from fewlabels.train.config import TrainConfig
from fewlabels.train.estimate import RunEstimate, is_long, sentence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
SHORT = ["--iterations", "2", "--eval-every", "2", "--checkpoint-every", "2"]


def photo_folder(root: Path, classes: int = 3, per_class: int = 5, unlabeled: int = 12, size=(64, 48)) -> Path:
    """RGB photos of ``size`` (width, height): class c is brighter in its own third of the picture."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        for i in range(per_class + (unlabeled // classes)):
            a = rng.integers(0, 120, (size[1], size[0], 3), dtype=np.uint8)
            a[:, c * size[0] // classes : (c + 1) * size[0] // classes] += 120
            where = root / f"class{c}" / f"{i}.png" if i < per_class else root / "unlabeled" / f"c{c}-{i}.png"
            where.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(a).save(where)
    return root


def run_main(argv, capsys) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------- every label given


def test_a_folder_trains_on_exactly_the_labels_given_and_says_so(tmp_path, capsys):
    root = photo_folder(tmp_path / "photos")
    code, out, err = run_main(["train", "--dataset", root, *SHORT, "--out", tmp_path / "run"], capsys)
    assert code == 0, err
    first = out.splitlines()[0]
    assert first.startswith("15 labeled (5 per class), 12 unlabeled: every label given;"), first
    assert "fixmatch on model cnn" in first
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["num_labeled"] == 15
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["labels_per_class"] is None


def test_labels_per_class_subsamples_only_when_given(tmp_path, capsys):
    root = photo_folder(tmp_path / "photos")
    code, out, _ = run_main(["train", "--dataset", root, "--labels-per-class", "2", *SHORT, "--out", tmp_path / "r"], capsys)
    assert code == 0
    assert out.splitlines()[0].startswith("6 labeled (2 per class), 21 unlabeled: 2 labels per class kept")


def test_fully_labeled_data_keeps_the_experiment_default_and_says_which(tmp_path, capsys):
    code, out, _ = run_main(["train", "--dataset", "digits", *SHORT, "--out", tmp_path / "r"], capsys)
    assert code == 0
    assert out.splitlines()[0].startswith("40 labeled (4 per class), 1,307 unlabeled: fully labeled data: 4 labels per class kept")
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["labels_per_class"] == 4
    supervised = fewlabels.fit("digits", algorithm="supervised", iterations=2, eval_every=2)
    assert supervised.results["num_labeled"] == 1347  # no unlabeled data to learn from: every label


# ---------------------------------------------------------------- image size


def test_photos_shrink_to_the_cpu_size_once_and_the_choice_is_recorded(tmp_path, capsys):
    root = photo_folder(tmp_path / "photos")
    code, out, _ = run_main(["train", "--dataset", root, *SHORT, "--out", tmp_path / "r"], capsys)
    assert code == 0
    assert "24x32 px images" in out.splitlines()[0]  # 64x48 (w x h) -> longer side 32, aspect kept
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["image_size"] == 32
    assert fewlabels.load(tmp_path / "r").sample_shape == (3, 24, 32)


def test_image_size_is_obeyed_and_may_enlarge(tmp_path, capsys):
    root = photo_folder(tmp_path / "photos")
    assert run_main(["train", "--dataset", root, "--image-size", "16", *SHORT, "--out", tmp_path / "a"], capsys)[0] == 0
    assert fewlabels.load(tmp_path / "a").sample_shape == (3, 12, 16)
    assert run_main(["train", "--dataset", "digits", "--image-size", "16", *SHORT, "--out", tmp_path / "b"], capsys)[0] == 0
    assert fewlabels.load(tmp_path / "b").sample_shape == (1, 16, 16)  # arrays are resized in memory


def test_fitted_size_keeps_the_aspect_and_only_shrinks_by_default():
    assert fitted_size(48, 64, 32, shrink_only=True) == (24, 32)
    assert fitted_size(28, 28, 32, shrink_only=True) == (28, 28)
    assert fitted_size(8, 8, 16, shrink_only=False) == (16, 16)
    assert fitted_size(100, 30, None, shrink_only=True) == (100, 30)


def test_predict_and_export_resize_as_training_did(tmp_path, capsys):
    root = photo_folder(tmp_path / "photos")
    assert run_main(["train", "--dataset", root, *SHORT, "--out", tmp_path / "r"], capsys)[0] == 0
    run = fewlabels.load(tmp_path / "r")
    from fewlabels.evaluate.predictions import predict_inputs
    from fewlabels.evaluate.tta import served

    files = sorted((root / "class0").iterdir())
    predicted = predict_inputs(served(run), [str(root / "class0")]).probs.numpy()  # as fewlabels predict serves it
    as_trained = folder.load(root, side=32).train.x[:5]  # class0's five files, read as training read them
    np.testing.assert_allclose(predicted, run.predict_proba(as_trained.permute(0, 2, 3, 1).numpy()), atol=1e-6)
    assert len(files) == 5
    # arrays at the original size: the Python API and the exported TorchScript resize them the same way
    original = torch.from_numpy(np.stack([np.asarray(Image.open(f)) for f in files])).permute(0, 3, 1, 2).contiguous()
    api = run.predict_proba(original.permute(0, 2, 3, 1).numpy())
    np.testing.assert_allclose(api, run.predict_proba(resize_images(original, (24, 32)).permute(0, 2, 3, 1).numpy()), atol=1e-6)
    from fewlabels.export import to_torchscript

    served = torch.jit.load(io.BytesIO(to_torchscript(run)))
    with torch.no_grad():
        np.testing.assert_allclose(torch.softmax(served(original), 1).numpy(), api, atol=1e-5)


# ---------------------------------------------------------------- the model and the algorithm follow the data


def test_the_model_and_algorithm_follow_the_data(tmp_path, capsys):
    assert models.default_for((3, 32, 32), on_gpu=False) == "cnn"
    assert models.default_for((3, 32, 32), on_gpu=True) == "wrn-28-2"
    assert models.default_for((1, 8, 8), on_gpu=True) == "cnn"
    assert models.default_for((20,), on_gpu=True) == "mlp"
    assert algorithms.default_for((1, 8, 8)) == "fixmatch" and algorithms.default_for((20,)) == "labelprop"
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 30)
    x = rng.normal(size=(60, 5)).astype(np.float32) + y[:, None]
    np.savez(tmp_path / "table.npz", X=x, y=np.where(np.arange(60) % 10 == 0, y, -1))
    code, out, err = run_main(["train", "--dataset", tmp_path / "table.npz", *SHORT, "--out", tmp_path / "r"], capsys)
    assert code == 0, err
    config = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert (config["model"], config["algorithm"]) == ("mlp", "labelprop")
    assert "5 features, labelprop on model mlp" in out.splitlines()[0]


def test_help_lists_the_real_choices(capsys):
    code, out, _ = run_main(["train", "--help"], capsys)
    assert code == 0
    text = " ".join(out.split())
    for name in (*algorithms.names(), *models.names()):
        assert name in text, name


# ---------------------------------------------------------------- the time estimate


def test_a_long_run_is_told_its_time_and_how_to_shorten_it():
    config = TrainConfig(iterations=3000, image_size=128)
    estimate = RunEstimate(config, first_step=0)
    said = [estimate.add(step, 20.0) for step in range(1, 12)]
    text = [s for s in said if s][0]
    assert "about 16.6 h of training left (2,990 steps at 20.00 s a step)" in text
    assert is_long(text) and "--image-size (now 128 px)" in text and "--iterations" in text
    assert sentence(0.001, 100, config) and not is_long(sentence(0.5, 100, config))
    quick = RunEstimate(TrainConfig(iterations=50), first_step=0)
    assert all(quick.add(step, 0.01) is None for step in range(1, 51))  # under a minute: nothing to say


# ---------------------------------------------------------------- feature vectors


@pytest.mark.kernels
@pytest.mark.parametrize("name", ["moons", "circles", "breast-cancer", "digits", "fmnist-pixels"])
def test_each_feature_benchmark_dataset_loads_and_a_short_run_learns(name):
    from features import SETS, load

    from fewlabels import data

    if name == "fmnist-pixels" and data.where("fashion-mnist") is None:
        pytest.skip("Fashion-MNIST is not installed")
    x, y_all, xt, yt, _ = load(name, None)
    assert x.ndim == 2 and len(x) == len(y_all) and xt.shape[1] == x.shape[1]
    split = data.split(y_all, labels_per_class=max(SETS[name]), seed=0)
    y = np.full(len(y_all), -1)
    y[split.labeled] = y_all[split.labeled]
    run = fewlabels.fit(x, y, test=(xt, yt), iterations=100, eval_every=100)
    chance = np.bincount(yt).max() / len(yt)
    assert run.config.algorithm == "labelprop"
    assert run.results["test_accuracy"] > chance + 0.2 * (1 - chance), run.results["test_accuracy"]


def test_the_embedding_dataset_reads_what_embed_writes(tmp_path):
    from features import load

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "emb.npz", X=rng.normal(size=(20, 4)), y=np.arange(20) % 2, X_test=rng.normal(size=(6, 4)),
             y_test=np.arange(6) % 2, classes=np.array(["a", "b"]))
    x, y, xt, yt, what = load("fmnist-embedding", str(tmp_path / "emb.npz"))
    assert x.dtype == np.float32 and x.shape == (20, 4) and xt.shape == (6, 4) and "4-d embedding" in what


@pytest.mark.kernels
def test_two_moons_with_one_label_per_class_reaches_95_percent():
    from sklearn.datasets import make_moons

    from fewlabels import data

    x, y_all = make_moons(1000, noise=0.1, random_state=0)
    xt, yt = make_moons(1000, noise=0.1, random_state=1)
    accuracies = []
    for seed in (0, 1, 2):
        split = data.split(y_all, labels_per_class=1, seed=seed)
        y = np.full(1000, -1)
        y[split.labeled] = y_all[split.labeled]
        run = fewlabels.fit(x.astype(np.float32), y, test=(xt.astype(np.float32), yt), iterations=300, seed=seed,
                            eval_every=300)
        accuracies.append(run.results["test_accuracy"])
    assert np.mean(accuracies) >= 0.95 and min(accuracies) >= 0.93, accuracies


def test_constant_columns_are_said_and_ignored():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    x = (rng.normal(size=(80, 4)) + y[:, None]).astype(np.float32)
    x[:, 2] = 5.0
    labels = np.where(np.arange(80) % 8 == 0, y, -1)
    with pytest.warns(UserWarning, match="Feature column 2 of .* is the same in every row"):
        run = fewlabels.fit(x, labels, iterations=30, eval_every=30)
    shifted = x[:5].copy()
    shifted[:, 2] = 1e6  # a value never seen in training changes nothing: the column is ignored
    np.testing.assert_allclose(run.predict_proba(shifted), run.predict_proba(x[:5]), atol=1e-6)


def test_whole_number_float_labels_are_classes():
    rng = np.random.default_rng(0)
    y = np.repeat([0.0, 1.0], 20)
    x = (rng.normal(size=(40, 3)) + y[:, None]).astype(np.float32)
    run = fewlabels.fit(x, np.where(np.arange(40) % 5 == 0, y, -1.0), iterations=5, eval_every=5)
    assert run.classes == ["0", "1"]


# ---------------------------------------------------------------- bad input: one sentence, exit 2, nothing written


def _npz(tmp_path: Path, **changes) -> Path:
    rng = np.random.default_rng(0)
    arrays = {"X": rng.normal(size=(30, 4)).astype(np.float32), "y": np.where(np.arange(30) % 3 == 0, np.arange(30) % 2, -1)}
    arrays.update(changes)
    np.savez(tmp_path / "bad.npz", **arrays)
    return tmp_path / "bad.npz"


def _nan_x() -> np.ndarray:
    x = np.zeros((30, 4), dtype=np.float32) + np.arange(4)
    x[7, 2] = np.nan
    return x


@pytest.mark.parametrize("make, fragment", [
    (lambda p: ["--dataset", "digits", "--image-size", "4"], "image_size must be"),
    (lambda p: ["--dataset", _npz(p, X=_nan_x())], "row 7 holds NaN in column 2"),
    (lambda p: ["--dataset", _npz(p, y=np.where(np.arange(30) % 3 == 0, 0.5, -1.0))], "row 0 is 0.5"),
    (lambda p: ["--dataset", photo_folder(p / "one", classes=1, per_class=1)], "only one class folder"),
])
def test_bad_data_is_one_sentence_and_nothing_is_written(tmp_path, capsys, make, fragment):
    code, out, err = run_main(["train", *make(tmp_path), *SHORT, "--out", tmp_path / "run"], capsys)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and fragment in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def test_labelprop_gives_no_pseudo_label_to_samples_no_label_reaches():
    from fewlabels.algorithms import SetupContext
    from fewlabels.algorithms.components.graph import harmonic_labels, knn_graph

    # two far clusters, labels only in the first: the second cluster gets nothing, not class 0 by default
    rng = torch.Generator().manual_seed(0)
    near = torch.randn(30, 2, generator=rng)
    far = torch.randn(30, 2, generator=rng) + 1000.0
    labeled_x = near[:4]
    labeled_y = torch.tensor([0, 1, 0, 1])
    unlabeled_x = torch.cat([near[4:], far])
    model = models.get("mlp", (2,), 2)
    algorithm = algorithms.get("labelprop", neighbors=3)
    algorithm.setup(SetupContext(model=model, num_classes=2, num_labeled=4, num_unlabeled=len(unlabeled_x), total_steps=1,
                                 labeled_y=labeled_y, pool=(labeled_x, unlabeled_x)))
    assert (algorithm.weight[26:] == 0).all() and (algorithm.weight[:26] > 0).all()
    # the harmonic solution on a hand-checkable path graph a - u - b: u is halfway, so its scores are equal
    w = knn_graph(torch.tensor([[0.0], [1.0], [2.0]]), 1)
    scores = harmonic_labels(w, torch.tensor([0, 2]), torch.tensor([0, 1]), 2)
    torch.testing.assert_close(scores[1], torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(scores[0], torch.tensor([1.0, 0.0]))
