"""The child process of tests/test_store_crash.py: append blocks until killed.

Usage: ``python tests/crash_writer.py STORE_PATH SEED``

The consortium and every block's content are derived from SEED and the block's height alone,
so the parent test can regenerate what each block must hold and the child can resume from
whatever tip it finds after being killed. The child opens the store (creating it if absent),
then appends blocks from the tip on. For each block it prints two lines, each flushed:

* ``appending <h>`` just before ``ChainStore.append_block``;
* ``<h>`` once ``append_block`` has returned: the acknowledgement that block h is durable.

and then saves a safety record (as a replica does before each vote) and prints
``safety <n>`` once the n-th save has returned. Each write is followed by the store's witness
write, so kills also land between a LevelDB write and its witness.

The blocks are made big (20 to 100 transactions with arguments of a few hundred bytes, state
writes of several keys with deletes and overwrites) so that their write batches take long
enough to be interrupted.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from ledger.devchain import LocalConsortium
from ledger.model import Transaction
from ledger.store import ChainStore

MEMBERS = (
    ("metropole-valbrune", "Métropole de Valbrune"),
    ("ville-valbrune", "Ville de Valbrune"),
    ("saint-leger-les-vignes", "Commune de Saint-Léger-les-Vignes"),
    ("syndicat-eaux-valbrunois", "Syndicat des eaux du Valbrunois"),
)
START_MS = 1_790_000_000_000
BLOCK_INTERVAL_MS = 1_000
TRANSACTIONS_PER_BLOCK_MIN = 20
TRANSACTIONS_PER_BLOCK_MAX = 100
KEYS_PER_BLOCK = 8
DELETE_AFTER_BLOCKS = 3
"""Block h deletes some of the keys that block h - 3 wrote."""
HEIGHT_MAX = 10_000
"""The child stops there if nobody kills it: a bound on what a runaway child writes."""
TIP_KEY = b"crash/tip"


def consortium_for(seed: bytes) -> LocalConsortium:
    return LocalConsortium.create(MEMBERS, consortium="Consortium de test de pannes", seed=seed)


def timestamp_ms(height: int) -> int:
    return START_MS + BLOCK_INTERVAL_MS * height


def state_key(height: int, index: int) -> bytes:
    """The ``index``-th key that block ``height`` writes."""
    return b"crash/block/%08d/%d" % (height, index)


def block_content(
    consortium: LocalConsortium, height: int
) -> tuple[list[Transaction], dict[bytes, bytes | None]]:
    """The transactions and state writes of block ``height``: a function of the height only."""
    assert 1 <= height <= HEIGHT_MAX
    rng = random.Random(f"crash-writer/{height}")
    member_ids = [member_id for member_id, _ in MEMBERS]
    transactions = []
    for position in range(rng.randint(TRANSACTIONS_PER_BLOCK_MIN, TRANSACTIONS_PER_BLOCK_MAX)):
        signer = member_ids[(height + position) % len(member_ids)]
        transactions.append(
            Transaction.create(
                consortium.keys[signer],
                chain_id=consortium.chain_id,
                contract="deeds",
                action="anchor",
                args={
                    "reference": f"CRASH-{height}-{position}",
                    "document": rng.randbytes(rng.randint(200, 800)),
                },
                # Unique across the chain: no block's transaction is a replay of another's.
                nonce=height * 1_000 + position,
                expiry_height=height + 1_000,
            )
        )
    writes: dict[bytes, bytes | None] = {
        state_key(height, index): rng.randbytes(rng.randint(50, 400))
        for index in range(KEYS_PER_BLOCK)
    }
    writes[TIP_KEY] = b"%d" % height
    if height > 1:
        writes[state_key(height - 1, 1)] = b"overwritten by block %d" % height
    if height > DELETE_AFTER_BLOCKS:
        for index in (0, 2, 5):
            writes[state_key(height - DELETE_AFTER_BLOCKS, index)] = None
    return transactions, writes


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    path, seed = Path(argv[1]), argv[2].encode()
    consortium = consortium_for(seed)
    if (path / "CURRENT").exists():
        store = ChainStore.open(path)
    else:
        store = ChainStore.create(path, consortium.genesis)
    assert store.genesis == consortium.genesis, "the store belongs to another consortium"
    with store:
        while store.height < HEIGHT_MAX:
            height = store.height + 1
            transactions, writes = block_content(consortium, height)
            block = consortium.build_block(
                store, transactions, writes, timestamp_ms=timestamp_ms(height)
            )
            certificate = consortium.certify(block)
            print(f"appending {height}", flush=True)
            store.append_block(block, certificate, writes)
            print(height, flush=True)
            store.save_safety_record(b"safety record after block %d" % height)
            print(f"safety {store.safety_position[0]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
