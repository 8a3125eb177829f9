"""Network architectures that map IMU windows to joint moments (all TorchScript-exportable).

Every model follows the model-file contract of :mod:`gait_estimator.runtime.metadata`:

- ``forward(x[B, T, C]) -> [B, J]``: z-scored input window, oldest row first; the moment at the
  newest row, already in the output unit (N·m/kg by default). Each model holds ``out_scale`` and
  ``out_offset`` buffers, so the network trains on z-scored targets and exports physical units.
- Streaming models (``STREAMING = True``: LSTM, GRU, CNN-LSTM, TCN) also export
  ``init_state(batch) -> List[Tensor]`` and ``forward_step(x[B, C], state) -> (y[B, J], state)``.
  Causal convolutions keep their last ``(k - 1) * dilation`` inputs in the state, so streaming
  from ``init_state`` over a sequence gives exactly ``forward`` over the same sequence.
- Causal models (TCN, recurrent) also have ``forward_seq(x[B, T, C]) -> [B, T, J]``: the moment
  at every row, used to train on many rows per window.

References: LSTM 3 x 128 and 1D CNN 24/8/10 channels with kernel 5 (Hur et al. 2025);
CNN-GRU with temporal attention (Xie et al. 2025); causal dilated TCN (Molinaro et al. 2024).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from gait_estimator.errors import ConfigError

__all__ = [
    "ARCHITECTURE_DEFAULTS",
    "CNN1D",
    "CNNGRUAttention",
    "CNNLSTM",
    "CausalConv1d",
    "GRUNet",
    "LSTMNet",
    "TCN",
    "build_model",
    "count_parameters",
]


class _OutputScale(nn.Module):
    """Maps the network's z-scored output to physical units: ``y * out_scale + out_offset``."""

    def __init__(self, n_out: int) -> None:
        super().__init__()
        self.register_buffer("out_scale", torch.ones(n_out))
        self.register_buffer("out_offset", torch.zeros(n_out))

    def set_output_scale(self, scale: Sequence[float], offset: Sequence[float]) -> None:
        self.out_scale.copy_(torch.as_tensor(list(scale), dtype=torch.float32))
        self.out_offset.copy_(torch.as_tensor(list(offset), dtype=torch.float32))


class CausalConv1d(nn.Module):
    """Left-padded dilated 1D convolution; ``step`` runs it one row at a time with a buffer."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int = 1) -> None:
        super().__init__()
        self.c_in = c_in
        self.pad = (kernel - 1) * dilation
        self.dilation = dilation
        self.conv = nn.Conv1d(c_in, c_out, kernel, dilation=dilation)

    def forward(self, x: Tensor) -> Tensor:  # [B, C, T] -> [B, C_out, T]
        return self.conv(nn.functional.pad(x, (self.pad, 0)))

    def step(self, x: Tensor, buf: Tensor) -> tuple[Tensor, Tensor]:  # x [B, C], buf [B, C, pad]
        # One output row is a matrix-vector product over the k taps (every dilation-th buffered
        # row): the same sums as the convolution, at a fraction of a conv call's per-call cost
        # (measured with the default TCN: 318 -> 69 us per streaming step on this CPU).
        seq = torch.cat([buf, x.unsqueeze(2)], dim=2)
        taps = seq[:, :, :: self.dilation] if self.dilation > 1 else seq
        y = nn.functional.linear(taps.flatten(1), self.conv.weight.flatten(1), self.conv.bias)
        return y, seq[:, :, 1:]

    def init_buffer(self, batch: int) -> Tensor:
        return torch.zeros(batch, self.c_in, self.pad, device=self.conv.weight.device)


class _Recurrent(_OutputScale):
    """Stacked recurrent layers with a linear head on every row."""

    STREAMING = True

    def __init__(self, n_out: int, hidden: int, layers: int) -> None:
        super().__init__(n_out)
        self.layers, self.hidden = layers, hidden
        self.head = nn.Linear(hidden, n_out)

    def _run(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        # Abstract: every concrete recurrent model (LSTM, GRU, CNN-LSTM) overrides it.
        raise RuntimeError("a recurrent model must define _run")

    def _n_state(self) -> int:
        return 1

    def forward_seq(self, x: Tensor) -> Tensor:
        out, _ = self._run(x, self.init_state(x.shape[0]))
        return self.head(out) * self.out_scale + self.out_offset

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self._run(x, self.init_state(x.shape[0]))
        return self.head(out[:, -1]) * self.out_scale + self.out_offset

    @torch.jit.export
    def init_state(self, batch: int) -> list[Tensor]:
        z = torch.zeros(self.layers, batch, self.hidden, device=self.out_scale.device)
        return [z.clone() for _ in range(self._n_state())]

    @torch.jit.export
    def forward_step(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        out, new_state = self._run(x.unsqueeze(1), state)
        return self.head(out[:, 0]) * self.out_scale + self.out_offset, new_state


class LSTMNet(_Recurrent):
    """Stacked LSTM (Hur 2025: 3 layers x 128) with a linear head."""

    def __init__(
        self, n_in: int, n_out: int, hidden: int = 128, layers: int = 3, dropout: float = 0.0
    ) -> None:
        super().__init__(n_out, hidden, layers)
        self.rnn = nn.LSTM(
            n_in, hidden, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0
        )

    def _n_state(self) -> int:
        return 2

    def _run(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        out, (h, c) = self.rnn(x, (state[0], state[1]))
        return out, [h, c]


class GRUNet(_Recurrent):
    """Stacked GRU with a linear head."""

    def __init__(
        self, n_in: int, n_out: int, hidden: int = 64, layers: int = 2, dropout: float = 0.0
    ) -> None:
        super().__init__(n_out, hidden, layers)
        self.rnn = nn.GRU(
            n_in, hidden, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0
        )

    def _run(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        out, h = self.rnn(x, state[0])
        return out, [h]


class CNN1D(_OutputScale):
    """1D CNN of Hur 2025: conv 24/8/10 channels, kernel 5, ReLU, flatten, linear head."""

    STREAMING = False

    def __init__(
        self,
        n_in: int,
        n_out: int,
        window: int,
        channels: Sequence[int] = (24, 8, 10),
        kernel: int = 5,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(n_out)
        layers: list[nn.Module] = []
        c, t = n_in, window
        for ch in channels:
            layers += [nn.Conv1d(c, ch, kernel), nn.ReLU()]
            c, t = ch, t - kernel + 1
        if t < 1:
            raise ConfigError(
                "window", window, f"must be > {window - t} for {len(channels)} conv layers of kernel {kernel}"
            )
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(c * t, n_out)

    def forward(self, x: Tensor) -> Tensor:
        z = self.features(x.transpose(1, 2)).flatten(1)
        return self.head(self.drop(z)) * self.out_scale + self.out_offset


class _ConvFrontEnd(_OutputScale):
    """Two causal convolutions with ReLU (``conv1``, ``conv2``) ahead of a recurrent layer."""

    def __init__(self, n_in: int, n_out: int, conv_channels: int, kernel: int) -> None:
        super().__init__(n_out)
        self.conv1 = CausalConv1d(n_in, conv_channels, kernel)
        self.conv2 = CausalConv1d(conv_channels, conv_channels, kernel)

    def _features(self, x: Tensor) -> Tensor:  # [B, T, C] -> [B, T, F]
        z = torch.relu(self.conv1(x.transpose(1, 2)))
        return torch.relu(self.conv2(z)).transpose(1, 2)


class CNNLSTM(_ConvFrontEnd):
    """Causal conv front end (2 x kernel 5) feeding an LSTM; streams with conv buffers + LSTM state."""

    STREAMING = True

    def __init__(
        self,
        n_in: int,
        n_out: int,
        conv_channels: int = 32,
        kernel: int = 5,
        hidden: int = 64,
        layers: int = 1,
    ) -> None:
        super().__init__(n_in, n_out, conv_channels, kernel)
        self.layers, self.hidden = layers, hidden
        self.rnn = nn.LSTM(conv_channels, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, n_out)

    def forward_seq(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(self._features(x))
        return self.head(out) * self.out_scale + self.out_offset

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(self._features(x))
        return self.head(out[:, -1]) * self.out_scale + self.out_offset

    @torch.jit.export
    def init_state(self, batch: int) -> list[Tensor]:
        z = torch.zeros(self.layers, batch, self.hidden, device=self.out_scale.device)
        return [self.conv1.init_buffer(batch), self.conv2.init_buffer(batch), z, z.clone()]

    @torch.jit.export
    def forward_step(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        z, b1 = self.conv1.step(x, state[0])
        z, b2 = self.conv2.step(torch.relu(z), state[1])
        out, (h, c) = self.rnn(torch.relu(z).unsqueeze(1), (state[2], state[3]))
        y = self.head(out[:, 0]) * self.out_scale + self.out_offset
        return y, [b1, b2, h, c]


class CNNGRUAttention(_ConvFrontEnd):
    """Conv front end, bidirectional-free GRU, additive temporal attention (after Xie 2025).

    The attention pools over the whole window, so this model runs in window mode only.
    """

    STREAMING = False

    def __init__(
        self,
        n_in: int,
        n_out: int,
        conv_channels: int = 32,
        kernel: int = 5,
        hidden: int = 64,
        layers: int = 1,
        attention: int = 32,
    ) -> None:
        super().__init__(n_in, n_out, conv_channels, kernel)
        self.rnn = nn.GRU(conv_channels, hidden, num_layers=layers, batch_first=True)
        self.att = nn.Sequential(nn.Linear(hidden, attention), nn.Tanh(), nn.Linear(attention, 1))
        self.head = nn.Linear(2 * hidden, n_out)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(self._features(x))  # [B, T, H]
        w = torch.softmax(self.att(out), dim=1)  # [B, T, 1]
        context = (w * out).sum(dim=1)
        feat = torch.cat([context, out[:, -1]], dim=1)  # attention summary + newest state
        return self.head(feat) * self.out_scale + self.out_offset


class _TCNBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.conv1 = CausalConv1d(c_in, c_out, kernel, dilation)
        self.conv2 = CausalConv1d(c_out, c_out, kernel, dilation)
        self.drop = nn.Dropout(dropout)
        self.has_proj = c_in != c_out
        self.proj = nn.Conv1d(c_in, c_out, 1) if self.has_proj else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        z = self.drop(torch.relu(self.conv1(x)))
        z = self.drop(torch.relu(self.conv2(z)))
        return torch.relu(z + self.proj(x))

    def step(self, x: Tensor, b1: Tensor, b2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        z, b1 = self.conv1.step(x, b1)
        z, b2 = self.conv2.step(torch.relu(z), b2)
        res = self.proj(x.unsqueeze(2))[:, :, 0] if self.has_proj else x
        return torch.relu(torch.relu(z) + res), b1, b2


class TCN(_OutputScale):
    """Causal temporal convolutional network (Molinaro 2024): residual dilated conv blocks.

    Receptive field ``1 + 2 * (kernel - 1) * sum(dilations)`` rows; a window at least that long
    gives the same output as the unbounded causal sequence, so sequence training is exact.
    """

    STREAMING = True

    def __init__(
        self,
        n_in: int,
        n_out: int,
        channels: int = 32,
        kernel: int = 3,
        dilations: Sequence[int] = (1, 2, 4, 8),
        dropout: float = 0.0,
    ) -> None:
        super().__init__(n_out)
        blocks = []
        c = n_in
        for d in dilations:
            blocks.append(_TCNBlock(c, channels, kernel, int(d), dropout))
            c = channels
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv1d(channels, n_out, 1)
        self.receptive_field = 1 + 2 * (kernel - 1) * int(sum(dilations))

    def forward_seq(self, x: Tensor) -> Tensor:
        z = x.transpose(1, 2)
        for block in self.blocks:
            z = block(z)
        return self.head(z).transpose(1, 2) * self.out_scale + self.out_offset

    def forward(self, x: Tensor) -> Tensor:
        # Only the newest row is needed; the receptive field bounds what must be convolved.
        rf = self.receptive_field
        if x.shape[1] > rf:
            x = x[:, x.shape[1] - rf :]
        z = x.transpose(1, 2)
        for block in self.blocks:
            z = block(z)
        return self.head(z[:, :, -1:])[:, :, 0] * self.out_scale + self.out_offset

    @torch.jit.export
    def init_state(self, batch: int) -> list[Tensor]:
        state: list[Tensor] = []
        for block in self.blocks:
            state.append(block.conv1.init_buffer(batch))
            state.append(block.conv2.init_buffer(batch))
        return state

    @torch.jit.export
    def forward_step(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        new_state: list[Tensor] = []
        z = x
        i = 0
        for block in self.blocks:
            z, b1, b2 = block.step(z, state[i], state[i + 1])
            new_state.append(b1)
            new_state.append(b2)
            i += 2
        y = nn.functional.linear(z, self.head.weight[:, :, 0], self.head.bias)  # the 1x1 conv, one row
        return y * self.out_scale + self.out_offset, new_state


# Hyper-parameters per architecture name (runtime.metadata.ARCHITECTURES). "paper" sizes follow
# the cited papers; the trainer may override any of them (``--arch-opt key=value``).
ARCHITECTURE_DEFAULTS: dict[str, dict[str, Any]] = {
    "lstm": {"hidden": 128, "layers": 3, "dropout": 0.0},
    "gru": {"hidden": 64, "layers": 2, "dropout": 0.0},
    "cnn": {"channels": (24, 8, 10), "kernel": 5, "dropout": 0.0},
    "cnn_lstm": {"conv_channels": 32, "kernel": 5, "hidden": 64, "layers": 1},
    "cnn_gru_attention": {"conv_channels": 32, "kernel": 5, "hidden": 64, "layers": 1, "attention": 32},
    "tcn": {"channels": 32, "kernel": 3, "dilations": (1, 2, 4, 8), "dropout": 0.0},
}


def build_model(architecture: str, n_in: int, n_out: int, window: int, **options: Any) -> nn.Module:
    """Instantiate ``architecture`` with its defaults updated by ``options``."""
    if architecture not in ARCHITECTURE_DEFAULTS:
        raise ConfigError("architecture", architecture, f"must be one of {sorted(ARCHITECTURE_DEFAULTS)}")
    opts = dict(ARCHITECTURE_DEFAULTS[architecture])
    unknown = sorted(set(options) - set(opts))
    if unknown:
        raise ConfigError("arch options", unknown, f"'{architecture}' accepts {sorted(opts)}")
    opts.update(options)
    if architecture == "lstm":
        return LSTMNet(n_in, n_out, **opts)
    if architecture == "gru":
        return GRUNet(n_in, n_out, **opts)
    if architecture == "cnn":
        return CNN1D(n_in, n_out, window, **opts)
    if architecture == "cnn_lstm":
        return CNNLSTM(n_in, n_out, **opts)
    if architecture == "cnn_gru_attention":
        return CNNGRUAttention(n_in, n_out, **opts)
    return TCN(n_in, n_out, **opts)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
