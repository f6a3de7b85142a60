"""Coverage-guided fuzzing (atheris) of peer frames, in a short, deterministic CI run.

Each target of ``tests/fuzz/fuzz_frames.py`` runs in its own process (libFuzzer owns the
process: it installs signal handlers, forks nothing, and exits on the first failure) from the
committed seed corpus, for a fixed number of inputs with a fixed seed, so a run is the same
every time: a new failure here is a change in the code, not bad luck. ``-rss_limit_mb`` turns
memory that grows without bound into a failure. Longer campaigns: ``make fuzz`` and
docs/fuzzing.md. Hypothesis covers the same ground without atheris in test_wire.py and
test_replica_hostile.py.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parent / "fuzz"
HARNESS = FUZZ / "fuzz_frames.py"
SEED_CORPUS = FUZZ / "corpus"
RSS_LIMIT_MB = 1024
PROCESS_TIMEOUT_S = 90
"""Far above the ~10 s a target takes: only a hung harness gets near it."""

requires_atheris = pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None,
    reason="atheris is not installed (it comes with the dev extra on x86_64, Python < 3.13)",
)

# (target, seed corpus, inputs, largest input in bytes): the counts keep the three runs to
# about 15 s of CPU on two cores; the replica is the slowest (a fresh replica and signatures
# for each input).
TARGETS = [
    ("decode", "frames", 5_000, 4096),
    ("unpack", "frames", 10_000, 4096),
    ("replica", "replica", 1_500, 8192),
]


def run_target(
    target: str, seeds: str, runs: int, max_len: int, work: Path
) -> subprocess.CompletedProcess[str]:
    """Run one target from the seed corpus; new inputs and artifacts go to ``work`` only."""
    corpus = work / "corpus"
    corpus.mkdir()
    command = [
        sys.executable,
        str(HARNESS),
        target,
        str(corpus),  # libFuzzer writes new inputs to the first directory: not the seeds
        str(SEED_CORPUS / seeds),
        f"-runs={runs}",
        f"-max_len={max_len}",
        f"-rss_limit_mb={RSS_LIMIT_MB}",
        "-seed=1",
        "-timeout=30",
        f"-artifact_prefix={work}/",
        "-print_final_stats=1",
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S, cwd=work, check=False
    )


def failure_report(result: subprocess.CompletedProcess[str], work: Path) -> str:
    """libFuzzer's last words and every reproducer it wrote, in hex, for the test report."""
    lines = [line for line in result.stderr.splitlines() if not line.startswith('"')]
    reproducers = [
        f"{path.name}: {path.read_bytes().hex()}"
        for path in sorted(work.iterdir())
        if path.is_file() and path.name.split("-")[0] in ("crash", "oom", "timeout", "leak")
    ]
    return "\n".join(
        [f"exit status {result.returncode}", *lines[-60:], "reproducers:", *reproducers]
    )


@requires_atheris
@pytest.mark.timeout(2 * PROCESS_TIMEOUT_S)
@pytest.mark.parametrize(
    ("target", "seeds", "runs", "max_len"), TARGETS, ids=[t[0] for t in TARGETS]
)
def test_fuzz_target_neither_crashes_nor_grows_memory(
    target: str, seeds: str, runs: int, max_len: int, tmp_path: Path
) -> None:
    result = run_target(target, seeds, runs, max_len, tmp_path)
    assert result.returncode == 0, failure_report(result, tmp_path)
    assert f"Done {runs} runs" in result.stderr, failure_report(result, tmp_path)


@pytest.mark.timeout(60)
def test_seed_corpus_is_up_to_date_and_its_scripts_do_what_they_say() -> None:
    # make_corpus replays every seed script on a replica and checks its outcome (a commit, a
    # view change…) before comparing the files: a protocol change that makes a seed useless
    # fails here, not silently as lost coverage.
    result = subprocess.run(
        [sys.executable, str(FUZZ / "make_corpus.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    total_bytes = sum(path.stat().st_size for path in SEED_CORPUS.rglob("*") if path.is_file())
    assert total_bytes < 200 * 1024, "the committed seed corpus should stay small"
