"""``sceau export``, ``sceau audit`` and ``sceau import``: whole-chain commands.

For auditors (a regional chamber of accounts, a citizen, a journalist) and for a consortium
that wants to keep, check or move its whole chain (docs/audit.md):

* ``sceau export BUNDLE --api URL | --data-dir DIR`` writes the chain as a bundle
  (:mod:`ledger.bundle`), or appends the blocks it lacks to an existing one;
* ``sceau audit BUNDLE --genesis GENESIS`` checks everything in it offline
  (:mod:`ledger.audit`, re-executing the blocks with :mod:`contracts.replay`);
* ``sceau import BUNDLE --data-dir DIR`` audits a bundle into a fresh node data directory;
* ``sceau export acts --format csv|jsonl`` writes one row per act for open-data portals, and
  ``--format scdl-deliberations`` the deliberations in force as SCDL "Délibérations" open data
  with a companion file of their proofs (:mod:`node.tools.scdl`);
* ``sceau export tiles DIR --api URL | --data-dir DIR`` writes the log of every act as a
  static C2SP tlog-tiles tree (``DIR/checkpoint``, ``DIR/tile/…``) that any web server can
  serve: a *mirror*. It is incremental: full tiles already written are skipped (they never
  change), partial tiles and the checkpoint are written again. Every file is written to a
  temporary name then renamed, and the checkpoint last, so a mirror never names tiles it lacks.
  Beside the tiles, ``DIR/sceau-member-changes`` holds the member-set changes from the genesis
  to the set that signed the checkpoint (canonical msgpack, docs/format.md), so that proofs
  made from the mirror (``sceau proof --tiles``, node/tools/cli_proof.py) can be checked even
  after the member set changed.

The commands keep node/tools/cli.py's conventions: 0 on success, 1 when a check fails, 2 (with one
line ``sceau: error: …``) for an error the user can fix. Progress goes to stderr: a bar redrawn
in place on a terminal, a plain line every few seconds otherwise (logs, CI).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from node.tools.conventions import (
    EXIT_CHECK_FAILED,
    EXIT_USAGE,
    CommandError,
    add_witness_options,
    api_url,
    witness_policy,
)

__all__ = [
    "ACT_COLUMNS",
    "MEMBER_CHANGES_FILE",
    "HttpTileSource",
    "StoreTileSource",
    "TileSource",
    "act_rows",
    "add_chain_commands",
    "add_node_check",
    "command_export_tiles",
    "receipt_from_api",
    "write_atomically",
]

EXPORT_BATCH_FRAMES_DEFAULT = 64
EXPORT_BATCH_FRAMES_MAX = 256
"""The most blocks ``export --batch`` asks for at once: the API's own bound on a bundle answer
(node.api.limits.BUNDLE_FRAMES_MAX; not imported here, which would load aiohttp for every
command — tests/test_cli_inputs.py checks that the two agree)."""
"""Frames asked of a node per request (the node answers fewer past 4 MiB)."""
HTTP_TIMEOUT_S = 120.0
HTTP_RESPONSE_BYTES_MAX = 40 * 1024 * 1024
"""The largest answer read from a node: one frame of up to 33 MiB (a node answers at most
4 MiB of frames, or one larger frame); anything longer is refused, not read."""
PROGRESS_REDRAW_S = 0.2
"""How often the bar is redrawn on a terminal at most."""
PROGRESS_LINE_S = 10.0
"""How often a plain progress line is printed when stderr is not a terminal."""
FAILURES_SHOWN_MAX = 10
"""Failures of the failing block printed (the JSON report holds them all)."""


def _command(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``handler`` with its CommandError printed as one line, exit status 2.

    ``sceau`` catches CommandError itself, but run as ``python -m node.tools.cli`` its module is
    ``__main__`` and its CommandError another class than the one imported here.
    """

    def run(arguments: argparse.Namespace) -> int:
        try:
            return handler(arguments)
        except CommandError as error:
            print(f"sceau: error: {error}", file=sys.stderr)
            return EXIT_USAGE

    return run


# --- progress -------------------------------------------------------------------------------


class Progress:
    """A one-line progress display on stderr: fraction, counts, rate and ETA.

    On a terminal the line is redrawn in place at most every ``PROGRESS_REDRAW_S``; otherwise
    a plain line is printed every ``PROGRESS_LINE_S`` (so logs stay readable), and nothing at
    all for a task that ends sooner.
    """

    BAR_WIDTH = 24

    def __init__(self, what: str, *, stream: IO[str] | None = None) -> None:
        self.what = what
        self.stream = stream if stream is not None else sys.stderr
        self.is_terminal = self.stream.isatty()
        self.started = time.monotonic()
        self._shown_at = 0.0 if self.is_terminal else self.started
        self._drawn = False

    def update(self, fraction: float, counts: str, rate: float, rate_unit: str) -> None:
        """Show ``fraction`` (0 to 1) done, a text of counts and a rate; rate-limited."""
        now = time.monotonic()
        interval = PROGRESS_REDRAW_S if self.is_terminal else PROGRESS_LINE_S
        if now - self._shown_at < interval:
            return
        self._shown_at = now
        fraction = min(max(fraction, 0.0), 1.0)
        elapsed = now - self.started
        eta = _duration(elapsed * (1 - fraction) / fraction) if fraction > 0 else "?"
        text = f"{counts}, {rate:,.0f} {rate_unit}, ETA {eta}"
        if self.is_terminal:
            filled = int(self.BAR_WIDTH * fraction)
            bar = "#" * filled + "." * (self.BAR_WIDTH - filled)
            self.stream.write(f"\r{self.what} [{bar}] {fraction:4.0%} {text}\x1b[K")
            self._drawn = True
        else:
            self.stream.write(f"{self.what}: {fraction:.0%} {text}\n")
        self.stream.flush()

    def close(self) -> None:
        """Leave the terminal line (the caller prints the outcome)."""
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# --- reading what the user points at ---------------------------------------------------------


def _read_genesis(path: str) -> Any:
    from node.tools.launch import StartupError, read_genesis

    try:
        return read_genesis(Path(path))
    except StartupError as error:
        raise CommandError(str(error)) from None


def _chain_path(data_dir: str) -> Path:
    """The chain database of a node data directory (``DIR/chain``), or DIR if it is one."""
    directory = Path(data_dir)
    if (directory / "chain" / "CURRENT").exists():
        return directory / "chain"
    if (directory / "CURRENT").exists():
        return directory
    raise CommandError(f"no chain database in {directory} (expected {directory / 'chain'})")


def _open_store(data_dir: str) -> Any:
    """Open a stopped node's chain database; explain the lock of a running node."""
    from ledger.store import ChainStore, CorruptionError, StoreError

    path = _chain_path(data_dir)
    try:
        return ChainStore.open(path)
    except CorruptionError as error:
        raise _damaged(path, error) from None
    except StoreError as error:
        if "LOCK" in str(error) or "another store or process" in str(error):
            raise CommandError(
                f"the chain database in {path} is locked: is its node running? Stop the node "
                "first, or export from its API with --api URL"
            ) from None
        raise CommandError(str(error)) from None


def _replayer_audit(
    bundle: str,
    genesis: Any,
    *,
    workers: int | None,
    since: str | None = None,
    on_block: Any = None,
    what: str = "audit",
    witnesses: Any = None,
) -> tuple[Any, Any]:
    """Audit ``bundle`` with the engine replayer, showing progress; returns (report, replayer)."""
    from contracts.replay import EngineReplayer
    from ledger.audit import AuditProgress, ReplaySetupError, audit_bundle

    progress = Progress(what)

    def show(where: AuditProgress) -> None:
        fraction = where.bytes_read / where.bytes_total if where.bytes_total else 1.0
        rate = where.transactions / max(progress.elapsed_s, 1e-9)
        counts = f"block {where.height:,}, {where.transactions:,} transactions"
        progress.update(fraction, counts, rate, "tx/s")

    replayer = EngineReplayer()
    try:
        report = audit_bundle(
            bundle,
            genesis,
            replayer,
            workers=workers,
            since=since,
            progress=show,
            on_block=on_block,
            witnesses=witnesses,
        )
    except ReplaySetupError as error:
        raise CommandError(f"cannot re-execute this chain here: {error}") from None
    finally:
        progress.close()
    return report, replayer


def _print_failures(report: Any) -> None:
    first, *more = report.failures
    print(f"FAILED — {first}", file=sys.stderr)
    for failure in more[:FAILURES_SHOWN_MAX]:
        print(f"         {failure}", file=sys.stderr)
    if len(more) > FAILURES_SHOWN_MAX:
        print(f"         … and {len(more) - FAILURES_SHOWN_MAX} more", file=sys.stderr)
    if report.blocks:
        print(
            f"verified before it: blocks 1 to {report.blocks} "
            f"({report.transactions:,} transactions)",
            file=sys.stderr,
        )


# --- sceau audit ------------------------------------------------------------------------------


def _require_file(path: str | None) -> None:
    if path is not None and not Path(path).is_file():
        raise CommandError(f"{path}: no such file")


def command_audit(arguments: argparse.Namespace) -> int:
    _require_file(arguments.bundle)
    _require_file(arguments.since)
    policy = witness_policy(arguments)
    genesis = _read_genesis(arguments.genesis)
    report, _ = _replayer_audit(
        arguments.bundle,
        genesis,
        workers=arguments.workers,
        since=arguments.since,
        witnesses=policy,
    )
    if arguments.report:
        document = report.to_document()
        document["genesis"] = arguments.genesis
        try:
            Path(arguments.report).write_text(json.dumps(document, indent=2) + "\n")
        except OSError as error:
            raise CommandError(f"cannot write {arguments.report}: {error.strerror}") from None
    print(
        f"audit of {arguments.bundle} against the genesis of {genesis.consortium!r} "
        f"(chain {genesis.chain_id.hex()[:16]}…)"
    )
    if not report.ok:
        _print_failures(report)
        return EXIT_CHECK_FAILED
    print(
        f"OK: {report.blocks:,} blocks, {report.transactions:,} transactions, every check "
        f"held ({report.seconds:.1f} s, {report.transactions_per_s:,.0f} tx/s, "
        f"{_plural(report.workers, 'signature worker')})"
    )
    if report.blocks:
        print(f"tip: height {report.blocks}, block_hash {report.tip_block_hash.hex()}")
    if report.member_set_changes:
        heights = ", ".join(str(height) for height in report.member_set_changes)
        print(f"member set changed from heights: {heights}")
    if len(report.header_formats) > 1:
        moves = ", ".join(f"{version} from {height}" for height, version in report.header_formats)
        print(f"header format: {moves} (as the genesis and the members' schedule say)")
    if report.since is not None:
        print(f"extends {report.since} (its {report.since_height} blocks, hash for hash)")
    for line in _checkpoint_lines(report.checkpoint, policy):
        print(line)
    return 0


def _checkpoint_lines(checkpoint: Any, policy: Any) -> list[str]:
    """What the audit said of the bundle's checkpoint, in words."""
    if checkpoint is None:
        return ["checkpoint: none in this bundle"]
    lines = [
        f"checkpoint: size {checkpoint.size:,} (block {checkpoint.height}), root "
        f"{checkpoint.root.hex()}, signed by {len(checkpoint.signers)} of {checkpoint.members} "
        f"members ({', '.join(checkpoint.signers)})"
    ]
    if policy is not None:
        lines.append(
            f"witnesses: {', '.join(checkpoint.witnesses)} cosigned it "
            f"({len(checkpoint.witnesses)} of the {len(policy.witnesses)} named, "
            f"{policy.quorum} needed)"
        )
    if checkpoint.other_signatures:
        lines.append(
            "other signatures, not checked (name+key id; give --witness NAME=VKEY to check "
            f"cosignatures): {', '.join(checkpoint.other_signatures)}"
        )
    return lines


# --- sceau export (a bundle) -------------------------------------------------------------------


def command_export(arguments: argparse.Namespace) -> int:
    if arguments.target == "tiles":
        return command_export_tiles(arguments)
    if arguments.directory is not None:
        raise CommandError(f"unexpected argument {arguments.directory!r} after {arguments.target}")
    if arguments.target == "acts":
        return command_export_acts(arguments)
    for option in ("format", "out", "bundle"):
        if getattr(arguments, option) is not None:
            raise CommandError(f"--{option} is for 'sceau export acts', not for a bundle")
    if (arguments.api is None) == (arguments.data_dir is None):
        raise CommandError("give exactly one source: --api URL or --data-dir DIR")
    from ledger.bundle import BundleError, TruncatedBundleError

    try:
        if arguments.api is not None:
            written, writer_height, checkpoint_said = _export_from_api(arguments)
        else:
            written, writer_height, checkpoint_said = _export_from_store(arguments)
    except TruncatedBundleError as error:
        raise CommandError(
            f"{arguments.target} ends inside frame {error.frames} (byte {error.valid_bytes}): "
            "an earlier export stopped mid-block. Run again with --repair to cut the partial "
            "frame off and continue"
        ) from None
    except BundleError as error:
        message = str(error)  # most name the file already
        named = message.startswith(arguments.target)
        raise CommandError(message if named else f"{arguments.target}: {message}") from None
    if written == 0:
        print(f"{arguments.target} is up to date: blocks 1 to {writer_height}")
    else:
        print(
            f"wrote {_plural(written, 'block')} to {arguments.target}: it now holds blocks 1 "
            f"to {writer_height}"
        )
    print(checkpoint_said)
    return 0


def _export(
    arguments: argparse.Namespace,
    genesis: Any,
    tip: int,
    blocks: Callable[[int], Iterator[tuple[Any, Any]]],
    checkpoint: bytes | None,
) -> tuple[int, int, str]:
    """Append blocks from ``blocks(first_height)`` to the bundle until ``tip``, then offer it
    the source's ``checkpoint`` (None: the source keeps none). Returns the blocks written, the
    bundle's last height and a line saying which checkpoint the bundle ends with."""
    from ledger.bundle import BundleWriter

    with BundleWriter.open(arguments.target, genesis, repair=arguments.repair) as writer:
        start = writer.height
        if start > tip:
            raise CommandError(
                f"{arguments.target} holds blocks up to {start}, the source only up to {tip}"
            )
        progress = Progress("export")
        try:
            for block, certificate in blocks(start + 1):
                writer.append(block, certificate)
                done = writer.height - start
                rate = done / max(progress.elapsed_s, 1e-9)
                progress.update(
                    done / max(tip - start, 1),
                    f"block {writer.height:,} of {tip:,}",
                    rate,
                    "blocks/s",
                )
        finally:
            progress.close()
        said = _offer_checkpoint(writer, checkpoint, arguments.target)
        return writer.height - start, writer.height, said


def _offer_checkpoint(writer: Any, checkpoint: bytes | None, target: str) -> str:
    """Offer the source's checkpoint to the bundle; the line saying what it ends with."""
    from ledger.bundle import BundleError, CheckpointOutcome

    own = writer.checkpoint_size
    kept = "no checkpoint" if own is None else f"its checkpoint of size {own:,}"
    if checkpoint is None:
        return f"checkpoint: the source keeps none; {target} carries {kept}"
    try:
        outcome = writer.offer_checkpoint(checkpoint)
    except BundleError as error:
        return f"checkpoint: the source's is refused ({error}); {target} carries {kept}"
    size = writer.checkpoint_size if outcome is CheckpointOutcome.WRITTEN else None
    if outcome is CheckpointOutcome.WRITTEN:
        return f"checkpoint: size {size:,} written at the end of {target} (check it: sceau audit)"
    if outcome is CheckpointOutcome.OLDER:
        return f"checkpoint: the source's is not newer; {target} keeps {kept}"
    log = "no log (header format 1)" if writer.log_size is None else f"{writer.log_size:,}"
    return (
        f"checkpoint: the source's is beyond the log of the bundle's last block ({log}), so "
        f"not written; {target} carries {kept}"
    )


def _export_from_store(arguments: argparse.Namespace) -> tuple[int, int, str]:
    from ledger.store import StoreError

    store = _open_store(arguments.data_dir)
    try:
        tip = store.height

        def blocks(first: int) -> Iterator[tuple[Any, Any]]:
            for height in range(first, tip + 1):
                yield store.block(height), store.certificate(height)

        checkpoint = store.checkpoint()
        return _export(
            arguments, store.genesis, tip, blocks, None if checkpoint is None else bytes(checkpoint)
        )
    except StoreError as error:
        raise _damaged(store.path, error, midway=True) from None
    finally:
        store.close()


def _damaged(path: Path, error: Exception, *, midway: bool = False) -> CommandError:
    """The one-line error for a chain database found damaged while opening or reading it."""
    written = "; the blocks written before it are valid" if midway else ""
    return CommandError(
        f"the chain database in {path} is damaged: {error}{written}. Export from a healthy "
        "member's API instead; 'sceau node check --data-dir …' gives the whole picture"
    )


def _http_get(url: str) -> tuple[bytes, Any]:
    """GET ``url``: the body and the headers; a CommandError for any failure."""
    request = urllib.request.Request(url, headers={"Accept": "application/vnd.sceau.bundle"})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            body = response.read(HTTP_RESPONSE_BYTES_MAX + 1)
            if len(body) > HTTP_RESPONSE_BYTES_MAX:
                raise CommandError(f"{url}: the answer exceeds {HTTP_RESPONSE_BYTES_MAX} bytes")
            return body, response.headers
    except urllib.error.HTTPError as error:
        try:
            problem = json.loads(error.read())
            detail = f"{problem['code']}: {problem['detail']}"
        except (ValueError, KeyError, TypeError):
            detail = error.reason
        raise CommandError(f"the node answered {error.code} {detail} ({url})") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise CommandError(f"cannot reach {url}: {reason}") from None


def _fetch_frames(api: str, first: int, count: int) -> tuple[Any, list[Any], int]:
    """Frames ``first``… from a node: (genesis if frame 0, block entries, the node's tip)."""
    from ledger.bundle import BundleError, parse_frames

    url = f"{api.rstrip('/')}/v1/bundle?" + urllib.parse.urlencode({"from": first, "count": count})
    body, headers = _http_get(url)
    try:
        tip = int(headers.get("Sceau-Tip-Height", ""))
    except ValueError:
        raise CommandError(f"{api} did not say its tip height: is it a sceau node?") from None
    try:
        genesis, entries = parse_frames(body, first)
    except BundleError as error:
        raise CommandError(f"{api} sent frames that do not decode: {error}") from None
    return genesis, entries, tip


def _export_from_api(arguments: argparse.Namespace) -> tuple[int, int, str]:
    from node.api import BUNDLE_FRAMES_MAX

    api = arguments.api
    batch = min(arguments.batch, BUNDLE_FRAMES_MAX)
    # The checkpoint first, the tip after it: the node signed it for a block it had committed,
    # so the blocks up to the tip cover it.
    checkpoint = _fetch(f"{api.rstrip('/')}/v1/log/checkpoint", CHECKPOINT_BYTES_MAX, True)
    genesis, _, tip = _fetch_frames(api, 0, 1)
    if genesis is None:
        raise CommandError(f"{api} sent no genesis frame")

    def blocks(first: int) -> Iterator[tuple[Any, Any]]:
        height = first
        while height <= tip:
            _, entries, _ = _fetch_frames(api, height, batch)
            if not entries:
                raise CommandError(f"{api} sent no block from height {height}")
            for entry in entries:
                if entry.block.height != height:
                    raise CommandError(f"{api} sent block {entry.block.height} as frame {height}")
                yield entry.block, entry.certificate
                height += 1
                if height > tip:
                    return

    return _export(arguments, genesis, tip, blocks, checkpoint)


# --- sceau export tiles: the log of every act as a static mirror ---------------------------

MEMBER_CHANGES_FILE = "sceau-member-changes"
"""The mirror's file of member-set changes (a canonical msgpack array of MemberSetChange)."""
TILES_HTTP_TIMEOUT_S = 60.0
TILE_BYTES_MAX = 256 * (2 + 64 * 1024)
"""The largest tile or entry bundle read: 256 entries of at most 64 KiB (the transaction
size limit's ceiling) with their length prefixes."""
CHECKPOINT_BYTES_MAX = 64 * 1024
MEMBER_CHANGES_BYTES_MAX = 64 * 1024 * 1024


# --- where the log comes from: a store, a node, a mirror --------------------------------------


class TileSource:
    """The log of every act as tiles: from a stopped node's store, a node's API or a mirror."""

    description: str

    def checkpoint(self) -> bytes:
        raise NotImplementedError

    def tile(self, level: int | None, index: int, width: int) -> bytes:
        raise NotImplementedError

    def member_changes(self, size: int) -> tuple[Any, ...] | None:
        """The member-set changes up to a checkpoint of ``size``; None if unknown."""
        raise NotImplementedError


class StoreTileSource(TileSource):
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


class HttpTileSource(TileSource):
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
        receipt = receipt_from_api(self.base, tx_id.hex())
        return None if receipt is None else tuple(receipt.member_changes)


def _fetch(url: str, bytes_max: int, missing_ok: bool = False) -> bytes | None:
    """GET ``url`` (at most ``bytes_max`` bytes); None for a 404 if ``missing_ok``."""
    try:
        with urllib.request.urlopen(url, timeout=TILES_HTTP_TIMEOUT_S) as response:
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


def receipt_from_api(api: str, tx_id: str) -> Any:
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


def _source(arguments: argparse.Namespace) -> tuple[TileSource, Callable[[], None]]:
    """The source of ``--api`` or ``--data-dir``, and what closes it."""
    if (arguments.api is None) == (arguments.data_dir is None):
        raise CommandError("give exactly one source: --api URL or --data-dir DIR")
    if arguments.api is not None:
        return HttpTileSource(arguments.api, node=True), lambda: None
    store = _open_store(arguments.data_dir)
    return StoreTileSource(store), store.close


# --- sceau export tiles -------------------------------------------------------------------------


def write_atomically(path: Path, data: bytes) -> None:
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
    for option in ("format", "out", "bundle", "genesis"):
        if getattr(arguments, option) is not None:
            raise CommandError(f"--{option} is not for 'sceau export tiles'")
    if arguments.repair:
        raise CommandError("--repair is for exporting a bundle, not tiles")
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
            write_atomically(path, source.tile(level, index, width))
            written += 1
        changes = source.member_changes(size)
        if changes is not None:
            listed = encoding.pack([change.to_canonical() for change in changes])
            write_atomically(target / MEMBER_CHANGES_FILE, listed)
        write_atomically(target / "checkpoint", note)
    finally:
        close()
    print(
        f"{target}: the log of {size:,} entries, {written} tile(s) written, {skipped} full "
        "tile(s) already there; serve the folder as it is (e.g. python -m http.server)"
    )
    return 0


# --- sceau import -----------------------------------------------------------------------------


def command_import(arguments: argparse.Namespace) -> int:
    from ledger.bundle import BundleError, BundleReader
    from ledger.store import ChainStore, StoreError
    from node.tools.launch import StartupError, engine_for

    _require_file(arguments.bundle)
    policy = witness_policy(arguments)
    if arguments.genesis is not None:
        genesis = _read_genesis(arguments.genesis)
    else:
        try:
            with BundleReader(arguments.bundle) as reader:
                genesis = reader.genesis
        except BundleError as error:
            raise CommandError(str(error)) from None
    data_dir = Path(arguments.data_dir)
    final, partial = data_dir / "chain", data_dir / "chain.importing"
    if final.exists():
        raise CommandError(f"{data_dir} already holds a chain ({final}); import into a new one")
    shutil.rmtree(partial, ignore_errors=True)  # a leftover of an interrupted import
    try:
        engine = engine_for(genesis)
        store = ChainStore.create(partial, genesis, engine.genesis_state())
    except (StartupError, StoreError) as error:
        raise CommandError(str(error)) from None
    try:
        with store.witness_deferred():  # nothing serves the new database before it is renamed
            report, _ = _replayer_audit(
                arguments.bundle,
                genesis,
                workers=arguments.workers,
                on_block=lambda block, certificate, replayed: store.append_block(
                    block, certificate, replayed.state_writes
                ),
                what="import",
                witnesses=policy,
            )
            if report.ok and report.checkpoint is not None:
                store.save_checkpoint(report.checkpoint.note)
        tip = store.tip
    except BaseException:
        store.close()
        shutil.rmtree(partial, ignore_errors=True)
        raise
    store.close()
    if not report.ok:
        shutil.rmtree(partial, ignore_errors=True)
        _print_failures(report)
        print(f"nothing imported: {data_dir} is as it was", file=sys.stderr)
        return EXIT_CHECK_FAILED
    partial.rename(final)
    source = "its own genesis" if arguments.genesis is None else arguments.genesis
    print(
        f"imported {report.blocks:,} blocks ({report.transactions:,} transactions) into "
        f"{final}, audited against {source} (chain {genesis.chain_id.hex()[:16]}…)"
    )
    print(f"tip: height {tip.height}, block_hash {tip.block_hash.hex()}")
    for line in _checkpoint_lines(report.checkpoint, policy):
        print(line)
    if report.checkpoint is not None:
        print("the checkpoint is kept: the node serves it until its members sign a newer one")
    if arguments.genesis is None:
        print("compare that chain_id with your consortium's genesis, or pass --genesis")
    return 0


# --- sceau node check ---------------------------------------------------------------------------


def command_node_check(arguments: argparse.Namespace) -> int:
    from ledger.store import ChainStore, CorruptionError, StoreError
    from ledger.store_check import check_store

    path = _chain_path(arguments.data_dir)
    try:
        store = ChainStore.open(path)
    except CorruptionError as error:
        print(f"check of {path}")
        print(f"FAILED — the store does not open: {error}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    except StoreError:
        store = _open_store(arguments.data_dir)  # raises the explained error
    try:
        print(f"check of {path} (chain {store.chain_id.hex()[:16]}…, tip {store.height})")
        progress = Progress("check")

        def show(height: int, tip: int) -> None:
            rate = height / max(progress.elapsed_s, 1e-9)
            progress.update(height / max(tip, 1), f"block {height:,} of {tip:,}", rate, "blocks/s")

        try:
            report = check_store(store, progress=show)
        finally:
            progress.close()
        saves, height, view = store.safety_position if report.ok else (0, 0, 0)
    finally:
        store.close()
    if not report.ok:
        print(f"FAILED — {report.failure}", file=sys.stderr)
        if report.blocks:
            print(f"checked before it: blocks 1 to {report.blocks}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    print(
        f"OK: {_plural(report.blocks, 'block')}, {_plural(report.transactions, 'transaction')}, "
        f"{report.state_entries:,} state entries: every block, certificate, index "
        f"entry and state node held ({report.seconds:.1f} s)"
    )
    if saves:
        print(
            f"safety record: height {height}, view {view} (save #{saves}): this member may "
            f"have voted up to there"
        )
    return 0


def add_node_check(actions: Any) -> None:
    """Add ``sceau node check`` to the ``sceau node`` actions parser."""
    check = actions.add_parser(
        "check",
        help="check a stopped node's chain database whole (after an incident)",
        description="Read everything in a stopped node's chain database — every block, every "
        "commit certificate against the member set of its height from the genesis on, every "
        "index entry, and the whole state tree at the tip — and report the first height that "
        "fails. Exits 0 if everything holds, 1 otherwise. Start-up checks only what a "
        "restart builds on; run this after a disk error, a crash of the machine or a restore "
        "(docs/operations.md).",
    )
    check.add_argument(
        "--data-dir", required=True, metavar="DIR", help="the node's data directory (stopped)"
    )
    check.set_defaults(handler=_command(command_node_check))


# --- sceau export acts (open data) -------------------------------------------------------------

ACT_COLUMNS = (
    "issuer",
    "reference",
    "kind",
    "act_date",
    "title",
    "legal_basis",
    "url",
    "digest",
    "status",
    "status_height",
    "anchored_height",
    "anchored_at",
    "anchoring_tx_id",
    "amended_by",
    "amends",
    "superseded_by",
    "supersedes",
    "has_person_commitment",
)
"""The open-data columns, in order (docs/audit.md, "Open data")."""
_LIST_COLUMNS = ("amended_by", "amends", "supersedes")
LIST_SEPARATOR = ";"
"""Joins references in a CSV cell: references never hold it (A-Z a-z 0-9 . _ / -)."""


def _act_keys(state: Any) -> list[tuple[str, str, bytes]]:
    """``(issuer, reference, state key)`` of every act, sorted by issuer then reference."""
    from contracts.deeds import DEEDS_KEYS

    found = [(*DEEDS_KEYS.act_of(key), key) for key, _ in state.state_items(DEEDS_KEYS.acts_prefix)]
    found.sort()
    return found


def act_rows(state: Any) -> Iterator[dict[str, Any]]:
    """One row per act of the deeds contract in ``state`` (a ChainStore or a replayed state).

    Values keep their types (lists, None, bool); :func:`_csv_cell` flattens them for CSV.
    """
    from contracts.base import decode_record
    from contracts.deeds import DEEDS_KEYS, Act

    for issuer, reference, key in _act_keys(state):
        act = Act.from_record(decode_record(state.state_get(key)))
        anchoring = state.state_get(DEEDS_KEYS.history(issuer, reference, 0))
        assert anchoring is not None, "every act has its anchoring in its history"
        anchored_at = datetime.datetime.fromtimestamp(
            act.anchored_timestamp_ms / 1000, datetime.UTC
        )
        yield {
            "issuer": act.issuer,
            "reference": act.reference,
            "kind": act.kind,
            "act_date": act.act_date,
            "title": act.title,
            "legal_basis": act.legal_basis,
            "url": act.url,
            "digest": act.digest.hex(),
            "status": act.status,
            "status_height": act.status_height,
            "anchored_height": act.anchored_height,
            "anchored_at": anchored_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "anchoring_tx_id": decode_record(anchoring)["tx_id"].hex(),
            "amended_by": list(act.amended_by),
            "amends": list(act.amends),
            "superseded_by": act.superseded_by,
            "supersedes": list(act.supersedes),
            "has_person_commitment": act.person_commitment is not None,
        }


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return LIST_SEPARATOR.join(value)
    return str(value)


def _write_acts(rows: Iterator[dict[str, Any]], output_format: str, out: IO[str]) -> int:
    count = 0
    if output_format == "csv":
        writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180: CRLF, minimal quoting
        writer.writerow(ACT_COLUMNS)
        for row in rows:
            writer.writerow([_csv_cell(row[column]) for column in ACT_COLUMNS])
            count += 1
    else:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def command_export_acts(arguments: argparse.Namespace) -> int:
    if arguments.format is None:
        raise CommandError(
            "sceau export acts needs --format csv, --format jsonl or --format scdl-deliberations"
        )
    if arguments.format == SCDL_FORMAT:
        return command_export_scdl(arguments)
    for option in ("issuer", "skip_incomplete", "proof_columns"):
        if getattr(arguments, option):
            raise CommandError(
                f"--{option.replace('_', '-')} is for --format {SCDL_FORMAT}, not "
                f"{arguments.format}"
            )
    if (arguments.bundle is None) == (arguments.data_dir is None):
        raise CommandError("give exactly one source: --data-dir DIR or --bundle BUNDLE")
    if arguments.api is not None or arguments.repair:
        raise CommandError("--api and --repair are for exporting a bundle, not acts")
    buffer = io.StringIO(newline="")
    if arguments.data_dir is not None:
        from ledger.store import StoreError

        store = _open_store(arguments.data_dir)
        try:
            _require_deeds(store.genesis)
            count = _write_acts(act_rows(store), arguments.format, buffer)
            height = store.height
        except StoreError as error:
            raise _damaged(store.path, error) from None
        finally:
            store.close()
    else:
        count, height = _acts_from_bundle(arguments, buffer)
    text = buffer.getvalue()
    if arguments.out is None:
        sys.stdout.write(text)
    else:
        target = Path(arguments.out)
        temporary = target.with_name(target.name + ".tmp")
        try:
            temporary.write_text(text, encoding="utf-8", newline="")
            temporary.replace(target)
        except OSError as error:
            raise CommandError(f"cannot write {target}: {error.strerror}") from None
    print(f"{count:,} acts as of height {height} ({arguments.format})", file=sys.stderr)
    return 0


SCDL_FORMAT = "scdl-deliberations"


def command_export_scdl(arguments: argparse.Namespace) -> int:
    """``sceau export acts --format scdl-deliberations --out FILE``: the deliberations in force
    as SCDL "Délibérations" 2.1.5 open data, and FILE.proofs.csv (node/tools/scdl.py)."""

    if arguments.out is None:
        raise CommandError(
            f"--format {SCDL_FORMAT} needs --out FILE (its proofs go beside it, FILE.proofs.csv)"
        )
    sources = [arguments.api, arguments.data_dir, arguments.bundle]
    if sum(source is not None for source in sources) != 1:
        raise CommandError("give exactly one source: --api URL, --data-dir DIR or --bundle BUNDLE")
    if arguments.repair:
        raise CommandError("--repair is for exporting a bundle, not acts")
    if arguments.api is not None:
        export, height = _scdl_from_api(arguments)
    elif arguments.data_dir is not None:
        from ledger.store import StoreError

        store = _open_store(arguments.data_dir)
        try:
            _require_deeds(store.genesis)
            export = _scdl_export(store, arguments.issuer)
            height = store.height
        except StoreError as error:
            raise _damaged(store.path, error) from None
        finally:
            store.close()
    else:
        state, height = _replayed_state(arguments)
        export = _scdl_export(state, arguments.issuer)
    for act in export.incomplete:
        print(("skipped " if arguments.skip_incomplete else "") + act.describe(), file=sys.stderr)
    if export.incomplete and not arguments.skip_incomplete:
        print(
            f"sceau: error: {len(export.incomplete)} deliberation(s) in force lack values the "
            f"SCDL schema requires (above): nothing written. Complete them, or export the "
            "valid rows only with --skip-incomplete",
            file=sys.stderr,
        )
        return EXIT_CHECK_FAILED
    target = Path(arguments.out)
    proofs = target.with_name(target.name + ".proofs.csv")
    _write_files(
        {
            target: export.scdl_text(proof_columns=arguments.proof_columns),
            proofs: export.proofs_text(),
        }
    )
    skipped = f", {len(export.incomplete)} incomplete skipped" if export.incomplete else ""
    print(
        f"{len(export.rows):,} deliberations as of height {height} ({SCDL_FORMAT}{skipped}): "
        f"{target}, proofs in {proofs}",
        file=sys.stderr,
    )
    return 0


def _scdl_export(state: Any, issuer: str | None) -> Any:
    from node.tools import scdl

    collectivities = scdl.collectivities_from_state(state)
    _require_known_issuer(issuer, collectivities)
    return scdl.build_export(collectivities, scdl.acts_from_state(state, issuer))


def _require_known_issuer(issuer: str | None, collectivities: Any) -> None:
    if issuer is not None and issuer not in collectivities:
        raise CommandError(f"--issuer {issuer}: neither a member nor an issuer of this chain")


def _scdl_from_api(arguments: argparse.Namespace) -> tuple[Any, int]:
    """The export as a node answers (its answers are not proofs: each row's proof is in the
    companion file, for 'sceau receipt' to fetch and check against the genesis)."""
    from ledger.client import ApiError, Client, TransportError
    from node.tools import scdl

    try:
        with Client(arguments.api) as client:
            height = client.status()["height"]
            collectivities = scdl.collectivities_from_api(client)
            _require_known_issuer(arguments.issuer, collectivities)
            issuers = [arguments.issuer] if arguments.issuer else sorted(collectivities)
            export = scdl.build_export(collectivities, scdl.acts_from_api(client, issuers))
    except (TransportError, ApiError, scdl.PagingError) as error:
        raise CommandError(f"{arguments.api}: {error}") from None
    return export, height


def _write_files(contents: dict[Path, str]) -> None:
    """Write each file through a temporary one, all or none: both are in place only once both
    are written (a failure removes the temporary files and leaves older files as they were)."""
    temporaries = {path: path.with_name(path.name + ".tmp") for path in contents}
    try:
        for path, text in contents.items():
            temporaries[path].write_text(text, encoding="utf-8", newline="")
        for path, temporary in temporaries.items():
            temporary.replace(path)
    except OSError as error:
        for temporary in temporaries.values():
            temporary.unlink(missing_ok=True)
        raise CommandError(f"cannot write {error.filename}: {error.strerror}") from None


def _require_deeds(genesis: Any) -> None:
    if all(contract.name != "deeds" for contract in genesis.contracts):
        raise CommandError("this consortium does not run the deeds contract: it has no acts")


def _acts_from_bundle(arguments: argparse.Namespace, out: IO[str]) -> tuple[int, int]:
    """Replay (and so audit) the bundle, then write the acts of its last state."""
    state, height = _replayed_state(arguments)
    return _write_acts(act_rows(state), arguments.format, out), height


def _replayed_state(arguments: argparse.Namespace) -> tuple[Any, int]:
    """The last state of the bundle, replayed (and so audited), and its height."""
    from ledger.bundle import BundleError, BundleReader

    _require_file(arguments.bundle)
    if arguments.genesis is not None:
        genesis = _read_genesis(arguments.genesis)
    else:
        try:
            with BundleReader(arguments.bundle) as reader:
                genesis = reader.genesis
        except BundleError as error:
            raise CommandError(str(error)) from None
    _require_deeds(genesis)
    report, replayer = _replayer_audit(
        arguments.bundle, genesis, workers=arguments.workers, what="replay"
    )
    if not report.ok:
        _print_failures(report)
        raise CommandError(f"{arguments.bundle} does not pass the audit: no acts exported")
    return replayer.state, report.blocks


# --- the parser -------------------------------------------------------------------------------


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text[:40]!r}")
    return value


def _batch_frames(text: str) -> int:
    """An argparse type: blocks per export request, 1 to EXPORT_BATCH_FRAMES_MAX."""
    value = _positive(text)
    if value > EXPORT_BATCH_FRAMES_MAX:
        raise argparse.ArgumentTypeError(
            f"at most {EXPORT_BATCH_FRAMES_MAX} blocks per request, got {value}"
        )
    return value


def _workers_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers",
        type=_positive,
        metavar="N",
        help="processes decoding the blocks and verifying their signatures ahead of the "
        "re-execution (default: one per core; 1 does it all in the main process)",
    )


def add_chain_commands(commands: Any) -> None:
    """Add the chain commands to the ``sceau`` sub-command parser ``commands``."""
    _add_export(commands)
    _add_audit(commands)
    _add_import(commands)


def _add_export(commands: Any) -> None:
    export = commands.add_parser(
        "export",
        help="write the chain as a bundle, or its acts as open data (CSV, JSON lines)",
        usage="%(prog)s BUNDLE (--api URL | --data-dir DIR) [--batch N] [--repair]\n"
        "       %(prog)s acts --format {csv,jsonl} (--data-dir DIR | --bundle BUNDLE) "
        "[--out FILE] [--genesis GENESIS] [--workers N]\n"
        "       %(prog)s acts --format scdl-deliberations --out FILE (--api URL | --data-dir "
        "DIR | --bundle BUNDLE) [--issuer ID] [--skip-incomplete] [--proof-columns]\n"
        "       %(prog)s tiles FOLDER (--api URL | --data-dir DIR)",
        description="Write the whole chain — genesis, every block with its commit "
        "certificate — to the bundle file BUNDLE, from a node's API or from a stopped node's "
        "data directory, and the latest consortium checkpoint the source keeps (if its blocks "
        "cover it). If BUNDLE exists, only the blocks it lacks are appended. Check a "
        "bundle with 'sceau audit'. With 'acts' instead of BUNDLE, write one row per act "
        "(issuer, reference, status, dates, digest, anchoring height and transaction) for an "
        "open-data portal, or, with --format scdl-deliberations, the deliberations in force as "
        "SCDL 'Délibérations' 2.1.5 open data and FILE.proofs.csv beside it (docs/operations.md"
        "). Formats: docs/audit.md. With 'tiles FOLDER', write the log of "
        "every act as a static C2SP tlog-tiles mirror (its checkpoint, every tile and entry "
        "bundle) that any web server can serve; again later, only what changed is written "
        "(docs/witnesses.md).",
    )
    export.add_argument(
        "target",
        metavar="BUNDLE|acts|tiles",
        help="the bundle file to write or extend, the word 'acts', or the word 'tiles' "
        "(write ./acts or ./tiles for a bundle file of that name)",
    )
    export.add_argument(
        "directory", nargs="?", metavar="FOLDER", help="tiles only: the mirror's folder"
    )
    source = export.add_argument_group("source (one of)")
    source.add_argument(
        "--api", metavar="URL", type=api_url, help="a member node's API, e.g. http://host:8700"
    )
    source.add_argument(
        "--data-dir",
        metavar="DIR",
        help="a stopped node's data directory (its chain database is only read; a running "
        "node holds its lock)",
    )
    source.add_argument(
        "--bundle", metavar="BUNDLE", help="acts only: replay this bundle and export its acts"
    )
    bundle = export.add_argument_group("bundle options")
    bundle.add_argument(
        "--batch",
        type=_batch_frames,
        default=EXPORT_BATCH_FRAMES_DEFAULT,
        metavar="N",
        help=f"blocks asked of the node per request, 1 to {EXPORT_BATCH_FRAMES_MAX} (default "
        f"{EXPORT_BATCH_FRAMES_DEFAULT})",
    )
    bundle.add_argument(
        "--repair",
        action="store_true",
        help="if BUNDLE ends inside a frame (an export was interrupted), cut that partial "
        "frame off and continue; without it such a bundle is refused",
    )
    acts = export.add_argument_group("acts options")
    acts.add_argument(
        "--format",
        choices=("csv", "jsonl", SCDL_FORMAT),
        help="CSV (RFC 4180), JSON lines, or SCDL 'Délibérations' 2.1.5 (the deliberations in "
        "force, one row each; needs --out)",
    )
    acts.add_argument(
        "--out",
        metavar="FILE",
        help="write to FILE (default: standard output; scdl-deliberations also writes "
        "FILE.proofs.csv: each row's anchoring transaction, height and digest)",
    )
    acts.add_argument(
        "--issuer",
        metavar="ID",
        help="scdl-deliberations: only this member's or issuer's deliberations (default: every "
        "collectivity's)",
    )
    acts.add_argument(
        "--skip-incomplete",
        action="store_true",
        help="scdl-deliberations: write the valid rows and list on stderr the deliberations "
        "that lack a required value (default: list them and write nothing, exit status 1)",
    )
    acts.add_argument(
        "--proof-columns",
        action="store_true",
        help="scdl-deliberations: also add issuer, tx_id, height, digest to FILE itself "
        "(validators flag columns the schema does not have)",
    )
    acts.add_argument(
        "--genesis",
        metavar="GENESIS",
        help="with --bundle: audit it against this genesis (default: the bundle's own)",
    )
    _workers_option(acts)
    export.set_defaults(handler=_command(command_export))


def _add_audit(commands: Any) -> None:
    audit = commands.add_parser(
        "audit",
        help="verify a chain bundle offline from the genesis",
        description="Verify everything in BUNDLE with nothing but the genesis file: heights "
        "and hash links, timestamps, transaction roots, every transaction signature (in "
        "parallel), every commit certificate against the member set in force at its height, "
        "and, re-executing every block with the contracts, every state root; then the "
        "consortium checkpoint the bundle may end with (a quorum of the members, its root; "
        "with --witness, the cosignatures of at least --witness-quorum of the named "
        "witnesses). Stops at the first block that fails, naming the height and the field. "
        "Exits 0 if everything holds, 1 otherwise. See docs/audit.md.",
    )
    audit.add_argument("bundle", metavar="BUNDLE", help="the bundle to check")
    audit.add_argument(
        "--genesis", required=True, metavar="GENESIS", help="the consortium's genesis file"
    )
    audit.add_argument(
        "--since",
        metavar="OLD_BUNDLE",
        help="an earlier bundle of the same chain: also check that BUNDLE extends it, block "
        "hash for block hash (no history rewritten)",
    )
    audit.add_argument(
        "--report", metavar="FILE", help="write a JSON report (counts, timing, failures)"
    )
    add_witness_options(audit, what="the bundle's checkpoint")
    _workers_option(audit)
    audit.set_defaults(handler=_command(command_audit))


def _add_import(commands: Any) -> None:
    importer = commands.add_parser(
        "import",
        help="audit a bundle into a fresh node data directory",
        description="Audit BUNDLE as 'sceau audit' does and write every verified block, with "
        "its certificate and state, into a new chain database in DIR (DIR/chain), so that a "
        "node started there serves the same chain, and the bundle's checkpoint, once "
        "verified (with only the signatures verified). Nothing is left in DIR if the audit "
        "fails.",
    )
    importer.add_argument("bundle", metavar="BUNDLE", help="the bundle to import")
    importer.add_argument(
        "--data-dir", required=True, metavar="DIR", help="the node's data directory"
    )
    importer.add_argument(
        "--genesis",
        metavar="GENESIS",
        help="audit against this genesis file (default: the bundle's own genesis)",
    )
    add_witness_options(importer, what="the bundle's checkpoint")
    _workers_option(importer)
    importer.set_defaults(handler=_command(command_import))
