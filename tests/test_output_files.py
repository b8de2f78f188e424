"""One rule for every output file (issue 27): an existing file is replaced only with --overwrite and only when
fewlabels wrote it, which ``fewlabels.utils.provenance`` reads from the file itself.

For each writing command: (a) a user's file at the output path is refused and byte-identical afterwards, with
and without --overwrite; (b) a file the command wrote earlier is refused without --overwrite and replaced with
it. Then (c) the recogniser on every format, marked and not.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_bad_input import assert_one_line_error, image_folder, leftovers, npz, run_main, small_arrays

from fewlabels.cli import main
from fewlabels.utils import provenance
from fewlabels.utils.io import write_output, write_output_json

USER_BYTES = b"the user's own file: not written by fewlabels\n"
TRAIN = ["train", "--dataset", "digits", "--labels-per-class", "2", "--iterations", "2", "--batch-size", "8", "--uratio", "1",
         "--eval-every", "2", "--checkpoint-every", "2", "--quiet"]


@dataclass
class Ctx:
    tmp: Path
    fixtures: dict[str, Path]

    def copy(self, name: str) -> Path:
        dst = self.tmp / name
        if not dst.exists():
            (shutil.copytree if self.fixtures[name].is_dir() else shutil.copy)(self.fixtures[name], dst)
        return dst


# each writer: id -> build(ctx) -> (argv, the output file it writes, the files it writes beside it)
Build = Callable[[Ctx], tuple[list, Path]]
WRITERS: dict[str, Build] = {
    "probe --json": lambda c: (["probe", c.copy("run"), "--json", c.tmp / "o" / "probe.json"], c.tmp / "o" / "probe.json"),
    "probe default": lambda c: (["probe", c.copy("run")], c.tmp / "run" / "probe-knn.json"),
    "evaluate --json": lambda c: (["evaluate", c.copy("run"), "--json", c.tmp / "e.json", "--quiet"], c.tmp / "e.json"),
    "evaluate default": lambda c: (["evaluate", c.copy("run"), "--quiet"], c.tmp / "run" / "evaluation.json"),
    "check-labels --out": lambda c: (["check-labels", c.copy("run"), "--out", c.tmp / "l.csv"], c.tmp / "l.csv"),
    "check-labels default": lambda c: (["check-labels", c.copy("run")], c.tmp / "run" / "check-labels.csv"),
    "suggest --out": lambda c: (["suggest", "--dataset", c.copy("imgs"), "--budget", "2", "--out", c.tmp / "picks.csv"],
                                c.tmp / "picks.csv"),
    "merge-labels --out": lambda c: (["merge-labels", "--dataset", c.copy("arrays.npz"), "--labels", c.copy("picks.csv"),
                                      "--out", c.tmp / "new.npz"], c.tmp / "new.npz"),
    "predict --out": lambda c: (["predict", c.copy("run"), c.copy("digits.npy"), "--out", c.tmp / "p.csv", "--quiet"],
                                c.tmp / "p.csv"),
    "embed --out": lambda c: (["embed", c.copy("run"), "--out", c.tmp / "emb.npz"], c.tmp / "emb.npz"),
    "report --out": lambda c: (["report", c.copy("run"), "--out", c.tmp / "r.html", "--quiet"], c.tmp / "r.html"),
    "report default": lambda c: (["report", c.copy("run"), "--quiet"], c.tmp / "run" / "report.html"),
    "report plot": lambda c: (["report", c.copy("run"), "--out", c.tmp / "r.html", "--quiet"],
                              c.tmp / "run" / "report" / "accuracy.png"),
    "export --out": lambda c: (["export", c.copy("run"), "--out", c.tmp / "m.ts"], c.tmp / "m.ts"),
    "export default": lambda c: (["export", c.copy("run")], c.tmp / "run" / "model.ts"),
    "symmetries json": lambda c: (["symmetries", "--dataset", "digits", "--labels-per-class", "2",
                                   "--transformations", "hflip", "--out", c.tmp / "sym"], c.tmp / "sym" / "symmetries.json"),
    "symmetries png": lambda c: (["symmetries", "--dataset", "digits", "--labels-per-class", "2",
                                  "--transformations", "hflip", "--out", c.tmp / "sym"], c.tmp / "sym" / "symmetries.png"),
    "augment-preview --out": lambda c: (["augment-preview", "--dataset", "digits", "--n", "2", "--strong-views", "1",
                                         "--out", c.tmp / "prev.png"], c.tmp / "prev.png"),
}

IN_THE_WAY = {"report plot": "r.html", "symmetries png": "sym/symmetries.json"}  # what the writer checks before it


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("output-files")
    assert main([*TRAIN, "--out", str(root / "run")]) == 0
    image_folder(root / "imgs")
    X, y = small_arrays()
    npz(root / "arrays.npz", X=X, y=y)
    (root / "picks.csv").write_text(f"rank,sample,label\n1,{int(np.flatnonzero(y == -1)[0])},1\n")
    np.save(root / "digits.npy", np.zeros((3, 1, 8, 8), dtype=np.float32))
    return {"run": root / "run", "imgs": root / "imgs", "arrays.npz": root / "arrays.npz", "picks.csv": root / "picks.csv",
            "digits.npy": root / "digits.npy"}


@pytest.fixture
def ctx(fixtures, tmp_path, monkeypatch) -> Ctx:
    monkeypatch.chdir(tmp_path)
    return Ctx(tmp_path, fixtures)


# ---------------------------------------------------------------- (a) a user's file is never replaced


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "--overwrite"])
@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_users_file_at_the_output_path_is_refused_and_kept(writer, overwrite, ctx, capsys):
    argv, out = WRITERS[writer](ctx)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(USER_BYTES)
    code, stdout, err = run_main([*argv, *(["--overwrite"] if overwrite else [])], capsys)
    line = assert_one_line_error(code, stdout, err, fragments=(str(out), "remove it"), forbid=("pass --overwrite",))
    assert "did not write" in line, line
    assert out.read_bytes() == USER_BYTES
    assert leftovers(ctx.tmp) == []


# ---------------------------------------------------------------- (b) fewlabels' own file: --overwrite replaces it


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_file_the_command_wrote_is_refused_without_overwrite_and_replaced_with_it(writer, ctx, capsys):
    argv, out = WRITERS[writer](ctx)
    code, _, err = run_main(argv, capsys)
    assert code == 0, err
    assert provenance.recognise(out), f"{out} lacks fewlabels' mark"
    before = out.read_bytes(), out.stat().st_ino
    if writer in IN_THE_WAY:  # only this output is to be in the way
        (ctx.tmp / IN_THE_WAY[writer]).unlink()

    code, stdout, err = run_main(argv, capsys)
    assert_one_line_error(code, stdout, err, fragments=(str(out), "--overwrite", "written by fewlabels"))
    assert (out.read_bytes(), out.stat().st_ino) == before

    code, _, err = run_main([*argv, "--overwrite"], capsys)
    assert code == 0, err
    assert out.stat().st_ino != before[1], "not written again"
    assert provenance.recognise(out)
    assert leftovers(ctx.tmp) == []


def test_suggest_again_into_its_own_picks_with_overwrite(ctx, capsys):
    """The documented round: a picks.csv whose label column the user filled is still suggest's, for --overwrite."""
    argv, out = WRITERS["suggest --out"](ctx)
    assert run_main(argv, capsys)[0] == 0
    out.write_text(out.read_text().replace("\n", "\r\n"))  # saved again by a spreadsheet
    assert provenance.recognise(out)
    assert run_main([*argv, "--overwrite"], capsys)[0] == 0


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "--overwrite"])
def test_merge_labels_never_replaces_its_dataset(overwrite, ctx, capsys):
    dataset = ctx.copy("arrays.npz")
    before = dataset.read_bytes()
    argv = ["merge-labels", "--dataset", dataset, "--labels", ctx.copy("picks.csv"), "--out", dataset,
            *(["--overwrite"] if overwrite else [])]
    assert_one_line_error(*run_main(argv, capsys), fragments=("--dataset itself",))
    assert dataset.read_bytes() == before
    # a dataset fewlabels wrote (an earlier merge) is no exception
    new = ctx.tmp / "new.npz"
    assert run_main(["merge-labels", "--dataset", dataset, "--labels", ctx.copy("picks.csv"), "--out", new], capsys)[0] == 0
    before = new.read_bytes()
    argv = ["merge-labels", "--dataset", new, "--labels", ctx.copy("picks.csv"), "--out", ctx.tmp / "." / "new.npz",
            *(["--overwrite"] if overwrite else [])]
    assert_one_line_error(*run_main(argv, capsys), fragments=("--dataset itself",))
    assert new.read_bytes() == before


def test_a_link_at_the_output_path_is_the_users(ctx, capsys):
    argv, out = WRITERS["embed --out"](ctx)
    assert run_main(argv, capsys)[0] == 0
    link = ctx.tmp / "link.npz"
    link.symlink_to(out)
    before = out.read_bytes()
    argv = [*argv[:-1], link, "--overwrite"]
    assert_one_line_error(*run_main(argv, capsys), fragments=("symbolic link",))
    assert link.is_symlink() and out.read_bytes() == before


# ---------------------------------------------------------------- (c) the recogniser on every format


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, X=np.zeros((2, 3)), y=np.array([0, -1]))
    return buf.getvalue()


def _torchscript(extra: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(torch.nn.Identity()), buf, _extra_files=extra)
    return buf.getvalue()


def _field(number: int, payload: bytes) -> bytes:
    assert len(payload) < 128
    return bytes([number << 3 | 2, len(payload)]) + payload


def _onnx(key: str) -> bytes:
    """A ModelProto as protobuf: ir_version (1), producer_name (2), a graph (7), metadata_props (14) entry key/value."""
    entry = _field(1, key.encode()) + _field(2, b'{"classes": ["a"]}')
    return bytes([1 << 3, 8]) + _field(2, b"pytorch") + _field(7, b"\x0a\x04main") + _field(14, entry)


PREDICT_HEADER = "item,class,probability,p_a,p_b\nx.png,a,0.9,0.9,0.1\n"
# format -> (bytes fewlabels writes, stamped or marked by the writer; the same kind of file without the mark)
FORMATS: dict[str, tuple[bytes, bytes]] = {
    "json": (provenance.stamp("json", b'{"accuracy": 0.5}'), b'{"accuracy": 0.5}\n'),
    "csv picks": (b"rank,sample,strategy,reason,score,predicted,confidence,copy,label\n1,3,typiclust,,,,,,\n",
                  b"rank,sample,label\n1,3,a\n"),
    "csv check-labels": (b"rank,sample,given,suspected,score,p_given,flagged\n", b"rank,sample,given,suspected\n"),
    "csv predict": (PREDICT_HEADER.encode(), b"item,class,probability,confidence\n"),
    "npz": (provenance.stamp("npz", _npz()), _npz()),
    "png": (provenance.stamp("png", png_bytes()), png_bytes()),
    "html": (provenance.stamp("html", b"<!DOCTYPE html>\n<html><body>hi</body></html>\n"),
             b"<!DOCTYPE html>\n<html><body><!-- written by fewlabels --></body></html>\n"),
    "torchscript": (_torchscript({provenance.MODEL_META: "{}"}), _torchscript({"other.json": "{}"})),
    "onnx": (_onnx(provenance.MODEL_META), _onnx("producer.json")),
    "user bytes": (None, USER_BYTES),
    "empty": (None, b""),
}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_the_recogniser_reads_the_mark_from_the_file(fmt, tmp_path):
    marked, unmarked = FORMATS[fmt]
    if marked is not None:
        (tmp_path / "marked").write_bytes(marked)
        assert provenance.recognise(tmp_path / "marked")
        (tmp_path / "link").symlink_to(tmp_path / "marked")  # a link is the user's, whatever it points to
        assert not provenance.recognise(tmp_path / "link")
    (tmp_path / "unmarked").write_bytes(unmarked)
    assert not provenance.recognise(tmp_path / "unmarked")
    assert not provenance.recognise(tmp_path / "missing")
    assert not provenance.recognise(tmp_path)


def test_stamped_files_read_as_before(tmp_path):
    """The mark changes nothing a reader sees: the arrays, the image, the page, the JSON's own keys."""
    from fewlabels.data.arrays import load_npz

    write_output(tmp_path / "a.npz", _npz(), "npz")
    with np.load(tmp_path / "a.npz", allow_pickle=False) as f:
        assert sorted(f.files) == ["X", "fewlabels", "y"] and f["y"].tolist() == [0, -1]
    assert load_npz(tmp_path / "a.npz").train.y.tolist() == [0, -1]
    write_output(tmp_path / "a.png", png_bytes(), "png")
    assert np.asarray(Image.open(tmp_path / "a.png")).shape == (4, 4)
    write_output(tmp_path / "a.html", "<!DOCTYPE html>\n<p>x</p>\n", "html")
    assert (tmp_path / "a.html").read_text().startswith("<!DOCTYPE html>")
    write_output_json(tmp_path / "a.json", {"accuracy": 0.5})
    assert json.loads((tmp_path / "a.json").read_text()) == {"accuracy": 0.5, "written_by": "fewlabels"}
    assert all(provenance.recognise(tmp_path / n) for n in ("a.npz", "a.png", "a.html", "a.json"))
    with pytest.raises(ValueError):  # a table without fewlabels' header is not passed off as fewlabels'
        write_output(tmp_path / "b.csv", "a,b\n", "csv")
    assert not os.path.exists(tmp_path / "b.csv")


def test_the_marks_match_what_the_writers_write():
    from fewlabels import export
    from fewlabels.select.rounds import CSV_COLUMNS

    assert provenance.MODEL_META == export.META_FILE
    assert provenance.CSV_HEADERS[0][0] == CSV_COLUMNS
    with zipfile.ZipFile(io.BytesIO(provenance.stamp("npz", _npz()))) as z:
        assert provenance.NPZ_MEMBER in z.namelist()


def test_the_writer_itself_keeps_a_users_file_that_appeared_after_the_check(tmp_path):
    from fewlabels.errors import FewLabelsError

    (tmp_path / "e.json").write_bytes(USER_BYTES)
    with pytest.raises(FewLabelsError, match="did not write"):
        write_output_json(tmp_path / "e.json", {"accuracy": 0.5})
    assert (tmp_path / "e.json").read_bytes() == USER_BYTES
    write_output_json(tmp_path / "f.json", {"accuracy": 0.5})
    write_output_json(tmp_path / "f.json", {"accuracy": 0.6})  # its own: the command's --overwrite decided already
    assert json.loads((tmp_path / "f.json").read_text())["accuracy"] == 0.6
