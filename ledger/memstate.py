"""Committed state held in memory: the same reads as :class:`ledger.store.ChainStore`.

The execution engine reads committed state through four methods (``state_get``,
``state_items``, ``preview_state_root``, ``transaction_location``). A node serves them from its
LevelDB store; tests and offline replays that need no disk serve them from this class, which
keeps the values in a dict and the authenticated state in a sparse Merkle tree over a
:class:`~ledger.state.MemoryNodeStore`, so its roots are the ones a node computes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from ledger.state import EMPTY_ROOT, MemoryNodeStore, SparseMerkleTree, StateProof

__all__ = ["MemoryState"]


class MemoryState:
    """A state and a transaction index in memory; :meth:`commit` moves it forward."""

    def __init__(self, initial_state: Mapping[bytes, bytes] | None = None) -> None:
        """An empty state at height 0, or ``initial_state`` (the genesis state) at height 0."""
        self._values: dict[bytes, bytes] = {}
        self._nodes = MemoryNodeStore()
        self._tree = SparseMerkleTree(self._nodes)
        self._locations: dict[bytes, tuple[int, int]] = {}
        self.state_root = EMPTY_ROOT
        self.height = 0
        if initial_state:
            self.commit(initial_state)
            self.height = 0

    def state_get(self, key: bytes) -> bytes | None:
        return self._values.get(key)

    def state_items(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        for key in sorted(key for key in self._values if key.startswith(prefix)):
            yield key, self._values[key]

    def preview_state_root(self, state_writes: Mapping[bytes, bytes | None]) -> bytes:
        return self._tree.update(self.state_root, state_writes).root

    def transaction_location(self, tx_id: bytes) -> tuple[int, int] | None:
        return self._locations.get(tx_id)

    def state_prove(self, key: bytes) -> StateProof:
        return self._tree.prove(self.state_root, key)

    def commit(
        self, state_writes: Mapping[bytes, bytes | None], tx_ids: Iterable[bytes] = ()
    ) -> bytes:
        """Apply ``state_writes`` as block ``height + 1`` holding ``tx_ids``; return the root."""
        update = self._tree.update(self.state_root, state_writes)
        self._nodes.put_nodes(update.new_nodes)
        for key, value in state_writes.items():
            if value is None:
                self._values.pop(key, None)
            else:
                self._values[key] = value
        self.height += 1
        for position, tx_id in enumerate(tx_ids):
            self._locations[tx_id] = (self.height, position)
        self.state_root = update.root
        return update.root
