"""The client library: what an application uses to anchor acts and look them up.

An application (a records-management system, an e-council tool, an open-data portal) holds a
*signer key* that a member delegated to it (roles such as ``deeds.issue``), and talks to the
HTTP API of one or, better, several member nodes. The library builds and signs transactions
locally — the key never leaves the application — submits them, carries them to their commit
and fetches receipts. It depends on nothing of ``node/``.

Two front ends share one implementation: :class:`AsyncClient` (aiohttp) and :class:`Client`,
its synchronous twin for scripts, which runs the same coroutines on a private event loop. Each
method of one has its twin in the other, with the same arguments and documentation.

Inputs are checked before anything is sent: a digest (a document's SHA-256, a transaction
id) is 32 bytes or 64 hex characters; an act date a ``datetime.date`` or ``YYYY-MM-DD``
text naming a real calendar date. Every error is a :class:`SceauError` with a stable
``code``: the node's problem code when a node answered (:class:`ApiError` and its
submission forms), or the client's own (``invalid_argument``, ``unreachable``,
``tls_mismatch``, ``not_a_sceau_api``, …) when it refused an input or found no sceau node at
an address. https:// endpoints are checked against the system's CAs, or ``ca_file``.

Example::

    from ledger.client import Client
    from ledger.crypto import load_private_key

    members = ["http://10.0.1.5:8700", "http://10.0.2.5:8700", "http://10.0.3.5:8700"]
    with Client(members, signer=load_private_key("app.pem")) as client:
        outcome = client.anchor_file(
            "deliberation-2026-042.pdf", issuer="metropole-valbrune",
            reference="2026-DEL-042", kind="deliberation", act_date="2026-11-28",
            title="Plan local d'urbanisme, révision 3",
        )
        print(outcome["status"], outcome["height"])   # always "committed" here
        print(client.acts_by_digest(outcome["digest"]))

Carrying a submission to its commit
-----------------------------------
A node that answers 202 ("pending") holds the transaction in its memory only: if it dies
before the transaction is in a block, the transaction is gone (a restarted node's mempool is
empty). A 202 is therefore no promise. What makes resubmission safe is the transaction id: a
signed transaction submitted again, to the same node or another, is the same transaction
(same ``tx_id``), committed at most once; a node that has committed it answers its commit.

So :meth:`AsyncClient.submit` with ``wait_s`` does not stop at the first answer. It sends
the signed transaction to one endpoint with ``?wait=`` (the node holds the answer until the
commit, at most :attr:`AsyncClient.retry_interval_s`); unless the answer is the commit, it
sends the same bytes to the next endpoint, and so on, until

* a node answers that it is **committed**: the status document (with its receipt) is
  returned — the only successful outcome;
* a node **rejects** it (4xx, e.g. a contract's ``duplicate_reference``): final, never
  retried: :class:`TransactionRejected`;
* a node whose chain has passed the transaction's ``expiry_height`` answers that it expired:
  it can never be committed: :class:`TransactionExpired`;
* the deadline ``wait_s`` passes: :class:`CommitNotConfirmed`, which says that the transaction
  may still commit until its expiry height and gives its id to look it up.

Connection errors, timeouts, 5xx answers and the "busy" refusals (429 ``rate_limited`` and
``signer_quota``, 503 ``mempool_full``) are retried on the next endpoint; after a whole round
of endpoints without any answer, or a 202 that came at once instead of after the wait, the
client backs off (:data:`BACKOFF_S_MAX` at most). A node that stays silent may hold one
attempt ``timeout_s`` past the deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import json
import logging
import os
import re
import secrets
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp
from pydantic import TypeAdapter, ValidationError

from ledger import crypto, encoding
from ledger.model import DisplayName, MemberId, ModelDecodeError, Siret, Transaction

__all__ = [
    "ACT_DATE_MAX",
    "ACT_DATE_MIN",
    "ANCHOR_FIELDS",
    "BATCH_TRANSACTIONS_MAX",
    "ISSUERS_PER_PROPOSAL_MAX",
    "ApiError",
    "AsyncClient",
    "Client",
    "CommitNotConfirmed",
    "InvalidArgument",
    "InvalidTransaction",
    "SceauError",
    "SubmissionError",
    "SubmissionEvent",
    "TransactionExpired",
    "TransactionRejected",
    "TransportError",
    "check_issuer_application",
    "digest_of_file",
]

log = logging.getLogger("sceau.client")

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_EXPIRY_BLOCKS = 1_000
DEFAULT_WAIT_S = 30.0
"""How long the write helpers (anchor, amend, …) carry a submission to its commit by default."""
WAIT_STEP_S_MAX = 30.0
"""The node's own bound on ``?wait=`` (node/api/limits.py WAIT_S_MAX)."""
RETRY_INTERVAL_S = 5.0
"""How long one endpoint is given to commit a submission (its ``?wait=``) before the same
transaction is sent to the next endpoint."""
BACKOFF_S_MIN = 0.05
BACKOFF_S_MAX = 1.0
"""After a whole round of endpoints without an answer, the client sleeps before the next
round: from BACKOFF_S_MIN, doubling, at most BACKOFF_S_MAX."""
ENDPOINTS_MAX = 64
"""Base URLs one client takes at most (a consortium has a few dozen members)."""
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""Answers that say "not now" rather than "never": the submission goes on elsewhere."""
BATCH_TRANSACTIONS_MAX = 1_000
"""Transactions one ``POST /v1/transactions/batch`` carries at most (the node's own bound,
node/api/limits.py): :meth:`AsyncClient.submit_many` splits a longer list."""
BATCH_BODY_BYTES_MAX = 1024 * 1024 - 16 * 1024
"""A batch request's body stays under a node's default ``api_body_bytes_max`` (1 MiB):
:meth:`AsyncClient.submit_many` starts a new request before a batch would reach it."""
BUSY_CODES = frozenset({"rate_limited", "mempool_full", "signer_quota"})
"""A batch's outcomes that say "not now": :meth:`AsyncClient.submit_many` with ``wait_s``
sends those transactions again."""
ANCHOR_FIELDS = (
    "issuer",
    "reference",
    "kind",
    "digest",
    "act_date",
    "title",
    "legal_basis",
    "url",
    "person_commitment",
    "deliberation",
)
"""The keys of one act given to :meth:`AsyncClient.anchor_many` (``anchor``'s arguments)."""
DIGEST_BYTES = 32
"""A SHA-256: document digests, person commitments and transaction ids."""
ACT_DATE_MIN = datetime.date.min
ACT_DATE_MAX = datetime.date.max
"""The act dates the deeds contract accepts: every calendar date written YYYY-MM-DD, so years
0001 to 9999. (The ``sceau`` command line may be stricter; the library refuses only what the
contract would refuse, early and with a clear message.)"""
PROBE_TIMEOUT_S = 2.0
"""How long the client tries a TLS handshake with an http:// endpoint that closed the
connection without answering, to tell an HTTPS node asked over HTTP from a dead one."""
PROBLEM_DETAIL_CHARACTERS_MAX = 300
"""What the client keeps of an answer that is not a JSON problem, for its message."""
ISSUERS_PER_PROPOSAL_MAX = 50
"""Issuers one ``admit_issuers`` proposal admits (the membership contract's own bound):
:meth:`AsyncClient.admit_issuers` splits a longer list into several proposals."""
ISSUERS_PER_CALL_MAX = 5_000
"""Issuers one :meth:`AsyncClient.admit_issuers` call takes (100 proposals): a territory's
communes, not a country's."""
ROLES_PER_DELEGATION_MAX = 16
ROLE_CHARACTERS_MAX = 40
"""A delegation's roles: 1 to 16 of them, each ``contract.action`` of at most 40 characters
(the membership contract's bounds, checked here before anything is sent)."""
HEIGHT_MAX = 2**63 - 1
T = TypeVar("T")

_DATE_TEXT = re.compile(r"([0-9]{1,8})-([0-9]{2})-([0-9]{2})")
_HEX_DIGEST = re.compile(rf"[0-9a-fA-F]{{{2 * DIGEST_BYTES}}}")
_ROLE = re.compile(r"[a-z]+\.[a-z_]+")
_PRINCIPAL_ID: TypeAdapter[str] = TypeAdapter(MemberId)
_DISPLAY_NAME: TypeAdapter[str] = TypeAdapter(DisplayName)
_SIRET: TypeAdapter[str] = TypeAdapter(Siret)
_ISSUER_FIELDS = ("id", "name", "siret", "public_key")
_ISSUER_STATUS_CHANGES = ("suspend_issuer", "reinstate_issuer", "remove_issuer")
DELIBERATION_FIELDS = (
    "subject_code",
    "subject_name",
    "votes",
    "budget_year",
    "budget_name",
    "control_entity",
    "control_date",
)
"""The deliberation data an ``anchor`` may carry from deeds 1.1 (docs/contracts.md); the node
checks each value and names the one it refuses."""
VOTE_COUNTS = ("entitled", "cast", "for", "against", "abstention")
_STATUS_CHANGES: dict[str, tuple[str, ...]] = {
    "amend": ("by_reference",),
    "supersede": ("by_reference",),
    "withdraw": ("reason", "decision_reference"),
    "annul": ("reason", "decision_reference"),
}
"""Each status change of the deeds contract and the arguments it takes besides the act's
issuer and reference, the required one first."""


# --- errors -----------------------------------------------------------------------------------


class SceauError(Exception):
    """Every error the client library raises: ``code`` is a stable code, ``str()`` a readable
    message.

    ``code`` is the node's problem code when a node answered (``duplicate_reference``,
    ``unknown_act``, …) or one of the client's own: ``invalid_argument`` and
    ``invalid_transaction`` (refused before anything was sent), ``unreachable``,
    ``tls_mismatch``, ``untrusted_certificate`` and ``not_a_sceau_api`` (no sceau node
    answered at an address), ``not_confirmed`` (a submission's deadline passed).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InvalidArgument(SceauError, ValueError):
    """An argument the client refuses before sending anything; ``field`` names it.

    Also a ``ValueError``, so that code written for the library's earlier errors still
    catches it.
    """

    default_code = "invalid_argument"

    def __init__(self, field: str, why: str, *, code: str | None = None) -> None:
        super().__init__(code or self.default_code, f"{field}: {why}")
        self.field = field
        self.why = why


class InvalidTransaction(InvalidArgument):
    """A transaction the client cannot build: its fields do not fit the transaction format
    (its arguments too large, say). ``field`` names the argument or field at fault."""

    default_code = "invalid_transaction"


class ApiError(SceauError):
    """An error answer from a node: ``code`` is the problem's stable code, ``status`` the
    HTTP status and ``detail`` the problem's detail.

    ``status`` 0 means that no sceau node answered at all (a :class:`TransportError`).
    """

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(code, f"{status} {code}: {detail}" if status else detail)
        self.status = status
        self.detail = detail


class TransportError(ApiError):
    """No sceau node answered at ``url`` (``status`` 0). ``code`` says why:

    * ``unreachable``: nothing answers there (connection refused, unknown host, a timeout,
      a connection closed without an answer);
    * ``tls_mismatch``: the endpoint speaks HTTPS and was asked over HTTP, or the reverse;
    * ``untrusted_certificate``: an HTTPS endpoint whose certificate the client does not
      trust (give its CA with ``ca_file``);
    * ``not_a_sceau_api``: something answers, but not a sceau node's API (often a node's
      peer port instead of its API port).

    Reads and submissions go on to the next endpoint; the last one's error is raised.
    """

    def __init__(self, code: str, url: str, message: str) -> None:
        super().__init__(0, code, message)
        self.url = url


class SubmissionError(SceauError):
    """A submission that ended without a commit; ``tx_id`` (hex) names the transaction."""

    tx_id: str


class TransactionRejected(ApiError, SubmissionError):
    """A node refused the transaction for good (a 4xx problem): it was not committed, and
    submitting it again would not help. ``code`` is the rejection's code."""

    def __init__(self, status: int, code: str, detail: str, *, tx_id: str) -> None:
        super().__init__(status, code, detail)
        self.tx_id = tx_id


class TransactionExpired(TransactionRejected):
    """The chain has passed the transaction's ``expiry_height`` without it: it was never
    committed and never will be. Build and sign a new transaction to try again."""


class CommitNotConfirmed(SubmissionError):
    """The deadline passed before any node said the transaction is committed (code
    ``not_confirmed``).

    It may still be committed, up to its ``expiry_height``: look it up later with
    ``GET /v1/transactions/<tx_id>`` on any member (:meth:`AsyncClient.transaction`), or
    submit the same transaction again (:meth:`AsyncClient.submit`; it is idempotent).
    ``accepted_by`` lists the endpoints that answered 202 (pending) along the way.
    """

    def __init__(
        self,
        *,
        tx_id: str,
        expiry_height: int,
        deadline_s: float,
        accepted_by: Sequence[str],
        last_answers: dict[str, str],
    ) -> None:
        answers = "; ".join(f"{url}: {answer}" for url, answer in last_answers.items())
        super().__init__(
            "not_confirmed",
            f"transaction {tx_id} not confirmed committed within {deadline_s:g} s "
            f"(last answers: {answers or 'none'}); it may still commit up to height "
            f"{expiry_height}: look it up with GET /v1/transactions/{tx_id} on any member, or "
            "submit the same transaction again",
        )
        self.tx_id = tx_id
        self.expiry_height = expiry_height
        self.accepted_by = tuple(accepted_by)
        self.last_answers = dict(last_answers)


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmissionEvent:
    """One answer (or silence) met while carrying a submission, for an observer's logs and
    metrics. ``outcome`` is ``committed``, ``pending`` (a 202), ``rejected``, ``expired``,
    ``busy`` (429/503), ``server_error`` (another 5xx) or ``unreachable`` (no answer)."""

    tx_id: str
    api_url: str
    outcome: str
    detail: str = ""


# --- inputs -----------------------------------------------------------------------------------


def digest_of_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> bytes:
    """SHA-256 of a file's content, read in chunks (documents may be large)."""
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            hasher.update(chunk)
    return hasher.digest()


def _digest(value: object, field: str) -> bytes:
    """A SHA-256 given as 32 bytes or as 64 hex characters (either case)."""
    if isinstance(value, bytes | bytearray):
        if len(value) != DIGEST_BYTES:
            raise InvalidArgument(field, f"expected {DIGEST_BYTES} bytes, got {len(value)}")
        return bytes(value)
    if isinstance(value, str):
        if not _HEX_DIGEST.fullmatch(value):
            raise InvalidArgument(
                field,
                f"expected {2 * DIGEST_BYTES} hex characters (a SHA-256), got {_shown(value)}",
            )
        return bytes.fromhex(value)
    raise InvalidArgument(field, f"expected bytes or hex text, not {type(value).__name__}")


def _act_date(value: object, field: str) -> str:
    """An act date given as a ``datetime.date`` or as text ``YYYY-MM-DD``, as the text."""
    if isinstance(value, datetime.datetime):
        raise InvalidArgument(field, "expected a date, not a datetime: use its .date()")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if not isinstance(value, str):
        raise InvalidArgument(
            field, f"expected a datetime.date or text YYYY-MM-DD, not {type(value).__name__}"
        )
    match = _DATE_TEXT.fullmatch(value)
    if match is None:
        raise InvalidArgument(field, f"not a date written YYYY-MM-DD: {_shown(value)}")
    year, month, day = (int(group) for group in match.groups())
    if not ACT_DATE_MIN.year <= year <= ACT_DATE_MAX.year or len(match.group(1)) != 4:
        raise InvalidArgument(
            field,
            f"year {match.group(1)} out of range: act dates go from {ACT_DATE_MIN.isoformat()} "
            f"to {ACT_DATE_MAX.isoformat()} (a year of four digits)",
        )
    try:
        datetime.date(year, month, day)
    except ValueError:
        raise InvalidArgument(field, f"not a valid date ({value})") from None
    return value


def _principal(value: object, field: str) -> str:
    """A member's or an issuer's id: a lowercase slug of 1 to 48 characters."""
    try:
        return _PRINCIPAL_ID.validate_python(value, strict=True)
    except ValidationError:
        shown = _shown(value) if isinstance(value, str) else type(value).__name__
        raise InvalidArgument(
            field,
            f"expected an id of lowercase letters, digits and '-' (1 to 48, no '-' at either "
            f"end), not {shown}",
        ) from None


def _public_key(value: object, field: str) -> bytes:
    """An Ed25519 public key given as ``ed25519:<base64url>`` text or as its 32 bytes."""
    if isinstance(value, bytes | bytearray):
        key = bytes(value)
        if len(key) != 32:
            raise InvalidArgument(field, f"expected 32 bytes, got {len(key)}")
    elif isinstance(value, str):
        try:
            key = crypto.public_key_from_text(value)
        except ValueError:
            raise InvalidArgument(
                field, f"expected an Ed25519 public key 'ed25519:…', not {_shown(value)}"
            ) from None
    else:
        raise InvalidArgument(
            field, f"expected 'ed25519:…' text or 32 bytes, not {type(value).__name__}"
        )
    if not crypto.is_acceptable_public_key(key):
        raise InvalidArgument(field, "not an acceptable Ed25519 public key (a weak point)")
    return key


def _roles(value: object, field: str = "roles") -> list[str]:
    """1 to ROLES_PER_DELEGATION_MAX distinct roles ``contract.action``, sorted."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidArgument(field, "expected a list of roles such as ['deeds.issue']")
    roles = list(value)
    if not 1 <= len(roles) <= ROLES_PER_DELEGATION_MAX:
        raise InvalidArgument(field, f"expected 1 to {ROLES_PER_DELEGATION_MAX} roles")
    for role in roles:
        if (
            not isinstance(role, str)
            or len(role) > ROLE_CHARACTERS_MAX
            or not _ROLE.fullmatch(role)
        ):
            raise InvalidArgument(
                field, f"{role!r} is not a role (contract.action, {ROLE_CHARACTERS_MAX} max)"
            )
    if len(set(roles)) != len(roles):
        raise InvalidArgument(field, "a role appears twice")
    return sorted(roles)


def check_issuer_application(value: object, field: str = "issuer") -> dict[str, Any]:
    """One issuer to admit, checked as the membership contract checks it: a map of ``id``,
    ``name``, ``siret`` (14 digits, or None/absent) and ``public_key`` (``ed25519:…`` text or
    32 bytes). Returns it as an ``admit_issuers`` change carries it (the key as bytes);
    raises :class:`InvalidArgument` naming the field (``{field}.siret``)."""
    if not isinstance(value, dict):
        raise InvalidArgument(field, "expected a map of id, name, siret and public_key")
    unexpected = sorted(str(name) for name in value if name not in _ISSUER_FIELDS)
    if unexpected:
        raise InvalidArgument(f"{field}.{unexpected[0]}", "unexpected field")
    for name in ("id", "name", "public_key"):
        if name not in value:
            raise InvalidArgument(f"{field}.{name}", "missing")
    issuer_id = _principal(value["id"], f"{field}.id")
    try:
        name = _DISPLAY_NAME.validate_python(value["name"], strict=True)
    except ValidationError:
        raise InvalidArgument(
            f"{field}.name", "expected a display name of 1 to 128 printable characters"
        ) from None
    siret = value.get("siret")
    if siret is not None:
        try:
            siret = _SIRET.validate_python(siret, strict=True)
        except ValidationError:
            raise InvalidArgument(f"{field}.siret", "a SIRET is 14 digits") from None
    return {
        "id": issuer_id,
        "name": name,
        "siret": siret,
        "public_key": _public_key(value["public_key"], f"{field}.public_key"),
    }


def _deliberation(value: object) -> dict[str, Any]:
    """The deliberation data of an anchoring (a map of some of DELIBERATION_FIELDS), checked in
    its shape here; the values are the deeds contract's to check (its refusal names the field).
    None values are left out: an act stores only the data given."""
    if not isinstance(value, dict):
        raise InvalidArgument("deliberation", "expected a map of " + ", ".join(DELIBERATION_FIELDS))
    data: dict[str, Any] = {}
    for name in sorted(value):
        if name not in DELIBERATION_FIELDS:
            raise InvalidArgument(f"deliberation.{str(name)[:40]}", "not a deliberation field")
        if value[name] is None:
            continue
        if name == "votes":
            votes = value[name]
            if not isinstance(votes, dict) or sorted(votes) != sorted(VOTE_COUNTS):
                raise InvalidArgument(
                    "deliberation.votes", "expected a map of " + ", ".join(VOTE_COUNTS)
                )
            data[name] = dict(votes)
        else:
            data[name] = _text(value[name], f"deliberation.{name}")
    return data


def _issuer_applications(issuers: object) -> list[dict[str, Any]]:
    """Every issuer of an admission, checked, before anything is sent; no id or key twice."""
    if isinstance(issuers, str | bytes | dict) or not isinstance(issuers, Sequence):
        raise InvalidArgument("issuers", "expected a list of issuers (maps)")
    if not 1 <= len(issuers) <= ISSUERS_PER_CALL_MAX:
        raise InvalidArgument("issuers", f"expected 1 to {ISSUERS_PER_CALL_MAX} issuers")
    checked = [check_issuer_application(entry, f"issuers[{i}]") for i, entry in enumerate(issuers)]
    for label in ("id", "public_key"):
        seen: dict[Any, int] = {}
        for index, entry in enumerate(checked):
            first = seen.setdefault(entry[label], index)
            if first != index:
                raise InvalidArgument(
                    f"issuers[{index}].{label}", f"the same {label} as issuers[{first}]"
                )
    return checked


def _height(value: object, field: str) -> int:
    if type(value) is not int or not 1 <= value <= HEIGHT_MAX:
        raise InvalidArgument(field, f"expected a height (1 to 2**63 - 1), not {value!r}")
    return value


def _check_wait(wait_s: object) -> None:
    if wait_s is not None and not (isinstance(wait_s, int | float) and wait_s >= 0):
        raise InvalidArgument("wait_s", f"expected seconds ≥ 0 or None, not {wait_s!r}")


def _text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(field, f"expected text, not {type(value).__name__}")
    return value


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 80 else f"{len(text)} characters"


def _path_segment(text: str) -> str:
    return quote(text, safe="")


def _reference_path(text: str) -> str:
    """References may hold '/': keep it as a path separator, quote the rest."""
    return quote(text, safe="/")


def _endpoint(url: object) -> str:
    """One API base URL, checked: http:// or https://, a host; without a trailing '/'."""
    text = _text(url, "base_url").strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        if "://" in text:
            raise InvalidArgument("base_url", f"{text!r}: an API URL is http:// or https://")
        raise InvalidArgument(
            "base_url", f"{text!r}: give the URL with its scheme, e.g. http://{text}"
        )
    return text


def _endpoints(base_urls: str | Sequence[str]) -> tuple[str, ...]:
    """Base URLs without their trailing '/', duplicates dropped, order kept."""
    given = [base_urls] if isinstance(base_urls, str) else list(base_urls)
    endpoints = tuple(dict.fromkeys(_endpoint(url) for url in given if str(url).strip()))
    if not endpoints:
        raise InvalidArgument("base_url", "a client needs at least one API base URL")
    if len(endpoints) > ENDPOINTS_MAX:
        raise InvalidArgument(
            "base_url", f"at most {ENDPOINTS_MAX} API base URLs, not {len(endpoints)}"
        )
    return endpoints


def _tls_context(
    ca_file: str | os.PathLike | None, ssl_context: ssl.SSLContext | None
) -> ssl.SSLContext | None:
    """The TLS context for https:// endpoints; None: the system's trusted CAs."""
    if ca_file is not None and ssl_context is not None:
        raise InvalidArgument("ca_file", "give ca_file or ssl_context, not both")
    if ssl_context is not None:
        if not isinstance(ssl_context, ssl.SSLContext):
            raise InvalidArgument("ssl_context", "expected an ssl.SSLContext")
        return ssl_context
    if ca_file is None:
        return None
    try:
        return ssl.create_default_context(cafile=os.fspath(ca_file))
    except (OSError, ssl.SSLError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise InvalidArgument("ca_file", f"cannot load {os.fspath(ca_file)}: {reason}") from None


# --- transport errors -------------------------------------------------------------------------


async def _speaks_tls(url: str) -> bool:
    """Whether the http:// endpoint ``url`` completes a TLS handshake (certificate unchecked:
    only the protocol matters here)."""
    parts = urlsplit(url)
    if parts.hostname is None:
        return False
    probe = ssl.create_default_context()
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname, parts.port or 80, ssl=probe),
            PROBE_TIMEOUT_S,
        )
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _transport_error(url: str, method: str, path: str, error: Exception) -> TransportError:
    """The readable form of a failure to get any HTTP answer from ``url``."""
    where = f"{method} {url}{path}"
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        return TransportError(
            "untrusted_certificate",
            url,
            f"the certificate of {url} is not trusted ({error.certificate_error}): give the "
            "CA that signed it with ca_file= (or an ssl_context)",
        )
    if isinstance(error, aiohttp.ClientSSLError) or (
        isinstance(error, ssl.SSLError) and url.lower().startswith("https:")
    ):
        return TransportError(
            "tls_mismatch",
            url,
            f"the node at {url} does not speak HTTPS ({_reason(error)}): it may speak plain "
            f"HTTP: use http://",
        )
    if isinstance(error, aiohttp.ClientConnectorError):
        return TransportError(
            "unreachable", url, f"nothing answers at {url} ({_connect_failure(error)})"
        )
    if isinstance(error, TimeoutError):
        return TransportError("unreachable", url, f"{url} did not answer in time: {where}")
    if isinstance(
        error,
        aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError | aiohttp.ClientOSError,
    ):
        # Closed or reset after the connection was made (a connection that could not be
        # made is a ClientConnectorError, above): a TLS server refusing a plain request does
        # either, depending on its TLS library.
        if url.lower().startswith("http:") and await _speaks_tls(url):
            return TransportError(
                "tls_mismatch",
                url,
                f"the node at {url} may speak HTTPS: use https://{url.split('://', 1)[1]}",
            )
        return TransportError(
            "unreachable", url, f"{url} closed the connection without an HTTP answer: {where}"
        )
    return TransportError("unreachable", url, f"{where}: {_reason(error)}")


def _connect_failure(error: aiohttp.ClientConnectorError) -> str:
    cause = error.os_error
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, socket.gaierror):
        return f"unknown host {error.host}"
    return cause.strerror or _reason(cause)


def _reason(error: BaseException) -> str:
    return str(error) or type(error).__name__


async def _answer_document(url: str, response: aiohttp.ClientResponse) -> Any:
    """A node's JSON document, or the error to raise: an :class:`ApiError` for a problem, a
    :class:`TransportError` ``not_a_sceau_api`` for an answer that is not a sceau node's."""
    body = await response.read()
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if response.status >= 400:
        if isinstance(document, dict) and isinstance(document.get("code"), str):
            return ApiError(response.status, document["code"], str(document.get("detail", "")))
        if response.status >= 500:  # a proxy's "bad gateway", say: the node behind is down
            text = body[:PROBLEM_DETAIL_CHARACTERS_MAX].decode(errors="replace")
            return ApiError(response.status, "server_error", text)
    if isinstance(document, dict) and response.status < 400:
        return document
    return TransportError(
        "not_a_sceau_api",
        url,
        f"{url} answers but is not a sceau node API (is it the peer port?): "
        f"{response.method} {response.url.path} answered {response.status} {response.reason}",
    )


def _retried(error: ApiError) -> bool:
    """Whether a submission goes on to the next endpoint after ``error`` (not final)."""
    return isinstance(error, TransportError) or error.status in RETRIED_STATUSES


def _batches(transactions: Sequence[Transaction]) -> list[list[int]]:
    """The indices of ``transactions`` in consecutive batches of at most
    BATCH_TRANSACTIONS_MAX, each body under BATCH_BODY_BYTES_MAX (one at least)."""
    batches: list[list[int]] = []
    current: list[int] = []
    size = 0
    for index, transaction in enumerate(transactions):
        length = len(transaction.encoded) + 5  # a byte string's header: 5 bytes at most
        if current and (
            len(current) >= BATCH_TRANSACTIONS_MAX or size + length > BATCH_BODY_BYTES_MAX
        ):
            batches.append(current)
            current, size = [], 0
        current.append(index)
        size += length
    if current:
        batches.append(current)
    return batches


def _anchor_arguments(
    *,
    issuer: str,
    reference: str,
    kind: str,
    digest: bytes | str,
    act_date: datetime.date | str,
    title: str,
    legal_basis: str | None = None,
    url: str | None = None,
    person_commitment: bytes | str | None = None,
    deliberation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The arguments of a deeds ``anchor``, each checked (InvalidArgument names the field)."""
    args: dict[str, Any] = {
        "issuer": _text(issuer, "issuer"),
        "reference": _text(reference, "reference"),
        "kind": _text(kind, "kind"),
        "digest": _digest(digest, "digest"),
        "act_date": _act_date(act_date, "act_date"),
        "title": _text(title, "title"),
    }
    if legal_basis is not None:
        args["legal_basis"] = _text(legal_basis, "legal_basis")
    if url is not None:
        args["url"] = _text(url, "url")
    if person_commitment is not None:
        args["person_commitment"] = _digest(person_commitment, "person_commitment")
    if deliberation is not None:
        args.update(_deliberation(deliberation))
    return args


# --- the asynchronous client ------------------------------------------------------------------


class AsyncClient:
    """Asynchronous client of a consortium's API (see the module doc).

    ``base_url`` is one member's API base URL or a list of several: reads go to the first
    that answers, submissions are carried to their commit across all of them. The API does
    not tell clients the other members' API addresses (``/v1/members`` lists their *peer*
    endpoints), so give the client the API URLs of the members the application may use.

    ``signer`` is the key that signs transactions (none: a read-only client). TLS: https://
    endpoints are checked against the system's trusted CAs, or against ``ca_file`` (a PEM file
    of the CA that signed the nodes' certificates, or of a self-signed certificate), or with
    ``ssl_context`` (full control: client certificates, pinned versions). ``session`` lets an
    application share its own aiohttp session (then it carries the TLS settings itself).
    Raises :class:`InvalidArgument` for a URL without its scheme or an unreadable ``ca_file``.
    """

    def __init__(
        self,
        base_url: str | Sequence[str],
        *,
        signer: crypto.PrivateKey | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        expiry_blocks: int = DEFAULT_EXPIRY_BLOCKS,
        retry_interval_s: float = RETRY_INTERVAL_S,
        observer: Callable[[SubmissionEvent], None] | None = None,
        ca_file: str | os.PathLike | None = None,
        ssl_context: ssl.SSLContext | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if not (isinstance(timeout_s, int | float) and timeout_s > 0):
            raise InvalidArgument("timeout_s", f"expected a positive number, not {timeout_s!r}")
        if type(expiry_blocks) is not int or expiry_blocks < 1:
            raise InvalidArgument(
                "expiry_blocks", f"expected a positive integer, not {expiry_blocks!r}"
            )
        if signer is not None and not isinstance(signer, crypto.PrivateKey):
            raise InvalidArgument(
                "signer", f"expected an Ed25519 private key, not {type(signer).__name__}"
            )
        if observer is not None and not callable(observer):
            raise InvalidArgument("observer", "expected a function taking a SubmissionEvent")
        if not 0 < retry_interval_s <= WAIT_STEP_S_MAX:
            raise InvalidArgument(
                "retry_interval_s", f"retry_interval_s must be in (0, {WAIT_STEP_S_MAX:g}]"
            )
        self.endpoints = _endpoints(base_url)
        self.base_url = self.endpoints[0]
        self.signer = signer
        self.timeout_s = timeout_s
        self.expiry_blocks = expiry_blocks
        self.retry_interval_s = retry_interval_s
        self.observer = observer
        self._tls = _tls_context(ca_file, ssl_context)
        if session is not None and self._tls is not None:
            raise InvalidArgument("session", "a shared session carries its own TLS settings")
        self._preferred = 0
        """The endpoint that answered last: asked first next time."""
        self._session = session
        self._owns_session = session is None
        self._chain_id: bytes | None = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the client's HTTP connections (not a session the application gave)."""
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s + WAIT_STEP_S_MAX),
                connector=aiohttp.TCPConnector(ssl=self._tls if self._tls is not None else True),
            )
        return self._session

    def _in_turn(self) -> list[tuple[int, str]]:
        """(index, URL) of every endpoint, the preferred one first."""
        count = len(self.endpoints)
        order = [(self._preferred + offset) % count for offset in range(count)]
        return [(index, self.endpoints[index]) for index in order]

    async def _request_one(self, url: str, method: str, path: str, **options: Any) -> Any:
        """One request to one endpoint: its JSON document, or raises :class:`ApiError` (a
        problem) or :class:`TransportError` (no sceau node answered)."""
        try:
            async with self._http().request(method, f"{url}{path}", **options) as response:
                outcome = await _answer_document(url, response)
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError, ValueError) as error:
            raise await _transport_error(url, method, path, error) from None
        if isinstance(outcome, ApiError):
            raise outcome
        return outcome

    async def _request(self, method: str, path: str, **options: Any) -> Any:
        """A read, from the preferred endpoint, or the next ones while one does not answer
        or answers 5xx; a 4xx answer is the answer. Raises :class:`ApiError`."""
        last: ApiError | None = None
        for index, url in self._in_turn():
            try:
                answer = await self._request_one(url, method, path, **options)
            except ApiError as error:
                if not isinstance(error, TransportError) and error.status < 500:
                    raise
                last = error
                continue
            self._preferred = index
            return answer
        assert last is not None, "a client has at least one endpoint"
        raise last

    # --- reads --------------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        """The node's status: ``chain_id``, ``height`` (its tip), ``view``, its member id, …"""
        return await self._request("GET", "/v1/status")

    async def chain_id(self) -> bytes:
        """The consortium's chain id (32 bytes), read once from the status and kept."""
        if self._chain_id is None:
            self._chain_id = bytes.fromhex((await self.status())["chain_id"])
        return self._chain_id

    async def transaction(self, tx_id: bytes | str) -> dict[str, Any]:
        """A transaction's status document: ``status`` is ``committed`` (with ``height``,
        ``block_hash`` and its ``receipt``), ``pending`` or ``rejected`` (with ``code`` and
        ``reason``); ApiError 404 ``unknown_transaction`` if the node knows nothing of it.
        ``tx_id`` is 32 bytes or 64 hex characters."""
        tx_hex = _digest(tx_id, "tx_id").hex()
        return await self._request("GET", f"/v1/transactions/{tx_hex}")

    async def block(self, height: int | None = None) -> dict[str, Any]:
        """The block at ``height`` (the latest if None), with its certificate; ApiError 404
        ``unknown_block`` past the tip."""
        if height is not None and (type(height) is not int or height < 1):
            raise InvalidArgument("height", f"expected a height ≥ 1, not {height!r}")
        where = "latest" if height is None else str(height)
        return await self._request("GET", f"/v1/blocks/{where}")

    async def act(self, issuer: str, reference: str) -> dict[str, Any]:
        """The act record (status, links, metadata); ApiError 404 ``unknown_act`` if none."""
        issuer, reference = _text(issuer, "issuer"), _text(reference, "reference")
        answer = await self._request(
            "GET", f"/v1/acts/{_path_segment(issuer)}/{_reference_path(reference)}"
        )
        return answer["act"]

    async def acts_by_digest(self, digest: bytes | str) -> list[dict[str, Any]]:
        """The acts anchoring a document digest (32 bytes or 64 hex characters): the
        citizen's check. ApiError 404 ``unknown_act`` if no act anchors it."""
        digest_hex = _digest(digest, "digest").hex()
        return (await self._request("GET", f"/v1/digests/{digest_hex}"))["acts"]

    async def history(self, issuer: str, reference: str) -> list[dict[str, Any]]:
        """Every change of an act's status, in order (the anchoring first)."""
        issuer, reference = _text(issuer, "issuer"), _text(reference, "reference")
        answer = await self._request(
            "GET", f"/v1/history/{_path_segment(issuer)}/{_reference_path(reference)}"
        )
        return answer["history"]

    async def query(self, contract: str, path: str, *, proof: bool = False) -> dict[str, Any]:
        """Any contract's query at the tip: ``GET /v1/query/{contract}/{path}``.

        ``path`` is the contract's query path (``delegations/metropole-valbrune``,
        ``act/<issuer>/<reference>``); a ``?name=value&...`` part goes as query parameters.
        Returns the answer document ``{"height", "contract", "path", "answer"}`` in its JSON
        form (bytes as hex); with ``proof``, also ``"proof"``: the state values the query read,
        proven against the certified tip (``ledger.queryproof.QueryProof.model_validate``, then
        ``verify_query_proof`` with the genesis). Raises :class:`ApiError`: 404 ``not_found``
        (nothing at that path) or ``contract_not_enabled``, 400 ``invalid_query``, …
        """
        route, _, query_string = path.partition("?")
        parameters = "&".join(
            part for part in (query_string, "proof=true" if proof else "") if part
        )
        return await self._request(
            "GET",
            f"/v1/query/{_path_segment(contract)}/{quote(route, safe='/')}",
            params=parameters,
        )

    async def acts(
        self,
        issuer: str,
        *,
        date_from: datetime.date | str | None = None,
        date_to: datetime.date | str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """An issuer's acts by act date (dates as ``datetime.date`` or ``YYYY-MM-DD``, both
        bounds included), at most ``limit`` of them (the node's default if None)."""
        if limit is not None and (type(limit) is not int or limit < 1):
            raise InvalidArgument("limit", f"expected a positive integer, not {limit!r}")
        parameters = {
            name: value
            for name, value in (
                ("from", None if date_from is None else _act_date(date_from, "date_from")),
                ("to", None if date_to is None else _act_date(date_to, "date_to")),
                ("limit", None if limit is None else str(limit)),
            )
            if value is not None
        }
        issuer = _text(issuer, "issuer")
        answer = await self._request(
            "GET", f"/v1/issuers/{_path_segment(issuer)}/acts", params=parameters
        )
        return answer["acts"]

    async def members(self) -> list[dict[str, Any]]:
        """The member set in force: each member's ``id``, ``name``, ``public_key``, peer
        ``endpoint`` and, when it has one, ``siret`` (membership 1.3)."""
        return (await self._request("GET", "/v1/members"))["members"]

    async def issuers(
        self, *, after: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The issuers admitted by governance, every status, in id order: at most ``limit``
        (the node's default, 100, if None; at most 1000), those whose id comes after
        ``after`` (the last id of the previous page). Each has ``id``, ``name``, ``siret``,
        ``public_key``, ``status`` (active, suspended or removed), ``admitted_height`` and
        ``status_height``."""
        parameters: dict[str, str] = {}
        if after is not None:
            parameters["after"] = _principal(after, "after")
        if limit is not None:
            if type(limit) is not int or not 1 <= limit <= 1000:
                raise InvalidArgument("limit", f"expected an integer from 1 to 1000, not {limit!r}")
            parameters["limit"] = str(limit)
        return (await self._request("GET", "/v1/issuers", params=parameters))["issuers"]

    async def issuer(self, issuer_id: str) -> dict[str, Any]:
        """One issuer (see :meth:`issuers`); ApiError 404 ``not_found`` for an unknown id."""
        issuer_id = _principal(issuer_id, "issuer_id")
        return (await self._request("GET", f"/v1/issuers/{issuer_id}"))["issuer"]

    async def proposals(self) -> list[dict[str, Any]]:
        """The open governance proposals: ``proposal_id`` (hex), ``proposer``, ``change``,
        ``yes_voters``, ``no_voters``, ``created_height``, ``expiry_height``, …"""
        return (await self._request("GET", "/v1/proposals"))["proposals"]

    async def receipt(
        self, tx_id: bytes | str, *, with_status: bool = False
    ) -> dict[str, Any] | None:
        """The receipt of a committed transaction (a JSON document ``sceau verify`` checks
        offline), or None if it is not committed.

        ``with_status``: the receipt of an anchor also proves the act's record at the node's
        tip (``status``, ``status_height``…); any other transaction's has ``status`` None.
        """
        tx_hex = _digest(tx_id, "tx_id").hex()
        options: dict[str, Any] = {"params": {"with_status": "true"}} if with_status else {}
        answer = await self._request("GET", f"/v1/transactions/{tx_hex}", **options)
        return answer.get("receipt") if answer.get("status") == "committed" else None

    async def tlog_proof(self, tx_id: bytes | str) -> bytes | None:
        """A C2SP ``.tlog-proof`` of a committed transaction (:mod:`ledger.tlogproof`: what
        ``sceau proof`` writes and ``sceau verify`` checks), made from its receipt's ``log``;
        None if the transaction is not committed or the node keeps no checkpoint covering it
        yet (try again after the next block). Nothing of the node is trusted: check the proof.
        """
        from ledger.receipt import Receipt
        from ledger.tlogproof import proof_from_parts

        document = await self.receipt(tx_id)
        if document is None:
            return None
        try:
            receipt = Receipt.model_validate_json(json.dumps(document))
        except ValueError as error:
            raise TransportError(
                "not_a_sceau_api", self.base_url, f"the node's receipt does not decode: {error}"
            ) from None
        log = receipt.log
        if log is None:
            return None
        proof = proof_from_parts(
            receipt.transaction,
            log.index,
            log.inclusion_proof,
            log.checkpoint.encode(),
            (*receipt.member_changes, *log.member_changes),
        )
        return proof.to_bytes()

    async def log_inclusion(self, index: int, size: int) -> list[bytes]:
        """The RFC 9162 inclusion proof of entry ``index`` in the log of every act's first
        ``size`` entries (``GET /v1/log/inclusion``); ApiError 404 ``beyond_log`` past the
        log's size. Check it against a checkpoint's root, never the node's word."""
        answer = await self._request(
            "GET", "/v1/log/inclusion", params={"index": str(index), "size": str(size)}
        )
        return [bytes.fromhex(value) for value in answer["proof"]]

    async def log_consistency(self, old_size: int, new_size: int) -> list[bytes]:
        """The RFC 9162 consistency proof between two sizes of the log of every act
        (``GET /v1/log/consistency``); ApiError 404 ``beyond_log`` past the log's size."""
        answer = await self._request(
            "GET", "/v1/log/consistency", params={"old": str(old_size), "new": str(new_size)}
        )
        return [bytes.fromhex(value) for value in answer["proof"]]

    # --- writes -------------------------------------------------------------------------------

    async def build(self, contract: str, action: str, args: dict[str, Any]) -> Transaction:
        """Sign a transaction for this consortium with the client's signer key.

        Raises :class:`InvalidArgument` without a signer key, and :class:`InvalidTransaction`
        (naming the field) for arguments that do not fit the transaction format.
        """
        if self.signer is None:
            raise InvalidArgument(
                "signer", "this client has no signer key: give one to sign transactions"
            )
        if not isinstance(args, dict):
            raise InvalidArgument("args", f"expected a dict, not {type(args).__name__}")
        height = (await self.status())["height"]
        return self._sign(contract, action, args, await self.chain_id(), height)

    def _sign(
        self, contract: str, action: str, args: dict[str, Any], chain_id: bytes, height: int
    ) -> Transaction:
        """A transaction signed by the client's key, expiring ``expiry_blocks`` after
        ``height`` (the tip the node last told)."""
        assert self.signer is not None
        try:
            return Transaction.create(
                self.signer,
                chain_id=chain_id,
                contract=contract,
                action=action,
                args=args,
                nonce=secrets.randbits(63),
                expiry_height=height + self.expiry_blocks,
            )
        except ModelDecodeError as error:
            raise _invalid_transaction(error, args) from None

    async def submit(self, transaction: Transaction, *, wait_s: float | None = None) -> Any:
        """Submit a signed transaction; with ``wait_s``, carry it to its commit.

        Without ``wait_s`` (or 0): one submission, to the first endpoint that answers; its
        answer is returned as is — a 202 ``pending`` is then no promise (see the module doc).

        With ``wait_s``: the transaction is sent to the endpoints in turn until one says it
        is committed, and that status document (with its receipt) is returned. Raises
        :class:`TransactionRejected` (final), :class:`TransactionExpired` (never committed)
        or, after ``wait_s`` seconds, :class:`CommitNotConfirmed` (it may still commit).
        """
        if not isinstance(transaction, Transaction):
            raise InvalidArgument(
                "transaction", f"expected a Transaction, not {type(transaction).__name__}"
            )
        _check_wait(wait_s)
        if not wait_s:
            return await self._submit_once(transaction)
        return await self._carry(transaction, wait_s)

    async def _submit_once(self, transaction: Transaction) -> Any:
        last: ApiError | None = None
        for index, url in self._in_turn():
            try:
                answer = await self._post(url, transaction, wait_s=0)
            except ApiError as error:
                if not _retried(error):
                    raise _final(error, transaction) from None
                last = error
                continue
            self._preferred = index
            return answer
        assert last is not None, "a client has at least one endpoint"
        raise last

    async def _carry(self, transaction: Transaction, deadline_s: float) -> Any:
        """The loop of :meth:`submit` with ``wait_s`` (see the module doc)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + deadline_s
        tx_id = transaction.tx_id.hex()
        accepted_by: list[str] = []
        last_answers: dict[str, str] = {}
        silent_in_a_row = 0
        backoff_s = BACKOFF_S_MIN
        attempt = 0
        while (remaining_s := deadline - loop.time()) > 0:
            index = (self._preferred + attempt) % len(self.endpoints)
            url = self.endpoints[index]
            if attempt:
                log.info("transaction %s not committed yet: submitting it to %s", tx_id[:16], url)
            attempt += 1
            step_s = min(self.retry_interval_s, remaining_s)
            started = loop.time()
            try:
                answer = await self._post(url, transaction, wait_s=step_s)
            except ApiError as error:
                if not _retried(error):
                    final = _final(error, transaction)
                    self._notify(tx_id, url, _outcome_of(final), error.detail)
                    raise final from None
                outcome = "unreachable" if error.status == 0 else _outcome_of(error)
                last_answers[url] = f"{error.status} {error.code}" if error.status else error.code
                self._notify(tx_id, url, outcome, error.detail)
                silent_in_a_row += 1
            else:
                status = str(answer.get("status"))
                self._notify(tx_id, url, "committed" if status == "committed" else "pending")
                if status == "committed":
                    self._preferred = index
                    return answer
                if url not in accepted_by:
                    accepted_by.append(url)
                last_answers[url] = status
                silent_in_a_row = 0
                if loop.time() - started >= step_s / 2:
                    backoff_s = BACKOFF_S_MIN
                else:  # a 202 at once (the node holds too many waiting submissions): no spin
                    await asyncio.sleep(min(backoff_s, max(0.0, deadline - loop.time())))
                    backoff_s = min(backoff_s * 2, BACKOFF_S_MAX)
            if silent_in_a_row and silent_in_a_row % len(self.endpoints) == 0:
                # A whole round without an answer: the nodes are down or busy; wait a little.
                await asyncio.sleep(min(backoff_s, max(0.0, deadline - loop.time())))
                backoff_s = min(backoff_s * 2, BACKOFF_S_MAX)
        raise CommitNotConfirmed(
            tx_id=tx_id,
            expiry_height=transaction.expiry_height,
            deadline_s=deadline_s,
            accepted_by=accepted_by,
            last_answers=last_answers,
        )

    async def _post(self, url: str, transaction: Transaction, *, wait_s: float) -> Any:
        """One ``POST /v1/transactions`` to ``url`` (raises :class:`ApiError`)."""
        parameters = {"wait": f"{min(wait_s, WAIT_STEP_S_MAX):.3f}"} if wait_s > 0 else {}
        return await self._request_one(
            url,
            "POST",
            "/v1/transactions",
            json={"transaction": transaction.encoded.hex()},
            params=parameters,
            # Not a total: time spent queued for one of the session's connections (many
            # submissions at once) must not count as the node's silence.
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self.timeout_s, sock_read=wait_s + self.timeout_s
            ),
        )

    async def submit_many(
        self, transactions: Sequence[Transaction], *, wait_s: float | None = None
    ) -> list[dict[str, Any]]:
        """Submit signed transactions together (``POST /v1/transactions/batch``): one outcome
        per transaction, in their order.

        An outcome is the node's: ``tx_id``, ``status`` — ``committed`` (with its block's
        ``height``), ``pending``, ``rejected`` (with ``code`` and ``reason``) or ``unknown`` —
        and nothing is raised for one transaction's fate: look each outcome's ``status``.
        The node admits a batch in order, each transaction after the batch's earlier ones (a
        reference anchored twice in one batch: the second is ``duplicate_reference``). A
        list longer than :data:`BATCH_TRANSACTIONS_MAX`, or than a node's default body size,
        goes in several requests, in order.

        Without ``wait_s`` (or 0): each batch goes once, to the first endpoint that answers.
        With ``wait_s``: as :meth:`submit` does for one, the transactions not yet settled are
        sent again (the same bytes: each is committed at most once) to the endpoints in turn,
        with ``?wait=``, until each is committed or finally rejected, or ``wait_s`` passes;
        busy refusals (``rate_limited``, ``mempool_full``, ``signer_quota``) are retried. The
        outcome of a transaction not settled by then is its last one (``pending``: it may
        still commit; :meth:`transaction` tells later). A committed outcome has no receipt:
        :meth:`receipt` fetches it. Raises :class:`ApiError` when a node refuses a whole
        request (``invalid_transaction``, ``body_too_large``…) or, without any answer to a
        batch, the last endpoint's error.
        """
        if isinstance(transactions, Transaction) or not isinstance(transactions, Sequence):
            raise InvalidArgument("transactions", "expected a list of signed transactions")
        for index, transaction in enumerate(transactions):
            if not isinstance(transaction, Transaction):
                raise InvalidArgument(
                    f"transactions[{index}]",
                    f"expected a Transaction, not {type(transaction).__name__}",
                )
        _check_wait(wait_s)
        outcomes: list[dict[str, Any]] = [
            {"tx_id": transaction.tx_id.hex(), "status": "unknown"} for transaction in transactions
        ]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (wait_s or 0)
        for indices in _batches(transactions):
            if wait_s:
                await self._carry_many(transactions, indices, outcomes, deadline)
            else:
                await self._submit_batch_once(transactions, indices, outcomes)
        return outcomes

    async def _submit_batch_once(
        self, transactions: Sequence[Transaction], indices: list[int], outcomes: list[Any]
    ) -> None:
        last: ApiError | None = None
        for endpoint, url in self._in_turn():
            try:
                answer = await self._post_batch(url, [transactions[i] for i in indices], 0)
            except ApiError as error:
                if not _retried(error):
                    raise
                last = error
                continue
            self._preferred = endpoint
            for index, outcome in zip(indices, answer["transactions"], strict=True):
                outcomes[index] = outcome
            return
        assert last is not None, "a client has at least one endpoint"
        raise last

    async def _carry_many(
        self,
        transactions: Sequence[Transaction],
        indices: list[int],
        outcomes: list[Any],
        deadline: float,
    ) -> None:
        """The loop of :meth:`submit_many` with ``wait_s``, for one batch (see there)."""
        loop = asyncio.get_running_loop()
        unsettled = indices
        answered = False
        last: ApiError | None = None
        backoff_s = BACKOFF_S_MIN
        attempt = 0
        while unsettled and (remaining_s := deadline - loop.time()) > 0:
            endpoint = (self._preferred + attempt) % len(self.endpoints)
            url = self.endpoints[endpoint]
            attempt += 1
            step_s = min(self.retry_interval_s, remaining_s)
            started = loop.time()
            try:
                answer = await self._post_batch(url, [transactions[i] for i in unsettled], step_s)
            except ApiError as error:
                if not _retried(error):
                    raise
                last = error
                if attempt % len(self.endpoints) == 0:
                    await asyncio.sleep(min(backoff_s, max(0.0, deadline - loop.time())))
                    backoff_s = min(backoff_s * 2, BACKOFF_S_MAX)
                continue
            answered = True
            still: list[int] = []
            for index, outcome in zip(unsettled, answer["transactions"], strict=True):
                outcomes[index] = outcome
                status = outcome["status"]
                if status == "committed" or (
                    status == "rejected" and outcome.get("code") not in BUSY_CODES
                ):
                    continue
                still.append(index)
            if len(still) < len(unsettled):
                self._preferred = endpoint
            if still and loop.time() - started < step_s / 2:
                # Answered at once without settling them (busy, or too many waiting): no spin.
                await asyncio.sleep(min(backoff_s, max(0.0, deadline - loop.time())))
                backoff_s = min(backoff_s * 2, BACKOFF_S_MAX)
            else:
                backoff_s = BACKOFF_S_MIN
            unsettled = still
        if not answered and last is not None:
            raise last

    async def _post_batch(
        self, url: str, transactions: list[Transaction], wait_s: float
    ) -> dict[str, Any]:
        """One ``POST /v1/transactions/batch`` to ``url`` (raises :class:`ApiError`)."""
        parameters = {"wait": f"{min(wait_s, WAIT_STEP_S_MAX):.3f}"} if wait_s > 0 else {}
        answer: dict[str, Any] = await self._request_one(
            url,
            "POST",
            "/v1/transactions/batch",
            data=encoding.pack([transaction.encoded for transaction in transactions]),
            headers={"Content-Type": "application/msgpack"},
            params=parameters,
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self.timeout_s, sock_read=wait_s + self.timeout_s
            ),
        )
        if len(answer.get("transactions", ())) != len(transactions):
            raise TransportError(
                "not_a_sceau_api", url, f"{url} answered a batch without an outcome for each"
            )
        return answer

    def _notify(self, tx_id: str, url: str, outcome: str, detail: str = "") -> None:
        if self.observer is not None:
            self.observer(SubmissionEvent(tx_id=tx_id, api_url=url, outcome=outcome, detail=detail))

    async def wait_for_commit(self, tx_id: bytes | str, *, timeout_s: float = 30.0) -> Any:
        """Poll until the transaction is committed or rejected, or the timeout passes; returns
        its last status document (``pending`` when the time ran out)."""
        tx_id = _digest(tx_id, "tx_id")
        deadline = asyncio.get_running_loop().time() + timeout_s
        delay_s = 0.05
        while True:
            answer = await self.transaction(tx_id)
            if answer.get("status") in ("committed", "rejected"):
                return answer
            if asyncio.get_running_loop().time() >= deadline:
                return answer
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 1.0)

    async def anchor(
        self,
        *,
        issuer: str,
        reference: str,
        kind: str,
        digest: bytes | str,
        act_date: datetime.date | str,
        title: str,
        legal_basis: str | None = None,
        url: str | None = None,
        person_commitment: bytes | str | None = None,
        deliberation: dict[str, Any] | None = None,
        wait_s: float | None = DEFAULT_WAIT_S,
    ) -> dict[str, Any]:
        """Anchor an act: its document's SHA-256 and public metadata (deeds ``anchor``).

        ``digest`` and ``person_commitment`` are 32 bytes or 64 hex characters; ``act_date`` a
        ``datetime.date`` or ``YYYY-MM-DD``. ``deliberation`` (deeds 1.1, a deliberation only)
        maps some of :data:`DELIBERATION_FIELDS` to their values, e.g. ``{"subject_code":
        "7.5", "votes": {"entitled": 33, "cast": 30, "for": 25, "against": 3, "abstention":
        2}}``. Returns the committed status document (with its ``receipt``) plus ``tx_id`` and
        ``digest`` (hex); see :meth:`submit` for ``wait_s`` and what it raises. Bad inputs
        raise :class:`InvalidArgument` before anything is sent.
        """
        args = _anchor_arguments(
            issuer=issuer,
            reference=reference,
            kind=kind,
            digest=digest,
            act_date=act_date,
            title=title,
            legal_basis=legal_basis,
            url=url,
            person_commitment=person_commitment,
            deliberation=deliberation,
        )
        _check_wait(wait_s)
        transaction = await self.build("deeds", "anchor", args)
        answer = await self.submit(transaction, wait_s=wait_s)
        return {**answer, "tx_id": transaction.tx_id.hex(), "digest": args["digest"].hex()}

    async def anchor_many(
        self, acts: Sequence[dict[str, Any]], *, wait_s: float | None = DEFAULT_WAIT_S
    ) -> list[dict[str, Any]]:
        """Anchor many acts in few requests (a council session's acts): each act a dict of
        :meth:`anchor`'s arguments (:data:`ANCHOR_FIELDS`: ``issuer``, ``reference``,
        ``kind``, ``digest``, ``act_date``, ``title`` and the optional ones).

        Every act is checked, then all are signed (one status read) and submitted with
        :meth:`submit_many`; returns one outcome per act, in order, with its ``tx_id`` and
        ``digest`` (hex): ``committed`` (with ``height``; :meth:`receipt` fetches its
        receipt), ``rejected`` (``code``, ``reason``: that act only) or, when ``wait_s``
        passed first, ``pending``. A bad act raises :class:`InvalidArgument` naming it
        (``acts[3].act_date``) before anything is sent.
        """
        if isinstance(acts, dict) or not isinstance(acts, Sequence):
            raise InvalidArgument("acts", "expected a list of acts (dicts of anchor's arguments)")
        _check_wait(wait_s)
        arguments = []
        for index, act in enumerate(acts):
            if not isinstance(act, dict):
                raise InvalidArgument(f"acts[{index}]", "expected a dict of anchor's arguments")
            unknown = sorted(str(name) for name in act if name not in ANCHOR_FIELDS)
            if unknown:
                raise InvalidArgument(f"acts[{index}].{unknown[0][:40]}", "not an anchor argument")
            try:
                arguments.append(_anchor_arguments(**act))
            except TypeError:
                missing = [name for name in ANCHOR_FIELDS[:6] if name not in act]
                raise InvalidArgument(f"acts[{index}].{missing[0]}", "missing") from None
            except InvalidArgument as error:
                raise InvalidArgument(f"acts[{index}].{error.field}", error.why) from None
        if not arguments:
            return []
        if self.signer is None:
            raise InvalidArgument(
                "signer", "this client has no signer key: give one to sign transactions"
            )
        height = (await self.status())["height"]
        chain_id = await self.chain_id()
        transactions = [self._sign("deeds", "anchor", args, chain_id, height) for args in arguments]
        outcomes = await self.submit_many(transactions, wait_s=wait_s)
        return [
            {**outcome, "digest": args["digest"].hex()}
            for outcome, args in zip(outcomes, arguments, strict=True)
        ]

    async def anchor_file(
        self,
        path: str | os.PathLike,
        *,
        issuer: str,
        reference: str,
        kind: str,
        act_date: datetime.date | str,
        title: str,
        legal_basis: str | None = None,
        url: str | None = None,
        person_commitment: bytes | str | None = None,
        deliberation: dict[str, Any] | None = None,
        wait_s: float | None = DEFAULT_WAIT_S,
    ) -> dict[str, Any]:
        """Hash a file locally (it is never sent) and anchor its digest (see :meth:`anchor`).
        Raises OSError if the file cannot be read."""
        return await self.anchor(
            issuer=issuer,
            reference=reference,
            kind=kind,
            digest=digest_of_file(path),
            act_date=act_date,
            title=title,
            legal_basis=legal_basis,
            url=url,
            person_commitment=person_commitment,
            deliberation=deliberation,
            wait_s=wait_s,
        )

    async def change_status(
        self,
        action: str,
        *,
        issuer: str,
        reference: str,
        wait_s: float | None = DEFAULT_WAIT_S,
        **fields: Any,
    ) -> dict[str, Any]:
        """Change an act's status: ``amend`` or ``supersede`` (``by_reference=`` the newer
        act of the same issuer), ``withdraw`` or ``annul`` (``reason=``, and optionally
        ``decision_reference=``). :meth:`amend`, :meth:`supersede`, :meth:`withdraw` and
        :meth:`annul` say the same more plainly. Returns the committed status document plus
        ``tx_id``; see :meth:`submit` for ``wait_s`` and what it raises."""
        if action not in _STATUS_CHANGES:
            raise InvalidArgument(
                "action", f"unknown status change {action!r}: one of {', '.join(_STATUS_CHANGES)}"
            )
        given = {name: value for name, value in fields.items() if value is not None}
        unexpected = sorted(set(given) - set(_STATUS_CHANGES[action]))
        if unexpected:
            raise InvalidArgument(unexpected[0], f"{action} takes no {unexpected[0]}")
        needed = _STATUS_CHANGES[action][0]
        if needed not in given:
            raise InvalidArgument(needed, f"{action} needs {needed}")
        args = {"issuer": _text(issuer, "issuer"), "reference": _text(reference, "reference")}
        args.update({name: _text(value, name) for name, value in given.items()})
        _check_wait(wait_s)
        transaction = await self.build("deeds", action, args)
        answer = await self.submit(transaction, wait_s=wait_s)
        return {**answer, "tx_id": transaction.tx_id.hex()}

    async def amend(
        self, issuer: str, reference: str, *, by: str, wait_s: float | None = DEFAULT_WAIT_S
    ) -> dict[str, Any]:
        """Record that the act ``reference`` is amended by the act ``by`` (same issuer, both
        active and anchored): its status becomes ``amended`` and both acts link each other."""
        return await self.change_status(
            "amend", issuer=issuer, reference=reference, by_reference=by, wait_s=wait_s
        )

    async def supersede(
        self, issuer: str, reference: str, *, by: str, wait_s: float | None = DEFAULT_WAIT_S
    ) -> dict[str, Any]:
        """Record that the act ``reference`` is replaced by the act ``by`` (same issuer): its
        status becomes ``superseded``, final."""
        return await self.change_status(
            "supersede", issuer=issuer, reference=reference, by_reference=by, wait_s=wait_s
        )

    async def withdraw(
        self,
        issuer: str,
        reference: str,
        *,
        reason: str,
        decision_reference: str | None = None,
        wait_s: float | None = DEFAULT_WAIT_S,
    ) -> dict[str, Any]:
        """Withdraw the act ``reference`` (by its issuer's own decision, cited as
        ``decision_reference`` if given): its status becomes ``withdrawn``, final."""
        return await self.change_status(
            "withdraw",
            issuer=issuer,
            reference=reference,
            reason=reason,
            decision_reference=decision_reference,
            wait_s=wait_s,
        )

    async def annul(
        self,
        issuer: str,
        reference: str,
        *,
        reason: str,
        decision_reference: str | None = None,
        wait_s: float | None = DEFAULT_WAIT_S,
    ) -> dict[str, Any]:
        """Record that the act ``reference`` was annulled (by a court, say; the judgment
        cited as ``decision_reference`` if given): its status becomes ``annulled``, final."""
        return await self.change_status(
            "annul",
            issuer=issuer,
            reference=reference,
            reason=reason,
            decision_reference=decision_reference,
            wait_s=wait_s,
        )

    # --- governance (membership) ---------------------------------------------------------------
    #
    # A member proposes a change and the members vote (3 of 4 pass it; the change is in force
    # from the block after the deciding vote). The client's signer is the proposer's or the
    # voter's node key, or a key it delegated ``membership.govern`` to. Issuers never govern.

    async def propose(
        self, proposer: str, change: dict[str, Any], *, wait_s: float | None = DEFAULT_WAIT_S
    ) -> dict[str, Any]:
        """Propose a governance ``change`` (a membership change document: ``admit``,
        ``remove``, ``set_parameters``, ``admit_issuers``, ``suspend_issuer``,
        ``reinstate_issuer``, ``remove_issuer``, ``schedule_format`` or ``set_member_siret``)
        as the member ``proposer``, whose vote it carries. Returns the committed status
        document plus ``tx_id`` and ``proposal_id`` (hex; the same); its ``result`` is
        ``{"proposal_id", "status"}`` (``passed`` with ``effective_height`` when this vote
        alone decided it). The node checks the change; see :meth:`submit` for ``wait_s`` and
        what it raises."""
        proposer = _principal(proposer, "proposer")
        if not isinstance(change, dict) or not isinstance(change.get("kind"), str):
            raise InvalidArgument("change", "expected a change map with its 'kind'")
        _check_wait(wait_s)
        transaction = await self.build(
            "membership", "propose", {"proposer": proposer, "change": change}
        )
        answer = await self.submit(transaction, wait_s=wait_s)
        tx_hex = transaction.tx_id.hex()
        return {**answer, "tx_id": tx_hex, "proposal_id": tx_hex}

    async def vote(
        self,
        proposal_id: bytes | str,
        voter: str,
        approve: bool,
        *,
        wait_s: float | None = DEFAULT_WAIT_S,
    ) -> dict[str, Any]:
        """Vote on an open proposal (``proposal_id``: 32 bytes or 64 hex) as the member
        ``voter``. Returns the committed status document plus ``tx_id``; its ``result`` is
        ``{"proposal_id", "status"}``: ``passed`` (with ``effective_height``, the first
        height the change is in force), ``rejected`` or still ``open``. Rejections:
        ``unknown_proposal``, ``proposal_closed``, ``proposal_expired``, ``double_vote``,
        ``not_a_member``, …"""
        proposal = _digest(proposal_id, "proposal_id")
        voter = _principal(voter, "voter")
        if type(approve) is not bool:
            raise InvalidArgument("approve", f"expected True or False, not {approve!r}")
        _check_wait(wait_s)
        transaction = await self.build(
            "membership", "vote", {"proposal_id": proposal, "voter": voter, "approve": approve}
        )
        answer = await self.submit(transaction, wait_s=wait_s)
        return {**answer, "tx_id": transaction.tx_id.hex()}

    async def admit_issuers(
        self,
        proposer: str,
        issuers: Sequence[dict[str, Any]],
        *,
        wait_s: float | None = DEFAULT_WAIT_S,
    ) -> list[str]:
        """Propose the admission of ``issuers`` (maps of ``id``, ``name``, ``siret`` — 14
        digits or None — and ``public_key``, ``ed25519:…`` text or 32 bytes), in proposals
        of at most :data:`ISSUERS_PER_PROPOSAL_MAX`, in the order given. Every issuer is
        checked before anything is sent (:class:`InvalidArgument` names the first bad field,
        ``issuers[7].siret``). Returns the proposals' ids (hex), for the other members' votes.
        A proposal refused by the node stops the rest (the ids of those already made are in
        the exception's ``proposal_ids``)."""
        proposer = _principal(proposer, "proposer")
        checked = _issuer_applications(issuers)
        _check_wait(wait_s)
        made: list[str] = []
        for start in range(0, len(checked), ISSUERS_PER_PROPOSAL_MAX):
            change = {
                "kind": "admit_issuers",
                "issuers": checked[start : start + ISSUERS_PER_PROPOSAL_MAX],
            }
            try:
                answer = await self.propose(proposer, change, wait_s=wait_s)
            except SceauError as error:
                error.proposal_ids = list(made)  # type: ignore[attr-defined]
                raise
            made.append(answer["proposal_id"])
        return made

    async def schedule_format(
        self,
        proposer: str,
        format_version: int,
        height: int,
        *,
        wait_s: float | None = DEFAULT_WAIT_S,
    ) -> dict[str, Any]:
        """Propose to move the chain to header format ``format_version`` from block
        ``height`` (membership 1.2); once passed, every node must run software that knows
        that format before ``height``. A schedule not in force yet with the same version is
        moved to the new height. Rejections: ``format_not_newer``, ``format_schedule_order``,
        ``format_height_passed``, ``too_many_format_changes``. See :meth:`propose`."""
        for name, value, low, high in (
            ("format_version", format_version, 2, 65_535),
            ("height", height, 2, 2**63 - 1),
        ):
            if type(value) is not int or not low <= value <= high:
                raise InvalidArgument(name, f"expected an integer from {low} to {high}")
        change = {"kind": "schedule_format", "format_version": format_version, "height": height}
        return await self.propose(proposer, change, wait_s=wait_s)

    async def set_member_siret(
        self,
        proposer: str,
        member_id: str,
        siret: str | None,
        *,
        wait_s: float | None = DEFAULT_WAIT_S,
    ) -> dict[str, Any]:
        """Propose to set the SIRET of the member ``member_id`` (14 digits), or with None to
        clear it (membership 1.3); ``unknown_member`` if it is not a member. See
        :meth:`propose`."""
        if siret is not None:
            try:
                siret = _SIRET.validate_python(siret, strict=True)
            except ValidationError:
                raise InvalidArgument("siret", "expected 14 digits, or None") from None
        change = {
            "kind": "set_member_siret",
            "member_id": _principal(member_id, "member_id"),
            "siret": siret,
        }
        return await self.propose(proposer, change, wait_s=wait_s)

    async def _issuer_status(
        self, kind: str, proposer: str, issuer_id: str, wait_s: float | None
    ) -> dict[str, Any]:
        assert kind in _ISSUER_STATUS_CHANGES, kind
        change = {"kind": kind, "issuer_id": _principal(issuer_id, "issuer_id")}
        return await self.propose(proposer, change, wait_s=wait_s)

    async def suspend_issuer(
        self, proposer: str, issuer_id: str, *, wait_s: float | None = DEFAULT_WAIT_S
    ) -> dict[str, Any]:
        """Propose to suspend an active issuer: once passed, none of its keys signs (its acts
        stay); ``invalid_issuer_transition`` if it is not active. See :meth:`propose`."""
        return await self._issuer_status("suspend_issuer", proposer, issuer_id, wait_s)

    async def reinstate_issuer(
        self, proposer: str, issuer_id: str, *, wait_s: float | None = DEFAULT_WAIT_S
    ) -> dict[str, Any]:
        """Propose to reinstate a suspended issuer (its keys and delegations sign again).
        See :meth:`propose`."""
        return await self._issuer_status("reinstate_issuer", proposer, issuer_id, wait_s)

    async def remove_issuer(
        self, proposer: str, issuer_id: str, *, wait_s: float | None = DEFAULT_WAIT_S
    ) -> dict[str, Any]:
        """Propose to remove an issuer, active or suspended, for good: it never signs again
        and its id is never given again (its acts stay). See :meth:`propose`."""
        return await self._issuer_status("remove_issuer", proposer, issuer_id, wait_s)

    # --- a principal's own key (a member's or an issuer's) -------------------------------------

    async def rotate_key(
        self,
        principal: str,
        new_public_key: bytes | str,
        *,
        wait_s: float | None = DEFAULT_WAIT_S,
    ) -> dict[str, Any]:
        """Replace ``principal``'s own key (a member's node key or an issuer's key) by
        ``new_public_key``, from the next height; the client's signer must be the current
        key. Returns the committed status document plus ``tx_id``."""
        args = {
            "member_id": _principal(principal, "principal"),
            "new_public_key": _public_key(new_public_key, "new_public_key"),
        }
        return await self._own(args, "rotate_key", wait_s)

    async def delegate(
        self,
        principal: str,
        signer: bytes | str,
        roles: Sequence[str],
        *,
        until: int | None = None,
        wait_s: float | None = DEFAULT_WAIT_S,
    ) -> dict[str, Any]:
        """Delegate ``roles`` (``["deeds.issue"]``…) of ``principal`` to the key ``signer``
        (an application's), until the height ``until`` included (None: until revoked). The
        client's signer must be the principal's own key. An issuer cannot delegate
        ``membership.govern``. Returns the committed status document plus ``tx_id``."""
        args = {
            "member_id": _principal(principal, "principal"),
            "signer": _public_key(signer, "signer"),
            "roles": _roles(roles),
            "expiry_height": None if until is None else _height(until, "until"),
        }
        return await self._own(args, "delegate", wait_s)

    async def revoke(
        self, principal: str, signer: bytes | str, *, wait_s: float | None = DEFAULT_WAIT_S
    ) -> dict[str, Any]:
        """Revoke what ``principal`` delegated to the key ``signer`` (``unknown_delegation``
        if nothing). Returns the committed status document plus ``tx_id``."""
        args = {
            "member_id": _principal(principal, "principal"),
            "signer": _public_key(signer, "signer"),
        }
        return await self._own(args, "revoke", wait_s)

    async def _own(self, args: dict[str, Any], action: str, wait_s: float | None) -> dict[str, Any]:
        _check_wait(wait_s)
        transaction = await self.build("membership", action, args)
        answer = await self.submit(transaction, wait_s=wait_s)
        return {**answer, "tx_id": transaction.tx_id.hex()}


def _invalid_transaction(error: ModelDecodeError, args: dict[str, Any]) -> InvalidTransaction:
    """The readable form of a transaction the model refuses, naming the argument at fault: one
    that cannot be encoded, or the largest when the arguments are too large together."""
    text = str(error)
    field, _, why = text.partition(": ")
    field = field.removeprefix("Transaction.") if why else "transaction"
    why = (why or text).removeprefix("Value error, ")
    if field != "args" or not args:
        return InvalidTransaction(field, why)
    sizes = {}
    for name, value in args.items():
        try:
            sizes[name] = len(encoding.pack(value))
        except (TypeError, ValueError):
            return InvalidTransaction(name, why)
    if "bytes, over" not in why:
        return InvalidTransaction(field, why)
    largest = max(sizes, key=sizes.__getitem__)
    value = args[largest]
    size = f"{len(value):,} characters" if isinstance(value, str) else f"{sizes[largest]:,} bytes"
    return InvalidTransaction(largest, f"{size}: {why}")


def _final(error: ApiError, transaction: Transaction) -> TransactionRejected:
    """The typed, final form of a node's refusal of ``transaction``."""
    kind = TransactionExpired if error.code == "expired_transaction" else TransactionRejected
    return kind(error.status, error.code, error.detail, tx_id=transaction.tx_id.hex())


def _outcome_of(error: ApiError) -> str:
    if isinstance(error, TransactionExpired):
        return "expired"
    if isinstance(error, TransactionRejected):
        return "rejected"
    return "busy" if error.status in (429, 503) else "server_error"


# --- the synchronous client -------------------------------------------------------------------


class Client:
    """Synchronous twin of :class:`AsyncClient`, for scripts: the same methods with the same
    arguments and documentation, each running its coroutine on the client's own event loop.

    Use it from code that runs no event loop of its own (inside one, use :class:`AsyncClient`).
    """

    def __init__(
        self,
        base_url: str | Sequence[str],
        *,
        signer: crypto.PrivateKey | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        expiry_blocks: int = DEFAULT_EXPIRY_BLOCKS,
        retry_interval_s: float = RETRY_INTERVAL_S,
        observer: Callable[[SubmissionEvent], None] | None = None,
        ca_file: str | os.PathLike | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._client = AsyncClient(
            base_url,
            signer=signer,
            timeout_s=timeout_s,
            expiry_blocks=expiry_blocks,
            retry_interval_s=retry_interval_s,
            observer=observer,
            ca_file=ca_file,
            ssl_context=ssl_context,
        )
        self._loop = asyncio.new_event_loop()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self, coroutine: Awaitable[T]) -> T:
        return self._loop.run_until_complete(coroutine)

    @property
    def endpoints(self) -> tuple[str, ...]:
        """The API base URLs the client uses, in the order given."""
        return self._client.endpoints

    @property
    def signer(self) -> crypto.PrivateKey | None:
        """The key that signs the client's transactions (None: a read-only client)."""
        return self._client.signer

    def close(self) -> None:
        if not self._loop.is_closed():
            self._loop.run_until_complete(self._client.close())
            self._loop.close()

    # --- reads --------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return self._run(self._client.status())

    def chain_id(self) -> bytes:
        return self._run(self._client.chain_id())

    def transaction(self, tx_id: bytes | str) -> dict[str, Any]:
        return self._run(self._client.transaction(tx_id))

    def block(self, height: int | None = None) -> dict[str, Any]:
        return self._run(self._client.block(height))

    def act(self, issuer: str, reference: str) -> dict[str, Any]:
        return self._run(self._client.act(issuer, reference))

    def acts_by_digest(self, digest: bytes | str) -> list[dict[str, Any]]:
        return self._run(self._client.acts_by_digest(digest))

    def history(self, issuer: str, reference: str) -> list[dict[str, Any]]:
        return self._run(self._client.history(issuer, reference))

    def acts(
        self,
        issuer: str,
        *,
        date_from: datetime.date | str | None = None,
        date_to: datetime.date | str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        return self._run(
            self._client.acts(issuer, date_from=date_from, date_to=date_to, limit=limit)
        )

    def members(self) -> list[dict[str, Any]]:
        return self._run(self._client.members())

    def issuers(
        self, *, after: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        return self._run(self._client.issuers(after=after, limit=limit))

    def issuer(self, issuer_id: str) -> dict[str, Any]:
        return self._run(self._client.issuer(issuer_id))

    def proposals(self) -> list[dict[str, Any]]:
        return self._run(self._client.proposals())

    def receipt(self, tx_id: bytes | str, *, with_status: bool = False) -> dict[str, Any] | None:
        return self._run(self._client.receipt(tx_id, with_status=with_status))

    def tlog_proof(self, tx_id: bytes | str) -> bytes | None:
        return self._run(self._client.tlog_proof(tx_id))

    def log_inclusion(self, index: int, size: int) -> list[bytes]:
        return self._run(self._client.log_inclusion(index, size))

    def log_consistency(self, old_size: int, new_size: int) -> list[bytes]:
        return self._run(self._client.log_consistency(old_size, new_size))

    def query(self, contract: str, path: str, *, proof: bool = False) -> dict[str, Any]:
        return self._run(self._client.query(contract, path, proof=proof))

    # --- writes -------------------------------------------------------------------------------

    def build(self, contract: str, action: str, args: dict[str, Any]) -> Transaction:
        return self._run(self._client.build(contract, action, args))

    def submit(self, transaction: Transaction, *, wait_s: float | None = None) -> Any:
        return self._run(self._client.submit(transaction, wait_s=wait_s))

    def wait_for_commit(self, tx_id: bytes | str, *, timeout_s: float = 30.0) -> Any:
        return self._run(self._client.wait_for_commit(tx_id, timeout_s=timeout_s))

    def submit_many(
        self, transactions: Sequence[Transaction], *, wait_s: float | None = None
    ) -> list[dict[str, Any]]:
        return self._run(self._client.submit_many(transactions, wait_s=wait_s))

    def anchor_many(
        self, acts: Sequence[dict[str, Any]], *, wait_s: float | None = DEFAULT_WAIT_S
    ) -> list[dict[str, Any]]:
        return self._run(self._client.anchor_many(acts, wait_s=wait_s))

    def anchor(
        self,
        *,
        issuer: str,
        reference: str,
        kind: str,
        digest: bytes | str,
        act_date: datetime.date | str,
        title: str,
        legal_basis: str | None = None,
        url: str | None = None,
        person_commitment: bytes | str | None = None,
        deliberation: dict[str, Any] | None = None,
        wait_s: float | None = DEFAULT_WAIT_S,
    ) -> dict[str, Any]:
        return self._run(
            self._client.anchor(
                issuer=issuer,
                reference=reference,
                kind=kind,
                digest=digest,
                act_date=act_date,
                title=title,
                legal_basis=legal_basis,
                url=url,
                person_commitment=person_commitment,
                deliberation=deliberation,
                wait_s=wait_s,
            )
        )

    def anchor_file(
        self,
        path: str | os.PathLike,
        *,
        issuer: str,
        reference: str,
        kind: str,
        act_date: datetime.date | str,
        title: str,
        legal_basis: str | None = None,
        url: str | None = None,
        person_commitment: bytes | str | None = None,
        deliberation: dict[str, Any] | None = None,
        wait_s: float | None = DEFAULT_WAIT_S,
    ) -> dict[str, Any]:
        return self._run(
            self._client.anchor_file(
                path,
                issuer=issuer,
                reference=reference,
                kind=kind,
                act_date=act_date,
                title=title,
                legal_basis=legal_basis,
                url=url,
                person_commitment=person_commitment,
                deliberation=deliberation,
                wait_s=wait_s,
            )
        )

    def change_status(
        self,
        action: str,
        *,
        issuer: str,
        reference: str,
        wait_s: float | None = DEFAULT_WAIT_S,
        **fields: Any,
    ) -> dict[str, Any]:
        return self._run(
            self._client.change_status(
                action, issuer=issuer, reference=reference, wait_s=wait_s, **fields
            )
        )

    def amend(
        self, issuer: str, reference: str, *, by: str, wait_s: float | None = DEFAULT_WAIT_S
    ) -> dict[str, Any]:
        return self._run(self._client.amend(issuer, reference, by=by, wait_s=wait_s))

    def supersede(
        self, issuer: str, reference: str, *, by: str, wait_s: float | None = DEFAULT_WAIT_S
    ) -> dict[str, Any]:
        return self._run(self._client.supersede(issuer, reference, by=by, wait_s=wait_s))

    def withdraw(
        self,
        issuer: str,
        reference: str,
        *,
        reason: str,
        decision_reference: str | None = None,
        wait_s: float | None = DEFAULT_WAIT_S,
    ) -> dict[str, Any]:
        return self._run(
            self._client.withdraw(
                issuer,
                reference,
                reason=reason,
                decision_reference=decision_reference,
                wait_s=wait_s,
            )
        )

    def annul(
        self,
        issuer: str,
        reference: str,
        *,
        reason: str,
        decision_reference: str | None = None,
        wait_s: float | None = DEFAULT_WAIT_S,
    ) -> dict[str, Any]:
        return self._run(
            self._client.annul(
                issuer,
                reference,
                reason=reason,
                decision_reference=decision_reference,
                wait_s=wait_s,
            )
        )

    # --- governance (membership) ---------------------------------------------------------------

    def propose(
        self, proposer: str, change: dict[str, Any], *, wait_s: float | None = DEFAULT_WAIT_S
    ) -> dict[str, Any]:
        return self._run(self._client.propose(proposer, change, wait_s=wait_s))

    def vote(
        self,
        proposal_id: bytes | str,
        voter: str,
        approve: bool,
        *,
        wait_s: float | None = DEFAULT_WAIT_S,
    ) -> dict[str, Any]:
        return self._run(self._client.vote(proposal_id, voter, approve, wait_s=wait_s))

    def admit_issuers(
        self,
        proposer: str,
        issuers: Sequence[dict[str, Any]],
        *,
        wait_s: float | None = DEFAULT_WAIT_S,
    ) -> list[str]:
        return self._run(self._client.admit_issuers(proposer, issuers, wait_s=wait_s))

    def schedule_format(
        self,
        proposer: str,
        format_version: int,
        height: int,
        *,
        wait_s: float | None = DEFAULT_WAIT_S,
    ) -> dict[str, Any]:
        return self._run(
            self._client.schedule_format(proposer, format_version, height, wait_s=wait_s)
        )

    def set_member_siret(
        self,
        proposer: str,
        member_id: str,
        siret: str | None,
        *,
        wait_s: float | None = DEFAULT_WAIT_S,
    ) -> dict[str, Any]:
        return self._run(self._client.set_member_siret(proposer, member_id, siret, wait_s=wait_s))

    def suspend_issuer(
        self, proposer: str, issuer_id: str, *, wait_s: float | None = DEFAULT_WAIT_S
    ) -> dict[str, Any]:
        return self._run(self._client.suspend_issuer(proposer, issuer_id, wait_s=wait_s))

    def reinstate_issuer(
        self, proposer: str, issuer_id: str, *, wait_s: float | None = DEFAULT_WAIT_S
    ) -> dict[str, Any]:
        return self._run(self._client.reinstate_issuer(proposer, issuer_id, wait_s=wait_s))

    def remove_issuer(
        self, proposer: str, issuer_id: str, *, wait_s: float | None = DEFAULT_WAIT_S
    ) -> dict[str, Any]:
        return self._run(self._client.remove_issuer(proposer, issuer_id, wait_s=wait_s))

    def rotate_key(
        self,
        principal: str,
        new_public_key: bytes | str,
        *,
        wait_s: float | None = DEFAULT_WAIT_S,
    ) -> dict[str, Any]:
        return self._run(self._client.rotate_key(principal, new_public_key, wait_s=wait_s))

    def delegate(
        self,
        principal: str,
        signer: bytes | str,
        roles: Sequence[str],
        *,
        until: int | None = None,
        wait_s: float | None = DEFAULT_WAIT_S,
    ) -> dict[str, Any]:
        return self._run(
            self._client.delegate(principal, signer, roles, until=until, wait_s=wait_s)
        )

    def revoke(
        self, principal: str, signer: bytes | str, *, wait_s: float | None = DEFAULT_WAIT_S
    ) -> dict[str, Any]:
        return self._run(self._client.revoke(principal, signer, wait_s=wait_s))


def _share_documentation() -> None:
    """Each synchronous method carries its asynchronous twin's docstring (one text, so the
    two cannot drift; ``help(Client.anchor)`` shows it)."""
    for name, method in vars(Client).items():
        twin = getattr(AsyncClient, name, None)
        if callable(method) and not name.startswith("_") and twin is not None:
            method.__doc__ = twin.__doc__


_share_documentation()
