"""Consortium checkpoints: members sign, gather a quorum, keep and serve; witnesses cosign.

The first part is the gathering itself (node/runtime/checkpoints.py), pure: who may sign, what
is refused and why, what is held and for how long, the note built. Then the node's pieces
around it, in process: the frame, the configuration of witnesses, an observer's checks of a
fetched note, a pusher facing a witness that lies about its size. The last part is a real
devnet of 4 members and an observer (processes, sockets, LevelDB) with a real
``sceau witness`` and a second witness that is down.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from support import commit_each, fetch, start_client, start_node

from ledger import crypto, merkle, tlog
from ledger.client import Client
from ledger.devchain import LocalConsortium
from ledger.model import ContractRef, Genesis, Member, Transaction, quorum_size
from ledger.note import (
    Checkpoint,
    KeyType,
    Note,
    NoteError,
    NoteVerifierKey,
    cosign,
    origin_for,
    sign_note,
    verify_note,
)
from ledger.store import ChainStore
from node.runtime.checkpoints import (
    CheckpointLimits,
    CheckpointService,
    CommittedLog,
    Gatherer,
    KeptCheckpoint,
    Refusal,
    SignatureRefused,
    member_keys,
    verify_consortium_note,
)
from node.runtime.config import ConfigError, PeerLimits, WitnessSettings, load_config
from node.runtime.wire import CheckpointSignature, FrameLimits, decode_frame, scan_frame
from node.runtime.witnesses import ANSWER_BYTES_MAX, Failure, WitnessPusher
from node.tools.devnet import MemberProcess, _free_ports, devnet_down, devnet_up, read_observers

CHAIN_ID = hashlib.sha256(b"checkpoints test chain").digest()
ORIGIN = origin_for(CHAIN_ID)
IDS = ["bourg-est", "metropole", "saint-leger", "ville"]
KEYS = {
    member_id: crypto.key_from_seed(hashlib.sha256(member_id.encode()).digest())
    for member_id in IDS
}
MEMBERS = tuple(
    Member(
        id=member_id,
        name=member_id.title(),
        public_key=crypto.public_key_bytes(KEYS[member_id]),
        endpoint="127.0.0.1:1",
    )
    for member_id in IDS
)
OUTSIDER = crypto.key_from_seed(b"o" * 32)
WITNESS_KEY = crypto.key_from_seed(b"w" * 32)
NOTE_TEXT = Checkpoint(ORIGIN, 9, bytes(32)).text()
WITNESS = NoteVerifierKey.for_private_key(
    "prefecture.example/w", KeyType.COSIGNATURE_V1, WITNESS_KEY
)


def _root(size: int) -> bytes:
    return merkle.root([f"act {index}".encode() for index in range(size)])


def _log(height: int, size: int, members: tuple[Member, ...] = MEMBERS) -> CommittedLog:
    return CommittedLog(height, Checkpoint(ORIGIN, size, _root(size)), member_keys(ORIGIN, members))


def _signature(member_id: str, size: int, key: crypto.PrivateKey | None = None) -> bytes:
    text = Checkpoint(ORIGIN, size, _root(size)).text()
    return sign_note(text, ORIGIN, key or KEYS[member_id]).signature


def _own(member_id: str, size: int) -> tuple[str, Any]:
    return member_id, sign_note(
        Checkpoint(ORIGIN, size, _root(size)).text(), ORIGIN, KEYS[member_id]
    )


def _receive(gatherer: Gatherer, member_id: str, height: int, size: int, **changes: Any) -> Any:
    values: dict[str, Any] = {
        "log_size": size,
        "log_root": _root(size),
        "signature": _signature(member_id, size),
        **changes,
    }
    return gatherer.receive(
        member_id, height, values["log_size"], values["log_root"], values["signature"]
    )


# --- the gathering ------------------------------------------------------------------------------


def test_a_quorum_of_the_members_makes_a_checkpoint_note_that_verifies() -> None:
    gatherer = Gatherer()
    assert gatherer.committed(1, _log(1, 5), own=_own("ville", 5)) is None
    assert _receive(gatherer, "metropole", 1, 5) is None
    kept = _receive(gatherer, "bourg-est", 1, 5)
    assert quorum_size(4) == 3 and kept is not None
    assert kept.checkpoint == Checkpoint(ORIGIN, 5, _root(5)) and kept.height == 1
    assert kept.signers == ("bourg-est", "metropole", "ville")
    note = Note.parse(kept.note.to_bytes())
    assert note.text == f"{ORIGIN}\n5\n{base64.b64encode(_root(5)).decode()}\n"
    keys = member_keys(ORIGIN, MEMBERS)
    verified = verify_note(note, list(keys.values()))
    assert {key.public_key for key in verified} == {
        crypto.public_key_bytes(KEYS[m]) for m in ("bourg-est", "metropole", "ville")
    }
    assert [s.key_id for s in note.signatures] == sorted(s.key_id for s in note.signatures)
    assert all(s.name == ORIGIN for s in note.signatures)
    with pytest.raises(SignatureRefused) as late:  # the fourth comes after the quorum
        _receive(gatherer, "saint-leger", 1, 5)
    assert late.value.reason is Refusal.STALE


def test_only_larger_sizes_make_a_new_checkpoint() -> None:
    gatherer = Gatherer()
    gatherer.committed(1, _log(1, 5), own=_own("ville", 5))
    _receive(gatherer, "metropole", 1, 5)
    assert _receive(gatherer, "bourg-est", 1, 5) is not None
    gatherer.committed(2, _log(2, 5), own=_own("ville", 5))  # a block without acts
    with pytest.raises(SignatureRefused) as same:
        _receive(gatherer, "metropole", 2, 5)
    assert same.value.reason is Refusal.STALE
    gatherer.committed(3, _log(3, 9), own=_own("ville", 9))
    _receive(gatherer, "metropole", 3, 9)
    kept = _receive(gatherer, "saint-leger", 3, 9)
    assert kept is not None and kept.checkpoint.size == 9 and kept.height == 3


@pytest.mark.parametrize(
    ("reason", "send"),
    [
        (
            Refusal.NOT_A_MEMBER,
            lambda g: g.receive("outsider", 1, 5, _root(5), _signature("", 5, OUTSIDER)),
        ),
        (Refusal.WRONG_LOG, lambda g: _receive(g, "metropole", 1, 5, log_root=_root(4))),
        (
            Refusal.WRONG_LOG,
            lambda g: _receive(g, "metropole", 1, 6, signature=_signature("metropole", 6)),
        ),
        (
            Refusal.BAD_SIGNATURE,
            lambda g: _receive(g, "metropole", 1, 5, signature=_signature("ville", 5)),
        ),
        (Refusal.BAD_SIGNATURE, lambda g: _receive(g, "metropole", 1, 5, signature=bytes(64))),
        (Refusal.TOO_FAR_AHEAD, lambda g: _receive(g, "metropole", 66, 5)),
        (Refusal.STALE, lambda g: _receive(g, "metropole", 0, 5)),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_each_refusal_is_counted_by_its_reason_and_changes_nothing(
    reason: Refusal, send: Callable[[Gatherer], Any]
) -> None:
    gatherer = Gatherer()
    gatherer.committed(1, _log(1, 5), own=_own("ville", 5))
    _receive(gatherer, "bourg-est", 1, 5)
    with pytest.raises(SignatureRefused) as refused:
        send(gatherer)
    assert refused.value.reason is reason
    assert gatherer.refused == {reason: 1} and gatherer.kept is None
    assert _receive(gatherer, "saint-leger", 1, 5) is not None  # the quorum still forms


def test_a_second_signature_of_one_member_is_a_duplicate() -> None:
    gatherer = Gatherer()
    gatherer.committed(1, _log(1, 5))
    _receive(gatherer, "metropole", 1, 5)
    with pytest.raises(SignatureRefused) as again:
        _receive(gatherer, "metropole", 1, 5)
    assert again.value.reason is Refusal.DUPLICATE
    _receive(gatherer, "metropole", 2, 7)  # held: height 2 is not committed yet
    with pytest.raises(SignatureRefused) as held_twice:
        _receive(gatherer, "metropole", 2, 7)
    assert held_twice.value.reason is Refusal.DUPLICATE


def test_signatures_ahead_of_the_tip_are_held_then_checked_when_the_block_commits() -> None:
    gatherer = Gatherer(CheckpointLimits(heights_ahead_max=4))
    gatherer.committed(1, _log(1, 2))
    assert _receive(gatherer, "metropole", 3, 9) is None
    assert _receive(gatherer, "bourg-est", 3, 9, signature=_signature("ville", 9)) is None
    assert _receive(gatherer, "saint-leger", 3, 8) is None  # not what our header will say
    with pytest.raises(SignatureRefused) as far:
        _receive(gatherer, "metropole", 6, 20)
    assert far.value.reason is Refusal.TOO_FAR_AHEAD
    assert gatherer.held == 3 and gatherer.kept is None
    gatherer.committed(2, _log(2, 4))
    kept = gatherer.committed(3, _log(3, 9), own=_own("ville", 9))
    assert kept is None  # metropole and ville only: bourg-est's is forged, saint-leger's wrong
    assert gatherer.refused == {
        Refusal.TOO_FAR_AHEAD: 1,
        Refusal.BAD_SIGNATURE: 1,
        Refusal.WRONG_LOG: 1,
    }
    assert _receive(gatherer, "bourg-est", 3, 9) is not None


def test_what_the_gatherer_holds_stays_bounded() -> None:
    limits = CheckpointLimits(heights_ahead_max=8, recent_heights_max=8)
    gatherer = Gatherer(limits)
    junk = bytes(64)  # held unchecked until its height commits: the bound is what matters
    for height in range(1, 40):
        gatherer.committed(height, _log(height, height), own=_own("ville", height))
        _receive(gatherer, "metropole", height, height)  # never a quorum: 2 of 4
        for ahead in range(height + 1, height + 12):
            with contextlib.suppress(SignatureRefused):
                gatherer.receive("bourg-est", ahead, ahead, _root(ahead), junk)
    # 8 recent heights of two signatures, 8 heights ahead of one (at most one per member each)
    assert gatherer.held <= 8 * 2 + 8 * 1
    with pytest.raises(SignatureRefused) as old:
        _receive(gatherer, "saint-leger", 30, 30)
    assert old.value.reason is Refusal.STALE


def test_the_signers_are_the_member_set_in_force_after_the_block() -> None:
    newcomer_key = crypto.key_from_seed(b"n" * 32)
    newcomer = Member(
        id="newcomer",
        name="Newcomer",
        public_key=crypto.public_key_bytes(newcomer_key),
        endpoint="127.0.0.1:1",
    )
    five = (*MEMBERS, newcomer)
    gatherer = Gatherer()
    gatherer.committed(1, _log(1, 3, five), own=_own("ville", 3))
    _receive(gatherer, "metropole", 1, 3)
    assert _receive(gatherer, "bourg-est", 1, 3) is None  # the quorum of 5 is 4
    kept = gatherer.receive("newcomer", 1, 3, _root(3), _signature("", 3, newcomer_key))
    assert kept is not None and "newcomer" in kept.signers


# --- the kept note, its cosignatures, and a fetched note ----------------------------------------


def _kept(
    size: int = 5, signers: tuple[str, ...] = ("bourg-est", "metropole", "ville")
) -> KeptCheckpoint:
    gatherer = Gatherer()
    gatherer.committed(1, _log(1, size), own=_own(signers[0], size))
    kept = None
    for member_id in signers[1:]:
        kept = _receive(gatherer, member_id, 1, size)
    assert kept is not None
    return kept


def test_witness_cosignatures_follow_the_members_and_replace_older_ones_of_their_key() -> None:
    kept = _kept()
    text = kept.note.text
    first = kept.with_cosignatures([cosign(text, WITNESS.name, WITNESS_KEY, 1_000)])
    second = first.with_cosignatures([cosign(text, WITNESS.name, WITNESS_KEY, 2_000)])
    assert second.note.signatures[:3] == kept.note.signatures
    assert len(second.cosignatures) == 1
    checkpoint, signers, members, cosignatures = verify_consortium_note(
        second.note, ORIGIN, member_keys(ORIGIN, MEMBERS), [WITNESS]
    )
    assert checkpoint == kept.checkpoint and signers == kept.signers
    assert members == kept.note.signatures and cosignatures == second.cosignatures
    # Without the witness's key its cosignature is left out, never trusted.
    assert verify_consortium_note(second.note, ORIGIN, member_keys(ORIGIN, MEMBERS))[3] == ()


@pytest.mark.parametrize(
    ("note", "message"),
    [
        (
            lambda kept: Note(kept.note.text, kept.note.signatures[:2]),
            r"2 member signature\(s\), 3 needed",
        ),
        (
            lambda kept: Note(kept.note.text.replace("\n5\n", "\n6\n"), kept.note.signatures),
            "does not verify",
        ),
        (
            lambda kept: Note(
                Checkpoint("sceau/other", 5, _root(5)).text(),
                (sign_note(Checkpoint("sceau/other", 5, _root(5)).text(), ORIGIN, KEYS["ville"]),),
            ),
            "not 'sceau/",
        ),
    ],
    ids=["below-quorum", "tampered", "other-origin"],
)
def test_a_note_without_a_quorum_of_valid_member_signatures_is_refused(
    note: Callable[[KeptCheckpoint], Note], message: str
) -> None:
    with pytest.raises(NoteError, match=message):
        verify_consortium_note(note(_kept()), ORIGIN, member_keys(ORIGIN, MEMBERS))


LOCAL_MEMBERS = [
    ("bourg-est", "Bourg-Est"),
    ("metropole", "Métropole"),
    ("saint-leger", "Saint-Léger"),
    ("ville", "Ville"),
]


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[tuple[LocalConsortium, ChainStore]]:
    """A format-2 chain of 3 blocks (2, 3 and 4 acts) in a real store."""
    consortium = LocalConsortium.create(LOCAL_MEMBERS, seed=b"checkpoints", format_version=2)
    store = ChainStore.create(tmp_path / "chain", consortium.genesis)
    nonce = 0
    for count in (2, 3, 4):
        transactions = []
        for _ in range(count):
            reference = f"2026-DEL-{nonce:04d}"
            transactions.append(
                Transaction.create(
                    consortium.keys["ville"],
                    chain_id=consortium.chain_id,
                    contract="deeds",
                    action="anchor",
                    args={
                        "reference": reference,
                        "digest": hashlib.sha256(reference.encode()).digest(),
                    },
                    nonce=nonce,
                    expiry_height=1_000,
                )
            )
            nonce += 1
        consortium.append(store, transactions, {}, timestamp_ms=1_767_225_600_000 + 60_000 * nonce)
    try:
        yield consortium, store
    finally:
        store.close()


def _consortium_note(
    consortium: LocalConsortium, store: ChainStore, size: int, root: bytes | None = None
) -> Note:
    origin = origin_for(consortium.chain_id)
    text = Checkpoint(origin, size, root or tlog.root_of(size, store.log_hash)).text()
    signatures = [
        sign_note(text, origin, consortium.keys[m]) for m in ("metropole", "saint-leger", "ville")
    ]
    return Note(text, tuple(sorted(signatures, key=lambda s: s.key_id)))


def test_an_observer_keeps_a_fetched_note_only_if_it_is_its_own_log(
    chain: tuple[LocalConsortium, ChainStore],
) -> None:
    consortium, store = chain
    witness = NoteVerifierKey.for_private_key("w.example", KeyType.COSIGNATURE_V1, WITNESS_KEY)
    service = CheckpointService(
        store, members=lambda: consortium.genesis.members, witness_keys=[witness]
    )
    assert store.log_size == 9
    with pytest.raises(NoteError, match="beyond this node's log"):
        service.offer_note(_consortium_note(consortium, store, 10, _root(10)).to_bytes())
    with pytest.raises(NoteError, match="not this node's log's"):
        service.offer_note(_consortium_note(consortium, store, 5, _root(5)).to_bytes())
    assert service.kept is None and store.checkpoint() is None
    note = _consortium_note(consortium, store, 5)
    assert service.offer_note(note.to_bytes()) == "kept"
    assert service.kept is not None and service.kept.height == 2  # acts 3 to 5 came in block 2
    assert service.offer_note(note.to_bytes()) == "older"
    stranger = cosign(note.text, "stranger.example", OUTSIDER, 7)
    cosigned = note.with_signatures(cosign(note.text, "w.example", WITNESS_KEY, 7), stranger)
    assert service.offer_note(cosigned.to_bytes()) == "merged"
    served = Note.parse(store.checkpoint() or b"")
    assert served.signatures == (*note.signatures, cosigned.signatures[-2])  # not the stranger's
    assert service.offer_note(_consortium_note(consortium, store, 2).to_bytes()) == "older"
    assert service.offer_note(_consortium_note(consortium, store, 9).to_bytes()) == "kept"
    assert service.kept.height == 3 and service.kept.cosignatures == ()


def test_a_member_signs_and_keeps_across_a_restart(
    chain: tuple[LocalConsortium, ChainStore],
) -> None:
    consortium, store = chain
    header = store.block(3).header
    service = CheckpointService(
        store,
        member_id="ville",
        key=consortium.keys["ville"],
        members=lambda: consortium.genesis.members,
    )
    service.gatherer.tip = 2
    signature = service.committed(3, header.log_size, header.log_root)
    text = Checkpoint(service.origin, 9, header.log_root).text()
    assert signature is not None and crypto.verify_raw(
        crypto.public_key_bytes(consortium.keys["ville"]), text.encode(), signature
    )
    for member_id in ("metropole", "saint-leger"):
        own = sign_note(text, service.origin, consortium.keys[member_id]).signature
        service.receive(member_id, 3, 9, header.log_root, own)
    assert service.kept is not None and service.metrics.kept == 1
    again = CheckpointService(store, members=lambda: consortium.genesis.members)
    assert again.kept == service.kept


def test_a_member_catching_up_does_not_sign_old_blocks(
    chain: tuple[LocalConsortium, ChainStore],
) -> None:
    consortium, store = chain
    header = store.block(3).header
    service = CheckpointService(
        store,
        member_id="ville",
        key=consortium.keys["ville"],
        members=lambda: consortium.genesis.members,
    )
    service.gatherer.tip = 2
    assert service.committed(3, header.log_size, header.log_root, sign=False) is None
    assert service.metrics.signed == 0 and service.kept is None
    text = Checkpoint(service.origin, 9, header.log_root).text()
    for member_id in ("metropole", "saint-leger", "bourg-est"):  # the others still count
        own = sign_note(text, service.origin, consortium.keys[member_id]).signature
        service.receive(member_id, 3, 9, header.log_root, own)
    assert service.kept is not None and "ville" not in service.kept.signers


# --- the frame and the configuration ------------------------------------------------------------


def test_the_signature_frame_is_small_and_decodes() -> None:
    frame = CheckpointSignature(
        sender="ville", height=3, log_size=9, log_root=_root(9), signature=bytes(64)
    )
    data = frame.to_bytes()
    limits = FrameLimits()
    assert limits.bytes_max("checkpoint_signature") == limits.small_frame_bytes_max
    header = scan_frame(data, limits)
    assert (header.kind, header.sender, header.height) == ("checkpoint_signature", "ville", 3)
    assert decode_frame(data) == frame


def _config_with(tmp_path: Path, witnesses: str) -> Any:
    path = tmp_path / "node.toml"
    path.write_text(
        'member_id = "ville"\ndata_dir = "data"\ngenesis_file = "genesis.json"\n'
        'key_file = "node.pem"\n' + witnesses
    )
    return load_config(path, environment={})


def test_witnesses_are_configured_with_their_cosignature_vkey(tmp_path: Path) -> None:
    entry = (
        '[[witnesses]]\nname = "prefecture"\nurl = "http://127.0.0.1:7380"\n'
        f'vkey = "{WITNESS.vkey}"\n'
    )
    config = _config_with(tmp_path, entry)
    assert config.witnesses == (
        WitnessSettings(name="prefecture", url="http://127.0.0.1:7380", vkey=WITNESS.vkey),
    )
    assert config.witnesses[0].key == WITNESS
    member_vkey = NoteVerifierKey(ORIGIN, KeyType.ED25519, MEMBERS[0].public_key).vkey
    with pytest.raises(ConfigError, match="not a cosignature/v1 key"):
        _config_with(tmp_path, entry.replace(WITNESS.vkey, member_vkey))
    with pytest.raises(ConfigError, match="vkey is not a verifier key"):
        _config_with(tmp_path, entry.replace(WITNESS.vkey, "prefecture+00000000+AQ=="))
    with pytest.raises(ConfigError, match="share a name"):
        _config_with(
            tmp_path,
            entry
            + entry.replace(
                WITNESS.vkey,
                NoteVerifierKey("other", KeyType.COSIGNATURE_V1, MEMBERS[0].public_key).vkey,
            ),
        )
    with pytest.raises(ConfigError, match=r"witnesses\.0\.url"):
        _config_with(tmp_path, entry.replace("http://", "ftp://"))


# --- a pusher and a witness that lies -----------------------------------------------------------


def _run_pusher(
    service: CheckpointService,
    answer: Callable[[bytes], web.Response],
    seconds: float,
) -> tuple[WitnessPusher, list[bytes]]:
    """A pusher run for ``seconds`` against an HTTP server on loopback whose add-checkpoint
    answers each request body with ``answer``; the pusher and the bodies it sent."""
    import aiohttp

    requests: list[bytes] = []

    async def add_checkpoint(request: web.Request) -> web.Response:
        requests.append(await request.read())
        return answer(requests[-1])

    async def scenario() -> WitnessPusher:
        app = web.Application()
        app.router.add_post("/add-checkpoint", add_checkpoint)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{port}"
        settings = WitnessSettings(name="w", url=url, vkey=WITNESS.vkey, backoff_max_ms=60_000)
        async with aiohttp.ClientSession() as session:
            pusher = WitnessPusher(settings, service, lambda: session)
            task = asyncio.create_task(pusher.run())
            await asyncio.sleep(seconds)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await runner.cleanup()
        return pusher

    return asyncio.run(scenario()), requests


def _size_answer(size: int) -> web.Response:
    return web.Response(status=409, body=f"{size}\n".encode(), content_type="text/x.tlog.size")


def test_a_witness_that_claims_a_size_the_log_lacks_is_not_asked_in_a_hot_loop(
    chain: tuple[LocalConsortium, ChainStore],
) -> None:
    consortium, store = chain
    service = CheckpointService(store, members=lambda: consortium.genesis.members)
    assert service.offer_note(_consortium_note(consortium, store, 9).to_bytes()) == "kept"
    pusher, requests = _run_pusher(service, lambda body: _size_answer(1_000_000), 1.2)
    # 0.5 s then 1 s of backoff after the first failure: two pushes in 1.2 s, not thousands.
    assert 1 <= len(requests) <= 3
    assert requests[0].startswith(b"old 0\n\n")
    assert pusher.state.failures == {Failure.FORKED: len(requests)}
    assert pusher.state.last_error is not None and "this log only 9" in pusher.state.last_error
    assert pusher.state.cosigned_size is None and service.kept.cosignatures == ()


def test_a_pusher_follows_the_witness_size_others_moved_and_keeps_its_cosignature(
    chain: tuple[LocalConsortium, ChainStore],
) -> None:
    consortium, store = chain
    service = CheckpointService(store, members=lambda: consortium.genesis.members)
    note = _consortium_note(consortium, store, 9)
    assert service.offer_note(note.to_bytes()) == "kept"
    sizes = iter([2, 5])  # two other members' pushes move the witness meanwhile

    def witness(body: bytes) -> web.Response:
        size = next(sizes, None)
        if size is not None:
            return _size_answer(size)
        other = cosign(note.text, "other.example", OUTSIDER, 1_700_000_000)
        mine = cosign(note.text, WITNESS.name, WITNESS_KEY, 1_700_000_000)
        return web.Response(text=other.line() + mine.line())

    pusher, requests = _run_pusher(service, witness, 0.5)
    assert [body.split(b"\n")[0] for body in requests] == [b"old 0", b"old 2", b"old 5"]
    head = requests[2].split(b"\n\n")[0].split(b"\n")[1:]
    proof = [base64.b64decode(line) for line in head]
    assert merkle.verify_consistency(
        5, 9, tlog.root_of(5, store.log_hash), tlog.root_of(9, store.log_hash), proof
    )
    assert pusher.state.cosigned_size == 9 and pusher.state.last_error is None
    assert pusher.state.failures == {} and pusher.state.cosignatures == 1
    served = Note.parse(store.checkpoint() or b"")
    assert served.signatures[:3] == note.signatures
    assert [s.name for s in served.signatures[3:]] == [WITNESS.name]  # not other.example's


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (lambda body: web.Response(body=b"x" * (ANSWER_BYTES_MAX + 1)), Failure.BAD_ANSWER),
        (
            lambda body: web.Response(text=cosign(NOTE_TEXT, "w.other", OUTSIDER, 7).line()),
            Failure.BAD_ANSWER,
        ),
        (lambda body: web.Response(status=403, text="not enough signatures"), Failure.NOT_SIGNED),
        (lambda body: web.Response(status=404, text="unknown origin"), Failure.UNKNOWN_LOG),
        (lambda body: web.Response(status=422, text="bad proof"), Failure.BAD_PROOF),
        (lambda body: web.Response(status=500), Failure.HTTP_STATUS),
        (lambda body: _size_answer(0), Failure.FORKED),  # 0 again: another root at size 0?
    ],
    ids=["too-large", "other-key", "403", "404", "422", "500", "same-size"],
)
def test_each_failed_push_is_counted_by_its_reason_and_backs_off(
    chain: tuple[LocalConsortium, ChainStore],
    answer: Callable[[bytes], web.Response],
    reason: Failure,
) -> None:
    consortium, store = chain
    service = CheckpointService(store, members=lambda: consortium.genesis.members)
    assert service.offer_note(_consortium_note(consortium, store, 9).to_bytes()) == "kept"
    pusher, requests = _run_pusher(service, answer, 0.3)
    assert len(requests) == 1  # then half a second of backoff
    assert pusher.state.failures == {reason: 1} and pusher.backoff_ms == 500
    assert pusher.state.last_error is not None and pusher.state.last_error.startswith(reason)
    assert service.kept is not None and service.kept.cosignatures == ()


# --- one member's node, in process --------------------------------------------------------------


def _one_member_consortium() -> LocalConsortium:
    """A format-2 consortium of one member, whose own signature is a quorum (q(1) = 1)."""
    return LocalConsortium.create(
        [("ville", "Ville de Valbrune")],
        seed=b"checkpoints api",
        contracts=[
            ContractRef(name="membership", version="1.0"),
            ContractRef(name="deeds", version="1.0"),
        ],
        format_version=2,
    )


def _anchor(consortium: LocalConsortium, nonce: int) -> Transaction:
    reference = f"2026-DEL-{nonce}"
    return Transaction.create(
        consortium.keys["ville"],
        chain_id=consortium.chain_id,
        contract="deeds",
        action="anchor",
        args={
            "issuer": "ville",
            "reference": reference,
            "kind": "deliberation",
            "digest": hashlib.sha256(reference.encode()).digest(),
            "act_date": "2026-11-28",
            "title": f"Délibération {reference}",
        },
        nonce=nonce,
        expiry_height=1_000,
    )


def test_a_node_serves_no_checkpoint_before_the_first_then_its_latest(tmp_path: Path) -> None:
    """A consortium of one member: its own signature is a quorum (quorum_size(1) == 1)."""
    consortium = _one_member_consortium()
    loop, node, config = start_node(tmp_path / "ville", consortium, "ville")
    client = loop.run_until_complete(start_client(node, config))
    try:
        for path in ("/v1/log/checkpoint", "/v1/log/checkpoint.json"):
            reply = loop.run_until_complete(fetch(client, "GET", path))
            assert reply.status == 404 and reply.json()["code"] == "no_checkpoint"
        assert loop.run_until_complete(fetch(client, "GET", "/v1/status")).json()["checkpoint"] == {
            "size": None, "height": None, "signers": [], "witnesses": []
        }  # fmt: skip
        transactions = [_anchor(consortium, nonce) for nonce in range(2)]
        commit_each(loop, node, transactions)
        reply = loop.run_until_complete(fetch(client, "GET", "/v1/log/checkpoint"))
        assert reply.status == 200 and reply.content_type == "text/plain; charset=utf-8"
        assert reply.headers["Cache-Control"] == "max-age=2"
        origin = origin_for(consortium.chain_id)
        note = Note.parse(reply.body)
        checkpoint, signers, _, _ = verify_consortium_note(
            note, origin, member_keys(origin, consortium.genesis.members)
        )
        assert signers == ("ville",)
        tip = node.store.block(node.store.height).header
        assert (
            (checkpoint.size, checkpoint.root)
            == (tip.log_size, tip.log_root)
            == (2, checkpoint.root)
        )
        document = loop.run_until_complete(fetch(client, "GET", "/v1/log/checkpoint.json")).json()
        assert document == {
            "origin": origin,
            "size": 2,
            "root": tip.log_root.hex(),
            "height": node.store.height,
            "signers": ["ville"],
            "witnesses": [],
            "note": reply.body.decode(),
        }
        status = loop.run_until_complete(fetch(client, "GET", "/v1/status")).json()
        assert status["checkpoint"] == {
            "size": 2, "height": node.store.height, "signers": ["ville"], "witnesses": []
        }  # fmt: skip
    finally:
        loop.run_until_complete(client.close())
        loop.run_until_complete(node.stop())
        node.store.close()
        loop.close()


def test_a_peer_flooding_signature_frames_is_cut_off_by_its_budget(tmp_path: Path) -> None:
    consortium = _one_member_consortium()
    limits = PeerLimits(checkpoint_signatures_per_s=1, checkpoint_signatures_burst=50)
    loop, node, _ = start_node(tmp_path / "ville", consortium, "ville", peer_limits=limits)
    try:
        commit_each(loop, node, [_anchor(consortium, 0)])
        kept = node.checkpoints.kept
        assert kept is not None and kept.checkpoint.size == 1
        frame = CheckpointSignature(
            sender="metropole", height=1, log_size=1, log_root=kept.checkpoint.root,
            signature=bytes(64),
        ).to_bytes()  # fmt: skip
        node.on_frame("ville-voisine", frame)  # the frame names another sender
        assert node.metrics.frames_rejected["sender_mismatch:checkpoint_signature"] == 1
        started = time.monotonic()
        for _ in range(150):
            node.on_frame("metropole", frame)
        refilled = int(time.monotonic() - started) + 1  # one frame a second meanwhile
        refused = node.metrics.frames_rejected["over_budget:checkpoint_signature"]
        assert 100 - refilled <= refused <= 100
        assert node.checkpoints.gatherer.refused[Refusal.STALE] == 150 - refused
        assert node.checkpoints.kept == kept and node.running
    finally:
        loop.run_until_complete(node.stop())
        node.store.close()
        loop.close()


# --- a real devnet, a real witness, and a witness that is down ----------------------------------

DEADLINE_S = 20.0
T = TypeVar("T")


def _get(url: str) -> tuple[int, Any, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def _json(url: str) -> Any:
    status, _, body = _get(url)
    assert status == 200, (url, status, body[:300])
    return json.loads(body)


def _wait_for(condition: Callable[[], T | None], what: str) -> T:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, AssertionError):
            value = condition()
            if value:
                return value
        time.sleep(0.1)
    raise AssertionError(f"not within {DEADLINE_S} s: {what}")


@dataclasses.dataclass
class Network:
    directory: Path
    members: list[MemberProcess]
    genesis: Genesis
    witness_vkey: NoteVerifierKey
    dead_port: int

    def anchor(self, member: MemberProcess) -> float:
        """Anchor an act through ``member`` and wait for its commit; the seconds it took."""
        reference = f"2026-DEL-{secrets.token_hex(4)}"
        started = time.monotonic()
        with Client(member.api_url, signer=crypto.load_private_key(member.key_file)) as client:
            outcome = client.anchor(
                issuer=member.member_id,
                reference=reference,
                kind="deliberation",
                digest=hashlib.sha256(reference.encode()).digest(),
                act_date="2026-11-28",
                title=f"Délibération {reference}",
                wait_s=DEADLINE_S,
            )
        assert outcome["status"] == "committed", outcome
        return time.monotonic() - started

    def member_keys(self) -> dict[str, NoteVerifierKey]:
        return member_keys(origin_for(self.genesis.chain_id), self.genesis.members)


def _sceau(*arguments: str) -> str:
    command = [str(Path(sys.executable).parent / "sceau"), *arguments]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=30).stdout


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    directory = tmp_path_factory.mktemp("checkpoints")
    witness_port, dead_port = _free_ports(2)
    witness_dir = directory / "witness"
    vkey = _sceau(
        "witness",
        "init",
        "--name",
        "prefecture.example/witness",
        "--dir",
        str(witness_dir),
        "--listen",
        f"127.0.0.1:{witness_port}",
    ).split()[0]
    dead_vkey = NoteVerifierKey.for_private_key(
        "dead.example/witness", KeyType.COSIGNATURE_V1, OUTSIDER
    ).vkey
    witnesses = [
        {
            "name": "prefecture",
            "url": f"http://127.0.0.1:{witness_port}",
            "vkey": vkey,
            "backoff_max_ms": 1_000,
        },
        {
            "name": "down",
            "url": f"http://127.0.0.1:{dead_port}",
            "vkey": dead_vkey,
            "backoff_max_ms": 1_000,
        },
    ]
    net = directory / "net"
    witness: subprocess.Popen[bytes] | None = None
    try:
        members = devnet_up(net, 4, observers=1, extra_config={"witnesses": witnesses})
        _sceau(
            "witness", "add-log", "--dir", str(witness_dir), "--genesis", str(net / "genesis.json")
        )
        with open(directory / "witness.log", "wb") as witness_log:
            witness = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "sceau"),
                    "witness",
                    "run",
                    "--dir",
                    str(witness_dir),
                ],
                stdout=subprocess.PIPE,
                stderr=witness_log,
            )
        assert witness.stdout is not None and b"listening" in witness.stdout.readline()
        genesis = Genesis.model_validate_json((net / "genesis.json").read_text())
        yield Network(net, members, genesis, NoteVerifierKey.parse_vkey(vkey), dead_port)
    finally:
        if witness is not None:
            witness.terminate()
            witness.wait(timeout=10)
        if (net / "devnet.json").exists():
            devnet_down(net)


def _checkpoint_at_tip(network: Network, member: MemberProcess) -> dict[str, Any]:
    """The member's checkpoint.json once it covers the whole log of its tip."""
    status = _json(f"{member.api_url}/v1/status")
    block = _json(f"{member.api_url}/v1/blocks/{status['height']}")
    document = _json(f"{member.api_url}/v1/log/checkpoint.json")
    assert document["size"] == block["header"]["log_size"]
    return document


def test_the_members_sign_checkpoints_of_committed_headers(network: Network) -> None:
    for member in network.members:
        problem = _get(f"{member.api_url}/v1/log/checkpoint")
        assert problem[0] == 200 or (
            problem[0] == 404 and json.loads(problem[2])["code"] == "no_checkpoint"
        )
    for member in network.members[:2]:
        network.anchor(member)
    for member in network.members:
        document = _wait_for(
            lambda m=member: _checkpoint_at_tip(network, m), f"{member.member_id}'s checkpoint"
        )
        status, headers, body = _get(f"{member.api_url}/v1/log/checkpoint")
        assert status == 200 and headers["Content-Type"] == "text/plain; charset=utf-8"
        assert headers["Cache-Control"] == "max-age=2"
        note = Note.parse(body)
        checkpoint, signers, _, _ = verify_consortium_note(
            note, origin_for(network.genesis.chain_id), network.member_keys()
        )
        assert len(signers) >= quorum_size(4) and list(signers) == document["signers"]
        header = _json(f"{member.api_url}/v1/blocks/{document['height']}")["header"]
        assert (header["log_size"], header["log_root"]) == (checkpoint.size, checkpoint.root.hex())
        assert document["root"] == checkpoint.root.hex()
        # The same checkpoint with the same members' signatures; the witness's cosignature may
        # arrive between the two requests, so the note served second may carry one more line.
        shown = Note.parse(document["note"].encode())
        assert shown.text == note.text
        members_lines = {signature.line() for signature in shown.signatures}
        assert members_lines <= {signature.line() for signature in note.signatures}


def test_an_observer_serves_a_checkpoint_it_verified(network: Network) -> None:
    network.anchor(network.members[2])
    observer = read_observers(network.directory)[0]

    def observed() -> dict[str, Any] | None:
        member = _json(f"{network.members[0].api_url}/v1/log/checkpoint.json")
        mine = _json(f"{observer.api_url}/v1/log/checkpoint.json")
        return mine if mine["size"] == member["size"] else None

    document = _wait_for(observed, "the observer's checkpoint")
    note = Note.parse(document["note"].encode())
    checkpoint, signers, _, cosignatures = verify_consortium_note(
        note, origin_for(network.genesis.chain_id), network.member_keys()
    )
    assert len(signers) >= quorum_size(4) and cosignatures == ()
    status = _json(f"{observer.api_url}/v1/status")
    assert status["role"] == "observer" and status["checkpoint"]["size"] == checkpoint.size
    metrics = _get(f"{observer.api_url}/metrics")[2].decode()
    assert 'sceau_checkpoint_fetches_total{outcome="kept"}' in metrics


def test_the_witness_cosigns_and_a_witness_that_is_down_delays_nothing(network: Network) -> None:
    member = network.members[3]
    durations = [network.anchor(member) for _ in range(3)]
    # The pushers never stand in the way: each act commits as fast as without witnesses.
    assert max(durations) < 2.0, durations

    def cosigned() -> Note | None:
        note = Note.parse(_get(f"{member.api_url}/v1/log/checkpoint")[2])
        tip = _checkpoint_at_tip(network, member)
        keys = [network.witness_vkey]
        _, _, _, cosignatures = verify_consortium_note(
            note, origin_for(network.genesis.chain_id), network.member_keys(), keys
        )
        return note if cosignatures and Checkpoint.from_note(note).size == tip["size"] else None

    note = _wait_for(cosigned, "the witness's cosignature on the latest checkpoint")
    assert verify_note(note, [network.witness_vkey]) == (network.witness_vkey,)
    document = _json(f"{member.api_url}/v1/log/checkpoint.json")
    assert [w["name"] for w in document["witnesses"]] == ["prefecture.example/witness"]
    status = _json(f"{member.api_url}/v1/status")["checkpoint"]
    witnesses = {w["name"]: w for w in status["witnesses"]}
    assert witnesses["prefecture"]["cosigned_size"] == Checkpoint.from_note(note).size
    assert (
        witnesses["prefecture"]["last_error"] is None
        and witnesses["prefecture"]["last_success_ms"] > 0
    )
    assert (
        witnesses["down"]["cosigned_size"] is None and witnesses["down"]["last_success_ms"] is None
    )
    assert witnesses["down"]["last_error"].startswith("unreachable")
    metrics = _get(f"{member.api_url}/metrics")[2].decode()
    assert 'sceau_witness_cosignatures_total{witness="prefecture"}' in metrics
    assert 'sceau_witness_failures_total{witness="down",reason="unreachable"}' in metrics
    assert 'sceau_witness_cosignatures_total{witness="down"} 0' in metrics


def test_an_exported_bundle_carries_the_cosigned_checkpoint_and_audits_with_it(
    network: Network, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from node.tools.cli import main as sceau_main

    member = network.members[3]

    def cosigned() -> bool:
        note = Note.parse(_get(f"{member.api_url}/v1/log/checkpoint")[2])
        return any(
            (s.name, s.key_id) == (network.witness_vkey.name, network.witness_vkey.key_id)
            for s in note.signatures
        )

    _wait_for(cosigned, "a cosigned checkpoint")
    bundle = tmp_path / "chain.bundle"
    assert sceau_main(["export", str(bundle), "--api", member.api_url]) == 0
    assert "written at the end of" in capsys.readouterr().out
    genesis = network.directory / "genesis.json"
    policy = ["--witness", f"prefecture={network.witness_vkey.vkey}"]
    audited = ["audit", str(bundle), "--genesis", str(genesis), "--workers", "1", *policy]
    assert sceau_main(audited) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "checkpoint: size" in out and "signed by" in out
    assert "witnesses: prefecture cosigned it (1 of the 1 named, 1 needed)" in out
