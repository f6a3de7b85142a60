"""The ``sceau`` command line.

Each command is a small function that takes parsed arguments and returns an exit status.
Errors the user can fix are printed as one line on stderr with exit status 2, never as a
traceback; a check that fails (a document that does not match) exits with status 1.

Commands, for the people who use them:

* a collectivity's IT department: ``key generate``, ``genesis create`` / ``genesis
  add-member`` / ``genesis show``, ``node init``, ``node run``, ``status``;
* a developer trying sceau, or a contract of their own: ``devnet up`` / ``devnet down``,
  ``genesis contracts`` (what ``--contract`` may name);
* an application or an agent: ``anchor``, ``act show``, ``act find``, ``act status``;
* a witness's operator, outside the consortium: ``witness init`` / ``add-log`` / ``run``
  (node/tools/cli_witness.py);
* a collectivity publishing its acts: ``page --out`` writes the verification page every node
  serves at ``/`` as one HTML file that works offline (node/tools/cli_page.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from ledger import crypto, jsonstrict
from node.tools.conventions import (
    EXIT_CHECK_FAILED,
    EXIT_NOT_CONFIRMED,
    EXIT_RECEIPT_NOT_SAVED,
    EXIT_USAGE,
    CommandError,
    api_urls,
)

DEFAULT_API = "http://127.0.0.1:8700"
ACT_KINDS = (
    "deliberation",
    "decree",
    "decision",
    "permit",
    "contract",
    "budget",
    "dataset",
    "other",
)


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


def _load_key(path: str, passphrase_file: str | None = None) -> crypto.PrivateKey:
    try:
        return crypto.load_private_key(path, passphrase=_read_passphrase(passphrase_file))
    except crypto.KeyFileError as error:
        raise CommandError(str(error)) from None


def _print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, ensure_ascii=False))


# --- keys -------------------------------------------------------------------------------------


def command_key_generate(arguments: argparse.Namespace) -> int:
    key = crypto.generate_key()
    passphrase = _read_passphrase(arguments.passphrase_file)
    try:
        crypto.save_private_key(
            key, arguments.path, passphrase=passphrase, overwrite=arguments.force
        )
    except crypto.KeyFileError as error:
        hint = " (use --force to replace it)" if "already exists" in str(error) else ""
        raise CommandError(f"{error}{hint}") from None
    print(crypto.public_key_to_text(crypto.public_key_bytes(key)))
    return 0


def command_key_show(arguments: argparse.Namespace) -> int:
    key = _load_key(arguments.path, arguments.passphrase_file)
    print(crypto.public_key_to_text(crypto.public_key_bytes(key)))
    return 0


# --- genesis ----------------------------------------------------------------------------------


def _parse_member(text: str) -> dict[str, Any]:
    parts = text.split(",")
    if len(parts) not in (4, 5):
        raise CommandError(
            f"--member {text!r}: expected ID,NAME,PUBLIC_KEY,HOST:PORT[,SIRET] (four or five "
            "comma-separated fields; the name may not contain a comma)"
        )
    member_id, name, public_key, endpoint = (part.strip() for part in parts[:4])
    member = {"id": member_id, "name": name, "public_key": public_key, "endpoint": endpoint}
    if len(parts) == 5:
        member["siret"] = parts[4].strip()
    return member


def _genesis_from_json(document: dict[str, Any]) -> Any:
    from ledger.model import Genesis

    try:
        return Genesis.model_validate_json(json.dumps(document))
    except ValueError as error:
        raise CommandError(f"invalid genesis: {_first_error(error)}") from None


def _first_error(error: Exception) -> str:
    errors = getattr(error, "errors", None)
    if callable(errors):
        first = errors()[0]
        return ".".join(str(part) for part in first["loc"]) + ": " + first["msg"]
    return str(error)


def _write_new(path: Path, text: str, force: bool) -> None:
    if path.exists() and not force:
        raise CommandError(f"{path} exists; use --force to replace it")
    path.write_text(text)


def _contract_refs(specs: Sequence[str]) -> Any:
    """The contracts a new genesis pins: the built-in ones and ``--contract`` (installed)."""
    from contracts.registry import ContractLoadError, contract_refs

    try:
        return contract_refs(specs)
    except ContractLoadError as error:
        raise CommandError(str(error)) from None


def command_genesis_create(arguments: argparse.Namespace) -> int:
    import time

    document = {
        "format_version": arguments.format_version,
        "consortium": arguments.consortium,
        "created_at_ms": arguments.created_at_ms or time.time_ns() // 1_000_000,
        "members": [_parse_member(text) for text in arguments.member],
        "contracts": [
            {"name": ref.name, "version": ref.version} for ref in _contract_refs(arguments.contract)
        ],
    }
    genesis = _genesis_from_json(document)
    _write_new(Path(arguments.out), genesis.model_dump_json(indent=2) + "\n", arguments.force)
    print(
        f"wrote {arguments.out}: {len(genesis.members)} members, chain_id {genesis.chain_id.hex()}"
    )
    print("contracts: " + ", ".join(f"{c.name} {c.version}" for c in genesis.contracts))
    print(
        f"header format {genesis.format_version}"
        + (
            ": every block header commits to the log of every act"
            if genesis.format_version >= 2
            else ": no log in the headers (the members may schedule format 2 later)"
        )
    )
    if len(genesis.members) < 4:
        print(
            "note: a consortium needs at least 4 members to tolerate a faulty one; add "
            "members with 'sceau genesis add-member' before starting nodes"
        )
    return 0


def command_genesis_add_member(arguments: argparse.Namespace) -> int:
    path = Path(arguments.genesis)
    try:
        document = jsonstrict.loads(path.read_text())
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror}") from None
    except ValueError as error:
        raise CommandError(f"{path} is not a valid genesis: {error}") from None
    if not isinstance(document, dict):
        raise CommandError(f"{path} is not a valid genesis: not a JSON object")
    document.setdefault("members", []).append(
        {
            "id": arguments.id,
            "name": arguments.name,
            "public_key": arguments.public_key,
            "endpoint": arguments.endpoint,
            **({} if arguments.siret is None else {"siret": arguments.siret}),
        }
    )
    genesis = _genesis_from_json(document)
    path.write_text(genesis.model_dump_json(indent=2) + "\n")
    print(f"{path}: {len(genesis.members)} members, chain_id {genesis.chain_id.hex()}")
    return 0


def command_genesis_show(arguments: argparse.Namespace) -> int:
    from node.tools.launch import StartupError, read_genesis

    try:
        genesis = read_genesis(Path(arguments.genesis))
    except StartupError as error:
        raise CommandError(str(error)) from None
    print(f"consortium: {genesis.consortium}")
    print(f"chain_id:   {genesis.chain_id.hex()}")
    print(
        f"members:    {len(genesis.members)} (tolerates {(len(genesis.members) - 1) // 3} faulty)"
    )
    for member in genesis.members:
        print(f"  {member.id:<28} {member.endpoint:<22} {member.name}")
    print("contracts:  " + ", ".join(f"{c.name} {c.version}" for c in genesis.contracts))
    return 0


def command_genesis_contracts(arguments: argparse.Namespace) -> int:
    from contracts.registry import DEFAULT_CONTRACTS, ContractLoadError, installed_contracts

    try:
        installed = installed_contracts()
    except ContractLoadError as error:
        raise CommandError(str(error)) from None
    for contract in installed:
        listed = "  (always listed)" if contract.name in DEFAULT_CONTRACTS else ""
        older = (
            f"  (also runs {', '.join(contract.older_versions)} for the chains that pin it)"
            if contract.older_versions
            else ""
        )
        print(
            f"{contract.name:<16} {contract.version:<8} {contract.distribution:<28} "
            f"{contract.target}{listed}{older}"
        )
    return 0


# --- node -------------------------------------------------------------------------------------


def _config(arguments: argparse.Namespace) -> Any:
    from node.runtime.config import ConfigError, load_config

    try:
        return load_config(Path(arguments.config))
    except ConfigError as error:
        raise CommandError(str(error)) from None


def command_node_init(arguments: argparse.Namespace) -> int:
    from node.tools.launch import StartupError, initialise_data_dir, read_genesis

    config = _config(arguments)
    try:
        genesis = read_genesis(config.genesis_file)
        initialise_data_dir(config.data_dir, genesis).close()
    except StartupError as error:
        raise CommandError(str(error)) from None
    print(f"initialised {config.chain_path} for chain {genesis.chain_id.hex()}")
    if config.fault_injection:
        from node.runtime.debug_token import ensure_token, token_path

        ensure_token(config.data_dir)
        print(f"fault injection (tests only): the debug token is in {token_path(config.data_dir)}")
    return 0


def command_node_run(arguments: argparse.Namespace) -> int:
    from ledger.store import StoreError
    from node.tools.launch import StartupError, damaged_store_message, run_node_until_stopped

    config = _config(arguments)
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        run_node_until_stopped(config)
    except StartupError as error:
        raise CommandError(str(error)) from None
    except StoreError as error:
        # Found damaged while running: the node stopped rather than serve it. Status 2, like
        # a damaged store at start-up: restarting would not repair it.
        logging.getLogger("sceau.node").critical("stopped: the chain store is damaged: %s", error)
        raise CommandError(damaged_store_message(config, error)) from None
    except OSError as error:
        raise CommandError(f"cannot listen: {error}") from None
    return 0


# --- devnet -----------------------------------------------------------------------------------


def command_devnet_up(arguments: argparse.Namespace) -> int:
    from node.tools.devnet import DevnetError, devnet_up, read_observers, read_witnesses

    contracts = _contract_refs(arguments.contract)
    try:
        processes = devnet_up(
            Path(arguments.dir),
            arguments.nodes,
            contracts=contracts,
            observers=arguments.observers,
            issuers=arguments.issuers,
            witnesses=arguments.witness,
        )
    except DevnetError as error:
        raise CommandError(str(error)) from None
    print(f"devnet of {len(processes)} members running in {arguments.dir}:")
    for process in processes:
        print(f"  {process.member_id:<28} api {process.api_url:<24} pid {process.pid}")
    observers = read_observers(Path(arguments.dir))
    if observers:
        print(f"{len(observers)} observers (read only, following the members):")
    for process in observers:
        print(f"  {process.member_id:<28} api {process.api_url:<24} pid {process.pid}")
    for witness in read_witnesses(Path(arguments.dir)):
        print(
            f"witness {witness.name} ({witness.key_name}) at {witness.url}, pid {witness.pid}: "
            "every member pushes its checkpoints to it; a verifier trusts it with\n"
            f"  --witness {witness.name}={witness.vkey}"
        )
    first = processes[0]
    _print_admission(Path(arguments.dir), first)
    print(
        f"\ntry: sceau anchor FILE --api {first.api_url} --key {first.key_file} "
        f"--issuer {first.member_id} --reference 2026-DEL-001 --kind deliberation "
        f"--date 2026-11-28 --title 'A first act'"
    )
    print("contracts: " + ", ".join(f"{ref.name} {ref.version}" for ref in contracts))
    print(f"stop it with: sceau devnet down --dir {arguments.dir}")
    return 0


def _print_admission(directory: Path, member: Any) -> None:
    """The one-line summary of ``devnet up --issuers N`` (nothing without issuers)."""
    from node.tools.territory import read_admission, read_issuers

    admission = read_admission(directory)
    if admission is None:
        return
    first = read_issuers(directory)[0]["id"]
    print(
        f"{admission.issuers} issuers admitted by governance in {admission.proposals} "
        f"proposals ({admission.transactions} transactions, {admission.seconds:.1f} s, "
        f"height {admission.height}): keys in {directory / 'issuers'}/, list in "
        f"{directory / 'issuers.json'}; e.g. sceau anchor FILE --api {member.api_url} "
        f"--issuer {first} --key {directory / 'issuers' / (first + '.pem')} …"
    )


def command_devnet_down(arguments: argparse.Namespace) -> int:
    from node.tools.devnet import DevnetError, devnet_stop

    try:
        report = devnet_stop(Path(arguments.dir))
    except DevnetError as error:
        raise CommandError(str(error)) from None
    for member_id, reason in report.skipped.items():
        print(f"skipped {member_id}: {reason}; not signalled", file=sys.stderr)
    stopped = report.stopped + [f"{member} (not recorded)" for member in report.unrecorded]
    if stopped:
        print(f"stopped {len(stopped)} members: {', '.join(stopped)}")
    if report.observers:
        print(f"stopped {len(report.observers)} observers: {', '.join(report.observers)}")
    if report.witnesses:
        print(f"stopped {len(report.witnesses)} witnesses: {', '.join(report.witnesses)}")
    if not stopped and not report.observers and not report.witnesses:
        print("stopped no node: none of this devnet's nodes was running")
    return 0


# --- client commands --------------------------------------------------------------------------


def _client(arguments: argparse.Namespace, *, signer: bool) -> Any:
    from ledger.client import Client

    key = _load_key(arguments.key, arguments.passphrase_file) if signer else None
    ca_file = getattr(arguments, "ca_file", None)
    try:
        return Client(arguments.api or [DEFAULT_API], signer=key, ca_file=ca_file)
    except ValueError as error:  # too many --api URLs, an unreadable CA file: the client's
        field = getattr(error, "field", "api")
        option = "--ca-file" if field == "ca_file" else "--api"
        message = str(getattr(error, "message", error)).removeprefix(f"{field}: ")
        raise CommandError(f"{option}: {message}") from None


_DETAIL_CHARACTERS_MAX = 300
"""An error's detail is cut to this length on the CLI's one error line."""
_ADDRESS_PROBLEMS = frozenset({"tls_mismatch", "untrusted_certificate", "not_a_sceau_api"})
"""Client codes for an address that answers, but not as the --api of a sceau node should."""


def _answer_error(error: Any) -> CommandError:
    """The one line that says what went wrong talking to a node.

    Written against any error of the client library: its ``code`` (the problem's stable code,
    or ``unreachable``) and its message; a hint is added where the usual cause is a wrong
    ``--api`` (an http:// address of an https:// node, a peer port instead of the API's).
    """
    code = getattr(error, "code", None) or type(error).__name__
    status = getattr(error, "status", None)
    detail = " ".join(str(getattr(error, "detail", None) or error).split())
    if len(detail) > _DETAIL_CHARACTERS_MAX:  # an HTML page of a proxy, say: one line
        detail = detail[: _DETAIL_CHARACTERS_MAX - 1] + "…"
    if code in _ADDRESS_PROBLEMS:
        # The client library's own diagnosis of a wrong address, with its hint (the library's
        # option named as the CLI's).
        detail = detail.replace("with ca_file= (or an ssl_context)", "with --ca-file")
        return CommandError(f"{detail} (code {code})")
    if status == 0 or code == "unreachable":
        return CommandError(
            f"the node is unreachable: {detail} (code {code}) — check the --api address: its "
            "scheme (http:// or https://), host and API port, and that the node runs"
        )
    if code == "error" and isinstance(status, int):
        # Not a problem document (every sceau API error is one): something else answered.
        return CommandError(
            f"the server answered {status} without a sceau problem document ({detail}) — is "
            "--api a member's API address (not its peer port)?"
        )
    if isinstance(status, int) and status:
        return CommandError(f"the node answered {status} {code}: {detail}")
    return CommandError(f"{code}: {detail}")


def _client_errors() -> tuple[type[BaseException], ...]:
    """What the client library raises for a node's answer or silence, and for a request it
    refuses to build (``ModelDecodeError``: a transaction over a model limit)."""
    from ledger import client
    from ledger.model import ModelDecodeError

    family = getattr(client, "SceauError", client.ApiError)
    return (client.ApiError, family, ModelDecodeError)


def _api_call(call: Any) -> Any:
    try:
        return call()
    except _client_errors() as error:
        raise _answer_error(error) from None


def _rejection_or(call: Any) -> Any:
    """Call; a transaction the consortium refused (or that expired) becomes a ``rejected``
    outcome; one not confirmed in time a :class:`_NotConfirmed`."""
    from ledger.client import CommitNotConfirmed, TransactionRejected

    try:
        return call()
    except TransactionRejected as error:
        return {
            "status": "rejected",
            "code": error.code,
            "reason": error.detail,
            "tx_id": error.tx_id,
        }
    except CommitNotConfirmed as error:
        raise _NotConfirmed(str(error)) from None
    except _client_errors() as error:
        raise _answer_error(error) from None


def _print_rejection(outcome: dict[str, Any]) -> int:
    """A refused transaction: its id, the rejection's code and detail; exit status 1."""
    tx_id = outcome.get("tx_id") or "(no id)"
    print(f"transaction {tx_id}: rejected")
    print(
        f"sceau: error: transaction {tx_id} rejected: {outcome.get('code')}: "
        f"{outcome.get('reason')}",
        file=sys.stderr,
    )
    return EXIT_CHECK_FAILED


class _NotConfirmed(CommandError):
    """No member confirmed the commit before the deadline: exit status 3, not 2."""

    exit_status = EXIT_NOT_CONFIRMED


def command_status(arguments: argparse.Namespace) -> int:
    with _client(arguments, signer=False) as client:
        _print_json(_api_call(client.status))
    return 0


_BLANK_REFUSED = frozenset({"title", "legal_basis", "reason", "decision_reference"})
"""Free-text arguments that the deeds contract accepts when they hold only spaces (changing
that would change what an existing contract accepts) but that no person means: refused here."""


def _check_deeds_arguments(action: str, args: dict[str, Any], options: dict[str, str]) -> None:
    """Refuse, before anything is signed or sent, an argument of a ``deeds`` action that the
    contract would refuse — with the contract's own validators and limits, so that the CLI and
    the contract cannot disagree — or a free text of only spaces. ``options`` names the
    command-line option of each argument the user gives (the others, like the digest, the CLI
    computes itself). Raises CommandError."""
    from contracts.deeds import ACTION_ARGUMENTS

    for argument in ACTION_ARGUMENTS[action]:
        value = args.get(argument.name)
        if argument.name not in options or value is None:
            assert argument.name not in options or not argument.required, argument.name
            continue
        why = argument.validate(value)
        if why is None and argument.name in _BLANK_REFUSED and not value.strip():
            why = "only spaces: give a text"
        if why is not None:
            raise CommandError(f"{options.get(argument.name, argument.name)}: {why}")


_ANCHOR_OPTIONS = {
    "issuer": "--issuer",
    "reference": "--reference",
    "kind": "--kind",
    "act_date": "--date",
    "title": "--title",
    "legal_basis": "--legal-basis",
    "url": "--url",
    "subject_code": "--subject-code",
    "subject_name": "--subject-name",
    "votes": "--votes",
    "budget_year": "--budget-year",
    "budget_name": "--budget-name",
    "control_entity": "--control-entity",
    "control_date": "--control-date",
}
_DELIBERATION_OPTIONS = (
    "subject_code",
    "subject_name",
    "votes",
    "budget_year",
    "budget_name",
    "control_entity",
    "control_date",
)
"""The anchor's deliberation data (deeds 1.1): arguments named as the contract names them."""


def _votes(text: str) -> dict[str, int]:
    """An argparse type: ``entitled=N,cast=N,for=N,against=N,abstention=N``, each once (the
    contract checks the counts and how they add up)."""
    from contracts.deeds import VOTE_COUNTS

    votes: dict[str, int] = {}
    for part in text.split(","):
        name, separator, value = part.strip().partition("=")
        if not separator or name not in VOTE_COUNTS or name in votes:
            raise argparse.ArgumentTypeError(
                "expected " + ",".join(f"{count}=N" for count in VOTE_COUNTS) + ", each once"
            )
        if not value.isdigit() or len(value) > 6:
            raise argparse.ArgumentTypeError(f"{name}: expected a count, got {value[:20]!r}")
        votes[name] = int(value)
    if sorted(votes) != sorted(VOTE_COUNTS):
        missing = [count for count in VOTE_COUNTS if count not in votes]
        raise argparse.ArgumentTypeError("missing " + ", ".join(missing))
    return votes


def _receipt_path(arguments: argparse.Namespace) -> Path:
    """Where the receipt will go, checked before anything is submitted: once the act is
    committed, submitting it again is refused (``duplicate_reference``), so a receipt that
    cannot be written must be found out now. Raises CommandError."""
    path = Path(arguments.receipt or f"{arguments.file}.receipt.json")
    folder = path.parent
    if not folder.is_dir():
        raise CommandError(f"--receipt {path}: the folder {folder} does not exist")
    if path.is_dir():
        raise CommandError(f"--receipt {path} is a folder; give a file name")
    if path.exists() and not arguments.force:
        raise CommandError(
            f"the receipt file {path} exists; use --receipt to name another file, or --force "
            "to replace it"
        )
    writable = os.access(path, os.W_OK) if path.exists() else os.access(folder, os.W_OK)
    if not writable:
        raise CommandError(f"--receipt {path}: cannot write there (permission denied)")
    return path


def _save_receipt(path: Path, outcome: dict[str, Any]) -> int:
    """Write the receipt of a committed act; if that fails after all (a full disk), save it
    in the current folder under its transaction id, or else print it: never lose it."""
    text = json.dumps(outcome["receipt"], indent=2) + "\n"
    tx_id = outcome["tx_id"]
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        print(f"receipt saved to {path}")
        return 0
    except OSError as error:
        why = error.strerror or str(error)
    again = f"fetch it again any time with 'sceau receipt {tx_id} --api URL'"
    fallback = Path.cwd() / f"{tx_id}.receipt.json"
    try:
        with open(fallback, "x", encoding="utf-8") as handle:
            handle.write(text)
    except OSError:
        print(text, end="")
        where = "printed it above on standard output"
    else:
        where = f"saved it to {fallback} instead"
    print(
        f"sceau: error: transaction {tx_id} is committed, but its receipt could not be written "
        f"to {path} ({why}): {where}; {again}",
        file=sys.stderr,
    )
    return EXIT_RECEIPT_NOT_SAVED


def command_anchor(arguments: argparse.Namespace) -> int:
    from ledger.client import digest_of_file

    if arguments.batch is not None:
        return _anchor_batch(arguments)
    missing = [
        option
        for option, value in (
            ("FILE", arguments.file),
            ("--reference", arguments.reference),
            ("--kind", arguments.kind),
            ("--date", arguments.date),
            ("--title", arguments.title),
        )
        if value is None
    ]
    if missing:
        raise CommandError(
            f"anchor: {', '.join(missing)} required (or --batch CSV for several documents)"
        )
    args = {
        "issuer": arguments.issuer,
        "reference": arguments.reference,
        "kind": arguments.kind,
        "act_date": arguments.date,
        "title": arguments.title,
        "legal_basis": arguments.legal_basis,
        "url": arguments.url,
    }
    deliberation = {name: getattr(arguments, name) for name in _DELIBERATION_OPTIONS}
    _check_deeds_arguments("anchor", {**args, **deliberation}, _ANCHOR_OPTIONS)
    given = [name for name in _DELIBERATION_OPTIONS if deliberation[name] is not None]
    if given and arguments.kind != "deliberation":
        raise CommandError(
            f"{_ANCHOR_OPTIONS[given[0]]}: only a deliberation carries it (--kind deliberation)"
        )
    if given:
        args["deliberation"] = {name: deliberation[name] for name in given}
    receipt_path = _receipt_path(arguments)
    try:
        digest = digest_of_file(arguments.file)
    except OSError as error:
        raise CommandError(f"cannot read {arguments.file}: {error.strerror}") from None
    with _client(arguments, signer=True) as client:
        outcome = _rejection_or(lambda: client.anchor(digest=digest, wait_s=arguments.wait, **args))
    status = outcome.get("status")
    print(f"{arguments.file}: sha256 {digest.hex()}")
    if status == "rejected":
        return _print_rejection(outcome)
    print(
        f"transaction {outcome['tx_id']}: {status}"
        + (f" at height {outcome.get('height')}" if status == "committed" else "")
    )
    if status == "committed" and outcome.get("receipt") is not None:
        return _save_receipt(receipt_path, outcome)
    return 0


BATCH_COLUMNS = ("file", "reference", "title", "kind", "date", "legal_basis", "url")
"""The columns of ``sceau anchor --batch``'s CSV: the first three required, the others
defaulting to the options --kind, --date, --legal-basis and --url."""
BATCH_ROWS_MAX = 10_000
"""Documents one ``sceau anchor --batch`` anchors at most (the client library sends them in
requests of up to 1,000)."""


def _batch_rows(arguments: argparse.Namespace) -> list[dict[str, Any]]:
    """The acts of ``--batch CSV``: each row checked as the deeds contract checks it, its
    document hashed and its receipt's path free, before anything is signed. Raises
    CommandError naming the line and column."""
    import csv

    from ledger.client import digest_of_file

    path = Path(arguments.batch)
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            rows = list(reader)
    except OSError as error:
        raise CommandError(f"--batch {path}: cannot read it ({error.strerror})") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise CommandError(f"--batch {path}: not a UTF-8 CSV file ({error})") from None
    unknown = [column for column in columns if column not in BATCH_COLUMNS]
    absent = [column for column in BATCH_COLUMNS[:3] if column not in columns]
    if unknown or absent or len(set(columns)) != len(columns):
        raise CommandError(
            f"--batch {path}: the first line names the columns, each once: file, reference, "
            f"title, and optionally kind, date, legal_basis, url"
            + (f" (unknown: {unknown[0][:40]})" if unknown else "")
        )
    if not 1 <= len(rows) <= BATCH_ROWS_MAX:
        raise CommandError(f"--batch {path}: expected 1 to {BATCH_ROWS_MAX} documents")
    defaults = {
        "kind": arguments.kind,
        "date": arguments.date,
        "legal_basis": arguments.legal_basis,
        "url": arguments.url,
    }
    acts: list[dict[str, Any]] = []
    receipts: set[Path] = set()
    for number, row in enumerate(rows, start=2):
        where = f"--batch {path} line {number}"
        if None in row or any(value is None for value in row.values()):
            raise CommandError(f"{where}: expected {len(columns)} columns")
        values = {name: row.get(name) or defaults.get(name) for name in BATCH_COLUMNS}
        for name in ("file", "reference", "title", "kind", "date"):
            if not values[name]:
                option = f" (or --{name})" if name in ("kind", "date") else ""
                raise CommandError(f"{where}: {name} is empty{option}")
        if values["kind"] not in ACT_KINDS:
            raise CommandError(f"{where}: kind: one of {', '.join(ACT_KINDS)}")
        try:
            _calendar_date(values["date"])
        except argparse.ArgumentTypeError as error:
            raise CommandError(f"{where}: date: {error}") from None
        args = {
            "issuer": arguments.issuer,
            "reference": values["reference"],
            "kind": values["kind"],
            "act_date": values["date"],
            "title": values["title"],
            "legal_basis": values["legal_basis"],
            "url": values["url"],
        }
        options = {name: f"{where}: {name}" for name in args}
        options.update(issuer="--issuer", act_date=f"{where}: date")
        _check_deeds_arguments("anchor", args, options)
        document = path.parent / values["file"]
        receipt = Path(f"{document}.receipt.json")
        if receipt in receipts:
            raise CommandError(f"{where}: {values['file']} appears twice")
        receipts.add(receipt)
        if receipt.exists() and not arguments.force:
            raise CommandError(
                f"{where}: the receipt file {receipt} exists; use --force to replace it"
            )
        try:
            digest = digest_of_file(document)
        except OSError as error:
            raise CommandError(f"{where}: cannot read {document}: {error.strerror}") from None
        act = {name: value for name, value in args.items() if value is not None}
        acts.append({"act": {**act, "digest": digest}, "file": document, "receipt": receipt})
    return acts


def _anchor_batch(arguments: argparse.Namespace) -> int:
    """``sceau anchor --batch CSV``: every document of the CSV in few requests (the client
    library's ``anchor_many``); each receipt saved beside its document."""
    given = [
        option
        for option, value in (
            ("FILE", arguments.file),
            ("--reference", arguments.reference),
            ("--title", arguments.title),
            ("--receipt", arguments.receipt),
            *((_ANCHOR_OPTIONS[name], getattr(arguments, name)) for name in _DELIBERATION_OPTIONS),
        )
        if value is not None
    ]
    if given:
        raise CommandError(f"{given[0]}: not with --batch (the CSV gives each document's own)")
    rows = _batch_rows(arguments)
    with _client(arguments, signer=True) as client:
        outcomes = _rejection_or(
            lambda: client.anchor_many([row["act"] for row in rows], wait_s=arguments.wait)
        )
        status = 0
        unconfirmed = 0
        for row, outcome in zip(rows, outcomes, strict=True):
            state = outcome["status"]
            print(f"{row['file']}: sha256 {outcome['digest']}")
            if state == "rejected":
                _print_rejection(outcome)
                status = EXIT_CHECK_FAILED
                continue
            if state != "committed":
                print(f"transaction {outcome['tx_id']}: {state}")
                unconfirmed += 1
                continue
            print(f"transaction {outcome['tx_id']}: committed at height {outcome['height']}")
            receipt = _rejection_or(lambda outcome=outcome: client.receipt(outcome["tx_id"]))
            if receipt is None:  # a node that has not committed it yet: fetch it later
                print(f"fetch its receipt with 'sceau receipt {outcome['tx_id']} --api URL'")
                continue
            saved = _save_receipt(row["receipt"], {"tx_id": outcome["tx_id"], "receipt": receipt})
            status = status or saved
    committed = sum(outcome["status"] == "committed" for outcome in outcomes)
    print(f"{committed} of {len(rows)} documents anchored")
    if unconfirmed:
        raise _NotConfirmed(
            f"{unconfirmed} transaction(s) not confirmed within --wait {arguments.wait:g} s: "
            "they may still commit; look them up with 'sceau receipt TX_ID'"
        )
    return status


def _check_act_name(arguments: argparse.Namespace) -> None:
    """ISSUER and REFERENCE of a look-up, checked as the contract checks them (a reference
    that no act can have is a mistake to say, not a 404 to ask a node for)."""
    _check_deeds_arguments(
        "amend",
        {
            "issuer": arguments.issuer,
            "reference": arguments.reference,
            "by_reference": arguments.reference,
        },
        {"issuer": "ISSUER", "reference": "REFERENCE", "by_reference": "REFERENCE"},
    )


def command_act_show(arguments: argparse.Namespace) -> int:
    _check_act_name(arguments)
    with _client(arguments, signer=False) as client:
        act = _api_call(lambda: client.act(arguments.issuer, arguments.reference))
        _print_json(act)
        if arguments.history:
            _print_json(_api_call(lambda: client.history(arguments.issuer, arguments.reference)))
    return 0


def command_act_find(arguments: argparse.Namespace) -> int:
    from ledger.client import ApiError, digest_of_file

    if arguments.digest:
        try:
            digest = bytes.fromhex(arguments.digest)
        except ValueError:
            digest = b""
        if len(digest) != hashlib.sha256().digest_size:
            raise CommandError("--digest takes 64 hex characters (a SHA-256)") from None
    else:
        try:
            digest = digest_of_file(arguments.file)
        except OSError as error:
            raise CommandError(f"cannot read {arguments.file}: {error.strerror}") from None
    with _client(arguments, signer=False) as client:
        try:
            acts = client.acts_by_digest(digest)
        except ApiError as error:
            if error.status == 404:
                print(f"sha256 {digest.hex()}: no act anchors this document")
                return EXIT_CHECK_FAILED
            raise _answer_error(error) from None
        except _client_errors() as error:
            raise _answer_error(error) from None
    print(f"sha256 {digest.hex()}: anchored by {len(acts)} act(s)")
    for act in acts:
        print(
            f"  {act.get('issuer')}/{act.get('reference')}: {act.get('kind')} of "
            f"{act.get('act_date')}, status {act.get('status')}"
        )
    return 0


def command_act_status(arguments: argparse.Namespace) -> int:
    changes = [
        name
        for name in ("amend_by", "supersede_by", "withdraw", "annul")
        if getattr(arguments, name)
    ]
    if len(changes) != 1:
        raise CommandError("give exactly one of --amend-by, --supersede-by, --withdraw, --annul")
    change = changes[0]
    fields: dict[str, Any] = {}
    if change in ("amend_by", "supersede_by"):
        action = change.removesuffix("_by")
        fields["by_reference"] = getattr(arguments, change)
    else:
        action = change
        fields["reason"] = getattr(arguments, change)
        fields["decision_reference"] = arguments.decision_reference
    _check_deeds_arguments(
        action,
        {"issuer": arguments.issuer, "reference": arguments.reference, **fields},
        {
            "issuer": "ISSUER",
            "reference": "REFERENCE",
            "by_reference": f"--{change.replace('_', '-')}",
            "reason": f"--{change}",
            "decision_reference": "--decision-reference",
        },
    )
    with _client(arguments, signer=True) as client:
        outcome = _rejection_or(
            lambda: client.change_status(
                action,
                issuer=arguments.issuer,
                reference=arguments.reference,
                wait_s=arguments.wait,
                **fields,
            )
        )
    if outcome.get("status") == "rejected":
        return _print_rejection(outcome)
    print(f"transaction {outcome['tx_id']}: {outcome.get('status')}")
    return 0


def _read_receipt(path: str) -> Any:
    from ledger.model import ModelDecodeError
    from ledger.receipt import Receipt

    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror}") from None
    try:
        if data.lstrip()[:1] == b"{":
            return Receipt.model_validate_json(data)
        return Receipt.from_bytes(data)
    except (ValueError, ModelDecodeError) as error:
        raise CommandError(f"{path} is not a receipt: {_first_error(error)}") from None


def command_verify(arguments: argparse.Namespace) -> int:
    import datetime

    from contracts.registry import receipt_anchors
    from ledger.receipt import ReceiptError, verify_receipt
    from node.tools.cli_proof import TILE_PROOF_HEADER
    from node.tools.conventions import witness_policy
    from node.tools.launch import StartupError, read_genesis

    try:
        with open(arguments.receipt, "rb") as file:
            is_tlog_proof = file.read(len(TILE_PROOF_HEADER)) == TILE_PROOF_HEADER
    except OSError as error:
        raise CommandError(f"cannot read {arguments.receipt}: {error.strerror}") from None
    if is_tlog_proof:
        return _verify_tlog_proof(arguments)
    receipt = _read_receipt(arguments.receipt)
    policy = witness_policy(arguments)
    try:
        genesis = read_genesis(Path(arguments.genesis))
    except StartupError as error:
        raise CommandError(str(error)) from None
    document = None
    if arguments.document:
        try:
            document = Path(arguments.document).read_bytes()
        except OSError as error:
            raise CommandError(f"cannot read {arguments.document}: {error.strerror}") from None
    try:
        proven = verify_receipt(
            receipt, genesis, document, anchors=receipt_anchors(), witnesses=policy
        )
    except ReceiptError as error:
        print(f"NOT VERIFIED — {error}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    when = datetime.datetime.fromtimestamp(proven.timestamp_ms / 1000, datetime.UTC)
    print(
        f"VERIFIED against the genesis of {genesis.consortium!r} "
        f"(chain {genesis.chain_id.hex()[:16]}…)"
    )
    if proven.act is not None:
        act = proven.act
        print(
            f"  act:       {act['issuer']}/{act['reference']} ({act['kind']}, "
            f"dated {act['act_date']})"
        )
        print(f"  title:     {act['title']}")
        print(f"  digest:    {act['digest'].hex()}")
    else:
        transaction = proven.transaction
        print(
            f"  transaction: {transaction.contract}.{transaction.action} {transaction.tx_id.hex()}"
        )
    print(
        f"  committed: height {proven.height}, {when:%Y-%m-%d %H:%M:%S} UTC, certified by "
        f"{len(proven.signers)} of {proven.members} members ({', '.join(proven.signers)})"
    )
    if proven.issuer is not None:
        print(f"  issuer:    {_issuer_line(proven.issuer, proven.height)}")
    if proven.signer_right is not None:
        print(f"  signed by: {_signer_line(proven.signer_right)}")
    if proven.document_matches:
        print(f"  document:  {arguments.document} matches the anchored digest")
    if proven.status_height is not None:
        print(f"  status:    {_status_line(proven.status, proven.status_height)}")
    if proven.checkpoint is not None:
        from node.tools.cli_proof import witness_lines

        print(f"  log index: {proven.log_index}")
        for line in witness_lines(proven.checkpoint, policy):
            print(line)
    return 0


def _verify_tlog_proof(arguments: argparse.Namespace) -> int:
    """``sceau verify FILE.tlog-proof``: node/tools/cli_proof.py."""
    from node.tools.cli_proof import verify_tlog_proof_file
    from node.tools.launch import StartupError, read_genesis

    try:
        data = Path(arguments.receipt).read_bytes()
        genesis = read_genesis(Path(arguments.genesis))
    except OSError as error:
        raise CommandError(f"cannot read {arguments.receipt}: {error.strerror}") from None
    except StartupError as error:
        raise CommandError(str(error)) from None
    return verify_tlog_proof_file(arguments, data, genesis)


def _issuer_line(issuer: Any, height: int) -> str:
    """An issuer as a clerk names it: its name and SIRET, and its standing at ``height``."""
    siret = "no SIRET" if issuer.siret is None else f"SIRET {issuer.siret}"
    return (
        f"{issuer.name} ({siret}), an {issuer.status} issuer at height {height} "
        f"(admitted at height {issuer.admitted_height})"
    )


def _signer_line(right: Any) -> str:
    """How the signing key was entitled to sign the act, in words (``SignerRight``)."""
    from ledger.receipt import SignerRightKind

    kind, principal = right.kind, right.principal
    on_record = f"on record after block {right.proven_at_height}"
    if kind is SignerRightKind.MEMBER_NODE_KEY:
        return f"the node key of member {principal}, in force at height {right.height}"
    if kind is SignerRightKind.ISSUER_KEY:
        return f"the issuer's own key, {on_record}"
    if kind is SignerRightKind.DELEGATED:
        until = (
            "until revoked"
            if right.expiry_height is None
            else f"valid to height {right.expiry_height}"
        )
        return f"a key {principal} delegated {right.role} to ({until}), {on_record}"
    assert kind is SignerRightKind.NOT_PROVEN, kind
    return (
        f"a key acting for member {principal}, not its node key: delegation not proven by "
        "this receipt (older receipt)"
    )


def _status_line(record: Any, as_of_height: int) -> str:
    """The act's status and the height of its last change (the record's own
    ``status_height``), then the height of the certified header that proves it."""
    as_of = f"(status as of height {as_of_height})"
    if record is None:
        return f"no record {as_of}"
    if not isinstance(record, dict) or not isinstance(record.get("status"), str):
        return f"a record without a status {as_of}"
    since = record.get("status_height")
    if isinstance(since, int) and not isinstance(since, bool):
        return f"{record['status']} since height {since} {as_of}"
    return f"{record['status']} {as_of}"


_TX_ID_DIGITS = 64


def command_receipt(arguments: argparse.Namespace) -> int:
    from ledger.receipt import Receipt

    tx_id = arguments.tx_id
    if len(tx_id) != _TX_ID_DIGITS or any(digit not in "0123456789abcdef" for digit in tx_id):
        raise CommandError(f"{tx_id[:80]!r} is not a transaction id (64 lowercase hex digits)")
    out = Path(arguments.out) if arguments.out else None
    if out is not None:  # refused before any network call: nothing is fetched in vain
        if not out.parent.is_dir():
            raise CommandError(f"--out {out}: the folder {out.parent} does not exist")
        if out.is_dir():
            raise CommandError(f"--out {out} is a folder: give a file name")
        if out.exists() and not arguments.force:
            raise CommandError(f"{out} exists; use --force to replace it")
    with _client(arguments, signer=False) as client:
        receipt = _api_call(lambda: client.receipt(tx_id, with_status=arguments.with_status))
        if receipt is None:
            answer = _api_call(lambda: client.transaction(tx_id))
            if answer.get("status") == "rejected":
                why = f"rejected ({answer.get('code')}: {answer.get('reason')}), never committed"
            else:
                why = f"{answer.get('status')}, not committed yet: ask again later"
            print(f"transaction {tx_id}: {why}; no receipt", file=sys.stderr)
            return EXIT_CHECK_FAILED
    text = json.dumps(receipt, indent=2) + "\n"
    try:
        decoded = Receipt.model_validate_json(text)
    except ValueError as error:
        raise CommandError(f"the node's answer is not a receipt: {_first_error(error)}") from None
    if out is None:
        sys.stdout.write(text)
        return 0
    try:
        out.write_text(text)
    except OSError as error:
        raise CommandError(f"cannot write {out}: {error.strerror}") from None
    status = "" if decoded.status is None else ", with the status"
    print(f"receipt of {tx_id} (height {decoded.height}{status}) saved to {out}")
    return 0


def command_hash(arguments: argparse.Namespace) -> int:
    hasher = hashlib.sha256()
    try:
        with open(arguments.file, "rb") as handle:
            while chunk := handle.read(1 << 20):
                hasher.update(chunk)
    except OSError as error:
        raise CommandError(f"cannot read {arguments.file}: {error.strerror}") from None
    print(hasher.hexdigest())
    return 0


# --- parser -----------------------------------------------------------------------------------


ACT_DATE_FIRST = "1800-01-01"
ACT_DATE_LAST = "2199-12-31"
"""The act dates the CLI accepts. The deeds contract takes any calendar date from year 1 to
9999 (its rules are fixed for existing chains); the CLI is stricter, so that a slip of the
keyboard (0001-01-01, 2962-11-28) is caught before it is anchored for good."""


def _calendar_date(text: str) -> str:
    """An argparse type: a real calendar date written YYYY-MM-DD, within the CLI's range."""
    import datetime
    import re

    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a date written YYYY-MM-DD")
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a valid date ({text})") from None
    if not ACT_DATE_FIRST <= text <= ACT_DATE_LAST:
        raise argparse.ArgumentTypeError(
            f"{text} is outside the dates the CLI accepts, {ACT_DATE_FIRST} to {ACT_DATE_LAST}"
        )
    return text


WAIT_S_MAX = 3600.0
"""The longest ``--wait``: an hour is already far beyond any commit of a live consortium."""


def _wait_seconds(text: str) -> float:
    """An argparse type: seconds to wait for a commit, more than 0 and at most WAIT_S_MAX."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= WAIT_S_MAX:  # also refuses nan
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds above 0 and at most {WAIT_S_MAX:g}, got {text[:40]!r}"
        )
    return value


def _wait_option(parser: argparse.ArgumentParser) -> None:
    """``--wait SECONDS`` of the commands that submit a transaction and await its commit."""
    parser.add_argument(
        "--wait",
        type=_wait_seconds,
        default=30.0,
        metavar="SECONDS",
        help="how long to carry the submission to its commit, across every --api member "
        f"(default 30, at most {WAIT_S_MAX:g}); past it, exit status 3: it may still commit",
    )


def _api_options(parser: argparse.ArgumentParser, *, signer: bool) -> None:
    parser.add_argument(
        "--api",
        action="extend",
        type=api_urls,
        metavar="URL",
        help=f"a member node's API (default {DEFAULT_API}); repeat it, or separate URLs by "
        "commas, to give several members: reads go to the first that answers, and a "
        "submission is sent to the next member until one commits it",
    )
    parser.add_argument(
        "--ca-file",
        metavar="PEM",
        help="trust the certificate authority in PEM (for an https:// node whose certificate "
        "the system's CAs do not vouch for); certificates are always checked",
    )
    if signer:
        parser.add_argument(
            "--key",
            required=True,
            metavar="PEM",
            help="the signer key (a member's node key, an issuer's own key, or a key either "
            "delegated to)",
        )
        parser.add_argument("--passphrase-file", metavar="FILE", help="the key's passphrase")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors that point at --help (and exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.endswith(("required: COMMAND", "required: ACTION")):
            self.print_help(sys.stderr)  # `sceau` or `sceau key` alone: show what there is
            self.exit(EXIT_USAGE)
        self.exit(EXIT_USAGE, f"sceau: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sceau",
        description="sceau: a permissioned consortium ledger for the administrative acts of "
        "public administrations.",
        epilog="Run 'sceau COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"sceau {_version()}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    _add_key_commands(commands)
    _add_genesis_commands(commands)
    _add_node_commands(commands)
    _add_devnet_commands(commands)
    _add_client_commands(commands)
    _add_query_command(commands)
    from node.tools.cli_chain import add_chain_commands
    from node.tools.cli_governance import CommandParts, add_governance_commands

    add_chain_commands(commands)
    from node.tools.cli_witness import add_witness_commands

    add_witness_commands(commands)
    from node.tools.cli_page import add_page_command

    add_page_command(commands)
    parts = CommandParts(
        api_options=_api_options,
        wait_option=_wait_option,
        client=_client,
        api_call=_api_call,
        rejection_or=_rejection_or,
        print_rejection=_print_rejection,
        load_key=_load_key,
    )
    add_governance_commands(commands, parts)
    return parser


def _add_key_commands(commands: Any) -> None:
    key = commands.add_parser(
        "key",
        help="generate and inspect Ed25519 keys",
        description="Generate and inspect the Ed25519 keys of members and signers.",
    )
    actions = key.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    generate = actions.add_parser(
        "generate",
        help="write a new private key and print its public key",
        description="Write a new Ed25519 private key as PKCS#8 PEM (mode 0600) and print its "
        "public key in the form ed25519:<base64url>, which goes into a genesis file.",
    )
    generate.add_argument("path", help="where to write the private key (PEM)")
    generate.add_argument(
        "--passphrase-file", metavar="FILE", help="encrypt the key with the passphrase in FILE"
    )
    generate.add_argument("--force", action="store_true", help="replace an existing file")
    generate.set_defaults(handler=command_key_generate)
    show = actions.add_parser(
        "show",
        help="print the public key of a private key file",
        description="Print the public key (ed25519:<base64url>) of a private key file.",
    )
    show.add_argument("path", help="the private key file (PEM)")
    show.add_argument("--passphrase-file", metavar="FILE", help="the key's passphrase")
    show.set_defaults(handler=command_key_show)


def _add_genesis_commands(commands: Any) -> None:
    genesis = commands.add_parser(
        "genesis",
        help="create and inspect a consortium's genesis",
        description="Create the genesis file that founds a "
        "consortium: its members, keys, endpoints and contracts.",
    )
    actions = genesis.add_subparsers(dest="genesis_command", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        help="write a genesis from a list of members",
        description="Write a genesis (JSON). Each --member is ID,NAME,PUBLIC_KEY,HOST:PORT "
        "or ID,NAME,PUBLIC_KEY,HOST:PORT,SIRET; the public key is what 'sceau key generate' "
        "printed, the SIRET the collectivity's 14 digits (optional).",
    )
    create.add_argument("--consortium", required=True, help="the consortium's display name")
    create.add_argument(
        "--member",
        action="append",
        default=[],
        metavar="ID,NAME,KEY,ENDPOINT[,SIRET]",
        help="a member (repeat for each)",
    )
    create.add_argument("--out", default="genesis.json", help="output file (genesis.json)")
    create.add_argument("--created-at-ms", type=int, help="creation time (default: now)")
    create.add_argument(
        "--format-version",
        type=int,
        choices=(1, 2),
        default=2,
        help="header format from block 1 (default 2: headers commit to the log of every act, "
        "which checkpoints and witnesses need; 1 is the earlier format, see docs/format.md)",
    )
    _contract_option(create)
    create.add_argument("--force", action="store_true", help="replace an existing file")
    create.set_defaults(handler=command_genesis_create)
    add = actions.add_parser(
        "add-member",
        help="add a member to a draft genesis",
        description="Add a member to a genesis that no node runs yet "
        "(afterwards, members are admitted by governance vote).",
    )
    add.add_argument("genesis", help="the draft genesis file")
    add.add_argument("--id", required=True, help="member id: a lowercase slug")
    add.add_argument("--name", required=True, help="display name")
    add.add_argument("--public-key", required=True, help="ed25519:<base64url>")
    add.add_argument("--endpoint", required=True, help="peer endpoint HOST:PORT")
    add.add_argument(
        "--siret", help="the collectivity's SIRET, 14 digits (optional; open-data exports)"
    )
    add.set_defaults(handler=command_genesis_add_member)
    show = actions.add_parser("show", help="summarise a genesis and print its chain_id")
    show.add_argument("genesis", help="the genesis file")
    show.set_defaults(handler=command_genesis_show)
    contracts = actions.add_parser(
        "contracts",
        help="list the contracts installed here (what --contract may name)",
        description="List the contracts installed in this Python environment: name, version, "
        "the package that provides it, and its entry point. Any of them may be named with "
        "--contract NAME of 'genesis create' and 'devnet up'. See docs/contracts.md.",
    )
    contracts.set_defaults(handler=command_genesis_contracts)


def _contract_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--contract",
        action="append",
        default=[],
        metavar="NAME[=VERSION]",
        help="also run this installed contract (repeat for each); VERSION defaults to the "
        "installed one, which it must be. membership and deeds are always listed; "
        "'sceau genesis contracts' lists what is installed",
    )


def _add_node_commands(commands: Any) -> None:
    node = commands.add_parser(
        "node",
        help="initialise and run a member node",
        description="Initialise and run a member's node. The "
        "configuration file is described in docs/operations.md.",
    )
    actions = node.add_subparsers(dest="node_command", metavar="ACTION", required=True)
    init = actions.add_parser("init", help="create the node's chain database from the genesis")
    init.add_argument("--config", required=True, help="the node's TOML configuration")
    init.set_defaults(handler=command_node_init)
    run = actions.add_parser("run", help="run the node until SIGINT/SIGTERM")
    run.add_argument("--config", required=True, help="the node's TOML configuration")
    run.set_defaults(handler=command_node_run)
    from node.tools.cli_chain import add_node_check

    add_node_check(actions)


def _add_devnet_commands(commands: Any) -> None:
    devnet = commands.add_parser(
        "devnet",
        help="run a local consortium for development",
        description="Run N member nodes as separate processes on "
        "loopback, with generated keys and a genesis.",
    )
    actions = devnet.add_subparsers(dest="devnet_command", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start a devnet and wait until it is ready")
    up.add_argument("--nodes", type=int, default=4, help="number of members (4 to 30)")
    up.add_argument(
        "--observers",
        type=int,
        default=0,
        help="observers to start too: read-only nodes that follow and verify the chain (0 to 10)",
    )
    up.add_argument(
        "--issuers",
        type=int,
        default=0,
        metavar="N",
        help="then admit N issuers (0 to 10,000) by governance through the members' APIs: "
        "communes commune-0001 … with their own keys (DIR/issuers/<id>.pem) and SIRETs, "
        "listed in DIR/issuers.json; proposals of 50, each voted by 3 of 4 members: about 10 s "
        "for 1,000 issuers on 2 cores, 3 minutes for 10,000 (each node executes every admission)",
    )
    up.add_argument(
        "--witness",
        action="append",
        default=[],
        metavar="NAME",
        help="also run a witness NAME (e.g. prefecture; repeat for more, up to 5): a 'sceau "
        "witness run' process in DIR/witness-NAME that every member pushes its checkpoints to; "
        "its vkey is printed, for 'sceau verify --witness NAME=VKEY'. See docs/witnesses.md",
    )
    up.add_argument("--dir", required=True, help="a new folder for keys, configs, data, logs")
    _contract_option(up)
    up.set_defaults(handler=command_devnet_up)
    down = actions.add_parser(
        "down",
        help="stop the devnet recorded in DIR",
        description="Stop every node and witness recorded in DIR/devnet.json, and any node "
        "run by hand with one of DIR's member configurations; say which were stopped and which "
        "recorded ones were not (already gone).",
    )
    down.add_argument("--dir", required=True, help="the devnet's folder")
    down.set_defaults(handler=command_devnet_down)


def _add_client_commands(commands: Any) -> None:
    status = commands.add_parser("status", help="show a node's status (height, view, peers)")
    _api_options(status, signer=False)
    status.set_defaults(handler=command_status)

    anchor = commands.add_parser(
        "anchor",
        help="anchor a document as an act (hashes it locally, waits for commit)",
        description="Hash FILE locally (the document never leaves this machine), submit its "
        "SHA-256 with the act's metadata, wait for commit and save the receipt. With --batch "
        "CSV, the same for every document the CSV lists, in few requests.",
    )
    from contracts import deeds

    anchor.add_argument("file", nargs="?", help="the document (PDF, …)")
    anchor.add_argument(
        "--batch",
        metavar="CSV",
        help="anchor several documents (a session's acts): a UTF-8 CSV whose first line names "
        "its columns: file, reference, title, and optionally kind, date, legal_basis, url "
        "(default: --kind, --date, --legal-basis, --url); a file's path is relative to the "
        "CSV's folder; each receipt goes to FILE.receipt.json beside its document. Instead of "
        "FILE, --reference, --title and --receipt",
    )
    anchor.add_argument(
        "--issuer",
        required=True,
        help="the id of the member or admitted issuer the act is issued by ('sceau issuer list')",
    )
    anchor.add_argument(
        "--reference",
        help=f"the issuer's reference, e.g. 2026-DEL-042: 1 to {deeds.REFERENCE_CHARACTERS_MAX} "
        "characters of A-Z a-z 0-9 . _ / -",
    )
    anchor.add_argument("--kind", choices=ACT_KINDS, help="the kind of act")
    anchor.add_argument(
        "--date",
        type=_calendar_date,
        help=f"the act's date, YYYY-MM-DD, from {ACT_DATE_FIRST} to {ACT_DATE_LAST}",
    )
    anchor.add_argument(
        "--title",
        help=f"public title, 1 to {deeds.TITLE_CHARACTERS_MAX} characters (no personal data)",
    )
    anchor.add_argument(
        "--legal-basis",
        help=f"legal basis (optional), at most {deeds.LEGAL_BASIS_CHARACTERS_MAX} characters",
    )
    anchor.add_argument(
        "--url",
        help="http(s) URL of the published document (optional), at most "
        f"{deeds.URL_CHARACTERS_MAX} characters",
    )
    data = anchor.add_argument_group(
        "deliberation data (a deliberation only; what SCDL open data publishes)",
        "Optional, each checked as the deeds contract (1.1) checks it. Counts and subjects, "
        "never names: nothing personal goes on chain (docs/contracts.md).",
    )
    data.add_argument(
        "--subject-code",
        metavar="CODE",
        help="its ACTES subject, e.g. 7.5 (1.1-1.7, 2.1-2.3, 3.1-3.6, 4.1-4.5, 5.1-5.8, "
        "6.1-6.5, 7.1-7.10, 8.1-8.9, 9.1-9.4)",
    )
    data.add_argument(
        "--subject-name",
        metavar="TEXT",
        help="the subject's name, e.g. 'finances locales/subventions' (at most "
        f"{deeds.SUBJECT_NAME_CHARACTERS_MAX} characters)",
    )
    data.add_argument(
        "--votes",
        type=_votes,
        metavar="COUNTS",
        help="entitled=N,cast=N,for=N,against=N,abstention=N: members entitled to vote, "
        "present or represented, for, against, abstaining",
    )
    data.add_argument("--budget-year", metavar="YEAR", help="the budget year, 2026 or 2026/2027")
    data.add_argument(
        "--budget-name",
        metavar="TEXT",
        help="the budget it affects, e.g. 'budget principal' (with --budget-year)",
    )
    data.add_argument(
        "--control-entity",
        metavar="ID",
        help="who received it for the control of legality: PREFNNN, SPREFNNNM or SGARNNN "
        "(NNN the département on three characters, 075 or 02A)",
    )
    data.add_argument(
        "--control-date",
        type=_calendar_date,
        metavar="DATE",
        help="when they received it, YYYY-MM-DD (with --control-entity)",
    )
    anchor.add_argument(
        "--receipt",
        metavar="PATH",
        help="where to save the receipt (default FILE.receipt.json); its folder must exist, "
        "and it must not exist unless --force is given (checked before submitting)",
    )
    anchor.add_argument("--force", action="store_true", help="replace an existing receipt file")
    _wait_option(anchor)
    _api_options(anchor, signer=True)
    anchor.set_defaults(handler=command_anchor)

    act = commands.add_parser("act", help="look up acts and change their status")
    actions = act.add_subparsers(dest="act_command", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="show an act by issuer and reference")
    show.add_argument("issuer")
    show.add_argument("reference")
    show.add_argument("--history", action="store_true", help="also show its history")
    _api_options(show, signer=False)
    show.set_defaults(handler=command_act_show)
    find = actions.add_parser("find", help="is this document an anchored act? which status?")
    group = find.add_mutually_exclusive_group(required=True)
    group.add_argument("--file", help="the document to look up (hashed locally)")
    group.add_argument("--digest", help="its SHA-256 in hex")
    _api_options(find, signer=False)
    find.set_defaults(handler=command_act_find)
    status_change = actions.add_parser("status", help="amend, supersede, withdraw or annul")
    status_change.add_argument("issuer")
    status_change.add_argument("reference")
    status_change.add_argument("--amend-by", metavar="REFERENCE", help="amended by that act")
    status_change.add_argument("--supersede-by", metavar="REFERENCE", help="superseded by that act")
    status_change.add_argument(
        "--withdraw",
        metavar="REASON",
        help=f"withdrawn, for REASON (1 to {deeds.REASON_CHARACTERS_MAX} characters)",
    )
    status_change.add_argument(
        "--annul",
        metavar="REASON",
        help=f"annulled, for REASON (1 to {deeds.REASON_CHARACTERS_MAX} characters)",
    )
    status_change.add_argument(
        "--decision-reference",
        help="the annulling decision (optional), at most "
        f"{deeds.DECISION_REFERENCE_CHARACTERS_MAX} characters",
    )
    _wait_option(status_change)
    _api_options(status_change, signer=True)
    status_change.set_defaults(handler=command_act_status)

    verify = commands.add_parser(
        "verify",
        help="check a receipt or a .tlog-proof offline from the genesis (and a document)",
        description="Check every link of a receipt — member sets from the genesis, the block's "
        "commit certificate, the transaction's inclusion proof and signature, and optionally "
        "the act's later status — with nothing but the genesis file. With --document, also "
        "check that the file's SHA-256 is the anchored digest. A .tlog-proof file ('sceau "
        "proof') is checked the same way: the member sets, a quorum of them signing the "
        "checkpoint, the entry's inclusion under its root. With --witness, the checkpoint (a "
        "receipt's 'log' field) must also carry the cosignatures of at least --witness-quorum "
        "of the named witnesses. Exits 1 if anything fails.",
    )
    verify.add_argument(
        "receipt",
        metavar="FILE",
        help="the receipt (JSON, or canonical msgpack), or a .tlog-proof file ('sceau proof')",
    )
    verify.add_argument("--genesis", required=True, help="the consortium's genesis file")
    verify.add_argument("--document", metavar="FILE", help="the document the act anchors")
    from node.tools.cli_proof import add_proof_command
    from node.tools.conventions import add_witness_options

    add_witness_options(verify, what="the receipt's or the proof's checkpoint")
    verify.set_defaults(handler=command_verify)
    add_proof_command(commands, lambda handler: handler)

    receipt = commands.add_parser(
        "receipt",
        help="fetch a committed transaction's receipt from a node and save it",
        description="Ask a member node for the receipt of a committed transaction and print "
        "it (JSON), or save it with --out. With --with-status, the receipt of an anchor also "
        "proves the act's status at the node's tip. Check it offline with 'sceau verify'. "
        "Exits 1 if the transaction is not committed (pending, rejected).",
    )
    receipt.add_argument("tx_id", metavar="TX_ID", help="the transaction id (64 hex digits)")
    receipt.add_argument(
        "--with-status",
        action="store_true",
        help="for an anchor: also prove the act's current status (its record at the tip)",
    )
    receipt.add_argument(
        "--out", metavar="PATH", help="save the receipt there (its folder must exist)"
    )
    receipt.add_argument("--force", action="store_true", help="replace an existing --out file")
    _api_options(receipt, signer=False)
    receipt.set_defaults(handler=command_receipt)

    digest = commands.add_parser("hash", help="print a file's SHA-256 (what anchoring uses)")
    digest.add_argument("file")
    digest.set_defaults(handler=command_hash)


# --- any contract's query ---------------------------------------------------------------------


def command_query(arguments: argparse.Namespace) -> int:
    """``sceau query CONTRACT PATH``: print the answer document; a 404 or 400 exits 1.

    With ``--genesis``, the answer's proof is checked offline against that genesis, and the
    answer recomputed from the proven reads when the contract is installed here.
    """
    from ledger.client import ApiError

    with _client(arguments, signer=False) as client:
        try:
            document = client.query(
                arguments.contract,
                arguments.path,
                proof=arguments.proof or arguments.genesis is not None,
            )
        except ApiError as error:
            if error.status in (400, 404):
                print(f"{error.code}: {error.detail}", file=sys.stderr)
                return EXIT_CHECK_FAILED
            raise _answer_error(error) from None
    _print_json(document)
    if arguments.genesis is None:
        return 0
    return _verify_query(document, Path(arguments.genesis))


def _verify_query(document: dict[str, Any], genesis_path: Path) -> int:
    from contracts.registry import ContractLoadError, load_contracts
    from ledger.queryproof import QueryProof, QueryProofError, verify_query_proof
    from node.tools.launch import StartupError, read_genesis

    try:
        genesis = read_genesis(genesis_path)
    except StartupError as error:
        raise CommandError(str(error)) from None
    try:
        proof = QueryProof.model_validate_json(json.dumps(document.get("proof")))
    except ValueError as error:
        print(
            f"NOT VERIFIED — the answer carries no valid proof: {_first_error(error)}",
            file=sys.stderr,
        )
        return EXIT_CHECK_FAILED
    contract = None
    if proof.complete:
        try:
            # Only the contract asked (and membership, which a genesis always pins), as pinned.
            wanted = [c for c in genesis.contracts if c.name in (proof.contract, "membership")]
            pinned = genesis.model_copy(update={"contracts": tuple(wanted)})
            contract = load_contracts(pinned).get(proof.contract)
        except ContractLoadError:
            contract = None  # the values are still proven; the answer is then the node's word
    try:
        verified = verify_query_proof(proof, genesis, contract=contract)
    except QueryProofError as error:
        print(f"NOT VERIFIED — {error}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    how = (
        "the answer recomputed from them with the installed contract"
        if verified.answer_recomputed
        else "the answer not recomputed (the query scanned, or its contract is not installed)"
    )
    print(
        f"VERIFIED against the genesis of {genesis.consortium!r}: {len(verified.reads)} state "
        f"value(s) proven at height {verified.height}, {how}",
        file=sys.stderr,
    )
    return 0


def _add_query_command(commands: Any) -> None:
    query = commands.add_parser(
        "query",
        help="ask any contract's query at the tip (GET /v1/query/CONTRACT/PATH)",
        description="Print a contract's answer to a query, read at the node's tip, as JSON "
        "(bytes as hex): {height, contract, path, answer}. Exit 1 with the problem's code if "
        "nothing is at PATH, the contract is not run, or PATH is malformed.",
    )
    query.add_argument("contract", help="a contract the consortium runs (membership, deeds, ...)")
    query.add_argument(
        "path",
        help="the contract's query path, e.g. members, delegations/MEMBER, act/ISSUER/REFERENCE, "
        "'acts/ISSUER?from=2026-01-01&limit=10'",
    )
    query.add_argument(
        "--proof",
        action="store_true",
        help="add a proof of the state values the query read, against the certified tip",
    )
    query.add_argument(
        "--genesis",
        metavar="FILE",
        help="check the proof offline against this genesis (implies --proof): VERIFIED or "
        "NOT VERIFIED on stderr, exit 1 if not",
    )
    _api_options(query, signer=False)
    query.set_defaults(handler=command_query)


def _version() -> str:
    try:
        return metadata.version("sceau")
    except metadata.PackageNotFoundError:
        return "unknown"


class _WarningsOnStderr(logging.Handler):
    """Prints the library's warnings (a key file others may read, …) as ``sceau: warning:``
    lines; ``node run`` logs them with the rest of its log instead."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"sceau: warning: {record.getMessage()}", file=sys.stderr)


def _show_warnings() -> None:
    logger = logging.getLogger("sceau")
    if not any(isinstance(handler, _WarningsOnStderr) for handler in logger.handlers):
        handler = _WarningsOnStderr(logging.WARNING)
        logger.addHandler(handler)
        logger.setLevel(min(logger.getEffectiveLevel(), logging.WARNING))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    if arguments.handler is not command_node_run and not getattr(
        arguments.handler, "logs_itself", False
    ):  # a daemon logs its warnings with the rest of its log
        _show_warnings()
    try:
        return arguments.handler(arguments)
    except CommandError as error:
        print(f"sceau: error: {error}", file=sys.stderr)
        return getattr(error, "exit_status", EXIT_USAGE)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `sceau status | head`: the reader went away, nothing to say
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
