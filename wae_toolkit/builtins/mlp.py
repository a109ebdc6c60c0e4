"""Fully connected encoder and decoder for vectors and small images."""

from __future__ import annotations

import math

from torch import Tensor, nn

from wae_toolkit.errors import DataError, UsageError, setting
from wae_toolkit.plugins.interfaces import GaussianHead, Network, output_activation


def _mlp(sizes: list[int], activation: type[nn.Module]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), activation()]
    return layers


class MLPNetwork(Network):
    """Multi-layer perceptron encoder and decoder for any flat or small input.

    The encoder flattens each sample and applies Linear + activation for every hidden width, then
    a linear map to the codes; the decoder mirrors it (hidden widths reversed) and reshapes to the
    sample shape.

    Args:
        hidden: widths of the hidden layers of the encoder (the decoder uses them reversed).
        activation: ``relu``, ``leaky_relu``, ``elu``, ``silu`` or ``tanh``.
    """

    _ACTIVATIONS: dict[str, type[nn.Module]] = {
        "relu": nn.ReLU,
        "leaky_relu": nn.LeakyReLU,
        "elu": nn.ELU,
        "silu": nn.SiLU,
        "tanh": nn.Tanh,
    }
    #: Larger inputs should use a convolutional network.
    MAX_FEATURES = 1 << 16

    def __init__(self, hidden: tuple[int, ...] = (256, 256), activation: str = "relu") -> None:
        if not hidden or min(hidden) < 1:
            raise UsageError(f"hidden must be one or more widths >= 1; got {hidden}.")
        if activation not in self._ACTIVATIONS:
            raise UsageError(
                f"Unknown activation '{activation}'; allowed: {', '.join(self._ACTIVATIONS)}."
            )
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = activation

    def check_shape(self, data_shape: tuple[int, ...]) -> None:
        features = math.prod(data_shape)
        if not data_shape or features < 1:
            raise DataError(
                f"The mlp network needs samples with at least one value; got {data_shape}."
            )
        if features > self.MAX_FEATURES:
            raise DataError(
                f"The mlp network takes samples of at most {self.MAX_FEATURES} values; got shape "
                f"{data_shape} ({features} values). Use {setting('network', 'conv')} for images."
            )

    def build_encoder(
        self, data_shape: tuple[int, ...], latent_dim: int, gaussian: bool = False
    ) -> nn.Module:
        self.check_shape(data_shape)
        act = self._ACTIVATIONS[self.activation]
        sizes = [math.prod(data_shape), *self.hidden]
        return nn.Sequential(
            nn.Flatten(), *_mlp(sizes, act), GaussianHead(sizes[-1], latent_dim, gaussian)
        )

    def build_decoder(
        self, data_shape: tuple[int, ...], latent_dim: int, output: str = "sigmoid"
    ) -> nn.Module:
        self.check_shape(data_shape)
        act = self._ACTIVATIONS[self.activation]
        sizes = [latent_dim, *reversed(self.hidden)]
        return nn.Sequential(
            *_mlp(sizes, act),
            nn.Linear(sizes[-1], math.prod(data_shape)),
            _Unflatten(data_shape),
            output_activation(output),
        )

    def __repr__(self) -> str:
        return f"MLPNetwork(hidden={self.hidden}, activation={self.activation!r})"


class _Unflatten(nn.Module):
    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, h: Tensor) -> Tensor:
        return h.view(h.shape[0], *self.shape)
