"""The chain store: blocks, certificates, indexes and the authenticated state, in LevelDB.

Theory of operation
-------------------
A node's chain lives in one LevelDB database (key layouts in :mod:`ledger.schema`). The only
way to change it after creation is :meth:`ChainStore.append_block`, which writes a block, its
commit certificate, its state writes (the new state tree nodes and the value index), the
transaction index and the new tip in **one write batch with** ``sync=True`` (docs/architecture.md,
decision 10). LevelDB applies a batch atomically and its log is fsynced before the call
returns, so after a crash at any instant the database holds exactly the blocks whose append
returned, plus possibly the one being written, whole or not at all.

The store is a mechanism, not a judge of consensus: the replica (chain, height, parent), the
execution engine (the admission of every transaction, the transaction and state roots) and the
auditor decide what may be appended. The store only *asserts* that a block fits (it extends the
tip, its state root is what its writes give, its certificate names it, no transaction is already
in the chain): a block that does not is our own bug, and crashes loudly before anything is
written. Who signed the certificate needs the member set, which the caller knows.

Reads verify what they return: a block read back must hash to the hash it was stored with,
at the height it was stored under, with a matching transaction root; a mismatch raises
:class:`CorruptionError` naming the height. Opening checks the tip record against the tip
block, because the next append builds on it: a tip that lags or names another block would
let a committed block be rewritten.

A damaged store is never served (docs/operations.md, "Start-up checks, corruption and
recovery"). LevelDB is opened with ``paranoid_checks`` (a log record or table that fails its
checksum stops the open instead of being skipped) and every read verifies block checksums;
scans use raw iterators, whose status is checked after every step, so that a damaged block
ends a scan with an error rather than silently short. Every plyvel error becomes a
:class:`StoreError` (a :class:`CorruptionError` for a failed check) at this boundary. The first
such error found while the store is open is remembered (:attr:`ChainStore.damage`), and every
later read or write raises it again: the node stops serving instead of answering "unknown" for
what it may have lost.

LevelDB accepts a log cut at a record boundary as the trace of a crash, so a rolled-back
database (a truncated log) opens cleanly. The witness file (:mod:`ledger.witness`), written
after every synced write, remembers the tip and the latest safety record: a database behind it
is refused with :class:`RolledBackError`. Opening also checks that the block and certificate of
each of the last :data:`RECENT_BLOCKS_CHECKED` heights are present, since a write batch lost in
the middle of LevelDB's log would leave a hole there under an intact tip. What opening checks
costs a few milliseconds whatever the chain's length; ``sceau node check`` checks everything.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import msgpack
import plyvel

from ledger import encoding, merkle, schema, tlog, witness
from ledger.memstate import PREVIEWS_REMEMBERED, StateUpdateCache
from ledger.model import Block, CommitCertificate, Genesis, ModelDecodeError, Transaction
from ledger.state import (
    EMPTY_ROOT,
    SparseMerkleTree,
    StateCorruptionError,
    StateProof,
    StateUpdate,
)
from ledger.witness import Witness, WitnessError, WitnessState

_log = logging.getLogger("sceau.store")

__all__ = [
    "ChainStore",
    "ConfirmedState",
    "CorruptionError",
    "RolledBackError",
    "StoreError",
    "Tip",
]

RECENT_BLOCKS_CHECKED = 4096
STATE_NODES_REMEMBERED = 65_536
"""State tree nodes kept decoded in memory (about 20 MB), besides the records of the last
blocks' updates (``ledger.state.UPDATES_REMEMBERED``, a few MB each at 300 anchors a block): the
top of the tree, which every block's update walks and rewrites, is then neither read from
LevelDB nor checked again."""
RECENT_BYTES_CHECKED = 32 * 1024 * 1024
"""Opening checks that the heights below the tip have their block and certificate, down to
4,096 heights or 32 MiB of block records, whichever comes first.

A write batch is one record of LevelDB's log, all or nothing, and holds its block; the log
replayed at an open holds the writes since the last memtable flush: two write buffers of 4 MiB,
plus the batch that overflowed each (a block's batch is at most its block, 12 MiB, and its
state). A block's batch is over 2 KiB (block, certificate, indexes, state nodes), so 4,096
heights, or 32 MiB of block records (less than their batches), cover every batch an open may
replay, and a batch lost there leaves a hole this check finds. The byte bound keeps the check
to a few tens of milliseconds even when blocks are large."""


class StoreError(Exception):
    """Base class of the store's errors."""


class CorruptionError(StoreError):
    """Data read back is not what was written. ``height`` names the block when known."""

    def __init__(self, message: str, *, height: int | None = None) -> None:
        super().__init__(message if height is None else f"height {height}: {message}")
        self.height = height


class RolledBackError(CorruptionError):
    """The database is behind what its witness saw synced: a tip or a safety record that a
    crash cannot have lost is gone (a truncated log, an old copy of some files)."""


@dataclass(frozen=True, slots=True)
class Tip:
    """The last block appended (height 0 and the chain_id before the first block)."""

    height: int
    block_hash: bytes
    state_root: bytes


class _NodeReader:
    """Reads state tree records from the chain database, checksums verified."""

    def __init__(self, read: Callable[[bytes], bytes | None]) -> None:
        self._read = read

    def get_node(self, node_hash: bytes) -> bytes | None:
        return self._read(schema.node_key(node_hash))


class ChainStore:
    """A node's chain: open with :meth:`create` or :meth:`open`, close when done."""

    def __init__(self, database: plyvel.DB, genesis: Genesis, tip: Tip, path: Path) -> None:
        self._database = database
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self._tip = tip
        self.path = path
        self._damage: StoreError | None = None
        self.on_damage: Callable[[StoreError], None] | None = None
        """Called once, with the error, when the open store is first found damaged."""
        self._witness: Witness | None = None
        self._safety_saves = 0
        self._safety: tuple[bytes, int, int] | None = None
        self._defer_witness = False
        self._tree = SparseMerkleTree(
            _NodeReader(self._get), nodes_remembered_max=STATE_NODES_REMEMBERED
        )
        self._previews = StateUpdateCache(PREVIEWS_REMEMBERED)
        self._tip_members_hash: bytes | None = None
        self._log: tlog.LogFrontier | None = None
        self._log_previews: collections.deque[
            tuple[tlog.LogFrontier, list[bytes], tuple[tlog.LogFrontier, dict]]
        ] = collections.deque(maxlen=PREVIEWS_REMEMBERED)

    # --- lifecycle ----------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        genesis: Genesis,
        initial_state: Mapping[bytes, bytes] | None = None,
    ) -> ChainStore:
        """Create a new chain database at ``path`` for ``genesis``.

        ``initial_state`` is the state at height 0 (for example the member set the genesis
        declares). Raises :class:`StoreError` if a database already exists there.
        """
        target = Path(path)
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise StoreError(f"{target} is not empty; refusing to create a chain there")
        try:
            target.mkdir(parents=True, exist_ok=True)
            # The witness first: a creation interrupted after it has no database records,
            # which open() reports as an interrupted creation, never as a missing witness.
            created = Witness.create(target, WitnessState(tip_height=0, tip_hash=genesis.chain_id))
        except (OSError, WitnessError) as error:
            raise StoreError(f"cannot create a chain at {target}: {error}") from None
        database = None
        try:
            database = plyvel.DB(
                str(target), create_if_missing=True, error_if_exists=True, paranoid_checks=True
            )
            tree = SparseMerkleTree(_NodeReader(lambda key: _read(database, key)))
            update = tree.update(EMPTY_ROOT, dict(initial_state or {}))
            tip = Tip(0, genesis.chain_id, update.root)
            with database.write_batch(sync=True, transaction=True) as batch:
                for node_hash, record in update.new_nodes.items():
                    batch.put(schema.node_key(node_hash), record)
                for key, value in (initial_state or {}).items():
                    batch.put(schema.value_key(key), value)
                batch.put(schema.GENESIS, genesis.to_bytes())
                batch.put(schema.TIP, _encode_tip(tip))
                batch.put(schema.WITNESSED, b"")
                batch.put(schema.FORMAT, schema.FORMAT_VERSION)
                batch.put(schema.LOG_SIZE, schema.encode_height(0))
        except BaseException as error:
            created.close()
            if database is not None:
                database.close()
            if isinstance(error, plyvel.Error):
                raise StoreError(f"cannot create a chain at {target}: {_describe(error)}") from None
            raise
        store = cls(database, genesis, tip, target)
        store._witness = created
        return store

    @classmethod
    def open(cls, path: str | os.PathLike) -> ChainStore:
        """Open an existing chain database, checking what a restart must not build on.

        Raises :class:`StoreError` if there is none, if its creation did not complete, or if
        another store holds it open; :class:`CorruptionError` if LevelDB finds a damaged log
        or table, a record does not decode, the tip record disagrees with the blocks on disk,
        or a recent block or certificate is missing; :class:`RolledBackError` if the tip or
        the safety record is behind what the witness saw synced.
        """
        target = Path(path)
        if not (target / "CURRENT").exists():
            raise StoreError(f"no chain database at {target}")
        try:
            database = plyvel.DB(str(target), create_if_missing=False, paranoid_checks=True)
        except plyvel.IOError as error:
            # LevelDB allows one open handle per database: another process or another
            # ChainStore of this process holds its LOCK file.
            message = _describe(error)
            if "lock" not in message.lower():
                raise StoreError(f"cannot open {target}: {message}") from None
            raise StoreError(
                f"cannot open {target}: {message} (is the chain already open in "
                "another store or process?)"
            ) from None
        except plyvel.Error as error:
            raise CorruptionError(f"LevelDB refuses to open it: {_describe(error)}") from None
        store = None
        try:
            format_version = _read(database, schema.FORMAT)
            if format_version is None and _read(database, schema.TIP) is None:
                # create() writes every record in one batch, so none means it was interrupted.
                raise StoreError(f"{target}: the chain's creation did not complete")
            if format_version != schema.FORMAT_VERSION:
                raise StoreError(f"{target}: unknown store format {format_version!r}")
            genesis = _decode_genesis(_required(database, schema.GENESIS, "genesis"))
            tip = _decode_tip(_required(database, schema.TIP, "tip"))
            store = cls(database, genesis, tip, target)
            saves = _read(database, schema.SAFETY_SAVES)
            store._safety_saves = 0 if saves is None else schema.decode_height(saves)
            store._check_tip()
            store._check_recent_blocks()
            store._check_witness()
            if _read(database, schema.LOG_SIZE) is None:
                store._build_log()
        except BaseException:
            if store is not None and store._witness is not None:
                store._witness.close()
            database.close()
            raise
        return store

    def close(self) -> None:
        if self._witness is not None:
            self._witness.close()
        self._database.close()

    @property
    def damage(self) -> StoreError | None:
        """The first error that showed this open store damaged, or None (see the module doc)."""
        return self._damage

    def _check_tip(self) -> None:
        """Check the tip record against the blocks on disk; raises CorruptionError.

        The next append trusts the tip (its height, hash and state root), so a tip that
        disagrees with the chain must stop the node here, before a block is rewritten.
        """
        tip = self._tip
        if tip.height == 0:
            if tip.block_hash != self.chain_id:
                raise CorruptionError("the tip record of height 0 does not hold the chain_id")
        else:
            block = self.block(tip.height)
            if block is None or block.block_hash != tip.block_hash:
                raise CorruptionError("the tip record names another block hash", height=tip.height)
            if block.header.state_root != tip.state_root:
                raise CorruptionError("the tip record names another state root", height=tip.height)
        if self._get(schema.block_key(tip.height + 1)) is not None:
            raise CorruptionError(
                f"a block is stored above the tip record's height {tip.height}",
                height=tip.height + 1,
            )
        if tip.state_root != EMPTY_ROOT and self._get(schema.node_key(tip.state_root)) is None:
            raise CorruptionError("the tip's state root has no state tree node", height=tip.height)

    def _check_recent_blocks(self) -> None:
        """The recent heights have their block and their certificate (see RECENT_BLOCKS_CHECKED).

        Walks down from the tip until RECENT_BLOCKS_CHECKED heights or RECENT_BYTES_CHECKED
        bytes of block records: a block's write batch is larger than its block record, so the
        heights walked hold at least that many bytes of batches, more than LevelDB replays.
        """
        last = self._tip.height
        expected, block_bytes = last, 0
        for key, value in self._scan_down(schema.block_key(last), schema.block_key(1)):
            if schema.decode_height(key[-8:]) != expected:
                break
            expected -= 1
            block_bytes += len(value)
            if last - expected >= RECENT_BLOCKS_CHECKED or block_bytes >= RECENT_BYTES_CHECKED:
                break
        bounded = last - expected >= RECENT_BLOCKS_CHECKED or block_bytes >= RECENT_BYTES_CHECKED
        if expected >= 1 and not bounded:
            raise CorruptionError("block is missing", height=expected)
        first = expected + 1
        for key in self._keys(schema.certificate_key(first), schema.certificate_key(last + 1)):
            if schema.decode_height(key[-8:]) != first:
                raise CorruptionError("certificate is missing", height=first)
            first += 1
        if first != last + 1:
            raise CorruptionError("certificate is missing", height=first)

    def _check_witness(self) -> None:
        """Compare the database with its witness; raises RolledBackError or CorruptionError.

        A database one write ahead of the witness is the trace of a kill between the two
        writes; the witness is then brought up to date.
        """
        if not witness.exists(self.path):
            if self._get(schema.WITNESSED) is not None:
                raise CorruptionError(
                    f"the witness file {self.path / witness.FILE_NAME} is missing: the "
                    "database cannot be shown not to be rolled back"
                )
            # A database of an earlier version: witness it from now on.
            try:
                self._witness = Witness.create(self.path, self._witness_state())
            except WitnessError as error:
                raise StoreError(str(error)) from None
            self._put_synced(schema.WITNESSED, b"")
            return
        try:
            self._witness = Witness.open(self.path)
        except WitnessError as error:
            raise CorruptionError(f"the witness is damaged: {error}") from None
        seen = self._witness.state
        tip = self._tip
        if tip.height < seen.tip_height:
            raise RolledBackError(
                f"rolled back: the database's tip is height {tip.height}, but height "
                f"{seen.tip_height} was committed and synced before"
            )
        if seen.tip_height > 0:
            block = self.block(seen.tip_height)
            assert block is not None
            if block.block_hash != seen.tip_hash:
                raise CorruptionError(
                    "the block differs from the one the witness saw committed",
                    height=seen.tip_height,
                )
        elif seen.tip_hash != self.chain_id:
            raise CorruptionError("the witness belongs to another chain")
        self._check_safety_witness(seen)
        if self._witness_state() != replace(seen, generation=0):
            self._record_witness()

    def _check_safety_witness(self, seen: WitnessState) -> None:
        if self._safety_saves < seen.safety_saves:
            position = (
                f" (height {seen.safety_height}, view {seen.safety_view})"
                if seen.safety_height
                else ""
            )
            raise RolledBackError(
                f"rolled back: the safety record is save #{self._safety_saves}, but save "
                f"#{seen.safety_saves}{position} was synced before; this member may have "
                "voted at heights the database no longer shows"
            )
        if self._safety_saves == seen.safety_saves and seen.safety_saves > 0:
            record = self._get(schema.SAFETY)
            if record is None or hashlib.sha256(record).digest() != seen.safety_hash:
                raise CorruptionError(
                    f"the safety record (save #{seen.safety_saves}) is not the one the "
                    "witness saw synced"
                )

    def __enter__(self) -> ChainStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- guarded access: every plyvel call goes through these ---------------------------------

    def _damaged(self, error: StoreError) -> StoreError:
        """Remember the first damage found; every later read or write raises it again."""
        if self._damage is None:
            self._damage = error
            if self.on_damage is not None:
                self.on_damage(error)
        return error

    def _corrupt(self, message: str, *, height: int | None = None) -> StoreError:
        return self._damaged(CorruptionError(message, height=height))

    def _get(self, key: bytes) -> bytes | None:
        """One record, its block checksums verified; raises the store's errors, never plyvel's."""
        if self._damage is not None:
            raise self._damage
        try:
            return self._database.get(key, verify_checksums=True)
        except plyvel.Error as error:
            raise self._damaged(_store_error(error)) from None

    def _scan(self, start: bytes, stop: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        """Records with ``start <= key < stop`` in key order, checksums verified.

        A raw iterator, because plyvel's plain iterator ends silently when LevelDB's iterator
        stops on an error (a damaged table block): the raw one checks the status after every
        step, so a damaged block ends the scan with an error, never with a short answer.
        """
        if self._damage is not None:
            raise self._damage
        try:
            iterator = self._database.raw_iterator(verify_checksums=True)
            try:
                iterator.seek(start)
                while iterator.valid():
                    key = iterator.key()
                    if stop is not None and key >= stop:
                        return
                    yield key, iterator.value()
                    iterator.next()
            finally:
                iterator.close()
        except plyvel.Error as error:
            raise self._damaged(_store_error(error)) from None

    def _scan_down(self, start: bytes, low: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Records from ``start`` down to ``low`` (both included), in descending key order."""
        if self._damage is not None:
            raise self._damage
        try:
            iterator = self._database.raw_iterator(verify_checksums=True)
            try:
                iterator.seek(start)  # the first key at or above start
                if not iterator.valid():
                    iterator.seek_to_last()
                elif iterator.key() > start:
                    iterator.prev()
                while iterator.valid():
                    key = iterator.key()
                    if key < low:
                        return
                    yield key, iterator.value()
                    iterator.prev()
            finally:
                iterator.close()
        except plyvel.Error as error:
            raise self._damaged(_store_error(error)) from None

    def _keys(self, start: bytes, stop: bytes | None) -> Iterator[bytes]:
        for key, _ in self._scan(start, stop):
            yield key

    def _put_synced(self, key: bytes, value: bytes) -> None:
        if self._damage is not None:
            raise self._damage
        try:
            self._database.put(key, value, sync=True)
        except plyvel.Error as error:
            raise self._damaged(_store_error(error)) from None

    def _witness_state(self) -> WitnessState:
        safety_hash, safety_height, safety_view = self._safety_summary()
        return WitnessState(
            tip_height=self._tip.height,
            tip_hash=self._tip.block_hash,
            safety_saves=self._safety_saves,
            safety_height=safety_height,
            safety_view=safety_view,
            safety_hash=safety_hash,
        )

    def _safety_summary(self) -> tuple[bytes, int, int]:
        """SHA-256, height and view of the safety record in the database (zeros: none)."""
        if self._safety is None:
            record = self._get(schema.SAFETY) if self._safety_saves else None
            if record is None:
                self._safety = (bytes(32), 0, 0)
            else:
                self._safety = (hashlib.sha256(record).digest(), *_safety_position(record))
        return self._safety

    @contextlib.contextmanager
    def witness_deferred(self) -> Iterator[None]:
        """Write the witness once at the end instead of after each write: for filling a new
        database that nothing serves until it is complete (``sceau import``), where a crash
        discards the whole database anyway. Halves the flushes of a bulk import."""
        self._defer_witness = True
        try:
            yield
        finally:
            self._defer_witness = False
        self._record_witness()

    def _record_witness(self) -> None:
        assert self._witness is not None, "an open store has a witness"
        if self._defer_witness:
            return
        try:
            self._witness.record(self._witness_state())
        except WitnessError as error:
            raise self._damaged(StoreError(str(error))) from None

    # --- writing ------------------------------------------------------------------------------

    def preview_state_root(self, state_writes: Mapping[bytes, bytes | None]) -> bytes:
        """The state root that ``state_writes`` applied on the tip would give; writes nothing.

        The update is remembered (a few of them), so that appending the block whose writes
        these are does not compute the same tree nodes a second time.
        """
        update = self._previews.find(self._tip.state_root, state_writes)
        if update is None:  # not already previewed (a primary's block, validated again)
            update = self._tree_call(self._tree.update, self._tip.state_root, state_writes)
            self._previews.remember(self._tip.state_root, state_writes, update)
        return update.root

    def preview_log(self, leaves: Sequence[bytes]) -> tlog.LogFrontier:
        """The log's frontier after ``leaves`` appended at the tip; writes nothing.

        The new hashes are remembered (a few previews), so that appending the block of these
        leaves does not hash them a second time.
        """
        frontier = self.log_frontier()
        appended = tlog.append(frontier, leaves)
        self._log_previews.append((frontier, list(leaves), appended))
        return appended[0]

    def _log_append(
        self, leaves: list[bytes]
    ) -> tuple[tlog.LogFrontier, dict[tuple[int, int], bytes]]:
        """The log after ``leaves`` and its new hashes: a preview's, or computed now."""
        frontier = self.log_frontier()
        for base, previewed, appended in self._log_previews:
            if base == frontier and previewed == leaves:
                return appended
        return tlog.append(frontier, leaves)

    def _state_update(self, state_writes: Mapping[bytes, bytes | None]) -> StateUpdate:
        root = self._tip.state_root
        update = self._previews.find(root, state_writes)
        if update is None:
            update = self._tree_call(self._tree.update, root, state_writes)
        return update

    def append_block(
        self,
        block: Block,
        certificate: CommitCertificate,
        state_writes: Mapping[bytes, bytes | None],
    ) -> Tip:
        """Append ``block`` with its certificate and state writes in one synced write batch.

        ``state_writes`` maps state keys to their new value (``None`` deletes); the caller has
        admitted the block (see the module doc). Asserts, writing nothing, that the block
        extends the tip, its state root is what the writes give, the certificate names it and
        no transaction is already in the chain. Returns the new tip.
        """
        header = block.header
        self._assert_fits(block, certificate)
        update = self._state_update(state_writes)
        assert update.root == header.state_root, (
            f"block {header.height}: state_root {header.state_root.hex()} but the state "
            f"writes give {update.root.hex()}"
        )
        tip = Tip(header.height, block.block_hash, update.root)
        member_set_changed = header.members_hash != self._members_hash_at_tip()
        appended = self._log_append(block.transaction_leaves())
        assert header.log_size is None or (header.log_size, header.log_root) == (
            appended[0].size,
            appended[0].root,
        ), f"block {header.height}: the header's log does not match the chain's"
        try:
            self._write_block(
                block, certificate, state_writes, update, tip, member_set_changed, appended
            )
        except plyvel.Error as error:
            raise self._damaged(_store_error(error)) from None
        self._log = appended[0]
        self._tip = tip
        self._tree.remember(update.new_nodes)
        self._tip_members_hash = header.members_hash
        self._previews.clear()
        self._log_previews.clear()
        self._record_witness()
        return tip

    def _write_block(
        self,
        block: Block,
        certificate: CommitCertificate,
        state_writes: Mapping[bytes, bytes | None],
        update: StateUpdate,
        tip: Tip,
        member_set_changed: bool,
        appended: tuple[tlog.LogFrontier, dict[tuple[int, int], bytes]],
    ) -> None:
        """The block's one synced write batch (see the module doc)."""
        header = block.header
        if self._damage is not None:
            raise self._damage
        with self._database.write_batch(sync=True, transaction=True) as batch:
            if member_set_changed:
                batch.put(schema.member_set_change_key(header.height), b"")
            batch.put(schema.block_key(header.height), block.block_hash + block.to_bytes())
            batch.put(schema.hash_key(block.block_hash), schema.encode_height(header.height))
            batch.put(schema.certificate_key(header.height), certificate.to_bytes())
            for position, transaction in enumerate(block.transactions):
                batch.put(
                    schema.transaction_key(transaction.tx_id),
                    schema.encode_location(header.height, position),
                )
            for node_hash, record in update.new_nodes.items():
                batch.put(schema.node_key(node_hash), record)
            for key, value in state_writes.items():
                if value is None:
                    batch.delete(schema.value_key(key))
                else:
                    batch.put(schema.value_key(key), value)
            self._put_log(batch, block, appended)
            batch.put(schema.TIP, _encode_tip(tip))

    def _put_log(
        self,
        batch: Any,
        block: Block,
        appended: tuple[tlog.LogFrontier, dict[tuple[int, int], bytes]],
    ) -> None:
        frontier, created = appended
        for (level, index), digest in created.items():
            batch.put(schema.log_key(level, index), digest)
        if block.transactions:
            first = frontier.size - len(block.transactions)
            batch.put(schema.log_block_key(first), schema.encode_height(block.height))
        batch.put(schema.LOG_SIZE, schema.encode_height(frontier.size))

    def _build_log(self) -> None:
        """Build the log of a database written before the log existed, block by block (each
        block's part in its own batch, the size last: an interrupted build starts over)."""
        _log.info("building the log of every act for %d blocks (once)", self._tip.height)
        frontier = tlog.EMPTY_FRONTIER
        try:
            for start in range(1, self._tip.height + 1, 1000):
                with self._database.write_batch(sync=False) as batch:
                    for block in self.blocks(start, start + 999):
                        appended = tlog.append(frontier, block.transaction_leaves())
                        self._put_log(batch, block, appended)
                        frontier = appended[0]
            self._database.put(schema.LOG_SIZE, schema.encode_height(frontier.size), sync=True)
        except plyvel.Error as error:
            raise self._damaged(_store_error(error)) from None
        self._log = frontier

    # --- the log of every act (ledger.tlog) -------------------------------------------------------

    @property
    def log_size(self) -> int:
        """How many transactions the chain holds: the size of the log at the tip."""
        return self.log_frontier().size

    def log_frontier(self) -> tlog.LogFrontier:
        """The log's frontier at the tip (what the engine extends with the next block)."""
        if self._log is None:
            data = self._get(schema.LOG_SIZE)
            if data is None:
                raise self._corrupt("the log's size is missing")
            self._log = tlog.frontier_at(schema.decode_height(data), self.log_hash)
        return self._log

    def log_hash(self, level: int, index: int) -> bytes:
        """The hash of the log's complete subtree ``(level, index)``; it must exist."""
        digest = self._get(schema.log_key(level, index))
        if digest is None or len(digest) != 32:
            raise self._corrupt(f"the log's subtree ({level}, {index}) is missing")
        return digest

    def log_hashes(self, level: int, start: int, count: int) -> list[bytes]:
        """``count`` consecutive subtree hashes of ``level`` from ``start`` (a tile's hashes)."""
        found = [
            value
            for _, value in self._scan(
                schema.log_key(level, start), schema.log_key(level, start + count)
            )
        ]
        if len(found) != count:
            raise self._corrupt(f"the log's level {level} is missing hashes from {start}")
        return found

    def log_entry_location(self, index: int) -> tuple[int, int]:
        """``(height, position)`` of log entry ``index`` (below the log's size)."""
        assert 0 <= index < self.log_size, "an entry of the log"
        for key, value in self._scan_down(schema.log_block_key(index), schema.LOG_BLOCK_PREFIX):
            first = schema.decode_height(key[len(schema.LOG_BLOCK_PREFIX) :])
            return schema.decode_height(value), index - first
        raise self._corrupt(f"no block holds log entry {index}")

    def save_checkpoint(self, note: bytes) -> None:
        """Keep ``note``, the latest consortium checkpoint (a signed note), replacing the one
        before. Not synced: a checkpoint lost in a crash is signed again for a later block."""
        if self._damage is not None:
            raise self._damage
        try:
            self._database.put(schema.CHECKPOINT, note)
        except plyvel.Error as error:
            raise self._damaged(_store_error(error)) from None

    def checkpoint(self) -> bytes | None:
        """The latest consortium checkpoint kept by :meth:`save_checkpoint`, or None."""
        return self._get(schema.CHECKPOINT)

    def log_entries(self, start: int, count: int) -> list[bytes]:
        """The canonical bytes of log entries ``start .. start + count − 1`` (all below the
        log's size), read from their blocks."""
        entries: list[bytes] = []
        while len(entries) < count:
            height, position = self.log_entry_location(start + len(entries))
            block = self.block(height)
            assert block is not None
            taken = block.transactions[position : position + count - len(entries)]
            entries.extend(transaction.encoded for transaction in taken)
        return entries

    def _members_hash_at_tip(self) -> bytes:
        """The members_hash of the tip's header (the genesis member set's before block 1)."""
        if self._tip_members_hash is None:
            if self._tip.height == 0:
                self._tip_members_hash = self.genesis.members_hash
            else:
                block = self.block(self._tip.height)
                assert block is not None
                self._tip_members_hash = block.header.members_hash
        return self._tip_members_hash

    def member_set_changes(self, up_to_height: int | None = None) -> list[int]:
        """Heights h whose block is certified by another member set than block h − 1's.

        The set in force at such an h was committed by block h − 1 (membership state after
        it); receipts carry a proof of each change so that a verifier holding only the
        genesis knows which keys may certify a later block.
        """
        last = self._tip.height if up_to_height is None else up_to_height
        heights = []
        prefix = schema.MEMBER_SET_CHANGE_PREFIX
        for key in self._keys(prefix, _prefix_end(prefix)):
            height = schema.decode_height(key[len(schema.MEMBER_SET_CHANGE_PREFIX) :])
            if height > last:
                break
            heights.append(height)
        return heights

    def _assert_fits(self, block: Block, certificate: CommitCertificate) -> None:
        """Assert that ``block`` fits on the tip: the caller admitted it, so a misfit is our bug.

        The transaction root is not recomputed here: it comes with the execution that admitted
        the block, and every read of the block checks it against the transactions on disk.
        """
        header = block.header
        expected_height = self._tip.height + 1
        assert header.chain_id == self.chain_id, (
            f"block {header.height}: chain_id of another consortium"
        )
        assert header.height == expected_height, (
            f"block {header.height} does not extend the tip: expected height {expected_height}"
        )
        assert header.prev_hash == self._tip.block_hash, (
            f"block {header.height}: prev_hash {header.prev_hash.hex()} is not the tip's "
            f"hash {self._tip.block_hash.hex()}"
        )
        assert certificate.height == header.height, (
            f"block {header.height}: the certificate is for another block"
        )
        assert certificate.block_hash == block.block_hash, (
            f"block {header.height}: the certificate is for another block"
        )
        # A block proposed in view v may be committed in v or, re-proposed after a view
        # change, in a later view; never in an earlier one.
        assert certificate.view >= header.view, (
            f"block {header.height}: certificate of view {certificate.view}, before the "
            f"block's view {header.view}"
        )
        if __debug__:
            seen: set[bytes] = set()
            for transaction in block.transactions:
                assert transaction.tx_id not in seen, (
                    f"block {header.height}: transaction {transaction.tx_id.hex()} appears "
                    "twice in the block"
                )
                location = self.transaction_location(transaction.tx_id)
                assert location is None, (
                    f"block {header.height}: transaction {transaction.tx_id.hex()} is already "
                    f"in the chain (block {location[0]})"
                )
                seen.add(transaction.tx_id)

    def save_safety_record(self, record: bytes) -> None:
        """Durably replace the consensus safety record (synced before the call returns).

        The replica's votes must be on disk before they are sent (docs/consensus.md); the
        record lives in the chain database so that one directory holds a node's whole state.
        The record is counted with it, and the witness updated after it, so that a record
        rolled back with a damaged log is refused at the next open.
        """
        saves = self._safety_saves + 1
        if self._damage is not None:
            raise self._damage
        try:
            with self._database.write_batch(sync=True) as batch:
                batch.put(schema.SAFETY, record)
                batch.put(schema.SAFETY_SAVES, schema.encode_height(saves))
        except plyvel.Error as error:
            raise self._damaged(_store_error(error)) from None
        self._safety_saves = saves
        self._safety = (hashlib.sha256(record).digest(), *_safety_position(record))
        self._record_witness()

    @property
    def safety_position(self) -> tuple[int, int, int]:
        """``(saves, height, view)`` of the last safety record saved ((0, 0, 0): none): how
        far this member may have voted, for an operator rebuilding its node."""
        _, height, view = self._safety_summary()
        return self._safety_saves, height, view

    def safety_record(self) -> bytes | None:
        """The last safety record saved, or None."""
        return self._get(schema.SAFETY)

    # --- reading ------------------------------------------------------------------------------

    @property
    def tip(self) -> Tip:
        return self._tip

    @property
    def height(self) -> int:
        return self._tip.height

    def block(self, height: int) -> Block | None:
        """The block at ``height``, verified; None above the tip. Raises CorruptionError."""
        record = self._get(schema.block_key(height))
        if record is None:
            if 1 <= height <= self._tip.height:
                raise self._corrupt("block is missing", height=height)
            return None
        stored_hash, data = record[:32], record[32:]
        try:
            block = Block.from_bytes(data)
        except (encoding.EncodingError, ModelDecodeError) as error:
            raise self._corrupt(f"block does not decode: {error}", height=height) from None
        if block.height != height:
            raise self._corrupt(f"holds the block of height {block.height}", height=height)
        if block.block_hash != stored_hash:
            raise self._corrupt("block hash does not match the stored hash", height=height)
        if merkle.root(block.transaction_leaves()) != block.header.tx_root:
            raise self._corrupt("transactions do not match tx_root", height=height)
        return block

    def block_by_hash(self, block_hash: bytes) -> Block | None:
        """The block whose header hashes to ``block_hash``, or None."""
        encoded_height = self._get(schema.hash_key(block_hash))
        if encoded_height is None:
            return None
        height = schema.decode_height(encoded_height)
        block = self.block(height)
        if block is None or block.block_hash != block_hash:
            raise self._corrupt("hash index points at another block", height=height)
        return block

    def certificate(self, height: int) -> CommitCertificate | None:
        """The commit certificate of block ``height``, checked against the stored block hash."""
        data = self._get(schema.certificate_key(height))
        if data is None:
            if 1 <= height <= self._tip.height:
                raise self._corrupt("certificate is missing", height=height)
            return None
        try:
            certificate = CommitCertificate.from_bytes(data)
        except (encoding.EncodingError, ModelDecodeError) as error:
            raise self._corrupt(f"certificate does not decode: {error}", height=height) from None
        record = self._get(schema.block_key(height))
        if certificate.height != height or record is None or record[:32] != certificate.block_hash:
            raise self._corrupt("certificate is for another block", height=height)
        return certificate

    def blocks(self, start: int = 1, stop: int | None = None) -> Iterator[Block]:
        """Blocks from ``start`` to ``stop`` (inclusive, default the tip), in order."""
        last = self._tip.height if stop is None else min(stop, self._tip.height)
        for height in range(max(start, 1), last + 1):
            block = self.block(height)
            assert block is not None
            yield block

    def transaction_location(self, tx_id: bytes) -> tuple[int, int] | None:
        """``(height, position)`` of a committed transaction, or None."""
        data = self._get(schema.transaction_key(tx_id))
        if data is None:
            return None
        height, position = schema.decode_location(data)
        if not 1 <= height <= self._tip.height:
            raise self._corrupt("transaction index points above the tip", height=height)
        return height, position

    def transaction(self, tx_id: bytes) -> tuple[Transaction, int, int] | None:
        """A committed transaction with its height and position, or None."""
        location = self.transaction_location(tx_id)
        if location is None:
            return None
        height, position = location
        block = self.block(height)
        if block is None or position >= len(block.transactions):
            raise self._corrupt("transaction index points outside the block", height=height)
        transaction = block.transactions[position]
        if transaction.tx_id != tx_id:
            raise self._corrupt("transaction index points at another transaction", height=height)
        return transaction, height, position

    def state_get(self, key: bytes) -> bytes | None:
        """The value of state ``key`` at the tip, or None."""
        return self._get(schema.value_key(key))

    def state_get_confirmed(self, key: bytes) -> bytes | None:
        """``state_get``, with an absence confirmed in the state tree (for answers to clients).

        The value index is a copy of the tree's leaves, written in the same batch; a key it
        lacks is looked up in the tree too (one walk from the tip's root, every node checked),
        so that "no such key" is said only when the tree, whose root the tip block commits
        to, proves it. Raises CorruptionError if the tree holds the key or cannot be walked.
        Execution keeps the one-lookup ``state_get``: its misses are many, and a wrong one
        there gives a state root the other members refuse.
        """
        value = self.state_get(key)
        if value is None and self._tree_call(self._tree.get, self._tip.state_root, key) is not None:
            raise self._corrupt(f"the value index lost state key {key[:48]!r}: the tree holds it")
        return value

    def confirmed_reads(self) -> ConfirmedState:
        """The committed state as the engine reads it, absences confirmed (API answers)."""
        return ConfirmedState(self)

    def state_items(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """State entries at the tip whose key starts with ``prefix``, in key order."""
        full_prefix = schema.value_key(prefix)
        for key, value in self._scan(full_prefix, _prefix_end(full_prefix)):
            yield key[len(schema.VALUE_PREFIX) :], value

    def state_prove(self, key: bytes, state_root: bytes | None = None) -> StateProof:
        """A proof of ``key``'s value (or absence) under ``state_root`` (default: the tip's)."""
        root = self._tip.state_root if state_root is None else state_root
        return self._tree_call(self._tree.prove, root, key)

    def state_get_at(self, key: bytes, state_root: bytes) -> bytes | None:
        """The value of ``key`` under any earlier state root (walks the state tree)."""
        return self._tree_call(self._tree.get, state_root, key)

    def state_leaves(self) -> Iterator[tuple[bytes, bytes]]:
        """Every ``(key_path, value)`` of the tip's state tree, each node checked (slow: for
        ``sceau node check``)."""
        leaves = self._tree.leaves(self._tip.state_root)
        while True:
            try:
                leaf = next(leaves)
            except StopIteration:
                return
            except StateCorruptionError as error:
                raise self._corrupt(f"the state tree is damaged: {error}") from None
            yield leaf

    def index_sizes(self) -> dict[str, int]:
        """How many entries each per-block index holds (``sceau node check``)."""
        sizes = {}
        for name, prefix in (
            ("block", schema.BLOCK_PREFIX),
            ("certificate", schema.CERTIFICATE_PREFIX),
            ("hash", schema.HASH_PREFIX),
            ("transaction", schema.TRANSACTION_PREFIX),
        ):
            sizes[name] = sum(1 for _ in self._keys(prefix, _prefix_end(prefix)))
        return sizes

    def _tree_call(self, method: Callable[..., Any], *arguments: Any) -> Any:
        """A state tree operation; a missing or damaged node is damage of the store."""
        try:
            return method(*arguments)
        except StateCorruptionError as error:
            raise self._corrupt(f"the state tree is damaged: {error}") from None


class ConfirmedState:
    """A store's committed state for answers to clients: point reads whose absence the state
    tree confirms (:meth:`ChainStore.state_get_confirmed`). Scans (``state_items``) cannot be
    confirmed against a tree ordered by key hash; their completeness rests on LevelDB's
    checksums and on the start-up checks."""

    def __init__(self, store: ChainStore) -> None:
        self._store = store

    def state_get(self, key: bytes) -> bytes | None:
        return self._store.state_get_confirmed(key)

    def state_items(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        return self._store.state_items(prefix)

    def preview_state_root(self, state_writes: Mapping[bytes, bytes | None]) -> bytes:
        raise AssertionError("answers to clients never execute")

    def transaction_location(self, tx_id: bytes) -> tuple[int, int] | None:
        return self._store.transaction_location(tx_id)


def _read(database: plyvel.DB, key: bytes) -> bytes | None:
    """``database.get`` with checksums verified and plyvel's errors made the store's."""
    try:
        return database.get(key, verify_checksums=True)
    except plyvel.Error as error:
        raise _store_error(error) from None


def _required(database: plyvel.DB, key: bytes, what: str) -> bytes:
    value = _read(database, key)
    if value is None:
        raise CorruptionError(f"the chain database has no {what}")
    return value


def _store_error(error: plyvel.Error) -> StoreError:
    """The store's error for a plyvel error: a failed check is corruption; the rest (an I/O
    error of the disk, LevelDB's own refusal) cannot be served from either."""
    if isinstance(error, plyvel.CorruptionError):
        return CorruptionError(f"LevelDB: {_describe(error)}")
    return StoreError(f"LevelDB: {_describe(error)}")


def _prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key above every key starting with ``prefix`` (None: there is none)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


def _safety_position(record: bytes) -> tuple[int, int]:
    """The ``height`` and ``view`` of a safety record, (0, 0) if it does not say.

    The store keeps the record opaque; it reads these two fields (the first ones of the
    canonical map, whose keys sort by length) only to tell an operator, in a rolled-back
    message, how far this member may have voted.
    """
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(record)
    found: dict[str, int] = {}
    try:
        for _ in range(min(unpacker.read_map_header(), 8)):
            name = unpacker.unpack()
            if name in ("height", "view"):
                value = unpacker.unpack()
                if type(value) is int and 0 <= value < 2**63:
                    found[name] = value
            else:
                unpacker.skip()
            if len(found) == 2:
                break
    except (ValueError, TypeError, msgpack.UnpackException, msgpack.OutOfData):
        return 0, 0
    return found.get("height", 0), found.get("view", 0)


def _describe(error: plyvel.Error) -> str:
    """plyvel's message, which it carries as bytes."""
    message = error.args[0] if error.args else error
    return message.decode(errors="replace") if isinstance(message, bytes) else str(message)


def _decode_genesis(data: bytes) -> Genesis:
    try:
        return Genesis.from_bytes(data)
    except (encoding.EncodingError, ModelDecodeError) as error:
        raise CorruptionError(f"the genesis record does not decode: {error}") from None


def _encode_tip(tip: Tip) -> bytes:
    return encoding.pack([tip.height, tip.block_hash, tip.state_root])


def _decode_tip(data: bytes) -> Tip:
    try:
        height, block_hash, state_root = encoding.unpack(data)
    except (encoding.EncodingError, ValueError, TypeError):
        raise CorruptionError("the tip record does not decode") from None
    if not (
        type(height) is int
        and height >= 0
        and isinstance(block_hash, bytes)
        and len(block_hash) == 32
        and isinstance(state_root, bytes)
        and len(state_root) == 32
    ):
        raise CorruptionError("the tip record is malformed")
    return Tip(height, block_hash, state_root)
