"""``wae run``'s options are generated from RunConfig's fields: every setting is an option with
its field's help and default, every flag sets its field, and a new field needs nothing in
``wae_toolkit/cli``."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest
import typer
from rich.text import Text
from typer.testing import CliRunner

from tests.test_cli import wae
from wae_toolkit.cli import run_cmd
from wae_toolkit.cli.app import COMPLETERS, app
from wae_toolkit.cli.run_options import field_options, given_settings
from wae_toolkit.config.fields import cli, cli_option
from wae_toolkit.config.settings import RunConfig

from .test_completion import _complete

#: RunConfig fields that are deliberately no ``wae run`` option (field -> why). A field listed
#: here has no ``cli(...)`` metadata; it is set by configuration files and Python only.
NOT_ON_THE_COMMAND_LINE: dict[str, str] = {
    "test": "the held-out part of data given in Python (files: --data-opt test=FILE)",
}

#: The flags of ``wae run`` when its options were first generated, in their order in ``--help``:
#: none may disappear or move (new settings may add options anywhere).
FLAGS_BEFORE = (
    "--config -c --preset --cost --penalty --prior --network --data --cost-opt --penalty-opt "
    "--prior-opt --network-opt --data-opt --latent-dim -d --encoder --lambda --epochs -e "
    "--batch-size -b --lr --beta1 --beta2 --lr-schedule --seed --device --threads --out -o "
    "--overwrite --no-overwrite --log-every --eval-every --input-noise --logvar-l1 "
    "--pretrain-steps --checkpoint-every --keep-checkpoints --skip-bad-steps --nproc --resume "
    "--compile --no-compile --precision --track --tracking-uri --experiment --verbose -v"
).split()

#: For every setting: the arguments that set it to a value other than its default, and that
#: value (with what some settings need to be valid: a Gaussian encoder for logvar_l1...).
VALUES: dict[str, tuple[list[str], Any]] = {
    "cost": (["--cost", "l1"], "l1"),
    "penalty": (["--penalty", "mmd-rbf"], "mmd-rbf"),
    "prior": (["--prior", "gmm"], "gmm"),
    "network": (["--network", "conv"], "conv"),
    "data": (["--data", "moons"], "moons"),
    "cost_opts": (["--cost-opt", "scale=0.5"], {"scale": "0.5"}),
    "penalty_opts": (["--penalty-opt", "estimator=unbiased"], {"estimator": "unbiased"}),
    "prior_opts": (["--prior-opt", "std=2", "--prior-opt", "std=3"], {"std": "3"}),
    "network_opts": (["--network-opt", "activation=elu"], {"activation": "elu"}),
    "data_opts": (["--data-opt", "limit=200"], {"limit": "200"}),
    "memory_budget": (["--memory-budget", "2GB"], "2GB"),
    "workers": (["--workers", "2"], 2),
    "latent_dim": (["-d", "4"], 4),
    "encoder": (["--encoder", "gaussian"], "gaussian"),
    "lam": (["--lambda", "2.5"], 2.5),
    "epochs": (["-e", "7"], 7),
    "batch_size": (["-b", "32"], 32),
    "lr": (["--lr", "0.01"], 0.01),
    "beta1": (["--beta1", "0.9"], 0.9),
    "beta2": (["--beta2", "0.99"], 0.99),
    "lr_schedule": (["--lr-schedule", "3:0.5,5:0.1"], [(3, 0.5), (5, 0.1)]),
    "seed": (["--seed", "5"], 5),
    "device": (["--device", "cpu"], "cpu"),
    "threads": (["--threads", "2"], 2),
    "out": (["-o", "runs/elsewhere"], "runs/elsewhere"),
    "overwrite": (["--overwrite"], True),
    "log_every": (["--log-every", "3"], 3),
    "eval_every": (["--eval-every", "4"], 4),
    "input_noise": (["--input-noise", "0.01"], 0.01),
    "logvar_l1": (["--logvar-l1", "0.1", "--encoder", "gaussian"], 0.1),
    "pretrain_steps": (["--pretrain-steps", "5"], 5),
    "checkpoint_every": (["--checkpoint-every", "50"], 50),
    "keep_checkpoints": (["--keep-checkpoints", "2"], 2),
    "skip_bad_steps": (["--skip-bad-steps", "1"], 1),
    "clip_grad": (["--clip-grad", "1.5"], 1.5),
    "optimizer": (["--optimizer", "sgd"], "sgd"),
    "optimizer_opts": (["--optimizer-opt", "momentum=0.9"], {"momentum": "0.9"}),
    "schedule": (["--schedule", "cosine"], "cosine"),
    "warmup_steps": (["--warmup-steps", "20", "--schedule", "onecycle"], 20),
    "ema": (["--ema", "0.999"], 0.999),
    "monitor": (["--monitor", "test_mmd"], "test_mmd"),
    "patience": (["--patience", "3"], 3),
    "compile": (["--compile"], True),
    "compile_mode": (["--compile-mode", "reduce-overhead", "--compile"], "reduce-overhead"),
    "precision": (["--precision", "bf16"], "bf16"),
    "track": (["--track", "TensorBoard,mlflow", "--track", "mlflow"], ["tensorboard", "mlflow"]),
    "tracking_uri": (["--tracking-uri", "sqlite:///x.db", "--track", "mlflow"], "sqlite:///x.db"),
    "experiment": (["--experiment", "exp-1"], "exp-1"),
}

FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}


def _run_command() -> Any:
    return typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]


def _params() -> dict[str, Any]:
    return {p.name: p for p in _run_command().params}


@pytest.fixture
def captured(monkeypatch) -> dict[str, Any]:
    """``wae run`` resolves and checks its settings, then hands them here instead of training
    (the trackers' packages count as installed)."""
    seen: dict[str, Any] = {}

    def fake(config: RunConfig, **kwargs: Any) -> None:
        seen.update(config=config, **kwargs)

    monkeypatch.setattr(run_cmd, "_train_and_report", fake)
    monkeypatch.setattr(RunConfig, "missing_tracker_packages", lambda self: [])
    return seen


def _wae(capsys, *args: str) -> tuple[int, str]:
    code, out, err = wae(capsys, *args)
    return code, out + err


def test_every_setting_is_a_run_option_or_listed_as_not_one():
    params = _params()
    for name, f in FIELDS.items():
        if name in NOT_ON_THE_COMMAND_LINE:
            assert cli_option(f) is None and name not in params, name
        else:
            assert cli_option(f) is not None, f"RunConfig.{name} declares no cli(...) metadata"
            assert name in params, f"RunConfig.{name} is no option of 'wae run'"
    assert set(NOT_ON_THE_COMMAND_LINE) <= set(FIELDS)


def test_no_flag_disappears_or_moves():
    flags = [o for p in _run_command().params for o in (*p.opts, *p.secondary_opts)]
    missing = [f for f in FLAGS_BEFORE if f not in flags]
    assert not missing, missing
    positions = [flags.index(f) for f in FLAGS_BEFORE]
    assert positions == sorted(positions), "the options of 'wae run --help' changed order"


def _shown_default(value: Any) -> str | None:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int | str):
        return str(value)
    if value == []:
        return "none"
    return None  # None or an empty mapping


@pytest.mark.parametrize("name", [n for n in FIELDS if n not in NOT_ON_THE_COMMAND_LINE])
def test_each_option_has_its_field_help_and_default(name):
    f = FIELDS[name]
    option = cli_option(f)
    assert option is not None
    param = _params()[name]
    assert param.default is None  # not given: the preset, file and defaults decide
    shown = Text.from_markup(param.help).plain
    assert shown.startswith(option.help), (shown, option.help)
    default = f.default_factory() if callable(f.default_factory) else f.default
    expected = _shown_default(default)
    if expected is not None:  # the help tells the field's default (explained, at times)
        assert f"[default: {expected}" in shown, (shown, expected)
    elif option.default_help is not None:  # None or empty: the help explains what it means
        assert shown.endswith(f"[default: {option.default_help}]"), shown
    else:
        assert "[default:" not in shown, shown


def test_every_setting_has_a_round_trip_value():
    assert set(VALUES) == set(FIELDS) - set(NOT_ON_THE_COMMAND_LINE)
    defaults = RunConfig()
    for name, (_, value) in VALUES.items():
        assert getattr(defaults, name) != value, f"VALUES[{name!r}] is the default"


@pytest.mark.parametrize("name", sorted(VALUES))
def test_each_flag_sets_its_field(name, captured, capsys):
    args, value = VALUES[name]
    code, output = _wae(capsys, "run", *args)
    assert code == 0, output
    config, sources = captured["config"], captured["sources"]
    assert getattr(config, name) == value
    assert sources[name] == "command line"


def test_boolean_flags_turn_off_what_a_file_turns_on(captured, capsys, tmp_path):
    exp = tmp_path / "exp.toml"
    exp.write_text('overwrite = true\ncompile = true\ntrack = ["tensorboard"]\n')
    code, output = _wae(capsys, "run", "-c", str(exp), "--no-overwrite", "--no-compile")
    assert code == 0, output
    config, sources = captured["config"], captured["sources"]
    assert (config.overwrite, config.compile, config.track) == (False, False, ["tensorboard"])
    assert sources["compile"] == sources["overwrite"] == "command line"
    code, output = _wae(capsys, "run", "-c", str(exp), "--track", "")
    assert code == 0, output
    assert captured["config"].track == []  # an empty --track turns the file's trackers off


def test_options_not_given_leave_the_lower_layers(captured, capsys):
    code, output = _wae(capsys, "run", "--preset", "digits-gan", "--lr-schedule", "paper")
    assert code == 0, output
    config, sources = captured["config"], captured["sources"]
    assert sources["lr_schedule"] == "command line" and config.lr_schedule is None
    assert sources["penalty"] == "preset digits-gan" and sources["seed"] == "default"


def test_resume_names_the_flags_to_drop(capsys, tmp_path):
    code, output = _wae(capsys, "run", "--resume", str(tmp_path), "--lambda", "2", "-o", "x")
    assert code == 2
    assert "drop --lambda, --out (only --threads" in " ".join(output.split())


@dataclasses.dataclass
class _WithKnob(RunConfig):
    """RunConfig and one more setting, declared the way every setting is."""

    knob: int = dataclasses.field(default=7, metadata=cli("A new knob.", "--knob", "-k"))


def test_a_new_field_becomes_an_option_without_touching_the_cli(monkeypatch):
    """A throwaway field, on a RunConfig subclass: the run command built from it takes the new
    option, shows its help and default, and passes it on as a setting."""
    seen: dict[str, Any] = {}

    def resolve(preset: str | None, given: dict[str, Any], config_file: str | None = None):
        seen.update(given)
        raise typer.Exit(0)

    import wae_toolkit.config.presets as presets

    monkeypatch.setattr(run_cmd, "RunConfig", _WithKnob)
    monkeypatch.setattr(presets, "resolve_config", resolve)
    app_with_knob = typer.Typer()
    app_with_knob.command("run")(run_cmd.run_command(COMPLETERS))
    app_with_knob.command("other")(lambda: None)
    runner = CliRunner()
    result = runner.invoke(app_with_knob, ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--knob" in result.output and "A new knob. [default: 7]" in result.output
    result = runner.invoke(app_with_knob, ["run", "-k", "9", "--lambda", "2"])
    assert result.exit_code == 0, result.output
    assert seen == {"knob": 9, "lam": 2.0}


def test_parsing_follows_the_declaration():
    options = {o.name: o for o in field_options(_WithKnob, COMPLETERS)}
    assert options["knob"].flag == "--knob" and options["lam"].flag == "--lambda"
    assert all(isinstance(o.parameter, inspect.Parameter) for o in options.values())
    assert given_settings({"knob": None, "cost_opts": []}, options.values()) == {}
    given = given_settings(
        {"knob": 3, "cost_opts": ["a=1"], "track": ["x,Y", "x"], "lr_schedule": "none"},
        options.values(),
    )
    assert given == {"knob": 3, "cost_opts": {"a": "1"}, "track": ["x", "y"], "lr_schedule": []}


def test_a_bad_declaration_is_named():
    @dataclasses.dataclass
    class Bad:
        pairs: list[tuple[int, int]] = dataclasses.field(
            default_factory=list, metadata=cli("Pairs.")
        )

    with pytest.raises(TypeError, match="Bad.pairs"):
        field_options(Bad)

    @dataclasses.dataclass
    class Unknown:
        name: str = dataclasses.field(default="", metadata=cli("A name.", complete="nothing"))

    with pytest.raises(TypeError, match="Unknown.name: no completion called 'nothing'"):
        field_options(Unknown, COMPLETERS)


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("wae run --track mlflow,tens", {"mlflow,tensorboard"}),
        ("wae run --preset mnist-m", {"mnist-mmd"}),
    ],
)
def test_non_plugin_values_complete(words, expected):
    names, _ = _complete(words)
    assert set(names) == expected
