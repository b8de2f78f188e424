"""The one run-folder reader and writer, checkpoint formats, and pluggable evaluation monitors."""

import csv

import pytest
import torch
import yaml

from fewlabels.errors import FewLabelsError
from fewlabels.evaluate.monitors import EvalContext, TestAccuracy, ValidationAccuracy, run_monitors
from fewlabels.storage import check_resumable
from fewlabels.storage.run_folder import metric_columns
from fewlabels.train import RunFolder, TrainConfig, resume, train


def test_metric_columns_are_the_union_in_order_of_first_appearance():
    rows = [{"step": 1, "loss": 0.5, "sup": 0.4}, {"step": 2, "loss": 0.3, "peer_loss": 0.2, "test_acc": 0.9}]
    assert metric_columns(rows) == ["step", "train_time_s", "lr", "loss", "sup", "peer_loss", "test_acc"]


def test_metrics_csv_has_a_column_for_every_figure_ever_logged(tmp_path):
    folder = RunFolder(tmp_path)
    folder.write_metrics([{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25, "naive_rate": 0.75}])
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert rows[0]["naive_rate"] == "" and rows[1]["naive_rate"] == "0.75"
    assert folder.metrics() == rows


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    torch.set_num_threads(1)
    train(TrainConfig(dataset="digits", labels_per_class=2, iterations=3, eval_every=3, checkpoint_every=3,
                      batch_size=8, uratio=1, algorithm="flexmatch", out=str(out)), progress=False)
    return out


def test_every_reader_refuses_a_folder_whose_config_was_edited_to_another_run(finished_run, tmp_path):
    folder = tmp_path / "edited"
    folder.mkdir()
    (folder / "last.pt").write_bytes((finished_run / "last.pt").read_bytes())
    config = yaml.safe_load((finished_run / "config.yaml").read_text())
    (folder / "config.yaml").write_text(yaml.safe_dump({**config, "model": "cnn-wide"}))
    for read in (lambda: RunFolder(folder).checkpoint(), lambda: RunFolder(folder).final_model(),
                 lambda: resume(folder, progress=False)):
        with pytest.raises(FewLabelsError, match="config.yaml has model='cnn-wide' but last.pt was trained with model='cnn'"):
            read()


def test_config_that_is_not_utf8_is_one_sentence(finished_run, tmp_path):
    folder = tmp_path / "binary"
    folder.mkdir()
    (folder / "last.pt").write_bytes((finished_run / "last.pt").read_bytes())
    (folder / "config.yaml").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(FewLabelsError, match="is not valid YAML"):
        RunFolder(folder).checkpoint()


def test_results_and_final_model_are_read_through_the_folder(finished_run):
    folder = RunFolder(finished_run)
    config, classes, shape, weights = folder.final_model()
    assert config["algorithm"] == "flexmatch" and len(classes) == 10 and shape == (1, 8, 8)
    assert set(weights) == set(torch.load(finished_run / "last.pt", weights_only=True)["model"])
    assert folder.results()["iterations"] == 3


def test_format_1_checkpoints_evaluate_but_resume_only_without_algorithm_state(finished_run, tmp_path):
    ckpt = torch.load(finished_run / "last.pt", weights_only=True)
    assert ckpt["format"] == 2 and len(ckpt["algorithm"]) > 0  # FlexMatch keeps per-sample state
    old = {**ckpt, "format": 1, "version": "0.1.0", "algorithm": {"threshold": {"predictions": torch.zeros(3)}}}
    folder = tmp_path / "old"
    folder.mkdir()
    torch.save(old, folder / "last.pt")
    RunFolder(folder).final_model()  # the weights are the same: it still evaluates
    with pytest.raises(FewLabelsError, match=r"fewlabels 0\.1\.0 \(checkpoint format 1\), whose flexmatch state"):
        check_resumable(RunFolder(folder).checkpoint(), folder / "last.pt")
    check_resumable({**old, "algorithm": {}}, folder / "last.pt")  # a stateless algorithm resumes
    torch.save({**old, "format": 7}, folder / "last.pt")
    with pytest.raises(FewLabelsError, match="checkpoint format 7; this fewlabels .* reads formats 1, 2"):
        RunFolder(folder).checkpoint()


class Doubler(torch.nn.Module):
    def forward(self, x):
        return torch.stack([x, -x], 1), x[:, None]


def test_monitors_share_one_pass_per_model_and_set_and_refuse_a_name_twice():
    calls = []

    def predict(model, x):
        calls.append(len(x))
        return model(x)

    x, y = torch.tensor([1.0, -1.0, 2.0]), torch.tensor([0, 1, 1])
    ctx = EvalContext(model=Doubler(), ema_model=Doubler(), step=1, predict=predict, test_x=x, test_y=y, val_x=x, val_y=y)
    figures = run_monitors([TestAccuracy(), ValidationAccuracy()], ctx)
    assert figures == {"test_acc": 2 / 3, "test_acc_raw": 2 / 3, "val_acc": 2 / 3}
    assert len(calls) == 3  # EMA on test, raw on test, EMA on validation
    ctx.logits(ctx.ema_model, "test")
    assert len(calls) == 3
    with pytest.raises(ValueError, match="two monitors report 'test_acc'"):
        run_monitors([TestAccuracy(), TestAccuracy()], ctx)


def test_a_new_run_over_an_old_one_drops_the_old_evaluation_and_report_but_never_a_users_file(tmp_path):
    """train --overwrite: evaluation.json and report files that fewlabels wrote describe the old model, so they go;
    a file of the same name without fewlabels' mark (the user's) stays, byte for byte."""
    from fewlabels.utils.provenance import stamp

    out = tmp_path / "run"
    settings = dict(dataset="digits", labels_per_class=2, iterations=2, batch_size=8, uratio=1, eval_every=2,
                    checkpoint_every=2, out=str(out))
    train(TrainConfig(**settings), progress=False)
    (out / "evaluation.json").write_bytes(stamp("json", b'{"accuracy": 0.1}'))
    (out / "report.html").write_bytes(stamp("html", b"<html></html>"))
    (out / "report").mkdir()
    (out / "report" / "accuracy.png").write_bytes(b"the user's picture")  # a name of ours, without the mark
    assert RunFolder(out).stale_outputs() == [out / "evaluation.json", out / "report.html"]
    train(TrainConfig(**settings), progress=False, overwrite=True)
    assert not (out / "evaluation.json").exists() and not (out / "report.html").exists()
    assert (out / "report" / "accuracy.png").read_bytes() == b"the user's picture"
