"""The simulator campaign that CI runs, and the simulator's own promises.

CI runs 300 seeds (set SCEAU_SIMULATOR_SEEDS for more, e.g. 500 as before the suite grew;
docs/consensus.md explains long campaigns). A failing seed is reported with the command that
replays it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from consensus.simulator import Simulation, random_config, run_campaign

CI_SEEDS = int(os.environ.get("SCEAU_SIMULATOR_SEEDS", "300"))


@pytest.mark.timeout(1_800)
def test_the_ci_campaign_keeps_safety_and_liveness_on_every_seed() -> None:
    summary = run_campaign(range(CI_SEEDS), workers=os.cpu_count() or 1)

    assert summary["failing_seed"] is None, f"{summary['failure']}; replay: {summary['replay']}"
    assert summary["seeds_run"] == CI_SEEDS
    assert summary["heights_committed"] >= 5 * CI_SEEDS
    print(
        f"simulator: {CI_SEEDS} seeds, {summary['heights_committed']} heights, "
        f"{summary['transactions_committed']} transactions in {summary['seconds']} s"
    )


def test_a_seed_replays_the_exact_same_trace() -> None:
    def trace(seed: int) -> list[str]:
        lines: list[str] = []
        Simulation(random_config(seed), trace=lines.append).run()
        return lines

    first = trace(7)
    assert first == trace(7)
    assert first != trace(8)
    assert any("COMMIT" in line for line in first)


def test_every_seed_picks_a_configuration_within_the_fault_bound() -> None:
    for seed in range(200):
        config = random_config(seed)
        assert 4 <= config.nodes <= 7
        assert len(config.byzantine) <= (config.nodes - 1) // 3


def test_the_command_line_prints_a_summary_and_exits_zero_when_all_seeds_pass() -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "consensus.simulator",
            "--seeds",
            "3",
            "--start",
            "100",
            "--json",
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    summary = json.loads(completed.stdout)
    assert summary["seeds_run"] == 3
    assert summary["safety_violations"] == 0 and summary["liveness_failures"] == 0
    assert summary["failing_seed"] is None
