"""The front end ``wae``: a Typer app (:mod:`~wae_toolkit.cli.app`) and one module per group of
commands; the only code of the package that prints."""

from wae_toolkit.cli.app import main

__all__ = ["main"]
