"""The conformance kit catches plugins that break the contract (so it can fail)."""

from __future__ import annotations

import pytest
import torch

from wae_toolkit.plugins import registry
from wae_toolkit.plugins.interfaces import LatentPenalty
from wae_toolkit.plugins.testing import check_options, check_penalty, check_plugin


class ForgetsItsOption(LatentPenalty):
    """Does not store its option."""

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self._w = weight

    def forward(self, z_q, z_p):
        return self._w * (z_q.mean(0) - z_p.mean(0)).pow(2).sum()


class Untyped(LatentPenalty):
    """Option without annotation."""

    def __init__(self, weight=1.0) -> None:  # noqa: ANN001
        super().__init__()
        self.weight = weight

    def forward(self, z_q, z_p):
        return (z_q.mean(0) - z_p.mean(0)).pow(2).sum()


class NoGradient(LatentPenalty):
    """Detaches the codes."""

    def forward(self, z_q, z_p):
        return (z_q.detach().mean(0) - z_p.mean(0)).pow(2).sum() + 0 * z_q.sum()


class Inverted(LatentPenalty):
    """Scores matched codes above shifted ones."""

    def forward(self, z_q, z_p):
        return -(z_q.mean(0) - z_p.mean(0)).pow(2).sum()


class WrongDtype(LatentPenalty):
    """Computes in float32 whatever the input."""

    def forward(self, z_q, z_p):
        return (z_q.float().mean(0) - z_p.float().mean(0)).pow(2).sum()


@pytest.mark.parametrize(
    "bad, words",
    [
        (ForgetsItsOption(), "own name"),
        (Untyped(), "type annotation"),
        (NoGradient(), "gradient"),
        (Inverted(), "shifted by 2"),
        (WrongDtype(), "dtype"),
    ],
)
def test_kit_rejects_contract_breaches(bad, words):
    with pytest.raises(AssertionError, match=words):
        check_penalty(bad)


def test_check_plugin_dispatches_and_refuses_non_plugins():
    torch.manual_seed(0)
    check_plugin(registry.create("cost", "l1"))
    check_plugin(registry.create("prior", "gaussian", dim=2))
    with pytest.raises(AssertionError, match="not a plugin"):
        check_plugin(object())
    check_options(registry.create("penalty", "mmd-imq", scales="1,2"))
