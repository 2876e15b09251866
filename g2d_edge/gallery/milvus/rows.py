"""The Milvus gallery's collection layout and row helpers (see `g2d_edge.gallery.milvus`): connecting, request
errors, the collection schema and properties, and turning templates into rows and search hits into matches.

Layouts: 1 (before masked tags) has the fields `id`, `name`, `enrolment`, `enrolled_ns`, `template_index` and
`embedding`; 2 adds `masked` (BOOL, the template's masked tag). A layout-1 collection is still read and searched (its
templates are all clean) and takes clean templates; masked templates cannot be added to it (`MilvusGallery.add`
says how to move the gallery to a new collection): pymilvus 2.5 cannot add a field to an existing collection, and
rewriting the collection in place would pull it from under the other boxes using it.
"""
from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple

import numpy as np

from ...errors import GalleryError, GalleryUnavailableError, InputError
from ...text import MAX_NAME_LENGTH
from ..protocol import Match, check_threshold
from .url import TOKEN_ENV, MilvusGalleryOptions, MilvusLocation

log = logging.getLogger(__name__)

#: Version of the collection layout written by this module (2: with the `masked` field).
MILVUS_GALLERY_FORMAT = 2
#: The first layout with the `masked` field.
TAGGED_LAYOUT = 2

PROP_FORMAT = "g2d.gallery_format"
PROP_SPACE = "g2d.embedding_space"
PROP_DIM = "g2d.embedding_dim"
PROP_MODEL = "g2d.model_name"
PROP_THRESHOLD = "g2d.threshold"
NAME_BYTES = 4 * MAX_NAME_LENGTH  # VARCHAR lengths count bytes: 4 per character at most in UTF-8
#: Fields of every layout (layout 2 adds "masked").
BASE_FIELDS = ("id", "name", "enrolment", "enrolled_ns", "template_index", "embedding")


class CollectionMeta(NamedTuple):
    """The gallery-wide fields, stored as collection properties, and whether the rows carry masked tags."""

    embedding_space: str
    embedding_dim: int
    model_name: str
    threshold: Optional[float]
    tagged: bool = True


# ---------------------------------------------------------------------------------------------- connecting
def connect(where: MilvusLocation, options: MilvusGalleryOptions) -> Any:
    """A MilvusClient of its own for the gallery at `where`; GalleryUnavailableError when it cannot be made."""
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:
        raise GalleryUnavailableError(f"gallery {where.url} needs pymilvus, which is not installed: "
                                      f"pip install 'g2d-edge[milvus]' ({exc})") from None
    token = options.token if options.token is not None else os.environ.get(TOKEN_ENV, "")
    if where.local:
        where_dir = Path(where.uri)
        where_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        # A connection alias of its own: pymilvus shares connections by URI, and closing a shared one would cut
        # off every other gallery of this process on the same server.
        return MilvusClient(uri=where.uri, token=token, db_name=where.db_name, timeout=options.timeout_s,
                            alias=f"g2d-gallery-{uuid.uuid4().hex}")
    except Exception as exc:
        raise _connect_error(where, options, exc) from exc


def _connect_error(where: MilvusLocation, options: MilvusGalleryOptions, exc: Exception) -> GalleryError:
    text = f"{type(exc).__name__}: {exc}"
    if where.local:
        return GalleryUnavailableError(
            f"cannot open the Milvus Lite database {where.uri} ({text}). If another process has it open, only that "
            f"process can use it: to share it, run `milvus-lite server --data-dir {where.uri} --port 19530` and "
            f"use milvus://127.0.0.1:19530/{where.collection}")
    if "database" in str(exc).lower() and where.db_name:
        return GalleryError(f"cannot use database {where.db_name!r} on {where.uri} ({text}); create it first or "
                            "leave it out of the URL for the default database")
    return GalleryUnavailableError(f"cannot reach the Milvus server of gallery {where.url} within "
                                   f"{options.timeout_s:g} s ({text}). Is it running and reachable from here? "
                                   "Check the host and port (default 19530), the network, and the token "
                                   f"({TOKEN_ENV}) if it requires one")


def request_error(what: str, where: MilvusLocation, options: MilvusGalleryOptions, exc: Exception) -> GalleryError:
    """The GalleryError of a failed request (GalleryUnavailableError when the server did not answer)."""
    text = str(exc)
    lowered = text.lower()
    if any(word in lowered for word in ("unavailable", "deadline", "timeout", "timed out", "connect")):
        return GalleryUnavailableError(f"cannot {what} in gallery {where.url}: the Milvus server did not answer "
                                       f"within {options.timeout_s:g} s ({type(exc).__name__}: {text}). Is it "
                                       "running and reachable?")
    return GalleryError(f"cannot {what} in gallery {where.url}: the Milvus server refused ({type(exc).__name__}: "
                        f"{text})")


# ---------------------------------------------------------------------------------------------- the collection
def collection_schema(embedding_dim: int) -> Any:
    """The schema of a new gallery collection (the newest layout)."""
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=32)
    schema.add_field("name", DataType.VARCHAR, max_length=NAME_BYTES)
    schema.add_field("enrolment", DataType.VARCHAR, max_length=32)
    schema.add_field("enrolled_ns", DataType.INT64)
    schema.add_field("template_index", DataType.INT64)
    schema.add_field("masked", DataType.BOOL)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=embedding_dim)
    return schema


def collection_properties(embedding_space: str, embedding_dim: int, model_name: str,
                          threshold: Optional[float]) -> Dict[str, str]:
    """The properties a new gallery collection is made with."""
    return {PROP_FORMAT: str(MILVUS_GALLERY_FORMAT), PROP_SPACE: embedding_space, PROP_DIM: str(embedding_dim),
            PROP_MODEL: model_name, PROP_THRESHOLD: "" if threshold is None else repr(threshold)}


def meta_of(info: Mapping[str, Any], url: str) -> CollectionMeta:
    """The gallery-wide fields of a described collection; GalleryError when it is not a g2d gallery, is damaged
    or is of a newer layout."""
    props = dict(info.get("properties") or {})
    fmt = props.get(PROP_FORMAT)
    if fmt is None:
        raise GalleryError(f"the collection of {url} exists but is not a g2d gallery (no {PROP_FORMAT} property); "
                           "use another collection name")
    try:
        fmt_number, dim = int(fmt), int(props.get(PROP_DIM, ""))
        threshold_text = props.get(PROP_THRESHOLD, "")
        threshold = check_threshold(float(threshold_text)) if threshold_text else None
    except (ValueError, InputError) as exc:
        raise GalleryError(f"the collection properties of gallery {url} are damaged ({exc}); fix them with "
                           "alter_collection_properties or export what is left and make a new collection") from None
    if fmt_number > MILVUS_GALLERY_FORMAT:
        raise GalleryError(f"gallery {url} was made by a newer g2d-edge (layout {fmt_number}, this one knows up to "
                           f"{MILVUS_GALLERY_FORMAT}); upgrade g2d-edge")
    space = props.get(PROP_SPACE, "")
    if not space:
        raise GalleryError(f"gallery {url} has no embedding space property; it is damaged")
    tagged = fmt_number >= TAGGED_LAYOUT
    _check_fields(info, dim, url, tagged)
    return CollectionMeta(space, dim, props.get(PROP_MODEL, ""), threshold, tagged)


def _check_fields(info: Mapping[str, Any], dim: int, url: str, tagged: bool) -> None:
    fields = {f.get("name"): f for f in info.get("fields", [])}
    missing = [n for n in BASE_FIELDS + (("masked",) if tagged else ()) if n not in fields]
    if missing:
        raise GalleryError(f"the collection of gallery {url} lacks the field(s) {', '.join(missing)}: it is not a "
                           "g2d gallery")
    vector_dim = (fields["embedding"].get("params") or {}).get("dim")
    if vector_dim is not None and int(vector_dim) != dim:
        raise GalleryError(f"gallery {url} stores {vector_dim}-d vectors but its properties say {dim}; it is damaged")


def old_layout_error(url: str) -> GalleryError:
    """Masked templates for a collection made before the tags (layout 1): what to do instead."""
    return GalleryError(
        f"gallery {url} was made before masked templates were tagged (collection layout 1) and cannot store masked "
        "templates; nothing was enrolled. Enrol without them (RecognizerOptions(masked_templates=0), no --masked), "
        f"or move the gallery to a new collection: `g2d gallery export people.npz --gallery {url}`, then "
        "`g2d gallery import people.npz --gallery milvus://HOST:PORT/NEW_COLLECTION` and use that one")


# ---------------------------------------------------------------------------------------------- rows
def enrolment_rows(name: str, emb: np.ndarray, tags: np.ndarray, tagged: bool) -> List[Dict[str, Any]]:
    """The rows of one enrolment: one per template, all with the same enrolment id (`masked` when `tagged`)."""
    enrolment, now = uuid.uuid4().hex, time.time_ns()
    rows = [{"id": uuid.uuid4().hex, "name": name, "enrolment": enrolment, "enrolled_ns": now,
             "template_index": i, "embedding": emb[i]} for i in range(emb.shape[0])]
    if tagged:
        for row, tag in zip(rows, tags):
            row["masked"] = bool(tag)
    return rows


def ordered_templates(rows: List[Mapping[str, Any]]) -> Tuple[np.ndarray, np.ndarray]:
    """The embeddings of rows in enrolment order as one (K, D) float32 array, and their (K,) masked tags (False
    for rows without the field: a layout-1 collection)."""
    ordered = sorted(rows, key=lambda r: (int(r["enrolled_ns"]), int(r["template_index"])))
    return (np.asarray([r["embedding"] for r in ordered], dtype=np.float32),
            np.array([bool(r.get("masked", False)) for r in ordered], dtype=bool))


def hits_to_matches(hits: Any, top_k: int) -> List[Match]:
    """The matches of one query's grouped search hits, best first."""
    found = [Match(str(hit["entity"]["name"]), float(hit["distance"])) for hit in hits]
    best: Dict[str, float] = {}
    for match in found:  # one hit per name already (group by name); keep the best should a server send more
        best[match.name] = max(best.get(match.name, -np.inf), match.score)
    ranked: List[Tuple[str, float]] = sorted(best.items(), key=lambda item: -item[1])
    return [Match(name, score) for name, score in ranked[:top_k]]
