"""`g2d-train` / `python -m train`: configs (YAML/TOML, overrides, errors) and CLI runs on tiny data."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from train.cli import main
from train.config import config_hash, load_config, save_config
from train.config_convert import ConfigError, to_dict

from tiny_faces import make_tiny_data  # tests/train/tiny_faces.py (see tests/conftest.py)

REPO = Path(__file__).resolve().parents[2]
TINY_YAML = REPO / "train" / "configs" / "tiny.yaml"
REAL_YAML = REPO / "train" / "configs" / "g2d-edge-s.yaml"


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_help_lists_every_command() -> None:
    out = subprocess.run([sys.executable, "-m", "train", "--help"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    for command in ("prepare", "teacher", "inpaint", "encoder", "reformer", "classifier", "all", "eval"):
        assert command in out.stdout
    with pytest.raises(SystemExit) as exc:
        main(["reformer", "--help"])
    assert exc.value.code == 0


def test_config_yaml_round_trip_overrides_and_hash(tmp_path: Path) -> None:
    cfg = load_config(TINY_YAML)
    assert cfg.model.embedding_dim == 32 and cfg.stages.reformer.batch_size == 16
    saved = save_config(cfg, tmp_path / "again.yaml")
    again = load_config(saved)
    assert to_dict(again) == to_dict(cfg) and config_hash(again) == config_hash(cfg)

    changed = load_config(TINY_YAML, ["stages.reformer.epochs=3", "data.sources.1.labelled=false",
                                      "stages.reformer.loss={distance: 1.0, angle: 0.0}"])
    assert changed.stages.reformer.epochs == 3 and changed.stages.reformer.loss["angle"] == 0.0
    assert config_hash(changed) != config_hash(cfg)
    moved = load_config(TINY_YAML, ["run_dir=/elsewhere", "device=cpu"])
    assert config_hash(moved) == config_hash(cfg)  # where / on what a run happens does not change the model

    toml = tmp_path / "cfg.toml"
    toml.write_text('name = "t"\n[model]\npreset = "tiny"\n[stages.encoder]\nepochs = 5\nfreeze_decoder = true\n')
    t = load_config(toml)
    assert t.name == "t" and t.stages.encoder.epochs == 5 and t.stages.encoder.freeze_decoder
    assert t.model.width == 0.25  # the preset's value


@pytest.mark.parametrize("overrides, message", [
    (["stages.reformer.epoch=3"], "unknown config key 'stages.reformer.epoch'; did you mean 'stages.reformer.epochs'"),
    (["stages.classifier.finetune=yes please"], "stages.classifier.finetune must be true or false"),
    (["stages.inpaint.lr=-1"], "lr must be > 0"),
    (["stages.reformer.loss={distanse: 1}"], "unknown key(s) ['distanse']"),
    (["data.val_identities=[alice, 3]"], "data.val_identities must be int or a list of str"),
    (["stages.reformer.sources=[nope]"], "unknown data sources ['nope']"),
    (["model.encoder=resnet"], "ModelConfig.encoder must be one of"),
    (["model.preset=huge"], "unknown model preset 'huge'"),
    (["stages.encoder.mask={styles: [balaclava]}"], None),  # caught when data is built (see below)
])
def test_config_errors_name_the_key(overrides, message) -> None:
    if message is None:
        from train.data import AugmentOptions, DataError, FaceAugmenter

        cfg = load_config(TINY_YAML, overrides)
        with pytest.raises(DataError, match="balaclava"):
            FaceAugmenter(AugmentOptions(mask={**cfg.stages.encoder.mask}))
        return
    with pytest.raises(ConfigError) as exc:
        load_config(TINY_YAML, overrides)
    assert message in str(exc.value)


def test_shipped_recipe_loads() -> None:
    cfg = load_config(REAL_YAML)
    assert cfg.model.encoder == "edge" and cfg.model.embedding_dim == 512
    assert [s.name for s in cfg.data.sources] == ["celeba-train", "faces-pool"]
    assert cfg.data.val_identities > 0 and cfg.data.holdout_source == "celeba-train"
    assert cfg.stages.encoder.lr < cfg.stages.inpaint.lr and cfg.stages.encoder.mask_prob == 1.0


def _tiny_args(tmp: Path, run: Path) -> list:
    sets = {"data.sources.0.cache": tmp / "celeb.npz", "data.sources.0.teacher": tmp / "celeb_teacher.npy",
            "data.sources.1.cache": tmp / "pool.npz", "data.sources.1.teacher": tmp / "pool_teacher.npy",
            "device": "cpu"}
    args = ["--config", str(TINY_YAML), "--run-dir", str(run)]
    for key, value in sets.items():
        args += ["--set", f"{key}={value}"]
    return args


def test_cli_trains_stages_and_evaluates(tmp_path: Path, capsys) -> None:
    make_tiny_data(tmp_path)
    run = tmp_path / "run"
    args = _tiny_args(tmp_path, run)
    assert main(["reformer", *args]) == 1  # its predecessors have not run: a readable error, no traceback
    err = capsys.readouterr().err
    assert "g2d-train: error: stage 'reformer' starts from the 'encoder' stage" in err
    assert main(["inpaint", *args]) == 0
    assert (run / "inpaint" / "final.pt").is_file() and (run / "inpaint" / "metrics.csv").is_file()
    assert load_config(run / "config.yaml").data.sources[0].cache == str(tmp_path / "celeb.npz")
    assert "inpaint" in (run / "train.log").read_text()
    assert main(["all", *args]) == 0
    for stage in ("encoder", "reformer", "classifier"):
        assert (run / stage / "final.pt").is_file()
    capsys.readouterr()
    out_json = tmp_path / "eval.json"
    assert main(["eval", *args, "--out", str(out_json)]) == 0
    table = capsys.readouterr().out
    assert "masked-unmasked" in table and "heldout-templates-masked" in table
    results = json.loads(out_json.read_text())
    verification = results["results"]["verification"]
    assert set(verification) == {"unmasked-unmasked", "masked-unmasked", "masked-masked"}
    assert all(0.0 <= v["accuracy"] <= 1.0 and 0.0 <= v["auc"] <= 1.0 for v in verification.values())
    assert results["results"]["identification"]["classifier-clean"]["n_identities"] == 4
    assert results["meta"]["identities"] == 2 and results["meta"]["held_out_only"]


def test_cli_prepare_teacher_and_folder_eval_on_real_photos(tmp_path: Path, celeba_people, capsys) -> None:
    root = tmp_path / "raw"
    for ident, photos in list(celeba_people.items())[:3]:
        (root / ident).mkdir(parents=True)
        for p in photos[:3]:
            shutil.copy(p, root / ident / p.name)
    cache = tmp_path / "c.npz"
    assert main(["prepare", "--root", str(root), "--out", str(cache), "--workers", "1"]) == 0
    assert main(["teacher", "--cache", str(cache), "--out", str(tmp_path / "t.npy"), "--teacher", "random"]) == 0
    emb = np.load(tmp_path / "t.npy")
    assert emb.shape == (9, 128) and np.isfinite(emb).all()

    # evaluate a (random-weight) checkpoint on generated pairs of the image folder, and on LFW-style pairs
    from train.checkpoint import save_checkpoint
    from train.model import ModelConfig, build_model

    cfg = ModelConfig.preset("tiny", embedding_dim=32)
    ckpt = save_checkpoint(tmp_path / "m.pt", stage="reformer", model_config=cfg,
                           state={"model": build_model(cfg).state_dict()}, epoch=1, step=1, meta={})
    (root / "extra").mkdir()
    (root / "extra" / "broken.jpg").write_bytes(b"not an image")
    common = ["--set", "eval.pairs=20", "--set", "eval.folds=2", "--set", "eval.far=[0.2]", "--device", "cpu"]
    out = tmp_path / "folder.json"
    assert main(["eval", "--checkpoint", str(ckpt), "--images", str(root), "--out", str(out), *common]) == 0
    meta = json.loads(out.read_text())["meta"]
    assert meta["mode"] == "folder" and meta["unusable_images"] == 1  # broken.jpg: skipped, counted, no crash
    # LFW layout <root>/<name>/<name>_<NNNN>.jpg with LFW-like names
    people = [d for d in sorted(root.iterdir()) if d.name != "extra"]
    names = ["Ada_Lovelace", "Alan_Turing", "Grace_Hopper"]
    lfw = tmp_path / "lfw"
    for name, folder in zip(names, people):
        (lfw / name).mkdir(parents=True)
        for i, f in enumerate(sorted(folder.iterdir())):
            shutil.copy(f, lfw / name / f"{name}_{i + 1:04d}.jpg")
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(f"{names[0]} 1 2\n{names[1]} 1 3\n{names[0]} 1 {names[1]} 2\n{names[1]} 2 {names[2]} 3\n")
    out = tmp_path / "lfw.json"
    assert main(["eval", "--checkpoint", str(ckpt), "--images", str(lfw), "--pairs", str(pairs), "--out", str(out),
                 *common]) == 0
    res = json.loads(out.read_text())
    assert res["meta"]["mode"] == "lfw-pairs" and res["meta"]["pairs"] == 4 and res["meta"]["unusable_images"] == 0
    assert res["results"]["verification"]["unmasked-unmasked"]["n_genuine"] == 2
