#!/usr/bin/env bash
# Prepares a GPU machine's own Python for `make gpu-check`, without any network:
#
#   bash benchmarks/gpu_setup.sh; make gpu-check GPU_PYTHON=python3 GPU_SITE=/tmp/site
#
# 1. Installs the wheels in .whl/ (if that folder exists) into $GPU_SITE (default /tmp/site):
#    packages the machine lacks (geomloss, pythae and pydantic...), downloaded beforehand on a
#    machine with network access (docs/performance.md, "How the GPU figures are made").
#    .whl/extra/typing_extensions-*.whl is installed only when the machine's is older than
#    pydantic needs.
# 2. Installs this project and the example plugin into that Python (editable, no dependencies,
#    no build isolation), so that their entry points (the plugins) are found; when that Python
#    cannot be written to, installs them into $GPU_SITE instead.
# 3. Checks that wae_toolkit, its plugins, geomloss and pythae import.
#
# It never stops at the first problem: it says what failed, and `make gpu-check` reports what
# could not run. The machine's torch is used as it is (never installed here).
set -u
cd "$(dirname "$0")/.."
PY=${GPU_PYTHON:-python3}
SITE=${GPU_SITE:-/tmp/site}
PIP=("$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir)
export PIP_DISABLE_PIP_VERSION_CHECK=1
mkdir -p "$SITE"
status=0

if compgen -G ".whl/*.whl" >/dev/null; then
    if "${PIP[@]}" --upgrade --target "$SITE" .whl/*.whl; then
        echo "gpu_setup: installed $(ls .whl/*.whl | wc -l) wheels into $SITE"
    else
        echo "gpu_setup: FAILED to install the wheels of .whl/ into $SITE" >&2
        status=1
    fi
    te=$(ls .whl/extra/typing_extensions-*.whl 2>/dev/null | head -n 1)
    if [ -n "$te" ]; then
        need=$(basename "$te" | cut -d- -f2)
        if ! "$PY" - "$need" <<'EOF'
import importlib.metadata as md, sys
def key(v):
    return tuple(int(p) if p.isdigit() else 0 for p in v.split(".")[:3])
try:
    have = md.version("typing_extensions")
except md.PackageNotFoundError:
    sys.exit(1)
sys.exit(0 if key(have) >= key(sys.argv[1]) else 1)
EOF
        then
            "${PIP[@]}" --upgrade --target "$SITE" "$te" &&
                echo "gpu_setup: installed $(basename "$te") into $SITE (the machine's was older)"
        fi
    fi
else
    echo "gpu_setup: no .whl/ folder: nothing to install from wheels"
fi

if "${PIP[@]}" --no-build-isolation -e . -e plugins/wae-toolkit-energy; then
    echo "gpu_setup: installed wae-toolkit and wae-toolkit-energy (editable) into $PY"
elif "${PIP[@]}" --no-build-isolation --upgrade --target "$SITE" . plugins/wae-toolkit-energy; then
    echo "gpu_setup: installed wae-toolkit and wae-toolkit-energy into $SITE ($PY is read-only)"
else
    # No build at all (a setuptools that refuses the pyproject, say): the packages copied into
    # $SITE beside a hand-written .dist-info holding their entry points, which is all that
    # importlib.metadata (and so the plugin registry) reads.
    echo "gpu_setup: pip could not install the project; writing its metadata by hand" >&2
    "$PY" - "$SITE" <<'EOF' || status=1
import shutil, sys, tomllib
from pathlib import Path

site = Path(sys.argv[1])
for root, package in ((Path("."), "wae_toolkit"), (Path("plugins/wae-toolkit-energy"), "wae_energy")):
    meta = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    info = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n"
    )
    groups = dict(meta.get("entry-points", {}))
    if "scripts" in meta:
        groups["console_scripts"] = meta["scripts"]
    text = "".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
        for group, eps in groups.items()
    )
    (info / "entry_points.txt").write_text(text)
    shutil.rmtree(site / package, ignore_errors=True)
    shutil.copytree(root / package, site / package, ignore=shutil.ignore_patterns("__pycache__"))
    print(f"gpu_setup: {meta['name']} {meta['version']} written into {site}")
EOF
fi

PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" "$PY" - <<'EOF' || status=1
import importlib, sys
import torch
print(f"gpu_setup: torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
from wae_toolkit.plugins import registry
print(f"gpu_setup: penalties {', '.join(registry.plugin_names('penalty'))}")
missing = []
for name in ("geomloss", "pythae", "onnx", "onnxruntime", "onnxscript"):
    try:
        importlib.import_module(name)
    except Exception as exc:
        missing.append(f"{name} ({type(exc).__name__}: {exc})")
if missing:
    print("gpu_setup: cannot import " + "; ".join(missing), file=sys.stderr)
    sys.exit(1)
EOF
exit $status
