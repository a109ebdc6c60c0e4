"""`wae plugins new`: the skeleton installs with pip, is listed, and its test passes unchanged."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from wae_toolkit.errors import UsageError
from wae_toolkit.plugins.scaffold import new_plugin

from .test_cli import error_line, wae


@pytest.mark.parametrize("kind", ["penalty", "cost", "prior", "network", "data"])
def test_skeleton_installs_is_listed_and_its_test_passes(tmp_path, capsys, kind):
    name = f"my-{kind}"
    target = tmp_path / "pkg"
    code, out, err = wae(capsys, "plugins", "new", kind, name, "--dir", str(target))
    assert code == 0, err
    assert "pip install -e" in out
    site = tmp_path / "site"
    # A real build and install through pip and setuptools (offline: no build isolation).
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(target),
        ],
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    listed = subprocess.run(
        [sys.executable, "-m", "wae_toolkit", "plugins", "list", "--kind", kind, "--check"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert name in listed.stdout and f"wae-{name}" in listed.stdout
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(target / "tests")],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "2 passed" in tests.stdout


def test_new_refuses_bad_names_builtins_and_used_folders(tmp_path, capsys):
    code, _, err = wae(capsys, "plugins", "new", "penalty", "mmd-imq", "--dir", str(tmp_path / "a"))
    assert code == 2 and "built-ins cannot be shadowed" in error_line(err)
    code, _, err = wae(capsys, "plugins", "new", "penalty", "My_Pen", "--dir", str(tmp_path / "b"))
    assert code == 2 and "kebab-case" in error_line(err)
    code, _, err = wae(capsys, "plugins", "new", "data", "digits", "--dir", str(tmp_path / "e"))
    assert code == 2 and "built-ins cannot be shadowed" in error_line(err)
    code, _, err = wae(capsys, "plugins", "new", "critic", "x", "--dir", str(tmp_path / "c"))
    assert code == 2 and "Unknown plugin kind" in error_line(err)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        new_plugin("penalty", "fresh", tmp_path / "d")
    assert (tmp_path / "d" / "keep.txt").read_text() == "mine"
