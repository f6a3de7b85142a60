"""``GET /`` (and ``GET /verify``): the verification page, served by every node and observer.

The page (node/web/page.py) carries this node's genesis, so a reader's browser verifies every
receipt it fetches from here against the consortium's identity, not against the node's word.
It imposes no witness policy: a page a node serves is only as trustworthy as that node (it
serves the verifier too), so a policy would protect nothing there, while a witness that is
down or behind would make every new act look forged. The page shows which witnesses cosigned a
receipt's checkpoint; a reader who wants a policy uses a file written by ``sceau page
--witness`` from a source they trust. The page is rendered once per language, at its first
request, and served with a Content-Security-Policy that lets only its own inline scripts and
style run and lets it reach only this origin.

``?lang=fr`` or ``?lang=en`` chooses the page's language (otherwise the reader's browser's);
any other query parameter is refused like everywhere else in the API, so that a link with a
typo says so.
"""

from __future__ import annotations

import json

from aiohttp import web

from node.api.parameters import query_parameters
from node.api.problems import ProblemError
from node.runtime.daemon import Node
from node.web.page import LANGUAGES, RenderedPage, render_page

__all__ = ["HTML", "PageHandlers"]

HTML = "text/html"
PAGE_CACHE_CONTROL = "no-cache"
"""A reader's browser asks again each time (with a validator), so a node that was upgraded
serves its new page at once."""


class PageHandlers:
    """The page's handler over one node: the rendered page in each language, made once."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._pages: dict[str | None, RenderedPage] = {}

    def page(self, language: str | None) -> RenderedPage:
        """The page in ``language`` (None: the reader's), rendered at its first request."""
        rendered = self._pages.get(language)
        if rendered is None:
            rendered = render_page(
                genesis=json.loads(self.node.store.genesis.model_dump_json()),
                api="",
                language=language,
            )
            self._pages[language] = rendered
        return rendered

    async def get_page(self, request: web.Request) -> web.Response:
        language = query_parameters(request, ("lang",)).get("lang")
        if language is not None and language not in LANGUAGES:
            raise ProblemError("invalid_parameter", f"lang: one of {', '.join(LANGUAGES)}")
        rendered = self.page(language)
        return web.Response(
            body=rendered.body,
            content_type=HTML,
            charset="utf-8",
            headers={
                "Content-Security-Policy": rendered.header_policy,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "Cache-Control": PAGE_CACHE_CONTROL,
            },
        )
