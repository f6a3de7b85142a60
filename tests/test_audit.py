"""The offline auditor (ledger/audit.py, contracts/replay.py) and the chain commands.

Specification by example, on the reference chain of tests/test_bundle.py (eight blocks, an
admission effective at height 4, a key rotation effective at height 6):

* an untouched chain passes every check, with signatures verified in this process or by
  worker processes, and the verified blocks imported into a store give the same chain;
* any field of any header, certificate or transaction, changed in the bundle (re-encoded
  canonically, so the decoder accepts it), fails the audit at that height, naming the field
  or the check closest to it (a changed transaction field breaks its signature);
* certificates are checked against the member set in force at their height;
* a certified block that re-execution refuses is named, transaction or state root;
* ``--since`` catches a rewritten history; truncated and foreign bundles are reported;
* the open-data rows; and the commands, run as a user runs them.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bundle import NEWCOMER, ChainBuilder, derived_key, reference_chain

from contracts.replay import EngineReplayer
from ledger import encoding, merkle
from ledger.audit import (
    AuditReport,
    ReplaySetupError,
    audit_bundle,
    certificate_failures,
)
from ledger.bundle import BundleWriter, encode_frame, read_frame_bodies
from ledger.devchain import LocalConsortium
from ledger.memstate import MemoryState
from ledger.model import Block, CommitCertificate, ContractRef, sha256
from ledger.store import ChainStore
from node.tools.cli import main as sceau_main
from node.tools.cli_chain import ACT_COLUMNS, act_rows

SCEAU = [sys.executable, "-m", "node.tools.cli"]
COMMAND_TIMEOUT_S = 120


def audit(path: Path, chain: ChainBuilder, **options: Any) -> AuditReport:
    options.setdefault("workers", 1)
    return audit_bundle(path, chain.genesis, EngineReplayer(), **options)


def messages(report: AuditReport) -> list[str]:
    return [str(failure) for failure in report.failures]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainBuilder]:
    built = reference_chain(tmp_path_factory.mktemp("audit-chain"))
    yield built
    built.close()


@pytest.fixture(scope="module")
def bundle(chain: ChainBuilder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return chain.write_bundle(tmp_path_factory.mktemp("audit-bundle") / "chain.bundle")


@pytest.fixture(scope="module")
def documents(bundle: Path) -> list[Any]:
    """The decoded body of every frame (frame h holds block h)."""
    return [encoding.unpack(body) for body in read_frame_bodies(bundle)]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for the bundles of property tests (function-scoped tmp_path is per test)."""
    return tmp_path_factory.mktemp("scratch")


def write_documents(path: Path, documents: list[Any]) -> Path:
    path.write_bytes(b"".join(encode_frame(document) for document in documents))
    return path


# --- an untouched chain -----------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_an_untouched_chain_passes_every_check(
    chain: ChainBuilder, bundle: Path, workers: int
) -> None:
    report = audit(bundle, chain, workers=workers)
    assert report.ok, messages(report)
    store = chain.store
    assert report.blocks == store.height == 8
    assert report.transactions == sum(len(block.transactions) for block in store.blocks())
    assert report.tip_block_hash == store.tip.block_hash
    assert report.tip_state_root == store.tip.state_root
    assert report.member_set_changes == (4, 6)  # the admission, then the key rotation
    assert report.workers == workers
    document = json.loads(json.dumps(report.to_document()))
    assert document["ok"] is True and document["failures"] == []
    assert document["heights"] == {"first": 1, "last": 8}
    assert document["tip"]["block_hash"] == store.tip.block_hash.hex()
    assert document["transactions_per_s"] > 0


def test_progress_is_reported_after_every_block(chain: ChainBuilder, bundle: Path) -> None:
    seen = []
    report = audit(bundle, chain, progress=seen.append)
    assert report.ok
    assert [where.height for where in seen] == list(range(1, 9))
    assert seen[-1].bytes_read == seen[-1].bytes_total == bundle.stat().st_size
    assert seen[-1].transactions == report.transactions


def test_the_replayed_state_is_the_nodes_state(chain: ChainBuilder, bundle: Path) -> None:
    replayer = EngineReplayer()
    assert audit_bundle(bundle, chain.genesis, replayer, workers=1).ok
    assert replayer.state.state_root == chain.store.tip.state_root
    for prefix in (b"deeds/", b"membership/"):
        assert list(replayer.state.state_items(prefix)) == list(chain.store.state_items(prefix))


def test_the_replay_state_keeps_only_the_latest_tree_and_computes_the_same_roots(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("ledger.memstate.COMPACTION_SLACK_NODES", 10)
    compacting = MemoryState({b"genesis": b"state"}, history=False)
    keeping = MemoryState({b"genesis": b"state"})
    for block in range(40):
        writes: dict[bytes, bytes | None] = {
            f"key-{block}-{index}".encode(): str(block).encode() for index in range(5)
        }
        if block >= 2:
            writes[f"key-{block - 2}-0".encode()] = None
        assert compacting.preview_state_root(writes) == keeping.preview_state_root(writes)
        assert compacting.commit(writes, [bytes([block])]) == keeping.commit(writes)
    assert compacting.tree_nodes < keeping.tree_nodes
    assert compacting.transaction_location(bytes([7])) == (8, 0)
    assert list(compacting.state_items(b"key-39")) == list(keeping.state_items(b"key-39"))


def test_verified_blocks_imported_into_a_store_give_the_same_chain(
    chain: ChainBuilder, bundle: Path, tmp_path: Path
) -> None:
    store = ChainStore.create(tmp_path / "imported", chain.genesis, chain.engine.genesis_state())
    with store:
        handed = []

        def append(block: Block, certificate: CommitCertificate, replayed: Any) -> None:
            handed.append(block.height)
            store.append_block(block, certificate, replayed.state_writes)

        assert audit(bundle, chain, workers=2, on_block=append).ok
        assert handed == list(range(1, 9))
        assert store.tip == chain.store.tip
        for height in range(1, 9):
            assert store.block(height) == chain.store.block(height)
            assert store.certificate(height) == chain.store.certificate(height)
        assert store.member_set_changes() == chain.store.member_set_changes() == [4, 6]
        assert list(store.state_items(b"")) == list(chain.store.state_items(b""))


# --- every field, mutated ---------------------------------------------------------------------


def leaf_paths(document: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every scalar in a decoded document."""
    if isinstance(document, dict):
        for key, value in document.items():
            yield from leaf_paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from leaf_paths(value, (*prefix, index))
    else:
        yield prefix


def changed(value: Any, variant: int) -> Any:
    """Another value of the same type (never the same value)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        delta = (1, -1, 7, 2**20)[variant % 4]
        return value + delta if value + delta >= 0 else value + 1
    if isinstance(value, bytes):
        if not value or variant % 5 == 4:
            return value + b"\x00"
        position = variant % len(value)
        return value[:position] + bytes([value[position] ^ 0x01]) + value[position + 1 :]
    if isinstance(value, str):
        return "x" + value if variant % 2 else value + "x"
    assert value is None, value
    return 0


def expected_names(path: tuple[Any, ...]) -> tuple[str, ...]:
    """What a failure message must mention when the field at ``path`` of a frame changes."""
    if path[0] == "certificate":
        if path[1] in ("signatures", "view"):
            return ("certificate",)
        return (f"certificate.{path[1]}",)
    if path[1] == "header":
        closest = {
            # A later timestamp still follows the parent's: only the certified hash differs.
            "timestamp_ms": ("header.timestamp_ms", "certificate.block_hash"),
            # Another view has another primary, or comes after the certificate's view.
            "view": ("header.proposer", "certificate.view"),
        }
        return closest.get(path[2], (f"header.{path[2]}",))
    position = path[2]
    return (f"transaction {position}", f"transactions.{position}")


def set_at(document: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        document = document[key]
    document[path[-1]] = value


def get_at(document: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        document = document[key]
    return document


@st.composite
def mutations(draw: st.DrawFn, documents: list[Any]) -> tuple[int, tuple[Any, ...], int]:
    height = draw(st.integers(1, len(documents) - 1))
    paths = sorted(leaf_paths(documents[height]), key=repr)
    return height, draw(st.sampled_from(paths)), draw(st.integers(0, 99))


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_field_changed_in_any_block_is_named_at_its_height(
    chain: ChainBuilder, documents: list[Any], scratch: Path, data: st.DataObject
) -> None:
    height, path, variant = data.draw(mutations(documents))
    tampered = [encoding.unpack(encoding.pack(document)) for document in documents]
    original = get_at(tampered[height], path)
    set_at(tampered[height], path, changed(original, variant))
    report = audit(write_documents(scratch / "tampered.bundle", tampered), chain)
    assert not report.ok, f"{path} changed at height {height} went unnoticed"
    assert {failure.height for failure in report.failures} == {height}, messages(report)
    text = " ".join(messages(report)).lower()
    assert any(name.lower() in text for name in expected_names(path)), (path, messages(report))
    assert report.blocks == height - 1


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (("block", "header", "tx_root"), "height 4: header.tx_root: does not match"),
        (("block", "header", "prev_hash"), "height 4: header.prev_hash: is not the hash"),
        (("block", "header", "members_hash"), "height 4: header.members_hash"),
        (("block", "header", "state_root"), "height 4: header.state_root"),
        (("block", "transactions", 1, "signature"), "height 4: transaction 1: the signature"),
        (("certificate", "block_hash"), "height 4: certificate.block_hash"),
        (("certificate", "signatures", 0, 1), "height 4: certificate: bad signature from"),
    ],
)
def test_the_first_failure_reads_as_height_field_and_what_is_wrong(
    chain: ChainBuilder, documents: list[Any], tmp_path: Path, path: tuple[Any, ...], message: str
) -> None:
    tampered = [encoding.unpack(encoding.pack(document)) for document in documents]
    set_at(tampered[4], path, changed(get_at(tampered[4], path), 0))
    report = audit(write_documents(tmp_path / "b.bundle", tampered), chain)
    assert any(text.startswith(message) for text in messages(report)), messages(report)


def test_a_bad_signature_found_by_a_worker_stops_the_import_before_its_block(
    chain: ChainBuilder, documents: list[Any], tmp_path: Path
) -> None:
    tampered = [encoding.unpack(encoding.pack(document)) for document in documents]
    path = ("block", "transactions", 0, "signature")
    set_at(tampered[6], path, changed(get_at(tampered[6], path), 3))
    handed: list[int] = []
    report = audit(
        write_documents(tmp_path / "b.bundle", tampered),
        chain,
        workers=2,
        on_block=lambda block, certificate, replayed: handed.append(block.height),
    )
    assert "height 6: transaction 0: the signature does not verify" in messages(report)
    assert max(handed, default=0) < 6 and report.blocks < 6


# --- certificates and member sets -------------------------------------------------------------


def test_certificate_edge_cases(chain: ChainBuilder) -> None:
    block = chain.store.block(1)
    members = chain.consortium.genesis.members  # the set in force at height 1
    header = block.header

    def failures(certificate: CommitCertificate) -> list[str]:
        return [
            f"{name}: {detail}"
            for name, detail in certificate_failures(certificate, header, members, chain.chain_id)
        ]

    def signed(signers: list[str], **options: Any) -> CommitCertificate:
        keys = {**chain.consortium.keys, "intrus": derived_key("intrus")}
        return _certificate(chain, block, signers, keys=keys, **options)

    good = signed(["commune-a", "commune-b", "metropole"])
    assert failures(good) == []
    entries = good.signatures
    twice = CommitCertificate.model_construct(
        height=good.height,
        view=good.view,
        block_hash=good.block_hash,
        signatures=(entries[0], entries[0], entries[2]),
    )
    assert failures(twice) == [
        "certificate: 'commune-a' signs twice",
        "certificate: 2 valid signatures of distinct members, 3 needed of 4 members",
    ]
    outsider = signed(["commune-a", "intrus", "metropole"])
    assert "certificate: 'intrus' is not a member at this height" in failures(outsider)
    assert failures(signed(["commune-a", "metropole"])) == [
        "certificate: 2 valid signatures of distinct members, 3 needed of 4 members"
    ]
    three = ["commune-a", "commune-b", "metropole"]
    for wrong in (
        signed(three, signed_view=1),  # signatures for another view than the certificate's
        signed(three, signed_height=2),  # for another height
        signed(three, chain_id=sha256(b"another consortium")),  # for another chain
    ):
        assert failures(wrong)[:3] == [
            "certificate: bad signature from 'commune-a'",
            "certificate: bad signature from 'commune-b'",
            "certificate: bad signature from 'metropole'",
        ]
    later = signed(three).model_copy(update={"height": 2})
    assert "certificate.height: is 2, the block's is 1" in failures(later)
    elsewhere = good.model_copy(update={"block_hash": chain.store.block(2).block_hash})
    assert "certificate.block_hash: is not the hash of the block's header" in failures(elsewhere)
    raised = header.model_copy(update={"view": 3})
    assert (
        "certificate.view",
        "0 is before the view 3 the block was proposed in",
    ) in certificate_failures(good, raised, members, chain.chain_id)


def _certificate(
    chain: ChainBuilder,
    block: Block,
    signers: list[str],
    *,
    keys: dict[str, Any],
    signed_view: int | None = None,
    signed_height: int | None = None,
    chain_id: bytes | None = None,
) -> CommitCertificate:
    """A certificate of ``block`` (view 0) whose signatures may cover something else."""
    from ledger import crypto, domains
    from ledger.model import vote_payload

    domain = crypto.Domain(domains.COMMIT, chain_id or chain.chain_id)
    payload = vote_payload(
        signed_height or block.height,
        block.header.view if signed_view is None else signed_view,
        block.block_hash,
    )
    return CommitCertificate.model_construct(
        height=block.height,
        view=block.header.view,
        block_hash=block.block_hash,
        signatures=tuple(
            (member_id, crypto.sign(keys[member_id], domain, payload))
            for member_id in sorted(signers)
        ),
    )


def _with_certificate(
    documents: list[Any], height: int, certificate: CommitCertificate
) -> list[Any]:
    tampered = [encoding.unpack(encoding.pack(document)) for document in documents]
    tampered[height]["certificate"] = certificate.to_canonical()
    return tampered


def test_certificates_follow_the_member_set_in_force_at_their_height(
    chain: ChainBuilder, documents: list[Any], tmp_path: Path
) -> None:
    store = chain.store
    keys = dict(chain.keys)
    cases = [
        # Height 3 is certified by the four founders: the newcomer cannot sign yet.
        (3, ["commune-a", "commune-b", NEWCOMER], "'commune-c' is not a member at this height"),
        # From height 4 there are five members: three signatures are no longer a quorum.
        (4, ["commune-b", "metropole", "syndicat"], "3 valid signatures of distinct members, 4"),
        # From height 6 commune-a's old key no longer certifies.
        (6, ["commune-a", "commune-b", NEWCOMER, "metropole"], "bad signature from 'commune-a'"),
    ]
    for height, signers, expected in cases:
        block = store.block(height)
        signing_keys = dict(keys)
        if height == 6:
            signing_keys["commune-a"] = keys["commune-a/old"]
        certificate = _certificate(chain, block, signers, keys=signing_keys)
        path = write_documents(
            tmp_path / f"{height}.bundle", _with_certificate(documents, height, certificate)
        )
        report = audit(path, chain)
        assert f"height {height}: certificate: " in messages(report)[0], messages(report)
        assert any(expected in text for text in messages(report)), messages(report)
        assert report.blocks == height - 1


def test_a_duplicate_signer_is_refused_when_the_bundle_is_read(
    chain: ChainBuilder, documents: list[Any], tmp_path: Path
) -> None:
    tampered = [encoding.unpack(encoding.pack(document)) for document in documents]
    signatures = tampered[2]["certificate"]["signatures"]
    signatures[1] = list(signatures[0])
    report = audit(write_documents(tmp_path / "b.bundle", tampered), chain)
    assert messages(report)[0].startswith("height 2: certificate: does not decode:")
    assert "each member once" in messages(report)[0]


# --- what re-execution refuses ----------------------------------------------------------------


def _extended(chain: ChainBuilder, bundle: Path, tmp_path: Path, block: Block, name: str) -> Path:
    """The bundle with a certified ``block`` 9 appended (the store is not changed)."""
    path = tmp_path / f"{name}.bundle"
    shutil.copy(bundle, path)
    with BundleWriter.open(path, chain.genesis) as writer:
        writer.append(block, chain.certify(block))
    return path


def test_a_certified_transaction_that_fails_on_re_execution_is_named(
    chain: ChainBuilder, bundle: Path, tmp_path: Path
) -> None:
    block, _ = chain.next_block(chain.anchor("metropole", "2026-DEL-900"))
    again = chain.anchor("metropole", "2026-DEL-001")  # anchored at height 1 already
    transactions = (again,)
    header = block.header.model_copy(
        update={"tx_root": merkle.root([again.encoded]), "tx_count": 1}
    )
    forged = Block(header=header, transactions=transactions)
    report = audit(_extended(chain, bundle, tmp_path, forged, "dup"), chain)
    assert messages(report) == [
        "height 9: transaction 0: rejected by the deeds contract on re-execution: "
        "duplicate_reference: metropole already anchored an act '2026-DEL-001'"
    ]
    assert report.blocks == 8


def test_a_certified_block_with_a_state_root_execution_does_not_give_is_named(
    chain: ChainBuilder, bundle: Path, tmp_path: Path
) -> None:
    block, _ = chain.next_block(chain.anchor("metropole", "2026-DEL-901"))
    wrong = sha256(b"a state the consortium never had")
    forged = Block(
        header=block.header.model_copy(update={"state_root": wrong}),
        transactions=block.transactions,
    )
    report = audit(_extended(chain, bundle, tmp_path, forged, "root"), chain)
    assert messages(report) == [
        f"height 9: header.state_root: is {wrong.hex()}, re-executing the block gives "
        f"{block.header.state_root.hex()}"
    ]


def test_a_chain_whose_contracts_are_not_installed_cannot_be_replayed(tmp_path: Path) -> None:
    consortium = LocalConsortium.create(
        [("a", "A"), ("b", "B"), ("c", "C"), ("d", "D")],
        seed=b"x",
        contracts=[
            ContractRef(name="membership", version="1.0"),
            ContractRef(name="deeds", version="9.9"),
        ],
    )
    path = tmp_path / "b.bundle"
    BundleWriter.open(path, consortium.genesis).close()
    with pytest.raises(ReplaySetupError, match=r"9\.9"):
        audit_bundle(path, consortium.genesis, EngineReplayer(), workers=1)


# --- bundles that do not fit --------------------------------------------------------------------


def test_a_bundle_of_another_genesis_fails_at_once(chain: ChainBuilder, tmp_path: Path) -> None:
    other = ChainBuilder(tmp_path / "other", seed=b"another consortium")
    try:
        path = other.write_bundle(tmp_path / "other.bundle")
    finally:
        other.close()
    report = audit(path, chain)
    assert messages(report)[0].startswith("genesis: the bundle is of another chain")
    assert report.blocks == 0


def test_a_truncated_bundle_is_reported_after_its_complete_blocks(
    chain: ChainBuilder, bundle: Path, tmp_path: Path
) -> None:
    path = tmp_path / "cut.bundle"
    path.write_bytes(bundle.read_bytes()[:-10])
    report = audit(path, chain)
    assert report.blocks == 7
    assert len(report.failures) == 1
    assert messages(report)[0].startswith(
        "height 8: bundle: truncated: the file ends inside frame 8"
    )


def test_heights_must_follow_each_other(
    chain: ChainBuilder, documents: list[Any], tmp_path: Path
) -> None:
    skipped = write_documents(tmp_path / "b.bundle", documents[:3] + documents[4:])
    report = audit(skipped, chain)
    assert "height 3: header.height: is 4, expected 3" in messages(report)
    assert "height 3: header.prev_hash: is not the hash of block 2" in messages(report)


# --- --since: history is never rewritten --------------------------------------------------------


def test_a_bundle_extending_an_older_one_passes(
    chain: ChainBuilder, bundle: Path, tmp_path: Path
) -> None:
    old = chain.write_bundle(tmp_path / "old.bundle", up_to=5)
    report = audit(bundle, chain, since=old)
    assert report.ok and report.since_height == 5
    assert audit(bundle, chain, since=bundle).ok


def test_a_rewritten_history_is_caught(chain: ChainBuilder, bundle: Path, tmp_path: Path) -> None:
    # The same consortium, a different block 2: a valid chain on its own, but not the history
    # the monitor kept.
    fork = ChainBuilder(tmp_path / "fork")
    try:
        for block in chain.store.blocks(1, 1):
            fork.store.append_block(block, chain.store.certificate(1), _writes_of(chain, block))
        fork.block(fork.anchor("metropole", "2026-DEL-777"))
        forked = fork.write_bundle(tmp_path / "fork.bundle")
    finally:
        fork.close()
    assert audit(forked, chain).ok
    report = audit(forked, chain, since=bundle)
    assert messages(report)[0].startswith("height 2: block_hash: differs from the older bundle")
    shorter = chain.write_bundle(tmp_path / "short.bundle", up_to=4)
    report = audit(shorter, chain, since=bundle)
    assert messages(report) == ["since: the older bundle reaches height 8, this one only 4"]


def _writes_of(chain: ChainBuilder, block: Block) -> dict[bytes, bytes | None]:
    state = MemoryState(chain.engine.genesis_state())
    result = chain.engine.process_proposal(state, block)
    return result.state_writes


# --- open data ----------------------------------------------------------------------------------


def test_one_row_per_act_from_the_store_or_the_replayed_bundle(
    chain: ChainBuilder, bundle: Path
) -> None:
    rows = list(act_rows(chain.store))
    replayer = EngineReplayer()
    assert audit_bundle(bundle, chain.genesis, replayer, workers=1).ok
    assert list(act_rows(replayer.state)) == rows
    assert [(row["issuer"], row["reference"]) for row in rows] == [
        ("commune-a", "2026/ARR/001"),
        ("commune-a", "2026/ARR/002"),
        ("commune-c", "2026-DEC-001"),
        ("metropole", "2026-DEL-001"),
        ("metropole", "2026-DEL-002"),
    ]
    by_reference = {row["reference"]: row for row in rows}
    first = by_reference["2026-DEL-001"]
    anchoring = chain.store.block(1).transactions[0]
    assert first == {
        "issuer": "metropole",
        "reference": "2026-DEL-001",
        "kind": "deliberation",
        "act_date": "2026-03-12",
        "title": anchoring.args["title"],
        "legal_basis": "Code général des collectivités territoriales, art. L2121-29",
        "url": "https://valbrune.example/actes/2026-DEL-001.pdf",
        "digest": anchoring.args["digest"].hex(),
        "status": "amended",
        "status_height": 5,
        "anchored_height": 1,
        "anchored_at": "2026-01-01T00:00:01.000Z",
        "anchoring_tx_id": anchoring.tx_id.hex(),
        "amended_by": ["2026-DEL-002"],
        "amends": [],
        "superseded_by": None,
        "supersedes": [],
        "has_person_commitment": False,
    }
    assert by_reference["2026-DEL-002"]["amends"] == ["2026-DEL-001"]
    assert by_reference["2026-DEC-001"]["status"] == "withdrawn"
    assert by_reference["2026-DEC-001"]["status_height"] == 7
    assert by_reference["2026/ARR/001"]["has_person_commitment"] is True
    assert list(rows[0]) == list(ACT_COLUMNS)


# --- the commands -------------------------------------------------------------------------------


def sceau(*arguments: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SCEAU, *(str(argument) for argument in arguments)],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )


def test_export_audit_import_and_acts_as_a_user_runs_them(tmp_path: Path) -> None:
    source = reference_chain(tmp_path / "node")
    genesis_file = tmp_path / "genesis.json"
    genesis_file.write_text(source.genesis.model_dump_json(indent=2))
    tip = source.store.tip
    source.close()
    bundle, report_file = tmp_path / "chain.bundle", tmp_path / "report.json"

    exported = sceau("export", bundle, "--data-dir", tmp_path / "node")
    assert exported.returncode == 0, exported.stderr
    assert "wrote 8 blocks" in exported.stdout and "Traceback" not in exported.stderr

    audited = sceau("audit", bundle, "--genesis", genesis_file, "--report", report_file)
    assert audited.returncode == 0, audited.stderr
    assert "OK: 8 blocks" in audited.stdout
    assert "member set changed from heights: 4, 6" in audited.stdout
    report = json.loads(report_file.read_text())
    assert report["ok"] is True and report["blocks"] == 8 and report["failures"] == []

    documents = [encoding.unpack(body) for body in read_frame_bodies(bundle)]
    documents[5]["block"]["header"]["tx_root"] = bytes(32)
    tampered = write_documents(tmp_path / "tampered.bundle", documents)
    failed = sceau("audit", tampered, "--genesis", genesis_file, "--report", report_file)
    assert failed.returncode == 1
    assert "FAILED — height 5: header.tx_root: does not match the transactions" in failed.stderr
    assert "verified before it: blocks 1 to 4" in failed.stderr
    assert json.loads(report_file.read_text())["failures"][0]["height"] == 5

    imported = sceau(
        "import", bundle, "--data-dir", tmp_path / "imported", "--genesis", genesis_file
    )
    assert imported.returncode == 0, imported.stderr
    assert f"block_hash {tip.block_hash.hex()}" in imported.stdout
    with ChainStore.open(tmp_path / "imported" / "chain") as store:
        assert store.tip == tip
        bodies = list(read_frame_bodies(bundle))[1:]
        assert [block.block_hash for block in store.blocks()] == [_hash(body) for body in bodies]

    cut = tmp_path / "cut.bundle"
    cut.write_bytes(bundle.read_bytes()[:-10])
    assert sceau_main(["export", str(cut), "--data-dir", str(tmp_path / "node")]) == 2
    assert sceau_main(["export", str(cut), "--data-dir", str(tmp_path / "node"), "--repair"]) == 0
    assert cut.read_bytes() == bundle.read_bytes()

    refused = sceau("import", tampered, "--data-dir", tmp_path / "refused")
    assert refused.returncode == 1 and "height 5: header.tx_root" in refused.stderr
    assert not (tmp_path / "refused" / "chain").exists()

    table = tmp_path / "acts.csv"
    acts = sceau(
        "export", "acts", "--format", "csv", "--data-dir", tmp_path / "imported", "--out", table
    )
    assert acts.returncode == 0, acts.stderr
    data = table.read_bytes().decode("utf-8")  # UTF-8, CRLF line ends (RFC 4180)
    assert data.startswith(",".join(ACT_COLUMNS) + "\r\n")
    assert data.count("\r\n") == 6 and "\n" not in data.replace("\r\n", "")
    rows = list(csv.DictReader(io.StringIO(data, newline="")))
    assert len(rows) == 5 and "5 acts as of height 8" in acts.stderr
    first = next(row for row in rows if row["reference"] == "2026-DEL-001")
    assert first["title"] == 'Délibération 2026-DEL-001, "quoted", with a comma'
    assert first["amended_by"] == "2026-DEL-002" and first["has_person_commitment"] == "false"
    assert first["superseded_by"] == ""

    lines = sceau("export", "acts", "--format", "jsonl", "--bundle", bundle)
    assert lines.returncode == 0, lines.stderr
    documents = [json.loads(line) for line in lines.stdout.splitlines()]
    assert [document["reference"] for document in documents] == [row["reference"] for row in rows]
    assert documents[3]["amended_by"] == ["2026-DEL-002"] and documents[3]["url"].startswith(
        "https"
    )


def _hash(body: bytes) -> bytes:
    return Block.from_canonical(encoding.unpack(body)["block"]).block_hash


def test_export_explains_a_locked_chain_and_an_unreachable_node(
    chain: ChainBuilder, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The module's chain store is open in this process: like a running node, it holds the lock.
    status = sceau_main(["export", str(tmp_path / "x.bundle"), "--data-dir", str(chain.store.path)])
    assert status == 2
    error = capsys.readouterr().err
    assert "locked: is its node running?" in error and "--api" in error

    status = sceau_main(["export", str(tmp_path / "y.bundle"), "--api", "http://127.0.0.1:9"])
    assert status == 2
    assert "cannot reach" in capsys.readouterr().err
    status = sceau_main(["audit", str(bundle), "--genesis", str(tmp_path / "missing.json")])
    assert status == 2 and "cannot read genesis file" in capsys.readouterr().err
    status = sceau_main(["export", "acts", "--data-dir", str(tmp_path)])
    assert status == 2 and "--format" in capsys.readouterr().err


# --- the benchmark ------------------------------------------------------------------------------


def test_the_audit_benchmark_quick_run_reports_its_figures(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "audit.py"
    completed = subprocess.run(
        [sys.executable, str(script), "--quick", "--cache", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["benchmark"] == "audit" and report["quick"] is True
    assert report["chain"]["transactions"] == report["audit"]["transactions"] == 200
    assert report["chain"]["cached"] is False and report["chain"]["build_s"] > 0
    assert report["audit"]["ok"] is True and report["audit"]["transactions_per_s"] > 0
    cpu = report["audit"]["cpu_us_per_transaction"]
    assert cpu["main"] > 0 and cpu["total"] == pytest.approx(cpu["main"] + cpu["workers"], abs=0.2)
    assert report["ed25519"]["verify_per_s_per_core"] > 0
    assert report["cores"] >= 1 and report["audit"]["workers"] == report["cores"]
    bound = report["ed25519"]["verify_per_s_per_core"] * report["cores"]
    assert report["bound_tx_per_s"] == pytest.approx(bound, rel=1e-3)
    assert report["ratio"] == pytest.approx(
        report["audit"]["transactions_per_s"] / report["bound_tx_per_s"], rel=1e-2, abs=1e-4
    )
    for key in ("export", "machine", "libraries", "timestamp"):
        assert report[key], key
