"""The fault-injection routes (:data:`~node.api.routes.DEBUG_ROUTES`), for the test harness.

They exist only when the node's ``fault_injection`` switch is on (a test-only setting, allowed
on a loopback API only, node/runtime/config.py): ``GET``/``PUT /v1/debug/links`` read and set
the peers
whose links the transport cuts. Even then they answer only a request from a loopback address,
without a proxy's forwarding header, that carries the node's debug token
(node/runtime/debug_token.py): 403 ``debug_forbidden`` otherwise.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from typing import Any

from aiohttp import web

from node.api.limits import LINKS_CUT_MAX
from node.api.parameters import query_parameters
from node.api.problems import ProblemError
from node.api.responses import FORWARDING_HEADERS, JSON, respond
from node.runtime.daemon import Node
from node.runtime.debug_token import TOKEN_HEADER

__all__ = ["DebugHandlers"]


class DebugHandlers:
    """The handlers of the debug routes over one node, guarded by its debug token."""

    def __init__(self, node: Node, debug_token: str) -> None:
        self.node = node
        self.debug_token = debug_token

    def _guard_debug(self, request: web.Request) -> None:
        """Only the test harness may use the debug routes: a request from loopback, not
        forwarded by a proxy, with this node's debug token (node/runtime/debug_token.py)."""
        token = self.debug_token
        forwarded = [name for name in FORWARDING_HEADERS if name in request.headers]
        if forwarded:
            raise ProblemError("debug_forbidden", f"forwarded by a proxy ({forwarded[0]})")
        if not _is_loopback_address(request.remote):
            raise ProblemError("debug_forbidden", "only from a loopback address")
        offered = request.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(offered.encode(), token.encode()):
            raise ProblemError("debug_forbidden", f"send the node's debug token in {TOKEN_HEADER}")

    async def get_links(self, request: web.Request) -> web.Response:
        self._guard_debug(request)
        query_parameters(request, ())
        return respond(request, {"cut": self._transport().links_cut})

    async def put_links(self, request: web.Request) -> web.Response:
        self._guard_debug(request)
        query_parameters(request, ())
        if request.content_type != JSON:
            raise ProblemError("unsupported_media_type", f'send {JSON}: {{"cut": [<member id>]}}')
        cut = self._links_to_cut(await request.read())
        transport = self._transport()
        transport.cut_links(cut)
        return respond(request, {"cut": transport.links_cut})

    def _transport(self) -> Any:
        transport = self.node.transport
        assert transport is not None, "build_node attaches a transport to every node"
        return transport

    def _links_to_cut(self, body: bytes) -> set[str]:
        """The member ids of a ``{"cut": [...]}`` body: other current members, or a problem."""
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            raise ProblemError("invalid_links", "the body is not JSON") from None
        if not isinstance(document, dict) or set(document) != {"cut"}:
            raise ProblemError("invalid_links", 'expected {"cut": [<member id>, …]} only')
        cut = document["cut"]
        if not isinstance(cut, list) or len(cut) > LINKS_CUT_MAX:
            raise ProblemError("invalid_links", f"cut: a list of at most {LINKS_CUT_MAX} ids")
        peers = {member.id for member in self.node.application.members()} - {self.node.member_id}
        for member_id in cut:
            if not isinstance(member_id, str) or member_id not in peers:
                shown = repr(member_id)[:60]
                raise ProblemError("invalid_links", f"cut: {shown} is not another current member")
        return set(cut)


def _is_loopback_address(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
