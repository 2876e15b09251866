"""Where a Milvus gallery lives and how to talk to it: the gallery URLs (`milvus://HOST[:PORT]/[DATABASE/]COLLECTION`,
`milvus+tls://...`, `milvus-lite://PATH.db/COLLECTION`) and `MilvusGalleryOptions`. See `g2d_edge.gallery.milvus`."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit

from ...errors import InputError, check_fields, option
from ...text import quoted

#: Port of a Milvus server when the URL names none.
DEFAULT_PORT = 19530
#: Environment variable holding the Milvus token ("user:password" or an API key) when no token option is given.
TOKEN_ENV = "G2D_MILVUS_TOKEN"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
_SCHEMES = {"milvus": "http", "milvus+tls": "https"}


@dataclass(frozen=True)
class MilvusGalleryOptions:
    """How a `MilvusGallery` talks to Milvus.

    timeout_s: seconds each request (and connecting) may take, retries by pymilvus included.
    consistency_level: of searches and queries: "Strong" (default; every box sees all enrolments made before its
        request), "Bounded", "Session" or "Eventually" (faster on a busy cluster, may miss the latest writes).
    index_type / index_params: vector index made with a new collection: "FLAT" (exact, default), "HNSW"
        (`{"M": 16, "efConstruction": 200}`), "IVF_FLAT" (`{"nlist": 1024}`) ... as Milvus documents them.
    search_params: index search parameters, e.g. `{"ef": 64}` for HNSW, `{"nprobe": 16}` for IVF.
    token: "user:password" or an API key; None reads `G2D_MILVUS_TOKEN` ("" for none).
    flush_writes: flush the collection after each write (best effort: a failed flush is logged, the write stands).
        None (default): only for a `milvus-lite://` database of this process, since Milvus Lite searches unflushed
        rows one by one; never for a `milvus://` server (a Milvus server seals segments itself and rate-limits
        flushes, and a Milvus Lite server flushes by itself at 128 MB and fails flushes that several clients send at
        once).
    fused_cache_s: how long a fused template read for a "mean" search is reused, in seconds
        (`g2d_edge.gallery.milvus.fused`): edits through this gallery object are seen at once, edits by other boxes
        within this time (the candidates themselves are always searched fresh); 0 reads them for every search.
    """

    timeout_s: float = option(10.0, above=0.0, high=86400.0, unit="seconds")
    consistency_level: str = option("Strong", choices=("Strong", "Bounded", "Session", "Eventually"))
    index_type: str = option("FLAT", non_empty=True)
    index_params: Mapping[str, Any] = field(default_factory=dict)
    search_params: Mapping[str, Any] = field(default_factory=dict)
    token: Optional[str] = None
    flush_writes: Optional[bool] = None
    fused_cache_s: float = option(10.0, low=0.0, high=3600.0, unit="seconds")

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class MilvusLocation:
    """A parsed gallery URL: what pymilvus connects to (`uri`, `db_name`) and the `collection`."""

    url: str
    uri: str
    collection: str
    db_name: str = ""
    local: bool = False


_URL_HELP = ("use milvus://HOST[:PORT]/[DATABASE/]COLLECTION, milvus+tls://... or "
             "milvus-lite://PATH.db/COLLECTION (milvus-lite:///abs/path.db/COLLECTION)")


def parse_gallery_url(url: str) -> MilvusLocation:
    """Parse a database gallery URL (see the module docstring). InputError, saying the accepted forms, if bad."""
    if not isinstance(url, str):
        raise InputError(f"a gallery URL must be a string, got {type(url).__name__}")
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "milvus-lite":
        return _parse_lite_url(url)
    if scheme not in _SCHEMES:
        raise InputError(f"{quoted(url)} is not a gallery URL: {_URL_HELP}")
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise InputError(f"put no credentials in the gallery URL {quoted(url.split('@')[-1])} (they would show in "
                         f"logs and process lists): set {TOKEN_ENV}=user:password or pass "
                         "MilvusGalleryOptions(token=...)")
    if parts.query or parts.fragment:
        raise InputError(f"gallery URL {quoted(url)} has a query or fragment: {_URL_HELP}")
    try:
        host, port = parts.hostname, parts.port or DEFAULT_PORT
    except ValueError:
        raise InputError(f"gallery URL {quoted(url)} has an invalid port: {_URL_HELP}") from None
    if not host:
        raise InputError(f"gallery URL {quoted(url)} names no host: {_URL_HELP}")
    names = [p for p in parts.path.split("/") if p]
    if len(names) not in (1, 2):
        raise InputError(f"gallery URL {quoted(url)} must end in /COLLECTION or /DATABASE/COLLECTION: {_URL_HELP}")
    for name in names:
        _check_identifier(name, url)
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    db_name, collection = (names[0], names[1]) if len(names) == 2 else ("", names[0])
    shown = f"{scheme}://{netloc}/{db_name + '/' if db_name else ''}{collection}"
    return MilvusLocation(url=shown, uri=f"{_SCHEMES[scheme]}://{netloc}", collection=collection, db_name=db_name)


def _parse_lite_url(url: str) -> MilvusLocation:
    rest = url.split("://", 1)[1]
    if "/" not in rest:
        raise InputError(f"gallery URL {quoted(url)} names no collection: {_URL_HELP}")
    folder, collection = rest.rsplit("/", 1)
    if not folder.endswith(".db") or folder in (".db", "/.db"):
        raise InputError(f"the Milvus Lite database in {quoted(url)} must be a path ending in .db, followed by "
                         f"/COLLECTION: {_URL_HELP}")
    _check_identifier(collection, url)
    path = Path(folder).expanduser().absolute()
    return MilvusLocation(url=f"milvus-lite://{path}/{collection}", uri=str(path), collection=collection,
                          local=True)


def _check_identifier(name: str, url: str) -> None:
    if not _IDENTIFIER.fullmatch(name):
        raise InputError(f"{quoted(name)} in gallery URL {quoted(url)} is not a valid Milvus collection or database "
                         "name (letters, digits and underscores, starting with a letter or underscore, at most 255): "
                         f"{_URL_HELP}")


def string_literal(text: str) -> str:
    """`text` as a double-quoted string literal of Milvus's filter expressions (backslash and quote escaped).
    Identity names hold no control characters (`check_identity_name`), so nothing else needs escaping."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
