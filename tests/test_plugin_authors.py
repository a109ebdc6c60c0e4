"""A plugin author's first day: each mistake is told in one sentence that names the plugin, what
it did and what to do (issue 16, "Plugin authors")."""

from __future__ import annotations

import importlib.metadata as md
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from wae_toolkit.api import train
from wae_toolkit.assembly.components import build_components
from wae_toolkit.assembly.model import adam
from wae_toolkit.config.settings import RunConfig
from wae_toolkit.engine.distributed import DistContext
from wae_toolkit.engine.faults import BadSteps, NonFiniteError
from wae_toolkit.engine.first_step import PluginOutputError
from wae_toolkit.engine.step import StepFunctions, TrainStep
from wae_toolkit.errors import PluginLoadError, UsageError, cli_wording
from wae_toolkit.plugins.interfaces import INTERFACE_VERSION, LatentPenalty, Prior
from wae_toolkit.plugins.registry import REINSTALL_HINT, get_plugin_class, get_plugin_info
from wae_toolkit.plugins.scaffold import new_plugin
from wae_toolkit.plugins.testing import check_penalty, check_plugin, check_prior
from wae_toolkit.runs.restore import PluginMissingWarning, load_run

from .conftest import fake_distribution
from .test_cli import error_line, wae

DIST, VERSION = "wae-author-plugins", "0.2.0"

PLUGINS = '''
"""Plugins with a plugin author's first-day mistakes."""
import torch
from wae_toolkit.plugins.interfaces import Cost, LatentPenalty


class PerSamplePenalty(LatentPenalty):
    """Returns one value per sample instead of a scalar."""

    def forward(self, z_q, z_p):
        return (z_q - z_p[: len(z_q)]).pow(2).sum(1)


class FloatPenalty(LatentPenalty):
    """Returns a Python number."""

    def forward(self, z_q, z_p):
        return (z_q.mean(0) - z_p.mean(0)).pow(2).sum().item()


class DetachedPenalty(LatentPenalty):
    """Returns a scalar that no gradient flows through."""

    def forward(self, z_q, z_p):
        return (z_q.detach().mean(0) - z_p.mean(0)).pow(2).sum()


class NanPenalty(LatentPenalty):
    """Divides by zero."""

    def forward(self, z_q, z_p):
        return (z_q.mean() - z_q.mean()) / 0.0


class ScalarCost(Cost):
    """Returns the batch's mean instead of one cost per sample."""

    def cost(self, x, x_hat):
        return (x - x_hat).pow(2).mean()


class NoDefaultPenalty(LatentPenalty):
    """A constructor argument without a default or an annotation."""

    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, z_q, z_p):
        return self.scale * (z_q.mean(0) - z_p.mean(0)).pow(2).sum()
'''

ENTRY_POINTS = """[wae_toolkit.penalties]
per-sample = authorplug.plugins:PerSamplePenalty
float-penalty = authorplug.plugins:FloatPenalty
detached = authorplug.plugins:DetachedPenalty
nan-penalty = authorplug.plugins:NanPenalty
no-default = authorplug.plugins:NoDefaultPenalty

[wae_toolkit.costs]
scalar-cost = authorplug.plugins:ScalarCost
"""

SCALAR = (
    "a LatentPenalty returns a floating-point scalar, a tensor of shape () differentiable in "
    "z_q; reduce it with .mean() or .sum()."
)


@pytest.fixture
def authored(tmp_path, monkeypatch):
    with fake_distribution(
        tmp_path / "site",
        monkeypatch,
        DIST,
        VERSION,
        "authorplug",
        {"plugins": PLUGINS},
        ENTRY_POINTS,
    ) as root:
        yield root


def _step(**settings) -> tuple[TrainStep, object]:
    """A training step of a small model with the given plugins (as test_loop_features builds)."""
    torch.manual_seed(0)
    config = RunConfig(latent_dim=4, network_opts={"hidden": [32]}, **settings)
    comps = build_components(config, (1, 8, 8), (0.0, 1.0))
    opt = adam([p for p in comps.model.parameters()], config.lr, (config.beta1, config.beta2))
    fns = StepFunctions(comps, config, torch.device("cpu"))
    return TrainStep(fns, comps, opt, BadSteps(opt, 0), config, DistContext()), comps


X = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------------------------------------
# The first training step checks what the cost and the penalty return


@pytest.mark.parametrize(
    "penalty, returned",
    [
        ("per-sample", "a tensor of shape (16,) and dtype torch.float32"),
        ("float-penalty", "a float (not a tensor)"),
        (
            "detached",
            "a tensor of shape () and dtype torch.float32 that is not differentiable (no gradient)",
        ),
    ],
)
def test_a_penalty_that_is_not_a_differentiable_scalar_is_named_on_the_first_step(
    authored, penalty, returned
):
    step, _ = _step(penalty=penalty)
    with pytest.raises(PluginOutputError) as info:
        step(X, 1)
    cls = get_plugin_info("penalty", penalty).target
    assert str(info.value) == f"The penalty '{penalty}' ({cls}) returned {returned}, but {SCALAR}"
    assert info.value.exit_code == 1


def test_a_cost_that_returns_a_scalar_is_named_on_the_first_step(authored):
    step, _ = _step(cost="scalar-cost")
    with pytest.raises(PluginOutputError) as info:
        step(X, 1)
    assert str(info.value) == (
        "The cost 'scalar-cost' (authorplug.plugins:ScalarCost) returned a tensor of shape () "
        "and dtype torch.float32, but a Cost returns one cost per sample, a floating-point "
        "tensor of shape (B,) differentiable in x_hat (here (16,))."
    )


def test_a_penalty_that_turns_finite_codes_into_nan_is_named(authored):
    step, _ = _step(penalty="nan-penalty")
    with pytest.raises(NonFiniteError) as info:
        step(X, 1)
    assert str(info.value) == (
        "The penalty 'nan-penalty' (authorplug.plugins:NanPenalty) returned NaN or infinite "
        "values on the first training step although its inputs were finite; check its options "
        "and its arithmetic (a division by zero, the log or square root of 0)."
    )


def test_the_check_ends_after_the_first_step():
    step, comps = _step()
    assert "forward" in vars(comps.penalty) and "cost" in vars(comps.cost)  # checked for now
    step(X, 1)
    assert "forward" not in vars(comps.penalty) and "cost" not in vars(comps.cost)
    assert step.fns.objective == step.fns._objective  # later steps: as configured, unchecked


def test_training_a_per_sample_penalty_stops_before_the_held_out_evaluation_fails(
    authored, tmp_path
):
    """The held-out evaluation when training starts calls the penalty first: checked too."""
    config = RunConfig(
        penalty="per-sample", epochs=1, data_opts={"limit": 64}, out=str(tmp_path / "r")
    )
    with pytest.raises(PluginOutputError) as info:
        train(config)
    assert str(info.value).startswith(
        "The penalty 'per-sample' (authorplug.plugins:PerSamplePenalty) returned a tensor of "
        "shape ("
    )
    assert str(info.value).endswith(f"and dtype torch.float32, but {SCALAR}")


# ---------------------------------------------------------------------------------------------
# NaN messages name the plugin and only options it has


def _bad_steps(plugins: dict) -> BadSteps:
    bad = BadSteps(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), 0)
    bad.plugins = plugins
    return bad


def test_a_nan_message_names_the_penalty_and_only_options_it_has():
    bad = _bad_steps({"penalty": {"name": "swd", "options": {"projections": 50, "p": 2}}})
    with cli_wording():
        message = bad.message(7, ["penalty"])
    assert message == (
        "Training stopped: the penalty became NaN or infinite at step 7 (the penalty 'swd'). "
        "Usual fixes: a lower --lambda or --lr, other values of the penalty's options (p, "
        "projections; 'wae plugins show swd' describes them), checking the data for NaNs, or "
        "--skip-bad-steps N to skip a few such steps."
    )
    kernel = _bad_steps({"penalty": {"name": "mmd-imq", "options": {"bandwidth": None}}})
    with cli_wording():
        assert (
            "(the penalty 'mmd-imq'). Usual fixes: a lower --lambda or --lr, a larger kernel "
            "bandwidth (--penalty-opt bandwidth=...), checking" in kernel.message(3, ["penalty"])
        )
    plain = _bad_steps({"penalty": {"name": "kl-free", "options": {}}})
    with cli_wording():
        assert plain.message(3, ["penalty"]) == (
            "Training stopped: the penalty became NaN or infinite at step 3 (the penalty "
            "'kl-free'). Usual fixes: a lower --lambda or --lr, checking the data for NaNs, or "
            "--skip-bad-steps N to skip a few such steps."
        )


# ---------------------------------------------------------------------------------------------
# Options that cannot be set by name are the plugin's fault, told when it loads


DECLARATION = (
    "The penalty plugin 'no-default' from wae-author-plugins "
    "(authorplug.plugins:NoDefaultPenalty) cannot take its options: in its constructor 'scale' "
    "has no default and no type annotation. Give every argument a default and a type "
    "annotation (bool, int, float, str, Literal[...], tuple[float, ...] or X | None), for "
    "example 'scale: float = 1.0', so that {flag} is converted to that type."
)


def test_a_constructor_argument_without_default_or_annotation_is_refused_at_load(authored, capsys):
    with pytest.raises(PluginLoadError) as info:
        get_plugin_class("penalty", "no-default")
    assert str(info.value) == DECLARATION.format(flag='penalty_opts={"scale": ...}')
    code, _, err = wae(capsys, "run", "--penalty", "no-default", "--penalty-opt", "scale=1")
    assert code == 1  # the plugin's fault, not the user's usage error
    assert error_line(err) == "Error: " + DECLARATION.format(flag="--penalty-opt scale=...")


# ---------------------------------------------------------------------------------------------
# An unknown name says entry points come from installed metadata


def test_an_unknown_name_says_to_reinstall_after_adding_an_entry_point(capsys):
    assert REINSTALL_HINT == (
        "Plugins are found through the entry points in installed packages' metadata: after "
        "adding or renaming one, reinstall its package (pip install -e .) so that the metadata "
        "is updated."
    )
    with pytest.raises(UsageError) as info:
        get_plugin_info("penalty", "my-new-penalty")
    assert str(info.value).startswith("Unknown penalty 'my-new-penalty'. Available: ")
    assert str(info.value).endswith(f". {REINSTALL_HINT}")
    with pytest.raises(UsageError) as both:  # two unknown names: the hint once, at the end
        RunConfig(cost="my-cost", penalty="my-new-penalty").validate(build=False)
    assert str(both.value).count(REINSTALL_HINT) == 1
    assert str(both.value).endswith(REINSTALL_HINT)
    code, _, err = wae(capsys, "plugins", "show", "my-new-penalty")
    assert code == 2 and error_line(err).startswith("Error: No plugin is named 'my-new-penalty'.")
    assert error_line(err).endswith(f". {REINSTALL_HINT}")


# ---------------------------------------------------------------------------------------------
# The conformance kit


class MeanPenalty(LatentPenalty):
    """Squared distance between the means.

    Args:
        weight: factor in front of the distance.
    """

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, z_q, z_p):
        return self.weight * (z_q.mean(0) - z_p.mean(0)).pow(2).sum()


class FuturePenalty(MeanPenalty):
    """Written for an interface this wae-toolkit does not provide."""

    interface_version = "9.0"


class UndocumentedPenalty(MeanPenalty):
    def __init__(self, weight: float = 1.0) -> None:
        super().__init__(weight)


class UndocumentedOption(MeanPenalty):
    """Its option has no Args: line."""


def test_the_kit_checks_the_interface_version_and_the_docstring():
    check_penalty(MeanPenalty())
    with pytest.raises(AssertionError) as info:
        check_penalty(FuturePenalty())
    assert str(info.value) == (
        f"FuturePenalty declares interface_version = '9.0', which this wae-toolkit (interface "
        f"{INTERFACE_VERSION}) does not load; declare the version it was written for, such as "
        f"interface_version = '{INTERFACE_VERSION}'"
    )
    with pytest.raises(AssertionError) as info:
        check_penalty(UndocumentedPenalty())
    assert str(info.value) == (
        "UndocumentedPenalty has no docstring: its first line is the description 'wae plugins "
        "list' shows and its Args: section the option help 'wae plugins show' prints; add one"
    )
    with pytest.raises(AssertionError) as info:
        check_penalty(UndocumentedOption())
    assert str(info.value) == (
        "UndocumentedOption: option 'weight' is not documented; describe it in the Args: "
        "section of the class docstring ('wae plugins show' prints it)"
    )


def test_the_kit_asks_for_an_instance_when_given_a_class():
    with pytest.raises(AssertionError) as info:
        check_plugin(MeanPenalty)
    assert str(info.value) == (
        "check_plugin takes a plugin instance, not the class MeanPenalty: pass an instance, "
        "check_plugin(MeanPenalty())"
    )
    with pytest.raises(AssertionError) as info:
        check_penalty(MeanPenalty)
    assert "pass an instance, check_penalty(MeanPenalty())" in str(info.value)
    with pytest.raises(AssertionError) as info:
        check_prior(Prior)
    assert str(info.value) == (
        "check_prior takes a plugin instance, not the class Prior: pass an instance, "
        "check_prior(Prior(dim=2))"
    )


# ---------------------------------------------------------------------------------------------
# The README of `wae plugins new` installs from the plugin's folder


def test_the_generated_readme_installs_from_the_plugins_folder(tmp_path, capsys):
    files = new_plugin("penalty", "my-pen", tmp_path / "pkg")
    readme = (tmp_path / "pkg" / "README.md").read_text()
    pin = f'"torch=={md.version("torch")}"'
    assert f"pip install -e . {pin}   # the pin keeps the torch you have\n" in readme
    assert "constraints.txt" not in readme
    # pip resolves it from the plugin's folder, offline, keeping the installed torch
    dry = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index"]
        + ["--no-build-isolation", "-e", ".", pin.strip('"')],
        cwd=files[0].parent,
        capture_output=True,
        text=True,
    )
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "Would install wae-my-pen-0.1.0" in dry.stdout
    code, out, _ = wae(capsys, "plugins", "new", "cost", "my-cost", "--dir", str(tmp_path / "c"))
    assert code == 0
    assert f"Next: pip install -e {tmp_path / 'c'} {pin} (the pin keeps the torch you have)" in (
        " ".join(out.split())
    )


# ---------------------------------------------------------------------------------------------
# A plugin that fails to import: one line that mentions --verbose


def test_a_plugin_import_error_mentions_verbose(fake_dist, capsys):
    code, _, err = wae(capsys, "plugins", "show", "broken-penalty")
    assert code == 1
    assert error_line(err) == (
        "Error: The penalty plugin 'broken-penalty' from wae-fake-plugins 0.3.0 failed to "
        "import (fakeplug.broken:BrokenPenalty): ModuleNotFoundError: No module named "
        "'a_module_that_does_not_exist'. Reinstall or upgrade 'wae-fake-plugins', or uninstall "
        "it to hide the plugin. Add --verbose to see where the import failed."
    )
    code, _, err = wae(capsys, "--verbose", "plugins", "show", "broken-penalty")
    assert code == 1 and "Traceback" in err and "Add --verbose" not in err


# ---------------------------------------------------------------------------------------------
# A run whose penalty (or cost) is not installed still loads for sampling


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("authors") / "run"
    train(RunConfig(epochs=1, data_opts={"limit": 64}, out=str(out), seed=1))
    return out


def _record(run, **plugins: dict) -> None:
    """Rewrite the run's config.json: each kind's plugin record updated with ``plugins``."""
    path = run / "config.json"
    record = json.loads(path.read_text())
    for kind, new in plugins.items():
        record["plugins"][kind].update(new)
        if "name" in new:
            record["run"][kind] = new["name"]
    path.write_text(json.dumps(record))


def _copy_run(trained: Path, run: Path) -> Path:
    """The files of the trained run folder, copied into ``run`` (its record is edited there)."""
    run.mkdir()
    for f in trained.iterdir():
        if f.is_file():
            (run / f.name).write_bytes(f.read_bytes())
    return run


MISSING_PENALTY = (
    "The run '{run}' was trained with the penalty 'gone' from wae-gone 2.0, which is not "
    "installed: its model is loaded for sampling, encoding and export, but resuming its "
    "training needs the penalty (pip install wae-gone==2.0)."
)


def test_a_run_without_its_penalty_loads_for_sampling_with_a_note(trained, tmp_path, capsys):
    run = _copy_run(trained, tmp_path / "run")
    _record(run, penalty={"name": "gone", "distribution": "wae-gone", "version": "2.0"})
    with pytest.warns(PluginMissingWarning) as caught:
        loaded = load_run(run)
    assert [str(w.message) for w in caught] == [MISSING_PENALTY.format(run=run)]
    assert loaded.model.sample(3).shape[0] == 3
    with pytest.raises(UsageError) as info:
        loaded.penalty(torch.zeros(2, 8), torch.zeros(2, 8))
    assert str(info.value) == (
        f"The run '{run}' was loaded without its penalty 'gone' (wae-gone 2.0 is not installed), "
        "and this needs it; install it (pip install wae-gone==2.0) and load the run again."
    )
    code, _, err = wae(capsys, "sample", str(run), "-n", "2", "--out", str(tmp_path / "s.npy"))
    assert code == 0 and (tmp_path / "s.npy").exists()
    assert err == "Warning: " + MISSING_PENALTY.format(run=run) + "\n"  # one line
    code, _, err = wae(capsys, "run", "--resume", str(run))
    assert code == 2 and "Unknown penalty 'gone'." in err  # training needs it


def test_a_run_without_its_cost_samples_but_wae_eval_says_what_to_install(trained, capsys):
    run = _copy_run(trained, trained.parent / "no-cost")
    _record(run, cost={"name": "gone-cost", "distribution": "wae-gone-cost", "version": "1.0"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginMissingWarning)
        assert load_run(run).model.sample(2).shape[0] == 2
    code, _, err = wae(capsys, "eval", str(run))
    assert code == 2
    assert err.splitlines()[0] == (
        f"Warning: The run '{run}' was trained with the cost 'gone-cost' from wae-gone-cost "
        "1.0, which is not installed: its model is loaded for sampling, encoding and export, "
        "but evaluating it (wae eval) and resuming its training need the cost (pip install "
        "wae-gone-cost==1.0)."
    )
    assert error_line(err) == (
        f"Error: The run '{run}' was loaded without its cost 'gone-cost' (wae-gone-cost 1.0 is "
        "not installed), and this needs it; install it (pip install wae-gone-cost==1.0) and "
        "load the run again."
    )


def test_a_version_change_is_one_warning_line_in_the_cli(trained, tmp_path, capsys):
    run = _copy_run(trained, tmp_path / "run")
    _record(run, penalty={"version": "0.0.1"})
    code, _, err = wae(capsys, "sample", str(run), "-n", "2", "--out", str(tmp_path / "s.npy"))
    now = md.version("wae-toolkit")
    assert code == 0
    assert err == (
        f"Warning: The run '{run}' was trained with the penalty 'mmd-imq' from wae-toolkit "
        f"0.0.1; it is now provided by wae-toolkit {now}, so results may differ.\n"
    )
