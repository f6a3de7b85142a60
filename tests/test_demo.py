"""Specification: ``make demo``, the newcomer's first command, runs as the README says.

The demo is the main job told end to end on real processes (docs: README, "Try it"). This
test runs it as ``make demo`` does (``python -m node.tools.demo``), with its open data written
to a temporary folder, and checks what it leaves: its SCDL file passes this suite's own reading
of the schema (``tests/test_scdl.py``, written from the schema, not from the exporter), each
proof row names a transaction, and the offline verification page sits beside a document and
its receipt.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from test_scdl import scdl_problems

ROOT = Path(__file__).resolve().parent.parent
DEMO_TIMEOUT_S = 240


def test_the_demo_runs_every_check_and_publishes_valid_open_data(tmp_path: Path) -> None:
    data = tmp_path / "demo-data"
    finished = subprocess.run(
        [sys.executable, "-m", "node.tools.demo", "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
        cwd=ROOT,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert finished.stdout.rstrip().endswith("demo finished: every check held")
    assert "Traceback" not in finished.stderr

    deliberations = data / "deliberations.csv"
    assert scdl_problems(deliberations.read_bytes()) == []
    with open(deliberations, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(data / "deliberations.csv.proofs.csv", encoding="utf-8", newline="") as handle:
        proofs = list(csv.DictReader(handle))
    assert len(rows) == len(proofs) == 5
    assert [row["DELIB_ID"] for row in rows] == [proof["DELIB_ID"] for proof in proofs]
    assert all(len(proof["tx_id"]) == 64 and int(proof["height"]) >= 1 for proof in proofs)

    page = (data / "verify.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "SceauVerify" in page
    receipt = json.loads((data / "2026-ARR-117.receipt.json").read_text(encoding="utf-8"))
    assert receipt["format"] == "sceau-receipt/v1"
    assert (data / "2026-ARR-117.txt").stat().st_size > 0
