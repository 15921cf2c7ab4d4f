"""Positions and messages: where a path of keys lands in a desired-state file, and
pydantic's errors in the project's words (never quoting a secret or a referenced value).

`FileState` is what every part of the loader shares about one file: its trees, what
was read through references, and the errors found so far, each at its place.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pydantic import BaseModel
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler import references
from reconciler.specs import (
    DEPLOYMENT_MODELS,
    DEPLOYMENT_TYPES,
    DesiredState,
    SafetySettings,
    SecretRef,
    SourceSpec,
)

Loc = tuple[str | int, ...]

# Cross-field rules of the models run only once every field is valid: the loader checks
# them on the raw data instead (`_check_cross_field`), so pydantic's copies are dropped.
CHECKED_ON_RAW_DATA = frozenset({"too_many_hostnames", "ignore_changes"})

TYPE_NAMES = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    type(None): "null",
    dict: "a mapping",
    list: "a list",
}


@dataclass(frozen=True, slots=True)  # slots: a file may hold 300,000 errors
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
        message = printable(self.message)
        return f"{where} {printable(self.path)}: {message}" if self.path else f"{where} {message}"


# A NamedTuple, not a frozen dataclass: defining one costs a sixth of the time, at every start.
class Location(NamedTuple):
    """Where a source is written (1-based line and column of its list item)."""

    file: str
    line: int
    column: int

    def error(self, path: str, message: str) -> LocatedError:
        """A located error about this source (for checks made after loading)."""
        return LocatedError(self.file, self.line, self.column, path, message)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class Imprecise(Exception):
    """The fast attempt met something only the precise path words and places."""


# A plain class, not a dataclass: about 0.01 ms to define at start-up, against 0.3.
class Spot:
    """Where a loc lands: its value and key positions, the keys found, what was not."""

    __slots__ = ("column", "key_column", "key_line", "line", "parts", "rest")

    def __init__(self, line: int, column: int, key_line: int, key_column: int) -> None:
        self.line = line
        self.column = column
        self.key_line = key_line
        self.key_column = key_column
        self.parts: Loc = ()
        self.rest: Loc = ()


class FileState:
    """One file being loaded: its trees (for positions), what references gave, its errors."""

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
        # Where `{file:}` paths start, and the folder they must stay in.
        self.folder, self.repository = references.anchors(file)
        self._start()

    def _start(self) -> None:
        """The state of a check not yet begun (the fast attempt starts over from it)."""
        self.errors: list[LocatedError] = []
        self.sources: list[SourceSpec] = []
        self.source_locations: list[Location] = []
        self.unresolved: list[Location] = []
        # The top-level settings the file states (`owner`, `safety`), validated.
        self.settings: dict[str, Any] = {}
        self.root: Any = None
        # The composed tree of the fast attempt: positions of a file that has no error.
        self.nodes: Node | None = None
        self.key_index: KeyIndex = {}
        self.attempting = False
        # Per source index, the non-secret attributes read through references.
        self.referenced: dict[int, dict[str, SecretRef]] = {}
        # Referenced attributes, whose value must never be echoed, to their reference.
        self.sensitive: dict[Loc, str] = {}
        # Keys already reported, or removed before validation (unresolved non-secret
        # references): pydantic's complaints about them would repeat or mislead.
        self.silenced: set[Loc] = set()

    # -- positions

    def _locate(self, loc: Loc) -> Spot:
        """0-based position of the deepest node of `loc` present in the file."""
        if self.nodes is None:
            return locate(self.root, loc)
        try:
            return locate_node(self.nodes, loc, self.key_index)
        except Imprecise:
            if self.attempting:
                raise
            # After a fast check (a later check across files): the file's start, not a crash.
            return Spot(0, 0, 0, 0)

    def _error(self, loc: Loc, message: str) -> None:
        spot = self._locate(loc)
        self._error_at(spot.line, spot.column, display_path(spot.parts), message)

    def _error_at(self, line: int, column: int, path: str, message: str) -> None:
        self.errors.append(LocatedError(self.file, line + 1, column + 1, path, message))

    def _unread(self, loc: Loc, message: str) -> None:
        spot = self._locate(loc)
        path = display_path(spot.parts)
        self.errors.append(
            LocatedError(self.file, spot.line + 1, spot.column + 1, path, message, True)
        )


def locate(root: Any, loc: Loc) -> Spot:
    """0-based position of the deepest node of `loc` present in the round-trip tree."""
    node: Any = root
    spot = Spot(node.lc.line, node.lc.col, node.lc.line, node.lc.col)
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


# Per mapping node (by id), its entries by key text: a file of 300,000 unknown keys is
# placed in one pass over each mapping, not one pass per error.
KeyIndex = dict[int, dict[Any, list[tuple[Node, Node]]]]


def _entries(node: MappingNode, index: KeyIndex) -> dict[Any, list[tuple[Node, Node]]]:
    entries = index.get(id(node))
    if entries is None:
        entries = index[id(node)] = {}
        for key, value in node.value:
            if isinstance(key, ScalarNode):
                entries.setdefault(key.value, []).append((key, value))
    return entries


def locate_node(root: Node, loc: Loc, index: KeyIndex | None = None) -> Spot:
    """`locate` on the composed tree of the fast parse (a file with no merge key and no
    repeated key), which places pydantic's errors without a second, round-trip parse."""
    node = root
    spot = Spot(*(2 * (node.start_mark.line, node.start_mark.column)))
    parts: list[str | int] = []
    previous: str | int | None = None
    for step, comp in enumerate(loc):
        if isinstance(node, MappingNode):
            entries = _entries(node, {} if index is None else index)
            found = entries.get(comp, []) if isinstance(comp, str) else []
            if not found and previous == "deployment":
                written = [v.value for k, v in entries.get("type", [])]
                if written == [comp]:
                    continue  # pydantic's discriminated-union tag: not written in the file
            previous = comp
            if len(found) > 1:
                raise Imprecise
            if not found or not isinstance(comp, str):
                spot.rest = loc[step:]  # a missing key: placed at its mapping, as `locate` does
                break
            key, node = found[0]
            spot.key_line, spot.key_column = key.start_mark.line, key.start_mark.column
        elif isinstance(node, SequenceNode):
            if not isinstance(comp, int) or not 0 <= comp < len(node.value):
                spot.rest = loc[step:]
                break
            previous = comp
            node = node.value[comp]
            spot.key_line, spot.key_column = node.start_mark.line, node.start_mark.column
        else:
            spot.rest = loc[step:]
            break
        spot.line, spot.column = node.start_mark.line, node.start_mark.column
        parts.append(comp)
    spot.parts = tuple(parts)
    return spot


def names_a_key(kind: str, rest: Loc) -> bool:
    """Whether pydantic's error is about a key YAML read as a number, a boolean or null
    (not a value of the wrong type): in a model, or in a map such as `default_params`."""
    return kind == "invalid_key" or rest[-1:] == ("[key]",)


def error_message(detail: ErrorDetails, parts: Loc, rest: Loc, data: Any, *, secret: bool) -> str:
    kind = detail["type"]
    ctx = detail.get("ctx") or {}
    value = detail["input"]
    types = ", ".join(DEPLOYMENT_TYPES)
    if kind == "missing":
        return f"missing required key {rest[0]!r}" if rest else "missing required value"
    if kind == "extra_forbidden":
        return unknown_key(parts, data)
    if kind == "union_tag_not_found":
        if rest:
            return f"missing required key 'type' (one of {types})"
        tag = value.get("type") if isinstance(value, dict) else None
        return f"must be one of {types}" + got_type(tag)
    if kind == "union_tag_invalid":
        return f"unknown deployment type {ctx.get('tag')!r} (use one of {types})"
    if kind == "literal_secret":
        name = str(parts[-1]) if parts else "this attribute"
        return (
            f"{name} is write-only and must not be written in the file: use a "
            f"reference such as {{env: {name.upper().replace('.', '_')}}} or "
            "{file: path}"
        )
    if names_a_key(kind, rest):
        return "keys must be strings" + got(value)
    if rest:
        # An alternative of a union (default_params values) failed in every member.
        return "must be a string, a number or a boolean" + got_type(value)
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        op = {
            "greater_than_equal": ">=",
            "less_than_equal": "<=",
            "greater_than": ">",
            "less_than": "<",
        }[kind]
        bound = next(iter(ctx.values()))
        return f"must be {op} {bound}" + ("" if secret else got(value))
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s)"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')}" + ("" if secret else got(value))
    if kind == "model_attributes_type" or kind == "model_type":
        return "must be a mapping" + got_type(value)
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
    if _quoted(kind, value, ctx):
        return message + f" (got the string {value!r}: write it without quotes)"
    if kind == "bool_type" and isinstance(value, str) and value.lower() in YAML_11_BOOLEANS:
        # Booleans in YAML 1.1 (Ansible, Compose), text in the YAML 1.2 this file is read as.
        return message + f" (got {value!r}: write true or false)"
    return message + got(value)


YAML_11_BOOLEANS = frozenset({"yes", "no", "on", "off", "y", "n"})


# Strict pydantic error types, and the types a YAML scalar may have to be valid there.
STRICT_TYPES: dict[str, tuple[type, ...]] = {
    "int_type": (int,),
    "bool_type": (bool,),
    "float_type": (int, float),
}


def _quoted(kind: str, value: Any, ctx: Mapping[str, Any]) -> bool:
    """Whether `value` is text that would be valid here written without quotes."""
    if not isinstance(value, str):
        return False
    scalar = yaml_scalar(value)
    if kind == "literal_error":  # `version: '1'`
        return type(scalar) is int and str(scalar) == ctx.get("expected")
    return type(scalar) in STRICT_TYPES.get(kind, ())


def yaml_scalar(text: str) -> Any:
    """`text` read by YAML's scalar rules ("86400" an integer, "true" a boolean), or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return YAML(typ="safe", pure=True).load(text)
    except (YAMLError, ValueError, KeyError, TypeError, RecursionError):
        return None


def display_path(parts: Loc) -> str:
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


def known_keys(parts: Loc, data: Any) -> list[str]:
    inner = parts[:-1]
    if len(inner) == 0:
        return list(DesiredState.model_fields)
    if inner == ("safety",):
        return list(SafetySettings.model_fields)
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


SUGGESTION_CUTOFF = 0.6


def unknown_key(parts: Loc, data: Any) -> str:
    key = str(parts[-1]) if parts else ""
    message = f"unknown key {key!r}"
    known = known_keys(parts, data)
    if not any(_shares_enough(key, name) for name in known):
        return message  # difflib would find no match: spared for a file of 300,000 keys
    import difflib  # for a mistake only: a valid file never loads it

    close = difflib.get_close_matches(key, known, n=1, cutoff=SUGGESTION_CUTOFF)
    return f"{message} (did you mean {close[0]!r}?)" if close else message


def _shares_enough(key: str, name: str) -> bool:
    """difflib's `quick_ratio` (shared characters), an upper bound of its `ratio`, at least
    the cutoff: a name that fails it is never suggested."""
    shared = set(key).intersection(name)
    if not shared:
        return False
    common = sum(min(key.count(c), name.count(c)) for c in shared)
    return 2.0 * common >= SUGGESTION_CUTOFF * (len(key) + len(name))


def printable(text: str) -> str:
    """Escape control characters a key may hold, so one error stays one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def scalar_text(value: Any) -> str | None:
    """A number, a boolean or null as YAML spells it, since that is what the user wrote
    (None: not one of those)."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, int | float):
        return repr(value)
    return None


def got(value: Any) -> str:
    if isinstance(value, bool | int | float) or value is None:
        return f" (got {scalar_text(value)})"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f" (got {shown!r})"
    return got_type(value)


def got_type(value: Any) -> str:
    for kind, name in TYPE_NAMES.items():
        if type(value) is kind:
            return f" (got {name})"
    return ""
