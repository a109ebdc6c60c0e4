"""The ``wae`` command line: plugins commands, bad input, run folders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wae_toolkit.cli.app import main

from .conftest import FAKE_DIST

FAST = ["--epochs", "1", "--data-opt", "limit=200", "--eval-every", "1", "--device", "cpu"]


def wae(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``wae ARGS`` in this process; return (exit code, stdout, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_line(stderr: str) -> str:
    """The single error line; fails if there is not exactly one."""
    lines = [ln for ln in stderr.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return lines[0]


def test_plugins_list_shows_the_eleven_builtins(capsys):
    code, out, _ = wae(capsys, "plugins", "list")
    assert code == 0
    for name in (
        "l2",
        "l1",
        "bce",
        "mmd-imq",
        "mmd-rbf",
        "gan-js",
        "sinkhorn",
        "gaussian",
        "gmm",
        "mlp",
        "conv",
    ):
        assert name in out
    assert "wae-toolkit" in out


def test_plugins_list_kind_and_check(capsys):
    code, out, _ = wae(capsys, "plugins", "list", "--kind", "priors", "--check")
    assert code == 0 and "gmm" in out and "mmd-imq" not in out and "ok" in out


def test_plugins_show(capsys):
    code, out, _ = wae(capsys, "plugins", "show", "mmd-imq")
    assert code == 0
    assert "estimator" in out and "scales" in out and "bandwidth" in out and "'paper'" in out
    code, _, err = wae(capsys, "plugins", "show", "mmd-imk")
    assert code == 2 and "Did you mean 'mmd-imq'" in error_line(err)


def test_version(capsys):
    code, out, _ = wae(capsys, "--version")
    assert code == 0 and out.startswith("wae-toolkit ")


def test_broken_third_party_plugin_beside_good_ones(capsys, fake_dist, tmp_path):
    code, out, _ = wae(capsys, "plugins", "list")
    assert code == 0 and "mean-match" in out and "broken-penalty" in out and FAKE_DIST in out
    code, out, _ = wae(capsys, "plugins", "list", "--kind", "penalty", "--check")
    assert code == 1  # a plugin failed its check; the table still lists every plugin
    assert "a_module_that_does_not_exist" in out and "ok" in out
    code, _, err = wae(
        capsys, "run", "--penalty", "broken-penalty", "--out", str(tmp_path / "r"), *FAST
    )
    line = error_line(err)
    assert code == 1 and "broken-penalty" in line and FAKE_DIST in line
    assert not (tmp_path / "r").exists()
    code, _, err = wae(
        capsys, "run", "--penalty", "mean-match", "--out", str(tmp_path / "ok"), *FAST
    )
    assert code == 0, err
    config = json.loads((tmp_path / "ok" / "config.json").read_text())
    assert config["plugins"]["penalty"]["distribution"] == FAKE_DIST


@pytest.mark.parametrize(
    "args, words",
    [
        (
            ["--penalty", "mmd-imk"],
            ["Unknown penalty 'mmd-imk'", "Did you mean 'mmd-imq'", "Available"],
        ),
        (["--cost", "l3"], ["Unknown cost 'l3'", "Available"]),
        (["--penalty-opt", "bandwith=2"], ["no option 'bandwith'", "Did you mean 'bandwidth'"]),
        (["--penalty-opt", "bandwidth=wide"], ["'wide'", "expected a number"]),
        (["--penalty-opt", "bandwidth"], ["NAME=VALUE"]),
        (["--latent-dim", "0"], ["latent_dim must be an integer >= 1"]),
        (["--prior-opt", "dim=3"], ["dimension (3) disagrees with the latent dimension (8)"]),
        (["--batch-size", "1"], ["batch_size must be >= 2"]),
        (["--data", "no/such/file.npy"], ["does not exist", "digits"]),
        (["--network", "conv", "--data", "moons"], ["conv network needs images", "mlp"]),
        (["--cost", "bce", "--data", "moons"], ["needs data in [0.0, 1.0]"]),
        (["--lr-schedule", "30-0.5"], ["EPOCH:FACTOR"]),
        (["--device", "tpu"], ["device must be"]),
        (["--encoder", "random"], ["encoder must be one of"]),
    ],
)
def test_bad_input_gets_one_clear_sentence(capsys, tmp_path, args, words):
    out_dir = tmp_path / "run"
    code, _, err = wae(capsys, "run", "--out", str(out_dir), *FAST, *args)
    line = error_line(err)
    assert code == 2, err
    for w in words:
        assert w in line, line
    assert not out_dir.exists(), "a rejected run must not write anything"


def test_bad_data_files(capsys, tmp_path):
    text = tmp_path / "notes.npy"
    text.write_text("these are not numbers")
    code, _, err = wae(capsys, "run", "--data", str(text), "--out", str(tmp_path / "a"), *FAST)
    assert code == 2 and "notes.npy" in error_line(err)
    vec = tmp_path / "vectors.npy"
    np.save(vec, np.random.rand(50, 5).astype(np.float32))
    code, _, err = wae(
        capsys, "run", "--data", str(vec), "--network", "conv", "--out", str(tmp_path / "b"), *FAST
    )
    assert code == 2 and "(C, H, W)" in error_line(err)


def test_existing_run_is_refused_then_replaced_on_request(capsys, tmp_path):
    out_dir = tmp_path / "run"
    code, _, err = wae(capsys, "run", "--out", str(out_dir), *FAST, "--seed", "1")
    assert code == 0, err
    (out_dir / "my-notes.txt").write_text("keep me")
    before = (out_dir / "model.safetensors").read_bytes()
    code, _, err = wae(capsys, "run", "--out", str(out_dir), *FAST, "--seed", "2")
    assert code == 2 and "already holds a run" in error_line(err) and "--overwrite" in err
    assert (out_dir / "model.safetensors").read_bytes() == before
    code, out, err = wae(capsys, "run", "--out", str(out_dir), *FAST, "--seed", "2", "--overwrite")
    assert code == 0, err
    assert "replaced" in out
    assert (out_dir / "model.safetensors").read_bytes() != before
    assert (out_dir / "my-notes.txt").read_text() == "keep me"  # not a run file: untouched
    config = json.loads((out_dir / "config.json").read_text())
    assert config["run"]["seed"] == 2


def test_non_empty_folder_without_a_run_is_refused(capsys, tmp_path):
    (tmp_path / "stuff.txt").write_text("x")
    code, _, err = wae(capsys, "run", "--out", str(tmp_path), *FAST)
    assert code == 2 and "not empty" in error_line(err)


def test_verbose_shows_the_traceback(capsys, tmp_path):
    code, _, err = wae(
        capsys, "run", "--penalty", "nope", "--verbose", "--out", str(tmp_path / "r"), *FAST
    )
    assert code == 2 and "Traceback" in err


def test_help_and_list_do_not_import_torch():
    code = (
        "import sys; from wae_toolkit.cli.app import main\n"
        "try:\n    main(['plugins', 'list'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_console_script_is_installed():
    exe = Path(sys.executable).parent / "wae"
    res = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "run" in res.stdout and "plugins" in res.stdout


def test_the_example_distribution_trains_through_the_cli(capsys, tmp_path, monkeypatch):
    from wae_toolkit.plugins.registry import AUTOLOAD_ENV, get_plugin_info

    monkeypatch.setenv(AUTOLOAD_ENV, "0")  # --builtins-only sets it to 1; restored afterwards

    info = get_plugin_info("penalty", "energy")  # installed by `make install` from plugins/
    assert info.distribution == "wae-toolkit-energy" and not info.builtin
    out_dir = tmp_path / "energy"
    code, _, err = wae(
        capsys,
        "run",
        "--penalty",
        "energy",
        "--penalty-opt",
        "beta=1.5",
        "--out",
        str(out_dir),
        *FAST,
    )
    assert code == 0, err
    record = json.loads((out_dir / "config.json").read_text())
    assert record["plugins"]["penalty"]["distribution"] == "wae-toolkit-energy"
    assert record["plugins"]["penalty"]["options"]["beta"] == 1.5
    code, out, _ = wae(capsys, "--builtins-only", "plugins", "list", "--kind", "penalty")
    assert code == 0 and "energy" not in out and "mmd-imq" in out
