#!/usr/bin/env python3
"""Gallery search benchmark: latency and recall@1 of the file gallery, FAISS and Milvus at 10k to 1M identities.

Per gallery size (`--sizes`, identities), gallery search (`--fusions`: "max", an identity scores its best template;
"mean", its fused template, the search a Recognizer of the default model makes) and search engine, one row: build
time, single-query search latency p50 / p99 in ms (one face searched at a time, as a camera frame with one face
does), and recall@1 against exact search with the same fusion (the share of queries whose best identity is the one
exact cosine search finds). Engines:

- file gallery, NumPy (exact): `g2d_edge.Gallery` in memory, one matrix product per query (the reference);
- file gallery, FAISS flat (exact): `Gallery(use_faiss=True)`, FAISS's exact inner-product index;
- FAISS IVF (approximate): `faiss.IndexIVFFlat`, nlist = sqrt(templates), nprobe `--nprobe`;
- Milvus Lite, FLAT (exact) and HNSW (approximate, sizes up to `--hnsw-max`): `MilvusGallery` (pymilvus, gRPC over
  loopback) against a Milvus Lite server process started for the run (`milvus-lite server`), as an edge box talks
  to a Milvus server; Milvus Lite is Milvus's single-process engine, not the distributed Milvus server.

Embeddings: the gallery holds the real people (`--people` identities of the shared CelebA photos, `--templates`
photos each, embedded by the model) and synthetic distractor identities up to the size, one template each, drawn
from a Gaussian fitted to the real embeddings (their mean and covariance, then normalised), so that they crowd the
same cone of the embedding space real faces do. Queries are one further photo of each real person. The template
length comes from the model's sidecar.

    python benchmarks/gallery.py                          # 10k and 100k; JSON to benchmarks/results/gallery-cpu.json
    python benchmarks/gallery.py --sizes 10000 100000 1000000   # with the 1M row (minutes to build on 2 cores)
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import gc
import json
import logging
import math
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from g2d_edge.files import atomic_write_text  # noqa: E402
from g2d_edge.align import align_face  # noqa: E402
from g2d_edge.gallery import Gallery  # noqa: E402
from g2d_edge.gallery.protocol import FUSIONS  # noqa: E402
from g2d_edge.io import list_people  # noqa: E402
from g2d_edge.vectors import l2_normalise  # noqa: E402
from g2d_edge.machine import machine_info, machine_line  # noqa: E402
from g2d_edge.backends.loader import SHIPPED_MODEL  # noqa: E402
from g2d_edge.recognizer import Recognizer, RecognizerOptions  # noqa: E402

log = logging.getLogger("benchmarks.gallery")

DEFAULT_JSON = REPO / "benchmarks" / "results" / "gallery-cpu.json"
DEFAULT_PHOTOS = REPO.parent / "shared" / "data" / "celeba-train"
DISTRACTOR_PREFIX = "synthetic-"


@dataclass
class GallerySettings:
    """sizes: gallery sizes in identities; seconds: timed single-query searches per row (at most `queries`, at
    least `min_queries`); nprobe: FAISS IVF lists searched; hnsw_max: largest size given a Milvus HNSW row
    (its index build grows fastest); hnsw: Milvus HNSW index and search parameters; engines: which to run;
    min_free_gb: an engine whose estimated memory would leave less than this much of the machine's available
    memory is skipped (and says so) rather than risk pushing other processes out of memory. fusions: the gallery
    searches measured on each engine ("max": best template; "mean": fused template, what a Recognizer of the default
    model searches; FAISS IVF searches templates, so it has "max" rows only)."""

    sizes: Sequence[int] = (10_000, 100_000)
    seconds: float = 10.0
    queries: int = 200
    min_queries: int = 10
    nprobe: int = 16
    hnsw_max: int = 100_000
    hnsw: Dict[str, Any] = field(default_factory=lambda: {"M": 16, "efConstruction": 100, "ef": 64})
    engines: Sequence[str] = ("numpy", "faiss-flat", "faiss-ivf", "milvus-flat", "milvus-hnsw")
    seed: int = 0
    min_free_gb: float = 3.0
    fusions: Sequence[str] = FUSIONS


@dataclass
class RealSet:
    """Real embeddings: `templates` {person: (K, D)} enrolled, `queries` (Q, D) with `query_names` (Q,)."""

    templates: Dict[str, np.ndarray]
    queries: np.ndarray
    query_names: List[str]


@dataclass
class Row:
    """One measured engine at one gallery size."""

    engine: str
    identities: int
    templates: int
    exact: bool
    build_s: float
    p50_ms: float
    p99_ms: float
    timed_queries: int
    recall_at_1: Optional[float]
    skipped: str = ""
    fusion: str = "max"


# ---------------------------------------------------------------------------------------------- embeddings
def real_embeddings(model: Path, photos: Path, people: int, templates: int) -> RealSet:
    """Embed the first `people` identities of `photos` (<identity>/*.jpg) that have `templates` + 1 photos with a
    detected face: `templates` photos enrolled, the next one a query."""
    found: Dict[str, List[np.ndarray]] = {}
    with Recognizer(model=model, options=RecognizerOptions(warmup=False)) as rec:
        for name, paths in list_people(photos):
            embs = _person_embeddings(rec, paths, templates + 1)
            if embs is not None:
                found[name] = embs
            if len(found) == people:
                break
    if len(found) < 2:
        raise SystemExit(f"fewer than 2 people with {templates + 1} usable photos in {photos}")
    return RealSet(templates={n: np.stack(e[:templates]) for n, e in found.items()},
                   queries=np.stack([e[templates] for e in found.values()]), query_names=list(found))


def _person_embeddings(rec: Recognizer, photos: List[Path], needed: int) -> Optional[List[np.ndarray]]:
    from g2d_edge.io import read_image

    faces = []
    for photo in photos:
        image = read_image(photo)
        detections = rec.detect(image)
        if detections:
            faces.append(align_face(image, detections[0].keypoints))
        if len(faces) == needed:
            return list(rec.embed(np.stack(faces)))
    return None


def distractors(real: RealSet, count: int, seed: int, chunk: int = 100_000) -> Iterator[np.ndarray]:
    """`count` unit vectors from a Gaussian fitted to the real templates, in chunks of at most `chunk` rows."""
    data = np.concatenate(list(real.templates.values())).astype(np.float64)
    mean = data.mean(axis=0)
    cov = np.cov(data, rowvar=False) + 1e-4 * np.eye(data.shape[1])
    lower = np.linalg.cholesky(cov)
    rng = np.random.default_rng(seed)
    for start in range(0, count, chunk):
        z = rng.standard_normal((min(chunk, count - start), data.shape[1]))
        x = (mean + z @ lower.T).astype(np.float32)
        yield l2_normalise(x)


def gallery_content(real: RealSet, size: int, seed: int) -> Dict[str, np.ndarray]:
    """{name: (K, D) templates}: the real people plus synthetic distractors up to `size` identities."""
    content = dict(real.templates)
    n = 0
    for block in distractors(real, max(0, size - len(content)), seed):
        for row in block:
            content[f"{DISTRACTOR_PREFIX}{n:07d}"] = row[None]
            n += 1
    return content


# ---------------------------------------------------------------------------------------------- engines
class Engine:
    """A built search engine: `search(queries) -> top-1 names` (with its `fusion`), `close()`."""

    exact = True
    fusion = "max"

    def search(self, queries: np.ndarray) -> List[Optional[str]]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class GalleryEngine(Engine):
    """Any g2d gallery (file or Milvus) searched through the SDK."""

    def __init__(self, gallery: Any, exact: bool = True, on_close: Callable[[], None] = lambda: None,
                 uncached: Any = None) -> None:
        self.gallery, self.exact, self._on_close = gallery, exact, on_close
        self.uncached = uncached  # a Milvus handle on the same collection that reads fused templates every search

    def search(self, queries: np.ndarray) -> List[Optional[str]]:
        gallery = self.uncached if self.fusion == UNCACHED else self.gallery
        fusion = "mean" if self.fusion == UNCACHED else self.fusion
        out: List[Optional[str]] = []
        for start in range(0, len(queries), 32):  # bounded (queries x templates) score matrices
            found = gallery.search(queries[start:start + 32], top_k=1, fusion=fusion)
            out += [m[0].name if m else None for m in found]
        return out

    def close(self) -> None:
        self.gallery.close()
        if self.uncached is not None:
            self.uncached.close()
        self._on_close()


class FaissIvfEngine(Engine):
    """FAISS IVF over all templates; a template's identity is its owner."""

    exact = False

    def __init__(self, content: Dict[str, np.ndarray], nprobe: int, seed: int) -> None:
        import faiss

        self.names = list(content)
        counts = np.array([content[n].shape[0] for n in self.names])
        self.owner = np.repeat(np.arange(len(self.names)), counts)
        matrix = np.ascontiguousarray(np.concatenate([content[n] for n in self.names]), dtype=np.float32)
        nlist = max(1, int(math.sqrt(matrix.shape[0])))
        quantizer = faiss.IndexFlatIP(matrix.shape[1])
        self.index = faiss.IndexIVFFlat(quantizer, matrix.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(seed).choice(matrix.shape[0], min(matrix.shape[0], 40 * nlist), replace=False)
        self.index.train(matrix[np.sort(sample)])
        self.index.add(matrix)
        self.index.nprobe = nprobe
        self._quantizer = quantizer  # the IVF index keeps a pointer to it

    def search(self, queries: np.ndarray) -> List[Optional[str]]:
        q = np.ascontiguousarray(l2_normalise(queries))
        _, ids = self.index.search(q, 1)
        return [self.names[self.owner[i]] if i >= 0 else None for i in ids[:, 0]]


def build_engine(name: str, content: Dict[str, np.ndarray], space: str, settings: GallerySettings,
                 server: Optional[str]) -> Engine:
    """Make and fill one engine with `content`."""
    dim = next(iter(content.values())).shape[1]
    if name in ("numpy", "faiss-flat"):
        gallery = Gallery(embedding_space=space, embedding_dim=dim, use_faiss=name == "faiss-flat")
        gallery.add_many(content)
        gallery.search(next(iter(content.values()))[0])  # builds the search matrix / index
        return GalleryEngine(gallery)
    if name == "faiss-ivf":
        return FaissIvfEngine(content, settings.nprobe, settings.seed)
    if server is None:
        raise ValueError(f"engine {name} needs a Milvus server URL")
    return _milvus_engine(name, content, space, settings, server)


def _milvus_engine(name: str, content: Dict[str, np.ndarray], space: str, settings: GallerySettings,
                   server: str) -> Engine:
    from g2d_edge.gallery.milvus import MilvusGallery, MilvusGalleryOptions

    hnsw = name == "milvus-hnsw"
    params = dict(settings.hnsw)
    options = MilvusGalleryOptions(
        timeout_s=3600, index_type="HNSW" if hnsw else "FLAT",
        index_params={k: v for k, v in params.items() if k != "ef"} if hnsw else {},
        search_params={"ef": params.get("ef", 64)} if hnsw else {}, flush_writes=True)
    collection = f"{name.replace('-', '_')}_{len(content)}"
    gallery = MilvusGallery(f"{server}/{collection}", options)
    gallery.bind(space, next(iter(content.values())).shape[1], "benchmark")
    gallery.add_many(content)  # then flushed: Milvus Lite searches unflushed rows one by one
    gallery.search(next(iter(content.values()))[0])
    uncached = MilvusGallery(f"{server}/{collection}", dataclasses.replace(options, fused_cache_s=0))
    return GalleryEngine(gallery, exact=not hnsw, on_close=lambda: _drop_collection(server, collection),
                         uncached=uncached)


def _drop_collection(server: str, collection: str) -> None:
    from pymilvus import MilvusClient

    client = MilvusClient(server.replace("milvus://", "http://"), alias=f"drop-{collection}")
    try:
        client.drop_collection(collection)
    finally:
        client.close()


@contextlib.contextmanager
def milvus_lite_server(folder: Path, timeout_s: float = 60.0) -> Iterator[str]:
    """A Milvus Lite server process (`python -m milvus_lite server`) on a free loopback port, storing into
    `folder`, for the `with` block: yields its `milvus://127.0.0.1:PORT` URL. Edge boxes reach a Milvus server
    the same way, so client and server do not share this process's interpreter lock."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log_path = folder.parent / f"{folder.name}.log"
    with open(log_path, "w") as log_file:
        server = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(folder), "--host",
                                   "127.0.0.1", "--port", str(port)], stdout=log_file, stderr=subprocess.STDOUT)
        try:
            _wait_for_port(port, server, time.monotonic() + timeout_s, log_path)
            yield f"milvus://127.0.0.1:{port}"
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _wait_for_port(port: int, server: subprocess.Popen, deadline: float, log_path: Path) -> None:
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the Milvus Lite server did not start: {log_path.read_text()[-2000:]}")
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------------- measuring
def time_queries(engine: Engine, queries: np.ndarray, settings: GallerySettings) -> List[float]:
    """Single-query search latencies in ms, for `settings.seconds` (at least `min_queries`, at most `queries`)."""
    for q in queries[:2]:  # untimed warm-up
        engine.search(q[None])
    times: List[float] = []
    start = time.perf_counter()
    for i in range(settings.queries):
        q = queries[i % len(queries)][None]
        t0 = time.perf_counter()
        engine.search(q)
        times.append((time.perf_counter() - t0) * 1e3)
        if len(times) >= settings.min_queries and time.perf_counter() - start > settings.seconds:
            break
    return times


def measure_size(real: RealSet, size: int, space: str, settings: GallerySettings,
                 server: Optional[str]) -> List[Row]:
    """Every engine at one gallery size, each built once and searched with every fusion of `settings.fusions`;
    recall against the exact NumPy gallery's answers with the same fusion."""
    content = gallery_content(real, size, settings.seed)
    n_templates = sum(t.shape[0] for t in content.values())
    rows: List[Row] = []
    reference: Dict[str, List[Optional[str]]] = {}
    for name in _engines_for(size, settings):
        short = memory_shortfall(name, n_templates, real.queries.shape[1], settings.min_free_gb)
        if short or not reference and name != "numpy":
            why = short or "no exact reference (the NumPy row was skipped)"
            rows += [Row(ENGINE_LABELS[name], len(content), n_templates, ENGINE_EXACT[name], 0.0, 0.0, 0.0, 0, None,
                         skipped=why, fusion=fusion) for fusion in _fusions_of(name, settings)]
            log.warning("%s at %d identities skipped: %s", name, len(content), why)
            continue
        start = time.perf_counter()
        engine = build_engine(name, content, space, settings, server)
        build_s = time.perf_counter() - start
        try:
            for fusion in _fusions_of(name, settings):
                engine.fusion = fusion
                answers = engine.search(real.queries)
                reference.setdefault(fusion, answers)
                latencies = time_queries(engine, real.queries, settings)
                exact = reference["mean" if fusion == UNCACHED else fusion]
                recall = float(np.mean([a == r for a, r in zip(answers, exact)]))
                rows.append(Row(engine=ENGINE_LABELS[name], identities=len(content), templates=n_templates,
                                exact=ENGINE_EXACT[name], build_s=round(build_s, 2),
                                p50_ms=float(np.percentile(latencies, 50)),
                                p99_ms=float(np.percentile(latencies, 99)), timed_queries=len(latencies),
                                recall_at_1=recall, fusion=fusion))
                log.info("%s", rows[-1])
        finally:
            engine.close()
            del engine
            release_memory()
    order = list(settings.fusions) + [UNCACHED]
    return sorted(rows, key=lambda r: (order.index(r.fusion), list(ENGINE_LABELS.values()).index(r.engine)))


def _fusions_of(engine: str, settings: GallerySettings) -> List[str]:
    """The fusions an engine is measured with: FAISS IVF indexes templates, so best template only; a Milvus engine
    is also measured reading its fused templates for every search (`UNCACHED`)."""
    fusions = [f for f in settings.fusions if f == "max" or engine != "faiss-ivf"]
    return fusions + ([UNCACHED] if "mean" in fusions and engine.startswith("milvus") else [])


def release_memory() -> None:
    """Collect garbage and hand freed heap memory back to the system (glibc keeps the many small per-identity
    arrays of a large gallery otherwise), so the next engine's memory check sees what is really free."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


#: Rough memory an engine holds, in multiples of the raw float32 templates, beyond the benchmark's own copy: the
#: SDK's normalised copy and search matrix, FAISS's index; for Milvus Lite the server process (measured: 1.9 GB
#: resident for 100k 512-d templates, 205 MB of vectors).
MEMORY_FACTOR = {"numpy": 2.2, "faiss-flat": 3.2, "faiss-ivf": 2.2, "milvus-flat": 10.0, "milvus-hnsw": 11.0}


def memory_shortfall(engine: str, templates: int, dim: int, min_free_gb: float) -> str:
    """Why `engine` must be skipped for lack of memory ("" when it fits or /proc/meminfo is unreadable)."""
    try:
        meminfo = Path("/proc/meminfo").read_text().split("\n")
        available = next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return ""
    need = templates * dim * 4 * MEMORY_FACTOR[engine]
    if available - need >= min_free_gb * 2 ** 30:
        return ""
    return (f"needs about {need / 2 ** 30:.1f} GiB, {available / 2 ** 30:.1f} GiB available (keeping "
            f"{min_free_gb:g} GiB free)")


def _engines_for(size: int, settings: GallerySettings) -> List[str]:
    # the exact reference first, then the database (the one that matters most when memory runs short), then FAISS
    names = ["numpy"] + sorted((e for e in settings.engines if e != "numpy"), key=lambda e: not e.startswith("milvus"))
    return [e for e in names if e != "milvus-hnsw" or size <= settings.hnsw_max]


ENGINE_LABELS = {"numpy": "file gallery, NumPy", "faiss-flat": "file gallery, FAISS flat",
                 "faiss-ivf": "FAISS IVF", "milvus-flat": "Milvus Lite, FLAT", "milvus-hnsw": "Milvus Lite, HNSW"}
#: The fused search of a Milvus gallery that reads the fused templates for every search (`fused_cache_s=0`); "mean"
#: reuses them for 10 s (`MilvusGalleryOptions.fused_cache_s`), which the timed searches, cycling through 200 people
#: within the cache time, mostly do.
UNCACHED = "mean, no cache"
ENGINE_EXACT = {"numpy": True, "faiss-flat": True, "faiss-ivf": False, "milvus-flat": True, "milvus-hnsw": False}


def run_benchmark(real: RealSet, model_info: Dict[str, Any], settings: GallerySettings) -> Dict[str, Any]:
    """Measure every size; returns {"machine", "model", "settings", "rows", ...}."""
    rows: List[Row] = []
    with contextlib.ExitStack() as stack:
        server = None
        if any(e.startswith("milvus") for e in settings.engines):
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="g2d-gallery-bench-")))
            server = stack.enter_context(milvus_lite_server(tmp / "milvus.db"))
        for size in settings.sizes:
            rows += measure_size(real, size, model_info["embedding_space"], settings, server)
    info = machine_info(gpu=False)
    return {"machine": info, "machine_line": machine_line(info), "model": model_info,
            "settings": asdict(settings), "real_people": len(real.templates), "queries": len(real.query_names),
            "versions": _versions(), "rows": [asdict(r) for r in rows],
            "note": "single-query latency; the Milvus rows search through MilvusGallery (pymilvus, gRPC over loopback) "
                    "a Milvus Lite server process on the same cores; recall@1 is agreement with exact cosine search "
                    "(NumPy)"}


def _versions() -> Dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("numpy", "faiss-cpu", "pymilvus", "milvus-lite"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def markdown(result: Dict[str, Any]) -> str:
    """The result as a Markdown table, with the machine named."""
    lines = [f"Machine: {result['machine_line']}; model {result['model']['name']} "
             f"({result['model']['embedding_dim']}-d); {result['real_people']} real people, "
             f"{result['queries']} queries",
             "", "| identities | search | engine | exact | build s | p50 ms | p99 ms | recall@1 |",
             "|---:|---|---|:---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        head = f"| {r['identities']:,} | {r.get('fusion', 'max')} | {r['engine']} | {'yes' if r['exact'] else 'no'} |"
        if r.get("skipped"):
            lines.append(f"{head} skipped: {r['skipped']} | | | |")
            continue
        lines.append(f"{head} {r['build_s']:.1f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['recall_at_1']:.3f} |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--model", type=Path, default=SHIPPED_MODEL, help="model that embeds the real photos")
    p.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="<identity>/*.jpg folders of real photos")
    p.add_argument("--people", type=int, default=200, help="real people enrolled (one query each)")
    p.add_argument("--templates", type=int, default=2, help="photos enrolled per real person")
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000],
                   help="gallery sizes in identities (add 1000000 for the 1M row: minutes to build on 2 cores)")
    p.add_argument("--seconds", type=float, default=10.0, help="timed single-query searches per row, in seconds")
    p.add_argument("--engines", nargs="+", default=list(ENGINE_LABELS), choices=list(ENGINE_LABELS))
    p.add_argument("--fusions", nargs="+", default=list(FUSIONS), choices=FUSIONS,
                   help="gallery searches measured on each engine: best template, fused template (the default model's)")
    p.add_argument("--hnsw-max", type=int, default=100_000, help="largest size with a Milvus HNSW row")
    p.add_argument("--nprobe", type=int, default=16, help="FAISS IVF lists searched per query")
    p.add_argument("--min-free-gb", type=float, default=3.0,
                   help="skip an engine whose estimated memory would leave less than this much available")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"result JSON (default {DEFAULT_JSON})")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    settings = GallerySettings(sizes=args.sizes, seconds=args.seconds, engines=args.engines, hnsw_max=args.hnsw_max,
                               nprobe=args.nprobe, min_free_gb=args.min_free_gb, fusions=args.fusions)
    start = time.perf_counter()
    real = real_embeddings(args.model, args.photos, args.people, args.templates)
    log.info("embedded %d real people in %.0f s", len(real.templates), time.perf_counter() - start)
    result = run_benchmark(real, model_description(args.model), settings)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    return 0


def model_description(model: Path) -> Dict[str, Any]:
    """Name, embedding length and embedding space of a model, from its sidecar."""
    from g2d_edge.sidecar import ModelSidecar

    sidecar = ModelSidecar.load(Path(model).with_suffix(".json"))
    return {"path": str(model), "name": sidecar.name, "embedding_dim": int(sidecar.embedding_dim),
            "embedding_space": sidecar.embedding_space}


if __name__ == "__main__":
    sys.exit(main())
