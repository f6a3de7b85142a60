"""``make demo``: the main job of sceau, as far as it is built.

Step 1 of the roadmap (the ledger core) is in place: canonical encoding, keys and signatures,
models, RFC 9162 transaction trees, the authenticated state and the LevelDB chain store. The
demo runs all of it for real, in a temporary folder:

1. four collectivities generate Ed25519 keys (PKCS#8 files, mode 0600) and write a genesis;
2. acts are anchored: each is a transaction signed by its issuer, carrying the SHA-256 of a
   document; blocks are built, certified by a quorum of member signatures and appended to a
   LevelDB store with synced write batches;
3. the store is closed and reopened, and everything is verified from the genesis alone: hash
   links, transaction roots, certificates, an act's inclusion proof and its state proof; a
   document altered by one byte is shown not to match.

The contract layer (step 2) will compute the state writes; until then the demo writes the
act records itself, in the layout the deeds contract will own.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

from ledger import crypto, encoding, merkle
from ledger.devchain import LocalConsortium
from ledger.model import Transaction
from ledger.state import verify_state_proof
from ledger.store import ChainStore

MEMBERS = (
    ("metropole-valbrune", "Métropole de Valbrune"),
    ("ville-valbrune", "Ville de Valbrune"),
    ("saint-leger-les-vignes", "Commune de Saint-Léger-les-Vignes"),
    ("syndicat-eaux-valbrunois", "Syndicat des eaux du Valbrunois"),
)

ACTS = (
    ("metropole-valbrune", "2026-DEL-042", "deliberation", "Plan local d'urbanisme, révision 3"),
    ("ville-valbrune", "2026-ARR-117", "decree", "Arrêté de circulation, rue des Tanneurs"),
    ("saint-leger-les-vignes", "2026-PC-0031", "permit", "Permis de construire, école"),
    ("syndicat-eaux-valbrunois", "2026-BUD-001", "budget", "Budget primitif 2026"),
    ("metropole-valbrune", "2026-OD-007", "dataset", "Qualité de l'air, jeu de données"),
    ("ville-valbrune", "2026-DEL-043", "deliberation", "Tarifs de la cantine scolaire"),
)

START_MS = 1_790_000_000_000


def _document(issuer: str, reference: str, title: str) -> bytes:
    return f"{issuer}\n{reference}\n{title}\n(document text)\n".encode()


def _act_key(issuer: str, reference: str) -> bytes:
    return b"deeds/act/" + issuer.encode() + b"/" + reference.encode()


def run(work: Path) -> int:
    consortium = LocalConsortium.create(
        MEMBERS, consortium="Consortium des actes du Valbrunois", created_at_ms=START_MS
    )
    for member_id, key in consortium.keys.items():
        crypto.save_private_key(key, work / f"{member_id}.pem")
    (work / "genesis.json").write_text(consortium.genesis.model_dump_json(indent=2))
    print(f"genesis written: {len(MEMBERS)} members, chain_id {consortium.chain_id.hex()[:16]}…")

    chain_path = work / "chain"
    store = ChainStore.create(chain_path, consortium.genesis)
    receipts = []
    for index, (issuer, reference, kind, title) in enumerate(ACTS):
        digest = hashlib.sha256(_document(issuer, reference, title)).digest()
        args = {
            "issuer": issuer,
            "reference": reference,
            "kind": kind,
            "digest": digest,
            "title": title,
            "act_date": "2026-11-28",
        }
        transaction = Transaction.create(
            consortium.keys[issuer],
            chain_id=consortium.chain_id,
            contract="deeds",
            action="anchor",
            args=args,
            nonce=index,
            expiry_height=100,
        )
        record = encoding.pack({**args, "status": "in_force", "tx_id": transaction.tx_id})
        block, certificate = consortium.append(
            store,
            [transaction],
            {_act_key(issuer, reference): record},
            timestamp_ms=START_MS + 60_000 * (index + 1),
        )
        receipts.append((issuer, reference, title, transaction.tx_id))
        print(
            f"block {block.height}: {kind:<12} {issuer}/{reference} certified by "
            f"{len(certificate.signatures)} of {len(MEMBERS)} members"
        )
    store.close()

    print("\nreopening the store and verifying from the genesis alone…")
    with ChainStore.open(chain_path) as store:
        previous = consortium.chain_id
        for block in store.blocks():
            assert block.header.prev_hash == previous, f"broken link at {block.height}"
            assert merkle.root(block.transaction_leaves()) == block.header.tx_root
            certificate = store.certificate(block.height)
            certificate.verify(store.chain_id, store.genesis.members)
            previous = block.block_hash
        print(f"  {store.height} blocks: hash links, tx roots and certificates verified")

        issuer, reference, title, tx_id = receipts[0]
        height, position = store.transaction_location(tx_id)
        block = store.block(height)
        proof = merkle.inclusion_proof(block.transaction_leaves(), position)
        included = merkle.verify_inclusion(
            block.transactions[position].encoded,
            position,
            block.header.tx_count,
            proof,
            block.header.tx_root,
        )
        key = _act_key(issuer, reference)
        state_proof = store.state_prove(key)
        tip_root = store.block(store.height).header.state_root
        proven = verify_state_proof(tip_root, key, store.state_get(key), state_proof)
        act = encoding.unpack(store.state_get(key))
        genuine = hashlib.sha256(_document(issuer, reference, title)).digest()
        altered = hashlib.sha256(_document(issuer, reference, title) + b" ").digest()
        print(
            f"  act {issuer}/{reference}: inclusion proof {'valid' if included else 'INVALID'}"
            f" (block {height}), state proof at the tip {'valid' if proven else 'INVALID'}, "
            f"status {act['status']}"
        )
        print(f"  the genuine document matches the anchored digest: {genuine == act['digest']}")
        print(f"  a copy altered by one byte matches:              {altered == act['digest']}")
        ok = included and proven and genuine == act["digest"] and altered != act["digest"]
    print("\ndemo finished:", "all checks passed" if ok else "A CHECK FAILED")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m node.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it afterwards")
    arguments = parser.parse_args(argv)
    if arguments.keep:
        work = Path(arguments.keep)
        work.mkdir(parents=True, exist_ok=False)
        return run(work)
    work = Path(tempfile.mkdtemp(prefix="sceau-demo-"))
    try:
        return run(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
