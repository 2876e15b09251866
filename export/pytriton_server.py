"""Serve a model repository written by `g2d-export triton` on a real Triton server without Docker or a GPU.

The NGC `tritonserver` container runs the repository's ONNX Runtime (and TensorRT) models itself. Where that
container cannot run (CPU-only CI, a laptop), this script runs the `tritonserver` binary that the `nvidia-pytriton`
wheel ships: every `onnxruntime_onnx` model of the repository is bound, through PyTriton, to an ONNX Runtime session of
its newest `<version>/model.onnx`, with what its `config.pbtxt` says (read with Triton's own model-config protobuf):
the same model name, version, tensor names, dtypes and dims, `max_batch_size`, dynamic batching (queue delay,
preferred sizes), instance count, and the `g2d_*` parameters that tell clients which embedding space is served.
Clients cannot tell the difference except in speed: the bound model runs in Triton's Python backend.

It runs in its own environment, never inside the SDK's: PyTriton's Python-backend stub needs a Python with a shared
libpython of the same patch level (Debian's /usr/bin/python3.11 works; pyenv builds without --enable-shared do not).

    /usr/bin/python3.11 -m venv .cache/triton-server-venv
    .cache/triton-server-venv/bin/pip install nvidia-pytriton==0.7.0 onnxruntime "numpy<2"
    .cache/triton-server-venv/bin/python export/pytriton_server.py --repository model_repository/ --grpc-port 8001

The server half of this file imports only the standard library, numpy, onnxruntime, pytriton and tritonclient (a
pytriton dependency), never g2d_edge, export or train. SIGINT or SIGTERM stops the server and its Triton process.

The launcher half (`start_server`, `LocalServer`) runs in the SDK's environment: tests and `benchmarks/serve.py` start
the server as a separate process with it, on loopback ports, wait until its models are ready, and stop it.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

log = logging.getLogger("pytriton_server")

#: The server environment .ci/run makes (Debian's python3.11 + nvidia-pytriton); $G2D_TRITON_PYTHON overrides it.
DEFAULT_SERVER_PYTHON = Path(__file__).resolve().parents[1] / ".cache" / "triton-server-venv" / "bin" / "python"
_NUMPY_TYPES = {"TYPE_UINT8": np.uint8, "TYPE_FP32": np.float32, "TYPE_FP16": np.float16, "TYPE_INT64": np.int64}


@dataclass
class ServedModel:
    """One repository model as read from its config.pbtxt."""

    name: str
    version: int
    onnx_path: Path
    config: object  # tritonclient.grpc.model_config_pb2.ModelConfig
    parameters: Dict[str, str]


def read_config(model_dir: Path):
    """Parse `model_dir/config.pbtxt` with Triton's ModelConfig protobuf (a malformed file fails here, as in Triton)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse((model_dir / "config.pbtxt").read_text(encoding="utf-8"), model_config_pb2.ModelConfig())


def newest_version(model_dir: Path) -> int:
    """Triton's default version policy: the highest numeric folder (no leading zero) serves."""
    versions = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit() and p.name[0] != "0"]
    if not versions:
        raise SystemExit(f"{model_dir} has no version folder (1/, 2/ ...)")
    return max(versions)


def find_models(repository: Path, names: Optional[Sequence[str]]) -> List[ServedModel]:
    """The ONNX Runtime models of a repository (all of them, or those named)."""
    models = []
    for model_dir in sorted(p for p in repository.iterdir() if (p / "config.pbtxt").is_file()):
        config = read_config(model_dir)
        name = config.name or model_dir.name
        if names and name not in names:
            continue
        if config.platform != "onnxruntime_onnx":
            log.info("skipping %s: platform %s needs the NGC container", name, config.platform or config.backend)
            continue
        version = newest_version(model_dir)
        models.append(ServedModel(name, version, model_dir / str(version) / "model.onnx", config,
                                  {k: v.string_value for k, v in config.parameters.items()}))
    missing = sorted(set(names or ()) - {m.name for m in models})
    if missing or not models:
        raise SystemExit(f"no ONNX Runtime model {missing or ''} in {repository}; write one with `g2d-export triton`")
    return models


def make_session(onnx_path: Path, threads: int):
    """An ONNX Runtime CPU session whose idle threads do not spin (the CPU is shared with Triton's own threads)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads > 0:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"])


def make_infer_func(session, output_names: List[str]) -> Callable:
    """A PyTriton inference callable running `session` on the batch Triton assembled."""
    from pytriton.decorators import batch

    @batch
    def infer(**inputs: np.ndarray) -> Dict[str, np.ndarray]:
        results = session.run(output_names, inputs)
        return dict(zip(output_names, results))

    return infer


def add_config_parameters(parameters: Dict[str, Dict[str, str]]) -> None:
    """Make PyTriton write each model's `parameters` into the config it generates, as the exported config.pbtxt has
    them (PyTriton's public ModelConfig has no field for them; its generator writes `backend_parameters` there)."""
    from pytriton.models.model import Model

    original = Model._get_triton_model_config
    if getattr(original, "_g2d_parameters", False):
        return

    def with_parameters(self):
        config = original(self)
        config.backend_parameters.update(parameters.get(self.model_name, {}))
        return config

    with_parameters._g2d_parameters = True
    Model._get_triton_model_config = with_parameters


def bind(triton, model: ServedModel, threads: int) -> None:
    """Bind `model` to the running PyTriton instance with the config its config.pbtxt describes."""
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor

    cfg = model.config
    inputs = [Tensor(name=t.name, dtype=_NUMPY_TYPES[_type_name(t.data_type)], shape=tuple(t.dims)) for t in cfg.input]
    outputs = [Tensor(name=t.name, dtype=_NUMPY_TYPES[_type_name(t.data_type)], shape=tuple(t.dims))
               for t in cfg.output]
    batcher = None
    if cfg.HasField("dynamic_batching"):
        batcher = DynamicBatcher(max_queue_delay_microseconds=cfg.dynamic_batching.max_queue_delay_microseconds,
                                 preferred_batch_size=list(cfg.dynamic_batching.preferred_batch_size) or None)
    instances = sum(g.count or 1 for g in cfg.instance_group) or 1
    funcs = [make_infer_func(make_session(model.onnx_path, threads), [t.name for t in cfg.output])
             for _ in range(instances)]
    triton.bind(model_name=model.name, model_version=model.version, infer_func=funcs, inputs=inputs,
                outputs=outputs, config=ModelConfig(batching=cfg.max_batch_size > 0,
                                                    max_batch_size=max(cfg.max_batch_size, 1), batcher=batcher))
    log.info("bound %s v%d (%s): max_batch_size %d, dynamic batching %s, %d instance(s)", model.name, model.version,
             model.onnx_path, cfg.max_batch_size, "on" if batcher else "off", instances)


def _type_name(data_type: int) -> str:
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2.DataType.Name(data_type)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repository", type=Path, required=True, help="model repository written by g2d-export triton")
    p.add_argument("--models", nargs="*", help="serve only these models (default: every ONNX Runtime model)")
    p.add_argument("--address", default="127.0.0.1", help="address to listen on (default loopback only)")
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--metrics-port", type=int, default=8002)
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads per instance (0: its default)")
    p.add_argument("--log-verbose", type=int, default=0, help="Triton's verbose log level")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

    models = find_models(args.repository, args.models)
    add_config_parameters({m.name: m.parameters for m in models})
    config = TritonConfig(http_address=args.address, http_port=args.http_port, grpc_address=args.address,
                          grpc_port=args.grpc_port, metrics_address=args.address, metrics_port=args.metrics_port,
                          log_verbose=args.log_verbose, allow_gpu_metrics=False)

    def stop(signum, frame):  # SIGTERM -> the same clean shutdown as Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    # PyTriton guards these APIs with a token by default; statistics stay readable, as on a stock Triton server
    # (benchmarks and tests read how many faces each execution batched)
    security = TritonSecurityConfig(restricted_endpoints=["shared-memory", "model-repository", "trace", "logging"])
    with Triton(config=config, security_config=security) as triton:
        for model in models:
            bind(triton, model, args.threads)
        triton.serve()
    return 0


# ------------------------------------------------------------------------------------------------------ launcher
def server_python() -> Optional[Path]:
    """The Python of the server environment ($G2D_TRITON_PYTHON, else .cache/triton-server-venv), None if absent."""
    path = Path(os.environ.get("G2D_TRITON_PYTHON") or DEFAULT_SERVER_PYTHON)
    return path if path.is_file() else None


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalServer:
    """A running server process: its gRPC / HTTP URLs and its log file; `stop()` ends it and its Triton process."""

    process: subprocess.Popen
    grpc_url: str
    http_url: str
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL to the whole process group after `timeout_s`."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("the Triton server did not stop within %.0f s; killing it", timeout_s)
        try:  # the server's own process group (start_new_session): tritonserver and its Python-backend stubs
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()

    def __enter__(self) -> "LocalServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _model_ready(http_port: int, name: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/models/{name}/ready", timeout=2) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_server(repository: Path, models: Optional[Sequence[str]] = None, python: Optional[Path] = None,
                 log_path: Optional[Path] = None, ready_timeout_s: float = 180.0, threads: int = 0) -> LocalServer:
    """Start this script on `repository` in the server environment, on free loopback ports, and wait until every
    served model (`models`, default: every model folder) is ready. Raises BackendUnavailableError when there is no
    server environment or the server does not come up (with the end of its log)."""
    from g2d_edge.errors import BackendUnavailableError  # the launcher runs in the SDK's environment

    python = python or server_python()
    if python is None:
        raise BackendUnavailableError(f"no Triton server environment at {DEFAULT_SERVER_PYTHON} (set "
                                      "G2D_TRITON_PYTHON); make it as `.ci/run` does (README 'Scaling out')")
    repository = Path(repository)
    names = list(models or sorted(p.name for p in repository.iterdir() if (p / "config.pbtxt").is_file()))
    grpc_port, http_port, metrics_port = free_port(), free_port(), free_port()
    log_path = Path(log_path or repository.parent / f"tritonserver-{http_port}.log")
    command = [str(python), str(Path(__file__).resolve()), "--repository", str(repository), "--models", *names,
               "--grpc-port", str(grpc_port), "--http-port", str(http_port), "--metrics-port", str(metrics_port),
               "--threads", str(threads)]
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    server = LocalServer(process, f"grpc://127.0.0.1:{grpc_port}", f"http://127.0.0.1:{http_port}", log_path)
    deadline = time.monotonic() + ready_timeout_s
    while not all(_model_ready(http_port, name) for name in names):
        if process.poll() is not None or time.monotonic() > deadline:
            why = "exited" if process.poll() is not None else f"was not ready after {ready_timeout_s:.0f} s"
            server.stop()
            raise BackendUnavailableError(f"the Triton server for {repository} {why}; its log ({log_path}) ends:\n"
                                          f"{server.log_tail()}")
        time.sleep(0.5)
    log.info("Triton server ready: %s, %s (models %s)", server.grpc_url, server.http_url, ", ".join(names))
    return server


if __name__ == "__main__":
    sys.exit(main())
