"""The entry-point registry: discovery through metadata, lazy loading, clear failures."""

from __future__ import annotations

import subprocess
import sys

import pytest

from wae_toolkit.errors import PluginLoadError, PluginOptionError, UnknownPluginError, UsageError
from wae_toolkit.plugins import registry
from wae_toolkit.plugins.interfaces import LatentPenalty

from .conftest import FAKE_DIST, FAKE_VERSION

BUILTINS = {
    "cost": {"l2", "l1", "bce"},
    "penalty": {"mmd-imq", "mmd-rbf", "gan-js", "sinkhorn", "wgan-clip", "wgan-gp", "swd", "kl"},
    "prior": {"gaussian", "gmm", "sphere", "uniform"},
    "network": {"mlp", "conv"},
}


def test_builtins_are_discovered_through_entry_points():
    for kind, names in BUILTINS.items():
        infos = registry.list_plugins(kind)
        assert names <= {i.name for i in infos}
        for info in infos:
            if info.name in names:
                assert info.distribution == "wae-toolkit" and info.builtin
                assert info.description, f"{kind} {info.name} has no one-line description"
    assert sum(len(v) for v in BUILTINS.values()) == 17


def test_listing_never_imports_plugins():
    code = (
        "import sys; from wae_toolkit.plugins.registry import list_plugins; ps = list_plugins(); "
        "assert len(ps) >= 11; "
        "bad = [m for m in sys.modules if m.startswith('wae_toolkit.builtins.') or m == 'torch'];"
        "print(bad); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_fake_distribution_is_listed_without_import(fake_dist):
    infos = {i.name: i for i in registry.list_plugins("penalty")}
    good = infos["mean-match"]
    assert good.distribution == FAKE_DIST and good.version == FAKE_VERSION
    assert (
        good.description
        == "Squared distance between the means of the codes and of the prior samples."
    )
    assert "broken-penalty" in infos  # listed from metadata even though its import fails
    assert "fakeplug.good" not in sys.modules and "fakeplug.broken" not in sys.modules


def test_good_third_party_plugin_loads_and_is_created(fake_dist):
    p = registry.create("penalty", "mean-match", weight="2.5")
    assert isinstance(p, LatentPenalty) and p.weight == 2.5


def test_broken_plugin_fails_alone_with_a_clear_error(fake_dist):
    with pytest.raises(PluginLoadError) as exc:
        registry.get_plugin_class("penalty", "broken-penalty")
    msg = str(exc.value)
    assert "broken-penalty" in msg and FAKE_DIST in msg and FAKE_VERSION in msg
    assert "a_module_that_does_not_exist" in msg and "ModuleNotFoundError" in msg
    assert isinstance(exc.value.__cause__, ModuleNotFoundError)
    # The rest keeps working.
    assert registry.get_plugin_class("penalty", "mean-match").__name__ == "MeanMatchPenalty"
    assert registry.get_plugin_class("penalty", "mmd-imq").__name__ == "IMQMMDPenalty"


def test_entry_point_that_is_not_an_interface_class(fake_dist):
    with pytest.raises(
        PluginLoadError, match="not a subclass of wae_toolkit.plugins.interfaces.LatentPenalty"
    ):
        registry.get_plugin_class("penalty", "not-a-class")


def test_plugin_for_another_interface_version_is_refused_clearly(fake_dist):
    with pytest.raises(PluginLoadError) as exc:
        registry.get_plugin_class("penalty", "future-penalty")
    msg = str(exc.value)
    assert "future-penalty" in msg and FAKE_DIST in msg
    assert "written for wae-toolkit interface 2.0" in msg and "provides interface 1.1" in msg
    # Every other plugin stays usable.
    assert registry.get_plugin_class("penalty", "mean-match").__name__ == "MeanMatchPenalty"
    assert registry.create("penalty", "mmd-imq").estimator == "paper"


def test_unknown_name_suggests_and_lists():
    with pytest.raises(UnknownPluginError) as exc:
        registry.get_plugin_class("penalty", "mmd-imk")
    msg = str(exc.value)
    assert "Unknown penalty 'mmd-imk'" in msg and "Did you mean 'mmd-imq'?" in msg
    assert "Available:" in msg and "sinkhorn" in msg and "gan-js" in msg
    assert isinstance(exc.value, UsageError) and exc.value.exit_code == 2


def test_unknown_kind():
    with pytest.raises(UsageError, match="Did you mean 'penalty'"):
        registry.list_plugins("penalt")
    assert registry.normalize_kind("penalties") == "penalty"


def test_autoload_can_be_disabled(fake_dist, monkeypatch):
    monkeypatch.setenv(registry.AUTOLOAD_ENV, "1")
    names = registry.plugin_names("penalty")
    assert "mean-match" not in names and "mmd-imq" in names


def test_option_errors():
    with pytest.raises(PluginOptionError) as exc:
        registry.create("penalty", "mmd-imq", bandwith="2.0")
    assert "no option 'bandwith'" in str(exc.value) and "Did you mean 'bandwidth'?" in str(
        exc.value
    )
    with pytest.raises(PluginOptionError) as exc:
        registry.create("cost", "l2", scale="big")
    assert "'big'" in str(exc.value) and "expected a number" in str(exc.value)
    with pytest.raises(PluginOptionError, match="expected one of"):
        registry.create("penalty", "mmd-imq", estimator="median")


def test_options_are_converted_to_declared_types():
    p = registry.create("penalty", "mmd-imq", scales="0.5,1,2", estimator="unbiased")
    assert p.scales == (0.5, 1.0, 2.0) and p.estimator == "unbiased"
    n = registry.create("network", "mlp", hidden="32, 16")
    assert n.hidden == (32, 16)
    c = registry.create("network", "conv", batch_norm="false", width="8")
    assert c.batch_norm is False and c.width == 8
    # None values are dropped so the plugin's defaults apply.
    assert registry.create("cost", "l2", scale=None).scale == 1.0


def test_clash_between_two_third_party_distributions(tmp_path, monkeypatch, fake_dist):
    other = tmp_path / "site2"
    info = other / "wae_other-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wae-other\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[wae_toolkit.penalties]\nmean-match = fakeplug.good:MeanMatchPenalty\n"
        "mmd-imq = fakeplug.good:MeanMatchPenalty\n"
    )
    monkeypatch.syspath_prepend(str(other))
    listed = {i.name: i for i in registry.list_plugins("penalty")}
    assert listed["mean-match"].clashes
    with pytest.raises(PluginLoadError, match="several distributions") as exc:
        registry.get_plugin_class("penalty", "mean-match")
    assert "wae-other" in str(exc.value) and FAKE_DIST in str(exc.value)
    # A built-in name cannot be shadowed.
    assert listed["mmd-imq"].distribution == "wae-toolkit"
    assert registry.get_plugin_class("penalty", "mmd-imq").__module__ == "wae_toolkit.builtins.mmd"
