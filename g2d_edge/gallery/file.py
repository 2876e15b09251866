"""A persistent gallery of enrolled people: several unit-norm templates per identity, cosine top-k search.

On disk a gallery is one `.npz` file (NumPy arrays + a JSON header, no pickle; the format and the merge below are
`g2d_edge.gallery.format`). A path without a suffix (or an existing folder) is a gallery directory holding
`gallery.npz`.

Saving is safe against crashes and against other processes (see `Gallery.save`):

- atomic: the new content goes to a temporary file in the same folder (`.<name>.XXXXXXXX.tmp`), is fsync'ed, then
  `os.replace`d over the old file, so a crash or a full disk leaves the previous gallery intact; temporary files
  left by a killed save are removed by the next load or save of the same gallery;
- locked: a save holds an exclusive `flock` on `.<name>.lock` next to the gallery (waiting at most `lock_timeout`
  seconds, then GalleryError);
- merged: when another process saved the file since this gallery was loaded, the two are merged per identity
  (nothing another process enrolled is lost), or the save is refused with GalleryError when the changes conflict.

Loading validates the whole file (header fields, array types and shapes, names); any damage is a GalleryError.

A gallery remembers the `embedding_space` of the model that made its templates (from the model's sidecar) and
refuses to be used with another model: embeddings of two different networks are not comparable.
"""
from __future__ import annotations

import logging
import os
import threading
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import GalleryError, InputError
from ..files import (LockTimeout, atomic_write, exclusive_lock, regular_file_problem, remove_temp_files,
                    temp_files_of)
from ..text import printable, quoted
from .format import (Header, Snapshot, disk_revision, empty_snapshot, header_problem, is_number, merge_snapshots,
                     read_gallery_file, write_npz)
from .protocol import (GalleryBase, IdentityInfo, Match, check_binding, check_identity_name, check_masked_identity,
                       check_query_length, check_template_length, checked_fusion, checked_queries, checked_tags,
                       fused_templates, lookup_name, normalised_queries, normalised_templates)

log = logging.getLogger(__name__)

#: File name used inside a gallery directory.
GALLERY_FILENAME = "gallery.npz"
#: Seconds `Gallery.save` waits for another process's save of the same file before giving up.
DEFAULT_LOCK_TIMEOUT = 10.0


def resolve_gallery_path(path: Union[str, os.PathLike]) -> Path:
    """The `.npz` file a gallery path refers to: the path itself, or `<dir>/gallery.npz` for a directory-style path."""
    p = Path(path)
    try:
        is_dir = p.is_dir()
    except (OSError, ValueError) as exc:  # a name too long for the file system, a NUL
        raise GalleryError(f"gallery path {printable(p)} cannot be used: {getattr(exc, 'strerror', None) or exc}; "
                           "pass a shorter path of a gallery file (.npz) or folder") from None
    if is_dir or p.suffix == "":
        return p / GALLERY_FILENAME
    return p


def followed_gallery_file(path: Union[str, os.PathLike]) -> Path:
    """The file a gallery path finally names: symbolic links are followed (to the end of a chain, also a dangling
    one), so that a gallery path that links to a shared gallery saves into, locks beside and merges with the shared
    file instead of replacing the link with a private copy."""
    file = resolve_gallery_path(path)
    try:
        if not file.is_symlink():
            return file
        return Path(os.path.realpath(file))
    except (OSError, ValueError) as exc:
        raise GalleryError(f"gallery path {printable(file)} cannot be used: "
                           f"{getattr(exc, 'strerror', None) or exc}") from None


def gallery_lock_path(path: Union[str, os.PathLike]) -> Path:
    """The lock file `Gallery.save` holds while it writes the gallery at `path`: `.<name>.lock` beside the file
    (beside the file a symbolic link points to)."""
    file = followed_gallery_file(path)
    return file.with_name(f".{file.name}.lock")


def _faiss_module() -> Any:
    try:
        import faiss  # type: ignore
    except ImportError:
        return None
    return faiss


class Gallery(GalleryBase):
    """Enrolled identities, each with one or more L2-normalised templates, searched by cosine similarity.

    Args:
        embedding_space: id of the embedding geometry of the model whose embeddings are stored (the model sidecar's
            `embedding_space`); None until the gallery is first bound to a model (`bind`).
        embedding_dim: length of each template; None until the first template is added or a model is bound.
        threshold: per-gallery cosine threshold for "known person"; None means "use the model's threshold".
        path: where `save()` writes by default.
        use_faiss: False (default: NumPy, one BLAS matrix product per query batch), True (require FAISS,
            `pip install faiss-cpu`), or "auto" (FAISS when installed and the gallery holds at least
            `faiss_min_templates` templates). Both give the same results (FAISS searches templates exactly, then
            aggregates per identity). Measured on a 2-core x86 CPU with 60,000 templates of 512-d: one query
            5-10 ms with FAISS vs 18 ms with NumPy, but a batch of 16 queries 140 ms vs 50 ms, so FAISS pays off
            only for very large galleries queried one face at a time (it also avoids the (N, T) score matrix).
        faiss_min_templates: gallery size from which "auto" switches to FAISS.
        model_name: name of the model the templates were made with (informative).
        lock_timeout: seconds `save` waits for another process that is saving the same file.

    Thread-safe: mutations and searches are serialised by a lock. Safe across processes: see `save`.
    Implements the gallery protocol `g2d_edge.gallery.protocol.GalleryBase` (shared with the database gallery).
    """

    def __init__(self, embedding_space: Optional[str] = None, embedding_dim: Optional[int] = None,
                 threshold: Optional[float] = None, path: Optional[Union[str, os.PathLike]] = None,
                 use_faiss: Union[str, bool] = False, faiss_min_templates: int = 50000,
                 model_name: str = "", lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        if use_faiss not in ("auto", True, False):
            raise InputError(f"use_faiss must be 'auto', True or False, got {use_faiss!r}")
        if use_faiss is True and _faiss_module() is None:
            raise GalleryError("use_faiss=True but FAISS is not installed: pip install faiss-cpu (or g2d-edge[faiss])")
        if not is_number(lock_timeout) or not lock_timeout >= 0:
            raise InputError(f"lock_timeout must be a number of seconds >= 0, got {lock_timeout!r}")
        if isinstance(embedding_dim, np.integer):
            embedding_dim = int(embedding_dim)
        if isinstance(threshold, np.floating):
            threshold = float(threshold)
        problem = header_problem(embedding_space, embedding_dim, threshold, model_name)
        if problem is not None:
            raise InputError(f"Gallery: {problem}")
        self.embedding_space = embedding_space
        self.embedding_dim = embedding_dim
        self.threshold = threshold
        self.model_name = model_name
        self.path: Optional[Path] = resolve_gallery_path(path) if path is not None else None
        self.use_faiss = use_faiss
        self.faiss_min_templates = int(faiss_min_templates)
        self.lock_timeout = float(lock_timeout)
        self._templates: Dict[str, np.ndarray] = {}
        self._masked: Dict[str, np.ndarray] = {}  # {name: (K,) bool masked tags}, the names of _templates
        self._lock = threading.RLock()
        self._index: Optional[Dict[str, Any]] = None  # search matrix cache, rebuilt after a change
        self._changes = 0
        # What the file `_base_file` held when this gallery last loaded or saved it: the merge base of `save`.
        self._base = empty_snapshot()
        self._base_file: Optional[Path] = None
        self._base_revision: Optional[str] = None

    # ------------------------------------------------------------------ listing
    def __len__(self) -> int:
        """Number of enrolled identities."""
        return len(self._templates)

    def __contains__(self, name: object) -> bool:
        return lookup_name(name) in self._templates

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path else ""
        with self._lock:
            return f"Gallery({len(self)} identities, {self.num_templates} templates{where})"

    @property
    def num_templates(self) -> int:
        """Total number of templates over all identities."""
        with self._lock:  # another thread's add must not change the dict while it is summed
            return sum(t.shape[0] for t in self._templates.values())

    @property
    def location(self) -> str:
        """The gallery file, or "memory" for a gallery never loaded or saved."""
        return str(self.path) if self.path is not None else "memory"

    def is_empty(self) -> bool:
        """True when no one is enrolled."""
        return not self._templates

    def names(self) -> List[str]:
        """Enrolled names, sorted."""
        with self._lock:
            return sorted(self._templates)

    def identities(self) -> List[IdentityInfo]:
        """Every enrolled name with its template count and masked template count, sorted by name."""
        with self._lock:
            return [IdentityInfo(n, int(self._templates[n].shape[0]), int(self._masked[n].sum()))
                    for n in self.names()]

    def tagged_templates(self, name: str) -> Tuple[np.ndarray, np.ndarray]:
        """Copies of the (K, D) templates of `name` and their (K,) masked tags. GalleryError if it is not enrolled."""
        name = lookup_name(name)
        with self._lock:
            return self._get(name).copy(), self._masked[name].copy()

    # ------------------------------------------------------------------ editing
    def add(self, name: str, embeddings: np.ndarray, masked: Any = False) -> int:
        """Add one (D,) or several (K, D) templates for `name` (created if new). Returns its template count.

        Embeddings are L2-normalised here; all must have the gallery's dimension. `masked`: one bool for all of
        them or one per template (True: a face wearing a mask); the identity must keep a clean template.
        """
        name = check_identity_name(name)
        emb = normalised_templates(embeddings)
        tags = checked_tags(masked, emb.shape[0])
        with self._lock:
            check_template_length(int(emb.shape[1]), self.embedding_dim)
            old, old_tags = self._templates.get(name), self._masked.get(name, np.zeros(0, dtype=bool))
            check_masked_identity(name, not old_tags.all() if old is not None else False, tags)
            if self.embedding_dim is None:
                self.embedding_dim = int(emb.shape[1])
            self._templates[name] = emb if old is None else np.concatenate([old, emb])
            self._masked[name] = np.concatenate([old_tags, tags])
            self._changed()
            return int(self._templates[name].shape[0])

    def remove(self, name: str) -> int:
        """Remove an identity and all its templates. Returns how many templates were removed."""
        name = lookup_name(name)
        with self._lock:
            count = int(self._get(name).shape[0])
            del self._templates[name]
            del self._masked[name]
            self._changed()
            return count

    def rename(self, old: str, new: str) -> None:
        """Rename an identity. Raises GalleryError if `old` is unknown or `new` is already enrolled."""
        new, old = check_identity_name(new), lookup_name(old)
        with self._lock:
            self._get(old)
            if new == old:
                return
            if new in self._templates:
                raise GalleryError(f"cannot rename {old!r} to {new!r}: {new!r} is already enrolled "
                                   "(remove it first, or enrol the photos under one name)")
            # keep insertion order stable so template order on disk does not jump around
            self._templates = {(new if k == old else k): v for k, v in self._templates.items()}
            self._masked = {(new if k == old else k): v for k, v in self._masked.items()}
            self._changed()

    def clear(self) -> None:
        """Remove every identity (the embedding space and threshold are kept)."""
        with self._lock:
            self._templates.clear()
            self._masked.clear()
            self._changed()

    # ------------------------------------------------------------------ model binding
    def bind(self, embedding_space: str, embedding_dim: int, model_name: str = "") -> None:
        """Attach this gallery to a model's embedding space.

        An unbound gallery adopts the space; a gallery made with another model is refused with GalleryError.
        """
        with self._lock:
            check_binding(self.embedding_space, self.embedding_dim, self.model_name,
                          str(self.path) if self.path else "", embedding_space, embedding_dim)
            self.embedding_space = embedding_space
            self.embedding_dim = int(embedding_dim)
            if model_name and not self.model_name:
                self.model_name = model_name

    # ------------------------------------------------------------------ search
    def search(self, embeddings: np.ndarray, top_k: int = 1, masked: Any = None,
               fusion: str = "max") -> List[List[Match]]:
        """Best `top_k` identities for each query embedding, best first.

        `embeddings` is one (D,) vector or an (N, D) batch; the result has one list per query.
        `masked`: None (every template is compared), or one bool per query (or one for all) saying whether the face
        wears a mask: a clean query is then compared with clean templates only, a masked one with all
        (`g2d_edge.gallery.protocol.MASKED_SEARCH_RULE`).
        `fusion`: "max", an identity's score is the highest cosine between the query and any of those templates;
        "mean", the cosine with their fused template (renormalised mean, `fused_templates`), computed exactly.
        An empty gallery matches nothing: each query gets an empty list (no exception), so a caller can tell
        "no one enrolled" apart from "not similar enough" by `len(gallery) == 0`.
        """
        q, flags = checked_queries(embeddings, top_k, masked)
        fusion = checked_fusion(fusion)
        with self._lock:
            if not self._templates or q.shape[0] == 0:
                return [[] for _ in range(q.shape[0])]
            check_query_length(int(q.shape[1]), self.embedding_dim)
            q = normalised_queries(q)
            index = self._search_index()
            names = index["names"]
            k = min(top_k, len(names))
            scores = np.empty((q.shape[0], len(names)), dtype=np.float32)
            clean = np.zeros(q.shape[0], dtype=bool) if flags is None else ~flags
            if not clean.all():
                scores[~clean] = self._identity_scores(index["all"], q[~clean], k, len(names), fusion)
            if clean.any():
                scores[clean] = self._identity_scores(self._clean_part(index), q[clean], k, len(names), fusion)
            return [self._top(row, names, k) for row in scores]

    @staticmethod
    def _top(row: np.ndarray, names: Sequence[str], k: int) -> List[Match]:
        if k < row.shape[0]:
            idx = np.argpartition(-row, k - 1)[:k]
        else:
            idx = np.arange(row.shape[0])
        idx = idx[np.argsort(-row[idx], kind="stable")]
        return [Match(names[i], float(row[i])) for i in idx if np.isfinite(row[i])]

    def _search_index(self) -> Dict[str, Any]:
        """The search matrices, cached until the next change: "all" templates, and the "clean" ones (built on the
        first clean query; the same as "all" when no template is masked)."""
        if self._index is None:
            names = list(self._templates)
            self._index = {"names": names, "all": self._part(names, clean_only=False), "clean": None}
        return self._index

    def _clean_part(self, index: Dict[str, Any]) -> Dict[str, Any]:
        if index["clean"] is None:
            any_masked = any(tags.any() for tags in self._masked.values())
            index["clean"] = self._part(index["names"], clean_only=True) if any_masked else index["all"]
        return index["clean"]

    def _part(self, names: List[str], clean_only: bool) -> Dict[str, Any]:
        """One searchable set of templates: `ids` (identities that have templates in it, as indices into `names`),
        their template `counts`, the template `matrix` (identity after identity), reduceat `starts`, each
        template's `owner` identity, and a FAISS index of the matrix when FAISS is used."""
        rows = [self._templates[n][~self._masked[n]] if clean_only else self._templates[n] for n in names]
        ids = np.array([i for i, r in enumerate(rows) if r.shape[0]], dtype=np.int64)
        counts = np.array([rows[i].shape[0] for i in ids], dtype=np.int64)
        dim = int(self.embedding_dim or 0)
        matrix = np.ascontiguousarray(np.concatenate([rows[i] for i in ids]) if len(ids) else np.zeros((0, dim)),
                                      dtype=np.float32)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        part: Dict[str, Any] = {"ids": ids, "counts": counts, "matrix": matrix, "starts": starts,
                                "owner": np.repeat(ids, counts), "faiss": None, "fused": None}
        faiss = _faiss_module() if self.use_faiss is not False else None
        if faiss is not None and matrix.shape[0] and (self.use_faiss is True
                                                      or matrix.shape[0] >= self.faiss_min_templates):
            flat = faiss.IndexFlatIP(matrix.shape[1])
            flat.add(matrix)
            part["faiss"] = flat
            log.debug("gallery search uses FAISS over %d templates", matrix.shape[0])
        return part

    @staticmethod
    def _identity_scores(part: Dict[str, Any], q: np.ndarray, k: int, n_identities: int,
                         fusion: str = "max") -> np.ndarray:
        """(N, n_identities) cosine per identity over the templates of `part` (-inf: none there): the best
        template's ("max") or the fused template's ("mean", built on first use and cached with the part)."""
        if fusion == "max" and part["faiss"] is not None:
            return Gallery._faiss_identity_scores(part, q, k, n_identities)
        out = np.full((q.shape[0], n_identities), -np.inf, dtype=np.float32)
        if not len(part["ids"]):
            return out
        if fusion == "mean":
            if part["fused"] is None:
                part["fused"] = fused_templates(part["matrix"], part["starts"])
            out[:, part["ids"]] = q @ part["fused"].T
        else:
            out[:, part["ids"]] = np.maximum.reduceat(q @ part["matrix"].T, part["starts"], axis=1)
        return out

    @staticmethod
    def _faiss_identity_scores(part: Dict[str, Any], q: np.ndarray, k: int, n_identities: int) -> np.ndarray:
        """Per-identity best scores from a template-level FAISS search (exact for the top k identities).

        Templates ranked above the k-th best identity's best template can only belong to the k-1 identities
        ranked above it, so searching k * (largest template count) templates always contains the top k identities.
        """
        n_templates = part["matrix"].shape[0]
        depth = int(min(n_templates, k * int(part["counts"].max())))
        scores, ids = part["faiss"].search(np.ascontiguousarray(q, dtype=np.float32), depth)
        out = np.full((q.shape[0], n_identities), -np.inf, dtype=np.float32)
        for r in range(q.shape[0]):
            valid = ids[r] >= 0
            owners = part["owner"][ids[r][valid]]
            np.maximum.at(out[r], owners, scores[r][valid])
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, path: Optional[Union[str, os.PathLike]] = None) -> Path:
        """Write the gallery to `path` (default: where it was loaded from) and return the file written.

        Atomic: if writing fails part-way (disk full, crash, exception), the previous file is left unchanged.

        Locked and merged: the save holds an exclusive lock on the file (`gallery_lock_path`; GalleryError after
        `lock_timeout` seconds). If another process saved the file since this gallery loaded (or last saved) it,
        or the file is not the one this gallery came from, what is on disk is merged per identity against the
        version this gallery started from (a three-way merge), so nobody's work is silently overwritten:

        - an identity changed on one side only keeps that side's version: people enrolled, removed or renamed by
          either side all stay enrolled, removed or renamed (a rename is the removal of the old name and the
          addition of the new one);
        - templates both sides added to the same name are all kept (the file's first, then this gallery's);
        - an identity removed or renamed on one side but changed on the other, a different threshold set on both
          sides, or a file of another model's embedding space is a conflict: GalleryError, nothing is written and
          this gallery is unchanged (load the file again and repeat the change).

        Afterwards this gallery holds exactly what was written. Stale temporary files of the gallery (left by a
        killed save) are removed.
        """
        shown = resolve_gallery_path(path) if path is not None else self.path
        if shown is None:
            raise GalleryError("this gallery has no path yet: call save(path)")
        target = followed_gallery_file(shown)
        problem = header_problem(self.embedding_space, self.embedding_dim, self.threshold, self.model_name)
        if problem is not None:
            raise GalleryError(f"cannot save gallery {target}: its {problem}; set a valid value first (nothing was "
                               "written)")
        with self._lock:
            revision = uuid.uuid4().hex
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with exclusive_lock(gallery_lock_path(target), self.lock_timeout):
                    remove_temp_files(target)
                    snapshot = self._merged_with(target)
                    atomic_write(target, lambda fh: write_npz(fh, snapshot, revision))
            except LockTimeout:
                raise GalleryError(f"cannot save gallery {target}: another process has held its lock "
                                   f"({gallery_lock_path(target)}) for more than {self.lock_timeout:g} s; wait "
                                   "for it to finish and save again, or pass a larger lock_timeout") from None
            except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
                raise GalleryError(f"cannot write gallery {printable(target)}: {exc}; the previous file (if any) "
                                   "is unchanged") from exc
            self._set_state(snapshot, shown, revision)
        log.info("saved gallery %s (%d identities, %d templates)", target, len(snapshot.templates),
                 sum(t.shape[0] for t in snapshot.templates.values()))
        return target

    @classmethod
    def load(cls, path: Union[str, os.PathLike], **kwargs: Any) -> "Gallery":
        """Read a gallery written by `save`. Raises GalleryError if it is missing, not a regular file, damaged in
        any way (the whole header and every array are checked) or of a newer format.

        Extra keyword arguments (`use_faiss`, `faiss_min_templates`, `lock_timeout`) are passed to the constructor.
        Temporary files left next to it by a killed save are removed when no save is running.
        """
        file = resolve_gallery_path(path)
        problem = regular_file_problem(file)
        if problem == "not found":
            raise GalleryError(f"gallery not found: {file}; create one with `g2d enroll NAME PHOTOS... "
                               f"--gallery {path}` or Gallery().save(path)")
        if problem is not None:
            raise GalleryError(f"gallery {file} is {problem}; pass the path of a gallery file (.npz) or folder")
        gallery = cls(path=file, **kwargs)
        _remove_stale_temp_files(followed_gallery_file(file))
        snapshot, revision = read_gallery_file(file)
        gallery._set_state(snapshot, file, revision)
        log.debug("loaded gallery %s (%d identities)", file, len(gallery))
        return gallery

    @classmethod
    def open(cls, path: Union[str, os.PathLike], **kwargs: Any) -> "Gallery":
        """Load the gallery at `path` if it exists, else return a new empty gallery that will save there."""
        file = resolve_gallery_path(path)
        if file.exists():
            return cls.load(file, **kwargs)
        gallery = cls(path=file, **kwargs)
        gallery._base_file = file  # an empty start: whatever appears there before `save` is merged, not replaced
        return gallery

    def _header(self) -> Header:
        return Header(self.embedding_space, self.embedding_dim, self.threshold, self.model_name)

    def _merged_with(self, target: Path) -> Snapshot:
        """What `save` writes to `target`: this gallery, merged with the file there if someone else wrote it."""
        ours = Snapshot(self._header(), dict(self._templates), dict(self._masked))
        problem = regular_file_problem(target)
        if problem == "not found":
            return ours
        if problem is not None:
            raise GalleryError(f"cannot save gallery to {target}: it is {problem}; save to a .npz file path")
        same_file = self._base_file is not None and target == followed_gallery_file(self._base_file)
        if same_file and self._base_revision is not None and disk_revision(target) == self._base_revision:
            return ours  # nobody wrote it since we read it
        try:
            theirs, _ = read_gallery_file(target)
        except GalleryError as exc:
            raise GalleryError(f"not saved: {exc}. Move that file away to save this gallery there, or save "
                               "to another path") from None
        base = self._base if same_file else empty_snapshot()
        merged = merge_snapshots(base, ours, theirs, target)
        log.info("gallery %s was changed by another process since it was loaded: merged (%d identities here, %d "
                 "there, %d after the merge)", target, len(ours.templates), len(theirs.templates),
                 len(merged.templates))
        return merged

    def _set_state(self, snapshot: Snapshot, file: Path, revision: Optional[str]) -> None:
        """Make this gallery hold `snapshot`, as read from or written to `file` (the base of the next merge)."""
        with self._lock:
            header = snapshot.header
            self.embedding_space, self.embedding_dim = header.embedding_space, header.embedding_dim
            self.threshold, self.model_name = header.threshold, header.model_name or ""
            self._templates = dict(snapshot.templates)
            self._masked = dict(snapshot.masked)
            self._changed()
            self.path = file
            self._base = Snapshot(header, dict(snapshot.templates), dict(snapshot.masked))
            self._base_file, self._base_revision = file, revision

    # ------------------------------------------------------------------ helpers
    @property
    def changes(self) -> int:
        """How many times the templates changed (enrolment, removal, renaming, clearing, loading): a cache key."""
        return self._changes

    def _changed(self) -> None:
        """The templates changed: drop the search matrices, count the change (lock held)."""
        self._index = None
        self._changes += 1

    def _get(self, name: str) -> np.ndarray:
        try:
            return self._templates[name]
        except (KeyError, TypeError):
            known = ", ".join(quoted(n) for n in self.names()[:10]) or "none"
            raise GalleryError(f"no identity named {quoted(name)} in the gallery (enrolled: {known})") from None



#: URL schemes of database galleries (see `g2d_edge.gallery.milvus`).
DATABASE_SCHEMES = ("milvus://", "milvus+tls://", "milvus-lite://")


def is_gallery_url(location: Union[str, os.PathLike]) -> bool:
    """True when `location` is a database gallery URL (`milvus://...`, `milvus+tls://...`, `milvus-lite://...`)
    rather than a file path."""
    return isinstance(location, str) and location.lower().startswith(DATABASE_SCHEMES)


def open_gallery(location: Union[str, os.PathLike], create: bool = True, **options: Any) -> GalleryBase:
    """The gallery at `location`: a file path (`Gallery`) or a database URL (`MilvusGallery`, README "Scaling out").

    create=True opens a missing gallery as a new empty one (a file is written by the first `save`, a collection is
    made when the gallery is bound to a model); create=False raises GalleryError for a missing one.
    `options`: keyword arguments of `Gallery.load` for a file, `options=MilvusGalleryOptions(...)` for a URL.
    Any other `scheme://` is an InputError (not silently taken for a file name).
    """
    if is_gallery_url(location):
        from .milvus.gallery import MilvusGallery  # lazy: pymilvus is an optional extra

        return MilvusGallery(str(location), create=create, **options)
    if isinstance(location, str) and "://" in location:
        scheme = location.split("://", 1)[0]
        raise InputError(f"unknown gallery URL scheme {quoted(scheme + '://')}: use a file path, "
                         "milvus://host:19530/collection or milvus-lite:///path/galleries.db/collection")
    return Gallery.open(location, **options) if create else Gallery.load(location, **options)


def _remove_stale_temp_files(file: Path) -> None:
    """Remove temporary files of `file` left by killed saves, unless a save is running now (its lock is taken)."""
    if not temp_files_of(file):
        return
    try:
        with exclusive_lock(gallery_lock_path(file), timeout=0):
            remove_temp_files(file)
    except OSError as exc:  # a save is running (its temporary file is in use), or the folder is read-only
        log.debug("left the temporary files of %s alone: %s", file, exc)
