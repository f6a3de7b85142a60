"""``sceau proof`` and ``sceau verify FILE.tlog-proof``: one act's place in the log of every
act, outside the node. (A mirror of the log's tiles is made by ``sceau export tiles``,
node/tools/cli_chain.py.)

* ``sceau proof TX_ID --api URL | --tiles URL`` writes a ``.tlog-proof`` (c2sp.org/tlog-proof,
  with sceau's extra data: :mod:`ledger.tlogproof`): from a node, out of the transaction's
  receipt (its ``log`` field); from a mirror, out of its checkpoint and tiles alone.
* ``sceau verify FILE.tlog-proof --genesis G`` checks one offline, with an optional witness
  policy (``--witness NAME=VKEY … --witness-quorum K``); the same options apply to receipts.

Nothing here trusts the node or the mirror: every proof is checked against the checkpoint's
signatures by whoever verifies it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from node.tools.cli_chain import (
    HttpTileSource,
    TileSource,
    receipt_from_api,
    write_atomically,
)
from node.tools.conventions import EXIT_CHECK_FAILED, CommandError, witness_policy

__all__ = [
    "add_proof_command",
    "command_proof",
    "verify_tlog_proof_file",
]

TILE_PROOF_HEADER = b"c2sp.org/tlog-proof@v1\n"


# --- sceau proof ------------------------------------------------------------------------------


class _TileHashes:
    """The log's stored hashes read from a source's tiles (each tile fetched once), for
    ``ledger.tlog.inclusion_proof``: any complete subtree of a tree of ``size`` leaves."""

    def __init__(self, source: TileSource, size: int) -> None:
        self.source = source
        self.size = size
        self._tiles: dict[tuple[int, int], bytes] = {}

    def hashes(self, level: int, start: int, count: int) -> list[bytes]:
        """``count`` stored hashes of tree level ``8·level`` from ``start`` (in one tile)."""
        from ledger import tlog

        index, offset = divmod(start, tlog.TILE_WIDTH)
        assert offset + count <= tlog.TILE_WIDTH, "a subtree's hashes are in one tile"
        available = self.size >> (tlog.TILE_HEIGHT * level)
        width = min(tlog.TILE_WIDTH, available - index * tlog.TILE_WIDTH)
        if offset + count > width:
            raise CommandError(f"the log of {self.size} entries has no hash {start + count - 1}")
        if (level, index) not in self._tiles:
            body = self.source.tile(level, index, width)
            if len(body) != 32 * width:
                raise CommandError(
                    f"{self.source.description}: {tlog.tile_path(level, index, width)} holds "
                    f"{len(body)} bytes, not {32 * width}"
                )
            self._tiles[(level, index)] = body
        body = self._tiles[(level, index)]
        return [body[32 * at : 32 * (at + 1)] for at in range(offset, offset + count)]

    def read(self, level: int, index: int) -> bytes:
        from ledger import merkle, tlog

        tile_level, height = divmod(level, tlog.TILE_HEIGHT)
        layer = self.hashes(tile_level, index << height, 1 << height)
        while len(layer) > 1:
            layer = [merkle.node_hash(layer[i], layer[i + 1]) for i in range(0, len(layer), 2)]
        return layer[0]


def _find_entry(source: TileSource, size: int, tx_id: bytes) -> tuple[int, bytes]:
    """The index and bytes of the transaction ``tx_id`` in the first ``size`` entries."""
    from ledger import encoding, tlog
    from ledger.model import ModelDecodeError, Transaction

    for index in range(0, size, tlog.TILE_WIDTH):
        tile_index = index // tlog.TILE_WIDTH
        width = min(tlog.TILE_WIDTH, size - index)
        try:
            entries = tlog.parse_entries_bundle(source.tile(None, tile_index, width))
        except ValueError as error:
            raise CommandError(
                f"{source.description}: entry bundle {tile_index}: {error}"
            ) from None
        for offset, entry in enumerate(entries):
            try:
                if Transaction.from_bytes(entry).tx_id == tx_id:
                    return index + offset, entry
            except (encoding.EncodingError, ModelDecodeError):
                continue  # the proof would not verify anyway; keep looking
    raise CommandError(
        f"no transaction {tx_id.hex()} in the {size:,} entries the checkpoint covers "
        "(committed later? export the tiles again)"
    )


def _proof_from_tiles(arguments: argparse.Namespace, tx_id: bytes) -> tuple[Any, str]:
    from ledger import tlog
    from ledger.model import ModelDecodeError, Transaction
    from ledger.note import Checkpoint, Note, NoteError
    from ledger.tlogproof import proof_from_parts

    source = HttpTileSource(arguments.tiles, node=False)
    note = source.checkpoint()
    try:
        size = Checkpoint.from_note(Note.parse(note)).size
    except NoteError as error:
        raise CommandError(f"{source.description}/checkpoint: {error}") from None
    if arguments.index is None:
        index, entry = _find_entry(source, size, tx_id)
    else:
        index = arguments.index
        if index >= size:
            raise CommandError(f"--index {index}: the checkpoint covers {size:,} entries")
        tile_index, offset = divmod(index, tlog.TILE_WIDTH)
        width = min(tlog.TILE_WIDTH, size - tile_index * tlog.TILE_WIDTH)
        entries = tlog.parse_entries_bundle(source.tile(None, tile_index, width))
        entry = entries[offset]
        try:
            found = Transaction.from_bytes(entry).tx_id
        except ModelDecodeError as error:
            raise CommandError(f"entry {index} does not decode: {error}") from None
        if found != tx_id:
            raise CommandError(f"entry {index} is transaction {found.hex()}, not {tx_id.hex()}")
    proof = tlog.inclusion_proof(index, size, _TileHashes(source, size).read)
    changes = source.member_changes(size)
    note_text = (
        ""
        if changes is not None
        else " (the mirror has no member-set changes: the genesis "
        "members must have signed the checkpoint)"
    )
    return proof_from_parts(entry, index, proof, note, changes or ()), note_text


def _proof_from_api(arguments: argparse.Namespace, tx_id: bytes) -> tuple[Any, str]:
    from ledger.tlogproof import proof_from_parts

    receipt = receipt_from_api(arguments.api, tx_id.hex())
    if receipt is None:
        raise CommandError(f"{arguments.api} has no committed transaction {tx_id.hex()}")
    log = receipt.log
    if log is None:
        raise CommandError(
            f"{arguments.api} keeps no checkpoint covering transaction {tx_id.hex()} yet: "
            "try again after the next block"
        )
    changes = (*receipt.member_changes, *log.member_changes)
    note = log.checkpoint.encode()
    return proof_from_parts(receipt.transaction, log.index, log.inclusion_proof, note, changes), ""


def command_proof(arguments: argparse.Namespace) -> int:
    """``sceau proof TX_ID``: see the module doc."""
    from ledger.note import NoteError

    text = arguments.tx_id.strip().lower()
    if len(text) != 64 or any(char not in "0123456789abcdef" for char in text):
        raise CommandError("TX_ID is a transaction id: 64 hexadecimal digits")
    tx_id = bytes.fromhex(text)
    if (arguments.api is None) == (arguments.tiles is None):
        raise CommandError("give exactly one source: --api URL or --tiles URL")
    if arguments.index is not None and arguments.tiles is None:
        raise CommandError("--index is for --tiles (a node finds the act itself)")
    try:
        if arguments.api is not None:
            proof, remark = _proof_from_api(arguments, tx_id)
        else:
            proof, remark = _proof_from_tiles(arguments, tx_id)
    except NoteError as error:
        raise CommandError(f"the proof does not hold together: {error}") from None
    data = proof.to_bytes()
    if arguments.out is None:
        sys.stdout.write(data.decode())
        return 0
    write_atomically(Path(arguments.out), data)
    print(
        f"wrote {arguments.out}: entry {proof.index} of the log{remark}; check it with "
        "'sceau verify FILE --genesis GENESIS'",
        file=sys.stderr,
    )
    return 0


# --- sceau verify FILE.tlog-proof ---------------------------------------------------------------


def witness_lines(checkpoint: Any, policy: Any) -> list[str]:
    """What a verified checkpoint showed, in words."""
    signers, witnesses = checkpoint.signers, checkpoint.witnesses
    lines = [
        f"  log:       a checkpoint of {checkpoint.checkpoint.size:,} entries signed by "
        f"{len(signers)} of {checkpoint.members} members ({', '.join(signers)})"
    ]
    if policy is not None:
        lines.append(
            f"  witnesses: {', '.join(witnesses)} cosigned it ({len(witnesses)} of the "
            f"{len(policy.witnesses)} named, {policy.quorum} needed)"
        )
    return lines


def verify_tlog_proof_file(arguments: argparse.Namespace, data: bytes, genesis: Any) -> int:
    """Check a ``.tlog-proof`` file's ``data`` and print what it proved (``sceau verify``)."""
    from contracts.registry import receipt_anchors
    from ledger.tlogproof import TlogProofError, verify_tlog_proof

    policy = witness_policy(arguments)
    document = _read_document(arguments.document)
    try:
        proven = verify_tlog_proof(
            data, genesis, document, anchors=receipt_anchors(), witnesses=policy
        )
    except TlogProofError as error:
        print(f"NOT VERIFIED — {error}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    print(
        f"VERIFIED against the genesis of {genesis.consortium!r} "
        f"(chain {genesis.chain_id.hex()[:16]}…): entry {proven.index} of its log of every act"
    )
    transaction = proven.transaction
    if proven.act is not None:
        act = proven.act
        print(f"  act:       {act['issuer']}/{act['reference']} ({act['kind']})")
        print(f"  digest:    {act['digest'].hex()}")
    print(f"  transaction: {transaction.contract}.{transaction.action} {transaction.tx_id.hex()}")
    for line in witness_lines(proven.checkpoint, policy):
        print(line)
    if proven.document_matches:
        print(f"  document:  {arguments.document} matches the anchored digest")
    return 0


def _read_document(path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror}") from None


# --- the parsers ------------------------------------------------------------------------------


def add_proof_command(
    commands: Any, wrap: Callable[[Callable[..., int]], Callable[..., int]]
) -> None:
    """Add ``sceau proof`` to the sub-command parser ``commands``."""
    from node.tools.conventions import api_url

    proof = commands.add_parser(
        "proof",
        help="write a .tlog-proof of an act: its inclusion in the log of every act",
        description="Write a C2SP tlog-proof of a committed transaction: its index in the "
        "log of every act, the inclusion proof to a consortium checkpoint, the checkpoint "
        "with its members' signatures and its witnesses' cosignatures, and the transaction "
        "itself. From a node (--api: the node's kept checkpoint must cover the act) or from a "
        "static mirror of the tiles (--tiles, made by 'sceau export tiles'). Check it offline "
        "with 'sceau verify FILE --genesis GENESIS'.",
    )
    proof.add_argument("tx_id", metavar="TX_ID", help="the transaction id (64 hex digits)")
    source = proof.add_argument_group("source (one of)")
    source.add_argument("--api", metavar="URL", type=api_url, help="a node's API")
    source.add_argument(
        "--tiles", metavar="URL", type=api_url, help="a tiles mirror (its base URL)"
    )
    proof.add_argument(
        "--index",
        type=int,
        metavar="I",
        help="with --tiles: the act's log index, if known (otherwise the entry bundles are "
        "scanned for it)",
    )
    proof.add_argument("--out", metavar="FILE", help="write there (default: standard output)")
    proof.set_defaults(handler=wrap(command_proof))
