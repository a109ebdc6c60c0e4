"""``wae export``: a run's encoder and decoder as TorchScript or ONNX files (docs/export.md)."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["export_command"]

out = Console()


def export_command(
    run: str = typer.Argument(..., help="A run folder (written by 'wae run')."),
    format: str = typer.Option(
        ..., "--format", "-f", help="torchscript (.pt files) or onnx (.onnx files)."
    ),
    out_dir: str = typer.Option(
        None, "--out", "-o", help="Folder for the files. \\[default: RUN/export]"
    ),
    part: str = typer.Option("both", help="encoder, decoder or both."),
    overwrite: bool = typer.Option(
        False, help="Replace this format's files in --out, and an export.json of other weights."
    ),
) -> None:
    """Export the encoder and decoder for plain PyTorch or ONNX runtimes, with export.json.

    Each file is loaded back and checked against the model before it is kept.
    Example: [bold]wae export runs/my-run --format onnx[/bold]
    """
    from wae_toolkit.export import export_model

    result = export_model(run, format, out_dir, part=part, overwrite=overwrite)
    for path in result.files:
        out.print(f"  {escape(str(path))}", soft_wrap=True)
    fmt = format.strip().lower()
    errors = [
        f"{p} {entry['max_abs_error']:.1g}"
        for p, entry in result.manifest["exports"][fmt].items()
        if p in [f.stem for f in result.files]
    ]
    out.print(
        f"Exported ({fmt}) to {escape(str(result.out_dir))}; checked against the model, largest "
        f"difference: {', '.join(errors)}. See docs/export.md to use the files.",
        soft_wrap=True,
    )
