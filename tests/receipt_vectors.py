"""Shared receipt vectors: what the Python and the JavaScript verifiers must both conclude.

``python -m tests.receipt_vectors`` (or ``python tests/receipt_vectors.py``) builds a real
chain, deterministically, and rewrites ``tests/data/receipt_vectors.json``: the chain's
genesis and, for each vector, a receipt in its JSON form (the one an application keeps, or
``sceau receipt --out`` writes), maybe a document and a witness policy, and what
:func:`ledger.receipt.verify_receipt` concludes about it (``expect``). The receipts of the
JavaScript verifier (``node/web/verify.js``) are held to the same file by
``tests/test_js_verifier.py``, which also checks that Python still agrees with it and that
regenerating gives the same bytes: the file cannot drift from either verifier.

The chain is made by the real contract engine (membership 1.2, deeds 1.0) over a real LevelDB
store, every block certified by a quorum of the member set in force, with fixed keys and
times::

    height 1  M-1, an act of metropole-valbrune signed with its node key; metropole delegates
              deeds.issue to its records system
    height 2  saint-amand (with a SIRET) and hautmont (without) admitted as issuers; M-2,
              an act of metropole signed by its records system
    height 3  SA-3 signed by saint-amand's own key; saint-amand delegates deeds.issue to its
              records system; H-3 signed by hautmont's own key
    height 4  SA-4 signed by saint-amand's records system; the header format 2 is scheduled
              from height 6
    height 5  M-5 amends M-1; hautmont suspended; saint-leger moves its node (a member-set
              change, in force at 6)
    height 6  M-6, the first format 2 header; M-5 withdrawn
    height 7  V-7, an act of ville-valbrune

Then the tip's checkpoint is signed by three members and cosigned by one witness, and every
receipt is built from the store with :func:`ledger.receipt.build_receipt`. The tampered vectors
each change one thing in a genuine receipt's JSON (or in the genesis it is checked against);
two come from a block 6 that a quorum certified against the contracts' rules (an act of a
suspended issuer, of an issuer never admitted), built with the same functions.

The file: ``{"format": "sceau-receipt-vectors/v1", "genesis": {…}, "vectors": [...]}``, each
vector ``{"name", "description", "receipt" (its JSON form) or "receipt_text" (for what an
object cannot hold: a repeated key), "document_hex"?, "witnesses"? ({"keys": [vkey], "quorum":
K}), "genesis"? (another genesis to check it against), "expect", "js_expect"?}``. ``expect`` is
``{"ok": true, …}`` with the key fields of what the receipt proved, named as the JavaScript
result names them, or ``{"ok": false, "step", "message"}``; ``js_expect``, where present, is what
the JavaScript verifier concludes by design instead (an integer beyond 2^53).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: python tests/receipt_vectors.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contracts.engine import Engine
from contracts.registry import load_contracts, receipt_anchors
from ledger import crypto, encoding, merkle
from ledger.devchain import LocalConsortium
from ledger.logcheck import WitnessPolicy
from ledger.model import (
    Block,
    BlockHeader,
    ContractRef,
    Genesis,
    Member,
    Transaction,
    members_hash,
    sha256,
)
from ledger.namespace import MEMBERS_STATE_KEY
from ledger.note import Checkpoint, KeyType, Note, NoteVerifierKey, cosign, origin_for, sign_note
from ledger.receipt import (
    Receipt,
    ReceiptError,
    build_receipt,
    receipt_from_block,
    verify_receipt,
)
from ledger.store import ChainStore
from tests.logchain import commit_block

VECTORS_PATH = Path(__file__).resolve().parent / "data" / "receipt_vectors.json"
FORMAT = "sceau-receipt-vectors/v1"

MEMBERS = (
    ("metropole-valbrune", "Métropole de Valbrune"),
    ("ville-valbrune", "Ville de Valbrune"),
    ("saint-leger-les-vignes", "Commune de Saint-Léger-les-Vignes"),
    ("syndicat-eaux-valbrunois", "Syndicat des eaux du Valbrunois"),
)
METROPOLE, VILLE, SAINT_LEGER, SYNDICAT = (member_id for member_id, _ in MEMBERS)
CONTRACTS = (
    ContractRef(name="membership", version="1.2"),
    ContractRef(name="deeds", version="1.0"),
)
SEED = b"sceau-receipt-vectors"
CREATED_AT_MS = 1_796_025_600_000
FIRST_BLOCK_MS = 1_796_029_200_000
BLOCK_INTERVAL_MS = 60_000
COSIGNED_AT_S = 1_796_030_000
SAINT_AMAND, HAUTMONT = "saint-amand", "hautmont"
SAINT_AMAND_SIRET = "21590544900012"
METROPOLE_RECORDS, SAINT_AMAND_RECORDS = "metropole/records", "saint-amand/records"
WITNESS, OTHER_WITNESS = "witness.example.org", "other-witness.example.org"
FORMAT_2_HEIGHT = 6
ANCHORS = receipt_anchors()


def key_for(label: str) -> crypto.PrivateKey:
    """A deterministic key no genesis member holds (issuers, delegates, witnesses)."""
    return crypto.key_from_seed(sha256(SEED + b"/" + label.encode()))


def document_of(reference: str) -> bytes:
    """The document an act anchors: a small text standing for its PDF."""
    return f"%PDF-1.7\n% Acte {reference} (vecteurs de reçus sceau)\n".encode()


def witness_vkey(name: str) -> str:
    """The cosignature verifier key of the test witness ``name``."""
    return NoteVerifierKey.for_private_key(name, KeyType.COSIGNATURE_V1, key_for(name)).vkey


@dataclass(repr=False)
class VectorChain:
    """The chain the vectors come from, and the keys that built it."""

    consortium: LocalConsortium
    keys: dict[str, crypto.PrivateKey]
    engine: Engine
    store: ChainStore
    nonce: int = 0
    acts: dict[str, Transaction] = field(default_factory=dict)
    others: dict[str, Transaction] = field(default_factory=dict)
    """Transactions that anchor nothing, by what they are."""

    @property
    def genesis(self) -> Genesis:
        return self.consortium.genesis

    def transaction(
        self, key: crypto.PrivateKey, contract: str, action: str, **args: Any
    ) -> Transaction:
        self.nonce += 1
        return Transaction.create(
            key,
            chain_id=self.genesis.chain_id,
            contract=contract,
            action=action,
            args=args,
            nonce=self.nonce,
            expiry_height=1_000_000,
        )

    def anchor(self, key: crypto.PrivateKey, issuer: str, reference: str) -> Transaction:
        transaction = self.transaction(
            key,
            "deeds",
            "anchor",
            issuer=issuer,
            reference=reference,
            kind="deliberation",
            digest=hashlib.sha256(document_of(reference)).digest(),
            act_date="2026-11-28",
            title=f"Délibération {reference}",
        )
        self.acts[reference] = transaction
        return transaction

    def delegation(self, principal: str, delegate: str) -> Transaction:
        return self.transaction(
            self.keys[principal],
            "membership",
            "delegate",
            member_id=principal,
            signer=crypto.public_key_bytes(self.keys[delegate]),
            roles=["deeds.issue"],
            expiry_height=None,
        )

    def decided(self, change: dict[str, Any]) -> list[Transaction]:
        """A proposal and the votes that pass it (3 of 4), to commit in one block."""
        proposal = self.transaction(
            self.keys[METROPOLE], "membership", "propose", proposer=METROPOLE, change=change
        )
        votes = [
            self.transaction(
                self.keys[voter],
                "membership",
                "vote",
                proposal_id=proposal.tx_id,
                voter=voter,
                approve=True,
            )
            for voter in (VILLE, SAINT_LEGER)
        ]
        return [proposal, *votes]

    def commit(self, *transactions: Transaction) -> Block:
        height = self.store.height + 1
        return commit_block(
            self.engine,
            self.store,
            self.consortium,
            transactions,
            timestamp_ms=FIRST_BLOCK_MS + (height - 1) * BLOCK_INTERVAL_MS,
        )

    def keep_checkpoint(self, signers: Sequence[str], witnesses: Sequence[str]) -> Note:
        """Sign the tip's checkpoint with ``signers``' node keys, cosign it with
        ``witnesses``, and keep it as the store's checkpoint (receipts carry it)."""
        header = self.store.block(self.store.height).header
        assert header.log_size is not None and header.log_root is not None
        origin = origin_for(self.genesis.chain_id)
        text = Checkpoint(origin, header.log_size, header.log_root).text()
        note = Note(text, tuple(sign_note(text, origin, self.keys[signer]) for signer in signers))
        note = note.with_signatures(
            *(cosign(text, name, key_for(name), COSIGNED_AT_S) for name in witnesses)
        )
        self.store.save_checkpoint(note.to_bytes())
        return note

    def receipt(self, reference: str, *, with_status: bool = True) -> Receipt:
        receipt = build_receipt(
            self.store, self.acts[reference].tx_id, anchors=ANCHORS, with_status=with_status
        )
        assert receipt is not None, reference
        return receipt


def build_chain(path: Path) -> VectorChain:
    """The chain of the module's docstring, in a new store at ``path``."""
    base = LocalConsortium.create(
        MEMBERS, seed=SEED, contracts=CONTRACTS, created_at_ms=CREATED_AT_MS
    )
    keys = dict(base.keys)
    for label in (SAINT_AMAND, HAUTMONT, METROPOLE_RECORDS, SAINT_AMAND_RECORDS):
        keys[label] = key_for(label)
    consortium = LocalConsortium(genesis=base.genesis, keys=keys)
    engine = Engine(consortium.genesis, load_contracts(consortium.genesis))
    store = ChainStore.create(path, consortium.genesis, engine.genesis_state())
    chain = VectorChain(consortium=consortium, keys=keys, engine=engine, store=store)
    metropole = keys[METROPOLE]
    chain.others["first delegation"] = chain.delegation(METROPOLE, METROPOLE_RECORDS)
    chain.commit(chain.anchor(metropole, METROPOLE, "M-1"), chain.others["first delegation"])
    issuers = [
        {
            "id": SAINT_AMAND,
            "name": "Commune de Saint-Amand",
            "siret": SAINT_AMAND_SIRET,
            "public_key": crypto.public_key_bytes(keys[SAINT_AMAND]),
        },
        {
            "id": HAUTMONT,
            "name": "Commune d'Hautmont",
            "siret": None,
            "public_key": crypto.public_key_bytes(keys[HAUTMONT]),
        },
    ]
    chain.commit(
        *chain.decided({"kind": "admit_issuers", "issuers": issuers}),
        chain.anchor(keys[METROPOLE_RECORDS], METROPOLE, "M-2"),
    )
    chain.commit(
        chain.anchor(keys[SAINT_AMAND], SAINT_AMAND, "SA-3"),
        chain.delegation(SAINT_AMAND, SAINT_AMAND_RECORDS),
        chain.anchor(keys[HAUTMONT], HAUTMONT, "H-3"),
    )
    chain.commit(
        chain.anchor(keys[SAINT_AMAND_RECORDS], SAINT_AMAND, "SA-4"),
        *chain.decided({"kind": "schedule_format", "format_version": 2, "height": FORMAT_2_HEIGHT}),
    )
    chain.commit(
        chain.anchor(metropole, METROPOLE, "M-5"),
        chain.transaction(
            metropole,
            "deeds",
            "amend",
            issuer=METROPOLE,
            reference="M-1",
            by_reference="M-5",
        ),
        *chain.decided({"kind": "suspend_issuer", "issuer_id": HAUTMONT}),
        chain.transaction(
            keys[SAINT_LEGER],
            "membership",
            "set_endpoint",
            member_id=SAINT_LEGER,
            endpoint="10.20.0.9:8600",
        ),
    )
    chain.commit(
        chain.anchor(metropole, METROPOLE, "M-6"),
        chain.transaction(
            metropole,
            "deeds",
            "withdraw",
            issuer=METROPOLE,
            reference="M-5",
            reason="Erreur matérielle",
        ),
    )
    chain.commit(chain.anchor(keys[VILLE], VILLE, "V-7"))
    assert chain.store.height == 7 and chain.store.member_set_changes() == [6]
    assert chain.store.block(FORMAT_2_HEIGHT - 1).header.log_size is None
    assert chain.store.block(FORMAT_2_HEIGHT).header.log_size is not None
    chain.keep_checkpoint([METROPOLE, VILLE, SAINT_LEGER], [WITNESS])
    return chain


# --- what Python concludes ------------------------------------------------------------------


def python_verdict(
    receipt_text: str,
    genesis_text: str,
    document: bytes | None = None,
    witnesses: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What the Python verifier concludes about a receipt given as JSON text, in the vectors'
    form: ``{"ok": true, …the result's key fields}`` or ``{"ok": false, "step": …}``.

    A receipt or a genesis that does not read as its model (a repeated key, a wrong type) is
    refused at step ``format``, a witness policy that does not read at step ``witnesses``:
    the steps the JavaScript verifier names for them.
    """
    try:
        receipt = Receipt.model_validate_json(receipt_text)
        genesis = Genesis.model_validate_json(genesis_text)
    except ValueError:  # pydantic's ValidationError and the repeated key's error
        return {"ok": False, "step": "format"}
    policy = None
    if witnesses is not None:
        try:
            keys = [NoteVerifierKey.parse_vkey(text) for text in witnesses["keys"]]
            policy = WitnessPolicy(tuple((key.name, key) for key in keys), witnesses["quorum"])
        except ValueError:
            return {"ok": False, "step": "witnesses"}
    try:
        proven = verify_receipt(receipt, genesis, document, anchors=ANCHORS, witnesses=policy)
    except ReceiptError as error:
        return {"ok": False, "step": error.step, "message": str(error)}
    return {"ok": True, **_key_fields(proven)}


def _plain(value: Any) -> Any:
    """A decoded value as JSON holds it (bytes as hex), as the JavaScript result shows it."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _key_fields(proven: Any) -> dict[str, Any]:
    """The fields of a VerifiedReceipt the JavaScript result must show alike (its names)."""
    right = proven.signer_right
    checkpoint = proven.checkpoint
    return {
        "txId": proven.transaction.tx_id.hex(),
        "height": proven.height,
        "timestampMs": proven.timestamp_ms,
        "blockHash": proven.block_hash.hex(),
        "signers": list(proven.signers),
        "members": proven.members,
        "contract": proven.transaction.contract,
        "action": proven.transaction.action,
        "act": _plain(proven.act),
        "documentMatches": proven.document_matches,
        "principal": None if right is None else right.principal,
        "signerRight": None
        if right is None
        else {
            "principal": right.principal,
            "role": right.role,
            "kind": right.kind.value,
            "height": right.height,
            "provenAtHeight": right.proven_at_height,
            "expiryHeight": right.expiry_height,
        },
        "issuer": None if proven.issuer is None else json.loads(proven.issuer.model_dump_json()),
        "status": _plain(proven.status),
        "statusHeight": proven.status_height,
        "logIndex": proven.log_index,
        "checkpoint": None
        if checkpoint is None
        else {
            "origin": checkpoint.checkpoint.origin,
            "size": checkpoint.checkpoint.size,
            "root": checkpoint.checkpoint.root.hex(),
            "signers": list(checkpoint.signers),
            "witnesses": list(checkpoint.witnesses),
        },
    }


# --- the vectors ------------------------------------------------------------------------------

Document = dict[str, Any]
"""A receipt's (or a genesis's) JSON form, as ``json.loads`` gives it."""


def receipt_document(receipt: Receipt) -> Document:
    return json.loads(receipt.model_dump_json())


def _flip_hex(text: str, byte_index: int) -> str:
    """``text`` (hex) with one bit of byte ``byte_index`` flipped (negative: from the end)."""
    raw = bytearray(bytes.fromhex(text))
    raw[byte_index] ^= 0x01
    return raw.hex()


def _with(document: Document, change: Callable[[Document], None]) -> Document:
    changed = copy.deepcopy(document)
    change(changed)
    return changed


def _set(path: str, value: Any) -> Callable[[Document], None]:
    """A change that sets the field at ``path`` (dotted; numbers index arrays) to ``value``."""

    def change(document: Document) -> None:
        *parents, last = path.split(".")
        target: Any = document
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list):
            target[int(last)] = value(target[int(last)]) if callable(value) else value
        else:
            target[last] = value(target[last]) if callable(value) else value

    return change


def _flip(path: str, byte_index: int = 0) -> Callable[[Document], None]:
    return _set(path, lambda text: _flip_hex(text, byte_index))


def _transaction_with(document: Document, **update: Any) -> str:
    """The receipt's transaction (hex) re-encoded canonically with ``update`` applied."""
    fields = encoding.unpack(bytes.fromhex(document["transaction"]))
    return encoding.pack({**fields, **update}).hex()


def _non_canonical_nonce(transaction_hex: str) -> str:
    """The transaction's bytes with its nonce (a positive fixint) written as a uint16: the same
    value in a longer form than the canonical one."""
    raw = bytes.fromhex(transaction_hex)
    key = encoding.pack("nonce")
    start = raw.index(key) + len(key)
    assert raw[start] < 0x80, "the vectors' nonces are small"
    return (raw[:start] + bytes([0xCD, 0x00, raw[start]]) + raw[start + 1 :]).hex()


def _checkpoint_lines(document: Document) -> list[str]:
    return document["log"]["checkpoint"].split("\n")


def _change_checkpoint(change: Callable[[list[str]], list[str]]) -> Callable[[Document], None]:
    def apply(document: Document) -> None:
        document["log"]["checkpoint"] = "\n".join(change(_checkpoint_lines(document)))

    return apply


def _flip_signature_line(lines: list[str], index: int) -> list[str]:
    """The note's lines with signature line ``index`` (of the signature block) altered in the
    middle of its base64 (still canonical base64: another signature of the same key)."""
    first = lines.index("") + 1
    line = lines[first + index]
    name, blob = line.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(blob))
    raw[10] ^= 0x01
    lines = list(lines)
    lines[first + index] = f"{name} {base64.b64encode(bytes(raw)).decode()}"
    return lines


def _forged_receipt(chain: VectorChain, signer: str, issuer: str) -> Receipt:
    """The receipt of an act of ``issuer`` signed by ``signer``'s key, in a block 6 that a
    quorum of the members certified although the contracts refuse it (a colluding quorum):
    the receipt shows the state as it is, and must fail at the signer's right."""
    store = chain.store
    parent = store.block(FORMAT_2_HEIGHT - 1).header
    real = store.block(FORMAT_2_HEIGHT).header
    listed = store.state_get_at(MEMBERS_STATE_KEY, parent.state_root)
    assert listed is not None
    members = tuple(Member.from_canonical(entry) for entry in encoding.unpack(listed))
    key = chain.keys[signer] if signer in chain.keys else key_for(signer)
    transaction = chain.anchor(key, issuer, f"{issuer.upper()}-FORGED")
    view = FORMAT_2_HEIGHT - 1
    header = BlockHeader(
        chain_id=chain.genesis.chain_id,
        height=FORMAT_2_HEIGHT,
        prev_hash=parent.block_hash,
        timestamp_ms=real.timestamp_ms,
        proposer=members[view % len(members)].id,
        view=view,
        tx_count=1,
        tx_root=merkle.root([transaction.encoded]),
        state_root=parent.state_root,
        members_hash=members_hash(members),
        log_size=real.log_size,
        log_root=real.log_root,
    )
    block = Block(header=header, transactions=(transaction,))
    certificate = chain.consortium.certify(block, members=members)
    receipt = receipt_from_block(store, block, certificate, 0, anchors=ANCHORS, with_status=False)
    return receipt.model_copy(update={"log": None})


@dataclass(frozen=True, slots=True, kw_only=True)
class Vector:
    name: str
    description: str
    receipt: Document | None = None
    receipt_text: str | None = None
    """For a receipt that is not valid JSON for its model in a way a JSON object cannot hold
    (a repeated key): the text itself."""
    document: bytes | None = None
    witnesses: dict[str, Any] | None = None
    genesis: Document | None = None
    """Another genesis to check the receipt against (default: the chain's)."""
    js_expect: dict[str, Any] | None = None
    """Where the JavaScript verifier refuses by design what Python accepts: integers beyond
    2^53 (docs/audit_receipts.md, "Checking a receipt in a browser")."""


def build_vectors(chain: VectorChain) -> list[Vector]:
    """Every vector, genuine first, then each tampered one."""
    policy = {"keys": [witness_vkey(WITNESS)], "quorum": 1}

    def receipt(reference: str, *, with_status: bool = True) -> Document:
        return receipt_document(chain.receipt(reference, with_status=with_status))

    m1, m2, m5, m6, v7 = (receipt(reference) for reference in ("M-1", "M-2", "M-5", "M-6", "V-7"))
    sa3, sa4, h3 = (receipt(reference) for reference in ("SA-3", "SA-4", "H-3"))
    delegation_receipt = build_receipt(chain.store, chain.others["first delegation"].tx_id)
    assert delegation_receipt is not None
    delegation = receipt_document(delegation_receipt)
    no_log = _with(m6, lambda document: document.pop("log"))
    other_genesis = json.loads(
        LocalConsortium.create(
            MEMBERS,
            seed=SEED,
            contracts=CONTRACTS,
            created_at_ms=CREATED_AT_MS,
            consortium="Un autre consortium",
        ).genesis.model_dump_json()
    )
    genuine = [
        Vector(
            name="member-node-key-format-1-amended",
            description="M-1, signed by metropole's node key in a format 1 block; its status at "
            "the tip (amended by M-5) and its place in the log; the document matches",
            receipt=m1,
            document=document_of("M-1"),
        ),
        Vector(
            name="member-delegate",
            description="M-2, signed by a key metropole delegated deeds.issue to (authority: "
            "the signer key's delegations)",
            receipt=m2,
        ),
        Vector(
            name="member-delegate-without-status",
            description="M-2's receipt without a status",
            receipt=receipt("M-2", with_status=False),
        ),
        Vector(
            name="issuer-own-key",
            description="SA-3, signed by the issuer saint-amand's own key (authority: its "
            "record, with a SIRET)",
            receipt=sa3,
        ),
        Vector(
            name="issuer-delegate",
            description="SA-4, signed by a key saint-amand delegated deeds.issue to (authority: "
            "its record and the key's delegations)",
            receipt=sa4,
        ),
        Vector(
            name="issuer-without-siret-suspended-later",
            description="H-3, signed by hautmont's own key while it was active (suspended at "
            "height 5, which does not undo its earlier acts)",
            receipt=h3,
        ),
        Vector(
            name="withdrawn-act-that-amends",
            description="M-5 amends M-1 and is withdrawn at height 6: its status says so",
            receipt=m5,
        ),
        Vector(
            name="after-member-change-format-2",
            description="M-6 in the first format 2 block, after saint-leger moved its node (a "
            "member-set change at height 5)",
            receipt=m6,
            document=document_of("M-6"),
        ),
        Vector(
            name="witness-policy-met",
            description="V-7 with a witness policy its checkpoint's cosignature meets",
            receipt=v7,
            witnesses=policy,
        ),
        Vector(
            name="format-1-block-under-witness-policy",
            description="SA-3 (format 1 block, log index from the store) with the witness policy",
            receipt=sa3,
            witnesses=policy,
        ),
        Vector(
            name="without-log",
            description="M-6's receipt without its log field (a node that kept no checkpoint)",
            receipt=no_log,
        ),
        Vector(
            name="not-an-anchor",
            description="the receipt of a delegation (membership): no act, no signer right",
            receipt=delegation,
        ),
    ]
    tampered = [
        Vector(
            name="document-mismatch",
            description="M-6's receipt with another document",
            receipt=m6,
            document=document_of("M-5"),
        ),
        Vector(
            name="document-for-a-non-anchor",
            description="a delegation's receipt checked against a document",
            receipt=delegation,
            document=document_of("M-1"),
        ),
        Vector(
            name="transaction-byte",
            description="one bit of the transaction's title changed",
            receipt=_with(m1, _flip("transaction", 40)),
        ),
        Vector(
            name="transaction-signature",
            description="one bit of the transaction's signature changed",
            receipt=_with(
                m1,
                _set(
                    "transaction",
                    lambda text: _transaction_with(
                        {"transaction": text},
                        signature=bytes.fromhex(
                            _flip_hex(encoding.unpack(bytes.fromhex(text))["signature"].hex(), 5)
                        ),
                    ),
                ),
            ),
        ),
        Vector(
            name="transaction-non-canonical",
            description="the transaction's nonce in a longer form than the canonical one",
            receipt=_with(m1, _set("transaction", _non_canonical_nonce)),
        ),
        Vector(
            name="inclusion-proof-hash",
            description="one bit of the inclusion proof's first hash changed",
            receipt=_with(m1, _flip("inclusion_proof.0")),
        ),
        Vector(
            name="position",
            description="the transaction's position moved by one",
            receipt=_with(m1, _set("position", lambda position: position + 1)),
        ),
        Vector(
            name="tx-root",
            description="the header's tx_root altered",
            receipt=_with(m1, _flip("header.tx_root")),
        ),
        Vector(
            name="timestamp",
            description="the header's timestamp one millisecond later",
            receipt=_with(m1, _set("header.timestamp_ms", lambda time: time + 1)),
        ),
        Vector(
            name="timestamp-before-genesis",
            description="the header's timestamp at the genesis's creation",
            receipt=_with(m1, _set("header.timestamp_ms", CREATED_AT_MS)),
        ),
        Vector(
            name="proposer",
            description="the header names another proposer",
            receipt=_with(m1, _set("header.proposer", VILLE)),
        ),
        Vector(
            name="members-hash",
            description="the header's members_hash altered",
            receipt=_with(m1, _flip("header.members_hash")),
        ),
        Vector(
            name="certificate-signature",
            description="one bit of a commit signature changed",
            receipt=_with(m1, _flip("certificate.signatures.0.1", 3)),
        ),
        Vector(
            name="certificate-below-quorum",
            description="a commit signature removed (2 of 4, 3 needed)",
            receipt=_with(m1, _set("certificate.signatures", lambda entries: entries[:2])),
        ),
        Vector(
            name="certificate-unknown-signer",
            description="a commit signature under an id that is no member",
            receipt=_with(m1, _set("certificate.signatures.2.0", "zz-inconnu")),
        ),
        Vector(
            name="certificate-unsorted",
            description="the certificate's signatures out of order (its model refuses it)",
            receipt=_with(m1, _set("certificate.signatures", lambda entries: entries[::-1])),
        ),
        Vector(
            name="member-change-removed",
            description="the member-set change before M-6's block left out",
            receipt=_with(m6, _set("member_changes", [])),
        ),
        Vector(
            name="member-change-twice",
            description="the member-set change given twice",
            receipt=_with(m6, _set("member_changes", lambda changes: changes + changes)),
        ),
        Vector(
            name="member-list-altered",
            description="an endpoint changed in the proven member list",
            receipt=_with(m6, _set("member_changes.0.members.1.endpoint", "10.66.0.1:8600")),
        ),
        Vector(
            name="member-change-proof-sibling",
            description="one bit of the member list's state proof changed",
            receipt=_with(m6, _flip("member_changes.0.proof.siblings.0")),
        ),
        Vector(
            name="member-change-certificate",
            description="the member-set change's certificate below quorum",
            receipt=_with(
                m6, _set("member_changes.0.certificate.signatures", lambda entries: entries[:1])
            ),
        ),
        Vector(
            name="authority-entry-value",
            description="the issuer record in SA-3's authority altered",
            receipt=_with(sa3, _flip("authority.entries.0.value", -1)),
        ),
        Vector(
            name="authority-entry-proof",
            description="one bit of the authority's state proof changed",
            receipt=_with(sa4, _flip("authority.entries.1.proof.siblings.0")),
        ),
        Vector(
            name="authority-missing",
            description="SA-4's receipt without its authority",
            receipt=_with(sa4, lambda document: document.pop("authority")),
        ),
        Vector(
            name="authority-entry-missing",
            description="SA-4's authority without the delegations of its signer key",
            receipt=_with(sa4, _set("authority.entries", lambda entries: entries[:1])),
        ),
        Vector(
            name="authority-parent",
            description="the authority's header is not the block's parent (state_root altered)",
            receipt=_with(m2, _flip("authority.parent.state_root")),
        ),
        Vector(
            name="authority-not-needed",
            description="M-1 (a member's node key) with SA-3's authority",
            receipt=_with(m1, _set("authority", sa3["authority"])),
        ),
        Vector(
            name="issuer-suspended",
            description="an act of hautmont, suspended at height 5, in a block 6 a quorum "
            "certified against the rules",
            receipt=receipt_document(_forged_receipt(chain, HAUTMONT, HAUTMONT)),
        ),
        Vector(
            name="issuer-not-admitted",
            description="an act of an issuer never admitted, in a block 6 a quorum certified "
            "against the rules",
            receipt=receipt_document(_forged_receipt(chain, "unknown-issuer", "commune-inconnue")),
        ),
        Vector(
            name="status-value",
            description="the act's record in the status altered",
            receipt=_with(m1, _flip("status.value", -1)),
        ),
        Vector(
            name="status-key",
            description="the status proves M-2's record instead of M-1's",
            receipt=_with(m1, _set("status.key", m2["status"]["key"])),
        ),
        Vector(
            name="status-certificate",
            description="the status header's certificate below quorum",
            receipt=_with(m1, _set("status.certificate.signatures", lambda entries: entries[:2])),
        ),
        Vector(
            name="log-index",
            description="the log index moved by one (format 2 header)",
            receipt=_with(m6, _set("log.index", lambda index: index + 1)),
        ),
        Vector(
            name="log-index-format-1",
            description="the log index moved by one (format 1 header: only the proof shows it)",
            receipt=_with(m1, _set("log.index", lambda index: index + 1)),
        ),
        Vector(
            name="log-inclusion-proof",
            description="one bit of the log inclusion proof changed",
            receipt=_with(m6, _flip("log.inclusion_proof.0")),
        ),
        Vector(
            name="checkpoint-signature",
            description="a member's checkpoint signature altered",
            receipt=_with(m6, _change_checkpoint(lambda lines: _flip_signature_line(lines, 0))),
        ),
        Vector(
            name="checkpoint-below-quorum",
            description="two of the members' checkpoint signatures removed",
            receipt=_with(
                m6,
                _change_checkpoint(
                    lambda lines: lines[: lines.index("") + 1] + lines[lines.index("") + 3 :]
                ),
            ),
        ),
        Vector(
            name="checkpoint-origin",
            description="the checkpoint names another log",
            receipt=_with(m6, _change_checkpoint(lambda lines: ["sceau/" + "00" * 32, *lines[1:]])),
        ),
        Vector(
            name="checkpoint-size",
            description="the checkpoint's size with a leading zero",
            receipt=_with(
                m6, _change_checkpoint(lambda lines: [lines[0], "0" + lines[1], *lines[2:]])
            ),
        ),
        Vector(
            name="witness-cosignature",
            description="the witness's cosignature altered, under a policy that names it",
            receipt=_with(v7, _change_checkpoint(lambda lines: _flip_signature_line(lines, 3))),
            witnesses=policy,
        ),
        Vector(
            name="witness-policy-unmet",
            description="a policy naming a witness that did not cosign",
            receipt=v7,
            witnesses={"keys": [witness_vkey(OTHER_WITNESS)], "quorum": 1},
        ),
        Vector(
            name="witness-policy-without-log",
            description="a witness policy and a receipt without a log",
            receipt=no_log,
            witnesses=policy,
        ),
        Vector(
            name="another-consortium",
            description="a genuine receipt checked against another consortium's genesis",
            receipt=m6,
            genesis=other_genesis,
        ),
        Vector(
            name="repeated-json-key",
            description="the receipt's JSON repeats the key 'height' (another value first)",
            receipt_text=json.dumps(m1).replace('"height": ', '"height": 2, "height": ', 1),
        ),
        Vector(
            name="integer-as-fraction",
            description="the receipt's height written 1.0: a number with a fraction is not an "
            "integer field's value, even when it is whole",
            receipt_text=json.dumps(m1).replace('"height": 1,', '"height": 1.0,', 1),
        ),
        Vector(
            name="public-key-small-order",
            description="a member's key in a member-set change replaced by a small-order point",
            receipt=_with(
                m6,
                _set(
                    "member_changes.0.members.0.public_key",
                    crypto.public_key_to_text(bytes.fromhex("01" + "00" * 31)),
                ),
            ),
        ),
        Vector(
            name="integer-beyond-2-53",
            description="the header's timestamp set to 2^60: Python reads it (the certificate "
            "then fails), the JavaScript verifier refuses the integer itself",
            receipt=_with(m1, _set("header.timestamp_ms", 2**60)),
            js_expect={"ok": False, "step": "format"},
        ),
    ]
    return genuine + tampered


def vectors_document(chain: VectorChain) -> dict[str, Any]:
    """The vectors file's content: the genesis and every vector with Python's verdict."""
    genesis_text = chain.genesis.model_dump_json()
    written = []
    for vector in build_vectors(chain):
        receipt_text = (
            vector.receipt_text if vector.receipt_text is not None else json.dumps(vector.receipt)
        )
        genesis = vector.genesis if vector.genesis is not None else None
        entry: dict[str, Any] = {"name": vector.name, "description": vector.description}
        if vector.receipt_text is not None:
            entry["receipt_text"] = vector.receipt_text
        else:
            entry["receipt"] = vector.receipt
        if vector.document is not None:
            entry["document_hex"] = vector.document.hex()
        if vector.witnesses is not None:
            entry["witnesses"] = vector.witnesses
        if genesis is not None:
            entry["genesis"] = genesis
        entry["expect"] = python_verdict(
            receipt_text,
            genesis_text if genesis is None else json.dumps(genesis),
            vector.document,
            vector.witnesses,
        )
        if vector.js_expect is not None:
            entry["js_expect"] = vector.js_expect
        written.append(entry)
    names = [entry["name"] for entry in written]
    assert len(set(names)) == len(names), "vector names are unique"
    return {"format": FORMAT, "genesis": json.loads(genesis_text), "vectors": written}


def vectors_text() -> str:
    """The vectors file's text, built from a new chain in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="sceau-receipt-vectors-") as folder:
        chain = build_chain(Path(folder) / "chain")
        try:
            document = vectors_document(chain)
        finally:
            chain.store.close()
    lines = [
        "{",
        f'"format": {json.dumps(document["format"])},',
        f'"genesis": {json.dumps(document["genesis"], ensure_ascii=False)},',
        '"vectors": [',
    ]
    vectors = document["vectors"]
    for index, vector in enumerate(vectors):
        comma = "," if index < len(vectors) - 1 else ""
        lines.append(json.dumps(vector, ensure_ascii=False) + comma)
    lines += ["]", "}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    text = vectors_text()
    VECTORS_PATH.parent.mkdir(parents=True, exist_ok=True)
    VECTORS_PATH.write_text(text, encoding="utf-8")
    count = len(json.loads(text)["vectors"])
    print(f"wrote {count} receipt vectors to {VECTORS_PATH}")


if __name__ == "__main__":
    main()
