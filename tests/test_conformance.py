"""Every registered plugin passes the same conformance kit (parametrized over the registry).

A newly registered plugin is tested here without anyone writing a test for it.
"""

from __future__ import annotations

import pytest
import torch

from wae_toolkit.plugins import registry
from wae_toolkit.plugins.testing import check_cost, check_network, check_penalty, check_prior


def _names(kind: str) -> list[str]:
    return [i.name for i in registry.list_plugins(kind) if i.builtin]


@pytest.mark.parametrize("name", _names("cost"))
def test_cost_conforms(name):
    check_cost(registry.create("cost", name))


@pytest.mark.parametrize("dim", [1, 2, 8])
@pytest.mark.parametrize("name", _names("prior"))
def test_prior_conforms(name, dim):
    check_prior(registry.create("prior", name, dim=dim))


#: Small critics keep the adversarial penalties' checks fast; the defaults are 4 x 512.
SMALL_PENALTY_OPTIONS: dict[str, dict[str, int]] = {
    "gan-js": {"hidden": 32},
    "wgan-clip": {"hidden": 32, "critic_steps": 2},
    "wgan-gp": {"hidden": 32, "critic_steps": 2},
}


@pytest.mark.parametrize("dim", [2, 8])
@pytest.mark.parametrize("name", _names("penalty"))
def test_penalty_conforms(name, dim):
    torch.manual_seed(0)
    check_penalty(registry.create("penalty", name, **SMALL_PENALTY_OPTIONS.get(name, {})), dim=dim)


NETWORK_SHAPES = {
    "mlp": [(2,), (1, 8, 8), (3, 16, 16)],
    "conv": [(1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 64, 64)],
}


@pytest.mark.parametrize("name", _names("network"))
def test_network_conforms(name):
    options = {"width": 4} if name == "conv" else {}
    for shape in NETWORK_SHAPES.get(name, [(1, 28, 28)]):
        check_network(registry.create("network", name, **options), data_shape=shape, latent_dim=3)
