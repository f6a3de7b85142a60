"""The ``sceau`` command line.

Each command is a small function that takes parsed arguments and returns an exit status;
errors the user can fix are printed as one line on stderr with exit status 2, never as a
traceback. Only commands that work are listed: later steps add theirs here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from ledger import crypto

EXIT_USAGE = 2


class CommandError(Exception):
    """A failure the user can act on; printed without a traceback."""


def _read_passphrase(path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        passphrase = Path(path).read_bytes().rstrip(b"\r\n")
    except OSError as error:
        raise CommandError(f"cannot read passphrase file {path}: {error.strerror}") from None
    if not passphrase:
        raise CommandError(f"passphrase file {path} is empty")
    return passphrase


def command_key_generate(arguments: argparse.Namespace) -> int:
    key = crypto.generate_key()
    passphrase = _read_passphrase(arguments.passphrase_file)
    try:
        crypto.save_private_key(
            key, arguments.path, passphrase=passphrase, overwrite=arguments.force
        )
    except crypto.KeyFileError as error:
        raise CommandError(str(error)) from None
    print(crypto.public_key_to_text(crypto.public_key_bytes(key)))
    return 0


def command_key_show(arguments: argparse.Namespace) -> int:
    passphrase = _read_passphrase(arguments.passphrase_file)
    try:
        key = crypto.load_private_key(arguments.path, passphrase=passphrase)
    except crypto.KeyFileError as error:
        raise CommandError(str(error)) from None
    print(crypto.public_key_to_text(crypto.public_key_bytes(key)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sceau",
        description=(
            "sceau: a permissioned consortium ledger for the administrative acts of public "
            "administrations."
        ),
        epilog="Run 'sceau COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"sceau {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    key = commands.add_parser(
        "key",
        help="generate and inspect Ed25519 keys",
        description="Generate and inspect the Ed25519 keys of members and signers.",
    )
    key_commands = key.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    generate = key_commands.add_parser(
        "generate",
        help="write a new private key and print its public key",
        description=(
            "Write a new Ed25519 private key as PKCS#8 PEM (mode 0600) and print its public "
            "key in the form ed25519:<base64url>, which goes into a genesis file."
        ),
    )
    generate.add_argument("path", help="where to write the private key (PEM)")
    generate.add_argument(
        "--passphrase-file", metavar="FILE", help="encrypt the key with the passphrase in FILE"
    )
    generate.add_argument("--force", action="store_true", help="replace an existing file at PATH")
    generate.set_defaults(handler=command_key_generate)

    show = key_commands.add_parser(
        "show",
        help="print the public key of a private key file",
        description="Print the public key (ed25519:<base64url>) of a private key file.",
    )
    show.add_argument("path", help="the private key file (PEM)")
    show.add_argument("--passphrase-file", metavar="FILE", help="the key's passphrase")
    show.set_defaults(handler=command_key_show)
    return parser


def _version() -> str:
    try:
        return metadata.version("sceau")
    except metadata.PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        return arguments.handler(arguments)
    except CommandError as error:
        print(f"sceau: error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
