"""``wae report``: the HTML page of one run and the comparison of several, checked against the
run folders' own files, and rendered by headless Chromium when it is installed."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

import wae_toolkit as wt
from wae_toolkit.api import train
from wae_toolkit.config.settings import RunConfig
from wae_toolkit.engine.faults import TrainingInterrupted
from wae_toolkit.report import GENERATOR, build_report, write_report

from .callbacks import StopAt
from .test_cli import error_line, wae

FIGURES = ("samples.png", "reconstructions.png", "interpolations.png", "data.png", "latent.png")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two digits runs with different settings, a ring run (vector data) and a stopped run."""
    root = tmp_path_factory.mktemp("report")
    common = {"data_opts": {"limit": 300}, "device": "cpu", "epochs": 2}
    wt.fit(out=str(root / "a"), seed=1, **common)
    wt.fit(out=str(root / "b"), seed=2, lam=2.0, latent_dim=4, **common)
    wt.fit(data="ring", data_opts={"n": 200}, epochs=2, out=str(root / "ring"), device="cpu")
    config = RunConfig(
        data="digits",
        data_opts={"limit": 300},
        epochs=3,
        device="cpu",
        log_every=1,
        eval_every=1,
        checkpoint_every=1000,
        out=str(root / "stopped"),
    )
    with pytest.raises(TrainingInterrupted):
        train(config, callback=StopAt(4))
    return {name: root / name for name in ("a", "b", "ring", "stopped")}


def _images(page: str) -> dict[str, list[bytes]]:
    """The embedded images of the page by the file they show, decoded."""
    found: dict[str, list[bytes]] = {}
    for tag in re.findall(r"<img\b[^>]*>", page):
        src = re.search(r'src="data:image/[a-z+]+;base64,([A-Za-z0-9+/=]+)"', tag)
        name = re.search(r'data-file="([^"]+)"', tag)
        assert src and name, tag[:200]
        found.setdefault(name.group(1), []).append(base64.b64decode(src.group(1)))
    return found


def _value(v) -> str:
    """How the page holds an exact number: ``<data value="...">``."""
    return f'<data value="{json.dumps(v)}">'


def _section(page: str, section_id: str) -> str:
    start = page.index(f'<section id="{section_id}">')
    end = page.find("<section", start + 1)
    return page[start : end if end > 0 else len(page)]


class _Tags(HTMLParser):
    """The tags of a page and their attributes, as a browser's parser sees them."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _check_self_contained(page: str) -> None:
    """No reference to anything outside the page: every src/href is a data: URI or an anchor,
    and neither the page nor its embedded SVG loads anything."""
    tags = _Tags(page).tags
    refs = [a[k] or "" for _, a in tags for k in ("src", "href", "srcset", "action") if k in a]
    assert refs
    assert all(r.startswith(("data:", "#")) for r in refs), [
        r[:60] for r in refs if not r.startswith(("data:", "#"))
    ]
    names = {t for t, _ in tags}
    assert not names & {"script", "link", "iframe", "object", "embed", "base", "form"}, names
    assert not [a for _, a in tags if any(k.startswith("on") for k in a)]  # no event handlers
    low = page.lower()
    for bad in ("url(", "@import"):
        assert bad not in low, bad
    for svg in _images(page).get("metrics.jsonl", []):
        text = svg.decode("utf-8").lower()
        assert "<svg" in text and "<script" not in text
        assert all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', text))


def test_one_run_page_holds_config_metrics_curves_and_every_figure(runs, capsys):
    run = runs["a"]
    code, out, err = wae(capsys, "report", str(run))
    assert code == 0, err
    path = run / "report.html"
    assert f"-> {path}" in out.replace("\n", "")
    page = path.read_text(encoding="utf-8")
    assert f'<meta name="generator" content="{GENERATOR}">' in page
    _check_self_contained(page)
    assert "finished" in page and GENERATOR in page  # "wae-toolkit <version>"

    config = json.loads((run / "config.json").read_text())
    cfg = _section(page, "configuration")
    for key in ("penalty", "lam", "latent_dim", "batch_size", "seed"):
        value = config["run"][key]
        shown = value if isinstance(value, str) else json.dumps(value)
        assert f"<code>{shown}</code>" in cfg, key
    for opt, value in config["run"]["penalty_opts"].items():
        assert f"penalty_opts.</span>{opt}" in cfg
        assert f"<code>{value if isinstance(value, str) else json.dumps(value)}</code>" in cfg
    assert "command line" in cfg and f"({GENERATOR})" in cfg  # sources and providers

    summary = json.loads((run / "summary.json").read_text())
    final = _section(page, "evaluation")
    for key in ("test_cost", "test_mmd", "prior_mmd"):
        assert _value(summary[key]) in final, key
    assert _value(summary["steps"]) not in final  # the header holds the steps
    assert str(summary["steps"]) in page.split("<nav>")[0]

    images = _images(page)
    present = [n for n in FIGURES if (run / n).is_file()]
    assert present == ["samples.png", "reconstructions.png", "interpolations.png", "latent.png"]
    for name in present:
        assert images[name] == [(run / name).read_bytes()], name
    (svg,) = images["metrics.jsonl"]
    assert svg.startswith(b"<?xml") and b"training losses per term" in svg

    epochs = _section(page, "epochs")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for rec in (r for r in records if r["kind"] == "epoch"):
        assert _value(rec["cost"]) in epochs
    assert "Not drawn" not in page  # image data: every figure is drawn


def test_comparison_shows_differences_metrics_curves_and_figures(runs, tmp_path, capsys):
    order = [runs["a"], runs["b"], runs["ring"]]
    target = tmp_path / "cmp.html"
    code, out, err = wae(capsys, "report", *map(str, order), "--out", str(target))
    assert code == 0, err
    assert "Comparison of 3 runs" in out
    page = target.read_text(encoding="utf-8")
    _check_self_contained(page)

    diff = _section(page, "configuration")
    changed, same = diff.split("<details>")
    for key in ("lam", "latent_dim", "seed", "data", "data_opts.limit", "data_opts.n"):
        assert f'<td class="key">{key}</td>' in changed, key
    for key in ("batch_size", "epochs", "lr", "penalty"):
        assert f'<td class="key">{key}</td>' not in changed and f">{key}</td>" in same, key
    assert "<code>2.0</code>" in changed and "<code>5.0</code>" in changed  # lam

    metrics = _section(page, "metrics")
    summaries = [json.loads((r / "summary.json").read_text()) for r in order]
    for s in summaries:
        assert _value(s["test_cost"]) in metrics and _value(s["test_mmd"]) in metrics
    mmd = "MMD^2(codes, prior), training&#x27;s draws"
    rows = {
        label: row
        for row in re.findall(r"<tr>(.*?)</tr>", metrics)
        for label in ("held-out cost", mmd)
        if row.startswith(f"<td>{label}</td>")
    }
    for label, key in (("held-out cost", "test_cost"), (mmd, "test_mmd")):
        best = min(range(3), key=lambda i: summaries[i][key])
        cells = re.findall(r"<td class=\"([^\"]*)\">(.*?)</td>", rows[label])
        assert [c for c, _ in cells].count("num best") == 1
        assert _value(summaries[best][key]) in next(t for c, t in cells if c == "num best")

    images = _images(page)
    for run in order:
        for name in FIGURES:
            if (run / name).is_file():
                assert (run / name).read_bytes() in images[name], (run.name, name)
    assert len(images["samples.png"]) == 2 and len(images["data.png"]) == 1
    assert "Not drawn: the data are vectors of shape (2,), not images." in page
    (svg,) = images["metrics.jsonl"]
    for run in order:  # one legend entry per run
        assert f">{run.name}</text>".encode() in svg


def test_a_stopped_run_reports_what_it_has(runs, tmp_path, capsys):
    run = runs["stopped"]
    assert not (run / "summary.json").exists()
    page = build_report([run])
    _check_self_contained(page)
    assert "stopped at step 4" in page and "of 9" in page
    last = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    last_eval = [r for r in last if r["kind"] == "eval"][-1]
    final = _section(page, "evaluation")
    assert "the run did not finish" in final
    assert _value(last_eval["test_cost"]) in final and _value(last_eval["test_mmd"]) in final
    assert set(_images(page)) == {"metrics.jsonl"}  # the curves, and no figure
    assert "No figures: the run did not finish" in page
    assert "they need the trained weights" in final  # no `wae eval` advice for it

    target = tmp_path / "both.html"
    assert wae(capsys, "report", str(runs["a"]), str(run), "-o", str(target))[0] == 0
    both = target.read_text(encoding="utf-8")
    metrics = _section(both, "metrics")
    assert _value(last_eval["test_cost"]) in metrics and "<sup" in metrics
    assert both.count("Not written: the run did not finish") == 4  # its cell of each figure


def test_strings_from_a_run_are_escaped(runs, tmp_path):
    run = tmp_path / 'x<i>"y'
    shutil.copytree(runs["a"], run)
    record = json.loads((run / "config.json").read_text())
    record["run"]["penalty_opts"]["estimator"] = "<script>alert(1)</script>"
    record["sources"]["penalty_opts.estimator"] = "file <b>evil</b>.toml"
    record["data"]["description"] = "<img src=x onerror=alert(2)>"
    (run / "config.json").write_text(json.dumps(record))
    for page in (build_report([run]), build_report([runs["a"], run])):
        _check_self_contained(page)
        assert "<script" not in page and "<img src=x" not in page and "<i>" not in page
        assert {"script", "i"}.isdisjoint(t for t, _ in _Tags(page).tags)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "x&lt;i&gt;&quot;y" in page
    assert "file &lt;b&gt;evil&lt;/b&gt;.toml" in build_report([run])


def test_bad_run_folders_get_one_sentence(runs, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    (tmp_path / "file.txt").write_text("x")
    cases = [
        ([str(tmp_path / "nope")], "does not exist"),
        ([str(tmp_path / "empty")], "is not a run folder: it has no config.json"),
        ([str(tmp_path / "broken")], "is not a valid run configuration"),
        ([str(tmp_path / "file.txt")], "is a file; give a run folder"),
        ([str(runs["a"]), str(runs["a"]) + "/"], "is given twice"),
    ]
    for args, message in cases:
        code, _, err = wae(capsys, "report", *args, "-o", str(tmp_path / "r.html"))
        assert code == 2 and message in error_line(err), (args, err)
    assert not (tmp_path / "r.html").exists()


def test_overwrite_rules(runs, tmp_path, capsys, monkeypatch):
    run = runs["b"]
    default = run / "report.html"
    default.unlink(missing_ok=True)
    assert wae(capsys, "report", str(run))[0] == 0
    default.write_text(default.read_text() + "<!-- older -->")
    assert wae(capsys, "report", str(run))[0] == 0  # our own report: replaced
    assert "<!-- older -->" not in default.read_text()

    mine = tmp_path / "mine.html"
    mine.write_text("<html>precious</html>")
    code, _, err = wae(capsys, "report", str(run), "-o", str(mine))
    assert code == 2 and "exists and is not a report written by wae report" in error_line(err)
    assert mine.read_text() == "<html>precious</html>"
    assert wae(capsys, "report", str(run), "-o", str(mine), "--overwrite")[0] == 0
    assert GENERATOR in mine.read_text()

    for target, message in [
        (tmp_path / "r.txt", "must end in .html or .htm"),
        (tmp_path / "no" / "r.html", "does not exist"),
    ]:
        code, _, err = wae(capsys, "report", str(run), "-o", str(target))
        assert code == 2 and message in error_line(err)
    (tmp_path / "d.html").mkdir()
    code, _, err = wae(capsys, "report", str(run), "-o", str(tmp_path / "d.html"))
    assert code == 2 and "is a folder" in error_line(err)

    monkeypatch.chdir(tmp_path)  # several runs: ./wae-report.html by default
    assert wae(capsys, "report", str(runs["a"]), str(run))[0] == 0
    assert GENERATOR in (tmp_path / "wae-report.html").read_text()
    assert not list(tmp_path.glob(".*.tmp"))


def test_long_and_damaged_metrics_stay_readable(runs, tmp_path):
    run = tmp_path / "long"
    shutil.copytree(runs["a"], run)
    with open(run / "metrics.jsonl", "a") as fh:
        for epoch in range(2, 120):
            rec = {"kind": "epoch", "epoch": epoch, "step": 3 * epoch + 3, "loss": 1.0 + epoch}
            fh.write(json.dumps({**rec, "cost": 0.5, "penalty": 0.01, "lr": 1e-4}) + "\n")
        fh.write('{"kind": "step", "epo')  # a line cut short
    (run / "summary.json").write_text("{")
    page = build_report([run])
    assert "summary.json could not be read (JSONDecodeError); it is left out" in page
    assert "stopped at step 6" in page  # no summary: the newest checkpoint says where it is
    epochs = _section(page, "epochs")
    assert "40 of the 121 rows, evenly spaced" in epochs
    shown, every = epochs.split("<details>")
    assert shown.count("<tr>") == 41 and every.count("<tr>") == 122  # with the header rows
    assert _value(1.0 + 119) in shown and _value(1.0 + 60) in every
    assert "1 line(s) of metrics.jsonl are not JSON records and were skipped" in page


def test_eval_adds_the_offline_metrics_and_stale_records_are_left_out(runs, tmp_path, capsys):
    run = tmp_path / "ring"
    shutil.copytree(runs["ring"], run)
    assert "No offline metrics" in build_report([run])
    assert wae(capsys, "report", str(run), "--eval")[0] == 0
    record = json.loads((run / "eval.json").read_text())
    page = (run / "report.html").read_text()
    assert "Offline metrics (eval.json" in page
    assert _value(record["metrics"]["w2_samples"]["value"]) in page
    record["weights_sha256"] = "0" * 64
    (run / "eval.json").write_text(json.dumps(record))
    page = build_report([run])
    assert "computed on other weights" in page and "Offline metrics (eval.json" not in page


def test_the_library_prints_nothing_and_the_cli_imports_no_plotting(runs, tmp_path, capsys):
    path = write_report([runs["a"], runs["ring"]], tmp_path / "r.html")
    assert path == tmp_path / "r.html" and path.is_file()
    assert capsys.readouterr() == ("", "")
    code = (
        "import sys, wae_toolkit.cli.app; print(sorted({'matplotlib', 'torch'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="needs Chromium (Debian package 'chromium')")
def test_the_page_renders_in_headless_chromium(runs, tmp_path):
    browser = _chromium()
    assert browser is not None
    page_path = write_report([runs["a"], runs["ring"], runs["stopped"]], tmp_path / "r.html")
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    env = {**os.environ, "HOME": str(tmp_path)}  # Chromium's profile goes here

    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1280,3000", page_path.as_uri()],
        capture_output=True,
        timeout=180,
        env=env,
    )
    assert shot.is_file(), done.stderr.decode(errors="replace")[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape == (3000, 1280, 3)
    ink = (pixels < 200).any(axis=2)
    assert 0.03 < ink.mean() < 0.8  # text, tables and figures on a white page
    assert ink[:200].any() and ink[1500:].any()  # the header, and content far down the page
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 100  # plots, not only text

    # Each image decoded: a copy of the page with a script (the page itself allows none) that
    # writes, once the page has loaded, how many images have a size.
    html = page_path.read_text(encoding="utf-8")
    n_images = len(re.findall(r"<img\b", html))
    probe = tmp_path / "probe.html"
    script = (
        "<script>addEventListener('load', () => { const i = [...document.images]; "
        "document.body.dataset.decoded = i.filter(x => x.complete && x.naturalWidth > 0)"
        ".length + '/' + i.length; });</script>"
    )
    probe.write_text(
        re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html).replace(
            "</body>", script + "</body>"
        ),
        encoding="utf-8",
    )
    done = subprocess.run(
        [*flags, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
        capture_output=True,
        timeout=180,
        env=env,
    )
    dom = done.stdout.decode("utf-8", errors="replace")
    assert f'data-decoded="{n_images}/{n_images}"' in dom, dom[-500:] + done.stderr.decode()[-500:]
