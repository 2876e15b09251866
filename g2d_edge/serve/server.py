"""Run `g2d serve`'s app under uvicorn on a socket bound here (so `--port 0` can say which port it got)."""
from __future__ import annotations

import logging
import socket
import sys
from typing import Optional, TextIO

from ..errors import G2DError
from .options import ServeOptions

log = logging.getLogger(__name__)

#: Seconds open streams get to end when the server stops.
GRACEFUL_S = 3


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (IPv6 when `host` has a colon). G2DError when the address is taken or not ours."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise G2DError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port (0 picks a "
                       "free one) or --host") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def run_server(options: ServeOptions, api_key: str, key_source: str, out: Optional[TextIO] = None) -> None:
    """Open everything (`create_app`), bind, print where the page is (and a generated key), serve until Ctrl-C."""
    import uvicorn

    from .app import create_app

    out = out or sys.stderr
    app = create_app(options, api_key)
    sock = bind(options.host, options.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"g2d serve: listening on http://{shown}:{port}/ (API: http://{shown}:{port}/docs)", file=out, flush=True)
    if key_source == "generated":
        print(f"g2d serve: API key (generated; set $G2D_API_KEY or --api-key-file to choose one): {api_key}",
              file=out, flush=True)
    else:
        print(f"g2d serve: API key from {key_source}", file=out, flush=True)
    if host not in ("127.0.0.1", "::1", "localhost"):
        log.warning("listening on %s: other machines can reach this server; put it behind TLS (a reverse proxy)",
                    host)
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=GRACEFUL_S, access_log=False,
                            server_header=False)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
