"""YuNet through the project's own runtimes (ONNX Runtime, OpenVINO) instead of OpenCV's DNN module, with OpenCV's
post-processing redone in numpy, so that its outputs match `cv2.FaceDetectorYN`'s (tested on real photos).

The shipped int8 block-quantised file is edited once at load time, in memory and without the `onnx` package
(`onnx_graph.edit_graph`): its weights are folded to float32 and its input size made free. ONNX Runtime cannot run
the file as shipped. Post-processing, as in OpenCV's `face_detect.cpp`: the network gives, per stride 8 / 16 / 32
and per cell of that grid, class and objectness scores, a box (offsets from the cell, log width and height) and 5
keypoints; score = sqrt(cls * obj), both clipped to [0, 1]; then non-maximum suppression over integer boxes
(`cv2.dnn.NMSBoxes`: strongest first, IoU above the threshold drops, at most top_k candidates).
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import cv2
import numpy as np

from ..errors import BackendUnavailableError, InputError, ModelError
from .base import Detection
from .onnx_graph import edit_graph
from .yunet import NMS_IOU, SHIPPED_YUNET, TOP_K, pad_to_step, rows_to_detections

log = logging.getLogger(__name__)

#: The runtimes that can run YuNet here (`DetectorOptions.runtime`; "opencv" is `yunet.YuNetDetector`).
RUNTIMES = ("onnxruntime", "openvino")
STRIDES = (8, 16, 32)
OUTPUT_NAMES = tuple(f"{kind}_{stride}" for kind in ("cls", "obj", "bbox", "kps") for stride in STRIDES)


def float_yunet(model_path: Path) -> bytes:
    """The YuNet ONNX file at `model_path` with its weights folded to float32 and any input size allowed."""
    try:
        data = Path(model_path).read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read the YuNet model {model_path}: {exc}; reinstall g2d-edge") from exc
    return edit_graph(data, {2: "height", 3: "width"}, {1: "anchors"})


def decode(outputs: Dict[str, np.ndarray], height: int, width: int, score_threshold: float) -> np.ndarray:
    """Candidate faces (N, 15) float32 rows (x, y, w, h, 5 keypoints (x, y), score) scored at least
    `score_threshold`, from the network's outputs for a (height, width) input: OpenCV's decoding, stride by stride,
    cell by cell in row-major order."""
    found = []
    for stride in STRIDES:
        cols = width // stride
        cls = np.clip(outputs[f"cls_{stride}"].reshape(-1), 0, 1)
        obj = np.clip(outputs[f"obj_{stride}"].reshape(-1), 0, 1)
        score = np.sqrt(cls * obj).astype(np.float32)
        keep = np.flatnonzero(score >= np.float32(score_threshold))
        if keep.size == 0:
            continue
        row, col = np.divmod(keep, cols)
        row, col = row.astype(np.float32)[:, None], col.astype(np.float32)[:, None]
        box = outputs[f"bbox_{stride}"].reshape(-1, 4)[keep].astype(np.float32)
        kps = outputs[f"kps_{stride}"].reshape(-1, 10)[keep].astype(np.float32)
        s = np.float32(stride)
        centre = (np.concatenate([col, row], 1) + box[:, :2]) * s
        size = np.exp(box[:, 2:]) * s
        points = np.empty_like(kps)
        points[:, 0::2] = (kps[:, 0::2] + col) * s
        points[:, 1::2] = (kps[:, 1::2] + row) * s
        found.append(np.concatenate([centre - size / np.float32(2), size, points, score[keep, None]], 1))
    return np.concatenate(found).astype(np.float32) if found else np.zeros((0, 15), np.float32)


def nms_boxes(rows: np.ndarray, score_threshold: float, iou_threshold: float, top_k: int) -> np.ndarray:
    """Indices of `rows` kept by `cv2.dnn.NMSBoxes` on their boxes truncated to integers (OpenCV's Rect2i):
    scores above the threshold, strongest first (ties in order), at most `top_k` (0: all), a box overlapping a kept
    one by IoU above `iou_threshold` dropped."""
    scores = rows[:, 14]
    candidates = np.flatnonzero(scores > np.float32(score_threshold))
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    if 0 < top_k < len(order):
        order = order[:top_k]
    rect = np.trunc(rows[order, :4]).astype(np.int64)
    x1, y1, x2, y2 = rect[:, 0], rect[:, 1], rect[:, 0] + rect[:, 2], rect[:, 1] + rect[:, 3]
    area = rect[:, 2] * rect[:, 3]
    alive = np.ones(len(order), bool)
    for i in range(len(order)):
        if not alive[i]:
            continue
        rest = np.arange(i + 1, len(order))
        iw = np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])
        ih = np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])
        inter = np.where((iw > 0) & (ih > 0), iw * ih, 0).astype(np.float64)
        total = (area[i] + area[rest]).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            distance = np.where(total <= 0, 0.0, 1.0 - inter / (total - inter))
        overlap = np.float32(1) - distance.astype(np.float32)  # OpenCV's rectOverlap, in float
        alive[rest[overlap > np.float32(iou_threshold)]] = False
    return order[alive]


def postprocess(outputs: Dict[str, np.ndarray], height: int, width: int, score_threshold: float,
                nms_iou: float = NMS_IOU, top_k: int = TOP_K) -> np.ndarray:
    """Faces (N, 15) as `cv2.FaceDetectorYN.detect` returns them, strongest first after suppression."""
    rows = decode(outputs, height, width, score_threshold)
    if len(rows) <= 1:  # OpenCV runs no suppression on a single candidate
        return rows
    return rows[nms_boxes(rows, score_threshold, nms_iou, top_k)]


class _OrtNet:
    """YuNet in one ONNX Runtime session at any input size (GPU provider when installed, else CPU)."""

    def __init__(self, model: bytes, threads: int) -> None:
        from ..backends.onnxruntime import _import_ort, available_providers

        ort = _import_ort()
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads > 0:
            so.intra_op_num_threads = int(threads)
        # the TensorRT provider would rebuild its engine for every new input size: CUDA or CPU only
        providers = [p for p in available_providers() if p != "TensorrtExecutionProvider"]
        self._session = ort.InferenceSession(model, sess_options=so, providers=providers)
        self.device = self._session.get_providers()[0].replace("ExecutionProvider", "")

    def run(self, blob: np.ndarray) -> Dict[str, np.ndarray]:
        return dict(zip(OUTPUT_NAMES, self._session.run(list(OUTPUT_NAMES), {"input": blob})))


class _OpenVinoNet:
    """YuNet in OpenVINO, one compiled model per input size (OpenVINO's dynamic-shape kernels are ~20x slower on
    this network), the last `max_sizes` kept."""

    def __init__(self, model: bytes, threads: int, max_sizes: int) -> None:
        from ..backends.openvino import OpenVinoOptions, import_openvino

        self._core = import_openvino().Core()
        self._model = self._core.read_model(model)
        self._config = OpenVinoOptions(intra_op_threads=threads).compile_config()
        self._compiled: "OrderedDict[Tuple[int, int], Tuple[Any, Any]]" = OrderedDict()
        self.max_sizes = max_sizes
        self.device = "CPU"

    def _request(self, height: int, width: int) -> Tuple[Any, Any]:
        key = (height, width)
        if key in self._compiled:
            self._compiled.move_to_end(key)
            return self._compiled[key]
        model = self._model.clone()
        model.reshape({"input": [1, 3, height, width]})
        compiled = self._core.compile_model(model, "CPU", self._config)
        self._compiled[key] = (compiled, compiled.create_infer_request())
        while len(self._compiled) > self.max_sizes:
            self._compiled.popitem(last=False)
        return self._compiled[key]

    def run(self, blob: np.ndarray) -> Dict[str, np.ndarray]:
        compiled, request = self._request(blob.shape[2], blob.shape[3])
        results = request.infer({0: blob})
        return {name: results[compiled.output(name)] for name in OUTPUT_NAMES}


class YuNetRuntimeDetector:
    """YuNet (the shipped model) run by ONNX Runtime or OpenVINO, outputs as `cv2.FaceDetectorYN`'s (the same
    padding to a multiple of 64 px as `YuNetDetector`). Not thread-safe."""

    name = "yunet"
    input_side: Optional[int] = None
    default_confidence = 0.7

    def __init__(self, runtime: str = "onnxruntime", min_confidence: float = 0.7, threads: int = 0,
                 model_path: Path = SHIPPED_YUNET, max_sizes: int = 16) -> None:
        if runtime not in RUNTIMES:
            raise InputError(f"YuNet runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
        self.runtime = runtime
        self.min_confidence = float(min_confidence)
        model = float_yunet(model_path)
        try:
            self._net: Any = (_OrtNet(model, threads) if runtime == "onnxruntime"
                              else _OpenVinoNet(model, threads, max(1, int(max_sizes))))
        except (BackendUnavailableError, ModelError):
            raise
        except Exception as exc:  # the runtime's own error
            raise ModelError(f"{runtime} cannot load the YuNet model {Path(model_path).name} ({type(exc).__name__}: "
                             f"{str(exc).strip()[:300]}); use DetectorOptions(runtime='opencv')") from exc
        log.info("yunet detector on %s (%s)", runtime, self._net.device)

    def detect(self, image: np.ndarray) -> List[Detection]:
        """Faces in a BGR uint8 image, in its pixels."""
        if self._net is None:
            raise ModelError("this YuNet detector was closed; create a new FaceDetector")
        padded = pad_to_step(image)
        height, width = padded.shape[:2]
        outputs = self._net.run(cv2.dnn.blobFromImage(padded))
        return rows_to_detections(postprocess(outputs, height, width, self.min_confidence))

    def close(self) -> None:
        self._net = None
