"""evaluate, predict, report, export: the metrics they rest on, their happy paths on one tiny digits run, and bad input.

Bad input means exit code 2, one line on stderr, and no output file (not even a temp file) left behind.
"""

import csv
import io
import json
import math
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import torch
from PIL import Image

from fewlabels import data
from fewlabels.api import load
from fewlabels.cli import main
from fewlabels.evaluate import expected_calibration_error, macro_f1, per_class_f1, reliability_bins
from fewlabels.evaluate.report import evaluation_record, format_evaluation
from fewlabels.train import TrainConfig, train

# ---- pure metrics, on inputs small enough to check by hand


def _probs(conf: list[float], pred: list[int], k: int = 2) -> np.ndarray:
    """Rows whose top class is ``pred`` with probability ``conf`` (the rest spread evenly)."""
    p = np.zeros((len(conf), k))
    for i, (c, j) in enumerate(zip(conf, pred)):
        p[i] = (1 - c) / (k - 1)
        p[i, j] = c
    return p


def test_ece_is_zero_when_confidence_equals_accuracy():
    # 10 predictions at 80% confidence, 8 of them right; 5 at 100%, all right
    probs = _probs([0.8] * 10 + [1.0] * 5, [0] * 15)
    y = np.array([0] * 8 + [1] * 2 + [0] * 5)
    assert expected_calibration_error(probs, y) == pytest.approx(0.0, abs=1e-12)


def test_ece_of_an_overconfident_model_has_the_hand_computed_value():
    # bin (14/15, 1]: 4 samples at 0.95, 2 right -> gap 0.45; bin (8/15, 9/15]: 6 at 0.55, 3 right -> gap 0.05
    probs = _probs([0.95] * 4 + [0.55] * 6, [1] * 10)
    y = np.array([1, 1, 0, 0, 1, 1, 1, 0, 0, 0])
    assert expected_calibration_error(probs, y, bins=15) == pytest.approx(0.4 * 0.45 + 0.6 * 0.05)
    # one bin only: |5/10 right - mean confidence (4 x 0.95 + 6 x 0.55) / 10 = 0.71|
    assert expected_calibration_error(probs, y, bins=1) == pytest.approx(0.71 - 0.5)


def test_reliability_bins_are_equal_width_and_right_closed():
    # 20 classes so that a top probability as low as 1/15 is possible; 0.4 = 6/15 sits on an edge and belongs below it
    probs = _probs([1 / 15, 1 / 15 + 1e-9, 0.4, 0.5, 1.0], [0, 0, 0, 0, 0], k=20)
    table = reliability_bins(probs, np.array([0, 1, 0, 0, 0]), bins=15)
    assert len(table) == 15 and table[0]["lower"] == 0 and table[-1]["upper"] == 1
    assert [b["count"] for b in table] == [1, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1]
    assert table[1]["accuracy"] == 0.0 and table[7]["confidence"] == pytest.approx(0.5)
    assert table[2]["accuracy"] is None  # empty bins say so rather than pretend


def test_macro_f1_by_hand_and_against_scikit_learn():
    y, p = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 1])
    assert per_class_f1(y, p, 3)[:2] == pytest.approx([2 / 3, 4 / 5])
    assert math.isnan(per_class_f1(y, p, 3)[2])  # neither present nor predicted: left out of the mean
    assert macro_f1(y, p, 3) == pytest.approx((2 / 3 + 4 / 5) / 2)
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    yt, yp = rng.integers(0, 5, 200), rng.integers(0, 6, 200)
    assert macro_f1(torch.from_numpy(yt), torch.from_numpy(yp), 6) == pytest.approx(f1_score(yt, yp, average="macro"))


def test_evaluation_record_is_valid_json_with_nulls_for_empty_classes():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [2.0, 0.0, 0.0]])
    record = evaluation_record(logits, torch.tensor([0, 1, 1]), ["a", "b", "c"])
    text = json.dumps(record, allow_nan=False)  # raises on NaN
    assert record["accuracy"] == pytest.approx(2 / 3)
    assert record["per_class"]["c"] == {"support": 0, "accuracy": None, "f1": None}
    assert record["confusion_matrix"] == [[1, 0, 0], [1, 1, 0], [0, 0, 0]]
    assert sum(b["count"] for b in json.loads(text)["reliability"]) == 3
    table = format_evaluation(record)
    assert "macro-F1" in table and table.splitlines()[4].split() == ["b", "2", "0.5000", "0.6667"]


# ---- one tiny run for the commands


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("cmd") / "run"
    train(TrainConfig(dataset="digits", labels_per_class=5, iterations=20, eval_every=10, batch_size=16, uratio=2, out=str(out)),
          progress=False)
    return out


@pytest.fixture(scope="module")
def digits_test():
    return data.load("digits").test


def _one_line_error(capsys, fragment: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("fewlabels: error:") and len(err.strip().splitlines()) == 1, err
    assert fragment in err, err
    return err


def _no_files_like(folder, pattern: str) -> bool:
    return not list(folder.glob(pattern)) and not list(folder.glob(f".{pattern}*.tmp"))


def test_evaluate_writes_json_and_prints_a_table(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--quiet"]) == 0
    out = capsys.readouterr().out
    record = json.loads((run_dir / "evaluation.json").read_text())
    results = json.loads((run_dir / "results.json").read_text())
    # the same final EMA model on the same test set as training reported
    assert record["accuracy"] == pytest.approx(results["test_accuracy"], abs=1e-6)
    assert record["confusion_matrix"] == results["test"]["confusion_matrix"]
    assert record["n"] == 450 and record["classes"] == [str(i) for i in range(10)]
    assert 0 <= record["ece"] <= 1 and 0 <= record["macro_f1"] <= 1 and record["ece_bins"] == 15
    assert sum(b["count"] for b in record["reliability"]) == 450
    assert sum(r["support"] for r in record["per_class"].values()) == 450
    assert f"accuracy {record['accuracy']:.4f}" in out and "confusion matrix" in out
    assert any(line.split()[:2] == ["7", str(record["per_class"]["7"]["support"])] for line in out.splitlines())


def test_evaluate_on_an_npz_with_its_own_class_order(run_dir, digits_test, tmp_path, capsys):
    keep = (digits_test.y == 3) | (digits_test.y == 7)
    x, y = digits_test.x[keep].numpy(), digits_test.y[keep].numpy()
    # the file lists "7" first: its label 0 means class "7", which is index 7 for the model
    npz = tmp_path / "two.npz"
    np.savez(npz, X=x[:, 0], y=np.where(y == 7, 0, 1), classes=np.array(["7", "3"]))
    out = tmp_path / "e.json"
    assert main(["evaluate", str(run_dir), "--dataset", str(npz), "--json", str(out), "--quiet"]) == 0
    record = json.loads(out.read_text())
    pred = load(run_dir).predict(x)
    assert record["n"] == len(y) and record["accuracy"] == pytest.approx(float((pred == y).mean()))
    cm = np.array(record["confusion_matrix"])
    assert cm[3].sum() == (y == 3).sum() and cm[7].sum() == (y == 7).sum() and cm.sum() == len(y)
    assert not (run_dir / "evaluation.json").exists() or out.read_text() != (run_dir / "evaluation.json").read_text()


@pytest.mark.parametrize("case, fragment", [
    ("unknown_class", "class 'cat' that the model does not know"),
    ("unlabeled_rows", "unlabeled rows (-1)"),
    ("no_model", "without last.pt"),
])
def test_evaluate_bad_input(run_dir, digits_test, tmp_path, capsys, case, fragment):
    target, dataset = str(run_dir), None
    if case == "unknown_class":
        dataset = tmp_path / "folder"
        for name in ("3", "cat"):
            (dataset / name).mkdir(parents=True)
            Image.fromarray(digits_test.x[0, 0].numpy()).save(dataset / name / "a.png")
    elif case == "unlabeled_rows":
        dataset = tmp_path / "u.npz"
        np.savez(dataset, X=digits_test.x[:4, 0].numpy(), y=np.array([0, 1, -1, 2]))
    else:
        target = str(tmp_path / "half-run")
        (tmp_path / "half-run").mkdir()
        (tmp_path / "half-run" / "config.yaml").write_text("dataset: digits\n")
    out = tmp_path / "e.json"
    argv = ["evaluate", target, "--json", str(out), "--quiet"] + (["--dataset", str(dataset)] if dataset else [])
    assert main(argv) == 2
    _one_line_error(capsys, fragment)
    assert _no_files_like(tmp_path, "e.json")


def _write_pngs(folder, digits_test) -> list[str]:
    """Three 8x8 gray digits, one upscaled to 16x16 and one saved as RGB (in a subfolder), plus a stray text file."""
    (folder / "more").mkdir(parents=True)
    x = digits_test.x.numpy()
    for i in range(3):
        Image.fromarray(x[i, 0]).save(folder / f"d{i}.png")
    Image.fromarray(x[3, 0]).resize((16, 16), Image.NEAREST).save(folder / "more" / "big.png")
    Image.fromarray(np.repeat(x[4, 0][:, :, None], 3, axis=2)).save(folder / "more" / "rgb.png")
    (folder / "notes.txt").write_text("not an image")
    return ["d0.png", "d1.png", "d2.png", "more/big.png", "more/rgb.png"]


def _read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_predict_a_folder_of_pngs_of_mixed_size_and_mode(run_dir, digits_test, tmp_path, capsys):
    names = _write_pngs(tmp_path / "imgs", digits_test)
    out = tmp_path / "preds.csv"
    assert main(["predict", str(run_dir), str(tmp_path / "imgs"), "--out", str(out), "--batch-size", "2", "--quiet"]) == 0
    rows = _read_csv(out)
    run = load(run_dir)
    assert list(rows[0]) == ["item", "class", "probability", *(f"p_{c}" for c in run.classes)]
    assert [r["item"] for r in rows] == [str(tmp_path / "imgs" / n) for n in names]  # sorted, recursive, .txt skipped
    for r in rows:
        p = np.array([float(r[f"p_{c}"]) for c in run.classes])
        assert p.sum() == pytest.approx(1, abs=1e-4)
        assert r["class"] == run.classes[int(p.argmax())] and float(r["probability"]) == pytest.approx(p.max(), abs=1e-6)
    # the 8x8 gray ones, and the RGB copy of a gray image, score exactly as the model does on the arrays
    expected = run.predict_proba(digits_test.x[[0, 1, 2, 4]].numpy())
    got = np.array([[float(rows[i][f"p_{c}"]) for c in run.classes] for i in (0, 1, 2, 4)])
    np.testing.assert_allclose(got, expected, atol=2e-6)
    assert "5 predictions" in capsys.readouterr().out


def test_predict_an_npy_array(run_dir, digits_test, tmp_path):
    x = digits_test.x[:7, 0].numpy()  # (N, H, W)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "p.csv"
    assert main(["predict", str(run_dir), str(tmp_path / "x.npy"), "--out", str(out), "--quiet"]) == 0
    rows = _read_csv(out)
    run = load(run_dir)
    assert [r["item"] for r in rows] == [str(i) for i in range(7)]
    got = np.array([[float(r[f"p_{c}"]) for c in run.classes] for r in rows])
    np.testing.assert_allclose(got, run.predict_proba(x), atol=2e-6)


@pytest.mark.parametrize("case, fragment", [
    ("empty_folder", "holds no images"),
    ("corrupt_image", "Cannot read image"),
    ("npy_rank", "has shape (8, 8) but this model takes a batch of images"),
    ("no_model", "without last.pt"),
    ("npy_and_more", "must be the only input"),
])
def test_predict_bad_input(run_dir, digits_test, tmp_path, capsys, case, fragment):
    target, inputs = str(run_dir), []
    good = tmp_path / "good.png"
    Image.fromarray(digits_test.x[0, 0].numpy()).save(good)
    if case == "empty_folder":
        (tmp_path / "empty" / "sub").mkdir(parents=True)
        inputs = [str(tmp_path / "empty")]
    elif case == "corrupt_image":
        (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
        inputs = [str(good), str(tmp_path / "broken.png")]
    elif case == "npy_rank":
        np.save(tmp_path / "one.npy", digits_test.x[0, 0].numpy())
        inputs = [str(tmp_path / "one.npy")]
    elif case == "no_model":
        (tmp_path / "not-a-run").mkdir()
        target, inputs = str(tmp_path / "not-a-run"), [str(good)]
    else:
        np.save(tmp_path / "x.npy", digits_test.x[:2].numpy())
        inputs = [str(tmp_path / "x.npy"), str(good)]
    assert main(["predict", target, *inputs, "--out", str(tmp_path / "p.csv"), "--quiet"]) == 2
    err = _one_line_error(capsys, fragment)
    if case == "corrupt_image":
        assert "broken.png" in err  # names the file to fix
    assert _no_files_like(tmp_path, "p.csv")


def test_report_is_self_contained_html_with_plots(run_dir, capsys):
    assert main(["report", str(run_dir), "--quiet"]) == 0
    html = (run_dir / "report.html").read_text()
    pngs = sorted(p.name for p in (run_dir / "report").glob("*.png"))
    assert pngs == sorted(f"{n}.png" for n in ("accuracy", "loss", "pseudo_labels", "confusion", "reliability", "mistakes"))
    for p in (run_dir / "report").glob("*.png"):
        assert Image.open(p).size[0] > 200
    assert html.count('src="data:image/png;base64,') == len(pngs)
    assert "http://" not in html and "https://" not in html and "<link" not in html and "<script" not in html
    results = json.loads((run_dir / "results.json").read_text())
    for text in ("digits", "fixmatch", "50 (5 per class)", f"{results['test_accuracy']:.4f}", "Most confident mistakes"):
        assert text in html
    assert "report.html" in capsys.readouterr().out


def test_report_bad_input_writes_nothing(run_dir, tmp_path, capsys):
    out = tmp_path / "r.html"
    # --overwrite: an earlier test's report left its plots in run_dir/report/ (issue 27: replaced only when asked)
    assert main(["report", str(run_dir), "--out", str(out), "--dataset", str(tmp_path / "missing.npz"), "--quiet",
                 "--overwrite"]) == 2
    _one_line_error(capsys, "does not exist")
    assert _no_files_like(tmp_path, "r.html")
    assert main(["report", str(tmp_path / "nowhere"), "--quiet"]) == 2
    _one_line_error(capsys, "does not exist")


def test_report_without_the_test_data_falls_back_to_results_json(digits_test, tmp_path, capsys):
    """A run trained on arrays cannot reload its data: the report still comes out, from what the run folder holds."""
    import fewlabels

    out = tmp_path / "arrays-run"
    x, y = digits_test.x[:, 0].numpy(), digits_test.y.numpy().copy()
    y[100:] = -1
    fewlabels.fit(x, y, iterations=4, eval_every=2, batch_size=8, uratio=1, test=(x[:60], digits_test.y[:60].numpy()), out=out)
    assert main(["evaluate", str(out), "--quiet"]) == 2
    _one_line_error(capsys, "pass --dataset")
    assert main(["report", str(out), "--quiet"]) == 0
    assert "warning" in capsys.readouterr().err
    html = (out / "report.html").read_text()
    assert "The test set could not be loaded" in html
    pngs = {p.stem for p in (out / "report").glob("*.png")}
    assert {"accuracy", "confusion"} <= pngs and not {"reliability", "mistakes"} & pngs


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_report_renders_in_a_headless_browser(run_dir, tmp_path):
    assert main(["report", str(run_dir), "--out", str(tmp_path / "r.html"), "--quiet", "--overwrite"]) == 0  # plots again
    shot = tmp_path / "shot.png"
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}", f"--screenshot={shot}", "--window-size=1200,1800",
           (tmp_path / "r.html").as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=180)
    img = Image.open(shot).convert("RGB")
    assert img.size == (1200, 1800)
    colours = img.getcolors(maxcolors=1 << 20)  # [(count, rgb), ...]
    assert len(colours) > 100  # text, antialiased plots and digit images, not a blank or single-colour page
    assert max(colours)[0] < 0.9 * img.size[0] * img.size[1]  # the background does not fill the page


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")  # torch 2.13 deprecates TorchScript, still loads
def test_export_torchscript_matches_the_run(run_dir, digits_test, tmp_path, capsys):
    out = tmp_path / "model.ts"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    extra = {"fewlabels.json": ""}
    module = torch.jit.load(str(out), _extra_files=extra)
    x = digits_test.x[:6]
    from fewlabels.evaluate.tta import served

    expected = served(load(run_dir)).logits(x)  # as predict serves them: the run's TTA and temperature
    with torch.no_grad():
        torch.testing.assert_close(module(x.float() / 255.0), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(module(x), expected, atol=1e-5, rtol=1e-5)  # uint8 accepted too
        assert module(x[:1].float() / 255).shape == (1, 10)  # the batch size is not baked in
    assert json.loads(extra["fewlabels.json"])["classes"] == [str(i) for i in range(10)]
    assert "returns logits (N, 10)" in capsys.readouterr().out


def test_export_default_path_is_in_the_run_folder(run_dir):
    assert main(["export", str(run_dir), "--format", "torchscript"]) == 0
    assert (run_dir / "model.ts").stat().st_size > 1000


def test_export_onnx_matches_the_run_when_onnx_is_installed(run_dir, digits_test, tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    out = tmp_path / "m.onnx"
    assert main(["export", str(run_dir), "--format", "onnx", "--out", str(out)]) == 0
    x = digits_test.x[:4]
    got = ReferenceEvaluator(onnx.load(str(out))).run(None, {"input": (x.float() / 255).numpy()})[0]
    from fewlabels.evaluate.tta import served

    np.testing.assert_allclose(got, served(load(run_dir)).logits(x).numpy(), atol=1e-5)  # the run's TTA and temperature


def test_export_bad_input(run_dir, tmp_path, capsys, monkeypatch):
    assert main(["export", str(run_dir), "--format", "tflite", "--out", str(tmp_path / "m.x")]) == 2
    _one_line_error(capsys, "invalid choice: 'tflite'")
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if not installed
    assert main(["export", str(run_dir), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 2
    _one_line_error(capsys, "pip install onnx")
    (tmp_path / "empty-run").mkdir()
    assert main(["export", str(tmp_path / "empty-run"), "--out", str(tmp_path / "m.ts")]) == 2
    _one_line_error(capsys, "without last.pt")
    assert not [p for p in tmp_path.iterdir() if p.is_file()]


def test_export_file_loads_without_fewlabels(run_dir, tmp_path):
    """A server needs only torch: load the TorchScript file in a fresh interpreter that cannot import fewlabels."""
    out = tmp_path / "m.ts"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    code = ("import sys; sys.modules['fewlabels'] = None; import torch; m = torch.jit.load(sys.argv[1]); "
            "print(tuple(m(torch.rand(3, 1, 8, 8)).shape))")
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(3, 10)"


def test_evaluate_shows_a_progress_bar_unless_quiet(run_dir, tmp_path, monkeypatch, capsys):
    import tqdm

    seen = []
    real = tqdm.tqdm

    def spy(*args, **kwargs):
        seen.append(kwargs.get("disable"))
        return real(*args, **{**kwargs, "file": io.StringIO()})

    monkeypatch.setattr(tqdm, "tqdm", spy)
    assert main(["evaluate", str(run_dir), "--json", str(tmp_path / "a.json")]) == 0
    assert main(["evaluate", str(run_dir), "--json", str(tmp_path / "b.json"), "--quiet"]) == 0
    assert seen == [None, True]  # on (when stderr is a terminal), then off


# ---- the work the commands do lives in the library: usable without the command line


def test_predictions_csv_by_hand():
    from fewlabels.evaluate.predictions import Predictions, predictions_csv, write_predictions_csv

    probs = torch.tensor([[0.25, 0.75], [0.9, 0.1], [0.4, 0.6]], dtype=torch.float64)
    preds = Predictions(["a.png", "b.png", "c.png"], probs, ["cat", "dog"])
    assert predictions_csv(preds).splitlines() == ["item,class,probability,p_cat,p_dog", "a.png,dog,0.750000,0.250000,0.750000",
                                                   "b.png,cat,0.900000,0.900000,0.100000", "c.png,dog,0.600000,0.400000,0.600000"]
    assert preds.counts() == [("dog", 2), ("cat", 1)]
    with tempfile.TemporaryDirectory() as tmp:
        write_predictions_csv(f"{tmp}/p.csv", preds)
        assert open(f"{tmp}/p.csv").read() == predictions_csv(preds)


def test_library_evaluates_predicts_and_reports_a_run(run_dir, digits_test, tmp_path):
    from fewlabels.evaluate.predictions import predict_inputs
    from fewlabels.evaluate.runs import default_evaluation_path, evaluate_run, write_report

    run = load(run_dir)
    evaluation = evaluate_run(run, run_dir, batch_size=100)
    results = json.loads((run_dir / "results.json").read_text())
    assert evaluation.record["accuracy"] == pytest.approx(results["test_accuracy"], abs=1e-6)
    assert evaluation.logits.shape == (450, 10) and evaluation.record["run"] == str(run_dir)
    assert default_evaluation_path(run_dir) == run_dir / "evaluation.json"
    assert default_evaluation_path(tmp_path / "m.pt") == tmp_path / "m.evaluation.json"
    np.save(tmp_path / "x.npy", digits_test.x[:5, 0].numpy())
    preds = predict_inputs(run, [str(tmp_path / "x.npy")], batch_size=2)
    np.testing.assert_allclose(preds.probs.numpy(), run.predict_proba(digits_test.x[:5].numpy()), atol=1e-6)
    written = write_report(run, run_dir, tmp_path / "r.html")
    assert written.html.read_text().startswith("<!DOCTYPE html>") and "confusion" in written.plots and not written.warnings
