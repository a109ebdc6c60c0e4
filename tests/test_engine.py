"""The engine's parts: callbacks that stop a run, the loop state's round trip through a
checkpoint, the package's public names, and the checkpoint format's key."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from wae_toolkit.api import train
from wae_toolkit.config.settings import RunConfig
from wae_toolkit.engine.callbacks import HOOKS, Callback
from wae_toolkit.engine.checkpoint import METADATA_KEY, latest_checkpoint, read_document
from wae_toolkit.engine.state import LoopState
from wae_toolkit.runs.folder import read_metrics

TINY = dict(
    data="ring",
    data_opts={"n": 400},
    latent_dim=2,
    batch_size=50,
    network_opts={"hidden": [16]},
    log_every=2,
    seed=3,
)


class StopAfterEvaluations(Callback):
    """A user's callback: stop once ``k`` held-out evaluations have been seen."""

    def __init__(self, k: int) -> None:
        self.k, self.seen, self.calls = k, [], []

    def __getattribute__(self, name: str):
        if name in HOOKS:
            object.__getattribute__(self, "calls").append(name)
        return object.__getattribute__(self, name)

    def on_evaluate(self, epoch, step, metrics):
        self.seen.append((epoch, step, metrics["test_mmd"]))
        if len(self.seen) == self.k:
            self.request_stop(f"{self.k} evaluations")


def test_a_user_callback_stops_the_run_after_k_evaluations(tmp_path: Path) -> None:
    cb = StopAfterEvaluations(3)
    config = RunConfig(**TINY, epochs=10, eval_every=2, out=str(tmp_path / "run"))
    result = train(config, callback=cb)
    records = read_metrics(result.run_dir)
    evals = [r for r in records if r["kind"] == "eval"]
    # Evaluations at step 0 and after epochs 2 and 4.
    steps_per_epoch = next(r["step"] for r in records if r["kind"] == "epoch")
    assert steps_per_epoch > 2
    assert [(r["epoch"], r["step"]) for r in evals] == [
        (0, 0),
        (2, 2 * steps_per_epoch),
        (4, 4 * steps_per_epoch),
    ]
    assert [(e, s) for e, s, _ in cb.seen] == [(r["epoch"], r["step"]) for r in evals]
    assert [m for _, _, m in cb.seen] == [r["test_mmd"] for r in evals]
    # The run ended at the epoch the k-th evaluation closed, as a finished run would.
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["stopped"] == "3 evaluations"
    assert summary["steps"] == 4 * steps_per_epoch == records[-1]["step"]
    assert summary["test_mmd"] == evals[-1]["test_mmd"]
    assert max(r["epoch"] for r in records if r["kind"] == "epoch") == 3
    assert (result.run_dir / "model.safetensors").is_file()
    assert read_document(latest_checkpoint(result.run_dir))["step"] == 4 * steps_per_epoch
    # Every hook but on_error was called, in the documented order of first calls (the first
    # step is not a log step here, so on_step_end comes before on_log).
    first = list(dict.fromkeys(cb.calls))
    assert first == ["on_start", "on_evaluate", "on_train_start", "on_step_end", "on_log",
                     "on_epoch_end", "on_end"]  # fmt: skip
    assert set(first) == set(HOOKS) - {"on_error"}


def test_a_stopped_run_resumes_to_the_same_end_as_an_uninterrupted_one(tmp_path: Path) -> None:
    class StopAtStep(Callback):
        def on_step_end(self, step, epoch):
            if step == 10:
                self.request_stop("step 10")

    stopped = train(RunConfig(**TINY, epochs=3, out=str(tmp_path / "a")), callback=StopAtStep())
    assert stopped.summary["stopped"] == "step 10" and stopped.summary["steps"] == 10
    resumed = train(RunConfig(**TINY, epochs=3, out=str(tmp_path / "a")), resume=True)
    whole = train(RunConfig(**TINY, epochs=3, out=str(tmp_path / "b")))
    assert "stopped" not in resumed.summary and resumed.summary["steps"] == whole.summary["steps"]
    mine, theirs = resumed.model.state_dict(), whole.model.state_dict()
    assert mine.keys() == theirs.keys()
    for k in mine:
        assert torch.equal(mine[k], theirs[k]), k
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in read_metrics(tmp_path / "a")]
    assert strip == [
        {k: v for k, v in r.items() if k != "seconds"} for r in read_metrics(tmp_path / "b")
    ]


def test_loop_state_round_trips_through_a_checkpoint_document() -> None:
    state = LoopState(
        epoch=2,
        batch=3,
        step=17,
        perm=torch.arange(12).view(4, 3),
        log_acc={"loss": [torch.tensor(1.0), torch.tensor(2.0)]},
        epoch_buffers={"loss": (torch.full((3,), 0.5), 3), "cost": (torch.full((5,), 0.25), 3)},
        last_eval={"test_mmd": 0.1},
        metrics_lines=9,
        seconds=4.0,
        bad_steps=1,
    )
    extra = state.to_extra(processes=1) | {"step": 17}
    assert extra["seconds"] >= 4.0 and extra["processes"] == 1
    back = LoopState.from_extra(extra, torch.device("cpu"))
    assert (back.epoch, back.batch, back.step, back.metrics_lines, back.bad_steps) == (
        2,
        3,
        17,
        9,
        1,
    )
    assert torch.equal(back.perm, state.perm) and back.last_eval == state.last_eval
    assert {k: torch.stack(v).tolist() for k, v in back.epoch_acc.items()} == {
        "loss": [0.5] * 3,
        "cost": [0.25] * 3,
    }
    assert torch.stack(back.log_acc["loss"]).tolist() == [1.0, 2.0]


def test_the_checkpoint_format_key_never_changes() -> None:
    """Checkpoints written by wae-toolkit 0.1 store their document under this key; renaming the
    module that writes them must not make them unreadable."""
    assert METADATA_KEY == "wae_toolkit.checkpoint"


def test_every_public_name_is_a_working_object_after_fit(tmp_path: Path) -> None:
    """In a fresh process, after ``fit`` imported the whole engine, every name of
    ``wae_toolkit.__all__`` is the documented object (never a module), and the callable ones
    work: the issue's one-liner included."""
    script = textwrap.dedent(
        """
        import types, sys
        import wae_toolkit as wt
        wt.fit(epochs=1, out="a", data="ring", data_opts={"n": 200})
        wt.train(wt.RunConfig(epochs=1, out="b", data="ring", data_opts={"n": 200}))
        calls = {
            "WaeError": lambda f: f("x"),
            "RunConfig": lambda f: f(epochs=1).validate(),
            "train": None, "fit": None,  # called above
            "Callback": lambda f: f().request_stop("r"),
            "RunResult": lambda f: f.__dataclass_fields__,
            "load": lambda f: f("a").sample(2),
            "load_run": lambda f: f("b").model,
            "resolve_config": lambda f: f(None, {"epochs": 2}),
            "evaluate_run": lambda f: f("a", n_samples=100, classifier_steps=5),
            "compare_runs": lambda f: f(["a", "b"]),
            "export_model": lambda f: f(wt.load("a"), "torchscript", "exported"),
            "create": lambda f: f("penalty", "mmd-imq"),
            "list_plugins": lambda f: f("penalty"),
        }
        for name in wt.__all__:
            obj = getattr(wt, name)
            assert not isinstance(obj, types.ModuleType), f"wt.{name} is a module"
            if name == "__version__":
                continue
            assert callable(obj), name
            assert name in calls, f"no call for wt.{name}: add one to this test"
            if calls[name] is not None:
                calls[name](obj)
        print("ok", len(wt.__all__))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok")


def test_a_run_builds_each_plugin_once(tmp_path: Path, monkeypatch) -> None:
    """Validation is one pass: the checks build nothing real (the size check uses torch's meta
    device, which allocates nothing), and the objects built once are the ones trained."""
    import functools

    from wae_toolkit.builtins.mlp import MLPNetwork
    from wae_toolkit.builtins.mmd import IMQMMDPenalty
    from wae_toolkit.builtins.priors import GaussianPrior

    built: dict[str, list[object]] = {}
    for cls in (IMQMMDPenalty, GaussianPrior, MLPNetwork):
        original = cls.__init__

        def init(self, *args, __original=original, **kwargs):
            if torch.empty(0).device.type != "meta":
                built.setdefault(type(self).__name__, []).append(self)
            __original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", functools.wraps(original)(init))
    result = train(RunConfig(**TINY, epochs=1, out=str(tmp_path / "run")))
    assert {k: len(v) for k, v in built.items()} == {
        "IMQMMDPenalty": 1,
        "GaussianPrior": 1,
        "MLPNetwork": 1,
    }
    assert built["IMQMMDPenalty"][0] is result.components.penalty
    assert built["GaussianPrior"][0] is result.model.prior
    assert built["MLPNetwork"][0] is result.components.network


def test_a_setting_newer_than_a_checkpoint_counts_as_its_default_on_resume(tmp_path: Path) -> None:
    """A checkpoint written before a setting existed resumes when the run leaves that setting
    at its default, and is refused, naming it, when the run's value is another."""
    import pytest

    from wae_toolkit.engine.resume import check_resume_fits, settings_record
    from wae_toolkit.errors import UsageError

    now = settings_record({"run": RunConfig(epochs=3).to_dict()})
    older = {k: v for k, v in now.items() if k != "input_noise"}  # before the setting existed
    check_resume_fits(tmp_path / "c", {"extra": {"settings": older}}, now, {})
    changed = settings_record({"run": RunConfig(epochs=3, input_noise=0.5).to_dict()})
    with pytest.raises(UsageError, match=r"input_noise: 0.0 in the checkpoint, 0.5 now"):
        check_resume_fits(tmp_path / "c", {"extra": {"settings": older}}, changed, {})
    with pytest.raises(UsageError, match=r"lr: 0.0035 in the checkpoint, 0.002 now"):
        later = settings_record({"run": RunConfig(epochs=3, lr=0.002).to_dict()})
        check_resume_fits(tmp_path / "c", {"extra": {"settings": now}}, later, {})
