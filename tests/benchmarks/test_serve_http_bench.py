"""benchmarks/serve.py http (benchmarks/serve_http.py): one short run against a real `g2d serve` process, beside the
in-process SDK, every request answered and the face found."""
from __future__ import annotations

import json
import os

import pytest


def test_the_http_benchmark_measures_the_server_beside_the_sdk(load_script, celeba_dir, tmp_path):
    for module in ("fastapi", "uvicorn", "requests"):
        try:
            __import__(module)
        except ImportError as exc:
            (pytest.fail if os.environ.get("CI") else pytest.skip)(f"{exc}: pip install -e '.[serve]'")
    bench = load_script("benchmarks/serve.py", "g2d_serve_bench_http")
    out = tmp_path / "serve-http.json"
    assert bench.main(["http", "--clients", "1", "2", "--seconds", "0.5", "--warmup", "0.2", "--sizes", "640x480",
                       "--people", "2", "--data", str(celeba_dir), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = {(r["runtime"], r["clients"]): r for r in result["rows"]}
    assert set(rows) == {(runtime, n) for runtime in ("g2d serve (HTTP)", "SDK in process") for n in (1, 2)}
    for r in rows.values():  # every request answered 200 with the face found
        assert r["requests"] > 0 and r["not_ok"] == {} and r["p99_ms"] >= r["p50_ms"] > 0
    assert result["machine_line"] and result["settings"]["sizes"] == ["640x480"]
