"""YuNet through ONNX Runtime / OpenVINO (`DetectorOptions.runtime`): the same faces as `cv2.FaceDetectorYN` on real
photos (CelebA mosaics at several frame sizes, real masked crowd photos), OpenCV's suppression redone in numpy, and
the onnx-free weight folding."""
from __future__ import annotations

from pathlib import Path
from typing import List

import cv2
import numpy as np
import pytest

from g2d_edge.detectors import DetectorOptions, FaceDetector
from g2d_edge.detectors import SHIPPED_YUNET, Detection, YuNetDetector, YuNetRuntimeDetector
from g2d_edge.detectors.onnx_graph import dequantize
from g2d_edge.detectors.yunet_runtime import float_yunet, nms_boxes
from g2d_edge.errors import InputError, ModelError
from runtime_helpers import read

RMFD_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "rmfd-real"


def _runtimes() -> List[str]:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return ["onnxruntime"]
    return ["onnxruntime", "openvino"]


@pytest.fixture(scope="module")
def images(celeba_dir: Path) -> List[np.ndarray]:
    """Real photos: a 1920x1080 mosaic of 60 CelebA faces (~80 px) and its 960x540 and 640x360 copies, an odd-sized
    crop of it, one CelebA photo, and real masked photos of several people (RMFD) when present."""
    paths = sorted(celeba_dir.glob("*/*.jpg"))[::60][:60]
    photos = [cv2.resize(read(p), (160, 160)) for p in paths]
    mosaic = np.vstack([np.hstack(photos[i:i + 12]) for i in range(0, 60, 12)])
    mosaic = cv2.copyMakeBorder(mosaic, 140, 140, 0, 0, cv2.BORDER_CONSTANT, value=(90, 110, 120))
    out = [mosaic, cv2.resize(mosaic, (960, 540), interpolation=cv2.INTER_AREA),
           cv2.resize(mosaic, (640, 360), interpolation=cv2.INTER_AREA), mosaic[37:700, 51:1333], read(paths[0])]
    crowds = ["0001/0013.jpg", "0001/0062.jpg", "0001/0089.jpg", "0001/0189.jpg", "0001/0212.jpg"]
    return out + [read(RMFD_DIR / c) for c in crowds if (RMFD_DIR / c).is_file()]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def assert_same_faces(ref: List[Detection], got: List[Detection]) -> None:
    """The same faces: one to one, box IoU >= 0.95, keypoints within 1 px, scores within 0.01."""
    assert len(got) == len(ref), f"{len(got)} faces against OpenCV's {len(ref)}"
    unmatched = list(got)
    for face in ref:
        best = max(unmatched, key=lambda g: _iou(face.box, g.box))
        assert _iou(face.box, best.box) >= 0.95
        assert np.abs(best.keypoints - face.keypoints).max() <= 1.0
        assert abs(best.score - face.score) <= 0.01
        unmatched.remove(best)


@pytest.mark.parametrize("runtime", _runtimes())
@pytest.mark.parametrize("confidence", [0.7, 0.3])
def test_same_faces_as_opencv_on_real_photos(runtime: str, confidence: float, images):
    opencv = YuNetDetector(confidence)
    ours = YuNetRuntimeDetector(runtime, confidence, threads=1)
    found = []
    for image in images:
        ref, got = opencv.detect(image), ours.detect(image)
        assert_same_faces(ref, got)
        found.append(len(ref))
    assert found[0] >= 55 and found[2] >= 40 and sum(found[5:]) >= 3 * (len(images) - 5)  # the faces are there
    opencv.close()
    ours.close()


@pytest.mark.parametrize("runtime", _runtimes())
def test_face_detector_runtimes_give_the_same_faces(runtime: str, images):
    """Through `FaceDetector` (every-scale pyramid, YuNet's own keypoints) the runtimes agree with OpenCV."""
    with FaceDetector(DetectorOptions(runtime="opencv", keypoints="detector")) as ref, \
            FaceDetector(DetectorOptions(runtime=runtime, threads=1, keypoints="detector")) as ours:
        for image in images[:3] + images[-2:]:
            assert_same_faces(ref.detect(image), ours.detect(image))


def test_suppression_matches_opencv_nms_boxes():
    rng = np.random.default_rng(0)
    for trial in range(20):
        n = 200
        rows = np.zeros((n, 15), np.float32)
        rows[:, :2] = rng.uniform(-20, 300, (n, 2))
        rows[:, 2:4] = rng.uniform(5, 80, (n, 2))
        rows[:, 14] = np.round(rng.uniform(0.2, 1.0, n), 2)  # ties included
        boxes = [tuple(int(v) for v in r[:4]) for r in rows]
        for thr, iou, top_k in ((0.5, 0.3, 5000), (0.3, 0.5, 50), (0.9, 0.1, 0)):
            ref = cv2.dnn.NMSBoxes(boxes, rows[:, 14].tolist(), thr, iou, top_k=top_k)
            assert nms_boxes(rows, thr, iou, top_k).tolist() == np.asarray(ref).reshape(-1).tolist()


def test_folded_weights_equal_dequantized_ones():
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    original = onnx.load(str(SHIPPED_YUNET))
    folded = onnx.load_from_string(float_yunet(SHIPPED_YUNET))
    onnx.checker.check_model(folded)
    assert not [n for n in folded.graph.node if n.op_type == "DequantizeLinear"]
    assert not folded.graph.value_info
    dims = [d.dim_param or d.dim_value for d in folded.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, "height", "width"]
    inits = {i.name: i for i in original.graph.initializer}
    weights = {i.name: numpy_helper.to_array(i) for i in folded.graph.initializer}
    for node in [n for n in original.graph.node if n.op_type == "DequantizeLinear"][:12]:
        expected = ReferenceEvaluator(onnx.helper.make_model(onnx.helper.make_graph(
            [node], "dq", [], [onnx.helper.make_tensor_value_info(node.output[0], onnx.TensorProto.FLOAT, None)],
            [inits[i] for i in node.input]), opset_imports=original.opset_import)).run(None, {})[0]
        np.testing.assert_array_equal(weights[node.output[0]], expected)


def test_dequantize_per_tensor_axis_and_block():
    x = np.arange(-6, 6, dtype=np.int8).reshape(2, 6)
    np.testing.assert_allclose(dequantize(x, np.float32(0.5), np.int8(2), 1, 0), (x - 2) * 0.5)
    per_axis = dequantize(x, np.array([1.0, 2.0], np.float32), np.array([0, 1], np.int8), 0, 0)
    np.testing.assert_allclose(per_axis, [(x[0] - 0) * 1.0, (x[1] - 1) * 2.0])
    scale = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32)
    block = dequantize(x, scale, None, 1, 2)
    np.testing.assert_allclose(block, x * np.repeat(scale, 2, axis=1))
    assert block.dtype == np.float32


def test_bad_models_and_options_say_what_to_do(tmp_path: Path):
    with pytest.raises(ModelError, match="cannot read the YuNet model"):
        YuNetRuntimeDetector(model_path=tmp_path / "nope.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not an onnx file" * 10)
    with pytest.raises(ModelError):
        YuNetRuntimeDetector(model_path=corrupt)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(SHIPPED_YUNET.read_bytes()[:5000])
    with pytest.raises(ModelError, match="truncated"):
        YuNetRuntimeDetector(model_path=truncated)
    with pytest.raises(InputError, match="runtime"):
        YuNetRuntimeDetector("tflite")
    closed = YuNetRuntimeDetector("onnxruntime", threads=1)
    closed.close()
    with pytest.raises(ModelError, match="closed"):
        closed.detect(np.zeros((64, 64, 3), np.uint8))
