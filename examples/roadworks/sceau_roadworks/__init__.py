"""A register of road-works decrees: an example of a contract shipped as its own package.

A member (a town, a metropolis) publishes the decrees that close a road or restrict its
traffic for works (an *arrêté de circulation*), and may withdraw one; anyone can read the
register. The contract shows what a real plug-in uses:

* argument checks in ``check`` (no state), each refusal a :class:`Rejection` with a stable
  code (``unknown_action``, ``invalid_arguments``);
* authorisation in ``apply``: the signer must hold the role ``roadworks.publish`` for the
  issuing member (``BlockContext.authorization``) — the member's node key holds it, an
  application key holds it once the member has delegated it (membership ``delegate``);
* its state through the :class:`StateView` (``get``, ``put``, ``delete``, ``items``), every
  value canonical msgpack (``encode_record`` / ``decode_record``);
* reads in ``query``: one decree by key, and the decrees of one issuer.

State (namespace ``roadworks/``): ``decree/<issuer>/<number>`` → the decree's record.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from contracts.base import (
    BlockContext,
    Contract,
    ReadView,
    Rejection,
    StateView,
    decode_record,
    encode_record,
)
from ledger.model import Transaction

__all__ = ["PUBLISH_ROLE", "RESTRICTIONS", "RoadworksContract"]

PUBLISH_ROLE = "roadworks.publish"
"""The role a signer needs, for the issuing member, to publish or withdraw its decrees."""
RESTRICTIONS = ("closed", "single_lane", "speed_limit", "no_parking")
ROAD_CHARACTERS_MAX = 100
LISTING_MAX = 100
"""At most this many decrees in one ``decrees/<issuer>`` answer (the first, by number)."""

_ISSUER = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?")  # a member id
_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")  # no "/": keys stay unambiguous
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0 and C1 control characters
_ARGUMENTS = {
    "publish": {"issuer", "number", "road", "restriction", "starts", "ends"},
    "withdraw": {"issuer", "number"},
}


def _invalid(name: str, reason: str) -> Rejection:
    return Rejection("invalid_arguments", f"{name}: {reason}")


def _date(args: dict[str, Any], name: str) -> datetime.date:
    value = args[name]
    if not (isinstance(value, str) and _DATE.fullmatch(value)):
        raise _invalid(name, "expected a date YYYY-MM-DD")
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise _invalid(name, "not a valid date") from None


def decree_key(issuer: str, number: str) -> bytes:
    """The state key of a decree, within the contract's namespace."""
    return f"decree/{issuer}/{number}".encode()


class RoadworksContract(Contract):
    """``publish`` and ``withdraw`` road-works decrees; read them by key or by issuer."""

    name = "roadworks"
    version = "0.1"

    def check(self, transaction: Transaction) -> None:
        args = transaction.args
        expected = _ARGUMENTS.get(transaction.action)
        if expected is None:
            raise Rejection("unknown_action", f"roadworks has no action {transaction.action!r}")
        unexpected, missing = sorted(set(args) - expected), sorted(expected - set(args))
        if unexpected:
            raise _invalid(unexpected[0], "unexpected argument")
        if missing:
            raise _invalid(missing[0], "missing")
        if not (isinstance(args["issuer"], str) and _ISSUER.fullmatch(args["issuer"])):
            raise _invalid("issuer", "expected a member id")
        if not (isinstance(args["number"], str) and _NUMBER.fullmatch(args["number"])):
            raise _invalid("number", "1 to 32 characters of A-Z a-z 0-9 . _ -")
        if transaction.action == "publish":
            road = args["road"]
            if not (isinstance(road, str) and 1 <= len(road) <= ROAD_CHARACTERS_MAX):
                raise _invalid("road", f"expected 1 to {ROAD_CHARACTERS_MAX} characters")
            # Not str.isprintable(): its answer depends on the Unicode version of the
            # Python that runs it, and every node must decide alike.
            if _CONTROL.search(road) or road != road.strip(" "):
                raise _invalid("road", "no control characters, no leading or trailing space")
            if args["restriction"] not in RESTRICTIONS:
                raise _invalid("restriction", f"one of {', '.join(RESTRICTIONS)}")
            if _date(args, "ends") < _date(args, "starts"):
                raise _invalid("ends", "before starts")

    def apply(self, transaction: Transaction, state: StateView, context: BlockContext) -> Any:
        args = transaction.args
        issuer, number = args["issuer"], args["number"]
        context.authorization(issuer, PUBLISH_ROLE)  # raises the authorisation Rejection
        key = decree_key(issuer, number)
        if transaction.action == "withdraw":
            if state.get(key) is None:
                raise Rejection("unknown_decree", f"{issuer} has no decree {number!r}")
            state.delete(key)
            return {"issuer": issuer, "number": number, "status": "withdrawn"}
        if state.get(key) is not None:
            raise Rejection("duplicate_decree", f"{issuer} already published {number!r}")
        record = {
            "issuer": issuer,
            "number": number,
            "road": args["road"],
            "restriction": args["restriction"],
            "starts": args["starts"],
            "ends": args["ends"],
            "published_height": context.height,
        }
        state.put(key, encode_record(record))
        return {"issuer": issuer, "number": number, "status": "published"}

    def query(self, path: str, state: ReadView) -> Any:
        """``decree/<issuer>/<number>``: one decree; ``decrees/<issuer>``: an issuer's
        decrees by number (at most :data:`LISTING_MAX`). LookupError when nothing is there,
        ValueError for a malformed issuer or number."""
        kind, _, rest = path.partition("/")
        if kind == "decree":
            issuer, _, number = rest.partition("/")
            if not (_ISSUER.fullmatch(issuer) and _NUMBER.fullmatch(number)):
                raise ValueError("expected decree/<issuer>/<number>")
            record = state.get(decree_key(issuer, number))
            if record is None:
                raise LookupError(path)
            return decode_record(record)
        if kind == "decrees":
            if not _ISSUER.fullmatch(rest):
                raise ValueError("expected decrees/<issuer>")
            decrees = []
            for _, record in state.items(f"decree/{rest}/".encode()):
                if len(decrees) == LISTING_MAX:
                    break
                decrees.append(decode_record(record))
            return decrees
        raise LookupError(path)
