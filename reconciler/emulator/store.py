"""The emulated account: its sources and every rule the API enforces on them.

No HTTP here: methods take parsed values, return JSON:API resource objects (as the
response will show them) and raise `ApiProblem`s. `app.py` is the HTTP face of it.
"""

# Not `from __future__ import annotations`: typing.NamedTuple would compile each field's
# annotation text at every start.

import functools
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pydantic import TypeAdapter, ValidationError

from reconciler import deferred
from reconciler.emulator.deployments import (
    DASHBOARD_ANNOTATION,
    encrypt,
    merged_deployment,
    model_for,
    new_deployment,
    public_deployment,
    requested_deployment,
    require_credentials,
    shown_value,
    validated,
    written_secrets,
)
from reconciler.emulator.errors import (
    BadRequest,
    Forbidden,
    InjectedFailure,
    NotFound,
    Unauthorized,
)
from reconciler.emulator.limits import Clock, Faults, RateLimiter, RateLimits
from reconciler.emulator.listing import Page, Resource, parse_query, select
from reconciler.emulator.numbers import SAFE_RANGE, unsafe_number
from reconciler.specs import (
    DEPLOYMENT_MODELS,
    HOSTNAME_FIELDS,
    SOURCE_ID_PATTERN,
    SourceSpec,
    deployment_defaults,
    deployment_fields,
    secret_fields,
)

EMULATOR_API_KEY = "ak_" + "0123456789abcdef" * 4
API_KEY_PATTERN = deferred.pattern(__name__, "API_KEY_PATTERN", r"ak_[0-9a-f]{64}")
SOURCE_ID = deferred.pattern(__name__, "SOURCE_ID", SOURCE_ID_PATTERN)
AUTH_DETAIL = "A valid API key is required and could not be determined."
STATE_VERSION = 1

WRITABLE = frozenset({"name", "enabled", "deployment"})
ATTRIBUTE_WORDING = {
    "name": "name must be a non-empty string.",
    "enabled": "enabled must be a boolean.",
}
READ_ONLY = frozenset({"date_deployed", "deployment_status", "secure_url_token"})
# How the API's messages name each kind of hostname.
HOSTNAME_LABELS = dict(zip(HOSTNAME_FIELDS, ("imgix subdomain", "custom domain"), strict=True))


@functools.cache
def _attribute_adapters() -> dict[str, TypeAdapter[Any]]:
    # The source attributes' types from the spec model, built at the first write that
    # names one: `--emulator` lists and never needs them.
    return {
        name: TypeAdapter(SourceSpec.model_fields[name].rebuild_annotation())
        for name in ("name", "enabled")
    }


# Every attribute of any type that a filter may name (secrets never: they are not shown).
FILTERABLE = {
    api
    for model in DEPLOYMENT_MODELS.values()
    for _, api in deployment_fields(model)
    if api not in secret_fields(model)
} | {"allows_upload", "annotation"}


# A NamedTuple, not a frozen dataclass: about 0.05 ms to define at start-up, not 0.4.
class LoggedRequest(NamedTuple):
    """One request the emulator answered, for tests to inspect."""

    method: str
    path: str
    query: str
    status: int
    body: Any  # the parsed JSON body, or None


@dataclass
class StoredSource:
    """A source as the account holds it, secrets included."""

    id: str
    name: str
    enabled: bool
    deployment: dict[str, Any]
    encrypted: dict[str, str] = field(default_factory=dict)
    secure_url_token: str | None = None
    date_deployed: int = 0
    deploy_started: float = 0.0


class SourceStore:
    """An imgix account's sources and the API's rules, with injectable time and chance."""

    def __init__(
        self,
        *,
        clock: Clock = time.time,
        deploy_delay: float = 5.0,
        limits: RateLimits | None = None,
        faults: Faults | None = None,
        rng: random.Random | None = None,
        max_page_size: int = 100,
        pagination_meta: bool = True,
        omit_unset: bool = False,
        omitted: frozenset[str] = frozenset(),
    ) -> None:
        self.clock = clock
        self.deploy_delay = deploy_delay
        self.limits = limits or RateLimits()
        self.faults = faults or Faults()
        self.rng = rng or random.Random()
        self.max_page_size = max_page_size
        self.pagination_meta = pagination_meta
        # Answer like real listings do: deployment keys without a value are left out.
        self.omit_unset = omit_unset
        # Top-level attributes the answers leave out (tests: a listing that does not say).
        self.omitted = omitted
        # Each field's hostnames -> the ids of the sources holding them (more than one only
        # after a dashboard redeploy, which skips the checks): a check costs O(names sent).
        self._holders: dict[str, dict[str, set[str]]] = {name: {} for name in HOSTNAME_LABELS}
        self.sources = {}
        self.request_log: list[LoggedRequest] = []
        self.unprivileged_keys: set[str] = set()
        # Hostnames other accounts hold: uniqueness is global, not per account.
        self.foreign_hostnames: set[str] = set()
        # Called after every committed write (the server persists the state there).
        self.on_commit: Callable[[SourceStore], None] | None = None
        # Tests only: called with a page's number once the page is cut, before it is sent,
        # to change the account between two page reads of one listing (None: never).
        self.on_page_listed: Callable[[int], None] | None = None
        self._limiter = RateLimiter(clock)
        self._lock = threading.RLock()

    @property
    def sources(self) -> dict[str, StoredSource]:
        """The account's sources by id, in listing order (replace whole, never edit in place)."""
        return self._sources

    @sources.setter
    def sources(self, sources: dict[str, StoredSource]) -> None:
        self._sources = sources
        for holders in self._holders.values():
            holders.clear()
        for source in sources.values():
            self._index(source)

    # ------------------------------------------------------------------ requests

    def authorize(self, authorization: str | None) -> None:
        """Accept `Bearer ak_<64 hex>`; 401 otherwise, 403 for a key without permission."""
        scheme, _, key = (authorization or "").strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not API_KEY_PATTERN.fullmatch(key):
            raise Unauthorized(AUTH_DETAIL)
        if key in self.unprivileged_keys:
            raise Forbidden("This API key does not have the Sources permission.")

    def admit(self) -> None:
        """Count a request against the per-second limit, then draw an injected error."""
        with self._lock:
            self._limiter.admit_request(self.limits)
            if self.faults.draw_error(self.rng):
                raise InjectedFailure("An unexpected error occurred (injected fault).")

    def lose_response(self) -> bool:
        """Whether the write just committed should lose its response (injected fault)."""
        with self._lock:
            return self.faults.draw_lost_response(self.rng)

    def new_request_id(self) -> str:
        with self._lock:
            return self._hex(32)

    def log(self, entry: LoggedRequest) -> None:
        with self._lock:
            self.request_log.append(entry)

    # ------------------------------------------------------------------ reads

    def list_sources(self, params: Mapping[str, str]) -> Page:
        """One page of sources, filtered and sorted as the query asks."""
        with self._lock:
            query = parse_query(params, self.max_page_size, FILTERABLE)
            # One reading of the clock, so a page shows the statuses it was filtered on.
            now = self.clock()
            page = select(
                self._sources.values(),
                query,
                shown=lambda source, path: self._shown(source, path, now),
                build=lambda source: self._resource(source, now),
            )
            if self.on_page_listed is not None:
                self.on_page_listed(query.number)
            return page

    def get_source(self, source_id: str) -> Resource:
        with self._lock:
            return self.resource(self._find(source_id))

    def resource(self, source: StoredSource) -> Resource:
        """The JSON:API resource object a response shows for a source (no secret values)."""
        return self._resource(source, self.clock())

    def status(self, source: StoredSource) -> str:
        """`disabled`, `deploying` for `deploy_delay` seconds after a deployment, `deployed`."""
        return self._status(source, self.clock())

    def _resource(self, source: StoredSource, now: float) -> Resource:
        attributes: dict[str, Any] = {
            "name": source.name,
            "enabled": source.enabled,
            "deployment_status": self._status(source, now),
            "date_deployed": source.date_deployed,
            "deployment": public_deployment(source.deployment, source.encrypted),
        }
        if self.omit_unset:
            attributes["deployment"] = {
                key: value
                for key, value in attributes["deployment"].items()
                if value is not None and value != [] and value != {}
            }
        for key in self.omitted:
            attributes.pop(key, None)
        if source.secure_url_token is not None:
            attributes["secure_url_token"] = source.secure_url_token
        return {"id": source.id, "type": "sources", "attributes": attributes}

    def _status(self, source: StoredSource, now: float) -> str:
        if not source.enabled:
            return "disabled"
        if now < source.deploy_started + self.deploy_delay:
            return "deploying"
        return "deployed"

    def _shown(self, source: StoredSource, path: str, now: float) -> Any:
        """What `_resource(source, now)` shows at a filter or sort path, read off the source."""
        if path == "name":
            return source.name
        if path == "enabled":
            return source.enabled
        if path == "deployment_status":
            return self._status(source, now)
        if path == "date_deployed":
            return source.date_deployed
        return shown_value(source.deployment, source.encrypted, path.removeprefix("deployment."))

    # ------------------------------------------------------------------ writes

    def create_source(self, attributes: object) -> Resource:
        """Create and deploy a source; `attributes` is the request's attributes object."""
        with self._lock:
            self._limiter.check_create(self.limits)
            wanted = self._writable(attributes)
            for required in ("name", "deployment"):
                if required not in wanted:
                    raise BadRequest(f"{required} is required.")
            deployment = new_deployment(requested_deployment(wanted["deployment"]))
            self._check_hostnames(deployment, owner=None)
            source = StoredSource(
                id=self._hex(24),
                name=wanted["name"],
                enabled=wanted.get("enabled", True),
                deployment=deployment,
            )
            self._deploy(source, written_secrets(deployment, wanted["deployment"]))
            self._add(source)
            self._limiter.record_create()
            self._commit()
            return self.resource(source)

    def update_source(self, source_id: str, attributes: object) -> Resource:
        """Apply a partial update; a changed deployment merges in and redeploys."""
        with self._lock:
            source = self._find(source_id)
            self._limiter.check_update(self.limits)
            wanted = self._writable(attributes)
            self._check_disabled(source, wanted)
            deployment, written = source.deployment, []
            if "deployment" in wanted:
                requested = requested_deployment(wanted["deployment"])
                require_credentials(source.deployment, requested)
                deployment = merged_deployment(source.deployment, requested)
                self._check_hostnames(deployment, owner=source.id)
                written = written_secrets(deployment, requested)
                if (
                    "annotation" not in requested
                    and not written
                    and _same(deployment, source.deployment)
                ):
                    deployment = source.deployment
            enabling = wanted.get("enabled") is True and not source.enabled
            redeploy = deployment is not source.deployment or enabling
            source.name = wanted.get("name", source.name)
            source.enabled = wanted.get("enabled", source.enabled)
            self._redeployment(source, deployment)
            if redeploy:
                self._deploy(source, written)
            self._limiter.record_update()
            self._commit()
            return self.resource(source)

    def dashboard_redeploy(self, source_id: str, deployment_changes: Mapping[str, Any]) -> None:
        """Change a source the way the imgix dashboard does: no API checks, a new annotation."""
        where = unsafe_number(dict(deployment_changes), "deployment")
        if where is not None:
            raise BadRequest(f"{where}: numbers must be {SAFE_RANGE}.")
        _check_hostname_lists(deployment_changes)
        with self._lock:
            source = self._find(source_id)
            self._redeployment(
                source,
                {**source.deployment, **deployment_changes, "annotation": DASHBOARD_ANNOTATION},
            )
            self._deploy(source, written_secrets(source.deployment, dict(deployment_changes)))
            self._commit()

    def remove_source(self, source_id: str) -> None:
        """Remove a source the way imgix support does on request: the API has no DELETE."""
        with self._lock:
            source = self._find(source_id)
            self._unindex(source)
            self._sources = {key: kept for key, kept in self._sources.items() if key != source_id}
            self._commit()

    # ------------------------------------------------------------------ state

    def to_json(self) -> dict[str, Any]:
        """The whole account, secrets included (the `--state` file of the emulator)."""
        with self._lock:
            return {
                "version": STATE_VERSION,
                "sources": [vars(source).copy() for source in self.sources.values()],
            }

    def load_json(self, state: Mapping[str, Any]) -> None:
        """Add the sources of a state document; omitted attributes take their defaults."""
        with self._lock:
            if not isinstance(state, Mapping):
                raise ValueError("the state must be a JSON object")
            if state.get("version") != STATE_VERSION:
                raise ValueError(f"unsupported emulator state version {state.get('version')!r}")
            # What the API could not serve is refused here too, not stored to fail later.
            where = unsafe_number(dict(state))
            if where is not None:
                raise ValueError(f"{where}: numbers must be {SAFE_RANGE}")
            entries = state.get("sources", [])
            if not isinstance(entries, list):
                raise ValueError("sources must be a list")
            for index, entry in enumerate(entries):
                if not isinstance(entry, Mapping):
                    raise ValueError(f"sources[{index}] must be an object")
                if not isinstance(entry.get("deployment", {}), Mapping):
                    raise ValueError(f"sources[{index}].deployment must be an object")
                source_id = entry.get("id")
                # The API's ids are 24 lowercase hex: clients refuse any other (api-notes.md).
                if source_id is not None and not (
                    isinstance(source_id, str) and SOURCE_ID.fullmatch(source_id)
                ):
                    raise ValueError(f"sources[{index}].id must be 24 lowercase hex characters")
                self._restore(entry)

    def _restore(self, entry: Mapping[str, Any]) -> None:
        model = model_for(entry["deployment"].get("type"))
        deployment = validated({**deployment_defaults(model), **entry["deployment"]})
        self._check_hostnames(deployment, owner=entry.get("id"))
        now = self.clock()
        date_deployed = int(entry.get("date_deployed", now - self.deploy_delay))
        source = StoredSource(
            id=entry.get("id") or self._hex(24),
            name=entry["name"],
            enabled=entry.get("enabled", True),
            deployment=deployment,
            encrypted=dict(entry.get("encrypted", {})),
            secure_url_token=entry.get("secure_url_token"),
            date_deployed=date_deployed,
            deploy_started=float(entry.get("deploy_started", date_deployed)),
        )
        pending = [name for name in written_secrets(deployment, deployment)]
        self._seal(source, [name for name in pending if name not in source.encrypted])
        self._add(source)

    # ------------------------------------------------------------------ rules

    def _find(self, source_id: str) -> StoredSource:
        source = self.sources.get(source_id)
        if source is None:
            raise NotFound(f"No source with id {source_id}.")
        return source

    @staticmethod
    def _writable(attributes: object) -> dict[str, Any]:
        if not isinstance(attributes, dict):
            raise BadRequest("data.attributes must be an object.")
        where = unsafe_number(attributes)
        if where is not None:
            raise BadRequest(f"{where}: numbers must be {SAFE_RANGE}.")
        for key in sorted(attributes.keys() - WRITABLE):
            if key in READ_ONLY:
                raise BadRequest(f"{key} is read-only.")
            raise BadRequest(f"{key} is not an attribute of sources.")
        for name, adapter in _attribute_adapters().items():
            if name not in attributes:
                continue
            try:
                adapter.validate_python(attributes[name], strict=True)
            except ValidationError:
                raise BadRequest(ATTRIBUTE_WORDING[name]) from None
        return dict(attributes)

    @staticmethod
    def _check_disabled(source: StoredSource, wanted: dict[str, Any]) -> None:
        if source.enabled or wanted.get("enabled") is True:
            return
        others = sorted(wanted.keys() - {"enabled"})
        if others:
            raise BadRequest(
                f"Source {source.id} is disabled: it cannot change {', '.join(others)} "
                "unless enabled is set to true in the same request."
            )

    def _check_hostnames(self, deployment: dict[str, Any], *, owner: str | None) -> None:
        for field_name, label in HOSTNAME_LABELS.items():
            holders = self._holders[field_name]
            for hostname in deployment[field_name]:
                if hostname in self.foreign_hostnames or holders.get(hostname, set()) - {owner}:
                    raise BadRequest(
                        f"deployment.{field_name}: the {label} {hostname} is already in use "
                        "by another source."
                    )

    def _add(self, source: StoredSource) -> None:
        """Hold a new source, or replace the one with its id (a restore)."""
        replaced = self._sources.get(source.id)
        if replaced is not None:
            self._unindex(replaced)
        self._sources[source.id] = source
        self._index(source)

    def _redeployment(self, source: StoredSource, deployment: dict[str, Any]) -> None:
        """Give a source another deployment, keeping the hostname index in step."""
        self._unindex(source)
        source.deployment = deployment
        self._index(source)

    def _index(self, source: StoredSource) -> None:
        for field_name, holders in self._holders.items():
            for hostname in source.deployment.get(field_name) or []:
                holders.setdefault(hostname, set()).add(source.id)

    def _unindex(self, source: StoredSource) -> None:
        for field_name, holders in self._holders.items():
            for hostname in source.deployment.get(field_name) or []:
                owners = holders.get(hostname, set())
                owners.discard(source.id)
                if not owners:
                    holders.pop(hostname, None)

    def _deploy(self, source: StoredSource, written: list[str]) -> None:
        now = self.clock()
        source.date_deployed = int(now)
        source.deploy_started = now
        self._seal(source, written)

    def _seal(self, source: StoredSource, written: list[str]) -> None:
        """Refresh what derives from secrets: encrypted values and the secure URL token."""
        secrets = secret_fields(model_for(source.deployment["type"]))
        for name in written:
            if secrets[name].encrypted_as:
                source.encrypted[name] = encrypt(self.rng)
        for name in list(source.encrypted):
            if name not in secrets or source.deployment.get(name) is None:
                del source.encrypted[name]
        if not source.deployment.get("secure_url_enabled"):
            source.secure_url_token = None
        elif source.secure_url_token is None:
            source.secure_url_token = self._hex(32)

    def _commit(self) -> None:
        if self.on_commit is not None:
            self.on_commit(self)

    def _hex(self, length: int) -> str:
        return f"{self.rng.getrandbits(4 * length):0{length}x}"


def _check_hostname_lists(deployment_changes: Mapping[str, Any]) -> None:
    """Refuse hostnames that are not a list of text, in the API's words.

    The dashboard offers nothing else, and the hostname index holds only text: anything
    else failed halfway through an edit, leaving a source no later write could change.
    """
    for field_name in HOSTNAME_FIELDS:
        if field_name not in deployment_changes:
            continue
        hostnames = deployment_changes[field_name]
        if not isinstance(hostnames, list):
            raise BadRequest(f"deployment.{field_name} must be a valid list.")
        for index, hostname in enumerate(hostnames):
            if not isinstance(hostname, str):
                raise BadRequest(f"deployment.{field_name}[{index}] must be a valid string.")


def _same(left: dict[str, Any], right: dict[str, Any]) -> bool:
    """Equal deployments, apart from the annotation the API rewrites."""
    return {**left, "annotation": None} == {**right, "annotation": None}
