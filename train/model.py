"""The G2D network: generative encoder -> discriminative reformer -> feature classifier.

Three separate modules, composed by :class:`G2DModel`:

* **encoder** (generative): turns a 112x112 face into a descriptor map ``(N, C, h, w)``. It is pretrained with an
  inpainting decoder (:func:`build_decoder`) on masked faces, then finetuned.
  ``"paper"`` is the ICT-style transformer encoder of the G2D paper (patch embedding, learned positional embeddings,
  pre-norm transformer blocks), ``"edge"`` a light inverted-residual CNN for Jetson-class devices.
* **reformer** (discriminative): a few conv layers on the descriptor map, a global depthwise conv (GDC) pooling and a
  linear + BN projection to an L2-normalised embedding. Trained by relation distillation from a face-recognition
  teacher.
* **classifier**: one ``nn.Linear(embedding_dim, num_classes)``; the softmax lives in the loss / at inference.

:class:`Preprocess` turns the SDK's uint8 NHWC BGR crops into the float NCHW RGB ``[-1, 1]`` tensor the model takes;
it is used by the training data path *and* inside the exported graph, so both see identical numbers.

The exported network (Preprocess + encoder + reformer + classifier) uses only plain ops that TensorRT supports (Cast,
Transpose, Gather, Conv, BatchNormalization, Relu / PRelu, MatMul / Gemm, LayerNormalization, Softmax, Erf, Reshape) and
exports to ONNX opset 17 with a dynamic batch axis via the TorchScript exporter::

    torch.onnx.export(InferenceModel(model).eval(), (uint8_faces,), path, input_names=["faces"],
                      output_names=["embedding", "logits"], opset_version=17, dynamo=False,
                      dynamic_axes={"faces": {0: "batch"}, "embedding": {0: "batch"}, "logits": {0: "batch"}})

(torch 2.13's default dynamo exporter needs the ``onnxscript`` package, which is not a dependency.)

FLOP convention (`train.costs`): :func:`count_flops` reports what ``torch.utils.flop_counter.FlopCounterMode``
counts: 2 FLOPs per multiply-add of convolutions, linear layers and matmuls (BN, activations, softmax, pooling are not
counted). :func:`count_macs` is half of it (multiply-accumulates, the figure papers such as MobileFaceNet quote).
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping, Optional

import torch
from torch import Tensor, nn

from g2d_edge.align import ALIGNED_SIZE
from g2d_edge.errors import InputError

from .blocks import ConvBNAct, InvertedResidual, init_conv_bn_linear, l2_normalize, make_divisible

__all__ = [
    "ENCODERS",
    "REFORMERS",
    "ACTIVATIONS",
    "ModelConfig",
    "Preprocess",
    "EdgeEncoder",
    "TransformerEncoder",
    "SFaceEncoder",
    "LinearHead",
    "load_sface_weights",
    "sface_layers",
    "sface_descriptor_channels",
    "Reformer",
    "InpaintDecoder",
    "G2DModel",
    "InferenceModel",
    "build_encoder",
    "build_reformer",
    "build_model",
    "build_decoder",
    "l2_normalize",
]

ENCODERS = ("edge", "paper", "sface")
REFORMERS = ("gdc", "linear")
ACTIVATIONS = ("prelu", "relu", "relu6")

# --------------------------------------------------------------------------------------------------------- config
@dataclass
class ModelConfig:
    """Architecture of a G2D network. Plain ints / floats / strs / lists only, so ``asdict`` round-trips via YAML/JSON.

    Use :meth:`preset` for the named configurations (``"tiny"``, ``"tiny-paper"``, ``"edge"``, ``"paper"``).
    """

    encoder: str = "edge"  #: "edge" (light CNN, Jetson-class) | "paper" (ICT-style transformer encoder) |
    #: "sface" (OpenCV SFace's MobileNet-style backbone, 1024 x 7 x 7 descriptors; loads SFace's pretrained weights)
    reformer: str = "gdc"  #: "gdc" (conv blocks + global depthwise conv) | "linear" (BN, flatten, FC, BN: SFace's head)
    embedding_dim: int = 512  #: size of the L2-normalised face embedding
    num_classes: int = 0  #: classifier outputs; 0 = no classifier (logits have shape (N, 0))
    activation: str = "relu"  #: "relu" | "prelu" | "relu6" (conv parts; the transformer uses GELU). PReLU costs
    #: ~50 % more CPU training time than ReLU on this network.
    descriptor_channels: int = 256  #: channels C of the encoder's descriptor map (N, C, h, w)
    # edge encoder
    edge_channels: list[int] = field(default_factory=lambda: [24, 48, 96, 160])  #: stem (56 px), stages 28/14/7 px
    width: float = 1.0  #: multiplier of edge_channels, or of every layer of the sface encoder (multiples of 8; an
    #: sface width < 1 starts from SFace's strongest channels, see train.sface.slice_sface_weights)
    sface_stem_stride: int = 1  #: sface encoder: 1 = SFace's stem at 112 px; 2 = the stem strides to 56 px and
    #: conv_3_dw keeps the 56 px (same 7x7 descriptors, ~30 % less CPU time: the 112 px layers are memory-bound)
    edge_depths: list[int] = field(default_factory=lambda: [2, 4, 2])  #: layers per stage: stride-2 conv + IR blocks
    expansion: int = 3  #: expansion ratio of the inverted-residual blocks
    # paper (transformer) encoder
    patch_size: int = 8  #: 112 / patch_size tokens per side (8 -> 14x14 tokens)
    transformer_dim: int = 256
    transformer_depth: int = 8
    transformer_heads: int = 8
    mlp_ratio: float = 4.0
    # reformer
    reformer_channels: int = 256
    reformer_blocks: int = 2
    dropout: float = 0.0  #: dropout before the embedding projection (training only)
    # inpainting decoder (training only)
    decoder_channels: int = 128

    def __post_init__(self) -> None:
        self.validate()

    # -- presets / serialisation ----------------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "ModelConfig":
        """A named configuration, with optional field overrides.

        ``"tiny"``: a ~40k-parameter edge CNN for tests; ``"tiny-paper"``: a one-block transformer for tests;
        ``"edge"``: the shipped Jetson-class model; ``"paper"``: the ICT-style transformer encoder of the paper;
        ``"sface"``: OpenCV SFace's architecture (encoder + linear head, 128-d), to start from its pretrained weights
        (:func:`load_sface_weights`).
        """
        presets: dict[str, dict[str, Any]] = {
            "edge": {},
            "paper": {"encoder": "paper", "activation": "prelu"},
            "sface": {"encoder": "sface", "reformer": "linear", "activation": "prelu", "embedding_dim": 128,
                      "descriptor_channels": 1024, "decoder_channels": 256},
            "tiny": {
                "encoder": "edge", "width": 0.25, "edge_depths": [1, 2, 1], "expansion": 2,
                "descriptor_channels": 32, "reformer_channels": 32, "reformer_blocks": 1, "decoder_channels": 16,
            },
            "tiny-paper": {
                "encoder": "paper", "patch_size": 8, "transformer_dim": 24, "transformer_depth": 1,
                "transformer_heads": 2, "mlp_ratio": 2.0, "descriptor_channels": 32, "reformer_channels": 32,
                "reformer_blocks": 1, "decoder_channels": 16,
            },
        }
        if name not in presets:
            raise InputError(f"unknown model preset {name!r}; choose one of {sorted(presets)}")
        values = {**presets[name], **overrides}
        if name == "sface" and "descriptor_channels" not in overrides:  # a slimmer SFace has fewer descriptors
            values["descriptor_channels"] = sface_descriptor_channels(float(values.get("width", 1.0)))
        return cls(**values)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        """Build a config from ``asdict(cfg)`` output (e.g. loaded from YAML/JSON); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown ModelConfig field(s) {unknown}; valid fields: {sorted(known)}")
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        """Plain-type dict (``dataclasses.asdict``)."""
        return asdict(self)

    # -- derived ----------------------------------------------------------------------------------------------------
    @property
    def descriptor_size(self) -> int:
        """Side h = w of the encoder's descriptor map (7 for ``edge``, 112 / patch_size for ``paper``)."""
        if self.encoder in ("edge", "sface"):
            return ALIGNED_SIZE // 16
        return ALIGNED_SIZE // self.patch_size

    def validate(self) -> None:
        """Raise :class:`InputError` naming the offending field if the configuration cannot be built."""
        if self.encoder not in ENCODERS:
            raise InputError(f"ModelConfig.encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if self.reformer not in REFORMERS:
            raise InputError(f"ModelConfig.reformer must be one of {REFORMERS}, got {self.reformer!r}")
        if not self.width > 0 or not self.mlp_ratio > 0:
            raise InputError("ModelConfig.width and mlp_ratio must be > 0")
        if self.encoder == "sface":
            channels = sface_descriptor_channels(self.width)
            if self.descriptor_channels != channels or self.activation != "prelu":
                raise InputError(f"the sface encoder at width {self.width} has {channels} descriptor channels and "
                                 f"PReLU activations; got descriptor_channels={self.descriptor_channels}, "
                                 f"activation={self.activation!r} (use ModelConfig.preset('sface', width=...))")
        if self.activation not in ACTIVATIONS:
            raise InputError(f"ModelConfig.activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        positive = ("embedding_dim", "descriptor_channels", "expansion", "transformer_dim", "transformer_depth",
                    "transformer_heads", "reformer_channels", "decoder_channels")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise InputError(f"ModelConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.num_classes < 0 or self.reformer_blocks < 0:
            raise InputError("ModelConfig.num_classes and reformer_blocks must be >= 0")
        if self.sface_stem_stride not in (1, 2):
            raise InputError(f"ModelConfig.sface_stem_stride must be 1 or 2, got {self.sface_stem_stride!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout!r}")
        depths, channels = list(self.edge_depths), list(self.edge_channels)
        if len(depths) != 3 or any(int(d) < 1 for d in depths):
            raise InputError(f"ModelConfig.edge_depths must be 3 ints >= 1 (layers at 28, 14, 7 px), got {depths!r}")
        if len(channels) != 4 or any(int(c) < 1 for c in channels):
            raise InputError(f"ModelConfig.edge_channels must be 4 ints >= 1 (stem, 28, 14, 7 px), got {channels!r}")
        p = self.patch_size
        if p < 2 or p & (p - 1) or ALIGNED_SIZE % p:
            raise InputError(f"ModelConfig.patch_size must be a power of two dividing {ALIGNED_SIZE}, got {p!r}")
        if self.transformer_dim % self.transformer_heads:
            raise InputError(f"ModelConfig.transformer_dim ({self.transformer_dim}) must be divisible by "
                             f"transformer_heads ({self.transformer_heads})")


# ----------------------------------------------------------------------------------------------------------- encoders
class EdgeEncoder(nn.Module):
    """Light CNN encoder: 3x3 conv stem (stride 2, 56 px), then three stages at 28, 14 and 7 px, each a dense 3x3
    stride-2 conv (cheap to train on CPU, fast on GPUs) followed by ``depth - 1`` inverted-residual blocks, and a 1x1
    head to ``descriptor_channels``. Output: (N, descriptor_channels, 7, 7)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        act = cfg.activation
        c_stem, *c_stages = (make_divisible(c * cfg.width) for c in cfg.edge_channels)
        layers: list[nn.Module] = [ConvBNAct(3, c_stem, 3, 2, activation=act)]  # 112 -> 56
        cin = c_stem
        for cout, depth in zip(c_stages, cfg.edge_depths):  # 56 -> 28 -> 14 -> 7
            layers.append(ConvBNAct(cin, cout, 3, 2, activation=act))
            layers += [InvertedResidual(cout, cout, 1, cfg.expansion, act) for _ in range(int(depth) - 1)]
            cin = cout
        layers.append(ConvBNAct(cin, cfg.descriptor_channels, 1, activation=act))
        self.features = nn.Sequential(*layers)
        self.out_channels = cfg.descriptor_channels
        self.out_size = cfg.descriptor_size
        init_conv_bn_linear(self)

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, 112, 112) -> (N, C, 7, 7)."""
        return self.features(x)


class Attention(nn.Module):
    """Multi-head self-attention written with MatMul / Softmax (no fused kernels) for clean ONNX/TensorRT export."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        n, length, dim = x.shape
        qkv = self.qkv(x).reshape(n, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = torch.softmax(torch.matmul(q * self.scale, k.transpose(-2, -1)), dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(n, length, dim)
        return self.proj(out)


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: x + MHSA(LN(x)); x + MLP(LN(x)) with GELU."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TransformerEncoder(nn.Module):
    """ICT-style transformer encoder (the G2D paper's generative encoder): non-overlapping patch embedding of the
    112x112 face, learned positional embeddings, pre-norm transformer blocks, LayerNorm + linear to
    ``descriptor_channels``; tokens are reshaped to a descriptor map (N, C, 112/p, 112/p)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.grid = cfg.descriptor_size
        dim = cfg.transformer_dim
        self.patch_embed = nn.Conv2d(3, dim, cfg.patch_size, cfg.patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid * self.grid, dim))
        self.blocks = nn.Sequential(*(TransformerBlock(dim, cfg.transformer_heads, cfg.mlp_ratio)
                                      for _ in range(cfg.transformer_depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, cfg.descriptor_channels)
        self.out_channels = cfg.descriptor_channels
        self.out_size = self.grid
        init_conv_bn_linear(self)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, 112, 112) -> (N, C, 112/p, 112/p)."""
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed  # (N, L, D)
        tokens = self.head(self.norm(self.blocks(tokens)))  # (N, L, C)
        return tokens.transpose(1, 2).reshape(x.shape[0], self.out_channels, self.grid, self.grid)


#: SFace's backbone, as in its ONNX graph: (name, output channels, stride) of each layer after the 3x3 stem conv_1
#: (3 -> 32, stride 1). "<i>_dw" is a 3x3 depthwise conv, "<i>" the 1x1 conv after it; each is Conv-BN-PReLU.
SFACE_LAYERS = (("conv_2_dw", 32, 1), ("conv_2", 64, 1), ("conv_3_dw", 64, 2), ("conv_3", 128, 1),
                ("conv_4_dw", 128, 1), ("conv_4", 128, 1), ("conv_5_dw", 128, 2), ("conv_5", 256, 1),
                ("conv_6_dw", 256, 1), ("conv_6", 256, 1), ("conv_7_dw", 256, 2), ("conv_7", 512, 1),
                *((f"conv_{i}{dw}", 512, 1) for i in range(8, 13) for dw in ("_dw", "")),
                ("conv_13_dw", 512, 2), ("conv_13", 1024, 1), ("conv_14_dw", 1024, 1), ("conv_14", 1024, 1))
SFACE_CHANNELS = 1024


def sface_layers(width: float = 1.0) -> tuple[tuple[str, int, int], ...]:
    """Every layer of SFace's backbone as (name, output channels, stride), the stem ``conv_1`` first, with the
    channels multiplied by ``width`` and rounded to multiples of 8 (width 1: SFace itself)."""
    layers = (("conv_1", 32, 1), *SFACE_LAYERS)
    if width == 1.0:
        return layers
    return tuple((name, make_divisible(c * width), stride) for name, c, stride in layers)


def sface_descriptor_channels(width: float = 1.0) -> int:
    """Channels of the sface encoder's descriptor map at ``width`` (1024 for SFace itself)."""
    return sface_layers(width)[-1][1]


class SFaceEncoder(nn.Module):
    """OpenCV SFace's backbone (a MobileNet-style depthwise CNN, Conv-BN-PReLU layers, batch-norm eps 1e-3):
    3x3 stem at 112 px, then depthwise / pointwise pairs down to (N, 1024, 7, 7); every layer's channels scaled by
    ``cfg.width`` (:func:`sface_layers`); with ``cfg.sface_stem_stride`` 2 the stem strides instead of
    ``conv_3_dw`` (the first two layer pairs run at 56 px, not 112). Layers are named after the ONNX graph's (``layers.conv_2_dw``, ...) so
    :func:`load_sface_weights` fills them by name.

    It takes the model's [-1, 1] RGB input and rescales it to SFace's own ``(x - 127.5) / 128`` (a fixed factor).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        (_, stem, _), *rest = sface_layers(cfg.width)
        stem_stride = cfg.sface_stem_stride
        layers: dict[str, nn.Module] = {"conv_1": ConvBNAct(3, stem, 3, stem_stride, activation="prelu")}
        cin = stem
        for name, cout, stride in rest:
            if name == "conv_3_dw":  # the one stride-2 layer before 56 px: the stem has taken it
                stride = stride // stem_stride
            groups = cin if name.endswith("_dw") else 1
            layers[name] = ConvBNAct(cin, cout, 3 if groups > 1 else 1, stride, groups=groups, activation="prelu")
            cin = cout
        for layer in layers.values():
            layer[1].eps = 1e-3
        self.layers = nn.Sequential()
        for name, layer in layers.items():
            self.layers.add_module(name, layer)
        self.input_scale = 127.5 / 128.0
        self.out_channels = cin
        self.out_size = cfg.descriptor_size
        init_conv_bn_linear(self)

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, 112, 112) in [-1, 1] -> (N, 1024, 7, 7)."""
        return self.layers(x * self.input_scale)


# ----------------------------------------------------------------------------------------------- reformer / decoder
class Reformer(nn.Module):
    """Discriminative reformer: 1x1 conv, ``blocks`` inverted-residual blocks (stride 2 while the map is larger than
    7x7), global depthwise conv (GDC) pooling, dropout, linear + BN1d to ``embedding_dim``, L2 normalisation.

    Like every BatchNorm network it needs batches of at least 2 in training mode.
    """

    def __init__(self, in_channels: int, in_size: int, channels: int, blocks: int, embedding_dim: int,
                 dropout: float = 0.0, activation: str = "relu") -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNAct(in_channels, channels, 1, activation=activation)]
        size = in_size
        for _ in range(blocks):
            stride = 2 if size > 7 and size % 2 == 0 else 1
            layers.append(InvertedResidual(channels, channels, stride, 2, activation))
            size //= stride
        self.features = nn.Sequential(*layers)
        self.gdc = nn.Sequential(nn.Conv2d(channels, channels, size, groups=channels, bias=False),  # global DW conv
                                 nn.BatchNorm2d(channels))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, embedding_dim, bias=False)
        self.bn = nn.BatchNorm1d(embedding_dim)
        init_conv_bn_linear(self)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, h, w) descriptors -> (N, embedding_dim) unit-norm embeddings."""
        x = self.gdc(self.features(x)).flatten(1)
        return l2_normalize(self.bn(self.fc(self.dropout(x))))


class LinearHead(nn.Module):
    """The InsightFace / SFace output head as a reformer: BN2d on the descriptor map, dropout, flatten, FC (with
    bias) and BN1d to ``embedding_dim``, L2 normalisation. Batch-norm eps 2e-5, as SFace's graph."""

    def __init__(self, in_channels: int, in_size: int, embedding_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn_in = nn.BatchNorm2d(in_channels, eps=2e-5)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_channels * in_size * in_size, embedding_dim)
        self.bn = nn.BatchNorm1d(embedding_dim, eps=2e-5)
        init_conv_bn_linear(self)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, h, w) descriptors -> (N, embedding_dim) unit-norm embeddings."""
        x = self.dropout(self.bn_in(x)).flatten(1)
        return l2_normalize(self.bn(self.fc(x)))


class InpaintDecoder(nn.Module):
    """Inpainting decoder for the generative pretraining stage: 1x1 conv, then nearest x2 upsampling + 3x3 conv-BN-act
    with channels halving (floor ``channels / 8``, at least 8) until 56 px, then a 3x3 conv to 12 channels, pixel
    shuffle to RGB at 112 px and tanh (no layer runs at 112 px: cheap to train on CPU).
    Output: (N, 3, 112, 112) in [-1, 1]."""

    def __init__(self, in_channels: int, in_size: int, channels: int, activation: str = "relu") -> None:
        super().__init__()
        ups = math.log2(ALIGNED_SIZE / in_size)
        if ups != int(ups) or ups < 1:
            raise InputError(f"decoder input size {in_size} does not reach {ALIGNED_SIZE} by doubling")
        layers: list[nn.Module] = [ConvBNAct(in_channels, channels, 1, activation=activation)]
        c, floor = channels, max(8, channels // 8)
        for _ in range(int(ups) - 1):
            nxt = max(floor, c // 2)
            layers += [nn.Upsample(scale_factor=2.0, mode="nearest"), ConvBNAct(c, nxt, 3, activation=activation)]
            c = nxt
        layers += [nn.Conv2d(c, 12, 3, 1, 1), nn.PixelShuffle(2), nn.Tanh()]  # 12 channels -> 3 at twice the size
        self.layers = nn.Sequential(*layers)
        init_conv_bn_linear(self)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, h, w) descriptors -> (N, 3, 112, 112) reconstruction in [-1, 1]."""
        return self.layers(x)


# -------------------------------------------------------------------------------------------------- whole networks
class Preprocess(nn.Module):
    """uint8 NHWC BGR (N, 112, 112, 3) -> float32 NCHW RGB in [-1, 1]: ``(x - 127.5) / 127.5``.

    Pure tensor ops (Cast first, so TensorRT only sees uint8 at the input; Transpose, Gather, Mul, Sub).
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("bgr_to_rgb", torch.tensor([2, 1, 0], dtype=torch.long), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        x = x.to(torch.float32).permute(0, 3, 1, 2)
        return x.index_select(1, self.bgr_to_rgb) * (1.0 / 127.5) - 1.0


class G2DModel(nn.Module):
    """Encoder -> reformer -> classifier. Attributes ``.encoder``, ``.reformer``, ``.classifier`` (nn.Linear, or
    None when ``num_classes == 0``) and ``.config`` (a copy of the :class:`ModelConfig`, kept in sync)."""

    def __init__(self, cfg: ModelConfig, encoder: nn.Module, reformer: nn.Module,
                 classifier: Optional[nn.Linear] = None) -> None:
        super().__init__()
        self.config = copy.deepcopy(cfg)
        self.encoder = encoder
        self.reformer = reformer
        self.classifier = classifier

    def embed(self, x: Tensor) -> Tensor:
        """x float NCHW RGB in [-1, 1] -> (N, embedding_dim) L2-normalised embedding."""
        return self.reformer(self.encoder(x))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x float NCHW RGB in [-1, 1] -> (embedding (N, D) unit-norm, logits (N, num_classes); (N, 0) if none)."""
        emb = self.embed(x)
        logits = self.classifier(emb) if self.classifier is not None else emb[:, :0]
        return emb, logits

    def set_num_classes(self, num_classes: int, weight: Optional[Tensor] = None) -> None:
        """Replace the classifier by a fresh ``nn.Linear(embedding_dim, num_classes)`` (None for 0 classes).

        ``weight`` (num_classes, embedding_dim), e.g. the class-mean embeddings, initialises the weights (bias 0),
        which makes a prototype classifier from the first step.
        """
        if num_classes < 0:
            raise InputError(f"num_classes must be >= 0, got {num_classes}")
        dim = self.config.embedding_dim
        self.config.num_classes = int(num_classes)
        if num_classes == 0:
            self.classifier = None
            return
        ref = next(self.parameters())
        linear = nn.Linear(dim, num_classes).to(device=ref.device, dtype=ref.dtype)
        nn.init.normal_(linear.weight, std=0.01)
        nn.init.zeros_(linear.bias)
        if weight is not None:
            if tuple(weight.shape) != (num_classes, dim):
                raise InputError(f"classifier weight must have shape {(num_classes, dim)}, got {tuple(weight.shape)}")
            with torch.no_grad():
                linear.weight.copy_(weight)
        self.classifier = linear


class InferenceModel(nn.Module):
    """:class:`Preprocess` + :class:`G2DModel`: uint8 NHWC BGR faces -> (embedding, logits). The graph to export."""

    def __init__(self, model: G2DModel) -> None:
        super().__init__()
        self.preprocess = Preprocess()
        self.model = model

    def forward(self, faces: Tensor) -> tuple[Tensor, Tensor]:
        """(N, 112, 112, 3) uint8 BGR -> (embedding (N, D), logits (N, C))."""
        return self.model(self.preprocess(faces))


def build_encoder(cfg: ModelConfig) -> nn.Module:
    """The generative encoder named by ``cfg.encoder``; it has ``out_channels`` and ``out_size`` attributes."""
    cfg.validate()
    encoders = {"edge": EdgeEncoder, "paper": TransformerEncoder, "sface": SFaceEncoder}
    return encoders[cfg.encoder](cfg)


def build_reformer(cfg: ModelConfig) -> nn.Module:
    """The discriminative reformer named by ``cfg.reformer`` for ``cfg``'s descriptor map."""
    if cfg.reformer == "linear":
        return LinearHead(cfg.descriptor_channels, cfg.descriptor_size, cfg.embedding_dim, cfg.dropout)
    return Reformer(cfg.descriptor_channels, cfg.descriptor_size, cfg.reformer_channels, cfg.reformer_blocks,
                    cfg.embedding_dim, cfg.dropout, cfg.activation)


def build_model(cfg: ModelConfig) -> G2DModel:
    """Encoder + reformer (+ classifier when ``cfg.num_classes > 0``)."""
    model = G2DModel(cfg, build_encoder(cfg), build_reformer(cfg))
    model.set_num_classes(cfg.num_classes)
    return model


def build_decoder(cfg: ModelConfig) -> InpaintDecoder:
    """Inpainting decoder: encoder descriptors (N, C, h, w) -> (N, 3, 112, 112) in [-1, 1] (tanh)."""
    cfg.validate()
    return InpaintDecoder(cfg.descriptor_channels, cfg.descriptor_size, cfg.decoder_channels, cfg.activation)


# ---------------------------------------------------------------------------------------------- pretrained weights
def _conv_bn_prelu_state(prefix: str, module: str, weights: Mapping[str, Any]) -> dict[str, Tensor]:
    """State-dict entries of a ConvBNAct ``module`` from SFace's ``<prefix>_conv2d_weight``, ``<prefix>_batchnorm_*``
    and ``<prefix>_relu_gamma``."""
    def t(name: str) -> Tensor:
        return torch.as_tensor(weights[name], dtype=torch.float32)

    return {f"{module}.0.weight": t(f"{prefix}_conv2d_weight"),
            f"{module}.1.weight": t(f"{prefix}_batchnorm_gamma"), f"{module}.1.bias": t(f"{prefix}_batchnorm_beta"),
            f"{module}.1.running_mean": t(f"{prefix}_batchnorm_moving_mean"),
            f"{module}.1.running_var": t(f"{prefix}_batchnorm_moving_var"),
            f"{module}.2.weight": t(f"{prefix}_relu_gamma").reshape(-1)}


def load_sface_weights(model: "G2DModel", weights: Mapping[str, Any]) -> "G2DModel":
    """Fill an ``sface`` model's encoder and ``linear`` reformer from SFace's weights by ONNX initialiser name
    (``train.sface.float_weights``). Every tensor of both modules is set (strict); the classifier is untouched.
    A model of ``width`` < 1 takes the weights cut to its width (``train.sface.slice_sface_weights``, which
    ``train.sface.load_pretrained`` applies).

    Raises :class:`InputError` when the model is not the sface architecture or a weight is missing / misshapen.
    """
    cfg = model.config
    if cfg.encoder != "sface" or cfg.reformer != "linear" or cfg.embedding_dim != 128:
        raise InputError("SFace weights fit ModelConfig.preset('sface') only (sface encoder, linear reformer, 128-d); "
                         f"got encoder={cfg.encoder!r}, reformer={cfg.reformer!r}, embedding_dim={cfg.embedding_dim}")
    try:
        encoder: dict[str, Tensor] = {}
        for name in ("conv_1", *(n for n, _, _ in SFACE_LAYERS)):
            encoder.update(_conv_bn_prelu_state(name, f"layers.{name}", weights))
        head = {"bn_in.weight": weights["bn1_gamma"], "bn_in.bias": weights["bn1_beta"],
                "bn_in.running_mean": weights["bn1_moving_mean"], "bn_in.running_var": weights["bn1_moving_var"],
                "fc.weight": weights["pre_fc1_weight"], "fc.bias": weights["pre_fc1_bias"],
                "bn.weight": weights["fc1_gamma"], "bn.bias": weights["fc1_beta"],
                "bn.running_mean": weights["fc1_moving_mean"], "bn.running_var": weights["fc1_moving_var"]}
    except KeyError as exc:
        raise InputError(f"SFace weight {exc} missing: is this OpenCV Zoo's SFace graph?") from None
    head = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in head.items()}
    for module, state in ((model.encoder, encoder), (model.reformer, head)):
        own = module.state_dict()
        for key, value in state.items():
            if key in own and own[key].shape != value.shape:
                raise InputError(f"SFace weight for {key} has shape {tuple(value.shape)}, the model has "
                                 f"{tuple(own[key].shape)}")
        state = {**state, **{k: v for k, v in own.items() if k.endswith("num_batches_tracked")}}
        module.load_state_dict(state, strict=True)
    return model
