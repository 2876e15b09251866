"""The greedy stages end to end on tiny generated data: losses fall, checkpoints reload exactly, resume, skip."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from train.checkpoint import load_checkpoint, load_model, save_checkpoint
from train.config import TrainConfig, config_hash
from train.config_convert import from_dict
from train.stages import (FINAL, LAST, METRICS, StageOrderError, get_stage, read_metrics, run_all, run_named,
                          stage_dir)
from train.stages.common import MetricsLog

from tiny_faces import make_tiny_data, tiny_config  # tests/train/tiny_faces.py (see tests/conftest.py)

STAGES = ("inpaint", "encoder", "reformer", "classifier")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_data(tmp_path_factory.mktemp("tiny"))


def _cfg(tiny: Path, run: str, **stage_overrides) -> TrainConfig:
    data = tiny_config(tiny, **stage_overrides)
    data["run_dir"] = str(tiny / run)
    return from_dict(TrainConfig, data)


@pytest.fixture(scope="module")
def trained(tiny: Path):
    cfg = _cfg(tiny, "run")
    results = run_all(cfg)
    return cfg, Path(cfg.run_dir), results


def test_all_stages_finish_and_every_loss_falls(trained) -> None:
    cfg, run_dir, results = trained
    assert [r.stage for r in results] == list(STAGES)
    assert all(r.finished and not r.skipped for r in results)
    for stage in STAGES:
        epochs = read_metrics(run_dir / stage / METRICS)
        assert [int(e["epoch"]) for e in epochs] == list(range(1, cfg.stages.get(stage).epochs + 1))
        first, last = epochs[0]["loss"], epochs[-1]["loss"]
        assert last < first, f"{stage}: loss did not fall ({first:.4f} -> {last:.4f})"
        assert (run_dir / stage / FINAL).is_file() and (run_dir / stage / LAST).is_file()
    header = (run_dir / "encoder" / METRICS).read_text().splitlines()[0].split(",")
    assert header[:4] == ["kind", "epoch", "step", "loss"] and header[-2:] == ["lr", "time"]
    assert {"l1", "ssim", "consistency"} <= set(header)
    assert {"distance", "angle"} <= set((run_dir / "reformer" / METRICS).read_text().splitlines()[0].split(","))


def test_checkpoints_reload_bit_exactly(trained, tmp_path: Path) -> None:
    _, run_dir, _ = trained
    for stage in STAGES:
        ckpt = load_checkpoint(run_dir / stage / FINAL)
        model, meta = load_model(run_dir / stage / FINAL)
        assert not model.training and meta["stage"] == stage
        saved = ckpt["state"]["model"]
        loaded = model.state_dict()
        assert saved.keys() == loaded.keys()
        assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    # save -> load round trip of a checkpoint with optimizer state (last.pt) is exact as well
    last = load_checkpoint(run_dir / "inpaint" / LAST)
    model, _ = load_model(run_dir / "inpaint" / LAST)
    again = save_checkpoint(tmp_path / "copy.pt", stage="inpaint", model_config=model.config,
                            state=last["state"], epoch=last["epoch"], step=last["step"], meta=last["meta"])
    copy = load_checkpoint(again)
    for name, sd in last["state"].items():
        assert all(torch.equal(sd[k], copy["state"][name][k]) for k in sd)
    assert copy["meta"]["config_hash"] == last["meta"]["config_hash"]


def test_frozen_parts_stay_exactly_as_the_previous_stage_left_them(trained) -> None:
    _, run_dir, _ = trained
    enc = load_checkpoint(run_dir / "encoder" / FINAL)["state"]["model"]
    ref = load_checkpoint(run_dir / "reformer" / FINAL)["state"]["model"]
    cls = load_checkpoint(run_dir / "classifier" / FINAL)["state"]["model"]
    inp = load_checkpoint(run_dir / "inpaint" / FINAL)["state"]["model"]
    enc_keys = [k for k in enc if k.startswith("encoder.")]
    ref_keys = [k for k in ref if k.startswith("reformer.")]
    assert all(torch.equal(enc[k], ref[k]) for k in enc_keys)  # reformer stage: encoder frozen (incl. BN stats)
    assert all(torch.equal(ref[k], cls[k]) for k in enc_keys + ref_keys)  # classifier stage: only the FC learns
    assert not all(torch.equal(inp[k], enc[k]) for k in enc_keys)  # the encoder stage did finetune the encoder
    assert not all(torch.equal(enc[k], ref[k]) for k in ref_keys)  # the reformer stage did train the reformer
    assert "decoder" in load_checkpoint(run_dir / "encoder" / FINAL)["state"]


def test_classifier_covers_training_identities_only(trained) -> None:
    cfg, run_dir, _ = trained
    model, meta = load_model(run_dir / "classifier" / FINAL)
    held = meta["held_out"]["identities"]
    assert len(held) == 2 and meta["held_out"]["source"] == "celeb"
    everyone = {f"person{k:02d}" for k in range(6)}
    assert meta["class_names"] == sorted(everyone - set(held))
    assert model.config.num_classes == 4 == model.classifier.out_features
    emb, logits = model(torch.zeros(2, 3, 112, 112))
    assert emb.shape == (2, 32) and logits.shape == (2, 4)
    assert np.isfinite(meta["threshold"]) and "masked-unmasked" in meta["validation"]
    for stage in STAGES:  # the same people are held out of every stage, and it is recorded
        m = load_checkpoint(run_dir / stage / FINAL)["meta"]
        assert m["held_out"]["identities"] == held and m["config_hash"] == config_hash(cfg)
        assert "cores" in m["machine"]  # where it was trained
    summary = load_checkpoint(run_dir / "reformer" / FINAL)["meta"]["data_summary"]["sources"]
    assert summary["celeb"]["held_out_rows"] == 12  # 2 people x 6 photos never distilled on
    assert summary["celeb"]["rows"] + summary["celeb"]["teacher_failed_rows"] == 24
    assert summary["pool"]["rows"] == 36


def test_finished_stage_is_skipped(trained) -> None:
    cfg, run_dir, _ = trained
    final = run_dir / "encoder" / FINAL
    before = final.stat().st_mtime_ns
    result = run_named("encoder", cfg, run_dir)
    assert result.skipped and result.finished and final.stat().st_mtime_ns == before


def test_stage_refuses_to_start_before_its_predecessor(tiny: Path) -> None:
    cfg = _cfg(tiny, "empty")
    with pytest.raises(StageOrderError, match="g2d-train encoder"):
        run_named("reformer", cfg)


def test_resume_continues_after_the_last_finished_epoch(trained, tiny: Path) -> None:
    ref_cfg, ref_dir, _ = trained
    cfg = _cfg(tiny, "resume")
    first = run_named("inpaint", cfg, stop_after=1)
    assert not first.finished and first.epochs_done == 1
    out = stage_dir(Path(cfg.run_dir), "inpaint")
    assert not (out / FINAL).exists() and load_checkpoint(out / LAST)["epoch"] == 1
    second = run_named("inpaint", cfg)
    assert second.finished and second.start_epoch == 1  # continued with epoch 2, not epoch 1
    epochs = [int(e["epoch"]) for e in read_metrics(out / METRICS)]
    assert epochs == list(range(1, cfg.stages.inpaint.epochs + 1))  # every epoch logged once
    # identical to the uninterrupted run of the same config (data order, masks and RNG depend on the epoch only)
    a = load_checkpoint(out / FINAL)["state"]
    b = load_checkpoint(ref_dir / "inpaint" / FINAL)["state"]
    for name in ("model", "decoder"):
        assert all(torch.equal(a[name][k], b[name][k]) for k in a[name]), name


def test_force_retrains_a_finished_stage_and_later_stages_warn(trained, tiny: Path, caplog) -> None:
    cfg, run_dir, _ = trained
    run = tiny / "forced"
    for stage in ("inpaint", "encoder"):
        shutil.copytree(run_dir / stage, run / stage)
    cfg = _cfg(tiny, "forced", epochs=1)
    result = run_named("inpaint", cfg, force=True)
    assert result.finished and not result.skipped and result.start_epoch == 0
    assert len(read_metrics(run / "inpaint" / METRICS)) == 1 and load_checkpoint(run / "inpaint" / FINAL)["epoch"] == 1
    caplog.clear()
    assert run_named("encoder", cfg).skipped  # still skipped, but it now sits on a stale inpaint run
    assert "retrained since" in caplog.text


def test_distillation_loss_is_zero_exactly_for_identical_relations(trained) -> None:
    cfg, run_dir, _ = trained
    stage = get_stage("reformer", cfg)
    data = stage.build_data()
    modules = stage.initial_modules(load_checkpoint(run_dir / "encoder" / FINAL))
    loss = stage.extra_modules(modules, data)["distillation"]
    assert torch.allclose(loss.teacher_mean, torch.from_numpy(data.teacher_mean))
    teacher = torch.randn(10, 128, generator=torch.Generator().manual_seed(0))
    from train.losses import center_teacher

    student = center_teacher(teacher, loss.teacher_mean)  # what the centred teacher looks like
    assert float(loss(student, teacher)) == 0.0
    assert float(loss(student * 3.0, teacher)) < 1e-6  # relations are scale-free
    other = torch.randn(10, 32, generator=torch.Generator().manual_seed(1))
    assert float(loss(torch.nn.functional.normalize(other, dim=1), teacher)) > 1e-3


def test_metrics_log_drops_epochs_after_the_resume_point(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    log = MetricsLog(path, keep_epochs=0)
    for epoch in (1, 2, 3):
        log.write("epoch", epoch, epoch * 10, {"loss": 1.0 / epoch}, 0.1, 1.0)
    log.write("step", 4, 41, {"loss": 0.2, "extra": 1.0}, 0.1, 1.0)  # a new column rewrites the header
    assert [int(r["epoch"]) for r in read_metrics(path)] == [1, 2, 3]
    assert "extra" in path.read_text().splitlines()[0]
    MetricsLog(path, keep_epochs=2)
    assert [int(r["epoch"]) for r in read_metrics(path)] == [1, 2]
    assert read_metrics(path, kind="step") == []


def test_reformer_can_let_the_encoder_adapt_when_asked(trained, tiny: Path) -> None:
    _, ref_dir, _ = trained
    cfg = _cfg(tiny, "adapt")
    cfg.stages.reformer.encoder_lr_scale = 0.1
    run_dir = Path(cfg.run_dir)
    for stage in ("inpaint", "encoder"):
        shutil.copytree(ref_dir / stage, run_dir / stage)
    assert run_named("reformer", cfg).finished
    enc = load_checkpoint(run_dir / "encoder" / FINAL)["state"]["model"]
    ref = load_checkpoint(run_dir / "reformer" / FINAL)["state"]["model"]
    weights = [k for k in enc if k.startswith("encoder.") and k.endswith("weight")]
    assert not all(torch.equal(enc[k], ref[k]) for k in weights)  # the encoder moved ...
    frozen = load_checkpoint(ref_dir / "reformer" / FINAL)["state"]["model"]
    assert all(torch.equal(enc[k], frozen[k]) for k in weights)  # ... where the default run kept it frozen


def test_inpaint_with_a_frozen_encoder_trains_the_decoder_only(tiny: Path) -> None:
    cfg = _cfg(tiny, "frozen-encoder", epochs=1)
    cfg.stages.inpaint.encoder_lr_scale = 0.0
    run_dir = Path(cfg.run_dir)
    assert run_named("inpaint", cfg).finished
    first = load_checkpoint(run_dir / "inpaint" / LAST)
    torch.manual_seed(0)
    cfg2 = _cfg(tiny, "frozen-encoder-ref", epochs=1)
    cfg2.stages.inpaint.epochs = 0  # the same fresh weights, never trained
    run_named("inpaint", cfg2)
    fresh = load_checkpoint(Path(cfg2.run_dir) / "inpaint" / FINAL)
    enc = [k for k in fresh["state"]["model"] if k.startswith("encoder.")]
    assert all(torch.equal(fresh["state"]["model"][k], first["state"]["model"][k]) for k in enc)
    dec = [k for k in fresh["state"]["decoder"] if k.endswith("weight")]
    assert not all(torch.equal(fresh["state"]["decoder"][k], first["state"]["decoder"][k]) for k in dec)


def test_encoder_consistency_can_target_the_initial_encoder_with_frozen_batch_norm(trained, tiny: Path) -> None:
    _, ref_dir, _ = trained
    cfg = _cfg(tiny, "initial-target")
    cfg.stages.encoder.consistency_target = "initial"
    cfg.stages.encoder.freeze_bn = True
    run_dir = Path(cfg.run_dir)
    shutil.copytree(ref_dir / "inpaint", run_dir / "inpaint")
    assert run_named("encoder", cfg).finished
    before = load_checkpoint(run_dir / "inpaint" / FINAL)["state"]["model"]
    after = load_checkpoint(run_dir / "encoder" / FINAL)["state"]
    target = after["target_encoder"]
    # the target is the encoder as the stage found it, and it stayed so
    assert all(torch.equal(target[k], before[f"encoder.{k}"]) for k in target)
    moved = [k for k in target if k.endswith("weight") and not torch.equal(after["model"][f"encoder.{k}"], target[k])]
    assert moved, "the encoder did not learn"
    stats = [k for k in target if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(after["model"][f"encoder.{k}"], target[k]) for k in stats)  # BN frozen


def test_distillation_without_centring_compares_with_the_raw_teacher() -> None:
    from train.losses import RelationDistillationLoss, RelationWeights

    teacher = torch.tensor([[1.0, 1.0], [1.0, 0.9], [0.9, 1.0]])
    mean = teacher.mean(0)
    raw = RelationDistillationLoss(RelationWeights(distance=0, angle=0, similarity=0, cosine=1, center=False), mean)
    centred = RelationDistillationLoss(RelationWeights(distance=0, angle=0, similarity=0, cosine=1), mean)
    assert float(raw(teacher, teacher)) == pytest.approx(0.0, abs=1e-6)  # the student *is* the teacher
    assert float(centred(teacher, teacher)) > 0.5  # centring moves the target away from the raw vectors
