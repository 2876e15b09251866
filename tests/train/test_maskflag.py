"""train/maskflag.py: options from the command line, what the mask-region augmentation may touch, and an exported
classifier of any width loads in the runtime."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from g2d_edge.errors import InputError
from g2d_edge.masks import MaskFlag
from train.maskflag import (MaskFlagEnsemble, MaskFlagNet, MaskFlagOptions, augment_mask_region, export_mask_flag,
                            mask_flag_options)


def test_options_from_key_value_strings():
    options = mask_flag_options(["widths=8,16", "input_pool=false", "print_prob=0.25"], epochs=2)
    assert options.widths == (8, 16) and options.input_pool is False
    assert options.print_prob == pytest.approx(0.25) and options.epochs == 2
    with pytest.raises(ValueError, match="KEY=VALUE"):
        mask_flag_options(["no_such_field=1"])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        mask_flag_options(["print_prob"])
    with pytest.raises(InputError, match="MaskFlagOptions.print_prob"):
        mask_flag_options(["print_prob=high"])
    with pytest.raises(InputError, match="MaskFlagOptions.print_prob"):
        mask_flag_options(["print_prob=2"])


def test_the_augmentation_changes_only_the_mask_region():
    generator = torch.Generator().manual_seed(0)
    faces = torch.rand(6, 3, 112, 112, generator=generator) * 2 - 1
    region = torch.zeros(6, 112, 112, dtype=torch.uint8)
    region[:, 60:100, 20:90] = 1
    options = MaskFlagOptions(recolour_prob=1.0, print_prob=1.0, mosaic_prob=1.0)
    out = augment_mask_region(faces, region, options, generator)
    outside = region.unsqueeze(1).expand_as(faces) == 0
    assert torch.equal(out[outside], faces[outside])
    assert (out - faces).abs()[~outside].mean() > 0.05
    assert out.min() >= -1.0001 and out.max() <= 1.0001
    untouched = augment_mask_region(faces, region, MaskFlagOptions(recolour_prob=0, print_prob=0, mosaic_prob=0),
                                    generator)
    assert torch.equal(untouched, faces)


def test_a_wider_full_resolution_classifier_exports_and_runs_in_the_runtime(tmp_path):
    torch.manual_seed(0)
    net = MaskFlagNet(widths=(8, 16, 16, 24, 32), input_pool=False).eval()
    path = export_mask_flag(net, tmp_path / "flag.onnx", threshold=0.4)
    flag = MaskFlag(path)
    faces = np.random.default_rng(0).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    scores = flag.scores(faces)
    with torch.no_grad():
        want = net(torch.from_numpy(faces)).numpy()
    assert flag.threshold == pytest.approx(0.4)
    np.testing.assert_allclose(scores, want, atol=1e-4)


def test_an_ensemble_exports_the_mean_of_its_members_probabilities(tmp_path):
    torch.manual_seed(1)
    nets = [MaskFlagNet(widths=(8, 8, 16, 16)).eval() for _ in range(3)]
    ensemble = MaskFlagEnsemble(nets).eval()
    faces = np.random.default_rng(1).integers(0, 256, (4, 112, 112, 3), dtype=np.uint8)
    with torch.no_grad():
        want = torch.stack([net(torch.from_numpy(faces)) for net in nets]).mean(dim=0).numpy()
    scores = MaskFlag(export_mask_flag(ensemble, tmp_path / "ensemble.onnx")).scores(faces)
    np.testing.assert_allclose(scores, want, atol=1e-4)
    with pytest.raises(InputError, match="MaskFlagOptions.members"):
        MaskFlagOptions(members=0)


def test_real_faces_join_each_batch_with_their_labels():
    from train.maskflag import _batch_inputs
    from train.model import Preprocess

    generator = torch.Generator().manual_seed(0)
    faces = torch.randint(0, 256, (4, 112, 112, 3), dtype=torch.uint8, generator=generator)
    batch = {"clean": faces, "masked": faces, "region": torch.zeros(4, 112, 112, dtype=torch.uint8)}
    real = (torch.full((3, 112, 112, 3), 200, dtype=torch.uint8), torch.tensor([1.0, 1.0, 0.0]))
    x, y = _batch_inputs(batch, Preprocess(), MaskFlagOptions(real_per_batch=6, low_res_prob=0.0), generator, real)
    assert x.shape == (14, 3, 112, 112) and y[:8].tolist() == [0.0] * 4 + [1.0] * 4
    assert set(y[8:].tolist()) <= {0.0, 1.0} and len(y) == 14
    x, y = _batch_inputs(batch, Preprocess(), MaskFlagOptions(real_per_batch=0), generator, real)
    assert x.shape[0] == 8
    x, y = _batch_inputs(batch, Preprocess(), MaskFlagOptions(), generator, None)
    assert x.shape[0] == 8


def test_the_threshold_from_the_training_part_maximises_balanced_accuracy():
    from train.maskflag import choose_threshold

    rates = {0.2: (0.99, 0.90), 0.3: (0.97, 0.97), 0.4: (0.95, 0.99), 0.5: (0.90, 0.99)}
    assert choose_threshold(rates) == 0.3
    assert choose_threshold({0.2: (1.0, 0.9), 0.3: (0.95, 0.95)}) == 0.2  # ties: the lowest
