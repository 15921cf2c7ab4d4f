"""Load desired-state files: YAML with positions, references resolved, errors located.

Every problem found in any file becomes a `LocatedError` (`FILE:LINE:COL: path: message`)
and all of them are raised together in one `LoadError`, so a user fixes a file in one
round. Secret values never appear in a message: errors about a secret field, and YAML
errors that could quote a scalar, are worded without the input.
"""

from __future__ import annotations

import difflib
import os
import typing
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

from reconciler import redact
from reconciler.specs import (
    DEPLOYMENT_MODELS,
    DEPLOYMENT_TYPES,
    DeploymentBase,
    DesiredState,
    SecretRef,
    SourceSpec,
    secret_fields,
)

Loc = tuple[str | int, ...]

REFERENCE_KINDS = ("env", "file")

# Every attribute that is secret in some deployment type: an error about one of these
# never shows the input, whatever the source's type turned out to be.
_SECRET_NAMES = frozenset(name for m in DEPLOYMENT_MODELS.values() for name in secret_fields(m))

# Errors raised by a model validator carry the loc of the model; these name the key
# they are about, so the error can point at that key instead.
_MODEL_ERROR_KEYS = {
    "ignore_changes": "ignore_changes",
    "webproxy_secure_url": "secure_url_enabled",
    "too_many_hostnames": "imgix_subdomains",
}

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
    """One problem in a desired-state file, with its place (1-based line and column)."""

    file: str
    line: int
    column: int
    path: str
    message: str

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


class LoadError(Exception):
    """The files are invalid; `.errors` holds every problem found, in file order."""

    def __init__(self, errors: Sequence[LocatedError]) -> None:
        self.errors = list(errors)
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
    for path in paths:
        doc = _DesiredFile(
            str(path), resolve=resolve, environ=env, secrets_optional=secrets_optional
        )
        doc.check(claims)
        errors.extend(sorted(doc.errors, key=lambda e: (e.line, e.column)))
        sources.extend(doc.sources)
        locations.extend(doc.source_locations)
        unresolved.extend(doc.unresolved)
    if errors:
        raise LoadError(errors)
    return LoadedState(DesiredState(version=1, sources=sources), locations, unresolved)


def reference_fields(model: type[DeploymentBase]) -> list[str]:
    """API names of the attributes that may be written as a (non-secret) reference.

    Scalar attributes only: a reference resolves to one string. `type` is excluded
    because it decides which attributes exist.
    """
    secrets = secret_fields(model)
    names = []
    for name, info in model.model_fields.items():
        api = info.alias or name
        if api in secrets or api == "type":
            continue
        if typing.get_origin(info.annotation) in (list, dict):
            continue
        names.append(api)
    return names


# --------------------------------------------------------------------------- one file


@dataclass
class _Claim:
    file: str
    line: int
    column: int
    source: int  # global index, to tell one source's own repeats from another's

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
        self.root: Any = None
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
        try:
            data = _plain(self.root, ())
        except (_Recursive, RecursionError):
            self._error_at(0, 0, "", "recursive or too deeply nested YAML is not supported")
            return
        self._resolve_references(data)
        self._check_claims(data, claims)
        # Validated even after earlier errors, so every mistake shows in one run.
        self._validate(data)
        if self.errors:
            self.sources, self.source_locations, self.unresolved = [], [], []

    def _read(self) -> str | None:
        try:
            raw = Path(self.file).read_bytes()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            self._error_at(0, 0, "", f"cannot read the file: {reason}")
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
                if node is not None and self._duplicate_keys(node):
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
                if key in secrets:
                    if isinstance(value, dict):
                        deployment[key] = self._secret(loc, value)
                elif key in referable and _is_reference(value):
                    resolved = self._reference_value(loc, value) if self.resolve else None
                    if resolved is None:
                        # Unresolved: validate as if absent rather than with a fake value.
                        del deployment[key]
                        self.silenced.add(loc)
                    else:
                        deployment[key] = resolved

    def _secret(self, loc: Loc, value: dict[Any, Any]) -> Any:
        if not _is_reference(value):
            self._error(loc, "must be a reference: {env: NAME} or {file: path}")
            self.silenced.add(loc)
            return None
        ((kind, name),) = value.items()
        path = self._file_path(name) if kind == "file" else None
        secret = None
        if self.resolve:
            reported = len(self.errors)
            secret = self._reference_value(loc, value)
            if secret is None and self.secrets_optional:
                del self.errors[reported:]
        if secret is not None:
            redact.register(secret)
        return SecretRef(kind, name, secret, path=path)

    def _reference_value(self, loc: Loc, reference: dict[str, str]) -> str | None:
        ((kind, name),) = reference.items()
        if kind == "env":
            if name not in self.environ:
                self._error(
                    loc,
                    f"environment variable {name} is not set "
                    "(validate --no-resolve skips references)",
                )
                return None
            value = self.environ[name]
            if not value:
                self._error(loc, f"environment variable {name} is empty")
                return None
            return value
        try:
            value = Path(self._file_path(name)).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not readable as UTF-8 text"
            self._error(loc, f"cannot read {name}: {reason}")
            return None
        # Editors end files with a newline that is not part of the secret.
        value = value.rstrip("\r\n")
        if not value:
            self._error(loc, f"file {name} is empty")
            return None
        return value

    def _file_path(self, name: str) -> str:
        return os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(self.file)), name))

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
            self._claim(
                claims.names,
                source.get("name"),
                (*base, "name"),
                number,
                "name",
                "names identify sources in plans and --target, so they must differ",
            )
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
                        "hostnames are unique across all imgix sources",
                    )

    def _claim(
        self, seen: dict[str, _Claim], value: Any, loc: Loc, source: int, what: str, why: str
    ) -> None:
        if not isinstance(value, str):
            return
        spot = self._locate(loc)
        first = seen.setdefault(value, _Claim(self.file, spot.line + 1, spot.column + 1, source))
        if first.source != source:
            self._error(
                loc, f"{what} {value!r} is also used by the source at {first.place()} ({why})"
            )

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
            return
        self.sources = list(state.sources)
        self.source_locations = [self._source_location(i) for i in range(len(self.sources))]

    def _keep_resolved_sources(self, data: dict[str, Any]) -> None:
        """Every error was about an unread reference: keep the sources that need none."""
        for index, source in enumerate(data["sources"]):
            try:
                spec = SourceSpec.model_validate(source)
            except ValidationError:
                self.unresolved.append(self._source_location(index))
                continue
            self.sources.append(spec)
            self.source_locations.append(self._source_location(index))

    def _source_location(self, index: int) -> Location:
        spot = self._locate(("sources", index))
        return Location(self.file, spot.line + 1, spot.column + 1)

    # -- pydantic errors

    def _pydantic_error(self, detail: ErrorDetails, data: dict[str, Any]) -> LocatedError | None:
        kind = detail["type"]
        ctx = detail.get("ctx") or {}
        loc: Loc = tuple(detail["loc"])
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            loc = (*loc, "type")
        elif ctx.get("field") or kind in _MODEL_ERROR_KEYS:
            loc = (*loc, ctx.get("field") or _MODEL_ERROR_KEYS[kind])
        spot = self._locate(loc)
        parts, rest = spot.parts, spot.rest
        if (*parts, *rest[:1]) in self.silenced or parts in self.silenced:
            return None
        secret = any(p in _SECRET_NAMES for p in parts if isinstance(p, str))
        message = self._message(detail, parts, rest, data, secret=secret)
        # A key that should not be there, or a mapping that lacks one: point at the key.
        at_key = kind == "extra_forbidden" or bool(rest)
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
        message = message.replace("must be a valid ", "must be a ")
        message = message.split(", unable to")[0]
        if secret or isinstance(value, SecretRef):
            return message
        if kind.endswith("_type"):
            return message + _got_type(value)
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


@dataclass
class _Spot:
    """Where a loc lands: its value and key positions, the keys found, what was not."""

    line: int
    column: int
    key_line: int
    key_column: int
    parts: Loc = ()
    rest: Loc = ()


def _plain(value: Any, stack: tuple[int, ...]) -> Any:
    """Copy the YAML tree into plain Python values for pydantic (ruamel's scalar subclasses
    and anchored booleans, which are ints, would otherwise validate oddly)."""
    if isinstance(value, dict | list):
        if id(value) in stack:
            raise _Recursive
        inner = (*stack, id(value))
        if isinstance(value, dict):
            return {_plain(k, inner): _plain(v, inner) for k, v in value.items()}
        return [_plain(item, inner) for item in value]
    if type(value).__name__ == "ScalarBoolean":
        return bool(value)
    for plain in (bool, int, float, str):
        if isinstance(value, plain):
            return plain(value)
    return value


def _is_reference(value: Any) -> bool:
    if not isinstance(value, dict) or len(value) != 1:
        return False
    ((kind, name),) = value.items()
    return kind in REFERENCE_KINDS and isinstance(name, str) and bool(name)


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
    if isinstance(value, bool | int | float) or value is None:
        return f" (got {value!r})" if value is not None else " (got null)"
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
    """One closing line for a failed validation, e.g. `3 errors in 1 of 2 files`."""
    bad = len({error.file for error in errors})
    plural = "s" if len(errors) != 1 else ""
    return (
        f"{len(errors)} error{plural} in {bad} of {len(files)} file{'s' if len(files) != 1 else ''}"
    )
