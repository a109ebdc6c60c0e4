"""``export_model``: write a model's encoder and decoder, checked, with their manifest."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from wae_toolkit.errors import UsageError
from wae_toolkit.export.formats import (
    _ONNX_MAX_BYTES,
    FORMATS,
    MANIFEST,
    PARTS,
    TRACE_BATCH,
    ExportResult,
    _check_choice,
    _require_onnx,
)
from wae_toolkit.export.manifest import (
    _data_info,
    _entry,
    _fingerprint,
    _header,
    _start_manifest,
)
from wae_toolkit.export.writers import (
    _inputs,
    _save_onnx,
    _save_torchscript,
    _verify,
    _wrapper,
)


def export_model(
    model: Any,
    format: str,
    out_dir: str | Path | None = None,
    *,
    part: str = "both",
    overwrite: bool = False,
    sample_shape: tuple[int, ...] | None = None,
) -> ExportResult:
    """Export the encoder and/or decoder of a trained WAE as TorchScript or ONNX.

    Args:
        model: a run folder (as written by ``wae run``), or a
            :class:`~wae_toolkit.assembly.model.WAE` (from :func:`wae_toolkit.load` or
            :func:`wae_toolkit.fit`).
        format: ``torchscript`` (``.pt`` files) or ``onnx`` (``.onnx`` files; needs the ``onnx``
            extra).
        out_dir: the folder for the files, created if needed. Default: ``export/`` in the run
            folder.
        part: ``encoder``, ``decoder`` or ``both``.
        overwrite: replace the files of this format already in ``out_dir``.
        sample_shape: the shape of one sample; needed only for a model that has no run folder.

    Returns:
        the folder, the files written and the manifest (``export.json``).

    Raises:
        UsageError: a bad format or part, a missing run, an output that exists, a missing extra.
        WaeError: an exported file that does not compute what the model does (nothing is left).
    """
    import torch

    from wae_toolkit.assembly.model import WAE

    fmt = _check_choice("format", format, tuple(FORMATS))
    which = _check_choice("part", part, PARTS)
    parts = ["encoder", "decoder"] if which == "both" else [which]
    if fmt == "onnx":
        _require_onnx()

    run_dir: Path | None = None
    if isinstance(model, str | Path):
        from wae_toolkit.api import load

        run_dir, model = Path(model), load(model, device="cpu")
    elif not isinstance(model, WAE):
        raise UsageError(
            f"export_model() takes a WAE or a run folder's path; got {type(model).__name__}."
        )
    else:
        run_dir = model.run_dir
    info = _data_info(model, run_dir, sample_shape)
    if out_dir is None:
        if run_dir is None:
            raise UsageError("This model has no run folder; give out_dir, the folder to write to.")
        out_dir = run_dir / "export"
        from wae_toolkit.runs.safe_io import link_problem

        problem = link_problem(Path(out_dir), "folder")  # never write out of the run folder
        if problem:
            raise UsageError(problem)
    out = Path(out_dir)

    fingerprint = _fingerprint(model)
    names = {p: p + FORMATS[fmt] for p in parts}
    manifest = _start_manifest(out, overwrite, names, fingerprint)

    with torch.no_grad():
        modules = {p: _wrapper(model, p) for p in parts}
        if fmt == "onnx":
            for p, module in modules.items():
                size = sum(t.numel() * t.element_size() for t in module.state_dict().values())
                if size > _ONNX_MAX_BYTES:
                    raise UsageError(
                        f"The {p} has {size / 2**30:.1f} GB of weights and an ONNX file holds at "
                        "most 2 GB; use --format torchscript."
                    )
        created = not out.exists()
        try:
            out.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".wae-export-", dir=out))
        except OSError as exc:
            raise UsageError(f"Cannot write to the folder '{out}': {exc.strerror}.") from None
        try:
            entries = {}
            for p, module in modules.items():
                path = tmp / names[p]
                example = _inputs(p, info, model.latent_dim, TRACE_BATCH, seed=0)
                if fmt == "torchscript":
                    _save_torchscript(module, example, path)
                else:
                    _save_onnx(module, example, path, p, model.gaussian, info)
                error = _verify(fmt, path, module, p, info, model.latent_dim)
                entries[p] = _entry(fmt, p, names[p], model.gaussian, info, model.latent_dim)
                entries[p]["max_abs_error"] = error
            written = []
            for p in parts:
                os.replace(tmp / names[p], out / names[p])
                written.append(out / names[p])
        except BaseException:
            if created:
                shutil.rmtree(out, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    manifest.update(_header(model, run_dir, info, fingerprint))
    manifest.setdefault("exports", {}).setdefault(fmt, {}).update(entries)
    from wae_toolkit.runs.folder import write_json

    write_json(out / MANIFEST, manifest)
    return ExportResult(out, [*written, out / MANIFEST], manifest)
