"""Issue 22, class "command-line manners": a closed stdout (`| head -1`) ends `g2d` quietly with status 141, no
traceback; `samples/enroll_and_identify.py` has a --help and turns a bad path into one line; `g2d verify` answers in
its exit status (0 same person, 3 different people, 1 error); `ClosedError` is importable from `g2d_edge.errors`, as the README says."""
import json
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest

from g2d_edge.cli import main
from g2d_edge.cli.commands import EXIT_DIFFERENT
from g2d_edge.gallery import Gallery
from runtime_helpers import REPO, repo_env, write_video


def shell(command, cwd):
    """Run a bash pipeline; returns (exit status of each command, stdout, stderr)."""
    res = subprocess.run(["bash", "-c", command + '; echo "${PIPESTATUS[@]}" >&2'], capture_output=True, text=True,
                         env=repo_env(), cwd=cwd, timeout=300)
    *err, statuses = res.stderr.rstrip("\n").split("\n")
    return [int(s) for s in statuses.split()], res.stdout, "\n".join(err)


@pytest.fixture()
def big_gallery(tmp_path):
    """Enough people that `gallery list` writes more than a pipe holds (64 KiB)."""
    g = Gallery(embedding_space="space-a")
    rng = np.random.default_rng(0)
    for i in range(4000):
        g.add(f"person-with-a-long-name-{i:05d}", rng.normal(size=4))
    return g.save(tmp_path / "big.npz")


def test_gallery_list_into_head_ends_quietly(tmp_path, big_gallery):
    g2d = f"{sys.executable} -m g2d_edge"
    for extra in ("", " --json"):
        statuses, out, err = shell(f"{g2d} gallery list --gallery {big_gallery}{extra} | head -1", tmp_path)
        assert statuses == [141, 0], err
        assert len(out.splitlines()) == 1 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_identify_json_into_head_ends_quietly(tmp_path, tiny_onnx_model):
    meta = json.loads(tiny_onnx_model.with_suffix(".json").read_text())
    gallery = Gallery()
    gallery.bind(meta["embedding_space"], 512)
    gallery.add("ann", np.random.default_rng(0).normal(size=512))
    path = gallery.save(tmp_path / "g.npz")
    rng = np.random.default_rng(1)
    clip = write_video(tmp_path / "clip.avi", [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(40)])
    statuses, out, err = shell(f"{sys.executable} -m g2d_edge identify {clip} --gallery {path} --model "
                               f"{tiny_onnx_model} --json | head -1", tmp_path)
    assert statuses == [141, 0], err
    assert json.loads(out)["frame"] == 0 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_the_sample_has_a_help_and_one_line_errors(tmp_path):
    sample = [sys.executable, str(REPO / "samples" / "enroll_and_identify.py")]
    res = subprocess.run(sample + ["--help"], capture_output=True, text=True, env=repo_env(), cwd=tmp_path)
    assert res.returncode == 0 and "people_dir" in res.stdout and "Traceback" not in res.stderr
    res = subprocess.run(sample, capture_output=True, text=True, env=repo_env(), cwd=tmp_path)
    assert res.returncode == 2 and "usage" in res.stderr and "Traceback" not in res.stderr
    res = subprocess.run(sample + [str(tmp_path), str(tmp_path / "missing.jpg")], capture_output=True, text=True,
                         env=repo_env(), cwd=tmp_path)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1 and "missing.jpg" in res.stderr


def test_verify_answers_in_its_exit_status(tmp_path, people, tiny_onnx_model, capsys):
    a, b = sorted(people)[:2]
    assert main(["verify", str(people[a][0]), str(people[a][0]), "--model", str(tiny_onnx_model)]) == 0
    assert "same person" in capsys.readouterr().out
    code = main(["verify", str(people[a][0]), str(people[b][0]), "--model", str(tiny_onnx_model), "--threshold",
                 "0.99999", "--json"])
    assert code == EXIT_DIFFERENT == 3 and json.loads(capsys.readouterr().out)["same"] is False
    assert main(["verify", str(people[a][0]), str(tmp_path / "missing.jpg"), "--model", str(tiny_onnx_model)]) == 1


def test_closed_error_is_importable_where_the_readme_says():
    import g2d_edge
    from g2d_edge.errors import ClosedError

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    assert "from g2d_edge.errors import ClosedError" in readme
    assert issubclass(ClosedError, g2d_edge.G2DError)
