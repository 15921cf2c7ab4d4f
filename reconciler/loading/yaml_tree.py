"""The file as YAML: the fast parse of a valid file (C parser, one pass), the checks of
the composed tree, and the plain copy with the alias budget.
"""

from __future__ import annotations

import datetime
import math
import warnings
from collections.abc import Iterator, Set
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.tag import Tag

from reconciler import deferred
from reconciler.loading.located import Imprecise, Loc
from reconciler.untrusted import is_text

_TIMESTAMP = "tag:yaml.org,2002:timestamp"
# What a `%YAML` directive names (only YAML 1.2, the version the file is read as anyway,
# keeps the C parser): any line starting so, whether it is a directive or not.
_VERSION_DIRECTIVE = deferred.pattern(__name__, "_VERSION_DIRECTIVE", r"(?m)^%YAML[ \t]*(\S*)")

# Numbers beyond this cannot round-trip through JSON readers (JavaScript's safe integers).
MAX_SAFE_NUMBER = 2**53 - 1


class Recursive(Exception):
    pass


class TooLarge(Exception):
    def __init__(self, loc: Loc) -> None:
        super().__init__("over the alias budget")
        self.loc = loc


def fast_compose(text: str) -> Node | None:
    """The composed tree by the C parser (when ruamel.yaml.clib is installed), its tags
    resolved by YAML 1.2 as the round-trip parser resolves them; a `%YAML` directive of
    another version is left to that parser."""
    if "%YAML" in text and any(v != "1.2" for v in _VERSION_DIRECTIVE.findall(text)):
        raise Imprecise
    yaml = YAML(typ="safe")
    yaml.Resolver = OneVersionResolver
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        node: Node | None = yaml.compose(text)
        return node


def plain_data(node: Node) -> Any:
    """The plain values of a tree `fast_compose` gave (a file without merge keys)."""
    yaml = YAML(typ="safe")
    yaml.Resolver = OneVersionResolver
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Construction(yaml).value(node)


class OneVersionResolver(VersionedResolver):
    """YAML 1.2's implicit tags as ruamel resolves them, with its rules looked up once
    per first character instead of once per scalar (a file with a `%YAML` directive
    takes the precise path)."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is not ScalarNode or not implicit[0] or self.yaml_path_resolvers:
            return super().resolve(kind, value, implicit)
        # Ruamel compiles each rule's pattern at its first use (about 1 ms for the five):
        # two shortcuts, each giving the rules' own answer (a test holds them to it),
        # spare the commonest scalars the patterns they cannot match. ASCII digits alone
        # are an int (no float without `.` or an exponent, no timestamp without `-`).
        if value.isdigit() and value.isascii():
            return self._tags.setdefault(INT_TAG, Tag(suffix=INT_TAG))
        # Every timestamp starts with four digits and `-`.
        dated = value[4:5] == "-"
        rules = self._rules.get((value[:1], dated))
        if rules is None:
            rules = self._rules[(value[:1], dated)] = self._rules_for(value[:1], dated)
        for tag, regexp in rules:
            if regexp.match(value):
                return self._tags.setdefault(tag, Tag(suffix=tag))
        return self.DEFAULT_SCALAR_TAG

    def _rules_for(self, first: str, dated: bool) -> list[tuple[str, Any]]:
        table = self.versioned_resolver
        rules = [*table.get(first, []), *table.get(None, [])]
        return rules if dated else [rule for rule in rules if rule[0] != _TIMESTAMP]

    @property
    def _rules(self) -> dict[tuple[str, bool], list[tuple[str, Any]]]:
        rules: dict[tuple[str, bool], list[tuple[str, Any]]]
        rules = self.__dict__.setdefault("_by_first", {})
        return rules

    @property
    def _tags(self) -> dict[str, Tag]:
        tags: dict[str, Tag] = self.__dict__.setdefault("_tag_of", {})
        return tags


class Construction:
    """Plain values from the composed tree: untagged mappings, lists and strings here,
    anything else by ruamel's safe constructor; a repeated key is left to the precise
    path, which reports it."""

    def __init__(self, yaml: YAML) -> None:
        self.constructor = yaml.constructor
        resolver = yaml.resolver
        self.map_tag = resolver.DEFAULT_MAPPING_TAG
        self.seq_tag = resolver.DEFAULT_SEQUENCE_TAG
        self.str_tag = resolver.DEFAULT_SCALAR_TAG
        self.built: dict[int, Any] = {}  # an alias gives the object built for its anchor

    def value(self, node: Node) -> Any:
        tag = node.ctag
        if tag is self.str_tag:
            return node.value
        if id(node) in self.built:
            return self.built[id(node)]
        if tag is self.map_tag:
            mapping: dict[Any, Any] = {}
            self.built[id(node)] = mapping
            for key_node, value_node in node.value:
                key = self.value(key_node)
                if key in mapping:
                    raise Imprecise
                mapping[key] = self.value(value_node)
            return mapping
        if tag is self.seq_tag:
            items: list[Any] = []
            self.built[id(node)] = items
            items.extend(self.value(item) for item in node.value)
            return items
        built = self.constructor.construct_object(node, deep=True)
        self.built[id(node)] = built
        return built


PLAIN_SCALARS = (str, int, float, bool, type(None))


def plain_and_unshared(data: Any) -> bool:
    """Whether `data` is a tree of plain values with no value shared through an alias
    (the references step edits it in place) and no number JSON cannot carry."""
    seen: set[int] = set()
    pending = [data]
    while pending:
        value = pending.pop()
        kind = type(value)
        if kind is dict or kind is list:
            if id(value) in seen:
                return False
            seen.add(id(value))
            pending.extend(value.values() if kind is dict else value)
            if kind is dict and not all(type(k) is str for k in value):
                return False
        elif kind not in PLAIN_SCALARS or (
            (kind is int or kind is float) and number_problem(value)
        ):
            return False
    return True


class Expansion:
    """Copies the YAML tree into plain Python values for pydantic (ruamel's scalar
    subclasses and anchored booleans, which are ints, would otherwise validate oddly),
    counting values so aliases cannot expand without bound."""

    def __init__(self, budget: int) -> None:
        self.remaining = budget
        self.copied: set[int] = set()  # containers copied once: a second copy is an alias's
        # Where a value JSON cannot carry was found (a number outside its safe range, a
        # timestamp, binary data, a lone surrogate), and why: reported, not kept.
        self.not_json: list[tuple[Loc, str]] = []

    def plain(
        self,
        value: Any,
        stack: tuple[int, ...],
        loc: Loc = (),
        again: bool = False,
        key: bool = False,
    ) -> Any:
        """A plain copy of `value`; `again` when it is a copy made for an alias, whose
        values count against the budget (values written out never do); `key` when it is a
        mapping's key (one that is not text is pydantic's to report, at the key)."""
        if again:
            self.remaining -= 1
            if self.remaining < 0:
                raise TooLarge(loc)
        if isinstance(value, dict | list):
            if id(value) in stack:
                raise Recursive
            again = again or id(value) in self.copied
            self.copied.add(id(value))
            inner = (*stack, id(value))
            if isinstance(value, dict):
                # A merge key (`<<: *defaults`) adds the keys a mapping does not own
                # (ruamel's `_ok`): copies, counted like an alias's.
                own = getattr(value, "_ok", None)
                copied = {}
                for k, v in value.items():
                    merged = again or (own is not None and k not in own)
                    copied[self.plain(k, inner, loc, merged, key=True)] = self.plain(
                        v, inner, (*loc, k), merged
                    )
                return copied
            return [self.plain(item, inner, (*loc, i), again) for i, item in enumerate(value)]
        if type(value).__name__ == "ScalarBoolean":
            return bool(value)
        for plain in (bool, int, float, str):
            if isinstance(value, plain):
                value = plain(value)
                break
        if isinstance(value, int | float) and not isinstance(value, bool):
            problem = number_problem(value)
            if problem:
                self.not_json.append((loc, problem))
                return None
        elif type(value) is str and not is_text(value):
            self.not_json.append((loc, surrogate_problem(value)))
            return None
        elif not key and not isinstance(value, PLAIN_SCALARS):
            # Else pydantic reads binary data as text (`!!binary aHR0cHM6...` as a URL the
            # file does not show) and says "must be a string" of a date the user meant as one.
            problem = not_json_problem(value)
            if problem:
                self.not_json.append((loc, problem))
                return None
        return value


# YAML's `"\ud800"` escape: half of a UTF-16 pair, which no request or output can encode.
_SURROGATE = "must be Unicode text (it holds a lone surrogate escape such as \\ud800)"


def surrogate_problem(text: str) -> str:
    """Why `text`, which holds surrogates, cannot be used: lone ones, or JSON's pairs (a
    JSON encoder's `\\ud83d\\ude00`), which YAML reads as two halves of a character."""
    try:  # strict UTF-16 decodes paired halves only
        joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError:
        return _SURROGATE
    code = ord(next(c for c in joined if ord(c) > 0xFFFF))
    high, low = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
    return (
        f"must be Unicode text: YAML reads JSON's surrogate pair \\u{high:04x}\\u{low:04x} as "
        f"two halves of a character (write the character itself, or \\U{code:08x})"
    )


def not_json_problem(value: Any) -> str | None:
    """Why a value YAML built is not one of JSON's, and what to write instead (None: a
    kind pydantic's own message words well enough, such as a custom tag's)."""
    if isinstance(value, bytes):
        return "must not be binary data (!!binary): write the text itself"
    if isinstance(value, datetime.date):
        return "YAML reads this as a timestamp, which JSON has not (quote it if it is text)"
    if isinstance(value, Set):
        return "must be a list or a mapping, not a set (!!set)"
    return None


def number_problem(value: float) -> str | None:
    """Why a YAML number cannot be used (JSON has no infinity, and readers lose precision
    beyond 2**53), without printing it: it may have thousands of digits."""
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number (.inf and .nan are not numbers in JSON)"
    if abs(value) > MAX_SAFE_NUMBER:
        return f"must be between -{MAX_SAFE_NUMBER} and {MAX_SAFE_NUMBER} (JSON's safe range)"
    return None


INT_TAG = "tag:yaml.org,2002:int"
# Far more than any safe integer needs (with `_` separators), far less than Python's limit.
MAX_INTEGER_TEXT = 100


def scalar_nodes(node: Node) -> Iterator[tuple[Loc, ScalarNode]]:
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


def mapping_nodes(node: Node) -> Iterator[MappingNode]:
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
