"""The one training loop every greedy stage runs (parameterised by a `Stage`).

A stage supplies its data (`Stage.build_data`), its modules (built from the previous stage's final checkpoint),
which parameters learn and at what LR scale, and a `StageNet` computing the loss of a batch. This module supplies
the rest: AdamW + warm-up/cosine LR, AMP (fp16 + GradScaler on CUDA, bf16 on CPU), optional `torch.compile`,
DDP when launched by `torchrun` (WORLD_SIZE > 1: DistributedSampler; only rank 0 writes), tqdm progress, the
metrics CSV, a checkpoint after every epoch (`last.pt`, resumed from on the next run) and at the end (`final.pt`,
whose presence marks the stage finished: it is skipped unless forced).

Determinism: the shuffle order and the per-item masks depend only on (seed, epoch), and the torch RNG is reseeded at
every epoch, so a run interrupted after epoch k and resumed continues exactly as if it had not stopped.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
import os
import sys
import time
import uuid
from abc import ABC, abstractmethod
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from g2d_edge.errors import G2DError
from g2d_edge.files import atomic_write_bytes
from g2d_edge.machine import machine_line

from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import StageConfig, TrainConfig, config_hash, to_dict
from ..data import AugmentOptions, EpochShuffleSampler, StageData, build_stage_data, collate_faces
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


def _to_device(batch: Mapping[str, Any], device: torch.device) -> Dict[str, Any]:
    nb = device.type == "cuda"
    return {k: v.to(device, non_blocking=nb) if torch.is_tensor(v) else v for k, v in batch.items()}


def _amp_dtype(sc: StageConfig, device: torch.device) -> Optional[torch.dtype]:
    if not sc.amp:
        return None
    if sc.amp_dtype == "fp16" or (sc.amp_dtype == "auto" and device.type == "cuda"):
        return torch.float16
    return torch.bfloat16


def _seed_everything(seed: int, epoch: int) -> None:
    torch.manual_seed((int(seed) * 1_000_003 + int(epoch)) & 0x7FFF_FFFF_FFFF_FFFF)


def run_stage(stage: Stage, run_dir: Path, force: bool = False, stop_after: Optional[int] = None) -> StageResult:
    """Train `stage` in `<run_dir>/<stage.name>/`: skip when finished (unless `force`), else resume from `last.pt`.

    stop_after: leave after this many epochs have been completed in total (checkpointed in last.pt, final.pt not
    written), e.g. to fit a time slot; the next run resumes.
    Raises StageOrderError when the previous stage has not finished.
    """
    cfg, sc = stage.cfg, stage.stage_cfg
    run_dir = Path(run_dir)
    out = stage_dir(run_dir, stage.name)
    final_path, last_path = out / FINAL, out / LAST
    rt = setup_runtime(cfg.device)
    if final_path.is_file() and not force:
        log.info("stage %s already finished (%s); skipping (use --force to retrain)", stage.name, final_path)
        ckpt = load_checkpoint(final_path)
        if ckpt["meta"].get("config_hash") != config_hash(cfg):
            log.warning("stage %s was trained with another config (hash %s, now %s)", stage.name,
                        str(ckpt["meta"].get("config_hash"))[:12], config_hash(cfg)[:12])
        _warn_if_stale(stage, run_dir, ckpt["meta"], "finished")
        return StageResult(stage.name, final_path, finished=True, skipped=True, epochs_done=ckpt["epoch"])
    init = None
    if stage.previous:
        prev_path = stage_dir(run_dir, stage.previous) / FINAL
        if not prev_path.is_file():
            raise StageOrderError(f"stage {stage.name!r} starts from the {stage.previous!r} stage, which has not "
                                  f"finished ({prev_path} missing): run `g2d-train {stage.previous}` first "
                                  "(or `g2d-train all`)")
        init = load_checkpoint(prev_path)
    if force and rt.is_main:
        for p in (final_path, last_path, out / METRICS):
            if p.exists():
                p.unlink()
    _barrier(rt)

    data = stage.build_data()
    _seed_everything(sc.seed, -1)  # fresh weights (first stage, new heads) are reproducible under the seed
    modules = stage.initial_modules(init)
    modules.update(stage.extra_modules(modules, data))
    for m in modules.values():
        m.to(rt.device)
    stage.prepare(modules, data, rt.device)
    net = stage.build_net(modules, data).to(rt.device)

    # data loading
    world = rt.world_size
    per_rank = len(data.dataset) // world
    drop_last = per_rank >= sc.batch_size
    if rt.distributed:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(data.dataset, num_replicas=world, rank=rt.rank, shuffle=True, seed=sc.seed,
                                     drop_last=True)
    else:
        sampler = EpochShuffleSampler(len(data.dataset), seed=sc.seed)
    loader = DataLoader(data.dataset, batch_size=sc.batch_size, sampler=sampler, num_workers=sc.num_workers,
                        collate_fn=collate_faces, drop_last=drop_last, pin_memory=rt.device.type == "cuda")
    steps_per_epoch = len(loader)
    if sc.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, sc.max_steps_per_epoch)
    if steps_per_epoch == 0 and sc.epochs > 0:
        raise G2DError(f"stage {stage.name}: no training batch ({len(data.dataset)} faces, batch size "
                       f"{sc.batch_size}); lower stages.{stage.name}.batch_size or add data")

    groups = param_groups(stage.trainable(modules), sc.lr, sc.weight_decay)
    params = [p for g in groups for p in g["params"]]
    if sc.epochs > 0 and not params:
        raise G2DError(f"stage {stage.name} has nothing to train")
    optimizer = torch.optim.AdamW(groups or [{"params": [torch.zeros(1, requires_grad=True)]}], lr=sc.lr,
                                  weight_decay=sc.weight_decay)
    schedule = WarmupCosine(sc.epochs * steps_per_epoch, round(sc.warmup * steps_per_epoch), sc.min_lr_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    amp_dtype = _amp_dtype(sc, rt.device)
    scaler = torch.amp.GradScaler(rt.device.type, enabled=amp_dtype == torch.float16 and rt.device.type == "cuda")

    start_epoch, step, history = 0, 0, []
    if last_path.is_file() and not force:
        ckpt = load_checkpoint(last_path, map_location=rt.device)
        for name, m in modules.items():
            if name not in ckpt["state"]:
                raise RuntimeError(f"{last_path} has no {name!r} weights; delete it or use --force")
            m.load_state_dict(ckpt["state"][name], strict=True)
        if ckpt.get("optimizer") is not None:
            optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scheduler") is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler") is not None:
            scaler.load_state_dict(ckpt["scaler"])
        start_epoch, step = int(ckpt["epoch"]), int(ckpt["step"])
        _warn_if_stale(stage, run_dir, ckpt["meta"], "partly trained")
        history = list(ckpt["meta"].get("history", []))
        if ckpt["meta"].get("config_hash") != config_hash(cfg):
            log.warning("resuming %s with a changed config (hash %s -> %s)", stage.name,
                        str(ckpt["meta"].get("config_hash"))[:12], config_hash(cfg)[:12])
        log.info("resuming stage %s from %s: epoch %d of %d done, step %d", stage.name, last_path, start_epoch,
                 sc.epochs, step)

    train_net: nn.Module = net
    if rt.distributed and params:
        from torch.nn.parallel import DistributedDataParallel

        train_net = DistributedDataParallel(net, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    if sc.compile:
        train_net = torch.compile(train_net)

    metrics = MetricsLog(out / METRICS, keep_epochs=start_epoch, enabled=rt.is_main)
    base_meta = {
        "name": cfg.name,
        "config_hash": config_hash(cfg),
        "train_config": to_dict(cfg),
        "stage_config": dataclasses.asdict(sc),
        "data_summary": data.summary,
        "trained_on": data.trained_on,
        "machine": machine_line(),
        "held_out": data.holdout.to_meta(),
        "val_identities": list(data.holdout.held_out),
        "run_id": uuid.uuid4().hex,
        "previous": ({"stage": stage.previous, "config_hash": init["meta"].get("config_hash"),
                      "run_id": init["meta"].get("run_id"), "epoch": init["epoch"]} if init else None),
        "steps_per_epoch": steps_per_epoch,
    }
    if init is not None:
        for key in ("class_names", "threshold", "threshold_far"):
            if key in init["meta"]:
                base_meta[key] = init["meta"][key]
    log.info("stage %s: %d faces, %d steps/epoch x %d epochs, lr %g, device %s%s", stage.name, len(data.dataset),
             steps_per_epoch, sc.epochs, sc.lr, rt.device, f", {world} ranks" if world > 1 else "")

    def save(path: Path, epoch: int, finished: bool, extra: Optional[Dict[str, Any]] = None) -> None:
        if not rt.is_main:
            return
        meta = {**base_meta, **stage.extra_meta(modules, data), "history": history, **(extra or {})}
        save_checkpoint(path, stage=stage.name, model_config=modules["model"].config,
                        state={n: m.state_dict() for n, m in modules.items()},
                        optimizer=None if finished else optimizer, scheduler=None if finished else scheduler,
                        scaler=None if finished else scaler, epoch=epoch, step=step, meta=meta, finished=finished)

    end_epoch = sc.epochs if stop_after is None else min(sc.epochs, max(stop_after, start_epoch))
    skipped_images = 0
    show_bar = rt.is_main and sys.stderr.isatty()
    for epoch in range(start_epoch, end_epoch):
        _seed_everything(sc.seed, epoch)
        sampler.set_epoch(epoch)
        data.dataset.set_epoch(epoch)
        stage.set_train_mode(modules)
        if sc.freeze_bn:
            freeze_batch_norm(modules.values())
        t0 = time.time()
        epoch_mean, window = _Mean(), _Mean()
        bad_steps = 0
        bar = tqdm(total=steps_per_epoch, desc=f"{stage.name} {epoch + 1}/{sc.epochs}", disable=not show_bar,
                   leave=False)
        done = 0
        for batch in loader:
            if done >= steps_per_epoch:
                break
            skipped_images += len(batch.get("skipped", []))
            if "clean" not in batch or batch["clean"].shape[0] < 3:  # all skipped, or too small for BN / relations
                continue
            batch = _to_device(batch, rt.device)
            autocast = (torch.autocast(device_type=rt.device.type, dtype=amp_dtype) if amp_dtype is not None
                        else nullcontext())
            with autocast:
                loss, terms = train_net(batch)
            if not torch.isfinite(loss):
                bad_steps += 1
                log.warning("stage %s epoch %d: non-finite loss at step %d, step skipped", stage.name, epoch + 1,
                            step)
                optimizer.zero_grad(set_to_none=True)
                if bad_steps > 20:
                    raise TrainingDivergedError(f"stage {stage.name}: loss not finite in {bad_steps} steps of epoch "
                                                f"{epoch + 1}; lower stages.{stage.name}.lr or turn amp off")
                continue
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if sc.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, sc.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            done += 1
            values = {"loss": float(loss.detach()), **{k: float(v) for k, v in terms.items()}}
            n = int(batch["clean"].shape[0])
            epoch_mean.add(values, n)
            window.add(values, n)
            bar.update(1)
            if done % sc.log_every == 0 or done == steps_per_epoch:
                lr = scheduler.get_last_lr()[0]
                means = window.means()
                metrics.write("step", epoch + 1, step, means, lr, time.time() - t0)
                bar.set_postfix(loss=f"{means['loss']:.4f}")
                if not show_bar and rt.is_main:
                    log.info("%s epoch %d/%d step %d/%d %s lr %.3g", stage.name, epoch + 1, sc.epochs, done,
                             steps_per_epoch, _fmt_terms(means), lr)
                window = _Mean()
        bar.close()
        means = _reduce_means(epoch_mean, rt)
        history.append({"epoch": epoch + 1, **means})
        metrics.write("epoch", epoch + 1, step, means, scheduler.get_last_lr()[0], time.time() - t0)
        if rt.is_main:
            log.info("%s epoch %d/%d done in %.1fs: %s", stage.name, epoch + 1, sc.epochs, time.time() - t0,
                     _fmt_terms(means))
        save(last_path, epoch + 1, finished=False)
        _barrier(rt)
    if skipped_images:
        log.warning("stage %s: %d unusable images skipped (see warnings above)", stage.name, skipped_images)

    if end_epoch < sc.epochs:
        log.info("stage %s stopped after epoch %d of %d (resume by running it again)", stage.name, end_epoch,
                 sc.epochs)
        return StageResult(stage.name, last_path, finished=False, epochs_done=end_epoch, start_epoch=start_epoch,
                           epoch_means=history)
    for m in modules.values():
        m.eval()
    extra = stage.finish(modules, data, rt)
    save(final_path, sc.epochs, finished=True, extra={**extra, "skipped_images": skipped_images})
    _barrier(rt)
    log.info("stage %s finished -> %s", stage.name, final_path)
    return StageResult(stage.name, final_path, finished=True, epochs_done=sc.epochs, start_epoch=start_epoch,
                       epoch_means=history)


def _reduce_means(mean: _Mean, rt: Runtime) -> Dict[str, float]:
    """Epoch means over all ranks (weighted by items)."""
    values = mean.means()
    if not rt.distributed or not values:
        return values
    import torch.distributed as dist

    keys = list(values)  # same insertion order on every rank: the stage computes the same terms
    t = torch.tensor([mean.sums[k] for k in keys] + [float(mean.count)], dtype=torch.float64, device=rt.device)
    dist.all_reduce(t)
    return {k: float(t[i] / max(1.0, float(t[-1]))) for i, k in enumerate(keys)}


def _fmt_terms(values: Mapping[str, float]) -> str:
    return " ".join(f"{k} {v:.4f}" for k, v in values.items())
