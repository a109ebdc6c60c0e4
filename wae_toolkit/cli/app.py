"""The ``wae`` command line (Typer + rich).

Only the command modules (this one and its neighbours in ``wae_toolkit/cli``) print. They import
torch and the plugins lazily, inside the commands that need them, so ``wae --help`` and
``wae plugins list`` stay fast. ``wae run`` and its options are built in
:mod:`wae_toolkit.cli.run_cmd` from the run settings' declarations.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from rich.console import Console
from rich.table import Column, Table

from wae_toolkit._version import __version__
from wae_toolkit.cli.eval_cmds import compare_command, eval_command
from wae_toolkit.cli.export_cmd import export_command
from wae_toolkit.cli.model_cmds import (
    encode_command,
    interpolate_command,
    reconstruct_command,
    runs_list_command,
    sample_command,
)
from wae_toolkit.cli.report_cmd import report_command
from wae_toolkit.cli.run_cmd import run_command
from wae_toolkit.cli.shared import STATE
from wae_toolkit.cli.sweep_cmd import sweep_app
from wae_toolkit.cli.terminal import print_docstring, print_fitted, print_words, rst_markup
from wae_toolkit.errors import PluginLoadError, UsageError, WaeError, cli_wording, did_you_mean
from wae_toolkit.plugins.registry import ALL_KINDS, list_plugins, normalize_kind, plugin_names

app = typer.Typer(
    name="wae",
    help="Wasserstein Auto-Encoders: train, inspect plugins. Run 'wae COMMAND --help' for more.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
plugins_app = typer.Typer(help="List and inspect installed plugins.", no_args_is_help=True)
app.add_typer(plugins_app, name="plugins")
presets_app = typer.Typer(help="The paper's setups and small digits runs.", no_args_is_help=True)
app.add_typer(presets_app, name="presets")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _completer(kind: str) -> Any:
    def complete(incomplete: str) -> list[str]:
        return [n for n in plugin_names(kind) if n.startswith(incomplete)]

    return complete


def _tracker_names(incomplete: str) -> list[str]:
    from wae_toolkit.trackers import TRACKERS

    done, _, last = incomplete.rpartition(",")  # completes the last of comma-separated names
    return [f"{done},{n}" if done else n for n in TRACKERS if n.startswith(last)]


def _version(value: bool) -> None:
    if value:
        out.print(f"wae-toolkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show full tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    builtins_only: bool = typer.Option(
        False,
        "--builtins-only",
        help="Use wae-toolkit's own plugins only (same as WAE_DISABLE_PLUGIN_AUTOLOAD=1).",
    ),
) -> None:
    STATE["verbose"] = verbose or STATE["verbose"]
    if builtins_only:
        from wae_toolkit.plugins.registry import AUTOLOAD_ENV

        os.environ[AUTOLOAD_ENV] = "1"


# ---------------------------------------------------------------------------------------------
# wae run: its options come from RunConfig's fields (wae_toolkit/cli/run_cmd.py)

#: The completion functions run settings may name (``complete=`` in their metadata).
COMPLETERS = {**{kind: _completer(kind) for kind in ALL_KINDS}, "trackers": _tracker_names}
app.command("run")(run_command(COMPLETERS))


# ---------------------------------------------------------------------------------------------
# wae plugins


@plugins_app.command("list")
def plugins_list(
    kind: str = typer.Option(None, "--kind", "-k", help=f"Only this kind: {', '.join(ALL_KINDS)}."),
    check: bool = typer.Option(
        False, "--check", help="Import each plugin and show ok or its error."
    ),
) -> None:
    """Table of installed plugins: kind, name, distribution, version, description.

    Reads installed metadata only; nothing is imported unless --check is given.
    """
    infos = list_plugins(kind)
    cols = [Column(c, no_wrap=c != "distribution") for c in ("kind", "name", "distribution")]
    cols += [Column("version", no_wrap=True), Column("description", min_width=30)]
    failures: list[str] = []
    rows = []
    for info in infos:
        dist = _escape(info.distribution)
        if info.clashes:
            dist += f" [yellow](also declared by {', '.join(info.clashes)})[/yellow]"
        row = [
            info.kind,
            f"[bold]{_escape(info.name)}[/bold]",
            dist,
            _escape(info.version),
            rst_markup(info.description),
        ]
        if check:
            from wae_toolkit.plugins.registry import get_plugin_class

            try:
                get_plugin_class(info.kind, info.name)
                row.append("[green]ok[/green]")
            except WaeError as exc:
                failures.append(f"[red]{info.kind} {info.name}:[/red] {_escape(str(exc))}")
                row.append("[red]failed[/red] (below)")
        rows.append(row)
    print_fitted(  # narrow: the distribution and version below the description
        out, cols + [Column("status")] * check, rows, keep=2, joined="description",
        join=lambda c: f"{c[2]}\n[dim]from {c[0]} {c[1]}[/dim]" + "".join(f"  {x}" for x in c[3:]),
        title=["wae-toolkit", "plugins"],
    )  # fmt: skip
    for line in failures:
        out.print(line, soft_wrap=True)
    if failures:
        raise typer.Exit(1)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


@plugins_app.command("show")
def plugins_show(
    name: str = typer.Argument(..., help="Plugin name, e.g. mmd-imq."),
    kind: str = typer.Option(None, "--kind", "-k", help="Kind, when the name exists in several."),
) -> None:
    """A plugin's documentation and its options with their types and defaults."""
    import inspect

    from wae_toolkit.errors import UnknownPluginError, did_you_mean
    from wae_toolkit.plugins.options import plugin_options
    from wae_toolkit.plugins.registry import REINSTALL_HINT, get_plugin_class, get_plugin_info

    kinds = [normalize_kind(kind)] if kind else [k for k in ALL_KINDS if name in plugin_names(k)]
    if not kinds:
        every = sorted({n for k in ALL_KINDS for n in plugin_names(k)})
        raise UnknownPluginError(
            f"No plugin is named '{name}'.{did_you_mean(name, every)} "
            f"Available: {', '.join(every)}. {REINSTALL_HINT}"
        )
    if len(kinds) > 1:
        raise WaeError(
            f"'{name}' names a plugin of several kinds ({', '.join(kinds)}); add --kind."
        )
    info = get_plugin_info(kinds[0], name)
    cls = get_plugin_class(kinds[0], name)
    head = f"{info.name} ({info.kind}) from {info.distribution} {info.version}: {info.target}"
    print_words(out, head.split(" "))
    print_docstring(out, inspect.cleandoc(cls.__doc__ or "").split("\nArgs:")[0])
    rows = []
    for spec in plugin_options(cls):
        default = "(required)" if spec.required else repr(spec.default)
        if info.kind == "prior" and spec.name == "dim":
            default, help_ = "--latent-dim", "latent dimension, filled in by the toolkit"
        else:
            help_ = spec.help
        rows.append([spec.name, _escape(spec.type_name), _escape(default), rst_markup(help_)])
    cols = [Column("option", no_wrap=True), Column("type"), Column("default")]
    print_fitted(  # narrow: the type and default below the description
        out, [*cols, Column("description", min_width=24)], rows, keep=1, joined="description",
        join=lambda c: f"{c[2]}\n[dim]{c[0]}, default {c[1]}[/dim]", title=["options"],
    )  # fmt: skip
    flag = f"--{info.kind}-opt"
    given, source_kind = name, getattr(cls, "kind", "name")
    if info.kind == "data" and source_kind != "name":
        given = {"file": "FILE", "folder": "FOLDER"}.get(source_kind, "PATH")
        what = {"file": "a file", "folder": "a folder"}.get(source_kind, "a file or a folder")
        out.print(f"Reads {what} given as --data {given}, when it is the first source to claim it.")
    out.print(
        f"Set options with {flag} NAME=VALUE, e.g. 'wae run --{info.kind} {given} {flag} ...'."
    )


@plugins_app.command("new")
def plugins_new(
    kind: str = typer.Argument(..., help=f"Plugin kind: {', '.join(ALL_KINDS)}."),
    name: str = typer.Argument(..., help="Plugin name in kebab-case, e.g. my-penalty."),
    directory: str = typer.Option(None, "--dir", help="Target folder. \\[default: wae-NAME]"),
) -> None:
    """Write a ready-to-install plugin package: pyproject with the entry point, a working class
    with its docstring contract, and a test that runs the conformance kit."""
    from wae_toolkit.plugins.scaffold import install_command, new_plugin, plugin_identifiers

    files = new_plugin(kind, name, directory)
    root = files[0].parent
    ids = plugin_identifiers(normalize_kind(kind), name)
    out.print(f"Wrote the {normalize_kind(kind)} plugin '{name}' ({ids['dist']}) in {root}:")
    for path in files:
        out.print(f"  {path}", markup=False)
    out.print(
        f"Next: {install_command(str(root))} (the pin keeps the torch you have), then "
        f"'wae plugins list' shows it and 'pytest {root / 'tests'}' runs its conformance test; "
        f"edit {files[3]} to make it yours.",
        markup=False,
        soft_wrap=True,
    )


# ---------------------------------------------------------------------------------------------
# wae presets


@presets_app.command("list")
def presets_list() -> None:
    """Table of presets: name, penalty, data, epochs and a description."""
    from wae_toolkit.config.presets import PRESETS

    table = Table(title="wae-toolkit presets (wae run --preset NAME)", title_justify="left")
    for col in ("preset", "penalty", "lambda", "data", "epochs", "description"):
        table.add_column(col, overflow="fold")
    for p in PRESETS.values():
        v = p.values
        data = "--data DIR (required)" if p.data_hint else str(v.get("data", "digits"))
        table.add_row(
            f"[bold]{p.name}[/bold]",
            str(v.get("penalty")),
            f"{v.get('lam'):g}",
            data,
            str(v.get("epochs")),
            _escape(p.description),
        )
    out.print(table)


@presets_app.command("show")
def presets_show(name: str = typer.Argument(..., help="Preset name, e.g. mnist-mmd.")) -> None:
    """Every value a preset sets."""
    from wae_toolkit.config.presets import get_preset

    p = get_preset(name)
    out.print(f"{p.name}: {p.description}", markup=False, soft_wrap=True)
    if p.data_hint:
        out.print(f"Needs --data DIR: {p.data_hint}.", markup=False, soft_wrap=True)
    table = Table(show_header=True)
    table.add_column("setting")
    table.add_column("value", overflow="fold")
    for key, value in p.values.items():
        table.add_row(key, _escape(repr(value)))
    out.print(table)


config_app = typer.Typer(help="Run settings: files, presets, where each value comes from.")
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(
    config_file: str = typer.Option(None, "--config", "-c", metavar="FILE", help="A file."),
    preset: str = typer.Option(None, help="A preset, below the file and --set."),
    assignments: list[str] = typer.Option(
        None, "--set", metavar="KEY=VALUE", help="A run setting, as a flag would give it."
    ),
) -> None:
    """The resolved run settings and where each comes from (default, preset, file, --set).

    Example: [bold]wae config show --config exp.toml --set epochs=5[/bold]
    """
    import typing

    from wae_toolkit.config.presets import resolve_config
    from wae_toolkit.config.settings import RunConfig
    from wae_toolkit.plugins.options import convert, parse_assignments

    hints = typing.get_type_hints(RunConfig)
    given: dict[str, Any] = {}
    for key, text in parse_assignments(assignments, "--set").items():
        key = "lam" if key == "lambda" else key
        if key not in hints:
            raise UsageError(
                f"--set {key}: not a run setting.{did_you_mean(key, hints)} "
                "See 'wae run --help' or docs/configuration.md."
            )
        try:
            given[key] = convert(text, hints[key])
        except ValueError as exc:
            raise UsageError(f"--set {key}={text}: {exc}.") from None
    config, sources = resolve_config(preset, given, config_file)
    config.validate()  # the full check, building each plugin once: nothing trains here
    table = Table(show_header=True, title="run settings", title_justify="left")
    table.add_column("setting")
    table.add_column("value", overflow="fold")
    table.add_column("from")
    for key, value in config.to_dict().items():
        if isinstance(value, dict):
            for k, v in value.items():
                table.add_row(f"{key}.{k}", _escape(repr(v)), sources.get(f"{key}.{k}", "default"))
            if not value:
                table.add_row(key, "{}", sources.get(key, "default"))
        else:
            table.add_row(key, _escape(repr(value)), sources.get(key, "default"))
    out.print(table)


app.command("eval")(eval_command)
app.command("compare")(compare_command)
app.command("report")(report_command)
app.command("sample")(sample_command)
app.command("encode")(encode_command)
app.command("reconstruct")(reconstruct_command)
app.command("interpolate")(interpolate_command)
app.command("export")(export_command)
runs_app = typer.Typer(help="The run folders you have.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
runs_app.command("list")(runs_list_command)
app.add_typer(sweep_app, name="sweep")


# ---------------------------------------------------------------------------------------------


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """The toolkit's warnings as one yellow line each (``--verbose``: where they came from)."""
    where = f" ({filename}:{lineno})" if STATE["verbose"] else ""
    for text in str(message).splitlines() or [category.__name__]:
        err.print(f"[yellow]Warning:[/yellow] {_escape(text)}{_escape(where)}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``wae`` console script: one red line per error, exit 2 for usage."""
    args = sys.argv[1:] if argv is None else list(argv)
    STATE["argv"] = args
    STATE["verbose"] = any(a in ("--verbose", "-v") for a in args) or bool(
        os.environ.get("WAE_VERBOSE")
    )
    import warnings

    try:
        # restored afterwards (main may run inside a program); messages name --flags
        with warnings.catch_warnings(), cli_wording():
            warnings.showwarning = _show_warning
            # Standalone mode: Typer reports its own usage errors (exit 2) and exits.
            app(args=args, prog_name="wae")
    except WaeError as exc:
        if STATE["verbose"]:
            err.print_exception()
        rank = os.environ.get("RANK", "0") if os.environ.get("WORLD_SIZE", "1") != "1" else "0"
        label = "Error:" if rank in ("", "0") else f"Error (rank {rank}):"
        lines = str(exc).splitlines() or [type(exc).__name__]
        if isinstance(exc, PluginLoadError) and exc.__cause__ and not STATE["verbose"]:
            lines[-1] += " Add --verbose to see where the import failed."  # a plugin's traceback
        for line in lines:
            err.print(f"[red]{label}[/red] {_escape(line)}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:  # a second Ctrl-C during training, or Ctrl-C outside it
        err.print("[red]Interrupted.[/red]")
        sys.exit(130)
