"""Training configuration: dataclasses loaded from YAML (or TOML), validated, hashable.

A config is a `TrainConfig` holding the data sources (`DataConfig`), the network (`train.model.ModelConfig`), one
`StageConfig` per greedy stage (`StagesConfig`) and the evaluation protocol (`EvalConfig`). Files hold a subset of
the fields (everything else keeps its default); unknown keys are errors that name the key and suggest the nearest
known one. Command-line overrides (`--set stages.reformer.epochs=3`) are applied to the same tree with YAML value
syntax. `config_hash` (sha256 of the canonical JSON) goes into every checkpoint.

Relative paths in a config are relative to the working directory (run `g2d-train` from the repository root).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from g2d_edge.files import atomic_write_text

from .config_convert import ConfigError, from_dict, to_dict
from .model import ModelConfig

log = logging.getLogger(__name__)

STAGE_NAMES = ("inpaint", "encoder", "reformer", "classifier")

#: Fields left out of the config hash: where a run is written and on what device do not change the model.
HASH_EXCLUDED = ("run_dir", "device")


@dataclass
class SourceConfig:
    """One data source.

    name: short unique id used by stages (`stages.<stage>.sources`) and in checkpoint metadata.
    cache: the prepared `AlignedCache` (.npz written by `g2d-train prepare`).
    root: the raw image folder (`<identity>/<image>` when labelled). `prepare` reads it; when `cache` is empty or
        missing, stages read it directly with on-the-fly detection + alignment (slow, no mesh landmarks).
    labelled: whether sub-folders of `root` are identities.
    teacher: the teacher cache (.npy, row-aligned with `cache`) for relation distillation; empty = none.
    """

    name: str = ""
    cache: str = ""
    root: str = ""
    labelled: bool = True
    teacher: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("every data source needs a `name`")
        if not self.cache and not self.root:
            raise ConfigError(f"data source {self.name!r} needs a `cache` (.npz) or an image folder `root`")


@dataclass
class DataConfig:
    """Where faces come from and how they are augmented.

    val_identities: people held out of every training stage (never seen in training; used for verification and
        threshold choice): a count (picked deterministically under `split_seed`) or a list of identity names of the
        `val_source`. The split is by identity, never by photo.
    val_source: the labelled source the hold-out applies to (default: the first labelled source).
    masks: `g2d_edge.masks.MaskOptions` fields shared by every stage (a stage's own `mask` overrides them).
    detector: `g2d_edge.detectors.detect.DetectorOptions` fields for `prepare` and image-folder sources.
    """

    sources: List[SourceConfig] = field(default_factory=list)
    val_identities: Union[int, List[str]] = 0
    val_source: str = ""
    split_seed: int = 0
    flip: bool = True
    color_jitter: float = 0.0
    masks: Dict[str, Any] = field(default_factory=dict)
    detector: Dict[str, Any] = field(default_factory=dict)
    prepare_workers: int = 2

    def __post_init__(self) -> None:
        names = [s.name for s in self.sources]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"data source names must be unique, repeated: {dup}")
        if isinstance(self.val_identities, int) and self.val_identities < 0:
            raise ConfigError("data.val_identities must be a count >= 0 or a list of identity names")
        if self.val_source and self.val_source not in names:
            raise ConfigError(f"data.val_source {self.val_source!r} is not one of the sources {names}")
        if not 0.0 <= self.color_jitter < 1.0:
            raise ConfigError(f"data.color_jitter must be in [0, 1), got {self.color_jitter}")

    def source(self, name: str) -> SourceConfig:
        """The source called `name` (ConfigError if there is none)."""
        for s in self.sources:
            if s.name == name:
                return s
        raise ConfigError(f"no data source named {name!r}; known: {[s.name for s in self.sources]}")

    @property
    def holdout_source(self) -> Optional[str]:
        """Name of the labelled source the identity hold-out applies to, or None."""
        if self.val_source:
            return self.val_source
        return next((s.name for s in self.sources if s.labelled), None)


@dataclass
class StageConfig:
    """Optimisation settings shared by every stage.

    warmup: linear LR warm-up length in epochs (may be fractional), then cosine decay to `lr * min_lr_ratio`.
    mask_prob: probability that a training face is masked (the rest are clean).
    mask: `MaskOptions` overrides for this stage on top of `data.masks`.
    sources: names of the data sources this stage trains on (empty: the stage's default).
    freeze_bn: keep every batch-norm layer in eval mode (its running statistics fixed): for finetuning a pretrained
        network on a small data set.
    amp: mixed precision (fp16 + GradScaler on CUDA, bf16 on CPU, or as `amp_dtype` says).
    compile: `torch.compile` the stage's network (GPU runs).
    max_steps_per_epoch: cap on optimiser steps per epoch (0: a full pass over the data).
    log_every: steps between metrics rows / log lines.
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: float = 1.0
    min_lr_ratio: float = 0.01
    grad_clip: float = 5.0
    mask_prob: float = 0.9
    mask: Dict[str, Any] = field(default_factory=dict)
    sources: List[str] = field(default_factory=list)
    freeze_bn: bool = False
    amp: bool = False
    amp_dtype: str = "auto"
    compile: bool = False
    num_workers: int = 2
    log_every: int = 50
    seed: int = 0
    max_steps_per_epoch: int = 0
    loss: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 0, "epochs must be >= 0"),
            (self.batch_size >= 2, "batch_size must be >= 2"),
            (self.lr > 0, "lr must be > 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.warmup >= 0, "warmup must be >= 0 (epochs)"),
            (0 <= self.min_lr_ratio <= 1, "min_lr_ratio must be in [0, 1]"),
            (self.grad_clip >= 0, "grad_clip must be >= 0 (0 disables clipping)"),
            (0.0 <= self.mask_prob <= 1.0, "mask_prob must be in [0, 1]"),
            (self.amp_dtype in ("auto", "fp16", "bf16"), "amp_dtype must be 'auto', 'fp16' or 'bf16'"),
            (self.num_workers >= 0, "num_workers must be >= 0"),
            (self.log_every >= 1, "log_every must be >= 1"),
            (self.max_steps_per_epoch >= 0, "max_steps_per_epoch must be >= 0 (0: no cap)"),
        ]
        bad = [msg for ok, msg in checks if not ok]
        if bad:
            raise ConfigError(f"{type(self).__name__}: " + "; ".join(bad))


def _check_loss_fields(owner: str, loss: Dict[str, Any], weights_cls: Optional[type]) -> None:
    """`loss` must hold fields of `weights_cls` (a train.losses weights dataclass); None: no loss options."""
    known = [f.name for f in dataclasses.fields(weights_cls)] if weights_cls is not None else []
    unknown = [k for k in loss if k not in known]
    if unknown:
        hint = f"known: {', '.join(known)}" if known else "this stage has no loss options"
        raise ConfigError(f"{owner}.loss: unknown key(s) {unknown}; {hint}")
    if weights_cls is not None:
        try:
            weights_cls(**loss)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{owner}.loss: {exc}") from exc


@dataclass
class InpaintStageConfig(StageConfig):
    """Stage 0: encoder + decoder learn to inpaint masked faces (`loss`: `train.losses.InpaintingWeights` fields:
    l1, mask_weight, ssim).

    encoder_lr_scale: the encoder learns at `lr * encoder_lr_scale`; 0 freezes it, so that only the decoder learns to
        reconstruct from a pretrained encoder's descriptors (`TrainConfig.pretrained`).
    """

    epochs: int = 20
    lr: float = 2e-3
    mask_prob: float = 0.9
    encoder_lr_scale: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.encoder_lr_scale < 0:
            raise ConfigError(f"stages.inpaint.encoder_lr_scale must be >= 0, got {self.encoder_lr_scale}")
        from .losses import InpaintingWeights

        _check_loss_fields(type(self).__name__, self.loss, InpaintingWeights)


@dataclass
class EncoderStageConfig(StageConfig):
    """Stage 1: self-supervised finetuning of the encoder on masked faces.

    Continues reconstruction at a lower LR on (by default) always-masked faces, every mask style equally likely and
    larger masks (nose covered more often, further under the chin), and adds a
    masked-vs-clean descriptor consistency term (`consistency_weight`; target: the encoder's own descriptors of the
    clean face, no gradient) so that the encoder's features of a masked face move towards those of the clean face.
    freeze_decoder: keep the inpainting decoder fixed (only the encoder adapts).
    consistency_target: whose clean-face descriptors the masked face's are pulled to: "self" (the encoder being
        trained, no gradient) or "initial" (a frozen copy of the encoder as this stage found it: keeps a pretrained
        encoder's clean-face features, which its head was trained on, in place).
    """

    epochs: int = 10
    lr: float = 5e-4
    warmup: float = 0.5
    mask_prob: float = 1.0
    mask: Dict[str, Any] = field(default_factory=lambda: {
        "styles": ["surgical", "n95", "kn95", "cloth"], "style_probs": [0.25, 0.25, 0.25, 0.25],
        "nose_uncovered_prob": 0.1, "chin_range": [0.0, 0.3], "margin_range": [0.0, 0.15]})
    freeze_decoder: bool = False
    consistency_weight: float = 0.5
    consistency_target: str = "self"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.consistency_weight < 0:
            raise ConfigError("EncoderStageConfig: consistency_weight must be >= 0")
        if self.consistency_target not in ("self", "initial"):
            raise ConfigError("EncoderStageConfig: consistency_target must be 'self' or 'initial', got "
                              f"{self.consistency_target!r}")
        from .losses import InpaintingWeights

        _check_loss_fields(type(self).__name__, self.loss, InpaintingWeights)


@dataclass
class ReformerStageConfig(StageConfig):
    """Stage 2: the frozen encoder's descriptors -> reformer -> embedding, distilled from a teacher's embeddings of
    the clean face while the student sees the masked face (`loss`: `train.losses.RelationWeights` fields: distance,
    angle, similarity, cosine, angle_max_items).

    encoder_lr_scale: 0 keeps the encoder frozen, as the paper does. A value > 0 lets the encoder adapt too, at
    `lr * encoder_lr_scale` (a deviation for small budgets, where the generative encoder has seen little data).
    """

    epochs: int = 30
    lr: float = 2e-3
    mask_prob: float = 0.8
    encoder_lr_scale: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        from .losses import RelationWeights

        _check_loss_fields(type(self).__name__, self.loss, RelationWeights)
        if self.encoder_lr_scale < 0:
            raise ConfigError(f"stages.reformer.encoder_lr_scale must be >= 0, got {self.encoder_lr_scale}")


@dataclass
class ClassifierStageConfig(StageConfig):
    """Stage 3: FC + softmax on the reformed embeddings of the labelled training identities.

    finetune: also train encoder + reformer, at `lr * finetune_lr_scale` (default off: only the FC layer learns).
    label_smoothing: cross-entropy label smoothing.
    prototype_init: start the FC weights at `prototype_scale` x the class-mean embeddings of the clean training
        faces (a nearest-class-mean classifier from the first step) instead of at random.
    head: "softmax" (FC + softmax cross-entropy) or a margin softmax on normalised weights ("cosface" /
        "arcface", `margin`, `margin_scale`), folded into the FC layer at the end so inference is a plain Linear.
    """

    epochs: int = 10
    lr: float = 1e-2
    weight_decay: float = 5e-4
    warmup: float = 0.5
    mask_prob: float = 0.5
    finetune: bool = False
    finetune_lr_scale: float = 0.05
    label_smoothing: float = 0.1
    prototype_init: bool = True
    prototype_scale: float = 10.0
    head: str = "softmax"
    margin: float = 0.35
    margin_scale: float = 30.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_loss_fields(type(self).__name__, self.loss, None)
        if self.head not in ("softmax", "cosface", "arcface"):
            raise ConfigError(f"ClassifierStageConfig: head must be 'softmax', 'cosface' or 'arcface', got "
                              f"{self.head!r}")
        if not 0 < self.finetune_lr_scale <= 1:
            raise ConfigError("ClassifierStageConfig: finetune_lr_scale must be in (0, 1]")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError("ClassifierStageConfig: label_smoothing must be in [0, 1)")


@dataclass
class StagesConfig:
    """One config per greedy stage, in training order."""

    inpaint: InpaintStageConfig = field(default_factory=InpaintStageConfig)
    encoder: EncoderStageConfig = field(default_factory=EncoderStageConfig)
    reformer: ReformerStageConfig = field(default_factory=ReformerStageConfig)
    classifier: ClassifierStageConfig = field(default_factory=ClassifierStageConfig)

    def get(self, stage: str) -> StageConfig:
        """The config of stage `stage` (one of STAGE_NAMES)."""
        if stage not in STAGE_NAMES:
            raise ConfigError(f"unknown stage {stage!r}; stages are {', '.join(STAGE_NAMES)}")
        return getattr(self, stage)


@dataclass
class EvalConfig:
    """Face verification / identification protocol (`g2d-train eval`, threshold choice after the classifier).

    The held-out identities of `data.holdout_source` are evaluated (`g2d-train eval --cache` picks another cache).
    mask_seed: seed of the evaluation masks (kept different from any training seed).
    pairs: number of generated pairs per protocol (half genuine, half impostor).
    folds: k of the k-fold accuracy; far: false-accept rates of the TAR@FAR table.
    threshold_far: the FAR the stored default threshold is chosen at (0: best-accuracy threshold).
    """

    mask_seed: int = 20240721
    pairs: int = 3000
    folds: int = 10
    far: List[float] = field(default_factory=lambda: [1e-3, 1e-2, 1e-1])
    threshold_far: float = 0.0
    batch_size: int = 128
    mask: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pairs < 2 or self.folds < 2:
            raise ConfigError("eval.pairs and eval.folds must be >= 2")
        if any(not 0 < f < 1 for f in self.far) or not 0 <= self.threshold_far < 1:
            raise ConfigError("eval.far values must be in (0, 1) and eval.threshold_far in [0, 1)")


@dataclass
class TrainConfig:
    """Everything a training run needs.

    `model` may name a preset with overrides in files: `model: {preset: tiny, embedding_dim: 64}`.
    `pretrained`: weights that initialise the first stage's network instead of random ones: "sface" (OpenCV SFace,
    the team's shared copy) or "sface:<path.onnx>", for `model: {preset: sface}`; empty: from scratch.
    """

    name: str = "g2d-edge"
    run_dir: str = "runs/g2d-edge"
    device: str = "auto"
    pretrained: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    stages: StagesConfig = field(default_factory=StagesConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        names = {s.name for s in self.data.sources}
        for stage in STAGE_NAMES:
            unknown = [n for n in self.stages.get(stage).sources if n not in names]
            if unknown:
                raise ConfigError(f"stages.{stage}.sources names unknown data sources {unknown}; "
                                  f"known: {sorted(names)}")
        if self.pretrained and not (self.pretrained == "sface" or self.pretrained.startswith("sface:")):
            raise ConfigError(f"pretrained must be '', 'sface' or 'sface:<path.onnx>', got {self.pretrained!r}")
        if self.pretrained and self.model.encoder != "sface":
            raise ConfigError("pretrained SFace weights need the sface architecture: model: {preset: sface}")
        if self.device != "auto" and not self.device.startswith(("cpu", "cuda", "mps")):
            raise ConfigError(f"device must be 'auto', 'cpu', 'cuda[:N]' or 'mps', got {self.device!r}")


# ---------------------------------------------------------------------------------------------------- files

def read_config_file(path: Union[str, Path]) -> Dict[str, Any]:
    """Read a YAML (.yaml/.yml) or TOML (.toml) config file into a dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".toml":
        try:
            import tomllib
        except ImportError:  # Python < 3.11
            try:
                import tomli as tomllib  # type: ignore[no-redef]
            except ImportError as exc:
                raise ConfigError("TOML configs need Python >= 3.11 or `pip install tomli`; or use YAML") from exc
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level, got {type(data).__name__}")
    return data


def apply_overrides(data: Dict[str, Any], overrides: Sequence[str]) -> Dict[str, Any]:
    """Apply `key.sub.key=value` overrides (value in YAML syntax: 3, 1e-4, true, [a, b], {k: v}) to a config dict.

    Intermediate mappings are created as needed; `data.sources` entries can be addressed by index
    (`data.sources.0.cache=...`). Returns the (modified) dict.
    """
    import yaml

    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.path=value (e.g. stages.reformer.epochs=3)")
        key, raw = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"override {item!r} has an empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({exc})") from exc
        node: Any = data
        for i, part in enumerate(parts[:-1]):
            node = _child(node, part, ".".join(parts[: i + 1]), create=True)
        last = parts[-1]
        if isinstance(node, list):
            node[_index(node, last, key)] = value
        else:
            node[last] = value
    return data


def _child(node: Any, part: str, where: str, create: bool) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, where)]
    if not isinstance(node, dict):
        raise ConfigError(f"override path {where!r} goes through a value that is not a mapping")
    if part not in node or node[part] is None:
        if not create:
            raise ConfigError(f"no key {where!r}")
        node[part] = {}
    return node[part]


def _index(node: list, part: str, where: str) -> int:
    try:
        idx = int(part)
    except ValueError:
        raise ConfigError(f"{where!r}: list entries are addressed by index, got {part!r}") from None
    if not -len(node) <= idx < len(node):
        raise ConfigError(f"{where!r}: index {idx} out of range (list has {len(node)} entries)")
    return idx


def load_config(path: Optional[Union[str, Path]] = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Load a TrainConfig from a YAML/TOML file (None: all defaults) and apply `--set` style overrides."""
    data: Dict[str, Any] = read_config_file(path) if path else {}
    if overrides:
        data = apply_overrides(data, overrides)
    cfg = from_dict(TrainConfig, data)
    log.debug("config %s loaded (hash %s)", path or "<defaults>", config_hash(cfg)[:12])
    return cfg


def save_config(cfg: TrainConfig, path: Union[str, Path]) -> Path:
    """Write a config as YAML (round-trips through `load_config`)."""
    import yaml

    return atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


def canonical_json(cfg: TrainConfig) -> str:
    """The canonical JSON of the config (sorted keys, no whitespace), without `HASH_EXCLUDED` fields."""
    data = {k: v for k, v in to_dict(cfg).items() if k not in HASH_EXCLUDED}
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(cfg: TrainConfig) -> str:
    """sha256 (hex) of `canonical_json(cfg)`."""
    return hashlib.sha256(canonical_json(cfg).encode("utf-8")).hexdigest()
