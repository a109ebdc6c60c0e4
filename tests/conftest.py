"""Shared fixtures: a fake third-party plugin distribution discovered through real metadata."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import textwrap
from collections.abc import Iterator
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


@contextlib.contextmanager
def fake_distribution(
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
    dist: str,
    version: str,
    package: str,
    modules: dict[str, str],
    entry_points: str,
) -> Iterator[Path]:
    """Install (on ``sys.path``) the distribution ``dist`` with the modules of ``package`` and its
    ``entry_points.txt``; its modules are forgotten afterwards.

    Its metadata is a real ``.dist-info`` folder, so discovery goes through
    ``importlib.metadata`` exactly as for a pip-installed package. ``PYTHONPATH`` is set too, for
    tests that start ``wae`` in a subprocess.
    """
    pkg = root / package
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for name, text in modules.items():
        (pkg / f"{name}.py").write_text(textwrap.dedent(text))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(entry_points)
    monkeypatch.syspath_prepend(str(root))
    old = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(root) + (os.pathsep + old if old else ""))
    importlib.invalidate_caches()
    registry._docstring_line.cache_clear()
    try:
        yield root
    finally:
        for name in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
            del sys.modules[name]
        registry._docstring_line.cache_clear()


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A distribution with one good, one broken and one non-class penalty (and one written for a
    future interface), installed by :func:`fake_distribution`."""
    entry_points = (
        "[wae_toolkit.penalties]\n"
        "mean-match = fakeplug.good:MeanMatchPenalty\n"
        "broken-penalty = fakeplug.broken:BrokenPenalty\n"
        "not-a-class = fakeplug.good:not_a_class\n"
        "future-penalty = fakeplug.good:FuturePenalty\n"
    )
    modules = {"good": GOOD, "broken": BROKEN}
    with fake_distribution(
        tmp_path / "site", monkeypatch, FAKE_DIST, FAKE_VERSION, "fakeplug", modules, entry_points
    ) as root:
        yield root


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> list:
    """The :class:`~wae_toolkit.engine.setup.Session` of every run trained in the test, in order
    (``sessions[-1]`` is the latest): its model, its batches, its state."""
    from wae_toolkit.engine import setup

    seen: list = []
    prepare = setup.prepare

    def spy(*args, **kwargs):
        seen.append(prepare(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr("wae_toolkit.engine.loop.prepare", spy)
    return seen
