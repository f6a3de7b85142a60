"""Upgrading a running consortium to header format 2, as operators do it.

A real four-member devnet (processes, sockets, LevelDB, Ed25519) begins in header format 1 and
anchors acts. Its members schedule format 2 at a height ahead by governance — ``sceau
governance schedule-format``, then two votes — while acts keep coming; no node is ever stopped.
Blocks below that height have format 1 headers, blocks from it format 2, whose log covers the
whole history; ``sceau export`` and ``sceau audit`` of the whole chain pass, and the receipts of
an act before and one after the change verify with ``sceau verify``.

And a node whose software does not know a scheduled format (one member's node, in process):
it warns once, then stops at the block before the new format — once, clearly, without spinning
— and refuses submissions with ``upgrade_required``.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support import start_node
from test_cli import assert_ok, sceau, sceau_all

from contracts.base import Rejection
from ledger import crypto, encoding
from ledger.bundle import read_frame_bodies
from ledger.client import Client, InvalidArgument
from ledger.devchain import LocalConsortium
from ledger.model import Block, ContractRef, Transaction
from node.tools.devnet import MemberProcess, devnet_down, devnet_up

MARGIN_BLOCKS = 60
"""How far ahead of the tip the members schedule the new format: room for the proposal and
the two votes to commit while acts keep coming (one every :attr:`Devnet.pace_s` meanwhile)."""
DEADLINE_S = 30.0


@dataclass
class Devnet:
    directory: Path
    members: list[MemberProcess]
    work: Path
    stop_acts: threading.Event = field(default_factory=threading.Event)
    act_errors: list[BaseException] = field(default_factory=list)
    pace_s: float = 0.3
    """The pause between two acts of :meth:`keep_anchoring` (0 once the vote passed)."""

    @property
    def genesis_file(self) -> Path:
        return self.directory / "genesis.json"

    def status(self, index: int) -> dict[str, Any]:
        with Client(self.members[index].api_url) as client:
            return client.status()

    def heights(self) -> list[int]:
        return [self.status(index)["height"] for index in range(len(self.members))]

    def as_member(self, index: int) -> list[str]:
        member = self.members[index]
        return ["--member", member.member_id, "--key", member.key_file, "--api", member.api_url]

    def anchor(self, index: int, reference: str) -> Path:
        """Anchor an act as member ``index`` and save its receipt as ``sceau anchor
        --receipt`` does (JSON); the receipt's path."""
        member = self.members[index]
        key = crypto.load_private_key(Path(member.key_file))
        with Client(member.api_url, signer=key) as client:
            outcome = client.anchor(
                issuer=member.member_id,
                reference=reference,
                kind="deliberation",
                digest=hashlib.sha256(reference.encode()).digest(),
                act_date="2026-12-05",
                title="Délibération",
            )
        receipt = self.work / f"{reference}.receipt.json"
        receipt.write_text(json.dumps(outcome["receipt"], indent=2) + "\n")
        return receipt

    def keep_anchoring(self, index: int) -> threading.Thread:
        """Anchor acts as member ``index``, one after the other, until :attr:`stop_acts`."""
        member = self.members[index]
        key = crypto.load_private_key(Path(member.key_file))

        def run() -> None:
            with Client([m.api_url for m in self.members], signer=key) as client:
                for number in itertools.count():
                    if self.stop_acts.is_set():
                        return
                    try:
                        client.anchor(
                            issuer=member.member_id,
                            reference=f"FLUX-{number:04d}",
                            kind="decision",
                            digest=bytes(31) + bytes([number % 256]),
                            act_date="2026-12-05",
                            title="Décision courante",
                            wait_s=10,
                        )
                    except Exception as error:  # reported by the test, not lost in the thread
                        self.act_errors.append(error)
                        return
                    time.sleep(self.pace_s)

        thread = threading.Thread(target=run, name="acts", daemon=True)
        thread.start()
        return thread


def wait_for(condition: Any, what: str, deadline_s: float = DEADLINE_S) -> Any:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {deadline_s:.0f} s: {what}")


@pytest.fixture
def devnet(tmp_path: Path) -> Iterator[Devnet]:
    directory = tmp_path / "devnet"
    try:
        members = devnet_up(directory, 4, format_version=1)
        yield Devnet(directory=directory, members=members, work=tmp_path)
    finally:
        devnet_down(directory)


def test_a_live_devnet_moves_to_format_2_by_governance_without_stopping(devnet: Devnet) -> None:
    before = devnet.anchor(0, "2026-DEL-AVANT")
    acts = devnet.keep_anchoring(3)
    try:
        target = devnet.status(0)["height"] + MARGIN_BLOCKS
        proposed = assert_ok(sceau(
            "governance", "schedule-format", "--version", "2", "--height", str(target),
            *devnet.as_member(0),
        ))  # fmt: skip
        assert f"schedule header format 2 from height {target}: proposal" in proposed, proposed
        proposal_id = re.search(r"proposal ([0-9a-f]{64})", proposed)[1]  # type: ignore[index]
        listed = assert_ok(sceau("governance", "proposals", "--api", devnet.members[1].api_url))
        assert f"schedule_format: header format 2 from height {target}" in listed, listed
        assert_ok(sceau("governance", "vote", proposal_id, "--yes", *devnet.as_member(1)))
        decided = assert_ok(sceau("governance", "vote", proposal_id, "--yes", *devnet.as_member(2)))
        passed = re.search(r"passed at height (\d+)", decided)
        assert passed and int(passed[1]) < target, decided

        status = wait_for(
            lambda: (s := devnet.status(3))["format"]["scheduled"] and s, "the schedule"
        )
        assert status["format"] == {
            "in_force": 1,
            "scheduled": [{"version": 2, "height": target}],
            "supported": [1, 2],
        }
        with Client(devnet.members[0].api_url) as client:
            answer = client.query("membership", "formats")["answer"]
        assert answer == {"scheduled": [{"version": 2, "height": target}]}
        devnet.pace_s = 0.0  # now on to the height
        wait_for(lambda: min(devnet.heights()) > target, f"every node past height {target}")
    finally:
        devnet.stop_acts.set()
        acts.join(15)
    assert not devnet.act_errors, devnet.act_errors
    after = devnet.anchor(1, "2026-DEL-APRES")
    assert all(devnet.status(i)["format"]["in_force"] == 2 for i in range(4))

    bundle = devnet.work / "chain.bundle"
    assert_ok(sceau("export", bundle, "--api", devnet.members[2].api_url))
    # Frame 0 is the genesis; the last frame may be the consortium checkpoint (bundle v2).
    frames = [encoding.unpack(body) for body in list(read_frame_bodies(bundle))[1:]]
    blocks = [Block.from_canonical(frame["block"]) for frame in frames if "block" in frame]
    assert len(blocks) >= len(frames) - 1 and all("checkpoint" in f for f in frames[len(blocks) :])
    formats = [block.header.format_version for block in blocks]
    assert formats == [1] * (target - 1) + [2] * (len(blocks) - target + 1), formats
    first = blocks[target - 1].header
    assert first.log_size == sum(len(block.transactions) for block in blocks[:target])
    audit, *verifications = sceau_all(
        ["audit", bundle, "--genesis", devnet.genesis_file],
        *(["verify", receipt, "--genesis", devnet.genesis_file] for receipt in (before, after)),
    )
    audited = assert_ok(audit)
    assert f"OK: {len(blocks)} blocks" in audited, audited
    assert f"header format: 1 from 1, 2 from {target}" in audited, audited
    for receipt, version, verification in zip((before, after), (1, 2), verifications, strict=True):
        height = json.loads(receipt.read_text())["height"]
        assert blocks[height - 1].header.format_version == version
        verified = assert_ok(verification)
        assert verified.startswith("VERIFIED against the genesis"), verified
        assert f"committed: height {height}," in verified, verified


# --- a node of older software -----------------------------------------------------------------


def test_a_node_that_does_not_know_a_scheduled_format_warns_then_stops_once_before_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    consortium = LocalConsortium.create(
        [("metropole", "Métropole")],
        seed=b"upgrade tests",
        contracts=[ContractRef(name="membership", version="1.2")],
    )
    key = consortium.keys["metropole"]
    nonces = itertools.count()

    def membership(action: str, **args: Any) -> Transaction:
        return Transaction.create(
            key,
            chain_id=consortium.chain_id,
            contract="membership",
            action=action,
            args=args,
            nonce=next(nonces),
            expiry_height=1000,
        )

    def commit(transaction: Transaction) -> None:
        assert node.submit(transaction)
        assert loop.run_until_complete(node.wait_for_commit(transaction.tx_id, 10))

    def endpoint(port: int) -> Transaction:
        return membership("set_endpoint", member_id="metropole", endpoint=f"10.0.0.1:{port}")

    caplog.set_level(logging.WARNING, logger="sceau.node")
    loop, node, _ = start_node(tmp_path / "node", consortium, "metropole")
    try:
        target = 5  # format 3: no sceau knows it yet
        change = {"kind": "schedule_format", "format_version": 3, "height": target}
        commit(membership("propose", proposer="metropole", change=change))  # one vote passes
        format_status = node.status()["format"]
        assert format_status["scheduled"] == [{"version": 3, "height": target}]
        assert format_status["upgrade_required"] == (
            f"the consortium moves to header format 3 at height {target}; this software "
            f"knows 1, 2: upgrade before {target}"
        )
        for port in range(node.store.tip.height + 1, target):
            commit(endpoint(7000 + port))
        assert node.store.tip.height == target - 1 and node.halted_for_upgrade

        ticks = node.replica.ticks
        loop.run_until_complete(asyncio.sleep(1.0))  # 50 ticks: nothing moves, nothing repeats
        assert node.store.tip.height == target - 1
        assert node.replica.ticks == ticks, "the replica is not stepped while it waits"
        with pytest.raises(Rejection) as refused:
            node.submit(endpoint(9999))
        assert refused.value.code == "upgrade_required"
        assert node.status()["format"]["halted_at"] == target - 1
    finally:
        loop.run_until_complete(node.stop())
        node.store.close()
        loop.close()
    lines = [(record.levelname, record.getMessage()) for record in caplog.records]
    warnings = [line for line in lines if "format 3" in line[1]]
    assert warnings == [
        ("WARNING", f"the consortium moves to header format 3 at height {target}; this software "
         f"knows 1, 2: upgrade before {target}"),
        ("ERROR", f"the consortium moved to header format 3 at height {target}; this software "
         f"knows 1, 2: this node stopped at height {target - 1}. Upgrade sceau and restart the "
         "node: it then follows the chain again"),
    ], lines  # fmt: skip


# --- what the command and the client refuse before sending anything ------------------------


@pytest.mark.parametrize(
    ("option", "value", "fragment"),
    [
        ("--version", "1", "a header format is 2 to 65535, not '1'"),
        ("--version", "65536", "a header format is 2 to 65535"),
        ("--height", "0", "expected a positive integer, not '0'"),
        ("--height", "soon", "expected a positive integer, not 'soon'"),
    ],
)
def test_schedule_format_refuses_a_bad_version_or_height_before_sending(
    tmp_path: Path, option: str, value: str, fragment: str
) -> None:
    key = tmp_path / "node.pem"
    crypto.save_private_key(crypto.generate_key(), key)
    given = {"--version": "2", "--height": "100", option: value}
    result = sceau(
        "governance", "schedule-format", *itertools.chain(*given.items()),
        "--member", "metropole", "--key", key, "--api", "http://127.0.0.1:9",
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert fragment in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("version", "height", "field"),
    [(1, 100, "format_version"), (True, 100, "format_version"), (2, 1, "height")],
)
def test_the_client_checks_a_schedule_before_signing(
    version: object, height: object, field: str
) -> None:
    client = Client("http://127.0.0.1:9", signer=crypto.generate_key())
    with client, pytest.raises(InvalidArgument) as refused:
        client.schedule_format("metropole", version, height)  # type: ignore[arg-type]
    assert refused.value.field == field
