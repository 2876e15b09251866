"""Inference latency and throughput of the recogniser on every backend / precision this machine offers.

Rows (each only when it can run here; the reason is listed otherwise):
- PyTorch eager (the baseline; from --checkpoint, the ONNX's source checkpoint), on CUDA when present, else CPU;
- ONNX Runtime on CPU (always), CUDA EP and TensorRT EP (with onnxruntime-gpu);
- OpenVINO on CPU (with the [openvino] extra);
- TensorRT engines fp32 / fp16 / int8 built from the ONNX (cached next to it; int8 needs --calib or a calibration
  cache), and any --engine given.

For each: warm-up, then per-call latency at batch 1 (p50 / p90 / p99 over --iters calls) and throughput (faces/s) at
batches 1, 8, 32 (each run for at least --min-seconds). Every backend returns host arrays, so each call includes the
host<->device copies and a CUDA synchronisation (the torch backend synchronises explicitly). Inputs are real aligned
faces (the prepared CelebA cache) when present, else synthetic ones. Output: a Markdown table naming the machine,
and JSON with --json.

The rows above are measured one backend after the other, so a change in the machine's load between them shows up as
a difference between backends. The CPU runtimes are therefore also timed in turns, call by call (ONNX Runtime CPU,
OpenVINO CPU, ONNX Runtime CPU ...), at each batch size: the "timed in turns" table, median ms per call.

    python benchmarks/latency.py                                   # shipped model
    python benchmarks/latency.py --model m.onnx --checkpoint final.pt --json latency.json
    python benchmarks/latency.py --checkpoint final.pt             # exports a temporary ONNX first
    python benchmarks/latency.py --model g2d_edge/models/g2d-edge-s.onnx --threads 1 --batches 1 8
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from g2d_edge.files import atomic_write_text  # noqa: E402
from g2d_edge.machine import machine_info, machine_line  # noqa: E402
from g2d_edge.backends import BackendOptions, available_backends, load_backend  # noqa: E402
from g2d_edge.backends.onnxruntime import available_providers  # noqa: E402
from export.torch_backend import TorchBackend, TorchOptions, torch_available  # noqa: E402
from g2d_edge.errors import G2DError  # noqa: E402
from benchmarks._timing import interleaved_median_seconds  # noqa: E402
from g2d_edge.shipped import DEFAULT_MODEL, shipped_model_path  # noqa: E402

log = logging.getLogger("benchmarks.latency")

SHIPPED_MODEL = shipped_model_path(DEFAULT_MODEL)
FACE_CACHE = REPO / ".cache" / "celeba-train.npz"


@dataclass
class LatencySettings:
    """What is measured. batches: throughput batch sizes; iters: timed calls at batch 1 (and the cap per batch);
    warmup: untimed calls per batch size first; min_seconds: minimum run time per throughput point;
    threads: CPU threads for ONNX Runtime / OpenVINO / torch (0 = their default); precisions: TensorRT engines to
    build; turns: timed calls per runtime and batch size in the timed-in-turns comparison of the CPU runtimes."""

    batches: Tuple[int, ...] = (1, 8, 32)
    iters: int = 200
    warmup: int = 10
    min_seconds: float = 1.0
    threads: int = 0
    precisions: Tuple[str, ...] = ("fp32", "fp16", "int8")
    calib: Optional[Path] = None
    turns: int = 30


@dataclass
class Row:
    """One backend configuration's numbers."""

    label: str
    backend: str
    device: str
    precision: str
    p50_ms: float
    p90_ms: float
    p99_ms: float
    throughput: Dict[str, float] = field(default_factory=dict)  # batch -> faces/s
    speedup_vs_torch: Optional[float] = None


Candidate = Tuple[str, str, Callable[[], Any]]  # label, precision, factory returning a backend


def bench_faces(n: int) -> np.ndarray:
    """n aligned faces: real ones from the prepared cache when present, else synthetic."""
    try:
        from g2d_edge.backends.faces import load_cached_faces, synthetic_faces
    except ImportError:  # export needs cv2 + tqdm only; keep the benchmark runnable regardless
        return np.random.default_rng(0).integers(0, 256, (n, 112, 112, 3), dtype=np.uint8)
    try:
        faces = load_cached_faces(FACE_CACHE, n)
        if len(faces) == n:
            return faces
    except (FileNotFoundError, ValueError, OSError):
        pass
    return synthetic_faces(n, np.random.default_rng(0))


def measure(backend: Any, faces: np.ndarray, settings: LatencySettings) -> Tuple[List[float], Dict[str, float]]:
    """(batch-1 latencies in ms, {batch: faces/s})."""
    sync = getattr(backend, "synchronize", lambda: None)
    backend.warmup()
    for b in settings.batches:
        for _ in range(settings.warmup):
            backend.infer(faces[:b])
    sync()
    one = faces[:1]
    latencies = []
    for _ in range(settings.iters):
        start = time.perf_counter()
        backend.infer(one)
        sync()
        latencies.append((time.perf_counter() - start) * 1e3)
    throughput = {}
    for b in settings.batches:
        batch = faces[:b]
        calls, start = 0, time.perf_counter()
        while calls < 3 or (time.perf_counter() - start < settings.min_seconds and calls < settings.iters):
            backend.infer(batch)
            calls += 1
        sync()
        throughput[str(b)] = calls * b / (time.perf_counter() - start)
    return latencies, throughput


def candidates(model: Optional[Path], checkpoint: Optional[Path], engines: Sequence[Path],
               settings: LatencySettings, skipped: List[Dict[str, str]]) -> List[Candidate]:
    """Every backend configuration to try, in table order; what cannot run here is added to `skipped`."""
    out: List[Candidate] = []
    reasons = available_backends()
    threads = settings.threads
    if checkpoint is not None:
        torch_reason = torch_available()
        if torch_reason is None:
            out.append(("PyTorch eager", "fp32", lambda: TorchBackend(checkpoint, TorchOptions(threads=threads))))
        else:
            skipped.append({"label": "PyTorch eager", "reason": torch_reason})
    else:
        skipped.append({"label": "PyTorch eager", "reason": "no --checkpoint (the ONNX's source checkpoint) given"})
    if model is not None:
        names = {"CPUExecutionProvider": "cpu", "CUDAExecutionProvider": "cuda", "TensorrtExecutionProvider": "tensorrt"}
        have = available_providers()
        for full, short in names.items():
            label = f"ONNX Runtime {short.upper() if short != 'tensorrt' else 'TensorRT EP'}"
            if full in have:
                out.append((label, "fp16" if short == "tensorrt" else "fp32",
                            lambda s=short: load_backend(model, "onnxruntime", BackendOptions.of(
                                providers=[s], intra_op_threads=threads))))
            else:
                skipped.append({"label": label, "reason": f"{full} not available (pip install onnxruntime-gpu)"})
        if reasons["openvino"] is None:
            out.append(("OpenVINO CPU", "fp32", lambda: load_backend(model, "openvino",
                                                                     BackendOptions.of(intra_op_threads=threads))))
        else:
            skipped.append({"label": "OpenVINO CPU", "reason": reasons["openvino"]})
        for precision in settings.precisions:
            label = f"TensorRT {precision}"
            if reasons["tensorrt"] is not None:
                skipped.append({"label": label, "reason": reasons["tensorrt"]})
                continue
            if precision == "int8" and settings.calib is None:
                from g2d_edge.backends.engine_cache import default_calib_cache

                if not default_calib_cache(model).is_file():
                    skipped.append({"label": label, "reason": "needs --calib (calibration faces) or a cache"})
                    continue
            out.append((label, precision, lambda p=precision: load_backend(model, "tensorrt", BackendOptions.of(
                build_engine=True, precision=p, calib_data=settings.calib, max_batch=max(settings.batches)))))
    for engine in engines:
        out.append((f"TensorRT {engine.name}", "engine", lambda e=engine: load_backend(e, "tensorrt")))
    return out


def _device_of(backend: Any) -> str:
    if backend.name == "onnxruntime":
        return backend.provider.replace("ExecutionProvider", "")
    if backend.name == "torch":
        return str(backend.device)
    if backend.name == "tensorrt":
        return backend.gpu.name
    if backend.name == "openvino":
        return backend.options.openvino_device
    return "?"


def cpu_runtimes_in_turns(model: Path, faces: np.ndarray, settings: LatencySettings) -> Dict[str, Dict[str, float]]:
    """{batch: {runtime: median ms per call}} of ONNX Runtime CPU and OpenVINO CPU timed in turns, call by call, so
    that the machine's load hits both alike; {} when OpenVINO is not installed."""
    if available_backends()["openvino"] is not None:
        return {}
    runtimes = {"ONNX Runtime CPU": load_backend(model, "onnxruntime", BackendOptions.of(
                    providers=["cpu"], intra_op_threads=settings.threads)),
                "OpenVINO CPU": load_backend(model, "openvino", BackendOptions.of(intra_op_threads=settings.threads))}
    out: Dict[str, Dict[str, float]] = {}
    for b in settings.batches:
        batch = faces[:b]
        calls = {name: (lambda r=runtime: r.infer(batch)) for name, runtime in runtimes.items()}
        medians = interleaved_median_seconds(calls, settings.warmup, settings.turns)
        out[str(b)] = {name: seconds * 1e3 for name, seconds in medians.items()}
    for runtime in runtimes.values():
        runtime.close()
    return out


def run_benchmark(model: Optional[Path], checkpoint: Optional[Path] = None, engines: Sequence[Path] = (),
                  settings: Optional[LatencySettings] = None) -> Dict[str, Any]:
    """Measure every candidate; returns {"machine", "model", "settings", "rows", "skipped"}."""
    settings = settings or LatencySettings()
    skipped: List[Dict[str, str]] = []
    faces = bench_faces(max(settings.batches))
    rows: List[Row] = []
    for label, precision, factory in candidates(model, checkpoint, engines, settings, skipped):
        try:
            backend = factory()
        except G2DError as exc:
            log.warning("%s: skipped (%s)", label, exc)
            skipped.append({"label": label, "reason": str(exc)})
            continue
        if precision == "engine":
            precision = (backend.sidecar.engine or {}).get("precision", "?")
        log.info("measuring %s ...", label)
        lat, thr = measure(backend, faces, settings)
        p50, p90, p99 = (float(np.percentile(lat, q)) for q in (50, 90, 99))
        rows.append(Row(label, backend.name, _device_of(backend), precision, p50, p90, p99, thr))
        if hasattr(backend, "close"):
            backend.close()
    torch_row = next((r for r in rows if r.backend == "torch"), None)
    for r in rows:
        if torch_row is not None:
            r.speedup_vs_torch = torch_row.p50_ms / r.p50_ms
    info = machine_info()
    gpu = next((r.device for r in rows if r.backend == "tensorrt"), None)
    if gpu and "gpu" not in info:
        info["gpu"] = gpu
    settings_dict = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()}
    in_turns = cpu_runtimes_in_turns(model, faces, settings) if model is not None else {}
    return {"machine": info, "machine_line": machine_line(info), "model": str(model) if model else None,
            "checkpoint": str(checkpoint) if checkpoint else None, "settings": settings_dict,
            "rows": [asdict(r) for r in rows], "in_turns": in_turns, "skipped": skipped}


def format_markdown(result: Dict[str, Any]) -> str:
    """The result as a Markdown table (plus the machine and what was skipped)."""
    batches = [str(b) for b in result["settings"]["batches"]]
    head = ["backend", "device", "precision", "p50 ms", "p90 ms", "p99 ms"] + [f"faces/s b={b}" for b in batches] + \
        ["p50 speed-up vs PyTorch"]
    source = f" (PyTorch baseline: {result['checkpoint']})" if result.get("checkpoint") else ""
    lines = [f"Latency on {result['machine_line']}", f"model: {result['model']}{source}", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["rows"]:
        cells = [r["label"], r["device"], r["precision"], f"{r['p50_ms']:.2f}", f"{r['p90_ms']:.2f}",
                 f"{r['p99_ms']:.2f}"] + [f"{r['throughput'].get(b, float('nan')):.0f}" for b in batches]
        cells.append("-" if r["speedup_vs_torch"] is None else f"{r['speedup_vs_torch']:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    if result.get("in_turns"):
        lines += ["", f"CPU runtimes timed in turns (threads: {result['settings']['threads'] or 'default'}; median ms "
                  "per call):", "", "| batch | ONNX Runtime CPU | OpenVINO CPU | OpenVINO speed-up |",
                  "|---|---|---|---|"]
        for b, ms in result["in_turns"].items():
            ort_ms, ov_ms = ms["ONNX Runtime CPU"], ms["OpenVINO CPU"]
            lines.append(f"| {b} | {ort_ms:.2f} | {ov_ms:.2f} | {ort_ms / ov_ms:.2f}x |")
    if result["skipped"]:
        lines += ["", "Not measured here:"] + [f"- {s['label']}: {s['reason']}" for s in result["skipped"]]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, help=f"exported .onnx (default: the shipped {SHIPPED_MODEL.name})")
    p.add_argument("--checkpoint", type=Path, help="training checkpoint: the PyTorch baseline (and the model, "
                                                   "exported to a temporary ONNX, when --model is not given)")
    p.add_argument("--engine", type=Path, nargs="*", default=[], help="extra TensorRT engines to measure")
    p.add_argument("--precisions", nargs="*", default=["fp32", "fp16", "int8"], choices=("fp32", "fp16", "int8"))
    p.add_argument("--calib", type=Path, help="INT8 calibration faces (folder or .npz)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--iters", type=int, default=200, help="timed calls at batch 1")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--min-seconds", type=float, default=1.0, help="minimum time per throughput point")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = runtime default)")
    p.add_argument("--turns", type=int, default=30, help="timed calls per CPU runtime and batch, taken in turns")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = LatencySettings(batches=tuple(sorted(set(args.batches))), iters=max(1, args.iters),
                               warmup=max(0, args.warmup), min_seconds=args.min_seconds, threads=args.threads,
                               precisions=tuple(args.precisions), calib=args.calib, turns=max(1, args.turns))
    model = args.model
    with tempfile.TemporaryDirectory(prefix="g2d-latency-") as tmp:
        if model is None and args.checkpoint is not None:
            from export.onnx import export_onnx

            model = Path(tmp) / f"{args.checkpoint.stem}.onnx"
            export_onnx(args.checkpoint, model)
        elif model is None:
            if not SHIPPED_MODEL.is_file():
                print(f"error: the shipped model {SHIPPED_MODEL} does not exist yet; pass --model M.onnx "
                      "(and --checkpoint C.pt for the PyTorch baseline) or --checkpoint C.pt", file=sys.stderr)
                return 2
            model = SHIPPED_MODEL
        if not model.is_file():
            print(f"error: model not found: {model}", file=sys.stderr)
            return 2
        try:
            result = run_benchmark(model, args.checkpoint, args.engine, settings)
        except G2DError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(format_markdown(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
