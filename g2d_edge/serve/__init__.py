"""`g2d serve`: the recogniser as a service — an HTTP API, a web page for enrolment and live view, metrics.

    pip install "g2d-edge[serve]"
    g2d serve --gallery people.g2d --source clip.mp4        # http://127.0.0.1:8000/ (the page), /docs (the API)

One process owns a `Recognizer` per request worker and per live source, all sharing one gallery (file or Milvus).
Parts: `options` (ServeOptions), `auth` (the API key), `uploads` (size limits, decoding), `work` (the bounded
queue), `live` (a source's loop, MJPEG and events), `webhooks`, `metrics` (Prometheus), `state` (what the process
owns), `routes_api` / `routes_live` (the endpoints), `app` (`create_app`), `server` (`run_server`: uvicorn),
`static/` (the page).
FastAPI, uvicorn, python-multipart and prometheus-client (the [serve] extra) are imported only in this package.
"""
from __future__ import annotations

from .options import ServeOptions

__all__ = ["ServeOptions"]
