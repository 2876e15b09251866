"""The pairs verification is measured on (pure numpy): LFW ``pairs.txt`` files (`parse_lfw_pairs`, `load_lfw_pairs`)
and generated pairs from labels (`generate_pairs`) or from an image folder ``root/<identity>/<image>``
(`generate_folder_pairs`)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from g2d_edge.errors import InputError
from g2d_edge.io import IMAGE_SUFFIXES, list_people

from .metrics import DEFAULT_FOLDS, assign_folds

log = logging.getLogger(__name__)

PathLike = Union[str, Path]


@dataclass(frozen=True)
class IndexPairs:
    """Pairs of row indices into an embedding array: ``a[i]`` vs ``b[i]``, genuine when ``same[i]``.

    ``folds`` (optional) gives each pair's fold id for k-fold accuracy.
    """

    a: np.ndarray
    b: np.ndarray
    same: np.ndarray
    folds: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        n = np.asarray(self.a).shape
        if len(n) != 1 or np.asarray(self.b).shape != n or np.asarray(self.same).shape != n:
            raise InputError("IndexPairs.a, .b and .same must be 1-D arrays of the same length")
        if self.folds is not None and np.asarray(self.folds).shape != n:
            raise InputError("IndexPairs.folds must have one entry per pair")

    def __len__(self) -> int:
        return int(np.asarray(self.a).shape[0])


@dataclass
class PathPairs:
    """Image pairs as ``(path_a, path_b, same)`` tuples, with optional fold ids (one per pair)."""

    pairs: List[Tuple[Path, Path, bool]]
    folds: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[Tuple[Path, Path, bool]]:
        return iter(self.pairs)

    def __getitem__(self, i: int) -> Tuple[Path, Path, bool]:
        return self.pairs[i]

    @property
    def same(self) -> np.ndarray:
        """Boolean array, True for genuine pairs."""
        return np.array([p[2] for p in self.pairs], dtype=bool)

    def to_index_pairs(self) -> Tuple[List[Path], IndexPairs]:
        """The distinct images (in first-seen order) and the pairs as indices into that list.

        Embed each listed image once, then score with `pair_scores` / `evaluate_conditions`.
        """
        index: Dict[Path, int] = {}
        for path_a, path_b, _ in self.pairs:
            index.setdefault(path_a, len(index))
            index.setdefault(path_b, len(index))
        a = np.array([index[p[0]] for p in self.pairs], dtype=np.int64)
        b = np.array([index[p[1]] for p in self.pairs], dtype=np.int64)
        return list(index), IndexPairs(a=a, b=b, same=self.same, folds=self.folds)


def lfw_image_path(root: PathLike, name: str, number: int, suffix: str = ".jpg") -> Path:
    """LFW's image path ``<root>/<name>/<name>_<%04d><suffix>``."""
    return Path(root) / name / f"{name}_{int(number):04d}{suffix}"


def _parse_lfw_header(tokens: List[str]) -> Optional[Tuple[int, int]]:
    """``(n_sets, n_per_class)`` from a header line, or None when the line is a pair line."""
    if not tokens or not all(t.isdigit() for t in tokens):
        return None
    if len(tokens) == 1:
        return 1, int(tokens[0])
    if len(tokens) == 2:
        return int(tokens[0]), int(tokens[1])
    raise InputError(f"LFW pairs header must be 'N' or 'SETS N', got {' '.join(tokens)!r}")


def _parse_lfw_line(tokens: List[str], root: Path, suffix: str, line_no: int) -> Tuple[Path, Path, bool]:
    try:
        if len(tokens) == 3:
            name, n1, n2 = tokens
            return lfw_image_path(root, name, int(n1), suffix), lfw_image_path(root, name, int(n2), suffix), True
        if len(tokens) == 4:
            name1, n1, name2, n2 = tokens
            return lfw_image_path(root, name1, int(n1), suffix), lfw_image_path(root, name2, int(n2), suffix), False
    except ValueError:
        pass
    raise InputError(
        f"line {line_no} of the LFW pairs file is not 'name n1 n2' or 'name1 n1 name2 n2': {' '.join(tokens)!r}"
    )


def _lfw_folds(pairs: List[Tuple[Path, Path, bool]], n_sets: int, n_per: int) -> np.ndarray:
    expected = n_sets * 2 * n_per
    if len(pairs) != expected:
        raise InputError(
            f"LFW pairs header announces {n_sets} set(s) of {n_per} same + {n_per} different pairs "
            f"({expected} lines), but the file has {len(pairs)} pair lines"
        )
    folds = np.arange(expected, dtype=np.int64) // (2 * n_per)
    same = np.array([p[2] for p in pairs], dtype=bool)
    for fold in range(n_sets):
        block = same[folds == fold]
        if not (block[:n_per].all() and not block[n_per:].any()):
            raise InputError(
                f"LFW pairs set {fold + 1} must list {n_per} same-person lines then {n_per} different-person lines"
            )
    return folds


def parse_lfw_pairs(text: str, root: PathLike, suffix: str = ".jpg") -> PathPairs:
    """Parse the text of an LFW ``pairs.txt``.

    Accepted forms: a ``"SETS N"`` header (e.g. ``"10 300"``: 10 folds, each N same-person lines then N
    different-person lines; fold ids come from the file), a ``"N"`` header (one set, e.g. ``pairsDevTrain.txt``),
    or no header (pair lines only). Without a multi-set header ``folds`` is None (assign them with
    `assign_folds`). Same-person lines are ``name n1 n2``, different-person lines ``name1 n1 name2 n2``.
    Blank lines and lines starting with ``#`` are ignored. Image paths: ``<root>/<name>/<name>_<%04d><suffix>``.
    """
    root = Path(root)
    header: Optional[Tuple[int, int]] = None
    pairs: List[Tuple[Path, Path, bool]] = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        tokens = raw.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        if not pairs and header is None:
            header = _parse_lfw_header(tokens)
            if header is not None:
                continue
        pairs.append(_parse_lfw_line(tokens, root, suffix, line_no))
    if not pairs:
        raise InputError("the LFW pairs file lists no pairs")
    if header is None:
        return PathPairs(pairs=pairs, folds=None)
    folds = _lfw_folds(pairs, *header)
    return PathPairs(pairs=pairs, folds=folds if header[0] > 1 else None)


def load_lfw_pairs(pairs_file: PathLike, root: PathLike, suffix: str = ".jpg") -> PathPairs:
    """Read and parse an LFW ``pairs.txt`` (see `parse_lfw_pairs`)."""
    path = Path(pairs_file)
    if not path.is_file():
        raise FileNotFoundError(f"LFW pairs file not found: {path}")
    return parse_lfw_pairs(path.read_text(encoding="utf-8"), root, suffix)


def _balanced_quota(capacity: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Split ``total`` over bins as evenly as their capacities allow (water-filling; remainder at random)."""
    quota = np.zeros(capacity.size, dtype=np.int64)
    remaining = total
    order = np.argsort(capacity, kind="stable")
    for pos, i in enumerate(order):
        share = remaining // (order.size - pos)
        quota[i] = min(int(capacity[i]), share)
        remaining -= quota[i]
    for i in rng.permutation(capacity.size):
        if remaining == 0:
            break
        if quota[i] < capacity[i]:
            quota[i] += 1
            remaining -= 1
    return quota


def _genuine_pairs(groups: List[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct genuine pairs spread evenly over identities; rows (a, b)."""
    capacity = np.array([g.size * (g.size - 1) // 2 for g in groups], dtype=np.int64)
    quota = _balanced_quota(capacity, n, rng)
    out = []
    for group, q in zip(groups, quota):
        if q == 0:
            continue
        iu, ju = np.triu_indices(group.size, k=1)
        pick = rng.choice(iu.size, size=int(q), replace=False)
        out.append(np.stack([group[iu[pick]], group[ju[pick]]], axis=1))
    pairs = np.concatenate(out) if out else np.empty((0, 2), dtype=np.int64)
    swap = rng.random(pairs.shape[0]) < 0.5  # random order inside a pair (a is the masked side in mixed pairs)
    pairs[swap] = pairs[swap][:, ::-1]
    return pairs


def _impostor_pairs(groups: List[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct impostor pairs; identity a cycles over the shuffled identities, b is another one."""
    n_groups = len(groups)
    seen: set = set()
    out: List[Tuple[int, int]] = []
    cycle = rng.permutation(n_groups)
    draws = 0
    max_draws = 50 * n + 1000
    while len(out) < n:
        if draws > max_draws:
            raise InputError(f"could not draw {n} distinct impostor pairs; ask for fewer pairs")
        ga = cycle[draws % n_groups]
        gb = (ga + 1 + rng.integers(n_groups - 1)) % n_groups
        draws += 1
        a = int(groups[ga][rng.integers(groups[ga].size)])
        b = int(groups[gb][rng.integers(groups[gb].size)])
        key = (min(a, b), max(a, b))
        if key in seen:
            continue
        seen.add(key)
        out.append((a, b))
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def _all_impostor_pairs(groups: List[np.ndarray]) -> np.ndarray:
    blocks = [
        np.stack(np.meshgrid(groups[g], groups[h], indexing="ij"), axis=-1).reshape(-1, 2)
        for g in range(len(groups))
        for h in range(g + 1, len(groups))
    ]
    return np.concatenate(blocks).astype(np.int64)


def _impostor_capacity(sizes: np.ndarray) -> int:
    total = int(sizes.sum())
    return (total * total - int(np.sum(sizes.astype(np.int64) ** 2))) // 2


def generate_pairs(
    labels: Any, n_pairs: int, seed: int = 0, n_folds: int = DEFAULT_FOLDS
) -> IndexPairs:
    """Balanced genuine/impostor pairs of row indices, deterministic under ``seed``.

    ``n_pairs // 2`` genuine and as many impostor pairs are drawn. Genuine pairs come only from identities with
    at least 2 images and are spread as evenly over those identities as their sizes allow; impostor pairs cycle
    over identities. No image is paired with itself and no unordered pair repeats. When fewer genuine (or
    impostor) pairs exist than asked for, both kinds are capped to the smaller count (with a warning), so the
    pairs stay balanced. Integer labels < 0 mark unlabelled images (as in `train.prepare.AlignedCache`) and are
    skipped. Folds are dealt by `assign_folds` after a shuffle, so each fold holds a balanced mix.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise InputError(f"labels must be 1-D, got shape {labels.shape}")
    if n_pairs < 2:
        raise InputError(f"n_pairs must be >= 2, got {n_pairs}")
    rows = np.arange(labels.size)
    if labels.dtype.kind in "iu":
        rows = rows[labels >= 0]
    uniq, inverse = np.unique(labels[rows], return_inverse=True)
    groups = [rows[inverse == k] for k in range(uniq.size)]
    sizes = np.array([g.size for g in groups], dtype=np.int64)
    genuine_cap = int(np.sum(sizes * (sizes - 1) // 2))
    impostor_cap = _impostor_capacity(sizes)
    if genuine_cap == 0 or impostor_cap == 0:
        raise InputError(
            "generated pairs need at least one identity with 2+ images and at least 2 identities "
            f"(got {uniq.size} identities, {genuine_cap} possible genuine pairs)"
        )
    n_each = min(n_pairs // 2, genuine_cap, impostor_cap)
    if n_each < n_pairs // 2:
        log.warning(
            "asked for %d pairs per kind, only %d possible; generating %d + %d", n_pairs // 2, n_each, n_each, n_each
        )
    rng = np.random.default_rng(seed)
    gen = _genuine_pairs(groups, n_each, rng)
    if 2 * n_each > impostor_cap:  # few possible impostor pairs: enumerate them all (<= 2 * n_each), then choose
        all_imp = _all_impostor_pairs(groups)
        imp = all_imp[rng.choice(all_imp.shape[0], size=n_each, replace=False)]
    else:
        imp = _impostor_pairs(groups, n_each, rng)
    both = np.concatenate([gen, imp])
    same = np.concatenate([np.ones(n_each, dtype=bool), np.zeros(n_each, dtype=bool)])
    order = rng.permutation(same.size)
    both, same = both[order], same[order]
    folds = assign_folds(same, min(n_folds, same.size), seed=int(rng.integers(2**31)))
    return IndexPairs(a=both[:, 0].copy(), b=both[:, 1].copy(), same=same, folds=folds)


def list_identity_images(
    root: PathLike, suffixes: Sequence[str] = IMAGE_SUFFIXES
) -> Tuple[List[Path], np.ndarray, List[str]]:
    """Images of a folder ``root/<identity>/<image>``: ``(paths, labels, identity_names)``, sorted by name.

    ``labels[i]`` indexes ``identity_names``. Hidden files and other suffixes are skipped (`g2d_edge.io.list_people`,
    the one image-folder reader).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root} (expected root/<identity>/<image>)")
    people = list_people(root, suffixes)
    if not people:
        raise InputError(f"no images with suffix {sorted(s.lower() for s in suffixes)} under {root}/<identity>/")
    paths = [path for _, photos in people for path in photos]
    labels = [k for k, (_, photos) in enumerate(people) for _ in photos]
    return paths, np.array(labels, dtype=np.int64), [name for name, _ in people]


def generate_folder_pairs(
    root: PathLike,
    n_pairs: int,
    seed: int = 0,
    n_folds: int = DEFAULT_FOLDS,
    suffixes: Sequence[str] = IMAGE_SUFFIXES,
) -> PathPairs:
    """Generated pairs (see `generate_pairs`) over the images of ``root/<identity>/<image>``."""
    paths, labels, _ = list_identity_images(root, suffixes)
    idx = generate_pairs(labels, n_pairs, seed=seed, n_folds=n_folds)
    pairs = [(paths[int(a)], paths[int(b)], bool(s)) for a, b, s in zip(idx.a, idx.b, idx.same)]
    return PathPairs(pairs=pairs, folds=idx.folds)
