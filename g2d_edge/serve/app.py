"""The FastAPI application of `g2d serve`: `create_app(options, api_key)` wires the parts (`ServeState`), the API
(`routes_api`, `routes_live`), the web page, health, metrics, the key check and the limits.

Every error answer is JSON `{"error": "what happened and what to do"}` with a 4xx status (503 + Retry-After when
busy); G2DErrors from the SDK keep their message. OpenAPI documentation: `/docs`.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Any, AsyncIterator, Dict, Optional

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from starlette.exceptions import HTTPException

from .. import __version__
from ..errors import CaptureError, G2DError, GalleryError, ImageReadError, InputError, NoFaceError
from ..text import printable
from .auth import SESSION_COOKIE, ApiKey
from .options import ServeOptions
from .routes_api import api_router
from .routes_live import live_router
from .state import ServeState
from .uploads import BodyLimit
from .work import Busy

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
#: The page's files (read once into memory: no request path ever reaches the file system) and their types.
PAGE_FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
              "app.css": "text/css; charset=utf-8"}
PAGE_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
                "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
                                           "style-src 'self'; script-src 'self'; connect-src 'self'"}
_STATUS = ((Busy, 503), (NoFaceError, 422), (ImageReadError, 422), (InputError, 422), (CaptureError, 422),
           (GalleryError, 409), (G2DError, 400))


def create_app(options: ServeOptions, api_key: Optional[str] = None, state: Optional[ServeState] = None) -> FastAPI:
    """The application. `api_key` defaults to `options.api_key` (one of them is needed; see `auth.load_api_key`).
    `state` (for tests) defaults to `ServeState.open(options)`; it is started when the app starts and closed when it
    stops."""
    api_key = api_key or options.api_key
    if not api_key:
        raise InputError("g2d serve needs an API key: ServeOptions(api_key=...) or create_app(options, api_key); "
                         "g2d_edge.serve.auth.load_api_key reads --api-key-file / $G2D_API_KEY or makes one")
    state = state or ServeState.open(options)
    key = ApiKey(api_key)
    stopping = threading.Event()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.start()
        try:
            yield
        finally:
            stopping.set()
            state.close()

    writer = _key_dependency(key)
    app = FastAPI(title="g2d serve", version=__version__, lifespan=lifespan,
                  description="Masked-face recognition: identify, verify, enrol, live sources (g2d-edge).")
    app.state.g2d = state
    readers = [Depends(writer)] if options.auth == "all" else []  # the page and POST /session stay open
    app.include_router(api_router(state, writer), dependencies=readers)
    app.include_router(live_router(state, stopping.is_set), dependencies=readers)
    app.include_router(_service_router(state), dependencies=readers)
    _add_session(app, state, key)
    _add_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=options.max_upload_bytes)
    app.add_middleware(_RequestMetrics, metrics=state.metrics)
    if options.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(options.cors_origins),
                           allow_methods=["GET", "POST", "PATCH", "DELETE"], allow_headers=["X-API-Key",
                                                                                            "Authorization"])
    _add_page(app)
    return app


def _key_dependency(key: ApiKey) -> Any:
    header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the server's API key")

    def require_key(request: Request, _: Optional[str] = Depends(header)) -> None:
        why = key.check(request.headers, request.cookies, request.method)
        if why == "missing":
            raise HTTPException(401, "this endpoint needs the API key: send it as the header X-API-Key: KEY (the key "
                                     "comes from g2d serve --api-key-file or $G2D_API_KEY, else g2d serve printed "
                                     "one at start-up)", headers={"WWW-Authenticate": "Bearer"})
        if why is not None:
            raise HTTPException(403, "wrong API key; use the key g2d serve was started with")

    return require_key


def _service_router(state: ServeState) -> APIRouter:
    router = APIRouter(tags=["service"])

    @router.get("/health", tags=["service"], summary="Liveness, model, gallery, sources and queue")
    def health() -> Dict[str, Any]:
        return {"status": "ok", "version": __version__, "model": state.model_name, "threshold": state.threshold,
                "gallery": state.gallery.location, "identities": len(state.gallery),
                "templates": state.gallery.num_templates, "auth": state.options.auth,
                "queue": {"waiting": state.queue.depth, "capacity": state.queue.capacity,
                          "workers": len(state.workers)},
                "sources": [{k: s.describe()[k] for k in ("id", "source", "running", "frames", "error")}
                            for s in state.sources]}

    @router.get("/metrics", response_class=Response, summary="Prometheus metrics")
    def metrics() -> Response:
        return Response(state.metrics.text(), media_type=state.metrics.content_type)

    return router


def _add_session(app: FastAPI, state: ServeState, key: ApiKey) -> None:
    @app.post("/session", tags=["service"], summary="Check the API key; set the cookie the page's streams use")
    def session(request: Request) -> JSONResponse:
        why = key.check(request.headers, {}, "POST")
        if why is not None:
            raise HTTPException(401 if why == "missing" else 403, "send the API key as X-API-Key to open a session"
                                if why == "missing" else "wrong API key; use the key g2d serve was started with")
        response = JSONResponse({"session": "open", "auth": state.options.auth})
        response.set_cookie(SESSION_COOKIE, key.session_token, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": printable(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
                             for e in exc.errors())
        return JSONResponse({"error": printable(f"invalid request: {problems}", 500)}, status_code=422)

    @app.exception_handler(G2DError)
    async def sdk_error(_: Request, exc: G2DError) -> JSONResponse:
        status = next(code for kind, code in _STATUS if isinstance(exc, kind))
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Busy) else None
        return JSONResponse({"error": printable(exc)}, status_code=status, headers=headers)


def _add_page(app: FastAPI) -> None:
    files = {name: (STATIC / name).read_bytes() for name in PAGE_FILES}

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        return Response(files["index.html"], media_type=PAGE_FILES["index.html"], headers=PAGE_HEADERS)

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in files:
            raise HTTPException(404, "no such file")
        return Response(files[name], media_type=PAGE_FILES[name], headers=PAGE_HEADERS)


class _RequestMetrics:
    """ASGI middleware: requests by route template and status, and their time (until the answer's headers)."""

    def __init__(self, app: Any, metrics: Any) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def sending(message: Dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                route = getattr(scope.get("route"), "path", "other")
                self.metrics.requests.labels(route, str(status["code"])).inc()
                self.metrics.request_time.labels(route).observe(time.perf_counter() - start)
            await send(message)

        await self.app(scope, receive, sending)
