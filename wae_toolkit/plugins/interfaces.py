"""The five plugin interfaces of wae-toolkit. Their docstrings are the contract.

A Wasserstein Auto-Encoder minimises ``E[c(x, G(z))] + lambda * D_Z(Q_Z, P_Z)``:

* :class:`Cost` is ``c``, the reconstruction cost;
* :class:`LatentPenalty` is ``D_Z``, a divergence between the aggregate code distribution ``Q_Z``
  and the prior ``P_Z``, estimated from one batch of codes and one batch of prior samples;
* :class:`Prior` is ``P_Z``;
* :class:`Network` builds the encoder ``Q(Z|X)`` and the decoder ``G``;
* :class:`DataSource` reads the data ``x``: a built-in name, or a format of file or folder.

Tensor names are fixed across all interfaces: ``x`` (data, ``(B, *S)``), ``x_hat``
(reconstructions, same shape), ``z_q`` (codes, ``(B, D)``), ``z_p`` (prior samples, ``(N, D)``).

Plugins are classes that subclass one of these and are registered under an entry point group
(see :mod:`wae_toolkit.plugins.registry`). Every constructor argument must be a keyword with a
default
and a type annotation among ``bool``, ``int``, ``float``, ``str``, ``Literal[...]``,
``tuple[float, ...]``, ``tuple[int, ...]`` or ``X | None``, and be stored as an attribute of the
same name: that is how the CLI's ``--penalty-opt name=value`` finds the options, converts the
values and records them in the run configuration.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from wae_toolkit.signals import stop_requested

__all__ = [
    "INTERFACE_VERSION",
    "PluginBase",
    "Cost",
    "LatentPenalty",
    "Prior",
    "Network",
    "DataSource",
    "DATA_SOURCE_KINDS",
    "EncoderOutput",
    "prior_moments",
    "stop_requested",
]

#: What an encoder returns: codes ``(B, D)`` when deterministic; ``(mean, log_variance)``, both
#: ``(B, D)``, when Gaussian.
EncoderOutput = Tensor | tuple[Tensor, Tensor]


#: Version of these interfaces, ``MAJOR.MINOR``. A plugin declares the version it was written for
#: in its class attribute ``interface_version``; it loads when the major versions are equal and
#: its minor version is not newer than this one (minor versions only add optional features).
INTERFACE_VERSION = "1.1"  # 1.1: Network.channels_last, LatentPenalty.optimizers()


class PluginBase:
    """What every plugin class carries, whatever its kind.

    Attributes:
        interface_version: the interface version the plugin was written for. Declare it in your
            class (``interface_version = "1.1"``) so a future, incompatible wae-toolkit reports the
            mismatch clearly instead of failing somewhere inside training.
    """

    interface_version: ClassVar[str] = INTERFACE_VERSION


class Cost(PluginBase, ABC):
    """Reconstruction cost ``c(x, x_hat)``.

    Subclasses implement :meth:`cost`. A cost holds no trainable state.

    Attributes:
        data_range: ``(low, high)`` when the cost only makes sense for data in that range (binary
            cross-entropy needs ``(0, 1)``); the training loop checks the data once before it
            starts. ``None`` for any data.
    """

    data_range: ClassVar[tuple[float, float] | None] = None

    @abstractmethod
    def cost(self, x: Tensor, x_hat: Tensor) -> Tensor:
        """Per-sample cost.

        Args:
            x: data, ``(B, *S)``.
            x_hat: reconstructions, ``(B, *S)``.

        Returns:
            ``(B,)``, one non-negative cost per sample, differentiable with respect to ``x_hat``,
            with ``x``'s dtype and device. The batch objective is its mean.
        """

    def __call__(self, x: Tensor, x_hat: Tensor) -> Tensor:
        return self.cost(x, x_hat)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Prior(PluginBase, nn.Module, ABC):
    """The prior ``P_Z`` on the latent space: a distribution over ``R^D`` you can sample.

    A prior is an ``nn.Module`` so it may hold parameters (learnable means, say) and follows
    ``.to(device)``. Its first constructor argument is ``dim``, the latent dimension, which the
    toolkit fills in.

    Subclasses implement :meth:`sample`, :meth:`log_prob` and :attr:`variance`.
    """

    _anchor: Tensor
    #: Whether :meth:`log_prob` is a density with respect to the Lebesgue measure on ``R^D``.
    #: ``False`` for a prior concentrated on a Lebesgue-null set (a sphere): its ``log_prob`` is
    #: then with respect to a base measure on that set, which the prior documents, and ``-inf``
    #: off the set; :func:`wae_toolkit.plugins.testing.check_prior` does not integrate it over
    #: ``R^D``.
    has_density: ClassVar[bool] = True

    def __init__(self, dim: int) -> None:
        super().__init__()
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            from wae_toolkit.errors import UsageError

            raise UsageError(f"The latent dimension must be an integer >= 1; got {dim!r}.")
        self.dim = dim
        # An empty buffer that tracks the module's device and dtype for sampling.
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    @property
    def dtype(self) -> torch.dtype:
        return self._anchor.dtype

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` samples, ``(n, D)``, on the prior's device and dtype.

        Uses ``generator`` when given, else torch's global generator, so a fixed seed gives the
        same samples.
        """

    @abstractmethod
    def log_prob(self, z: Tensor) -> Tensor:
        """Log-density of ``z``, ``(B, D)`` -> ``(B,)``."""

    @property
    @abstractmethod
    def variance(self) -> float:
        """Average per-coordinate variance, ``trace(Cov) / D``.

        Penalties derive their scales from it (the IMQ kernel's ``C = 2 D sigma^2``, the Sinkhorn
        blur), so a prior of another scale needs no retuning.
        """

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


def prior_moments(prior: Prior, who: str) -> tuple[int, float]:
    """``(D, sigma^2)`` of ``prior`` for a penalty's scales; ``who`` names the penalty in errors."""
    variance = float(prior.variance)
    if not (math.isfinite(variance) and variance > 0):
        from wae_toolkit.errors import UsageError

        raise UsageError(f"{who}: the prior's variance must be positive; got {variance!r}.")
    return int(prior.dim), variance


class LatentPenalty(PluginBase, nn.Module, ABC):
    """Divergence ``D_Z(Q_Z, P_Z)`` between the codes and the prior, estimated on one batch.

    Called as ``penalty(z_q, z_p)`` with codes ``z_q`` ``(B, D)`` and prior samples ``z_p``
    ``(N, D)``; returns a scalar that is differentiable with respect to ``z_q`` and that the
    training loop multiplies by ``lambda``. Configured in the constructor only.

    Before training, the loop calls :meth:`bind` with the prior so that a penalty can derive its
    scales from the prior's dimension and variance.

    Adversarial penalties (a latent discriminator or critic) set ``adversarial = True``, own their
    parameters and their optimizer, and implement :meth:`critic_step`. The training loop calls
    ``critic_step(z_q.detach(), z_p)`` once per training step, before the model's own update; the
    model's optimizer never sees the penalty's parameters. For such penalties ``forward`` returns
    the encoder's (generator's) loss.

    A saved run is loaded by building the penalty, calling :meth:`bind`, then
    ``load_state_dict``, so parameters created in :meth:`bind` are restored.
    """

    adversarial: ClassVar[bool] = False
    #: Whether ``penalty(z, z)`` is exactly zero (checked by :mod:`wae_toolkit.plugins.testing`);
    #: may be
    #: set per instance when it depends on an option (an MMD estimator, say).
    zero_on_identical: bool = False
    #: Whether the penalty uses prior samples at all (a closed-form KL does not).
    needs_prior_samples: ClassVar[bool] = True
    #: Whether the penalty needs the Gaussian encoder's statistics. When True the training loop
    #: calls ``penalty(z_q, z_p, mean=mean, log_var=log_var)`` (both ``(B, D)``, log-variances
    #: clipped to [-20, 5]) and a run with a deterministic encoder is refused before it starts.
    needs_encoder_stats: ClassVar[bool] = False

    def bind(self, prior: Prior) -> None:  # noqa: B027 - optional hook
        """Adapt to ``prior`` (dimension, variance) before training. The default does nothing."""

    @abstractmethod
    def forward(self, z_q: Tensor, z_p: Tensor) -> Tensor:
        """Return the penalty, a scalar tensor with ``z_q``'s dtype and device."""

    def critic_step(self, z_q: Tensor, z_p: Tensor) -> dict[str, Tensor]:
        """Update the penalty's own parameters on detached codes; adversarial penalties only.

        A penalty that takes many updates here checks :func:`stop_requested` between them and
        returns early when it is true, so that Ctrl-C or a job scheduler's SIGTERM is honoured
        within one update (the step then finishes and the run checkpoints and stops).

        Returns:
            named scalar tensors to log (e.g. ``{"critic_loss": ...}``), left on the device.
        """
        return {}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimizers this penalty owns (a critic's), by name, created now if needed.

        Checkpoints save and restore their state so that a resumed run continues exactly;
        a penalty that keeps an optimizer and does not list it here resumes with a fresh one.
        The default: none.
        """
        return {}


class Network(PluginBase, ABC):
    """Builds an encoder and a decoder for a data shape and a latent dimension.

    A network plugin is a factory: its constructor takes the architecture options (widths,
    kernel size, ...), and :meth:`build_encoder` / :meth:`build_decoder` return ``nn.Module`` s.

    * The encoder maps ``x`` ``(B, *S)`` to codes ``(B, D)``; when ``gaussian=True`` it returns
      ``(mean, log_variance)``, both ``(B, D)``.
    * The decoder maps ``z`` ``(B, D)`` to ``x_hat`` ``(B, *S)``, ending in the activation named by
      ``output``: ``"sigmoid"`` for data in [0, 1], ``"tanh"`` for [-1, 1], ``"linear"`` otherwise.

    :meth:`check_shape` raises :class:`~wae_toolkit.errors.DataError` with one sentence that says
    which shapes the network accepts.

    Set the class attribute ``channels_last = True`` when the modules are convolutional and
    accept image batches ``(B, C, H, W)`` in any memory layout: the training loop then stores the
    images and the weights channels-last (faster convolutions on CPUs and on GPUs' tensor cores)
    and turns on cuDNN's autotuner on CUDA. Leave it False when the modules ``view`` their input.
    """

    #: The modules are convolutional and accept channels-last image batches.
    channels_last: bool = False

    def check_shape(self, data_shape: tuple[int, ...]) -> None:  # noqa: B027 - optional hook
        """Raise ``DataError`` if the network cannot handle samples of shape ``data_shape``."""

    @abstractmethod
    def build_encoder(
        self, data_shape: tuple[int, ...], latent_dim: int, gaussian: bool = False
    ) -> nn.Module:
        """Return the encoder for samples of shape ``data_shape`` (without the batch axis)."""

    @abstractmethod
    def build_decoder(
        self, data_shape: tuple[int, ...], latent_dim: int, output: str = "sigmoid"
    ) -> nn.Module:
        """Return the decoder producing samples of shape ``data_shape``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


#: What :attr:`DataSource.kind` may be: ``"name"`` (given by name, ``--data digits``), ``"file"``,
#: ``"folder"``, or ``"path"`` (files and folders alike).
DATA_SOURCE_KINDS = ("name", "file", "folder", "path")


class DataSource(PluginBase, ABC):
    """Where a data set comes from: a name (``digits``), or one format of file or folder.

    ``wae_toolkit.data.load_dataset(spec, options)`` (``wae run --data SPEC --data-opt K=V``)
    picks the source. A ``spec`` without a path separator that names an installed source of kind
    ``"name"`` is that source (so ``./digits`` names a folder). Any other ``spec`` is a path: it is
    offered to the sources of kind ``"folder"`` (for a folder) or ``"file"`` (for anything else),
    and ``"path"`` (both), built-ins first in their documented order, then the others by name; the
    first whose :meth:`claims` returns something true reads it.

    The options are the constructor's keyword arguments, as for every plugin. ``load_dataset``
    builds the source with :meth:`from_options` and calls :meth:`load`, which returns a
    ``wae_toolkit.data.Dataset``: build one with ``wae_toolkit.data.dataset_from_arrays``,
    which splits, checks and describes samples as the built-in sources do.

    A source never downloads, never unpickles, and raises
    :class:`~wae_toolkit.errors.DataError` with one sentence saying what is wrong and what is
    allowed.

    Attributes:
        kind: ``"name"``, ``"file"``, ``"folder"`` or ``"path"`` (see :data:`DATA_SOURCE_KINDS`).
    """

    kind: ClassVar[str] = "file"

    def claims(self, path: Path) -> Any:
        """Whether this source reads ``path`` (file and folder sources; a name source is not
        asked): something true, such as what was found there (the files to read), which
        :meth:`load` receives as ``found``, or something false.

        Called on an instance with the default options. Quick (a suffix, a marker file, a few
        bytes), and it never raises for a path of another format. The default claims nothing.
        """
        return False

    @abstractmethod
    def load(self, spec: str, path: Path | None = None, found: Any = None) -> Any:
        """Read the data set.

        Args:
            spec: the name or the path as the user gave it, for the data set's name and for
                messages.
            path: the file or folder (``None`` for a name source).
            found: what :meth:`claims` returned for ``path`` (``None`` when called directly).

        Returns:
            a ``wae_toolkit.data.Dataset``: float32 train and test tensors on the CPU, labels
            or ``None``, the value range, a description and the resolved options.
        """

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None, name: str) -> DataSource:
        """The source configured with the data options as given (``--data-opt`` text or Python
        values; ``None`` values are dropped); ``name`` is the source's plugin name.

        The default converts each option to the type the constructor declares and raises
        :class:`~wae_toolkit.errors.DataError` for an unknown option or a bad value, with the
        options allowed. Override it to check options your own way.
        """
        from wae_toolkit.errors import DataError, UsageError
        from wae_toolkit.plugins.options import bind_options

        given = {str(k).strip().replace("-", "_"): v for k, v in (options or {}).items()}
        try:
            kwargs = bind_options(
                cls, {k: v for k, v in given.items() if v is not None}, "data source", name
            )
            return cls(**kwargs)
        except UsageError as exc:
            raise DataError(str(exc)) from None
        except (TypeError, ValueError) as exc:
            raise DataError(f"Bad options for the data source '{name}': {exc}") from None

    def options(self) -> dict[str, Any]:
        """The source's options and their values, as a run's configuration records them."""
        from wae_toolkit.plugins.options import resolved_options

        return resolved_options(self)


def output_activation(output: str) -> nn.Module:
    """The decoder's last activation for ``output`` in ``{"sigmoid", "tanh", "linear"}``."""
    if output == "sigmoid":
        return nn.Sigmoid()
    if output == "tanh":
        return nn.Tanh()
    if output == "linear":
        return nn.Identity()
    from wae_toolkit.errors import UsageError

    raise UsageError(f"Unknown decoder output {output!r}; allowed: sigmoid, tanh, linear.")


class GaussianHead(nn.Module):
    """Maps features ``(B, F)`` to codes, or to ``(mean, log_variance)`` for a Gaussian encoder.

    Networks end their encoders with it so that every network supports both encoder kinds.
    """

    def __init__(self, in_features: int, latent_dim: int, gaussian: bool) -> None:
        super().__init__()
        self.gaussian = gaussian
        self.mean = nn.Linear(in_features, latent_dim)
        self.log_var = nn.Linear(in_features, latent_dim) if gaussian else None

    def forward(self, h: Tensor) -> EncoderOutput:
        if self.log_var is None:
            return self.mean(h)
        return self.mean(h), self.log_var(h)
