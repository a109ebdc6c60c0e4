"""``wae run --config FILE`` and ``wae config show``: files, precedence, repeating a run."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from safetensors.torch import load_file

from .test_cli import error_line, wae

EXP = """
preset = "digits-gan"
lambda = 2.0
epochs = 1

[penalty_opts]
hidden = 32

[data_opts]
limit = 300
"""


def test_a_toml_file_sets_the_run_and_flags_override_it(tmp_path, capsys):
    (tmp_path / "exp.toml").write_text(EXP)
    out = tmp_path / "run"
    code, _, err = wae(
        capsys,
        "run",
        "--config",
        str(tmp_path / "exp.toml"),
        "--seed",
        "4",
        "--out",
        str(out),
        "--device",
        "cpu",
    )
    assert code == 0, err
    record = json.loads((out / "config.json").read_text())
    run, sources = record["run"], record["sources"]
    assert run["penalty"] == "gan-js" and run["lam"] == 2.0 and run["seed"] == 4
    assert run["penalty_opts"]["hidden"] == 32 and run["penalty_opts"]["layers"] == 4
    file_label = f"file {tmp_path / 'exp.toml'}"
    assert sources["lam"] == sources["epochs"] == sources["penalty_opts.hidden"] == file_label
    assert sources["penalty_opts.layers"] == "preset digits-gan"
    assert sources["seed"] == "command line"


def test_a_run_folders_config_repeats_the_run(tmp_path, capsys):
    first = tmp_path / "first"
    args = ["--epochs", "2", "--seed", "3", "--data-opt", "limit=300", "--device", "cpu"]
    assert wae(capsys, "run", *args, "--penalty-opt", "scales=0.5,2", "--out", str(first))[0] == 0
    again = tmp_path / "again"
    code, _, err = wae(capsys, "run", "--config", str(first / "config.json"), "--out", str(again))
    assert code == 0, err
    a, b = load_file(str(first / "model.safetensors")), load_file(str(again / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((again / "config.json").read_text())["run"]["penalty_opts"]["scales"] == [
        0.5,
        2.0,
    ]


def test_config_show_says_where_each_value_comes_from(tmp_path, capsys):
    (tmp_path / "exp.toml").write_text(EXP)
    code, stdout, err = wae(
        capsys, "config", "show", "--config", str(tmp_path / "exp.toml"), "--set", "epochs=7"
    )
    assert code == 0, err
    rows = {line.split("│")[1].strip(): line for line in stdout.splitlines() if "│" in line}
    assert "7" in rows["epochs"] and "command line" in rows["epochs"]
    assert "2.0" in rows["lam"] and "file" in rows["lam"]
    assert "preset digits-gan" in rows["penalty_opts.layers"]
    assert "default" in rows["seed"]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.toml", "epochs = \n", "is not valid TOML"),
        ("typo.toml", "epoch = 3\n", "unknown setting 'epoch'. Did you mean 'epochs'?"),
        ("list.json", "[1, 2]", "must hold a table of run settings"),
        ("both.toml", "lam = 1.0\nlambda = 2.0\n", "sets both lambda and lam"),
        ("range.toml", "epochs = -3\n", "epochs must be an integer >= 1"),
        ("exp.ini", "epochs = 3\n", "expects a .toml, .json or .yaml file"),
    ],
)
def test_bad_files_are_refused_in_one_sentence_before_anything_is_written(
    tmp_path, capsys, name, text, message
):
    (tmp_path / name).write_text(text)
    out = tmp_path / "run"
    code, _, err = wae(capsys, "run", "--config", str(tmp_path / name), "--out", str(out))
    assert code == 2
    assert message in error_line(err)
    assert not out.exists()


def test_missing_file(tmp_path, capsys):
    code, _, err = wae(capsys, "config", "show", "--config", str(tmp_path / "nope.toml"))
    assert code == 2 and "does not exist" in error_line(err)


def test_yaml_files(tmp_path, capsys):
    (tmp_path / "exp.yaml").write_text("epochs: 2\npenalty_opts:\n  estimator: unbiased\n")
    code, stdout, err = wae(capsys, "config", "show", "--config", str(tmp_path / "exp.yaml"))
    if importlib.util.find_spec("yaml") is None:
        assert code == 2 and "needs PyYAML" in error_line(err)
    else:
        assert code == 0 and "unbiased" in stdout


def test_set_names_only_run_settings(capsys):
    code, _, err = wae(capsys, "config", "show", "--set", "epoch=3")
    assert code == 2 and "Did you mean 'epochs'?" in error_line(err)
    code, _, err = wae(capsys, "config", "show", "--set", "epochs=three")
    assert code == 2 and "expected an integer" in error_line(err)


def test_yaml_anchors_and_merge_keys_within_the_limits(tmp_path, capsys):
    """Ordinary aliases and merge keys are fine: only their expanded size counts."""
    (tmp_path / "exp.yaml").write_text(
        "penalty: gan-js\n"
        "penalty_opts:\n"
        "  <<: &critic {hidden: 32, layers: 2}\n"
        "  lr: 0.0005\n"
        "lr_schedule: [&half [10, 0.5], [20, 0.1]]\n"
    )
    code, stdout, err = wae(capsys, "config", "show", "--config", str(tmp_path / "exp.yaml"))
    if importlib.util.find_spec("yaml") is None:
        return
    assert code == 0, err
    rows = {line.split("│")[1].strip(): line for line in stdout.splitlines() if "│" in line}
    assert "32" in rows["penalty_opts.hidden"] and "0.0005" in rows["penalty_opts.lr"]


def test_dots_brackets_and_quotes_inside_toml_strings_are_not_nesting(tmp_path):
    from wae_toolkit.config.configfile import read_config_file

    dots = ".".join("x" * 40)
    opening = "[" * 40 + "{" * 40
    text = (
        f"# {opening} {dots}\n"
        f'experiment = "{dots} {opening} \\" {opening}"\n'
        f"tracking_uri = '''\n{opening}\n{dots}\n'''\n"
        f"data = '{opening}.{dots}'\n"
        "epochs = 2 # [[[[\n"
        "[data_opts]\n"
        f'"a.b" = """\n{dots} \\""" {opening}"""\n'
    )
    (tmp_path / "exp.toml").write_text(text)
    data = read_config_file(tmp_path / "exp.toml")
    assert data["experiment"].startswith(dots) and data["epochs"] == 2
    assert data["data_opts"]["a.b"].endswith(opening)


def test_limits_are_generous_for_real_files(tmp_path):
    """A file just under the size limit, 32 levels of nesting and a per-epoch schedule of
    10,000 epochs are read."""
    from wae_toolkit.config.configfile import MAX_BYTES, MAX_DEPTH, read_config_file

    pad = MAX_BYTES - 100
    (tmp_path / "big.toml").write_text("# " + "x" * pad + "\nepochs = 2\n")
    assert read_config_file(tmp_path / "big.toml") == {"epochs": 2}
    deep = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    (tmp_path / "deep.json").write_text('{"track": ' + deep + "}")
    assert read_config_file(tmp_path / "deep.json")["track"] == json.loads(deep)
    schedule = [[e, 0.99**e] for e in range(10_000)]
    (tmp_path / "schedule.json").write_text(json.dumps({"lr_schedule": schedule}))
    assert read_config_file(tmp_path / "schedule.json")["lr_schedule"] == schedule
