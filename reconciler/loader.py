"""Load desired-state files: YAML with positions, references resolved, errors located.

Every problem found in any file becomes a `LocatedError` (`FILE:LINE:COL: path: message`)
and all of them are raised together in one `LoadError`, so a user fixes a file in one
round. Secret values, and values read through `{env:}`/`{file:}` references
(`reconciler.references`), never appear in a message: errors about them name the
reference, and YAML errors that could quote a scalar are worded without the input.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import ComposerError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.parser import ParserError
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scanner import ScannerError

from reconciler import references
from reconciler.errors import ReconcilerError
from reconciler.references import MissingReference, UnreadableReference
from reconciler.specs import (
    DEPLOYMENT_MODELS,
    DEPLOYMENT_TYPES,
    HOSTNAME_FIELDS,
    HOSTNAMES_ARE_UNIQUE,
    DesiredState,
    SecretRef,
    SourceSpec,
    all_secret_fields,
    fields_by_api_name,
    hostname_count_error,
    ignore_changes_error,
    reference_fields,
    secret_fields,
    validation_context,
)

Loc = tuple[str | int, ...]


# YAML aliases let a few hundred bytes expand to billions of values ("billion laughs").
# A large account written out is a few tens of thousands of values; past this budget
# the file is refused instead of exhausting memory while it is copied for validation.
MAX_VALUES = 200_000

# Read limit, so a path such as /dev/zero fails instead of hanging: a desired-state file
# of thousands of sources is a few MiB.
MAX_FILE_BYTES = 16 * 1024 * 1024
# Numbers beyond this cannot round-trip through JSON readers (JavaScript's safe integers).
MAX_SAFE_NUMBER = 2**53 - 1

NO_RESOLVE_HINT = "(validate --no-resolve checks the files without reading references)"

# Every attribute that is secret in some deployment type: an error about one of these
# never shows the input, whatever the source's type turned out to be.

# Cross-field rules of the models run only once every field is valid: the loader checks
# them on the raw data instead (`_check_cross_field`), so pydantic's copies are dropped.
_CHECKED_ON_RAW_DATA = frozenset({"too_many_hostnames", "ignore_changes"})

_TYPE_NAMES = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    type(None): "null",
    dict: "a mapping",
    list: "a list",
}


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class LocatedError:
    """One problem in a desired-state file, with its place (1-based line and column).

    `unread_reference` marks an `{env:}`/`{file:}` reference that could not be read, which
    `validate --no-resolve` would not have tried.
    """

    file: str
    line: int
    column: int
    path: str
    message: str
    unread_reference: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}:"
        message = _printable(self.message)
        return f"{where} {_printable(self.path)}: {message}" if self.path else f"{where} {message}"


@dataclass(frozen=True)
class Location:
    """Where a source is written (1-based line and column of its list item)."""

    file: str
    line: int
    column: int

    def error(self, path: str, message: str) -> LocatedError:
        """A located error about this source (for checks made after loading)."""
        return LocatedError(self.file, self.line, self.column, path, message)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class LoadedState:
    """The desired state of all files, sources in order, with where each was written.

    `unresolved` lists the sources left out of `state` because a required attribute is a
    reference that was not read (`resolve=False`): valid, but not known well enough to
    plan with.
    """

    state: DesiredState
    locations: list[Location]
    unresolved: list[Location] = field(default_factory=list)


class LoadError(ReconcilerError):
    """The files are invalid; `.errors` holds every problem found, in file order."""

    def __init__(self, errors: Sequence[LocatedError]) -> None:
        self.errors = list(errors)
        self.located = self.errors
        super().__init__(f"{len(self.errors)} error(s) in the desired state")


# --------------------------------------------------------------------------- entry point


def load(
    paths: Iterable[str | os.PathLike[str]],
    *,
    resolve: bool = True,
    environ: Mapping[str, str] | None = None,
    secrets_optional: bool = False,
) -> LoadedState:
    """Load, resolve and validate desired-state files; raise `LoadError` with all errors.

    With `secrets_optional`, a secret whose variable or file is missing stays unresolved
    instead of being an error: a plan made without access to the secrets (a pull request
    from a fork) still shows everything else, and says "cannot compare" for those.
    """
    env = os.environ if environ is None else environ
    errors: list[LocatedError] = []
    sources: list[SourceSpec] = []
    locations: list[Location] = []
    unresolved: list[Location] = []
    claims = _Claims()
    # Top-level settings (`owner`, `safety`): files planned together state the same ones.
    settings: dict[str, tuple[Any, str]] = {}
    for path in _distinct(paths):
        doc = _DesiredFile(
            str(path), resolve=resolve, environ=env, secrets_optional=secrets_optional
        )
        doc.check(claims)
        for key, value in doc.settings.items():
            if key in settings and settings[key][0] != value:
                doc._error(
                    (key,),
                    f"differs from {key} in {settings[key][1]}: files planned "
                    f"together share one {key}",
                )
            settings.setdefault(key, (value, doc.file))
        errors.extend(sorted(doc.errors, key=lambda e: (e.line, e.column)))
        sources.extend(doc.sources)
        locations.extend(doc.source_locations)
        unresolved.extend(doc.unresolved)
    if errors:
        raise LoadError(errors)
    stated = {key: value for key, (value, _) in settings.items()}
    state = DesiredState(version=1, sources=sources, **stated)
    return LoadedState(state, locations, unresolved)


def _distinct(paths: Iterable[str | os.PathLike[str]]) -> list[str | os.PathLike[str]]:
    """The paths with a file given twice (or through a link) kept once, in order."""
    seen: set[str] = set()
    kept = []
    for path in paths:
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            kept.append(path)
    return kept


# --------------------------------------------------------------------------- one file


@dataclass
class _Claim:
    file: str
    line: int
    column: int
    source: int  # global index, to tell one source's own repeats from another's
    pinned: bool = False  # the source has an `id`

    def place(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass
class _Claims:
    """Names, ids and hostnames seen so far across all files, to find the second use."""

    names: dict[str, _Claim] = field(default_factory=dict)
    ids: dict[str, _Claim] = field(default_factory=dict)
    hostnames: dict[str, _Claim] = field(default_factory=dict)
    next_source: int = 0


class _DesiredFile:
    """One file: its YAML tree (for positions), its plain data (for pydantic), its errors."""

    def __init__(
        self,
        file: str,
        *,
        resolve: bool,
        environ: Mapping[str, str],
        secrets_optional: bool = False,
    ) -> None:
        self.file = file
        self.resolve = resolve
        self.environ = environ
        self.secrets_optional = secrets_optional
        self.errors: list[LocatedError] = []
        self.sources: list[SourceSpec] = []
        self.source_locations: list[Location] = []
        self.unresolved: list[Location] = []
        # The top-level settings the file states (`owner`, `safety`), validated.
        self.settings: dict[str, Any] = {}
        self.root: Any = None
        # Where `{file:}` paths start, and the folder they must stay in.
        self.folder = Path(os.path.abspath(file)).parent
        self.repository = references.repository_root(file)
        # Per source index, the non-secret attributes read through references.
        self.referenced: dict[int, dict[str, SecretRef]] = {}
        # Referenced attributes, whose value must never be echoed, to their reference.
        self.sensitive: dict[Loc, str] = {}
        # Keys already reported, or removed before validation (unresolved non-secret
        # references): pydantic's complaints about them would repeat or mislead.
        self.silenced: set[Loc] = set()

    # -- steps

    def check(self, claims: _Claims) -> None:
        text = self._read()
        if text is None or not self._parse(text):
            return
        if not isinstance(self.root, CommentedMap):
            self._error_at(0, 0, "", "the file must be a mapping with 'version: 1' and 'sources:'")
            return
        expansion = _Expansion(MAX_VALUES)
        try:
            data = expansion.plain(self.root, ())
        except (_Recursive, RecursionError):
            self._error_at(0, 0, "", "recursive or too deeply nested YAML is not supported")
            return
        except _TooLarge as exc:
            # Where the count ran out is somewhere inside shared (aliased) nodes: point at
            # the entry being copied then (a top-level key, or a source) instead.
            entry = exc.loc[:2] if exc.loc[:1] == ("sources",) else exc.loc[:1]
            message = f"the file expands to more than {MAX_VALUES} values (YAML aliases?)"
            self._error(entry, message)
            return
        for loc, problem in expansion.unsafe_numbers:
            self._error(loc, problem)
            self.silenced.add(self._locate(loc).parts)
        self._resolve_references(data)
        self._check_claims(data, claims)
        self._check_cross_field(data)
        # Validated even after earlier errors, so every mistake shows in one run.
        self._validate(data)
        if self.errors:
            self.sources, self.source_locations, self.unresolved = [], [], []

    def _read(self) -> str | None:
        try:
            # Not only regular files: `validate <(generate-sources)` reads a pipe.
            raw = references.read_limited(self.file, MAX_FILE_BYTES, regular_only=False)
        except references.Unreadable as exc:
            self._error_at(0, 0, "", f"cannot read the file: {exc.reason}")
            return None
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            before = raw[: exc.start]
            line = before.count(b"\n")
            column = len(before) - (before.rfind(b"\n") + 1)
            self._error_at(line, column, "", "the file is not valid UTF-8")
            return None

    def _parse(self, text: str) -> bool:
        yaml = YAML(typ="rt")
        try:
            # ruamel warns (e.g. a reused anchor) on input that is still well defined.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                node = yaml.compose(text)
                if node is not None and (self._duplicate_keys(node) or self._huge_integers(node)):
                    return False
                self.root = YAML(typ="rt").load(text)
        except (ScannerError, ParserError, ComposerError) as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = ": ".join(p for p in (exc.context, exc.problem) if p) or "syntax error"
            line, column = (mark.line, mark.column) if mark else (0, 0)
            self._error_at(line, column, "", f"invalid YAML: {problem}")
            return False
        except ReaderError as exc:
            line = text.count("\n", 0, exc.position)
            column = exc.position - (text.rfind("\n", 0, exc.position) + 1)
            self._error_at(
                line,
                column,
                "",
                "invalid YAML: the file contains a character that YAML does not allow",
            )
            return False
        except MarkedYAMLError as exc:
            # Constructor errors can quote the scalar (maybe a secret): say where, not what.
            mark = exc.problem_mark or exc.context_mark
            line, column = (mark.line, mark.column) if mark else (0, 0)
            self._error_at(line, column, "", "invalid YAML: a value does not match its tag")
            return False
        except (YAMLError, ValueError, KeyError, TypeError, RecursionError):
            # Tagged scalars that do not parse (`!!int x`) fail without a position.
            self._error_at(0, 0, "", "invalid YAML: a value does not match its tag")
            return False
        return True

    def _duplicate_keys(self, node: Node) -> bool:
        found = False
        for mapping in _mapping_nodes(node):
            seen: dict[tuple[str, str], ScalarNode] = {}
            for key, _ in mapping.value:
                if not isinstance(key, ScalarNode):
                    continue
                first = seen.setdefault((str(key.tag), key.value), key)
                if first is not key:
                    found = True
                    self._error_at(
                        key.start_mark.line,
                        key.start_mark.column,
                        "",
                        f"duplicate key {key.value!r} (first at line "
                        f"{first.start_mark.line + 1}, column {first.start_mark.column + 1})",
                    )
        return found

    def _huge_integers(self, node: Node) -> bool:
        """Report integers written with so many digits that Python refuses to read them."""
        found = False
        for loc, scalar in _scalar_nodes(node):
            if scalar.tag == _INT_TAG and len(scalar.value) > _MAX_INTEGER_TEXT:
                found = True
                line, column = scalar.start_mark.line, scalar.start_mark.column
                problem = _number_problem(MAX_SAFE_NUMBER + 1) or ""
                self._error_at(line, column, _display_path(loc), problem)
        return found

    def _resolve_references(self, data: dict[str, Any]) -> None:
        sources = data.get("sources")
        if not isinstance(sources, list):
            return
        for index, source in enumerate(sources):
            deployment = source.get("deployment") if isinstance(source, dict) else None
            if not isinstance(deployment, dict):
                continue
            kind = deployment.get("type")
            model = DEPLOYMENT_MODELS.get(kind) if isinstance(kind, str) else None
            if model is None:
                continue  # pydantic reports the type; secret fields are unknown until then
            secrets = secret_fields(model)
            referable = reference_fields(model)
            for key, value in list(deployment.items()):
                loc: Loc = ("sources", index, "deployment", key)
                reference = references.parse(value)
                if key in secrets:
                    if isinstance(value, dict):
                        deployment[key] = self._secret(loc, value)
                elif reference is None:
                    continue
                elif key not in referable and key in fields_by_api_name(model):
                    self._error(
                        loc,
                        f"{key} cannot take a reference: a referenced value is never shown, "
                        f"and only text of at least {references.MIN_LENGTH} characters can "
                        "be masked; write the value itself",
                    )
                    self.silenced.add(loc)
                    del deployment[key]
                else:
                    self.sensitive[loc] = str(reference)
                    ref = self._read_reference(loc, reference) if self.resolve else None
                    if ref is None or not ref.resolved:
                        # Unresolved: validate as if absent rather than with a fake value.
                        del deployment[key]
                        self.silenced.add(loc)
                    else:
                        deployment[key] = ref.reveal()
                        self.referenced.setdefault(index, {})[key] = ref

    def _secret(self, loc: Loc, value: dict[Any, Any]) -> Any:
        reference = references.parse(value)
        if reference is None:
            self._error(loc, "must be a reference: {env: NAME} or {file: path}")
            self.silenced.add(loc)
            return None
        optional = self.secrets_optional
        read = self._read_reference(loc, reference, optional=optional) if self.resolve else None
        # Not read (or refused, and reported): the reference alone, so validation goes on.
        return read or SecretRef(reference.kind, reference.name)  # type: ignore[arg-type]

    def _read_reference(
        self, loc: Loc, reference: references.Reference, *, optional: bool = False
    ) -> SecretRef | None:
        """The reference with its value (None when refused); a missing value is allowed
        only when `optional`, and the reference is then returned without one."""
        kind: Any = reference.kind
        try:
            value, locator = references.read(
                reference, environ=self.environ, base=self.folder, root=self.repository
            )
        except MissingReference as exc:
            if optional:
                return SecretRef(kind, reference.name, path=exc.locator.get("file"))
            # No command in the text: plan and apply print it too (validate's summary
            # adds the --no-resolve hint).
            self._unread(loc, str(exc))
            return None
        except UnreadableReference as exc:
            self._error(loc, str(exc))
            return None
        return SecretRef(kind, reference.name, value, path=locator.get("file"))

    def _unread(self, loc: Loc, message: str) -> None:
        spot = self._locate(loc)
        path = _display_path(spot.parts)
        self.errors.append(
            LocatedError(self.file, spot.line + 1, spot.column + 1, path, message, True)
        )

    def _check_claims(self, data: dict[str, Any], claims: _Claims) -> None:
        sources = data.get("sources")
        if not isinstance(sources, list):
            return
        for index, source in enumerate(sources):
            number = claims.next_source
            claims.next_source += 1
            if not isinstance(source, dict):
                continue
            base: Loc = ("sources", index)
            self._claim_name(claims, source, base, number)
            self._claim(
                claims.ids,
                source.get("id"),
                (*base, "id"),
                number,
                "id",
                "two specs cannot manage one live source",
            )
            deployment = source.get("deployment")
            if not isinstance(deployment, dict):
                continue
            for key, label in (("imgix_subdomains", "subdomain"), ("custom_domains", "domain")):
                hosts = deployment.get(key)
                if not isinstance(hosts, list):
                    continue
                for position, host in enumerate(hosts):
                    loc = (*base, "deployment", key, position)
                    self._claim(
                        claims.hostnames,
                        host,
                        loc,
                        number,
                        label,
                        HOSTNAMES_ARE_UNIQUE,
                    )

    def _claim_name(self, claims: _Claims, source: dict[str, Any], base: Loc, number: int) -> None:
        # imgix allows one name twice (and export writes it so); ids tell such sources apart.
        self._claim(
            claims.names,
            source.get("name"),
            (*base, "name"),
            number,
            "name",
            "plans and --target identify sources by name: add an id to both to tell them apart",
            pinned=isinstance(source.get("id"), str) and bool(source["id"]),
        )

    def _claim(
        self,
        seen: dict[str, _Claim],
        value: Any,
        loc: Loc,
        source: int,
        what: str,
        why: str,
        *,
        pinned: bool = False,
    ) -> None:
        """Record a use of `value`; report a second one unless both sources are `pinned`."""
        if not isinstance(value, str):
            return
        spot = self._locate(loc)
        first = seen.setdefault(
            value, _Claim(self.file, spot.line + 1, spot.column + 1, source, pinned)
        )
        if first.source != source and not (pinned and first.pinned):
            self._error(
                loc, f"{what} {value!r} is also used by the source at {first.place()} ({why})"
            )

    def _check_cross_field(self, data: dict[str, Any]) -> None:
        """The models' cross-field rules, on the raw data: pydantic checks them only once
        every field of a source is valid, and all errors are reported in one run."""
        sources = data.get("sources")
        if not isinstance(sources, list):
            return
        for index, source in enumerate(sources):
            if not isinstance(source, dict):
                continue
            deployment = source.get("deployment")
            deployment = deployment if isinstance(deployment, dict) else {}
            self._check_hostname_count(("sources", index, "deployment"), deployment)
            paths = source.get("ignore_changes")
            model = DEPLOYMENT_MODELS.get(str(deployment.get("type")))
            if isinstance(paths, list) and model is not None:
                named = [path for path in paths if isinstance(path, str)]
                problem = ignore_changes_error(model, named)
                if problem is not None:
                    self._error(("sources", index, "ignore_changes"), problem.message())

    def _check_hostname_count(self, base: Loc, deployment: dict[str, Any]) -> None:
        lists = {
            key: value for key in HOSTNAME_FIELDS if isinstance(value := deployment.get(key), list)
        }
        problem = hostname_count_error(
            len(lists.get("imgix_subdomains", [])), len(lists.get("custom_domains", []))
        )
        if problem is not None:
            self._error((*base, next(iter(lists))), problem.message())

    def _validate(self, data: dict[str, Any]) -> None:
        try:
            state = DesiredState.model_validate(data)
        except ValidationError as exc:
            reported: set[LocatedError] = set()
            for detail in exc.errors():
                located = self._pydantic_error(detail, data)
                # Union members fail one by one with the same message: report it once.
                if located is not None and located not in reported:
                    reported.add(located)
                    self.errors.append(located)
            if not reported:
                self._keep_resolved_sources(data)
                with contextlib.suppress(ValidationError):
                    self._keep_settings(DesiredState.model_validate({**data, "sources": []}))
            return
        self._keep_settings(state)
        self.sources = list(state.sources)
        for index, spec in enumerate(self.sources):
            spec.deployment.attach_references(self.referenced.get(index, {}))
        self.source_locations = [self._source_location(i) for i in range(len(self.sources))]

    def _keep_settings(self, state: DesiredState) -> None:
        self.settings = {
            key: getattr(state, key) for key in ("owner", "safety") if key in state.model_fields_set
        }

    def _keep_resolved_sources(self, data: dict[str, Any]) -> None:
        """Every error was about an unread reference: keep the sources that need none."""
        sources = data.get("sources")
        if not isinstance(sources, list):  # already reported where the value was read
            return
        for index, source in enumerate(sources):
            try:
                spec = SourceSpec.model_validate(source, context=validation_context(data))
            except ValidationError:
                self.unresolved.append(self._source_location(index))
                continue
            spec.deployment.attach_references(self.referenced.get(index, {}))
            self.sources.append(spec)
            self.source_locations.append(self._source_location(index))

    def _source_location(self, index: int) -> Location:
        spot = self._locate(("sources", index))
        return Location(self.file, spot.line + 1, spot.column + 1)

    # -- pydantic errors

    def _pydantic_error(self, detail: ErrorDetails, data: dict[str, Any]) -> LocatedError | None:
        kind = detail["type"]
        if kind in _CHECKED_ON_RAW_DATA:
            return None
        loc: Loc = tuple(detail["loc"])
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            loc = (*loc, "type")
        spot = self._locate(loc)
        parts, rest = spot.parts, spot.rest
        if (*parts, *rest[:1]) in self.silenced or parts in self.silenced:
            return None
        secret = any(p in all_secret_fields() for p in parts if isinstance(p, str))
        reference = self.sensitive.get(parts[:4])
        message = self._message(detail, parts, rest, data, secret=secret or bool(reference))
        if reference:
            # The projects' own messages quote the value: keep the rule, name the reference.
            message = f"{message.split(' (got ')[0]} (the value of {reference})"
        # A key that should not be there, or a mapping that lacks one: point at the key.
        at_key = kind in ("extra_forbidden", "unknown_param") or bool(rest)
        line, column = (spot.key_line, spot.key_column) if at_key else (spot.line, spot.column)
        return LocatedError(self.file, line + 1, column + 1, _display_path(parts), message)

    def _message(
        self, detail: ErrorDetails, parts: Loc, rest: Loc, data: Any, *, secret: bool
    ) -> str:
        kind = detail["type"]
        ctx = detail.get("ctx") or {}
        value = detail["input"]
        types = ", ".join(DEPLOYMENT_TYPES)
        if kind == "missing":
            return f"missing required key {rest[0]!r}" if rest else "missing required value"
        if kind == "extra_forbidden":
            return _unknown_key(parts, data)
        if kind == "union_tag_not_found":
            if rest:
                return f"missing required key 'type' (one of {types})"
            tag = value.get("type") if isinstance(value, dict) else None
            return f"must be one of {types}" + _got_type(tag)
        if kind == "union_tag_invalid":
            return f"unknown deployment type {ctx.get('tag')!r} (use one of {types})"
        if kind == "literal_secret":
            name = str(parts[-1]) if parts else "this attribute"
            return (
                f"{name} is write-only and must not be written in the file: use a "
                f"reference such as {{env: {name.upper().replace('.', '_')}}} or "
                "{file: path}"
            )
        if rest:
            # An alternative of a union (default_params values) failed in every member.
            return "must be a string, a number or a boolean" + _got_type(value)
        if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
            op = {
                "greater_than_equal": ">=",
                "less_than_equal": "<=",
                "greater_than": ">",
                "less_than": "<",
            }[kind]
            bound = next(iter(ctx.values()))
            return f"must be {op} {bound}" + ("" if secret else _got(value))
        if kind == "string_too_short" and ctx.get("min_length") == 1:
            return "must not be empty"
        if kind == "too_short":
            return f"must have at least {ctx.get('min_length')} item(s)"
        if kind == "string_pattern_mismatch":
            return f"must match {ctx.get('pattern')}" + ("" if secret else _got(value))
        if kind == "model_attributes_type" or kind == "model_type":
            return "must be a mapping" + _got_type(value)
        message = detail["msg"]
        if not message.startswith(("Input should", "String should", "List should")):
            return message  # written by specs.py in the project's own words
        message = message.replace("Input should", "must", 1)
        message = message.replace("String should", "must", 1)
        message = message.replace("List should", "must", 1)
        message = message.replace("must be a valid dictionary", "must be a mapping")
        message = message.replace("must be a valid integer", "must be an integer")
        message = message.replace("must be a valid ", "must be a ")
        message = message.split(", unable to")[0]
        if secret or isinstance(value, SecretRef):
            return message
        quoted = isinstance(value, str) and type(_yaml_scalar(value)) is _STRICT_TYPES.get(kind)
        if quoted:
            return message + f" (got the string {value!r}: write it without quotes)"
        return message + _got(value)

    # -- positions

    def _locate(self, loc: Loc) -> _Spot:
        """0-based position of the deepest node of `loc` present in the YAML tree."""
        node: Any = self.root
        spot = _Spot(node.lc.line, node.lc.col, node.lc.line, node.lc.col)
        parts: list[str | int] = []
        previous: str | int | None = None
        for step, comp in enumerate(loc):
            if isinstance(node, CommentedMap):
                if previous == "deployment" and comp not in node and node.get("type") == comp:
                    continue  # pydantic's discriminated-union tag: not written in the file
                if comp not in node:
                    spot.rest = loc[step:]
                    break
                try:
                    spot.key_line, spot.key_column = node.lc.key(comp)
                    spot.line, spot.column = node.lc.value(comp)
                except (KeyError, TypeError):
                    pass  # a key merged in by `<<:` has no position of its own
            elif isinstance(node, CommentedSeq):
                if not isinstance(comp, int) or not 0 <= comp < len(node):
                    spot.rest = loc[step:]
                    break
                try:
                    spot.line, spot.column = node.lc.item(comp)
                    spot.key_line, spot.key_column = spot.line, spot.column
                except (KeyError, TypeError):
                    pass
            else:
                spot.rest = loc[step:]
                break
            node = node[comp]
            parts.append(comp)
            previous = comp
        spot.parts = tuple(parts)
        return spot

    def _error(self, loc: Loc, message: str) -> None:
        spot = self._locate(loc)
        self._error_at(spot.line, spot.column, _display_path(spot.parts), message)

    def _error_at(self, line: int, column: int, path: str, message: str) -> None:
        self.errors.append(LocatedError(self.file, line + 1, column + 1, path, message))


# --------------------------------------------------------------------------- helpers


class _Recursive(Exception):
    pass


class _TooLarge(Exception):
    def __init__(self, loc: Loc) -> None:
        super().__init__(f"more than {MAX_VALUES} values")
        self.loc = loc


@dataclass
class _Spot:
    """Where a loc lands: its value and key positions, the keys found, what was not."""

    line: int
    column: int
    key_line: int
    key_column: int
    parts: Loc = ()
    rest: Loc = ()


class _Expansion:
    """Copies the YAML tree into plain Python values for pydantic (ruamel's scalar
    subclasses and anchored booleans, which are ints, would otherwise validate oddly),
    counting values so aliases cannot expand without bound."""

    def __init__(self, budget: int) -> None:
        self.remaining = budget
        # Where a number outside JSON's safe range was found, and why: reported, not kept.
        self.unsafe_numbers: list[tuple[Loc, str]] = []

    def plain(self, value: Any, stack: tuple[int, ...], loc: Loc = ()) -> Any:
        self.remaining -= 1
        if self.remaining < 0:
            raise _TooLarge(loc)
        if isinstance(value, dict | list):
            if id(value) in stack:
                raise _Recursive
            inner = (*stack, id(value))
            if isinstance(value, dict):
                return {
                    self.plain(k, inner, loc): self.plain(v, inner, (*loc, k))
                    for k, v in value.items()
                }
            return [self.plain(item, inner, (*loc, i)) for i, item in enumerate(value)]
        if type(value).__name__ == "ScalarBoolean":
            return bool(value)
        for plain in (bool, int, float, str):
            if isinstance(value, plain):
                value = plain(value)
                break
        if isinstance(value, int | float) and not isinstance(value, bool):
            problem = _number_problem(value)
            if problem:
                self.unsafe_numbers.append((loc, problem))
                return None
        return value


def _number_problem(value: float) -> str | None:
    """Why a YAML number cannot be used (JSON has no infinity, and readers lose precision
    beyond 2**53), without printing it: it may have thousands of digits."""
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number (.inf and .nan are not numbers in JSON)"
    if abs(value) > MAX_SAFE_NUMBER:
        return f"must be between -{MAX_SAFE_NUMBER} and {MAX_SAFE_NUMBER} (JSON's safe range)"
    return None


# Strict pydantic error types, and the type a YAML scalar must have to be valid there.
_STRICT_TYPES: dict[str, type] = {"int_type": int, "bool_type": bool}


def _yaml_scalar(text: str) -> Any:
    """`text` read by YAML's scalar rules ("86400" an integer, "true" a boolean), or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return YAML(typ="safe", pure=True).load(text)
    except (YAMLError, ValueError, KeyError, TypeError, RecursionError):
        return None


_INT_TAG = "tag:yaml.org,2002:int"
# Far more than any safe integer needs (with `_` separators), far less than Python's limit.
_MAX_INTEGER_TEXT = 100


def _scalar_nodes(node: Node) -> Iterator[tuple[Loc, ScalarNode]]:
    """Every scalar of the composed tree with its path (keys and item positions)."""
    seen: set[int] = set()
    pending: list[tuple[Loc, Node]] = [((), node)]
    while pending:
        loc, current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ScalarNode):
            yield loc, current
        elif isinstance(current, MappingNode):
            for key, value in current.value:
                pending.append((loc, key))
                pending.append(((*loc, str(getattr(key, "value", "?"))), value))
        elif isinstance(current, SequenceNode):
            pending.extend(((*loc, i), item) for i, item in enumerate(current.value))


def _mapping_nodes(node: Node) -> Iterator[MappingNode]:
    seen: set[int] = set()
    pending = [node]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue  # aliases share nodes
        seen.add(id(current))
        if isinstance(current, MappingNode):
            yield current
            for key, value in current.value:
                pending.extend((key, value))
        elif isinstance(current, SequenceNode):
            pending.extend(current.value)


def _display_path(parts: Loc) -> str:
    """`deployment.cache_ttl_value` inside a source (its line says which), else from the root."""
    if len(parts) >= 2 and parts[0] == "sources" and isinstance(parts[1], int):
        inner = parts[2:]
        if not inner:
            return f"sources[{parts[1]}]"
        parts = inner
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _known_keys(parts: Loc, data: Any) -> list[str]:
    inner = parts[:-1]
    if len(inner) == 0:
        return list(DesiredState.model_fields)
    if len(inner) == 2 and inner[0] == "sources":
        return list(SourceSpec.model_fields)
    if len(inner) == 3 and inner[2] == "deployment":
        try:
            kind = data["sources"][inner[1]]["deployment"].get("type")
        except (KeyError, IndexError, TypeError, AttributeError):
            kind = None
        known = isinstance(kind, str) and kind in DEPLOYMENT_MODELS
        models: list[type[BaseModel]] = (
            [DEPLOYMENT_MODELS[kind]] if known else list(DEPLOYMENT_MODELS.values())
        )
        return sorted({f.alias or n for m in models for n, f in m.model_fields.items()})
    return []


def _unknown_key(parts: Loc, data: Any) -> str:
    key = str(parts[-1]) if parts else ""
    message = f"unknown key {key!r}"
    close = difflib.get_close_matches(key, _known_keys(parts, data), n=1, cutoff=0.6)
    return f"{message} (did you mean {close[0]!r}?)" if close else message


def _printable(text: str) -> str:
    """Escape control characters a key may hold, so one error stays one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _got(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        # As YAML spells them, since that is what the user wrote.
        return {True: " (got true)", False: " (got false)", None: " (got null)"}[value]
    if isinstance(value, int | float):
        return f" (got {value!r})"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f" (got {shown!r})"
    return _got_type(value)


def _got_type(value: Any) -> str:
    for kind, name in _TYPE_NAMES.items():
        if type(value) is kind:
            return f" (got {name})"
    return ""


def summarize(errors: Sequence[LocatedError], files: Sequence[str]) -> str:
    """One closing line for a failed validation, e.g. `3 errors in 1 of 2 files`.

    When a reference could not be read, it says how to check the rest without them.
    """
    bad = len({error.file for error in errors})
    given = len({os.path.realpath(file) for file in files})  # a file given twice is read once
    plural = "s" if len(errors) != 1 else ""
    line = f"{len(errors)} error{plural} in {bad} of {given} file{'s' if given != 1 else ''}"
    if any(error.unread_reference for error in errors):
        line += f" {NO_RESOLVE_HINT}"
    return line
