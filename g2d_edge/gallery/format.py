"""The gallery file: its on-disk format (one `.npz` of NumPy arrays and a JSON header, no pickle; every field is
validated on reading) and the three-way merge `Gallery.save` applies when another process saved the same file.

Arrays: `meta` (the JSON header), `names` (one per identity, in file order), `counts` (templates per identity),
`embeddings` (all templates, identity after identity) and `masked` (one bool per template: the masked tag).
Format 1 files, written before the tags, have no `masked` array: every template loads clean. A gallery with a masked
template is written as format 2, which older g2d-edge versions refuse ("upgrade") rather than load the masked
templates as clean ones and drop their tags on the next save; a gallery without one stays format 1 (with an
all-False `masked` array that older versions ignore).
"""
from __future__ import annotations

import json
import time
import unicodedata
from pathlib import Path
from typing import Any, BinaryIO, Dict, Iterable, List, NamedTuple, Optional, Tuple

import numpy as np

from ..errors import GalleryError, InputError
from ..text import quoted
from .protocol import check_identity_name, check_threshold

#: Newest on-disk format: `Gallery.save` writes it when a template is tagged masked, else format 1.
GALLERY_FORMAT = 2
#: The format of files without masked templates (readable by versions before the tags).
CLEAN_GALLERY_FORMAT = 1


class Header(NamedTuple):
    """The gallery-wide fields of a gallery file."""

    embedding_space: Optional[str] = None
    embedding_dim: Optional[int] = None
    threshold: Optional[float] = None
    model_name: str = ""


class Snapshot(NamedTuple):
    """A whole gallery's content: header, {name: (K, D) float32 templates} in file order and {name: (K,) bool masked
    tags} (the same names)."""

    header: Header
    templates: Dict[str, np.ndarray]
    masked: Dict[str, np.ndarray]


def empty_snapshot(header: Optional[Header] = None) -> Snapshot:
    """A gallery with no one enrolled."""
    return Snapshot(header or Header(), {}, {})


class SchemaError(Exception):
    """What is wrong with a gallery file (turned into a GalleryError naming the file)."""


def is_number(value: Any) -> bool:
    """A real number (an int or float, not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def header_problem(space: Any, dim: Any, threshold: Any, model_name: Any) -> Optional[str]:
    """What is wrong with these gallery-wide fields ("threshold is 75, not a number in [-1, 1]"), or None. The one
    rule for the file's header (on load) and for a `Gallery` (on construction and before a save), so that no gallery
    can be saved that cannot be loaded again."""
    if space is not None and (not isinstance(space, str) or not space):
        return f"embedding_space is {space!r}, not a non-empty text"
    if dim is not None and (not isinstance(dim, int) or isinstance(dim, bool) or dim < 1):
        return f"embedding_dim is {dim!r}, not a positive whole number"
    try:
        check_threshold(threshold)
    except InputError:
        return f"threshold is {threshold!r}, not a number in [-1, 1]"
    if not isinstance(model_name, str):
        return f"model_name is {model_name!r}, not a text"
    return None


def write_npz(fh: BinaryIO, snapshot: Snapshot, revision: str) -> None:
    names = list(snapshot.templates)
    dim = snapshot.header.embedding_dim or 0
    matrix = (np.concatenate([snapshot.templates[n] for n in names]).astype(np.float32)
              if names else np.zeros((0, dim), dtype=np.float32))
    tags = np.concatenate([snapshot.masked[n] for n in names]).astype(bool) if names else np.zeros(0, dtype=bool)
    header = snapshot.header
    meta = {"format": GALLERY_FORMAT if tags.any() else CLEAN_GALLERY_FORMAT,
            "embedding_space": header.embedding_space, "embedding_dim": header.embedding_dim,
            "threshold": header.threshold, "model_name": header.model_name,
            "revision": revision, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    np.savez(fh, meta=np.array(json.dumps(meta)), names=np.array(names, dtype=np.str_),
             counts=np.array([snapshot.templates[n].shape[0] for n in names], dtype=np.int64), embeddings=matrix,
             masked=tags)


def read_gallery_file(file: Path) -> Tuple[Snapshot, Optional[str]]:
    """The validated content of a gallery file and its revision id (None for files saved before revisions)."""
    try:
        with np.load(file, allow_pickle=False) as data:
            missing = [k for k in ("meta", "names", "counts", "embeddings") if k not in data.files]
            if missing:
                raise SchemaError(f"the array(s) {', '.join(missing)} are missing")
            arrays = {k: data[k] for k in ("meta", "names", "counts", "embeddings", "masked") if k in data.files}
        meta = _parse_meta(arrays["meta"])
        header, revision = _parse_header(meta, file)
        templates = _parse_templates(arrays["names"], arrays["counts"], arrays["embeddings"], header)
        masked = _parse_tags(arrays.get("masked"), templates, meta["format"])
    except GalleryError:
        raise
    except SchemaError as exc:
        raise GalleryError(f"gallery {file} is damaged or not a g2d gallery: {exc}; restore it from a backup or "
                           "enrol the people again") from None
    except Exception as exc:  # zip, npy or JSON damage all mean the same thing to the user
        raise GalleryError(f"gallery {file} is corrupt or not a g2d gallery ({type(exc).__name__}: {exc}); "
                           "restore it from a backup or enrol the people again") from exc
    return Snapshot(header, templates, masked), revision


def _parse_meta(raw: np.ndarray) -> Dict[str, Any]:
    if raw.dtype.kind != "U" or raw.ndim != 0:
        raise SchemaError(f"its header is a {raw.dtype} array of shape {raw.shape}, not a JSON text")
    meta = json.loads(str(raw[()]))
    if not isinstance(meta, dict):
        raise SchemaError(f"its header is a JSON {type(meta).__name__}, not an object")
    return meta


def _parse_header(meta: Dict[str, Any], file: Path) -> Tuple[Header, Optional[str]]:
    fmt = meta.get("format")
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt < 1:
        raise SchemaError(f"its header has format {fmt!r}, not a format number")
    if fmt > GALLERY_FORMAT:
        raise GalleryError(f"gallery {file} was written by a newer g2d-edge (format {fmt}, this one reads up to "
                           f"{GALLERY_FORMAT}); upgrade g2d-edge")
    space, dim, threshold = meta.get("embedding_space"), meta.get("embedding_dim"), meta.get("threshold")
    model_name, revision = meta.get("model_name"), meta.get("revision")
    model_name = "" if model_name is None else model_name
    problem = header_problem(space, dim, threshold, model_name)
    if problem is not None:
        raise SchemaError(f"its {problem}")
    if revision is not None and not isinstance(revision, str):
        raise SchemaError(f"its revision is {revision!r}, not a text")
    return Header(space, dim, None if threshold is None else float(threshold), model_name), revision


def _parse_templates(names: np.ndarray, counts: np.ndarray, matrix: np.ndarray,
                     header: Header) -> Dict[str, np.ndarray]:
    if names.dtype.kind != "U" or names.ndim != 1:
        raise SchemaError(f"its names are a {names.dtype} array of shape {names.shape}, not a list of texts")
    if counts.dtype.kind not in "iu" or counts.shape != names.shape:
        raise SchemaError(f"its counts are a {counts.dtype} array of shape {counts.shape}, not {len(names)} "
                           "whole numbers (one per name)")
    sizes = [int(c) for c in counts.tolist()]  # Python ints: counts near 2**63 must not wrap around in a sum
    if any(c < 1 for c in sizes):
        raise SchemaError("an identity has fewer than one template")
    if matrix.dtype.kind != "f" or matrix.ndim != 2:
        raise SchemaError(f"its templates are a {matrix.dtype} array of shape {matrix.shape}, not a float matrix")
    if sum(sizes) != matrix.shape[0]:
        raise SchemaError(f"its counts add up to {sum(sizes)} templates but it holds {matrix.shape[0]}")
    if matrix.shape[0] and matrix.shape[1] != header.embedding_dim:
        raise SchemaError(f"its templates have length {matrix.shape[1]} but its header says embedding_dim "
                           f"{header.embedding_dim}")
    matrix = matrix.astype(np.float32)
    if not np.all(np.isfinite(matrix)):
        raise SchemaError("its templates contain NaN or infinity")
    _check_unit_norms(matrix)
    offsets = np.concatenate([[0], np.cumsum(np.array(sizes, dtype=np.int64))])
    templates: Dict[str, np.ndarray] = {}
    for i, name in enumerate(str(n) for n in names):
        try:  # a name differing from its stored form only by Unicode normalisation (NFD) loads in NFC
            checked = check_identity_name(name)
            valid = checked == unicodedata.normalize("NFC", name)
        except InputError:
            valid = False
        if not valid:
            raise SchemaError(f"it holds the invalid identity name {quoted(name)}")
        name = checked
        if name in templates:
            raise SchemaError(f"the identity name {quoted(name)} appears twice")
        templates[name] = matrix[offsets[i]:offsets[i + 1]]
    return templates


#: How far a stored template's length may be from 1 (float32 rounding is ~1e-7): `Gallery.add` stores unit vectors,
#: and a longer one would win every search (a score of 50 against a threshold of 0.4).
NORM_TOLERANCE = 1e-3


def _check_unit_norms(matrix: np.ndarray) -> None:
    """A damaged template (length not 1) is refused, not renormalised: its direction is as suspect as its length."""
    if not matrix.shape[0]:
        return
    norms = np.linalg.norm(matrix.astype(np.float64), axis=1)
    bad = np.flatnonzero(np.abs(norms - 1.0) > NORM_TOLERANCE)
    if bad.size:
        raise SchemaError(f"{bad.size} of its templates are not unit vectors (template {int(bad[0])} has length "
                          f"{norms[bad[0]]:.4g}; g2d galleries store templates of length 1)")


def _parse_tags(tags: Optional[np.ndarray], templates: Dict[str, np.ndarray], fmt: int) -> Dict[str, np.ndarray]:
    """{name: (K,) bool masked tags}; every template clean in a file written before the tags (format 1, no array)."""
    total = sum(t.shape[0] for t in templates.values())
    if tags is None:
        if fmt >= 2:
            raise SchemaError("the array masked is missing")
        tags = np.zeros(total, dtype=bool)
    if tags.dtype != bool or tags.shape != (total,):
        raise SchemaError(f"its masked tags are a {tags.dtype} array of shape {tags.shape}, not {total} bools (one "
                          "per template)")
    out: Dict[str, np.ndarray] = {}
    start = 0
    for name, rows in templates.items():
        out[name] = tags[start:start + rows.shape[0]]
        start += rows.shape[0]
    return out


def disk_revision(file: Path) -> Optional[str]:
    """The revision id in a gallery file's header; None when there is none or the header cannot be read."""
    try:
        with np.load(file, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"][()]))
    except Exception:  # unreadable: the full read that follows reports what is wrong
        return None
    revision = meta.get("revision") if isinstance(meta, dict) else None
    return revision if isinstance(revision, str) else None


# ---------------------------------------------------------------------------------------------- three-way merge
def merge_snapshots(base: Snapshot, ours: Snapshot, theirs: Snapshot, file: Path) -> Snapshot:
    """Merge this process's gallery (`ours`) with the file's current content (`theirs`), both changed from
    `base`; see `Gallery.save` for the rules. Raises GalleryError on a conflict."""
    header = _merge_header(base.header, ours.header, theirs.header, file)
    merged = empty_snapshot(header)
    for name in _ordered_union(theirs.templates, ours.templates):
        entry = _merge_identity(name, _entry(base, name), _entry(ours, name), _entry(theirs, name), file)
        if entry is not None:
            merged.templates[name], merged.masked[name] = entry
    return merged


#: One identity in a snapshot: its templates and their masked tags (None: not enrolled).
_Entry = Optional[Tuple[np.ndarray, np.ndarray]]


def _entry(snapshot: Snapshot, name: str) -> _Entry:
    if name not in snapshot.templates:
        return None
    return snapshot.templates[name], snapshot.masked[name]


def _merge_header(base: Header, ours: Header, theirs: Header, file: Path) -> Header:
    for field, label in (("embedding_space", "embedding space"), ("embedding_dim", "embedding length")):
        mine, other = getattr(ours, field), getattr(theirs, field)
        if mine is not None and other is not None and mine != other:
            raise _conflict(file, f"the file now holds templates of another model ({label} {other!r}, this "
                                  f"gallery's is {mine!r})")
    if ours.threshold == theirs.threshold or theirs.threshold == base.threshold:
        threshold = ours.threshold
    elif ours.threshold == base.threshold:
        threshold = theirs.threshold
    else:
        raise _conflict(file, f"the threshold was set to {theirs.threshold} there and to {ours.threshold} here")
    return Header(ours.embedding_space if ours.embedding_space is not None else theirs.embedding_space,
                   ours.embedding_dim if ours.embedding_dim is not None else theirs.embedding_dim,
                   threshold, ours.model_name or theirs.model_name)


def _merge_identity(name: str, base: _Entry, ours: _Entry, theirs: _Entry, file: Path) -> _Entry:
    """One identity's templates and tags after the merge (None: not enrolled)."""
    if _same(ours, base):
        return theirs
    if _same(theirs, base):
        return ours
    if ours is None or theirs is None:
        where = "here" if ours is None else "by the other process"
        raise _conflict(file, f"{quoted(name)} was removed or renamed {where} but given other templates on the "
                              "other side")
    if _extends(ours, base) and _extends(theirs, base):
        start = 0 if base is None else base[0].shape[0]
        return (np.concatenate([theirs[0], ours[0][start:]]), np.concatenate([theirs[1], ours[1][start:]]))
    raise _conflict(file, f"{quoted(name)} was replaced on both sides")


def _same(a: _Entry, b: _Entry) -> bool:
    if a is b:
        return True
    return a is not None and b is not None and all(x.shape == y.shape and bool(np.array_equal(x, y))
                                                   for x, y in zip(a, b))


def _extends(entry: _Entry, base: _Entry) -> bool:
    """True if `entry` is `base` with more templates appended, tags included (anything extends no base)."""
    if base is None:
        return True
    assert entry is not None
    n = base[0].shape[0]
    return entry[0].shape[0] >= n and entry[0].shape[1:] == base[0].shape[1:] and \
        bool(np.array_equal(entry[0][:n], base[0])) and bool(np.array_equal(entry[1][:n], base[1]))


def _ordered_union(first: Iterable[str], second: Iterable[str]) -> List[str]:
    return list(dict.fromkeys([*first, *second]))


def _conflict(file: Path, what: str) -> GalleryError:
    return GalleryError(f"gallery {file} was changed by another process since this gallery was loaded, and the "
                        f"changes conflict: {what}. Nothing was saved; load the gallery again and repeat the change")
