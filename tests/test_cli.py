"""The command line: a smoke run, the datasets listing, and bad input (exit 2, one sentence)."""

import json
import subprocess
import sys

import pytest

from fewlabels.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "fewlabels.cli", *args], capture_output=True, text=True, timeout=300)


def test_train_smoke_prints_accuracy_and_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--dataset", "digits", "--labels-per-class", "3", "--iterations", "20",
                 "--eval-every", "10", "--batch-size", "16", "--uratio", "2", "--out", str(out), "--quiet",
                 "--option", "threshold=0.9"])
    text = capsys.readouterr().out
    assert code == 0
    assert "final test accuracy (EMA model):" in text and str(out) in text
    results = json.loads((out / "results.json").read_text())
    assert results["num_labeled"] == 30 and results["algorithm_options"]["threshold"] == 0.9


def test_datasets_lists_builtins_with_location(capsys):
    assert main(["datasets", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"fashion-mnist", "digits"}
    assert rows["digits"]["found"] == "bundled with scikit-learn"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--algorithm", "fixmatchh"], "Unknown algorithm 'fixmatchh': did you mean 'fixmatch'?"),
        (["--model", "wrn"], "Unknown model 'wrn'"),
        (["--labels-per-class", "500"], "were requested; ask for fewer"),
        (["--iterations", "-5"], "iterations must be a whole number of at least 1"),
        (["--option", "threshold=1.5"], "threshold must be in (0, 1]"),
        (["--option", "thresold=0.9"], "did you mean 'threshold'"),
        (["--option", "threshold"], "must look like name=value"),
        (["--dataset", "cifar"], "Unknown dataset 'cifar'"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(tmp_path, capsys, args, fragment):
    out = tmp_path / "run"
    code = main(["train", "--dataset", "digits", "--iterations", "5", "--out", str(out), "--quiet", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert fragment in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_or_corrupt_dataset_via_subprocess(tmp_path):
    bad = tmp_path / "fm"
    bad.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (bad / name).write_bytes(b"\x00\x00\x08\x03garbage")
    res = run_cli("train", "--dataset", "fashion-mnist", "--data-dir", str(bad), "--out", str(tmp_path / "r"))
    assert res.returncode == 2
    assert "truncated" in res.stderr or "corrupt" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "r").exists()


def test_unwritable_output_folder(tmp_path):
    res = run_cli("train", "--dataset", "digits", "--iterations", "2", "--out", "/proc/fewlabels-run")
    assert res.returncode == 2
    assert "not writable" in res.stderr and "Traceback" not in res.stderr
