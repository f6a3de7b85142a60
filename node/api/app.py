"""The aiohttp application: the router built from the route table, and the problem middleware.

:func:`create_app` registers one handler per route of :func:`~node.api.routes.routes_for`.
:func:`_problem_middleware` turns every refusal into a problem object, every bug into a logged
bare 500, and counts every request by route template and status (for ``/metrics``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from ledger.store import StoreError
from node.api.handlers import Handlers
from node.api.metrics import METRICS_EXTRA_KEY
from node.api.problems import ProblemError, http_problem
from node.api.routes import routes_for
from node.runtime.config import NodeConfig
from node.runtime.daemon import Node

__all__ = ["API_KEY", "METRICS_EXTRA_KEY", "create_app"]

log = logging.getLogger("sceau.api")

API_KEY = web.AppKey("sceau_api", Handlers)


def _route_label(request: web.Request) -> str:
    resource = getattr(request.match_info.route, "resource", None)
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def _problem_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Problems for every refusal, a logged bare 500 for every bug; counts every request."""
    api = request.app[API_KEY]
    try:
        response = await handler(request)
    except ProblemError as problem:
        response = problem.response()
    except StoreError as error:
        # Never "unknown" for what a damaged store may have lost: the store refuses every read
        # once it found damage (ledger/store.py), and the node stops (node/tools/launch.py).
        response = ProblemError(
            "store_corrupted", f"this node's chain store is damaged ({error}): ask another member"
        ).response()
    except web.HTTPException as error:
        response = http_problem(error, api.config).response()
    except Exception:
        log.exception("internal error in %s %s", request.method, _route_label(request))
        response = ProblemError(
            "internal_error", "the node failed to answer; the error is in its log"
        ).response()
    api.requests[(_route_label(request), response.status)] += 1
    return response


def create_app(node: Node, config: NodeConfig) -> web.Application:
    """The client API of ``node`` as an aiohttp application (see the module doc)."""
    app = web.Application(
        client_max_size=config.api_body_bytes_max, middlewares=[_problem_middleware]
    )
    api = Handlers(node, config)
    app[API_KEY] = api
    for route in routes_for(config):
        handler = api.handler(route)
        if route.method == "GET":
            app.router.add_get(route.path, handler)
        else:
            app.router.add_route(route.method, route.path, handler)
    return app
