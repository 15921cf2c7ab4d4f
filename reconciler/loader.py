"""Load desired-state files: YAML with positions, references resolved, errors located.

Every problem found in any file becomes a `LocatedError` (`FILE:LINE:COL: path: message`)
and all of them are raised together in one `LoadError`, so a user fixes a file in one
round. Secret values, and values read through `{env:}`/`{file:}` references
(`reconciler.references`), never appear in a message: errors about them name the
reference, and YAML errors that could quote a scalar are worded without the input.

A file is parsed once, by the C parser, and checked and placed on its composed tree; a
file with a YAML-level problem (a repeated key, a tag, an alias) is checked again on the
round-trip tree built from that composed tree, which words and places every error. Only
text the C parser refuses, or a `%YAML` directive, is parsed again by the pure-Python
parser, for its error messages and version rules (but not refused text it would take
minutes over: see MAX_PRECISE_NESTING and MAX_PRECISE_BYTES). The steps live in
`reconciler.loading`: the YAML (`yaml_tree`), positions and messages (`located`),
references (`referenced`) and the checks across sources and files (`cross_source`).
"""

from __future__ import annotations

import codecs
import contextlib
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.composer import ComposerError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent
from ruamel.yaml.nodes import Node, ScalarNode
from ruamel.yaml.parser import ParserError
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scanner import ScannerError

from reconciler import deferred, references
from reconciler.errors import ReconcilerError
from reconciler.loading import located, yaml_tree
from reconciler.loading.cross_source import Claims, CrossSourceChecks
from reconciler.loading.located import (
    CHECKED_ON_RAW_DATA,
    Loc,
    display_path,
    error_message,
    names_a_key,
    scalar_text,
)
from reconciler.loading.located import (
    LocatedError as LocatedError,  # re-exported: the loader's results
)
from reconciler.loading.located import (
    Location as Location,
)
from reconciler.loading.referenced import ReferenceSteps
from reconciler.loading.yaml_tree import (
    INT_TAG,
    MAX_INTEGER_TEXT,
    MAX_SAFE_NUMBER,
    Expansion,
    mapping_nodes,
    number_problem,
    plain_and_unshared,
    scalar_nodes,
)
from reconciler.specs import (
    DesiredState,
    SourceSpec,
    all_secret_fields,
    validation_context,
)

# YAML aliases let a few hundred bytes expand to billions of values ("billion laughs").
# Past this budget of values that aliases add (values written out never count), the file
# is refused instead of exhausting memory while it is copied for validation.
MAX_VALUES = 200_000

# Read limit, so a path such as /dev/zero fails instead of hanging: a desired-state file
# of thousands of sources is a few MiB.
MAX_FILE_BYTES = 16 * 1024 * 1024
# Where a `%YAML` directive's version is, for an error ruamel raises without a place.
_YAML_DIRECTIVE = re.compile(r"^%YAML[ \t]+([^ \t\r\n#]{1,20})", re.MULTILINE)

NO_RESOLVE_HINT = "(validate --no-resolve checks the files without reading references)"
PROVIDE_REFERENCES_HINT = "(set each variable and create each file these references name)"

_LINE_BREAKS = deferred.pattern(__name__, "_LINE_BREAKS", r"[\r\n]")
_FLOW_OPENER = deferred.pattern(__name__, "_FLOW_OPENER", r"[\[{]")
_FLOW_BRACKET = deferred.pattern(__name__, "_FLOW_BRACKET", r"[\[\]{}]")

# ruamel's C composer recurses in C: collections nested about 30,000 deep overflow an
# 8 MiB stack and kill the process without a word (a few hundred KB of `[`). Deeper
# than this (a margin for smaller stacks: threads, containers) is refused before it
# composes; up to it, Python's recursion limit (about 1,000, deeper than any desired
# state) stops the rest.
MAX_C_NESTING = 10_000
# The pure-Python parser, which words and places the errors of a file the C parser
# refuses, reads each token in time proportional to the flow levels open around it (300
# kB of items 400 levels deep took 12 s; the 16 MiB a file may hold, many minutes). A
# refused file nested deeper than this, far deeper than any desired state, is refused as
# too deep where it gets so, without that parse.
MAX_PRECISE_NESTING = 32
# It also costs a thousand times the C parser's time and about 200 bytes of memory per
# byte of text (1.5 MB of `[a, a, ...` took 23 s and 300 MB): past this, a refused file
# gets the C parser's error, as well placed and a little less worded.
MAX_PRECISE_BYTES = 1024 * 1024
TOO_DEEP = "recursive or too deeply nested YAML is not supported"

# --------------------------------------------------------------------------- results


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
    read_already: Mapping[str, bytes] | None = None,
) -> LoadedState:
    """Load, resolve and validate desired-state files; raise `LoadError` with all errors.

    With `secrets_optional`, a secret whose variable or file is missing stays unresolved
    instead of being an error: a plan made without access to the secrets (a pull request
    from a fork) still shows everything else, and says "cannot compare" for those.
    `read_already` holds the bytes of paths read before (a pipe cannot be read twice).
    """
    env = os.environ if environ is None else environ
    errors: list[LocatedError] = []
    sources: list[SourceSpec] = []
    locations: list[Location] = []
    unresolved: list[Location] = []
    claims = Claims()
    # Top-level settings (`owner`, `safety`): files planned together state the same ones.
    settings: dict[str, tuple[Any, str]] = {}
    for path in _distinct(paths):
        doc = _DesiredFile(
            str(path), resolve=resolve, environ=env, secrets_optional=secrets_optional
        )
        doc.check(claims, (read_already or {}).get(str(path)))
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


def nesting_bound(text: str) -> int:
    """How deep collections may nest in `text` at most, found without parsing it (linear).

    Each block level starts at least one column right of its parent's, but for a sequence
    in a mapping, so block levels are at most twice the longest line. Each flow level
    needs a `[` or `{`: every one counts, except on a line without quote or `#` whose
    brackets balance from its first (`[a, b]`, `{q: 75}`), which cannot end deeper than
    it starts. Any other `]`, `}` may sit in a string, a comment or a block scalar, so
    nothing is taken off for it.
    """
    lines = _LINE_BREAKS.split(text) if "\r" in text else text.split("\n")
    block = 2 * (max(map(len, lines), default=0) + 1)
    every_opener = text.count("[") + text.count("{") + block
    if every_opener <= MAX_C_NESTING:
        return every_opener  # the common file: no need to look closer
    flow = widest = 0
    end = 0
    for opener in _FLOW_OPENER.finditer(text):
        if opener.start() < end:
            continue  # on a line already counted
        at = opener.start()
        start = text.rfind("\n", 0, at) + 1
        start = text.rfind("\r", start, at) + 1 or start
        following = _LINE_BREAKS.search(text, at)
        end = following.start() if following else len(text)
        line = text[start:end]
        openers = line.count("[") + line.count("{")
        widest = max(widest, openers)
        if not _balanced_and_plain(line):
            flow += openers
    return block + flow + widest


def _too_deep(text: str, bound: int) -> tuple[tuple[int, int] | None, Exception | None]:
    """Where collections nest deeper than `bound` (line, column from 0), if they do before
    any error of the text; else the C parser's error on the text, if it has one.

    The C parser's events come without recursion: only its composer recurses.
    """
    depth = 0
    try:
        for event in YAML(typ="safe").parse(text):
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > bound:
                    return (event.start_mark.line, event.start_mark.column), None
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    except (YAMLError, ValueError, OverflowError) as error:
        return None, error  # invalid before it got too deep: the parsers that follow say where
    return None, None


def _yaml_directive(text: str) -> tuple[int, str | None]:
    """The line of the file's `%YAML` directive and the version it names (0, None: none)."""
    directive = _YAML_DIRECTIVE.search(text)
    if directive is None:
        return 0, None
    return text.count("\n", 0, directive.start()), directive.group(1)


def _starts_like_a_plan(text: str) -> bool:
    """Whether `text` starts as a saved plan document does (`reconciler.plan.PLAN_START`)."""
    start = text[:256]
    if "{" not in start:
        return False  # the common file: the plan module's import is not paid for it
    from reconciler.plan import PLAN_START

    return PLAN_START.match(start.encode("utf-8", "surrogatepass")) is not None


class _LargeUnderAnotherVersion(Exception):
    """Valid text over MAX_PRECISE_BYTES under a `%YAML` version only the pure-Python
    parser follows."""


def _balanced_and_plain(line: str) -> bool:
    if '"' in line or "'" in line or "#" in line:
        return False
    depth = 0
    for bracket in _FLOW_BRACKET.findall(line):
        depth += 1 if bracket in "[{" else -1
        if depth < 0:
            return False
    return depth == 0


@contextlib.contextmanager
def _referents_by_identity() -> Iterator[None]:
    """ruamel's maps merged by `<<` with identity checks while the loader builds its tree.

    ruamel records each map that merges an anchor on the anchor, skipping one already
    recorded by comparing contents: every merge compared its map with all before it,
    so 2,000 sources merging one anchor of 1,000 keys took hours. The loader never edits
    its tree, and a map is recorded once per merge anyway.
    """
    original = CommentedMap.add_referent

    def add_referent(anchor: CommentedMap, referent: CommentedMap) -> None:
        anchor._ref.append(referent)

    CommentedMap.add_referent = add_referent  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        CommentedMap.add_referent = original  # type: ignore[method-assign]


# --------------------------------------------------------------------------- one file


SAVED_PLAN_GIVEN = (
    "a saved plan (`plan --out`), not a desired-state file: apply it alone (`apply PLAN`)"
)


class _DesiredFile(ReferenceSteps, CrossSourceChecks):
    """One file: its YAML tree (for positions), its plain data (for pydantic), its errors."""

    # Why the C parser refused the file, if it did.
    _fast_error: Exception | None = None
    # And the error its events end on, for a file it refused (none: the text parses).
    _events_error: Exception | None = None

    # -- steps

    def check(self, claims: Claims, read_already: bytes | None = None) -> None:
        text = self._read(read_already)
        if text is None:
            return
        if _starts_like_a_plan(text):
            # Given with other files, or to validate: its fields are no keys of this format.
            self._error_at(0, 0, "", SAVED_PLAN_GIVEN)
            return
        deep = _too_deep(text, MAX_C_NESTING)[0] if nesting_bound(text) > MAX_C_NESTING else None
        composed = self._compose_fast(text) if deep is None else None
        if composed is None and deep is None:
            deep, self._events_error = _too_deep(text, MAX_PRECISE_NESTING)
        if deep is not None:
            self._error_at(*deep, "", TOO_DEEP)
            return
        if composed is not None and self._check_fast(text, composed[0], claims):
            return
        self._start()
        if not self._parse(text, composed):
            return
        if not isinstance(self.root, CommentedMap):
            self._error_at(0, 0, "", "the file must be a mapping with 'version: 1' and 'sources:'")
            return
        expansion = Expansion(MAX_VALUES)
        try:
            data = expansion.plain(self.root, ())
        except (yaml_tree.Recursive, RecursionError):
            self._error_at(0, 0, "", TOO_DEEP)
            return
        except yaml_tree.TooLarge as exc:
            # Where the count ran out is somewhere inside shared (aliased) nodes: point at
            # the entry being copied then (a top-level key, or a source) instead.
            entry = exc.loc[:2] if exc.loc[:1] == ("sources",) else exc.loc[:1]
            message = f"the file expands to more than {MAX_VALUES} values (YAML aliases?)"
            self._error(entry, message)
            return
        for loc, problem in expansion.not_json:
            self._error(loc, problem)
            self.silenced.add(self._locate(loc).parts)
        self._resolve_references(data)
        self._check_claims(data, claims)
        self._check_cross_field(data)
        # Validated even after earlier errors, so every mistake shows in one run.
        self._validate(data)
        if self.errors:
            self.sources, self.source_locations, self.unresolved = [], [], []

    def _compose_fast(self, text: str) -> tuple[Node | None] | None:
        """The C parser's composed tree (in a tuple: an empty file composes to None), or
        None when only the round-trip parser words and places what the text holds."""
        try:
            return (yaml_tree.fast_compose(text),)
        except Exception as exc:  # a YAML error, or a `%YAML` directive: the precise path says
            self._fast_error = exc
            return None

    def _check_fast(self, text: str, nodes: Node | None, claims: Claims) -> bool:
        """Check a file on the C parser's tree and no round-trip tree; False (claims as
        they were) when anything needs the precise path, which then runs.

        Errors about keys and values (pydantic's, references', checks across sources) are
        placed on the composed tree here; what YAML alone says (a repeated key, a tag, a
        number out of range) and merge keys and aliases are left to the precise path.
        """
        before = claims.copy()
        try:
            if nodes is None or "<<" in text:
                return False  # merged keys are placed by the round-trip constructor
            data = yaml_tree.plain_data(nodes)
            if not isinstance(data, dict) or not plain_and_unshared(data):
                return False
            self.nodes, self.attempting = nodes, True
            self._resolve_references(data)
            self._check_claims(data, claims)
            self._check_cross_field(data)
            self._validate(data)
        except Exception:  # anything unusual is found, worded and placed by the precise path
            pass
        else:
            if self.errors:
                self.sources, self.source_locations, self.unresolved = [], [], []
            return True
        finally:
            self.attempting = False
        claims.restore(before)
        return False

    def _read(self, read_already: bytes | None) -> str | None:
        escaped_from = references.linked_out_of(self.file)
        if escaped_from is not None:
            # A pull request may replace the file by a symlink to anything the runner can
            # read, and errors and plans quote what they read: refused before reading.
            self._error_at(
                0,
                0,
                "",
                f"cannot read the file: it is a symlink that leads outside the repository "
                f"({escaped_from})",
            )
            return None
        try:
            if read_already is None:
                # Not only regular files: `validate <(generate-sources)` reads a pipe.
                raw = references.read_limited(self.file, MAX_FILE_BYTES, regular_only=False)
            else:
                raw = references.within_limit(read_already, MAX_FILE_BYTES)
        except references.Unreadable as exc:
            self._error_at(0, 0, "", f"cannot read the file: {exc.reason}")
            return None
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            # utf-8-sig counts from after a byte order mark, which is no column of the text.
            before = raw.removeprefix(codecs.BOM_UTF8)[: exc.start]
            line = before.count(b"\n")
            column = len(before) - (before.rfind(b"\n") + 1)
            self._error_at(line, column, "", "the file is not valid UTF-8")
            return None

    def _parse(self, text: str, composed: tuple[Node | None] | None) -> bool:
        """Build the round-trip tree, from the C parser's composed tree when there is one:
        its marks are the pure-Python parser's, which costs four times as much."""
        yaml = YAML(typ="rt")
        try:
            # ruamel warns (e.g. a reused anchor) on input that is still well defined.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                node = composed[0] if composed is not None else self._compose_precisely(text)
                if node is not None and (self._duplicate_keys(node) or self._huge_integers(node)):
                    return False
                # Built from the composed tree: the text is parsed once.
                with _referents_by_identity():
                    self.root = None if node is None else yaml.constructor.construct_document(node)
        except AssertionError:
            # ruamel asserts a `%YAML 1.x` directive's x is 1 or 2 (1.0, 1.3: no YAMLError).
            line, version = _yaml_directive(text)
            self._error_at(
                line,
                0,
                "",
                "invalid YAML: found incompatible YAML document "
                f"({f'%YAML {version}: ' if version else ''}version 1.1 or 1.2 is required)",
            )
            return False
        except _LargeUnderAnotherVersion:
            line, version = _yaml_directive(text)
            self._error_at(
                line,
                0,
                "",
                f"a file this large is not read under %YAML {version} (its parser would take "
                "minutes): remove the directive to read it as YAML 1.2",
            )
            return False
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
        except RecursionError:
            self._error_at(0, 0, "", TOO_DEEP)
            return False
        except NotImplementedError:
            # ruamel.yaml 0.18.10 gives up on a comment it cannot place (list items holding
            # only comments) without a position; newer versions report the syntax error. Its
            # message quotes the comments: not repeated.
            self._error_at(0, 0, "", "invalid YAML: a comment the parser cannot place")
            return False
        except (YAMLError, ValueError, OverflowError, KeyError, TypeError):
            # Tagged scalars that do not parse (`!!int x`) fail without a position, and
            # so does an escape past Unicode (`"\UFFFFFFFF"`: OverflowError in `chr`).
            self._error_at(0, 0, "", "invalid YAML: a value does not match its tag")
            return False
        return True

    def _compose_precisely(self, text: str) -> Node | None:
        """The pure-Python parser's tree: its errors are the ones the messages word (but
        the C parser's, for a text over MAX_PRECISE_BYTES)."""
        if len(text) > MAX_PRECISE_BYTES:
            error = self._fast_error
            if isinstance(error, located.Imprecise):  # a directive the C tree is not built for
                error = self._events_error or _LargeUnderAnotherVersion()
            if isinstance(error, (MarkedYAMLError, _LargeUnderAnotherVersion)):
                raise error
        node: Node | None = YAML(typ="rt").compose(text)
        return node

    def _duplicate_keys(self, node: Node) -> bool:
        found = False
        for mapping in mapping_nodes(node):
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
        for loc, scalar in scalar_nodes(node):
            if scalar.tag == INT_TAG and len(scalar.value) > MAX_INTEGER_TEXT:
                found = True
                line, column = scalar.start_mark.line, scalar.start_mark.column
                problem = number_problem(MAX_SAFE_NUMBER + 1) or ""
                self._error_at(line, column, display_path(loc), problem)
        return found

    def _validate(self, data: dict[str, Any]) -> None:
        try:
            state = DesiredState.model_validate(data)
        except ValidationError as exc:
            reported: set[LocatedError] = set()
            # Each detail dropped once worded: the details and the errors made of them
            # are not all held at once (about 1 KB each for 300,000 errors).
            details = exc.errors(include_url=False)
            del exc
            details.reverse()
            while details:
                detail = details.pop()
                # On the fast attempt, placed on its composed tree (`locate_node`): a
                # file of 300,000 mistakes is not parsed again by the pure-Python parser.
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
        if kind in CHECKED_ON_RAW_DATA:
            return None
        loc: Loc = tuple(detail["loc"])
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            loc = (*loc, "type")
        key = names_a_key(kind, loc)
        if key:
            # pydantic names a key `str(key)` ('None', '1.5'): the key itself is its input.
            at = -2 if loc[-1:] == ("[key]",) else -1
            loc = (*loc[:at], detail["input"], *loc[len(loc) + at + 1 :])
        spot = self._locate(loc)
        parts, rest = spot.parts, spot.rest
        if (*parts, *rest[:1]) in self.silenced or parts in self.silenced:
            return None
        secret = any(p in all_secret_fields() for p in parts if isinstance(p, str))
        reference = self.sensitive.get(parts[:4])
        message = error_message(detail, parts, rest, data, secret=secret or bool(reference))
        if reference:
            # The projects' own messages quote the value: keep the rule, name the reference.
            message = f"{message.split(' (got ')[0]} (the value of {reference})"
        # A key that should not be there, or a mapping that lacks one: point at the key.
        at_key = key or kind in ("extra_forbidden", "unknown_param") or bool(rest)
        line, column = (spot.key_line, spot.key_column) if at_key else (spot.line, spot.column)
        if key and parts and spot.rest[:1] in ((), ("[key]",)):
            # Found: named as the file spells it (`null`, `1.5`), not as an index `[1]`.
            written = scalar_text(parts[-1])
            parts = (*parts[:-1], written) if written is not None else parts[:-1]
        return LocatedError(self.file, line + 1, column + 1, display_path(parts), message)

    # -- positions


def summarize(
    errors: Sequence[LocatedError], files: Sequence[str], *, command: str = "validate"
) -> str:
    """One closing line for a failed validation, e.g. `3 errors in 1 of 2 files`.

    When a reference could not be read, it says how: `validate` can check the rest without
    them; `plan` and `apply` must read them, so the fix is to provide them.
    """
    bad = len({error.file for error in errors})
    given = len({os.path.realpath(file) for file in files})  # a file given twice is read once
    plural = "s" if len(errors) != 1 else ""
    line = f"{len(errors)} error{plural} in {bad} of {given} file{'s' if given != 1 else ''}"
    if any(error.unread_reference for error in errors):
        line += f" {NO_RESOLVE_HINT if command == 'validate' else PROVIDE_REFERENCES_HINT}"
    return line
