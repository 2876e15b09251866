"""Command-line comforts: `g2d identify --csv`, progress bars only on a terminal (`g2d enroll --folder`,
`g2d identify FOLDER`), and `g2d checks` (versions, backends, GPU, video back ends, model checksums)."""
import csv
import fcntl
import hashlib
import io
import json
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest

from g2d_edge.cli import main
from g2d_edge.shipped import MODELS_DIR
from runtime_helpers import repo_env


@pytest.fixture()
def people_dir(tmp_path, celeba_people):
    root = tmp_path / "people"
    for name, photos in celeba_people.items():
        (root / name).mkdir(parents=True)
        for p in photos[:2]:
            (root / name / p.name).write_bytes(p.read_bytes())
    return root


def run_g2d(*argv, tty=False):
    """`python -m g2d_edge ARGV` with stderr on a pseudo-terminal (tty=True) or a pipe; (status, stdout, stderr)."""
    if not tty:
        out = subprocess.run([sys.executable, "-m", "g2d_edge", *map(str, argv)], capture_output=True, text=True,
                             env=repo_env(), timeout=300)
        return out.returncode, out.stdout, out.stderr
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal 100 columns wide
    proc = subprocess.Popen([sys.executable, "-m", "g2d_edge", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=follower, env=repo_env())
    os.close(follower)
    err = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the process has ended
            break
        if not chunk:
            break
        err += chunk
    stdout = proc.stdout.read().decode()
    os.close(leader)
    return proc.wait(60), stdout, err.decode(errors="replace")


def test_identify_csv_has_a_header_and_one_row_per_face(people_dir, tmp_path, capsys):
    gallery = tmp_path / "g.npz"
    assert main(["enroll", "--folder", str(people_dir), "--gallery", str(gallery), "--json"]) == 0
    capsys.readouterr()
    folder = tmp_path / "mixed"
    folder.mkdir()
    first = sorted(people_dir.iterdir())[0]
    photo = sorted(first.iterdir())[0]
    (folder / "a.jpg").write_bytes(photo.read_bytes())
    from runtime_helpers import gray_png

    (folder / "b.png").write_bytes(gray_png(64, 64))  # no face: still one row
    assert main(["identify", str(folder), "--gallery", str(gallery), "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["image"] for r in rows] == [str(folder / "a.jpg"), str(folder / "b.png")]
    assert rows[0]["name"] == first.name and float(rows[0]["score"]) > float(rows[0]["threshold"])
    assert rows[0]["face"] == "0" and float(rows[0]["x2"]) > float(rows[0]["x1"])
    assert rows[1]["face"] == "" and rows[1]["name"] == ""
    with pytest.raises(SystemExit) as exc:
        main(["identify", str(folder), "--gallery", str(gallery), "--csv", "--json"])
    assert exc.value.code == 2


def test_progress_bars_only_on_a_terminal(people_dir, tmp_path):
    pytest.importorskip("tqdm")
    gallery = tmp_path / "g.npz"
    code, out, err = run_g2d("enroll", "--folder", people_dir, "--gallery", gallery, tty=True)
    assert code == 0 and "enrolling" in err and "person" in err, err
    assert "now holds" in out and "enrolling" not in out
    folder = sorted(people_dir.iterdir())[0]
    code, out, err = run_g2d("identify", folder, "--gallery", gallery, "--json", tty=True)
    assert code == 0 and "identifying" in err and "/2 [" in err, err  # a bar over the 2 photos
    assert [json.loads(line)["faces"][0]["name"] for line in out.splitlines()] == [folder.name] * 2
    code, out, err = run_g2d("identify", folder, "--gallery", gallery, "--json")  # a pipe: no bar
    assert code == 0 and "identifying" not in err and len(out.splitlines()) == 2


def test_checks_reports_versions_backends_video_and_model_checksums(capsys):
    assert main(["checks", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["packages"]["numpy"] and data["backends"]["onnxruntime"] == "ok"
    assert "CPUExecutionProvider" in data["onnxruntime_providers"]
    assert isinstance(data["video"]["ffmpeg"], bool) and data["video"]["backends"]
    models = {m["file"]: m["sha256"] for m in data["models"]}
    assert models["g2d-edge-m.onnx"] == hashlib.sha256((MODELS_DIR / "g2d-edge-m.onnx").read_bytes()).hexdigest()
    assert main(["checks"]) == 0
    text = capsys.readouterr().out
    assert "onnxruntime providers:" in text and "FFmpeg" in text and models["g2d-edge-m.onnx"] in text
