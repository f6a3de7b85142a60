"""Committed state held in memory: the same reads as :class:`ledger.store.ChainStore`.

The execution engine reads committed state through four methods (``state_get``,
``state_items``, ``preview_state_root``, ``transaction_location``). A node serves them from its
LevelDB store; everything that needs no disk serves them from :class:`MemoryState`, the one
in-memory committed state: the simulator's application (consensus/simapp.py), the offline
auditor's replay (contracts/replay.py), the contract tests and the test vectors. It keeps the
values in a dict and the authenticated state in a sparse Merkle tree over a
:class:`~ledger.state.MemoryNodeStore`, so its roots are the ones a node computes.

Two things are shared with the LevelDB store rather than written twice:

* :class:`StateUpdateCache` remembers the tree updates computed by ``preview_state_root`` (the
  engine previews the root of every block it executes), so that committing the same writes on
  the same root does not hash the same tree nodes a second time. ChainStore keeps one for its
  tip; MemoryState keeps one for its latest root.
* the tree itself (:class:`~ledger.state.SparseMerkleTree`), which both drive.

Why the store is not a MemoryState: its committed state is on disk, written in the block's one
synced LevelDB batch (docs/architecture.md, decision 10) and read back with checksums, and a
node must survive a restart; a MemoryState holds everything in dicts and is gone with its process.
What they have in common is the tree and the update cache, and both are shared.

History. By default a MemoryState keeps every tree node it ever made, so that every past root
stays provable (the test vectors prove keys at several heights). Replaying a whole chain
that way would need memory in proportion to the chain's history (about 7 MB per block of
1,000 anchors); the auditor only ever needs the latest root, so ``history=False`` keeps only
the nodes reachable from the latest root: memory in proportion to the state, same roots.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator, Mapping, Sequence

from ledger import tlog
from ledger.merkle import leaf_hash
from ledger.state import (
    EMPTY_ROOT,
    INTERNAL_NODE_TAG,
    MemoryNodeStore,
    SparseMerkleTree,
    StateProof,
    StateUpdate,
)

__all__ = ["COMPACTION_SLACK_NODES", "PREVIEWS_REMEMBERED", "MemoryState", "StateUpdateCache"]

PREVIEWS_REMEMBERED = 4
"""State updates kept from ``preview_state_root``, by MemoryState and by ChainStore (a proposal
per view, rarely more)."""
COMPACTION_SLACK_NODES = 200_000
"""Unreachable tree nodes tolerated beyond the live ones before a compaction (``history=False``
only): compacting when the node count doubles (plus this slack) keeps its cost amortised to
O(1) per node written."""


class StateUpdateCache:
    """The last few tree updates computed for previews, by (root they start from, writes).

    An update depends only on the root it starts from and the writes (the tree is content
    addressed), so a remembered one with both equal is the same update. Bounded: at most
    ``entries_max`` updates (a proposal per view, rarely more), the oldest forgotten first.
    """

    __slots__ = ("_entries",)

    def __init__(self, entries_max: int) -> None:
        assert entries_max >= 1
        self._entries: collections.deque[tuple[bytes, dict[bytes, bytes | None], StateUpdate]] = (
            collections.deque(maxlen=entries_max)
        )

    def remember(
        self, root: bytes, state_writes: Mapping[bytes, bytes | None], update: StateUpdate
    ) -> None:
        """Keep ``update``, computed from ``root`` with ``state_writes``."""
        self._entries.append((root, dict(state_writes), update))

    def find(self, root: bytes, state_writes: Mapping[bytes, bytes | None]) -> StateUpdate | None:
        """The remembered update of ``state_writes`` applied on ``root``, or None."""
        for base, writes, update in self._entries:
            if base == root and writes == state_writes:
                return update
        return None

    def clear(self) -> None:
        """Forget every update (the root moved on: none of them starts from it any more)."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class MemoryState:
    """A state and a transaction index in memory; :meth:`commit` moves it forward.

    ``history`` (default True) keeps every tree node, so that every past root stays provable;
    False keeps only the latest tree (see the module doc). Either way the roots are the same.
    """

    def __init__(
        self, initial_state: Mapping[bytes, bytes] | None = None, *, history: bool = True
    ) -> None:
        """An empty state at height 0, or ``initial_state`` (the genesis state) at height 0."""
        self._values: dict[bytes, bytes] = {}
        self._nodes = MemoryNodeStore()
        self._tree = SparseMerkleTree(self._nodes)
        self._locations: dict[bytes, tuple[int, int]] = {}
        self._previews = StateUpdateCache(PREVIEWS_REMEMBERED)
        self._history = history
        self._live_nodes = 0
        self.state_root = EMPTY_ROOT
        self.height = 0
        self._log = tlog.EMPTY_FRONTIER
        self._log_preview: tuple[tlog.LogFrontier, list[bytes], tlog.LogFrontier] | None = None
        if initial_state:
            self._apply(initial_state, self._tree.update(EMPTY_ROOT, initial_state))

    @property
    def keeps_history(self) -> bool:
        """True if every past root stays provable (see the class doc)."""
        return self._history

    @property
    def tree_nodes(self) -> int:
        """How many state tree nodes are held (all ever made, or the latest tree's and some)."""
        return len(self._nodes)

    def state_get(self, key: bytes) -> bytes | None:
        return self._values.get(key)

    def state_items(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        for key in sorted(key for key in self._values if key.startswith(prefix)):
            yield key, self._values[key]

    def preview_state_root(self, state_writes: Mapping[bytes, bytes | None]) -> bytes:
        """The root ``state_writes`` would give; the update is kept for :meth:`commit`."""
        update = self._previews.find(self.state_root, state_writes)
        if update is None:  # not already previewed (a primary's block, validated again)
            update = self._tree.update(self.state_root, state_writes)
            self._previews.remember(self.state_root, state_writes, update)
        return update.root

    def transaction_location(self, tx_id: bytes) -> tuple[int, int] | None:
        return self._locations.get(tx_id)

    def log_frontier(self) -> tlog.LogFrontier:
        """The frontier of the log of every act (ledger.tlog) after the committed blocks."""
        return self._log

    def preview_log(self, leaves: Sequence[bytes]) -> tlog.LogFrontier:
        """The log's frontier after ``leaves``; kept for :meth:`commit` (hashed once)."""
        after = self._log.extended(leaf_hash(leaf) for leaf in leaves)
        self._log_preview = (self._log, list(leaves), after)
        return after

    def state_prove(self, key: bytes) -> StateProof:
        return self._tree.prove(self.state_root, key)

    def commit(
        self,
        state_writes: Mapping[bytes, bytes | None],
        tx_ids: Iterable[bytes] = (),
        *,
        log_leaves: Iterable[bytes] = (),
    ) -> bytes:
        """Apply ``state_writes`` as block ``height + 1`` holding ``tx_ids``; return the root.

        ``log_leaves`` are the block's transactions' canonical bytes, appended to the log (a
        caller that never asks for the log may leave it out)."""
        leaves = list(log_leaves)
        preview = self._log_preview
        if preview is not None and preview[0] == self._log and preview[1] == leaves:
            self._log = preview[2]
        else:
            self._log = self._log.extended(leaf_hash(leaf) for leaf in leaves)
        self._log_preview = None
        update = self._previews.find(self.state_root, state_writes)
        if update is None:
            update = self._tree.update(self.state_root, state_writes)
        self._apply(state_writes, update)
        self.height += 1
        for position, tx_id in enumerate(tx_ids):
            self._locations[tx_id] = (self.height, position)
        return update.root

    def _apply(self, state_writes: Mapping[bytes, bytes | None], update: StateUpdate) -> None:
        self._previews.clear()
        self._nodes.put_nodes(update.new_nodes)
        for key, value in state_writes.items():
            if value is None:
                self._values.pop(key, None)
            else:
                self._values[key] = value
        self.state_root = update.root
        if not self._history and len(self._nodes) > 2 * self._live_nodes + COMPACTION_SLACK_NODES:
            self._compact()

    def _compact(self) -> None:
        """Keep only the nodes reachable from the current root."""
        kept = MemoryNodeStore()
        reachable: dict[bytes, bytes] = {}
        pending = [] if self.state_root == EMPTY_ROOT else [self.state_root]
        while pending:
            node_hash = pending.pop()
            record = self._nodes.get_node(node_hash)
            assert record is not None, "a node reachable from the root is missing"
            reachable[node_hash] = record
            if record[:1] == INTERNAL_NODE_TAG:
                pending.extend(
                    child for child in (record[1:33], record[33:65]) if child != EMPTY_ROOT
                )
        kept.put_nodes(reachable)
        self._nodes = kept
        self._tree = SparseMerkleTree(kept)
        self._live_nodes = len(kept)
