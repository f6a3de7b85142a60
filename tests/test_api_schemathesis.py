"""Property-based fuzzing of a real node's API from its own OpenAPI document (schemathesis).

A one-member consortium runs as a separate `sceau node run` process; schemathesis generates
requests from /openapi.json for a short time budget and checks that the node never answers
with a 5xx and that every answer has the content type the document promises. CI runs a short
budget (SCEAU_SCHEMATHESIS_SECONDS, default 20); a longer run is the same command with more.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ledger import crypto
from ledger.devchain import LocalConsortium
from ledger.model import ContractRef
from node.tools.devnet import _free_ports
from node.tools.launch import initialise_data_dir

MEMBER = "ville-valbrune"
SECONDS = int(os.environ.get("SCEAU_SCHEMATHESIS_SECONDS", "20"))


def _start_node(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    peer_port, api_port = _free_ports(2)
    consortium = LocalConsortium.create(
        [(MEMBER, "Ville de Valbrune")],
        seed=b"schemathesis",
        contracts=[
            ContractRef(name="membership", version="1.0"),
            ContractRef(name="deeds", version="1.0"),
        ],
        base_port=peer_port,
    )
    (folder / "genesis.json").write_text(consortium.genesis.model_dump_json(indent=2))
    crypto.save_private_key(consortium.keys[MEMBER], folder / "node.pem")
    (folder / "node.toml").write_text(
        f'member_id = "{MEMBER}"\ndata_dir = "data"\ngenesis_file = "genesis.json"\n'
        f'key_file = "node.pem"\npeer_listen = "127.0.0.1:{peer_port}"\n'
        f'api_listen = "127.0.0.1:{api_port}"\n'
        "api_submissions_per_s = 100000\napi_submission_burst = 100000\n"
    )
    initialise_data_dir(folder / "data", consortium.genesis).close()
    process = subprocess.Popen(
        [sys.executable, "-m", "node.tools.cli", "node", "run", "--config", "node.toml"],
        cwd=folder,
        stdout=open(folder / "node.log", "wb"),  # noqa: SIM115 — the child keeps it
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{api_port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError((folder / "node.log").read_text()[-2000:])
        time.sleep(0.2)


@pytest.mark.timeout(300)
def test_schemathesis_finds_no_server_error_and_no_wrong_content_type(tmp_path: Path) -> None:
    schemathesis = Path(sys.executable).parent / "st"
    assert schemathesis.exists(), "schemathesis is a dev dependency (pyproject.toml)"
    process, url = _start_node(tmp_path)
    try:
        completed = subprocess.run(
            [
                str(schemathesis),
                "run",
                f"{url}/openapi.json",
                "--checks",
                "not_a_server_error,content_type_conformance",
                "--max-time",
                str(SECONDS),
                # One worker: with two, hypothesis (inside schemathesis) sometimes describes
                # a lambda in two threads at once, and CPython 3.11's ast raises
                # "SystemError: AST constructor recursion depth mismatch".
                "--workers",
                "1",
                "--seed",
                "1",
            ],
            capture_output=True,
            text=True,
            timeout=SECONDS + 240,
            check=False,
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
    report = completed.stdout[-3000:] + completed.stderr[-2000:]
    assert completed.returncode == 0, report
    assert "generated" in completed.stdout, report
    log = (tmp_path / "node.log").read_text()
    assert "Traceback" not in log, log[-3000:]
