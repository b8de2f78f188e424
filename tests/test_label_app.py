"""The labeling page's library side (issue 31): journaled label moves, crash recovery, the lock, the token, bad input.

No browser here (tests/test_label_app_browser.py drives one): the journal and the session are plain Python, and the
server is started in a thread and asked over HTTP. Bad input keeps ``test_bad_input``'s promise: one sentence
(on stderr, or in the page's JSON), exit code 2, and the dataset exactly as it was.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from test_bad_input import CaseTable, Ctx, Expect, assert_one_line_error, image_folder, leftovers, run_main, snapshot

from fewlabels.app.journal import Journal, check_class_name
from fewlabels.app.session import LabelSession
from fewlabels.errors import FewLabelsError


def folder(tmp: Path, unlabeled: int = 6) -> Path:
    return image_folder(tmp / "ds", classes=("a", "b"), per_class=3, unlabeled=unlabeled)


def where(root: Path, name: str) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob(name) if STATE not in p.parts)


STATE = ".fewlabels-label"


# ---------------------------------------------------------------- the journal


def test_a_label_moves_the_file_and_undo_moves_it_back(tmp_path):
    root = folder(tmp_path)
    j = Journal(root).open()
    j.label("unlabeled/u0.png", "a")
    j.label(root / "unlabeled/u1.png", "new")  # a new class gets its folder
    assert where(root, "u0.png") == ["a/u0.png"] and where(root, "u1.png") == ["new/u1.png"]
    assert j.labeled_by_page() == {"unlabeled/u0.png": "a", "unlabeled/u1.png": "new"}
    j.undo()
    assert where(root, "u1.png") == ["unlabeled/u1.png"]
    assert not (root / "new").exists(), "an emptied new class folder would break the next train"
    j.relabel("a/u0.png", "b")
    j.undo()
    assert where(root, "u0.png") == ["a/u0.png"]
    j.close()
    again = Journal(root).open()  # read back: the same labels
    assert again.labeled_by_page() == {"unlabeled/u0.png": "a"}
    again.close()


def test_a_second_journal_on_the_same_folder_is_refused(tmp_path):
    root = folder(tmp_path)
    j = Journal(root).open()
    with pytest.raises(FewLabelsError, match="another fewlabels label is serving"):
        Journal(root).open()
    j.close()
    Journal(root).open().close()


def test_two_tabs_labeling_the_same_file_at_once_move_it_once(tmp_path):
    root = folder(tmp_path)
    j = Journal(root).open()
    outcomes: list = []

    def tab(cls: str) -> None:
        try:
            outcomes.append(j.label("unlabeled/u0.png", cls)["cls"])
        except FewLabelsError as exc:
            outcomes.append(str(exc))

    tabs = [threading.Thread(target=tab, args=(c,)) for c in ("a", "b") * 4]
    for t in tabs:
        t.start()
    for t in tabs:
        t.join()
    moved = [o for o in outcomes if o in ("a", "b")]
    assert len(moved) == 1 and all("gone since" in o for o in outcomes if o not in ("a", "b"))
    assert where(root, "u0.png") == [f"{moved[0]}/u0.png"]
    j.close()


def test_an_open_move_is_finished_when_the_journal_is_opened_again(tmp_path):
    root = folder(tmp_path)
    (root / STATE).mkdir()
    entry = {"id": 1, "op": "label", "src": "unlabeled/u0.png", "dst": "b/u0.png", "cls": "b"}
    (root / STATE / "journal.jsonl").write_text(json.dumps(entry) + "\n" + '{"id": 2, "op": "lab')  # cut by the crash
    j = Journal(root).open()
    assert where(root, "u0.png") == ["b/u0.png"] and where(root, "u1.png") == ["unlabeled/u1.png"]
    assert j.labeled_by_page() == {"unlabeled/u0.png": "b"}
    j.close()


KILLER = textwrap.dedent("""
    import sys
    from fewlabels.app.journal import Journal
    j = Journal(sys.argv[1]).open()
    print("ready", flush=True)
    for i in range(int(sys.argv[2])):
        j.label(f"unlabeled/u{i}.png", "ab"[i % 2])
    print("done", flush=True)
""")


@pytest.mark.parametrize("after_s", [0.0, 0.05, 0.15])
def test_kill_9_mid_labeling_then_the_journal_replayed_gives_the_same_folder(tmp_path, after_s):
    n = 60
    root = folder(tmp_path, unlabeled=n)
    proc = subprocess.Popen([sys.executable, "-c", KILLER, str(root), str(n)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(after_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    j = Journal(root).open()
    given = j.labeled_by_page()
    for i in range(n):
        src = f"unlabeled/u{i}.png"
        expected = f"{given[src]}/u{i}.png" if src in given else src
        assert where(root, f"u{i}.png") == [expected]
    labeled = {int(Path(s).stem[1:]) for s in given}
    assert labeled == set(range(len(labeled))), "labels are given in order: no gap"
    assert leftovers(root) == []
    j.close()


def test_class_names_are_plain_folder_names():
    assert check_class_name("cat 2") == "cat 2"
    for bad in ("", " cat", "a/b", "..", ".hidden", "unlabeled", "train", "x" * 101, "tab\there"):
        with pytest.raises(FewLabelsError):
            check_class_name(bad)


# ---------------------------------------------------------------- the server over HTTP


@pytest.fixture
def served(tmp_path):
    pytest.importorskip("starlette")
    uvicorn = pytest.importorskip("uvicorn")
    from fewlabels.app.server import create_app

    root = folder(tmp_path)
    session = LabelSession(root, budget=3).open()
    session.refresh_picks(wait=True)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(session, "secret"), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", root
    server.should_exit = True
    thread.join(10)
    session.close()


def http(url: str, body: dict | None = None, token: str | None = "secret") -> tuple[int, str]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"X-Token": token} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_a_request_without_the_token_is_refused(served):
    base, root = served
    before = snapshot(root)
    for path in ("/", "/app.js", "/api/state", "/api/image?sample=unlabeled/u0.png"):
        assert http(base + path, token=None)[0] == 403
        assert http(base + path, token="wrong")[0] == 403
    assert http(base + "/api/label", {"sample": "unlabeled/u0.png", "class": "a"}, token=None)[0] == 403
    assert snapshot(root) == before
    assert http(base + "/?token=secret", token=None)[0] == 200


@pytest.mark.parametrize("body, fragment", [
    ({"sample": "unlabeled/u0.png", "class": "../x"}, "slash"),
    ({"sample": "unlabeled/u0.png", "class": "unlabeled"}, "cannot be a class"),
    ({"sample": "../ds/a/0.png", "class": "a"}, "not an image of"),
    ({"sample": "a/0.png", "class": "b"}, "labeled already"),
    ({"sample": "unlabeled/gone.png", "class": "a"}, "gone since it was suggested"),
    ({"sample": "unlabeled/u0.png"}, "needs 'class'"),
])
def test_a_bad_label_in_the_page_is_one_sentence_and_changes_nothing(served, body, fragment):
    base, root = served
    before = snapshot(root / "a") | snapshot(root / "unlabeled")
    code, text = http(base + "/api/label", body)
    error = json.loads(text)["error"]
    assert code == 400 and fragment in error and "\n" not in error
    assert snapshot(root / "a") | snapshot(root / "unlabeled") == before


def test_a_file_that_vanished_or_a_dataset_changed_behind_the_page_is_one_sentence(served):
    base, root = served
    (root / "unlabeled/u1.png").unlink()  # deleted by hand since it was suggested
    code, text = http(base + "/api/label", {"sample": "unlabeled/u1.png", "class": "a"})
    assert code == 400 and "gone since it was suggested" in json.loads(text)["error"]
    (root / "a/u2.png").write_bytes(b"the user's own file")  # a file of the same name put in the class folder
    code, text = http(base + "/api/label", {"sample": "unlabeled/u2.png", "class": "a"})
    assert code == 400 and "exists already" in json.loads(text)["error"]
    assert (root / "a/u2.png").read_bytes() == b"the user's own file" and (root / "unlabeled/u2.png").is_file()
    assert http(base + "/api/label", {"sample": "unlabeled/u3.png", "class": "b"})[0] == 200
    (root / "b/u3.png").rename(root / "unlabeled/u3.png")  # the user moved it back by hand: undo has nothing to move
    code, text = http(base + "/api/undo", {})
    assert code == 400 and "gone since it was labeled" in json.loads(text)["error"]
    assert (root / "unlabeled/u3.png").is_file()


def test_the_state_names_the_picks_and_a_label_shows_in_it(served):
    base, root = served
    state = json.loads(http(base + "/api/state")[1])["state"]
    assert len(state["picks"]) == 3 and {p["status"] for p in state["picks"]} == {"todo"}
    sample = state["picks"][0]["sample"]
    state = json.loads(http(base + "/api/label", {"sample": sample, "class": "b"})[1])["state"]
    assert state["picks"][0]["status"] == "labeled" and state["picks"][0]["label"] == "b"
    assert state["counts"]["per_class"]["b"] == 4
    assert http(base + "/api/class", {"name": "c"})[0] == 200
    assert json.loads(http(base + "/api/state")[1])["state"]["classes"] == ["a", "b", "c"]


# ---------------------------------------------------------------- bad input to the command

CASES = CaseTable()
case = CASES.case


@case("port-in-use")
def _(c: Ctx) -> Expect:
    root = folder(c.tmp)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    c.keep = busy
    return Expect(["label", root, "--port", busy.getsockname()[1]], ["is in use", "--port 0"])


@case("read-only-dataset")
def _(c: Ctx) -> Expect:
    root = folder(c.tmp)
    for p in (root, root / "unlabeled", root / "a", root / "b"):
        p.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: show it the folder as another user sees it
        real = os.access
        c.monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(root) in str(p) else real(p, mode, **kw))
    return Expect(["label", root, "--port", 0], ["read-only"])


@case("folder-without-images")
def _(c: Ctx) -> Expect:
    (c.tmp / "empty" / "unlabeled").mkdir(parents=True)
    return Expect(["label", c.tmp / "empty", "--port", 0], ["holds no images"])


@case("nothing-unlabeled")
def _(c: Ctx) -> Expect:
    root = image_folder(c.tmp / "ds", per_class=2, unlabeled=0)
    return Expect(["label", root, "--port", 0], ["no unlabeled/ images"])


@case("npz-not-yet")
def _(c: Ctx) -> Expect:
    (c.tmp / "x.npz").write_bytes(b"")
    return Expect(["label", c.tmp / "x.npz", "--port", 0], ["image folders for now"])


@case("not-a-folder")
def _(c: Ctx) -> Expect:
    return Expect(["label", c.tmp / "nowhere", "--port", 0], ["is not a folder"])


@case("port-out-of-range")
def _(c: Ctx) -> Expect:
    return Expect(["label", folder(c.tmp), "--port", 70000], ["--port must be"])


@case("host-not-an-address")
def _(c: Ctx) -> Expect:
    return Expect(["label", folder(c.tmp), "--port", 0, "--host", "no such host.invalid"], ["--host"])


@case("second-server-on-the-folder")
def _(c: Ctx) -> Expect:
    root = folder(c.tmp)
    c.keep = Journal(root).open()  # as a first server holds it
    return Expect(["label", root, "--port", 0], ["another fewlabels label is serving"])


@case("from-a-missing-run")
def _(c: Ctx) -> Expect:
    return Expect(["label", folder(c.tmp), "--port", 0, "--from", c.tmp / "norun"], ["does not exist"])


@case("empty-from")
def _(c: Ctx) -> Expect:
    return Expect(["label", folder(c.tmp), "--port", 0, "--from", ""], ["--from is empty"])


@case("empty-dataset")
def _(c: Ctx) -> Expect:
    return Expect(["label", "", "--port", 0], ["DATASET is empty"])


@case("web-extra-missing")
def _(c: Ctx) -> Expect:
    c.monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn raises ImportError
    return Expect(["label", folder(c.tmp), "--port", 0], ["pip install 'fewlabels[app]'"])


@pytest.mark.parametrize("build", CASES)
def test_bad_input_is_one_sentence_exit_2_and_leaves_nothing(build, tmp_path, request, capsys, monkeypatch):
    if "web-extra-missing" not in request.node.name:  # the others get past the extra's check: they need it
        pytest.importorskip("starlette")
        pytest.importorskip("uvicorn")
    ctx = Ctx(tmp_path, request)
    ctx.monkeypatch = monkeypatch
    expect = build(ctx)
    before = snapshot(tmp_path)
    code, out, err = run_main(expect.argv, capsys)
    assert_one_line_error(code, out, err, expect.fragments, expect.forbid)
    assert snapshot(tmp_path) == before, "a refused start moved or wrote a file"
    assert leftovers(tmp_path) == []
    for p in tmp_path.rglob("*"):
        if p.is_dir():
            p.chmod(0o755)


def test_check_says_what_would_be_served_and_host_warns(tmp_path, capsys):
    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    root = folder(tmp_path)
    before = snapshot(root / "unlabeled")
    code, out, err = run_main(["label", root, "--port", 0, "--check"], capsys)
    assert code == 0 and "can be labeled" in out and err == ""
    code, out, err = run_main(["label", root, "--port", 0, "--check", "--host", "0.0.0.0"], capsys)
    assert code == 0 and err.startswith("fewlabels: warning: --host 0.0.0.0 serves the page beyond this machine")
    assert snapshot(root / "unlabeled") == before


# ---------------------------------------------------------------- a round stopped and resumed from the page


def until(condition, deadline_s: float, what: str):
    """Poll ``condition`` until it is true; a generous deadline only, never a timing assertion."""
    end = time.time() + deadline_s
    while time.time() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_round_stopped_from_the_page_keeps_a_checkpoint_and_resumes_to_the_end(served):
    from fewlabels.storage import RunFolder

    base, root = served
    training = lambda: json.loads(http(base + "/api/state")[1])["state"]["training"]  # noqa: E731
    code, text = http(base + "/api/train", {"iterations": 2000, "batch_size": 4, "algorithm": "supervised"})
    assert code == 200, text
    until(lambda: training().get("step", 0) >= 1, 120, "the round's first steps")
    code, text = http(base + "/api/stop", {})  # what the page's Stop button sends
    assert code == 200, text
    assert json.loads(text)["state"]["training"]["state"] in ("stopping", "stopped")
    stopped = until(lambda: (t := training())["state"] not in ("training", "stopping") and t, 120, "the stop")
    assert stopped["state"] == "stopped", stopped
    run = root / STATE / "runs" / stopped["run"]
    folder = RunFolder(run)
    assert folder.last.is_file() and not folder.finished(), "a stopped round keeps a checkpoint and is not finished"
    assert "Stopped by SIGINT" in (run.parent / f"{run.name}.train.log").read_text()
    code, text = http(base + "/api/resume", {})  # the Resume button
    assert code == 200, text
    ended = until(lambda: (t := training())["state"] not in ("training", "stopping") and t, 300, "the resumed round's end")
    assert ended["state"] == "finished" and ended["run"] == stopped["run"], ended
    assert RunFolder(run).results()["iterations"] == 2000
    assert http(base + "/api/resume", {})[0] == 400, "a finished round is not resumed again"


# ---------------------------------------------------------------- per-class figures after a round


def dark_and_bright(root: Path, per_class: int, unlabeled: int = 6) -> Path:
    """Class 'dark' and class 'bright' 16x16 noise images: any model tells them apart after a few steps."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(2 * per_class + unlabeled):
        cls = ("dark", "bright")[i % 2] if i < 2 * per_class else "unlabeled"
        low = 0 if (cls == "dark" or (cls == "unlabeled" and i % 2 == 0)) else 195
        (root / cls).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(low, low + 60, (16, 16, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return root


def finished_review(session: LabelSession) -> dict:
    session.train({"iterations": 60, "batch_size": 8, "algorithm": "supervised"})
    until(lambda: session.round.state not in ("training", "stopping"), 180, "the round's end")
    assert session.round.state == "finished", session.round.progress()
    return until(lambda: (r := session.state()["review"]).get("state") == "ready" and r, 180, "the review")


def test_per_class_figures_are_accuracy_on_the_labels_the_round_held_out(tmp_path):
    from fewlabels.storage import RunFolder

    root = dark_and_bright(tmp_path / "ds", per_class=10)  # 10 a class: the page holds 2 of each out
    session = LabelSession(root).open(picks=False)
    try:
        review = finished_review(session)
    finally:
        session.close()
    results = RunFolder(root / STATE / "runs" / review["run"]).results()
    rows = {r["class"]: r for r in review["per_class"]}
    assert review["held_out_note"] == "" and set(rows) == {"dark", "bright"}
    for r in rows.values():
        assert r["held_out"] == 2 and r["labels"] == 10, r  # held out of the labels given (check-labels judges all)
        assert r["correct"] == 2 and r["accuracy"] == 1.0, r  # the two classes cannot be confused
        assert 0 <= r["undoubted"] <= 1 and r["flagged"] >= 0  # check-labels' share, kept under its own name
    assert sum(r["held_out"] for r in rows.values()) == results["num_validation"]
    assert results["final_val_acc"] == 1.0


def test_without_enough_labels_to_hold_out_the_page_says_so_instead_of_an_accuracy(tmp_path):
    from fewlabels.app.review import NO_HOLD_OUT

    root = dark_and_bright(tmp_path / "ds", per_class=3)
    session = LabelSession(root).open(picks=False)
    try:
        review = finished_review(session)
    finally:
        session.close()
    assert review["held_out_note"] == NO_HOLD_OUT
    assert all(r["accuracy"] is None and r["held_out"] == 0 and r["labels"] == 3 for r in review["per_class"])
