"""Shared fixtures: a fake third-party plugin distribution discovered through real metadata."""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
from pathlib import Path

import pytest

from wae_toolkit.plugins import registry

FAKE_DIST = "wae-fake-plugins"
FAKE_VERSION = "0.3.0"

GOOD = '''
"""A fake third-party plugin module."""
import torch
from wae_toolkit.plugins.interfaces import LatentPenalty


class MeanMatchPenalty(LatentPenalty):
    """Squared distance between the means of the codes and of the prior samples.

    Args:
        weight: factor in front of the distance.
    """

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, z_q, z_p):
        return self.weight * (z_q.mean(0) - z_p.mean(0)).pow(2).sum()


class FuturePenalty(MeanMatchPenalty):
    """Written for an interface this wae-toolkit does not provide yet."""

    interface_version = "2.0"


def not_a_class():
    """A function registered by mistake."""
'''

BROKEN = '''
"""A plugin module whose import fails."""
import a_module_that_does_not_exist  # noqa: F401


class BrokenPenalty:
    """Never importable."""
'''


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Install (on sys.path) a distribution with one good, one broken and one non-class penalty.

    Its metadata is a real ``.dist-info`` folder, so discovery goes through
    ``importlib.metadata`` exactly as for a pip-installed package. ``PYTHONPATH`` is set too, for
    tests that start ``wae`` in a subprocess.
    """
    root = tmp_path / "site"
    pkg = root / "fakeplug"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "good.py").write_text(textwrap.dedent(GOOD))
    (pkg / "broken.py").write_text(textwrap.dedent(BROKEN))
    info = root / f"wae_fake_plugins-{FAKE_VERSION}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {FAKE_DIST}\nVersion: {FAKE_VERSION}\n"
    )
    (info / "entry_points.txt").write_text(
        "[wae_toolkit.penalties]\n"
        "mean-match = fakeplug.good:MeanMatchPenalty\n"
        "broken-penalty = fakeplug.broken:BrokenPenalty\n"
        "not-a-class = fakeplug.good:not_a_class\n"
        "future-penalty = fakeplug.good:FuturePenalty\n"
    )
    monkeypatch.syspath_prepend(str(root))
    old = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(root) + (os.pathsep + old if old else ""))
    importlib.invalidate_caches()
    registry._docstring_line.cache_clear()
    yield root
    for name in [m for m in sys.modules if m == "fakeplug" or m.startswith("fakeplug.")]:
        del sys.modules[name]
    registry._docstring_line.cache_clear()
