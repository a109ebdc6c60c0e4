"""A 1-D convolutional encoder and decoder for signals ``(C, L)``, of any length."""

from __future__ import annotations

from torch import nn

from wae_toolkit.builtins._stride import CropTo, PadTo, check_conv_options, padded
from wae_toolkit.errors import DataError, setting
from wae_toolkit.plugins.interfaces import GaussianHead, Network, output_activation


class Conv1dNetwork(Network):
    """1-D convolutional encoder and decoder for signals (C, L): audio, sensors, time series.

    The DCGAN-style networks of ``conv`` along one axis. Encoder: k stride-2 convolutions with
    ``width * 2^i`` channels, each followed by batch norm and ReLU, then a linear map to the
    codes. Decoder, its mirror: a linear map to a ``width * 2^(k-1)``-channel signal of length
    L / 2^k, k stride-2 transposed convolutions halving the channels (down to ``width``), batch
    norm and ReLU, then a stride-1 convolution to C channels.

    k is ``depth``, or, when fewer halvings bring L to 1 (L <= 2^(depth - 1)), that number
    ceil(log2 L). Any length of at least 4 works: the encoder zero-pads its input, centred, to the
    next multiple of 2^k (L = 100, k = 4: 112), so that each layer halves the length exactly, and
    the decoder crops its output back to the centre L values.

    Args:
        width: channels of the first encoder layer (doubled at each further layer).
        depth: at most this many stride-2 convolutions in the encoder (and transposed ones in the
            decoder).
        kernel: convolution kernel size (3, 4 or 5).
        batch_norm: whether to use batch normalisation after each convolution.
    """

    interface_version = "1.1"

    def __init__(
        self, width: int = 32, depth: int = 4, kernel: int = 5, batch_norm: bool = True
    ) -> None:
        check_conv_options(width, depth, kernel)
        self.width, self.depth, self.kernel, self.batch_norm = width, depth, kernel, batch_norm

    def check_shape(self, data_shape: tuple[int, ...]) -> None:
        if len(data_shape) != 2:
            hint = (
                f"Use {setting('network', 'conv')} for images"
                if len(data_shape) == 3
                else f"Use {setting('network', 'mlp')} for vectors"
            )
            raise DataError(
                f"The conv1d network needs signals shaped (C, L); got samples of shape "
                f"{tuple(data_shape)}. {hint}, or save signals as an (N, C, L) array (with "
                f"{setting('data_opts', 'layout=signal')} when C > 16 or L < 8 C)."
            )
        if data_shape[1] < 4:
            raise DataError(
                f"The conv1d network needs signals of length at least 4; got {data_shape[1]}."
            )

    def _stages(self, length: int) -> int:
        """k: ``depth`` halvings, or as many as bring ``length`` to 1 when that is fewer."""
        return min(self.depth, (length - 1).bit_length())

    def _norm(self, channels: int) -> nn.Module:
        return nn.BatchNorm1d(channels) if self.batch_norm else nn.Identity()

    def build_encoder(
        self, data_shape: tuple[int, ...], latent_dim: int, gaussian: bool = False
    ) -> nn.Module:
        self.check_shape(data_shape)
        c, length = data_shape
        stages = self._stages(length)
        full = padded(length, 2**stages)
        k, pad = self.kernel, (self.kernel - 1) // 2
        layers: list[nn.Module] = [PadTo((length,), (full,))] if full != length else []
        for i in range(stages):
            out = self.width * 2**i
            layers += [nn.Conv1d(c, out, k, stride=2, padding=pad), self._norm(out), nn.ReLU()]
            c = out
        features = c * full // 2**stages
        return nn.Sequential(*layers, nn.Flatten(), GaussianHead(features, latent_dim, gaussian))

    def build_decoder(
        self, data_shape: tuple[int, ...], latent_dim: int, output: str = "sigmoid"
    ) -> nn.Module:
        self.check_shape(data_shape)
        c_out, length = data_shape
        stages = self._stages(length)
        full = padded(length, 2**stages)
        k, pad = self.kernel, (self.kernel - 1) // 2
        c = self.width * 2 ** max(stages - 1, 0)
        layers: list[nn.Module] = [
            nn.Linear(latent_dim, c * (full // 2**stages)),
            nn.Unflatten(1, (c, full // 2**stages)),
            self._norm(c),
            nn.ReLU(),
        ]
        for _ in range(stages):
            nxt = max(c // 2, self.width)
            layers += [
                nn.ConvTranspose1d(
                    c, nxt, k, stride=2, padding=pad, output_padding=2 - k + 2 * pad
                ),
                self._norm(nxt),
                nn.ReLU(),
            ]
            c = nxt
        last = k if k % 2 else k - 1
        layers += [nn.Conv1d(c, c_out, last, padding=(last - 1) // 2), output_activation(output)]
        if full != length:
            layers.append(CropTo((length,), (full,)))
        return nn.Sequential(*layers)

    def __repr__(self) -> str:
        return (
            f"Conv1dNetwork(width={self.width}, depth={self.depth}, kernel={self.kernel}, "
            f"batch_norm={self.batch_norm})"
        )
