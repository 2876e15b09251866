"""The API key of `g2d serve`: where it comes from, and the one check every protected endpoint runs.

The key is read from a file (`--api-key-file`, its first line) or the `G2D_API_KEY` environment variable; with
neither, a random key is made at start-up and printed once on the server's stderr. A request carries it as
`X-API-Key: KEY` or `Authorization: Bearer KEY`; it is compared in constant time (`hmac.compare_digest`).

Browsers cannot add a header to an `<img>` (the MJPEG stream) or an `EventSource` (the event stream), so
`POST /session` with the key sets a cookie that holds a token derived from the key (never the key itself); the
cookie is accepted for GET requests only (SameSite=Strict, HttpOnly): a write always needs the header, so a cookie
can never be abused for a cross-site write.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Mapping, Optional, Tuple

from ..errors import InputError
from ..files import regular_file_problem

#: Environment variable the key is read from.
API_KEY_ENV = "G2D_API_KEY"
#: Header names a request may carry the key in.
KEY_HEADER = "x-api-key"
#: Cookie `POST /session` sets for the browser's GET requests.
SESSION_COOKIE = "g2d_session"


def load_api_key(key_file: Optional[str] = None, env: Optional[Mapping[str, str]] = None) -> Tuple[str, str]:
    """(key, where it came from): the first line of `key_file`, else $G2D_API_KEY, else a new random key.

    Raises InputError for a key file that cannot be read or holds a key shorter than 8 characters."""
    env = os.environ if env is None else env
    if key_file is not None:
        problem = regular_file_problem(key_file)
        if problem is not None:
            raise InputError(f"--api-key-file {key_file}: {problem}; give a file whose first line is the key")
        lines = Path(key_file).read_text(encoding="utf-8", errors="replace").splitlines()
        key = lines[0].strip() if lines else ""
        _check_key(key, f"the first line of {key_file}")
        return key, f"file {key_file}"
    if env.get(API_KEY_ENV):
        key = env[API_KEY_ENV].strip()
        _check_key(key, f"${API_KEY_ENV}")
        return key, f"${API_KEY_ENV}"
    return secrets.token_urlsafe(24), "generated"


def _check_key(key: str, where: str) -> None:
    if len(key) < 8 or any(not c.isprintable() or c.isspace() for c in key):
        raise InputError(f"{where}: an API key must be at least 8 printable characters without spaces")


class ApiKey:
    """Checks a request's key (header, or for GET the session cookie) against the server's, in constant time."""

    def __init__(self, key: str) -> None:
        self._key = key.encode("utf-8")
        self._token = hmac.new(self._key, b"g2d-serve session", hashlib.sha256).hexdigest().encode("ascii")

    @property
    def session_token(self) -> str:
        """The cookie value `POST /session` sets."""
        return self._token.decode("ascii")

    def matches(self, given: Optional[str]) -> bool:
        """Whether `given` is the key (constant time in the key's content)."""
        if given is None:
            return False
        return hmac.compare_digest(given.encode("utf-8", errors="replace"), self._key)

    def check(self, headers: Mapping[str, str], cookies: Mapping[str, str], method: str) -> Optional[str]:
        """None when the request may pass, else why not: "missing" or "wrong"."""
        given = headers.get(KEY_HEADER)
        authorization = headers.get("authorization", "")
        if given is None and authorization[:7].lower() == "bearer ":
            given = authorization[7:].strip()
        if given is not None:
            return None if self.matches(given) else "wrong"
        cookie = cookies.get(SESSION_COOKIE)
        if cookie is not None and method in ("GET", "HEAD"):
            ok = hmac.compare_digest(cookie.encode("utf-8", errors="replace"), self._token)
            return None if ok else "wrong"
        return "missing"
