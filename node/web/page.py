"""The verification page as one self-contained HTML document, and its Content-Security-Policy.

:func:`render_page` fills ``page.html`` with ``page.css``, ``verify.js`` (the receipt verifier),
``page.js`` (the page itself) and a ``<script type="application/json">`` configuration: the
consortium's genesis, where the node's API is (or none: offline only), the default language,
the witnesses whose cosignatures the page asks for. Nothing is fetched to show or run the page:
every node serves the result at ``/`` (node/api/handlers.py) and ``sceau page --out`` writes it
to a file that works from disk (node/tools/cli_page.py).

The page's scripts and style are inline, so the policy names them by their SHA-256
(:func:`content_security_policy`): a node that serves the page allows nothing else to run on
it, and the page can reach no origin but its own (``connect-src 'self'``); a file for offline
use can reach none at all.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from node.web import asset

__all__ = [
    "LANGUAGES",
    "PageError",
    "RenderedPage",
    "WitnessConfiguration",
    "content_security_policy",
    "render_page",
]

LANGUAGES = ("fr", "en")
"""The languages of the page; the first is the default of a page configured with none."""
WITNESS_KEYS_MAX = 16
"""As many witnesses as a member may push to (``[[witnesses]]``, node/runtime/config.py)."""
API_URL_CHARACTERS_MAX = 2000

_SCRIPT_END = re.compile(r"</script|<!--", re.IGNORECASE)
_STYLE_END = re.compile(r"</style", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")


class PageError(ValueError):
    """The page cannot be rendered as asked (a bad API URL, language or witness policy)."""


@dataclass(frozen=True, slots=True)
class WitnessConfiguration:
    """The witnesses whose cosignatures the page requires on a receipt's checkpoint: their
    verifier keys (``name+hash+base64``, type 04) and how many of them must have cosigned."""

    keys: tuple[str, ...]
    quorum: int

    def __post_init__(self) -> None:
        if not 1 <= len(self.keys) <= WITNESS_KEYS_MAX:
            raise PageError(f"a witness policy names 1 to {WITNESS_KEYS_MAX} witnesses")
        if not 1 <= self.quorum <= len(self.keys):
            raise PageError(f"the witness quorum is 1 to {len(self.keys)}, not {self.quorum}")

    def to_json(self) -> dict[str, Any]:
        return {"keys": list(self.keys), "quorum": self.quorum}


@dataclass(frozen=True, slots=True)
class RenderedPage:
    """The page's HTML and the Content-Security-Policy that lets exactly its own scripts and
    style run (also in the page, as a ``<meta>``, for a copy opened from disk)."""

    html: str
    policy: str

    @property
    def body(self) -> bytes:
        return self.html.encode()

    @property
    def header_policy(self) -> str:
        """The policy a node sends as a header: the page's, and no framing by another site
        (a ``<meta>`` policy cannot say that)."""
        return f"{self.policy}; frame-ancestors 'none'"


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _script(name: str) -> str:
    """A script file as it is inlined: its text must not close the element that holds it."""
    text = asset(name)
    if _SCRIPT_END.search(text):
        raise PageError(f"{name} holds '</script' or '<!--': it cannot be inlined")
    return text


def _configuration_json(configuration: dict[str, Any]) -> str:
    """The configuration as JSON that cannot end its ``<script>`` element: every ``<``, ``>``
    and ``&`` escaped (JSON reads them back as the same characters)."""
    text = json.dumps(configuration, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _api_base(api: str | None) -> str | None:
    """``""`` (the page's own origin), an absolute ``http(s)`` URL without a trailing ``/``,
    or None (offline only)."""
    if api is None or api == "":
        return api
    if len(api) > API_URL_CHARACTERS_MAX:
        raise PageError(f"the API URL is longer than {API_URL_CHARACTERS_MAX} characters")
    parts = urlsplit(api)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise PageError(f"{api[:100]!r}: the API URL must be http:// or https://HOST[:PORT]")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise PageError(f"{api[:100]!r}: the API URL has no query, fragment or credentials")
    return api.rstrip("/")


def _origin(api: str) -> str:
    parts = urlsplit(api)
    return f"{parts.scheme}://{parts.netloc}"


def render_page(
    *,
    genesis: dict[str, Any] | None,
    api: str | None,
    language: str | None = None,
    witnesses: WitnessConfiguration | None = None,
) -> RenderedPage:
    """The verification page for a consortium.

    ``genesis``: the genesis file's JSON object (a :class:`~ledger.model.Genesis` dumped as
    JSON), or None for a page whose reader chooses the genesis file. ``api``: ``""`` for a page
    served by a node (it asks its own origin), an ``http(s)`` URL for a page hosted elsewhere
    that asks that node (which must then allow those cross-origin reads: a node does not by
    default), None for a file that works offline only. ``language``: ``"fr"`` or ``"en"``, or None
    to follow the reader's browser. ``witnesses``: the cosignatures required on the log
    checkpoint a receipt carries, or None.
    """
    if language is not None and language not in LANGUAGES:
        raise PageError(f"language {language!r}: one of {', '.join(LANGUAGES)}")
    configuration = {
        "api": _api_base(api),
        "genesis": genesis,
        "language": language,
        "witnesses": None if witnesses is None else witnesses.to_json(),
    }
    style = asset("page.css")
    if _STYLE_END.search(style):
        raise PageError("page.css holds '</style': it cannot be inlined")
    verifier, page = _script("verify.js"), _script("page.js")
    parts = {
        "language": language or LANGUAGES[0],
        "style": style,
        "configuration": _configuration_json(configuration),
        "verifier": verifier,
        "page": page,
    }
    parts["policy"] = content_security_policy(
        scripts=(verifier, page), styles=(style,), connect=configuration["api"]
    )
    template = asset("page.html")
    found = _PLACEHOLDER.findall(template)
    assert sorted(found) == sorted(parts), found  # page.html names each part exactly once
    html = _PLACEHOLDER.sub(lambda match: parts[match.group(1)], template)
    return RenderedPage(html=html, policy=parts["policy"])


def content_security_policy(
    *, scripts: tuple[str, ...], styles: tuple[str, ...], connect: str | None
) -> str:
    """Nothing by default; the inline ``scripts`` and ``styles`` by their SHA-256; images only
    as ``data:`` URLs; requests only to ``connect`` (``""``: the page's own origin, an API URL:
    its origin, None: nowhere); no form, no base URL."""
    if connect is None:
        allowed = "'none'"
    elif connect == "":
        allowed = "'self'"
    else:
        allowed = _origin(connect)
    directives = (
        "default-src 'none'",
        "script-src " + " ".join(_csp_hash(script) for script in scripts),
        "style-src " + " ".join(_csp_hash(style) for style in styles),
        "img-src data:",
        f"connect-src {allowed}",
        "base-uri 'none'",
        "form-action 'none'",
    )
    return "; ".join(directives)
