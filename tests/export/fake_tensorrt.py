"""A CPU stand-in for `tensorrt` + `pycuda.driver`, for testing the TensorRT code paths on machines without a GPU.

It implements the subset of the documented APIs that `g2d_edge/backends/engine_build.py` and `g2d_edge/backends/tensorrt.py` use
(TensorRT 10 named-tensor API, pycuda driver) with the same semantics where they matter for our code:
device memory is separate from host memory and only reachable through memcpy calls on real allocations;
zero-byte allocations fail as `cuMemAlloc(0)` does; input shapes must lie in the optimisation profile; a corrupt
plan deserialises to None (with an error logged); an INT8 build reads the calibration cache or pulls batches
through `get_batch` and writes the cache. The "engine" runs the ONNX graph with ONNX Runtime (CPU).

It cannot tell whether the real TensorRT accepts our graph or gives the same numbers: the GPU-only tests do that.
"""
from __future__ import annotations

import json
import types
from typing import Dict, List, Optional

import numpy as np
import onnx

__version__ = "10.3.0.26"
GPU_NAME = "Fake GPU 9000"
CAPABILITY = (9, 0)
MAGIC = b"FAKETRT1"


# ------------------------------------------------------------------------------------------------------ pycuda
class _Allocation:
    registry: Dict[int, "_Allocation"] = {}
    _next = 0x1000

    def __init__(self, nbytes: int) -> None:
        if nbytes <= 0:
            raise RuntimeError("cuMemAlloc failed: invalid argument")
        self.buf = bytearray(nbytes)
        self.address = _Allocation._next
        _Allocation._next += nbytes + 256
        _Allocation.registry[self.address] = self
        self.freed = False

    def __int__(self) -> int:
        if self.freed:
            raise RuntimeError("use of freed device memory")
        return self.address

    def free(self) -> None:
        self.freed = True
        _Allocation.registry.pop(self.address, None)


def _host(array: np.ndarray) -> np.ndarray:
    if not isinstance(array, np.ndarray) or not array.flags["C_CONTIGUOUS"]:
        raise TypeError("pycuda needs a contiguous host buffer")
    return array


class _Context:
    stack: List["_Context"] = []

    def push(self) -> None:
        _Context.stack.append(self)

    def pop(self) -> None:
        assert _Context.stack and _Context.stack[-1] is self, "context pop without push"
        _Context.stack.pop()

    def detach(self) -> None:
        self.detached = True


class _Device:
    @staticmethod
    def count() -> int:
        return 1

    def __init__(self, index: int) -> None:
        if index != 0:
            raise RuntimeError(f"invalid device ordinal {index}")

    def name(self) -> str:
        return GPU_NAME

    def compute_capability(self):
        return CAPABILITY

    def retain_primary_context(self) -> _Context:
        return _Context()


class _Stream:
    handle = 42

    def synchronize(self) -> None:
        pass


def _require_context() -> None:
    if not _Context.stack:
        raise RuntimeError("no current CUDA context")


def mem_alloc(nbytes: int) -> _Allocation:
    _require_context()
    return _Allocation(int(nbytes))


def memcpy_htod(dest: _Allocation, src: np.ndarray) -> None:
    _require_context()
    data = _host(src).tobytes()
    dest.buf[:len(data)] = data


def memcpy_htod_async(dest: _Allocation, src: np.ndarray, stream=None) -> None:
    memcpy_htod(dest, src)


def memcpy_dtoh_async(dest: np.ndarray, src: _Allocation, stream=None) -> None:
    _require_context()
    dest = _host(dest)
    dest[...] = np.frombuffer(bytes(src.buf[:dest.nbytes]), dest.dtype).reshape(dest.shape)


def pagelocked_empty(shape, dtype) -> np.ndarray:
    return np.empty(shape, dtype)


driver = types.SimpleNamespace(init=lambda: None, Device=_Device, Stream=_Stream, mem_alloc=mem_alloc,
                               memcpy_htod=memcpy_htod, memcpy_htod_async=memcpy_htod_async,
                               memcpy_dtoh_async=memcpy_dtoh_async, pagelocked_empty=pagelocked_empty)


# ----------------------------------------------------------------------------------------------------- tensorrt
class _Severity:
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)


class ILogger:
    Severity = _Severity

    def __init__(self) -> None:
        pass


class Logger(ILogger):
    WARNING = _Severity.WARNING

    def __init__(self, level=None) -> None:
        super().__init__()

    def log(self, severity, msg) -> None:
        pass


class DataType:
    FLOAT, HALF, INT8, INT32, BOOL, UINT8 = range(6)


_NP = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8, DataType.INT32: np.int32,
       DataType.BOOL: np.bool_, DataType.UINT8: np.uint8}
_ONNX_TO_TRT = {onnx.TensorProto.FLOAT: DataType.FLOAT, onnx.TensorProto.UINT8: DataType.UINT8}


def nptype(dtype):
    return _NP[dtype]


class TensorIOMode:
    NONE, INPUT, OUTPUT = range(3)


class BuilderFlag:
    FP16, INT8 = "FP16", "INT8"


class MemoryPoolType:
    WORKSPACE = "WORKSPACE"


class NetworkDefinitionCreationFlag:
    EXPLICIT_BATCH = 0


class IInt8EntropyCalibrator2:
    def __init__(self) -> None:
        pass


class _Input:
    def __init__(self, name: str) -> None:
        self.name = name


class _Network:
    def __init__(self) -> None:
        self.onnx_bytes: Optional[bytes] = None
        self.inputs: List[_Input] = []

    def get_input(self, i: int) -> _Input:
        return self.inputs[i]


class OnnxParser:
    def __init__(self, network: _Network, logger) -> None:
        self.network, self.errors = network, []

    def parse_from_file(self, path: str) -> bool:
        try:
            model = onnx.load(path)
        except Exception as exc:  # noqa: BLE001 - mirror the parser: report, do not raise
            self.errors = [f"ModelImporter: failed to parse {path}: {exc}"]
            return False
        self.network.onnx_bytes = model.SerializeToString()
        init = {t.name for t in model.graph.initializer}
        self.network.inputs = [_Input(i.name) for i in model.graph.input if i.name not in init]
        return True

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, i: int) -> str:
        return self.errors[i]


class _Profile:
    def __init__(self) -> None:
        self.shapes: Dict[str, tuple] = {}

    def set_shape(self, name, lo, opt, hi) -> None:
        assert all(a <= b <= c for a, b, c in zip(lo, opt, hi)), "invalid profile"
        self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))


class _TimingCache:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def serialize(self) -> bytes:
        return b"timing:" + self.data[-32:]


class _Config:
    def __init__(self) -> None:
        self.flags, self.profiles, self.int8_calibrator, self.calibration_profile = set(), [], None, None
        self.timing_cache: Optional[_TimingCache] = None
        self.builder_optimization_level = 3

    def set_memory_pool_limit(self, pool, size) -> None:
        assert size > 0

    def add_optimization_profile(self, profile: _Profile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def set_flag(self, flag) -> None:
        self.flags.add(flag)

    def set_calibration_profile(self, profile: _Profile) -> bool:
        self.calibration_profile = profile
        return True

    def create_timing_cache(self, data: bytes) -> _TimingCache:
        return _TimingCache(bytes(data))

    def set_timing_cache(self, cache: _TimingCache, ignore_mismatch: bool) -> bool:
        self.timing_cache = cache
        return True

    def get_timing_cache(self) -> _TimingCache:
        return self.timing_cache


class Builder:
    platform_has_fast_fp16 = True
    platform_has_fast_int8 = True

    def __init__(self, logger) -> None:
        self.logger = logger

    def create_network(self, flags: int = 0) -> _Network:
        return _Network()

    def create_builder_config(self) -> _Config:
        return _Config()

    def create_optimization_profile(self) -> _Profile:
        return _Profile()

    def build_serialized_network(self, network: _Network, config: _Config) -> Optional[bytes]:
        _require_context()
        if not config.profiles:
            self.logger.log(_Severity.ERROR, "network has dynamic inputs but no optimization profile")
            return None
        if BuilderFlag.INT8 in config.flags:
            self._calibrate(network, config)
        header = json.dumps({"profile": {k: list(map(list, v)) for k, v in config.profiles[0].shapes.items()},
                             "flags": sorted(config.flags)}).encode()
        return MAGIC + len(header).to_bytes(4, "little") + header + network.onnx_bytes

    @staticmethod
    def _calibrate(network: _Network, config: _Config) -> None:
        calib = config.int8_calibrator
        assert calib is not None and config.calibration_profile is not None, "INT8 needs calibrator + profile"
        if calib.read_calibration_cache():
            return
        name = network.inputs[0].name
        batch = config.calibration_profile.shapes[name][1][0]
        assert calib.get_batch_size() == batch
        seen = 0
        while True:
            ptrs = calib.get_batch([name])
            if not ptrs:
                break
            alloc = _Allocation.registry[int(ptrs[0])]
            data = np.frombuffer(bytes(alloc.buf[: batch * 112 * 112 * 3]), np.uint8)
            seen += data.size // (112 * 112 * 3)
        assert seen > 0, "calibration got no batch"
        calib.write_calibration_cache(f"TRT-10030-EntropyCalibration2 faces={seen}\n".encode())


class _Engine:
    def __init__(self, header: dict, onnx_bytes: bytes) -> None:
        import onnxruntime as ort

        self.profile = {k: tuple(map(tuple, v)) for k, v in header["profile"].items()}
        self.session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        self.io = [(i.name, TensorIOMode.INPUT, i) for i in self.session.get_inputs()] + \
                  [(o.name, TensorIOMode.OUTPUT, o) for o in self.session.get_outputs()]
        self.num_io_tensors = len(self.io)

    def get_tensor_name(self, i: int) -> str:
        return self.io[i][0]

    def _entry(self, name):
        return next(e for e in self.io if e[0] == name)

    def get_tensor_mode(self, name: str) -> int:
        return self._entry(name)[1]

    def get_tensor_dtype(self, name: str) -> int:
        return DataType.UINT8 if self._entry(name)[2].type == "tensor(uint8)" else DataType.FLOAT

    def get_tensor_shape(self, name: str) -> tuple:
        return tuple(d if isinstance(d, int) else -1 for d in self._entry(name)[2].shape)

    def get_tensor_profile_shape(self, name: str, profile_index: int):
        return self.profile[name]

    def create_execution_context(self) -> "_Context2":
        return _Context2(self)


class _Context2:
    def __init__(self, engine: _Engine) -> None:
        self.engine, self.addresses, self.shapes = engine, {}, {}

    def set_tensor_address(self, name: str, address: int) -> bool:
        assert address in _Allocation.registry, "not a device allocation"
        self.addresses[name] = address
        return True

    def set_input_shape(self, name: str, shape) -> bool:
        lo, _, hi = self.engine.profile[name]
        shape = tuple(shape)
        if len(shape) != len(lo) or not all(a <= s <= b for a, s, b in zip(lo, shape, hi)):
            return False
        self.shapes[name] = shape
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        _require_context()
        feeds = {}
        for name, mode, info in self.engine.io:
            if mode == TensorIOMode.INPUT:
                shape = self.shapes[name]
                buf = _Allocation.registry[self.addresses[name]].buf
                feeds[name] = np.frombuffer(bytes(buf[: int(np.prod(shape))]), np.uint8).reshape(shape)
        outs = self.engine.session.run(None, feeds)
        for (name, mode, _), value in zip([e for e in self.engine.io if e[1] == TensorIOMode.OUTPUT], outs):
            data = np.ascontiguousarray(value, np.float32).tobytes()
            _Allocation.registry[self.addresses[name]].buf[:len(data)] = data
        return True


class Runtime:
    def __init__(self, logger) -> None:
        self.logger = logger

    def deserialize_cuda_engine(self, data: bytes) -> Optional[_Engine]:
        try:
            assert data[:8] == MAGIC
            n = int.from_bytes(data[8:12], "little")
            header = json.loads(data[12:12 + n])
            return _Engine(header, data[12 + n:])
        except Exception:  # noqa: BLE001 - TensorRT logs and returns None
            self.logger.log(_Severity.ERROR, "IRuntime::deserializeCudaEngine: Error Code 1: Serialization "
                                             "(Serialization assertion failed: magicTagRead == kMAGIC_TAG)")
            return None


def install(monkeypatch) -> None:
    """Make `import tensorrt` / `import pycuda.driver` give these fakes for the rest of a test."""
    import sys

    import g2d_edge.backends.tensorrt_env as env_mod

    this = sys.modules[__name__]
    pycuda = types.ModuleType("pycuda")
    pycuda.driver = driver
    monkeypatch.setitem(sys.modules, "tensorrt", this)
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    monkeypatch.setattr(env_mod, "_TRT_LOGGER", None)
