"""Domain errors of the emulated API: each knows its HTTP status, title and detail.

The store raises them; `app.py` turns every one into a JSON:API error body in one place.

    ApiProblem
    ├── BadRequest          400  validation, malformed bodies, taken hostnames
    ├── Unauthorized        401  missing or malformed API key
    ├── Forbidden           403  a key without the Sources permission
    ├── NotFound            404  unknown source id or path
    ├── MethodNotAllowed    405  e.g. DELETE (the API has none)
    ├── RateLimited         429  past a rate limit (carries the seconds to wait)
    └── InjectedFailure     500  fault injection
"""

from __future__ import annotations


class ApiProblem(Exception):
    """A request the API refuses, as the API words it."""

    status = 500
    title = "Internal Server Error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadRequest(ApiProblem):
    status = 400
    title = "Bad Request"


class Unauthorized(ApiProblem):
    status = 401
    title = "Unauthorized"


class Forbidden(ApiProblem):
    status = 403
    title = "Forbidden"


class NotFound(ApiProblem):
    status = 404
    title = "Not Found"


class MethodNotAllowed(ApiProblem):
    status = 405
    title = "Method Not Allowed"

    def __init__(self, method: str, allowed: tuple[str, ...]) -> None:
        super().__init__(f"{method} is not allowed here. Allowed: {', '.join(allowed)}.")
        self.allowed = allowed


class RateLimited(ApiProblem):
    status = 429
    title = "Too Many Requests"

    def __init__(self, detail: str, *, retry_after: int, limit: int = 0) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.limit = limit  # of the window that refused


class InjectedFailure(ApiProblem):
    status = 500
    title = "Internal Server Error"
