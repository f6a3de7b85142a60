"""What a node's store costs at start-up, and what its witness adds to each synced write.

Usage::

    python benchmarks/store_startup.py [--blocks 100000] [--dir DIR] [--writes 200]

Prints one JSON document on stdout (progress on stderr):

* ``build_s``: building a store of ``--blocks`` small certified blocks (each with one state
  write, so that the state tree grows; no transactions; with ``--lean``, a one-member
  consortium and no state writes, three times faster to build, the same to open). To build
  10^5 blocks in minutes
  rather than in the ~15 minutes synced writes would take, the build writes its batches
  without ``sync`` and skips the witness writes (a real node never does; the store is then
  closed cleanly, which makes it durable, and its witness brought level at the first open);
* ``open_s``: ``ChainStore.open`` of that store, median of 5 (each a close and a fresh open:
  LevelDB's own recovery, the tip, the last 4,096 heights' keys, the witness);
* ``check_s``: ``sceau node check``'s full check of the same store (``--check``);
* ``save_safety_ms`` / ``append_ms``: a synced safety-record save (1 KiB) and a synced append
  of a small block, median per call over ``--writes`` calls, with the witness write, and
  ``witness_write_ms`` the witness write alone (in place, one ``fdatasync``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from ledger.devchain import LocalConsortium  # noqa: E402
from ledger.store import ChainStore  # noqa: E402
from ledger.store_check import check_store  # noqa: E402

MEMBERS = (
    ("metropole-valbrune", "Métropole de Valbrune"),
    ("ville-valbrune", "Ville de Valbrune"),
    ("saint-leger-les-vignes", "Commune de Saint-Léger-les-Vignes"),
    ("syndicat-eaux-valbrunois", "Syndicat des eaux du Valbrunois"),
)
START_MS = 1_790_000_000_000


class _UnsyncedDatabase:
    """The plyvel database with its write batches unsynced: for building only."""

    def __init__(self, database: Any) -> None:
        self._database = database

    def __getattr__(self, name: str) -> Any:
        return getattr(self._database, name)

    def write_batch(self, **options: Any) -> Any:
        return self._database.write_batch(**{**options, "sync": False})


def build(path: Path, blocks: int, consortium: LocalConsortium, *, lean: bool = False) -> float:
    started = time.monotonic()
    store = ChainStore.create(path, consortium.genesis)
    real_database, real_witness = store._database, store._witness
    store._database = _UnsyncedDatabase(real_database)  # type: ignore[assignment]
    store._witness = None  # type: ignore[assignment]
    store._record_witness = lambda: None  # type: ignore[method-assign]
    for height in range(1, blocks + 1):
        writes = {} if lean else {b"bench/%08d" % height: b"v%d" % height}
        consortium.append(store, [], writes, timestamp_ms=START_MS + height)
        if height % 10_000 == 0:
            print(f"built {height} blocks", file=sys.stderr, flush=True)
    store._database = real_database
    store._witness = real_witness
    store.close()
    return time.monotonic() - started


def measure_open(path: Path) -> list[float]:
    times = []
    for _ in range(5):
        started = time.perf_counter()
        store = ChainStore.open(path)
        times.append(time.perf_counter() - started)
        store.close()
    return times


def measure_writes(path: Path, consortium: LocalConsortium, writes: int) -> dict[str, float]:
    store = ChainStore.open(path)
    try:
        record = b"r" * 1024
        saves, appends, witness_writes = [], [], []
        for _ in range(writes):
            started = time.perf_counter()
            store.save_safety_record(record)
            saves.append(time.perf_counter() - started)
        for _ in range(writes):
            height = store.height + 1
            block = consortium.build_block(
                store, [], {b"bench/w%08d" % height: b"w"}, timestamp_ms=START_MS + height
            )
            certificate = consortium.certify(block)
            started = time.perf_counter()
            store.append_block(block, certificate, {b"bench/w%08d" % height: b"w"})
            appends.append(time.perf_counter() - started)
        for _ in range(writes):
            started = time.perf_counter()
            store._record_witness()
            witness_writes.append(time.perf_counter() - started)
    finally:
        store.close()
    return {
        "save_safety_ms": round(statistics.median(saves) * 1000, 2),
        "append_ms": round(statistics.median(appends) * 1000, 2),
        "witness_write_ms": round(statistics.median(witness_writes) * 1000, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=100_000)
    parser.add_argument("--dir", help="where to build (default: a temporary folder)")
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--check", action="store_true", help="also time the full check")
    parser.add_argument("--lean", action="store_true", help="one member, no state writes")
    arguments = parser.parse_args()
    members = MEMBERS[:1] if arguments.lean else MEMBERS
    consortium = LocalConsortium.create(members, seed=b"store startup benchmark")
    with tempfile.TemporaryDirectory(dir=arguments.dir) as folder:
        path = Path(folder) / "chain"
        build_s = build(path, arguments.blocks, consortium, lean=arguments.lean)
        opens = measure_open(path)
        result: dict[str, Any] = {
            "blocks": arguments.blocks,
            "lean": arguments.lean,
            "build_s": round(build_s, 1),
            "open_s": round(statistics.median(opens), 4),
            "open_s_max": round(max(opens), 4),
        }
        if arguments.check:
            with ChainStore.open(path) as store:
                report = check_store(store)
            assert report.ok, report
            result["check_s"] = round(report.seconds, 1)
        result.update(measure_writes(path, consortium, arguments.writes))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
