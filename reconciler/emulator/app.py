"""The HTTP face of the emulator: parse a request, call the store, serialize the result.

`_answer` is the one path every request takes (latency, auth, rate limits, injected
faults, the request log) and `error_response` the one place a domain error becomes a
JSON:API error body.
"""

# Not `from __future__ import annotations`: typing.NamedTuple would compile each field's
# annotation text at every start.

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reconciler.emulator.errors import (
    ApiProblem,
    BadRequest,
    MethodNotAllowed,
    NotFound,
    RateLimited,
)
from reconciler.emulator.listing import Resource
from reconciler.emulator.store import LoggedRequest, SourceStore

JSONAPI = "application/vnd.api+json"
METHODS = ["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"]
COLLECTION = "/api/v1/sources"

# What a proxy in front of the API sends when it gives up waiting: not JSON:API at all.
GATEWAY_TIMEOUT = (
    "<html><head><title>504 Gateway Time-out</title></head>"
    "<body><h1>504 Gateway Time-out</h1></body></html>"
)


class JsonApiResponse(JSONResponse):
    media_type = JSONAPI


# A NamedTuple, not a frozen dataclass: about 0.05 ms to define at start-up, not 0.4.
class Outcome(NamedTuple):
    """What an operation produced: a status, a document, and whether it wrote."""

    status: int
    document: dict[str, Any]
    wrote: bool = False


Operation = Callable[[SourceStore, Request, Any], Outcome]


def create_app(store: SourceStore) -> Starlette:
    """An ASGI app serving `store` as the imgix Management API's Sources endpoints.

    The store is `app.state.store`: a long-lived server can be handed a fresh one.
    """
    app = Starlette(
        routes=[
            Route(COLLECTION, _endpoint(_collection), methods=METHODS),
            Route(COLLECTION + "/{source_id}", _endpoint(_member), methods=METHODS),
            Route("/{path:path}", _endpoint(_unknown_path), methods=METHODS),
        ]
    )
    app.state.store = store
    return app


def _endpoint(operation: Operation) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        return await _answer(request.app.state.store, request, operation)

    return handle


async def _answer(store: SourceStore, request: Request, operation: Operation) -> Response:
    request_id = store.new_request_id()
    raw = await request.body()
    body, readable = _parse_json(raw)
    response: Response
    try:
        if store.faults.latency > 0:
            await asyncio.sleep(store.faults.latency)
        store.authorize(request.headers.get("authorization"))
        store.admit()
        if not readable:
            raise BadRequest("The request body is not valid JSON.")
        outcome = operation(store, request, body)
        if outcome.wrote and store.lose_response():
            response = Response(GATEWAY_TIMEOUT, status_code=504, media_type="text/html")
        else:
            response = JsonApiResponse(outcome.document, status_code=outcome.status)
    except ApiProblem as problem:
        response = error_response(problem, request_id, store)
    response.headers["X-Request-Id"] = request_id
    store.log(
        LoggedRequest(
            request.method, request.url.path, request.url.query, response.status_code, body
        )
    )
    return response


def error_response(problem: ApiProblem, request_id: str, store: SourceStore) -> Response:
    """The JSON:API error body of a domain error, with the request id support asks for."""
    error = {
        "id": request_id,
        "status": str(problem.status),
        "title": problem.title,
        "detail": problem.detail,
    }
    headers: dict[str, str] = {}
    if isinstance(problem, RateLimited) and store.limits.retry_after:
        headers["Retry-After"] = str(problem.retry_after)
    if isinstance(problem, RateLimited) and store.limits.rate_limit_headers:
        headers["X-RateLimit-Limit"] = str(problem.limit)
        headers["X-RateLimit-Remaining"] = "0"
        headers["X-RateLimit-Reset"] = str(problem.retry_after)
    if isinstance(problem, MethodNotAllowed):
        headers["Allow"] = ", ".join(problem.allowed)
    document = {"errors": [error], "jsonapi": {"version": "1.0"}}
    return JsonApiResponse(document, status_code=problem.status, headers=headers)


def _parse_json(raw: bytes) -> tuple[Any, bool]:
    if not raw.strip():
        return None, True
    try:
        return json.loads(raw), True
    except (ValueError, RecursionError):  # integers past 4300 digits are a ValueError too
        return None, False


# ---------------------------------------------------------------------- operations


def _collection(store: SourceStore, request: Request, body: Any) -> Outcome:
    if request.method == "GET":
        page = store.list_sources(dict(request.query_params))
        meta = {"pagination": page.pagination} if store.pagination_meta else {}
        return Outcome(200, _document([_linked(r) for r in page.resources], meta))
    if request.method == "POST":
        data = _data(body)
        if "id" in data:
            raise BadRequest("data.id must not be sent when creating a source.")
        created = store.create_source(data.get("attributes"))
        return Outcome(201, _document(_linked(created)), wrote=True)
    raise MethodNotAllowed(request.method, ("GET", "POST"))


def _member(store: SourceStore, request: Request, body: Any) -> Outcome:
    source_id = request.path_params["source_id"]
    if request.method == "GET":
        return Outcome(200, _document(_linked(store.get_source(source_id))))
    if request.method == "PATCH":
        data = _data(body)
        if data.get("id") != source_id:
            raise BadRequest("data.id must be sent and match the source id in the URL.")
        updated = store.update_source(source_id, data.get("attributes"))
        return Outcome(200, _document(_linked(updated)), wrote=True)
    raise MethodNotAllowed(request.method, ("GET", "PATCH"))


def _unknown_path(store: SourceStore, request: Request, body: Any) -> Outcome:
    raise NotFound(f"No route for {request.url.path}.")


def _data(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise BadRequest('The request body must be a JSON:API document: {"data": {...}}.')
    data: dict[str, Any] = body["data"]
    if data.get("type") != "sources":
        raise BadRequest("data.type must be sources.")
    return data


def _linked(resource: Resource) -> Resource:
    # `links` is one of the keys clients must ignore; it costs nothing to be realistic.
    return {**resource, "links": {"self": f"{COLLECTION}/{resource['id']}"}}


def _document(data: Any, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "data": data,
        "included": [],
        "jsonapi": {"version": "1.0"},
        "meta": {
            # Clients must ignore meta keys they do not know: there are a few.
            "authentication": {"authorized": True, "clientId": None, "mode": "PUBLIC_API_KEY"},
            "emulator": {"name": "imgix-reconciler emulator"},
            **(meta or {}),
        },
    }
