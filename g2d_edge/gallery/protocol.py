"""The one gallery protocol: what the file gallery (`g2d_edge.gallery.Gallery`) and the database gallery
(`g2d_edge.gallery.milvus.MilvusGallery`) both offer, and the rules they share.

A gallery holds identities, each with one or more L2-normalised templates (face embeddings of one model), and
answers cosine top-k searches. How an identity is scored is the search's `fusion` (`FUSIONS`): "max", the best cosine
over its templates, or "mean", the cosine with its fused template (the renormalised mean of its templates,
`fused_templates`). A `Recognizer` searches with the fusion its model's open-set calibration was made for (the shipped
models: "mean", which misses fewer enrolled people at the same share of strangers named; README "Open-set
identification"). It remembers the `embedding_space` of the model that made its templates and refuses another
model's (`bind`).

Every template carries a `masked` tag: False (the default) for a clean face, True for a face wearing a mask (the
synthetic masked templates `Recognizer.enroll` adds with `RecognizerOptions(masked_templates=N)`, or a real masked
photo enrolled with `enroll(..., masked=True)`). `search(..., masked=flags)` applies the tag rule
(`MASKED_SEARCH_RULE`): a clean query is compared with clean templates only, a masked query with all of them.

Everything that must behave the same whatever the storage lives here: identity-name rules
(`check_identity_name`), embedding validation and normalisation (`normalised_templates`), query checks
(`checked_queries`), the model-binding check (`check_binding`), and copying one gallery into another
(`copy_gallery`, behind `g2d gallery export/import`).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, NamedTuple, Optional, Tuple, Union

import numpy as np

from ..errors import GalleryError, InputError, check_value
from ..text import INVISIBLE_CHARACTERS, MAX_NAME_LENGTH, forbidden_character, is_visible, normalised_name, quoted
from ..vectors import l2_normalise


class Match(NamedTuple):
    """One candidate identity for a query: its name and the best cosine similarity over its templates."""

    name: str
    score: float


#: How a search scores an identity: "max" (its best template's cosine) or "mean" (the cosine with its fused
#: template, `fused_templates`).
FUSIONS = ("max", "mean")

#: How `search(embeddings, masked=flags)` uses the template tags (see `GalleryBase.search`).
MASKED_SEARCH_RULE = ("a clean query is compared with each identity's clean templates only (its masked templates are "
                      "skipped); a masked query with all of them")


@dataclass(frozen=True)
class IdentityInfo:
    """A row of `Gallery.identities()`: an enrolled name, how many templates it holds, and how many of them are
    tagged masked."""

    name: str
    templates: int
    masked: int = 0


def check_identity_name(name: str) -> str:
    """The name as stored: Unicode NFC, surrounding spaces removed (`g2d_edge.text.normalised_name`).

    Raises InputError unless it is a string of at most `MAX_NAME_LENGTH` characters with at least one visible
    character and no control, bidirectional or invisible character (NUL, newline, escape, U+202E, U+200F, U+200B
    ...; see `g2d_edge.text`).
    """
    if not isinstance(name, str):
        raise InputError(f"an identity name must be a string, got {type(name).__name__}")
    bad = forbidden_character(name)
    if bad is not None:
        position, char = bad
        kind = "invisible character" if char in INVISIBLE_CHARACTERS else "control character"
        raise InputError(f"identity name {quoted(name)} contains the {kind} U+{ord(char):04X} at position "
                         f"{position}; use printable characters only")
    stripped = normalised_name(name)
    if not stripped:
        raise InputError(f"an identity name must not be empty, got {quoted(name)}")
    if not any(is_visible(c) for c in stripped):
        raise InputError(f"identity name {quoted(name)} has no visible character (only spaces, fillers or marks); "
                         "give a name that can be read")
    if len(stripped) > MAX_NAME_LENGTH:
        raise InputError(f"identity name {quoted(stripped, 40)} has {len(stripped)} characters; at most "
                         f"{MAX_NAME_LENGTH} are allowed")
    return stripped


def lookup_name(name: Any) -> Any:
    """The form under which `name` is stored (NFC, stripped), for finding an enrolled identity; a non-string is
    returned unchanged (it finds nothing)."""
    return normalised_name(name) if isinstance(name, str) else name


def normalised_templates(embeddings: np.ndarray) -> np.ndarray:
    """One (D,) or several (K, D) embeddings as a (K, D) float32 array of unit rows.

    Raises InputError for another shape, K = 0, NaN or infinity, or a zero-length row.
    """
    emb = np.asarray(embeddings, dtype=np.float32)
    if emb.ndim == 1:
        emb = emb[None]
    if emb.ndim != 2 or emb.shape[0] == 0:
        raise InputError(f"embeddings must be a (D,) or (K, D) array with K >= 1, got shape {emb.shape}")
    if not np.all(np.isfinite(emb)):
        raise InputError("embeddings contain NaN or infinity")
    if np.any(np.linalg.norm(emb, axis=1) < 1e-12):
        raise InputError("an embedding has zero length and cannot be normalised")
    return l2_normalise(emb)


def checked_tags(masked: Any, count: int, what: str = "template") -> np.ndarray:
    """`masked` as a (count,) bool array: one bool for all `count` rows, or one bool per row.

    Raises InputError for anything else (numbers, texts, None inside, a wrong length), saying what to pass.
    """
    if isinstance(masked, (bool, np.bool_)) or (isinstance(masked, np.ndarray) and masked.shape == ()
                                                 and masked.dtype == bool):
        return np.full(count, bool(masked), dtype=bool)
    example = ", ".join(["False"] * min(count, 2) + (["..."] if count > 2 else []))
    hint = f"pass masked=True/False for all {count} {what}(s), or one True/False per {what} ([{example}])"
    if isinstance(masked, (str, bytes)) or not hasattr(masked, "__len__"):
        raise InputError(f"masked must be a bool or one bool per {what}, got {type(masked).__name__} "
                         f"{masked!r:.40}; {hint}")
    tags = np.asarray(masked)
    if tags.ndim != 1 or tags.shape[0] != count:
        raise InputError(f"masked has {tags.shape[0] if tags.ndim == 1 else 'shape ' + str(tags.shape)} "
                         f"value(s) for {count} {what}(s); {hint}")
    if tags.dtype != bool and not (tags.dtype == object and all(isinstance(t, (bool, np.bool_)) for t in tags)):
        raise InputError(f"masked must hold True/False values, got a {tags.dtype} array; {hint}")
    return tags.astype(bool)


def check_masked_identity(name: str, has_clean: bool, tags: np.ndarray) -> None:
    """InputError when an add would leave `name` with masked templates only: clean faces are compared with clean
    templates only (`MASKED_SEARCH_RULE`), so such a person could never be recognised without a mask."""
    if not has_clean and bool(np.all(tags)):
        raise InputError(f"{quoted(name)} would have masked templates only, and a face without a mask is compared "
                         "with clean templates only: enrol a clean photo of the person first (or in the same call), "
                         "or add these templates as clean (masked=False)")


def check_template_length(length: int, gallery_dim: Optional[int]) -> None:
    """GalleryError when templates of `length` cannot join a gallery of `gallery_dim` (None: not fixed yet)."""
    if gallery_dim is not None and length != gallery_dim:
        raise GalleryError(f"embedding length {length} does not match this gallery's {gallery_dim}: it was made "
                           "with another model")


def checked_queries(embeddings: np.ndarray, top_k: int,
                    masked: Any = None) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Query embeddings as an (N, D) float32 array (not yet normalised) and their masked flags as an (N,) bool array
    (None: no flags, every template is compared); InputError for a bad shape, top_k or flags."""
    if top_k < 1:
        raise InputError(f"top_k must be at least 1, got {top_k}")
    q = np.asarray(embeddings, dtype=np.float32)
    if q.ndim == 1:
        q = q[None]
    if q.ndim != 2:
        raise InputError(f"query embeddings must be (D,) or (N, D), got shape {q.shape}")
    return q, None if masked is None else checked_tags(masked, q.shape[0], "query")


def checked_fusion(fusion: Any) -> str:
    """`fusion` if it is one of `FUSIONS`; InputError otherwise."""
    if not isinstance(fusion, str) or fusion not in FUSIONS:
        raise InputError(f"fusion must be one of {', '.join(repr(f) for f in FUSIONS)}, got {fusion!r}")
    return fusion


def fused_templates(templates: np.ndarray, owner_starts: np.ndarray) -> np.ndarray:
    """One fused template per identity: the renormalised mean of its unit templates. `templates` (T, D) holds the
    identities' templates one identity after another, starting at rows `owner_starts` (each identity has at least
    one); returns (len(owner_starts), D) unit rows, float32."""
    sums = np.add.reduceat(np.asarray(templates, dtype=np.float64), np.asarray(owner_starts, dtype=np.int64), axis=0)
    return l2_normalise(sums)


def check_query_length(length: int, gallery_dim: Optional[int]) -> None:
    """GalleryError when queries of `length` cannot be compared with templates of `gallery_dim`."""
    if length != gallery_dim:
        raise GalleryError(f"query embedding length {length} does not match the gallery's {gallery_dim}: it "
                           "comes from another model")


def normalised_queries(q: np.ndarray) -> np.ndarray:
    """Rows of `q` scaled to unit length (zero rows stay zero)."""
    return l2_normalise(q)


def check_binding(gallery_space: Optional[str], gallery_dim: Optional[int], gallery_model: str, where: str,
                  embedding_space: str, embedding_dim: int) -> None:
    """The `bind` rule: a gallery holding another model's embedding space or length is refused with GalleryError.

    `where` names the gallery in the message (a path or URL; "" for an in-memory gallery).
    """
    if gallery_space is not None and gallery_space != embedding_space:
        made = f" (made with model {gallery_model!r})" if gallery_model else ""
        raise GalleryError(
            f"gallery{' ' + where if where else ''}{made} holds embeddings of embedding space "
            f"{gallery_space!r}, but the model in use has embedding space {embedding_space!r}: "
            "embeddings of different models cannot be compared. Use the model the gallery was made with, "
            "or enrol the people again into a new gallery with this model.")
    if gallery_dim is not None and gallery_dim != int(embedding_dim):
        raise GalleryError(f"gallery templates have length {gallery_dim} but the model gives "
                           f"{embedding_dim}: enrol the people again with this model")


#: The one rule for a "known person" threshold: a cosine similarity in [-1, 1] (`option(**THRESHOLD_RANGE)`).
THRESHOLD_RANGE = {"low": -1.0, "high": 1.0}


def check_threshold(value: Optional[float], label: str = "threshold") -> Optional[float]:
    """A threshold (gallery, recognizer) as a float in [-1, 1], or None; InputError naming `label` otherwise."""
    return check_value(label, value, Optional[float], **THRESHOLD_RANGE)


class GalleryBase(abc.ABC):
    """The gallery protocol shared by the file gallery and the database gallery.

    Attributes every gallery has: `embedding_space` (None until bound to a model), `embedding_dim`, `threshold`
    (its own "known person" cosine threshold, None: use the model's), `model_name`, and `location` (a path or URL,
    for messages).

    Writes: a file gallery changes in memory and `save()` writes it (atomic, locked, merged); a database gallery
    writes every change to the database as it is made (`save()` has nothing left to do). `close()` releases
    connections; galleries are context managers.
    """

    embedding_space: Optional[str]
    embedding_dim: Optional[int]
    threshold: Optional[float]
    model_name: str

    # ------------------------------------------------------------------ listing
    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where the gallery lives (a file path, a database URL, or "memory"), for messages."""

    @property
    @abc.abstractmethod
    def num_templates(self) -> int:
        """Total number of templates over all identities."""

    @property
    def changes(self) -> Optional[int]:
        """How many times the templates changed through this object, a key for caches of what depends on them (the
        open-set threshold, `g2d_edge.openset.cohort`); None when not counted (a database others write to)."""
        return None

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of enrolled identities."""

    @abc.abstractmethod
    def __contains__(self, name: object) -> bool:
        """True when `name` is enrolled."""

    @abc.abstractmethod
    def names(self) -> List[str]:
        """Enrolled names, sorted."""

    @abc.abstractmethod
    def identities(self) -> List[IdentityInfo]:
        """Every enrolled name with its template count, sorted by name."""

    @abc.abstractmethod
    def tagged_templates(self, name: str) -> Tuple[np.ndarray, np.ndarray]:
        """A copy of the (K, D) templates of `name`, in enrolment order, and their (K,) bool masked tags.
        GalleryError if it is not enrolled."""

    def templates(self, name: str, masked: Optional[bool] = None) -> np.ndarray:
        """A copy of the (K, D) templates of `name`, in enrolment order: all of them (masked=None), only the masked
        ones (True) or only the clean ones (False). GalleryError if it is not enrolled."""
        embeddings, tags = self.tagged_templates(name)
        return embeddings if masked is None else embeddings[tags == bool(masked)]

    def template_tags(self, name: str) -> np.ndarray:
        """The (K,) bool masked tags of the templates of `name`, in the order of `templates(name)`."""
        return self.tagged_templates(name)[1]

    def tagged_templates_by_name(self) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
        """Every identity's templates and masked tags, {name: ((K, D), (K,))} sorted by name (a database gallery
        reads them in one pass)."""
        return {name: self.tagged_templates(name) for name in self.names()}

    def templates_by_name(self) -> Dict[str, np.ndarray]:
        """Every identity's (K, D) templates, {name: templates} sorted by name."""
        return {name: templates for name, (templates, _) in self.tagged_templates_by_name().items()}

    @property
    def stores_masked_tags(self) -> bool:
        """Whether masked templates can be added (False only for a database collection made before the tags)."""
        return True

    def is_empty(self) -> bool:
        """True when no one is enrolled."""
        return self.num_templates == 0

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    # ------------------------------------------------------------------ editing
    @abc.abstractmethod
    def add(self, name: str, embeddings: np.ndarray, masked: Any = False) -> int:
        """Add one (D,) or several (K, D) templates for `name` (created if new), all or nothing. Returns its
        template count. Embeddings are L2-normalised; all must have the gallery's dimension.

        masked: one bool for all of them or one per template (`checked_tags`); False (default): clean faces.
        An identity must keep at least one clean template (`check_masked_identity`, InputError otherwise).
        """

    def add_many(self, identities: Mapping[str, np.ndarray],
                 masked: Optional[Mapping[str, Any]] = None) -> int:
        """Add the templates of several identities ({name: (K, D) or (D,)}, with {name: tags} in `masked`, absent
        names clean); returns how many templates were added. Each identity is added as by `add`; a database
        gallery sends them in large batches."""
        added = 0
        for name, embeddings in identities.items():
            self.add(name, embeddings, masked=(masked or {}).get(name, False))
            added += np.atleast_2d(np.asarray(embeddings)).shape[0]
        return added

    @abc.abstractmethod
    def remove(self, name: str) -> int:
        """Remove an identity and all its templates. Returns how many templates were removed."""

    @abc.abstractmethod
    def rename(self, old: str, new: str) -> None:
        """Rename an identity. GalleryError if `old` is unknown or `new` is already enrolled."""

    @abc.abstractmethod
    def clear(self) -> None:
        """Remove every identity (the embedding space and threshold are kept)."""

    # ------------------------------------------------------------------ model binding and search
    @abc.abstractmethod
    def bind(self, embedding_space: str, embedding_dim: int, model_name: str = "") -> None:
        """Attach the gallery to a model's embedding space: an unbound gallery adopts it, a gallery made with
        another model is refused with GalleryError (`check_binding`)."""

    @abc.abstractmethod
    def search(self, embeddings: np.ndarray, top_k: int = 1, masked: Any = None,
               fusion: str = "max") -> List[List[Match]]:
        """Best `top_k` identities for each query embedding ((D,) or (N, D)), best first. An empty gallery gives an
        empty list per query.

        masked: None (every template is compared), or whether each query face wears a mask (one bool per query,
        or one for all): then `MASKED_SEARCH_RULE` applies, a clean query skipping masked templates.
        fusion: "max" (an identity scores its best template's cosine) or "mean" (the cosine with the fused template
        of the templates the query is compared with under `masked`; `fused_templates`).
        """

    def best_match(self, embedding: np.ndarray) -> Optional[Match]:
        """The single best identity for one embedding, or None when the gallery is empty."""
        found = self.search(embedding, top_k=1)[0]
        return found[0] if found else None

    # ------------------------------------------------------------------ persistence
    @abc.abstractmethod
    def save(self, path: Optional[Union[str, Path]] = None) -> Union[Path, str]:
        """Make every change durable; returns where the gallery lives (the file written, or the URL)."""

    def close(self) -> None:
        """Release what the gallery holds open (connections). A file gallery holds nothing."""

    def __enter__(self) -> "GalleryBase":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class CopyResult:
    """What `copy_gallery` did: identities and templates copied, identities replaced in the destination."""

    identities: int
    templates: int
    replaced: int


def copy_gallery(source: GalleryBase, destination: GalleryBase, replace: bool = False,
                 save: bool = True) -> CopyResult:
    """Copy every identity of `source` into `destination` (file to database, database to file, ...), then save it
    (save=False leaves that to the caller, e.g. for an in-memory destination).

    The destination is bound to the source's embedding space first, so a destination of another model is
    refused (GalleryError). Names enrolled in both are a GalleryError before anything is written, unless
    `replace=True` (their templates in the destination are replaced by the source's). The source's threshold is
    copied when the destination has none. Masked tags are copied (GalleryError, before anything is written, when
    the destination cannot store them). A file destination is written in one atomic save; a database
    destination receives each identity whole (all or nothing per identity).
    """
    if source.embedding_space is None or source.embedding_dim is None:
        raise GalleryError(f"gallery {source.location} is not bound to a model (no embedding space): nothing to "
                           "copy; enrol people with a model first")
    destination.bind(source.embedding_space, source.embedding_dim, source.model_name)
    tagged = source.tagged_templates_by_name()
    identities = {name: templates for name, (templates, _) in tagged.items()}
    masked = {name: tags for name, (_, tags) in tagged.items()}
    if not destination.stores_masked_tags and any(tags.any() for tags in masked.values()):
        raise GalleryError(f"{source.location} holds masked templates, which {destination.location} cannot store "
                           "(a collection made before masked tags); nothing was copied. Copy into a new collection "
                           "instead")
    clashing = sorted(set(identities) & set(destination.names()))
    if clashing and not replace:
        listed = ", ".join(quoted(n) for n in clashing[:10]) + (" ..." if len(clashing) > 10 else "")
        raise GalleryError(f"{len(clashing)} name(s) are enrolled in both {source.location} and "
                           f"{destination.location}: {listed}. Nothing was copied; remove or rename them, or "
                           "replace them (--replace)")
    for name in clashing:
        destination.remove(name)
    templates = destination.add_many(identities, masked=masked)
    if destination.threshold is None and source.threshold is not None:
        destination.threshold = source.threshold
    if save:
        destination.save()
    return CopyResult(identities=len(identities), templates=templates, replaced=len(clashing))
