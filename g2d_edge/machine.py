"""Which machine this is: the one description named in every benchmark table and recorded in training checkpoints
and model sidecars. Torch-free: the GPU is named by the NVIDIA driver (`nvidia-smi`), not by a framework."""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Optional

#: Seconds `gpu_name` waits for nvidia-smi.
NVIDIA_SMI_TIMEOUT_S = 10.0


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo ("Hardware" on boards that name no model), else what `platform` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _first_visible_gpu() -> str:
    """The index nvidia-smi should describe: the first of CUDA_VISIBLE_DEVICES (what CUDA programs call device 0)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return visible or "0"


def gpu_name(memory: bool = False) -> str:
    """The name of the first visible NVIDIA GPU as its driver gives it (with its memory, e.g. "NVIDIA H100 80GB
    HBM3, 81559 MiB", when `memory`); "" when there is none, or no driver / nvidia-smi to ask."""
    smi = shutil.which("nvidia-smi")
    if smi is None or _first_visible_gpu() in ("-1", "none", "NoDevFiles"):
        return ""
    query = "name,memory.total" if memory else "name"
    try:
        out = subprocess.run([smi, f"--query-gpu={query}", "--format=csv,noheader", "-i", _first_visible_gpu()],
                             capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = out.stdout.strip().splitlines() if out.returncode == 0 else []
    return lines[0].strip() if lines else ""


def usable_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def machine_info(gpu: bool = True) -> Dict[str, str]:
    """CPU model, usable and logical cores, GPU (if any; left out with gpu=False), OS and Python."""
    info = {"cpu": cpu_model(), "cores": str(usable_cores()), "logical_cores": str(os.cpu_count()),
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version()}
    name = gpu_name() if gpu else ""
    if name:
        info["gpu"] = name
    return info


def machine_line(info: Optional[Dict[str, str]] = None) -> str:
    """`info` (default: machine_info()) in one line."""
    info = machine_info() if info is None else info
    gpu = f", GPU {info['gpu']}" if info.get("gpu") else ", no GPU"
    return f"{info['cpu']} ({info['cores']} cores{gpu}), {info['os']}, Python {info['python']}"
