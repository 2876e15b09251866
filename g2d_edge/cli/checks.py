"""`g2d checks`: what a user pastes into a bug report — versions, the backends and ONNX Runtime providers that can
run here (TensorRT, CUDA, OpenVINO, CPU), the GPU, OpenCV's video back ends (FFmpeg, GStreamer) and the shipped
models with their SHA-256 checksums. Nothing is loaded beyond what answering needs (no model is opened)."""
from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import re
import sys
from typing import Any, Dict, List, Optional

#: Distributions whose versions are reported (None: not installed).
PACKAGES = ("g2d-edge", "numpy", "opencv-contrib-python", "opencv-python", "onnxruntime", "onnxruntime-gpu",
            "onnxruntime-openvino", "openvino", "mediapipe", "supervision", "tensorrt", "pycuda", "tritonclient",
            "pymilvus", "faiss-cpu", "fastapi", "uvicorn", "python-multipart", "prometheus-client", "tqdm", "torch")


def package_versions() -> Dict[str, Optional[str]]:
    versions: Dict[str, Optional[str]] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def video_backends() -> Dict[str, Any]:
    """OpenCV's video I/O back ends usable here (FFmpeg, GStreamer, V4L2 ...) and its version."""
    import cv2
    from cv2 import videoio_registry as registry

    from ..video.capture import has_gstreamer

    names = sorted({registry.getBackendName(b) for b in registry.getBackends()})
    build = cv2.getBuildInformation()
    return {"opencv": cv2.__version__, "backends": names, "ffmpeg": re.search(r"FFMPEG:\s+YES", build) is not None,
            "gstreamer": has_gstreamer()}


def shipped_models() -> List[Dict[str, Any]]:
    """Every file in g2d_edge/models with its size and SHA-256 (what a bug report needs to rule out a bad copy)."""
    from ..shipped import MODELS_DIR

    out = []
    for path in sorted(MODELS_DIR.glob("*")):
        if path.suffix in (".onnx", ".json") and path.is_file():
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            out.append({"file": path.name, "bytes": path.stat().st_size, "sha256": digest.hexdigest()})
    return out


def report() -> Dict[str, Any]:
    """Everything `g2d checks` prints, as a JSON-ready dict."""
    from ..backends.loader import available_backends
    from ..backends.onnxruntime import available_providers
    from ..machine import gpu_name, machine_line
    from ..shipped import MODELS_DIR

    return {"python": f"{platform.python_version()} ({sys.executable})", "machine": machine_line(),
            "gpu": gpu_name(memory=True) or None, "packages": package_versions(),
            "backends": {name: "ok" if why is None else why for name, why in available_backends().items()},
            "onnxruntime_providers": available_providers(), "video": video_backends(),
            "models": shipped_models(), "models_dir": str(MODELS_DIR)}


def report_lines(data: Dict[str, Any]) -> List[str]:
    """`report()` as the text `g2d checks` prints."""
    lines = [f"python    {data['python']}", f"machine   {data['machine']}", f"gpu       {data['gpu'] or 'none found'}",
             "packages"]
    lines += [f"  {name:22} {version}" for name, version in data["packages"].items() if version is not None]
    missing = [name for name, version in data["packages"].items() if version is None]
    lines.append(f"  not installed: {', '.join(missing) if missing else 'none'}")
    lines.append("backends")
    lines += [f"  {name:12} {state}" for name, state in data["backends"].items()]
    lines.append(f"  onnxruntime providers: {', '.join(data['onnxruntime_providers']) or 'none'}")
    video = data["video"]
    lines.append(f"video     OpenCV {video['opencv']}: FFmpeg {'yes' if video['ffmpeg'] else 'no'}, GStreamer "
                 f"{'yes' if video['gstreamer'] else 'no'} (back ends: {', '.join(video['backends'])})")
    lines.append(f"models    {data['models_dir']}")
    lines += [f"  {m['file']:44} {m['bytes']:>10} bytes  sha256 {m['sha256']}" for m in data["models"]]
    return lines
