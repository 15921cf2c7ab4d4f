"""Typed desired state: one pydantic model per deployment type, the single source of truth.

Every fact about an attribute lives here and nowhere else: its API name, its documented
default, its constraint, and whether it is a write-only secret. The loader, the JSON
Schema, the planner and the emulator all read these models instead of keeping lists.

Secret attributes hold a `SecretRef` (`{env: NAME}` or `{file: path}`), never a literal:
the value is attached by the loader after resolution and can only be read with
`SecretRef.reveal()`. The emulator validates wire bodies, where secrets are plain strings,
by passing `context={"wire": True}`.
"""

# Not `from __future__ import annotations`: pydantic would evaluate the text of every
# annotation, the base deployment's once per type, at each start (about 2 ms).
import copy
import functools
import re
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from operator import attrgetter, itemgetter
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, Union
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PrivateAttr,
    Strict,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import InitErrorDetails, PydanticCustomError, PydanticKnownError, core_schema

from reconciler import deferred, rendering_params
from reconciler.references import parse as parse_reference
from reconciler.references import schema as reference_schema

# Documented limits (sources-reference.txt, api-notes.md).
CACHE_TTL_VALUE_MIN, CACHE_TTL_VALUE_MAX = 1800, 31536000
CACHE_TTL_ERROR_MIN, CACHE_TTL_ERROR_MAX = 1, 31536000
MAX_HOSTNAMES = 100
SUBDOMAIN_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
SOURCE_ID_PATTERN = r"^[0-9a-f]{24}$"
# The deployment attributes that hold hostnames: unique across all of imgix, compared as sets.
HOSTNAME_FIELDS = ("imgix_subdomains", "custom_domains")
# Why two sources may not share a hostname, in every message that says so.
HOSTNAMES_ARE_UNIQUE = "hostnames are unique across all imgix sources"


# --------------------------------------------------------------------------- secrets


class SecretRef:
    """A reference to a write-only value: `{env: NAME}` or `{file: path}`.

    `str()` and `repr()` show the reference, never the value; `reveal()` is the one way
    to read it, so every place that handles a secret value is easy to find.
    """

    __slots__ = ("_value", "kind", "name", "path")

    def __init__(
        self,
        kind: Literal["env", "file", "literal"],
        name: str,
        value: str | None = None,
        *,
        path: str | None = None,
    ) -> None:
        self.kind = kind
        self.name = name  # as written in the file: safe to show
        self.path = path  # for `file`: the absolute path the loader resolved `name` to
        self._value = value

    @property
    def resolved(self) -> bool:
        """Whether the value is known (it is not when references were not resolved)."""
        return self._value is not None

    def reveal(self) -> str:
        """Return the secret value; raises `LookupError` if it was never resolved."""
        if self._value is None:
            raise LookupError(f"secret reference {self} was not resolved")
        return self._value

    def with_value(self, value: str | None) -> "SecretRef":
        """Return the same reference carrying `value`."""
        return SecretRef(self.kind, self.name, value, path=self.path)

    def as_reference(self) -> dict[str, str]:
        """The reference as written in the file (`{"env": NAME}`), safe to print and save."""
        return {self.kind: self.name}

    def locator(self) -> dict[str, str]:
        """Where to read the value again later (a saved plan applied from another cwd)."""
        if self.kind == "file":
            return {"file": self.path or self.name}
        return {self.kind: self.name}

    def __str__(self) -> str:
        return f"{{{self.kind}: {self.name}}}" if self.kind != "literal" else "{literal}"

    def __repr__(self) -> str:
        return f"SecretRef({self})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretRef):
            return NotImplemented
        return (self.kind, self.name, self._value) == (other.kind, other.name, other._value)

    def __hash__(self) -> int:
        return hash((self.kind, self.name, self._value))

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.with_info_plain_validator_function(
            _validate_secret_ref,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda ref: ref.as_reference() if ref.kind != "literal" else "(write-only)"
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return dict(SECRET_REFERENCE_SCHEMA)


SECRET_REFERENCE_SCHEMA = reference_schema(
    "SecretReference",
    "A write-only value, read from an environment variable or a file "
    "(relative to the YAML file, inside its repository). Literal values are not allowed.",
)


def _validate_secret_ref(value: Any, info: ValidationInfo) -> SecretRef:
    if isinstance(value, SecretRef):
        return value
    reference = parse_reference(value)
    if reference is not None:
        return SecretRef(reference.kind, reference.name)  # type: ignore[arg-type]
    if isinstance(value, str) and info.context and info.context.get("wire"):
        return SecretRef("literal", "", value)
    # The message never includes the value: it may be a real secret typed by mistake.
    raise PydanticCustomError(
        "literal_secret",
        "is write-only and must not be written in the file: use a reference such as "
        "{env: NAME} or {file: path}",
    )


# Markers are NamedTuples and plain classes: a frozen dataclass costs about 0.4 ms at
# start-up to define, a NamedTuple about 0.05.
class Secret(NamedTuple):
    """Field marker: a write-only attribute, never returned by the API and never shown.

    `encrypted_as` names the attribute the API returns instead (web folder, web proxy).
    """

    encrypted_as: str | None = None


class StatedOnly:
    """Field marker: an attribute with no documented default, managed only when stated.

    Leaving it out of the file leaves the live value alone (the reconciler cannot know
    what "the default" would be), and a listing that omits it is no difference.
    """


def _secret_check(check: Callable[[str], str | None]) -> AfterValidator:
    """Apply `check` to a resolved secret's value; the error never echoes the value."""

    def validate(ref: SecretRef | None) -> SecretRef | None:
        if ref is not None and ref.resolved:
            problem = check(ref.reveal())
            if problem:
                raise PydanticCustomError("secret_value", problem)
        return ref

    return AfterValidator(validate)


def _latin1_32(value: str) -> str | None:
    try:
        encoded = value.encode("latin-1")
    except UnicodeEncodeError:
        return "must be 32 latin-1 characters (the value has characters outside latin-1)"
    if len(encoded) != 32:
        return f"must be exactly 32 latin-1 characters (the value has {len(encoded)})"
    return None


# C0 controls and DEL: in a regular expression's character class, here and in the schema.
_CONTROL_CHARACTERS = r"\x00-\x1f\x7f"
_CONTROL = deferred.pattern(__name__, "_CONTROL", f"[{_CONTROL_CHARACTERS}]")


def _basic_auth_part(value: str) -> str | None:
    if ":" in value or _CONTROL.search(value):
        return "must not contain ':' or control characters"
    return None


def _credential(value: str) -> str | None:
    # No storage credential or name holds one; a line end pasted or read with the value
    # would be sent, and the origin would refuse every image.
    if _CONTROL.search(value):
        return "must not contain control characters (a line break pasted with the value?)"
    return None


def _check_credential(value: str) -> str:
    problem = _credential(value)
    if problem:
        raise PydanticCustomError("control_character", problem)
    return value


def _check_basic_auth_part(value: str | None) -> str | None:
    problem = _basic_auth_part(value) if value is not None else None
    if problem:
        raise PydanticCustomError("basic_auth", problem)
    return value


# --------------------------------------------------------------------------- value types


def _check_subdomain(value: str) -> str:
    if not re.fullmatch(SUBDOMAIN_PATTERN, value):
        raise PydanticCustomError(
            "subdomain",
            "must be a DNS label: lowercase letters, digits and inner hyphens, "
            "at most 63 characters (got {value})",
            {"value": repr(value)},
        )
    return value


_DOMAIN = deferred.pattern(
    __name__,
    "_DOMAIN",
    # A top-level domain is letters, or an internationalised one's xn-- form (.рф: xn--p1ai).
    r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    r"(?:[a-z]{2,63}|xn--[a-z0-9](?:[a-z0-9-]{0,57}[a-z0-9])?)$",
)


def _check_domain(value: str) -> str:
    if not _DOMAIN.fullmatch(value):
        raise PydanticCustomError(
            "domain",
            "must be a lowercase domain name such as images.example.com (got {value})",
            {"value": repr(value)},
        )
    return value


def _check_absolute_url(value: str) -> str:
    parts = urlsplit(value)
    # urlsplit drops tabs and line breaks before parsing: the URL sent would keep them.
    if parts.scheme not in ("http", "https") or not parts.netloc or _CONTROL.search(value):
        raise PydanticCustomError(
            "absolute_url",
            "must be an absolute http(s) URL (got {value})",
            {"value": repr(value)},
        )
    return value


def _no_repeats(field: str) -> WrapValidator:
    """Refuse a list naming one hostname twice, beside any error of its items."""

    def validate(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        repeated = _repeated(value) if isinstance(value, list) else []
        problem = (
            PydanticCustomError(
                "repeated_hostname",
                "{field} lists {names} more than once",
                {"field": field, "names": ", ".join(repeated)},
            )
            if repeated
            else None
        )
        try:
            result = handler(value)
        except ValidationError as exc:
            if problem is None:
                raise
            raise _with_error(exc, problem, value) from None
        if problem is not None:
            raise problem
        return result

    return WrapValidator(validate)


def _repeated(items: list[Any]) -> list[str]:
    seen: set[str] = set()
    repeated: set[str] = set()
    for item in items:
        if isinstance(item, str):
            (repeated if item in seen else seen).add(item)
    return sorted(repeated)


def _with_error(exc: ValidationError, problem: PydanticCustomError, value: Any) -> ValidationError:
    """`exc` plus one error about the value itself: pydantic merges them like its own."""
    return _with_errors(exc, [InitErrorDetails(type=problem, loc=(), input=value)])


def _with_errors(exc: ValidationError, extra: list[InitErrorDetails]) -> ValidationError:
    """`exc` plus more errors (located relative to the same value)."""
    details: list[InitErrorDetails] = []
    for error in exc.errors():
        kind: str | PydanticCustomError = error["type"]
        try:
            PydanticKnownError(error["type"], error.get("ctx"))  # type: ignore[arg-type]
        except (KeyError, TypeError):
            kind = PydanticCustomError(error["type"], error["msg"])  # one of ours: keep its text
        detail = InitErrorDetails(type=kind, loc=error["loc"], input=error["input"])
        if isinstance(kind, str) and "ctx" in error:
            detail["ctx"] = error["ctx"]
        details.append(detail)
    return ValidationError.from_exception_data(exc.title, [*details, *extra])


# Validation context key: the file says `allow_unknown_params: true`.
ALLOW_UNKNOWN_PARAMS = "allow_unknown_params"


def _check_default_params(
    value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
) -> Any:
    """Every name and value checked against imgix's catalogue, each error at its key."""
    allow_unknown = bool(info.context and info.context.get(ALLOW_UNKNOWN_PARAMS))
    found = (
        rendering_params.problems(value, allow_unknown=allow_unknown)
        if isinstance(value, dict)
        else []
    )
    # The message goes in as a variable: a key or value may hold `{`.
    extra = [
        InitErrorDetails(
            type=PydanticCustomError(p.kind, "{message}", {"message": p.message}),
            loc=(p.key,),
            input=value[p.key],
        )
        for p in found
    ]
    try:
        result = handler(value)
    except ValidationError as exc:
        if not extra:
            raise
        raise _with_errors(exc, extra) from None
    if extra:
        raise ValidationError.from_exception_data("default_params", extra)
    return result


def _must_be_true(value: bool) -> bool:
    if not value:
        raise PydanticCustomError(
            "webproxy_secure_url", "web proxy sources must have secure_url_enabled: true"
        )
    return value


def _exactly_one(value: Any) -> Any:
    # Literal[1] alone accepts True and 1.0, which a YAML reader would not call 1.
    if type(value) is not int:
        raise PydanticKnownError("literal_error", {"expected": "1"})
    return value


class _Shared:
    """Field metadata: the core schema of the rest of the annotation, generated once.

    Pydantic generates a field's schema again for each model and each field that has the
    type: the base deployment's fields for each of the six types (about 0.7 ms a type at
    start-up), and these aliases for every field they type. Validation, errors and the
    JSON Schema are the same: only the generation is shared.
    """

    __slots__ = ("_schema",)

    def __init__(self) -> None:
        self._schema: core_schema.CoreSchema | None = None

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        if self._schema is None:
            self._schema = handler(source)
        return self._schema


Subdomain = Annotated[str, AfterValidator(_check_subdomain)]
Domain = Annotated[str, AfterValidator(_check_domain)]
# Strict: YAML already types scalars, so a quoted "86400" or "yes" is a mistake to show,
# not a string to coerce (the JSON Schema says the same); references are converted by
# the loader before validation.
StrictBool = Annotated[bool, Strict(), _Shared()]
AbsoluteUrl = Annotated[str, AfterValidator(_check_absolute_url), _Shared()]
NonEmpty = Annotated[str, Field(min_length=1), _Shared()]
# Storage account, bucket, region and access key names: none holds a control character.
StorageName = Annotated[
    str,
    # `not` a search, not `^...$`: Python's `$` (what validators in Python use) matches
    # before a final line end, so "bucket\n" would pass.
    Field(min_length=1, json_schema_extra={"not": {"pattern": f"[{_CONTROL_CHARACTERS}]"}}),
    AfterValidator(_check_credential),
    _Shared(),
]
BasicAuthPart = Annotated[str, AfterValidator(_check_basic_auth_part), _Shared()]
ParamValue = Union[str, int, float, bool]  # noqa: UP007 (pydantic reads this at runtime)
# Names and values checked against `reconciler.rendering_params`; the schema embeds it.
DefaultParams = Annotated[dict[str, ParamValue], WrapValidator(_check_default_params)]

RequiredSecret = Annotated[SecretRef, Secret(), _secret_check(_credential), _Shared()]
BasicAuthPassword = Annotated[
    SecretRef | None,
    Secret(encrypted_as="password_encrypted"),
    _secret_check(_basic_auth_part),
    _Shared(),
]
RequestHandshake = Annotated[
    SecretRef | None,
    Secret(encrypted_as="request_handshake_encrypted"),
    _secret_check(_latin1_32),
    _Shared(),
]
RequestSigningKey = Annotated[
    SecretRef | None,
    Secret(encrypted_as="request_signing_key_encrypted"),
    _secret_check(_latin1_32),
    _Shared(),
]

CacheTtlBehavior = Literal["respect_origin", "override_origin", "enforce_minimum"]
RobotsTxt = Literal["origin", "allow-all", "disallow-all"]
StatedRobotsTxt = Annotated[RobotsTxt | None, StatedOnly(), _Shared()]


# --------------------------------------------------------------------------- deployments


class DeploymentBase(BaseModel):
    """Attributes every deployment type has, with the API's documented defaults."""

    # Never validated itself: only the deployment types are built (`defer_build=False`
    # on each), which spares building this one at every start.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    # Where the origin lives (changing one moves it: a protected source refuses that), and
    # the credentials the API wants re-sent when a location field (or the type) of a
    # credentialed origin changes; empty for origins without them.
    LOCATION_FIELDS: ClassVar[frozenset[str]] = frozenset()
    CREDENTIAL_FIELDS: ClassVar[frozenset[str]] = frozenset()
    # What says where the images come from (bucket, account, base URL): two sources with
    # the same type and origin serve the same images. Empty when any origin may be used.
    ORIGIN_FIELDS: ClassVar[tuple[str, ...]] = ()

    # Attributes written as `{env:}`/`{file:}` references, with their values: sensitive,
    # so plans show the reference and send a placeholder (see `referenced`).
    _references: dict[str, SecretRef] = PrivateAttr(default_factory=dict)

    # Not declared means "not managed": the API rewrites it on every deployment.
    annotation: Annotated[str | None, StatedOnly(), _Shared()] = None
    cache_ttl_behavior: CacheTtlBehavior = "respect_origin"
    cache_ttl_error: Annotated[
        int, Strict(), Field(ge=CACHE_TTL_ERROR_MIN, le=CACHE_TTL_ERROR_MAX), _Shared()
    ] = 300
    cache_ttl_value: Annotated[
        int, Strict(), Field(ge=CACHE_TTL_VALUE_MIN, le=CACHE_TTL_VALUE_MAX), _Shared()
    ] = 31536000
    crossdomain_xml_enabled: StrictBool = False
    # A factory of ours, not `list`: pydantic reads the factory's signature, and a builtin's
    # is parsed from text by the tokenizer (about 2 ms at start-up for the first one).
    custom_domains: Annotated[list[Domain], _no_repeats("custom_domains"), _Shared()] = Field(
        default_factory=lambda: []
    )
    default_params: Annotated[DefaultParams, _Shared()] = Field(default_factory=dict)
    image_error: Annotated[AbsoluteUrl | None, _Shared()] = None
    image_error_append_qs: StrictBool = False
    image_missing: Annotated[AbsoluteUrl | None, _Shared()] = None
    image_missing_append_qs: StrictBool = False
    imgix_subdomains: Annotated[
        list[Subdomain], Field(min_length=1), _no_repeats("imgix_subdomains"), _Shared()
    ]
    secure_url_enabled: StrictBool = False

    def referenced(self) -> Mapping[str, SecretRef]:
        """API name to reference of each non-secret attribute the file wrote as a reference."""
        # From pydantic's slot: a private attribute's own lookup costs microseconds, and
        # a planned write asks several times.
        return dict((self.__pydantic_private__ or {}).get("_references") or {})

    def attach_references(self, references: Mapping[str, SecretRef]) -> None:
        """Record which attributes came from references (the loader, once, after validation)."""
        self._references = dict(references)

    def managed(self) -> dict[str, Any]:
        """Every managed attribute (API names, JSON values, defaults applied), a new dict.

        Attributes without a documented default count only when the file states them;
        `annotation` and secrets follow their own rules.
        """
        # What `model_dump(by_alias=True, mode="json")` gives, read from the fields (a dump
        # costs more than all the rest): the values are JSON already. Containers are
        # copied, as a dump would: what a plan sends must not share the model's.
        view = managed_view(self)
        values = self.__dict__
        attributes = {api: values[name] for name, api in view.fields}
        for name, api in view.containers:
            attributes[api] = copy.copy(values[name])
        return attributes

    # Cross-field: runs only once every field is valid, so the loader checks the same
    # rule on the raw data to report it beside the other errors.
    @model_validator(mode="after")
    def _hostnames(self) -> "DeploymentBase":
        problem = hostname_count_error(len(self.imgix_subdomains), len(self.custom_domains))
        if problem is not None:
            raise problem
        return self


class S3Deployment(DeploymentBase, defer_build=False):
    """Amazon S3 origin."""

    LOCATION_FIELDS = frozenset({"s3_bucket", "s3_prefix"})
    CREDENTIAL_FIELDS = frozenset({"s3_access_key", "s3_secret_key"})
    ORIGIN_FIELDS = ("s3_bucket", "s3_prefix")

    type: Literal["s3"]
    s3_access_key: StorageName
    s3_bucket: StorageName
    s3_prefix: str | None = None
    s3_secret_key: RequiredSecret
    robots_txt: StatedRobotsTxt = Field(None, alias="robots.txt")


class GcsDeployment(DeploymentBase, defer_build=False):
    """Google Cloud Storage origin."""

    LOCATION_FIELDS = frozenset({"gcs_bucket", "gcs_prefix"})
    CREDENTIAL_FIELDS = frozenset({"gcs_access_key", "gcs_secret_key"})
    ORIGIN_FIELDS = ("gcs_bucket", "gcs_prefix")

    type: Literal["gcs"]
    cache_ttl_behavior: CacheTtlBehavior = "enforce_minimum"
    gcs_access_key: StorageName
    gcs_bucket: StorageName
    gcs_prefix: str | None = None
    gcs_secret_key: RequiredSecret
    robots_txt: StatedRobotsTxt = Field(None, alias="robots.txt")


class AzureDeployment(DeploymentBase, defer_build=False):
    """Microsoft Azure storage origin."""

    LOCATION_FIELDS = frozenset(
        {"azure_account", "azure_bucket", "azure_prefix", "azure_service_type"}
    )
    CREDENTIAL_FIELDS = frozenset({"azure_sas_string"})
    ORIGIN_FIELDS = ("azure_account", "azure_bucket", "azure_prefix")

    type: Literal["azure"]
    azure_account: StorageName
    azure_bucket: StorageName
    azure_prefix: str | None = None
    azure_sas_string: RequiredSecret
    azure_service_type: Literal["blob", "file"]
    robots_txt: StatedRobotsTxt = Field(None, alias="robots.txt")


class WebFolderDeployment(DeploymentBase, defer_build=False):
    """Web folder origin: a base URL, with optional origin authentication."""

    LOCATION_FIELDS = frozenset({"webfolder_base_url"})
    ORIGIN_FIELDS = ("webfolder_base_url",)

    type: Literal["webfolder"]
    webfolder_base_url: AbsoluteUrl
    username: BasicAuthPart | None = None
    password: BasicAuthPassword = None
    request_handshake: RequestHandshake = None
    request_signing_key: RequestSigningKey = None
    robots_txt: StatedRobotsTxt = Field(None, alias="robots.txt")


class WebProxyDeployment(DeploymentBase, defer_build=False):
    """Web proxy origin: full URLs are signed, so secure URLs are mandatory."""

    type: Literal["webproxy"]
    secure_url_enabled: Annotated[bool, Strict(), AfterValidator(_must_be_true)] = True
    username: BasicAuthPart | None = None
    password: BasicAuthPassword = None
    request_handshake: RequestHandshake = None
    request_signing_key: RequestSigningKey = None
    robots_txt: Annotated[Literal["allow-all", "disallow-all"] | None, StatedOnly()] = Field(
        None, alias="robots.txt"
    )


class S3CompatibleDeployment(DeploymentBase, defer_build=False):
    """S3-compatible storage (DigitalOcean, Linode, Wasabi)."""

    LOCATION_FIELDS = frozenset({"bucket_name", "endpoint_url", "region", "storage_provider"})
    CREDENTIAL_FIELDS = frozenset({"access_key_id", "secret_key"})
    ORIGIN_FIELDS = ("endpoint_url", "bucket_name")

    type: Literal["s3_compatible"]
    access_key_id: StorageName
    bucket_name: StorageName
    endpoint_url: AbsoluteUrl
    region: StorageName
    secret_key: RequiredSecret
    storage_provider: Literal["DigitalOcean", "Linode", "Wasabi"]
    robots_txt: StatedRobotsTxt = Field(None, alias="robots.txt")


Deployment = Annotated[
    S3Deployment
    | GcsDeployment
    | AzureDeployment
    | WebFolderDeployment
    | WebProxyDeployment
    | S3CompatibleDeployment,
    Field(discriminator="type"),
]

# Each type is spelled once, in its model's `type` literal; the union above lists the models.
DEPLOYMENT_MODELS: dict[str, type[DeploymentBase]] = {
    typing.get_args(model.model_fields["type"].annotation)[0]: model
    for model in typing.get_args(typing.get_args(Deployment)[0])
}
DEPLOYMENT_TYPES: tuple[str, ...] = tuple(DEPLOYMENT_MODELS)


# --------------------------------------------------------------------------- sources

SourceMode = Literal["manage", "observe", "protect"]
# An owner is recorded in the annotation marker: one token, no spaces nor brackets.
OWNER_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9._/@:+-]{0,98}[A-Za-z0-9])?$"


def _check_owner(value: str) -> str:
    if not re.fullmatch(OWNER_PATTERN, value):
        raise PydanticCustomError(
            "owner",
            "must be one word of at most 100 letters, digits and . _ / @ : + - such as "
            "acme/images-infra (got {value})",
            {"value": repr(value)},
        )
    return value


Owner = Annotated[
    str, AfterValidator(_check_owner), Field(json_schema_extra={"pattern": OWNER_PATTERN})
]


class SourceSpec(BaseModel):
    """One imgix Source as the file wants it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: NonEmpty
    id: Annotated[str, Field(pattern=SOURCE_ID_PATTERN)] | None = None
    enabled: StrictBool = True
    mode: SourceMode = Field(
        "manage",
        description="manage: planned and written. observe: compared and reported as drift, "
        "never written (not even with --auto-approve). protect: written, but apply refuses "
        "to disable it or move it to another origin or type without --allow-protected-change.",
    )
    ignore_changes: list[str] = Field(default_factory=lambda: [])
    deployment: Deployment

    # Cross-field, like `_hostnames`: the loader checks it on the raw data as well.
    @model_validator(mode="after")
    def _known_ignore_paths(self) -> "SourceSpec":
        problem = ignore_changes_error(type(self.deployment), self.ignore_changes)
        if problem is not None:
            raise problem
        return self


class SafetySettings(BaseModel):
    """The blast-radius threshold: how much of the managed live sources one plan may risk.

    A plan is over it when it changes at least `min_risky_count` sources in risky ways
    (disabled, origin or credentials moved, hostnames released) and those are more than
    `max_risky_share` of the live sources the file manages; apply then needs
    --allow-large-change.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_risky_share: Annotated[float, Strict(), Field(ge=0, le=1)] = Field(
        0.3, description="Share of the managed live sources (0 to 1) a plan may risk."
    )
    min_risky_count: Annotated[int, Strict(), Field(ge=1)] = Field(
        3, description="Fewer risky sources than this never trip the threshold."
    )


class DesiredState(BaseModel):
    """A whole desired-state file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Annotated[Literal[1], BeforeValidator(_exactly_one)]
    allow_unknown_params: Annotated[
        bool,
        Strict(),
        Field(
            description="Accept default_params names that imgix-reconciler's catalogue of "
            "imgix rendering parameters does not know (parameters newer than it)."
        ),
    ] = False
    owner: Owner | None = Field(
        None,
        description="Who manages these sources (e.g. acme/images-infra): recorded in the "
        "marker of every write; a live source recorded for another owner is never written "
        "without --take-over.",
    )
    safety: SafetySettings = Field(default_factory=SafetySettings)
    # Required: a file without `sources:` is more likely a mistake than an empty account.
    sources: list[SourceSpec]

    @classmethod
    def model_validate(cls, obj: Any, *, context: Any = None, **options: Any) -> "DesiredState":
        """Validate a file; its `allow_unknown_params` reaches every `default_params`."""
        return super().model_validate(obj, context=validation_context(obj, context), **options)


def validation_context(data: Any, context: Any = None) -> Any:
    """The validation context for a file's data: says when unknown parameters are allowed."""
    if isinstance(data, dict) and data.get(ALLOW_UNKNOWN_PARAMS) is True:
        return {**(context or {}), ALLOW_UNKNOWN_PARAMS: True}
    return context


# --------------------------------------------------------------------------- cross-field rules


def hostname_count_error(subdomains: int, domains: int) -> PydanticCustomError | None:
    """The error when a deployment has more hostnames than the API allows, else None."""
    total = subdomains + domains
    if total <= MAX_HOSTNAMES:
        return None
    return PydanticCustomError(
        "too_many_hostnames",
        "imgix_subdomains and custom_domains may hold at most {limit} names together (got {total})",
        {"limit": MAX_HOSTNAMES, "total": total},
    )


def ignore_changes_error(
    model: type[DeploymentBase], paths: Iterable[str]
) -> PydanticCustomError | None:
    """The error when `ignore_changes` names a path a source of `model` does not have."""
    paths = list(paths)
    if "deployment.type" in paths:
        # The type decides which attributes exist: with it ignored, a live source of another
        # type would be sent this type's attributes, which the API refuses on every apply.
        return PydanticCustomError(
            "ignore_changes",
            "ignore_changes cannot name deployment.type: the type decides which attributes "
            "a source has (use `mode: protect` to never move a source to another type)",
        )
    known = set(comparable_paths(model))
    unknown = [path for path in paths if path not in known]
    if not unknown:
        return None
    return PydanticCustomError(
        "ignore_changes",
        "ignore_changes names {unknown}, which is not an attribute of a {type} "
        "source (use name, enabled or deployment.<attribute>)",
        {"unknown": ", ".join(unknown), "type": deployment_type(model)},
    )


def name_form(name: str) -> str:
    """The form a source's name is told by: canonically equivalent texts (é, or e and a
    combining accent), which every plan shows alike, are one name (NFC)."""
    if name.isascii():
        return name
    import unicodedata  # only for a name that needs it

    return unicodedata.normalize("NFC", name)


def deployment_type(model: type[DeploymentBase]) -> str:
    """The `type` value of a deployment model."""
    return next(kind for kind, candidate in DEPLOYMENT_MODELS.items() if candidate is model)


# --------------------------------------------------------------------------- introspection


def api_name(model: type[BaseModel], field: str) -> str:
    """The API's name of a model field (`robots_txt` is `robots.txt`)."""
    return model.model_fields[field].alias or field


@functools.cache
def fields_by_api_name(model: type[DeploymentBase]) -> dict[str, FieldInfo]:
    """A deployment model's fields, keyed by the API's name (`robots.txt`, not `robots_txt`)."""
    return {info.alias or name: info for name, info in model.model_fields.items()}


def deployment_fields(model: type[DeploymentBase]) -> Iterator[tuple[str, str]]:
    """(python name, API name) of every attribute of a deployment model, `type` included."""
    for name, info in model.model_fields.items():
        yield name, info.alias or name


@functools.cache
def secret_fields(model: type[DeploymentBase]) -> Mapping[str, Secret]:
    """API name to `Secret` marker for each write-only attribute of a deployment model."""
    # Read-only: one cached mapping serves every caller (a POST body asks per attribute).
    return MappingProxyType(
        {
            info.alias or name: marker
            for name, info in model.model_fields.items()
            for marker in info.metadata
            if isinstance(marker, Secret)
        }
    )


@functools.cache
def reference_fields(model: type[DeploymentBase]) -> tuple[str, ...]:
    """API names of the non-secret attributes that may be written as a reference.

    Text attributes only: a reference yields text, and it is never shown, so it must be
    long enough to mask (`reconciler.references.MIN_LENGTH`), which no boolean and no
    sensible number is. `type` is excluded because it decides which attributes exist.
    """
    secrets = secret_fields(model)
    return tuple(
        api
        for api, info in fields_by_api_name(model).items()
        if api not in secrets and api != "type" and _holds_text(info.annotation)
    )


def _holds_text(annotation: Any) -> bool:
    if annotation is str:
        return True
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return all(isinstance(choice, str) for choice in typing.get_args(annotation))
    if origin in (Annotated, Union, types.UnionType):
        arguments = typing.get_args(annotation)
        if origin is Annotated:
            return _holds_text(arguments[0])
        return all(_holds_text(a) or a is type(None) for a in arguments) and any(
            _holds_text(a) for a in arguments
        )
    return False


@functools.cache
def _reference_adapter(field: str) -> TypeAdapter[Any] | None:
    for model in DEPLOYMENT_MODELS.values():
        info = fields_by_api_name(model).get(field)
        if info is not None and field in reference_fields(model):
            return TypeAdapter(info.rebuild_annotation())
    return None


def reference_value_problem(field: str, value: str) -> str | None:
    """Why `value`, read through a reference, cannot be sent as attribute `field`.

    The message never holds the value. Attributes that take no reference are refused.
    """
    adapter = _reference_adapter(field)
    if adapter is None:
        return "takes no reference"
    try:
        adapter.validate_python(value)
    except ValidationError as error:
        return str(error.errors(include_input=False)[0]["msg"]).split(" (got ")[0]
    return None


@functools.cache
def _secret_adapter(field: str) -> TypeAdapter[Any] | None:
    for model in DEPLOYMENT_MODELS.values():
        if field in secret_fields(model):
            return TypeAdapter(model.model_fields[field].rebuild_annotation())
    return None


def secret_value_problem(field: str, value: str) -> str | None:
    """Why `value` cannot be sent as the secret attribute `field`, by the models' own checks."""
    adapter = _secret_adapter(field)
    if adapter is None:
        return None
    try:
        adapter.validate_python(value, context={"wire": True})
    except ValidationError as error:
        return str(error.errors(include_input=False)[0]["msg"])
    return None


@functools.cache
def all_secret_fields() -> frozenset[str]:
    """API names of the write-only attributes of every deployment type."""
    return frozenset(name for model in DEPLOYMENT_MODELS.values() for name in secret_fields(model))


@functools.cache
def stated_only_fields(model: type[DeploymentBase]) -> frozenset[str]:
    """API names of the attributes with no documented default (`annotation`, `robots.txt`)."""
    return frozenset(
        info.alias or name
        for name, info in model.model_fields.items()
        if any(isinstance(marker, StatedOnly) for marker in info.metadata)
    )


class ManagedView(NamedTuple):
    """How to read a deployment's managed attributes (`DeploymentBase.managed`) from the
    spec and from an API deployment, each in one call, in the same order: a quick
    comparison that builds nothing."""

    fields: tuple[tuple[str, str], ...]  # (python name, API name), in field order
    containers: tuple[tuple[str, str], ...]  # those holding a list or a map
    maps: tuple[tuple[str, str], ...]  # those holding a map (compared as JSON, key by key)
    from_spec: Callable[[DeploymentBase], tuple[Any, ...]]
    from_api: Callable[[Mapping[str, Any]], tuple[Any, ...]]
    # From a tuple of either getter, the values an equal value of another JSON type could
    # match (`true == 1`, `1 == 1.0`): only their types need comparing. None: no such field.
    typed: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None
    # The positions `typed` reads, each once (compared column by column in bulk).
    typed_positions: tuple[int, ...]
    # At each of those: the one type a validated spec's value has (a strict `int` or
    # `bool` field), else None (read the spec's values to know).
    typed_types: tuple[type | None, ...]
    # `from_spec` from the model's `__dict__` (where pydantic keeps field values): the same
    # tuple, read as one lookup per field instead of one attribute access (half the time).
    from_fields: Callable[[Mapping[str, Any]], tuple[Any, ...]]


def managed_view(deployment: DeploymentBase) -> ManagedView:
    """The `ManagedView` of a deployment: which attributes it manages depends on its type
    and on which stated-only attributes (`robots.txt`) the file states."""
    model = type(deployment)
    plain = _PLAIN_VIEWS.get(model)
    if plain is None:
        # The annotation is stated-only too, but never in a view.
        viewed = _stated_only_python(model) - {
            name for name, api in deployment_fields(model) if api == "annotation"
        }
        plain = _PLAIN_VIEWS[model] = (viewed, _managed_view(model, frozenset()))
    viewed, view = plain
    fields_set = deployment.__pydantic_fields_set__
    if fields_set.isdisjoint(viewed):
        # The common case, without building a set: no stated-only attribute the view holds.
        return view
    return _managed_view(model, _stated_only_python(model) & fields_set)


def managed_views(deployments: Sequence[DeploymentBase]) -> list[tuple[ManagedView, list[int]]]:
    """`managed_view` of many deployments at once: each view with the positions it reads.

    Built by type, in C for the common case (no stated-only attribute the view holds)."""
    kinds = list(map(type, deployments))
    models = dict.fromkeys(kinds)  # in order of first appearance
    # By id(): hashing a view hashes all its names.
    groups: dict[int, tuple[ManagedView, list[int]]] = {}
    for model in models:
        positions = (
            list(range(len(kinds)))
            if len(models) == 1
            else [position for position, kind in enumerate(kinds) if kind is model]
        )
        managed_view(deployments[positions[0]])  # makes the type's plain view
        viewed, view = _PLAIN_VIEWS[model]
        fields_sets = map(_FIELDS_SET, map(deployments.__getitem__, positions))
        plain = list(map(viewed.isdisjoint, fields_sets))
        if all(plain):
            groups.setdefault(id(view), (view, []))[1].extend(positions)
            continue
        for position, alone in zip(positions, plain, strict=True):
            own = view if alone else managed_view(deployments[position])
            groups.setdefault(id(own), (own, []))[1].append(position)
    return list(groups.values())


_FIELDS_SET = attrgetter("__pydantic_fields_set__")


# Per type: the stated-only attributes a view holds when stated, and the view without them.
_PLAIN_VIEWS: dict[type[DeploymentBase], tuple[frozenset[str], ManagedView]] = {}


@functools.cache
def _stated_only_python(model: type[DeploymentBase]) -> frozenset[str]:
    stated_only = stated_only_fields(model)
    return frozenset(name for name, api in deployment_fields(model) if api in stated_only)


@functools.cache
def _managed_view(model: type[DeploymentBase], stated: frozenset[str]) -> ManagedView:
    secrets = secret_fields(model)
    unstated = _stated_only_python(model) - stated
    fields = tuple(
        (name, api)
        for name, api in deployment_fields(model)
        if api != "annotation" and api not in secrets and name not in unstated
    )
    kinds = {name: typing.get_origin(model.model_fields[name].annotation) for name, _ in fields}
    typed = [
        position
        for position, (name, _) in enumerate(fields)
        if _equals_other_types(model.model_fields[name].annotation)
    ]
    if len(typed) == 1:
        typed *= 2  # one position twice: the getter still gives a tuple
    # Two names at least (the type and the subdomains), so both getters give tuples.
    return ManagedView(
        fields,
        tuple((name, api) for name, api in fields if kinds[name] in (list, dict)),
        tuple((name, api) for name, api in fields if kinds[name] is dict),
        attrgetter(*(name for name, _ in fields)),
        itemgetter(*(api for _, api in fields)),
        itemgetter(*typed) if typed else None,
        tuple(dict.fromkeys(typed)),
        tuple(_fixed_type(model.model_fields[fields[p][0]]) for p in dict.fromkeys(typed)),
        itemgetter(*(name for name, _ in fields)),
    )


def _fixed_type(info: FieldInfo) -> type | None:
    """The one type a strict `int` or `bool` field's validated value has (pydantic gives
    an `int` subclass's value as `int`), else None."""
    if any(isinstance(meta, Strict) and meta.strict for meta in info.metadata):
        if info.annotation is int:
            return int
        if info.annotation is bool:
            return bool
    return None


def _equals_other_types(annotation: Any) -> bool:
    """Whether a value of this annotation may equal a JSON value of another type.

    Text and None equal only their own type; lists and maps are compared apart. Anything
    else (numbers, booleans, what this does not know) counts.
    """
    origin = typing.get_origin(annotation)
    if origin in (list, dict):
        return False
    if origin is Literal:
        return not all(isinstance(value, str) for value in typing.get_args(annotation))
    if origin is Annotated:
        return _equals_other_types(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return any(map(_equals_other_types, typing.get_args(annotation)))
    return annotation not in (str, type(None))


def stated_fields(deployment: DeploymentBase) -> frozenset[str]:
    """API names of the attributes the file states (a default filled in is not stated)."""
    fields = type(deployment).model_fields
    return frozenset(fields[name].alias or name for name in deployment.model_fields_set)


def deployment_defaults(model: type[DeploymentBase]) -> dict[str, Any]:
    """API name to documented default of each optional attribute (stated-only ones excluded)."""
    defaults: dict[str, Any] = {}
    stated_only = stated_only_fields(model)
    for name, info in model.model_fields.items():
        if info.is_required() or (info.alias or name) in stated_only:
            continue
        defaults[info.alias or name] = info.get_default(call_default_factory=True)
    return defaults


def comparable_paths(model: type[DeploymentBase]) -> list[str]:
    """Every path a plan can change for a source of this deployment type."""
    return (
        ["name", "enabled"]
        + [f"deployment.{api}" for _, api in deployment_fields(model) if api != "type"]
        + ["deployment.type"]
    )
