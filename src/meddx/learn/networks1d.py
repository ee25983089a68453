"""1D networks for ECG: a convolutional, a recurrent and a Transformer family, chosen by config.

Every network maps ``x (B, C, L)`` (and, for beats, per-beat features ``extra (B, F)`` such as RR
intervals) to class logits ``(B, K)``. A backbone turns the signal into a feature vector; a small
head joins it with the embedded extra features. Architectures:

- ``inception``: InceptionTime (Ismail Fawaz et al., *Data Min. Knowl. Disc.* 34, 2020): modules
  of parallel convolutions of three lengths plus a max-pool branch, residual every 3 modules.
- ``resnet``: the time-series ResNet of Wang et al. (IJCNN 2017): residual blocks of 3
  convolutions (kernels 7, 5, 3), here with a stride-2 stem to stay cheap on CPUs.
- ``gru`` / ``lstm``: a bidirectional recurrent network over a convolutional stem, mean+max
  pooled over time.
- ``transformer``: a Transformer encoder (pre-norm) over convolutional patch embeddings with
  learned positions, mean pooled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from meddx.errors import ConfigError

ARCHITECTURES = ("inception", "resnet", "gru", "lstm", "transformer")


@dataclass
class Network1DSpec:
    """Constructor arguments of a 1D network (stored in bundles instead of pickled objects).

    Attributes:
        arch: One of :data:`ARCHITECTURES`.
        in_channels: Signal channels.
        length: Samples per input.
        num_classes: Output classes.
        n_extra: Per-input features beside the signal (0: none).
        options: Architecture options (widths, depth, dropout...).
    """

    arch: str
    in_channels: int
    length: int
    num_classes: int
    n_extra: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.arch not in ARCHITECTURES:
            raise ConfigError(f"unknown 1D network {self.arch!r}; choose one of "
                              f"{', '.join(ARCHITECTURES)}")
        if self.length < 8:
            raise ConfigError(f"input length {self.length} is too short for a 1D network")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Network1DSpec:
        return cls(**data)


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(cin, cout, kernel, stride, padding=kernel // 2, bias=False),
                         nn.BatchNorm1d(cout), nn.ReLU(inplace=True))


class InceptionModule(nn.Module):
    """Bottleneck, three parallel convolutions and a max-pool branch, concatenated."""

    def __init__(self, cin: int, filters: int, kernels: tuple[int, ...], bottleneck: int):
        super().__init__()
        self.bottleneck = (nn.Conv1d(cin, bottleneck, 1, bias=False) if cin > 1
                           else nn.Identity())
        width = bottleneck if cin > 1 else cin
        self.convs = nn.ModuleList(nn.Conv1d(width, filters, k, padding=k // 2, bias=False)
                                   for k in kernels)
        self.pool = nn.Sequential(nn.MaxPool1d(3, 1, padding=1),
                                  nn.Conv1d(cin, filters, 1, bias=False))
        self.out = nn.Sequential(nn.BatchNorm1d(filters * (len(kernels) + 1)),
                                 nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.bottleneck(x)
        return self.out(torch.cat([conv(z) for conv in self.convs] + [self.pool(x)], dim=1))


class InceptionBackbone(nn.Module):
    """InceptionTime (one network of the ensemble); features = channels after global pooling."""

    def __init__(self, in_channels: int, filters: int = 32, depth: int = 6,
                 kernels: tuple[int, ...] = (39, 19, 9), bottleneck: int = 32):
        super().__init__()
        kernels = tuple(k if k % 2 else k + 1 for k in kernels)
        width = filters * (len(kernels) + 1)
        self.modules_ = nn.ModuleList()
        self.shortcuts = nn.ModuleList()
        cin, res_in = in_channels, in_channels
        for index in range(depth):
            self.modules_.append(InceptionModule(cin, filters, kernels, bottleneck))
            cin = width
            if index % 3 == 2:
                self.shortcuts.append(nn.Sequential(nn.Conv1d(res_in, width, 1, bias=False),
                                                    nn.BatchNorm1d(width)))
                res_in = width
        self.features = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        for index, module in enumerate(self.modules_):
            x = module(x)
            if index % 3 == 2:
                x = torch.relu(x + self.shortcuts[index // 3](residual))
                residual = x
        return x.mean(dim=2)


class ResidualBlock1D(nn.Module):
    def __init__(self, cin: int, cout: int, kernels: tuple[int, ...] = (7, 5, 3), stride: int = 1):
        super().__init__()
        layers = []
        for index, k in enumerate(kernels):
            layers += [nn.Conv1d(cin if index == 0 else cout, cout, k,
                                 stride if index == 0 else 1, padding=k // 2, bias=False),
                       nn.BatchNorm1d(cout)]
            if index < len(kernels) - 1:
                layers.append(nn.ReLU(inplace=True))
        self.body = nn.Sequential(*layers)
        self.shortcut = (nn.Identity() if cin == cout and stride == 1 else nn.Sequential(
            nn.Conv1d(cin, cout, 1, stride, bias=False), nn.BatchNorm1d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNetBackbone(nn.Module):
    """Stride-2 stem then residual blocks; the first block keeps the resolution."""

    def __init__(self, in_channels: int, widths: tuple[int, ...] = (32, 64, 64),
                 stem_stride: int = 2):
        super().__init__()
        self.stem = _conv_bn(in_channels, widths[0], 7, stem_stride)
        blocks, cin = [], widths[0]
        for index, width in enumerate(widths):
            blocks.append(ResidualBlock1D(cin, width, stride=1 if index == 0 else 2))
            cin = width
        self.blocks = nn.Sequential(*blocks)
        self.features = 2 * cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1)


class RecurrentBackbone(nn.Module):
    """Conv stem (stride 2) then a bidirectional GRU or LSTM; mean and max over time."""

    def __init__(self, in_channels: int, cell: str = "gru", hidden: int = 64, layers: int = 2,
                 stem: int = 32, dropout: float = 0.1):
        super().__init__()
        self.stem = _conv_bn(in_channels, stem, 7, 2)
        rnn = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = rnn(stem, hidden, num_layers=layers, batch_first=True, bidirectional=True,
                       dropout=dropout if layers > 1 else 0.0)
        self.features = 4 * hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, _ = self.rnn(self.stem(x).transpose(1, 2))
        return torch.cat([seq.mean(dim=1), seq.amax(dim=1)], dim=1)


class TransformerBackbone(nn.Module):
    """Patch embedding (strided conv), learned positions, pre-norm Transformer encoder."""

    def __init__(self, in_channels: int, length: int, d_model: int = 64, heads: int = 4,
                 layers: int = 3, patch: int = 4, dropout: float = 0.1):
        super().__init__()
        self.embed = nn.Sequential(_conv_bn(in_channels, d_model, 7, 1),
                                   nn.Conv1d(d_model, d_model, patch, patch))
        tokens = length // patch
        self.position = nn.Parameter(torch.zeros(1, tokens, d_model))
        nn.init.trunc_normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(d_model, heads, 2 * d_model, dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.features = d_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).transpose(1, 2)
        tokens = tokens + self.position[:, : tokens.shape[1]]
        return self.norm(self.encoder(tokens)).mean(dim=1)


class SignalClassifier(nn.Module):
    """Backbone features, joined with embedded extra features, through a small MLP head."""

    def __init__(self, backbone: nn.Module, n_extra: int, num_classes: int,
                 extra_width: int = 32, hidden: int = 64, dropout: float = 0.2):
        super().__init__()
        self.backbone = backbone
        self.n_extra = n_extra
        self.extra = (nn.Sequential(nn.Linear(n_extra, extra_width), nn.ReLU(inplace=True),
                                    nn.Linear(extra_width, extra_width), nn.ReLU(inplace=True))
                      if n_extra else None)
        width = backbone.features + (extra_width if n_extra else 0)
        self.head = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(inplace=True),
                                  nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        features = self.backbone(x)
        if self.extra is not None:
            if extra is None:
                raise ValueError(f"this network needs {self.n_extra} extra features per input")
            features = torch.cat([features, self.extra(extra.to(features.dtype))], dim=1)
        return self.head(features)


def build_network1d(spec: Network1DSpec) -> SignalClassifier:
    """A freshly initialised 1D network for ``spec``.

    Raises:
        ConfigError: Unknown architecture or option.
    """
    options = dict(spec.options)
    head = {k: options.pop(k) for k in ("hidden", "dropout_head", "extra_width") if k in options}
    try:
        if spec.arch == "inception":
            backbone = InceptionBackbone(spec.in_channels, **options)
        elif spec.arch == "resnet":
            backbone = ResNetBackbone(spec.in_channels, **options)
        elif spec.arch in ("gru", "lstm"):
            backbone = RecurrentBackbone(spec.in_channels, cell=spec.arch, **options)
        else:
            backbone = TransformerBackbone(spec.in_channels, spec.length, **options)
    except TypeError as error:
        raise ConfigError(f"network {spec.arch!r}: bad option(s) {sorted(spec.options)} "
                          f"({error})") from error
    return SignalClassifier(backbone, spec.n_extra, spec.num_classes,
                            extra_width=head.get("extra_width", 32),
                            hidden=head.get("hidden", 64),
                            dropout=head.get("dropout_head", 0.2))
