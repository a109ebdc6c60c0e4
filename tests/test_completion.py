"""Shell completion of plugin names: the installed names (third-party ones too), read from the
installed metadata without importing torch or any plugin."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Runs the console script's entry point with Click's completion protocol, then reports whether
# torch or a plugin module was imported while completing.
_PROBE = """
import atexit, sys
def _report():
    bad = [m for m in ("torch", "wae_toolkit.builtins.mmd", "wae_energy") if m in sys.modules]
    sys.stderr.write("IMPORTED:" + ",".join(bad) + "\\n")
atexit.register(_report)
from wae_toolkit.cli.app import main
main([])
"""


def _complete(words: str) -> tuple[list[str], str]:
    env = {
        **os.environ,
        "_WAE_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
    }
    env.pop("WAE_DISABLE_PLUGIN_AUTOLOAD", None)
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    imported = [line for line in proc.stderr.splitlines() if line.startswith("IMPORTED:")]
    assert imported, proc.stderr
    return proc.stdout.split(), imported[-1].removeprefix("IMPORTED:")


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("wae run --penalty mmd", {"mmd-imq", "mmd-rbf"}),
        ("wae run --penalty en", {"energy"}),  # the example third-party plugin
        ("wae run --prior g", {"gaussian", "gmm"}),
        ("wae run --cost ", {"l1", "l2", "bce"}),
        ("wae run --network ", {"mlp", "conv", "conv1d"}),
    ],
)
def test_plugin_names_complete_from_metadata_without_importing_torch(words, expected):
    names, imported = _complete(words)
    assert set(names) == expected
    assert imported == ""
