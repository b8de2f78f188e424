"""The command line: a smoke run, the datasets listing, and bad input (exit 2, one sentence)."""

import argparse
import dataclasses
import json
import subprocess
import sys

import pytest

from fewlabels.cli import build_parser, main
from fewlabels.commands.train import config_from_args
from fewlabels.train import TrainConfig
from fewlabels.train.config import setting


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


# ---- the train command's flags are built from TrainConfig's fields


def _train_flags(parser=None) -> dict[str, object]:
    """Option string -> argparse action of ``fewlabels train``."""
    parser = parser or build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {s: a for a in sub.choices["train"]._actions for s in a.option_strings}


def _expected_flag(f: dataclasses.Field) -> str:
    if f.name == "options":
        return "--option"
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return f"--{'no-' if default is True else ''}{f.name.replace('_', '-')}"


def test_every_train_config_field_has_a_flag_and_help():
    flags = _train_flags()
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata.get("help"), f"TrainConfig.{f.name} has no help text in its metadata"
        if f.metadata.get("cli", True):
            assert _expected_flag(f) in flags, f"TrainConfig.{f.name} has no flag"
            assert flags[_expected_flag(f)].help
    # the flags of old, kept by name, and the mutually exclusive pair
    for old in ("--dataset", "--data-dir", "--labels-per-class", "--num-labels", "--val-per-class", "--algorithm", "--option",
                "--model", "--iterations", "--batch-size", "--uratio", "--lr", "--weight-decay", "--ema-decay", "--eval-every",
                "--checkpoint-every", "--keep-checkpoints", "--seed", "--no-hflip", "--deterministic", "--device", "--out",
                "--config", "--set", "--resume", "--overwrite", "--quiet"):
        assert old in flags, old
    assert flags["--labels-per-class"].container is flags["--num-labels"].container
    assert flags["--iterations"].type is int and flags["--lr"].type is float and flags["--noise-type"].choices


def test_a_new_config_field_gets_a_flag_by_itself(monkeypatch):
    import fewlabels.train

    @dataclasses.dataclass
    class Extended(TrainConfig):
        warmup_steps: int = setting(0, "steps of learning-rate warm-up")
        amp: bool = setting(False, "mixed precision")
        compile: bool = setting(True, "torch.compile the model")
        internal: str = setting("x", "not for the command line", cli=False)

    monkeypatch.setattr(fewlabels.train, "TrainConfig", Extended)
    flags = _train_flags()
    assert flags["--warmup-steps"].type is int and "warm-up" in flags["--warmup-steps"].help
    assert {"--amp", "--no-compile"} <= flags.keys() and "--internal" not in flags
    args = build_parser().parse_args(["train", "--warmup-steps", "5", "--amp", "--no-compile"])
    assert vars(args) == {"command": "train", "warmup_steps": 5, "amp": True, "compile": False}


def _config(*argv):
    return config_from_args(build_parser().parse_args(["train", *argv]))


def test_flags_set_their_fields_and_the_last_word_wins(tmp_path):
    cfg = _config("--no-nesterov", "--no-channels-last", "--hflip", "--momentum", "0.5", "--label-noise", "0.2",
                  "--noise-type", "asymmetric", "--imbalance-ratio", "10", "--eval-batch-size", "128", "--deterministic",
                  "--num-labels", "30", "--option", "threshold=0.8")
    assert (cfg.nesterov, cfg.channels_last, cfg.hflip, cfg.momentum, cfg.deterministic) == (False, False, True, 0.5, True)
    assert (cfg.label_noise, cfg.noise_type, cfg.imbalance_ratio, cfg.eval_batch_size) == (0.2, "asymmetric", 10.0, 128)
    assert cfg.num_labels == 30 and cfg.labels_per_class is None and cfg.options == {"threshold": 0.8}
    assert cfg.out == "runs/fashion-mnist-fixmatch-30l-s0"
    assert _config().to_dict() == {**TrainConfig().to_dict(), "out": "runs/fashion-mnist-fixmatch-4pc-s0"}
    assert _config("--no-hflip").hflip is False and _config("--hflip", "--no-hflip").hflip is False
    settings = tmp_path / "s.yaml"
    settings.write_text("lr: 0.1\nbatch_size: 8\noptions: {threshold: 0.7, lambda_u: 2}\n")
    cfg = _config("--config", str(settings), "--lr", "0.2", "--option", "threshold=0.9", "--set", "batch_size=16")
    assert (cfg.lr, cfg.batch_size, cfg.options) == (0.2, 16, {"threshold": 0.9, "lambda_u": 2})


def test_train_help_lists_the_registries_and_defaults(capsys):
    from fewlabels import algorithms, data, models

    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for name in [*algorithms.names(), *models.names(), *data.BUILTIN]:
        assert name in text, name
    assert len(algorithms.names()) > 20
    assert "(default: the data decides, fixmatch for images, labelprop for feature vectors)" in text
    assert "(default 3000)" in text and "--no-nesterov" in text


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--labels-per-class", "4", "--num-labels", "40"], "not allowed with argument"),
        (["--noise-type", "diagonal"], "invalid choice: 'diagonal'"),
        (["--lr", "fast"], "invalid float value: 'fast'"),
        (["--resume", "runs/x", "--no-hflip"], "--resume continues a run with its saved settings; drop --no-hflip."),
        (["--resume", "runs/x", "--option", "threshold=0.9"], "drop --option."),
    ],
)
def test_bad_train_flags_are_one_sentence(capsys, argv, fragment):
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1


def test_one_module_per_command():
    from fewlabels import commands

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == list(commands.COMMANDS)
    for name, module in commands.COMMANDS.items():
        assert module.NAME == name and callable(module.run) and callable(module.add_parser)
        assert module.__name__ == f"fewlabels.commands.{name.replace('-', '_')}"


def test_the_cli_module_stays_a_thin_entry_point():
    from pathlib import Path

    import fewlabels.cli

    assert len(Path(fewlabels.cli.__file__).read_text().splitlines()) < 60
    res = run_cli("--version")
    assert res.returncode == 0 and res.stdout.startswith("fewlabels ")
