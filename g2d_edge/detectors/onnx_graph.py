"""A small ONNX graph editor that needs no `onnx` package (the runtime has none): it reads and writes the protobuf
wire format itself, for the two edits the YuNet detector needs before ONNX Runtime / OpenVINO can run it, both made
by `edit_graph` in memory at load time (nothing is written to disk):

- weights folded to float32: every `DequantizeLinear` whose inputs are all constant (the weights of a weight-only
  quantised model, e.g. OpenCV Zoo's block-quantised int8 YuNet) is replaced by its float result, computed here in
  numpy once. ONNX Runtime cannot run that YuNet file as it is (its biases are "block-quantised" with a single scale,
  which ORT rejects at the first inference), and float weights let every runtime use its ordinary float kernels;
- any image size: named input / output axes become symbolic and the stored intermediate shapes (value_info) are
  dropped (the file fixes 640x640; OpenCV re-plans its network for each size instead).

Only the fields these edits touch are decoded; every other field is copied byte for byte.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import ModelError

Field = Tuple[int, int, Union[int, bytes]]  # (field number, wire type, value: int for varints, else raw bytes)

# Field numbers of onnx.proto (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto ...).
_MODEL_GRAPH = 7
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_INPUT, _GRAPH_OUTPUT, _GRAPH_VALUE_INFO = 1, 5, 11, 12, 13
_NODE_INPUT, _NODE_OUTPUT, _NODE_OP_TYPE, _NODE_ATTRIBUTE = 1, 2, 4, 5
_ATTR_NAME, _ATTR_INT = 1, 3
_TENSOR_DIMS, _TENSOR_DATA_TYPE, _TENSOR_FLOAT_DATA, _TENSOR_INT32_DATA, _TENSOR_INT64_DATA = 1, 2, 4, 5, 7
_TENSOR_NAME, _TENSOR_RAW_DATA = 8, 9
_VALUE_NAME, _VALUE_TYPE, _TYPE_TENSOR, _TENSOR_TYPE_ELEM, _TENSOR_TYPE_SHAPE = 1, 2, 1, 1, 2
_SHAPE_DIM, _DIM_VALUE, _DIM_PARAM = 1, 1, 2
#: ONNX tensor element types <-> numpy dtypes (those a weight-only quantised model uses).
_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32, 7: np.int64,
           10: np.float16, 11: np.float64}
_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}


def _read_varint(buf: bytes, pos: int) -> Tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise ModelError("truncated ONNX file (a varint runs past the end); copy the model again")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 values are sent as 10-byte two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def parse(buf: bytes) -> List[Field]:
    """The top-level fields of one protobuf message, in order."""
    fields: List[Field] = []
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
            fields.append((number, wire, value))
            continue
        if wire == 2:
            size, pos = _read_varint(buf, pos)
            end = pos + size
        elif wire in (1, 5):
            end = pos + (8 if wire == 1 else 4)
        else:
            raise ModelError(f"not an ONNX file this reader understands (protobuf wire type {wire}); re-export it")
        if end > len(buf):
            raise ModelError("truncated ONNX file (a field runs past the end); copy the model again")
        fields.append((number, wire, buf[pos:end]))
        pos = end
    return fields


def serialise(fields: Sequence[Field]) -> bytes:
    """The message made of `fields` (the inverse of `parse`)."""
    out = bytearray()
    for number, wire, value in fields:
        out += _varint(number << 3 | wire)
        if wire == 0:
            out += _varint(int(value))  # type: ignore[arg-type]
        elif wire == 2:
            out += _varint(len(value)) + value  # type: ignore[arg-type, operator]
        else:
            out += value  # type: ignore[operator]
    return bytes(out)


def _strings(fields: Sequence[Field], number: int) -> List[str]:
    return [bytes(v).decode() for n, w, v in fields if n == number and w == 2]  # type: ignore[arg-type]


def _ints(fields: Sequence[Field], number: int) -> List[int]:
    """A repeated integer field, packed or not, as signed int64."""
    out: List[int] = []
    for n, w, v in fields:
        if n != number:
            continue
        if w == 0:
            out.append(int(v))  # type: ignore[arg-type]
            continue
        pos, buf = 0, bytes(v)  # type: ignore[arg-type]
        while pos < len(buf):
            value, pos = _read_varint(buf, pos)
            out.append(value)
    return [v - (1 << 64) if v >= 1 << 63 else v for v in out]


def tensor_array(fields: Sequence[Field]) -> np.ndarray:
    """A TensorProto's value as a numpy array (raw_data, float_data, int32_data or int64_data)."""
    code = next((int(v) for n, _, v in fields if n == _TENSOR_DATA_TYPE), 0)  # type: ignore[arg-type]
    if code not in _DTYPES:
        raise ModelError(f"ONNX tensor of element type {code} is not supported here; re-export the model")
    dtype, dims = np.dtype(_DTYPES[code]), _ints(fields, _TENSOR_DIMS)
    raw = next((bytes(v) for n, _, v in fields if n == _TENSOR_RAW_DATA), None)  # type: ignore[arg-type]
    if raw is not None:
        data = np.frombuffer(raw, dtype.newbyteorder("<")).astype(dtype)
    elif code == 1:
        data = np.concatenate([np.frombuffer(bytes(v), "<f4") for n, _, v in fields  # type: ignore[arg-type]
                               if n == _TENSOR_FLOAT_DATA] or [np.zeros(0, np.float32)])
    else:
        data = np.array(_ints(fields, _TENSOR_INT64_DATA if code == 7 else _TENSOR_INT32_DATA)).astype(dtype)
    return data.reshape(dims)


def tensor_fields(name: str, array: np.ndarray) -> List[Field]:
    """A TensorProto holding `array` (raw little-endian data) under `name`."""
    array = np.ascontiguousarray(array)
    code = _CODES.get(array.dtype)
    if code is None:
        raise ModelError(f"cannot store a {array.dtype} tensor in an ONNX graph")
    packed = b"".join(_varint(int(d)) for d in array.shape)
    return [(_TENSOR_DIMS, 2, packed), (_TENSOR_DATA_TYPE, 0, code), (_TENSOR_NAME, 2, name.encode()),
            (_TENSOR_RAW_DATA, 2, array.astype(array.dtype.newbyteorder("<")).tobytes())]


def dequantize(x: np.ndarray, scale: np.ndarray, zero_point: Optional[np.ndarray], axis: int,
               block_size: int) -> np.ndarray:
    """ONNX DequantizeLinear (opset 21): (x - zero_point) * scale, per tensor, per axis or per block along `axis`;
    the result has the scale's dtype."""
    zp = np.zeros_like(scale, dtype=np.float64) if zero_point is None else zero_point.astype(np.float64)
    sc = scale.astype(np.float64)
    if sc.size > 1 or block_size > 0:
        axis = axis % x.ndim
        if block_size > 0:  # the scale has x's rank, one value per block of `block_size` along `axis`
            sc = np.repeat(sc, block_size, axis=axis).take(np.arange(x.shape[axis]), axis=axis)
            zp = np.repeat(zp, block_size, axis=axis).take(np.arange(x.shape[axis]), axis=axis)
        else:  # one value per index along `axis`
            shape = [1] * x.ndim
            shape[axis] = -1
            sc, zp = sc.reshape(shape), zp.reshape(shape)
    return ((x.astype(np.float64) - zp) * sc).astype(scale.dtype)


def _fold_node(node: List[Field], constants: Dict[str, np.ndarray]) -> Optional[Tuple[str, np.ndarray]]:
    """(output name, value) of a DequantizeLinear node whose inputs are all constants, else None."""
    op = _strings(node, _NODE_OP_TYPE)
    inputs = _strings(node, _NODE_INPUT)
    if op != ["DequantizeLinear"] or not inputs or not all(i in constants for i in inputs if i):
        return None
    attrs = {}
    for _, _, value in (f for f in node if f[0] == _NODE_ATTRIBUTE):
        attr = parse(bytes(value))  # type: ignore[arg-type]
        ints = _ints(attr, _ATTR_INT)
        attrs[_strings(attr, _ATTR_NAME)[0]] = ints[0] if ints else 0
    zero_point = constants[inputs[2]] if len(inputs) > 2 and inputs[2] else None
    value = dequantize(constants[inputs[0]], constants[inputs[1]], zero_point, attrs.get("axis", 1),
                       attrs.get("block_size", 0))
    return _strings(node, _NODE_OUTPUT)[0], value


def _dynamic_value_info(value: bytes, axes: Dict[int, str]) -> bytes:
    """A graph input / output (ValueInfoProto) with the tensor axes in `axes` made symbolic (axis -> name)."""
    info = parse(value)
    name = _strings(info, _VALUE_NAME)[0]
    type_fields = parse(next(bytes(v) for n, _, v in info if n == _VALUE_TYPE))  # type: ignore[arg-type]
    tensor = parse(next(bytes(v) for n, _, v in type_fields if n == _TYPE_TENSOR))  # type: ignore[arg-type]
    elem = next(int(v) for n, _, v in tensor if n == _TENSOR_TYPE_ELEM)  # type: ignore[arg-type]
    shape = parse(next(bytes(v) for n, _, v in tensor if n == _TENSOR_TYPE_SHAPE))  # type: ignore[arg-type]
    dims: List[Field] = []
    for axis, (_, _, dim) in enumerate(f for f in shape if f[0] == _SHAPE_DIM):
        dims.append((_SHAPE_DIM, 2, serialise([(_DIM_PARAM, 2, axes[axis].encode())]) if axis in axes else dim))
    tensor = [(_TENSOR_TYPE_ELEM, 0, elem), (_TENSOR_TYPE_SHAPE, 2, serialise(dims))]
    return serialise([(_VALUE_NAME, 2, name.encode()), (_VALUE_TYPE, 2, serialise([(_TYPE_TENSOR, 2,
                                                                                     serialise(tensor))]))])


def edit_graph(model: bytes, input_axes: Dict[int, str], output_axes: Dict[int, str]) -> bytes:
    """`model` (ONNX bytes) with constant DequantizeLinear nodes folded (`fold_dequantize`), the unused initializers
    and the stored intermediate shapes dropped, and the given axes of every graph input and output made symbolic."""
    fields = parse(model)
    graph_at = [i for i, f in enumerate(fields) if f[0] == _MODEL_GRAPH]
    if len(graph_at) != 1:
        raise ModelError("not an ONNX model file (no graph); copy the model again")
    graph = parse(bytes(fields[graph_at[0]][2]))  # type: ignore[arg-type]
    inits = {_strings(parse(bytes(v)), _TENSOR_NAME)[0]: bytes(v)  # type: ignore[arg-type]
             for n, _, v in graph if n == _GRAPH_INITIALIZER}
    constants = {name: tensor_array(parse(raw)) for name, raw in inits.items()}
    kept_nodes, folded = [], {}
    for n, w, v in graph:
        if n == _GRAPH_NODE:
            result = _fold_node(parse(bytes(v)), constants)  # type: ignore[arg-type]
            if result is None:
                kept_nodes.append(bytes(v))  # type: ignore[arg-type]
            else:
                folded[result[0]] = result[1]
    used = {i for node in kept_nodes for i in _strings(parse(node), _NODE_INPUT)}
    out: List[Field] = []
    for n, w, v in graph:
        if n == _GRAPH_NODE or n == _GRAPH_VALUE_INFO:
            continue
        if n == _GRAPH_INITIALIZER:
            name = _strings(parse(bytes(v)), _TENSOR_NAME)[0]  # type: ignore[arg-type]
            if name not in used:
                continue
        elif n in (_GRAPH_INPUT, _GRAPH_OUTPUT):
            v = _dynamic_value_info(bytes(v), input_axes if n == _GRAPH_INPUT else output_axes)  # type: ignore
        out.append((n, w, v))
    out = [(_GRAPH_NODE, 2, node) for node in kept_nodes] + out
    out += [(_GRAPH_INITIALIZER, 2, serialise(tensor_fields(name, value))) for name, value in folded.items()
            if name in used]
    fields[graph_at[0]] = (_MODEL_GRAPH, 2, serialise(out))
    return serialise(fields)
