"""The JSON sidecar that travels with every exported model (ONNX graph or TensorRT engine).

One definition, written by `export/` and read by `g2d_edge`. A gallery records the sidecar's `embedding_space`
so that embeddings from different models are never compared. Every field is type- and range-checked when a sidecar
is made or read: a damaged or hand-edited sidecar is a ModelError saying which field is wrong.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from .errors import ModelError
from .files import atomic_write_bytes, regular_file_problem
from .gallery.protocol import FUSIONS

SCHEMA_VERSION = 1

_Rule = Tuple[Callable[[Any], bool], str]


def _is_int(minimum: int) -> _Rule:
    return (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum,
            f"a whole number >= {minimum}")


def _is_real(low: float, high: float, optional: bool = False) -> _Rule:
    def ok(v: Any) -> bool:
        if v is None:
            return optional
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and low <= v <= high
    return ok, f"a number in [{low:g}, {high:g}]" + (" or null" if optional else "")


def _is_dtype(value: Any) -> bool:
    try:
        return isinstance(value, str) and np.dtype(value).kind in "uif"
    except TypeError:
        return False


_TEXT: _Rule = (lambda v: isinstance(v, str), "a text")
_NAME: _Rule = (lambda v: isinstance(v, str) and bool(v), "a non-empty text")
_TEXTS: _Rule = (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of texts")
_OBJECT: _Rule = (lambda v: isinstance(v, dict), "a JSON object")


def _check_fields(obj: Any, rules: Dict[str, _Rule], what: str,
                  fix: str = "re-export the model with g2d-export (or correct the sidecar's JSON)") -> None:
    """ModelError naming the first field of `obj` that breaks its rule."""
    for name, (ok, expected) in rules.items():
        value = getattr(obj, name)
        if not ok(value):
            shown = repr(value)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise ModelError(f"{what} field {name!r} is {shown}, not {expected}; {fix}")


@dataclass(frozen=True)
class InputSpec:
    """What the graph takes: a batch of aligned faces, uint8, NHWC, BGR; pre-processing lives inside the graph."""

    name: str = "faces"
    height: int = 112
    width: int = 112
    channels: int = 3
    dtype: str = "uint8"
    layout: str = "NHWC"
    color: str = "BGR"

    def __post_init__(self) -> None:
        _check_fields(self, {"name": _NAME, "height": _is_int(1), "width": _is_int(1), "channels": _is_int(1),
                             "dtype": (_is_dtype, "a NumPy number type such as 'uint8'"), "layout": _TEXT,
                             "color": _TEXT}, "model sidecar input")


#: Probe kinds an open-set calibration holds a threshold table for (`OpenSetCalibration`).
PROBE_KINDS = ("clean", "masked")


def _ascending(values: Any, low: float, high: float, whole: bool = False) -> bool:
    if not isinstance(values, (list, tuple)) or not values:
        return False
    ok = _is_int(1)[0] if whole else _is_real(low, high)[0]
    return all(ok(v) and low <= v <= high for v in values) and all(a < b for a, b in zip(values, values[1:]))


@dataclass(frozen=True)
class StrangerCohort:
    """Embeddings of stranger photos (people enrolled nowhere), per probe kind, stored with an open-set calibration
    so that the SDK can measure how often strangers would be named by the gallery at hand
    (`g2d_edge.openset.cohort`): `clean` and `masked` are base64 of row-major float16 (N, `dim`) arrays,
    L2-normalised; `people`: how many people the photos show; `groups`: per kind, the person (0 to people - 1) of each
    row, so that a cohort person who is enrolled in the gallery after all is recognised as such and left out (empty:
    unknown, each photo is judged alone)."""

    dim: int
    clean: str
    masked: str
    people: int = 0
    groups: Dict[str, List[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_fields(self, {
            "dim": _is_int(1), "people": _is_int(0),
            "clean": (self._rows_ok, f"base64 of float16 rows of {self.dim} finite values"),
            "masked": (self._rows_ok, f"base64 of float16 rows of {self.dim} finite values"),
            "groups": (self._groups_ok, "per kind, a list of whole numbers in [0, people), one per row (or {})"),
        }, "model sidecar open_set cohort", "rebuild the calibration with g2d-train calibrate or g2d calibrate")

    def _rows_ok(self, text: Any) -> bool:
        try:
            rows = _decode_rows(text, self.dim)
        except (TypeError, ValueError, binascii.Error):
            return False
        return rows.shape[0] >= 1 and bool(np.isfinite(rows).all())

    def _groups_ok(self, groups: Any) -> bool:
        if not isinstance(groups, dict) or not set(groups) <= set(PROBE_KINDS):
            return False
        for kind, who in groups.items():
            try:
                rows = _decode_rows(getattr(self, kind), self.dim).shape[0]
            except (TypeError, ValueError, binascii.Error):
                return True  # the rows' own rule names the problem
            if not isinstance(who, list) or len(who) != rows \
                    or not all(_is_int(0)[0](w) and w < max(self.people, 1) for w in who):
                return False
        return True

    def person_of(self, kind: str) -> np.ndarray:
        """The person index of each row of `kind` (each row its own person when the cohort does not say)."""
        who = self.groups.get(kind)
        return np.asarray(who, dtype=np.int64) if who else np.arange(self.embeddings(kind).shape[0])

    def embeddings(self, kind: str) -> np.ndarray:
        """The (N, dim) float32 embeddings of one probe kind ("clean", "masked")."""
        if kind not in PROBE_KINDS:
            raise ModelError(f"a stranger cohort holds {list(PROBE_KINDS)} photos, not {kind!r}")
        return _decode_rows(getattr(self, kind), self.dim).astype(np.float32)

    @classmethod
    def of(cls, embeddings: Dict[str, np.ndarray], people: int,
           groups: Optional[Dict[str, Any]] = None) -> "StrangerCohort":
        """A cohort from {kind: (N, D) embeddings} (L2-normalised here, stored as float16) and, optionally, the person
        (0 to people - 1) of each row per kind."""
        coded = {}
        for kind in PROBE_KINDS:
            rows = np.asarray(embeddings[kind], dtype=np.float64)
            rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)
            coded[kind] = base64.b64encode(rows.astype("<f2").tobytes()).decode("ascii")
        listed = {k: [int(w) for w in v] for k, v in (groups or {}).items()}
        return cls(int(np.asarray(embeddings["clean"]).shape[1]), coded["clean"], coded["masked"], int(people), listed)


def _decode_rows(text: Any, dim: int) -> np.ndarray:
    if not isinstance(text, str) or not isinstance(dim, int) or dim < 1:
        raise TypeError("not a text")
    raw = base64.b64decode(text.encode("ascii"), validate=True)
    if len(raw) % (2 * dim):
        raise ValueError("not whole rows")
    return np.frombuffer(raw, dtype="<f2").reshape(-1, dim)


@dataclass(frozen=True)
class OpenSetCalibration:
    """How the best impostor score grows with the gallery: the threshold at which a stranger (a face of no one
    enrolled) is given a name with probability `fpir[j]` when the gallery holds `templates[i]` templates, for clean
    and masked probes (`thresholds[kind][i][j]`). Built by `g2d_edge.openset.build_calibration` (`g2d-train calibrate`,
    `g2d calibrate`); read by `g2d_edge.openset.OpenSetRule`.

    fusion: the gallery search the calibration is for, and the one a `Recognizer` of the model searches with
        (`g2d_edge.gallery.protocol.FUSIONS`): "max" (an identity scores its best template; `templates` counts
        templates) or "mean" (it scores its fused template, the renormalised mean of its templates; `templates` then
        counts identities, one fused template each).
    measured_templates: the largest gallery (in templates) the calibration data held; larger ones up to
        `templates[-1]` rest on a tail model of each probe's impostor scores (`g2d_edge.openset`).
    embedding_space: the model the scores are from (must be the sidecar's). probes: probes per kind.
    source: what the calibration was measured on (people, distractors, masks), in words.
    cohort: the stranger photos' embeddings (`StrangerCohort`), with which the SDK measures the threshold on the
        gallery at hand (`g2d_edge.openset.cohort`); None: the table by gallery size is used.
    """

    templates: List[int]
    fpir: List[float]
    thresholds: Dict[str, List[List[float]]]
    measured_templates: int
    embedding_space: str
    probes: Dict[str, int] = field(default_factory=dict)
    fusion: str = "max"
    source: str = ""
    cohort: Optional[StrangerCohort] = None

    def __post_init__(self) -> None:
        _check_fields(self, {
            "templates": (lambda v: _ascending(v, 1, 10 ** 9, whole=True), "an ascending list of whole numbers >= 1"),
            "fpir": (lambda v: _ascending(v, 1e-9, 1.0), "an ascending list of rates in (0, 1]"),
            "thresholds": (self._tables_ok, f"one table per probe kind {list(PROBE_KINDS)}, a row per gallery size "
                           "and a cosine in [-1, 1] per rate, rising with the gallery and falling with the rate"),
            "measured_templates": _is_int(1), "embedding_space": _NAME,
            "probes": (lambda v: isinstance(v, dict)
                       and all(k in PROBE_KINDS and _is_int(0)[0](n) for k, n in v.items()),
                       "a JSON object of probe counts per kind"),
            "fusion": (lambda v: v in FUSIONS, "'max' (an identity scores its best template) or 'mean' (its one "
                       "mean template)"), "source": _TEXT,
            "cohort": (lambda v: v is None or isinstance(v, StrangerCohort), "a stranger cohort or null"),
        }, "model sidecar open_set", "rebuild the calibration with g2d-train calibrate or g2d calibrate")

    def _tables_ok(self, tables: Any) -> bool:
        if not isinstance(tables, dict) or set(tables) != set(PROBE_KINDS):
            return False
        try:
            arrays = [np.asarray(tables[k], dtype=np.float64) for k in PROBE_KINDS]
        except (TypeError, ValueError):
            return False
        shape = (len(self.templates), len(self.fpir))
        return all(a.shape == shape and np.isfinite(a).all() and (np.abs(a) <= 1.0).all()
                   and (np.diff(a, axis=0) >= -1e-9).all() and (np.diff(a, axis=1) <= 1e-9).all() for a in arrays)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "OpenSetCalibration":
        if not isinstance(data, dict):
            raise ModelError(f"model sidecar field 'open_set' must be a JSON object or null, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        try:
            if isinstance(kwargs.get("cohort"), dict):
                cohort = kwargs["cohort"]
                kwargs["cohort"] = StrangerCohort(**{k: v for k, v in cohort.items()
                                                     if k in {f.name for f in fields(StrangerCohort)}})
            return cls(**kwargs)
        except TypeError as exc:
            raise ModelError(f"model sidecar field 'open_set' is missing fields ({exc}); rebuild it with "
                             "g2d-train calibrate or g2d calibrate") from exc


@dataclass(frozen=True)
class ModelSidecar:
    """Metadata of an exported model.

    embedding_space: a stable id of the embedding geometry (hash of the weights of encoder + reformer);
        galleries store it and refuse another model's.
    threshold: default cosine-similarity threshold for "same person", chosen on validation people.
    threshold_far: the false-accept rate that threshold was chosen at (None if not calibrated).
    class_names: identity names of the classifier's logits (closed-set use), may be empty.
    engine: for TensorRT engines, {"tensorrt": version, "gpu": name, "compute_capability": "8.7",
        "precision": "fp16", "max_batch": 32}; None for ONNX.
    open_set: the open-set calibration (`OpenSetCalibration`): the threshold for a target false-positive
        identification rate at each gallery size; None: not calibrated (the gallery-blind `threshold` is used).
    """

    name: str
    embedding_dim: int
    num_classes: int
    embedding_space: str
    weights_sha256: str
    threshold: float = 0.5
    threshold_far: Optional[float] = None
    input: InputSpec = field(default_factory=InputSpec)
    outputs: List[str] = field(default_factory=lambda: ["embedding", "logits"])
    class_names: List[str] = field(default_factory=list)
    config: Dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    data_summary: Dict[str, Any] = field(default_factory=dict)
    versions: Dict[str, str] = field(default_factory=dict)
    trained_on: str = ""
    engine: Optional[Dict[str, Any]] = None
    open_set: Optional[OpenSetCalibration] = None
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        _check_fields(self, {
            "schema_version": _is_int(1), "name": _TEXT, "embedding_dim": _is_int(1), "num_classes": _is_int(0),
            "embedding_space": _NAME, "weights_sha256": _TEXT, "threshold": _is_real(-1.0, 1.0),
            "threshold_far": _is_real(0.0, 1.0, optional=True),
            "input": (lambda v: isinstance(v, InputSpec), "an object of input fields"), "outputs": _TEXTS,
            "class_names": _TEXTS, "config": _OBJECT, "config_hash": _TEXT, "data_summary": _OBJECT,
            "versions": _OBJECT, "trained_on": _TEXT,
            "engine": (lambda v: v is None or isinstance(v, dict), "a JSON object or null"),
            "open_set": (lambda v: v is None or isinstance(v, OpenSetCalibration), "an open-set calibration or null"),
        }, "model sidecar")
        if self.open_set is not None and self.open_set.embedding_space != self.embedding_space:
            raise ModelError(f"model sidecar open_set was calibrated for embedding space "
                             f"{self.open_set.embedding_space!r}, not this model's {self.embedding_space!r}; "
                             "recalibrate with g2d-train calibrate (or g2d calibrate)")
        cohort = None if self.open_set is None else self.open_set.cohort
        if cohort is not None and cohort.dim != self.embedding_dim:
            raise ModelError(f"model sidecar open_set cohort holds {cohort.dim}-d embeddings, this model makes "
                             f"{self.embedding_dim}-d ones; recalibrate with g2d-train calibrate (or g2d calibrate)")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def save(self, path: Union[str, Path]) -> Path:
        """Write as pretty JSON, atomically (`g2d_edge.files.atomic_write`)."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"
        return atomic_write_bytes(path, text.encode("utf-8"))

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "ModelSidecar":
        """A sidecar from its JSON object; ModelError naming the first missing or invalid field."""
        if not isinstance(data, dict):
            raise ModelError(f"model sidecar must be a JSON object, got a JSON {type(data).__name__}")
        version = data.get("schema_version", SCHEMA_VERSION)
        if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
            raise ModelError(f"model sidecar has schema version {version}, this g2d-edge reads up to "
                             f"{SCHEMA_VERSION}: upgrade g2d-edge")
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if isinstance(kwargs.get("input"), dict):
            kwargs["input"] = InputSpec(**{k: v for k, v in kwargs["input"].items()
                                           if k in {f.name for f in fields(InputSpec)}})
        if kwargs.get("open_set") is not None:
            kwargs["open_set"] = OpenSetCalibration.from_dict(kwargs["open_set"])
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ModelError(f"model sidecar is missing fields ({exc}); re-export the model with g2d-export onnx") \
                from exc

    @classmethod
    def load(cls, path: Union[str, Path]) -> "ModelSidecar":
        """Read a sidecar JSON file; raises ModelError with a hint when it is missing or malformed."""
        path = Path(path)
        problem = regular_file_problem(path)
        if problem == "not found":
            raise ModelError(f"model sidecar not found: {path}; every model needs its .json next to it "
                             "(g2d-export writes both)")
        if problem is not None:
            raise ModelError(f"model sidecar {path} is {problem}; it must be the .json file g2d-export wrote")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise ModelError(f"model sidecar {path} is not valid JSON ({type(exc).__name__}: {exc}); re-export "
                             "the model") from exc
        try:
            return cls.from_dict(data)
        except ModelError as exc:
            raise ModelError(f"{path}: {exc}") from None


def sidecar_path_for(model_path: Union[str, Path]) -> Path:
    """The sidecar that belongs to a model file: `model.onnx` -> `model.json`, `model.fp16.engine` -> `model.fp16.json`."""
    p = Path(model_path)
    return p.with_suffix(".json")
