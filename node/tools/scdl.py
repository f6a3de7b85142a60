"""Deliberations as open data: the SCDL "Délibérations" (version 2.1.5) file and its proofs.

The *Socle commun des données locales* (SCDL) is the common schema French open-data portals
validate local authorities' publications against; its "Délibérations" schema is one CSV row per
deliberation, 17 columns in a fixed order. ``sceau export acts --format scdl-deliberations``
writes that file from the chain (docs/operations.md, "Publishing deliberations as open data"):

* one row per act of kind ``deliberation`` **in force** (``in_force`` or ``amended``): an
  amended act keeps its row (it is still in force, as amended; the amending deliberation has
  its own row), a superseded act is replaced by the act that superseded it (which has its own
  row: its latest version), a withdrawn or annulled act is left out;
* the collectivity of a row is the act's issuer, a member or an admitted issuer: its name
  (COLL_NOM) and SIRET (COLL_SIRET) come from the membership state;
* a row lacking a value the schema requires (the collectivity has no SIRET; the act was
  anchored without a subject code or name) cannot be valid: it is *incomplete*, and the caller
  decides whether that fails the export or skips the row.

Beside it, a companion file links each row to its proof: the transaction that anchored the act
(``sceau receipt TX_ID --with-status`` proves its digest and its current status offline from the
genesis), so a reader of the open data can check any row against the chain.

Both are CSV in UTF-8 without a byte-order mark, comma-separated, CRLF line ends (RFC 4180),
fields quoted only when they hold a comma, a quote or a line break, and a header row.
"""

from __future__ import annotations

import csv
import datetime
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "PROOF_COLUMNS",
    "SCDL_COLUMNS",
    "Collectivity",
    "DeliberationAct",
    "Export",
    "Incomplete",
    "acts_from_api",
    "acts_from_state",
    "build_export",
    "check_scdl",
    "collectivities_from_api",
    "collectivities_from_state",
]

SCDL_COLUMNS = (
    "COLL_NOM",
    "COLL_SIRET",
    "DELIB_ID",
    "DELIB_DATE",
    "DELIB_MATIERE_CODE",
    "DELIB_MATIERE_NOM",
    "DELIB_OBJET",
    "BUDGET_ANNEE",
    "BUDGET_NOM",
    "PREF_ID",
    "PREF_DATE",
    "VOTE_EFFECTIF",
    "VOTE_REEL",
    "VOTE_POUR",
    "VOTE_CONTRE",
    "VOTE_ABSTENTION",
    "DELIB_URL",
)
"""The schema's columns, in its order: a validator refuses any other header."""
REQUIRED_COLUMNS = (
    "COLL_NOM",
    "COLL_SIRET",
    "DELIB_ID",
    "DELIB_DATE",
    "DELIB_MATIERE_CODE",
    "DELIB_MATIERE_NOM",
    "DELIB_OBJET",
)
PROOF_COLUMNS = ("DELIB_ID", "COLL_SIRET", "issuer", "tx_id", "height", "digest")
"""The companion file's columns: the row's keys, then where its proof is."""
PROOF_EXTRA_COLUMNS = PROOF_COLUMNS[2:]
"""What ``--proof-columns`` appends to the SCDL file itself (off by default: validators flag
columns the schema does not have)."""
IN_FORCE_STATUSES = frozenset({"in_force", "amended"})
_VOTE_COLUMNS = (
    ("VOTE_EFFECTIF", "entitled"),
    ("VOTE_REEL", "cast"),
    ("VOTE_POUR", "for"),
    ("VOTE_CONTRE", "against"),
    ("VOTE_ABSTENTION", "abstention"),
)
_WHY_MISSING = {
    "COLL_NOM": "the issuer is no longer a member or an issuer, so it has no name",
    "COLL_SIRET": "the collectivity has no SIRET (sceau governance set-siret, or an issuer "
    "admitted with --siret)",
    "DELIB_MATIERE_CODE": "anchored without a subject code (--subject-code)",
    "DELIB_MATIERE_NOM": "anchored without a subject name (--subject-name)",
}
API_PAGE_ACTS = 1000
"""Acts asked of a node per request (the API's largest page)."""


@dataclass(frozen=True, slots=True)
class Collectivity:
    """A member or an issuer: what a row says of the collectivity that issued the act."""

    id: str
    name: str
    siret: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliberationAct:
    """One act as the export reads it (a store's record or a node's answer), with the
    transaction and height that anchored it."""

    issuer: str
    reference: str
    act_date: str
    title: str
    url: str | None
    digest: str
    """Lowercase hex."""
    tx_id: str
    """The anchoring transaction, lowercase hex."""
    height: int
    subject_code: str | None
    subject_name: str | None
    votes: Mapping[str, int] | None
    budget_year: str | None
    budget_name: str | None
    control_entity: str | None
    control_date: str | None


@dataclass(frozen=True, slots=True)
class Incomplete:
    """An act whose row would lack required values: ``missing`` names each column, and why."""

    issuer: str
    reference: str
    missing: tuple[tuple[str, str], ...]

    def describe(self) -> str:
        lacks = "; ".join(f"{column}: {why}" for column, why in self.missing)
        return f"{self.issuer}/{self.reference} lacks {lacks}"


@dataclass(frozen=True, slots=True)
class Export:
    """The rows of the SCDL file (each a map of column to text) and the acts left out."""

    rows: tuple[dict[str, str], ...]
    incomplete: tuple[Incomplete, ...]

    def scdl_text(self, *, proof_columns: bool = False) -> str:
        """The SCDL file (with the proof columns appended if asked)."""
        columns = SCDL_COLUMNS + (PROOF_EXTRA_COLUMNS if proof_columns else ())
        return _csv_text(columns, self.rows)

    def proofs_text(self) -> str:
        """The companion file: one line per row, in the same order."""
        return _csv_text(PROOF_COLUMNS, self.rows)


def _csv_text(columns: tuple[str, ...], rows: Iterable[Mapping[str, str]]) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180: CRLF, minimal quoting
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row[column] for column in columns])
    return buffer.getvalue()


def build_export(
    collectivities: Mapping[str, Collectivity], acts: Iterable[DeliberationAct]
) -> Export:
    """The rows of ``acts`` (deliberations in force, already selected), sorted by issuer, act
    date and reference, and the acts whose rows would be incomplete."""
    rows: list[dict[str, str]] = []
    incomplete: list[Incomplete] = []
    for act in sorted(acts, key=lambda act: (act.issuer, act.act_date, act.reference)):
        collectivity = collectivities.get(act.issuer)
        row = _row(collectivity, act)
        missing = tuple(
            (column, _WHY_MISSING.get(column, "missing"))
            for column in REQUIRED_COLUMNS
            if not row[column]
        )
        if missing:
            incomplete.append(Incomplete(act.issuer, act.reference, missing))
        else:
            rows.append(row)
    return Export(rows=tuple(rows), incomplete=tuple(incomplete))


def _row(collectivity: Collectivity | None, act: DeliberationAct) -> dict[str, str]:
    votes = act.votes or {}
    row = {
        "COLL_NOM": "" if collectivity is None else collectivity.name,
        "COLL_SIRET": (collectivity.siret if collectivity is not None else None) or "",
        "DELIB_ID": act.reference,
        "DELIB_DATE": act.act_date,
        "DELIB_MATIERE_CODE": act.subject_code or "",
        "DELIB_MATIERE_NOM": act.subject_name or "",
        "DELIB_OBJET": act.title,
        "BUDGET_ANNEE": act.budget_year or "",
        "BUDGET_NOM": act.budget_name or "",
        "PREF_ID": act.control_entity or "",
        "PREF_DATE": act.control_date or "",
        **{column: str(votes[name]) if name in votes else "" for column, name in _VOTE_COLUMNS},
        "DELIB_URL": act.url or "",
        "issuer": act.issuer,
        "tx_id": act.tx_id,
        "height": str(act.height),
        "digest": act.digest,
    }
    return row


# --- reading a chain's state (a stopped node's store, a replayed bundle) ------------------------


def collectivities_from_state(state: Any) -> dict[str, Collectivity]:
    """The members in force and every issuer (whatever its status: a removed issuer's acts
    stay) of the membership state in ``state`` (anything with ``state_get``/``state_items``)."""
    from contracts.base import decode_record
    from ledger.namespace import MEMBERS_STATE_KEY, MEMBERSHIP_NAMESPACE

    found: dict[str, Collectivity] = {}
    for _, value in state.state_items(MEMBERSHIP_NAMESPACE.key(b"issuer/")):
        issuer = decode_record(value)
        found[issuer["id"]] = Collectivity(issuer["id"], issuer["name"], issuer["siret"])
    for member in decode_record(state.state_get(MEMBERS_STATE_KEY)):
        found[member["id"]] = Collectivity(member["id"], member["name"], member.get("siret"))
    return found


def acts_from_state(state: Any, issuer: str | None = None) -> Iterator[DeliberationAct]:
    """The deliberations in force of ``state`` (of one ``issuer``, or of every one)."""
    from contracts.base import decode_record
    from contracts.deeds import DEEDS_KEYS

    prefix = DEEDS_KEYS.acts_prefix if issuer is None else DEEDS_KEYS.act(issuer, "")
    for key, value in state.state_items(prefix):
        record = decode_record(value)
        if record["kind"] != "deliberation" or record["status"] not in IN_FORCE_STATUSES:
            continue
        act_issuer, reference = DEEDS_KEYS.act_of(key)
        anchoring = state.state_get(DEEDS_KEYS.history(act_issuer, reference, 0))
        assert anchoring is not None, "every act has its anchoring in its history"
        entry = decode_record(anchoring)
        yield _act(record, tx_id=entry["tx_id"].hex(), height=entry["height"])


def _act(record: Mapping[str, Any], *, tx_id: str, height: int) -> DeliberationAct:
    digest = record["digest"]
    return DeliberationAct(
        issuer=record["issuer"],
        reference=record["reference"],
        act_date=record["act_date"],
        title=record["title"],
        url=record["url"],
        digest=digest.hex() if isinstance(digest, bytes) else digest,
        tx_id=tx_id,
        height=height,
        subject_code=record.get("subject_code"),
        subject_name=record.get("subject_name"),
        votes=record.get("votes"),
        budget_year=record.get("budget_year"),
        budget_name=record.get("budget_name"),
        control_entity=record.get("control_entity"),
        control_date=record.get("control_date"),
    )


# --- reading through a node's API -------------------------------------------------------------


def collectivities_from_api(client: Any) -> dict[str, Collectivity]:
    """The members in force and every issuer, as a node answers (``ledger.client.Client``)."""
    found: dict[str, Collectivity] = {}
    after = None
    while True:
        page = client.issuers(after=after, limit=1000)
        for issuer in page:
            found[issuer["id"]] = Collectivity(issuer["id"], issuer["name"], issuer.get("siret"))
        if len(page) < 1000:
            break
        after = page[-1]["id"]
    for member in client.members():
        found[member["id"]] = Collectivity(member["id"], member["name"], member.get("siret"))
    return found


class PagingError(Exception):
    """The node's pages cannot be walked (more acts on one date than one page holds)."""


def acts_from_api(
    client: Any, issuers: Iterable[str], *, page_acts: int = API_PAGE_ACTS
) -> Iterator[DeliberationAct]:
    """The deliberations in force of each of ``issuers``, as a node answers: their acts page by
    page in date order, then the history of each deliberation kept (its anchoring). Raises
    PagingError if more than ``page_acts`` acts of one issuer share one date."""
    for issuer in issuers:
        for record in _issuer_acts(client, issuer, page_acts):
            if record["kind"] != "deliberation" or record["status"] not in IN_FORCE_STATUSES:
                continue
            anchoring = client.history(issuer, record["reference"])[0]
            assert anchoring["action"] == "anchor", anchoring
            yield _act(record, tx_id=anchoring["tx_id"], height=anchoring["height"])


def _issuer_acts(client: Any, issuer: str, page_acts: int) -> Iterator[dict[str, Any]]:
    """Every act of ``issuer``: each page starts at the last date seen, whose acts already
    given are skipped (acts come by date, then reference)."""
    last: tuple[str, str] | None = None
    while True:
        page = client.acts(issuer, date_from=None if last is None else last[0], limit=page_acts)
        fresh = [act for act in page if last is None or (act["act_date"], act["reference"]) > last]
        yield from fresh
        if len(page) < page_acts:
            return
        if not fresh:
            raise PagingError(
                f"{issuer} has more than {page_acts} acts dated {last[0] if last else '?'}: "
                "export from a node's data directory instead (--data-dir)"
            )
        last = (fresh[-1]["act_date"], fresh[-1]["reference"])


# --- checking a file against the schema's rules -----------------------------------------------

_SIRET = re.compile(r"[0-9]{14}")
_SUBJECT_CODE = re.compile(r"[0-9]\.[0-9]{1,2}")
_SUBJECT_CODES = frozenset(
    f"{theme}.{sub}"
    for theme, subs in ((1, 7), (2, 3), (3, 6), (4, 5), (5, 8), (6, 5), (7, 10), (8, 9), (9, 4))
    for sub in range(1, subs + 1)
)
_BUDGET_YEAR = re.compile(r"[0-9]{4}(/[0-9]{4})?")
_PREF_ID = re.compile(r"PREF[0-9]{2}[0-9AB]|SPREF[0-9]{2}[0-9AB][0-9]|SGAR[0-9]{2}[0-9AB]")
_INTEGER = re.compile(r"[0-9]+")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s]+")
CHECK_PROBLEMS_MAX = 50
"""Problems :func:`check_scdl` reports before it stops (a wrong file has one per row)."""
CHECK_BYTES_MAX = 256 * 1024 * 1024


def _is_date(text: str) -> bool:
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        return False
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


_COLUMN_RULES: dict[str, tuple[Callable[[str], bool], str]] = {
    "COLL_SIRET": (lambda text: bool(_SIRET.fullmatch(text)), "14 digits"),
    "DELIB_DATE": (_is_date, "a date YYYY-MM-DD"),
    "DELIB_MATIERE_CODE": (
        lambda text: bool(_SUBJECT_CODE.fullmatch(text)) and text in _SUBJECT_CODES,
        "an ACTES subject code (1.1 … 9.4)",
    ),
    "BUDGET_ANNEE": (lambda text: bool(_BUDGET_YEAR.fullmatch(text)), "YYYY or YYYY/YYYY"),
    "PREF_ID": (lambda text: bool(_PREF_ID.fullmatch(text)), "PREFNNN, SPREFNNNM or SGARNNN"),
    "PREF_DATE": (_is_date, "a date YYYY-MM-DD"),
    **{
        column: (lambda text: bool(_INTEGER.fullmatch(text)), "an integer")
        for column, _ in _VOTE_COLUMNS
    },
    "DELIB_URL": (lambda text: bool(_URI.fullmatch(text)), "a URI"),
}


def check_scdl(data: bytes) -> list[str]:
    """The problems of ``data`` as a SCDL "Délibérations" 2.1.5 file (empty: it is valid):
    UTF-8 without a byte-order mark, comma-separated, exactly the schema's header, every
    required value present, every value of its type and pattern. At most CHECK_PROBLEMS_MAX."""
    if len(data) > CHECK_BYTES_MAX:
        return [f"over {CHECK_BYTES_MAX} bytes: not checked"]
    if data.startswith(b"\xef\xbb\xbf"):
        return ["starts with a UTF-8 byte-order mark"]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        return [f"not UTF-8 (byte {error.start})"]
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=","))
    if not rows or tuple(rows[0]) != SCDL_COLUMNS:
        return ["the header is not the schema's 17 columns in order: " + ",".join(SCDL_COLUMNS)]
    problems: list[str] = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(SCDL_COLUMNS):
            problems.append(f"line {line}: {len(row)} fields, expected {len(SCDL_COLUMNS)}")
            continue
        values = dict(zip(SCDL_COLUMNS, row, strict=True))
        for column in REQUIRED_COLUMNS:
            if not values[column]:
                problems.append(f"line {line}: {column} is required")
        for column, (valid, expected) in _COLUMN_RULES.items():
            if values[column] and not valid(values[column]):
                problems.append(
                    f"line {line}: {column} {values[column][:40]!r}: expected {expected}"
                )
        if len(problems) >= CHECK_PROBLEMS_MAX:
            return problems[:CHECK_PROBLEMS_MAX]
    return problems
