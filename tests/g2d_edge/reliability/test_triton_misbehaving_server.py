"""Issue 22, class "remote inference": the triton backend against a misbehaving HTTP server on 127.0.0.1 (a
stand-in that speaks just enough of Triton's HTTP/REST protocol; every handler stops when the test ends). A server
that drip-feeds its answer is cut off at `timeout_s` in total; garbage, invalid JSON, a malformed model
configuration, embeddings of the wrong width or with NaN are a ServerReplyError that names the server, never a
raw ValueError nor a ModelError blaming the local model file."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

pytest.importorskip("tritonclient.http")

from g2d_edge.backends import BackendOptions, load_backend  # noqa: E402
from g2d_edge.backends.triton import TritonBackend, TritonOptions  # noqa: E402
from g2d_edge.errors import BackendUnavailableError, ServerReplyError  # noqa: E402
from g2d_edge.sidecar import ModelSidecar  # noqa: E402

FACE = np.zeros((1, 112, 112, 3), np.uint8)


def good_config(sidecar):
    return {"name": sidecar.name, "max_batch_size": 8,
            "input": [{"name": sidecar.input.name, "data_type": "TYPE_UINT8", "dims": [112, 112, 3]}],
            "output": [{"name": sidecar.outputs[0], "data_type": "TYPE_FP32", "dims": [sidecar.embedding_dim]},
                       {"name": sidecar.outputs[1], "data_type": "TYPE_FP32", "dims": [sidecar.num_classes]}],
            "parameters": {"g2d_embedding_space": {"string_value": sidecar.embedding_space}}}


class FakeTriton:
    """A Triton look-alike whose replies the test chooses: `routes[kind]` for kind in live, ready, config, infer is
    ("json", object), ("raw", bytes) or ("drip", seconds between bytes)."""

    def __init__(self, sidecar):
        self.sidecar = sidecar
        self.stop = threading.Event()
        self.requests = []
        self.routes = {"live": ("raw", b""), "ready": ("raw", b""), "config": ("json", good_config(sidecar)),
                       "infer": ("embeddings", None)}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                fake.answer(self)

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.answer(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, handler):
        path = handler.path
        kind = ("live" if path.endswith("/health/live") else "ready" if path.endswith("/ready")
                else "config" if path.endswith("/config") else "infer" if path.endswith("/infer") else None)
        self.requests.append(kind)
        how, what = self.routes.get(kind, ("raw", b""))
        if how == "drip":
            return self.drip(handler, what)
        if how == "embeddings":
            what = self.embeddings(*(what or (self.sidecar.embedding_dim, 0.1)))
            how = "json"
        body = json.dumps(what).encode() if how == "json" else what
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def embeddings(self, width, value):
        sc = self.sidecar
        return {"model_name": sc.name, "outputs": [
            {"name": sc.outputs[0], "datatype": "FP32", "shape": [1, width], "data": [value] * width},
            {"name": sc.outputs[1], "datatype": "FP32", "shape": [1, sc.num_classes], "data": [0.0] * sc.num_classes}]}

    def drip(self, handler, pause):
        """Headers that promise a long JSON body, then one byte of it every `pause` s (for at most 20 s)."""
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        handler.wfile.flush()
        deadline = time.monotonic() + 20
        try:
            while not self.stop.is_set() and time.monotonic() < deadline:
                handler.wfile.write(b" ")
                handler.wfile.flush()
                self.stop.wait(pause)
        except OSError:  # the client gave up: what we want
            pass

    def close(self):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture()
def sidecar(tiny_onnx_model):
    return ModelSidecar.load(tiny_onnx_model.with_suffix(".json"))


@pytest.fixture()
def server(sidecar):
    fake = FakeTriton(sidecar)
    yield fake
    fake.close()


def backend(server, **options):
    return TritonBackend(server.sidecar, TritonOptions(url=server.url, **{"retry_backoff_s": 0.1, **options}))


def test_the_stand_in_serves_a_good_model(server):
    with_backend = backend(server)
    try:
        emb, _ = with_backend.infer(FACE)
        assert emb.shape == (1, server.sidecar.embedding_dim) and np.isclose(np.linalg.norm(emb), 1.0)
    finally:
        with_backend.close()


@pytest.mark.parametrize("stage", ["config", "infer"])
def test_a_drip_feeding_server_is_cut_off_at_the_total_deadline(server, stage):
    server.routes[stage] = ("drip", 0.5)
    start = time.monotonic()
    with pytest.raises(BackendUnavailableError, match="2 tries, 2 s each"):
        b = backend(server, timeout_s=2, retries=1)
        try:
            b.infer(FACE)
        finally:
            b.close()
    elapsed = time.monotonic() - start
    assert 3.9 < elapsed < 8.0, elapsed  # two tries of 2 s and a 0.1 s pause: ~4 s, not 30 s or more
    assert server.requests.count(stage) == 2


@pytest.mark.parametrize("stage, reply, words", [
    ("config", ("raw", b"\x00\xffgarbage<html>"), "valid Triton reply"),
    ("config", ("raw", b'{"config": {"name": "x", "input": ['), "valid Triton reply"),
    ("config", ("json", [1, 2, 3]), "not a JSON object"),
    ("config", ("json", {"max_batch_size": "eight", "parameters": "?"}), "malformed model config|declare"),
    ("infer", ("raw", b"not json at all"), "invalid reply"),
])
def test_garbage_from_the_server_blames_the_server(server, stage, reply, words, tiny_onnx_model):
    server.routes[stage] = reply
    with pytest.raises(ServerReplyError, match=words) as caught:
        b = backend(server, timeout_s=5, retries=0)
        try:
            b.infer(FACE)
        finally:
            b.close()
    assert server.url in str(caught.value)
    # through the model loader too: the message names the server, not the local model file
    if stage == "config":
        with pytest.raises(ServerReplyError) as caught:
            load_backend(tiny_onnx_model, "triton", BackendOptions.of(url=server.url, timeout_s=5, retries=0))
        assert "cannot load model" not in str(caught.value) and server.url in str(caught.value)


def test_a_wrong_model_config_names_the_server(server, sidecar):
    config = good_config(sidecar)
    config["input"][0]["dims"] = ["a", 112, 3]
    server.routes["config"] = ("json", config)
    with pytest.raises(ServerReplyError, match="malformed model config") as caught:
        backend(server, timeout_s=5, retries=0)
    assert server.url in str(caught.value)


@pytest.mark.parametrize("width, value, words", [(7, 0.1, "shape"), (None, float("nan"), "NaN"),
                                                 (None, float("inf"), "NaN or infinity")])
def test_embeddings_of_the_wrong_width_or_with_nan_are_errors(server, sidecar, width, value, words):
    server.routes["infer"] = ("embeddings", (width or sidecar.embedding_dim, value))
    b = backend(server, timeout_s=5, retries=0)
    try:
        with pytest.raises(ServerReplyError, match=words) as caught:
            b.infer(FACE)
    finally:
        b.close()
    assert server.url in str(caught.value)
