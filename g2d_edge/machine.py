"""Which machine this is: named in every benchmark table and recorded in training checkpoints and model sidecars."""
from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Dict, Optional


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo ("Hardware" on boards that name no model), else what `platform` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
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


def usable_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def machine_info(gpu: bool = True) -> Dict[str, str]:
    """CPU model, usable cores, GPU (if any, as PyTorch names it; left out with gpu=False), OS and Python."""
    info = {"cpu": cpu_model(), "cores": str(usable_cores()), "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version()}
    name = gpu_name() if gpu else ""
    if name:
        info["gpu"] = name
    return info


def machine_line(info: Optional[Dict[str, str]] = None) -> str:
    """`info` (default: machine_info()) in one line."""
    info = machine_info() if info is None else info
    gpu = f", GPU {info['gpu']}" if info.get("gpu") else ", no GPU"
    return f"{info['cpu']} ({info['cores']} cores{gpu}), {info['os']}, Python {info['python']}"
