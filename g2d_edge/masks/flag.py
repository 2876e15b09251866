"""Does a face wear a mask? `MaskFlag` scores aligned faces with the small classifier shipped in the package.

The classifier (`models/mask-flag.onnx`, trained by `g2d-train maskflag` on synthetic masks, validated on real
masked photos: see the README) takes the same aligned 112x112 BGR crops as the recogniser and returns, per face, the
probability that it wears a mask. It costs well under a millisecond per face on a CPU and runs on ONNX Runtime's CPU
provider whatever backend the recogniser uses. `Recognizer` fills `Recognition.masked` / `mask_score` with it.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..errors import InputError, ModelError, check_value

log = logging.getLogger(__name__)

#: The classifier shipped inside the package.
SHIPPED_MASK_FLAG = Path(__file__).resolve().parents[1] / "models" / "mask-flag.onnx"
INPUT_NAME = "faces"
OUTPUT_NAME = "mask_score"


class MaskFlag:
    """The mask classifier: aligned faces (N, 112, 112, 3) uint8 BGR -> P(wears a mask) (N,) float32.

    threshold: the score from which a face counts as masked (None: the one stored in the model, else 0.5).
    threads: ONNX Runtime intra-op threads (0: its default).
    """

    def __init__(self, path: Union[str, Path, None] = None, threshold: Optional[float] = None,
                 threads: int = 1) -> None:
        import onnxruntime as ort

        self.path = Path(path) if path is not None else SHIPPED_MASK_FLAG
        if not self.path.is_file():
            raise ModelError(f"mask classifier not found: {self.path}; reinstall g2d-edge, or train one with "
                             "`g2d-train maskflag` (or turn the flag off: RecognizerOptions(mask_flag=False))")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ONNX Runtime's own errors for a damaged file
            raise ModelError(f"cannot load the mask classifier {self.path}: {exc}") from exc
        meta = self._session.get_modelmeta().custom_metadata_map
        if meta.get("kind") != "g2d-mask-flag":
            raise ModelError(f"{self.path} is not a g2d-edge mask classifier (made by `g2d-train maskflag`)")
        self.threshold = check_value("MaskFlag threshold", threshold if threshold is not None else
                                     float(meta.get("threshold", 0.5)), float, above=0.0, below=1.0)

    def scores(self, faces: np.ndarray) -> np.ndarray:
        """P(wears a mask) of each aligned face, (N,) float32."""
        faces = np.asarray(faces)
        if faces.ndim != 4 or faces.shape[1:] != (112, 112, 3) or faces.dtype != np.uint8:
            raise InputError(f"the mask classifier takes aligned faces (N, 112, 112, 3) uint8 BGR, got "
                             f"{faces.shape} {faces.dtype}")
        if len(faces) == 0:
            return np.zeros(0, np.float32)
        return self._session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(faces)})[0].astype(np.float32)

    def is_masked(self, scores: np.ndarray) -> np.ndarray:
        """Scores -> bool flags at the threshold."""
        return np.asarray(scores) >= self.threshold
