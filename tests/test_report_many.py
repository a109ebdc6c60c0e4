"""``wae report`` on many runs: ``runs/*`` beside an MLflow store, ``runs/`` itself, seeds of
one setting grouped as mean ± std, defaults shown instead of "not set", the two MMD^2 told
apart."""

from __future__ import annotations

import json
import re
import shutil
import statistics
import warnings

import pytest

import wae_toolkit as wt
from wae_toolkit.errors import UsageError
from wae_toolkit.metrics.record import METRICS
from wae_toolkit.report import SkippedPathWarning, build_report
from wae_toolkit.report.markup import esc
from wae_toolkit.report.sections import SUMMARY_METRICS

from .test_cli import error_line, wae

SEEDS = (1, 2, 3)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``runs/`` with three seeds of one setting (two of them copies of the first, with their
    seed and final metrics rewritten), one other run (another penalty, lambda and test
    fraction), the MLflow store's folder and its database file."""
    root = tmp_path_factory.mktemp("many") / "runs"
    tiny = {"data_opts": {"limit": 200}, "epochs": 1, "device": "cpu"}
    wt.fit(out=str(root / "s1"), seed=1, **tiny)
    for seed in SEEDS[1:]:
        run = shutil.copytree(root / "s1", root / f"s{seed}")
        record = json.loads((run / "config.json").read_text())
        record["run"]["seed"] = seed
        (run / "config.json").write_text(json.dumps(record))
        summary = json.loads((run / "summary.json").read_text())
        summary.update(test_cost=summary["test_cost"] * seed, test_mmd=seed / 10)
        (run / "summary.json").write_text(json.dumps(summary))
    wt.fit(
        out=str(root / "other"),
        penalty="swd",
        lam=2.0,
        data_opts={"limit": 200, "test_fraction": 0.25},
        epochs=1,
        device="cpu",
    )
    (root / "mlartifacts" / "1" / "0a1b").mkdir(parents=True)
    (root / "mlflow.db").write_bytes(b"SQLite format 3\0")
    return root


def _section(page: str, section_id: str) -> str:
    start = page.index(f'<section id="{section_id}">')
    end = page.find("<section", start + 1)
    return page[start : end if end > 0 else len(page)]


def _value(v) -> str:
    return f'<data value="{json.dumps(v)}">'


def test_a_glob_over_runs_leaves_out_what_is_not_a_run_with_a_note(runs, tmp_path, capsys):
    paths = sorted(str(p) for p in runs.iterdir())
    target = tmp_path / "all.html"
    code, out, err = wae(capsys, "report", *paths, "-o", str(target))
    assert code == 0, err
    assert "Comparison of 4 runs" in out
    note = (
        f"Left out 2 path(s) that hold no run: '{runs / 'mlartifacts'}' (not a run folder: no "
        f"config.json), '{runs / 'mlflow.db'}' (a file, not a run folder)."
    )
    assert f"Warning: {note}" in " ".join(err.split())
    page = target.read_text(encoding="utf-8")
    assert note.replace("'", "&#x27;") in page


def test_a_folder_of_runs_reports_every_run_in_it(runs, tmp_path, capsys):
    code, out, err = wae(capsys, "report", str(runs), "-o", str(tmp_path / "all.html"))
    assert code == 0 and "Comparison of 4 runs" in out and "Warning" not in err
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is left out: no warning
        page = build_report([runs])
    for name in ("s1", "s2", "s3", "other"):
        assert f"<b>{name}</b>" in page


def test_paths_that_hold_no_run_are_still_refused_alone(runs, tmp_path, capsys):
    out = ["-o", str(tmp_path / "r.html")]
    code, _, err = wae(capsys, "report", str(runs / "mlartifacts"), *out)
    assert code == 2 and "is not a run folder: it has no config.json" in error_line(err)
    code, _, err = wae(capsys, "report", str(runs / "mlartifacts"), str(runs / "mlflow.db"), *out)
    assert code == 2
    assert error_line(err) == (
        "Error: None of the 2 paths holds a run folder written by 'wae run' "
        f"('{runs / 'mlartifacts'}' (not a run folder: no config.json); "
        f"'{runs / 'mlflow.db'}' (a file, not a run folder))."
    )
    code, _, err = wae(capsys, "report", str(runs / "s1"), str(runs / "nope"), *out)
    assert code == 2 and "does not exist" in error_line(err)
    with pytest.warns(SkippedPathWarning, match="mlartifacts"):
        build_report([runs / "s1", runs / "mlartifacts"])
    assert not (tmp_path / "r.html").exists()


def test_seeds_of_one_setting_are_one_column_with_mean_and_std(runs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedPathWarning)
        page = build_report(sorted(runs.iterdir()))
    metrics = _section(page, "metrics")
    head = re.search(r"<thead>(.*?)</thead>", metrics).group(1)
    assert head.count("<th") == 3  # metric, the three seeds, the other run
    assert "3 seeds" in head and "s1, s2, s3" in head
    summaries = [json.loads((runs / f"s{s}" / "summary.json").read_text()) for s in SEEDS]
    other = json.loads((runs / "other" / "summary.json").read_text())
    for key in ("test_cost", "test_mmd"):
        values = [s[key] for s in summaries]
        mean = statistics.fmean(values)
        std = statistics.stdev(values)
        row = next(r for r in re.findall(r"<tr>(.*?)</tr>", metrics) if _value(other[key]) in r)
        assert _value(mean) in row, (key, row)
        shown = float(re.search(r"&plusmn; <data value=\"([^\"]+)\">", row).group(1))
        assert shown == pytest.approx(std, rel=1e-12), key

    diff = _section(page, "configuration").split("<details>")[0]
    assert "not set" not in page
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r'<tr><td class="key">([^<]+)</td>(.*?)</tr>', diff)
    }
    assert set(rows) >= {"penalty", "lam", "seed", "data_opts.test_fraction"}
    assert "<code>1</code>, <code>2</code>, <code>3</code>" in rows["seed"]
    # a data option left at its default shows the default's value
    assert (
        '<code>0.2</code> <span class="muted">(default)</span>' in rows["data_opts.test_fraction"]
    )
    # the options of one run's penalty only: none to show for the other penalty
    assert rows["penalty_opts.scales"].startswith(
        '<td><span class="muted" title="penalty swd has no scales">&ndash; (penalty swd has no '
        "scales)</span></td><td><code>[0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0]</code></td>"
    )
    assert "&ndash; (penalty mmd-imq has no projections)" in rows["penalty_opts.projections"]
    assert "(penalty swd has no bandwidth)" in rows["penalty_opts.bandwidth"]  # null vs none
    assert 'class="config diff"' in diff and ".diff td code{overflow-wrap:normal}" in page


def test_the_two_mmd_are_labelled_apart(runs):
    trained, offline = SUMMARY_METRICS["test_mmd"][0], METRICS["test_mmd"][0]
    assert trained == "MMD^2(codes, prior), training's draws"
    assert offline == "MMD^2(codes, prior), eval's draws"
    page = build_report([runs / "s1"])
    assert (
        f"<td>{esc(trained)}</td>" in page and "the same estimator on draws of its own seed" in page
    )
    page = build_report([runs / "s1", runs / "other"])
    assert "The two MMD^2 rows are the same estimator (IMQ kernel, biased V-statistic" in page


def test_find_runs_refuses_nothing_given():
    from wae_toolkit.report.run_paths import find_runs

    with pytest.raises(UsageError, match="Give at least one run folder"):
        find_runs([])
