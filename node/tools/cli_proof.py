"""``sceau export tiles``, ``sceau proof`` and ``sceau verify FILE.tlog-proof``: the log of every
act outside the node.

* ``sceau export tiles DIR --api URL | --data-dir DIR`` writes the log as a static C2SP
  tlog-tiles tree (``DIR/checkpoint``, ``DIR/tile/…``) that any web server can serve: a
  *mirror*. It is incremental: full tiles already written are skipped (they never change),
  partial tiles and the checkpoint are written again. Every file is written to a temporary name
  then renamed, and the checkpoint last, so a mirror never names tiles it lacks.
  Beside the tiles, ``DIR/sceau-member-changes`` holds the member-set changes from the genesis
  to the set that signed the checkpoint (canonical msgpack, docs/format.md), so that proofs
  made from the mirror can be checked even after the member set changed.
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
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from node.tools.conventions import EXIT_CHECK_FAILED, CommandError

__all__ = [
    "MEMBER_CHANGES_FILE",
    "add_proof_command",
    "add_witness_options",
    "command_export_tiles",
    "command_proof",
    "verify_tlog_proof_file",
    "witness_policy",
]

MEMBER_CHANGES_FILE = "sceau-member-changes"
"""The mirror's file of member-set changes (a canonical msgpack array of MemberSetChange)."""
HTTP_TIMEOUT_S = 60.0
TILE_BYTES_MAX = 256 * (2 + 64 * 1024)
"""The largest tile or entry bundle read: 256 entries of at most 64 KiB (the transaction
size limit's ceiling) with their length prefixes."""
CHECKPOINT_BYTES_MAX = 64 * 1024
MEMBER_CHANGES_BYTES_MAX = 64 * 1024 * 1024
TILE_PROOF_HEADER = b"c2sp.org/tlog-proof@v1\n"


# --- where the log comes from: a store, a node, a mirror --------------------------------------


class _Source:
    """The log of every act as tiles: from a stopped node's store, a node's API or a mirror."""

    description: str

    def checkpoint(self) -> bytes:
        raise NotImplementedError

    def tile(self, level: int | None, index: int, width: int) -> bytes:
        raise NotImplementedError

    def member_changes(self, size: int) -> tuple[Any, ...] | None:
        """The member-set changes up to a checkpoint of ``size``; None if unknown."""
        raise NotImplementedError


class _StoreSource(_Source):
    def __init__(self, store: Any) -> None:
        self.store = store
        self.description = str(store.path)

    def checkpoint(self) -> bytes:
        note = self.store.checkpoint()
        if note is None:
            raise CommandError(
                f"the node of {self.description} keeps no checkpoint yet: its members sign one "
                "with each committed block of a format 2 chain"
            )
        return bytes(note)

    def tile(self, level: int | None, index: int, width: int) -> bytes:
        from ledger import tlog

        start = index * tlog.TILE_WIDTH
        if level is None:
            return tlog.entries_bundle(self.store.log_entries(start, width))
        return b"".join(self.store.log_hashes(tlog.TILE_HEIGHT * level, start, width))

    def member_changes(self, size: int) -> tuple[Any, ...]:
        from ledger.receipt import changes_before_log_size

        return changes_before_log_size(self.store, 1, size)


class _HttpSource(_Source):
    """A node's API (``prefix`` ``/v1/log``) or a static mirror (``prefix`` empty)."""

    def __init__(self, base: str, *, node: bool) -> None:
        self.base = base.rstrip("/")
        self.node = node
        self.prefix = f"{self.base}/v1/log" if node else self.base
        self.description = base

    def checkpoint(self) -> bytes:
        body = _fetch(f"{self.prefix}/checkpoint", CHECKPOINT_BYTES_MAX, missing_ok=True)
        if body is None:
            raise CommandError(
                f"{self.description} serves no checkpoint (yet): a node serves one once its "
                "members signed one; a mirror once 'sceau export tiles' wrote one"
            )
        return body

    def tile(self, level: int | None, index: int, width: int) -> bytes:
        from ledger import tlog

        body = _fetch(f"{self.prefix}/{tlog.tile_path(level, index, width)}", TILE_BYTES_MAX)
        assert body is not None
        return body

    def member_changes(self, size: int) -> tuple[Any, ...] | None:
        if self.node:
            return self._changes_from_receipt(size)
        body = _fetch(f"{self.base}/{MEMBER_CHANGES_FILE}", MEMBER_CHANGES_BYTES_MAX, True)
        return None if body is None else _decode_member_changes(body, self.description)

    def _changes_from_receipt(self, size: int) -> tuple[Any, ...] | None:
        """The changes a node's receipt of the log's last entry carries: the checkpoint's size
        is a block's log size, so that block's member set signed it."""
        from ledger import tlog
        from ledger.model import Transaction

        last = size - 1
        tile_index, offset = divmod(last, tlog.TILE_WIDTH)
        width = offset + 1
        entries = tlog.parse_entries_bundle(self.tile(None, tile_index, width))
        tx_id = Transaction.from_bytes(entries[offset]).tx_id
        receipt = _receipt_from_api(self.base, tx_id.hex())
        return None if receipt is None else tuple(receipt.member_changes)


def _fetch(url: str, bytes_max: int, missing_ok: bool = False) -> bytes | None:
    """GET ``url`` (at most ``bytes_max`` bytes); None for a 404 if ``missing_ok``."""
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
            body = bytes(response.read(bytes_max + 1))
    except urllib.error.HTTPError as error:
        if error.code == 404 and missing_ok:
            return None
        raise CommandError(f"{url}: {error.code} {_problem_detail(error)}") from None
    except (urllib.error.URLError, OSError) as error:
        raise CommandError(f"cannot reach {url}: {getattr(error, 'reason', error)}") from None
    if len(body) > bytes_max:
        raise CommandError(f"{url}: the answer exceeds {bytes_max} bytes")
    return body


def _problem_detail(error: urllib.error.HTTPError) -> str:
    try:
        problem = json.loads(error.read(64 * 1024))
        return f"{problem['code']}: {problem['detail']}"
    except (ValueError, KeyError, TypeError):
        return str(error.reason)


def _decode_member_changes(data: bytes, where: str) -> tuple[Any, ...]:
    from ledger import encoding
    from ledger.model import ModelDecodeError
    from ledger.receipt import MemberSetChange

    try:
        listed = encoding.unpack(data)
        if not isinstance(listed, list):
            raise ModelDecodeError("not an array")
        return tuple(MemberSetChange.from_canonical(change) for change in listed)
    except (encoding.EncodingError, ModelDecodeError) as error:
        raise CommandError(f"{where}/{MEMBER_CHANGES_FILE} does not decode: {error}") from None


def _receipt_from_api(api: str, tx_id: str) -> Any:
    """The receipt of a committed transaction from a node, or None if it is not committed."""
    from ledger.receipt import Receipt

    body = _fetch(f"{api}/v1/transactions/{tx_id}", 64 * 1024 * 1024, missing_ok=True)
    if body is None:
        return None
    try:
        document = json.loads(body)
        if document.get("status") != "committed" or document.get("receipt") is None:
            return None
        return Receipt.model_validate_json(json.dumps(document["receipt"]))
    except (ValueError, AttributeError) as error:
        raise CommandError(f"{api} sent a receipt that does not decode: {error}") from None


def _source(arguments: argparse.Namespace) -> tuple[_Source, Callable[[], None]]:
    """The source of ``--api`` or ``--data-dir``, and what closes it."""
    if (arguments.api is None) == (arguments.data_dir is None):
        raise CommandError("give exactly one source: --api URL or --data-dir DIR")
    if arguments.api is not None:
        return _HttpSource(arguments.api, node=True), lambda: None
    from node.tools.cli_chain import _open_store

    store = _open_store(arguments.data_dir)
    return _StoreSource(store), store.close


# --- sceau export tiles -------------------------------------------------------------------------


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except OSError as error:
        raise CommandError(f"cannot write {path}: {error.strerror}") from None


def _tiles_of(size: int) -> list[tuple[int | None, int, int]]:
    """Every tile ``(level or None, index, width)`` of a log of ``size`` leaves: the full ones
    and the partial one of each level (entry bundles first)."""
    from ledger import tlog

    tiles: list[tuple[int | None, int, int]] = []
    levels: list[tuple[int | None, int]] = [(None, size)]
    level = 0
    while level * tlog.TILE_HEIGHT < 64 and size >> (level * tlog.TILE_HEIGHT):
        levels.append((level, size >> (level * tlog.TILE_HEIGHT)))
        level += 1
    for tile_level, count in levels:
        full, partial = divmod(count, tlog.TILE_WIDTH)
        tiles.extend((tile_level, index, tlog.TILE_WIDTH) for index in range(full))
        if partial:
            tiles.append((tile_level, full, partial))
    return tiles


def command_export_tiles(arguments: argparse.Namespace) -> int:
    """``sceau export tiles DIR``: see the module doc."""
    from ledger import encoding, tlog
    from ledger.note import Checkpoint, Note, NoteError

    if arguments.directory is None:
        raise CommandError("sceau export tiles needs the mirror's folder: export tiles DIR")
    target = Path(arguments.directory)
    source, close = _source(arguments)
    try:
        note = source.checkpoint()
        try:
            size = Checkpoint.from_note(Note.parse(note)).size
        except NoteError as error:
            raise CommandError(f"{source.description}: the checkpoint: {error}") from None
        written = skipped = 0
        for level, index, width in _tiles_of(size):
            path = target / tlog.tile_path(level, index, width)
            if width == tlog.TILE_WIDTH and path.is_file():
                skipped += 1  # a full tile never changes
                continue
            _write_atomically(path, source.tile(level, index, width))
            written += 1
        changes = source.member_changes(size)
        if changes is not None:
            listed = encoding.pack([change.to_canonical() for change in changes])
            _write_atomically(target / MEMBER_CHANGES_FILE, listed)
        _write_atomically(target / "checkpoint", note)
    finally:
        close()
    print(
        f"{target}: the log of {size:,} entries, {written} tile(s) written, {skipped} full "
        "tile(s) already there; serve the folder as it is (e.g. python -m http.server)"
    )
    return 0


# --- sceau proof ------------------------------------------------------------------------------


class _TileHashes:
    """The log's stored hashes read from a source's tiles (each tile fetched once), for
    ``ledger.tlog.inclusion_proof``: any complete subtree of a tree of ``size`` leaves."""

    def __init__(self, source: _Source, size: int) -> None:
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


def _find_entry(source: _Source, size: int, tx_id: bytes) -> tuple[int, bytes]:
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

    source = _HttpSource(arguments.tiles, node=False)
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

    receipt = _receipt_from_api(arguments.api, tx_id.hex())
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
    _write_atomically(Path(arguments.out), data)
    print(
        f"wrote {arguments.out}: entry {proof.index} of the log{remark}; check it with "
        "'sceau verify FILE --genesis GENESIS'",
        file=sys.stderr,
    )
    return 0


# --- sceau verify FILE.tlog-proof ---------------------------------------------------------------


def witness_policy(arguments: argparse.Namespace) -> Any:
    """The witness policy of ``--witness``/``--witness-quorum``, or None without one."""
    from ledger.logcheck import WitnessPolicy

    witnesses: Sequence[str] = arguments.witness or ()
    if not witnesses:
        if arguments.witness_quorum is not None:
            raise CommandError("--witness-quorum needs at least one --witness NAME=VKEY")
        return None
    try:
        return WitnessPolicy.parse(witnesses, arguments.witness_quorum)
    except ValueError as error:
        raise CommandError(f"--witness: {error}") from None


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


def add_witness_options(parser: argparse.ArgumentParser) -> None:
    """``--witness NAME=VKEY`` (repeated) and ``--witness-quorum K`` on ``parser``."""
    parser.add_argument(
        "--witness",
        action="append",
        metavar="NAME=VKEY",
        help="a witness you trust: a name of your choice and its cosignature verifier key "
        "(<name>+<key id>+<base64>); repeat for each",
    )
    parser.add_argument(
        "--witness-quorum",
        type=int,
        metavar="K",
        help="how many of the named witnesses must have cosigned the checkpoint (default: all)",
    )


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
