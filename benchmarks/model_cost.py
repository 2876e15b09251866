"""Cost of the G2D network configurations: parameters, FLOPs per face and PyTorch-eager CPU latency.

Prints a Markdown table (and optionally JSON) for each preset, e.g.::

    python benchmarks/model_cost.py                       # tiny, edge, paper at batch 1 and 32, 1 thread
    python benchmarks/model_cost.py --threads 2 --train-batch 64 --json cost.json

FLOPs follow ``torch.utils.flop_counter`` (2 FLOPs per multiply-add of conv / linear / matmul; BN and activations not
counted); MACs are half of that. Latency: warm-up, then the median of ``--repeats`` timed forward passes of the
embedding network (encoder + reformer) in eval mode under ``torch.inference_mode``. With ``--train-batch N`` it also
times one training step (forward + backward + SGD step, train mode) of the embedding network and of the inpainting
pair (encoder + decoder) at batch N: the cost that bounds CPU training.
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


def measure(name: str, batches: list[int], warmup: int, repeats: int, train_batch: int,
            train_repeats: int) -> dict[str, Any]:
    """All costs of one preset."""
    cfg = ModelConfig.preset(name)
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
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--configs", nargs="+", default=["tiny", "edge", "sface", "paper"],
                   help="ModelConfig presets to measure (tiny, tiny-paper, edge, sface, paper)")
    p.add_argument("--batches", nargs="+", type=int, default=[1, 32], help="batch sizes for the latency columns")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--warmup", type=int, default=3, help="untimed forward passes before timing")
    p.add_argument("--repeats", type=int, default=10, help="timed forward passes (the median is reported)")
    p.add_argument("--train-batch", type=int, default=0,
                   help="also time one training step at this batch size (0 = skip; 64 is typical)")
    p.add_argument("--train-repeats", type=int, default=3, help="timed training steps (median)")
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
