"""Open-set identification (issue 19): the threshold for a target FPIR at every gallery size, its calibration in the
model sidecar, the Recognizer's decision, and recalibration into a copy of the model."""
import dataclasses
import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from g2d_edge.cli import main
from g2d_edge.errors import InputError, ModelError
from g2d_edge.openset import OpenSetRule, build_calibration, check_fpir, fpir_curves, TEMPLATE_GRID
from g2d_edge.sidecar import ModelSidecar


def gaussian_probes(count=400, distractors=2000, seed=0, spread=0.03):
    """Stranger probes whose impostor scores are N(mu_p, 0.1) with a per-probe mean mu_p ~ N(0, spread)."""
    rng = np.random.default_rng(seed)
    return [rng.normal(rng.normal(0.0, spread), 0.1, distractors) for _ in range(count)]


@pytest.fixture(scope="module")
def calibration():
    scores = gaussian_probes()
    return build_calibration({"clean": scores, "masked": [s + 0.05 for s in scores]}, 2000, "space-x", "tests")


def test_threshold_rises_with_the_gallery_and_falls_with_the_rate(calibration):
    rule = OpenSetRule(calibration, 0.01)
    sizes = [1, 10, 100, 1000, 10000]
    thresholds = [rule.threshold(m, "clean") for m in sizes]
    assert all(a < b for a, b in zip(thresholds, thresholds[1:])), thresholds
    assert thresholds[-1] - thresholds[0] > 0.15
    assert OpenSetRule(calibration, 0.001).threshold(100, "clean") > thresholds[2]
    # masked probes score 0.05 higher against everyone: their threshold is 0.05 higher; None takes the higher one
    assert rule.threshold(100, "masked") == pytest.approx(thresholds[2] + 0.05, abs=0.003)
    assert rule.threshold(100) == rule.threshold(100, "masked")


def test_the_threshold_holds_the_target_fpir_on_fresh_strangers(calibration):
    """Galleries drawn from the same population as the calibration: the measured FPIR is the target."""
    rng = np.random.default_rng(7)
    rule = OpenSetRule(calibration, 0.05)
    for size in (10, 300):
        t = rule.threshold(size, "clean")
        means = rng.normal(0.0, 0.03, 4000)
        best = np.max(rng.normal(means[:, None], 0.1, (4000, size)), axis=1)
        assert np.mean(best >= t) == pytest.approx(0.05, abs=0.015), size


def test_fpir_curve_model_matches_sampled_galleries():
    scores = gaussian_probes(count=200, distractors=3000, seed=3)
    curves = fpir_curves(scores, [50])
    rng = np.random.default_rng(1)
    grid = np.linspace(-0.2, 1.0, 1201)
    t = 0.3
    sampled = np.mean([np.max(rng.choice(s, 50)) > t for s in scores for _ in range(20)])
    assert curves[0][np.searchsorted(grid, t)] == pytest.approx(sampled, abs=0.03)


def test_warns_when_the_gallery_grows_past_the_calibrated_range(calibration, caplog):
    rule = OpenSetRule(calibration, 0.01)
    assert rule.max_templates == min(TEMPLATE_GRID[-1], 30 * 2000)
    with caplog.at_level(logging.WARNING, logger="g2d_edge.openset.rule"):
        inside = rule.decide(10, rule.max_templates)
        assert inside.calibrated and not caplog.records
        beyond = rule.decide(300000, 3 * TEMPLATE_GRID[-1])
    assert not beyond.calibrated and beyond.threshold >= inside.threshold
    assert any("more than the open-set calibration reaches" in r.getMessage() for r in caplog.records)
    assert "beyond the calibrated range" in beyond.describe()
    # a calibration from few impostor templates (a small folder of photos) reaches less far
    small = build_calibration({"clean": gaussian_probes(20, 20), "masked": gaussian_probes(20, 20)}, 20, "s", "t")
    assert OpenSetRule(small).max_templates == 600 and not OpenSetRule(small).decide(100, 1000).calibrated


def test_target_fpir_is_checked():
    for bad in (0, 0.5, -0.01, True, "0.01", None):
        with pytest.raises(InputError, match="target_fpir"):
            check_fpir(bad)
    assert check_fpir(0.001) == 0.001


# ------------------------------------------------------------------------------------------------ sidecar
def sidecar_dict(calibration, space="space-x"):
    return {"name": "m", "embedding_dim": 8, "num_classes": 0, "embedding_space": space, "weights_sha256": "",
            "open_set": calibration.to_dict()}


def test_sidecar_round_trip_keeps_the_calibration(calibration, tmp_path):
    sidecar = ModelSidecar.from_dict(sidecar_dict(calibration))
    path = sidecar.save(tmp_path / "m.json")
    loaded = ModelSidecar.load(path)
    assert loaded.open_set == calibration
    # a sidecar without the field (every model before issue 19) still loads, uncalibrated
    data = sidecar_dict(calibration)
    del data["open_set"]
    assert ModelSidecar.from_dict(data).open_set is None


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["thresholds"].pop("masked"), "thresholds"),
    (lambda d: d["thresholds"]["clean"].reverse(), "thresholds"),  # falls as the gallery grows
    (lambda d: d["thresholds"]["clean"][0].pop(), "thresholds"),  # wrong shape
    (lambda d: d["thresholds"]["clean"][0].__setitem__(0, 1.5), "thresholds"),
    (lambda d: d.__setitem__("templates", [5, 1] + d["templates"][2:]), "templates"),
    (lambda d: d.__setitem__("fpir", [0.0] + d["fpir"][1:]), "fpir"),
    (lambda d: d.__setitem__("measured_templates", 0), "measured_templates"),
    (lambda d: d.__setitem__("fusion", "median"), "fusion"),
    (lambda d: d.pop("embedding_space"), "missing"),
])
def test_sidecar_refuses_a_broken_calibration(calibration, edit, field, tmp_path):
    data = sidecar_dict(calibration)
    edit(data["open_set"])
    path = tmp_path / "m.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match=field) as err:
        ModelSidecar.load(path)
    assert "open_set" in str(err.value) and "calibrat" in str(err.value)


def test_a_mean_calibration_counts_identities_and_sets_the_recognizers_search(calibration):
    """A "mean" calibration (one fused template per identity) is looked up by identities, a "max" one by templates;
    the Recognizer's thresholds carry the fusion its gallery search uses."""
    from g2d_edge.openset.rule import Thresholds

    mean = dataclasses.replace(calibration, fusion="mean")
    sidecar = ModelSidecar.from_dict(sidecar_dict(mean))
    rule, max_rule = OpenSetRule(sidecar.open_set), OpenSetRule(calibration)
    assert (rule.unit, max_rule.unit) == ("identities", "templates")
    decision = rule.decide(10, 50, "clean")
    assert decision.threshold == rule.threshold(10, "clean") < max_rule.decide(10, 50, "clean").threshold
    assert (decision.identities, decision.templates) == (10, 50)
    assert Thresholds(sidecar, None, 0.01).fusion == "mean"
    assert Thresholds(ModelSidecar.from_dict(sidecar_dict(calibration)), None, 0.01).fusion == "max"
    with pytest.raises(ModelError, match="fusion"):
        dataclasses.replace(calibration, fusion="median")


def test_sidecar_refuses_another_models_calibration(calibration):
    with pytest.raises(ModelError, match="embedding space"):
        ModelSidecar.from_dict(sidecar_dict(calibration, space="another-model"))


def test_shipped_models_are_calibrated():
    from g2d_edge.shipped import SHIPPED_MODELS, shipped_model_path

    for name in SHIPPED_MODELS:
        sidecar = ModelSidecar.load(shipped_model_path(name).with_suffix(".json"))
        assert sidecar.open_set is not None, name
        rule = OpenSetRule(sidecar.open_set)
        assert rule.threshold(10000, "clean") > rule.threshold(10, "clean") > sidecar.threshold - 0.1


# ------------------------------------------------------------------------------------------------ recognizer
@pytest.fixture(scope="module")
def calibrated_model(tiny_onnx_model, tmp_path_factory):
    """A copy of the tiny model with an open-set calibration made from its own embedding space."""
    folder = tmp_path_factory.mktemp("calibrated")
    model = folder / "tiny.onnx"
    shutil.copyfile(tiny_onnx_model, model)
    sidecar = ModelSidecar.load(tiny_onnx_model.with_suffix(".json"))
    scores = gaussian_probes(count=100, distractors=1000)
    calibration = build_calibration({"clean": scores, "masked": scores}, 1000, sidecar.embedding_space, "tests")
    dataclasses.replace(sidecar, open_set=calibration).save(model.with_suffix(".json"))
    return model


def random_templates(rng, count, dim):
    v = rng.normal(size=(count, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_recognizer_threshold_follows_the_gallery(calibrated_model, people):
    from g2d_edge import Recognizer

    rng = np.random.default_rng(0)
    with Recognizer(model=calibrated_model) as rec:
        dim = rec.embedding_dim
        seen = []
        for count in (1, 30, 1000):
            while len(rec.gallery) < count:
                rec.gallery.add(f"p{len(rec.gallery)}", random_templates(rng, 2, dim))
            decision = rec.decision()
            assert decision.source == "open-set" and decision.fpir == 0.01
            assert (decision.identities, decision.templates) == (count, 2 * count)
            assert rec.threshold == decision.threshold
            seen.append(decision.threshold)
        assert seen[0] < seen[1] < seen[2]
        # verify judges one comparison: the rule's threshold for a one-template gallery, whatever the gallery holds
        assert rec.verify_threshold == pytest.approx(rec.thresholds.rule.threshold(1))
        assert rec.verify_threshold < rec.threshold
        assert "target FPIR 0.01" in rec.decision("clean").describe()


def mean_copy(model: Path, folder: Path) -> Path:
    """A copy of `model` whose calibration is made for the "mean" search."""
    copy = folder / "mean.onnx"
    shutil.copyfile(model, copy)
    sidecar = ModelSidecar.load(model.with_suffix(".json"))
    dataclasses.replace(sidecar, open_set=dataclasses.replace(sidecar.open_set, fusion="mean")).save(
        copy.with_suffix(".json"))
    return copy


def test_the_recognizer_names_by_the_search_its_calibration_was_made_for(calibrated_model, people, tmp_path):
    """ann's two templates straddle her face, bob's one template is near it: by best template bob wins, by fused
    template ann does. A model calibrated for "mean" names ann; the same model calibrated for "max" names bob."""
    from g2d_edge import Recognizer, RecognizerOptions
    from runtime_helpers import read

    photo = people[sorted(people)[0]][0]
    mean_model = mean_copy(calibrated_model, tmp_path)
    names = {}
    for model in (calibrated_model, mean_model):
        with Recognizer(model=model, options=RecognizerOptions(threshold=0.5, mask_flag=False)) as rec:
            face = rec.identify(read(photo))[0].embedding.astype(np.float64)
            side = np.random.default_rng(5).normal(size=face.shape)
            side -= (side @ face) * face
            side /= np.linalg.norm(side)
            rec.gallery.add("ann", np.stack([0.6 * face + 0.8 * side, 0.6 * face - 0.8 * side]))
            rec.gallery.add("bob", 0.8 * face + 0.6 * side)
            found = rec.identify(read(photo))[0]
            names[rec.thresholds.fusion] = (found.name, round(found.score, 3))
            decision = rec.decision()
            assert decision.search == decision.to_dict()["search"] == rec.thresholds.fusion
            assert ("fused templates" in decision.describe()) == (decision.search == "mean")
    assert names == {"max": ("bob", 0.8), "mean": ("ann", 1.0)}


def test_recognition_carries_its_fpir_and_a_manual_threshold_still_wins(calibrated_model, people):
    from g2d_edge import Recognizer, RecognizerOptions
    from runtime_helpers import read

    name = sorted(people)[0]
    with Recognizer(model=calibrated_model, options=RecognizerOptions(target_fpir=0.001)) as rec:
        rec.enroll(name, people[name][0])
        face = rec.identify(read(people[name][0]))[0]
        assert face.name == name and face.fpir == 0.001
        assert face.threshold == pytest.approx(rec.decision("masked" if face.masked else "clean").threshold)
        assert face.to_dict()["fpir"] == 0.001
        rec.threshold = 0.99999  # by hand: above the score of any other photo
        assert rec.decision().source == "manual" and rec.threshold == 0.99999
        other = rec.identify(read(people[name][1]))[0]
        assert other.name is None and other.fpir is None and other.threshold == 0.99999
        rec.threshold = None  # back to the open-set rule
        assert rec.decision().source == "open-set"
        rec.gallery.threshold = 0.2  # the gallery's own threshold comes before the rule
        assert rec.decision().source == "gallery" and rec.threshold == 0.2


def test_uncalibrated_model_keeps_its_sidecar_threshold(tiny_onnx_model):
    from g2d_edge import Recognizer

    with Recognizer(model=tiny_onnx_model) as rec:
        assert rec.thresholds.rule is None
        assert rec.decision().source == "model" and rec.threshold == pytest.approx(0.42)


def test_identify_json_shows_the_decision(capsys, calibrated_model, people, tmp_path):
    gallery = tmp_path / "g.npz"
    name = sorted(people)[0]
    assert main(["enroll", name, str(people[name][0]), "--gallery", str(gallery), "--model", str(calibrated_model),
                 "--json"]) == 0
    capsys.readouterr()
    assert main(["identify", str(people[name][0]), "--gallery", str(gallery), "--model", str(calibrated_model),
                 "--json", "--target-fpir", "0.001"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["decision"]["source"] == "open-set" and out["decision"]["fpir"] == 0.001
    assert out["decision"]["identities"] == 1 and out["faces"][0]["fpir"] == 0.001


# ------------------------------------------------------------------------------------------------ recalibration
def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_recalibration_writes_a_copy_never_the_model(capsys, calibrated_model, celeba_people, tmp_path):
    people = tmp_path / "people"
    for name, photos in list(celeba_people.items())[:3]:
        (people / name).mkdir(parents=True)
        for photo in photos[:3]:
            shutil.copyfile(photo, people / name / photo.name)
    before = {p: digest(p) for p in (calibrated_model, calibrated_model.with_suffix(".json"))}
    out = tmp_path / "copy" / "my-camera.json"
    code = main(["calibrate", str(people), "--model", str(calibrated_model), "-o", str(out), "--no-masks", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["photos"] == 9 and result["people"] == 3
    assert result["cohort_photos"] == {"clean": 9, "masked": 9} and result["cohort_lowest_fpir"] == pytest.approx(2 / 9)
    assert {p: digest(p) for p in before} == before  # the source model and sidecar are untouched
    copy = ModelSidecar.load(out)
    assert copy.open_set is not None and "9 photos of 3 people" in copy.open_set.source
    assert copy.open_set.measured_templates == 6
    source = ModelSidecar.load(calibrated_model.with_suffix(".json")).open_set
    assert copy.open_set.thresholds["masked"] == source.thresholds["masked"]  # --no-masks keeps the masked table
    # the folder's photos become the stranger cohort the SDK measures galleries with (the source had none, so the
    # clean photos stand in for masked ones)
    cohort = copy.open_set.cohort
    assert cohort is not None and cohort.people == 3 and cohort.embeddings("clean").shape[0] == 9
    assert np.array_equal(cohort.embeddings("masked"), cohort.embeddings("clean"))
    assert digest(out.with_suffix(".onnx")) == before[calibrated_model]
    # the copy is a model like any other
    from g2d_edge import Recognizer

    with Recognizer(model=out.with_suffix(".onnx")) as rec:
        assert rec.decision().source == "open-set"


def test_recalibration_keeps_the_models_search(capsys, calibrated_model, celeba_people, tmp_path):
    """A model that searches fused templates is recalibrated against fused templates of the other people's photos
    (1, 2 and 3 of their 3 photos: 4 + 4 + 1 draws each, 18 for the two others), and its copy keeps "mean"."""
    people = tmp_path / "people"
    for name, photos in list(celeba_people.items())[:3]:
        (people / name).mkdir(parents=True)
        for photo in photos[:3]:
            shutil.copyfile(photo, people / name / photo.name)
    out = tmp_path / "copy" / "my-camera.json"
    code = main(["calibrate", str(people), "--model", str(mean_copy(calibrated_model, tmp_path)), "-o", str(out),
                 "--no-masks", "--json"])
    capsys.readouterr()
    copy = ModelSidecar.load(out).open_set
    assert code == 0 and copy.fusion == "mean" and copy.measured_templates == 18


def test_recalibration_refuses_to_overwrite_the_model(capsys, calibrated_model, celeba_people, tmp_path):
    from g2d_edge.shipped import MODELS_DIR

    before = digest(calibrated_model.with_suffix(".json"))
    for target in (calibrated_model.with_suffix(".json"), MODELS_DIR / "g2d-edge-m.json"):
        code = main(["calibrate", str(tmp_path), "--model", str(calibrated_model), "-o", str(target)])
        assert code == 1 and "must not overwrite" in capsys.readouterr().err
    assert digest(calibrated_model.with_suffix(".json")) == before
