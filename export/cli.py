"""`g2d-export` command line (also `python -m export`): a thin skin over `export.onnx`, the runtime's engine
builder (`g2d_edge.backends.engine_build`) and `export.triton`.

    g2d-export onnx runs/edge/classifier/final.pt -o g2d_edge/models/g2d-edge-s.onnx
    g2d-export trt g2d_edge/models/g2d-edge-s.onnx --precision fp16 int8 --calib ../shared/data/celeba-train
    g2d-export triton g2d_edge/models/g2d-edge-s.onnx -o model_repository/

Exit status: 0 on success, 1 when an export step fails (parity, parse, build, missing files), 2 on bad arguments,
130 when interrupted (`g2d_edge.cli.support`, shared with g2d and g2d-train).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import List, Optional, Sequence

from g2d_edge.cli.support import run_command
from g2d_edge.errors import G2DError

log = logging.getLogger("g2d-export")


def _add_onnx(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("onnx", help="checkpoint -> verified ONNX graph + sidecar",
                       description="Export a g2d-train checkpoint to one ONNX graph (uint8 faces -> embedding, logits) "
                                   "with its JSON sidecar; fails (exit 1) if ONNX Runtime does not reproduce PyTorch.")
    p.add_argument("checkpoint", type=Path, help="checkpoint written by g2d-train (.pt)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output .onnx (the sidecar goes next to it)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--name", help="model name in the sidecar (default: the output file's stem)")
    p.add_argument("--threshold", type=float, help="override the checkpoint's verification threshold")
    p.add_argument("--faces", type=Path, help="AlignedCache .npz with real faces for the parity check "
                                              "(default: .cache/celeba-train.npz when present)")
    p.add_argument("--no-real-faces", action="store_true", help="check on random and synthetic faces only")
    p.add_argument("--min-cosine", type=float, default=0.9999, help="parity threshold (default 0.9999)")
    p.add_argument("--no-simplify", action="store_true", help="skip onnxslim")
    p.add_argument("--weights", choices=("fp32", "fp16"), default="fp32",
                   help="how weights are stored in the file: fp32, or fp16 (half the size, computed in fp32)")


def _add_trt(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trt", help="ONNX -> TensorRT engine(s) + sidecar",
                       description="Build TensorRT engines from an exported ONNX model on this GPU.")
    p.add_argument("onnx", type=Path, help="exported .onnx (with its .json sidecar)")
    p.add_argument("-o", "--output", type=Path, help="engine path (only with one precision; default: the cache name "
                                                     "load_backend finds, next to the ONNX)")
    p.add_argument("--precision", nargs="+", choices=("fp32", "fp16", "int8"), default=["fp16"],
                   help="one or more precisions (default fp16)")
    p.add_argument("--max-batch", type=int, default=32, help="largest batch of the optimisation profile")
    p.add_argument("--opt-batch", type=int, default=8, help="batch the kernels are tuned for")
    p.add_argument("--calib", type=Path, help="INT8 calibration faces: a folder of photos or an .npz/.npy of aligned "
                                              "faces")
    p.add_argument("--calib-cache", type=Path, help="INT8 calibration cache file (default next to the ONNX)")
    p.add_argument("--calib-faces", type=int, default=512, help="faces used for INT8 calibration")
    p.add_argument("--timing-cache", type=Path, help="timing cache file (default next to the ONNX)")
    p.add_argument("--workspace-mib", type=int, default=1024, help="builder workspace limit in MiB")
    p.add_argument("--optimization-level", type=int, choices=range(6), help="TensorRT builder optimisation level")
    p.add_argument("--device", type=int, default=0, help="CUDA device index")
    p.add_argument("--no-verify", action="store_true", help="skip the engine vs ONNX Runtime check")


def _add_triton(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("triton", help="ONNX -> Triton Inference Server model repository",
                       description="Write a Triton model repository (config.pbtxt, version folder, model, sidecar) "
                                   "for an exported ONNX model: the ONNX Runtime variant and, where TensorRT and a "
                                   "GPU are present, a TensorRT plan variant named NAME-trt.")
    p.add_argument("onnx", type=Path, help="exported .onnx (with its .json sidecar)")
    p.add_argument("-o", "--output", type=Path, required=True, help="model repository folder (created or added to)")
    p.add_argument("--name", help="Triton model name (default: the sidecar's name)")
    p.add_argument("--version", type=int, default=1, help="version folder to write (default 1)")
    p.add_argument("--max-batch", type=int, default=32, help="max_batch_size (default 32)")
    p.add_argument("--max-queue-delay-us", type=int, default=1000,
                   help="dynamic batching: how long a request may wait for others (default 1000 us)")
    p.add_argument("--preferred-batch", type=int, nargs="*", default=[], help="dynamic batching: preferred sizes")
    p.add_argument("--no-dynamic-batching", action="store_true", help="run every request on its own")
    p.add_argument("--instances", type=int, default=1, help="model instances per device (default 1)")
    p.add_argument("--device", choices=("gpu", "cpu"), default="gpu",
                   help="instance kind of the ONNX Runtime variant (default gpu)")
    p.add_argument("--tensorrt", choices=("auto", "yes", "no"), default="auto",
                   help="TensorRT plan variant: auto (when TensorRT and a GPU are here), yes, no")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16", help="plan precision")
    p.add_argument("--calib", type=Path, help="INT8 calibration faces (folder of photos or .npz/.npy)")
    p.add_argument("--force", action="store_true", help="overwrite an existing version folder")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="g2d-export", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_onnx(sub)
    _add_trt(sub)
    _add_triton(sub)
    return parser


def run_onnx(args: argparse.Namespace) -> int:
    from .onnx import ParityOptions, export_onnx

    parity = ParityOptions(min_cosine=args.min_cosine)
    if args.no_real_faces:
        parity = replace(parity, real_faces=None)
    elif args.faces is not None:
        if not args.faces.is_file():
            raise G2DError(f"--faces {args.faces} does not exist")
        parity = replace(parity, real_faces=args.faces)
    meta = {}
    if args.name:
        meta["name"] = args.name
    if args.threshold is not None:
        meta["threshold"] = args.threshold
    sidecar = export_onnx(args.checkpoint, args.output, meta=meta, opset=args.opset, parity=parity,
                          simplify=not args.no_simplify, weights=args.weights)
    print(json.dumps({"onnx": str(args.output), "sidecar": str(args.output.with_suffix(".json")),
                      "embedding_space": sidecar.embedding_space, "num_classes": sidecar.num_classes,
                      "threshold": sidecar.threshold}, indent=2))
    return 0


def run_trt(args: argparse.Namespace) -> int:
    from g2d_edge.backends.engine_build import TrtBuildOptions, build_engine
    from g2d_edge.backends.engine_cache import default_engine_path

    if args.output is not None and len(args.precision) > 1:
        raise G2DError("-o/--output names one engine: give a single --precision, or omit -o")
    built: List[dict] = []
    for precision in dict.fromkeys(args.precision):
        options = TrtBuildOptions(precision=precision, max_batch=args.max_batch,
                                  opt_batch=min(args.opt_batch, args.max_batch), timing_cache=args.timing_cache,
                                  calib_data=args.calib, calib_cache=args.calib_cache,
                                  calib_max_faces=max(args.calib_faces, 1), workspace_mib=args.workspace_mib,
                                  optimization_level=args.optimization_level, device=args.device,
                                  verify=not args.no_verify)
        engine_path = args.output or default_engine_path(args.onnx, precision, args.device)
        sidecar = build_engine(args.onnx, engine_path, options)
        built.append({"engine": str(engine_path), "precision": precision,
                      "parity": (sidecar.engine or {}).get("parity")})
    print(json.dumps(built, indent=2))
    return 0


def run_triton(args: argparse.Namespace) -> int:
    from .triton import TritonRepoOptions, write_triton_repository

    options = TritonRepoOptions(model_name=args.name, version=args.version, max_batch_size=args.max_batch,
                                dynamic_batching=not args.no_dynamic_batching,
                                max_queue_delay_us=args.max_queue_delay_us,
                                preferred_batch_sizes=tuple(args.preferred_batch), instances=args.instances,
                                device=args.device, tensorrt=args.tensorrt, precision=args.precision,
                                calib_data=args.calib, force=args.force)
    written = write_triton_repository(args.onnx, args.output, options)
    print(json.dumps({"repository": str(written["repository"]),
                      "models": [{"name": m.name, "platform": m.platform, "version": m.version,
                                  "files": [str(f) for f in m.files]} for m in written["models"]],
                      "skipped": written["skipped"]}, indent=2))
    return 0


_COMMANDS = {"onnx": run_onnx, "trt": run_trt, "triton": run_triton}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of `g2d-export`; returns the exit status (`g2d_edge.cli.support`: 0 ok, 1 when an export step
    fails, 2 for bad usage, 130 when interrupted)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    return run_command("g2d-export", lambda: _COMMANDS[args.command](args), verbose=args.verbose)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
