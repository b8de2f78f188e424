"""The Python API: fit on arrays and datasets, predict from any layout, save/load, CLI run folders, errors."""

import subprocess
import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import fewlabels
from fewlabels import api, data
from fewlabels.errors import FewLabelsError
from fewlabels.train import TrainConfig, train


@pytest.fixture(scope="module")
def digits():
    src = data.load("digits")
    x, y = src.train.x[:, 0].numpy(), src.train.y.numpy()  # (N, 8, 8) uint8
    split = data.split(y, labels_per_class=5, seed=0)
    y_semi = np.full(len(y), -1)
    y_semi[split.labeled] = y[split.labeled]
    return SimpleNamespace(x=x, y=y, y_semi=y_semi, unlabeled=split.unlabeled,
                           test_x=src.test.x[:, 0].numpy(), test_y=src.test.y.numpy())


@pytest.fixture(scope="module")
def run(digits):
    """One real FixMatch run on digit images with 5 labels per class, shared by the tests below."""
    torch.set_num_threads(1)
    return fewlabels.fit(digits.x, digits.y_semi, iterations=150, batch_size=32, uratio=4, eval_every=150)


@pytest.mark.kernels
def test_fit_on_digit_arrays_learns(run, digits):
    assert isinstance(run, fewlabels.Run)
    assert run.config.model == "cnn" and run.config.algorithm == "fixmatch"  # images -> the CNN
    assert run.results["num_labeled"] == 50 and run.results["num_unlabeled"] == len(digits.unlabeled)
    assert run.classes == [str(c) for c in range(10)]
    assert not run.model.training
    # chance is 0.10; 50 labels + the unlabeled rest reach ~0.9 in 150 steps
    assert (run.predict(digits.x[digits.unlabeled]) == digits.y[digits.unlabeled]).mean() > 0.6
    report = run.evaluate(digits.test_x, digits.test_y)
    assert report["accuracy"] > 0.6
    assert sum(map(sum, report["confusion_matrix"])) == len(digits.test_y)
    proba = run.predict_proba(digits.test_x)
    assert proba.shape == (len(digits.test_y), 10)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-9)
    assert np.array_equal(proba.argmax(1), run.predict(digits.test_x))


def test_save_load_round_trip_is_exact(run, digits, tmp_path):
    path = tmp_path / "sub" / "model.pt"
    run.save(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]  # no temp file left behind
    back = api.load(path)
    assert np.array_equal(back.predict_proba(digits.test_x), run.predict_proba(digits.test_x))
    assert back.classes == run.classes and back.sample_shape == (1, 8, 8)
    assert back.config == run.config
    assert back.results["num_labeled"] == 50
    with pytest.raises(FewLabelsError, match="is a folder"):
        run.save(tmp_path)


def test_predict_accepts_other_layouts_sizes_and_channels(run, digits):
    base = run.predict_proba(digits.test_x)
    # float 0..1 and (N, C, H, W) uint8 are the same pixels
    assert np.array_equal(run.predict_proba(digits.test_x / 255.0), base)
    assert np.array_equal(run.predict_proba(digits.test_x[:, None]), base)
    # RGB with equal channels -> luminance gives back the gray image
    rgb = np.repeat(digits.test_x[..., None], 3, axis=-1)
    np.testing.assert_allclose(run.predict_proba(rgb), base, atol=1e-6)
    # 16x16 images are resized to the training size (8x8)
    big = np.kron(digits.test_x, np.ones((1, 2, 2), dtype=np.uint8))
    pred_big = run.predict(big)
    assert (pred_big == run.predict(digits.test_x)).mean() > 0.7
    assert (pred_big == digits.test_y).mean() > 0.5
    with pytest.raises(FewLabelsError, match="1 or 3 channels"):
        run.predict(np.zeros((2, 8, 8, 2), dtype=np.uint8))
    with pytest.raises(FewLabelsError, match="takes images"):
        run.predict(digits.test_x.reshape(len(digits.test_x), -1))
    assert run.predict(np.zeros((0, 8, 8), dtype=np.uint8)).shape == (0,)


def test_gray_input_to_an_rgb_model_is_repeated():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(24, 8, 8, 3), dtype=np.uint8)
    y = np.arange(24) % 2
    rgb_run = fewlabels.fit(x, y, algorithm="supervised", iterations=2, batch_size=8)
    assert rgb_run.sample_shape == (3, 8, 8)
    gray = rng.integers(0, 256, size=(5, 8, 8), dtype=np.uint8)
    assert np.array_equal(rgb_run.predict_proba(gray), rgb_run.predict_proba(np.repeat(gray[..., None], 3, -1)))


def test_features_get_the_mlp_and_options_are_routed(digits):
    flat = digits.x.reshape(len(digits.x), -1).astype(np.float32)
    run = fewlabels.fit(flat, digits.y_semi, algorithm="fixmatch", iterations=3, batch_size=16, uratio=2,
                        options={"threshold": 0.8}, lr=0.05)
    assert run.config.model == "mlp" and run.sample_shape == (64,)
    assert run.config.batch_size == 16 and run.config.uratio == 2 and run.config.lr == 0.05
    assert run.config.options == {"threshold": 0.8}
    assert run.results["algorithm_options"]["threshold"] == 0.8
    assert run.predict(flat[:7]).shape == (7,)
    with pytest.raises(FewLabelsError, match=r"shape \(N, 64\)"):
        run.predict(flat[:, :10])
    with pytest.raises(FewLabelsError, match="reshape"):
        run.predict(flat[0])


def test_labels_per_class_and_a_test_set(digits):
    run = fewlabels.fit(digits.x, digits.y, labels_per_class=2, test=(digits.test_x, digits.test_y), iterations=2,
                        batch_size=8, uratio=1)
    assert run.results["num_labeled"] == 20
    assert run.results["test"]["n"] == len(digits.test_y)
    builtin = fewlabels.fit("digits", num_labels=15, iterations=1, batch_size=8, uratio=1)
    assert builtin.results["num_labeled"] == 15 and "test_accuracy" in builtin.results  # digits brings its test set


def test_load_reads_a_cli_run_folder(tmp_path):
    out = tmp_path / "run"
    res = train(TrainConfig(dataset="digits", iterations=5, eval_every=5, batch_size=16, uratio=2, out=str(out)),
                progress=False)
    src = data.load("digits")
    for where in (out, out / "last.pt"):
        run = fewlabels.load(where)
        assert run.config.iterations == 5 and run.config.model == "cnn"
        # the EMA model, evaluated exactly as the loop did
        assert run.evaluate(src.test.x, src.test.y)["accuracy"] == pytest.approx(res["test_accuracy"], abs=1e-9)
    assert fewlabels.load(out).results["test_accuracy"] == res["test_accuracy"]


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda d: fewlabels.fit(d.x, d.y_semi, treshold=0.9), r"did you mean options=\{'threshold': 0.9\} \(an option of fixmatch\)"),
        (lambda d: fewlabels.fit(d.x, d.y_semi, threshold=0.9),
         r"^threshold is an option of fixmatch: pass options=\{'threshold': 0.9\}.$"),
        (lambda d: fewlabels.fit(d.x, d.y_semi, options={"thresold": 0.9}), "fixmatch has no option 'thresold': did you mean 'threshold'"),
        (lambda d: fewlabels.fit(d.x, d.y_semi, options={"lr": 0.1}), r"lr is a training setting, not an option of fixmatch: pass lr=0.1"),
        (lambda d: fewlabels.fit(d.x, d.y_semi, options={"threshold": 1.5}), r"threshold must be in \(0, 1\]"),
        (lambda d: fewlabels.fit(d.x, d.y_semi, options=[("threshold", 0.9)]), "options must be a dict"),
        (lambda d: fewlabels.fit(d.x, d.y_semi, algorithm="fixmatchh"), "did you mean 'fixmatch'"),
        (lambda d: fewlabels.fit(d.x, d.y_semi, batchsize=8), "did you mean 'batch_size'"),
        (lambda d: fewlabels.fit(d.x, d.y_semi, dataset="digits"), "set by fit"),
        (lambda d: fewlabels.fit(d.x), "y is required"),
        (lambda d: fewlabels.fit("digits", d.y), "y goes with array data only"),
        (lambda d: fewlabels.fit(d.x, np.full(len(d.x), -1)), "no labeled rows"),
        (lambda d: fewlabels.fit(d.x, d.y_semi, model="mlp"), "does not take images"),
        (lambda d: fewlabels.fit(d.x, d.y_semi, test=(d.test_x, np.full(len(d.test_x), -1))), "test labels contain -1"),
    ],
)
def test_bad_fit_input_is_one_clear_error(digits, call, fragment):
    with pytest.raises(FewLabelsError, match=fragment):
        call(digits)


class _Spy:
    """Wraps api.Trainer to keep the trainer fit() built, so a test can read the algorithm and optimizer it ran."""

    def __init__(self, monkeypatch):
        self.trainers = []
        real = api.Trainer

        def build(*args, **kwargs):
            trainer = real(*args, **kwargs)
            self.trainers.append(trainer)
            return trainer

        monkeypatch.setattr(api, "Trainer", build)


def test_options_reach_the_algorithm_and_keywords_the_optimizer(digits, monkeypatch):
    """FreeMatch has a momentum of its own (its EMA of confidence) beside SGD's: the two never collide."""
    spy = _Spy(monkeypatch)
    flat = digits.x.reshape(len(digits.x), -1).astype(np.float32)
    run = fewlabels.fit(flat, digits.y_semi, algorithm="freematch", options={"momentum": np.float32(0.5)}, iterations=1,
                        batch_size=8, uratio=1)
    trainer = spy.trainers[-1]
    assert trainer.algorithm.momentum == 0.5 and run.config.options == {"momentum": 0.5}
    assert run.results["algorithm_options"]["momentum"] == 0.5
    assert run.config.momentum == 0.9 and trainer.optimizer.param_groups[0]["momentum"] == 0.9  # SGD's stays its default
    # the keyword is the training setting, with a warning (the old form may have meant FreeMatch's) that shows the new form
    with pytest.warns(UserWarning, match=r"momentum=0.7 sets the training setting momentum; freematch's own momentum goes in "
                                         r"options=\{'momentum': 0.7\}"):
        run = fewlabels.fit(flat, digits.y_semi, algorithm="freematch", momentum=0.7, iterations=1, batch_size=8, uratio=1)
    trainer = spy.trainers[-1]
    assert run.config.momentum == 0.7 and trainer.optimizer.param_groups[0]["momentum"] == 0.7
    assert trainer.algorithm.momentum == 0.999 and run.config.options == {}
    # both given: each goes where it belongs, and nothing to warn about
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", "Feature columns 0, 32, 39")  # digits' blank border pixels: said, and true
        run = fewlabels.fit(flat, digits.y_semi, algorithm="freematch", momentum=0.8, options={"momentum": 0.6}, iterations=1,
                            batch_size=8, uratio=1)
    assert run.config.momentum == 0.8 and spy.trainers[-1].algorithm.momentum == 0.6


def test_load_refuses_what_is_not_a_model(run, digits, tmp_path):
    with pytest.raises(FewLabelsError, match="does not exist"):
        fewlabels.load(tmp_path / "nope.pt")
    with pytest.raises(FewLabelsError, match="without last.pt"):
        fewlabels.load(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(FewLabelsError, match="not a fewlabels model"):
        fewlabels.load(tmp_path / "notes.txt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(FewLabelsError, match="not a fewlabels model"):
        fewlabels.load(tmp_path / "other.pt")
    with pytest.raises(FewLabelsError, match="contains -1"):
        run.evaluate(digits.test_x[:3], [-1, 0, 1])


def test_import_fewlabels_stays_light():
    code = ("import sys, fewlabels; assert 'torch' not in sys.modules; "
            "from fewlabels import Run, fit, load; import fewlabels.api as a; assert fit is a.fit and load is a.load")
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError):
        fewlabels.not_a_thing  # noqa: B018
