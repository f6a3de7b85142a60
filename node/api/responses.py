"""Media types, and the one function that turns a document into a response.

A handler builds its answer as a canonical document (node/api/display.py) and hands it to
:func:`respond`: msgpack when the client prefers ``application/msgpack`` (Accept header, with
q-values), display JSON otherwise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ledger import encoding
from node.api import display

__all__ = [
    "BUNDLE",
    "FORWARDING_HEADERS",
    "JSON",
    "MSGPACK",
    "MSGPACK_TYPES",
    "PROBLEM_JSON",
    "PROMETHEUS_TEXT",
    "TIP_HEIGHT_HEADER",
    "json_bytes",
    "respond",
    "wants_msgpack",
]

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
MSGPACK = "application/msgpack"
MSGPACK_TYPES = frozenset({MSGPACK, "application/x-msgpack", "application/vnd.msgpack"})
BUNDLE = "application/vnd.sceau.bundle"
"""Frames of the chain bundle format sceau-bundle/v1 (ledger.bundle, docs/audit.md)."""
TIP_HEIGHT_HEADER = "Sceau-Tip-Height"
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-IP")
"""A request carrying one of these came through a proxy: the debug routes refuse it."""


def json_bytes(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


_Q_VALUE = re.compile(r"q=(0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)")


def wants_msgpack(request: web.Request) -> bool:
    """True if the Accept header prefers msgpack to JSON (ties go to msgpack if it is named)."""
    header = request.headers.get("Accept", "")[:1024]
    msgpack_q, json_q = 0.0, 0.0
    for media_range in header.split(","):
        media, *parameters = (part.strip().lower() for part in media_range.split(";"))
        q = 1.0
        for parameter in parameters:
            if parameter.startswith("q="):
                match = _Q_VALUE.fullmatch(parameter)
                q = float(match.group(1)) if match else 0.0
        if media in MSGPACK_TYPES:
            msgpack_q = max(msgpack_q, q)
        elif media in (JSON, "application/*", "*/*"):
            json_q = max(json_q, q)
    return msgpack_q > 0 and msgpack_q >= json_q


def respond(
    request: web.Request,
    document: Any,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """``document`` (canonical form) as msgpack if the client asks for it, else display JSON."""
    all_headers = {"Vary": "Accept", **(headers or {})}
    if wants_msgpack(request):
        return web.Response(
            status=status, body=encoding.pack(document), content_type=MSGPACK, headers=all_headers
        )
    return web.Response(
        status=status,
        body=json_bytes(display.to_display(document)),
        content_type=JSON,
        charset="utf-8",
        headers=all_headers,
    )
