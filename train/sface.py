"""OpenCV Zoo's SFace face recogniser: its ONNX file as a plain float graph, as a teacher / peer, and as weights.

The file shared in `../shared/models/opencv-zoo/` (`face_recognition_sface_2021dec_int8bq.onnx`, Apache-2.0) stores
its weights as int8 with block-wise `DequantizeLinear` (opset 21) followed by a `Reshape`, lists every weight as a
graph input too (ONNX Runtime refuses that), and fixes the batch at 1. `float_graph` rewrites it into the equivalent
plain graph (Sub, Mul, Conv, BatchNormalization, PRelu, Flatten, Gemm) with float32 initialisers and a dynamic batch;
`float_weights` gives those weights by initialiser name, which is how `train.model.load_sface_weights` fills the
PyTorch re-implementation (`ModelConfig.preset("sface")`); `slice_sface_weights` cuts them down to a slimmer
network (`ModelConfig.preset("sface", width=0.5)`): the starting point of a faster student.

Input: aligned 112x112 faces (ArcFace template, as `g2d_edge.align`), RGB, 0..255; the graph normalises with
``(x - 127.5) * 0.0078125``. Output `fc1`: 128-d, not normalised (compare with cosine).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Union

import numpy as np

from g2d_edge.errors import ModelError

log = logging.getLogger(__name__)

#: Where the team's shared copy lives, relative to the repository root (the working directory of `g2d-train`).
DEFAULT_SFACE_ONNX = Path("../shared/models/opencv-zoo/face_recognition_sface_2021dec_int8bq.onnx")
SFACE_DIM = 128

PathLike = Union[str, Path]


def _load(path: PathLike):
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"SFace ONNX file not found: {path} (the team's copy is {DEFAULT_SFACE_ONNX}, relative to "
                         "the repository root)")
    return onnx.load(str(path))


def _dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int, block: int) -> np.ndarray:
    """ONNX DequantizeLinear (opset 21) with ``block_size``: scale/zero-point repeat ``block`` times along ``axis``."""
    if block:
        scale = np.repeat(scale, block, axis=axis).take(range(q.shape[axis]), axis=axis)
        zero_point = np.repeat(zero_point, block, axis=axis).take(range(q.shape[axis]), axis=axis)
    elif scale.ndim == 1 and scale.size > 1:  # per-axis
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    return ((q.astype(np.float32) - zero_point.astype(np.float32)) * scale.astype(np.float32)).astype(np.float32)


def _fold_weights(model) -> Dict[str, np.ndarray]:
    """Float32 value of every tensor the graph computes from initialisers alone (DequantizeLinear -> Reshape),
    keyed by the weight's graph-input name (``conv_1_conv2d_weight``, ``pre_fc1_weight``, ...), plus the plain
    float initialisers (batch-norm statistics, PReLU slopes, the normalisation scalars)."""
    from onnx import helper, numpy_helper

    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    computed: Dict[str, np.ndarray] = {}
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        ins = [computed.get(n, values.get(n)) for n in node.input]
        if node.op_type == "DequantizeLinear" and all(v is not None for v in ins):
            q, scale, zp = ins
            computed[node.output[0]] = _dequantize(q, scale, zp, int(attrs.get("axis", 1)),
                                                   int(attrs.get("block_size", 0)))
        elif node.op_type == "Reshape" and all(v is not None for v in ins):
            computed[node.output[0]] = ins[0].reshape(ins[1])
    weights = {k: v for k, v in values.items() if v.dtype == np.float32}
    for out, value in computed.items():  # name the folded tensors like the graph inputs they feed
        base = out.replace("_dequantized", "").replace("_reshaped", "")
        if out.endswith("_reshaped") or base not in weights:
            weights[base] = value
    return weights


def float_weights(path: PathLike = DEFAULT_SFACE_ONNX) -> Dict[str, np.ndarray]:
    """SFace's weights as float32 arrays by name (``conv_<i>[_dw]_conv2d_weight``, ``conv_<i>[_dw]_batchnorm_*``,
    ``conv_<i>[_dw]_relu_gamma``, ``bn1_*``, ``pre_fc1_weight``, ``pre_fc1_bias``, ``fc1_*``, ``scalar_op1/2``)."""
    return _fold_weights(_load(path))


def float_graph(path: PathLike = DEFAULT_SFACE_ONNX):
    """The SFace graph with float32 weights as initialisers (no DequantizeLinear), no initialiser among the graph
    inputs, and a dynamic batch axis: an ``onnx.ModelProto`` that ONNX Runtime loads as is."""
    import onnx
    from onnx import helper, numpy_helper

    model = _load(path)
    graph = model.graph
    folded = _fold_weights(model)
    const_outputs = set()
    for node in graph.node:
        if node.op_type in ("DequantizeLinear", "Reshape") and node.output[0].endswith(("_dequantized", "_reshaped")):
            const_outputs.add(node.output[0])
    kept_nodes = [n for n in graph.node if n.output[0] not in const_outputs]
    rename: Dict[str, str] = {}
    for out in const_outputs:
        rename[out] = out.replace("_dequantized", "").replace("_reshaped", "")
    for node in kept_nodes:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    used = {name for n in kept_nodes for name in n.input}
    initializers = [numpy_helper.from_array(folded[name], name) for name in sorted(used) if name in folded]
    data = next(i for i in graph.input if i.name == "data")
    data.type.tensor_type.shape.dim[0].dim_param = "batch"
    output = graph.output[0]
    output.type.tensor_type.shape.dim[0].dim_param = "batch"
    new_graph = helper.make_graph(kept_nodes, graph.name, [data], [output], initializers)
    new_model = helper.make_model(new_graph, opset_imports=list(model.opset_import),
                                  producer_name="g2d-edge train.sface.float_graph")
    new_model.ir_version = model.ir_version
    onnx.checker.check_model(new_model)
    return new_model


_BN = ("batchnorm_gamma", "batchnorm_beta", "batchnorm_moving_mean", "batchnorm_moving_var")


def _strongest(weights: Dict[str, np.ndarray], name: str, kernel: np.ndarray, count: int) -> np.ndarray:
    """Indices (ascending) of the ``count`` output channels of dense layer ``name`` with the largest batch-norm-scaled
    L1 norm of their filters (``kernel``: the filters already cut to the kept input channels)."""
    scale = np.abs(weights[f"{name}_batchnorm_gamma"]) / np.sqrt(weights[f"{name}_batchnorm_moving_var"] + 1e-3)
    score = scale * np.abs(kernel).reshape(len(kernel), -1).sum(axis=1)
    return np.sort(np.argsort(-score, kind="stable")[:count])


def slice_sface_weights(weights: Dict[str, np.ndarray], width: float) -> Dict[str, np.ndarray]:
    """SFace's weights (``float_weights``) cut to the network of ``ModelConfig.preset("sface", width=width)``.

    Channel slicing of the pretrained filters: every dense layer (the stem and the 1x1 convs) keeps its strongest
    output channels (batch-norm scale x L1 norm of the filter over the input channels kept before it); a depthwise
    layer keeps the channels of its input; the head's BN and FC keep the last layer's channels of every 7x7 cell.
    The result is a starting point for distillation, not a finished recogniser.
    """
    from .model import sface_layers

    out = dict(weights)
    keep_in = np.arange(3)
    for name, count, _ in sface_layers(width):
        kernel = weights[f"{name}_conv2d_weight"]
        if name.endswith("_dw"):  # (C, 1, 3, 3): one filter per input channel
            if count != len(keep_in):
                raise ValueError(f"depthwise layer {name} has {count} channels, its input {len(keep_in)}")
            keep = keep_in
            out[f"{name}_conv2d_weight"] = kernel[keep]
        else:
            kernel = kernel[:, keep_in]
            keep = _strongest(weights, name, kernel, count)
            out[f"{name}_conv2d_weight"] = kernel[keep]
        for part in (*_BN, "relu_gamma"):
            out[f"{name}_{part}"] = weights[f"{name}_{part}"][keep]
        keep_in = keep
    for part in ("gamma", "beta", "moving_mean", "moving_var"):
        out[f"bn1_{part}"] = weights[f"bn1_{part}"][keep_in]
    fc = weights["pre_fc1_weight"]  # (128, C * 7 * 7), flattened channel-major as the descriptor map
    cells = fc.shape[1] // len(weights["bn1_gamma"])
    out["pre_fc1_weight"] = fc.reshape(len(fc), -1, cells)[:, keep_in].reshape(len(fc), -1)
    return out


def load_pretrained(model, spec: str):
    """Fill an sface `G2DModel` with SFace's weights (cut to the model's width); ``spec`` is "sface" (the shared copy)
    or "sface:<path>"."""
    from .model import load_sface_weights

    path = Path(spec[6:]) if spec.startswith("sface:") else DEFAULT_SFACE_ONNX
    width = model.config.width
    log.info("initialising the network from SFace's weights (%s)%s", path,
             f", its strongest channels for width {width}" if width != 1.0 else "")
    weights = float_weights(path)
    if width != 1.0:
        weights = slice_sface_weights(weights, width)
    return load_sface_weights(model, weights)


class SFace:
    """SFace on ONNX Runtime (CPU): aligned 112x112 BGR uint8 faces (N, 112, 112, 3) -> (N, 128) float32, raw.

    A teacher for `g2d-train teacher --teacher sface` and the peer in `benchmarks/accuracy.py`. ``threads`` sets
    ONNX Runtime's intra-op threads (0: its default).
    """

    name = "sface-2021dec"
    dim = SFACE_DIM

    def __init__(self, path: PathLike = DEFAULT_SFACE_ONNX, threads: int = 0, batch_size: int = 32) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = Path(path)
        self.session = ort.InferenceSession(float_graph(path).SerializeToString(), options,
                                            providers=["CPUExecutionProvider"])
        self.batch_size = int(batch_size)

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        faces = np.asarray(faces)
        if faces.ndim != 4 or faces.shape[1:] != (112, 112, 3) or faces.dtype != np.uint8:
            raise ModelError(f"SFace takes aligned faces (N, 112, 112, 3) uint8 BGR, got {faces.shape} {faces.dtype}")
        out = []
        for start in range(0, len(faces), self.batch_size):
            batch = faces[start:start + self.batch_size, :, :, ::-1].transpose(0, 3, 1, 2).astype(np.float32)
            out.append(self.session.run(None, {"data": np.ascontiguousarray(batch)})[0])
        if not out:
            return np.zeros((0, self.dim), np.float32)
        return np.concatenate(out).astype(np.float32)
