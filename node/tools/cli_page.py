"""``sceau page --out FILE``: the verification page as one HTML file that works from disk.

The file is the page every node serves at ``/`` (node/web/page.py), written for reading
offline: a resident opens it from their computer, gives it a document and the act's receipt
file (``sceau receipt --out``), and their browser verifies the receipt against the genesis the
file carries. Nothing is fetched: the file's Content-Security-Policy allows no request at all.

The genesis comes from a file (``--genesis``, the one the consortium publishes: best) or from a
node (``--api``: the genesis that node serves, whose chain id is printed so that it can be
compared with the published one); without either, the reader chooses the genesis file in the
page. ``--witness NAME=VKEY`` (repeated) and ``--witness-quorum K`` make the page refuse a
receipt whose log checkpoint lacks the cosignatures of K of those witnesses, as ``sceau
verify`` does.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from node.tools.conventions import CommandError, add_witness_options, api_url, witness_policy

__all__ = ["add_page_command", "command_page"]

DOCS = "docs/page.md"


def _genesis(arguments: argparse.Namespace) -> Any:
    """The genesis the page embeds (a :class:`~ledger.model.Genesis`), or None."""
    if arguments.genesis:
        from node.tools.launch import StartupError, read_genesis

        try:
            return read_genesis(Path(arguments.genesis))
        except StartupError as error:
            raise CommandError(str(error)) from None
    if arguments.api:
        from node.tools.cli_chain import _fetch_frames

        genesis, _, _ = _fetch_frames(arguments.api, 0, 1)
        if genesis is None:
            raise CommandError(f"{arguments.api} sent no genesis frame")
        return genesis
    return None


def command_page(arguments: argparse.Namespace) -> int:
    from node.web.page import PageError, WitnessConfiguration, render_page

    out = Path(arguments.out)
    if out.exists() and not arguments.force:
        raise CommandError(f"{out} exists; use --force to replace it")
    policy = witness_policy(arguments)
    witnesses = None
    if policy is not None:
        witnesses = WitnessConfiguration(
            keys=tuple(key.vkey for _, key in policy.witnesses), quorum=policy.quorum
        )
    genesis = _genesis(arguments)
    try:
        rendered = render_page(
            genesis=None if genesis is None else json.loads(genesis.model_dump_json()),
            api=None,
            language=arguments.lang,
            witnesses=witnesses,
        )
    except PageError as error:
        raise CommandError(str(error)) from None
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(rendered.body)
        temporary.replace(out)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise CommandError(f"cannot write {out}: {error.strerror}") from None
    print(f"wrote {out} ({len(rendered.body)} bytes): the verification page, for use offline")
    if genesis is None:
        print("  no genesis in the page: the reader chooses the consortium's genesis file")
    else:
        print(
            f"  genesis of {genesis.consortium!r}, chain {genesis.chain_id.hex()}"
            + (
                f" (as {arguments.api} serves it: compare with the published one)"
                if arguments.api
                else ""
            )
        )
    if witnesses is not None:
        print(
            f"  a receipt's checkpoint must be cosigned by {witnesses.quorum} of "
            f"{len(witnesses.keys)} witnesses"
        )
    print("  the reader gives the document and its receipt file ('sceau receipt --out')")
    return 0


def add_page_command(commands: Any) -> None:
    """Add ``sceau page`` to the sub-command parser ``commands``."""
    page = commands.add_parser(
        "page",
        help="write the verification page as one HTML file that works offline",
        description="Write the verification page that every node serves at / as one "
        "self-contained HTML file (its scripts and style inline, nothing fetched). Opened from "
        "disk, it verifies an act in the reader's browser from the document and the act's "
        "receipt file ('sceau receipt TX_ID --with-status --out FILE'), against the "
        f"consortium's genesis. See {DOCS}.",
        epilog="Example: sceau page --out verifier.html --genesis genesis.json --lang fr",
    )
    page.add_argument("--out", required=True, metavar="FILE", help="the HTML file to write")
    page.add_argument("--force", action="store_true", help="replace FILE if it exists")
    source = page.add_mutually_exclusive_group()
    source.add_argument(
        "--genesis",
        metavar="GENESIS.json",
        help="the consortium's genesis file, embedded in the page (without --genesis or "
        "--api, the reader chooses it in the page)",
    )
    source.add_argument(
        "--api",
        metavar="URL",
        type=api_url,
        help="take the genesis from this node (the chain id is printed: compare it with the "
        "consortium's published one)",
    )
    page.add_argument(
        "--lang",
        choices=("fr", "en"),
        help="the page's language (default: the reader's browser's; the reader can switch)",
    )
    add_witness_options(page, what="a receipt's checkpoint")
    page.set_defaults(handler=command_page)
