"""Chain bundles (ledger/bundle.py): the byte format, appending, truncation and limits.

The chain is a real one: a consortium of four collectivities running membership 1.0 and
deeds 1.0, blocks executed by the engine over a LevelDB ``ChainStore`` and certified with the
members' keys, with an admission (a fifth member certifies from height 4) and a key rotation
(from height 6). :class:`ChainBuilder` and :func:`reference_chain` are shared with
tests/test_audit.py.
"""

from __future__ import annotations

import hashlib
import itertools
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.engine import Engine
from contracts.registry import load_contracts
from ledger import crypto, domains, encoding, merkle
from ledger.bundle import (
    BUNDLE_FORMAT,
    FRAME_BYTES_MAX,
    BundleError,
    BundleReader,
    BundleWriter,
    TruncatedBundleError,
    block_frame,
    genesis_frame,
    parse_frames,
    read_frame_bodies,
)
from ledger.devchain import LocalConsortium
from ledger.model import (
    Block,
    BlockHeader,
    CommitCertificate,
    ConsensusParameters,
    ContractRef,
    Member,
    ModelDecodeError,
    Transaction,
    quorum_size,
    sha256,
    vote_payload,
)
from ledger.store import ChainStore

MEMBERSHIP_1_0 = ContractRef(name="membership", version="1.0")
DEEDS_1_0 = ContractRef(name="deeds", version="1.0")
MEMBERS = (
    ("metropole", "Métropole de Valbrune"),
    ("commune-a", "Commune d'Aubrac"),
    ("commune-b", "Commune de Belcastel"),
    ("syndicat", "Syndicat des eaux du Valbrunois"),
)
NEWCOMER = "commune-c"
SEED = b"sceau audit tests"
BLOCK_INTERVAL_MS = 1_000


def derived_key(label: str) -> crypto.PrivateKey:
    """A deterministic key that is no genesis member's."""
    return crypto.key_from_seed(sha256(SEED + b"/extra/" + label.encode()))


class ChainBuilder:
    """A chain built block by block with the real engine, store and member keys.

    ``keys`` follows the member set: an admitted member's key is added, a rotated key
    replaced, so that certificates are signed by the set in force at each height.
    """

    def __init__(self, folder: Path, *, seed: bytes = SEED, contracts: Sequence[ContractRef] = ()):
        self.consortium = LocalConsortium.create(
            MEMBERS, seed=seed, contracts=contracts or [MEMBERSHIP_1_0, DEEDS_1_0]
        )
        self.genesis = self.consortium.genesis
        self.chain_id = self.genesis.chain_id
        self.keys: dict[str, crypto.PrivateKey] = dict(self.consortium.keys)
        self.engine = Engine(self.genesis, load_contracts(self.genesis))
        self.store = ChainStore.create(folder / "chain", self.genesis, self.engine.genesis_state())
        self.nonces = itertools.count()

    def close(self) -> None:
        self.store.close()

    # --- transactions ---

    def transaction(
        self, signer: str | crypto.PrivateKey, contract: str, action: str, **args: Any
    ) -> Transaction:
        key = self.keys[signer] if isinstance(signer, str) else signer
        return Transaction.create(
            key,
            chain_id=self.chain_id,
            contract=contract,
            action=action,
            args=args,
            nonce=next(self.nonces),
            expiry_height=1_000_000,
        )

    def anchor(self, issuer: str, reference: str, **more: Any) -> Transaction:
        args: dict[str, Any] = {
            "issuer": issuer,
            "reference": reference,
            "kind": "deliberation",
            "digest": hashlib.sha256(f"{issuer}/{reference}".encode()).digest(),
            "act_date": "2026-03-12",
            "title": f'Délibération {reference}, "quoted", with a comma',
        }
        args.update(more)
        return self.transaction(issuer, "deeds", "anchor", **args)

    # --- blocks ---

    def members(self) -> tuple[Member, ...]:
        """The member set in force at the next height."""
        return self.engine.members(self.store)

    def certify(
        self,
        block: Block,
        *,
        view: int | None = None,
        signers: Sequence[str] | None = None,
        keys: dict[str, crypto.PrivateKey] | None = None,
        chain_id: bytes | None = None,
        height: int | None = None,
    ) -> CommitCertificate:
        members = self.members()
        view = block.header.view if view is None else view
        if signers is None:
            signers = [member.id for member in members][: quorum_size(len(members))]
        keys = keys or self.keys
        domain = crypto.Domain(domains.COMMIT, chain_id or self.chain_id)
        height = block.height if height is None else height
        payload = vote_payload(height, view, block.block_hash)
        return CommitCertificate(
            height=block.height,
            view=view,
            block_hash=block.block_hash,
            signatures=tuple(
                (member_id, crypto.sign(keys[member_id], domain, payload))
                for member_id in sorted(signers)
            ),
        )

    def next_block(self, *transactions: Transaction, view: int = 0) -> tuple[Block, Any]:
        """The next block as a correct primary builds it (not appended), with its writes."""
        members = self.members()
        height = self.store.height + 1
        timestamp_ms = self.genesis.created_at_ms + height * BLOCK_INTERVAL_MS
        proposer = members[view % len(members)].id
        result = self.engine.execute(
            self.store,
            transactions,
            height=height,
            timestamp_ms=timestamp_ms,
            proposer=proposer,
        )
        assert not result.rejected, result.rejected[0][1]
        header = BlockHeader(
            chain_id=self.chain_id,
            height=height,
            prev_hash=self.store.tip.block_hash,
            timestamp_ms=timestamp_ms,
            proposer=proposer,
            view=view,
            tx_count=len(result.accepted),
            tx_root=merkle.root([transaction.encoded for transaction in result.accepted]),
            state_root=result.state_root,
            members_hash=result.members_hash,
        )
        return Block(header=header, transactions=result.accepted), result.state_writes

    def block(
        self, *transactions: Transaction, view: int = 0, certificate_view: int | None = None
    ) -> Block:
        """Execute, certify and append the next block."""
        block, writes = self.next_block(*transactions, view=view)
        certificate = self.certify(block, view=certificate_view)
        self.store.append_block(block, certificate, writes)
        return block

    def write_bundle(self, path: Path, *, up_to: int | None = None) -> Path:
        with BundleWriter.open(path, self.genesis) as writer:
            for block in self.store.blocks(writer.height + 1, up_to):
                writer.append(block, self.store.certificate(block.height))
        return path


def reference_chain(folder: Path, *, seed: bytes = SEED) -> ChainBuilder:
    """Eight blocks: anchors, an admission, a key rotation, status changes, an empty block.

    The member set changes twice: the admission of commune-c passes at height 3 (a set of
    five, quorum four, from height 4) and commune-a's key rotation at height 5 (from 6).
    """
    chain = ChainBuilder(folder, seed=seed)
    chain.block(
        chain.anchor(
            "metropole",
            "2026-DEL-001",
            legal_basis="Code général des collectivités territoriales, art. L2121-29",
            url="https://valbrune.example/actes/2026-DEL-001.pdf",
        ),
        chain.anchor("commune-a", "2026/ARR/001", kind="permit", person_commitment=bytes(32)),
    )
    newcomer = Member(
        id=NEWCOMER,
        name="Commune de Conques",
        public_key=crypto.public_key_bytes(derived_key(NEWCOMER)),
        endpoint="10.0.0.5:7000",
    )
    proposal = chain.transaction(
        "metropole",
        "membership",
        "propose",
        proposer="metropole",
        change={"kind": "admit", "member": newcomer.to_canonical()},
    )
    chain.block(proposal)
    chain.block(
        *(
            chain.transaction(
                voter,
                "membership",
                "vote",
                proposal_id=proposal.tx_id,
                voter=voter,
                approve=True,
            )
            for voter in ("commune-a", "commune-b")
        )
    )
    chain.keys[NEWCOMER] = derived_key(NEWCOMER)
    assert len(chain.members()) == 5
    chain.block(
        chain.anchor(NEWCOMER, "2026-DEC-001", kind="decision"),
        chain.anchor("metropole", "2026-DEL-002"),
        view=1,
    )
    new_key = derived_key("commune-a/2026")
    chain.block(
        chain.transaction(
            "commune-a",
            "membership",
            "rotate_key",
            member_id="commune-a",
            new_public_key=crypto.public_key_bytes(new_key),
        ),
        chain.transaction(
            "metropole",
            "deeds",
            "amend",
            issuer="metropole",
            reference="2026-DEL-001",
            by_reference="2026-DEL-002",
        ),
    )
    chain.keys["commune-a/old"] = chain.keys["commune-a"]
    chain.keys["commune-a"] = new_key
    chain.block(chain.anchor("commune-a", "2026/ARR/002", kind="permit"), certificate_view=2)
    chain.block(
        chain.transaction(
            NEWCOMER,
            "deeds",
            "withdraw",
            issuer=NEWCOMER,
            reference="2026-DEC-001",
            reason="erreur matérielle",
        )
    )
    chain.block()
    return chain


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Any:
    built = reference_chain(tmp_path_factory.mktemp("bundle-chain"))
    yield built
    built.close()


@pytest.fixture
def bundle(chain: ChainBuilder, tmp_path: Path) -> Path:
    return chain.write_bundle(tmp_path / "chain.bundle")


# --- the format, byte by byte -----------------------------------------------------------------


def test_a_bundle_is_length_prefixed_canonical_frames(chain: ChainBuilder, bundle: Path) -> None:
    data = bundle.read_bytes()
    offset = 0
    bodies = []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        bodies.append(data[offset + 4 : offset + 4 + length])
        offset += 4 + length
    assert offset == len(data)
    assert len(bodies) == 1 + chain.store.height
    assert bodies[0] == encoding.pack(
        {"format": BUNDLE_FORMAT, "genesis": chain.genesis.to_canonical()}
    )
    assert bodies[0] == genesis_frame(chain.genesis)[4:]
    for height, body in enumerate(bodies[1:], start=1):
        block, certificate = chain.store.block(height), chain.store.certificate(height)
        assert body == encoding.pack(
            {"block": block.to_canonical(), "certificate": certificate.to_canonical()}
        )
        assert encoding.unpack(body)["block"]["header"] == block.header.to_canonical()
    assert list(read_frame_bodies(bundle)) == bodies


def test_reading_gives_back_the_genesis_every_block_and_certificate(
    chain: ChainBuilder, bundle: Path
) -> None:
    with BundleReader(bundle) as reader:
        assert reader.genesis == chain.genesis
        entries = list(reader)
        assert reader.bytes_read == reader.size_bytes == bundle.stat().st_size
    assert [entry.frame for entry in entries] == list(range(1, chain.store.height + 1))
    for entry in entries:
        assert entry.block == chain.store.block(entry.frame)
        assert entry.certificate == chain.store.certificate(entry.frame)


def test_a_piece_of_a_bundle_decodes_with_its_frame_numbers(
    chain: ChainBuilder, bundle: Path
) -> None:
    frames = [genesis_frame(chain.genesis)] + [
        block_frame(chain.store.block(height), chain.store.certificate(height))
        for height in (1, 2, 3)
    ]
    genesis, entries = parse_frames(b"".join(frames), 0)
    assert genesis == chain.genesis and [entry.frame for entry in entries] == [1, 2, 3]
    genesis, entries = parse_frames(b"".join(frames[2:]), 2)
    assert genesis is None and [entry.block.height for entry in entries] == [2, 3]
    with pytest.raises(TruncatedBundleError):
        parse_frames(b"".join(frames)[:-1], 0)


# --- appending --------------------------------------------------------------------------------


def test_opening_an_existing_bundle_appends_only_the_later_blocks(
    chain: ChainBuilder, bundle: Path, tmp_path: Path
) -> None:
    partial = chain.write_bundle(tmp_path / "partial.bundle", up_to=3)
    with BundleReader(partial) as reader:
        assert [entry.frame for entry in reader] == [1, 2, 3]
    with BundleWriter.open(partial, chain.genesis) as writer:
        assert writer.height == 3
    chain.write_bundle(partial)
    assert partial.read_bytes() == bundle.read_bytes()
    chain.write_bundle(partial)  # already complete: nothing to append
    assert partial.read_bytes() == bundle.read_bytes()


def test_a_bundle_of_another_chain_is_not_appended_to(chain: ChainBuilder, tmp_path: Path) -> None:
    other = ChainBuilder(tmp_path / "other", seed=b"another consortium")
    try:
        other.block(other.anchor("metropole", "X-1"))
        path = other.write_bundle(tmp_path / "other.bundle")
    finally:
        other.close()
    before = path.read_bytes()
    with pytest.raises(BundleError, match="another chain"):
        BundleWriter.open(path, chain.genesis)
    assert path.read_bytes() == before


def test_append_refuses_a_block_that_does_not_extend_the_bundle(
    chain: ChainBuilder, tmp_path: Path
) -> None:
    store = chain.store
    with BundleWriter.open(tmp_path / "b.bundle", chain.genesis) as writer:
        with pytest.raises(BundleError, match="does not follow"):
            writer.append(store.block(2), store.certificate(2))
        writer.append(store.block(1), store.certificate(1))
        with pytest.raises(BundleError, match="certificate is for another block"):
            writer.append(store.block(2), store.certificate(3))
        forked = store.block(2).header.model_copy(update={"prev_hash": sha256(b"elsewhere")})
        block = Block(header=forked, transactions=store.block(2).transactions)
        with pytest.raises(BundleError, match="prev_hash"):
            writer.append(block, store.certificate(2))
        assert writer.height == 1


# --- truncation -------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", ["inside the length", "inside the body", "one byte short"])
def test_a_truncated_last_frame_is_reported_and_repaired_only_when_asked(
    chain: ChainBuilder, bundle: Path, cut: str
) -> None:
    data = bundle.read_bytes()
    store = chain.store
    sizes = [len(genesis_frame(chain.genesis))] + [
        len(block_frame(store.block(height), store.certificate(height)))
        for height in range(1, store.height + 1)
    ]
    complete = sum(sizes[:6])  # the genesis and blocks 1 to 5
    end = {
        "inside the length": complete + 2,
        "inside the body": complete + 40,
        "one byte short": complete + sizes[6] - 1,
    }[cut]
    bundle.write_bytes(data[:end])

    with BundleReader(bundle) as reader:
        read = []
        with pytest.raises(TruncatedBundleError) as raised:
            for entry in reader:
                read.append(entry.frame)
    assert read == [1, 2, 3, 4, 5]
    assert raised.value.frames == 6 and raised.value.valid_bytes == complete
    assert "frame 6" in str(raised.value)

    with pytest.raises(TruncatedBundleError):
        BundleWriter.open(bundle, chain.genesis)
    assert len(bundle.read_bytes()) == end  # refused: untouched
    with BundleWriter.open(bundle, chain.genesis, repair=True) as writer:
        assert writer.height == 5 and writer.size_bytes == complete
    chain.write_bundle(bundle)
    assert bundle.read_bytes() == data


@pytest.mark.parametrize("cut", [2, 4, 40], ids=["inside the length", "at the body", "inside"])
def test_a_bundle_cut_inside_its_genesis_frame_is_refused_even_with_repair(
    chain: ChainBuilder, bundle: Path, cut: int
) -> None:
    # Repairing it would cut it to 0 bytes, which is no bundle at all: refuse, and leave it.
    bundle.write_bytes(bundle.read_bytes()[:cut])
    for repair in (False, True):
        with pytest.raises(BundleError, match="ends inside its first frame, the genesis") as raised:
            BundleWriter.open(bundle, chain.genesis, repair=repair)
        assert not isinstance(raised.value, TruncatedBundleError)
        assert len(bundle.read_bytes()) == cut


def test_sceau_export_repair_refuses_a_bundle_cut_inside_its_genesis_frame(
    chain: ChainBuilder, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from node.tools.cli import main

    # A copy of the open store's folder: every write was synced, so it opens like after a crash.
    data_dir = tmp_path / "copy"
    shutil.copytree(chain.store.path, data_dir / "chain", ignore=shutil.ignore_patterns("LOCK"))
    cut = bundle.read_bytes()[:40]
    bundle.write_bytes(cut)
    status = main(["export", str(bundle), "--data-dir", str(data_dir), "--repair"])
    assert status == 2
    error = capsys.readouterr().err
    assert error.startswith("sceau: error: ") and "cannot be repaired" in error
    assert error.count("\n") == 1 and "Traceback" not in error
    assert bundle.read_bytes() == cut


# --- limits and malformed bundles ---------------------------------------------------------------


def test_the_frame_limit_holds_the_largest_block_a_genesis_may_allow() -> None:
    field = ConsensusParameters.model_fields["block_bytes_max"]
    ceiling = next(constraint.le for constraint in field.metadata if hasattr(constraint, "le"))
    ConsensusParameters(block_bytes_max=ceiling)
    with pytest.raises(ValueError):
        ConsensusParameters(block_bytes_max=ceiling + 1)
    # The block, its header and array headers, and a certificate of 256 signatures.
    assert ceiling + 64 * 1024 + 256 * 200 <= FRAME_BYTES_MAX


def _bundle_with(path: Path, genesis_body: bytes, *bodies: bytes) -> Path:
    path.write_bytes(
        b"".join(struct.pack(">I", len(body)) + body for body in (genesis_body, *bodies))
    )
    return path


def test_a_frame_over_the_limit_is_refused_before_its_body_is_read(
    chain: ChainBuilder, tmp_path: Path
) -> None:
    path = tmp_path / "huge.bundle"
    path.write_bytes(genesis_frame(chain.genesis) + struct.pack(">I", FRAME_BYTES_MAX + 1) + b"x")
    with BundleReader(path) as reader, pytest.raises(BundleError) as raised:
        list(reader)
    assert not isinstance(raised.value, TruncatedBundleError)
    assert raised.value.frame == 1 and "declares a body of" in str(raised.value)
    path.write_bytes(genesis_frame(chain.genesis) + struct.pack(">I", 0))
    with BundleReader(path) as reader, pytest.raises(BundleError, match="frame 1"):
        list(reader)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b'{"format": "sceau-bundle/v1"}\n', "declares a body"),
        (struct.pack(">I", 3) + b"\x93\x01\x02", "not a sceau bundle"),
        (struct.pack(">I", 2) + b"\x81\xa1", "not a sceau bundle"),
    ],
)
def test_a_file_that_is_not_a_bundle_is_named_as_such(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "not.bundle"
    path.write_bytes(content)
    with pytest.raises(BundleError, match=message):
        BundleReader(path)


def test_frames_must_be_canonical_maps_of_exactly_their_fields(
    chain: ChainBuilder, tmp_path: Path
) -> None:
    genesis_body = genesis_frame(chain.genesis)[4:]
    block, certificate = chain.store.block(1), chain.store.certificate(1)
    good = {"block": block.to_canonical(), "certificate": certificate.to_canonical()}
    cases = {
        "another format": (
            encoding.pack({"format": "sceau-bundle/v3", "genesis": chain.genesis.to_canonical()}),
            [],
            "this version reads",
        ),
        "a field too many": (
            genesis_body,
            [encoding.pack({**good, "note": "x"})],
            "expected a map of",
        ),
        "unsorted keys": (
            genesis_body,
            [
                b"\x82\xabcertificate"
                + encoding.pack(good["certificate"])
                + b"\xa5block"
                + encoding.pack(good["block"])
            ],
            "not canonical",
        ),
        "a block that is not a block": (
            genesis_body,
            [encoding.pack({**good, "block": {"header": 1, "transactions": []}})],
            "block does not decode",
        ),
    }
    for name, (first, bodies, message) in cases.items():
        path = _bundle_with(tmp_path / f"{name}.bundle", first, *bodies)
        with pytest.raises(BundleError, match=message), BundleReader(path) as reader:
            list(reader)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_bytes_give_bundle_errors_never_anything_else(
    chain: ChainBuilder, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    original = _small_bundle_bytes(chain)
    damaged = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(damaged) - 1))
        damaged[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(damaged)))
    path = tmp_path_factory.mktemp("damaged") / "b.bundle"
    path.write_bytes(bytes(damaged[:cut]))
    try:
        with BundleReader(path) as reader:
            for entry in reader:
                assert isinstance(entry.block, Block)
    except BundleError:
        pass


_SMALL: dict[str, bytes] = {}


def _small_bundle_bytes(chain: ChainBuilder) -> bytes:
    if "bytes" not in _SMALL:
        store = chain.store
        _SMALL["bytes"] = genesis_frame(chain.genesis) + b"".join(
            block_frame(store.block(height), store.certificate(height)) for height in (1, 2)
        )
    return _SMALL["bytes"]


def test_a_model_error_in_a_frame_names_the_field(chain: ChainBuilder, tmp_path: Path) -> None:
    block = chain.store.block(1).to_canonical()
    block["header"]["proposer"] = "Not A Member Id"
    body = encoding.pack({"block": block, "certificate": chain.store.certificate(1).to_canonical()})
    path = _bundle_with(tmp_path / "b.bundle", genesis_frame(chain.genesis)[4:], body)
    with BundleReader(path) as reader, pytest.raises(BundleError) as raised:
        list(reader)
    assert raised.value.part == "block" and raised.value.frame == 1
    assert "header.proposer" in str(raised.value)
    with pytest.raises(ModelDecodeError):
        Block.from_canonical(block)
