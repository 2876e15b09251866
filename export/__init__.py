"""Export tools: a trained G2D network -> ONNX graph (+ sidecar) -> Triton model repository; `g2d-export trt`
builds TensorRT engines with the runtime's builder.

    from export.onnx import export_onnx
    from export.triton import write_triton_repository
    from g2d_edge.backends.engine_build import TrtBuildOptions, build_engine

    export_onnx("runs/x/classifier/final.pt", "g2d-edge-s.onnx")
    build_engine("g2d-edge-s.onnx", options=TrtBuildOptions(precision="fp16"))
    write_triton_repository("g2d-edge-s.onnx", "model_repository/")

Modules: `onnx.py` (export and the parity check; needs torch, the [train] extra), `triton.py` (model repository),
`pytriton_server.py` (a local Triton server for tests and benchmarks), `torch_backend.py` (runs training checkpoints
behind the runtime's backend protocol), `cli.py` (`g2d-export`). The TensorRT engine builder and cache live in the
runtime (`g2d_edge.backends.engine_build`, `g2d_edge.backends.engine_cache`: engines are built on the target box,
without torch), the export errors in `g2d_edge.errors` (ExportError, ParityError, EngineBuildError).
"""
