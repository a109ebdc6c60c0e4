"""Damaged and hostile run folders against the read commands and the Python API.

``wae report``, ``wae runs list``, ``wae eval``, ``wae compare``, ``wae sample`` (and the other
model commands) and ``wt.load`` read run folders that were edited, cut short, overwritten with
random bytes, or replaced by symbolic links. Whatever they find, they show what they can (a
damaged file that the command does not need is treated as missing, with a note) or refuse with
one sentence; never a traceback. They never write outside the run folder and their declared
output, never write through a link, and never remove anything.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import stat
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

import wae_toolkit as wt
from wae_toolkit.errors import UsageError, WaeError
from wae_toolkit.runs.figures import save_loss_curves
from wae_toolkit.runs.read import RunFileWarning, read_metrics

from .test_validation import assert_sentence, error_lines, wae

MATH = "$\\frac{$"  # matplotlib's mathtext parser fails on this text
HUGE = "9" * 400  # a JSON integer too large for a float


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The classifier cache of ``wae eval`` (its classifier is trained once for the module)."""
    return tmp_path_factory.mktemp("classifiers")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> Path:
    """A small finished digits run with a checkpoint, every figure and an ``eval.json``."""
    out = tmp_path_factory.mktemp("damaged") / "run"
    wt.fit(epochs=1, data_opts={"limit": 200}, out=str(out), device="cpu", seed=3)
    code, output = wae("eval", str(out), *_eval_flags(cache))
    assert code == 0, output
    assert (out / "eval.json").is_file() and list((out / "checkpoints").iterdir())
    return out


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """``wae runs list`` prints one line per run."""
    from wae_toolkit.cli import model_cmds as cli_model

    monkeypatch.setattr(cli_model.out, "width", 250)


def _eval_flags(cache: Path) -> list[str]:
    return ["--samples", "10", "--cache-dir", str(cache)]


def _copy(trained: Path, dest: Path) -> Path:
    shutil.copytree(trained, dest, symlinks=True)
    return dest


def _clean(code: int, output: str, allowed: tuple[int, ...] = (0, 1, 2)) -> None:
    """An allowed exit code, no traceback, and every error line one sentence."""
    assert code in allowed, output
    assert "Traceback" not in output, output
    if code:
        assert error_lines(output), output
    for line in error_lines(output):
        assert_sentence(line.removeprefix("Error:").strip())


def _refused(code: int, output: str, *words: str) -> str:
    _clean(code, output, (1, 2))
    line = " ".join(error_lines(output))
    for word in words:
        assert word in line, line
    return line


def _rewrite_records(path: Path, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    lines = path.read_text().splitlines()
    path.write_text("".join(json.dumps(change(json.loads(line))) + "\n" for line in lines))


def _curves_svg(page: str) -> str:
    import base64
    import re

    found = re.search(
        r'src="data:image/svg\+xml;base64,([^"]+)"[^>]*data-file="metrics.jsonl"', page
    )
    assert found, "no loss curves"
    return base64.b64decode(found.group(1)).decode("utf-8")


# ---------------------------------------------------------------------------------------------
# text that matplotlib would read as mathtext


def test_metric_and_run_names_are_drawn_as_text_never_as_mathtext(trained, tmp_path):
    run = _copy(trained, tmp_path / MATH)
    other = _copy(trained, tmp_path / "_a$b$c")
    for folder in (run, other):
        _rewrite_records(
            folder / "metrics.jsonl",
            lambda r: r | {MATH: 1.5, "_hidden": 2.0} if r["kind"] == "step" else r,
        )
    (run / "summary.json").write_text(
        json.dumps(json.loads((run / "summary.json").read_text()) | {MATH: 0.5})
    )
    code, output = wae("report", str(run), "-o", str(tmp_path / "one.html"))
    _clean(code, output, (0,))
    svg = _curves_svg((tmp_path / "one.html").read_text())
    assert MATH in svg and " _hidden" in svg  # the text itself, and every legend entry
    code, output = wae("report", str(run), str(other), "-o", str(tmp_path / "two.html"))
    _clean(code, output, (0,))
    assert "_a$b$c" in _curves_svg((tmp_path / "two.html").read_text())
    # the losses figure of the end of training, drawn from the same records
    assert save_loss_curves(tmp_path / "losses.png", read_metrics(run)) is not None


# ---------------------------------------------------------------------------------------------
# summary.json and metrics.jsonl of any content

SUMMARIES: dict[str, Callable[[str], bytes]] = {
    "seconds is Infinity": lambda t: t.replace(
        '"seconds": ', '"seconds": Infinity, "s": '
    ).encode(),
    "a 400-digit loss": lambda t: t.replace(
        '"test_cost": ', f'"test_cost": {HUGE}, "c": '
    ).encode(),
    "a list": lambda t: b"[1, 2]",
    "a string": lambda t: b'"finished"',
    "null": lambda t: b"null",
    "random bytes": lambda t: bytes(range(256)) * 3,
}


@pytest.mark.parametrize("damage", SUMMARIES)
def test_a_damaged_summary_is_shown_as_far_as_it_can_be(trained, tmp_path, damage):
    run = _copy(trained, tmp_path / "runs" / "run")
    path = run / "summary.json"
    path.write_bytes(SUMMARIES[damage](path.read_text()))
    readable = damage in ("seconds is Infinity", "a 400-digit loss")
    code, output = wae("report", str(run), "-o", str(tmp_path / "r.html"))
    _clean(code, output, (0,))
    page = (tmp_path / "r.html").read_text()
    assert ("summary.json" in page and "it is left out" in page) != readable
    code, output = wae("runs", "list", str(tmp_path / "runs"))
    _clean(code, output, (0,))
    assert "finished" in output if readable else "unreadable summary.json" in output
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = wt.load(run)
    warned = [w for w in caught if issubclass(w.category, RunFileWarning)]
    if readable:
        assert not warned and model.summary["steps"] == 2
        assert math.isinf(model.summary["seconds" if "seconds" in damage else "test_cost"])
    else:
        assert model.summary == {} and len(warned) == 1
        assert_sentence(str(warned[0].message))
        assert "summary.json" in str(warned[0].message)


METRICS: dict[str, Callable[[str], bytes]] = {
    "a 400-digit loss": lambda t: t.replace('"loss": ', f'"loss": {HUGE}, "l": ').encode(),
    "an infinite step": lambda t: t.replace('"step": 2', '"step": Infinity').encode(),
    "lines that are not objects": lambda t: ("[1]\n3\n" + t + '"x"\nnull\n').encode(),
    "random bytes": lambda t: bytes(range(255, -1, -1)) * 3,
}


@pytest.mark.parametrize("damage", METRICS)
def test_damaged_metrics_lines_are_skipped(trained, tmp_path, damage):
    run = _copy(trained, tmp_path / "run")
    path = run / "metrics.jsonl"
    path.write_bytes(METRICS[damage](path.read_text()))
    code, output = wae("report", str(run), "-o", str(tmp_path / "r.html"))
    _clean(code, output, (0,))
    if damage == "lines that are not objects":
        assert (
            "4 line(s) of metrics.jsonl are not JSON records" in (tmp_path / "r.html").read_text()
        )
    save_loss_curves(tmp_path / "losses.png", read_metrics(run))


def test_everything_damaged_at_once_still_evaluates_and_compares(trained, tmp_path, cache):
    """Files the model does not need are damaged: every read command still works."""
    run = _copy(trained, tmp_path / "runs" / "a")
    other = _copy(trained, tmp_path / "runs" / "b")
    (run / "summary.json").write_text("[]")
    (run / "metrics.jsonl").write_text(f'{{"kind": "step", "step": 1, "loss": {HUGE}}}\n[]\n')
    (run / "eval.json").write_text('{"metrics": [], "settings": 3}')
    (other / "eval.json").write_text("null")
    for args in (
        ["report", str(run), str(other), "-o", str(tmp_path / "r.html")],
        ["runs", "list", str(tmp_path / "runs")],
        ["compare", str(run), str(other), *_eval_flags(cache)],
        ["eval", str(run), *_eval_flags(cache)],
        ["report", "--eval", str(run), "-o", str(tmp_path / "e.html")],
    ):
        _clean(*wae(*args), (0,))
    assert "w2_samples" in json.loads((run / "eval.json").read_text())["metrics"]


# ---------------------------------------------------------------------------------------------
# wae runs list: one bad run never hides the others


def test_runs_list_gives_each_bad_run_folder_its_own_row(trained, tmp_path, monkeypatch):
    from wae_toolkit.engine import checkpoint

    from .test_hostile_runs import HEADER_DAMAGE, _rewrite_document

    root = tmp_path / "runs"
    for name in ("good", "cfg-damaged", "cfg-folder", "cfg-loop", "ckpt-types", "boom"):
        _copy(trained, root / name)
    (root / "cfg-damaged" / "config.json").write_text('{"run": 3}')
    (root / "cfg-folder" / "config.json").unlink()
    (root / "cfg-folder" / "config.json").mkdir()
    (root / "cfg-loop" / "config.json").unlink()
    os.symlink("config.json", root / "cfg-loop" / "config.json")
    (root / "ckpt-types" / "summary.json").unlink()
    [ckpt] = (root / "ckpt-types" / "checkpoints").iterdir()
    _rewrite_document(ckpt, HEADER_DAMAGE["step is text"])
    (root / "boom" / "summary.json").unlink()
    (root / "digits-mmd-imq-20250101-120000").write_text("not a folder")
    os.symlink("mnist-gan-20250101-120000", root / "mnist-gan-20250101-120000")  # a loop
    real = checkpoint.latest_checkpoint

    def latest(folder: Any) -> Any:
        if Path(folder).name == "boom":
            raise RuntimeError("an unforeseen failure")
        return real(folder)

    monkeypatch.setattr(checkpoint, "latest_checkpoint", latest)
    code, output = wae("runs", "list", str(root))
    _clean(code, output, (0,))
    rows = {line.split("│")[1].strip(): line for line in output.splitlines() if "│" in line}
    assert "finished" in rows["good"] and "mmd-imq" in rows["good"]
    assert "unreadable config.json (no run section)" in rows["cfg-damaged"]
    assert "unreadable config.json (not a plain file)" in rows["cfg-folder"]
    assert "unreadable config.json (Too many levels of symbolic links)" in rows["cfg-loop"]
    assert "mmd-imq" in rows["ckpt-types"]
    assert "cannot be read (RuntimeError)" in rows["boom"]
    assert "not a folder" in rows["digits-mmd-imq-20250101-120000"]
    assert "broken symbolic link" in rows["mnist-gan-20250101-120000"]


# ---------------------------------------------------------------------------------------------
# weights that hold NaN or infinite values


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_weights_are_refused_when_a_run_is_loaded(trained, tmp_path, cache, value):
    run = _copy(trained, tmp_path / "run")
    weights = run / "model.safetensors"
    tensors = load_file(str(weights))
    name = sorted(k for k in tensors if k.startswith("model.decoder"))[0]
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[3] = value
    save_file(tensors, str(weights))
    (run / "eval.json").unlink()
    before = _tree(run)
    out = tmp_path / "out"
    out.mkdir()
    commands = [
        ["eval", str(run), *_eval_flags(cache)],
        ["compare", str(run), str(trained), *_eval_flags(cache)],
        ["report", "--eval", str(run), "-o", str(out / "r.html")],
        ["sample", str(run), "-o", str(out / "s.png")],
        ["encode", str(run), "-o", str(out / "z.npy")],
        ["reconstruct", str(run), "-o", str(out / "r.png")],
        ["interpolate", str(run), "-o", str(out / "i.png")],
    ]
    for args in commands:
        line = _refused(*wae(*args), "NaN or infinite", "model.safetensors", name, "diverged")
        assert "earlier checkpoint" in line
    with pytest.raises(UsageError, match="NaN or infinite values") as exc:
        wt.load(run)
    assert_sentence(str(exc.value))
    assert list(out.iterdir()) == [] and _tree(run) == before


# ---------------------------------------------------------------------------------------------
# devices


@pytest.mark.parametrize("device", ["cuda", "cuda:1", "tpu", "", "cpu:x", "meta", "mps:0:0"])
def test_load_refuses_a_device_with_one_sentence(trained, device):
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(UsageError) as exc:
        wt.load(trained, device=device)
    assert_sentence(str(exc.value))
    assert "device" in str(exc.value)


# ---------------------------------------------------------------------------------------------
# fuzz: damaged files and links out of the run folder

#: The entries of the run that the fuzz damages (the checkpoint is found by its folder).
ENTRIES = (
    "config.json",
    "metrics.jsonl",
    "model.safetensors",
    "summary.json",
    "eval.json",
    "checkpoints/*",
    "samples.png",
)


def _tree(root: Path) -> dict[str, Any]:
    """Every entry under ``root``, never following a link: path -> bytes, the link's target, or
    None for a folder."""
    found: dict[str, Any] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            path = Path(folder) / name
            st_ = os.lstat(path)
            key = str(path.relative_to(root))
            if stat.S_ISLNK(st_.st_mode):
                found[key] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st_.st_mode):
                found[key] = None
            else:
                found[key] = path.read_bytes()
    return found


def _entry(run: Path, name: str) -> Path:
    if name == "checkpoints/*":
        return sorted((run / "checkpoints").iterdir())[0]
    return run / name


class Place:
    """One example's folders: ``runs/run`` (the damaged copy), ``outside`` (link targets) and
    ``out`` (the declared outputs)."""

    def __init__(self, trained: Path) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="damaged-"))
        self.root = self.base / "runs"
        self.run = _copy(trained, self.root / "run")
        self.outside = self.base / "outside"
        self.outside.mkdir()
        self.out = self.base / "out"
        self.out.mkdir()

    def close(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


def _read_everything(place: Place, cache: Path) -> None:
    """Run every read command on the damaged run; check what they print, exit with and write."""
    run, out = place.run, place.out
    outside_before = _tree(place.base / "outside")
    run_before = _tree(run)
    commands = [
        ["report", str(run), "-o", str(out / "r.html")],
        ["runs", "list", str(place.root)],
        ["eval", str(run), *_eval_flags(cache)],
        ["sample", str(run), "-n", "4", "-o", str(out / "s.png")],
    ]
    for args in commands:
        _clean(*wae(*args))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wt.load(run)
    except WaeError as exc:
        for line in str(exc).splitlines():
            assert_sentence(line)
    assert _tree(place.base / "outside") == outside_before
    after = _tree(run)
    assert set(after) >= set(run_before)  # nothing removed
    # wae eval may replace eval.json when it is a plain file; never a link, nothing else
    allowed = {"eval.json"} if isinstance(run_before.get("eval.json", b""), bytes) else set()
    changed = {k for k in after if after[k] != run_before.get(k, "absent")}
    assert changed <= allowed, changed
    assert set(os.listdir(place.base)) == {"runs", "outside", "out"}
    assert set(os.listdir(out)) <= {"r.html", "s.png"}


FUZZ = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(
    name=st.sampled_from(ENTRIES),
    how=st.sampled_from(["random", "truncated"]),
    data=st.data(),
)
def test_fuzz_damaged_files(trained, cache, name, how, data):
    place = Place(trained)
    try:
        path = _entry(place.run, name)
        original = path.read_bytes()
        if how == "random":
            content = data.draw(st.binary(max_size=2000), label="bytes")
        else:
            content = original[: data.draw(st.integers(0, len(original) - 1), label="cut")]
        path.write_bytes(content)
        _read_everything(place, cache)
    finally:
        place.close()


@FUZZ
@given(
    name=st.sampled_from((*ENTRIES, "checkpoints")),
    target=st.sampled_from(["copy", "random file", "folder", "dangling", "loop"]),
    data=st.data(),
)
def test_fuzz_links_out_of_the_run_folder(trained, cache, name, target, data):
    place = Place(trained)
    try:
        path = _entry(place.run, name)
        outside = place.outside / "target"
        if target == "copy":  # the run's own file (or folder), moved out and linked to
            shutil.move(path, outside)
        elif target == "random file":
            outside.write_bytes(data.draw(st.binary(max_size=2000), label="bytes"))
        elif target == "folder":
            outside.mkdir()
            (outside / "keep.txt").write_text("the user's")
        elif target == "loop":
            outside = path  # a link to itself
        if path.is_dir():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            path.unlink()
        os.symlink(outside, path, target_is_directory=name == "checkpoints")
        _read_everything(place, cache)
    finally:
        place.close()
