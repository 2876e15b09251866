"""The triton backend against a real Triton Inference Server (nothing mocked).

One server for this module: the `tritonserver` binary of the `nvidia-pytriton` wheel, started as a separate process
by `export.pytriton_server.start_server` in the server environment that `.ci/run` makes (.cache/triton-server-venv,
Debian's python3.11 with a shared libpython). It serves a repository written by `g2d-export triton`: the tiny model
("tiny", dynamic batching, max batch 8), the same model without dynamic batching ("tiny-nobatch") and a model of
another embedding space ("other"), each bound to an ONNX Runtime session with the tensor names, batching and
parameters of its config.pbtxt. Without that environment (a developer machine that never ran .ci/run) the server
tests skip and say why.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Dict

import numpy as np
import pytest

from g2d_edge import Recognizer, RecognizerOptions
from g2d_edge.backends import BackendOptions, OnnxRuntimeBackend, load_backend
from g2d_edge.backends.faces import synthetic_faces
from g2d_edge.backends.triton import (Endpoint, TritonBackend, TritonOptions, check_served_config,
                                      inference_statistics, parse_url)
from g2d_edge.cli import main as g2d_main
from g2d_edge.errors import BackendUnavailableError, InputError, ModelError
from g2d_edge.video import FrameStream
from g2d_edge.sidecar import ModelSidecar
from runtime_helpers import read, tile


# ------------------------------------------------------------------------------------------- without a server
def test_urls():
    assert parse_url("grpc://edge-gpu:8001") == parse_url("grpc://edge-gpu")
    assert parse_url("http://10.1.2.3").address == "10.1.2.3:8000"
    assert parse_url("https://[::1]:9000") == Endpoint("http", "[::1]:9000", True)
    for bad in ("edge-gpu:8001", "tcp://h:1", "grpc://", "grpc://h:99999", "http://h:8000/v2"):
        with pytest.raises(InputError, match="grpc://host:8001"):
            parse_url(bad)
    with pytest.raises(InputError, match="timeout_s"):
        TritonOptions(timeout_s=0)


def test_served_config_must_describe_the_local_sidecar(tiny_onnx_model: Path):
    sidecar = ModelSidecar.load(tiny_onnx_model.with_suffix(".json"))
    config = {"max_batch_size": 8,
              "input": [{"name": "faces", "data_type": "TYPE_UINT8", "dims": ["112", "112", "3"]}],
              "output": [{"name": "embedding", "data_type": "TYPE_FP32", "dims": [sidecar.embedding_dim]},
                         {"name": "logits", "data_type": "TYPE_FP32", "dims": [sidecar.num_classes]}],
              "parameters": {"g2d_embedding_space": {"string_value": sidecar.embedding_space}}}
    assert check_served_config(config, sidecar, "m") == 8
    broken = [({**config, "parameters": {}}, "does not declare"),
              ({**config, "max_batch_size": 0}, "no batch dimension"),
              ({**config, "input": [{"name": "input", "data_type": "TYPE_FP32", "dims": [3, 112, 112]}]}, "no input"),
              ({**config, "output": config["output"][:1]}, "no output 'logits'"),
              ({**config, "output": [{**config["output"][0], "dims": [128]}, config["output"][1]]}, r"\[128\]")]
    for served, message in broken:
        with pytest.raises(ModelError, match=message):
            check_served_config(served, sidecar, "m")


def test_missing_tritonclient_is_named(monkeypatch, tiny_onnx_model: Path):
    monkeypatch.setitem(sys.modules, "tritonclient.grpc", None)  # as if the [triton] extra were not installed
    with pytest.raises(BackendUnavailableError, match=r"g2d-edge\[triton\]"):
        load_backend(tiny_onnx_model, "triton", BackendOptions.of(url="grpc://127.0.0.1:1"))


def silent_listener() -> socket.socket:
    """A loopback port that accepts connections and never answers (a hung server)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


@pytest.mark.parametrize("scheme", ["grpc", "http"])
def test_unreachable_and_silent_servers_fail_within_the_bounds(tiny_onnx_model: Path, scheme: str):
    pytest.importorskip("tritonclient.grpc", reason="tritonclient is not installed: pip install -e '.[triton]'")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(BackendUnavailableError, match="did not answer a liveness check"):
        load_backend(tiny_onnx_model, "triton", BackendOptions.of(url=f"{scheme}://127.0.0.1:{port}", timeout_s=1,
                                                                  retries=1, retry_backoff_s=0.05))
    assert time.monotonic() - start < 3
    with silent_listener() as sock:
        start = time.monotonic()
        with pytest.raises(BackendUnavailableError, match=r"2 tries, 0.4 s each"):
            load_backend(tiny_onnx_model, "triton", BackendOptions.of(
                url=f"{scheme}://127.0.0.1:{sock.getsockname()[1]}", timeout_s=0.4, retries=1, retry_backoff_s=0.05))
        elapsed = time.monotonic() - start
    assert 0.8 <= elapsed < 4  # two tries, each cut off at timeout_s


# ------------------------------------------------------------------------------------------- the real server
@pytest.fixture(scope="module")
def triton(tiny_onnx_model: Path, other_space_model: Path, tmp_path_factory):
    """The running server: {"grpc": url, "http": url, "stats": fn(model) -> counters}. Its model repository is
    written by the export tools (export.triton), and the server started by export.pytriton_server."""
    pytest.importorskip("tritonclient.grpc", reason="tritonclient is not installed: pip install -e '.[triton]'")
    from export.pytriton_server import server_python, start_server
    from export.triton import TritonRepoOptions, write_triton_repository

    if server_python() is None:
        why = ("no Triton server environment (.cache/triton-server-venv, made by .ci/run; or set G2D_TRITON_PYTHON): "
               "see README 'Scaling out'")
        (pytest.fail if os.environ.get("CI") else pytest.skip)(why)  # CI makes it: a missing one is a failure there
    repo = tmp_path_factory.mktemp("triton") / "model_repository"
    cpu = TritonRepoOptions(device="cpu", tensorrt="no", max_batch_size=8, max_queue_delay_us=2000)
    write_triton_repository(tiny_onnx_model, repo, cpu)
    write_triton_repository(tiny_onnx_model, repo, replace(cpu, model_name="tiny-nobatch", dynamic_batching=False))
    write_triton_repository(other_space_model, repo, cpu)
    server = start_server(repo, threads=1)
    try:
        yield {"grpc": server.grpc_url, "http": server.http_url,
               "stats": lambda model: inference_statistics(server.http_url, model)}
    finally:
        server.stop()


def delta(after: Dict[str, int], before: Dict[str, int]) -> Dict[str, int]:
    return {k: after[k] - before[k] for k in after}


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_served_embeddings_equal_in_process_ones(triton, tiny_onnx_model: Path, protocol: str):
    faces = synthetic_faces(11, np.random.default_rng(5))
    local_emb, local_logits = OnnxRuntimeBackend(tiny_onnx_model).infer(faces)
    with load_backend(tiny_onnx_model, "triton", BackendOptions.of(url=triton[protocol])) as backend:
        assert isinstance(backend, TritonBackend) and backend.max_batch == 8  # the served model's max_batch_size
        before = triton["stats"]("tiny")
        emb, logits = backend.infer(faces)
        assert delta(triton["stats"]("tiny"), before)["requests"] == 2  # 11 faces: 8 + 3
    assert emb.shape == local_emb.shape and emb.dtype == np.float32
    assert np.min(np.sum(emb * local_emb, axis=1)) > 0.9999
    np.testing.assert_allclose(logits, local_logits, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)


def test_a_frame_is_one_request_and_recognition_is_unchanged(triton, tiny_onnx_model: Path, people):
    photos = [read(p[0]) for p in people.values()]
    frame = tile(photos + [read(next(iter(people.values()))[1])], cell=200)
    with Recognizer(tiny_onnx_model) as local, \
            Recognizer(tiny_onnx_model, backend="triton", options=RecognizerOptions(
                backend_options=BackendOptions.of(url=triton["grpc"], model_name="tiny"))) as remote:
        for name, p in people.items():
            local.enroll(name, p[:2])
            remote.enroll(name, p[:2])
        before = triton["stats"]("tiny")
        served = remote.identify(frame)
        change = delta(triton["stats"]("tiny"), before)
        expected = local.identify(frame)
    assert len(served) == 4 and change["requests"] == 1 and change["faces"] == 4
    assert [r.name for r in served] == [r.name for r in expected]
    assert [r.score for r in served] == pytest.approx([r.score for r in expected], abs=1e-4)
    assert remote.threshold == local.threshold and remote.gallery.embedding_space == local.gallery.embedding_space


def test_dynamic_batching_merges_the_requests_of_concurrent_cameras(triton, tiny_onnx_model: Path):
    faces = synthetic_faces(8, np.random.default_rng(1))

    def cameras(model: str) -> Dict[str, int]:
        backends = [load_backend(tiny_onnx_model, "triton", BackendOptions.of(url=triton["grpc"], model_name=model))
                    for _ in range(8)]
        before = triton["stats"](model)
        threads = [threading.Thread(target=lambda b=b, i=i: [b.infer(faces[i:i + 1]) for _ in range(10)])
                   for i, b in enumerate(backends)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for b in backends:
            b.close()
        deadline = time.monotonic() + 10  # the server's statistics may trail the replies by a moment under load
        while delta(triton["stats"](model), before)["requests"] < 80 and time.monotonic() < deadline:
            time.sleep(0.1)
        return delta(triton["stats"](model), before)

    batched, alone = cameras("tiny"), cameras("tiny-nobatch")
    assert batched["requests"] == alone["requests"] == 80 and batched["faces"] == alone["faces"] == 80
    assert alone["executions"] == 80  # without dynamic batching every request runs alone
    assert batched["executions"] < 80  # with it, concurrent requests share executions


def test_stream_mode_over_http(triton, tiny_onnx_model: Path, people):
    """The stream worker calls the backend from its own thread (one HTTP connection per thread)."""
    photos = [read(p[0]) for p in people.values()]
    results = []
    with Recognizer(tiny_onnx_model, backend="triton",
                    options=RecognizerOptions(backend_options=BackendOptions.of(url=triton["http"]))) as rec:
        rec.enroll("first", photos[0])
        with FrameStream(rec, callback=results.append) as stream:
            for i, photo in enumerate(photos):
                stream.submit(photo, 40 * i)
                assert stream.wait_idle(timeout=30)
    assert [r.timestamp_ms for r in results] == [40 * i for i in range(len(photos))]
    assert results[0].faces[0].name == "first" and results[0].faces[0].score > 0.99


def test_a_server_serving_another_model_is_refused(triton, tiny_onnx_model: Path, other_space_model: Path):
    other_space = ModelSidecar.load(other_space_model.with_suffix(".json")).embedding_space
    with pytest.raises(ModelError, match=f"serves other .*embedding space {other_space}.*tiny"):
        load_backend(tiny_onnx_model, "triton", BackendOptions.of(url=triton["grpc"], model_name="other"))
    with pytest.raises(ModelError, match="'nope' .*is not ready"):
        load_backend(tiny_onnx_model, "triton", BackendOptions.of(url=triton["http"], model_name="nope"))
    with load_backend(other_space_model, "triton", BackendOptions.of(url=triton["grpc"])) as backend:  # own sidecar: ok
        assert backend.model_name == "other"


def test_cli_over_triton(triton, tiny_onnx_model: Path, people, tmp_path: Path, capsys):
    gallery = tmp_path / "people.npz"
    name, photos = next(iter(people.items()))
    common = ["--model", str(tiny_onnx_model), "--url", triton["grpc"], "--json"]
    assert g2d_main(["enroll", name, *map(str, photos[:2]), "--gallery", str(gallery), *common]) == 0
    capsys.readouterr()
    assert g2d_main(["identify", str(photos[2]), "--gallery", str(gallery), *common]) == 0
    out = json.loads(capsys.readouterr().out)
    with Recognizer(tiny_onnx_model, gallery=gallery) as local:
        expected = local.identify(read(photos[2]))
    assert [f["name"] for f in out["faces"]] == [r.name for r in expected]
    assert out["faces"][0]["score"] == pytest.approx(expected[0].score, abs=1e-3)


def test_serve_benchmark_rows(triton, tiny_onnx_model: Path, load_script):
    serve = load_script("benchmarks/serve.py", "g2d_serve_bench")
    settings = serve.ServeSettings(cameras=(1, 2), seconds=0.4, warmup_s=0.1)
    result = serve.run_benchmark(tiny_onnx_model, triton["grpc"], "tiny", settings)
    rows = result["rows"]
    assert [(r["cameras"], r["runtime"]) for r in rows] == [
        (c, t) for c in (1, 2) for t in ("ONNX Runtime in process", "Triton, dynamic batching", "Triton, no batching")]
    for r in rows:
        assert r["requests"] > 0 and r["faces_per_s"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"]
        assert (r["faces_per_execution"] is None) == (r["runtime"] == "ONNX Runtime in process")
    assert all(r["faces_per_execution"] == 1 for r in rows if r["runtime"] == "Triton, no batching")
    assert result["machine"]["cores"] and "| 2 | Triton, dynamic batching |" in serve.markdown(result)
