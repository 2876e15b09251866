"""The `g2d` CLI: JSON round trip enroll -> gallery list -> identify -> verify -> rename/remove, and clean errors."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from g2d_edge.cli import main
from g2d_edge.gallery import Gallery
from runtime_helpers import repo_env


def run_json(capsys, *argv):
    code = main([*map(str, argv), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def run_error(capsys, *argv):
    code = main(list(map(str, argv)))
    out = capsys.readouterr()
    assert code == 1
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("g2d: error: "), out.err
    assert "Traceback" not in out.err
    return lines[0]


def test_cli_json_round_trip(capsys, tmp_path, tiny_onnx_model, people):
    gallery = tmp_path / "people.npz"
    names = list(people)
    for name in names:
        res = run_json(capsys, "enroll", name, *people[name][:2], "--gallery", gallery, "--model", tiny_onnx_model)
        assert res["added"] == 2 and res["templates"] == 2 and res["gallery"] == str(gallery)
    assert res["identities"] == len(names)

    listing = run_json(capsys, "gallery", "list", "--gallery", gallery)
    assert [(p["name"], p["templates"]) for p in listing["identities"]] == [(n, 2) for n in sorted(names)]
    assert listing["embedding_space"] == Gallery.load(gallery).embedding_space

    found = run_json(capsys, "identify", people[names[1]][0], "--gallery", gallery, "--model", tiny_onnx_model,
                     "--top-k", "2")
    assert len(found["faces"]) == 1
    face = found["faces"][0]
    assert face["name"] == names[1] and face["score"] == pytest.approx(1.0, abs=1e-3)
    assert len(face["matches"]) == 2 and len(face["box"]) == 4

    # a threshold above every score a non-enrolled photo gets turns its face into an unknown
    other = run_json(capsys, "identify", people[names[0]][2], "--gallery", gallery, "--model", tiny_onnx_model,
                     "--threshold", "0.99999")
    assert other["faces"][0]["name"] is None and other["threshold"] == pytest.approx(0.99999)

    same = run_json(capsys, "verify", people[names[0]][0], people[names[0]][0], "--model", tiny_onnx_model)
    assert same["same"] is True and same["score"] == pytest.approx(1.0, abs=1e-3)

    renamed = run_json(capsys, "gallery", "rename", names[0], "zoe", "--gallery", gallery)
    assert renamed == {"renamed": names[0], "to": "zoe"}
    removed = run_json(capsys, "gallery", "remove", names[1], "--gallery", gallery)
    assert removed["templates"] == 2 and removed["identities"] == len(names) - 1
    assert Gallery.load(gallery).names() == sorted(["zoe"] + names[2:])

    # plain-text output
    assert main(["gallery", "list", "--gallery", str(gallery)]) == 0
    assert "zoe  (2 templates)" in capsys.readouterr().out


def test_cli_errors_are_one_line(capsys, tmp_path, tiny_onnx_model, people):
    photo = next(iter(people.values()))[0]
    gallery = tmp_path / "g.npz"
    assert "not found" in run_error(capsys, "identify", photo, "--gallery", gallery, "--model", tiny_onnx_model)
    Gallery().save(gallery)
    assert "is empty" in run_error(capsys, "identify", photo, "--gallery", gallery, "--model", tiny_onnx_model)
    assert "image not found" in run_error(capsys, "verify", photo, tmp_path / "nope.jpg", "--model", tiny_onnx_model)
    wall = tmp_path / "wall.png"
    cv2.imwrite(str(wall), np.full((100, 100, 3), 90, np.uint8))
    assert "no face found in" in run_error(capsys, "enroll", "x", wall, "--gallery", gallery, "--model",
                                           tiny_onnx_model)
    assert "model file not found" in run_error(capsys, "verify", photo, photo, "--model", tmp_path / "m.onnx")
    assert "no identity named" in run_error(capsys, "gallery", "remove", "ghost", "--gallery", gallery)
    (tmp_path / "bad.npz").write_bytes(b"junk")
    assert "corrupt" in run_error(capsys, "gallery", "list", "--gallery", tmp_path / "bad.npz")
    with pytest.raises(SystemExit) as exc:  # argparse usage errors exit with 2
        main(["enroll", "only-a-name"])
    assert exc.value.code == 2


def test_python_dash_m_entry_point(tmp_path, tiny_onnx_model, people):
    env = repo_env()
    photo = next(iter(people.values()))[0]
    ok = subprocess.run([sys.executable, "-m", "g2d_edge", "verify", str(photo), str(photo), "--model",
                         str(tiny_onnx_model), "--json"], capture_output=True, text=True, env=env, cwd=tmp_path,
                        timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["same"] is True
    bad = subprocess.run([sys.executable, "-m", "g2d_edge", "verify", str(photo), str(tmp_path / "missing.jpg"),
                          "--model", str(tiny_onnx_model)], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=120)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [f"g2d: error: image not found: {tmp_path / 'missing.jpg'}; "
                                               "check the path"]


def test_cli_enrols_masked_templates_and_lists_them(capsys, tmp_path, tiny_onnx_model, people):
    gallery = tmp_path / "people.npz"
    name, photos = next(iter(people.items()))
    res = run_json(capsys, "enroll", name, photos[0], "--masked-templates", "1", "--gallery", gallery, "--model",
                   tiny_onnx_model)
    assert (res["added"], res["masked"], res["templates"]) == (2, 1, 2)
    res = run_json(capsys, "enroll", name, photos[1], "--masked", "--gallery", gallery, "--model", tiny_onnx_model)
    assert (res["added"], res["masked"], res["templates"]) == (1, 1, 3)
    listing = run_json(capsys, "gallery", "list", "--gallery", gallery)
    assert listing["identities"] == [{"name": name, "templates": 3, "masked": 2}]
    assert Gallery.load(gallery).template_tags(name).tolist() == [False, True, True]
    assert main(["gallery", "list", "--gallery", str(gallery)]) == 0
    assert f"{name}  (3 templates, 2 masked)" in capsys.readouterr().out
    error = run_error(capsys, "enroll", "newcomer", photos[0], "--masked", "--gallery", gallery, "--model",
                      tiny_onnx_model)
    assert "masked templates only" in error and "newcomer" not in Gallery.load(gallery)
    with pytest.raises(SystemExit):
        main(["enroll", name, str(photos[0]), "--masked-templates", "17", "--gallery", str(gallery)])
    assert "from 0 to 16" in capsys.readouterr().err
