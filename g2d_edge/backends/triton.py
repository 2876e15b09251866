"""Triton backend: the edge box detects and aligns, a Triton Inference Server runs the model.

    served = BackendOptions.of(url="grpc://gpu-server:8001")               # model_name: the sidecar's name
    rec = Recognizer(backend="triton", options=RecognizerOptions(backend_options=served))
    served = BackendOptions.of(url="http://gpu-server:8000", model_name="g2d-edge-m-trt")
    rec = Recognizer("g2d-edge-m.json", backend="triton", options=RecognizerOptions(backend_options=served))

The aligned faces of one frame travel in one request (`tritonclient`, gRPC or HTTP); the server's dynamic batcher
merges the requests of many cameras into one execution. Everything after the embeddings (gallery, threshold, stream
mode, CLI) is unchanged.

Which model does the server serve? The edge box keeps the model's sidecar (the shipped model's by default, or the
`model.json` that `g2d-export triton` writes next to each version): it gives the threshold and the embedding space the
gallery is bound to. At start-up the backend reads the served model's configuration through Triton's model-config API
and compares it with that sidecar: the `g2d_embedding_space` parameter that `g2d-export triton` writes into
`config.pbtxt` must equal the sidecar's embedding space, and the input (name, uint8, 112x112x3) and outputs
(`embedding` float32 [D], `logits` float32 [C]) must match. Anything else raises ModelError before the first frame,
so a gallery is never searched with another model's embeddings.

Failures: an unreachable or silent server raises BackendUnavailableError after `retries` more tries, each bounded by
`timeout_s` as a total deadline (over HTTP too: a server that drip-feeds its answer a byte at a time is cut off at
`timeout_s`, so a call gives up after about `(retries + 1) * timeout_s` plus the back-off pauses); a missing, unready
or different model raises ModelError; a server that answers garbage, invalid JSON, a malformed model configuration,
or embeddings of the wrong width or with NaN raises ServerReplyError (a ModelError that names the server).
`tritonclient` is the `[triton]` extra and is imported only when a TritonBackend is created.
"""
from __future__ import annotations

import logging
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

import numpy as np

from ..errors import BackendUnavailableError, G2DError, InputError, ModelError, ServerReplyError, check_fields, option
from ..sidecar import ModelSidecar
from .base import BaseBackend

log = logging.getLogger(__name__)

TRITON_INSTALL_HINT = "the triton backend needs the `tritonclient` package: pip install 'g2d-edge[triton]'"
#: URL scheme -> (protocol, TLS); the port defaults to Triton's: 8001 for gRPC, 8000 for HTTP.
_SCHEMES = {"grpc": ("grpc", False), "grpcs": ("grpc", True), "http": ("http", False), "https": ("http", True)}
_DEFAULT_PORTS = {"grpc": 8001, "http": 8000}
#: Failures worth another try: server unreachable, overloaded or too slow (gRPC status codes, HTTP status codes).
_TRANSIENT_STATUS = {"StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.RESOURCE_EXHAUSTED",
                     "429", "502", "503", "504"}
T = TypeVar("T")


@dataclass(frozen=True)
class TritonOptions:
    """Where the model is served and how long to wait for it.

    url: "grpc://host:8001" or "http://host:8000" ("grpcs://" / "https://" for TLS); without a port, Triton's
        default port of the protocol.
    model_name: the served model (default: the sidecar's name, the name `g2d-export triton` gives it; its TensorRT
        variant is "<name>-trt").
    model_version: "" for the version the server's policy serves (the newest), else a version number.
    timeout_s: limit of one request, in total (connection, queueing, inference, the whole reply).
    retries: further tries after a request failed because the server was unreachable, overloaded or too slow.
    retry_backoff_s: pause before the first retry; doubled before each next one.
    max_batch: faces per request (0: the served model's max_batch_size); larger batches are split.
    """

    url: str = "grpc://localhost:8001"
    model_name: Optional[str] = option(None, non_empty=True)
    model_version: str = ""
    timeout_s: float = option(10.0, above=0.0, high=86400.0, unit="seconds")
    retries: int = option(2, low=0, high=100)
    retry_backoff_s: float = option(0.2, low=0.0, high=3600.0, unit="seconds")
    max_batch: int = option(0, low=0, high=65536)

    def __post_init__(self) -> None:
        check_fields(self)
        parse_url(self.url)


@dataclass(frozen=True)
class Endpoint:
    """A parsed server URL: protocol "grpc" or "http", "host:port", TLS or not."""

    protocol: str
    address: str
    ssl: bool

    @property
    def url(self) -> str:
        return f"{self.protocol}{'s' if self.ssl else ''}://{self.address}"


def parse_url(url: str) -> Endpoint:
    """"grpc://host:8001" -> Endpoint("grpc", "host:8001", False); InputError for anything else."""
    parts = urllib.parse.urlsplit(str(url))
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in _SCHEMES or not parts.hostname or port == -1 or parts.path not in ("", "/"):
        raise InputError(f"TritonOptions.url must look like grpc://host:8001 or http://host:8000, got {url!r}")
    protocol, ssl = _SCHEMES[parts.scheme]
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return Endpoint(protocol, f"{host}:{port or _DEFAULT_PORTS[protocol]}", ssl)


def import_tritonclient(protocol: str) -> Tuple[Any, type]:
    """(tritonclient.grpc or tritonclient.http, InferenceServerException), or BackendUnavailableError."""
    try:
        if protocol == "grpc":
            import tritonclient.grpc as client
        else:
            import tritonclient.http as client
        from tritonclient.utils import InferenceServerException
    except ImportError as exc:
        raise BackendUnavailableError(f"{TRITON_INSTALL_HINT} ({exc})") from exc
    return client, InferenceServerException


def triton_available() -> Optional[str]:
    """None when the triton backend can be used here (a server URL is still needed), else why not."""
    try:
        import_tritonclient("grpc")
        import_tritonclient("http")
    except BackendUnavailableError as exc:
        return str(exc)
    return None


def served_parameters(config: Dict[str, Any]) -> Dict[str, str]:
    """The string parameters of a model config as JSON ({key: {"string_value": v}} -> {key: v})."""
    return {k: str((v or {}).get("string_value", "")) for k, v in (config.get("parameters") or {}).items()}


def _check_tensor(tensors: Optional[List[Dict[str, Any]]], name: str, dtype: str, dims: List[int], where: str,
                  kind: str) -> None:
    found = {t.get("name"): t for t in tensors or []}
    if name not in found:
        raise ModelError(f"{where} has no {kind} {name!r} (it has {sorted(found)}); it is not a g2d-edge model: serve "
                         "a repository written by `g2d-export triton`")
    got_type, got_dims = found[name].get("data_type"), [int(d) for d in found[name].get("dims", [])]
    if got_type != dtype or got_dims != dims:
        raise ModelError(f"{where} serves {kind} {name!r} as {got_type} {got_dims}, but the sidecar on this box says "
                         f"{dtype} {dims}: the server runs another model than this sidecar describes")


def check_served_config(config: Dict[str, Any], sidecar: ModelSidecar, where: str) -> int:
    """Raise ModelError unless the served model (its Triton model config, as JSON) is the model `sidecar` describes:
    same `g2d_embedding_space` parameter, same input and output tensors. Returns its max_batch_size."""
    params = served_parameters(config)
    space = params.get("g2d_embedding_space")
    if not space:
        raise ModelError(f"{where} does not declare which embedding space it serves (no g2d_embedding_space "
                         "parameter in its config.pbtxt); serve a repository written by `g2d-export triton`")
    if space != sidecar.embedding_space:
        raise ModelError(f"{where} serves {params.get('g2d_model') or 'another model'} (embedding space {space}), but "
                         f"the sidecar on this box is {sidecar.name} ({sidecar.embedding_space}): its embeddings "
                         "cannot be matched against this box's galleries. Copy the served model's sidecar "
                         "(model_repository/<name>/<version>/model.json) here and pass it as model=..., or set "
                         "model_name to the model exported from this sidecar")
    max_batch = int(config.get("max_batch_size") or 0)
    if max_batch < 1:
        raise ModelError(f"{where} has no batch dimension (max_batch_size {max_batch}); serve a repository written by "
                         "`g2d-export triton`")
    spec = sidecar.input
    _check_tensor(config.get("input"), spec.name, "TYPE_UINT8", [spec.height, spec.width, spec.channels], where,
                  "input")
    _check_tensor(config.get("output"), sidecar.outputs[0], "TYPE_FP32", [int(sidecar.embedding_dim)], where,
                  "output")
    if int(sidecar.num_classes) > 0:
        _check_tensor(config.get("output"), sidecar.outputs[1], "TYPE_FP32", [int(sidecar.num_classes)], where,
                      "output")
    return max_batch


def inference_statistics(url: str, model_name: str, model_version: str = "", timeout_s: float = 10.0) -> Dict[str, int]:
    """The server's cumulative counters of a served model: {"requests": successful requests, "faces": faces inferred,
    "executions": model executions}; faces / executions is the mean batch the dynamic batcher formed."""
    endpoint = parse_url(url)
    client_module, _ = import_tritonclient(endpoint.protocol)
    if endpoint.protocol == "grpc":
        with client_module.InferenceServerClient(endpoint.address, ssl=endpoint.ssl) as client:
            raw = client.get_inference_statistics(model_name, model_version, as_json=True, client_timeout=timeout_s)
    else:
        with client_module.InferenceServerClient(endpoint.address, ssl=endpoint.ssl, connection_timeout=timeout_s,
                                                 network_timeout=timeout_s) as client:
            raw = client.get_inference_statistics(model_name, model_version)
    stats = raw["model_stats"][0]  # protobuf JSON leaves out counters that are still 0
    return {"requests": int(stats.get("inference_stats", {}).get("success", {}).get("count", 0)),
            "faces": int(stats.get("inference_count", 0)), "executions": int(stats.get("execution_count", 0))}


class TritonBackend(BaseBackend):
    """Runs the model on a Triton Inference Server; the sidecar on this box says which model that must be."""

    name = "triton"

    def __init__(self, sidecar: ModelSidecar, options: Optional[TritonOptions] = None) -> None:
        """Connect, check that the server serves `sidecar`'s model (see the module docstring) and read its
        max_batch_size. Raises BackendUnavailableError (no tritonclient, server unreachable) or ModelError."""
        self.options = options or TritonOptions()
        self.endpoint = parse_url(self.options.url)
        self._tc, self._server_error = import_tritonclient(self.endpoint.protocol)
        self.model_name = self.options.model_name or sidecar.name
        self.model_version = str(self.options.model_version or "")
        self._local = threading.local()
        self._clients: List[Any] = []
        self._clients_lock = threading.Lock()
        self._closed = False
        self.sidecar = sidecar
        try:
            served_max = self._connect()
        except BaseException:
            self.close()
            raise
        wanted = self.options.max_batch
        super().__init__(sidecar, min(wanted, served_max) if wanted else served_max)
        log.info("triton backend: model %s at %s (max batch %d)", self.model_name, self.endpoint.url, self.max_batch)

    @property
    def where(self) -> str:
        """The served model, for messages: "Triton model 'x' at grpc://host:8001"."""
        version = f" version {self.model_version}" if self.model_version else ""
        return f"Triton model {self.model_name!r}{version} at {self.endpoint.url}"

    # -- connection --------------------------------------------------------------------------------------------
    def _client(self) -> Any:
        """This thread's client (tritonclient's HTTP client is not thread-safe; one per thread for both)."""
        if self._closed:
            raise ModelError(f"the triton backend for {self.where} was closed; create the Recognizer again")
        client = getattr(self._local, "client", None)
        if client is None:
            ep, timeout = self.endpoint, float(self.options.timeout_s)
            if ep.protocol == "grpc":
                client = self._tc.InferenceServerClient(url=ep.address, ssl=ep.ssl)
            else:
                client = self._tc.InferenceServerClient(url=ep.address, ssl=ep.ssl, connection_timeout=timeout,
                                                        network_timeout=timeout)
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    def _timeout(self) -> Dict[str, float]:
        """Per-call timeout keyword (gRPC); the HTTP client carries its timeouts itself."""
        return {"client_timeout": float(self.options.timeout_s)} if self.endpoint.protocol == "grpc" else {}

    def _attempt(self, fn: Callable[[Any], T]) -> T:
        """fn(client) within `timeout_s` in total. gRPC has a real deadline (`client_timeout`); the HTTP client's
        timeouts bound each socket operation only, so a server that sends a byte now and then would hold it for
        ever: there a gevent timeout (the HTTP client runs on gevent) bounds the whole call, and a client cut off
        in the middle of a reply is dropped (the next try opens a new connection)."""
        client = self._client()
        if self.endpoint.protocol != "http":
            return fn(client)
        import gevent  # the HTTP client's own dependency

        limit = float(self.options.timeout_s)
        try:
            with gevent.Timeout(limit, TimeoutError(f"no complete answer within {limit:g} s")):
                return fn(client)
        except TimeoutError:
            self._drop_client(client)
            raise

    def _drop_client(self, client: Any) -> None:
        if getattr(self._local, "client", None) is client:
            self._local.client = None
        with self._clients_lock:
            if client in self._clients:
                self._clients.remove(client)
        try:
            client.close()
        except Exception:  # a connection cut off mid-reply may not close cleanly
            log.debug("closing a timed-out Triton client failed", exc_info=True)

    def _transient(self, exc: BaseException) -> bool:
        if isinstance(exc, self._server_error):
            return str(exc.status()) in _TRANSIENT_STATUS
        return isinstance(exc, OSError)  # refused, reset, timed out (TimeoutError), name not resolved

    def _call(self, what: str, fn: Callable[[Any], T]) -> T:
        """fn(client), tried again after transient failures (at most `retries` times, with doubling pauses);
        BackendUnavailableError when every try failed."""
        pause, tries, attempt = float(self.options.retry_backoff_s), int(self.options.retries) + 1, 1
        while True:
            try:
                return self._attempt(fn)
            except Exception as exc:
                if not self._transient(exc):
                    raise
                if attempt >= tries:
                    raise BackendUnavailableError(
                        f"the Triton server at {self.endpoint.url} did not answer {what} ({tries} tries, "
                        f"{self.options.timeout_s:g} s each: {_describe(exc)}); check that it runs and that this box "
                        "reaches it (README 'Scaling out'), or raise timeout_s / retries") from exc
                log.warning("Triton %s at %s failed (%s); try %d of %d in %.2f s", what, self.endpoint.url,
                            _describe(exc), attempt + 1, tries, pause)
                time.sleep(pause)
                pause *= 2
                attempt += 1

    def _connect_checked(self) -> int:
        """Liveness, readiness and identity of the served model; returns its max_batch_size."""
        kw = self._timeout()
        if not self._call("a liveness check", lambda c: c.is_server_live(**kw)):
            raise BackendUnavailableError(f"the Triton server at {self.endpoint.url} is not live (starting or "
                                          "shutting down?); try again when it is")
        if not self._call("a readiness check", lambda c: c.is_model_ready(self.model_name, self.model_version, **kw)):
            raise ModelError(f"{self.where} is not ready: the server does not serve it (yet){self._served_hint()}; "
                             "check model_name and the server's log")
        try:
            raw = self._call("a model-config request", lambda c: self._get_config(c, kw))
        except self._server_error as exc:
            raise ServerReplyError(f"{self.where} gave no model config ({_describe(exc)})") from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("config", raw), dict):
            raise ServerReplyError(f"{self.where} sent a model config that is not a JSON object "
                                   f"({type(raw).__name__}); is {self.endpoint.url} a Triton server?")
        try:
            return check_served_config(raw.get("config", raw), self.sidecar, self.where)
        except G2DError:
            raise
        except Exception as exc:  # fields of the wrong type: the server's reply is malformed
            raise ServerReplyError(f"{self.where} sent a malformed model config ({_describe(exc)}); check the "
                                   "server's model repository (write it with `g2d-export triton`)") from exc

    def _connect(self) -> int:
        """`_connect_checked`, with anything but a G2DError (a reply that is not JSON, a closed connection in the
        middle of a reply ...) turned into a ServerReplyError naming the server, never blamed on the local model."""
        try:
            return self._connect_checked()
        except G2DError:
            raise
        except Exception as exc:
            raise ServerReplyError(f"the server at {self.endpoint.url} did not give a valid Triton reply "
                                   f"({_describe(exc)}); is it a Triton server, and is it healthy?") from exc

    def _get_config(self, client: Any, kw: Dict[str, float]) -> Dict[str, Any]:
        if self.endpoint.protocol == "grpc":
            return client.get_model_config(self.model_name, self.model_version, as_json=True, **kw)
        return client.get_model_config(self.model_name, self.model_version)

    def _served_hint(self) -> str:
        """", it serves: a, b" when the server lists its repository (not every server allows it), else ""."""
        try:
            index = self._client().get_model_repository_index(**self._timeout())
        except Exception:  # the repository API may be restricted; the hint is optional
            return ""
        models = index.models if hasattr(index, "models") else index
        names = sorted({getattr(m, "name", None) or m.get("name", "") for m in models})
        return f"; it serves: {', '.join(names)}" if names else ""

    # -- inference ---------------------------------------------------------------------------------------------
    def _run(self, faces: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        outputs = list(self.sidecar.outputs[:2] if self.num_classes > 0 else self.sidecar.outputs[:1])
        kw = self._timeout()

        def request(client: Any) -> Any:
            tensor = self._tc.InferInput(self.sidecar.input.name, list(faces.shape), "UINT8")
            tensor.set_data_from_numpy(faces)
            wanted = [self._tc.InferRequestedOutput(name) for name in outputs]
            return client.infer(self.model_name, [tensor], model_version=self.model_version, outputs=wanted, **kw)

        try:
            result = self._call("an inference request", request)
            embeddings = result.as_numpy(outputs[0])
            logits = result.as_numpy(outputs[1]) if len(outputs) > 1 else np.zeros((len(faces), 0), np.float32)
        except G2DError:
            raise
        except self._server_error as exc:
            raise ModelError(f"{self.where} failed on a batch of {len(faces)} face(s): {_describe(exc)}") from exc
        except Exception as exc:  # a reply tritonclient cannot parse
            raise ServerReplyError(f"{self.where} sent an invalid reply to a batch of {len(faces)} face(s) "
                                   f"({_describe(exc)})") from exc
        if embeddings is None:
            raise ServerReplyError(f"{self.where} sent no output {outputs[0]!r} for a batch of {len(faces)} face(s)")
        return embeddings, logits

    def _bad_output(self, what: str) -> G2DError:
        return ServerReplyError(f"{self.where} returned {what}; the server runs another model than the sidecar on "
                                "this box describes, or a broken one")

    def close(self) -> None:
        """Close every connection this backend opened. Safe to call twice."""
        self._closed = True
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            try:
                client.close()
            except Exception:  # closing a broken connection must not hide the error that led here
                log.debug("closing a Triton client failed", exc_info=True)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).strip()[:200]}"
