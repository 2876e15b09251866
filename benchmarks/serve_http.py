#!/usr/bin/env python3
"""`g2d serve`'s HTTP API under load, beside the in-process SDK, in one run (`python benchmarks/serve.py http`).

A real `g2d serve` process (uvicorn on 127.0.0.1, `--workers` recognizers, a queue large enough for every client) is
started with a small gallery of real people; then, for each photo size (640x480 and 1920x1080: a real CelebA face
on a textured background, JPEG) and each number of concurrent clients (1-16), every client POSTs the photo to
`/identify` back to back for `--seconds` (each its own HTTP connection). The SDK rows run the same work in this
process: the same number of threads share one `Recognizer` (as the server's one worker does), each decoding the
same JPEG and calling `identify`. Per row: requests/s, latency p50 / p99 (ms) and what was not answered 200 (503s
from a full queue, errors). Clients, server and SDK share this machine's cores.

    python benchmarks/serve.py http                           # JSON to benchmarks/results/serve-http-cpu.json
    python benchmarks/serve.py http --clients 1 4 --seconds 2 --sizes 640x480
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from g2d_edge.files import atomic_write_text  # noqa: E402
from g2d_edge.io import list_people  # noqa: E402
from g2d_edge.machine import machine_info, machine_line  # noqa: E402

log = logging.getLogger("benchmarks.serve_http")

DEFAULT_JSON = REPO / "benchmarks" / "results" / "serve-http-cpu.json"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "celeba-train"
SIZES = {"640x480": (480, 640), "1920x1080": (1080, 1920)}
KEY = "benchmark-key-0123456789"


@dataclass
class Row:
    runtime: str
    size: str
    clients: int
    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    not_ok: Dict[str, int]


def photo(data: Path, size: Tuple[int, int]) -> bytes:
    """A JPEG of `size` (h, w): the first person's third photo, its face about a quarter of the height, on noise."""
    h, w = size
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.integers(40, 200, (h, w, 3), dtype=np.uint8), (0, 0), 3)
    face = cv2.imread(str(list_people(data)[0][1][2]))
    side = h // 2
    y, x = (h - side) // 2, (w - side) // 2
    frame[y:y + side, x:x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return encoded.tobytes()


def run_clients(call: Callable[[], int], clients: int, seconds: float) -> Tuple[List[float], Dict[str, int], float]:
    """`clients` threads calling `call()` (returns a status) back to back for `seconds`: (latencies of the 200s in
    ms, counts of other outcomes, elapsed s)."""
    latencies: List[List[float]] = [[] for _ in range(clients)]
    others: Dict[str, int] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)
    until = [float("inf")]

    def client(mine: List[float]) -> None:
        barrier.wait()
        while time.perf_counter() < until[0]:
            t0 = time.perf_counter()
            try:
                status = call()
            except Exception as exc:  # counted, not raised: the point is to see what load does
                status = type(exc).__name__
            if status == 200:
                mine.append((time.perf_counter() - t0) * 1e3)
            else:
                with lock:
                    others[str(status)] = others.get(str(status), 0) + 1

    threads = [threading.Thread(target=client, args=(lat,), daemon=True) for lat in latencies]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    until[0] = start + seconds
    for t in threads:
        t.join(seconds + 300)
    return [v for lat in latencies for v in lat], others, time.perf_counter() - start


def row(runtime: str, size: str, clients: int, measured: Tuple[List[float], Dict[str, int], float]) -> Row:
    latencies, others, elapsed = measured
    p50, p99 = (float(np.percentile(latencies, q)) for q in (50, 99)) if latencies else (float("nan"),) * 2
    return Row(runtime, size, clients, len(latencies), len(latencies) / elapsed, p50, p99, others)


class Server:
    """`g2d serve` in a subprocess on 127.0.0.1 (a free port)."""

    def __init__(self, gallery: Path, workers: int, queue: int) -> None:
        env = {**os.environ, "G2D_API_KEY": KEY, "PYTHONPATH": os.pathsep.join([str(REPO),
                                                                                os.environ.get("PYTHONPATH", "")])}
        self.process = subprocess.Popen([sys.executable, "-m", "g2d_edge", "serve", "--gallery", str(gallery),
                                         "--port", "0", "--workers", str(workers), "--queue-size", str(queue)],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        lines = []
        for line in self.process.stdout:
            lines.append(line)
            match = re.search(r"listening on (http://127\.0\.0\.1:\d+)/", line)
            if match:
                self.url = match.group(1)
                threading.Thread(target=self.process.stdout.read, daemon=True).start()  # keep the pipe drained
                return
        raise RuntimeError("g2d serve did not start:\n" + "".join(lines))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def measure_http(server: Server, size: str, jpeg: bytes, clients: int, seconds: float, warmup_s: float) -> Row:
    import requests

    local = threading.local()

    def call() -> int:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        r = local.session.post(f"{server.url}/identify", files={"image": ("photo.jpg", jpeg, "image/jpeg")},
                               timeout=120)
        if r.status_code == 200 and not r.json()["faces"]:
            return "no face"  # type: ignore[return-value]
        return r.status_code

    run_clients(call, clients, warmup_s)
    return row("g2d serve (HTTP)", size, clients, run_clients(call, clients, seconds))


def measure_sdk(rec: Any, size: str, jpeg: bytes, clients: int, seconds: float, warmup_s: float) -> Row:
    def call() -> int:
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        return 200 if rec.identify(image) else "no face"  # type: ignore[return-value]

    run_clients(call, clients, warmup_s)
    return row("SDK in process", size, clients, run_clients(call, clients, seconds))


def enrol(url: str, data: Path, people: int) -> None:
    import requests

    for name, photos in list_people(data)[:people]:
        files = [("photos", (p.name, p.read_bytes(), "image/jpeg")) for p in photos[:2]]
        r = requests.post(f"{url}/people/{name}/photos", files=files, headers={"X-API-Key": KEY}, timeout=120)
        r.raise_for_status()


def run(data: Path, sizes: Sequence[str], clients: Sequence[int], seconds: float, warmup_s: float,
        workers: int, people: int) -> Dict[str, Any]:
    from g2d_edge import Recognizer

    rows: List[Row] = []
    with tempfile.TemporaryDirectory(prefix="g2d-serve-http-") as tmp:
        gallery = Path(tmp) / "people.npz"
        server = Server(gallery, workers, queue=max(clients) * 2)
        try:
            enrol(server.url, data, people)
            rec = Recognizer(gallery=str(gallery))
            try:
                for size in sizes:
                    jpeg = photo(data, SIZES[size])
                    for n in clients:
                        for measure, target in ((measure_http, server), (measure_sdk, rec)):
                            rows.append(measure(target, size, jpeg, n, seconds, warmup_s))
                            log.info("%s", rows[-1])
            finally:
                rec.close()
        finally:
            server.stop()
    info = machine_info(gpu=False)
    return {"machine": info, "machine_line": machine_line(info), "settings": {
        "sizes": list(sizes), "clients": list(clients), "seconds": seconds, "warmup_s": warmup_s, "workers": workers,
        "people": people}, "rows": [asdict(r) for r in rows],
        "note": "clients, server and SDK threads share this machine; one face per photo; the SDK rows share one "
                "Recognizer as the server's worker does"}


def markdown(result: Dict[str, Any]) -> str:
    s = result["settings"]
    lines = [f"Machine: {result['machine_line']}; {s['seconds']:g} s per row, {s['workers']} server worker(s), "
             f"{s['people']} people enrolled", "",
             "| photo | clients | runtime | requests/s | p50 ms | p99 ms | not answered 200 |",
             "|---|---:|---|---:|---:|---:|---|"]
    for r in result["rows"]:
        bad = ", ".join(f"{k}: {v}" for k, v in r["not_ok"].items()) or "none"
        lines.append(f"| {r['size']} | {r['clients']} | {r['runtime']} | {r['requests_per_s']:.1f} | "
                     f"{r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {bad} |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks/serve.py http", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of people (default ../shared CelebA)")
    p.add_argument("--sizes", nargs="+", choices=tuple(SIZES), default=list(SIZES))
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--seconds", type=float, default=5.0, help="timed run per row")
    p.add_argument("--warmup", type=float, default=1.0, help="untimed run before each row")
    p.add_argument("--workers", type=int, default=1, help="g2d serve --workers")
    p.add_argument("--people", type=int, default=20, help="people enrolled first")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"result JSON (default {DEFAULT_JSON})")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    result = run(args.data, args.sizes, args.clients, args.seconds, args.warmup, args.workers, args.people)
    atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
