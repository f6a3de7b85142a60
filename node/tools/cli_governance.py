"""``sceau issuer`` and ``sceau governance``: issuers and the members' votes, for people.

How a commune joins the consortium as an issuer (docs/operations.md, "Issuers: how a commune
joins"): it makes its own key (``sceau key generate``) and sends its public key, SIRET and
name to a member; the member proposes its admission (``sceau issuer admit``, or a territory's
communes at once from a CSV file); the other members vote (``sceau governance vote``); from
the block after the deciding vote, the commune anchors acts in its own name
(``sceau anchor --issuer ID --key commune.pem``) through any member's API, delegates roles
to its records system (``sceau issuer delegate``) and rotates its key
(``sceau issuer rotate-key``). Members suspend, reinstate and remove an issuer by the same
votes.

Every command talks to members' APIs with the client library (ledger/client.py) and keeps the
CLI's conventions (node/tools/conventions.py): 0 on success; 1 when the consortium refused a
transaction (its code and reason on stderr); 2 with one ``sceau: error:`` line when the
command cannot run as asked (a bad argument, a bad CSV row: nothing is sent); 3 when no
member confirmed a commit in time (it may still commit).
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.tools.conventions import EXIT_CHECK_FAILED, CommandError

__all__ = [
    "CSV_BYTES_MAX",
    "CSV_ROWS_MAX",
    "CommandParts",
    "add_governance_commands",
    "read_issuers_csv",
]

CSV_COLUMNS = ("id", "name", "siret", "public_key")
CSV_BYTES_MAX = 4 * 1024 * 1024
"""The largest CSV file ``issuer admit --csv`` reads (5,000 rows of about 200 bytes fit)."""
CSV_ROWS_MAX = 5_000
"""Issuers one CSV file admits at most (the client's ISSUERS_PER_CALL_MAX: 100 proposals)."""
ISSUERS_PAGE_DEFAULT = 100
"""The page a node answers without ``--limit`` (the membership contract's default)."""
BAD_ROWS_SHOWN_MAX = 50
"""Bad rows named one by one; past that, their count only."""

# --- what node/tools/cli.py lends these commands ------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandParts:
    """The pieces of node/tools/cli.py that every client command shares (its ``--api`` and
    ``--wait`` options, its client, its one-line errors), handed in by cli.py when it
    registers these commands: cli.py imports this module, so this module never imports it
    back (tests/test_architecture.py forbids import cycles)."""

    api_options: Callable[..., None]
    """``api_options(parser, signer=bool)``: --api, --ca-file (and --key, --passphrase-file)."""
    wait_option: Callable[[argparse.ArgumentParser], None]
    client: Callable[..., Any]
    """``client(arguments, signer=bool)``: the client library's Client for those options."""
    api_call: Callable[[Callable[[], Any]], Any]
    """Call; a node's error answer becomes a one-line CommandError."""
    rejection_or: Callable[[Callable[[], Any]], dict[str, Any]]
    """Call a write; a refusal becomes a ``{"status": "rejected", …}`` outcome."""
    print_rejection: Callable[[dict[str, Any]], int]
    load_key: Callable[[str, str | None], Any]


def _parts(arguments: argparse.Namespace) -> CommandParts:
    parts = arguments.parts
    assert isinstance(parts, CommandParts), "add_governance_commands sets it on every command"
    return parts


def _print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, ensure_ascii=False))


def _principal(text: str) -> str:
    """An argparse type: a member's or an issuer's id."""
    from ledger.client import InvalidArgument, _principal

    try:
        return _principal(text, "id")
    except InvalidArgument as error:
        raise argparse.ArgumentTypeError(error.why) from None


def _public_key(text: str) -> bytes:
    """An argparse type: an Ed25519 public key, ``ed25519:…`` as ``sceau key show`` prints it."""
    from ledger.client import InvalidArgument, _public_key

    try:
        return _public_key(text, "key")
    except InvalidArgument as error:
        raise argparse.ArgumentTypeError(error.why) from None


def _proposal_id(text: str) -> str:
    if len(text) != 64 or any(char not in "0123456789abcdef" for char in text.lower()):
        raise argparse.ArgumentTypeError("a proposal id is 64 hex digits")
    return text.lower()


def _positive(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 2**63 - 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}")
    return int(text)


def _write(arguments: argparse.Namespace, call: Any) -> dict[str, Any] | None:
    """Run the write ``call(client)`` with the command's signer; its committed outcome, or
    None after printing the consortium's refusal (exit status 1)."""
    parts = _parts(arguments)
    with parts.client(arguments, signer=True) as client:
        outcome = parts.rejection_or(lambda: call(client))
    if outcome.get("status") == "rejected":
        parts.print_rejection(outcome)
        return None
    return outcome


def _read(arguments: argparse.Namespace, call: Any) -> Any:
    parts = _parts(arguments)
    with parts.client(arguments, signer=False) as client:
        return parts.api_call(lambda: call(client))


def _proposal_line(outcome: dict[str, Any]) -> str:
    """What a proposal's or a vote's committed outcome says: passed (in force from which
    height), rejected, or open (waiting for votes)."""
    result = outcome.get("result") or {}
    status = result.get("status")
    proposal_id = result.get("proposal_id") or outcome.get("proposal_id")
    if status == "passed":
        return (
            f"proposal {proposal_id}: passed at height {outcome.get('height')}; the change is "
            f"in force from height {result.get('effective_height')}"
        )
    if status == "rejected":
        return f"proposal {proposal_id}: rejected at height {outcome.get('height')}"
    if status == "open":
        return f"proposal {proposal_id}: open, waiting for the other members' votes"
    return f"proposal {proposal_id}: vote committed at height {outcome.get('height')}"


def _vote_hint(proposal_id: str) -> str:
    return (
        f"  the other members vote with: sceau governance vote {proposal_id} --yes "
        "--member THEIR_ID --key THEIR_KEY.pem"
    )


# --- sceau issuer list / show ------------------------------------------------------------------


def command_issuer_list(arguments: argparse.Namespace) -> int:
    issuers = _read(
        arguments, lambda client: client.issuers(after=arguments.after, limit=arguments.limit)
    )
    if arguments.json:
        _print_json(issuers)
        return 0
    for issuer in issuers:
        siret = issuer.get("siret") or "-"
        print(f"{issuer['id']:<32} {issuer['status']:<10} {siret:<15} {issuer['name']}")
    if not issuers:
        print("no issuer" + (f" after {arguments.after}" if arguments.after else ""))
    elif len(issuers) == (arguments.limit or ISSUERS_PAGE_DEFAULT):
        print(f"(next page: sceau issuer list --after {issuers[-1]['id']})", file=sys.stderr)
    return 0


def command_issuer_show(arguments: argparse.Namespace) -> int:
    _print_json(_read(arguments, lambda client: client.issuer(arguments.issuer)))
    return 0


# --- sceau issuer admit ------------------------------------------------------------------------


def read_issuers_csv(path: str) -> list[dict[str, Any]]:
    """The issuers of a CSV file of ``id,name,siret,public_key`` rows (a header row with
    those names first is allowed; an empty siret is none), every row checked as the
    membership contract checks it, ids and keys once each.

    Raises CommandError naming every bad row, one line each (``issuers.csv line 7: siret: a
    SIRET is 14 digits``), so that nothing is sent until the whole file is right.
    """
    from ledger.client import InvalidArgument, check_issuer_application

    text = _read_csv_text(path)
    checked: list[dict[str, Any]] = []
    problems: list[str] = []
    seen: dict[tuple[str, Any], int] = {}
    for line, row in _csv_rows(text):
        if [cell.strip().lower() for cell in row] == list(CSV_COLUMNS) and not checked:
            continue  # the header
        if len(row) != len(CSV_COLUMNS):
            problems.append(
                f"{path} line {line}: expected 4 fields id,name,siret,public_key, got {len(row)}"
            )
            continue
        identifier, name, siret, public_key = (cell.strip() for cell in row)
        entry = {"id": identifier, "name": name, "siret": siret or None, "public_key": public_key}
        try:
            issuer = check_issuer_application(entry, "row")
        except InvalidArgument as error:
            problems.append(f"{path} line {line}: {error.field.removeprefix('row.')}: {error.why}")
            continue
        duplicate = next(
            (
                f"{path} line {line}: {label} {shown} is already on line {seen[(label, value)]}"
                for label, value, shown in (
                    ("id", issuer["id"], issuer["id"]),
                    ("public_key", issuer["public_key"], public_key),
                )
                if (label, value) in seen
            ),
            None,
        )
        if duplicate is not None:
            problems.append(duplicate)
            continue
        seen[("id", issuer["id"])] = seen[("public_key", issuer["public_key"])] = line
        checked.append(issuer)
    if len(checked) + len(problems) > CSV_ROWS_MAX:
        raise CommandError(f"{path}: more than {CSV_ROWS_MAX} issuers; split the file")
    if problems:
        shown = problems[:BAD_ROWS_SHOWN_MAX]
        more = len(problems) - len(shown)
        lines = [*shown, *([f"… and {more} more bad rows"] if more else [])]
        raise CommandError(
            f"{len(problems)} bad row(s) in {path}; nothing was sent:\n" + "\n".join(lines)
        )
    if not checked:
        raise CommandError(f"{path} holds no issuer (rows of id,name,siret,public_key)")
    return checked


def _read_csv_text(path: str) -> str:
    try:
        with Path(path).open("rb") as file:
            data = file.read(CSV_BYTES_MAX + 1)
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror}") from None
    if len(data) > CSV_BYTES_MAX:
        raise CommandError(f"{path} is larger than {CSV_BYTES_MAX // (1024 * 1024)} MiB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise CommandError(f"{path} is not UTF-8 text (byte {error.start})") from None


def _csv_rows(text: str) -> list[tuple[int, list[str]]]:
    """The non-blank rows of ``text`` with their line numbers (a quoted name may hold a comma)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = []
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append((reader.line_num, row))
    except csv.Error as error:
        raise CommandError(f"line {reader.line_num}: not CSV ({error})") from None
    return rows


def command_issuer_admit(arguments: argparse.Namespace) -> int:
    from ledger.client import (
        ISSUERS_PER_PROPOSAL_MAX,
        InvalidArgument,
        SceauError,
        check_issuer_application,
    )

    if arguments.csv is not None:
        if any(getattr(arguments, name) is not None for name in ("id", "name", "siret")):
            raise CommandError("give either --csv FILE or --id, --name and --public-key")
        issuers = read_issuers_csv(arguments.csv)
    else:
        missing = [
            option
            for option, value in (("--id", arguments.id), ("--name", arguments.name))
            if value is None
        ] + (["--public-key"] if arguments.public_key is None else [])
        if missing:
            raise CommandError(f"give {', '.join(missing)} (or --csv FILE)")
        entry = {
            "id": arguments.id,
            "name": arguments.name,
            "siret": arguments.siret,
            "public_key": arguments.public_key,
        }
        try:
            issuers = [check_issuer_application(entry, "issuer")]
        except InvalidArgument as error:
            option = "--" + error.field.removeprefix("issuer.").replace("_", "-")
            raise CommandError(f"{option}: {error.why}") from None
    parts = _parts(arguments)
    with parts.client(arguments, signer=True) as client:
        try:
            proposal_ids = client.admit_issuers(arguments.member, issuers, wait_s=arguments.wait)
        except SceauError as error:
            for made in getattr(error, "proposal_ids", []):
                print(f"proposal {made}: made before the error")
            # Classified as every write's error is: a refusal, a commit not confirmed, …
            outcome = parts.rejection_or(functools.partial(_reraise, error))
            assert outcome.get("status") == "rejected", outcome
            return parts.print_rejection(outcome)
        states = {p["proposal_id"]: p for p in parts.api_call(client.proposals)}
    for index, proposal_id in enumerate(proposal_ids):
        start = index * ISSUERS_PER_PROPOSAL_MAX
        chunk = issuers[start : start + ISSUERS_PER_PROPOSAL_MAX]
        names = chunk[0]["id"] + (f" … {chunk[-1]['id']}" if len(chunk) > 1 else "")
        status = "open" if proposal_id in states else "passed"
        print(f"proposal {proposal_id}: admit {len(chunk)} issuer(s) ({names}): {status}")
        if status == "open":
            print(_vote_hint(proposal_id))
    return 0


def _reraise(error: BaseException) -> Any:
    raise error


# --- sceau issuer suspend / reinstate / remove ---------------------------------------------------


def command_issuer_status(arguments: argparse.Namespace) -> int:
    method = f"{arguments.issuer_command}_issuer"
    outcome = _write(
        arguments,
        lambda client: getattr(client, method)(
            arguments.member, arguments.issuer, wait_s=arguments.wait
        ),
    )
    if outcome is None:
        return EXIT_CHECK_FAILED
    print(_proposal_line(outcome))
    if (outcome.get("result") or {}).get("status") == "open":
        print(_vote_hint(outcome["proposal_id"]))
    return 0


# --- sceau issuer rotate-key / delegate / revoke (a principal's own key) -----------------------


def command_issuer_rotate_key(arguments: argparse.Namespace) -> int:
    if (arguments.new_key is None) == (arguments.new_public_key is None):
        raise CommandError("give the new key: --new-key PEM or --new-public-key ed25519:…")
    if arguments.new_key is not None:
        from ledger import crypto

        new_key = _parts(arguments).load_key(arguments.new_key, arguments.new_passphrase_file)
        new_public_key = crypto.public_key_bytes(new_key)
    else:
        new_public_key = arguments.new_public_key
    outcome = _write(
        arguments,
        lambda client: client.rotate_key(
            arguments.principal, new_public_key, wait_s=arguments.wait
        ),
    )
    if outcome is None:
        return EXIT_CHECK_FAILED
    print(
        f"{arguments.principal}: key rotated at height {outcome.get('height')}; the new key "
        f"signs from height {outcome.get('height', 0) + 1}, the old one no more"
    )
    return 0


def command_issuer_delegate(arguments: argparse.Namespace) -> int:
    from ledger import crypto
    from ledger.client import InvalidArgument, _roles

    try:
        roles = _roles(arguments.role)
    except InvalidArgument as error:
        raise CommandError(f"--role: {error.why}") from None
    outcome = _write(
        arguments,
        lambda client: client.delegate(
            arguments.principal,
            arguments.signer,
            roles,
            until=arguments.until,
            wait_s=arguments.wait,
        ),
    )
    if outcome is None:
        return EXIT_CHECK_FAILED
    until = f"until height {arguments.until}" if arguments.until else "until revoked"
    print(
        f"{arguments.principal}: {', '.join(roles)} delegated to "
        f"{crypto.public_key_to_text(arguments.signer)} {until} (height {outcome.get('height')})"
    )
    return 0


def command_issuer_revoke(arguments: argparse.Namespace) -> int:
    from ledger import crypto

    outcome = _write(
        arguments,
        lambda client: client.revoke(arguments.principal, arguments.signer, wait_s=arguments.wait),
    )
    if outcome is None:
        return EXIT_CHECK_FAILED
    print(
        f"{arguments.principal}: delegation to {crypto.public_key_to_text(arguments.signer)} "
        f"revoked at height {outcome.get('height')}"
    )
    return 0


# --- sceau governance proposals / vote -----------------------------------------------------------


def _change_summary(change: dict[str, Any]) -> str:
    kind = change.get("kind", "?")
    if kind == "admit_issuers":
        ids = [issuer.get("id", "?") for issuer in change.get("issuers", [])]
        shown = ", ".join(ids[:3]) + (f", … ({len(ids)} issuers)" if len(ids) > 3 else "")
        return f"admit_issuers {shown}"
    if kind in ("suspend_issuer", "reinstate_issuer", "remove_issuer"):
        return f"{kind} {change.get('issuer_id')}"
    if kind == "admit":
        return f"admit member {change.get('member', {}).get('id')}"
    if kind == "remove":
        return f"remove member {change.get('member_id')}"
    if kind == "set_parameters":
        values = change.get("parameters", {})
        return "set_parameters " + ", ".join(f"{k}={v}" for k, v in values.items())
    if kind == "set_member_siret":
        siret = change.get("siret")
        return f"set_member_siret {change.get('member_id')} " + (siret or "(cleared)")
    if kind == "schedule_format":
        return (
            f"schedule_format: header format {change.get('format_version')} from height "
            f"{change.get('height')}"
        )
    return kind


def command_governance_proposals(arguments: argparse.Namespace) -> int:
    proposals = _read(arguments, lambda client: client.proposals())
    if arguments.json:
        _print_json(proposals)
        return 0
    if not proposals:
        print("no open proposal")
    for proposal in proposals:
        print(f"{proposal['proposal_id']}  {_change_summary(proposal['change'])}")
        print(
            f"  proposed by {proposal['proposer']} at height {proposal['created_height']}, "
            f"expires after {proposal['expiry_height']}; yes: "
            f"{', '.join(proposal['yes_voters']) or '-'}; no: "
            f"{', '.join(proposal['no_voters']) or '-'}"
        )
    return 0


def command_governance_schedule_format(arguments: argparse.Namespace) -> int:
    outcome = _write(
        arguments,
        lambda client: client.schedule_format(
            arguments.member, arguments.version, arguments.height, wait_s=arguments.wait
        ),
    )
    if outcome is None:
        return EXIT_CHECK_FAILED
    print(
        f"schedule header format {arguments.version} from height {arguments.height}: "
        + _proposal_line(outcome)
    )
    if (outcome.get("result") or {}).get("status") == "open":
        print(_vote_hint(outcome["proposal_id"]))
    print(
        f"  every node must run a sceau that knows format {arguments.version} before height "
        f"{arguments.height} (sceau status shows the schedule and the formats a node knows)"
    )
    return 0


def command_governance_set_siret(arguments: argparse.Namespace) -> int:
    siret = None if arguments.clear else arguments.siret
    outcome = _write(
        arguments,
        lambda client: client.set_member_siret(
            arguments.member, arguments.member_id, siret, wait_s=arguments.wait
        ),
    )
    if outcome is None:
        return EXIT_CHECK_FAILED
    what = f"SIRET {siret}" if siret is not None else "no SIRET"
    print(f"{arguments.member_id}: {what}: " + _proposal_line(outcome))
    if (outcome.get("result") or {}).get("status") == "open":
        print(_vote_hint(outcome["proposal_id"]))
    return 0


def _siret(text: str) -> str:
    if not (len(text) == 14 and text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"a SIRET is 14 digits, not {text[:40]!r}")
    return text


def _format_version(text: str) -> int:
    if not text.isdigit() or not 2 <= int(text) <= 65_535:
        raise argparse.ArgumentTypeError(f"a header format is 2 to 65535, not {text!r}")
    return int(text)


def command_governance_vote(arguments: argparse.Namespace) -> int:
    outcome = _write(
        arguments,
        lambda client: client.vote(
            arguments.proposal_id, arguments.member, arguments.approve, wait_s=arguments.wait
        ),
    )
    if outcome is None:
        return EXIT_CHECK_FAILED
    print(f"{arguments.member} voted {'yes' if arguments.approve else 'no'}")
    print(_proposal_line(outcome))
    return 0


# --- the parsers -------------------------------------------------------------------------------


def _write_options(parser: argparse.ArgumentParser, parts: CommandParts) -> None:
    parts.wait_option(parser)
    parts.api_options(parser, signer=True)


def _member_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--member",
        required=True,
        type=_principal,
        metavar="ID",
        help=f"the member who {what} (--key: its node key, or a key it delegated "
        "membership.govern to)",
    )


def add_governance_commands(commands: Any, parts: CommandParts) -> None:
    """Register ``sceau issuer`` and ``sceau governance`` on ``commands`` (cli.py's), their
    handlers given ``parts`` (as ``arguments.parts``)."""
    _add_issuer_commands(commands, parts)
    _add_governance_commands(commands, parts)


def _add_issuer_commands(commands: Any, parts: CommandParts) -> None:
    issuer = commands.add_parser(
        "issuer",
        help="issuers (communes that run no node): list, admit, suspend, their keys",
        description="Issuers are collectivities admitted by the members' vote to anchor acts "
        "in their own name with their own key; they run no node and never vote. "
        "See docs/operations.md, 'Issuers: how a commune joins'.",
    )
    actions = issuer.add_subparsers(dest="issuer_command", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="list the issuers, in id order, a page at a time")
    listing.add_argument(
        "--after", type=_principal, metavar="ID", help="start after this id (the next page)"
    )
    listing.add_argument(
        "--limit", type=_positive, metavar="N", help="at most N issuers (1 to 1000; default 100)"
    )
    listing.add_argument("--json", action="store_true", help="print the issuers as JSON")
    parts.api_options(listing, signer=False)
    listing.set_defaults(handler=command_issuer_list, parts=parts)

    show = actions.add_parser("show", help="show one issuer: name, SIRET, key, status")
    show.add_argument("issuer", type=_principal, metavar="ID")
    parts.api_options(show, signer=False)
    show.set_defaults(handler=command_issuer_show, parts=parts)

    admit = actions.add_parser(
        "admit",
        help="propose the admission of an issuer, or of a CSV file's issuers",
        description="Propose to admit one issuer (--id, --name, --public-key, optionally "
        "--siret), or every issuer of a CSV file of id,name,siret,public_key rows (a header "
        "row is allowed; an empty siret is none), in proposals of 50. Every row is checked "
        "before anything is sent; each bad row is named on its own line. Prints each "
        "proposal's id for the other members' votes ('sceau governance vote').",
    )
    _member_option(admit, "proposes")
    admit.add_argument("--csv", metavar="FILE", help="the issuers to admit, one per row")
    admit.add_argument("--id", metavar="ID", help="the issuer's id, e.g. commune-bellecombe")
    admit.add_argument("--name", help="its public name, e.g. 'Commune de Bellecombe'")
    admit.add_argument("--siret", help="its SIRET, 14 digits (optional)")
    admit.add_argument(
        "--public-key",
        metavar="KEY",
        help="its public key, ed25519:… (what 'sceau key show' prints on its machine)",
    )
    _write_options(admit, parts)
    admit.set_defaults(handler=command_issuer_admit, parts=parts)

    for action, what in (
        ("suspend", "suspend an active issuer: none of its keys signs until reinstated"),
        ("reinstate", "reinstate a suspended issuer"),
        ("remove", "remove an issuer for good (its acts stay; its id is never given again)"),
    ):
        change = actions.add_parser(
            action,
            help=f"propose to {what}",
            description=f"Propose to {what}. The proposer's vote counts; the other members "
            "vote with 'sceau governance vote'.",
        )
        change.add_argument("issuer", type=_principal, metavar="ID", help="the issuer's id")
        _member_option(change, "proposes")
        _write_options(change, parts)
        change.set_defaults(handler=command_issuer_status, parts=parts)

    _add_own_key_commands(actions, parts)


def _add_own_key_commands(actions: Any, parts: CommandParts) -> None:
    principal_help = "the issuer's (or member's) id"
    signed_by = " Signed with --key, the principal's own key in force."
    rotate = actions.add_parser(
        "rotate-key",
        help="replace an issuer's (or member's) own key",
        description="Replace ID's own key by a new one, from the next block." + signed_by,
    )
    rotate.add_argument("principal", type=_principal, metavar="ID", help=principal_help)
    rotate.add_argument("--new-key", metavar="PEM", help="the new private key file")
    rotate.add_argument("--new-passphrase-file", metavar="FILE", help="--new-key's passphrase")
    rotate.add_argument(
        "--new-public-key", type=_public_key, metavar="KEY", help="or the new public key, ed25519:…"
    )
    _write_options(rotate, parts)
    rotate.set_defaults(handler=command_issuer_rotate_key, parts=parts)

    delegate = actions.add_parser(
        "delegate",
        help="delegate roles to an application's key (a records system, say)",
        description="Let the key SIGNER act for ID with the given roles (deeds.issue to anchor, "
        "deeds.status to change an act's status), until --until or until revoked." + signed_by,
    )
    delegate.add_argument("principal", type=_principal, metavar="ID", help=principal_help)
    delegate.add_argument(
        "--signer",
        required=True,
        type=_public_key,
        metavar="KEY",
        help="the application's public key, ed25519:…",
    )
    delegate.add_argument(
        "--role",
        action="append",
        required=True,
        metavar="ROLE",
        help="a role, contract.action (repeat for each): deeds.issue, deeds.status",
    )
    delegate.add_argument(
        "--until", type=_positive, metavar="HEIGHT", help="the last height it holds (default: none)"
    )
    _write_options(delegate, parts)
    delegate.set_defaults(handler=command_issuer_delegate, parts=parts)

    revoke = actions.add_parser(
        "revoke",
        help="revoke what was delegated to a key",
        description="Revoke every role ID delegated to the key SIGNER." + signed_by,
    )
    revoke.add_argument("principal", type=_principal, metavar="ID", help=principal_help)
    revoke.add_argument(
        "--signer", required=True, type=_public_key, metavar="KEY", help="the key, ed25519:…"
    )
    _write_options(revoke, parts)
    revoke.set_defaults(handler=command_issuer_revoke, parts=parts)


def _add_governance_commands(commands: Any, parts: CommandParts) -> None:
    governance = commands.add_parser(
        "governance",
        help="the members' open proposals, and their votes",
        description="Members decide changes (admitting and removing members and issuers, "
        "parameters, the chain's header format) by vote; a change passes with the threshold "
        "of the members (3 of 4 by default) and is in force from the block after the deciding "
        "vote.",
    )
    actions = governance.add_subparsers(dest="governance_command", metavar="ACTION", required=True)
    proposals = actions.add_parser("proposals", help="list the open proposals and their votes")
    proposals.add_argument("--json", action="store_true", help="print them as JSON")
    parts.api_options(proposals, signer=False)
    proposals.set_defaults(handler=command_governance_proposals, parts=parts)

    scheduling = actions.add_parser(
        "schedule-format",
        help="propose to move the chain to a later header format at a height",
        description="Propose that the chain's blocks use header format VERSION from block "
        "HEIGHT on (membership 1.2). Upgrade sceau on every node first: a node whose software "
        "does not know the format stops at HEIGHT - 1. Proposing the same version again with "
        "another height moves a schedule not in force yet.",
    )
    scheduling.add_argument(
        "--version", required=True, type=_format_version, metavar="V", help="the header format"
    )
    scheduling.add_argument(
        "--height",
        required=True,
        type=_positive,
        metavar="H",
        help="the first block of that format (after the block that passes the proposal)",
    )
    _member_option(scheduling, "proposes")
    _write_options(scheduling, parts)
    scheduling.set_defaults(handler=command_governance_schedule_format, parts=parts)

    setting = actions.add_parser(
        "set-siret",
        help="propose to set or clear a member's SIRET (membership 1.3)",
        description="Propose that the member MEMBER_ID's SIRET be SIRET (14 digits), or none "
        "with --clear. Open-data exports (sceau export acts --format scdl-deliberations) name "
        "a collectivity by its SIRET. A chain that pins membership 1.2 or earlier refuses it.",
    )
    setting.add_argument("member_id", type=_principal, metavar="MEMBER_ID")
    value = setting.add_mutually_exclusive_group(required=True)
    value.add_argument("--siret", type=_siret, help="the member's SIRET, 14 digits")
    value.add_argument("--clear", action="store_true", help="the member has no SIRET any more")
    _member_option(setting, "proposes")
    _write_options(setting, parts)
    setting.set_defaults(handler=command_governance_set_siret, parts=parts)

    vote = actions.add_parser(
        "vote",
        help="vote on an open proposal",
        description="Vote yes or no on an open proposal; prints whether it passed and the "
        "height from which its change is in force.",
    )
    vote.add_argument("proposal_id", type=_proposal_id, metavar="PROPOSAL_ID")
    choice = vote.add_mutually_exclusive_group(required=True)
    choice.add_argument("--yes", dest="approve", action="store_true", help="approve")
    choice.add_argument("--no", dest="approve", action="store_false", help="refuse")
    _member_option(vote, "votes")
    _write_options(vote, parts)
    vote.set_defaults(handler=command_governance_vote, parts=parts)
