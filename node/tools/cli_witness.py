"""``sceau witness``: set up and run a witness that cosigns a consortium's checkpoints.

For whoever runs a witness outside the consortium (a préfecture, a chamber of accounts):
``init`` makes its key and configuration, ``vkey`` prints the key verifiers trust, ``add-log``
names a consortium to witness, ``run`` serves tlog-witness's add-checkpoint. docs/witnesses.md
says what it stores and how it fails.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from ledger import crypto
from ledger.note import KeyType, NoteError, NoteVerifierKey
from node.tools.conventions import CommandError

DOCS = "docs/witnesses.md"


def _config_module() -> Any:
    from node.witness import config

    return config


def _load(directory: str) -> Any:
    config = _config_module()
    try:
        return config.load_config(directory)
    except config.ConfigError as error:
        raise CommandError(str(error)) from None


def _witness_vkey(configuration: Any) -> NoteVerifierKey:
    try:
        key = crypto.load_private_key(configuration.key_path)
    except crypto.KeyFileError as error:
        raise CommandError(str(error)) from None
    return NoteVerifierKey.for_private_key(configuration.name, KeyType.COSIGNATURE_V1, key)


def _write(configuration: Any) -> None:
    config = _config_module()
    from node.witness.state import write_atomically

    path = configuration.directory / config.CONFIG_FILE
    try:
        write_atomically(path, config.render_config(configuration).encode())
    except OSError as error:
        raise CommandError(f"cannot write {path}: {error.strerror}") from None


def command_init(arguments: argparse.Namespace) -> int:
    config = _config_module()
    directory = Path(arguments.dir)
    if (directory / config.CONFIG_FILE).exists():
        raise CommandError(f"{directory / config.CONFIG_FILE} already exists")
    try:
        configuration = config.WitnessConfig(
            directory=directory, name=arguments.name, listen=arguments.listen
        )
    except config.ConfigError as error:
        raise CommandError(str(error)) from None
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CommandError(f"cannot create {directory}: {error.strerror}") from None
    key = crypto.generate_key()
    try:
        crypto.save_private_key(key, configuration.key_path)
    except crypto.KeyFileError as error:
        raise CommandError(str(error)) from None
    _write(configuration)
    vkey = NoteVerifierKey.for_private_key(configuration.name, KeyType.COSIGNATURE_V1, key)
    print(vkey.vkey)
    print(
        f"witness {configuration.name} created in {directory}: give the line above (its "
        "cosignature key) to verifiers, then add the logs to witness with "
        "'sceau witness add-log'",
        file=sys.stderr,
    )
    return 0


def command_vkey(arguments: argparse.Namespace) -> int:
    print(_witness_vkey(_load(arguments.dir)).vkey)
    return 0


def _policy_from_arguments(arguments: argparse.Namespace, directory: Path) -> Any:
    config = _config_module()
    if arguments.genesis is not None:
        source = Path(arguments.genesis)
        genesis = config.read_genesis(source)
        name = f"genesis-{genesis.chain_id.hex()[:16]}.json"
        try:
            shutil.copyfile(source, directory / name)
        except OSError as error:
            raise CommandError(f"cannot copy {source} into {directory}: {error.strerror}") from None
        return config.policy_from_genesis(genesis, name)
    if arguments.origin is None or arguments.quorum is None:
        raise CommandError("give --genesis FILE, or --origin, --quorum and member keys")
    keys = []
    for text in arguments.vkey:
        keys.append(NoteVerifierKey.parse_vkey(text))
    for text in arguments.member_key:
        try:
            public_key = crypto.public_key_from_text(text)
        except ValueError as error:
            raise CommandError(f"--member-key {text!r:.60}: {error}") from None
        keys.append(NoteVerifierKey(arguments.origin, KeyType.ED25519, public_key))
    return config.LogPolicy(arguments.origin, tuple(keys), arguments.quorum)


def command_add_log(arguments: argparse.Namespace) -> int:
    config = _config_module()
    configuration = _load(arguments.dir)
    try:
        policy = _policy_from_arguments(arguments, configuration.directory)
        updated = configuration.with_log(policy, replace_existing=arguments.replace)
    except (config.ConfigError, NoteError) as error:
        raise CommandError(str(error)) from None
    _write(updated)
    print(
        f"witnessing {policy.origin}: {len(policy.keys)} member keys, quorum {policy.quorum} "
        "(restart the witness to apply)"
    )
    return 0


def command_run(arguments: argparse.Namespace) -> int:
    from node.witness.server import Witness, serve
    from node.witness.state import StateError, lock_directory

    configuration = _load(arguments.dir)
    listen = arguments.listen or configuration.listen
    try:
        _config_module().parse_listen(listen)
        lock = lock_directory(configuration.directory)
        key = crypto.load_private_key(configuration.key_path)
        witness = Witness(configuration, key)
    except (_config_module().ConfigError, crypto.KeyFileError, StateError) as error:
        raise CommandError(str(error)) from None
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not witness.logs:
        logging.getLogger("sceau.witness").warning(
            "no log configured: every request will be refused (see 'sceau witness add-log')"
        )

    def ready(url: str) -> None:
        print(f"sceau witness: listening on {url}", flush=True)

    try:
        asyncio.run(serve(witness, listen, ready=ready))
    except OSError as error:
        raise CommandError(f"cannot listen on {listen}: {error.strerror}") from None
    finally:
        lock.close()  # type: ignore[attr-defined]
    return 0


command_run.logs_itself = True  # type: ignore[attr-defined]  # see cli.main


def add_witness_commands(commands: Any) -> None:
    """Add ``sceau witness`` and its actions to the sub-command parser ``commands``."""
    witness = commands.add_parser(
        "witness",
        help="run a witness that cosigns a consortium's checkpoints (for a non-member)",
        description="A witness remembers the latest checkpoint of each log it cosigned and "
        "never cosigns one that does not extend it, so that even a colluding quorum of "
        f"members cannot show two histories unseen. See {DOCS}.",
    )
    actions = witness.add_subparsers(dest="witness_command", metavar="ACTION", required=True)

    init = actions.add_parser(
        "init",
        help="create a witness: its key and witness.toml; print its cosignature vkey",
        description="Write DIR/witness.key (a new Ed25519 key, mode 0600) and DIR/witness.toml, "
        "and print the witness's cosignature verifier key (type 04), which verifiers list "
        "in their policy (sceau verify --witness NAME=VKEY).",
    )
    init.add_argument(
        "--name",
        required=True,
        help="the witness's key name, a schema-less URL such as prefecture.example/witness",
    )
    init.add_argument("--dir", required=True, metavar="DIR", help="the witness's folder")
    init.add_argument(
        "--listen",
        default=_config_module().DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help="where 'run' listens (default %(default)s)",
    )
    init.set_defaults(handler=command_init)

    vkey = actions.add_parser("vkey", help="print the witness's cosignature vkey")
    vkey.add_argument("--dir", required=True, metavar="DIR")
    vkey.set_defaults(handler=command_vkey)

    add_log = actions.add_parser(
        "add-log",
        help="witness a consortium's log (from its genesis, or its origin and member keys)",
        description="Add a log to witness.toml. With --genesis, the genesis is copied into "
        "DIR and gives the origin, the members' keys and the quorum. The witness does not "
        "follow governance: when the member set changes, run add-log --replace with "
        "--origin, the current members' keys and the quorum, then restart the witness.",
    )
    add_log.add_argument("--dir", required=True, metavar="DIR")
    add_log.add_argument("--genesis", metavar="FILE", help="the consortium's genesis file")
    add_log.add_argument("--origin", help="the log's origin (sceau/<chain_id in hex>)")
    add_log.add_argument(
        "--vkey", action="append", default=[], help="a member's note vkey (repeat)"
    )
    add_log.add_argument(
        "--member-key",
        action="append",
        default=[],
        metavar="ed25519:…",
        help="a member's public key as sceau prints it (repeat); named after --origin",
    )
    add_log.add_argument("--quorum", type=int, help="distinct member signatures needed")
    add_log.add_argument(
        "--replace", action="store_true", help="replace the entry of the same origin"
    )
    add_log.set_defaults(handler=command_add_log)

    run = actions.add_parser(
        "run",
        help="serve add-checkpoint until SIGINT/SIGTERM",
        description="Serve POST <prefix>/add-checkpoint (c2sp.org/tlog-witness), GET "
        "<prefix>/metrics (Prometheus) and GET / (status) until SIGINT or SIGTERM. Logs go "
        "to stderr; the first line on stdout gives the URL.",
    )
    run.add_argument("--dir", required=True, metavar="DIR")
    run.add_argument(
        "--listen", metavar="HOST:PORT", help="override witness.toml's listen (port 0: any)"
    )
    run.set_defaults(handler=command_run)
