"""Cost of the G2D network configurations: parameters, FLOPs per face and PyTorch-eager CPU latency.

Prints a Markdown table (and optionally JSON) for each preset, e.g.::

    python benchmarks/model_cost.py                       # tiny, edge, paper at batch 1 and 32, 1 thread
    python benchmarks/model_cost.py --threads 2 --train-batch 64 --json cost.json
    python benchmarks/model_cost.py --configs sface sface:width=0.5,sface_stem_stride=2 \
        --onnx-vs g2d_edge/models/g2d-edge-m.onnx       # + ONNX Runtime, 1 thread, in turns with a shipped model

A config is a preset name, optionally with ``ModelConfig`` overrides: ``preset:field=value,field=value``.

FLOPs follow ``torch.utils.flop_counter`` (2 FLOPs per multiply-add of conv / linear / matmul; BN and activations not
counted); MACs are half of that. Latency: warm-up, then the median of ``--repeats`` timed forward passes of the
embedding network (encoder + reformer) in eval mode under ``torch.inference_mode``. With ``--train-batch N`` it also
times one training step (forward + backward + SGD step, train mode) of the embedding network and of the inpainting
pair (encoder + decoder) at batch N: the cost that bounds CPU training. With ``--onnx-vs MODEL.onnx`` each config
is also exported (random weights: the cost does not depend on them) and timed through ONNX Runtime at batch 1 on
``--threads`` threads, call by call in turns with MODEL (so that the machine's load hits both alike): the speed-up
column is MODEL's time over the config's.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from g2d_edge.files import atomic_write_text  # noqa: E402
from g2d_edge import machine as _machine  # noqa: E402
from benchmarks._timing import median_seconds  # noqa: E402
from train.costs import count_flops, count_parameters  # noqa: E402
from train.model import ModelConfig, build_decoder, build_model  # noqa: E402


def machine_info(threads: int) -> dict[str, Any]:
    """What the numbers were measured on: the machine (`g2d_edge.machine`), the PyTorch version and threads, and the
    load average."""
    info: dict[str, Any] = {**_machine.machine_info(), "torch_threads": threads, "torch": torch.__version__}
    if hasattr(os, "getloadavg"):
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    return info


def train_step_seconds(cfg: ModelConfig, batch: int, repeats: int, inpaint: bool) -> float:
    """Median time of one SGD step on random data: embedding network, or encoder + decoder (inpainting) when asked."""
    model = build_model(cfg).train()
    decoder = build_decoder(cfg).train() if inpaint else None
    params = list(model.encoder.parameters()) + list(decoder.parameters()) if decoder else list(model.parameters())
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    x = torch.rand(batch, 3, 112, 112) * 2 - 1

    def step() -> None:
        loss = (decoder(model.encoder(x)) - x).abs().mean() if decoder else model.embed(x).square().sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return median_seconds(step, 1, repeats)


def config_of(spec: str) -> ModelConfig:
    """``preset`` or ``preset:field=value,field=value`` (values in YAML syntax) -> the ModelConfig."""
    import yaml

    name, _, rest = spec.partition(":")
    overrides = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"config {spec!r}: overrides look like field=value, got {item!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    return ModelConfig.preset(name, **overrides)


def onnx_vs(cfgs: dict[str, ModelConfig], reference: Path, threads: int, warmup: int, repeats: int
            ) -> dict[str, dict[str, float]]:
    """ONNX Runtime ms per face at batch 1 of each config (exported with random weights) and of ``reference``,
    timed in turns call by call; per config: its ms, the reference's ms and the speed-up (reference / config)."""
    import numpy as np
    import onnxruntime as ort

    from benchmarks._timing import interleaved_median_seconds
    from export.onnx import trace_to_onnx
    from train.model import InferenceModel

    def session(model: bytes | str) -> Any:
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    sessions = {"reference": session(str(reference))}
    for spec, cfg in cfgs.items():
        sessions[spec] = session(trace_to_onnx(InferenceModel(build_model(cfg).eval())).SerializeToString())
    face = np.random.default_rng(0).integers(0, 256, (1, 112, 112, 3), dtype=np.uint8)
    calls = {k: (lambda s=s: s.run(None, {s.get_inputs()[0].name: face})) for k, s in sessions.items()}
    seconds = interleaved_median_seconds(calls, warmup, repeats)
    ref = seconds.pop("reference")
    return {k: {"onnx_ms": v * 1e3, "reference_ms": ref * 1e3, "speedup": ref / v} for k, v in seconds.items()}


def measure(name: str, batches: list[int], warmup: int, repeats: int, train_batch: int,
            train_repeats: int) -> dict[str, Any]:
    """All costs of one config (a preset, optionally with overrides: `config_of`)."""
    cfg = config_of(name)
    model = build_model(cfg).eval()
    flops = count_flops(model, (1, 3, 112, 112))
    row: dict[str, Any] = {
        "config": name, "encoder": cfg.encoder, "params": count_parameters(model),
        "encoder_params": count_parameters(model.encoder), "reformer_params": count_parameters(model.reformer),
        "decoder_params": count_parameters(build_decoder(cfg)), "flops_per_face": flops, "macs_per_face": flops // 2,
        "latency_ms": {},
    }
    for batch in batches:
        x = torch.rand(batch, 3, 112, 112) * 2 - 1
        with torch.inference_mode():
            seconds = median_seconds(lambda: model.embed(x), warmup, repeats)
        row["latency_ms"][str(batch)] = round(seconds * 1e3, 2)
    if train_batch > 0:
        row["train_batch"] = train_batch
        row["train_step_s"] = round(train_step_seconds(cfg, train_batch, train_repeats, inpaint=False), 3)
        row["inpaint_step_s"] = round(train_step_seconds(cfg, train_batch, train_repeats, inpaint=True), 3)
    return row


def markdown(rows: list[dict[str, Any]], info: dict[str, Any], batches: list[int]) -> str:
    """The results as a Markdown table with a header line on the machine."""
    head = ["config", "encoder", "params (M)", "enc / ref / dec params (M)", "GFLOPs/face", "MMACs/face"]
    head += [f"CPU ms @ batch {b}" + ("" if b == 1 else " (per face)") for b in batches]
    train = any("train_step_s" in r for r in rows)
    if train:
        head += [f"train step s @ {rows[0]['train_batch']}", f"inpaint step s @ {rows[0]['train_batch']}"]
    if any("onnx" in r for r in rows):
        head += [f"ONNX Runtime ms @ 1 vs {info['onnx_reference']}", "speed-up"]
    lines = [
        f"Machine: {info['cpu']}, {info['logical_cores']} logical cores, torch {info['torch']} "
        f"(PyTorch eager, {info['torch_threads']} thread(s)), load average {info.get('load_average_1min', '?')}.",
        "FLOPs: torch.utils.flop_counter (2 per multiply-add); MACs = FLOPs / 2. Latency: embedding network "
        "(encoder + reformer), median after warm-up.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
    ]
    for r in rows:
        cells = [r["config"], r["encoder"], f"{r['params'] / 1e6:.3f}",
                 f"{r['encoder_params'] / 1e6:.3f} / {r['reformer_params'] / 1e6:.3f} / "
                 f"{r['decoder_params'] / 1e6:.3f}",
                 f"{r['flops_per_face'] / 1e9:.3f}", f"{r['macs_per_face'] / 1e6:.1f}"]
        for b in batches:
            ms = r["latency_ms"][str(b)]
            cells.append(f"{ms:.1f}" if b == 1 else f"{ms:.1f} ({ms / b:.2f})")
        if train:
            cells += [f"{r.get('train_step_s', float('nan')):.2f}", f"{r.get('inpaint_step_s', float('nan')):.2f}"]
        if "onnx" in r:
            cells += [f"{r['onnx']['onnx_ms']:.2f} vs {r['onnx']['reference_ms']:.2f}", f"{r['onnx']['speedup']:.2f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--configs", nargs="+", default=["tiny", "edge", "sface", "paper"],
                   help="ModelConfig presets to measure (tiny, tiny-paper, edge, sface, paper), each optionally "
                        "with overrides: preset:field=value,field=value")
    p.add_argument("--batches", nargs="+", type=int, default=[1, 32], help="batch sizes for the latency columns")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--warmup", type=int, default=3, help="untimed forward passes before timing")
    p.add_argument("--repeats", type=int, default=10, help="timed forward passes (the median is reported)")
    p.add_argument("--train-batch", type=int, default=0,
                   help="also time one training step at this batch size (0 = skip; 64 is typical)")
    p.add_argument("--train-repeats", type=int, default=3, help="timed training steps (median)")
    p.add_argument("--onnx-vs", type=Path, default=None, metavar="MODEL.onnx",
                   help="also time each config through ONNX Runtime at batch 1, in turns with this model")
    p.add_argument("--onnx-repeats", type=int, default=100, help="timed ONNX Runtime calls per model (median)")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON here ('-' = stdout)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Measure, print the Markdown table, optionally write JSON."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    info = machine_info(args.threads)
    rows = [measure(name, args.batches, args.warmup, args.repeats, args.train_batch, args.train_repeats)
            for name in args.configs]
    if args.onnx_vs is not None:
        info["onnx_reference"] = args.onnx_vs.name
        timed = onnx_vs({r["config"]: config_of(r["config"]) for r in rows}, args.onnx_vs, args.threads,
                        args.warmup, args.onnx_repeats)
        for r in rows:
            r["onnx"] = timed[r["config"]]
    print(markdown(rows, info, args.batches))
    if args.json is not None:
        text = json.dumps({"machine": info, "results": rows}, indent=2)
        if str(args.json) == "-":
            print(text)
        else:
            atomic_write_text(args.json, text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
