"""Smoke test of benchmarks/decoding.py: the quick run works and its report is complete (no
assertion about speed: figures belong to the benchmark's own runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "decoding.py"
INPUTS = ("transaction", "block", "proposal", "catch_up", "gossip")


def test_the_quick_run_reports_every_operation_with_its_bounds() -> None:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["benchmark"] == "decoding" and report["quick"] is True
    for name in INPUTS:
        for suffix in ("msgpack", "unpack", "decode", "pydantic"):
            figures = report["operations"][f"{name}_{suffix}"]
            assert figures["cpu_median_us"] > 0 and figures["calls_per_sample"] >= 1
        assert report["ratios"][f"{name}_pydantic_over_decode"] > 0
    assert report["inputs"]["bytes"]["block"] > report["inputs"]["bytes"]["transaction"]
