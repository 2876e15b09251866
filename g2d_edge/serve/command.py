"""The `g2d serve` subcommand: its arguments and what it runs. Imports nothing of the [serve] extra until it runs,
so `g2d --help` works without it."""
from __future__ import annotations

import argparse
from typing import Callable

from ..backends.loader import BACKEND_NAMES
from ..errors import G2DError
from .auth import API_KEY_ENV
from .options import AUTH_MODES, DEFAULT_MAX_UPLOAD_BYTES, ServeOptions

SERVE_EXTRA_HINT = 'g2d serve needs the [serve] extra: pip install "g2d-edge[serve]"'


def add_arguments(p: argparse.ArgumentParser, positive: Callable[[str], int]) -> None:
    """The options of `g2d serve` (the model, image-size and --json/-v options are the CLI's own)."""
    p.add_argument("--gallery", required=True, help="gallery file (.g2d/.npz), folder or database URL; created if "
                                                     "missing")
    p.add_argument("--source", action="append", default=[], metavar="SOURCE",
                   help="a live source as `g2d identify` takes it (video file, camera index, URL, GStreamer "
                        "pipeline, folder); repeat for several")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                                                        "only; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--api-key-file", help=f"file whose first line is the API key (else ${API_KEY_ENV}, else a "
                                          "random key printed at start-up)")
    p.add_argument("--auth", choices=AUTH_MODES, default="write",
                   help="who needs the key: 'write' (enrol, rename, remove; default) or 'all' (every endpoint but "
                        "the page itself)")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_BYTES / 2 ** 20,
                   help=f"largest request body in MiB (default {DEFAULT_MAX_UPLOAD_BYTES / 2 ** 20:g})")
    p.add_argument("--queue-size", type=positive, default=16,
                   help="recognition requests that may wait; more get 503 + Retry-After (default 16)")
    p.add_argument("--workers", type=positive, default=1, help="recognizers serving requests (default 1)")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="let a web page from ORIGIN (https://host:port) call the API (default: CORS off)")
    p.add_argument("--webhook", help="POST a JSON event to this http(s) URL per recognised person")
    p.add_argument("--webhook-cooldown", type=float, default=30.0,
                   help="seconds between two webhooks for the same track (default 30)")
    p.add_argument("--no-loop", action="store_true", help="play video files once (default: start them again)")
    p.add_argument("--model", default=None, help="model file (.onnx or .engine); default: the shipped model")
    p.add_argument("--backend", default="auto", choices=("auto",) + BACKEND_NAMES, help="inference backend")
    p.add_argument("--threshold", type=float, default=None,
                   help="cosine threshold for 'same person' (default: gallery's, else the model's)")
    p.add_argument("--masked-templates", type=int, default=0, choices=range(17), metavar="N",
                   help="enrolment adds N synthetic masked templates per clean photo (0-16, default 0)")


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C. G2DError for a missing [serve] extra, a bad option, gallery, model or source."""
    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise G2DError(f"{SERVE_EXTRA_HINT} ({exc.name} is missing)") from None
    from .auth import load_api_key
    from .server import run_server

    key, where = load_api_key(args.api_key_file)
    options = ServeOptions(gallery=args.gallery, sources=tuple(args.source), host=args.host, port=args.port,
                           api_key=key, auth=args.auth, max_upload_bytes=int(args.max_upload_mb * 2 ** 20),
                           max_image_pixels=args.max_pixels, queue_size=args.queue_size, workers=args.workers,
                           cors_origins=tuple(args.cors_origin), webhook_url=args.webhook,
                           webhook_cooldown_s=args.webhook_cooldown, loop_files=not args.no_loop, model=args.model,
                           backend=args.backend, threshold=args.threshold, masked_templates=args.masked_templates)
    run_server(options, key, where)
    return 0
