"""Specification: the README's commands work as written, so that it cannot drift.

A newcomer copies the README's "By hand" block, in order, on a fresh clone after ``make
demo``. This test runs that very block with bash, in a temporary folder laid out like the
repository's (``.venv/bin/sceau`` and ``.venv/bin/python`` of the interpreter that runs the
tests, ``examples/`` copied), and checks what a newcomer would see: the act committed, the
receipt verified from the genesis, the nodes stopped, nothing written beside the sample.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from node.tools.devnet import devnet_down

REPOSITORY = Path(__file__).resolve().parents[1]
README = REPOSITORY / "README.md"
BY_HAND_MARKER = "<!-- by-hand: tests/test_readme.py runs this block in order -->"
BLOCK_TIMEOUT_S = 180.0


def by_hand_block() -> str:
    """The shell block that follows the marker in README.md."""
    after = README.read_text().split(BY_HAND_MARKER, 1)
    assert len(after) == 2, "README.md lost its by-hand marker"
    fence, rest = after[1].lstrip("\n").split("\n", 1)
    assert fence == "```sh", f"the marker is not followed by a sh block: {fence!r}"
    return rest.split("\n```", 1)[0]


def test_readme_opens_with_make_demo_and_make_test() -> None:
    first_block = README.read_text().split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()]
    assert commands[:2] == ["make demo", "make test"]


def test_the_by_hand_block_uses_only_the_repositorys_paths() -> None:
    block = by_hand_block()
    lines = [line.strip() for line in block.splitlines() if line.strip()]
    commands = [line for line in lines if not line.startswith(("-", "#"))]
    # Every command is one a fresh clone has after `make demo`: no bare `sceau` off PATH.
    for line in commands:
        first = line.split("=", 1)[1] if line.startswith(("DIR=", "API=")) else line
        assert first.startswith(("$(mktemp", "$(.venv/bin/python", ".venv/bin/sceau")), line
    assert '--receipt "$DIR/' in block, "the receipt must go to the temporary folder"
    assert 'verify "$DIR/receipt.json" --genesis "$DIR/valbrune/genesis.json"' in block
    assert "devnet down" in commands[-1]
    for path in ("examples/sample-deliberation.txt",):
        assert path in block and (REPOSITORY / path).is_file()


def fake_checkout(folder: Path) -> None:
    """``folder`` laid out like a clone after ``make demo``: .venv/bin/{sceau,python} run
    this interpreter (the project is installed in it), and the examples are copied."""
    bin_folder = folder / ".venv" / "bin"
    bin_folder.mkdir(parents=True)
    (bin_folder / "sceau").write_text(
        f'#!/bin/sh\nexec "{sys.executable}" -m node.tools.cli "$@"\n'
    )
    (bin_folder / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    for script in bin_folder.iterdir():
        script.chmod(0o755)
    shutil.copytree(REPOSITORY / "examples", folder / "examples")


def test_the_by_hand_block_runs_in_order_as_written(tmp_path: Path) -> None:
    checkout, temporary = tmp_path / "clone", tmp_path / "tmp"
    fake_checkout(checkout)
    temporary.mkdir()
    samples_before = sorted(path.name for path in (checkout / "examples").iterdir())
    script = "set -euo pipefail\n" + by_hand_block()
    try:
        result = subprocess.run(
            ["bash", "-c", script],
            cwd=checkout,
            env={**os.environ, "TMPDIR": str(temporary)},  # where `mktemp -d` makes DIR
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    finally:
        for record in temporary.glob("*/valbrune/devnet.json"):
            devnet_down(record.parent)  # a failed step must not leave four nodes running
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr
    out = result.stdout
    assert "devnet of 4 members running" in out
    assert "committed at height" in out
    assert "metropole-valbrune/2026-DEL-042: deliberation of 2026-11-28, status in_force" in out
    assert "VERIFIED against the genesis" in out
    assert "examples/sample-deliberation.txt matches the anchored digest" in out
    assert "stopped 4 members" in out
    (folder,) = temporary.iterdir()
    assert (folder / "receipt.json").is_file()
    assert sorted(path.name for path in (checkout / "examples").iterdir()) == samples_before
    assert not list(checkout.glob("*.receipt.json"))
