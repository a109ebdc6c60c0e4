"""The loop's features, each against an independent truth: gradient clipping bounds the measured
global norm, and a run reports the steps it skipped."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from wae_toolkit.api import train
from wae_toolkit.assembly.components import build_components
from wae_toolkit.assembly.model import adam
from wae_toolkit.config.settings import RunConfig
from wae_toolkit.engine.distributed import DistContext
from wae_toolkit.engine.faults import BadSteps
from wae_toolkit.engine.step import StepFunctions, TrainStep
from wae_toolkit.errors import UsageError
from wae_toolkit.runs.folder import read_metrics


def _step(clip: float | None, seed: int = 0) -> tuple[TrainStep, torch.nn.Module]:
    torch.manual_seed(seed)
    config = RunConfig(latent_dim=4, clip_grad=clip, network_opts={"hidden": [32]})
    comps = build_components(config, (1, 8, 8), (0.0, 1.0))
    params = [p for p in comps.model.parameters() if p.requires_grad]
    opt = adam(params, config.lr, (config.beta1, config.beta2))
    ctx = DistContext()
    fns = StepFunctions(comps, config, torch.device("cpu"))
    step = TrainStep(fns, comps, opt, BadSteps(opt, 0), config, ctx)
    return step, comps.model


def _global_norm(model: torch.nn.Module) -> float:
    grads = [p.grad.flatten() for p in model.parameters() if p.grad is not None]
    return float(torch.cat(grads).norm())


def test_clipping_bounds_the_measured_global_norm_and_logs_the_norm_before_it() -> None:
    x = torch.rand(16, 1, 8, 8)
    free, free_model = _step(None)
    free(x, 1)
    unclipped = _global_norm(free_model)  # what the step's gradients measure without clipping
    clip = unclipped / 10
    step, model = _step(clip)
    logs = step(x, 1)
    assert _global_norm(model) == pytest.approx(clip, rel=1e-5)  # scaled down to the bound
    assert float(logs["grad_norm"]) == pytest.approx(unclipped, rel=1e-5)
    assert float(logs["clipped"]) == 1.0
    loose, loose_model = _step(unclipped * 10)
    logs = loose(x, 1)
    assert _global_norm(loose_model) == pytest.approx(unclipped, rel=1e-5)  # left alone
    assert float(logs["clipped"]) == 0.0


def test_clipping_changes_the_update_as_scaled_gradients_would(tmp_path: Path) -> None:
    """The clipped step equals an unclipped step on gradients scaled by clip / norm (checked on
    the first Adam step's state: its first moment is (1 - beta1) times the gradient)."""
    x = torch.rand(16, 1, 8, 8)
    free, free_model = _step(None)
    free(x, 1)
    grads = [copy.deepcopy(p.grad) for p in free_model.parameters() if p.grad is not None]
    norm = float(torch.cat([g.flatten() for g in grads]).norm())
    step, model = _step(norm / 4)
    step(x, 1)
    moments = [step.opt.state[p]["exp_avg"] for p in model.parameters() if p.grad is not None]
    beta1 = step.opt.param_groups[0]["betas"][0]
    for m, g in zip(moments, grads, strict=True):
        torch.testing.assert_close(m, (1 - beta1) * g / 4, rtol=1e-4, atol=1e-7)


def test_a_clipped_run_logs_its_gradient_norms_and_a_default_run_does_not(tmp_path: Path) -> None:
    small = dict(data="ring", data_opts={"n": 300}, latent_dim=2, epochs=1, log_every=1)
    clipped = train(RunConfig(**small, clip_grad=1e-4, out=str(tmp_path / "c")))
    steps = [r for r in read_metrics(clipped.run_dir) if r["kind"] == "step"]
    assert steps and all(r["clipped"] == 1.0 and r["grad_norm"] > 1e-4 for r in steps)
    plain = train(RunConfig(**small, out=str(tmp_path / "p")))
    assert not any("grad_norm" in r for r in read_metrics(plain.run_dir))


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), "big", True])
def test_a_bad_clip_value_is_one_sentence(value) -> None:
    with pytest.raises(UsageError, match=r"^clip_grad must be a finite number > 0, or null"):
        RunConfig(clip_grad=value).validate(plugins=False)


def _small(out: Path, epochs: int) -> RunConfig:
    return RunConfig(
        data="ring",
        data_opts={"n": 400},
        latent_dim=2,
        epochs=epochs,
        lr_schedule=[],  # constant: the same learning rates for any length
        eval_every=1,
        log_every=2,
        checkpoint_every=5,
        seed=4,
        out=str(out),
    )


def test_a_finished_run_continued_for_more_epochs_equals_one_run_of_that_length(tmp_path):
    short = train(_small(tmp_path / "a", 2))
    assert short.summary["epochs"] == 2
    longer = train(_small(tmp_path / "a", 4), resume=True)
    whole = train(_small(tmp_path / "b", 4))
    assert longer.summary["steps"] == whole.summary["steps"] == 2 * short.summary["steps"]
    mine, theirs = longer.model.state_dict(), whole.model.state_dict()
    for k in mine:
        assert torch.equal(mine[k], theirs[k]), k
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in read_metrics(tmp_path / "a")]
    same = [{k: v for k, v in r.items() if k != "seconds"} for r in read_metrics(tmp_path / "b")]
    assert strip == same
    import json

    assert json.loads((tmp_path / "a" / "config.json").read_text())["run"]["epochs"] == 4
    with pytest.raises(UsageError, match=r"there is nothing to resume"):
        train(_small(tmp_path / "a", 4), resume=True)
    with pytest.raises(UsageError, match=r"epochs: 4 in the checkpoint, 3 now.*not fewer"):
        train(_small(tmp_path / "a", 3), resume=True)


def test_wae_run_resume_takes_a_larger_epochs(tmp_path, capsys):
    from tests.test_cli import wae

    out = tmp_path / "r"
    args = ["--data", "ring", "--data-opt", "n=300", "--latent-dim", "2", "--out", str(out)]
    code, _, err = wae(capsys, "run", *args, "--epochs", "1")
    assert code == 0, err
    code, _, err = wae(capsys, "run", "--resume", str(out), "--epochs", "2")
    assert code == 0, err
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 2
    assert max(r["epoch"] for r in read_metrics(out) if r["kind"] == "epoch") == 1
    code, _, err = wae(capsys, "run", "--resume", str(out), "--lr", "0.5")
    assert code == 2 and "a larger --epochs may change" in " ".join(err.split())


def test_sgd_by_name_takes_exactly_the_plain_gradient_step() -> None:
    """``optimizer="sgd"`` (no momentum): each parameter moves by ``-lr * grad``."""
    from wae_toolkit.assembly.optimizer import make_optimizer

    torch.manual_seed(0)
    config = RunConfig(latent_dim=4, optimizer="sgd", lr=0.05, network_opts={"hidden": [16]})
    comps = build_components(config, (1, 8, 8), (0.0, 1.0))
    params = [p for p in comps.model.parameters() if p.requires_grad]
    opt = make_optimizer(config, params)
    assert type(opt) is torch.optim.SGD and opt.param_groups[0]["lr"] == 0.05
    step = TrainStep(
        StepFunctions(comps, config, torch.device("cpu")),
        comps,
        opt,
        BadSteps(opt, 0),
        config,
        DistContext(),
    )
    before = [p.detach().clone() for p in params]
    step(torch.rand(16, 1, 8, 8), 1)
    for p, b in zip(params, before, strict=True):
        torch.testing.assert_close(p.detach(), b - 0.05 * p.grad, rtol=0, atol=1e-7)


def test_optimizer_options_and_betas_reach_the_optimizer() -> None:
    from wae_toolkit.assembly.optimizer import make_optimizer

    params = [torch.nn.Parameter(torch.zeros(3))]
    adamw = make_optimizer(
        RunConfig(optimizer="adamw", optimizer_opts={"weight_decay": "0.25"}, beta1=0.7), params
    )
    group = adamw.param_groups[0]
    assert type(adamw) is torch.optim.AdamW
    assert group["weight_decay"] == 0.25 and group["betas"] == (0.7, 0.999)
    sgd = make_optimizer(RunConfig(optimizer="sgd", optimizer_opts={"momentum": 0.9}), params)
    assert sgd.param_groups[0]["momentum"] == 0.9 and "betas" not in sgd.param_groups[0]
    default = make_optimizer(RunConfig(), params)  # Adam with the paper's betas, fused
    assert type(default) is torch.optim.Adam and default.param_groups[0]["betas"] == (0.5, 0.999)


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"optimizer": "adamm"}, r"^Unknown optimizer 'adamm'\. Did you mean 'adam'"),
        ({"optimizer": "sgd", "optimizer_opts": {"momentom": "0.9"}}, r"Unknown option 'momentom'"),
        ({"optimizer": "sgd", "optimizer_opts": {"lr": "0.1"}}, r"lr comes from --lr"),
        ({"optimizer": "sgd", "optimizer_opts": {"momentum": "-1"}}, r"'sgd' refuses these"),
        ({"optimizer": "sgd", "optimizer_opts": {"momentum": "fast"}}, r"option momentum:"),
    ],
)
def test_a_bad_optimizer_setting_is_one_sentence(settings, words, tmp_path) -> None:
    with pytest.raises(UsageError, match=words) as info:
        train(
            RunConfig(
                data="ring", data_opts={"n": 200}, epochs=1, out=str(tmp_path / "r"), **settings
            )
        )
    assert "\n" not in str(info.value)
    assert not (tmp_path / "r" / "config.json").exists()  # refused before the run folder
