"""The one training loop every greedy stage runs (`run_stage`, parameterised by a `Stage`), in named steps.

A stage supplies its data, its modules (built from the previous stage's final checkpoint), which parameters learn
and at what LR scale, and a `StageNet` computing the loss of a batch. The loop supplies the rest: AdamW +
warm-up/cosine LR, AMP (fp16 + GradScaler on CUDA, bf16 on CPU), optional `torch.compile`, DDP when launched by
`torchrun` (WORLD_SIZE > 1: DistributedSampler; only rank 0 writes), tqdm progress, the metrics CSV, a checkpoint
after every epoch (`last.pt`, resumed from on the next run) and at the end (`final.pt`, whose presence marks the
stage finished: it is skipped unless forced).

Determinism: the shuffle order and the per-item masks depend only on (seed, epoch), and the torch RNG is reseeded at
every epoch, so a run interrupted after epoch k and resumed continues exactly as if it had not stopped.
"""
from __future__ import annotations

import dataclasses
import logging
import sys
import time
import uuid
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from g2d_edge.errors import G2DError
from g2d_edge.machine import machine_line

from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import StageConfig, config_hash, to_dict
from ..data import EpochShuffleSampler, collate_faces
from .common import (FINAL, LAST, METRICS, MetricsLog, Runtime, Stage, StageOrderError, StageResult,
                     TrainingDivergedError, WarmupCosine, _barrier, _Mean, _warn_if_stale, freeze_batch_norm,
                     param_groups, setup_runtime, stage_dir)

log = logging.getLogger(__name__)

#: Non-finite losses tolerated in one epoch (each skips its step) before the stage is stopped.
MAX_BAD_STEPS = 20


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


def _finished_result(stage: Stage, run_dir: Path, final_path: Path) -> StageResult:
    """The result of a stage found finished (its final checkpoint exists), with warnings when it is stale."""
    cfg = stage.cfg
    log.info("stage %s already finished (%s); skipping (use --force to retrain)", stage.name, final_path)
    ckpt = load_checkpoint(final_path)
    if ckpt["meta"].get("config_hash") != config_hash(cfg):
        log.warning("stage %s was trained with another config (hash %s, now %s)", stage.name,
                    str(ckpt["meta"].get("config_hash"))[:12], config_hash(cfg)[:12])
    _warn_if_stale(stage, run_dir, ckpt["meta"], "finished")
    return StageResult(stage.name, final_path, finished=True, skipped=True, epochs_done=ckpt["epoch"])


def _previous_checkpoint(stage: Stage, run_dir: Path) -> Optional[Dict[str, Any]]:
    """The previous stage's final checkpoint (None for the first stage); StageOrderError when it has not finished."""
    if not stage.previous:
        return None
    prev_path = stage_dir(run_dir, stage.previous) / FINAL
    if not prev_path.is_file():
        raise StageOrderError(f"stage {stage.name!r} starts from the {stage.previous!r} stage, which has not "
                              f"finished ({prev_path} missing): run `g2d-train {stage.previous}` first "
                              "(or `g2d-train all`)")
    return load_checkpoint(prev_path)


class _StageRun:
    """One run of a stage: the state its steps share (data, modules, optimiser, progress)."""

    def __init__(self, stage: Stage, run_dir: Path, rt: Runtime, init: Optional[Dict[str, Any]]) -> None:
        self.stage, self.run_dir, self.rt, self.init = stage, run_dir, rt, init
        self.cfg, self.sc = stage.cfg, stage.stage_cfg
        self.out = stage_dir(run_dir, stage.name)
        self.start_epoch, self.step, self.skipped_images = 0, 0, 0
        self.history: List[Dict[str, float]] = []
        self._build_modules()
        self._build_loader()
        self._build_optimiser()

    # -- set-up ----------------------------------------------------------------------------------------------------
    def _build_modules(self) -> None:
        stage = self.stage
        self.data = stage.build_data()
        _seed_everything(self.sc.seed, -1)  # fresh weights (first stage, new heads) are reproducible under the seed
        self.modules: Dict[str, nn.Module] = stage.initial_modules(self.init)
        self.modules.update(stage.extra_modules(self.modules, self.data))
        for m in self.modules.values():
            m.to(self.rt.device)
        stage.prepare(self.modules, self.data, self.rt.device)
        self.net = stage.build_net(self.modules, self.data).to(self.rt.device)

    def _build_loader(self) -> None:
        rt, sc, dataset = self.rt, self.sc, self.data.dataset
        drop_last = len(dataset) // rt.world_size >= sc.batch_size
        if rt.distributed:
            from torch.utils.data.distributed import DistributedSampler

            self.sampler = DistributedSampler(dataset, num_replicas=rt.world_size, rank=rt.rank, shuffle=True,
                                              seed=sc.seed, drop_last=True)
        else:
            self.sampler = EpochShuffleSampler(len(dataset), seed=sc.seed)
        self.loader = DataLoader(dataset, batch_size=sc.batch_size, sampler=self.sampler, num_workers=sc.num_workers,
                                 collate_fn=collate_faces, drop_last=drop_last, pin_memory=rt.device.type == "cuda")
        self.steps_per_epoch = len(self.loader)
        if sc.max_steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, sc.max_steps_per_epoch)
        if self.steps_per_epoch == 0 and sc.epochs > 0:
            raise G2DError(f"stage {self.stage.name}: no training batch ({len(dataset)} faces, batch size "
                           f"{sc.batch_size}); lower stages.{self.stage.name}.batch_size or add data")

    def _build_optimiser(self) -> None:
        sc, rt = self.sc, self.rt
        groups = param_groups(self.stage.trainable(self.modules), sc.lr, sc.weight_decay)
        self.params = [p for g in groups for p in g["params"]]
        if sc.epochs > 0 and not self.params:
            raise G2DError(f"stage {self.stage.name} has nothing to train")
        self.optimizer = torch.optim.AdamW(groups or [{"params": [torch.zeros(1, requires_grad=True)]}], lr=sc.lr,
                                           weight_decay=sc.weight_decay)
        schedule = WarmupCosine(sc.epochs * self.steps_per_epoch, round(sc.warmup * self.steps_per_epoch),
                                sc.min_lr_ratio)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.amp_dtype = _amp_dtype(sc, rt.device)
        self.scaler = torch.amp.GradScaler(rt.device.type,
                                           enabled=self.amp_dtype == torch.float16 and rt.device.type == "cuda")

    def resume(self, last_path: Path) -> None:
        """Continue from `last.pt`: weights, optimiser, schedule, scaler, epoch, step and history."""
        ckpt = load_checkpoint(last_path, map_location=self.rt.device)
        for name, m in self.modules.items():
            if name not in ckpt["state"]:
                raise RuntimeError(f"{last_path} has no {name!r} weights; delete it or use --force")
            m.load_state_dict(ckpt["state"][name], strict=True)
        for key, target in (("optimizer", self.optimizer), ("scheduler", self.scheduler), ("scaler", self.scaler)):
            if ckpt.get(key) is not None:
                target.load_state_dict(ckpt[key])
        self.start_epoch, self.step = int(ckpt["epoch"]), int(ckpt["step"])
        _warn_if_stale(self.stage, self.run_dir, ckpt["meta"], "partly trained")
        self.history = list(ckpt["meta"].get("history", []))
        if ckpt["meta"].get("config_hash") != config_hash(self.cfg):
            log.warning("resuming %s with a changed config (hash %s -> %s)", self.stage.name,
                        str(ckpt["meta"].get("config_hash"))[:12], config_hash(self.cfg)[:12])
        log.info("resuming stage %s from %s: epoch %d of %d done, step %d", self.stage.name, last_path,
                 self.start_epoch, self.sc.epochs, self.step)

    def begin(self) -> None:
        """Wrap the net for DDP / torch.compile, open the metrics log and fix the checkpoints' metadata."""
        rt, sc = self.rt, self.sc
        self.train_net: nn.Module = self.net
        if rt.distributed and self.params:
            from torch.nn.parallel import DistributedDataParallel

            self.train_net = DistributedDataParallel(
                self.net, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
        if sc.compile:
            self.train_net = torch.compile(self.train_net)
        self.metrics = MetricsLog(self.out / METRICS, keep_epochs=self.start_epoch, enabled=rt.is_main)
        self.base_meta = self._base_meta()
        log.info("stage %s: %d faces, %d steps/epoch x %d epochs, lr %g, device %s%s", self.stage.name,
                 len(self.data.dataset), self.steps_per_epoch, sc.epochs, sc.lr, rt.device,
                 f", {rt.world_size} ranks" if rt.world_size > 1 else "")

    def _base_meta(self) -> Dict[str, Any]:
        cfg, data, init, stage = self.cfg, self.data, self.init, self.stage
        meta = {
            "name": cfg.name,
            "config_hash": config_hash(cfg),
            "train_config": to_dict(cfg),
            "stage_config": dataclasses.asdict(self.sc),
            "data_summary": data.summary,
            "trained_on": data.trained_on,
            "machine": machine_line(),
            "held_out": data.holdout.to_meta(),
            "val_identities": list(data.holdout.held_out),
            "run_id": uuid.uuid4().hex,
            "previous": ({"stage": stage.previous, "config_hash": init["meta"].get("config_hash"),
                          "run_id": init["meta"].get("run_id"), "epoch": init["epoch"]} if init else None),
            "steps_per_epoch": self.steps_per_epoch,
        }
        if init is not None:
            for key in ("class_names", "threshold", "threshold_far"):
                if key in init["meta"]:
                    meta[key] = init["meta"][key]
        return meta

    # -- training --------------------------------------------------------------------------------------------------
    def save(self, path: Path, epoch: int, finished: bool, extra: Optional[Dict[str, Any]] = None) -> None:
        """A checkpoint (rank 0 only); a finished one leaves out the optimiser, schedule and scaler."""
        if not self.rt.is_main:
            return
        meta = {**self.base_meta, **self.stage.extra_meta(self.modules, self.data), "history": self.history,
                **(extra or {})}
        save_checkpoint(path, stage=self.stage.name, model_config=self.modules["model"].config,
                        state={n: m.state_dict() for n, m in self.modules.items()},
                        optimizer=None if finished else self.optimizer,
                        scheduler=None if finished else self.scheduler, scaler=None if finished else self.scaler,
                        epoch=epoch, step=self.step, meta=meta, finished=finished)

    def train_epoch(self, epoch: int) -> None:
        """One epoch: reseed, train `steps_per_epoch` steps, log the means, write `last.pt`."""
        stage, sc, rt = self.stage, self.sc, self.rt
        _seed_everything(sc.seed, epoch)
        self.sampler.set_epoch(epoch)
        self.data.dataset.set_epoch(epoch)
        stage.set_train_mode(self.modules)
        if sc.freeze_bn:
            freeze_batch_norm(self.modules.values())
        t0 = time.time()
        epoch_mean = self._run_steps(epoch, t0)
        means = _reduce_means(epoch_mean, rt)
        self.history.append({"epoch": epoch + 1, **means})
        self.metrics.write("epoch", epoch + 1, self.step, means, self.scheduler.get_last_lr()[0], time.time() - t0)
        if rt.is_main:
            log.info("%s epoch %d/%d done in %.1fs: %s", stage.name, epoch + 1, sc.epochs, time.time() - t0,
                     _fmt_terms(means))
        self.save(self.out / LAST, epoch + 1, finished=False)
        _barrier(rt)

    def _run_steps(self, epoch: int, t0: float) -> _Mean:
        """The optimisation steps of one epoch; returns the epoch's item-weighted means of the loss terms."""
        sc, rt = self.sc, self.rt
        show_bar = rt.is_main and sys.stderr.isatty()
        epoch_mean, window = _Mean(), _Mean()
        self.bad_steps = 0
        bar = tqdm(total=self.steps_per_epoch, desc=f"{self.stage.name} {epoch + 1}/{sc.epochs}",
                   disable=not show_bar, leave=False)
        done = 0
        for batch in self.loader:
            if done >= self.steps_per_epoch:
                break
            self.skipped_images += len(batch.get("skipped", []))
            if "clean" not in batch or batch["clean"].shape[0] < 3:  # all skipped, or too small for BN / relations
                continue
            values = self._step(_to_device(batch, rt.device), epoch)
            if values is None:
                continue
            done += 1
            n = int(batch["clean"].shape[0])
            epoch_mean.add(values, n)
            window.add(values, n)
            bar.update(1)
            if done % sc.log_every == 0 or done == self.steps_per_epoch:
                self._log_window(window, epoch, done, t0, bar, show_bar)
                window = _Mean()
        bar.close()
        return epoch_mean

    def _step(self, batch: Dict[str, Any], epoch: int) -> Optional[Dict[str, float]]:
        """One optimisation step; its loss terms, or None when the loss was not finite (step skipped)."""
        sc = self.sc
        autocast = (torch.autocast(device_type=self.rt.device.type, dtype=self.amp_dtype)
                    if self.amp_dtype is not None else nullcontext())
        with autocast:
            loss, terms = self.train_net(batch)
        if not torch.isfinite(loss):
            self.bad_steps += 1
            log.warning("stage %s epoch %d: non-finite loss at step %d, step skipped", self.stage.name, epoch + 1,
                        self.step)
            self.optimizer.zero_grad(set_to_none=True)
            if self.bad_steps > MAX_BAD_STEPS:
                raise TrainingDivergedError(f"stage {self.stage.name}: loss not finite in {self.bad_steps} steps of "
                                            f"epoch {epoch + 1}; lower stages.{self.stage.name}.lr or turn amp off")
            return None
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if sc.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, sc.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        return {"loss": float(loss.detach()), **{k: float(v) for k, v in terms.items()}}

    def _log_window(self, window: _Mean, epoch: int, done: int, t0: float, bar: Any, show_bar: bool) -> None:
        lr = self.scheduler.get_last_lr()[0]
        means = window.means()
        self.metrics.write("step", epoch + 1, self.step, means, lr, time.time() - t0)
        bar.set_postfix(loss=f"{means['loss']:.4f}")
        if not show_bar and self.rt.is_main:
            log.info("%s epoch %d/%d step %d/%d %s lr %.3g", self.stage.name, epoch + 1, self.sc.epochs, done,
                     self.steps_per_epoch, _fmt_terms(means), lr)

    def finish(self) -> StageResult:
        """Eval mode, the stage's closing work (e.g. threshold calibration), `final.pt`."""
        for m in self.modules.values():
            m.eval()
        extra = self.stage.finish(self.modules, self.data, self.rt)
        final_path = self.out / FINAL
        self.save(final_path, self.sc.epochs, finished=True, extra={**extra, "skipped_images": self.skipped_images})
        _barrier(self.rt)
        log.info("stage %s finished -> %s", self.stage.name, final_path)
        return StageResult(self.stage.name, final_path, finished=True, epochs_done=self.sc.epochs,
                           start_epoch=self.start_epoch, epoch_means=self.history)


def run_stage(stage: Stage, run_dir: Path, force: bool = False, stop_after: Optional[int] = None) -> StageResult:
    """Train `stage` in `<run_dir>/<stage.name>/`: skip when finished (unless `force`), else resume from `last.pt`.

    stop_after: leave after this many epochs have been completed in total (checkpointed in last.pt, final.pt not
    written), e.g. to fit a time slot; the next run resumes.
    Raises StageOrderError when the previous stage has not finished.
    """
    run_dir = Path(run_dir)
    out = stage_dir(run_dir, stage.name)
    final_path, last_path = out / FINAL, out / LAST
    rt = setup_runtime(stage.cfg.device)
    if final_path.is_file() and not force:
        return _finished_result(stage, run_dir, final_path)
    init = _previous_checkpoint(stage, run_dir)
    if force and rt.is_main:
        for p in (final_path, last_path, out / METRICS):
            if p.exists():
                p.unlink()
    _barrier(rt)
    run = _StageRun(stage, run_dir, rt, init)
    if last_path.is_file() and not force:
        run.resume(last_path)
    run.begin()
    sc = stage.stage_cfg
    end_epoch = sc.epochs if stop_after is None else min(sc.epochs, max(stop_after, run.start_epoch))
    for epoch in range(run.start_epoch, end_epoch):
        run.train_epoch(epoch)
    if run.skipped_images:
        log.warning("stage %s: %d unusable images skipped (see warnings above)", stage.name, run.skipped_images)
    if end_epoch < sc.epochs:
        log.info("stage %s stopped after epoch %d of %d (resume by running it again)", stage.name, end_epoch,
                 sc.epochs)
        return StageResult(stage.name, last_path, finished=False, epochs_done=end_epoch, start_epoch=run.start_epoch,
                           epoch_means=run.history)
    return run.finish()


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
