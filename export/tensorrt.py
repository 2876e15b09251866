"""`g2d-export trt`'s engine builder, kept importable here. It lives in the runtime, `g2d_edge.backends.engine_build`
(engines are specific to one GPU and are built on the target box, without torch), with the engine cache in
`g2d_edge.backends.engine_cache`."""
from __future__ import annotations

from g2d_edge.backends.engine_build import (PARITY_MIN_COSINE, TrtBuildOptions, build_cached_engine, build_engine,
                                            build_engine_if_missing, make_calibrator, verify_engine)
from g2d_edge.backends.engine_cache import (default_calib_cache, default_engine_path, default_timing_cache,
                                            engine_cache_path, find_cached_engine)

__all__ = ["TrtBuildOptions", "build_engine", "build_engine_if_missing", "build_cached_engine", "engine_cache_path",
           "default_engine_path", "default_calib_cache", "default_timing_cache", "find_cached_engine", "verify_engine",
           "make_calibrator", "PARITY_MIN_COSINE"]
