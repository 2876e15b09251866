"""A gallery in a Milvus collection: the same protocol as the file gallery, shared by many edge boxes at once.

    Recognizer(gallery="milvus://db-host:19530/people")               # Milvus standalone or cluster
    Recognizer(gallery="milvus-lite:///var/lib/g2d/galleries.db/people")  # Milvus Lite, in this process

URL scheme (see `parse_gallery_url`):

- `milvus://HOST[:PORT]/[DATABASE/]COLLECTION`: a Milvus server over gRPC (port 19530 by default, database
  "default" unless named); `milvus+tls://...` the same over TLS. Credentials never go in the URL: pass
  `MilvusGalleryOptions(token=...)` or set `G2D_MILVUS_TOKEN` ("user:password" or an API key).
- `milvus-lite://PATH.db/COLLECTION`: a Milvus Lite database in the folder PATH.db (relative to the working
  directory; `milvus-lite:///abs/path.db/...` for an absolute path), served inside this process by `pymilvus`.
  Only one process may open it at a time; for several processes on one box run its server
  (`milvus-lite server --data-dir PATH.db --port 19530`) and use `milvus://127.0.0.1:19530/COLLECTION`.

One collection is one gallery. Each row is one template: `id` (primary key), `name`, `enrolment` (the id of the
`add` call that wrote it), `enrolled_ns` and `template_index` (enrolment order), `masked` (the template's masked tag;
collections made before the tags lack it, see `g2d_edge.gallery.milvus.rows`), and the unit-norm `embedding`
(FLOAT_VECTOR, COSINE index). The embedding space, template length, model name and threshold are collection
properties written together with the collection, so a collection of another model's embedding space is refused
(GalleryError), as a gallery file of another model is.

Guarantees:

- an enrolment (`add`) is all or nothing: its templates go to the server in one insert request to a one-shard
  collection, which the server applies whole or rejects; if the request fails the rows of that enrolment that
  may have landed are deleted before GalleryError is raised. `rename` is one upsert request, `remove` one delete.
- several processes (edge boxes) can enrol and search one collection at once: rows have unique ids, so concurrent
  enrolments never overwrite each other (two boxes enrolling the same name both add their templates, as the file
  gallery's merge does), and searches and queries run at the "Strong" consistency level by default, so a box sees
  what any box enrolled before its search started. There are no cross-request transactions: `rename` checks that
  the new name is free and then writes, so a concurrent enrolment of the new name merges into it.
- every request has a bounded timeout (`MilvusGalleryOptions.timeout_s`, which also bounds pymilvus's retries);
  an unreachable server is a GalleryUnavailableError (a GalleryError and a BackendUnavailableError).

Search is exact (FLAT index, the default) or approximate with `MilvusGalleryOptions(index_type="HNSW", ...)`;
either way the server groups hits by name and returns the best template per identity (a "mean" search re-scores the
best `FUSION_CANDIDATES` of them by their fused templates). Clean queries of a search
with masked flags are searched with the filter `masked == false` (`g2d_edge.gallery.protocol.MASKED_SEARCH_RULE`).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ...errors import GalleryError, GalleryUnavailableError
from ...text import quoted
from ..protocol import (GalleryBase, IdentityInfo, Match, check_binding, check_identity_name, check_masked_identity,
                        check_query_length, check_template_length, check_threshold, checked_fusion, checked_queries,
                        checked_tags, fused_templates, lookup_name, normalised_queries, normalised_templates)
from .fused import FusedTemplateCache
from .rows import (PROP_THRESHOLD, CollectionMeta, collection_properties, collection_schema, connect, enrolment_rows,
                   hits_to_matches, meta_of, old_layout_error, ordered_templates, request_error)
from .url import MilvusGalleryOptions, parse_gallery_url, string_literal

log = logging.getLogger(__name__)

#: Rows per insert request when many identities are added at once (`add_many`).
INSERT_BATCH_ROWS = 2000
#: Rows per page when a whole collection is read (names, export).
READ_BATCH_ROWS = 10000
#: Most identities one search may return (Milvus's top-k limit).
MAX_TOP_K = 16384
#: Identities a "mean" search re-scores by their fused templates (the best by best template; `search`).
FUSION_CANDIDATES = 16
#: Names per filter expression when the templates of many identities are read.
NAMES_PER_FILTER = 512
#: Most rows one query request returns (Milvus's query result window).
MAX_QUERY_ROWS = 16384

# One flush at a time in this process: Milvus Lite fails flushes of one collection that overlap.
_FLUSH_LOCK = threading.Lock()


# ---------------------------------------------------------------------------------------------- the gallery
class MilvusGallery(GalleryBase):
    """A gallery kept in one Milvus collection (see the module docstring for the URL scheme and guarantees).

    Args:
        url: `milvus://host:19530/collection`, `milvus+tls://...` or `milvus-lite://path.db/collection`.
        options: `MilvusGalleryOptions`.
        create: True (default): a missing collection is made when the gallery is first bound to a model
            (`bind`; a Recognizer does it); False: a missing collection is a GalleryError.

    Raises:
        GalleryUnavailableError: pymilvus is not installed, or the server cannot be reached in time.
        GalleryError: the collection is missing (create=False) or is not a g2d gallery.
    """

    def __init__(self, url: str, options: Optional[MilvusGalleryOptions] = None, create: bool = True) -> None:
        self.options = options or MilvusGalleryOptions()
        self.where = parse_gallery_url(url)
        self._lock = threading.RLock()
        self._closed = False
        self._client = connect(self.where, self.options)
        self._fused = FusedTemplateCache(self.options.fused_cache_s)
        self._meta: Optional[CollectionMeta] = None
        self._pending_threshold: Optional[float] = None
        try:
            self._meta = self._read_meta()
            if self._meta is None and not create:
                raise GalleryError(f"gallery {self.where.url} not found: no collection {self.where.collection!r} "
                                   "on that server; enrol people into it first (`g2d enroll NAME PHOTOS... "
                                   f"--gallery {self.where.url}`)")
            if self._meta is not None:
                self._ensure_loaded()
        except BaseException:
            self.close()
            raise
        log.debug("opened gallery %s (%s)", self.where.url, "exists" if self._meta else "not created yet")

    # ------------------------------------------------------------------ attributes
    @property
    def location(self) -> str:
        return self.where.url

    @property
    def embedding_space(self) -> Optional[str]:  # type: ignore[override]
        return self._meta.embedding_space if self._meta else None

    @property
    def embedding_dim(self) -> Optional[int]:  # type: ignore[override]
        return self._meta.embedding_dim if self._meta else None

    @property
    def model_name(self) -> str:  # type: ignore[override]
        return self._meta.model_name if self._meta else ""

    @property
    def threshold(self) -> Optional[float]:  # type: ignore[override]
        """The gallery's own threshold (a collection property), as read when the gallery was opened or last set
        here; None: use the model's. Setting it writes it to the collection at once."""
        return self._meta.threshold if self._meta else self._pending_threshold

    @threshold.setter
    def threshold(self, value: Optional[float]) -> None:
        value = check_threshold(value)
        with self._lock:
            if self._meta is None:
                self._pending_threshold = value  # written with the collection, when it is made
                return
            text = "" if value is None else repr(value)
            self._call("set the threshold", self._client.alter_collection_properties, self.where.collection,
                       properties={PROP_THRESHOLD: text}, timeout=self.options.timeout_s)
            self._meta = self._meta._replace(threshold=value)

    @property
    def stores_masked_tags(self) -> bool:
        """False for a collection made before masked tags (layout 1); True otherwise (a new one will have them)."""
        return self._meta.tagged if self._exists() and self._meta is not None else True

    def __repr__(self) -> str:
        return f"MilvusGallery({self.where.url!r})"

    # ------------------------------------------------------------------ listing
    @property
    def num_templates(self) -> int:
        if not self._exists():
            return 0
        rows = self._call("count the templates", self._client.query, self.where.collection, filter="",
                          output_fields=["count(*)"], **self._read_kwargs())
        return int(rows[0]["count(*)"]) if rows else 0

    def __len__(self) -> int:
        return len(self.identities())

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str) or not self._exists():
            return False
        return bool(self._rows_of(name, ["id"], limit=1))

    def names(self) -> List[str]:
        return [info.name for info in self.identities()]

    def identities(self) -> List[IdentityInfo]:
        counts: Dict[str, List[int]] = defaultdict(lambda: [0, 0])
        for row in self._all_rows(self._tag_fields("name")):
            counts[row["name"]][0] += 1
            counts[row["name"]][1] += bool(row.get("masked", False))
        return [IdentityInfo(name, *counts[name]) for name in sorted(counts)]

    def tagged_templates(self, name: str) -> Tuple[np.ndarray, np.ndarray]:
        fields = self._tag_fields("embedding", "enrolled_ns", "template_index")
        rows = self._rows_of(name, fields) if self._exists() else []
        if not rows:
            raise GalleryError(f"no identity named {quoted(name)} in the gallery {self.where.url}")
        return ordered_templates(rows)

    def tagged_templates_by_name(self) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
        grouped: Dict[str, list] = defaultdict(list)
        for row in self._all_rows(self._tag_fields("name", "embedding", "enrolled_ns", "template_index")):
            grouped[row["name"]].append(row)
        return {name: ordered_templates(grouped[name]) for name in sorted(grouped)}

    # ------------------------------------------------------------------ editing
    def add(self, name: str, embeddings: np.ndarray, masked: Any = False) -> int:
        """Add templates for `name` in one insert request (all or nothing). Returns its template count now.
        `masked`: one bool for all of them or one per template; GalleryError for masked templates in a collection
        made before the tags (it says how to move the gallery to a new collection)."""
        name = check_identity_name(name)
        with self._fused.editing([name]):
            self._insert(self._checked_rows(name, embeddings, masked), f"enrol {quoted(name)}")
        return len(self._rows_of(name, ["id"]))

    def add_many(self, identities: Mapping[str, np.ndarray],
                 masked: Optional[Mapping[str, Any]] = None) -> int:
        """Add several identities ({name: tags} in `masked`, absent names clean), `INSERT_BATCH_ROWS` rows per
        insert request; each identity's templates travel in one request (all or nothing per identity). Returns how
        many templates were added."""
        with self._fused.editing([lookup_name(n) for n in identities]):
            added = self._insert_many(identities, masked or {})
        self._flush_if_needed()
        return added

    def _insert_many(self, identities: Mapping[str, np.ndarray], masked: Mapping[str, Any]) -> int:
        """The insert requests of `add_many`; the number of templates added."""
        batch: List[Dict[str, Any]] = []
        added = 0
        for name, embeddings in identities.items():
            rows = self._checked_rows(check_identity_name(name), embeddings, masked.get(name, False))
            if batch and len(batch) + len(rows) > INSERT_BATCH_ROWS:
                self._insert(batch, f"add {len(batch)} templates", flush=False)
                batch = []
            batch.extend(rows)
            added += len(rows)
        if batch:
            self._insert(batch, f"add {len(batch)} templates", flush=False)
        return added

    def remove(self, name: str) -> int:
        ids = [row["id"] for row in self._rows_of(name, ["id"])] if self._exists() else []
        if not ids:
            raise GalleryError(f"no identity named {quoted(name)} in the gallery {self.where.url}")
        with self._fused.editing([lookup_name(name)]):
            self._call(f"remove {quoted(name)}", self._client.delete, self.where.collection, ids=ids,
                       timeout=self.options.timeout_s)
        self._flush_if_needed()
        return len(ids)

    def rename(self, old: str, new: str) -> None:
        new, old = check_identity_name(new), lookup_name(old)
        fields = self._tag_fields("id", "name", "enrolment", "enrolled_ns", "template_index", "embedding")
        rows = self._rows_of(old, fields) if self._exists() else []
        if not rows:
            raise GalleryError(f"no identity named {quoted(old)} in the gallery {self.where.url}")
        if new == old:
            return
        if new in self:
            raise GalleryError(f"cannot rename {old!r} to {new!r}: {new!r} is already enrolled "
                               "(remove it first, or enrol the photos under one name)")
        for row in rows:
            row["name"] = new
            row["embedding"] = np.asarray(row["embedding"], dtype=np.float32)
        with self._fused.editing([old, new]):
            self._call(f"rename {quoted(old)}", self._client.upsert, self.where.collection, rows,
                       timeout=self.options.timeout_s)
        self._flush_if_needed()

    def clear(self) -> None:
        with self._fused.editing(None):
            if not self._exists():
                return
            self._call("clear the gallery", self._client.delete, self.where.collection, filter='id != ""',
                       timeout=self.options.timeout_s)
        self._flush_if_needed()

    # ------------------------------------------------------------------ model binding and search
    def bind(self, embedding_space: str, embedding_dim: int, model_name: str = "") -> None:
        """Check the collection against a model (GalleryError for another embedding space), or make it."""
        with self._lock:
            if self._meta is None:
                self._meta = self._read_meta()
            if self._meta is None:
                self._create(embedding_space, int(embedding_dim), model_name)
            check_binding(self._meta.embedding_space, self._meta.embedding_dim, self._meta.model_name,
                          self.where.url, embedding_space, embedding_dim)

    def search(self, embeddings: np.ndarray, top_k: int = 1, masked: Any = None,
               fusion: str = "max") -> List[List[Match]]:
        """Best `top_k` identities per query (see `GalleryBase.search`); with masked flags, the clean queries are
        searched in one request with the filter `masked == false`, the masked ones in another without.

        fusion "mean": the server finds the `FUSION_CANDIDATES` identities (at least `top_k`) whose best templates
        score highest, then each candidate is scored by its fused template (`fused_templates`) as the file gallery
        scores it, read from the collection or reused for up to `MilvusGalleryOptions.fused_cache_s` seconds
        (`g2d_edge.gallery.milvus.fused`). An identity outside those candidates is not considered: its best template
        scores below theirs (measured in benchmarks/openset.py's galleries: the best fused identity was among the
        14 best by best template for all of 12,568 probes)."""
        q, flags = checked_queries(embeddings, top_k, masked)
        fusion = checked_fusion(fusion)
        if q.shape[0] == 0 or not self._exists():
            return [[] for _ in range(q.shape[0])]
        check_query_length(int(q.shape[1]), self.embedding_dim)
        q = normalised_queries(q)
        assert self._meta is not None
        search = self._search if fusion == "max" else self._search_fused
        if flags is None or not self._meta.tagged:  # a layout-1 collection holds clean templates only
            return search(q, top_k, "")
        found: List[List[Match]] = [[] for _ in range(q.shape[0])]
        for rows, expr in ((np.flatnonzero(flags), ""), (np.flatnonzero(~flags), "masked == false")):
            if rows.size:
                for row, matches in zip(rows, search(q[rows], top_k, expr)):
                    found[row] = matches
        return found

    def _search_fused(self, q: np.ndarray, top_k: int, expr: str) -> List[List[Match]]:
        """The "mean" search: candidates by best template, re-scored by their fused templates (see `search`)."""
        candidates = self._search(q, max(int(top_k), FUSION_CANDIDATES), expr)
        names = sorted({match.name for matches in candidates for match in matches})
        fused = self._fused.get(names, expr, lambda missing: self._fused_templates(missing, expr))
        found = []
        for query, matches in zip(q, candidates):
            scored = [Match(m.name, float(query @ fused[m.name])) for m in matches if m.name in fused]
            found.append(sorted(scored, key=lambda match: -match.score)[:top_k])
        return found

    def _fused_templates(self, names: Sequence[str], expr: str) -> Dict[str, np.ndarray]:
        """{name: fused template} of the templates of `names` that pass the filter `expr`."""
        rows: List[Dict[str, Any]] = []
        what = "read the candidates' templates"
        for start in range(0, len(names), NAMES_PER_FILTER):
            chunk = ", ".join(string_literal(n) for n in names[start:start + NAMES_PER_FILTER])
            where = f"name in [{chunk}]" + (f" and {expr}" if expr else "")
            page = list(self._call(what, self._client.query, self.where.collection, filter=where,
                                   output_fields=["name", "embedding"], limit=MAX_QUERY_ROWS, **self._read_kwargs()))
            # one request is the fast path; a page that may be cut at the server's limit is read again in full
            rows += page if len(page) < MAX_QUERY_ROWS else self._rows_where(where, ["name", "embedding"], what)
        by_name: Dict[str, List[Any]] = defaultdict(list)
        for row in rows:
            by_name[str(row["name"])].append(row["embedding"])
        ordered = sorted(by_name)
        if not ordered:
            return {}
        matrix = np.concatenate([np.asarray(by_name[n], dtype=np.float32) for n in ordered])
        starts = np.cumsum([0] + [len(by_name[n]) for n in ordered[:-1]])
        return dict(zip(ordered, fused_templates(matrix, starts)))

    def _search(self, q: np.ndarray, top_k: int, expr: str) -> List[List[Match]]:
        """One search request: the unit queries `q` against the rows that pass the filter `expr` ("": all)."""
        hits = self._call("search", self._client.search, self.where.collection, data=[row for row in q],
                          limit=min(int(top_k), MAX_TOP_K), anns_field="embedding", output_fields=["name"],
                          group_by_field="name", filter=expr,
                          search_params={"metric_type": "COSINE", "params": dict(self.options.search_params)},
                          **self._read_kwargs())
        return [hits_to_matches(per_query, top_k) for per_query in hits]

    # ------------------------------------------------------------------ persistence
    def save(self, path: Optional[Union[str, os.PathLike]] = None) -> str:
        """Nothing to write: every change reached the database when it was made. Returns the gallery URL.
        A path is refused: copy a database gallery to a file with `copy_gallery` / `g2d gallery export`."""
        if path is not None:
            raise GalleryError(f"gallery {self.where.url} lives in a database and is written as it changes; to "
                               f"write a copy to {path}, use `g2d gallery export {path} --gallery "
                               f"{self.where.url}` (g2d_edge.gallery.protocol.copy_gallery)")
        return self.where.url

    def flush(self) -> None:
        """Seal what the server holds in memory into indexed segments (after large imports; Milvus Lite searches
        unflushed rows one by one)."""
        if self._exists():
            with _FLUSH_LOCK:
                self._call("flush", self._client.flush, self.where.collection, timeout=self.options.timeout_s)

    def close(self) -> None:
        """Close the connection (a Milvus Lite database stays open in this process until it exits). A request made
        afterwards, even by a thread that was already on its way, is a GalleryError."""
        self._closed = True
        client = getattr(self, "_client", None)  # kept, so that a request already under way fails by `_call`
        if client is not None:
            try:
                client.close()
            except Exception as exc:  # closing must not fail: the connection is gone either way
                log.debug("closing the connection to %s: %s", self.where.url, exc)

    # ------------------------------------------------------------------ internals: requests
    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one pymilvus request; its failures become GalleryError (GalleryUnavailableError when the server
        cannot be reached)."""
        if self._closed:
            raise GalleryError(f"gallery {self.where.url} was closed; open it again")
        try:
            return fn(*args, **kwargs)
        except GalleryError:
            raise
        except Exception as exc:
            raise request_error(what, self.where, self.options, exc) from exc

    def _read_kwargs(self) -> Dict[str, Any]:
        return {"consistency_level": self.options.consistency_level, "timeout": self.options.timeout_s}

    def _exists(self) -> bool:
        """Whether the collection exists (re-checked while it does not: another box may have made it)."""
        if self._meta is None:
            with self._lock:
                self._meta = self._read_meta()
                if self._meta is not None:
                    self._ensure_loaded()
        return self._meta is not None

    def _tag_fields(self, *fields: str) -> List[str]:
        """`fields`, and "masked" when the collection has that field."""
        return [*fields, "masked"] if self._meta is not None and self._meta.tagged else list(fields)

    def _checked_rows(self, name: str, embeddings: np.ndarray, masked: Any) -> List[Dict[str, Any]]:
        """The rows of one enrolment of `name` (a checked name), after every check `add` makes."""
        emb = normalised_templates(embeddings)
        tags = checked_tags(masked, emb.shape[0])
        meta = self._require_meta("enrol")
        check_template_length(int(emb.shape[1]), meta.embedding_dim)
        if tags.any() and not meta.tagged:
            raise old_layout_error(self.where.url)
        if tags.all():  # masked templates only: the identity must have a clean one already
            check_masked_identity(name, bool(self._rows_of(name, ["id"], limit=1, expr="masked == false")), tags)
        return enrolment_rows(name, emb, tags, meta.tagged)

    def _require_meta(self, what: str) -> CollectionMeta:
        if not self._exists():
            raise GalleryError(f"cannot {what} into gallery {self.where.url}: it is not bound to a model yet "
                               "(open it through a Recognizer, or call gallery.bind(embedding_space, dim))")
        assert self._meta is not None
        return self._meta

    def _rows_of(self, name: str, fields: Sequence[str], limit: Optional[int] = None,
                 expr: str = "") -> List[Dict[str, Any]]:
        """The rows of `name` (those that also pass the filter `expr`, if given)."""
        name = lookup_name(name)
        extra = {"limit": limit} if limit else {}
        where = f"name == {string_literal(name)}" + (f" and {expr}" if expr else "")
        return list(self._call(f"read {quoted(name)}", self._client.query, self.where.collection,
                               filter=where, output_fields=list(fields), **extra, **self._read_kwargs()))

    def _all_rows(self, fields: Sequence[str]) -> List[Dict[str, Any]]:
        """Every row of the collection (the given fields), read page by page."""
        if not self._exists():
            return []
        return self._rows_where("", fields, "read the gallery")

    def _rows_where(self, where: str, fields: Sequence[str], what: str) -> List[Dict[str, Any]]:
        """The rows that pass the filter `where` ("": all), the given fields, read page by page."""
        iterator = self._call(what, self._client.query_iterator, self.where.collection,
                              batch_size=READ_BATCH_ROWS, filter=where, output_fields=list(fields),
                              **self._read_kwargs())
        rows: List[Dict[str, Any]] = []
        try:
            while True:
                page = self._call(what, iterator.next)
                if not page:
                    return rows
                rows.extend(page)
        finally:
            iterator.close()

    def _insert(self, rows: List[Dict[str, Any]], what: str, flush: bool = True) -> None:
        """One insert request. If it fails, whatever of its enrolments may have landed is deleted, then
        GalleryError (nothing of them stays enrolled)."""
        try:
            self._call(what, self._client.insert, self.where.collection, rows, timeout=self.options.timeout_s)
        except GalleryError as exc:
            self._undo_insert(rows, what)
            raise GalleryError(f"{exc}; nothing of it was enrolled") from exc
        if flush:
            self._flush_if_needed()

    def _undo_insert(self, rows: List[Dict[str, Any]], what: str) -> None:
        enrolments = sorted({row["enrolment"] for row in rows})
        expr = "enrolment in [" + ", ".join(string_literal(e) for e in enrolments) + "]"
        try:
            self._client.delete(self.where.collection, filter=expr, timeout=self.options.timeout_s)
        except Exception as exc:  # the insert failed as a whole on every server seen; say so if this fails too
            log.warning("%s failed, and removing its partly written rows (%s) failed too: %s", what, expr, exc)

    def _flush_if_needed(self) -> None:
        """Flush after a write when the options say so; a failure is logged, since the write itself is stored."""
        flush = self.options.flush_writes
        if flush or (flush is None and self.where.local):
            try:
                self.flush()
            except GalleryError as exc:
                log.warning("the change to %s is stored, but flushing it failed (searches may be slower until the "
                            "server flushes by itself): %s", self.where.url, exc)

    # ------------------------------------------------------------------ internals: the collection
    def _read_meta(self) -> Optional[CollectionMeta]:
        """The gallery-wide fields of the collection, None when it does not exist; GalleryError when the
        collection is not a g2d gallery (or of a newer format)."""
        name = self.where.collection
        if not self._call("look up the collection", self._client.has_collection, name,
                          timeout=self.options.timeout_s):
            return None
        info = self._call("describe the collection", self._client.describe_collection, name,
                          timeout=self.options.timeout_s)
        return meta_of(info, self.where.url)

    def _create(self, embedding_space: str, embedding_dim: int, model_name: str) -> None:
        """Make the collection with the model's embedding space; another box making it at the same time is fine
        (whichever was first wins, and `bind` checks its space)."""
        schema = collection_schema(embedding_dim)
        properties = collection_properties(embedding_space, embedding_dim, model_name, self._pending_threshold)
        try:
            self._call("create the collection", self._client.create_collection, self.where.collection,
                       schema=schema, properties=properties, num_shards=1,
                       consistency_level=self.options.consistency_level, timeout=self.options.timeout_s)
            log.info("created gallery collection %s (embedding space %s, %d-d)", self.where.url, embedding_space,
                     embedding_dim)
        except GalleryError as exc:
            if isinstance(exc, GalleryUnavailableError):
                raise
            log.debug("creating %s failed (made by another box at the same time?): %s", self.where.url, exc)
            self._meta = self._await_meta(exc)
        else:
            self._meta = self._await_meta(None)
        self._ensure_loaded()

    def _await_meta(self, create_error: Optional[GalleryError]) -> CollectionMeta:
        """The new collection's fields, waiting up to `timeout_s` for it to appear: a box whose create request lost
        the race to another box's sees the winner's collection only once the server has finished making it."""
        deadline = time.monotonic() + self.options.timeout_s
        while True:
            meta = self._read_meta()
            if meta is not None:
                return meta
            if time.monotonic() > deadline:
                why = f" ({create_error})" if create_error else ""
                raise GalleryError(f"could not create the collection of gallery {self.where.url}{why}; check the "
                                   "server log and the user's rights")
            time.sleep(0.05)

    def _index_params(self) -> Any:
        params = self._client.prepare_index_params()
        params.add_index(field_name="embedding", index_type=self.options.index_type, metric_type="COSINE",
                         params=dict(self.options.index_params))
        return params

    def _ensure_loaded(self) -> None:
        """Load the collection for search (made by another box that may not have indexed or loaded it yet)."""
        name = self.where.collection
        state = self._call("check the collection", self._client.get_load_state, name,
                           timeout=self.options.timeout_s)
        if str(state.get("state", "")) == "Loaded":
            return
        if not self._call("list the indexes", self._client.list_indexes, name, timeout=self.options.timeout_s):
            try:  # sync=False: the index of an empty collection exists at once (and Milvus Lite cannot wait)
                self._call("index the collection", self._client.create_index, name, self._index_params(),
                           sync=False, timeout=self.options.timeout_s)
            except GalleryError as exc:  # indexed by the box that made it, in the meantime
                log.debug("indexing %s: %s", self.where.url, exc)
        self._call("load the collection", self._client.load_collection, name, timeout=self.options.timeout_s)
