"""Integration: a consortium of real node processes on loopback.

Every test here runs real ``sceau node`` processes (``node.tools.devnet``): real sockets, real
LevelDB stores with fsync, real signals. Nothing is mocked. Most scenarios share one
module-scoped devnet of four members (n = 4 tolerates f = 1); a scenario that kills a node
restarts it before it ends, so the next one finds four nodes again. A scenario that destroys
the devnet's state (stopping every node) gets a devnet of its own.

Conditions are polled against a deadline, never slept for; every process is stopped in a
``finally`` (``devnet_down``), whatever the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import secrets
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ledger import crypto
from ledger.client import Client
from ledger.model import Genesis, Member, Transaction
from node.runtime.transport import PeerTransport, TransportConfig
from node.tools.devnet import (
    MemberProcess,
    devnet_down,
    devnet_up,
    start_member,
    wait_ready,
    write_devnet,
)

DEADLINE_S = 30.0
"""The longest any condition is waited for (commit, catch-up, view change)."""
POLL_S = 0.1
ACT_DATE = "2026-11-28"
T = TypeVar("T")


# --- HTTP and polling helpers ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    *,
    content_type: str = "application/json",
    timeout_s: float = 15.0,
) -> Answer:
    """One HTTP request; an error status is an answer too, not an exception."""
    headers = {"Content-Type": content_type} if body is not None else {}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return Answer(
                response.status, response.headers.get("Content-Type", ""), response.read()
            )
    except urllib.error.HTTPError as error:
        with error:
            return Answer(error.code, error.headers.get("Content-Type", ""), error.read())


def get_json(url: str) -> Any:
    answer = http("GET", url)
    assert answer.status == 200, f"GET {url}: {answer.status} {answer.body[:300]!r}"
    return answer.json()


def status_of(member: MemberProcess) -> dict[str, Any]:
    return get_json(f"{member.api_url}/v1/status")


def try_status(member: MemberProcess) -> dict[str, Any] | None:
    """The node's status, or None while it does not answer (down, starting)."""
    try:
        return status_of(member)
    except (OSError, AssertionError, ValueError):
        return None


def wait_for(condition: Callable[[], T], what: str, deadline_s: float = DEADLINE_S) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``deadline_s``."""
    end = time.monotonic() + deadline_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline_s:.0f} s waiting for: {what}")
        time.sleep(POLL_S)


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metric(member: MemberProcess, name: str, **labels: str) -> float:
    """The value of one sample of the node's /metrics (0 if the series is absent)."""
    answer = http("GET", f"{member.api_url}/metrics")
    assert answer.status == 200, answer
    for line in answer.body.decode().splitlines():
        match = _SAMPLE.match(line)
        if match is None or match.group(1) != name:
            continue
        if dict(_LABEL.findall(match.group(2) or "")) == labels:
            return float(match.group(3))
    return 0.0


def process_running(pid: int) -> bool:
    """True if ``pid`` is a live process (a zombie awaiting its parent counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


# --- the devnet under test ---------------------------------------------------------------------


class Devnet:
    """A running devnet: its member processes, in genesis order, and what tests do to them."""

    def __init__(self, directory: Path, processes: list[MemberProcess]) -> None:
        self.directory = directory
        self.members = list(processes)
        self.genesis = Genesis.model_validate_json((directory / "genesis.json").read_text())
        assert [member.id for member in self.genesis.members] == [
            process.member_id for process in processes
        ]
        self._keys: dict[str, crypto.PrivateKey] = {}

    def member(self, member_id: str) -> MemberProcess:
        return next(member for member in self.members if member.member_id == member_id)

    def key(self, member_id: str) -> crypto.PrivateKey:
        if member_id not in self._keys:
            self._keys[member_id] = crypto.load_private_key(self.member(member_id).key_file)
        return self._keys[member_id]

    def primary(self, view: int) -> MemberProcess:
        """PBFT's primary of ``view``: the members in genesis order, round robin."""
        return self.members[view % len(self.members)]

    def kill(self, member: MemberProcess) -> None:
        """SIGKILL, as a crash or a power cut would; reap it (the test process started it)."""
        os.kill(member.pid, signal.SIGKILL)
        # Another waiter (subprocess's cleanup of forgotten Popen objects) may reap it first.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(member.pid, 0)
        assert not process_running(member.pid)

    def restart(self, member: MemberProcess) -> MemberProcess:
        """Start the member's node again from its data directory; record its new pid."""
        child = start_member(Path(member.config_file).parent)
        restarted = dataclasses.replace(member, pid=child.pid)
        self.members = [restarted if m.member_id == member.member_id else m for m in self.members]
        write_devnet(self.directory, self.members)  # so that devnet_down stops the new process
        return restarted

    def anchor(
        self, issuer: str, *, via: str | None = None, reference: str | None = None
    ) -> dict[str, Any]:
        """Anchor a fresh act of ``issuer``, signed with its node key, through ``via``'s API."""
        reference = reference or f"2026-DEL-{secrets.token_hex(4)}"
        document = f"{issuer} {reference} {secrets.token_hex(8)}".encode()
        with Client(self.member(via or issuer).api_url, signer=self.key(issuer)) as client:
            outcome = client.anchor(
                issuer=issuer,
                reference=reference,
                kind="deliberation",
                digest=hashlib.sha256(document).digest(),
                act_date=ACT_DATE,
                title=f"Délibération {reference}",
                wait_s=DEADLINE_S,
            )
        assert outcome["status"] == "committed", outcome
        return {**outcome, "issuer": issuer, "reference": reference}

    def anchor_transaction(self, issuer: str, height: int) -> Transaction:
        """A signed deeds.anchor transaction of ``issuer``, valid from ``height``."""
        reference = f"2026-ARR-{secrets.token_hex(4)}"
        return Transaction.create(
            self.key(issuer),
            chain_id=self.genesis.chain_id,
            contract="deeds",
            action="anchor",
            args={
                "issuer": issuer,
                "reference": reference,
                "kind": "decree",
                "digest": secrets.token_bytes(32),
                "act_date": ACT_DATE,
                "title": f"Arrêté {reference}",
            },
            nonce=secrets.randbits(63),
            expiry_height=height + 1_000,
        )

    def wait_same_height(self, members: list[MemberProcess] | None = None) -> int:
        """Wait until ``members`` (default: all) answer and agree on the height; return it."""
        members = members or self.members

        def agreed() -> tuple[int] | None:  # a tuple: height 0 is an answer too
            statuses = [try_status(member) for member in members]
            heights = {status["height"] for status in statuses if status is not None}
            return (heights.pop(),) if None not in statuses and len(heights) == 1 else None

        (height,) = wait_for(agreed, f"{[m.member_id for m in members]} at the same height")
        return height

    def assert_same_blocks(self, members: list[MemberProcess], height: int) -> None:
        """Blocks 1..height are the same on every one of ``members`` (hash by hash)."""
        for each_height in range(1, height + 1):
            hashes = {
                member.member_id: get_json(f"{member.api_url}/v1/blocks/{each_height}")[
                    "block_hash"
                ]
                for member in members
            }
            assert len(set(hashes.values())) == 1, f"height {each_height}: {hashes}"


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    directory = tmp_path_factory.mktemp("devnet")
    try:
        yield Devnet(directory, devnet_up(directory, 4))
    finally:
        if (directory / "devnet.json").exists():
            devnet_down(directory)


def restore(devnet: Devnet, member: MemberProcess) -> None:
    """Bring a killed member back and wait until the four agree again (for the next test)."""
    if not process_running(devnet.member(member.member_id).pid):
        devnet.restart(member)
    devnet.wait_same_height()


# --- scenarios on the shared devnet ------------------------------------------------------------


def test_transactions_sent_to_any_node_commit_everywhere_in_identical_blocks(
    devnet: Devnet,
) -> None:
    outcomes = []
    for member in devnet.members:  # each member anchors through its own node's API
        outcomes.append(devnet.anchor(member.member_id))
    for index, member in enumerate(devnet.members):  # and through another member's node
        via = devnet.members[(index + 1) % len(devnet.members)]
        outcomes.append(devnet.anchor(member.member_id, via=via.member_id))

    height = devnet.wait_same_height()
    assert height >= max(outcome["height"] for outcome in outcomes)
    devnet.assert_same_blocks(devnet.members, height)
    for outcome in outcomes:
        for member in devnet.members:
            seen = get_json(f"{member.api_url}/v1/transactions/{outcome['tx_id']}")
            assert seen["status"] == "committed"
            assert (seen["height"], seen["block_hash"]) == (
                outcome["height"],
                outcome["block_hash"],
            )
            act = get_json(f"{member.api_url}/v1/acts/{outcome['issuer']}/{outcome['reference']}")
            assert act["act"]["status"] == "in_force"
    tips = {status_of(member)["block_hash"] for member in devnet.members}
    assert len(tips) == 1


@pytest.mark.parametrize(
    ("intruder_id", "reason"),
    [
        ("aaa-intruder", "not_member"),  # an id no genesis names
        ("metropole-valbrune", "bad_proof"),  # a member's id, without that member's key
    ],
)
def test_a_peer_without_a_member_key_is_refused(
    devnet: Devnet, intruder_id: str, reason: str
) -> None:
    # The intruder dials the members whose ids sort above its own (as a real member would).
    targets = [member for member in devnet.members if member.member_id > intruder_id]
    assert targets
    series = {"source": "transport", "reason": f"handshake_refused:{reason}"}
    before = {m.member_id: metric(m, "sceau_messages_rejected_total", **series) for m in targets}

    async def intrude() -> PeerTransport:
        key = crypto.generate_key()
        myself = Member(
            id=intruder_id,
            name="Intrus",
            public_key=crypto.public_key_bytes(key),
            endpoint="127.0.0.1:9",
        )
        members = [m for m in devnet.genesis.members if m.id != intruder_id] + [myself]
        transport = PeerTransport(
            member_id=intruder_id,
            key=key,
            chain_id=devnet.genesis.chain_id,
            members=lambda: members,
            on_frame=lambda sender, payload: pytest.fail(f"a frame from {sender}"),
            config=TransportConfig(
                listen_host="127.0.0.1",
                listen_port=0,
                handshake_timeout_ms=2_000,
                reconnect_delay_ms_min=50,
                reconnect_delay_ms_max=200,
            ),
        )
        await transport.start()
        try:
            loop = asyncio.get_running_loop()
            end = loop.time() + DEADLINE_S
            while True:
                assert transport.connected_peers() == []
                refused = await asyncio.to_thread(
                    lambda: all(
                        metric(m, "sceau_messages_rejected_total", **series) > before[m.member_id]
                        for m in targets
                    )
                )
                # Several attempts each, so that a late connection would have had its chance.
                if refused and transport.counters["dials"] >= 2 * len(targets):
                    break
                assert loop.time() < end, f"no {reason} refusal counted: {transport.counters}"
                await asyncio.sleep(POLL_S)
            assert transport.connected_peers() == []
            assert transport.counters["connections_established"] == 0
        finally:
            await transport.close()
        return transport

    transport = asyncio.run(intrude())
    assert transport.counters["handshake_refused:closed_by_peer"] >= len(targets)
    for member in devnet.members:  # the members' own connections were not disturbed
        assert len(status_of(member)["peers_connected"]) == len(devnet.members) - 1
    devnet.anchor(devnet.members[0].member_id)


def test_a_killed_node_rejoins_and_catches_up(devnet: Devnet) -> None:
    devnet.wait_same_height()
    view = status_of(devnet.members[0])["view"]
    victim = next(m for m in reversed(devnet.members) if m != devnet.primary(view))
    others = [member for member in devnet.members if member != victim]
    devnet.kill(victim)
    try:
        assert try_status(victim) is None
        for member in others:  # f = 1: the other three keep committing
            devnet.anchor(member.member_id)
        target = devnet.wait_same_height(others)
        assert status_of(others[0])["height"] == target

        restarted = devnet.restart(victim)
        wait_for(
            lambda: (status := try_status(restarted)) is not None and status["height"] >= target,
            f"{victim.member_id} catching up to height {target}",
        )
        height = devnet.wait_same_height()
        devnet.assert_same_blocks(devnet.members, height)
        # It is a full member again: it takes and commits new acts.
        outcome = devnet.anchor(victim.member_id)
        assert outcome["height"] > target
    finally:
        restore(devnet, victim)


def test_a_primary_killed_mid_height_leads_to_a_view_change_and_progress(
    devnet: Devnet,
) -> None:
    devnet.wait_same_height()
    views = {status_of(member)["view"] for member in devnet.members}
    assert len(views) == 1, views
    view = views.pop()
    primary = devnet.primary(view)
    others = [member for member in devnet.members if member != primary]
    via = others[0]
    height = status_of(via)["height"]
    changes_before = {m.member_id: metric(m, "sceau_view_changes_total") for m in others}

    transaction = devnet.anchor_transaction(via.member_id, height)
    body = json.dumps({"transaction": transaction.encoded.hex()}).encode()
    answer = http("POST", f"{via.api_url}/v1/transactions", body)
    devnet.kill(primary)  # right after the submission, before it can have been ordered
    try:
        assert answer.status in (200, 202), answer
        tx_id = transaction.tx_id.hex()
        for member in others:
            wait_for(
                lambda member=member: (
                    get_json(f"{member.api_url}/v1/transactions/{tx_id}")["status"] == "committed"
                ),
                f"{tx_id[:12]} committed on {member.member_id} without the primary",
            )
        # Had the primary ordered that one before dying, this one needs a new primary anyway.
        devnet.anchor(others[1].member_id, via=others[2].member_id)
        for member in others:
            wait_for(
                lambda member=member: status_of(member)["view"] > view,
                f"{member.member_id} in a view after {view}",
            )
            assert metric(member, "sceau_view_changes_total") > changes_before[member.member_id]
        devnet.assert_same_blocks(others, devnet.wait_same_height(others))
    finally:
        restore(devnet, primary)
    # The old primary rejoins as a replica of the new view, with the same chain.
    devnet.assert_same_blocks(devnet.members, devnet.wait_same_height())


def test_api_rejects_malformed_oversized_and_badly_signed_requests(devnet: Devnet) -> None:
    # The primary of the current view: it executes a submission at once, so a refusal that
    # comes from execution is reported within ?wait. (The same refusal sent to a replica is
    # the subject of the next test.)
    member = devnet.primary(max(status_of(m)["view"] for m in devnet.members))
    submit_url = f"{member.api_url}/v1/transactions"
    height = status_of(member)["height"]
    key = devnet.key(member.member_id)

    def submit(transaction: Transaction, query: str = "") -> Answer:
        body = json.dumps({"transaction": transaction.encoded.hex()}).encode()
        return http("POST", submit_url + query, body)

    def expect_problem(answer: Answer, status: int, *codes: str) -> dict[str, Any]:
        assert answer.status == status, (answer.status, answer.body[:300])
        assert answer.content_type.startswith("application/problem+json"), answer.content_type
        problem = answer.json()
        assert problem["code"] in codes, problem
        assert problem["status"] == status
        assert problem["detail"] and "Traceback" not in problem["detail"]
        return problem

    # Malformed bodies and transactions.
    expect_problem(
        http("POST", submit_url, b'{"transaction": "zz-not-hex"}'), 400, "invalid_transaction"
    )
    expect_problem(
        http("POST", submit_url, b'{"transaction": "deadbeef"}'), 400, "invalid_transaction"
    )
    expect_problem(http("POST", submit_url, b"\x00garbage"), 400, "invalid_body")
    expect_problem(
        http("POST", submit_url, b'{"transaction": "00", "more": 1}'), 400, "invalid_body"
    )
    expect_problem(
        http("POST", submit_url, b"{}", content_type="text/plain"), 415, "unsupported_media_type"
    )
    # Oversized: over api_body_bytes_max (1 MiB by default), well-formed or not.
    oversized = b'{"transaction": "' + b"00" * (600 * 1024) + b'"}'
    expect_problem(http("POST", submit_url, oversized), 413, "body_too_large")

    # Well-formed transactions that the node refuses.
    good = devnet.anchor_transaction(member.member_id, height)
    bad_signature = bytearray(good.signature)
    bad_signature[0] ^= 0x01
    forged = Transaction.from_canonical({**good.body(), "signature": bytes(bad_signature)})
    expect_problem(submit(forged), 422, "bad_signature")

    other_chain = Transaction.create(
        key,
        chain_id=hashlib.sha256(b"another consortium").digest(),
        contract="deeds",
        action="anchor",
        args=dict(good.args),
        nonce=secrets.randbits(63),
        expiry_height=height + 1_000,
    )
    expect_problem(submit(other_chain), 422, "wrong_chain")

    # Signed by a key that is neither a member's nor a delegate's: the deeds contract refuses
    # it (at admission or at execution; ?wait lets the node report either).
    stranger = crypto.generate_key()
    for issuer, code in ((member.member_id, "wrong_signer"), ("commune-inconnue", "not_a_member")):
        transaction = Transaction.create(
            stranger,
            chain_id=devnet.genesis.chain_id,
            contract="deeds",
            action="anchor",
            args={**good.args, "issuer": issuer},
            nonce=secrets.randbits(63),
            expiry_height=height + 1_000,
        )
        problem = expect_problem(submit(transaction, "?wait=10"), 422, code)
        assert problem["tx_id"] == transaction.tx_id.hex()
        seen = get_json(f"{member.api_url}/v1/transactions/{transaction.tx_id.hex()}")
        assert (seen["status"], seen["code"]) == ("rejected", code)

    # The genuine transaction (same body as the forged one) still goes through.
    answer = submit(good, "?wait=10")
    assert answer.status == 200, answer
    assert answer.json()["status"] == "committed"

    # Other refusals are problems too.
    expect_problem(http("GET", f"{member.api_url}/v1/transactions/xyz"), 400, "invalid_id")
    expect_problem(http("GET", f"{member.api_url}/v1/blocks/0"), 400, "invalid_height")
    expect_problem(http("GET", f"{member.api_url}/v1/nowhere"), 404, "not_found")
    expect_problem(http("DELETE", f"{member.api_url}/v1/status"), 405, "method_not_allowed")
    expect_problem(http("GET", f"{member.api_url}/v1/digests/{'00' * 32}"), 404, "unknown_act")
    assert http("GET", f"{member.api_url}/healthz").status == 200


def test_a_refused_transaction_leaves_no_trace_in_the_chain_or_the_views(devnet: Devnet) -> None:
    """docs/architecture.md, decision 6: blocks carry only the transactions that apply. A
    transaction that anyone can sign and send (here, with a key no member delegated) must not cost
    the consortium a block, a view change, or a mempool slot on any node once it is refused."""
    before = devnet.wait_same_height()
    views = {member.member_id: status_of(member)["view"] for member in devnet.members}
    primary = devnet.primary(max(views.values()))
    via = next(member for member in devnet.members if member != primary)
    stranger = crypto.generate_key()
    transaction = Transaction.create(
        stranger,
        chain_id=devnet.genesis.chain_id,
        contract="deeds",
        action="anchor",
        args={
            "issuer": via.member_id,
            "reference": "2026-DEL-STRANGER",
            "kind": "decree",
            "digest": secrets.token_bytes(32),
            "act_date": ACT_DATE,
            "title": "Not ours to sign",
        },
        nonce=secrets.randbits(63),
        expiry_height=before + 1_000,
    )
    body = json.dumps({"transaction": transaction.encoded.hex()}).encode()
    answer = http("POST", f"{via.api_url}/v1/transactions?wait=10", body)
    assert answer.status == 422 and answer.json()["code"] == "wrong_signer", answer
    wait_for(
        lambda: all(status_of(m)["mempool_transactions"] == 0 for m in devnet.members),
        "every node forgetting the refused transaction",
        deadline_s=10,
    )
    outcome = devnet.anchor(via.member_id)
    assert outcome["height"] == before + 1, (
        f"the refusal made {outcome['height'] - before - 1} block(s)"
    )
    assert {m.member_id: status_of(m)["view"] for m in devnet.members} == views
    height = devnet.wait_same_height()
    for each_height in range(1, height + 1):
        block = get_json(f"{via.api_url}/v1/blocks/{each_height}")
        assert block["transaction_ids"], f"block {each_height} is empty"


# --- scenarios with a devnet of their own ------------------------------------------------------


def test_the_chain_survives_stopping_and_restarting_every_node(tmp_path: Path) -> None:
    directory = tmp_path / "devnet"
    try:
        processes = devnet_up(directory, 4)
        network = Devnet(directory, processes)
        anchored = [network.anchor(member.member_id) for member in processes[:2]]
        height = network.wait_same_height()
        tip = status_of(processes[0])["block_hash"]

        assert sorted(devnet_down(directory)) == sorted(m.member_id for m in processes)
        assert not any(process_running(member.pid) for member in processes)
        for member in processes:
            log = Path(member.log_file).read_text()
            assert f"member {member.member_id} stopped" in log
            assert "Traceback" not in log, log[-3000:]

        restarted = [
            dataclasses.replace(member, pid=start_member(Path(member.config_file).parent).pid)
            for member in processes
        ]
        write_devnet(directory, restarted)
        network.members = restarted
        wait_ready(restarted, timeout_s=DEADLINE_S)
        for member in restarted:
            status = status_of(member)
            assert (status["height"], status["block_hash"]) == (height, tip), member.member_id
            for outcome in anchored:
                act = get_json(
                    f"{member.api_url}/v1/acts/{outcome['issuer']}/{outcome['reference']}"
                )
                assert act["act"]["status"] == "in_force"

        later = [network.anchor(member.member_id) for member in restarted[2:]]
        assert all(outcome["height"] > height for outcome in later)
        network.assert_same_blocks(restarted, network.wait_same_height())
    finally:
        if (directory / "devnet.json").exists():
            devnet_down(directory)
