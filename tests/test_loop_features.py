"""The loop's features, each against an independent truth: gradient clipping bounds the measured
global norm, optimizers by name take their textbook step, a run continued for more epochs equals
one run of that length, the schedules' rates are their formulas (or torch's one-cycle), the
moving average is the hand-computed one, and early stopping stops where the metric history
says."""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path

import pytest
import torch

from wae_toolkit.api import train
from wae_toolkit.assembly.components import build_components
from wae_toolkit.assembly.model import adam
from wae_toolkit.config.settings import RunConfig
from wae_toolkit.engine.callbacks import Callback
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
        lr=1e-3,  # the settings these tests were written with, before the defaults changed
        lam=10.0,
        ema=0,
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
        ({"optimizer": "sgd", "optimizer_opts": {"lr": "0.1"}}, r"lr comes from lr="),
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


# ---------------------------------------------------------------------------------------------
# Schedules


def _lrs(schedule: str, total: int, **kw) -> list[float]:
    """The learning rate of each of ``total`` steps under ``schedule`` (one step per epoch)."""
    from wae_toolkit.engine.schedules import make_schedule

    params = [torch.nn.Parameter(torch.zeros(2))]
    opt = torch.optim.SGD(params, lr=0.1)
    sched = make_schedule(schedule, opt, RunConfig(schedule=schedule, epochs=total, **kw), 1)
    rates = []
    for t in range(total):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step_end(t + 1)
    return rates


def test_the_cosine_schedule_follows_its_formula() -> None:
    import math

    total, warm, lr = 40, 6, 0.1
    expected = [
        lr * (t + 1) / warm
        if t < warm
        else lr * 0.5 * (1 + math.cos(math.pi * (t - warm) / (total - warm)))
        for t in range(total)
    ]
    assert _lrs("cosine", total, warmup_steps=warm, lr=lr) == pytest.approx(expected, rel=1e-12)
    default = _lrs("cosine", 100, lr=lr)  # 5% of the steps warm up by default
    assert default[4] == pytest.approx(lr) and default[3] == pytest.approx(0.8 * lr)


def test_the_onecycle_schedule_equals_torchs_one_cycle() -> None:
    total, warm, lr = 50, 15, 0.1
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)
    ref = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=total, pct_start=warm / total, cycle_momentum=False
    )
    expected = []
    for t in range(total):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        if t < total - 1:
            ref.step()
    assert _lrs("onecycle", total, warmup_steps=warm, lr=lr) == pytest.approx(expected, rel=1e-9)


class _StopAt(Callback):
    def __init__(self, step: int) -> None:
        self.at = step

    def on_step_end(self, step: int, epoch: int) -> None:
        if step == self.at:
            self.request_stop(f"step {step}")


def test_a_per_step_schedule_is_logged_and_resumes_where_it_stopped(tmp_path) -> None:
    """The logged rates are the formula's; a run stopped mid-epoch and resumed equals one
    uninterrupted run, weights and rates (the schedule's state is in the checkpoint)."""
    import math

    def config(out: Path) -> RunConfig:
        return dataclasses.replace(
            _small(out, 3), lr_schedule=None, schedule="cosine", warmup_steps=3, log_every=1
        )

    whole = train(config(tmp_path / "w"))
    stopped = train(config(tmp_path / "r"), callback=_StopAt(5))
    assert stopped.summary["stopped"] == "step 5"
    resumed = train(config(tmp_path / "r"), resume=True)
    for k, v in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k
    total = whole.summary["steps"]
    for run in ("w", "r"):
        logged = {r["step"]: r["lr"] for r in read_metrics(tmp_path / run) if r["kind"] == "step"}
        assert sorted(logged) == list(range(1, total + 1))
        for step, rate in logged.items():
            t = step - 1
            want = (t + 1) / 3 if t < 3 else 0.5 * (1 + math.cos(math.pi * (t - 3) / (total - 3)))
            assert rate == pytest.approx(1e-3 * want, rel=1e-9), (run, step)


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"schedule": "cosin"}, r"Unknown schedule 'cosin'\. Did you mean 'cosine'"),
        ({"warmup_steps": 5}, r"warmup_steps applies to the cosine and onecycle schedules"),
        ({"schedule": "cosine", "warmup_steps": -1}, r"warmup_steps must be an integer from 0"),
        ({"schedule": "cosine", "lr_schedule": [(3, 0.5)]}, r'lr_schedule .* use schedule="steps"'),
        ({"ema": 1.0}, r"ema must be a decay between 0 and 1"),
        ({"monitor": "test_mdm"}, r"Unknown monitor 'test_mdm'\. Did you mean 'test_mmd'"),
        ({"patience": 0}, r"patience must be an integer from 1"),
    ],
)
def test_a_bad_loop_setting_is_one_sentence(settings, words) -> None:
    problems = RunConfig(**settings).problems()
    assert len(problems) == 1 and re.search(words, problems[0]), problems


# ---------------------------------------------------------------------------------------------
# The moving average of the weights


class _Weights(Callback):
    """The model's parameters after every step, and at every evaluation."""

    def __init__(self, sessions: list) -> None:
        self.sessions = sessions  # the ``sessions`` fixture: the run's session, once prepared
        self.steps: list[dict[str, torch.Tensor]] = []
        self.evaluations: dict[int, dict[str, torch.Tensor]] = {}

    @property
    def model(self) -> torch.nn.Module:
        return self.sessions[-1].comps.model

    def on_step_end(self, step: int, epoch: int) -> None:
        self.steps.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})


def test_the_moving_average_equals_the_hand_computed_one(tmp_path, sessions) -> None:
    from safetensors.torch import load_file

    from wae_toolkit.api import load

    seen = _Weights(sessions)
    decay = 0.8
    run = train(dataclasses.replace(_small(tmp_path / "e", 3), ema=decay), callback=seen)
    expected = dict(seen.steps[0])  # the first update copies the weights
    for n, weights in enumerate(seen.steps[1:], start=2):
        d = min(decay, 1 - 1 / n)  # the mean of the steps so far, until 1 / (1 - decay) steps
        expected = {k: d * expected[k] + (1 - d) * weights[k] for k in weights}
    assert len(seen.steps) > 5  # past the start (1 - 1 / n >= 0.8): the last updates use decay
    averaged = load_file(str(run.run_dir / "model.safetensors"))
    raw = load_file(str(run.run_dir / "raw.safetensors"))
    for k, v in expected.items():
        torch.testing.assert_close(averaged[f"model.{k}"], v, rtol=1e-5, atol=1e-7)
        assert torch.equal(raw[f"model.{k}"], seen.steps[-1][k])
    loaded = load(run.run_dir)  # the average is what the run's users get
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, averaged[f"model.{k}"]), k
    assert not torch.equal(
        averaged["model." + next(iter(expected))], raw["model." + next(iter(expected))]
    )
    assert {"model.safetensors", "raw.safetensors"} <= set(run.summary["files"])


def test_which_weights_a_run_loads_is_checked(tmp_path) -> None:
    from wae_toolkit.api import load

    run = train(_small(tmp_path / "p", 1))
    with pytest.raises(UsageError, match=r"has no raw\.safetensors: it was trained without ema,"):
        load(run.run_dir, which="raw")
    with pytest.raises(UsageError, match=r"which must be one of last, best, raw"):
        load(run.run_dir, which="first")


# ---------------------------------------------------------------------------------------------
# Best weights and early stopping


class _AtEvaluations(_Weights):
    def on_evaluate(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        self.evaluations[step] = {k: v.detach().clone() for k, v in self.model.state_dict().items()}


@pytest.mark.parametrize("patience", [1, 2])
def test_early_stopping_stops_where_the_metric_history_says(tmp_path, sessions, patience):
    from safetensors.torch import load_file

    from wae_toolkit.api import load

    seen = _AtEvaluations(sessions)
    config = dataclasses.replace(
        _small(tmp_path / "s", 40), monitor="test_mmd", patience=patience, lr=0.02
    )
    run = train(config, callback=seen)
    history = [(r["step"], r["test_mmd"]) for r in read_metrics(run.run_dir) if r["kind"] == "eval"]
    best, since, stop_at = (None, float("inf")), 0, None  # what the history says, by hand
    for step, value in history:
        if value < best[1]:
            best, since = (step, value), 0
        else:
            since += 1
            if since == patience:
                stop_at = step
                break
    assert stop_at is not None, "the noisy held-out MMD never stalled; the test needs it to"
    assert run.summary["steps"] == stop_at == history[-1][0]  # no evaluation after the stop
    assert run.summary["stopped"].startswith(
        f"early stopping: test_mmd did not improve for {patience}"
    )
    assert run.summary["best"]["step"] == best[0] and run.summary["best"]["value"] == best[1]
    saved = load_file(str(run.run_dir / "best.safetensors"))
    for k, v in seen.evaluations[best[0]].items():
        assert torch.equal(saved[f"model.{k}"], v), k
    for k, v in load(run.run_dir, which="best").state_dict().items():
        assert torch.equal(v, seen.evaluations[best[0]][k]), k


def test_the_default_monitor_is_the_held_out_objective(tmp_path) -> None:
    run = train(_small(tmp_path / "o", 2))
    evals = [r for r in read_metrics(run.run_dir) if r["kind"] == "eval"]
    for r in evals:
        assert r["test_objective"] == pytest.approx(r["test_cost"] + 10.0 * r["test_penalty"])
    best = min(evals, key=lambda r: r["test_objective"])
    assert run.summary["best"]["metric"] == "test_objective"
    assert run.summary["best"]["step"] == best["step"]
    assert "best.safetensors" in run.summary["files"]


def test_the_model_commands_take_the_best_weights(tmp_path, capsys) -> None:
    import numpy as np

    from tests.test_cli import wae

    run = train(_small(tmp_path / "m", 2))
    best = tmp_path / "best.npy"
    code, _, err = wae(capsys, "encode", str(run.run_dir), "--weights", "best", "-o", str(best))
    assert code == 0, err
    from wae_toolkit.api import load

    model = load(run.run_dir, which="best")
    x = run.dataset.test
    with torch.no_grad():
        expected = model.encode(x)
    np.testing.assert_allclose(np.load(best), expected.numpy(), rtol=1e-6, atol=1e-6)
    code, _, err = wae(capsys, "sample", str(run.run_dir), "--weights", "raw", "-o", "s.npy")
    assert code == 2 and "it was trained without --ema" in " ".join(err.split())


# ---------------------------------------------------------------------------------------------
# fp16 with a gradient scaler (the step's logic; runs on CPU, where torch has fp16 autocast too,
# although a run refuses fp16 there; tests/test_cuda.py runs it on a GPU)


def _fp16_step(init_scale: float | None = None) -> tuple[TrainStep, torch.nn.Module, BadSteps]:
    torch.manual_seed(0)
    config = RunConfig(latent_dim=4, precision="fp16", network_opts={"hidden": [32]})
    comps = build_components(config, (1, 8, 8), (0.0, 1.0))
    params = [p for p in comps.model.parameters() if p.requires_grad]
    opt = adam(params, config.lr, (config.beta1, config.beta2))
    bad = BadSteps(opt, 0)
    step = TrainStep(
        StepFunctions(comps, config, torch.device("cpu")), comps, opt, bad, config, DistContext()
    )
    if init_scale is not None:
        step.scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)
    return step, comps.model, bad


def test_an_fp16_step_unscales_its_gradients_before_adam() -> None:
    """The scaled loss's gradients reach Adam divided by the scale: its first moment after one
    step is (1 - beta1) times the gradient of the unscaled loss (computed here by hand)."""
    x = torch.rand(16, 1, 8, 8)
    step, model, bad = _fp16_step(init_scale=256.0)
    logs = step(x, 1)
    assert float(logs["grad_scale"]) == 256.0  # no overflow: the scale stays
    bad.check({k: [v] for k, v in logs.items()})
    assert bad.total == 0
    ref, ref_model, _ = _fp16_step(init_scale=256.0)
    torch.manual_seed(1)
    _, _, z_q = ref.fns.encode(x)
    z_p = ref_model.prior.sample(len(x))
    terms = ref.fns.objective(x, z_q, None, (z_q, z_p, z_q, None))
    grads = torch.autograd.grad(terms["loss"], [p for p in ref_model.parameters()])
    step2, model2, _ = _fp16_step(init_scale=256.0)
    torch.manual_seed(1)  # the same prior samples as above
    step2(x, 1)
    beta1 = step2.opt.param_groups[0]["betas"][0]
    for p, g in zip(model2.parameters(), grads, strict=True):
        torch.testing.assert_close(
            step2.opt.state[p]["exp_avg"], (1 - beta1) * g, rtol=1e-5, atol=1e-7
        )


def test_an_overflowing_fp16_step_is_skipped_by_the_scaler_and_not_counted_as_bad() -> None:
    step, model, bad = _fp16_step(init_scale=3e38)  # the scaled loss overflows to inf
    before = [p.detach().clone() for p in model.parameters()]
    logs = step(torch.rand(16, 1, 8, 8), 1)
    for p, b in zip(model.parameters(), before, strict=True):
        assert torch.equal(p.detach(), b)  # the update was dropped
    assert float(logs["grad_scale"]) == pytest.approx(1.5e38)  # and the scale halved
    bad.check({k: [v] for k, v in logs.items()})
    assert bad.total == 0  # the losses were finite: the scaler's business, not a bad step
