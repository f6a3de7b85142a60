"""What every ``sceau`` command shares: its exit statuses and the error a user can act on.

A module of its own so that the command modules (node/tools/cli.py, node/tools/cli_chain.py)
import it rather than each other.
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "EXIT_CHECK_FAILED",
    "EXIT_NOT_CONFIRMED",
    "EXIT_RECEIPT_NOT_SAVED",
    "EXIT_USAGE",
    "CommandError",
    "add_witness_options",
    "api_url",
    "api_urls",
    "witness_policy",
]

EXIT_CHECK_FAILED = 1
"""A check ran and failed (a verification, an audit, a damaged store)."""
EXIT_USAGE = 2
"""The command could not run as asked (bad arguments, a missing file); one line on stderr."""
EXIT_NOT_CONFIRMED = 3
"""``anchor`` / ``act status``: no member confirmed the commit in time; it may still commit."""
EXIT_RECEIPT_NOT_SAVED = 4
"""``anchor``: the act is committed but its receipt could not be written where asked; it was
saved in the current folder (or printed) instead, and the message says where."""


class CommandError(Exception):
    """A failure the user can act on; printed without a traceback."""


def api_urls(text: str) -> list[str]:
    """An argparse type: one API base URL, or several separated by commas, each with its
    scheme (http:// or https://) and host."""
    urls = [url.strip() for url in text.split(",") if url.strip()]
    if not urls:
        raise argparse.ArgumentTypeError("--api takes a URL (or several, comma-separated)")
    for url in urls:
        shown = url if len(url) <= 80 else url[:80] + "…"
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            raise argparse.ArgumentTypeError(f"{shown!r} is not a URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise argparse.ArgumentTypeError(
                f"{shown!r}: give the URL with its scheme, e.g. http://{shown}"
                if "://" not in url
                else f"{shown!r}: give an http:// or https:// URL with a host"
            )
        if parts.query or parts.fragment or any(char.isspace() for char in url):
            raise argparse.ArgumentTypeError(
                f"{shown!r}: a base URL has no query, fragment or space"
            )
    return urls


def api_url(text: str) -> str:
    """An argparse type: exactly one API base URL, checked as :func:`api_urls` checks each."""
    urls = api_urls(text)
    if len(urls) != 1:
        raise argparse.ArgumentTypeError("give one URL here, not several")
    return urls[0]


def add_witness_options(parser: argparse.ArgumentParser, *, what: str = "the checkpoint") -> None:
    """``--witness NAME=VKEY`` (repeated) and ``--witness-quorum K``: the witness policy of
    ``sceau verify``, ``audit`` and ``import`` (docs/witnesses.md)."""
    parser.add_argument(
        "--witness",
        action="append",
        metavar="NAME=VKEY",
        help="a witness you trust: a name of your choice and its cosignature verifier key "
        f"(<name>+<key id>+<base64>); repeat for each. {what[0].upper() + what[1:]} must then "
        "be cosigned by --witness-quorum of them",
    )
    parser.add_argument(
        "--witness-quorum",
        type=int,
        metavar="K",
        help="how many of the named witnesses must have cosigned the checkpoint (default: all)",
    )


def witness_policy(arguments: argparse.Namespace) -> Any:
    """The witness policy of ``--witness``/``--witness-quorum``, or None without one."""
    from ledger.logcheck import WitnessPolicy

    witnesses = arguments.witness or ()
    if not witnesses:
        if arguments.witness_quorum is not None:
            raise CommandError("--witness-quorum needs at least one --witness NAME=VKEY")
        return None
    try:
        return WitnessPolicy.parse(witnesses, arguments.witness_quorum)
    except ValueError as error:
        raise CommandError(f"--witness: {error}") from None
