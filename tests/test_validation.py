"""Every configuration value is validated before any work starts, with one message per problem.

Property-based: hypothesis throws random settings at :meth:`RunConfig.from_dict` and
:meth:`RunConfig.validate`, random option values at ``wae run`` and malformed ``config.json``
files at :func:`wae_toolkit.runs.folder.load_run`, ``wae eval`` and ``wae run --resume``. Whatever
comes in: no traceback escapes, every rejection is one clear sentence per problem (exit code 2
from the CLI), and nothing on disk changes. No example trains: every CLI example is invalid by
construction, so it is rejected before the data are read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import pickle
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from wae_toolkit.cli.app import main
from wae_toolkit.config.checks import MAX_LATENT_DIM
from wae_toolkit.config.settings import RunConfig
from wae_toolkit.errors import UsageError

FIELDS = tuple(f.name for f in dataclasses.fields(RunConfig))
PLUGIN_NAMES = {
    "cost": ["l2", "l1", "bce"],
    "penalty": ["mmd-imq", "mmd-rbf", "gan-js", "sinkhorn", "swd", "wgan-gp", "kl"],
    "prior": ["gaussian", "gmm", "sphere", "uniform"],
    "network": ["mlp", "conv"],
}


def examples(n: int) -> settings:
    """``n`` examples, no per-example deadline (the first one imports torch and the plugins)."""
    return settings(
        max_examples=n,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _run_flags() -> set[str]:
    import typer

    from wae_toolkit.cli.app import app

    group = typer.main.get_command(app)
    run = group.commands["run"]  # type: ignore[attr-defined]
    return {opt for p in run.params for opt in p.opts}


#: The flags of ``wae run`` in this version (flags such as --checkpoint-every are tested where
#: they exist).
RUN_FLAGS = _run_flags()


# ---------------------------------------------------------------------------------------------
# helpers


def wae(*args: str) -> tuple[int, str]:
    """Run ``wae ARGS`` in this process; return (exit code, stdout + stderr).

    Hypothesis cannot use pytest's function-scoped ``capsys``; the CLI's rich consoles and
    Typer write to whatever ``sys.stdout`` and ``sys.stderr`` are when they print.
    """
    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code
    assert isinstance(code, int), code  # anything else escaped main() as an exception
    return code, out.getvalue() + err.getvalue()


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error:")]


def assert_clean_rejection(code: int, output: str) -> list[str]:
    """Exit code 2, no traceback; returns the ``Error:`` lines (none for Typer's own errors)."""
    assert code == 2, output
    assert "Traceback" not in output, output
    lines = error_lines(output)
    if not lines:  # Typer refused the text of a flag (not an int, say): its own usage box
        assert "Invalid value" in output or "Usage:" in output, output
    for line in lines:
        assert_sentence(line.removeprefix("Error:").strip())
    return lines


def assert_sentence(line: str) -> None:
    """One line of text ending like a sentence; short enough to read."""
    assert line and "\n" not in line, repr(line)
    assert line.endswith((".", "?")), repr(line)
    assert "Traceback" not in line and 'File "' not in line, line
    assert len(line) < 1000, line


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file and folder under ``root``: path -> bytes (None for folders)."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    } | {".": None}


def mentions(line: str, field: str) -> bool:
    """Whether a message names ``field`` (the CLI spells some settings differently)."""
    words = {field, field.removesuffix("_opts"), field.replace("_", "-")}
    return any(w in line for w in words)


# JSON-like values, with the ones JSON cannot spell (nan, inf, huge ints) that Python callers
# can still pass.
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.sampled_from([0, 1, 2, -1, 10**400, 2**63, 2**31])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["", " ", "nan", "none", "true", "8", "1e999", "cuda:x", "gaussian"])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=8,
)
junk_keys = st.text(min_size=1, max_size=10).filter(lambda k: k not in FIELDS)


# ---------------------------------------------------------------------------------------------
# a. RunConfig.from_dict + validate on random dictionaries


@examples(200)
@given(st.dictionaries(st.sampled_from(FIELDS) | junk_keys, json_values, max_size=6))
def test_random_settings_validate_or_say_what_is_wrong(d: dict[str, Any]) -> None:
    """Either the settings are valid, or UsageError (never another exception) with one sentence
    per line, each naming a setting; unknown keys are named in the refusal."""
    try:
        config = RunConfig.from_dict(d)
    except UsageError as exc:
        unknown = [k for k in d if k not in FIELDS]
        assert unknown, exc
        message = str(exc)
        assert_sentence(message)
        # each unknown key is quoted (long ones cut, so the message stays one readable line)
        assert all(" ".join(repr(k).split())[:20] in message for k in unknown), message
        return
    try:
        config.validate()
    except UsageError as exc:
        lines = str(exc).splitlines()
        assert lines
        for line in lines:
            assert_sentence(line)
            assert any(mentions(line, f) for f in d), (line, d)


@pytest.mark.parametrize("value", [[], [1, 2], "settings", 3, None, {"epochs"}])
def test_settings_that_are_not_a_mapping_are_refused(value: Any) -> None:
    with pytest.raises(UsageError, match="must be a mapping"):
        RunConfig.from_dict(value)


def _field_values(field: str) -> st.SearchStrategy[Any]:
    kind = field.removesuffix("_opts")
    if field in PLUGIN_NAMES:  # real names give the combinations (kl without gaussian...)
        return st.sampled_from(PLUGIN_NAMES[field]) | json_values
    if field.endswith("_opts") and kind in PLUGIN_NAMES:
        return st.dictionaries(st.text(max_size=10), json_values, max_size=2) | json_values
    return json_values


@st.composite
def one_bad_field(draw: st.DrawFn) -> tuple[str, Any]:
    field = draw(st.sampled_from([f for f in FIELDS if f not in ("data_opts", "out")]))
    return field, draw(_field_values(field))


BASE = RunConfig(latent_dim=4, device="cpu", network_opts={"hidden": [8]}).to_dict()


@examples(250)
@given(one_bad_field())
def test_one_bad_setting_gets_one_message_that_names_it(case: tuple[str, Any]) -> None:
    """Change one setting of a valid configuration to a random value: it stays valid, or the
    refusal is exactly one sentence and it names that setting."""
    field, value = case
    d = {**BASE, field: value}
    config = RunConfig.from_dict(d)
    try:
        config.validate()
    except UsageError as exc:
        lines = str(exc).splitlines()
        assert len(lines) == 1, (field, value, lines)
        assert_sentence(lines[0])
        assert mentions(lines[0], field), (field, value, lines)


def test_ranges_types_and_combinations_each_get_one_message() -> None:
    """Each problem alone gives exactly one sentence saying what is allowed; several problems
    give one line each, all at once."""
    cases = {
        "needs a Gaussian encoder": {"penalty": "kl"},
        "disagrees with the latent dimension (4)": {"prior_opts": {"dim": 3}},
        "prior_opts dim must be an integer": {"prior_opts": {"dim": "x"}},
        "logvar_l1 applies to a Gaussian encoder only": {"logvar_l1": 1.0},
        "lr must be a finite number > 0; got nan": {"lr": math.nan},
        "lam must be a finite number >= 0; got inf": {"lam": math.inf},
        "seed must be an integer from 0 to": {"seed": 2**63},
        "threads must be an integer from 1 to": {"threads": 2**31},
        "latent_dim must be an integer from 1 to 65536": {"latent_dim": MAX_LATENT_DIM + 1},
        "device must be auto, cpu, cuda, cuda:N or mps": {"device": "auto:3"},
        "overwrite must be true or false": {"overwrite": "yes"},
        "out must be a folder path": {"out": ""},
        "lr_schedule must be a list": {"lr_schedule": 5},
        "lr_schedule entries must be": {"lr_schedule": [[1, 0.5], "x", [2]]},
        "penalty_opts must be a mapping": {"penalty_opts": ["scales"]},
        "The penalty 'mmd-imq' has no option 'sclaes'. Did you mean 'scales'?": {
            "penalty_opts": {"sclaes": 1}
        },
        "Bad value 'abc' for option 'block'": {"penalty_opts": {"block": "abc"}},
        "block must be a positive integer": {"penalty_opts": {"block": 0}},
        "Bad options for network 'mlp': hidden must be": {"network_opts": {"hidden": [0]}},
        "The Gaussian prior's std must be a finite number > 0": {"prior_opts": {"std": math.inf}},
        # found only by drawing two samples from the prior
        "draws infinite or NaN samples": {
            "prior": "gmm",
            "prior_opts": {"components": 1, "means": [math.inf] * 4},
        },
        "Unknown prior 'gausian'": {"prior": "gausian"},
        # more categories than torch.multinomial takes
        "components between 1 and 16,777,216": {
            "prior": "gmm",
            "prior_opts": {"components": 2**24 + 1},
            "latent_dim": 1,
        },
    }
    for words, change in cases.items():
        with pytest.raises(UsageError) as exc:
            RunConfig.from_dict({**BASE, **change}).validate()
        assert words in str(exc.value), (change, str(exc.value))
        assert len(str(exc.value).splitlines()) == 1, str(exc.value)
    # Every problem at once, one line each.
    bad = {**BASE, "epochs": 0, "penalty": "kl", "prior_opts": {"dim": 3}, "lr": -1}
    lines = str(pytest.raises(UsageError, RunConfig.from_dict(bad).validate).value).splitlines()
    assert len(lines) == 4, lines


def test_huge_models_are_refused_before_they_are_allocated() -> None:
    """Sizes that would exhaust memory are refused by a dry run on torch's meta device, not by
    an allocation failure (or the out-of-memory killer) inside torch."""
    for change in (
        {"penalty": "gan-js", "penalty_opts": {"hidden": 10**7}},
        {"prior": "gmm", "prior_opts": {"components": 2**24}, "latent_dim": 65536},
    ):
        with pytest.raises(UsageError, match="more than this machine's"):
            RunConfig.from_dict({**BASE, **change}).validate()
    from wae_toolkit.assembly.components import build_components

    big = RunConfig.from_dict({**BASE, "latent_dim": 60000, "network_opts": {"hidden": [10**6]}})
    with pytest.raises(UsageError, match="more than this machine's"):
        build_components(big, (1, 8, 8), (0.0, 1.0))


def test_validation_leaves_the_random_state_alone() -> None:
    """Creating the plugins to check them (a critic's initial weights) draws no random numbers
    from torch's global generator: a seeded run is the same with or without validation."""
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    RunConfig.from_dict({**BASE, "penalty": "gan-js", "prior": "gmm"}).validate()
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(
    ("shape", "value_range", "words"),
    [
        ((-1,), None, "sample shape"),
        ((), None, "sample shape"),
        ((1, 8.5, 8), None, "sample shape"),
        ((1, 8, 8), (math.nan, 1.0), "value range"),
        ((1, 8, 8), (1.0, 0.0), "value range"),
        ((1, 8, 8), (0.0,), "value range"),
    ],
)
def test_build_components_checks_the_data_description(
    shape: Any, value_range: Any, words: str
) -> None:
    from wae_toolkit.assembly.components import build_components

    with pytest.raises(UsageError, match=words):
        build_components(RunConfig.from_dict(BASE), shape, value_range)


# ---------------------------------------------------------------------------------------------
# b. `wae run` with bad option values: exit 2, one clear line per problem, nothing written


def _ints(low: int, high: int | None = None) -> st.SearchStrategy[str]:
    """Text of integers outside [low, high], and text that is no integer at all."""
    outside = st.integers(max_value=low - 1)
    if high is not None:
        outside = outside | st.integers(min_value=high + 1, max_value=high + 2**70)
    junk = st.sampled_from(["abc", "1.5", "", "nan", "1e3", "--"])
    return outside.map(str) | junk


def _floats(*refused: st.SearchStrategy[float]) -> st.SearchStrategy[str]:
    """Text of refused numbers (nan and infinities always are), and non-numbers."""
    always = st.sampled_from(["nan", "inf", "-inf", "abc", "1e999", "-1e999", ""])
    return st.one_of(*refused).map(repr) | always


TINY = 5e-324  # the smallest positive float
negative = st.floats(max_value=-TINY)


NUMERIC_FLAGS: dict[str, st.SearchStrategy[str]] = {
    "--epochs": _ints(1),
    "--batch-size": _ints(1) | st.just("1"),
    "--latent-dim": _ints(1, MAX_LATENT_DIM),
    "--seed": _ints(0, 2**63 - 1),
    "--threads": _ints(1, 2**31 - 1),
    "--log-every": _ints(1),
    "--eval-every": _ints(1),
    "--checkpoint-every": _ints(1),
    "--keep-checkpoints": _ints(1),
    "--skip-bad-steps": _ints(0),
    "--pretrain-steps": _ints(0),
    "--lr": _floats(st.floats(max_value=0.0)),
    "--lambda": _floats(negative),
    "--input-noise": _floats(negative),
    "--logvar-l1": _floats(negative),
    "--beta1": _floats(negative, st.floats(min_value=1.0)),
    "--beta2": _floats(negative, st.floats(min_value=1.0)),
}
NUMERIC_FLAGS = {k: v for k, v in NUMERIC_FLAGS.items() if k in RUN_FLAGS}

#: Option names the default plugins (l2, mmd-imq, gaussian, mlp) have, and some they lack.
OPTION_NAMES = {
    "--cost-opt": ["scale", "eps", "zz"],
    "--penalty-opt": ["scales", "bandwidth", "estimator", "block", "compiled", "hidden", "zz"],
    "--prior-opt": ["std", "dim", "components", "zz"],
    "--network-opt": ["hidden", "activation", "width", "zz"],
}
option_values = st.text(max_size=8) | st.sampled_from(
    ["0", "-1", "nan", "inf", "1e999", "abc", "", "1,2", "(0.5,", "true", "none", "2"]
)
random_plugin_option = st.sampled_from(sorted(OPTION_NAMES)).flatmap(
    lambda flag: st.tuples(
        st.just(flag),
        st.builds(
            lambda name, value: f"{name}={value}",
            st.sampled_from(OPTION_NAMES[flag]),
            option_values.filter(lambda v: "\n" not in v and "\r" not in v),
        ),
    )
)


@dataclasses.dataclass
class Places:
    """A scratch folder with a previous run (whose files must survive every rejection)."""

    root: Path
    previous: Path
    before: dict[str, bytes | None]


@pytest.fixture(scope="module")
def places() -> Iterator[Places]:
    root = Path(tempfile.mkdtemp(prefix="wae-validation-"))
    previous = root / "previous-run"
    (previous / "checkpoints").mkdir(parents=True)
    (previous / "config.json").write_text(json.dumps({"run": {"epochs": 3}}))
    (previous / "model.safetensors").write_bytes(b"\x08\x00weights that must survive")
    (previous / "metrics.jsonl").write_text('{"kind": "step"}\n')
    (previous / "checkpoints" / "step-1.pt").write_bytes(b"checkpoint")
    (previous / "my-notes.txt").write_text("keep me")
    yield Places(root, previous, snapshot(previous))
    shutil.rmtree(root, ignore_errors=True)


def _target(places: Places, where: str) -> tuple[list[str], Path]:
    if where == "new":
        return ["--out", str(places.root / "new-run")], places.root / "new-run"
    if where == "previous":
        return ["--out", str(places.previous)], places.previous
    return ["--out", str(places.previous), "--overwrite"], places.previous


def _check_nothing_changed(places: Places, out_dir: Path) -> None:
    assert snapshot(places.previous) == places.before, "a rejected run changed the old run"
    assert not (places.root / "new-run").exists(), "a rejected run created its folder"
    assert sorted(p.name for p in places.root.iterdir()) == ["previous-run"]


FAST = ["--data-opt", "limit=200", "--device", "cpu"]


@examples(100)
@given(
    bad=st.dictionaries(
        st.sampled_from(sorted(NUMERIC_FLAGS)), st.just(None), min_size=1, max_size=3
    ).flatmap(lambda d: st.fixed_dictionaries({k: NUMERIC_FLAGS[k] for k in d})),
    options=st.lists(random_plugin_option, max_size=3),
    where=st.sampled_from(["new", "previous", "previous+overwrite"]),
)
def test_bad_numbers_are_refused_and_nothing_is_written(
    places: Places, bad: dict[str, str], options: list[tuple[str, str]], where: str
) -> None:
    """At least one numeric flag has a bad value (random plugin options ride along): exit 2,
    one sentence per problem naming the setting, and no file is created or touched."""
    args = [a for flag, value in bad.items() for a in (flag, value)]
    args += [a for flag, value in options for a in (flag, value)]
    out_args, out_dir = _target(places, where)
    code, output = wae("run", *out_args, *FAST, *args)
    lines = assert_clean_rejection(code, output)
    event("refused by the toolkit" if lines else "refused by Typer (not a number)")
    if lines:  # every bad numeric flag is named by its own line
        for flag in bad:
            setting = flag.removeprefix("--").replace("-", "_")
            names = (setting, flag, "lam" if flag == "--lambda" else setting)
            assert any(any(n in line for n in names) for line in lines), (flag, lines)
    _check_nothing_changed(places, out_dir)


#: Plugin choices and options that are always wrong (with the default plugins unless named).
BAD_PLUGIN_ARGS = [
    ["--penalty-opt", "scales=abc"],
    ["--penalty-opt", "scales=0"],
    ["--penalty-opt", "scales=-1,2"],
    ["--penalty-opt", "scales=nan"],
    ["--penalty-opt", "scales="],
    ["--penalty-opt", "block=0"],
    ["--penalty-opt", "block=-3"],
    ["--penalty-opt", "block=1.5"],
    ["--penalty-opt", "bandwidth=-1"],
    ["--penalty-opt", "bandwidth=inf"],
    ["--penalty-opt", "bandwidth=wide"],
    ["--penalty-opt", "estimator=fast"],
    ["--penalty-opt", "compiled=maybe"],
    ["--penalty-opt", "noequals"],
    ["--prior-opt", "=3"],
    ["--prior-opt", "dim=-1"],
    ["--prior-opt", "dim=abc"],
    ["--prior-opt", "std=0"],
    ["--prior-opt", "std=nan"],
    ["--prior-opt", "std=inf"],
    ["--prior-opt", "std=-2"],
    ["--network-opt", "width=0"],
    ["--network-opt", "hidden=0"],
    ["--network-opt", "hidden=abc"],
    ["--network-opt", "hidden="],
    ["--network-opt", "activation=nope"],
    ["--cost-opt", "scale=0"],
    ["--cost-opt", "scale=nan"],
    ["--cost-opt", "scale=x"],
    ["--penalty", "gan-js", "--penalty-opt", "hidden=0"],
    ["--penalty", "gan-js", "--penalty-opt", "lr=nan"],
    ["--penalty", "gan-js", "--penalty-opt", "hidden=10000000", "--latent-dim", "8"],
    ["--penalty", "sinkhorn", "--penalty-opt", "p=3"],
    ["--penalty", "swd", "--penalty-opt", "projections=0"],
    ["--prior", "gmm", "--prior-opt", "components=0"],
    ["--prior", "gmm", "--prior-opt", "weights=1,2"],
    ["--prior", "sphere", "--penalty", "gan-js", "--penalty-opt", "prior_logit=true"],
    ["--penalty", "kl"],
    ["--penalty", "kl", "--encoder", "gaussian", "--penalty-opt", "estimator=bad"],
    ["--prior-opt", "dim=3", "--latent-dim", "4"],
    ["--network", "conv", "--network-opt", "kernel=7"],
    ["--penalty", "mmd-imk"],
    ["--prior", "nope"],
]


@examples(100)
@given(
    cases=st.lists(st.sampled_from(BAD_PLUGIN_ARGS), min_size=1, max_size=3),
    unknown=st.lists(
        st.tuples(
            st.sampled_from(sorted(OPTION_NAMES)),
            st.from_regex(r"zz[a-z_]{0,6}=[a-z0-9.,]{0,6}", fullmatch=True),
        ),
        max_size=2,
    ),
    where=st.sampled_from(["new", "previous", "previous+overwrite"]),
)
def test_bad_plugin_options_are_refused_and_nothing_is_written(
    places: Places, cases: list[list[str]], unknown: list[tuple[str, str]], where: str
) -> None:
    """Wrong plugin names, option names, option values and combinations (kl without a Gaussian
    encoder, a prior dimension that is not the latent dimension, a critic too large for memory):
    exit 2, clean sentences, no traceback, nothing written."""
    args = [a for case in cases for a in case]
    args += [a for flag, text in unknown for a in (flag, text)]
    out_args, out_dir = _target(places, where)
    code, output = wae("run", *out_args, *FAST, "--epochs", "1", *args)
    lines = assert_clean_rejection(code, output)
    assert lines, output
    _check_nothing_changed(places, out_dir)


# ---------------------------------------------------------------------------------------------
# c. Malformed config.json in a run folder


@pytest.fixture(scope="module")
def run_folder() -> Iterator[tuple[Path, dict[str, Any]]]:
    """A small, valid run folder (built, not trained), and its config.json record."""
    from wae_toolkit.assembly.components import build_components
    from wae_toolkit.runs.folder import load_run, save_weights, write_json

    root = Path(tempfile.mkdtemp(prefix="wae-validation-run-"))
    folder = root / "run"
    folder.mkdir()
    config = RunConfig(latent_dim=2, network_opts={"hidden": [8]}, out=str(folder), device="cpu")
    comps = build_components(config, (1, 8, 8), (0.0, 1.0))
    opts = {f"{k}_opts": v["options"] for k, v in comps.plugins.items()}
    record = {
        "run": {**config.to_dict(), **opts},
        "plugins": comps.plugins,
        "data": {"name": "digits", "sample_shape": [1, 8, 8], "value_range": [0.0, 1.0]},
    }
    write_json(folder / "config.json", record)
    tensors = {f"model.{k}": v for k, v in comps.model.state_dict().items()}
    tensors |= {f"penalty.{k}": v for k, v in comps.penalty.state_dict().items()}
    save_weights(folder / "model.safetensors", tensors)
    load_run(folder)  # the untouched folder loads
    yield folder, json.loads((folder / "config.json").read_text())
    shutil.rmtree(root, ignore_errors=True)


@st.composite
def malformed_config(draw: st.DrawFn, record: dict[str, Any]) -> bytes:
    """Bytes for config.json that are no valid run configuration."""
    text = json.dumps(record, indent=2)
    kind = draw(
        st.sampled_from(["bytes", "truncated", "pickle", "not-an-object", "no-run", "bad-run"])
    )
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    if kind == "truncated":
        return text[: draw(st.integers(0, len(text.rstrip()) - 1))].encode()
    if kind == "pickle":
        return pickle.dumps(record, protocol=draw(st.integers(0, pickle.HIGHEST_PROTOCOL)))
    if kind == "not-an-object":
        value = draw(json_values.filter(lambda v: not isinstance(v, dict)))
        return json.dumps(value).encode()
    if kind == "no-run":
        junk = draw(st.dictionaries(st.text(max_size=6).filter(lambda k: k != "run"), json_values))
        return json.dumps({**{k: v for k, v in record.items() if k != "run"}, **junk}).encode()
    # a run section that is not a mapping, or with one setting that is always wrong
    run = draw(
        json_values.filter(lambda v: not isinstance(v, dict))
        | st.sampled_from(
            [
                {**record["run"], "epochs": "ten"},
                {**record["run"], "lr": None},
                {**record["run"], "lr": [0.1]},
                {**record["run"], "latent_dim": 0},
                {**record["run"], "encoder": {"kind": "gaussian"}},
                {**record["run"], "penalty_opts": {"scales": {"a": [1]}}},
                {**record["run"], "penalty_opts": "scales"},
                {**record["run"], "prior_opts": {"dim": 5}},
                {**record["run"], "lr_schedule": "paper"},
                {**record["run"], "penalty": "kl"},
                {**record["run"], "unknown_setting": 1},
                {**record["run"], "network_opts": {"hidden": [10**9]}, "latent_dim": 60000},
            ]
        )
    )
    return json.dumps({**record, "run": run}).encode()


def _with_config(folder: Path, content: bytes) -> dict[str, bytes | None]:
    (folder / "config.json").write_bytes(content)
    return snapshot(folder)


@examples(120)
@given(data=st.data())
def test_malformed_config_files_are_refused_by_load_run(
    run_folder: tuple[Path, dict[str, Any]], data: st.DataObject
) -> None:
    from wae_toolkit.runs.folder import load_run

    folder, record = run_folder
    before = _with_config(folder, data.draw(malformed_config(record)))
    with pytest.raises(UsageError) as exc:
        load_run(folder)
    for line in str(exc.value).splitlines():
        assert_sentence(line)
    assert snapshot(folder) == before


@examples(60)
@given(data=st.data())
def test_malformed_config_files_are_refused_by_the_cli(
    run_folder: tuple[Path, dict[str, Any]], data: st.DataObject
) -> None:
    """``wae eval RUN`` (and ``wae run --resume RUN`` where it exists) on a folder whose
    config.json is malformed: exit 2, no traceback, the folder unchanged."""
    folder, record = run_folder
    before = _with_config(folder, data.draw(malformed_config(record)))
    commands = [["eval", str(folder)]]
    if "--resume" in RUN_FLAGS:
        commands.append(["run", "--resume", str(folder)])
    for command in commands:
        code, output = wae(*command)
        assert error_lines(output), output
        assert_clean_rejection(code, output)
        assert snapshot(folder) == before


# Sections of the wrong shape: refused by load_run with one sentence, like malformed JSON.
WRONG_SECTIONS = {
    "plugins is a list": lambda r: {**r, "plugins": []},
    "a plugins entry is text": lambda r: {**r, "plugins": {"cost": "l2"}},
    "value_range has one number": lambda r: {**r, "data": {**r["data"], "value_range": [1]}},
    "sample_shape holds a float": lambda r: {**r, "data": {**r["data"], "sample_shape": [1.5, 8]}},
    "sample_shape is text": lambda r: {**r, "data": {**r["data"], "sample_shape": "188"}},
    "data is a list": lambda r: {**r, "data": []},
}


@pytest.mark.parametrize("change", sorted(WRONG_SECTIONS))
def test_wrong_sections_of_a_run_record(run_folder: tuple[Path, dict[str, Any]], change: str):
    from wae_toolkit.runs.folder import load_run

    folder, record = run_folder
    before = _with_config(folder, json.dumps(WRONG_SECTIONS[change](record)).encode())
    with pytest.raises(UsageError, match="is not a valid run configuration") as exc:
        load_run(folder)
    assert_sentence(str(exc.value))
    assert snapshot(folder) == before


def test_deeply_nested_json_is_refused(run_folder: tuple[Path, dict[str, Any]]) -> None:
    from wae_toolkit.runs.folder import load_run

    folder, _ = run_folder
    before = _with_config(folder, b"[" * 100_000)
    with pytest.raises(UsageError, match="not a JSON file written by wae run"):
        load_run(folder)
    assert snapshot(folder) == before


def test_a_valid_folder_still_loads(run_folder: tuple[Path, dict[str, Any]]) -> None:
    """The malformed examples above did not break the fixture: its config restored, it loads."""
    from wae_toolkit.runs.folder import load_run

    folder, record = run_folder
    _with_config(folder, json.dumps(record).encode())
    assert load_run(folder).config.latent_dim == 2


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--device", "tpu"], "--device must be auto, cpu, cuda, cuda:N or mps; got 'tpu'"),
        (["--device", "cuda:x"], "--device"),
        (["--seed", str(2**64)], "--seed must be an integer from 0 to 2^63 - 1"),
        (["--seed", "-1"], "--seed must be an integer from 0 to 2^63 - 1"),
        (["--exact-max", "-3"], "--exact-max must be an integer >= 0"),
    ],
)
def test_eval_flags_are_checked_before_loading(
    run_folder: tuple[Path, dict[str, Any]], flags: list[str], message: str
) -> None:
    folder, _ = run_folder
    before = snapshot(folder)
    code, output = wae("eval", str(folder), *flags)
    assert_clean_rejection(code, output)
    assert message in output
    assert snapshot(folder) == before


@pytest.mark.parametrize(
    ("prior", "options", "message"),
    [
        ("gaussian", {"std": float("inf")}, "std must be a finite number > 0"),
        ("gmm", {"std": float("inf")}, "std must be a finite number > 0"),
        ("gmm", {"radius": float("nan")}, "radius must be a finite number"),
        ("gmm", {"components": 2**24 + 1}, "components between 1 and 16,777,216"),
        ("gmm", {"components": 2, "stds": (1.0, float("inf"))}, "stds must be 2 positive"),
    ],
)
def test_prior_options_that_cannot_be_sampled_are_named(prior, options, message):
    from wae_toolkit.plugins import registry

    with pytest.raises(UsageError, match=message):
        registry.create("prior", prior, dim=2, **options)
