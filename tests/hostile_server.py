"""A small hostile imgix API for the tests: the server a client must survive.

`HostileApi` is an ASGI app answering every request the way its `attack` says, and
recording each request it receives (before any routing, so even a request sent through it
as a proxy is seen). Serve it over real HTTP with `serving(...)` (uvicorn on 127.0.0.1),
or in-process through `httpx.ASGITransport(app=api)`.

Attacks:

    ok              one page of `page_size` valid sources
    drip            a 200 whose JSON body comes one byte every `drip_interval` seconds
    endless         pages of new sources forever, each saying another page follows (bare
                    resources, id and type: the listing never gets to read more)
    repeat          the same page forever, each saying another page follows
    huge_total      pages that announce `totalPages: 1000000000`
    gzip_bomb       a gzip body of `bomb_size` decoded bytes (1 GiB from about 1 MiB)
    forged_detail   a 400 whose title, detail and id carry CR/LF and workflow commands
    huge_error      a 400 whose title, detail and id are a mebibyte of text each
    not_json        a 200 labelled JSON whose body is HTML
    deep_json       a 200 (or with `status`, an error) of arrays nested 100,000 deep
    wrong_type      a 200 JSON document labelled text/html
    wrong_encoding  a 200 encoded with a content coding the client did not ask for
    compressed      `ok`, encoded as `content_encoding` says (gzip or deflate): not an
                    attack, what a compressing server sends
    pages           `announced_pages` pages of valid sources, announced on every page
    bad_hostnames   one page whose sources list hostnames that are not text
    stall_writes    one page of valid sources; a write gets no answer while the attack lasts
    broken_resource one page whose first source's attributes are the JSON text
                    `broken_attributes`; a create gets a 500, as if its answer was lost
    hostile_text    one page of valid sources whose names and annotations carry
                    `HOSTILE_TEXT` (CR/LF, workflow commands, bidi and terminal controls,
                    mentions, markdown and HTML)
    moving          a list of `records` sources served by offset, that moves after its
                    page 0 is served, for the first `moves` reads: `move` "remove" takes
                    its first source away, "insert" puts a new one first; pages announce
                    `totalRecords` `records_off` more than they hold, and with `disagree`
                    each page a different one (plus its number); `meta` False: no
                    `meta.pagination` at all

Write attacks (`write_attack`, with the listing as `attack` says): each POST and PATCH gets

    error           a `write_status` error whose title, detail and id are `write_text`
    not_json        a 200 labelled JSON whose body is HTML
    other_source    a 200 holding a valid source with another id than the one written
    no_id           a 200 whose source has no `id`
    echo            a 200 holding the source written, its attributes as sent (secrets too)
                    and `write_text` in its name
    drip            a 201 whose body comes one byte every `drip_interval` seconds
    retry_after     a 429 whose `Retry-After` is `retry_after`
    lost_create     a create's first answer is lost (a 500 after it landed), each later
                    one refuses the taken subdomain (409); the lookup listing that follows
                    (filtered by subdomain) answers as `lookup` says. A patch is answered
                    with source 0.

Lies of the lookup after a lost create (`lookup`), each about the source the create sent:

    honest          it, once: not a lie (the control)
    other_origin    it, with another origin (`s3_bucket` or `webfolder_base_url`)
    other_owner     it, with another owner in its marker
    twice           it, under two ids
    omitted         nothing
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import threading
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs

from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from reconciler.emulator.server import running_app

Attack = Literal[
    "ok",
    "drip",
    "endless",
    "repeat",
    "huge_total",
    "gzip_bomb",
    "forged_detail",
    "huge_error",
    "not_json",
    "deep_json",
    "wrong_type",
    "wrong_encoding",
    "compressed",
    "pages",
    "bad_hostnames",
    "broken_resource",
    "stall_writes",
    "moving",
    "hostile_text",
]
WriteAttack = Literal[
    "none",
    "error",
    "not_json",
    "other_source",
    "no_id",
    "echo",
    "drip",
    "retry_after",
    "lost_create",
]
Lookup = Literal["honest", "other_origin", "other_owner", "twice", "omitted"]
# The ids the lookup listing shows the created source under (twice: both).
LOOKUP_IDS = (f"{777_777:024x}", f"{666_666:024x}")
JSON_API = "application/vnd.api+json"
FORGED = "\r\n::add-mask::hunter2\n::error file=sources.yaml,line=1::forged by the server\r"
BILLION = 1_000_000_000
# Text a source may hold that a log, a terminal or a rendered comment would act on.
HOSTILE_TEXT = (
    FORGED + "\u202eevil\u202c \x1b[2J\x07 \u2028::warning::x @octocat #1 <details> `code` | "
)


@dataclass(frozen=True)
class ReceivedRequest:
    """What reached the server: enough to tell whether the client sent anything at all."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class HostileApi:
    """An ASGI app that misbehaves as `attack` says; `received` lists every request."""

    attack: Attack = "ok"
    page_size: int = 100
    drip_interval: float = 5.0
    bomb_size: int = 1 << 30
    announced_pages: int = 1
    content_encoding: Literal["gzip", "deflate"] = "gzip"
    status: int = 200
    broken_attributes: str = "null"
    records: int = 250
    moves: int = 1
    move: Literal["remove", "insert"] = "remove"
    records_off: int = 0
    disagree: bool = False
    meta: bool = True
    write_attack: WriteAttack = "none"
    write_status: int = 400
    write_text: str = FORGED
    retry_after: str = "0"
    lookup: Lookup = "honest"
    # The attributes of the first create the `lost_create` attack received.
    created: dict[str, Any] | None = None
    received: list[ReceivedRequest] = field(default_factory=list)
    # The numbers of the sources the `moving` list holds now, in listing order.
    listed: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.listed = list(range(self.records))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        query = {
            name: values[-1]
            for name, values in parse_qs(scope["query_string"].decode("latin-1")).items()
        }
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        self.received.append(ReceivedRequest(scope["method"], scope["path"], query, headers))
        page = int(query.get("page[number]", "0") or 0)
        if self.write_attack == "lost_create" and "filter[deployment.imgix_subdomains]" in query:
            await JSONResponse(self._lookup(), media_type=JSON_API)(scope, receive, send)
            return
        if self.write_attack != "none" and scope["method"] in ("POST", "PATCH"):
            sent = await _json_body(receive)
            await self._write_response(scope["path"], sent)(scope, receive, send)
            return
        if self.attack == "stall_writes" and scope["method"] in ("POST", "PATCH"):
            while self.attack == "stall_writes":  # until the test moves on
                await asyncio.sleep(0.05)
            return
        if self.attack == "broken_resource" and scope["method"] == "POST":
            await Response(status_code=500)(scope, receive, send)
            return
        await self._response(page)(scope, receive, send)

    def _response(self, page: int) -> Response:
        if self.attack == "drip":
            return StreamingResponse(self._drip(), media_type=JSON_API)
        if self.attack == "gzip_bomb":
            return StreamingResponse(
                self._bomb(), media_type=JSON_API, headers={"Content-Encoding": "gzip"}
            )
        if self.attack == "forged_detail":
            error = {"id": "req-1" + FORGED, "status": "400", "title": "Bad" + FORGED}
            error["detail"] = "The request is invalid." + FORGED
            return JSONResponse({"errors": [error]}, status_code=400, media_type=JSON_API)
        if self.attack == "huge_error":
            text = "x" * (1 << 20)
            error = {"id": text, "status": "400", "title": text, "detail": text}
            return JSONResponse({"errors": [error]}, status_code=400, media_type=JSON_API)
        if self.attack == "not_json":
            return Response("<html><body>Sign in to the Wi-Fi</body></html>", media_type=JSON_API)
        if self.attack == "deep_json":
            nested = "[" * 100_000 + "]" * 100_000
            return Response(nested, status_code=self.status, media_type=JSON_API)
        if self.attack == "wrong_type":
            return Response(json.dumps(self._page(0, more=False)), media_type="text/html")
        if self.attack == "wrong_encoding":
            body = json.dumps(self._page(0, more=False)).encode()
            return Response(body, media_type=JSON_API, headers={"Content-Encoding": "br"})
        if self.attack == "compressed":
            body = json.dumps(self._page(0, more=False)).encode()
            compress = gzip.compress if self.content_encoding == "gzip" else zlib.compress
            headers = {"Content-Encoding": self.content_encoding}
            return Response(compress(body), media_type=JSON_API, headers=headers)
        if self.attack == "pages":
            page_data = self._page(page, more=False, total=self.announced_pages)
            return JSONResponse(page_data, media_type=JSON_API)
        if self.attack == "endless":
            bare = self._page(page, more=True)
            bare["data"] = [{"id": source["id"], "type": "sources"} for source in bare["data"]]
            return JSONResponse(bare, media_type=JSON_API)
        if self.attack == "repeat":
            return JSONResponse(self._page(0, more=True), media_type=JSON_API)
        if self.attack == "bad_hostnames":
            broken = self._page(0, more=False)
            broken["data"][0]["attributes"]["deployment"]["imgix_subdomains"] = [1, ["x"]]
            return JSONResponse(broken, media_type=JSON_API)
        if self.attack == "broken_resource":
            text = json.dumps(self._page(0, more=False))
            # Spliced as text: JSON numbers such as 1e400 have no Python value to dump.
            marker = json.dumps(_source(0)["attributes"])
            text = text.replace(marker, self.broken_attributes, 1)
            return Response(text, media_type=JSON_API)
        if self.attack == "moving":
            return JSONResponse(self._moving_page(page), media_type=JSON_API)
        if self.attack == "hostile_text":
            page_data = self._page(0, more=False)
            for source in page_data["data"]:
                attributes = source["attributes"]
                attributes["name"] += HOSTILE_TEXT
                attributes["deployment"]["annotation"] = HOSTILE_TEXT
            return JSONResponse(page_data, media_type=JSON_API)
        if self.attack == "huge_total":
            return JSONResponse(self._page(page, more=True, total=BILLION), media_type=JSON_API)
        return JSONResponse(self._page(0, more=False), media_type=JSON_API)

    def _write_response(self, path: str, sent: dict[str, Any]) -> Response:
        data = sent.get("data") if isinstance(sent.get("data"), dict) else {}
        written = path.rsplit("/", 1)[-1] if path.rstrip("/") != "/api/v1/sources" else None
        source_id = written or f"{999_999:024x}"
        if self.write_attack == "error":
            text = self.write_text
            error = {"id": text, "status": str(self.write_status), "title": text, "detail": text}
            body = {"errors": [error]}
            return JSONResponse(body, status_code=self.write_status, media_type=JSON_API)
        if self.write_attack == "not_json":
            return Response("<html><body>Sign in to the Wi-Fi</body></html>", media_type=JSON_API)
        if self.write_attack == "retry_after":
            headers = {"Retry-After": self.retry_after}
            return Response(status_code=429, headers=headers, media_type=JSON_API)
        if self.write_attack == "drip":
            return StreamingResponse(self._drip(), status_code=201, media_type=JSON_API)
        if self.write_attack == "lost_create" and written is None:
            if self.created is None:
                self.created = data.get("attributes") or {}
                return Response(status_code=500)  # it landed; the answer did not come
            taken = {"status": "409", "title": "Conflict", "detail": "subdomain already taken"}
            return JSONResponse({"errors": [taken]}, status_code=409, media_type=JSON_API)
        resource = _source(0)
        if self.write_attack == "other_source":
            resource["id"] = f"{888_888:024x}"
        elif self.write_attack == "no_id":
            del resource["id"]
        elif self.write_attack == "echo":
            attributes = data.get("attributes") if isinstance(data.get("attributes"), dict) else {}
            deployment = {
                **resource["attributes"]["deployment"],
                **attributes.get("deployment", {}),
            }
            resource = {
                "id": source_id,
                "type": "sources",
                "attributes": {**resource["attributes"], **attributes, "deployment": deployment},
            }
            resource["attributes"]["name"] = f"{resource['attributes']['name']}{self.write_text}"
        status = 201 if written is None else 200
        return JSONResponse({"data": resource}, status_code=status, media_type=JSON_API)

    def _lookup(self) -> dict[str, Any]:
        """The listing a lookup after a lost create gets: the created source, or a lie."""
        attributes = json.loads(json.dumps(self.created or {}))
        deployment = attributes.setdefault("deployment", {})
        deployment = {k: v for k, v in deployment.items() if "secret" not in k}  # never echoed
        attributes["deployment"] = deployment
        if self.lookup == "other_origin":
            for key in ("s3_bucket", "webfolder_base_url"):
                if key in deployment:
                    deployment[key] = "https://elsewhere.example/" if "url" in key else "elsewhere"
        elif self.lookup == "other_owner":
            deployment["annotation"] = "Managed in git [imgix-reconciler v1 owner.name=other/repo]"
        ids = {"omitted": (), "twice": LOOKUP_IDS}.get(self.lookup, LOOKUP_IDS[:1])
        sources = [{"id": i, "type": "sources", "attributes": attributes} for i in ids]
        pagination = {"currentPage": 0, "pageSize": 100, "totalPages": 1, "hasNextPage": False}
        return {"data": sources, "meta": {"pagination": pagination}, "jsonapi": {"version": "1.0"}}

    def _page(self, number: int, *, more: bool, total: int | None = None) -> dict[str, Any]:
        first = number * self.page_size
        pagination = {
            "currentPage": number,
            "pageSize": self.page_size,
            "totalPages": total if total is not None else number + (2 if more else 1),
            "hasNextPage": more or (total is not None and number + 1 < total),
        }
        sources = [_source(n) for n in range(first, first + self.page_size)]
        return {"data": sources, "meta": {"pagination": pagination}, "jsonapi": {"version": "1.0"}}

    def _moving_page(self, number: int) -> dict[str, Any]:
        first = number * self.page_size
        held = [_source(n) for n in self.listed[first : first + self.page_size]]
        pages = -(-len(self.listed) // self.page_size)
        pagination = {
            "currentPage": number,
            "pageSize": self.page_size,
            "totalPages": pages,
            "totalRecords": len(self.listed) + self.records_off + (number if self.disagree else 0),
            "hasNextPage": number + 1 < pages,
        }
        if number == 0 and self.moves > 0:
            self.moves -= 1
            if self.move == "remove":
                del self.listed[0]
            else:
                self.listed.insert(0, 1_000_000 + self.moves)
        meta = {"pagination": pagination} if self.meta else {}
        return {"data": held, "meta": meta, "jsonapi": {"version": "1.0"}}

    async def _drip(self) -> AsyncIterator[bytes]:
        body = json.dumps(self._page(0, more=False)).encode()
        for byte in body:
            yield bytes([byte])
            await asyncio.sleep(self.drip_interval)

    async def _bomb(self) -> AsyncIterator[bytes]:
        # Compressed as the client reads, so a client that stops early costs the server
        # little; sent in 64 KiB pieces (about 64 MiB each once inflated), as a file would be.
        compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        pending = compressor.compress(b'{"data": [')
        block = b" " * (1 << 20)
        for _ in range(self.bomb_size // len(block)):
            pending += compressor.compress(block)
            if len(pending) >= 1 << 16:
                yield pending
                pending = b""
            await asyncio.sleep(0)
        yield pending + compressor.compress(b"]}") + compressor.flush()


async def _json_body(receive: Receive) -> dict[str, Any]:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    try:
        document = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _source(n: int) -> dict[str, Any]:
    return {
        "id": f"{n:024x}",
        "type": "sources",
        "attributes": {
            "name": f"Hostile {n}",
            "enabled": True,
            "deployment": {
                "type": "webfolder",
                "imgix_subdomains": [f"hostile-{n}"],
                "webfolder_base_url": "https://origin.example/",
            },
        },
    }


@contextmanager
def serving(api: HostileApi) -> Iterator[str]:
    """Serve `api` with uvicorn on 127.0.0.1 (a free port) until the block ends; its URL."""
    with running_app(api) as url:  # type: ignore[arg-type]  # any ASGI app serves
        yield url


@contextmanager
def loopback_listener(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A bare TCP listener on 127.0.0.1 (a free port), below HTTP, until the block ends: each
    connection is given to `handle` on the listener's thread, then closed. Its port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # closed: the test is over
            with contextlib.suppress(OSError), connection:
                handle(connection)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept: close alone does not
        listener.close()
        thread.join(timeout=5)
