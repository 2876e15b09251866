"""What the greedy stages share: the `Stage` API a stage implements, the process / device placement (`Runtime`,
DDP), the LR schedule, parameter groups, the metrics CSV and the stage folders. The loop that runs a stage is
`train.stages.loop.run_stage`.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from g2d_edge.errors import G2DError
from g2d_edge.files import atomic_write_bytes

from ..checkpoint import load_checkpoint
from ..config import StageConfig, TrainConfig
from ..data import AugmentOptions, StageData, build_stage_data
from ..model import ModelConfig, Preprocess

log = logging.getLogger(__name__)

LAST = "last.pt"
FINAL = "final.pt"
METRICS = "metrics.csv"


class StageOrderError(G2DError):
    """A stage was started before the stage it builds on has finished."""


class TrainingDivergedError(G2DError, RuntimeError):
    """The loss became NaN / infinite too often to go on."""


# ---------------------------------------------------------------------------------------------------- runtime

@dataclass
class Runtime:
    """Process / device placement: single process, or one rank of a torchrun DDP job."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


_RUNTIME: Optional[Runtime] = None


def setup_runtime(device: str = "auto") -> Runtime:
    """Pick the device; join the process group when launched by torchrun (WORLD_SIZE > 1). Idempotent."""
    global _RUNTIME
    if _RUNTIME is not None:
        return _RUNTIME
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise G2DError(f"device {device!r} asked for but CUDA is not available; use device: cpu (or auto)")
    if world > 1:
        import torch.distributed as dist

        if dev.type == "cuda":
            dev = torch.device("cuda", local)
            torch.cuda.set_device(dev)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        log.info("DDP rank %d/%d on %s", rank, world, dev)
    _RUNTIME = Runtime(device=dev, rank=rank, world_size=world, local_rank=local)
    return _RUNTIME


def reset_runtime() -> None:
    """Forget the runtime (tests switch devices; DDP groups are left alone)."""
    global _RUNTIME
    _RUNTIME = None


def _barrier(rt: Runtime) -> None:
    if rt.distributed:
        import torch.distributed as dist

        dist.barrier()


# ---------------------------------------------------------------------------------------------------- schedule

class WarmupCosine:
    """LR multiplier: linear warm-up over `warmup_steps`, then cosine from 1 to `min_ratio` at `total_steps`.

    A callable object (not a lambda) so that `LambdaLR.state_dict()` records it and resumes exactly.
    """

    def __init__(self, total_steps: int, warmup_steps: int, min_ratio: float) -> None:
        self.total_steps = max(1, int(total_steps))
        self.warmup_steps = max(0, min(int(warmup_steps), self.total_steps - 1))
        self.min_ratio = float(min_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def param_groups(groups: Sequence[Tuple[Iterable[nn.Parameter], float]], lr: float, weight_decay: float
                 ) -> List[Dict[str, Any]]:
    """AdamW groups from (parameters, lr scale) pairs; biases and norm weights (ndim <= 1) get no weight decay."""
    out = []
    for params, scale in groups:
        params = [p for p in params if p.requires_grad]
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        if decay:
            out.append({"params": decay, "lr": lr * scale, "weight_decay": weight_decay})
        if no_decay:
            out.append({"params": no_decay, "lr": lr * scale, "weight_decay": 0.0})
    return out


def set_trainable(module: Optional[nn.Module], trainable: bool) -> None:
    """requires_grad on every parameter of `module`; frozen modules are also put in eval mode by the stages."""
    if module is None:
        return
    for p in module.parameters():
        p.requires_grad_(trainable)


def freeze_batch_norm(modules: Iterable[nn.Module]) -> None:
    """Put every batch-norm layer of `modules` in eval mode (running statistics used and left unchanged)."""
    for module in modules:
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


# ---------------------------------------------------------------------------------------------------- metrics CSV

class MetricsLog:
    """`<run_dir>/<stage>/metrics.csv`: rows of kind "step" (every `log_every` steps, values averaged over those
    steps) and "epoch" (the epoch mean). Columns: kind, epoch, step, loss, <loss terms>, lr, time (seconds since the
    epoch started). Resuming drops rows of epochs after the checkpoint's."""

    base = ("kind", "epoch", "step")
    tail = ("lr", "time")

    def __init__(self, path: Path, keep_epochs: int, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled
        self.rows: List[Dict[str, str]] = []
        self.fields: List[str] = []
        if enabled and path.is_file() and keep_epochs > 0:
            with path.open(newline="") as fh:
                reader = csv.DictReader(fh)
                self.fields = list(reader.fieldnames or [])
                self.rows = [r for r in reader if r.get("epoch", "").isdigit() and int(r["epoch"]) <= keep_epochs]
        if enabled:
            self._rewrite()

    def _rewrite(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.fields:
            if self.path.exists():
                self.path.unlink()
            return
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=self.fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_bytes(self.path, text.getvalue().encode("utf-8"))

    def write(self, kind: str, epoch: int, step: int, values: Mapping[str, float], lr: float, seconds: float) -> None:
        if not self.enabled:
            return
        row = {"kind": kind, "epoch": str(epoch), "step": str(step), **{k: f"{v:.6g}" for k, v in values.items()},
               "lr": f"{lr:.6g}", "time": f"{seconds:.2f}"}
        self.rows.append(row)
        new_keys = [k for k in values if k not in self.fields]
        if not self.fields or new_keys:
            head = self.fields[:-len(self.tail)] if self.fields else list(self.base)
            self.fields = head + new_keys + list(self.tail)
            self._rewrite()
            return
        with self.path.open("a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=self.fields, extrasaction="ignore").writerow(row)


def read_metrics(path: Path, kind: str = "epoch") -> List[Dict[str, float]]:
    """Rows of one kind of a metrics CSV, numbers parsed (empty cells dropped)."""
    with Path(path).open(newline="") as fh:
        out = []
        for r in csv.DictReader(fh):
            if r["kind"] == kind:
                out.append({k: float(v) for k, v in r.items() if k != "kind" and v not in ("", None)})
        return out


class _Mean:
    """Running means of named scalars."""

    def __init__(self) -> None:
        self.sums: Dict[str, float] = {}
        self.count = 0

    def add(self, values: Mapping[str, float], n: int = 1) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v) * n
        self.count += n

    def means(self) -> Dict[str, float]:
        return {k: v / max(1, self.count) for k, v in self.sums.items()}


# ---------------------------------------------------------------------------------------------------- the stage API

class StageNet(nn.Module):
    """A stage's computation on one batch: `forward(batch) -> (loss, {term: detached scalar tensor})`.

    Holds every module the stage runs (so DDP / torch.compile wrap one object) and the shared `Preprocess`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.preprocess = Preprocess()


@dataclass
class StageResult:
    """What `run_stage` did."""

    stage: str
    checkpoint: Path
    finished: bool
    skipped: bool = False
    epochs_done: int = 0
    start_epoch: int = 0
    epoch_means: List[Dict[str, float]] = field(default_factory=list)


class Stage(ABC):
    """One greedy stage. Subclasses set `name` and `previous` and implement the abstract hooks."""

    name: str = ""
    previous: Optional[str] = None

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg

    @property
    def stage_cfg(self) -> StageConfig:
        return self.cfg.stages.get(self.name)

    # -- data ------------------------------------------------------------------------------------------------------
    def default_sources(self) -> List[str]:
        """Sources used when `stages.<name>.sources` is empty (default: all)."""
        return [s.name for s in self.cfg.data.sources]

    def source_names(self) -> List[str]:
        return list(self.stage_cfg.sources) or self.default_sources()

    def augment_options(self) -> AugmentOptions:
        sc = self.stage_cfg
        return AugmentOptions(mask_prob=sc.mask_prob, flip=self.cfg.data.flip, color_jitter=self.cfg.data.color_jitter,
                              mask={**self.cfg.data.masks, **sc.mask})

    def build_data(self) -> StageData:
        """The stage's training set (held-out identities excluded)."""
        return build_stage_data(self.cfg.data, self.source_names(), self.augment_options(), self.stage_cfg.seed)

    # -- modules ---------------------------------------------------------------------------------------------------
    def initial_modules(self, init: Optional[Mapping[str, Any]]) -> Dict[str, nn.Module]:
        """The modules the stage starts from: the previous stage's final checkpoint (`init`), or fresh ones."""
        from ..checkpoint import build_model_from
        from ..model import build_decoder, build_model

        if init is None:
            model_cfg = dataclasses.replace(self.cfg.model, num_classes=0)
            model = build_model(model_cfg)
            if self.cfg.pretrained:
                from ..sface import load_pretrained

                load_pretrained(model, self.cfg.pretrained)
            return {"model": model, "decoder": build_decoder(model_cfg)}
        model = build_model_from(init)
        _warn_model_config_drift(self.cfg.model, model.config, self.previous or "")
        modules: Dict[str, nn.Module] = {"model": model}
        if "decoder" in init["state"] and self.keeps_decoder():
            decoder = build_decoder(model.config)
            decoder.load_state_dict(init["state"]["decoder"], strict=True)
            modules["decoder"] = decoder
        return modules

    def keeps_decoder(self) -> bool:
        """Whether this stage carries the inpainting decoder (and stores it in its checkpoints)."""
        return False

    def extra_modules(self, modules: Dict[str, nn.Module], data: StageData) -> Dict[str, nn.Module]:
        """Further stateful modules of this stage (e.g. a loss with parameters), saved in its checkpoints."""
        return {}

    @abstractmethod
    def prepare(self, modules: Dict[str, nn.Module], data: StageData, device: torch.device) -> None:
        """Freeze / unfreeze, resize heads (modules are on `device`); called before resuming from last.pt."""

    @abstractmethod
    def trainable(self, modules: Dict[str, nn.Module]) -> List[Tuple[Iterable[nn.Parameter], float]]:
        """(parameters, lr scale) groups that the optimizer updates."""

    @abstractmethod
    def build_net(self, modules: Dict[str, nn.Module], data: StageData) -> StageNet:
        """The loss computation on a batch."""

    def set_train_mode(self, modules: Dict[str, nn.Module]) -> None:
        """Train mode for learning modules, eval mode for frozen ones (override when some are frozen)."""
        for m in modules.values():
            m.train()

    def extra_meta(self, modules: Dict[str, nn.Module], data: StageData) -> Dict[str, Any]:
        """Stage-specific checkpoint meta."""
        return {}

    def finish(self, modules: Dict[str, nn.Module], data: StageData, rt: Runtime) -> Dict[str, Any]:
        """Work after the last epoch (e.g. threshold calibration); returns meta for final.pt."""
        return {}


def _warn_if_stale(stage: "Stage", run_dir: Path, meta: Mapping[str, Any], what: str) -> None:
    """Warn when `stage`'s checkpoint was built on another run of the previous stage than the one now on disk."""
    if not stage.previous or not meta.get("previous"):
        return
    prev = stage_dir(run_dir, stage.previous) / FINAL
    if not prev.is_file():
        return
    current = load_checkpoint(prev)["meta"].get("run_id")
    if current != meta["previous"].get("run_id"):
        log.warning("the %s stage %s was built on an earlier run of %s, which has been retrained since: use "
                    "--force to rebuild it on the new weights", what, stage.name, stage.previous)


def _warn_model_config_drift(wanted: ModelConfig, stored: ModelConfig, previous: str) -> None:
    a = {k: v for k, v in wanted.to_dict().items() if k != "num_classes"}
    b = {k: v for k, v in stored.to_dict().items() if k != "num_classes"}
    if a != b:
        diff = sorted(k for k in a if a[k] != b.get(k))
        log.warning("model config differs from the %s checkpoint's in %s; using the checkpoint's (re-run earlier "
                    "stages with --force to change the architecture)", previous, diff)


# ---------------------------------------------------------------------------------------------------- the loop

def stage_dir(run_dir: Path, stage: str) -> Path:
    """`<run_dir>/<stage>`."""
    return Path(run_dir) / stage


def is_finished(run_dir: Path, stage: str) -> bool:
    """Whether `<run_dir>/<stage>/final.pt` exists."""
    return (stage_dir(run_dir, stage) / FINAL).is_file()
