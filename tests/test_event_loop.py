"""The node's event loop (node.tools.launch): asyncio's own unless ``SCEAU_EVENT_LOOP=uvloop``
and uvloop is installed; a node runs and answers on either."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest
from support import write_node_files

from ledger.devchain import LocalConsortium
from ledger.model import ContractRef
from node.tools.launch import (
    EVENT_LOOP_VARIABLE,
    StartupError,
    event_loop_factory,
    run_node,
    running_event_loop_name,
)


def test_the_standard_loop_is_the_default() -> None:
    name, factory = event_loop_factory({})
    assert name == "asyncio" and factory is asyncio.new_event_loop
    assert event_loop_factory({EVENT_LOOP_VARIABLE: "asyncio"})[0] == "asyncio"


def test_an_unknown_loop_is_a_startup_error() -> None:
    with pytest.raises(StartupError, match="one of asyncio, uvloop"):
        event_loop_factory({EVENT_LOOP_VARIABLE: "trio"})


def test_uvloop_chosen_but_missing_falls_back_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    caplog.set_level(logging.WARNING)
    assert event_loop_factory({EVENT_LOOP_VARIABLE: "uvloop"})[0] == "asyncio"
    assert "uvloop is not installed" in caplog.text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("choice", ["asyncio", "uvloop"])
def test_a_node_runs_on_the_chosen_loop_and_says_which(
    choice: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if choice == "uvloop":
        pytest.importorskip("uvloop")
    consortium = LocalConsortium.create(
        [("solo", "Seule")],
        seed=b"event loop",
        contracts=[ContractRef(name="membership", version="1.0")],
    )
    api = f"127.0.0.1:{free_port()}"
    config = write_node_files(tmp_path / "solo", consortium, "solo", api_listen=api)
    name, factory = event_loop_factory({EVENT_LOOP_VARIABLE: choice})
    assert name == choice
    caplog.set_level(logging.INFO, logger="sceau.node")

    async def scenario() -> tuple[str, int]:
        ready = asyncio.Event()
        running = asyncio.create_task(run_node(config, ready=ready))
        await asyncio.wait_for(ready.wait(), 30)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://{api}/v1/status") as reply,
        ):
            status = reply.status
        os.kill(os.getpid(), signal.SIGTERM)  # the node's own handler stops it
        await asyncio.wait_for(running, 30)
        return running_event_loop_name(), status

    with asyncio.Runner(loop_factory=factory) as runner:
        assert runner.run(scenario()) == (choice, 200)
    assert f"event loop {choice}" in caplog.text
