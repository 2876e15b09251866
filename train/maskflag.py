"""`g2d-train maskflag`: the tiny CNN behind `Recognition.masked` — does an aligned face wear a mask?

Every training face (the config's sources, held-out people excluded) is seen twice per epoch: clean (label 0) and
with a synthetic mask from `g2d_edge.masks` (label 1), both with the same random flip and colour jitter and a random
similarity warp (shift, scale, rotation: masked faces are aligned from less certain keypoints), some batches at a
random lower resolution. Inside the mask only, what is drawn on it is varied as real masks vary (colours remixed,
another face printed over it, a privacy mosaic: `augment_mask_region`). Real masked faces join every batch when
given (`real_per_batch` of them, drawn at random, flipped at random, then warped and blurred with the rest): the
training part of `../shared/data/rmfd-real` as the SDK's front end sees it (`train.realmasks`), label 1, and the
few faces of those photos a by-eye review found not to be masked faces, label 0. The network takes the SDK's
aligned crop as it is, `uint8` (N, 112, 112, 3) BGR, and outputs one probability per face (`mask_score`); it is
exported to ONNX with that contract and run by `g2d_edge.masks.flag.MaskFlag`.

Architecture: 2x2 average pooling to 56 px, four stride-2 3x3 Conv-BN-ReLU (16, 32, 64, 64 channels), global
average pooling, one linear unit, sigmoid: 0.06 M parameters, about 10 M multiply-adds per face. The shipped
classifier averages three of them trained with different seeds (`MaskFlagOptions.members`).
"""
from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from g2d_edge.errors import InputError, check_fields, option

from .config import TrainConfig
from .data import AugmentOptions, EpochShuffleSampler, build_stage_data, collate_faces
from .model import ConvBNAct, Preprocess

log = logging.getLogger(__name__)

INPUT_NAME = "faces"
OUTPUT_NAME = "mask_score"


@dataclass(frozen=True)
class MaskFlagOptions:
    """How the mask flag is trained."""

    epochs: int = option(3, low=1, high=10_000)
    batch_size: int = option(128, low=1, high=65536)
    lr: float = option(3e-3, above=0.0, high=10.0)
    weight_decay: float = option(1e-4, low=0.0, high=10.0)
    num_workers: int = option(1, low=0, high=256)
    seed: int = option(0, low=0)
    max_shift: float = option(0.06, low=0.0, high=1.0)  #: random translation, fraction of the crop
    max_scale: float = option(0.10, low=0.0, high=1.0)  #: random zoom in/out
    max_rotation_deg: float = option(10.0, low=0.0, high=180.0)
    #: faces may also be seen downscaled to as little as this many pixels (then upscaled)
    min_resolution: int = option(20, low=1, high=112)
    #: share of batches seen at a random lower resolution (with the mask-region augmentations below it helped real
    #: masked photos; alone, with twice the warp above, it had not)
    low_res_prob: float = option(0.3, low=0.0, high=1.0)
    #: Real masks carry what synthesis does not draw (prints, logos, cartoon mouths, any colour, a privacy mosaic).
    #: Per masked face, inside the mask only: its colours remixed, another face of the batch printed over it,
    #: the mask pixelated.
    recolour_prob: float = option(0.5, low=0.0, high=1.0)
    print_prob: float = option(0.3, low=0.0, high=1.0)
    mosaic_prob: float = option(0.15, low=0.0, high=1.0)
    #: networks trained with seeds seed, seed + 1, ...; the exported classifier averages their probabilities
    #: (one network's accuracy on real masks varies by about 2 points from seed to seed)
    members: int = option(3, low=1, high=100)
    #: real faces (`train.realmasks.real_training_faces`) added to each batch of clean + synthetic-masked faces
    real_per_batch: int = option(32, low=0, high=4096)
    #: channels of the stride-2 convolutions, and 2x2 average pooling first (56 px; False: the full 112 px crop).
    #: Bigger is not better here: (16, 32, 64, 96, 128) on the full crop fit the synthetic masks better and flagged
    #: only 77 % of the real masked faces (benchmarks/maskflag.py, reviewed), against 96 % for this size.
    widths: Tuple[int, ...] = option((16, 32, 64, 64), low=1, high=4096, non_empty=True)
    input_pool: bool = True

    def __post_init__(self) -> None:
        check_fields(self)


def mask_flag_options(assignments: Sequence[str], **fields: object) -> MaskFlagOptions:
    """`MaskFlagOptions` from "key=value" strings (numbers, booleans, comma-separated tuples) plus `fields`."""
    defaults = MaskFlagOptions()
    for item in assignments:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not hasattr(defaults, key):
            raise InputError(f"--option {item!r}: expected KEY=VALUE with KEY one of {sorted(vars(defaults))}")
        current = getattr(defaults, key)
        try:
            if isinstance(current, tuple):
                fields[key] = tuple(int(v) for v in text.split(","))
            elif isinstance(current, bool):
                fields[key] = text.strip().lower() in ("1", "true", "yes", "on")
            else:
                fields[key] = type(current)(text)
        except ValueError:
            raise InputError(f"--option {item!r}: {text!r} is not a {type(current).__name__} value for "
                             f"MaskFlagOptions.{key}") from None
    return dataclasses.replace(defaults, **fields)


class MaskFlagNet(nn.Module):
    """uint8 NHWC BGR aligned faces (N, 112, 112, 3) -> probability that each wears a mask (N,)."""

    def __init__(self, widths: Sequence[int] = MaskFlagOptions.widths,
                 input_pool: bool = MaskFlagOptions.input_pool) -> None:
        super().__init__()
        self.preprocess = Preprocess()
        self.pool = nn.AvgPool2d(2) if input_pool else nn.Identity()
        channels = (3, *widths)
        self.features = nn.Sequential(*(ConvBNAct(a, b, 3, 2, activation="relu")
                                        for a, b in zip(channels[:-1], channels[1:])))
        self.head = nn.Linear(channels[-1], 1)

    def logits(self, x: Tensor) -> Tensor:
        """x: float NCHW RGB in [-1, 1] (the model's `Preprocess` output) -> (N,) logits."""
        return self.head(self.features(self.pool(x)).mean(dim=(2, 3))).squeeze(1)

    def forward(self, faces: Tensor) -> Tensor:
        return torch.sigmoid(self.logits(self.preprocess(faces)))


class MaskFlagEnsemble(nn.Module):
    """Several `MaskFlagNet`s on the same input: the mean of their probabilities (N,)."""

    def __init__(self, nets: Sequence[MaskFlagNet]) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)
        self.preprocess = nets[0].preprocess

    def forward(self, faces: Tensor) -> Tensor:
        x = self.preprocess(faces)
        return torch.stack([torch.sigmoid(net.logits(x)) for net in self.nets]).mean(dim=0)


def random_warp(x: Tensor, options: MaskFlagOptions, generator: torch.Generator) -> Tensor:
    """A random similarity transform of each image of a float NCHW batch (bilinear, border replicated)."""
    n = x.shape[0]
    u = torch.rand(n, 4, generator=generator) * 2 - 1
    angle = u[:, 0] * math.radians(options.max_rotation_deg)
    scale = 1.0 + u[:, 1] * options.max_scale
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, u[:, 2] * options.max_shift * 2], 1),
                         torch.stack([sin, cos, u[:, 3] * options.max_shift * 2], 1)], 1)
    grid = nn.functional.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return nn.functional.grid_sample(x, grid, padding_mode="border", align_corners=False)


def random_low_resolution(x: Tensor, options: MaskFlagOptions, generator: torch.Generator) -> Tensor:
    """With probability `low_res_prob`, the whole batch downscaled to a random size (>= `min_resolution`) and back:
    real camera faces are often small and blurred."""
    if float(torch.rand(1, generator=generator)) >= options.low_res_prob:
        return x
    size = int(torch.randint(options.min_resolution, x.shape[-1], (1,), generator=generator))
    small = nn.functional.interpolate(x, size=(size, size), mode="area")
    return nn.functional.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)


def _chosen(n: int, prob: float, generator: torch.Generator) -> Tensor:
    """(n, 1, 1, 1) float: 1 for the faces picked with probability `prob`, else 0."""
    return (torch.rand(n, generator=generator) < prob).float().view(n, 1, 1, 1)


def augment_mask_region(masked: Tensor, region: Tensor, options: MaskFlagOptions,
                        generator: torch.Generator) -> Tensor:
    """Vary what is drawn inside each synthetic mask (`region`: (N, H, W), 1 on the mask) of a float NCHW batch:
    colours remixed by a random 3x3 matrix, another face of the batch printed over it (a randomly shifted one, so the
    print holds eyes, mouths and edges), pixelated into 4-10 px blocks. Outside the mask nothing changes."""
    n = masked.shape[0]
    r = region.to(masked.dtype).unsqueeze(1)
    out = masked
    if options.recolour_prob > 0:
        mix = torch.rand(n, 3, 3, generator=generator)
        mix = mix / mix.sum(dim=2, keepdim=True) * (0.6 + 0.8 * torch.rand(n, 3, 1, generator=generator))
        recoloured = torch.einsum("nij,njhw->nihw", mix, (out + 1) / 2) * 2 - 1
        out = out + _chosen(n, options.recolour_prob, generator) * r * (recoloured.clamp(-1, 1) - out)
    if options.print_prob > 0:
        shift = [int(v) for v in torch.randint(-30, 31, (2,), generator=generator)]
        printed = torch.roll(masked.roll(1, dims=0), shifts=shift, dims=(2, 3))
        alpha = 0.5 + 0.5 * torch.rand(n, 1, 1, 1, generator=generator)
        out = out + _chosen(n, options.print_prob, generator) * alpha * r * (printed - out)
    if options.mosaic_prob > 0:
        block = int(torch.randint(4, 11, (1,), generator=generator))
        small = nn.functional.avg_pool2d(out, block, ceil_mode=True)
        mosaic = nn.functional.interpolate(small, scale_factor=block, mode="nearest")[..., :out.shape[2], :out.shape[3]]
        out = out + _chosen(n, options.mosaic_prob, generator) * r * (mosaic - out)
    return out


RealFaces = Tuple[Tensor, Tensor]  # (aligned crops uint8 (N, 112, 112, 3) BGR, labels float (N,))


def _real_draw(real: RealFaces, pre: Preprocess, count: int, generator: torch.Generator) -> Tuple[Tensor, Tensor]:
    """`count` real faces drawn at random (with replacement), each flipped with probability 1/2."""
    idx = torch.randint(len(real[0]), (count,), generator=generator)
    x = pre(real[0][idx])
    flip = (torch.rand(count, generator=generator) < 0.5).view(count, 1, 1, 1)
    return torch.where(flip, x.flip(3), x), real[1][idx]


def _batch_inputs(batch: Dict[str, Tensor], pre: Preprocess, options: MaskFlagOptions,
                  generator: torch.Generator, real: Optional[RealFaces] = None) -> Tuple[Tensor, Tensor]:
    """(images, labels): the clean faces (0) and their masked versions (1), with what is on the masks varied, plus
    `real_per_batch` real faces when given, all randomly warped and blurred."""
    masked = augment_mask_region(pre(batch["masked"]), batch["region"], options, generator)
    xs = [pre(batch["clean"]), masked]
    ys = [torch.zeros(len(batch["clean"])), torch.ones(len(batch["masked"]))]
    if real is not None and options.real_per_batch > 0:
        x_real, y_real = _real_draw(real, pre, options.real_per_batch, generator)
        xs.append(x_real)
        ys.append(y_real)
    x, y = torch.cat(xs), torch.cat(ys)
    return random_low_resolution(random_warp(x, options, generator), options, generator), y


def train_mask_flag(cfg: TrainConfig, options: MaskFlagOptions,
                    real: Optional[Tuple[np.ndarray, np.ndarray]] = None) -> nn.Module:
    """Train the mask flag on the config's sources (held-out people excluded), plus the real faces `real` (crops,
    labels) when given: one `MaskFlagNet`, or a `MaskFlagEnsemble` of `options.members` of them; in eval mode."""
    real_t = None
    if real is not None and len(real[0]):
        real_t = (torch.from_numpy(np.ascontiguousarray(real[0])), torch.from_numpy(real[1].astype(np.float32)))
    nets = [_train_member(cfg, dataclasses.replace(options, seed=options.seed + k), f"{k + 1}/{options.members}",
                          real_t)
            for k in range(options.members)]
    return (nets[0] if len(nets) == 1 else MaskFlagEnsemble(nets)).eval()


def _train_member(cfg: TrainConfig, options: MaskFlagOptions, member: str,
                  real: Optional[RealFaces] = None) -> MaskFlagNet:
    """One network, trained with `options.seed`."""
    augment = AugmentOptions(mask_prob=1.0, flip=True, color_jitter=max(cfg.data.color_jitter, 0.2),
                             mask=dict(cfg.data.masks))
    data = build_stage_data(cfg.data, [s.name for s in cfg.data.sources], augment, options.seed)
    torch.manual_seed(options.seed)
    net = MaskFlagNet(options.widths, options.input_pool)
    sampler = EpochShuffleSampler(len(data.dataset), seed=options.seed)
    loader = DataLoader(data.dataset, batch_size=options.batch_size, sampler=sampler,
                        num_workers=options.num_workers, collate_fn=collate_faces, drop_last=True)
    optimizer = torch.optim.AdamW(net.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=options.lr,
                                                   total_steps=max(1, options.epochs * len(loader)))
    generator = torch.Generator().manual_seed(options.seed)
    loss_fn = nn.BCEWithLogitsLoss()
    for epoch in range(options.epochs):
        sampler.set_epoch(epoch)
        data.dataset.set_epoch(epoch)
        net.train()
        seen, correct, total_loss = 0, 0, 0.0
        for batch in tqdm(loader, desc=f"maskflag {member}, epoch {epoch + 1}/{options.epochs}", mininterval=10):
            x, y = _batch_inputs(batch, net.preprocess, options, generator, real)
            logits = net.logits(x)
            loss = loss_fn(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            seen += len(y)
            correct += int(((logits > 0).float() == y).sum())
            total_loss += float(loss.detach()) * len(y)
        log.info("maskflag %s, epoch %d/%d: loss %.4f, accuracy %.4f on %d faces", member, epoch + 1,
                 options.epochs, total_loss / max(1, seen), correct / max(1, seen), seen)
    return net.eval()


def training_part_rates(net: nn.Module, masked: np.ndarray, clean: np.ndarray,
                        thresholds: Sequence[float] = tuple(np.round(np.arange(0.1, 0.91, 0.05), 2))
                        ) -> Dict[float, Tuple[float, float]]:
    """{threshold: (share of `masked` faces flagged masked, share of `clean` faces flagged clean)} of the trained
    classifier on faces of the TRAINING part (never the held-out one): what a threshold would trade there. The
    network has learnt these faces, so both shares are optimistic."""
    with torch.no_grad():
        pos = torch.cat([net(torch.from_numpy(np.ascontiguousarray(c))) for c in np.array_split(masked, 8)]).numpy()
        neg = torch.cat([net(torch.from_numpy(np.ascontiguousarray(c))) for c in np.array_split(clean, 8)]).numpy()
    return {float(t): (float((pos >= t).mean()), float((neg < t).mean())) for t in thresholds}


def choose_threshold(rates: Dict[float, Tuple[float, float]]) -> float:
    """The threshold of `rates` with the best balanced accuracy (mean of the two shares); ties: the lowest."""
    return max(sorted(rates), key=lambda t: (round(sum(rates[t]) / 2, 6), -t))


def export_mask_flag(net: nn.Module, out: Path, threshold: float = 0.5, tolerance: float = 1e-4) -> Path:
    """Write the network as ONNX (`faces` uint8 (N,112,112,3) BGR -> `mask_score` (N,)), dynamic batch, with its
    decision threshold in the graph's metadata; ONNX Runtime must reproduce PyTorch within `tolerance`."""
    import io

    import onnx
    import onnxruntime as ort

    from g2d_edge.files import atomic_write_bytes

    net = net.eval()
    dummy = torch.randint(0, 256, (2, 112, 112, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(net, (dummy,), buf, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, opset_version=17,
                          dynamo=False)
    model = onnx.load_from_string(buf.getvalue())
    model.producer_name = "g2d-train maskflag"
    model.doc_string = "g2d-edge mask flag: aligned faces uint8 (N,112,112,3) BGR -> P(wears a mask) (N,)"
    for key, value in {"threshold": f"{threshold:.6g}", "kind": "g2d-mask-flag"}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    faces = torch.randint(0, 256, (5, 112, 112, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {INPUT_NAME: faces.numpy()})[0]
    with torch.no_grad():
        want = net(faces).numpy()
    if got.shape != want.shape or np.abs(got - want).max() > tolerance:
        raise RuntimeError(f"the exported mask flag does not reproduce PyTorch (max diff {np.abs(got - want).max()})")
    atomic_write_bytes(Path(out), model.SerializeToString())
    log.info("mask flag exported to %s (%.1f KB)", out, Path(out).stat().st_size / 1024)
    return Path(out)
