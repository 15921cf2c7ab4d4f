"""The canonical layout of a desired-state file: key order and YAML style.

`export` writes it and `fmt` rewrites files into it, so an exported file is already
formatted. Files are read and written with ruamel.yaml's round trip, which keeps comments
with the keys they follow; reordering moves whole keys, so no comment is lost.

Order: `version` then `sources` at the top; per source `name`, `id`, `enabled`,
`ignore_changes`, `deployment`; per deployment `type`, the hostnames, the attributes of
that type in the models' order (origin, credentials...), then the attributes every type
has. Keys the models do not know keep their relative order after the known ones.
"""

from __future__ import annotations

import codecs
import io
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.emitter import RoundTripEmitter
from ruamel.yaml.error import CommentMark
from ruamel.yaml.scalarstring import FoldedScalarString
from ruamel.yaml.tokens import CommentToken

from reconciler import deferred
from reconciler.specs import DEPLOYMENT_MODELS, HOSTNAME_FIELDS, DeploymentBase, api_name
from reconciler.untrusted import json_document, yaml_document

TOP_LEVEL_ORDER = ("version", "owner", "safety", "allow_unknown_params", "sources")
SOURCE_ORDER = ("name", "id", "enabled", "mode", "ignore_changes", "deployment")
# Printed, a file may land in a CI log, where a line starting with `::` is a workflow
# command: no value is ever folded onto a line of its own.
_WIDTH = 2**31 - 1


def _quoted_if_command(representer: Any, text: str) -> Any:
    # A key or value from the API that starts with `::` would start a line: quote it. One
    # holding a bidi control or a line separator, which YAML deems printable and writes
    # raw, is double-quoted, where `_InertEmitter` escapes them. ruamel writes a text that
    # starts with `?` or `:` plain inside `{...}` and `[...]`, where its reader takes them
    # for the key and value indicators (`{txt: : x}` is invalid, `{?q: v}` means `q`).
    style = "'" if text.startswith(("::", "?", ":")) else None
    if json_document(text) != text:
        style = '"'
    return representer.represent_scalar("tag:yaml.org,2002:str", text, style=style)


def _literal_if_tab_led(representer: Any, text: FoldedScalarString) -> Any:
    # ruamel folds a line that starts with a tab as an ordinary one, while its reader keeps
    # the line breaks around it (a "more-indented" line): written folded, the text would
    # gain line breaks. The literal style keeps every line break as it is.
    if text.startswith("\t") or "\n\t" in text:
        return representer.represent_literal_scalarstring(text)
    return representer.represent_folded_scalarstring(text)


class _Escaping:
    """A text stream that writes what a terminal would act on as `\\uXXXX` escapes."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, data: Any) -> None:
        self.stream.write(yaml_document(data) if isinstance(data, str) else data)


class _InertEmitter(RoundTripEmitter):
    """The round-trip emitter, with double-quoted scalars inert on a terminal.

    YAML writes the bidi controls and the line separators raw even in double quotes, so a
    printed file (`export` to stdout) would reorder what a reviewer reads; there `\\uXXXX`
    means the same character (`reconciler.untrusted.yaml_document` escapes them).
    """

    def write_double_quoted(self, text: Any, split: Any = True) -> None:
        stream = self.stream
        self.stream = _Escaping(stream)
        try:
            super().write_double_quoted(text, split)
        finally:
            self.stream = stream


def canonical_yaml() -> YAML:
    """A round-trip YAML instance writing the canonical style (2-space maps, `  - ` lists)."""
    yaml = YAML()
    yaml.Emitter = _InertEmitter
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = _WIDTH
    yaml.representer.add_representer(str, _quoted_if_command)
    yaml.representer.add_representer(FoldedScalarString, _literal_if_tab_led)
    return yaml


def deployment_order(kind: object) -> tuple[str, ...]:
    """API names of a deployment type's attributes, in canonical order."""
    model = DEPLOYMENT_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        return ("type", *HOSTNAME_FIELDS)
    common = set(DeploymentBase.model_fields)
    own = [api_name(model, name) for name in model.model_fields if name not in common]
    shared = [api_name(model, name) for name in DeploymentBase.model_fields]
    ordered = ["type", *HOSTNAME_FIELDS, *own, *shared]
    return tuple(dict.fromkeys(ordered))


def reorder(
    mapping: CommentedMap, order: Sequence[str], parent: tuple[CommentedMap, str] | None = None
) -> bool:
    """Put `mapping`'s keys in `order` (unknown ones last, as they were); True if moved.

    ruamel attaches the comment lines above a key to the key before it; they are taken
    off and put back above the same key after the move, and the lines after the last key
    (the next list item's comment, often) stay after the last key.
    """
    rank = {key: position for position, key in enumerate(order)}
    keys = list(mapping)
    wanted = sorted(keys, key=lambda key: (rank.get(key, len(order)), keys.index(key)))
    if wanted == keys:
        return False
    above: dict[Any, str] = {keys[0]: _take_first_lines(mapping, parent)}
    for key, following in zip(keys, [*keys[1:], None], strict=True):
        above[following] = _take_lines_after(mapping, key)
    for key in wanted:
        mapping.move_to_end(key)
    # ruamel keeps comment lines between a nested value's end and the next key with that
    # key, at the nested value's indentation: moved with the key, they take its indentation.
    column = mapping.lc.col
    for key in keys:
        entry = mapping.ca.items.get(key)
        for token in (entry[1] or []) if entry and column is not None else []:
            if token is not None:
                token.start_mark = CommentMark(column)
    _put_first_lines(mapping, parent, wanted[0], above.pop(wanted[0], ""))
    for key, following in zip(wanted, [*wanted[1:], None], strict=True):
        _add_lines_after(mapping, key, above.get(following, ""))
    return True


def _take_first_lines(mapping: CommentedMap, parent: tuple[CommentedMap, str] | None) -> str:
    """Remove and return the comment lines above a mapping's first key.

    ruamel keeps them with the parent's key: after its end-of-line comment, or on their
    own when it has none. Without a parent (a list item, the document) they stay on top.
    """
    if parent is None:
        return ""
    container, key = parent
    entry = container.ca.items.get(key)
    if not entry:
        return ""
    if entry[3]:
        lines = "".join(" " * t.start_mark.column + t.value for t in entry[3] if t is not None)
        entry[3] = None
        if mapping.ca.comment:
            mapping.ca.comment[1] = None
        return lines
    if entry[2] is None:
        return ""
    lines, emptied = _split_off_lines(entry, 2)
    if emptied and mapping.ca.comment:
        mapping.ca.comment[0] = None
    return lines


def _put_first_lines(
    mapping: CommentedMap, parent: tuple[CommentedMap, str] | None, first: Any, lines: str
) -> None:
    """Put comment lines above a mapping's first key (below it when there is no parent)."""
    if not lines:
        return
    if parent is None:
        _add_lines_after(mapping, first, lines)
        return
    container, key = parent
    entry = container.ca.items.setdefault(key, [None] * 4)
    if entry[2] is None:
        entry[2] = CommentToken("\n" + lines, CommentMark(0), None)
    else:
        entry[2].value += lines


def _comment_holder(container: Any, key: Any) -> tuple[Any, Any, int]:
    """Where ruamel keeps the comment that follows `container[key]` and its whole value."""
    value = container[key]
    while (
        isinstance(value, (CommentedMap, CommentedSeq)) and len(value) and not value.fa.flow_style()
    ):
        container = value
        key = next(reversed(value)) if isinstance(value, CommentedMap) else len(value) - 1
        value = container[key]
    return container, key, 2 if isinstance(container, CommentedMap) else 0


def _take_lines_after(container: Any, key: Any) -> str:
    """Remove and return the comment lines after `key`'s value, keeping its end-of-line one."""
    holder, slot_key, slot = _comment_holder(container, key)
    entry = holder.ca.items.get(slot_key)
    if not entry or entry[slot] is None:
        return ""
    return _split_off_lines(entry, slot)[0]


def _split_off_lines(entry: list[Any], slot: int) -> tuple[str, bool]:
    """The lines taken off the comment in `entry[slot]` (its end-of-line part stays), and
    whether the slot was left empty."""
    same_line, _, lines = entry[slot].value.partition("\n")
    if same_line.strip():
        entry[slot].value = same_line + "\n"
        return str(lines), False
    entry[slot] = None
    return str(lines), True


def _add_lines_after(container: Any, key: Any, lines: str) -> None:
    if not lines:
        return
    holder, slot_key, slot = _comment_holder(container, key)
    entry = holder.ca.items.setdefault(slot_key, [None] * (4 if slot == 2 else 2))
    if entry[slot] is None:
        entry[slot] = CommentToken("\n" + lines, CommentMark(0), None)
    else:
        entry[slot].value += lines


def canonicalize(document: Any) -> None:
    """Reorder a round-trip-loaded desired-state document in place."""
    if not isinstance(document, CommentedMap):
        return
    reorder(document, TOP_LEVEL_ORDER)
    sources = document.get("sources")
    if not isinstance(sources, CommentedSeq):
        return
    for source in sources:
        if not isinstance(source, CommentedMap):
            continue
        reorder(source, SOURCE_ORDER)
        deployment = source.get("deployment")
        if isinstance(deployment, CommentedMap):
            reorder(deployment, deployment_order(deployment.get("type")), (source, "deployment"))


def dumped(document: Any, yaml: YAML | None = None) -> str:
    """`document` as YAML text."""
    buffer = io.StringIO()
    (yaml or canonical_yaml()).dump(document, buffer)
    return buffer.getvalue()


LOST_COMMENT = (
    "fmt cannot keep this comment where it is (between a key and its value, or inside a "
    "`{...}` or `[...]` value): move it onto a line of its own above the key, then run fmt "
    "again; the file was left as it is"
)


def formatted(text: str, file: str = "<text>") -> str:
    """`text` (a desired-state file already known to be valid) in the canonical layout.

    Raises `LoadError` at a comment the layout would lose: ruamel's round trip drops some
    (one between a key and its `{...}` value on the next line), and `fmt` keeps them all.
    """
    start, text = document_start(text)
    shift = start.count("\n")  # a comment's line is the whole file's, not the rest's
    yaml = canonical_yaml()
    document = yaml.load(text)
    canonicalize(document)
    result = dumped(document, yaml)
    if "#" not in text:
        return start + result  # no comment to lose: the check's scans cost a third of it
    places = _comment_places(text)
    kept_places = _comment_places(result)
    lost = Counter(line for line, _, _ in places)
    lost.subtract(line for line, _, _ in kept_places)
    if any(count > 0 for count in lost.values()):
        from reconciler.loader import LoadError, LocatedError

        # Which of several comments of the same words was lost: the one whose line (or
        # the line below it) the result no longer shows beside those words; the others
        # moved with their key, or the error would send the user to a comment fmt keeps.
        result_lines, text_lines = result.split("\n"), text.split("\n")
        kept = Counter(_beside(result_lines, place) for place in kept_places)
        blamed = []
        for place in sorted(places, key=lambda place: kept[_beside(text_lines, place)] > 0):
            if lost[place[0]] > 0:
                lost[place[0]] -= 1
                blamed.append(place)
        raise LoadError(
            [
                LocatedError(file, shift + number, column, "", LOST_COMMENT)
                for _, number, column in sorted(blamed, key=lambda place: place[1:])
            ]
        )
    return start + result


# The explicit start of the document (`---`, a comment after it allowed) and the blank,
# comment and `%YAML 1.2` lines above it: ruamel drops the comments (silently) and the
# `---`, so they are kept as written and only what follows is formatted, as YAML 1.2. Not
# after another directive (`%YAML 1.1`), by which ruamel reads and writes the rest.
_DOCUMENT_START = deferred.pattern(
    __name__,
    "_DOCUMENT_START",
    r"\A(?:[ \t]*(?:#[^\n]*)?\n|%YAML[ \t]+1\.2(?:[ \t]+#[^\n]*)?[ \t]*\n)*"
    r"---(?:[ \t]+#[^\n]*)?[ \t]*\n",
)


def document_start(text: str) -> tuple[str, str]:
    """The lines of `text` up to its `---` line, and the rest; ("", text) without one."""
    found = _DOCUMENT_START.match(text)
    return (found.group(), text[found.end() :]) if found else ("", text)


def _beside(lines: list[str], place: tuple[str, int, int]) -> tuple[str, str]:
    """A comment's words with what it annotates: the text before it on its line, else the
    next line that is neither blank nor a comment."""
    comment, number, column = place
    # The scanner's line breaks are YAML's; an odd one it counts and `\n` does not only
    # blurs this choice, never the error itself.
    before = lines[number - 1][: column - 1].strip() if number <= len(lines) else ""
    if before:
        return comment, before
    below = (line.strip() for line in lines[number:])
    return comment, next((line for line in below if line and not line.startswith("#")), "")


def formatted_file(data: bytes, file: str = "<text>") -> bytes:
    """A desired-state file's bytes in the canonical layout, in the file's own line ends
    and with its byte order mark if it has one: only the layout changes."""
    return in_style_of(data, formatted(decoded(data).removeprefix("\ufeff"), file)).encode()


def decoded(data: bytes) -> str:
    """A file's bytes as `Path.read_text` gives them: UTF-8, line ends made `\n`."""
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8").read()


def in_style_of(data: bytes, text: str) -> str:
    """`text` (a rewrite of the file `data`) in the file's line ends (its first line's) and
    with its byte order mark if it has one: a file saved on Windows rewritten in LF would
    show every line changed in a pull request."""
    text = text.removeprefix("\ufeff")
    first_end = data.find(b"\n")
    if first_end > 0 and data[first_end - 1] == ord("\r"):
        text = text.replace("\r\n", "\n").replace("\n", "\r\n")
    return ("\ufeff" if data.startswith(codecs.BOM_UTF8) else "") + text


def _comment_places(text: str) -> list[tuple[str, int, int]]:
    """Each comment line of a YAML text as ruamel's scanner reads it, with its 1-based place."""
    found: list[tuple[str, int, int]] = []

    def collect(item: Any) -> None:
        if isinstance(item, CommentToken):
            line, column = item.start_mark.line, item.start_mark.column
            for offset, piece in enumerate(item.value.split("\n")):
                if piece.strip():
                    start = column if offset == 0 else len(piece) - len(piece.lstrip())
                    found.append((piece.strip(), line + offset + 1, start + 1))
        elif isinstance(item, list):
            for each in item:
                collect(each)

    for token in YAML().scan(text):
        collect(token.comment)
    return found
