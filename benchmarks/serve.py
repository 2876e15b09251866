#!/usr/bin/env python3
"""Serving benchmark: many simulated cameras against a real Triton server, beside in-process ONNX Runtime.

Each camera is a thread with its own `TritonBackend` (its own connection, as a separate edge box would have) that
sends the aligned faces of one frame per request, back to back, for `--seconds`; all cameras start together. Rows,
for 1, 4 and 16 cameras (`--cameras`):

- ONNX Runtime in process: the cameras share one `OnnxRuntimeBackend` in this process (one box, no server);
- Triton, dynamic batching: the repository's model with `dynamic_batching` (the server merges concurrent requests);
- Triton, no batching: the same model exported with `--no-dynamic-batching` (every request runs alone).

Per row: faces/s (all cameras together), request latency p50 / p99 in ms (one request = one frame), and for the
Triton rows the mean number of faces per model execution (from the server's statistics). Inputs are real aligned
faces (the prepared CelebA cache) when present, else synthetic ones.

By default the script exports the model into a temporary repository and starts a Triton server on loopback with the
server environment that `.ci/run` makes (`export/pytriton_server.py`: Triton's own binary, the model bound to an ONNX
Runtime session through its Python backend; see README "Scaling out"). `--url` measures a server you started
instead (it must serve NAME and NAME-nobatch). Server and cameras share this machine's CPU cores.

    python benchmarks/serve.py                     # shipped model; JSON to benchmarks/results/serve-cpu.json
    python benchmarks/serve.py --cameras 1 4 --seconds 3 --faces-per-frame 2

`python benchmarks/serve.py http ...` measures `g2d serve`'s HTTP API instead (`/identify` on 640x480 and 1080p
photos, 1-16 clients, beside the in-process SDK; benchmarks/serve_http.py).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from benchmarks.latency import bench_faces  # noqa: E402
from export.pytriton_server import LocalServer, start_server  # noqa: E402
from export.triton import TritonRepoOptions, write_triton_repository  # noqa: E402
from g2d_edge.files import atomic_write_text  # noqa: E402
from g2d_edge.backends import BackendOptions, load_backend  # noqa: E402
from g2d_edge.backends.triton import inference_statistics  # noqa: E402
from g2d_edge.machine import machine_info, machine_line  # noqa: E402
from g2d_edge.backends.loader import SHIPPED_MODEL  # noqa: E402

log = logging.getLogger("benchmarks.serve")

DEFAULT_JSON = REPO / "benchmarks" / "results" / "serve-cpu.json"
NOBATCH_SUFFIX = "-nobatch"


@dataclass
class ServeSettings:
    """cameras: camera counts to measure; seconds: timed run per row; warmup_s: untimed run first;
    faces_per_frame: aligned faces per request; timeout_s: request timeout of the Triton clients."""

    cameras: Sequence[int] = (1, 4, 16)
    seconds: float = 5.0
    warmup_s: float = 1.0
    faces_per_frame: int = 1
    timeout_s: float = 30.0


@dataclass
class Row:
    """One measured configuration."""

    runtime: str
    cameras: int
    requests: int
    faces_per_s: float
    p50_ms: float
    p99_ms: float
    faces_per_execution: Optional[float] = None


@dataclass
class Target:
    """What the cameras talk to: a label, a factory of one camera's backend, and (Triton) how to read statistics."""

    label: str
    make_backend: Callable[[], Any]
    shared: bool = False  # one backend for all cameras (in process)
    stats: Optional[Callable[[], Dict[str, int]]] = None


def camera_loop(backend: Any, frames: np.ndarray, start: threading.Barrier, until: List[float],
                latencies: List[float], errors: List[BaseException]) -> None:
    """Send one frame's faces per request, back to back, until `until[0]` (perf_counter); record latencies (ms)."""
    start.wait()
    i = 0
    try:
        while time.perf_counter() < until[0]:
            t0 = time.perf_counter()
            backend.infer(frames[i % len(frames)])
            latencies.append((time.perf_counter() - t0) * 1e3)
            i += 1
    except Exception as exc:  # reported by run_cameras in the main thread
        errors.append(exc)


def run_cameras(backends: List[Any], frames: np.ndarray, seconds: float) -> Tuple[List[List[float]], float]:
    """Run one thread per backend for `seconds`, all starting together: (per-camera request latencies in ms,
    seconds from the start until the last camera finished its last request)."""
    latencies: List[List[float]] = [[] for _ in backends]
    errors: List[BaseException] = []
    barrier = threading.Barrier(len(backends) + 1)
    until = [float("inf")]
    threads = [threading.Thread(target=camera_loop, args=(b, frames, barrier, until, lat, errors), daemon=True)
               for b, lat in zip(backends, latencies)]
    for t in threads:
        t.start()
    barrier.wait()  # every camera is ready: the clock starts now
    start = time.perf_counter()
    until[0] = start + seconds
    for t in threads:
        t.join(seconds + 120)
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return latencies, elapsed


def measure(target: Target, cameras: int, frames: np.ndarray, settings: ServeSettings) -> Row:
    """One row: `cameras` cameras against `target` for settings.seconds (after settings.warmup_s untimed)."""
    shared = target.make_backend() if target.shared else None
    backends = [shared] * cameras if shared is not None else [target.make_backend() for _ in range(cameras)]
    unique = list({id(b): b for b in backends}.values())
    try:
        for b in unique:
            b.warmup()
        if settings.warmup_s > 0:
            run_cameras(backends, frames, settings.warmup_s)
        before = target.stats() if target.stats else None
        latencies, elapsed = run_cameras(backends, frames, settings.seconds)
        after = target.stats() if target.stats else None
    finally:
        for b in unique:
            b.close()
    flat = np.concatenate([np.asarray(lat, dtype=np.float64) for lat in latencies])
    per_exec = None
    if before is not None and after is not None and after["executions"] > before["executions"]:
        per_exec = (after["faces"] - before["faces"]) / (after["executions"] - before["executions"])
    return Row(target.label, cameras, int(len(flat)), len(flat) * frames.shape[1] / elapsed,
               float(np.percentile(flat, 50)), float(np.percentile(flat, 99)), per_exec)


def targets(model: Path, url: str, model_name: str, settings: ServeSettings) -> List[Target]:
    """In-process ONNX Runtime, then Triton with and without dynamic batching."""
    def triton(name: str) -> Callable[[], Any]:
        return lambda: load_backend(model, "triton", BackendOptions.of(url=url, model_name=name,
                                                                       timeout_s=settings.timeout_s))

    def stats(name: str) -> Callable[[], Dict[str, int]]:
        return lambda: inference_statistics(url, name)

    nobatch = model_name + NOBATCH_SUFFIX
    return [Target("ONNX Runtime in process", lambda: load_backend(model, "onnxruntime"), shared=True),
            Target("Triton, dynamic batching", triton(model_name), stats=stats(model_name)),
            Target("Triton, no batching", triton(nobatch), stats=stats(nobatch))]


def write_repository(model: Path, folder: Path, max_batch: int) -> str:
    """Export `model` twice into `folder` (CPU instances): NAME with dynamic batching, NAME-nobatch without."""
    cpu = TritonRepoOptions(device="cpu", tensorrt="no", max_batch_size=max_batch)
    name = write_triton_repository(model, folder, cpu)["models"][0].name
    write_triton_repository(model, folder, replace(cpu, model_name=name + NOBATCH_SUFFIX, dynamic_batching=False))
    return name


def run_benchmark(model: Path, url: str, model_name: str, settings: ServeSettings) -> Dict[str, Any]:
    """Measure every target at every camera count; returns {"machine", "model", "settings", "rows", ...}."""
    frames = bench_faces(64 * settings.faces_per_frame)
    frames = frames.reshape(64, settings.faces_per_frame, *frames.shape[1:])
    rows: List[Row] = []
    for cameras in settings.cameras:
        for target in targets(model, url, model_name, settings):
            log.info("%d camera(s): %s ...", cameras, target.label)
            rows.append(measure(target, cameras, frames, settings))
            log.info("  %s", rows[-1])
    info = machine_info(gpu=False)
    return {"machine": info, "machine_line": machine_line(info), "model": str(model), "url": url,
            "model_name": model_name, "settings": asdict(settings), "rows": [asdict(r) for r in rows],
            "note": "server and cameras on one machine, over loopback; the server runs the model in Triton's "
                    "Python backend (export/pytriton_server.py), not its ONNX Runtime backend"}


def markdown(result: Dict[str, Any]) -> str:
    """The result as a Markdown table, with the machine named."""
    lines = [f"Machine: {result['machine_line']}; {result['settings']['faces_per_frame']} face(s) per request, "
             f"{result['settings']['seconds']:g} s per row", "",
             "| cameras | runtime | faces/s | p50 ms | p99 ms | faces per execution |",
             "|---:|---|---:|---:|---:|---:|"]
    for r in result["rows"]:
        per = "" if r["faces_per_execution"] is None else f"{r['faces_per_execution']:.2f}"
        lines.append(f"| {r['cameras']} | {r['runtime']} | {r['faces_per_s']:.0f} | {r['p50_ms']:.2f} | "
                     f"{r['p99_ms']:.2f} | {per} |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["http"]:  # g2d serve's HTTP API
        from benchmarks.serve_http import main as http_main

        return http_main(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, default=SHIPPED_MODEL, help="exported .onnx (default: the shipped model)")
    p.add_argument("--cameras", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--seconds", type=float, default=5.0, help="timed run per row")
    p.add_argument("--faces-per-frame", type=int, default=1)
    p.add_argument("--max-batch", type=int, default=32, help="max_batch_size of the exported repository")
    p.add_argument("--url", help="measure this running server (serving NAME and NAME-nobatch) instead of starting one")
    p.add_argument("--model-name", help="served model name (default: the sidecar's)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"result JSON (default {DEFAULT_JSON})")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = ServeSettings(cameras=tuple(args.cameras), seconds=args.seconds, faces_per_frame=args.faces_per_frame)
    with tempfile.TemporaryDirectory(prefix="g2d-serve-") as tmp:
        server: Optional[LocalServer] = None
        url, name = args.url, args.model_name
        if url is None:
            name = write_repository(args.model, Path(tmp) / "model_repository", args.max_batch)
            server = start_server(Path(tmp) / "model_repository")
            url = server.grpc_url
        try:
            result = run_benchmark(args.model, url, name or sidecar_name(args.model), settings)
        finally:
            if server is not None:
                server.stop()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    return 0


def sidecar_name(model: Path) -> str:
    """The sidecar's model name (the name `g2d-export triton` serves it under)."""
    from g2d_edge.backends.base import load_sidecar

    return load_sidecar(model).name


if __name__ == "__main__":
    sys.exit(main())
