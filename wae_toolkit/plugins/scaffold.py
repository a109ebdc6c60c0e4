"""``wae plugins new KIND NAME``: write a ready-to-install plugin package.

The skeleton is a complete distribution: ``pyproject.toml`` with the entry point, a package with
one working plugin class (its docstring states the contract), a README, and a test that runs the
conformance kit. After ``pip install -e DIR`` the plugin is listed by ``wae plugins list`` and its
test passes unchanged; then replace the class body with your idea.
"""

from __future__ import annotations

import re
from pathlib import Path

from wae_toolkit._version import __version__
from wae_toolkit.errors import UsageError
from wae_toolkit.plugins.interfaces import INTERFACE_VERSION
from wae_toolkit.plugins.registry import ALL_KINDS, get_plugin_info, normalize_kind

__all__ = ["new_plugin", "plugin_identifiers", "install_command"]

_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_SUFFIX = {
    "cost": "Cost",
    "penalty": "Penalty",
    "prior": "Prior",
    "network": "Network",
    "data": "Source",
}
_CHECK = {
    "cost": "check_cost",
    "penalty": "check_penalty",
    "prior": "check_prior",
    "network": "check_network",
    "data": "check_data_source",
}

_CLASSES = {
    "penalty": '''
class {cls}(LatentPenalty):
    """Moment matching: squared distance between the means and the variances of z_q and z_p.

    ``D_Z = ||mean(z_q) - mean(z_p)||^2 + ||var(z_q) - var(z_p)||^2`` (per-coordinate variances).
    Replace the body of ``forward`` with your divergence; keep the signature and the contract of
    ``wae_toolkit.plugins.LatentPenalty``: ``z_q`` ``(B, D)`` codes, ``z_p`` ``(N, D)`` prior
    samples, return a scalar tensor differentiable in ``z_q``.

    Args:
        weight: factor in front of the variance term.
    """

    interface_version = "{iface}"
    zero_on_identical = True

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        if weight < 0:
            raise UsageError(f"weight must be >= 0; got {{weight}}.")
        self.weight = float(weight)  # options are stored under their own names

    def forward(self, z_q: Tensor, z_p: Tensor) -> Tensor:
        means = (z_q.mean(0) - z_p.mean(0)).pow(2).sum()
        variances = (z_q.var(0) - z_p.var(0)).pow(2).sum()
        return means + self.weight * variances
''',
    "cost": '''
class {cls}(Cost):
    """Pseudo-Huber cost: sum over each sample of delta^2 (sqrt(1 + (r / delta)^2) - 1).

    Quadratic for residuals ``r = x - x_hat`` much smaller than ``delta``, linear beyond. Replace
    the body of ``cost`` with yours; keep the contract of ``wae_toolkit.plugins.Cost``: ``x``
    and ``x_hat`` ``(B, ...)``, return ``(B,)`` non-negative per-sample costs.

    Args:
        delta: residual size where the cost turns from quadratic to linear.
    """

    interface_version = "{iface}"

    def __init__(self, delta: float = 0.1) -> None:
        if delta <= 0:
            raise UsageError(f"delta must be > 0; got {{delta}}.")
        self.delta = float(delta)

    def cost(self, x: Tensor, x_hat: Tensor) -> Tensor:
        r = (x - x_hat) / self.delta
        return (self.delta**2 * ((1 + r * r).sqrt() - 1)).flatten(1).sum(1)
''',
    "prior": '''
class {cls}(Prior):
    """Isotropic Laplace prior: every coordinate independent with density exp(-|z| / b) / (2 b).

    Replace ``sample``, ``log_prob`` and ``variance`` with yours; keep the contract of
    ``wae_toolkit.plugins.Prior`` (the first argument ``dim`` is filled in by the toolkit).

    Args:
        dim: latent dimension (filled in from the run's latent dimension).
        scale: the Laplace scale b; the variance of each coordinate is 2 b^2.
    """

    interface_version = "{iface}"

    def __init__(self, dim: int, scale: float = 0.7) -> None:
        super().__init__(dim)
        if scale <= 0:
            raise UsageError(f"scale must be > 0; got {{scale}}.")
        self.scale = float(scale)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        u = torch.rand(n, self.dim, generator=generator, dtype=self.dtype).to(self.device) - 0.5
        u = u.clamp(-0.5 + 1e-7, 0.5 - 1e-7)
        return -self.scale * u.sign() * torch.log1p(-2 * u.abs())

    def log_prob(self, z: Tensor) -> Tensor:
        return (-z.abs() / self.scale - math.log(2 * self.scale)).sum(1)

    @property
    def variance(self) -> float:
        return 2 * self.scale**2
''',
    "network": '''
class {cls}(Network):
    """One-hidden-layer perceptron encoder and decoder for any input shape.

    Replace the layers with yours; keep the contract of ``wae_toolkit.plugins.Network``: the
    encoder maps ``(B, *S)`` to codes ``(B, D)`` (or ``(mean, log_var)`` when ``gaussian``), the
    decoder maps ``(B, D)`` back to ``(B, *S)`` ending in the activation named by ``output``.

    Args:
        width: units of the hidden layer.
    """

    interface_version = "{iface}"

    def __init__(self, width: int = 128) -> None:
        if width < 1:
            raise UsageError(f"width must be >= 1; got {{width}}.")
        self.width = int(width)

    def build_encoder(
        self, data_shape: tuple[int, ...], latent_dim: int, gaussian: bool = False
    ) -> nn.Module:
        features = math.prod(data_shape)
        return nn.Sequential(
            nn.Flatten(), nn.Linear(features, self.width), nn.ReLU(),
            GaussianHead(self.width, latent_dim, gaussian),
        )

    def build_decoder(
        self, data_shape: tuple[int, ...], latent_dim: int, output: str = "sigmoid"
    ) -> nn.Module:
        return nn.Sequential(
            nn.Linear(latent_dim, self.width), nn.ReLU(),
            nn.Linear(self.width, math.prod(data_shape)),
            nn.Unflatten(1, tuple(data_shape)), output_activation(output),
        )
''',
    "data": '''
class {cls}(DataSource):
    """Comma-separated numbers in a .csv file, one sample per row: (N, F) vectors.

    Replace ``claims`` and ``load`` with your format's; keep the contract of
    ``wae_toolkit.plugins.DataSource``: ``claims(path)`` says quickly whether a path is in your
    format, ``load`` returns a ``wae_toolkit.data.Dataset`` (``dataset_from_arrays`` splits,
    checks and describes arrays as the built-in sources do). ``kind`` is "file", "folder",
    "path" (both) or "name" (a data set given by the plugin's name, ``--data {name}``).

    Args:
        delimiter: the character between two values of a row.
        labels: whether the last column holds integer class labels.
        test_fraction: share of the rows held out as the test part.
        seed: seed of the train/test split.
        limit: use only the first N training rows.
    """

    interface_version = "{iface}"
    kind = "file"

    def __init__(
        self,
        delimiter: str = ",",
        labels: bool = False,
        test_fraction: float = 0.2,
        seed: int = 123,
        limit: int | None = None,
    ) -> None:
        if len(delimiter) != 1:
            raise DataError(f"delimiter must be one character; got {{delimiter!r}}.")
        self.delimiter = delimiter  # options are stored under their own names
        self.labels = labels
        self.test_fraction = test_fraction
        self.seed = seed
        self.limit = limit

    def claims(self, path: Path) -> bool:
        return path.is_file() and path.suffix.lower() == ".csv"

    def load(self, spec: str, path: Path | None = None, found: Any = None) -> Dataset:
        path = Path(spec).expanduser() if path is None else path
        try:
            rows = np.loadtxt(path, delimiter=self.delimiter, dtype=np.float64, ndmin=2)
        except (OSError, ValueError) as exc:
            message = f"'{{spec}}' could not be read as comma-separated numbers ({{exc}})."
            raise DataError(message) from None
        x, y = (rows[:, :-1], rows[:, -1]) if self.labels else (rows, None)
        return dataset_from_arrays(spec, x, y, options=self.options(), what=f"CSV file '{{spec}}'")
''',
}

_IMPORTS = {
    "penalty": "from torch import Tensor\n\nfrom wae_toolkit.errors import UsageError\n"
    "from wae_toolkit.plugins.interfaces import LatentPenalty\n",
    "cost": "from torch import Tensor\n\nfrom wae_toolkit.errors import UsageError\n"
    "from wae_toolkit.plugins.interfaces import Cost\n",
    "prior": "import math\n\nimport torch\nfrom torch import Tensor\n\n"
    "from wae_toolkit.errors import UsageError\nfrom wae_toolkit.plugins.interfaces import Prior\n",
    "network": "import math\n\nfrom torch import nn\n\nfrom wae_toolkit.errors import UsageError\n"
    "from wae_toolkit.plugins.interfaces import GaussianHead, Network, output_activation\n",
    "data": "from pathlib import Path\nfrom typing import Any\n\nimport numpy as np\n\n"
    "from wae_toolkit.data import Dataset, dataset_from_arrays\nfrom wae_toolkit.errors import "
    "DataError\nfrom wae_toolkit.plugins.interfaces import DataSource\n",
}

_CHECK_CALL = {
    "cost": "check_cost({cls}())",
    "penalty": "check_penalty({cls}())",
    "prior": "check_prior({cls}(dim=2))\n    check_prior({cls}(dim=8))",
    "network": "check_network({cls}(), data_shape=(1, 8, 8), latent_dim=4)",
    "data": 'path = tmp_path / "example.csv"\n'
    '    np.savetxt(path, np.random.default_rng(0).random((20, 3)), delimiter=",")\n'
    "    data = check_data_source({cls}(), path)\n"
    "    assert data.train.shape == (16, 3) and data.test.shape == (4, 3)",
}
#: What a kind's test needs besides the conformance kit: (imports, test function arguments).
_TEST_NEEDS = {"data": ("import numpy as np\n\n", "tmp_path")}
#: How ``wae run`` uses a plugin of each kind, for the README.
_RUN = {"data": "wae run --data example.csv    # a file it claims"}


def install_command(target: str = ".") -> str:
    """``pip install -e TARGET "torch==X"``, X the torch installed now: the pin keeps it (a looser
    one lets pip fetch a multi-gigabyte CUDA build), and it works from any folder, where the
    toolkit's ``constraints.txt`` is not at hand."""
    import importlib.metadata as md

    try:
        pin = f' "torch=={md.version("torch")}"'
    except md.PackageNotFoundError:
        pin = ""
    return f"pip install -e {target}{pin}"


def plugin_identifiers(kind: str, name: str) -> dict[str, str]:
    """Distribution, package and class names for plugin ``name`` of ``kind``."""
    stem = name.replace("-", "_")
    camel = "".join(part.capitalize() for part in name.split("-"))
    return {
        "dist": f"wae-{name}",
        "pkg": f"wae_{stem}",
        "cls": camel + _SUFFIX[kind],
    }


def new_plugin(kind: str, name: str, directory: str | Path | None = None) -> list[Path]:
    """Write a plugin package for ``name`` of ``kind`` into ``directory`` (default ``wae-NAME``).

    Returns:
        the files written.

    Raises:
        UsageError: a name that is not kebab-case, the name of a built-in plugin, or a target
            folder that exists and is not empty.
    """
    kind = normalize_kind(kind)
    if not _NAME.match(name):
        raise UsageError(
            f"Plugin names are lower-case kebab-case (letters, digits, single dashes), like "
            f"'energy' or 'my-penalty'; got '{name}'."
        )
    try:
        info = get_plugin_info(kind, name)
    except UsageError:
        info = None
    if info is not None and info.builtin:
        raise UsageError(
            f"'{name}' is a built-in {kind} of wae-toolkit, and built-ins cannot be shadowed; "
            "choose another name."
        )
    ids = plugin_identifiers(kind, name)
    root = Path(directory) if directory else Path(ids["dist"])
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise UsageError(f"'{root}' already exists and is not empty; choose a new folder (--dir).")
    group = ALL_KINDS[kind][0]
    fields = {
        **ids,
        "kind": kind,
        "name": name,
        "group": group,
        "iface": INTERFACE_VERSION,
        "toolkit": __version__,
        "install": install_command("."),
        "check": _CHECK[kind],
        "run": _RUN.get(
            kind, f"wae run --{kind} {name}          # train with it on the built-in digits"
        ),
    }
    body = _CLASSES[kind].format(**fields)
    files = {
        "pyproject.toml": _PYPROJECT.format(**fields),
        "README.md": _README.format(**fields),
        f"{ids['pkg']}/__init__.py": (
            f'"""wae-toolkit {kind} plugin \'{name}\'."""\n\n'
            f'from {ids["pkg"]}.plugin import {ids["cls"]}\n\n__all__ = ["{ids["cls"]}"]\n'
        ),
        f"{ids['pkg']}/plugin.py": (
            f'"""The {kind} \'{name}\', registered under the entry point group {group}."""\n\n'
            "from __future__ import annotations\n\n" + _IMPORTS[kind] + "\n" + body
        ),
        f"tests/test_{ids['pkg']}.py": _TEST.format(
            **fields,
            call=_CHECK_CALL[kind].format(cls=ids["cls"]),
            imports=_TEST_NEEDS.get(kind, ("", ""))[0],
            args=_TEST_NEEDS.get(kind, ("", ""))[1],
        ),
    }
    written = []
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


_PYPROJECT = """[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "The {kind} '{name}' for wae-toolkit."
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["wae-toolkit>={toolkit}"]

[project.optional-dependencies]
test = ["pytest"]

# This line is what makes `wae` find the plugin: group, name, "module:class".
[project.entry-points."{group}"]
{name} = "{pkg}.plugin:{cls}"

[tool.setuptools]
packages = ["{pkg}"]
"""

_README = """# {dist}

The {kind} `{name}` for wae-toolkit, written against wae-toolkit's plugin
interface {iface}.

```bash
{install}   # the pin keeps the torch you have
wae plugins list --kind {kind}   # shows '{name}' from {dist} 0.1.0
wae plugins show {name}          # its documentation and options
{run}
pip install pytest && pytest tests   # the conformance kit: wae_toolkit.plugins.testing.{check}
```

Edit `{pkg}/plugin.py`: the class docstring's first line is what `wae plugins list` shows, its
`Args:` section documents the options (every constructor argument is an option, with a default
and a type annotation, stored under its own name), and `wae run --{kind}-opt NAME=VALUE` sets
them.
"""

_TEST = '''"""The conformance kit of wae-toolkit, run on this plugin."""

{imports}from wae_toolkit.plugins.registry import get_plugin_info
from wae_toolkit.plugins.testing import {check}

from {pkg}.plugin import {cls}


def test_conforms_to_the_{kind}_interface({args}):
    {call}


def test_is_discovered_through_its_entry_point():
    info = get_plugin_info("{kind}", "{name}")
    assert info.distribution == "{dist}" and info.target == "{pkg}.plugin:{cls}"
'''
