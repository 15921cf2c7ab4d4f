"""The imgix Management API client: async httpx, JSON:API, pacing, retries and errors.

Every call is paced to the documented rate limits (`Pacing`) and retried on 429, 5xx and
lost connections with exponential backoff and full jitter within a deadline
(`RetryPolicy`); a `Retry-After` header (or a 429's `X-RateLimit-Reset`) wins over the
computed backoff. Creating a
source has no idempotency key, so a create whose outcome is unknown is looked up by its
first subdomain before it is sent again: one spec, at most one source.

Exceptions:

    ClientError                 anything this module raises
    ├── ApiError                the API answered with an error (status, title, detail,
    │   │                       request_id, source_id)
    │   └── AuthError           401 or 403: the API key is rejected or under-privileged
    ├── TransportError          no response came, after every retry
    ├── DeadlineExceeded        retrying would pass the deadline
    └── LimitExceeded           the answer passed a bound of this client (size, pages)

No message, log line or repr holds a request body or the API key: bodies carry secrets.

Everything a server controls is bounded, so a hostile or broken one (or anything between
us and it) can neither hang nor exhaust the client: each request has a total deadline
(connect, headers and the whole body: httpx's own timeouts are per read, so a body sent
a byte at a time would pass them), each body is counted as it is decoded and refused
past `max_response_bytes`, a listing stops at `max_pages` pages or `max_sources` sources,
and nothing is allocated or started per page a server announces. A list that moved while
it was read (its pages disagree on its length, repeat a source, or list another number
of sources than they announce) is read again, a bounded number of times; one that contradicts
itself in one answer (an empty page saying more follow) is refused. Server text reaches
messages escaped by `reconciler.untrusted`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import sys
import time
import zlib
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any, NamedTuple, TypeVar
from urllib.parse import quote

import anyio
import httpx
from pydantic import ValidationError

from reconciler import deferred, redact
from reconciler.errors import ReconcilerError
from reconciler.live import DEFAULT_API_URL, LiveSource
from reconciler.pacing import (
    STOP_GRACE,
    Clock,
    NotStarted,
    Pacer,
    Pacing,
    RequestKind,
    RetryPolicy,
    Sleep,
    continuing_action,
    rate_limit_reset,
    retry_after,
)
from reconciler.plan import same_json
from reconciler.specs import HOSTNAME_FIELDS, SOURCE_ID_PATTERN, all_secret_fields
from reconciler.untrusted import escaped, may_hold_lone_surrogates, without_lone_surrogates

__all__ = [
    "DEFAULT_API_URL",
    "PAGE_SIZE",
    "ApiError",
    "AuthError",
    "ClientError",
    "DeadlineExceeded",
    "ImgixClient",
    "LimitExceeded",
    "Pacing",
    "RetryPolicy",
    "TransportError",
]

PAGE_SIZE = 100
JSON_API = "application/vnd.api+json"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# How many times one write waits for an hourly budget other clients keep spending.
BUDGET_WAITS = 3
# A wait asked past a day is shown as such: an hourly window is a real figure, years are not.
LONGEST_SHOWN_WAIT = 86400.0
# A create answered with one of these may have been committed before the server failed.
UNKNOWN_OUTCOME_STATUSES = frozenset({500, 502, 503, 504})
# How the API may refuse a hostname another source holds: 400 is what the emulator says,
# the real status is unconfirmed (api-notes.md), and 409 and 422 are the usual others.
HOSTNAME_TAKEN_STATUSES = frozenset({400, 409, 422})
# What a failed write that the server may have acted on adds to its error: the report
# must not read as if nothing was written.
UNKNOWN_OUTCOME = "applied is unknown: the next plan will tell"
MAYBE_APPLIED = f"; whether it was {UNKNOWN_OUTCOME}"
# Mistakes of ours (a URL that is not http(s), an unsendable header): retrying cannot help.
NOT_TRANSIENT = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)
# What turns a good certificate into a refused one on a CI runner, besides an expired one.
CERTIFICATE_REFUSED_HINT = (
    ": this machine refused the server's TLS certificate; check its clock, and behind a "
    "proxy that inspects TLS, point SSL_CERT_FILE at the proxy's CA bundle"
)
# How many list pages may be in flight at once; the pacer decides when each is sent.
LIST_CONCURRENCY = 8
# How many times a listing that moved while it was read is read again before the client
# gives up: a source removed between two page reads hides another from that listing.
LISTING_REREADS = 2

# Seconds one request may take in all: connecting, the headers and the whole body.
REQUEST_TIMEOUT = 30.0
# A page of 100 sources is about 100 KB of JSON; 16 MiB leaves room for very large
# `default_params` and still keeps a hostile body (or a gzip bomb) from filling memory.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
# imgix accounts hold about 100 sources by default, more on request. 1,000 times that is
# more than any account we know of, and a plan of that many stays under 1 GiB
# (bench/memory.py): past it the answer is more likely a broken or hostile server.
MAX_SOURCES = 100_000
# The API documents pages of up to 100 sources; a server may answer smaller pages than
# asked for (20 is the default seen in clients), so MAX_SOURCES takes at most this many
# pages. At the documented 4 requests/s, about twenty minutes.
MAX_PAGES = MAX_SOURCES // 20
# Only what the client asks for, and decodes under the size bound itself.
ACCEPT_ENCODING = "gzip, deflate"
JSON_MEDIA_TYPES = frozenset({"application/json", JSON_API})

SECRET_ATTRIBUTES = all_secret_fields() | {"secure_url_token"}

logger = logging.getLogger("reconciler.client")

T = TypeVar("T")

_HEADER_SAFE = deferred.pattern(__name__, "_HEADER_SAFE", r"[\x21-\x7e]+")
_SOURCE_ID = deferred.pattern(__name__, "_SOURCE_ID", SOURCE_ID_PATTERN)


# The most of an error detail from the API a message shows: the API's own are a sentence
# or two, and a message is repeated per failed action in reports and comments.
MAX_SHOWN_DETAIL = 500


def _shown(text: str, limit: int) -> str:
    """The server's `text` for a message: escaped onto one line, clipped past `limit`."""
    # Masked before it is clipped: a clip can end inside a secret, whose first part no
    # longer matches it.
    text = redact.scrub(text)
    if len(text) <= limit:
        return escaped(text)
    return f"{escaped(text[:limit])}… ({len(text) - limit:,} more characters)"


# --------------------------------------------------------------------------- errors


class ClientError(ReconcilerError):
    """Anything the client raises: its message is one sentence for the user."""


class ApiError(ClientError):
    """The API answered a request with an error."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None,
        request_id: str | None,
        source_id: str | None = None,
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.request_id = request_id
        self.source_id = source_id
        super().__init__(self._sentence())

    def _sentence(self) -> str:
        # Title, detail and request id are the server's text: one line, no forged commands,
        # and clipped, so a server cannot fill a log, a report or a comment with them.
        about = f" for source {_shown(self.source_id, 40)}" if self.source_id else ""
        detail = f": {_shown(self.detail, MAX_SHOWN_DETAIL)}" if self.detail else ""
        request = f" (request id {_shown(self.request_id, 80)})" if self.request_id else ""
        return f"imgix API {self.status} {_shown(self.title, 120)}{about}{detail}{request}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, title={self.title!r}, "
            f"detail={self.detail!r}, request_id={self.request_id!r}, "
            f"source_id={self.source_id!r})"
        )


class AuthError(ApiError):
    """The API key was rejected (401) or lacks the Sources permission (403)."""

    def _sentence(self) -> str:
        if self.status == 401:
            return "The API key was rejected (401): set IMGIX_API_KEY to a valid key."
        return "The API key lacks the Sources permission (403)."


class TransportError(ClientError):
    """No response came from the API, after every retry."""


class DeadlineExceeded(ClientError):
    """Retrying would pass the retry deadline; `last_error` is why the last try failed."""

    def __init__(self, message: str, last_error: ClientError) -> None:
        super().__init__(message)
        self.last_error = last_error


class LimitExceeded(ClientError):
    """The API's answer passed a bound of this client: a body's size, a listing's length."""


# --------------------------------------------------------------------------- client


@dataclass
class _Budget:
    """What is left for one logical call: its deadline, shared by any lookup it makes."""

    deadline_at: float
    attempt: int = 0


class _Answer(NamedTuple):
    """A success: its status, which an error about its document quotes, and the document."""

    status: int
    document: dict[str, Any]


# A NamedTuple, not a frozen dataclass: about 0.05 ms to define at start-up, not 0.4.
class _Page(NamedTuple):
    number: int
    resources: list[dict[str, Any]]
    pagination: Mapping[str, Any]
    status: int

    def declared_size(self) -> int | None:
        size = self.pagination.get("pageSize")
        return size if isinstance(size, int) and size > 0 else None

    def total_pages(self) -> int | None:
        total = self.pagination.get("totalPages")
        return total if isinstance(total, int) and total >= 0 else None

    def announced(self) -> tuple[int | None, int | None]:
        """The length of the whole list this page announces: (totalRecords, totalPages)."""
        records = self.pagination.get("totalRecords")
        if not isinstance(records, int) or isinstance(records, bool) or records < 0:
            records = None
        return records, self.total_pages()

    def has_next(self, size_hint: int) -> bool:
        """Whether a page follows: the server's word when it gives one, else a full page."""
        if not self.resources:
            return False
        announced = self.announces_more()
        if announced is not None:
            return announced
        # No meta: a page smaller than the first one is the last (the server may clamp
        # the size we asked for, so the first page is the measure, not `page[size]`).
        return len(self.resources) >= size_hint

    def says_more_follow(self) -> bool:
        """Whether the page says a page follows it, by `hasNextPage` or `totalPages`."""
        total = self.total_pages()
        return bool(self.announces_more()) or (total is not None and self.number + 1 < total)

    def announces_more(self) -> bool | None:
        """Whether the server says a page follows this one; None when it does not say."""
        has_next = self.pagination.get("hasNextPage")
        if isinstance(has_next, bool):
            return has_next
        total = self.total_pages()
        return None if total is None else self.number + 1 < total


class _Walk:
    """The bounds of one listing, whatever the server announces or sends."""

    def __init__(
        self,
        max_pages: int,
        max_sources: int,
        on_resource: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.max_pages = max_pages
        self.max_sources = max_sources
        self.received = 0
        self.on_resource = on_resource

    def check_announced(self, total_pages: int, first_page_size: int) -> None:
        """Refuse at once a listing announced longer than the bounds allow."""
        if total_pages > self.max_pages:
            raise LimitExceeded(
                f"The imgix API announces a list of {total_pages} pages, more than the "
                f"{self.max_pages} this client follows: refusing to list it."
            )
        if (total_pages - 1) * first_page_size >= self.max_sources:
            raise LimitExceeded(
                f"The imgix API announces {total_pages} pages of {first_page_size} sources, "
                f"more than the {self.max_sources} sources this client lists: refusing to "
                "list them."
            )

    def check_page(self, number: int) -> None:
        if number >= self.max_pages:
            raise LimitExceeded(
                f"The imgix API's list of sources goes on past {self.max_pages} pages: "
                "refusing to follow it further."
            )

    def count(self, resources: int) -> None:
        # Counted as pages arrive, repeats included, so memory is bounded before de-dup.
        self.received += resources
        if self.received > self.max_sources:
            raise LimitExceeded(
                f"The imgix API lists more than {self.max_sources} sources, more than this "
                "client lists: refusing to read more."
            )


class _Listing(NamedTuple):
    """One read of a list: its sources, each once, and what its pages said of its length."""

    resources: list[dict[str, Any]]
    # The totalRecords and the totalPages the pages announced, each value once, in order.
    records: tuple[int, ...]
    pages: tuple[int, ...]
    # Sources a page listed again after an earlier page of the same read had.
    repeated: int
    # The first page's: what an error about the list as a whole quotes.
    status: int

    def moved(self) -> str | None:
        """How the list was seen to change while it was read (None: it was not).

        Pages of one unchanged list agree on its length, list each source once, and list
        as many as they announce. A list read without `meta.pagination` shows only repeats.
        """
        read = len(self.resources)
        if not (self.disagree() or self.miscounted() or self.repeated):
            return None
        shown = list(map(str, self.records))
        if len(shown) > 4:  # a server may announce another length on every page
            shown[2:-1] = [f"… ({len(shown) - 3} more)"]
        told = " then ".join(shown)
        told = f"{told} announced, " if told else ""
        twice = f", {self.repeated} listed twice" if self.repeated else ""
        return f"{told}{read} read{twice}"

    def disagree(self) -> bool:
        return len(self.records) > 1 or len(self.pages) > 1

    def miscounted(self) -> bool:
        return len(self.records) == 1 and self.records[0] != len(self.resources)

    def alike(self, other: _Listing) -> bool:
        """The same sources, in the same order, under the same announced length."""
        return (self.records, self.pages) == (other.records, other.pages) and [
            resource["id"] for resource in self.resources
        ] == [resource["id"] for resource in other.resources]


def _tell_stderr(message: str) -> None:
    # Looked up at each call: the CLI wraps sys.stderr in its redacting stream.
    print(message, file=sys.stderr, flush=True)


Recover = Callable[[_Budget], Awaitable[_Answer | None]]


class ImgixClient:
    """An async client for the imgix Sources API; use it as `async with ImgixClient(...)`.

    The bounds on what a server controls are options, defaults in the module constants:
    `timeout` (REQUEST_TIMEOUT, 30 s) for each request in all, `max_response_bytes`
    (MAX_RESPONSE_BYTES, 16 MiB) for each decoded body, `max_pages` (MAX_PAGES, 5,000)
    and `max_sources` (MAX_SOURCES, 100,000) for each listing. `on_notice` is told, in one
    line, what the user should know while a call goes on (stderr by default).
    """

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = DEFAULT_API_URL,
        transport: httpx.AsyncBaseTransport | None = None,
        pacing: Pacing = Pacing(),  # noqa: B008 - frozen dataclass, never mutated
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        timeout: float = REQUEST_TIMEOUT,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        max_pages: int = MAX_PAGES,
        max_sources: int = MAX_SOURCES,
        pacer: Pacer | None = None,
        on_notice: Callable[[str], None] = _tell_stderr,
    ) -> None:
        api_key = api_key.strip()
        if not _HEADER_SAFE.fullmatch(api_key):
            # Checked here because httpx would quote the bad header, key and all.
            raise ClientError(
                "The API key is empty or holds characters an HTTP header cannot carry: "
                "set IMGIX_API_KEY to a valid key."
            )
        if not timeout > 0 or min(max_response_bytes, max_pages, max_sources) < 1:
            raise ValueError("timeout and the response and listing bounds must be positive")
        redact.register(api_key)
        self._timeout = timeout
        self._max_response_bytes = max_response_bytes
        self._max_pages = max_pages
        self._max_sources = max_sources
        # What the user is told while a call goes on (a listing read again): one line each.
        self._notice = on_notice
        self._retry = retry or RetryPolicy()
        self._clock = clock
        # A shared pacer (one per process) keeps the pace across clients.
        self._pacer = pacer or Pacer(pacing, clock=clock, sleep=sleep)
        self._list_slots = asyncio.Semaphore(LIST_CONCURRENCY)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/api/v1/",
            transport=transport,
            timeout=httpx.Timeout(timeout),
            headers={
                "Authorization": f"Bearer {api_key}",
                "Accept": JSON_API,
                "Accept-Encoding": ACCEPT_ENCODING,
                "Content-Type": JSON_API,
                "User-Agent": "imgix-reconciler",
            },
        )

    def __repr__(self) -> str:
        return f"ImgixClient(base_url={str(self._http.base_url)!r})"

    @property
    def pacer(self) -> Pacer:
        """The pacer every request of this client waits in."""
        return self._pacer

    async def __aenter__(self) -> ImgixClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # ----------------------------------------------------------------------- operations

    async def list_sources(self) -> list[LiveSource]:
        """Every source of the account, each once, in the order the API lists them.

        A list that moved while it was read (a source created or removed between two page
        reads: `_Listing.moved`) is read again, up to LISTING_REREADS times, then refused
        as an invalid response: a source it hid would be planned as missing.
        """
        previous: _Listing | None = None
        for read in range(LISTING_REREADS + 1):
            listing, decoded = await self._read_sources()
            moved = listing.moved()
            if moved is None:
                break
            if (
                previous is not None
                and not listing.disagree()
                and not listing.repeated
                and listing.alike(previous)
            ):
                # Two reads alike are no moving list: the API counts a source it does not list.
                self._notice(
                    f"the imgix API announces {listing.records[0]} sources but lists "
                    f"{len(listing.resources)}, on two reads alike; going by what it lists"
                )
                break
            if read == LISTING_REREADS:
                raise _invalid_response(
                    "GET",
                    f"the list of sources kept changing while it was read ({moved}), "
                    f"{read + 1} times in a row; no plan is made from a list known to be "
                    "incomplete: try again when the account is quiet",
                    status=listing.status,
                )
            self._notice(
                f"the list of sources changed while it was read ({moved}); reading it again"
            )
            previous = listing
        return [
            decoded[id(resource)][1]
            if id(resource) in decoded
            else self._live(resource, "GET", listing.status, _listed_id(resource))
            for resource in listing.resources
        ]

    async def _read_sources(self) -> tuple[_Listing, dict[int, tuple[dict[str, Any], LiveSource]]]:
        """One read of the account's list, each source decoded as its page arrives."""
        # Each page is decoded as it arrives, while later ones are awaited, and its raw
        # resources shrink to their ids: a large account is not held twice in memory.
        decoded: dict[int, tuple[dict[str, Any], LiveSource]] = {}

        def decode(resource: dict[str, Any]) -> None:
            try:
                live = LiveSource.from_resource(resource)
            except (ValidationError, TypeError, ArithmeticError):
                return  # decoded again below, in order, to raise the error it has
            # The raw dict stays referenced, so its id() is never reused by another.
            decoded[id(resource)] = (resource, live)
            identifier = resource["id"]
            resource.clear()
            resource["id"] = identifier

        # Each page has the whole retry deadline: a long listing is not a slow one.
        return await self._list_resources({}, None, decode), decoded

    async def get_source(self, source_id: str) -> LiveSource:
        """One source by id."""
        answer = await self._call("GET", _source_path(source_id), source_id=source_id)
        return self._live(answer.document.get("data"), "GET", answer.status, source_id)

    async def create_source(self, attributes: dict[str, Any]) -> LiveSource:
        """Create a source from JSON:API attributes (plain secret values), exactly once."""
        body = {"data": {"type": "sources", "attributes": attributes}}
        subdomain = _first_subdomain(attributes)
        recover: Recover | None = None
        if subdomain is not None:

            async def recover(budget: _Budget) -> _Answer | None:
                found = await self._find_by_subdomain(subdomain, budget)
                if found is None or not _made_by(found.document["data"], attributes):
                    # Another run, or the dashboard, made it meanwhile: not this create's.
                    return None
                return found

        answer = await self._call(
            "POST", "sources", body=body, kind="create", recover=recover, secrets=attributes
        )
        return self._written(answer, "POST", created=attributes)

    def _written(
        self,
        answer: _Answer,
        method: str,
        source_id: str | None = None,
        created: Mapping[str, Any] | None = None,
    ) -> LiveSource:
        """The source a write's success answer holds; one it cannot show leaves it unknown.

        A create's answer is about the source created only if it shows the hostnames sent
        (each is the account's, imgix-wide): any id is new to a create, not another's names.
        """
        try:
            written = self._live(answer.document.get("data"), method, answer.status, source_id)
            if (source_id is not None and written.id != source_id) or (
                created is not None and not _same_hostnames(created, written.deployment)
            ):
                # The caller acts on what comes back (a follow-up write goes to its id): an
                # answer about another source says nothing of whether this write landed.
                raise _invalid_response(
                    method,
                    f"the answer is about source {redact.scrub(written.id)}, not the one written",
                    source_id,
                    status=answer.status,
                )
        except ClientError as error:
            error.args = (f"{error}{MAYBE_APPLIED}",)
            raise
        return written

    async def update_source(self, source_id: str, attributes: dict[str, Any]) -> LiveSource:
        """Change a source: `attributes` may be partial (a partial deployment is merged)."""
        body = {"data": {"id": source_id, "type": "sources", "attributes": attributes}}
        answer = await self._call(
            "PATCH",
            _source_path(source_id),
            body=body,
            kind="update",
            source_id=source_id,
            secrets=attributes,
        )
        return self._written(answer, "PATCH", source_id)

    # ----------------------------------------------------------------------- listing

    async def _list_resources(
        self,
        filters: Mapping[str, str],
        budget: _Budget | None,
        on_resource: Callable[[dict[str, Any]], None] | None = None,
    ) -> _Listing:
        """Walk every page; fetch the rest at once when the first says how many there are.

        `on_resource` sees each resource of a page as the page arrives.
        """
        seen: dict[str, dict[str, Any]] = {}
        records: dict[int, None] = {}
        pages: dict[int, None] = {}
        repeated = 0

        def note(page: _Page, new: int) -> None:
            nonlocal repeated
            repeated += len(page.resources) - new
            announced_records, announced_pages = page.announced()
            if announced_records is not None:
                records[announced_records] = None
            if announced_pages is not None:
                pages[announced_pages] = None

        walk = _Walk(self._max_pages, self._max_sources, on_resource)
        first = await self._fetch_page(0, filters, budget, walk)
        note(first, _collect(seen, first))
        last = first
        total = first.total_pages()
        if total is not None and total > 1:
            walk.check_announced(total, len(first.resources))
            rest = await self._fetch_pages(range(1, total), filters, budget, walk)
            for page in rest:
                note(page, _collect_new(seen, page))
            last = rest[-1]
        size_hint = first.declared_size() or len(first.resources)
        # Sources created while listing push others onto pages past the announced end.
        while last.has_next(size_hint):
            page = await self._fetch_page(last.number + 1, filters, budget, walk)
            new = _collect_new(seen, page)
            note(page, new)
            if not new and page.resources:
                logger.debug("page %d held only sources already seen: stopping", page.number)
                break
            last = page
        return _Listing(list(seen.values()), tuple(records), tuple(pages), repeated, first.status)

    async def _fetch_pages(
        self, numbers: range, filters: Mapping[str, str], budget: _Budget | None, walk: _Walk
    ) -> list[_Page]:
        """The pages `numbers` in order, fetched by a few workers (never a task per page)."""
        pages: dict[int, _Page] = {}
        pending = iter(numbers)

        async def worker() -> None:
            for number in pending:  # shared: each number is taken by one worker
                pages[number] = await self._fetch_page(number, filters, budget, walk)

        await _gather_or_cancel(worker() for _ in range(min(LIST_CONCURRENCY, len(numbers))))
        return [pages[number] for number in numbers]

    async def _fetch_page(
        self, number: int, filters: Mapping[str, str], budget: _Budget | None, walk: _Walk
    ) -> _Page:
        walk.check_page(number)
        params = {"page[number]": str(number), "page[size]": str(PAGE_SIZE), **filters}
        async with self._list_slots:
            answer = await self._call("GET", "sources", params=params, budget=budget)
        document = answer.document
        data = document.get("data")
        if not isinstance(data, list) or not all(
            isinstance(item, dict) and isinstance(item.get("id"), str) for item in data
        ):
            raise _invalid_response(
                "GET", "the list of sources is not a list of resources", status=answer.status
            )
        walk.count(len(data))
        if walk.on_resource is not None:
            for resource in data:
                walk.on_resource(resource)
        meta = document.get("meta")
        pagination = meta.get("pagination") if isinstance(meta, dict) else None
        page = _Page(
            number, data, pagination if isinstance(pagination, dict) else {}, answer.status
        )
        if not data and page.says_more_follow():
            # Pages are slices of one list, so an empty one can only be its end. Read on, a
            # whole page of sources may be missing from the list; stopped at, the pages
            # after it are: either way each missing source would be planned as a create.
            raise _invalid_response(
                "GET",
                f"page {number} of the list holds no sources, yet the API says more pages follow",
                status=answer.status,
            )
        return page

    async def _find_by_subdomain(self, subdomain: str, budget: _Budget) -> _Answer | None:
        """The source claiming `subdomain`, looked up after a create's outcome was lost."""
        filters = {"filter[deployment.imgix_subdomains]": subdomain}
        lookup_budget = _Budget(budget.deadline_at)
        claiming = []
        lookup = await self._list_resources(filters, lookup_budget)
        for resource in lookup.resources:
            attributes = resource.get("attributes")
            deployment = attributes.get("deployment") if isinstance(attributes, dict) else None
            subdomains = (
                deployment.get("imgix_subdomains") if isinstance(deployment, dict) else None
            )
            # Check by hand as well, in case the server ignores the filter.
            if isinstance(subdomains, list) and subdomain in subdomains:
                claiming.append(resource)
        if len(claiming) != 1:
            # A subdomain is one source's: a listing showing it on several cannot say which
            # one the create made, and a guess would report (and write to) another source.
            return None
        logger.debug("found the source a lost create made: %s", claiming[0]["id"])
        return _Answer(lookup.status, {"data": claiming[0]})

    # ----------------------------------------------------------------------- requests

    def _budget(self) -> _Budget:
        return _Budget(self._clock() + self._retry.deadline)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: dict[str, Any] | None = None,
        kind: RequestKind = "read",
        source_id: str | None = None,
        recover: Recover | None = None,
        secrets: Mapping[str, Any] | None = None,
        budget: _Budget | None = None,
    ) -> _Answer:
        """Send one logical request, retrying as the policy allows; the success document."""
        budget = budget if budget is not None else self._budget()
        budget = _Budget(budget.deadline_at)
        # Should the server echo a value we sent, no error message may carry it.
        for value in _secret_values(secrets or {}):
            redact.register(value)
        outcome_unknown = False
        refused = False  # the last attempt was refused (429): it did nothing
        untouched = True  # every attempt so far was refused: a retry starts the write anew
        renew = False  # the next attempt follows a wait for the hourly budget, not a retry
        budget_waits = 0
        # A write the server may have acted on (a 5xx, an answer cut off) says so when it
        # fails for good: the report must not read as if nothing was written.
        maybe_applied = False
        try:
            while True:
                budget.attempt += 1
                stop = self._pacer.stop.reason
                if budget.attempt > 1 and kind != "read" and stop is not None:
                    # A retry after a signal is a write started after it, and CI kills a job
                    # a few seconds after its first signal: the report must be out by then.
                    if refused:
                        raise NotStarted(stop)
                    raise _stopped_retrying(method, path, stop)
                try:
                    outcome = await self._attempt(
                        method, path, params, body, kind, budget.attempt, starting=untouched
                    )
                except NotStarted as stopped:
                    if untouched:
                        raise
                    raise _stopped_retrying(method, path, str(stopped)) from None
                if kind != "read" and _may_have_acted(outcome):
                    maybe_applied = True
                if renew:
                    budget.deadline_at = max(
                        budget.deadline_at, self._clock() + self._retry.deadline
                    )
                    renew = False
                if (
                    isinstance(outcome, httpx.Response)
                    and outcome.status_code not in RETRY_STATUSES
                ):
                    if outcome.is_success:
                        return _Answer(outcome.status_code, _document(outcome, method))
                    # A taken subdomain after a lost create: that create did land.
                    if (
                        outcome_unknown
                        and recover is not None
                        and outcome.status_code in HOSTNAME_TAKEN_STATUSES
                    ):
                        found = await recover(budget)
                        if found is not None:
                            return found
                    raise _api_error(outcome, source_id)
                refused = isinstance(outcome, httpx.Response) and outcome.status_code == 429
                untouched = untouched and refused
                error = self._error_of(outcome, method, path, source_id)
                if isinstance(outcome, httpx.TransportError) and _not_transient(outcome):
                    raise error from outcome
                try:
                    await self._back_off(outcome, error, method, path, budget, kind, untouched)
                except NotStarted as stopped:
                    if untouched:
                        raise
                    raise _stopped_retrying(method, path, str(stopped)) from None
                except ClientError:
                    # Refused until the retries ran out, or asked to wait past them: the hourly
                    # budget is spent, maybe by another run. The write waits for it in the
                    # pacer (announced, within --max-duration) as for its own pace, for as long
                    # as the 429 asked, or a whole window when it did not say.
                    if not (untouched and kind != "read" and budget_waits < BUDGET_WAITS):
                        raise
                    if not self._pacer.spent_elsewhere(kind, _asked_wait(outcome)):
                        raise
                    budget_waits += 1
                    budget.attempt = 0
                    renew = True
                    continue
                if _is_unknown_outcome(outcome) and recover is not None:
                    outcome_unknown = True
                    found = await recover(budget)
                    if found is not None:
                        return found
        except ClientError as error:
            if maybe_applied and UNKNOWN_OUTCOME not in str(error):
                error.args = (f"{error}{MAYBE_APPLIED}",)
            raise

    async def _attempt(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        body: dict[str, Any] | None,
        kind: RequestKind,
        attempt: int,
        *,
        starting: bool,
    ) -> httpx.Response | httpx.TransportError:
        # A retry finishes work already under way; only an attempt after nothing but
        # refusals starts new work.
        starting = starting and not continuing_action.get()
        try:
            async with self._pacer.slot(kind, starting=starting) as ticket:
                try:
                    response = await self._exchange(method, path, params, body)
                except httpx.TransportError as exc:
                    ticket.spent = _is_unknown_outcome(exc)
                    raise
                # A refused write (429 or another 4xx) did not spend the server's budget.
                ticket.spent = not 400 <= response.status_code < 500
                if response.status_code == 429:
                    said = _asked_wait(response) is not None
                    self._pacer.refused(kind, said_how_long=said)
        except httpx.TransportError as exc:
            logger.debug("%s %s: %s (attempt %d)", method, path, type(exc).__name__, attempt)
            return exc
        logger.debug("%s %s: %d (attempt %d)", method, path, response.status_code, attempt)
        return response

    async def _exchange(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        body: dict[str, Any] | None,
    ) -> httpx.Response:
        """One request and its whole response, within the total deadline and the size bound."""
        stop = self._pacer.stop
        cut: list[str] = []
        try:
            # A cancel scope in this task: `asyncio.wait_for` on Python 3.10 ran the request
            # in a task of its own, and that extra hop let more requests past the pacer
            # before a 429's pause took hold (a storm that fed itself).
            with anyio.fail_after(self._timeout) as scope:

                def shorten() -> None:
                    # After a signal, a request under way has a grace period, not the
                    # whole timeout: the job is killed soon after its first signal.
                    grace_end = anyio.current_time() + STOP_GRACE
                    if grace_end < scope.deadline:
                        scope.deadline = grace_end
                        cut.append(stop.reason or "a stop")

                if stop.reason is not None:
                    shorten()
                unsubscribe = stop.subscribe(shorten)
                try:
                    return await self._send_and_read(method, path, params, body)
                finally:
                    unsubscribe()
        except TimeoutError:
            # A slow network is worth a retry, like httpx's own timeouts.
            within = f"{STOP_GRACE:g}s of being {cut[0]}" if cut else f"{self._timeout:g}s"
            raise httpx.TimeoutException(f"no complete response within {within}") from None

    async def _send_and_read(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        body: dict[str, Any] | None,
    ) -> httpx.Response:
        request = self._http.build_request(method, path, params=params, json=body)
        response = await self._http.send(request, stream=True)
        try:
            content = await _read_body(response, self._max_response_bytes, method, path)
        finally:
            await response.aclose()
        # The body is decoded already: a response without the encoding headers holds it.
        # Raw bytes: decoded text would be encoded again as ASCII, and a server's non-ASCII
        # header value (`Retry-After: \u0661`) raised UnicodeEncodeError (found by fuzzing).
        headers = [
            (name, value)
            for name, value in response.headers.raw
            if name.lower() not in (b"content-encoding", b"content-length", b"transfer-encoding")
        ]
        return httpx.Response(
            response.status_code, headers=headers, content=content, request=request
        )

    def _error_of(
        self,
        outcome: httpx.Response | httpx.TransportError,
        method: str,
        path: str,
        source_id: str | None,
    ) -> ClientError:
        if isinstance(outcome, httpx.Response):
            return _api_error(outcome, source_id)
        reason = escaped(redact.scrub(str(outcome))) or "no detail"
        hint = CERTIFICATE_REFUSED_HINT if _certificate_refused(outcome) else ""
        return TransportError(
            f"No response from the imgix API at {self._http.base_url.host} for {method} "
            f"/api/v1/{path}: {type(outcome).__name__} ({reason}){hint}"
        )

    async def _back_off(
        self,
        outcome: httpx.Response | httpx.TransportError,
        error: ClientError,
        method: str,
        path: str,
        budget: _Budget,
        kind: RequestKind,
        starting: bool,
    ) -> None:
        """Sleep before the next attempt, or raise when attempts or time have run out.

        A write whose retry could not go out before `--max-duration` (or after a stop) is
        refused before the sleep (`NotStarted`), not after it.
        """
        if budget.attempt >= self._retry.attempts:
            raise error
        asked = _asked_wait(outcome)
        wait = asked if asked is not None else self._retry.backoff(budget.attempt)
        remaining = budget.deadline_at - self._clock()
        # Checked before holding the pacer: a Retry-After past the deadline must not stall
        # every other request for longer than this one would have waited.
        if wait > remaining or not math.isfinite(wait):
            raise DeadlineExceeded(
                f"Gave up on {method} /api/v1/{path} after {budget.attempt} attempts: "
                f"{self._too_long(wait, asked)}. Last error: {error}",
                error,
            ) from error
        logger.debug(
            "%s %s: retrying in %.2fs (attempt %d of %d)",
            method,
            path,
            wait,
            budget.attempt,
            self._retry.attempts,
        )
        self._pacer.check_retry(kind, wait, starting=starting and not continuing_action.get())
        if isinstance(outcome, httpx.Response) and outcome.status_code == 429:
            self._pacer.hold(wait)
        await self._pacer.pause(wait)

    def _too_long(self, wait: float, asked: float | None) -> str:
        """Why `wait` is not waited; a server's absurd figure is not echoed back."""
        deadline = self._retry.deadline
        if not math.isfinite(wait):
            return "the server asked to wait without end"
        if asked is not None and wait > LONGEST_SHOWN_WAIT:
            return f"the server asked to wait more than a day, past the {deadline:g}s deadline"
        return f"waiting {wait:.1f}s more would pass the {deadline:g}s deadline"

    def _live(
        self, resource: object, method: str, status: int, source_id: str | None = None
    ) -> LiveSource:
        """The source `resource` stands for; else an error quoting the `status` it came with."""
        if not isinstance(resource, dict) or not isinstance(resource.get("id"), str):
            raise _invalid_response(
                method, "no source resource in the response", source_id, status=status
            )
        if not isinstance(resource.get("attributes") or {}, dict):
            raise _invalid_response(
                method, "the attributes of a source are not an object", source_id, status=status
            )
        try:
            return LiveSource.from_resource(resource)
        except ArithmeticError:  # a number too large for its field (`date_deployed: 1e400`)
            raise _invalid_response(
                method, "a number is out of range", source_id, status=status
            ) from None
        except ValidationError as exc:
            # Locations and messages only: pydantic's default text echoes input values.
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
                for error in exc.errors()
            )
            raise _invalid_response(method, problems, source_id, status=status) from None


# --------------------------------------------------------------------------- helpers


def _stopped_retrying(method: str, path: str, why: str) -> ClientError:
    return ClientError(
        f"Stopped retrying {method} /api/v1/{path} ({why}); whether the earlier attempt "
        f"was {UNKNOWN_OUTCOME}"
    )


def _listed_id(resource: object) -> str | None:
    """The id of a listed source its error can name: only one of an id's shape, as a
    server's text elsewhere in it is never quoted."""
    identifier = resource.get("id") if isinstance(resource, dict) else None
    return identifier if isinstance(identifier, str) and _SOURCE_ID.fullmatch(identifier) else None


def _source_path(source_id: str) -> str:
    # Ids come from the listing: one from a hostile or broken server (`..`, `../x`) must
    # not reach another path, and percent-quoting alone would still let `..` through.
    if not _SOURCE_ID.fullmatch(source_id):
        source_id = redact.scrub(source_id)  # before `ascii` and the clip respell a secret
        shown = ascii(source_id[:40] + ("…" if len(source_id) > 40 else ""))
        raise ClientError(
            f"Refusing to send a request for the source id {shown}: "
            "imgix source ids are 24 lowercase hex characters."
        )
    return "sources/" + quote(source_id, safe="")


def _first_subdomain(attributes: Mapping[str, Any]) -> str | None:
    deployment = attributes.get("deployment")
    if not isinstance(deployment, dict):
        return None
    subdomains = deployment.get("imgix_subdomains")
    if isinstance(subdomains, list) and subdomains and isinstance(subdomains[0], str):
        return subdomains[0]
    return None


def _made_by(resource: Mapping[str, Any], attributes: Mapping[str, Any]) -> bool:
    """Whether a listed source can be the one a create of `attributes` made.

    Its name is the one sent, and so is every value sent that the listing shows (the
    origin, the annotation with its marker: owner and fingerprints), hostnames in any
    order; secrets are never shown. A value the API normalised leaves it unknown.
    """
    listed = resource.get("attributes")
    if not isinstance(listed, Mapping):
        return False
    if "name" in attributes and listed.get("name") != attributes["name"]:
        return False
    sent, have = attributes.get("deployment"), listed.get("deployment")
    if not isinstance(sent, Mapping) or not isinstance(have, Mapping):
        return True
    return all(
        _same_value(key, sent[key], have[key])
        for key in sent
        if key in have and key not in SECRET_ATTRIBUTES
    )


def _same_hostnames(attributes: Mapping[str, Any], shown: Mapping[str, Any]) -> bool:
    """Whether a source's `shown` deployment has the hostnames `attributes` sent (those it
    shows: an answer that omits a list, or gives `null` for an empty one, says nothing)."""
    sent = attributes.get("deployment")
    if not isinstance(sent, Mapping):
        return True
    return all(
        _same_value(key, sent[key] or [], shown[key])
        for key in HOSTNAME_FIELDS
        if key in sent and isinstance(shown.get(key), list)
    )


def _same_value(key: str, sent: Any, have: Any) -> bool:
    if key in HOSTNAME_FIELDS and isinstance(sent, list) and isinstance(have, list):
        return sorted(map(str, sent)) == sorted(map(str, have))
    return same_json(sent, have)


def _asked_wait(outcome: httpx.Response | httpx.TransportError) -> float | None:
    """The wait a refusal asks for: `Retry-After`, else a 429's `X-RateLimit-Reset`.

    Both are unconfirmed on the real API (api-notes.md): honoured when present.
    """
    if not isinstance(outcome, httpx.Response):
        return None
    asked = retry_after(outcome.headers)
    if asked is None and outcome.status_code == 429:
        asked = rate_limit_reset(outcome.headers)
    return asked


def _may_have_acted(outcome: httpx.Response | httpx.TransportError) -> bool:
    """Whether a write's attempt may have been applied: said done, or no clear answer."""
    if isinstance(outcome, httpx.Response) and outcome.is_success:
        return True
    return _is_unknown_outcome(outcome)


def _is_unknown_outcome(outcome: httpx.Response | httpx.TransportError) -> bool:
    """Whether the server may have acted on a request we got no clear answer to."""
    if isinstance(outcome, httpx.Response):
        return outcome.status_code in UNKNOWN_OUTCOME_STATUSES
    # A request that never connected was never sent.
    return not isinstance(outcome, httpx.ConnectError | httpx.ConnectTimeout)


def _collect(seen: dict[str, dict[str, Any]], page: _Page) -> int:
    """Add a page's sources not seen yet; how many were new."""
    new = 0
    for resource in page.resources:
        if resource["id"] not in seen:
            seen[resource["id"]] = resource
            new += 1
    return new


def _collect_new(seen: dict[str, dict[str, Any]], page: _Page) -> int:
    """`_collect` for a page after the first: one that only repeats may not promise more."""
    new = _collect(seen, page)
    # Under imgix's create limit no listing shifts by a whole page: a server that repeats
    # one while promising more would be followed forever.
    if not new and page.resources and page.announces_more():
        raise _invalid_response(
            "GET",
            f"page {page.number} of the list repeats only sources of earlier pages, "
            "yet the API says more pages follow",
            status=page.status,
        )
    return new


async def _gather_or_cancel(coroutines: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Run concurrently; on the first failure cancel the rest and raise it."""
    tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _secret_values(attributes: Mapping[str, Any]) -> set[str]:
    deployment = attributes.get("deployment")
    if not isinstance(deployment, dict):
        return set()
    return {
        value
        for name, value in deployment.items()
        if name in SECRET_ATTRIBUTES and isinstance(value, str)
    }


async def _read_body(response: httpx.Response, limit: int, method: str, path: str) -> bytes:
    """The decoded body, read as it arrives and refused as soon as it passes `limit` bytes.

    A status that is retried (5xx, 429) gets an empty body instead of the refusal.
    """
    try:
        return await _bounded_body(response, limit, method, path)
    except (LimitExceeded, ApiError):
        if response.status_code not in RETRY_STATUSES:
            raise
        # Its status decides the retry and its body only words the error: a proxy's page
        # past the bound or a broken gzip must not make a failure that is retried final.
        return b""


async def _bounded_body(response: httpx.Response, limit: int, method: str, path: str) -> bytes:
    def too_large() -> LimitExceeded:
        return LimitExceeded(
            f"The imgix API's answer to {method} /api/v1/{path} is larger than {limit:,} "
            "bytes once decoded, the most this client reads: refusing it."
        )

    try:
        # A transport that answers in memory (tests, the in-process emulator) hands over a
        # body httpx has read and decoded already.
        content = response.content
    except httpx.ResponseNotRead:
        pass
    else:
        if len(content) > limit:
            raise too_large()
        return content
    declared = response.headers.get("content-length", "")
    try:
        decoder = _BoundedDecoder(response.headers.get("content-encoding", ""), limit, too_large)
        if decoder.identity and declared.isdigit() and int(declared) > limit:
            raise too_large()
        async for chunk in response.aiter_raw():
            decoder.feed(chunk)
        decoder.finish()
    except (zlib.error, _Undecodable) as error:
        raise _invalid_response(
            method,
            f"the body cannot be decoded ({escaped(str(error))[:120]})",
            status=response.status_code,
        ) from None
    return decoder.body()


class _Undecodable(Exception):
    """A content encoding this client did not ask for."""


class _BoundedDecoder:
    """A body decoded chunk by chunk: never more than `limit` decoded bytes in memory.

    httpx decodes a whole network chunk at once, and 64 KiB of gzip can hold 64 MiB, so the
    client inflates itself with zlib's `max_length`, stopping one byte past the bound.
    """

    def __init__(self, encoding: str, limit: int, too_large: Callable[[], Exception]) -> None:
        codings = [c.strip().lower() for c in encoding.split(",")]
        codings = [c for c in codings if c not in ("", "identity")]
        if codings not in ([], ["gzip"], ["x-gzip"], ["deflate"]):
            shown = escaped(redact.scrub(encoding.strip()))[:60]
            raise _Undecodable(f"content encoding {shown!r} was not asked for")
        # 32 + MAX_WBITS: zlib reads the gzip or zlib header, whichever comes.
        self._inflater = zlib.decompressobj(32 + zlib.MAX_WBITS) if codings else None
        self._limit = limit
        self._too_large = too_large
        self._chunks: list[bytes] = []
        self._size = 0

    @property
    def identity(self) -> bool:
        return self._inflater is None

    def feed(self, data: bytes) -> None:
        if self._inflater is None:
            self._add(data)
            return
        while data:
            self._add(self._inflater.decompress(data, self._room()))
            data = self._inflater.unconsumed_tail

    def finish(self) -> None:
        if self._inflater is not None:
            self._add(self._inflater.flush(self._room()))

    def body(self) -> bytes:
        return b"".join(self._chunks)

    def _room(self) -> int:
        # One byte past the bound is enough to know it was passed (0 would mean no bound).
        return self._limit - self._size + 1

    def _add(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            raise self._too_large()
        if data:
            self._chunks.append(data)


def _document(response: httpx.Response, method: str) -> dict[str, Any]:
    media_type = response.headers.get("content-type", "").partition(";")[0].strip()
    if media_type.lower() not in JSON_MEDIA_TYPES and not media_type.lower().endswith("+json"):
        # Masked before it is lowered and clipped: either changes how a secret is spelled.
        shown = escaped(redact.scrub(media_type)[:60].lower()) if media_type else "no content type"
        raise _invalid_response(
            method, f"the body is {shown}, not JSON", status=response.status_code
        )
    try:
        document = _decoded(response)
    except (ValueError, RecursionError):  # RecursionError: arrays nested past the stack
        document = None
    if not isinstance(document, dict):
        raise _invalid_response(
            method, "the body is not a JSON object", status=response.status_code
        )
    return document


def _decoded(response: httpx.Response) -> Any:
    document = response.json()
    if may_hold_lone_surrogates(response.content):
        # Else one name holding `"\ud800"` made every plan of the account an internal error.
        return without_lone_surrogates(document)
    return document


def _invalid_response(
    method: str, why: str, source_id: str | None = None, *, status: int
) -> ApiError:
    # No default status: one made up (200 for a 201) would misquote what the server said.
    return ApiError(status, "Invalid Response", f"{method}: {why}", None, source_id)


def _api_error(response: httpx.Response, source_id: str | None) -> ApiError:
    """The error an error response stands for: its first JSON:API error object."""
    status = response.status_code
    try:
        body = _decoded(response)
    except (ValueError, RecursionError):
        body = None
    errors = body.get("errors") if isinstance(body, dict) else None
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    title = first.get("title") if isinstance(first.get("title"), str) else None
    detail = first.get("detail") if isinstance(first.get("detail"), str) else None
    request_id = first.get("id") if isinstance(first.get("id"), str) else None
    request_id = request_id or response.headers.get("x-request-id")
    request_id = redact.scrub(request_id) if request_id else None
    title = title or _reason(status)
    error_class = AuthError if status in (401, 403) else ApiError
    return error_class(
        status,
        redact.scrub(title),
        redact.scrub(detail) if detail else None,
        request_id,
        source_id,
    )


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _not_transient(outcome: httpx.TransportError) -> bool:
    """Whether retrying `outcome` can only fail again."""
    # A certificate refused is refused again on every retry.
    return isinstance(outcome, NOT_TRANSIENT) or _certificate_refused(outcome)


def _certificate_refused(outcome: httpx.TransportError) -> bool:
    """Whether `outcome` is the runner refusing the server's TLS certificate."""
    cause: BaseException | None = outcome if isinstance(outcome, httpx.ConnectError) else None
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False
