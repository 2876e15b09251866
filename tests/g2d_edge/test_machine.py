"""g2d_edge.machine: the one machine description, torch-free (the GPU is named by the driver's nvidia-smi)."""
import os
import stat

from g2d_edge import machine


def fake_nvidia_smi(folder, output: str, code: int = 0):
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\necho \"$@\" > {folder / 'args'}\nprintf '{output}'\nexit {code}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_gpu_named_by_the_driver(tmp_path, monkeypatch):
    fake_nvidia_smi(tmp_path, "NVIDIA H100 80GB HBM3\\nNVIDIA H100 80GB HBM3\\n")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    assert machine.gpu_name() == "NVIDIA H100 80GB HBM3"
    args = (tmp_path / "args").read_text().split()
    assert "--query-gpu=name" in args and args[-2:] == ["-i", "1"]  # the first GPU CUDA programs see
    info = machine.machine_info()
    assert info["gpu"] == "NVIDIA H100 80GB HBM3" and "GPU NVIDIA H100" in machine.machine_line(info)
    assert "gpu" not in machine.machine_info(gpu=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")  # CUDA programs see no GPU: neither do we
    assert machine.gpu_name() == ""


def test_no_gpu_without_a_driver(tmp_path, monkeypatch):
    fake_nvidia_smi(tmp_path, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver", code=9)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert machine.gpu_name() == ""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert machine.gpu_name() == ""
    info = machine.machine_info()
    assert "gpu" not in info and int(info["cores"]) >= 1 and int(info["logical_cores"]) >= int(info["cores"])
    assert machine.machine_line(info).endswith(f"Python {info['python']}") and ", no GPU" in machine.machine_line(info)
