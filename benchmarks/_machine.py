"""Which machine a benchmark ran on (named in every table the benchmarks print)."""
from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Dict


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return ""


def machine_info() -> Dict[str, str]:
    """CPU model, usable cores, GPU (if any), OS and Python."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {"cpu": cpu_model(), "cores": str(cores), "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version()}
    gpu = gpu_name()
    if gpu:
        info["gpu"] = gpu
    return info


def machine_line() -> str:
    info = machine_info()
    gpu = f", GPU {info['gpu']}" if "gpu" in info else ", no GPU"
    return f"{info['cpu']} ({info['cores']} cores{gpu}), {info['os']}, Python {info['python']}"
