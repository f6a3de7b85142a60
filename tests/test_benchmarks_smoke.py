"""Smoke test of benchmarks/ledger_micro.py: the quick run works and its report is complete.

No assertion here is about speed: the machine running the tests is shared and noisy. The test
checks only that every operation was measured and reported with consistent, positive figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "ledger_micro.py"
RUN_TIMEOUT_S = 120

OPERATIONS = (
    "transaction_pack",
    "encoding_pack",
    "encoding_unpack",
    "transaction_unpack",
    "transaction_tx_id",
    "ed25519_sign",
    "ed25519_verify",
    "ed25519_verify_repeated",
    "transaction_signature_verify",
    "merkle_root_1000",
    "state_build_100k_memory",
    "state_build_100k_leveldb",
    "state_update_at_100k",
    "state_update_at_100k_memory",
    "append_block_1000",
)
FIGURES = ("median_us", "p10_us", "p90_us", "min_us", "ops_per_s", "cpu_median_us")


@pytest.fixture(scope="module")
def report() -> dict:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_quick_run_says_it_is_quick(report: dict) -> None:
    assert report["benchmark"] == "ledger_micro"
    assert report["quick"] is True
    assert report["method"]["samples"] >= 1


def test_every_operation_reports_positive_consistent_figures(report: dict) -> None:
    assert set(OPERATIONS) <= report["operations"].keys()
    for name in OPERATIONS:
        entry = report["operations"][name]
        for figure in FIGURES:
            assert isinstance(entry[figure], int | float), (name, figure)
            assert entry[figure] > 0, (name, figure)
        assert entry["min_us"] <= entry["p10_us"] <= entry["median_us"] <= entry["p90_us"], name
        assert entry["samples"] >= 1 and entry["calls_per_sample"] >= 1, name
        assert entry["what"], name


def test_sizes_used_are_stated(report: dict) -> None:
    operations = report["operations"]
    assert operations["state_update_at_100k"]["state_keys"] == 1_000
    assert operations["merkle_root_1000"]["leaves"] == 1_000
    append = operations["append_block_1000"]
    assert append["transactions_per_block"] == 100
    assert append["per_transaction_median_us"] > 0
    assert append["transactions_per_s"] > 0
    assert operations["transaction_pack"]["transaction_bytes"] > 0


def test_derived_verify_rate_and_environment_are_recorded(report: dict) -> None:
    assert report["single_core_ed25519_verify_per_s"] > 0
    assert report["single_core_ed25519_verify_per_s_cpu"] > 0
    machine = report["machine"]
    for key in ("python", "platform", "cpu_count", "cpu_model"):
        assert key in machine, key
    assert machine["cpu_count"] >= 1
    for library in ("cryptography", "msgpack", "pydantic", "plyvel"):
        assert report["libraries"][library], library
    assert report["timestamp"]


THROUGHPUT_SCRIPT = SCRIPT.parent / "throughput.py"
THROUGHPUT_TIMEOUT_S = 90
THROUGHPUT_KEYS = (
    "nodes",
    "seconds",
    "offered_rate",
    "committed_tx_per_s",
    "latency_ms_p50",
    "latency_ms_p95",
    "latency_ms_p99",
    "blocks_per_s",
    "transactions_per_block",
    "node_cpu",
    "verify_per_s_per_core",
    "cores",
    "bound_tx_per_s",
    "ratio",
    "machine",
)


def test_throughput_quick_run_commits_and_reports() -> None:
    """A real 4-node devnet under a few seconds of load: the report is complete, txs commit."""
    completed = subprocess.run(
        [sys.executable, str(THROUGHPUT_SCRIPT), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=THROUGHPUT_TIMEOUT_S,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert set(THROUGHPUT_KEYS) <= report.keys()
    assert report["benchmark"] == "throughput" and report["quick"] is True
    assert report["nodes"] == 4 and len(report["node_cpu"]) == 4
    assert report["details"]["committed_total"] > 0
    # No figure is asserted beyond "some": the machine running the tests is shared and noisy.
    assert report["committed_tx_per_s"] >= 0 and report["ratio"] >= 0
    assert report["latency_ms_p50"] is None or report["latency_ms_p50"] > 0
    assert report["verify_per_s_per_core"] > 0 and report["bound_tx_per_s"] > 0
    assert report["cores"] >= 1


ISSUERS_SCRIPT = SCRIPT.parent / "issuers.py"


def test_issuers_quick_run_measures_receipts_with_issuers_in_the_state() -> None:
    """benchmarks/issuers.py at tiny sizes: every N has its receipts measured, the issuers
    are in the state (more entries, a longer state proof), and the acts verified."""
    completed = subprocess.run(
        [sys.executable, str(ISSUERS_SCRIPT), "--quick", "--samples", "3"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["benchmark"] == "issuers" and report["quick"] is True
    results = report["results"]
    assert [entry["issuers"] for entry in results] == [0, 50, 200]
    assert [entry["governance_transactions"] for entry in results] == [0, 3, 12]
    entries = [entry["state_entries"] for entry in results]
    assert entries[0] < entries[1] < entries[2]
    for entry in results:
        for act in ("member_act", "issuer_act"):
            if act == "issuer_act" and not entry["issuers"]:
                continue
            figures = entry[act]
            assert figures["receipt_json_bytes"] > figures["receipt_without_status_json_bytes"] > 0
            assert figures["state_proof_siblings"] >= 1
            assert 0 < figures["verify_p10_us"] <= figures["verify_median_us"]
            assert figures["verify_median_us"] <= figures["verify_p90_us"]
    assert set(report["comparison"]) == {"0", "50", "200"}
    for entry in results:  # executing a block of anchors, signed by members (and issuers)
        execution = entry["execution"]
        timed = [name for name in execution if name.endswith("_us_per_tx")]
        assert len(timed) == (4 if entry["issuers"] else 2), execution
        assert all(execution[name] > 0 for name in timed)


WITNESSING_SCRIPT = SCRIPT.parent / "witnessing.py"


def test_witnessing_quick_run_measures_the_log_checkpoints_bytes_and_a_witness() -> None:
    """benchmarks/witnessing.py at a small log: every CPU figure beside its bound, the bytes a
    format 2 header, a signature frame, a note and an add-checkpoint request take, and round
    trips to a real witness process."""
    completed = subprocess.run(
        [sys.executable, str(WITNESSING_SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["benchmark"] == "witnessing" and report["quick"] is True
    for name, figures in report["cpu"].items():
        assert 0 < figures["median_us"] <= figures["p90_us"], name
    assert report["ratio_log_and_checkpoints_to_verifying_the_block"] > 0
    sizes = report["bytes"]
    assert 40 < sizes["header_format_2_minus_format_1"] < 80  # two fields: a count, a hash
    assert sizes["checkpoint_signature_frame"] < 256
    assert sizes["consistency_proof_hashes"] >= 1
    witness = report["witness"]
    assert witness["rounds"] == 20 and witness["add_checkpoint_ms_median"] > 0
    assert witness["bound_get_status_ms_median"] > 0


EXECUTION_SCRIPT = SCRIPT.parent / "execution.py"


def test_execution_quick_run_times_each_phase_of_a_block_beside_its_bound() -> None:
    """benchmarks/execution.py at a small chain: a block of anchors admitted, built, validated
    by a replica and appended, each phase's CPU per transaction beside the signature's."""
    completed = subprocess.run(
        [sys.executable, str(EXECUTION_SCRIPT), "--quick", "--rounds", "2", "--block", "20"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["benchmark"] == "execution" and report["quick"] is True
    assert report["chain"]["transactions_per_block"] == 20 and report["chain"]["rounds"] == 2
    phases = {"admit", "build", "validate", "append", "bound_verify"}
    assert report["cpu_us_per_tx"].keys() == report["cpu_us_per_tx_min"].keys() == phases
    for name in phases:
        assert 0 < report["cpu_us_per_tx_min"][name] <= report["cpu_us_per_tx"][name], name
    assert all(ratio > 0 for ratio in report["ratio_bound_to_node"].values())
