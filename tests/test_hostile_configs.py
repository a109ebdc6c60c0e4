"""Hostile configuration files against ``wae run --config`` and ``wae config show --config``.

Alias bombs, deep nesting, keys that are not text, integers of thousands of digits, option
tables that are not tables, files that are folders, pipes or devices: each is refused with one
sentence per line (exit 1 or 2), no traceback, and nothing written. The limits
(:data:`~wae_toolkit.config.configfile.MAX_BYTES`, :data:`~wae_toolkit.config.configfile.MAX_DEPTH`,
:data:`~wae_toolkit.config.configfile.MAX_VALUES`) are in docs/configuration.md.

Property-based: hypothesis writes files of random nesting depth, random YAML keys, huge numbers,
random values of real settings and random bytes; every one is accepted (and then a valid
:class:`~wae_toolkit.RunConfig`) or refused cleanly. No example trains: the fuzz uses
``wae config show`` and :func:`~wae_toolkit.config.presets.resolve_config` only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wae_toolkit as wt
from wae_toolkit.config.configfile import MAX_BYTES, MAX_DEPTH, MAX_VALUES, read_config_file
from wae_toolkit.config.presets import resolve_config
from wae_toolkit.config.settings import RunConfig
from wae_toolkit.errors import UsageError, did_you_mean

from .test_validation import assert_sentence, error_lines, json_values, snapshot, wae

FIELDS = tuple(f.name for f in dataclasses.fields(RunConfig))
N = 50_000  # the audit's nesting depth
BIG = "9" * 5_000  # more digits than Python converts (4300)
LONG = "9" * 4_000  # parseable, far beyond 64 bits


def examples(n: int) -> settings:
    """``n`` examples, no deadline; the examples share ``tmp_path`` (each removes its file)."""
    return settings(
        max_examples=n,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )


def assert_refused(code: int, output: str) -> list[str]:
    """Exit 1 or 2, no traceback, at least one ``Error:`` line and each one sentence."""
    assert code in (1, 2), (code, output[-2000:])
    assert "Traceback" not in output, output[-2000:]
    lines = error_lines(output)
    assert lines, output[-2000:]
    for line in lines:
        assert_sentence(line.removeprefix("Error:").strip())
    return lines


def alias_bomb(levels: int = 9, indent: str = "") -> str:
    """The billion laughs: each level is nine aliases of the one before (9**9 values)."""
    lines = [f"{indent}a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        prev, name = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{indent}{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    return "\n".join(lines) + "\n"


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _folder(path: Path) -> None:
    path.mkdir()


#: (id, file name, content or a function making the file, extra flags of ``wae run``, words
#: the refusal must contain). Each case failed before: a traceback, a hang, a pathological
#: wait or memory use, an acceptance, or a message that did not say what is allowed.
CASES: list[tuple[str, str, str | bytes | Callable[[Path], None], list[str], str]] = [
    # 1. the alias bomb (the audit's file, and the same inside a real setting)
    ("alias-bomb", "bomb.yaml", alias_bomb(), [], f"more than {MAX_VALUES} values"),
    (
        "alias-bomb-in-data-opts",
        "bomb.yaml",
        "data_opts:\n" + alias_bomb(indent="  "),
        [],
        f"more than {MAX_VALUES} values",
    ),
    ("alias-in-itself", "cycle.yaml", "track: &a [*a]\n", [], "inside the value it names"),
    ("wide-flat-list", "flat.yaml", "track: [" + "x," * 150_000 + "]\n", [], "values"),
    ("too-large", "big.toml", "# " + "x" * MAX_BYTES + "\nepochs = 1\n", [], "larger than 1 MiB"),
    # 2. deep nesting
    ("deep-json", "deep.json", "[" * N + "]" * N, [], "32 levels deep"),
    ("deep-json-in-setting", "deep.json", '{"track": ' + "[" * N + "]" * N + "}", [], "32 levels"),
    ("deep-toml", "deep.toml", "track = " + "[" * N + "]" * N + "\n", [], "32 levels deep"),
    ("deep-toml-inline", "deep.toml", "a = " + "{b = " * N + "1" + "}" * N, [], "32 levels"),
    ("deep-toml-tables", "deep.toml", "[" + ".".join(["a"] * N) + "]\n", [], "32 levels"),
    ("deep-toml-dotted-key", "deep.toml", ".".join(["a"] * 5_000) + " = 1\n", [], "32 levels"),
    ("deep-yaml-flow", "deep.yaml", "track: " + "[" * N + "]" * N + "\n", [], "32 levels"),
    ("deep-yaml-block", "deep.yaml", "track:\n" + "- " * N + "x\n", [], "32 levels deep"),
    ("deep-yaml-maps", "deep.yaml", "data_opts: " + "{a: " * N + "1" + "}" * N, [], "32 levels"),
    (
        "moderately-deep-json",  # parses, but deeper than any setting
        "deep.json",
        json.dumps({"data_opts": {"a": json.loads("[" * 40 + "]" * 40)}}),
        [],
        "32 levels deep",
    ),
    # 3. keys that are not text
    ("int-key", "keys.yaml", "1: 2\n", [], "the key 1 (an integer) on line 1 is not text"),
    ("null-key", "keys.yaml", "null: x\n", [], "the key null (null) on line 1 is not text"),
    ("list-key", "keys.yaml", "[1, 2]: x\n", [], "(a list) on line 1 is not text"),
    ("bool-key", "keys.yaml", "true: 1\n", [], "the key true (a boolean) on line 1 is not text"),
    ("int-option", "keys.yaml", "penalty_opts:\n  1: 2\n", [], "on line 2 is not text"),
    ("null-option", "keys.yaml", "data_opts: {~: 3}\n", [], "is not text"),
    ("map-key", "keys.yaml", "? {a: 1}\n: x\n", [], "(a table) on line 1 is not text"),
    # 4. integers of thousands of digits
    ("huge-int-json", "big.json", '{"epochs": ' + BIG + "}", [], "too long to read"),
    ("huge-int-toml", "big.toml", f"epochs = {BIG}\n", [], "too long to read"),
    ("huge-int-yaml", "big.yaml", f"epochs: {BIG}\n", [], "too long to read"),
    ("huge-hex-toml", "big.toml", "epochs = 0x" + "f" * 5_000 + "\n", [], "at epochs"),
    ("huge-hex-yaml", "big.yaml", "seed: 0x" + "f" * 5_000 + "\n", [], "at seed"),
    ("huge-sexagesimal-yaml", "big.yaml", "epochs: 1" + ":59" * 3_000 + "\n", [], "64 bits"),
    ("long-int-lam", "big.toml", f"lam = {LONG}\n", [], "beyond 64 bits at lam"),
    ("long-int-lr", "big.json", f'{{"lr": {LONG}}}', [], "beyond 64 bits at lr"),
    ("long-int-epochs", "big.toml", f"epochs = {LONG}\n", [], "beyond 64 bits at epochs"),
    ("long-int-seed", "big.yaml", f"seed: {LONG}\n", [], "beyond 64 bits at seed"),
    (
        "long-int-option",
        "big.toml",
        f'penalty = "gan-js"\n[penalty_opts]\nhidden = {LONG}\n',
        [],
        "at penalty_opts.hidden",
    ),
    ("long-int-in-list", "big.json", f'{{"network_opts": {{"hidden": [{LONG}]}}}}', [], "64"),
    ("long-int-data-opt", "big.yaml", f"data_opts: {{limit: {LONG}}}\n", [], "data_opts.limit"),
    ("long-schedule-epoch", "big.toml", f"lr_schedule = [[{LONG}, 0.5]]\n", [], "64 bits"),
    ("long-schedule-factor", "big.toml", f"lr_schedule = [[1, {LONG}]]\n", [], "64 bits"),
    # 5. option tables that are not tables, also with a flag for the same plugin
    (
        "penalty-opts-text-and-flag",
        "exp.toml",
        'penalty_opts = "abc"\n',
        ["--penalty-opt", "hidden=64"],
        "penalty_opts must be a table of option names to values",
    ),
    (
        "cost-opts-number",
        "exp.toml",
        "cost_opts = 3\n",
        ["--cost-opt", "scale=1"],
        "must be a table",
    ),
    ("prior-opts-list", "exp.json", '{"prior_opts": [1]}', ["--prior-opt", "std=2"], "table"),
    ("network-opts-text", "exp.yaml", "network_opts: x\n", ["--network-opt", "hidden=8"], "table"),
    ("data-opts-bool", "exp.yaml", "data_opts: true\n", ["--data-opt", "limit=300"], "table"),
    ("empty-list-opts", "exp.toml", "penalty_opts = []\n", [], "must be a table of option"),
    # odd files and values
    ("folder", "dir.toml", _folder, [], "is a folder"),
    ("fifo", "pipe.toml", _fifo, [], "not a regular file"),
    ("dev-zero", "zero.toml", _zero, [], "not a regular file"),
    ("invalid-utf8", "bad.toml", b'epochs = "\xff\xfe"\n', [], "is not UTF-8 text"),
    ("date-value", "exp.toml", "[data_opts]\nlimit = 1979-05-27\n", [], "holds a date at data"),
    ("bad-date-yaml", "exp.yaml", "epochs: 2001-02-30\n", [], "not valid YAML"),
    ("binary-yaml", "exp.yaml", "data_opts: {key: !!binary aGk=}\n", [], "holds a binary value"),
    ("set-yaml", "exp.yaml", "data_opts: {key: !!set {a, b}}\n", [], "holds a set"),
    ("newline-in-name", "a\nb.toml", "epoch = 1\n", [], "has an unknown setting 'epoch'"),
]

#: Files refused cleanly before this module existed, kept refused.
ALREADY_REFUSED: list[tuple[str, str, str, str]] = [
    ("top-level-list", "exp.yaml", "- 1\n- 2\n", "must hold a table of run settings"),
    ("top-level-scalar", "exp.yaml", "3\n", "must hold a table of run settings"),
    ("top-level-json-string", "exp.json", '"epochs"', "must hold a table of run settings"),
    ("empty-yaml", "exp.yaml", "", "must hold a table of run settings"),
    ("preset-number", "exp.toml", "preset = 3\n", "preset must be a preset's name"),
    ("preset-list", "exp.yaml", "preset: [a]\n", "preset must be a preset's name"),
    ("preset-unknown", "exp.toml", 'preset = "mnist-mdm"\n', "Did you mean 'mnist-mmd'?"),
    ("lambda-and-lam", "exp.toml", "lambda = 1.0\nlam = 2.0\n", "sets both lambda and lam"),
    ("schedule-text", "exp.toml", 'lr_schedule = "30:0.5"\n', "lr_schedule must be a list"),
    ("schedule-shape", "exp.toml", "lr_schedule = [[1, [2]], [3]]\n", "lr_schedule entries"),
    ("schedule-triple", "exp.yaml", "lr_schedule: [[1, 0.5, 2]]\n", "lr_schedule entries"),
    ("python-tag", "exp.yaml", "epochs: !!python/object:os.system x\n", "not valid YAML"),
    ("two-documents", "exp.yaml", "epochs: 1\n---\nepochs: 2\n", "not valid YAML"),
    ("bad-json", "exp.json", '{"epochs": }', "not valid JSON"),
]


def _make(tmp_path: Path, name: str, content: str | bytes | Callable[[Path], None]) -> Path:
    path = tmp_path / name
    if callable(content):
        content(path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def _refused_and_nothing_written(tmp_path: Path, args: list[str]) -> list[str]:
    before = snapshot(tmp_path)
    code, output = wae(*args)
    lines = assert_refused(code, output)
    assert snapshot(tmp_path) == before
    return lines


@pytest.mark.parametrize("command", ["run", "show"])
@pytest.mark.parametrize(
    ("name", "content", "flags", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_hostile_files_are_refused_in_one_sentence(
    tmp_path: Path, command: str, name: str, content: Any, flags: list[str], words: str
) -> None:
    path = _make(tmp_path, name, content)
    if command == "run":
        args = ["run", "--config", str(path), "--out", str(tmp_path / "run"), *flags]
    else:
        args = ["config", "show", "--config", str(path)]
    lines = _refused_and_nothing_written(tmp_path, args)
    assert any(words in line for line in lines), lines


@pytest.mark.parametrize("command", ["run", "show"])
@pytest.mark.parametrize(
    ("name", "content", "words"), [pytest.param(*c[1:], id=c[0]) for c in ALREADY_REFUSED]
)
def test_odd_files_stay_refused(
    tmp_path: Path, command: str, name: str, content: str, words: str
) -> None:
    path = _make(tmp_path, name, content)
    if command == "run":
        args = ["run", "--config", str(path), "--out", str(tmp_path / "run")]
    else:
        args = ["config", "show", "--config", str(path)]
    lines = _refused_and_nothing_written(tmp_path, args)
    assert any(words in line for line in lines), lines


def test_the_alias_bomb_is_refused_with_little_memory(tmp_path: Path) -> None:
    """Refused from the parser's events, before any value is built: a few megabytes at most
    (expanding it took 4 GB)."""
    for text in (alias_bomb(), "penalty_opts:\n" + alias_bomb(indent="  ")):
        path = tmp_path / "bomb.yaml"
        path.write_text(text)
        tracemalloc.start()
        try:
            with pytest.raises(UsageError, match=f"more than {MAX_VALUES} values"):
                read_config_file(path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 20 * 2**20, peak


@pytest.mark.parametrize("kind", ["cost", "penalty", "prior", "network", "data"])
def test_fit_refuses_a_files_options_that_are_not_a_table(tmp_path: Path, kind: str) -> None:
    """``wt.fit("exp.toml", penalty_opts={...})`` merges the file's options with the given ones:
    a file whose options are text is refused before anything is trained or written."""
    path = tmp_path / "exp.toml"
    path.write_text(f'{kind}_opts = "abc"\n')
    before = snapshot(tmp_path)
    with pytest.raises(UsageError) as exc:
        wt.fit(str(path), **{f"{kind}_opts": {"hidden": 64}})
    assert f"{kind}_opts must be a table of option names to values" in str(exc.value)
    assert_sentence(str(exc.value))
    assert snapshot(tmp_path) == before


def test_settings_with_keys_that_are_not_text_are_named() -> None:
    with pytest.raises(UsageError) as exc:
        resolve_config(None, {1: 2, None: 3, "epoch": 4})  # type: ignore[dict-item]
    message = str(exc.value)
    assert_sentence(message)
    assert "1" in message and "None" in message and "'epoch'" in message


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"lam": int(LONG)}, "lam must be a finite number"),
        ({"lr": int(LONG)}, "lr must be a finite number"),
        ({"epochs": int(LONG)}, "epochs must be an integer from 1 to"),
        ({"log_every": 2**63}, "log_every must be an integer from 1 to"),
        ({"seed": int(LONG)}, "seed must be an integer from 0 to"),
        ({"lr_schedule": [(int(LONG), 0.5)]}, "lr_schedule entries must be (epoch from 0 to"),
        ({"lr_schedule": [(1, int(LONG))]}, "lr_schedule entries must be"),
        ({"prior_opts": {"dim": int(LONG)}}, "prior_opts dim must be an integer from 1 to"),
        ({"cost_opts": {"scale": int(LONG)}}, "Bad value 999"),
        ({"cost_opts": {"scale": 16**5_000}}, "Bad value an integer of about 6021 digits"),
    ],
)
def test_huge_integers_from_python_get_one_sentence(change: dict[str, Any], words: str) -> None:
    """The same settings given by a Python caller (no file in between): one sentence each,
    never a repr() of thousands of digits."""
    with pytest.raises(UsageError) as exc:
        resolve_config(None, {"device": "cpu", **change})
    lines = str(exc.value).splitlines()
    assert len(lines) == 1, lines
    assert_sentence(lines[0])
    assert words in lines[0], lines


@pytest.mark.parametrize("value", [10**3999, 2**63, -(2**63) - 1])
def test_huge_plugin_options_are_refused_before_the_plugin_is_built(tmp_path, value) -> None:
    """An option the plugin would pass to torch (a width) is refused by the option rules, from
    Python and from the command line, instead of torch's overflow inside the build."""
    with pytest.raises(UsageError) as exc:
        wt.fit(penalty="gan-js", penalty_opts={"hidden": value}, out=str(tmp_path / "a"))
    assert_sentence(str(exc.value))
    assert "hidden" in str(exc.value) and "64 bits" in str(exc.value)
    if len(str(value)) < 100:
        code, output = wae("run", "--penalty", "gan-js", "--penalty-opt", f"hidden={value}")
        line = error_lines(output)[0]
        assert code == 2 and "64 bits" in line and "Overflow" not in line, output
    assert not (tmp_path / "a").exists()


def test_did_you_mean_takes_any_word() -> None:
    assert did_you_mean(1, ["epochs"]) == ""
    assert did_you_mean(None, ["epochs"]) == ""
    assert did_you_mean(("a",), ["epochs"]) == ""
    assert did_you_mean("epoch", ["epochs", 3, None]) == " Did you mean 'epochs'?"
    assert did_you_mean("x" * 100_000, ["epochs"]) == ""


# ---------------------------------------------------------------------------------------------
# property tests: whatever the file holds, it is read or refused cleanly (no training)


def _show_file(tmp_path: Path, name: str, content: str | bytes) -> tuple[int, str]:
    """``wae config show --config`` on a fresh file; refused cleanly or accepted, nothing
    written besides the file."""
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    before = snapshot(tmp_path)
    code, output = wae("config", "show", "--config", str(path))
    assert snapshot(tmp_path) == before
    if code != 0:
        assert_refused(code, output)
    else:
        assert "Traceback" not in output and "run settings" in output, output[-2000:]
    path.unlink()
    return code, output


def _resolve_file(path: Path) -> RunConfig | None:
    """``resolve_config`` on the file, then the full check (which builds each plugin, as a run
    then does): a RunConfig that validates, or one UsageError whose every line is a sentence."""
    try:
        config, _ = resolve_config(None, {"device": "cpu"}, str(path))
        assert isinstance(config, RunConfig)
        config.validate()
    except UsageError as exc:
        for line in str(exc).splitlines():
            assert_sentence(line)
        return None
    return config


def _nest(depth: int, fmt: str, style: str) -> tuple[str, int]:
    """A value nested ``depth`` deep under ``data_opts`` (a setting no plugin checks, so only
    the nesting decides), and how many lists and tables deep the file then is."""
    if style == "[":
        inner, levels = "[" * depth + "1" + "]" * depth, depth + 2
    elif fmt == "json":
        inner, levels = '{"a": ' * depth + "1" + "}" * depth, depth + 2
    elif style == "{":
        inner = ("{a = " if fmt == "toml" else "{a: ") * depth + "1" + "}" * depth
        levels = depth + 2
    elif fmt == "toml":  # a dotted key: each dot one more table
        return "[data_opts]\n" + ".".join(["x"] * (depth + 1)) + " = 1\n", depth + 2
    else:  # YAML block style: one more indentation per level (kept under MAX_BYTES)
        depth = min(depth, 500)
        lines = ["data_opts:"] + [f"{'  ' * (i + 1)}k{i}:" for i in range(depth + 1)]
        return "\n".join(lines) + " 1\n", depth + 2
    if fmt == "json":
        return '{"data_opts": {"x": ' + inner + "}}", levels
    if fmt == "toml":
        return f"[data_opts]\nx = {inner}\n", levels
    return f"data_opts: {{x: {inner}}}\n", levels


@examples(50)
@given(
    depth=st.integers(0, 80) | st.sampled_from([MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH, 2000]),
    fmt=st.sampled_from(["json", "toml", "yaml"]),
    style=st.sampled_from(["[", "{", "."]),
)
def test_fuzz_nesting_depth(tmp_path: Path, depth: int, fmt: str, style: str) -> None:
    """Up to MAX_DEPTH lists and tables deep a file is read; deeper, it is refused with the
    limit, however the nesting is written."""
    text, levels = _nest(depth, fmt, style)
    path = tmp_path / f"nest.{fmt}"
    path.write_text(text)
    try:
        data = read_config_file(path)
    except UsageError as exc:
        assert_sentence(str(exc))
        assert levels > MAX_DEPTH, (levels, str(exc))
        assert f"more than {MAX_DEPTH} levels deep" in str(exc)
    else:
        assert levels <= MAX_DEPTH, levels
        assert isinstance(data["data_opts"], dict)
    path.unlink()
    code, output = _show_file(tmp_path, f"nest.{fmt}", text)
    assert (code == 0) == (levels <= MAX_DEPTH), output[-2000:]


yaml_keys = (
    st.sampled_from(
        [
            "1",
            "-7",
            "0x1f",
            "3.5",
            ".inf",
            "null",
            "~",
            "true",
            "no",
            "2001-01-01",
            "[1, 2]",
            "{a: 1}",
            "'1'",
            '"null"',
            "epochs",
            "lam",
            "lambda",
            "preset",
            "penalty_opts",
            "<<",
            "=",
            "!!str 5",
            "!!int '5'",
        ]
    )
    | st.integers().map(str)
    | st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
)
yaml_scalars = st.sampled_from(["1", "0", "-1", "x", "null", "[]", "{}", "[1, 0.5]", "1e999"])


@examples(60)
@given(
    pairs=st.lists(st.tuples(yaml_keys, yaml_scalars), min_size=1, max_size=4),
    nested=st.sampled_from([None, "penalty_opts", "data_opts", "network_opts"]),
)
def test_fuzz_yaml_keys(tmp_path: Path, pairs: list[tuple[str, str]], nested: str | None) -> None:
    pad = "  " if nested else ""
    body = "".join(f"{pad}? {k}\n{pad}: {v}\n" for k, v in pairs)
    text = f"{nested}:\n{body}" if nested else body
    _show_file(tmp_path, "keys.yaml", text)
    (tmp_path / "keys.yaml").write_text(text)
    _resolve_file(tmp_path / "keys.yaml")


@st.composite
def int_literals(draw: st.DrawFn) -> tuple[str, bool]:
    """An integer as a file writes it (decimal or hexadecimal, up to 5,000 digits), and whether
    it fits in 64 bits (the ints themselves are never made: most cannot be printed)."""
    kind = draw(st.sampled_from(["small", "nines", "hex"]))
    if kind == "small":
        n = draw(
            st.integers(min_value=-(2**70), max_value=2**70)
            | st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1])
        )
        return str(n), -(2**63) <= n < 2**63
    digits = draw(st.integers(min_value=1, max_value=5_000))
    if kind == "nines":
        return "9" * digits, digits <= 18
    return "0x" + "f" * digits, digits <= 15


@examples(60)
@given(
    number=int_literals(),
    where=st.sampled_from(
        [
            "epochs",
            "seed",
            "lam",
            "lr",
            "latent_dim",
            "batch_size",
            "penalty_opts.hidden",
            "network_opts.hidden",
            "data_opts.limit",
            "prior_opts.dim",
            "cost_opts.scale",
            "lr_schedule",
        ]
    ),
    fmt=st.sampled_from(["json", "toml", "yaml"]),
)
def test_fuzz_huge_numbers(tmp_path: Path, number: tuple[str, bool], where: str, fmt: str) -> None:
    """Integers up to 5,000 digits anywhere: beyond 64 bits they are refused, naming where."""
    literal, fits = number
    if fmt == "json" and literal.startswith("0x"):  # JSON has decimal integers only
        literal, fits = "9" * (len(literal) - 2), len(literal) - 2 <= 18
    key, _, option = where.partition(".")
    if key == "lr_schedule":
        value = f"[[{literal}, 0.5], [1, {literal}]]"
    elif key == "network_opts":
        value = f"[{literal}]"
    else:
        value = literal
    if fmt == "json":
        text = f'{{"{key}": {{"{option}": {value}}}}}' if option else f'{{"{key}": {value}}}'
    elif fmt == "toml":
        text = f"[{key}]\n{option} = {value}\n" if option else f"{key} = {value}\n"
    else:
        text = f"{key}:\n  {option}: {value}\n" if option else f"{key}: {value}\n"
    if key == "penalty_opts":  # an option the plugin has
        heads = {"json": '{"penalty": "gan-js", ', "toml": 'penalty = "gan-js"\n'}
        text = (
            heads["json"] + text[1:]
            if fmt == "json"
            else heads.get(fmt, "penalty: gan-js\n") + text
        )
    code, output = _show_file(tmp_path, f"n.{fmt}", text)
    if not fits:
        assert code == 2 and ("64 bits" in output or "too long to read" in output), output
    (tmp_path / f"n.{fmt}").write_text(text)
    config = _resolve_file(tmp_path / f"n.{fmt}")
    assert config is None or fits


@examples(60)
@given(
    settings_=st.dictionaries(
        st.sampled_from(FIELDS + ("lambda", "preset")) | st.text(max_size=8),
        json_values,
        max_size=5,
    ),
    fmt=st.sampled_from(["json", "yaml"]),
)
def test_fuzz_real_settings(tmp_path: Path, settings_: dict[str, Any], fmt: str) -> None:
    settings_.pop("out", None)  # a file's out is honoured: the fuzz must not pick folders
    if fmt == "json":
        text = json.dumps(settings_, allow_nan=True)
    else:
        try:
            text = yaml.safe_dump(settings_)
        except (ValueError, yaml.YAMLError):  # a value PyYAML cannot write (10**400's repr)
            return
    path = tmp_path / f"s.{fmt}"
    path.write_text(text)
    _resolve_file(path)
    _show_file(tmp_path, f"s.{fmt}", text)


@examples(60)
@given(
    content=st.binary(max_size=300)
    | st.text(alphabet="[]{}\"'=:,.-#&*!? \n\tax01", max_size=300).map(str.encode),
    suffix=st.sampled_from([".toml", ".json", ".yaml"]),
)
def test_fuzz_random_bytes(tmp_path: Path, content: bytes, suffix: str) -> None:
    path = tmp_path / f"r{suffix}"
    path.write_bytes(content)
    _resolve_file(path)
    _show_file(tmp_path, f"r{suffix}", content)
