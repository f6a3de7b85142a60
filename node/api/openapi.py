"""``GET /openapi.json``: the OpenAPI 3.1 document, generated from the route table.

Schemas come from the pydantic models of node/api/display.py; the problem responses of each route
from the codes it declares (node/api/problems.py).
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from node.api import display
from node.api.log import TILE_MEDIA_TYPE
from node.api.problems import PROBLEMS
from node.api.responses import BUNDLE, JSON, MSGPACK, PROBLEM_JSON
from node.api.routes import ROUTES, Route

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{model}"
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def _models(routes: tuple[Route, ...]) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = [display.Problem]
    for route in routes:
        for model in route.responses.values():
            if not isinstance(model, str) and model not in found:
                found.append(model)
    return found


def _problem_responses(route: Route) -> dict[str, Any]:
    by_status: dict[int, list[str]] = collections.defaultdict(list)
    for code in route.problems:
        by_status[PROBLEMS[code].status].append(code)
    if route.rejections:
        by_status[422].append("a rejection code (bad_signature, wrong_chain, …)")
        by_status[429].append("signer_quota")
        by_status[503].append("mempool_full")
    content = {PROBLEM_JSON: {"schema": _PROBLEM_REF}}
    responses = {
        str(status): {"description": "problem: " + ", ".join(codes), "content": content}
        for status, codes in sorted(by_status.items())
    }
    responses["default"] = {
        "description": "problem: not_found, method_not_allowed, internal_error, …",
        "content": content,
    }
    return responses


def _success_response(model: type[BaseModel] | str, schemas: Mapping[Any, Any]) -> dict[str, Any]:
    if model == "text":
        return {
            "description": "Prometheus text exposition format 0.0.4",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    if model == "bundle":
        return {
            "description": "frames of the bundle format sceau-bundle/v1 (docs/audit.md): each a "
            "4-byte big-endian length and a canonical msgpack body",
            "content": {BUNDLE: {"schema": {"type": "string", "contentMediaType": BUNDLE}}},
        }
    if model == "tile":
        return {
            "description": "a C2SP tlog-tiles tile (hashes) or entry bundle",
            "content": {
                TILE_MEDIA_TYPE: {"schema": {"type": "string", "contentMediaType": TILE_MEDIA_TYPE}}
            },
        }
    if model == "html":
        return {
            "description": "an HTML page, self-contained (its scripts and style inline)",
            "content": {"text/html": {"schema": {"type": "string"}}},
        }
    if model == "openapi":
        return {
            "description": "an OpenAPI 3.1 document",
            "content": {JSON: {"schema": {"type": "object"}}},
        }
    assert not isinstance(model, str), model
    return {
        "description": (model.__doc__ or model.__name__).strip().splitlines()[0],
        "content": {JSON: {"schema": schemas[(model, "serialization")]}},
    }


def _operation(route: Route, schemas: Mapping[Any, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.handler,
        "summary": route.summary,
        "tags": [route.tag],
        "parameters": [parameter.to_openapi() for parameter in route.parameters],
        "responses": {
            **{
                str(status): _success_response(model, schemas)
                for status, model in route.responses.items()
            },
            **_problem_responses(route),
        },
    }
    if route.request_model is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": schemas[(route.request_model, "validation")]}},
        }
    if route.submission:
        operation["requestBody"] = {
            "required": True,
            "description": "a signed transaction: the hex of its canonical bytes, or the bytes",
            "content": {
                JSON: {"schema": schemas[(display.SubmitRequest, "validation")]},
                MSGPACK: {"schema": {"type": "string", "contentMediaType": MSGPACK}},
            },
        }
    if route.batch:
        operation["requestBody"] = {
            "required": True,
            "description": "signed transactions: the hex of each one's canonical bytes, or a "
            "canonical msgpack array of their canonical bytes (each a byte string)",
            "content": {
                JSON: {"schema": schemas[(display.BatchSubmitRequest, "validation")]},
                MSGPACK: {"schema": {"type": "string", "contentMediaType": MSGPACK}},
            },
        }
    return operation


def openapi_document(routes: tuple[Route, ...] = ROUTES) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``, schemas generated from the pydantic models."""
    keys: list[tuple[type[BaseModel], Any]] = [
        (model, "serialization") for model in _models(routes)
    ]
    keys.append((display.SubmitRequest, "validation"))
    if any(route.batch for route in routes):
        keys.append((display.BatchSubmitRequest, "validation"))
    keys.extend((r.request_model, "validation") for r in routes if r.request_model is not None)
    schemas, definitions = models_json_schema(keys, ref_template=_REF)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.openapi_path, {})[route.method.lower()] = _operation(route, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sceau node API",
            "version": "1",
            "description": (
                "Reads are public; writes are signed transactions. Every error is an RFC 9457 "
                "problem object with a stable code. Send Accept: application/msgpack for msgpack "
                "documents (bytes as bytes) instead of JSON (bytes as lowercase hex)."
            ),
        },
        "paths": paths,
        "components": {"schemas": definitions.get("$defs", {})},
    }
