"""OpenCV's YuNet face detector (`cv2.FaceDetectorYN`, OpenCV Zoo, Apache-2.0 / MIT): 5 keypoints per face.

The int8 block-quantised model ships inside the package (`g2d_edge/models/`, licence notice beside it). OpenCV's
DNN reads block-quantised ONNX from release 4.11 on; older builds fail to load it (ModelError says so).
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, List, Optional, Tuple

import cv2
import numpy as np

from ..errors import ModelError
from .base import Detection

#: The YuNet model shipped with g2d-edge (120 KB).
SHIPPED_YUNET = Path(__file__).resolve().parents[1] / "models" / "face_detection_yunet_2023mar_int8bq.onnx"

#: YuNet's own non-maximum suppression (IoU) and the most candidates it keeps per image.
NMS_IOU = 0.3
TOP_K = 5000
#: Images are padded (bottom, right) to a multiple of this many pixels, so that few input sizes recur.
SIZE_STEP = 64


def pad_to_step(image: np.ndarray) -> np.ndarray:
    """`image` padded with black (bottom, right) to a multiple of SIZE_STEP px each way."""
    h, w = image.shape[:2]
    ph, pw = -h % SIZE_STEP, -w % SIZE_STEP
    if ph or pw:
        image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    return image


def rows_to_detections(rows: Optional[np.ndarray]) -> List[Detection]:
    """`cv2.FaceDetectorYN.detect`'s rows (x, y, w, h, 5 keypoints (x, y), score) as Detections."""
    if rows is None:
        return []
    out = []
    for row in rows:
        x, y, bw, bh = (float(v) for v in row[:4])
        out.append(Detection(box=np.array([x, y, x + bw, y + bh], np.float32),
                             keypoints=np.asarray(row[4:14], np.float32).reshape(5, 2), score=float(row[14])))
    return out


class YuNetDetector:
    """YuNet through OpenCV's DNN module (`cv2.FaceDetectorYN`; `DetectorOptions(runtime="opencv")`; the other
    runtimes are in `yunet_runtime.py`) at the image's own size (its input size is set from each image; no fixed
    square input).

    At the size it is given it finds faces reliably from about 24 px (clean) or 64 px (masked) up to about 250 px
    (larger faces can come out twice, shifted); `FaceDetector` resizes frames into that range (`DetectorOptions`). OpenCV re-plans the network whenever
    the input size changes (for a 1080p frame that costs more than the detection itself), so images are padded to a
    multiple of 64 px and one network is kept per padded size (the last `max_sizes` sizes). Not thread-safe.
    """

    name = "yunet"
    input_side: Optional[int] = None
    default_confidence = 0.7

    def __init__(self, min_confidence: float = 0.7, model_path: Path = SHIPPED_YUNET, max_sizes: int = 16) -> None:
        self.model_path = Path(model_path)
        self.min_confidence = float(min_confidence)
        self.max_sizes = max(1, int(max_sizes))
        if not self.model_path.is_file():
            raise ModelError(f"the YuNet face-detector model is missing: {self.model_path}. Reinstall g2d-edge, or "
                             "use DetectorOptions(model='short') for MediaPipe BlazeFace")
        self._nets: "OrderedDict[Tuple[int, int], Any]" = OrderedDict()
        self._net((320, 320))  # fail now, not on the first frame, if OpenCV cannot read the model

    def _net(self, size: Tuple[int, int]) -> Any:
        """The network planned for input `size` (width, height), created on first use."""
        net = self._nets.get(size)
        if net is not None:
            self._nets.move_to_end(size)
            return net
        try:
            net = cv2.FaceDetectorYN.create(str(self.model_path), "", size, self.min_confidence, NMS_IOU, TOP_K)
        except cv2.error as exc:
            raise ModelError(f"OpenCV {cv2.__version__} cannot load the YuNet model {self.model_path.name} (int8 "
                             "block-quantised ONNX needs OpenCV 4.11 or newer): upgrade with "
                             "`pip install -U opencv-contrib-python`, or use DetectorOptions(model='short') for "
                             f"MediaPipe BlazeFace. OpenCV said: {exc}") from exc
        self._nets[size] = net
        while len(self._nets) > self.max_sizes:
            self._nets.popitem(last=False)
        return net

    def detect(self, image: np.ndarray) -> List[Detection]:
        """Faces in a BGR uint8 image, in its pixels."""
        padded = pad_to_step(image)
        _, rows = self._net((padded.shape[1], padded.shape[0])).detect(padded)
        return rows_to_detections(rows)

    def close(self) -> None:
        self._nets.clear()
