"""The CLI under structure-aware fuzzing: desired-state files built from the models, mangled.

Documents are built from `reconciler/specs.py` (each deployment model's fields, which are
required, which are secret, which may be a reference, the `Literal`s and bounds), then
mutated as YAML: wrong types, unknown and repeated keys, anchors, aliases and merge keys,
tags, deep nesting, huge numbers, odd scalars, `{env:}`/`{file:}` references whose
values are canaries, variables that are not set (`plan` reads secrets as optional) and
sources split over several files. Each runs through the real entry point (`validate`,
`plan --emulator`, `plan --out` then `apply PLAN`), and product.md's contract must hold:
the documented exit code, no traceback nor "internal error", every error located at
`FILE:LINE:COL` inside the file, and no referenced value in stdout, stderr, the plan
file or the rendered pull-request comment.

The suite runs a short fixed-seed profile; `IMGIX_RECONCILER_FUZZ_EXAMPLES=N` runs N
examples of each property (random seeds), the long campaign README's Fuzzing paragraph
describes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import annotated_types
import httpx
import pytest
from click.testing import CliRunner
from conftest import FakeClock
from console import UNPACED, child_env, waiting_on
from hypothesis import HealthCheck, Phase, assume, event, example, given, seed, settings
from hypothesis import strategies as st
from pydantic.fields import FieldInfo

from reconciler.canonical import LOST_COMMENT
from reconciler.cli import main
from reconciler.emulator import (
    EMULATOR_API_KEY,
    ApiProblem,
    RateLimits,
    SourceStore,
    create_app,
)
from reconciler.loader import LoadError, load
from reconciler.plan import same_json
from reconciler.rails import Permissions
from reconciler.reconcile import Connection, apply_with_report, plan_files
from reconciler.specs import (
    CACHE_TTL_VALUE_MIN,
    DEPLOYMENT_MODELS,
    HOSTNAME_FIELDS,
    DeploymentBase,
    SourceSpec,
    fields_by_api_name,
    reference_fields,
    secret_fields,
    stated_only_fields,
)

ENV_CANARY = "cli-fuzz-env-canary-5d0e"
FILE_CANARY = "cli-fuzz-file-canary-a93c"
CANARIES = (ENV_CANARY, FILE_CANARY)
# 32 characters: request handshakes and signing keys must be that long.
ENVIRON = {
    "FUZZ_SECRET": ENV_CANARY + "-" + "x" * (31 - len(ENV_CANARY)),
    "IMGIX_RECONCILER_FINGERPRINT_KEY": "cli-fuzz-fingerprint-key-7b2e90c4d1f36a58",
    "NO_COLOR": "1",
}
FILE_SECRET = FILE_CANARY + "-" + "y" * (31 - len(FILE_CANARY))
# What a live account holds as each secret (the API takes values, never references).
LIVE_SECRET = ENVIRON["FUZZ_SECRET"]
MAX_SAFE_INTEGER = 2**53 - 1
LONG_RUN = int(os.environ.get("IMGIX_RECONCILER_FUZZ_EXAMPLES", "0"))
LOCATED = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<column>\d+): ")


def _profile(short: int) -> Any:
    """Fixed seed and `short` examples in the suite; the long campaign when asked."""
    if LONG_RUN:
        return settings(
            max_examples=LONG_RUN,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    return settings(
        max_examples=short,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        # A failure in the suite is shown as found: shrinking runs the CLI hundreds of
        # times (minutes); the long campaign shrinks.
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
    )


# --------------------------------------------------------------------------- YAML text


@dataclass(frozen=True)
class Raw:
    """YAML written as is: a tag, an alias, an odd scalar."""

    text: str


@dataclass
class Node:
    """A block mapping as pairs (repeats allowed), with an optional anchor or merge."""

    pairs: list[tuple[str, Any]] = field(default_factory=list)
    anchor: str | None = None


def _scalar(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    # JSON is YAML: every string quoted, so a value never turns into another type.
    return json.dumps(value, ensure_ascii=False)


def render(value: Any, indent: int = 0) -> str:
    """YAML block text of a value built of Node, list, Raw and JSON scalars."""
    pad = " " * indent
    if isinstance(value, Node):
        lines = [f"{pad}&{value.anchor}\n"] if value.anchor else []
        for key, item in value.pairs:
            lines.append(f"{pad}{_key(key)}:{_after_key(item, indent + 2)}")
        return "".join(lines) or f"{pad}{{}}\n"
    if isinstance(value, list) and value:
        return "".join(f"{pad}-{_after_key(item, indent + 2)}" for item in value)
    if isinstance(value, list):
        return f"{pad}[]\n"
    return f"{pad}{_scalar(value)}\n"


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z_<][A-Za-z0-9_.<]*", key) else json.dumps(key)


def _after_key(item: Any, indent: int) -> str:
    if isinstance(item, Node) and item.anchor:
        body = Node(item.pairs)
        return f" &{item.anchor}\n" + render(body, indent)
    if isinstance(item, Node | list) and item:
        return "\n" + render(item, indent)
    return " " + render(item, 0).lstrip()


# --------------------------------------------------------------------------- documents


def _bounds(info: FieldInfo) -> tuple[int | None, int | None]:
    low = high = None
    for item in info.metadata:
        if isinstance(item, annotated_types.Ge):
            low = int(item.ge)  # type: ignore[call-overload]
        if isinstance(item, annotated_types.Le):
            high = int(item.le)  # type: ignore[call-overload]
    return low, high


def _validators(info: FieldInfo) -> str:
    """The names of a field's validators (`_check_subdomain`): what kind of text it holds."""
    names = []
    nested = [
        item
        for arg in typing.get_args(info.annotation)
        if typing.get_origin(arg) is typing.Annotated
        for item in arg.__metadata__
    ]
    for item in [*info.metadata, *nested]:
        func = getattr(item, "func", None)
        names.append(getattr(func, "__name__", ""))
    return " ".join(names)


def _hostnames(draw: st.DrawFn, kind: str, taken: set[str]) -> list[str]:
    word = st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True)
    names = []
    for _ in range(draw(st.integers(1, 2))):
        name = draw(word) + "-fz"
        if kind == "custom_domains":
            name += ".example"
        if name not in taken:
            taken.add(name)
            names.append(name)
    if not names:
        # Every draw was taken: a name no draw makes (they end in "-fz"), never given twice.
        names.append(f"fz-{len(taken)}" + (".example" if kind == "custom_domains" else ""))
        taken.add(names[0])
    return names


def _reference(draw: st.DrawFn) -> Node:
    kind = draw(st.sampled_from(["env", "file", "missing", "outside"]))
    if kind == "env":
        return Node([("env", "FUZZ_SECRET")])
    if kind == "file":
        return Node([("file", "secret.txt")])
    if kind == "missing":
        return Node([("env", "FUZZ_NOT_SET")])
    return Node([("file", "../outside.txt")])


def _value(
    draw: st.DrawFn,
    api: str,
    info: FieldInfo,
    taken: set[str],
    text: st.SearchStrategy[str] | None = None,
) -> Any:
    """A value the model accepts for one field, read from its annotation and metadata.

    `text` draws free text (names, prefixes, keys) and makes unbounded numbers reach JSON's
    safe range: what a live account may hold.
    """
    annotation = info.annotation
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    literal = annotation if typing.get_origin(annotation) is typing.Literal else None
    if literal is None and args and typing.get_origin(args[0]) is typing.Literal:
        literal = args[0]
    if literal is not None:
        return draw(st.sampled_from(typing.get_args(literal)))
    checks = _validators(info)
    if annotation is bool:
        return True if "must_be_true" in checks else draw(st.booleans())
    if annotation is int:
        low, high = _bounds(info)
        ceiling = high or (MAX_SAFE_INTEGER if text is not None else 10**6)
        return draw(st.integers(low if low is not None else 0, ceiling))
    if typing.get_origin(annotation) is list:
        return _hostnames(draw, api, taken) if api in ("imgix_subdomains", "custom_domains") else []
    if typing.get_origin(annotation) is dict:
        return Node(draw(st.sampled_from([[], [("auto", "format")], [("q", 75)]])))
    if "url" in checks:
        return "https://origin.fuzz.example/" + draw(st.from_regex(r"[a-z]{0,8}", fullmatch=True))
    if "basic_auth" in checks:
        return draw(st.from_regex(r"[a-z]{1,12}", fullmatch=True))
    if text is not None:
        return draw(text)
    letters = st.characters(codec="utf-8", categories=["L", "N", "P", "Zs"])
    return draw(st.text(letters, min_size=1, max_size=24))


@st.composite
def deployments(
    draw: st.DrawFn, taken: set[str], text: st.SearchStrategy[str] | None = None
) -> Node:
    """A deployment of any type: required fields, some optional ones, secrets referenced.

    With `text` (a live account's), free text comes from it and secrets are plain values.
    """
    kind, model = draw(st.sampled_from(sorted(DEPLOYMENT_MODELS.items())))
    secrets = secret_fields(model)
    pairs: list[tuple[str, Any]] = [("type", kind)]
    for api, info in fields_by_api_name(model).items():
        if api == "type" or (not info.is_required() and draw(st.integers(0, 3)) != 0):
            continue
        if api in secrets:
            pairs.append((api, LIVE_SECRET if text is not None else _reference(draw)))
        else:
            pairs.append((api, _value(draw, api, info, taken, text)))
    return Node(pairs)


# Every model's text attributes that may be written as a reference (their value is then
# as sensitive as a secret's): the "reference" mutation writes one on any of them.
REFERABLE = sorted({api for model in DEPLOYMENT_MODELS.values() for api in reference_fields(model)})


@st.composite
def documents(draw: st.DrawFn) -> Node:
    """A desired-state document the models accept (up to references not resolvable)."""
    taken: set[str] = set()
    sources = []
    for number in range(draw(st.integers(0, 3))):
        spec = Node([("name", f"Fuzz {number}"), ("deployment", draw(deployments(taken)))])
        for optional in ("enabled", "mode"):
            if draw(st.booleans()):
                info = SourceSpec.model_fields[optional]
                spec.pairs.insert(1, (optional, _value(draw, optional, info, taken)))
        sources.append(spec)
    top = Node([("version", 1)])
    if draw(st.booleans()):
        top.pairs.append(("owner", "fuzz/owner"))
    top.pairs.append(("sources", sources))
    return top


ODD_SCALARS = [
    Raw("~"),
    Raw("yes"),
    Raw("off"),
    Raw("0x1F"),
    Raw("0o17"),
    Raw("1_000"),
    Raw(".inf"),
    Raw("-.nan"),
    Raw("1e400"),
    Raw(str(10**400)),
    Raw("-0"),
    Raw("''"),
    Raw('"\\u202e::error::x\\x1b[31m"'),
    Raw('"\\ud800"'),
    Raw("!!str 86400"),
    Raw("!!binary aGVsbG8="),
    Raw("!!int '3'"),
    Raw("!custom x"),
    Raw("!!python/object:os.system x"),
    Raw("2001-12-14t21:59:43.10-05:00"),
    Raw("|\n  block\n  text"),
    Raw("[" * 200 + "]" * 200),
    Raw("{a: " * 100 + "1" + "}" * 100),
    Raw("*undefined"),
    Raw("? complex\n: key"),
    "x" * 5000,
    [],
    Node([("nested", [1, 2])]),
    True,
    0,
    -1,
    CACHE_TTL_VALUE_MIN - 1,
]


def _mappings(node: Any, found: list[Node]) -> list[Node]:
    if isinstance(node, Node):
        found.append(node)
        for _, item in node.pairs:
            _mappings(item, found)
    elif isinstance(node, list):
        for item in node:
            _mappings(item, found)
    return found


@st.composite
def mutated(draw: st.DrawFn, document: Node) -> Node:
    """`document` with a few structural mutations, each in a random mapping of it."""
    for _ in range(draw(st.integers(0, 3))):
        mappings = _mappings(document, [])
        target = draw(st.sampled_from(mappings))
        mutation = draw(
            st.sampled_from(
                ["type", "unknown", "repeat", "drop", "alias", "merge", "deep", "reference"]
            )
        )
        if mutation == "type" and target.pairs:
            index = draw(st.integers(0, len(target.pairs) - 1))
            target.pairs[index] = (target.pairs[index][0], draw(st.sampled_from(ODD_SCALARS)))
        elif mutation == "unknown":
            name = draw(st.sampled_from(["s3_bukcet", "Name", "extra", "robots_txt", "<<"]))
            target.pairs.append((name, draw(st.sampled_from(ODD_SCALARS))))
        elif mutation == "repeat" and target.pairs:
            target.pairs.append(draw(st.sampled_from(target.pairs)))
        elif mutation == "drop" and target.pairs:
            target.pairs.pop(draw(st.integers(0, len(target.pairs) - 1)))
        elif mutation in ("alias", "merge") and len(mappings) > 1:
            source = draw(st.sampled_from(mappings))
            if (
                source is not target
                and source.anchor is None
                and target not in _mappings(source, [])
            ):
                source.anchor = f"a{id(source) % 997}"
                if mutation == "merge":
                    target.pairs.insert(0, ("<<", Raw(f"*{source.anchor}")))
                elif target.pairs:
                    key = target.pairs[-1][0]
                    target.pairs[-1] = (key, Raw(f"*{source.anchor}"))
        elif mutation == "reference":
            target.pairs.append((draw(st.sampled_from(REFERABLE)), _reference(draw)))
        elif mutation == "deep":
            depth = draw(st.sampled_from([30, 300, 3000]))
            target.pairs.append(("deep", Raw("[" * depth + "]" * depth)))
    return document


# --------------------------------------------------------------------------- running


@dataclass
class Workspace:
    """A repository folder with the files, a secret file and one outside it."""

    folder: Path
    files: list[Path]


def _write(document: Node, split: bool, root: Path) -> Workspace:
    repository = root / "repo"
    repository.mkdir()
    (repository / ".git").mkdir()  # `{file:}` stays inside the repository
    (repository / "secret.txt").write_text(FILE_SECRET)
    (root / "outside.txt").write_text(FILE_SECRET)
    sources = dict(document.pairs).get("sources")
    if split and isinstance(sources, list) and len(sources) > 1:
        head = Node([pair for pair in document.pairs if pair[0] != "sources"])
        first = Node([*head.pairs, ("sources", sources[: len(sources) // 2])])
        second = Node([*head.pairs, ("sources", sources[len(sources) // 2 :])])
        texts = [render(first), render(second)]
    else:
        texts = [render(document)]
    files = []
    for number, text in enumerate(texts):
        path = repository / f"sources-{number}.yaml"
        path.write_text(text, encoding="utf-8")
        files.append(path)
    return Workspace(repository, files)


def invoke(
    workspace: Workspace, *args: str, environ: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """The command in-process, in the repository folder; exit code, stdout, stderr."""
    runner = CliRunner()
    env = {name: None for name in os.environ if name.startswith(("IMGIX_", "GITHUB_"))}
    cwd = os.getcwd()
    os.chdir(workspace.folder)
    try:
        result = runner.invoke(main, list(args), env={**env, **ENVIRON, **(environ or {})})
    finally:
        os.chdir(cwd)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args}: raised {result.exception!r}") from result.exception
    return result.exit_code, result.stdout, result.stderr


def check_output(workspace: Workspace, code: int, stdout: str, stderr: str, *more: str) -> None:
    """product.md's promises on any run: no traceback, located errors, no canary."""
    shown = "\n".join([stdout, stderr, *more])
    assert "Traceback" not in shown and "internal error" not in shown, shown
    for canary in CANARIES:
        assert canary not in shown, f"a referenced value was shown: {shown!r}"
    texts = {str(path): path.read_text(encoding="utf-8").split("\n") for path in workspace.files}
    by_name = {**texts, **{path.name: texts[str(path)] for path in workspace.files}}
    for line in stderr.splitlines():
        located = LOCATED.match(line)
        if located is None or located["file"] not in by_name:
            continue
        lines = by_name[located["file"]]
        number, column = int(located["line"]), int(located["column"])
        assert 1 <= number <= len(lines), line
        assert 1 <= column <= len(lines[number - 1]) + 1, line
    if code == 1 and not any(LOCATED.match(line) for line in stderr.splitlines()):
        # An error that is not about a place in a file is one `error:` line.
        assert re.search(r"^error: ", stderr, re.MULTILINE), stderr


def _is_load_failure(stderr: str, workspace: Workspace) -> bool:
    names = {str(path) for path in workspace.files} | {path.name for path in workspace.files}
    return any((m := LOCATED.match(line)) and m["file"] in names for line in stderr.splitlines())


@st.composite
def cases(draw: st.DrawFn) -> tuple[Node, bool]:
    return draw(mutated(draw(documents()))), draw(st.booleans())


# Explicit: `sources` nested 3,000 deep, past the YAML parser's recursion (a located error).
@given(cases())
@example((Node([("version", 1), ("sources", Raw("[" * 3000 + "]" * 3000))]), False))
@_profile(short=25)
def test_validate_keeps_the_contract(case: tuple[Node, bool]) -> None:
    document, split = case
    with tempfile.TemporaryDirectory() as root:
        workspace = _write(document, split, Path(root))
        names = [file.name for file in workspace.files]
        for extra in ([], ["--no-resolve"]):
            code, stdout, stderr = invoke(workspace, "validate", *extra, *names)
            assert code in (0, 1), (code, stderr)
            check_output(workspace, code, stdout, stderr)
            if code == 1:
                assert _is_load_failure(stderr, workspace), stderr


@given(cases())
@_profile(short=12)
def test_plan_then_apply_keep_the_contract(case: tuple[Node, bool]) -> None:
    document, split = case
    with tempfile.TemporaryDirectory() as root:
        workspace = _write(document, split, Path(root))
        names = [file.name for file in workspace.files]
        code, stdout, stderr = invoke(
            workspace, "plan", "--emulator", "--format", "markdown", "--out", "plan.json", *names
        )
        plan = workspace.folder / "plan.json"
        saved = plan.read_text() if plan.exists() else ""
        assert code in (0, 1), (code, stderr)
        check_output(workspace, code, stdout, stderr, saved)
        if code != 0:
            assert not saved, "a failed plan left a plan file"
            return
        json.loads(saved)
        code, stdout, stderr = invoke(
            workspace, "apply", "--emulator", "--auto-approve", "plan.json"
        )
        # 1: refused before any write (a missing secret, the blast radius), 3: some
        # actions failed, 4: stale. The emulator starts afresh for each command.
        assert code in (0, 1, 3, 4), (code, stderr)
        check_output(workspace, code, stdout, stderr)


def test_the_mutator_reaches_what_it_promises() -> None:
    # The strategy is only as good as its reach: over the short profile's seeds it must
    # write every deployment type, references of both kinds, aliases and merge keys.
    seen: set[str] = set()

    @given(cases())
    @_profile(short=60)
    def collect(case: tuple[Node, bool]) -> None:
        text = render(case[0])
        seen.update(kind for kind in DEPLOYMENT_MODELS if f'type: "{kind}"' in text)
        seen.update(word for word in ("env:", "file:", "<<:", "*a", "&a") if word in text)

    collect()
    assert set(DEPLOYMENT_MODELS) | {"env:", "file:", "<<:", "*a", "&a"} <= seen, seen


def test_a_document_built_from_the_models_is_valid(tmp_path: Path) -> None:
    # Unmutated, with every reference resolvable: the models accept what the strategy builds.
    @given(documents())
    @_profile(short=20)
    def check(document: Node) -> None:
        text = render(document)
        text = text.replace('"FUZZ_NOT_SET"', '"FUZZ_SECRET"').replace(
            "../outside.txt", "secret.txt"
        )
        with tempfile.TemporaryDirectory() as root:
            workspace = _write(Node(document.pairs), False, Path(root))
            workspace.files[0].write_text(text)
            code, _, stderr = invoke(workspace, "validate", workspace.files[0].name)
            assert code == 0, (text, stderr)

    check()


# --------------------------------------------------------------------------- subprocess


def _subprocess_plan(workspace: Workspace, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler",
            "plan",
            "--api-url",
            url,
            *(file.name for file in workspace.files),
        ],
        env=child_env(ENVIRON),
        cwd=workspace.folder,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("number", [1, 2, 3])
def test_plan_over_http_keeps_the_contract(number: int, emulator_url: str, tmp_path: Path) -> None:
    """A few fixed documents through a real process against the emulator on 127.0.0.1."""
    made: list[tuple[Node, bool]] = []

    @given(cases())
    @seed(number)
    @settings(max_examples=1, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    def pick(case: tuple[Node, bool]) -> None:
        made.append(case)

    pick()
    document, split = made[-1]
    workspace = _write(document, split, tmp_path)
    result = _subprocess_plan(workspace, emulator_url)
    assert result.returncode in (0, 1), result.stderr
    check_output(workspace, result.returncode, result.stdout, result.stderr)


# --------------------------------------------------------------------------- live accounts
#
# `export` and `drift` read what the API says, and the API's answers are untrusted text:
# accounts are built of generated sources of every type whose free text (names, prefixes,
# annotations, parameter values) is what a dashboard lets anyone type, and the commands run
# against them through the real entry point, in-process (`--emulator` serving the account)
# or over HTTP to the emulator on 127.0.0.1.

HOSTILE_TEXTS = [
    "\u202eevil\u202c",
    "\u2066isolated\u2069\u200f",
    "::error::forged by a listing",
    "::add-mask::x",
    "line\nbreak",
    "cr\rreturn",
    "\x1b[31mred\x1b[0m",
    "\x07\x08\x7f",
    "\x00nul",
    "\x85nel\x9b",
    "\u2028sep\u2029",
    "*a",
    "&b",
    "!!python/object:os.system",
    "{env: FUZZ_SECRET}",
    "{file: secret.txt}",
    "'",
    '"',
    "#",
    "a # b",
    "- item",
    "? key",
    ": v",
    "%YAML 1.1",
    "---",
    "...",
    "null",
    "~",
    "yes",
    "0x1F",
    "1e400",
    "\ufeffbom",
    "  padded  ",
    "tab\there",
    "@user #12 https://x.example",
    "<b>&amp;</b>",
    "日本語 ñ",
    "\U0001f642",
    "",
]
hostile_text = st.one_of(
    st.sampled_from(HOSTILE_TEXTS),
    st.lists(st.sampled_from(HOSTILE_TEXTS), min_size=2, max_size=3).map("".join),
    st.text(st.characters(codec="utf-8"), max_size=16),
)
# What must never reach a terminal or a log raw: C0 controls but the line feed, DEL, C1
# controls, the Unicode line separators and the bidi controls (`reconciler/untrusted.py`).
RAW_CONTROL = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def check_inert(*texts: str) -> None:
    """No raw control character and no line a CI runner would read as a workflow command."""
    for text in texts:
        raw = RAW_CONTROL.search(text)
        assert raw is None, f"raw {raw.group()!r} in {text!r}"
        assert not re.search(r"^\s*::", text, re.MULTILINE), text


def plain(value: Any) -> Any:
    """A value built of Node and lists as plain JSON data (an API request's)."""
    if isinstance(value, Node):
        return {key: plain(item) for key, item in value.pairs}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


@st.composite
def live_accounts(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Create requests' attributes: 1 to 4 sources of any type, their free text hostile."""
    taken: set[str] = set()
    sources = []
    for _ in range(draw(st.integers(1, 4))):
        deployment = plain(draw(deployments(taken, hostile_text)))
        if draw(st.booleans()):
            deployment["annotation"] = draw(hostile_text)
        name = draw(hostile_text.filter(bool))
        sources.append({"name": name, "enabled": draw(st.booleans()), "deployment": deployment})
    return sources


def account(requests: list[dict[str, Any]], *, omit_unset: bool) -> SourceStore:
    """An emulated account holding the sources the API accepts of `requests`."""
    store = SourceStore(
        deploy_delay=0,
        rng=random.Random(0),
        omit_unset=omit_unset,
        limits=RateLimits(per_second=None, creates_per_hour=None, updates_per_hour=None),
    )
    for attributes in requests:
        with contextlib.suppress(ApiProblem):  # refused as the API refuses it
            store.create_source(attributes)
    return store


@contextlib.contextmanager
def serving(store: SourceStore) -> Iterator[None]:
    """`--emulator` serves `store` (in-process, through httpx's ASGI transport)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("reconciler.emulator.seeded_store", lambda **options: store)
        yield


def _empty_workspace(root: Path) -> Workspace:
    return _write(Node([("version", 1), ("sources", [])]), False, root)


def header_variables(text: str) -> dict[str, str]:
    """The variables an exported file's header lists, each set to the live secret."""
    return {line[4:]: LIVE_SECRET for line in text.splitlines() if line.startswith("#   ")}


def exported(workspace: Workspace) -> dict[str, str]:
    """Export the account served into `exported.yaml`, checked; the variables it needs."""
    code, stdout, stderr = invoke(workspace, "export", "--emulator")
    check_output(workspace, code, stdout, stderr)
    check_inert(stdout, stderr)
    assert code == 0, stderr
    path = workspace.folder / "exported.yaml"
    path.write_text(stdout, encoding="utf-8")
    workspace.files = [path]
    variables = header_variables(stdout)
    code, stdout, stderr = invoke(workspace, "validate", path.name, environ=variables)
    assert code == 0, stderr
    return variables


# The late source's hostnames come from a set of their own: one the account holds is
# refused by the API, as it would be.
@given(
    live_accounts(),
    st.booleans(),
    st.builds(set).flatmap(lambda taken: deployments(taken, hostile_text)),
)
@example(
    [
        {
            "name": "\u202e::error::x\n\x1b[31m*a &b !!python {env: X} ' \" #",
            "enabled": False,
            "deployment": {
                "type": "webproxy",
                "imgix_subdomains": ["hostile-fz", "hostile2-fz"],
                "default_params": {"txt": "::error::x\u202e"},
                "annotation": "\x1b]0;title\x07",
            },
        }
    ],
    True,
    Node([("type", "webfolder"), ("imgix_subdomains", ["late-fz"])]),
)
@_profile(short=15)
def test_export_of_a_hostile_account_round_trips(
    requests: list[dict[str, Any]], omit_unset: bool, late_deployment: Node
) -> None:
    # The exported file validates and plans to no change against the account it came from,
    # and nothing the account holds reaches stdout or stderr raw.
    store = account(requests, omit_unset=omit_unset)
    with tempfile.TemporaryDirectory() as root, serving(store):
        workspace = _empty_workspace(Path(root))
        variables = exported(workspace)
        mark = len(store.request_log)
        code, stdout, stderr = invoke(
            workspace,
            "plan",
            "--emulator",
            "--detailed-exitcode",
            "exported.yaml",
            environ=variables,
        )
        check_output(workspace, code, stdout, stderr)
        check_inert(stdout, stderr)
        assert code == 0, stdout + stderr
        assert stdout.startswith(f"No changes: {len(store.sources)} unchanged"), stdout
        assert all(entry.method == "GET" for entry in store.request_log[mark:])
        event(f"export: {len(store.sources)} sources")
        # The same text through --out, and --merge into it adds nothing and writes nothing.
        text = (workspace.folder / "exported.yaml").read_bytes()
        code, stdout, stderr = invoke(workspace, "export", "--emulator", "--out", "out.yaml")
        check_inert(stdout, stderr)
        assert code == 0 and (workspace.folder / "out.yaml").read_bytes() == text, stderr
        code, stdout, stderr = invoke(workspace, "export", "--emulator", "--merge", "out.yaml")
        check_inert(stdout, stderr)
        assert code == 0 and "Nothing to add" in stderr, stderr
        assert (workspace.folder / "out.yaml").read_bytes() == text
        # A source made since is merged in, and the file still plans to no change.
        with contextlib.suppress(ApiProblem):
            store.create_source(
                {"name": "\u202e::error::new\n", "deployment": plain(late_deployment)}
            )
        code, stdout, stderr = invoke(workspace, "export", "--emulator", "--merge", "out.yaml")
        check_output(workspace, code, stdout, stderr)
        check_inert(stdout, stderr)
        assert code == 0, stderr
        listed = re.search(r"^Set these environment variables before apply: (.*)\.$", stderr, re.M)
        variables.update(dict.fromkeys(listed[1].split(", ") if listed else [], LIVE_SECRET))
        code, stdout, stderr = invoke(
            workspace, "plan", "--emulator", "--detailed-exitcode", "out.yaml", environ=variables
        )
        check_output(workspace, code, stdout, stderr)
        assert code == 0, stdout + stderr


def _adopt(store: SourceStore, workspace: Workspace, variables: dict[str, str]) -> None:
    """`apply --adopt` of the exported file, through the library, unpaced: markers written."""
    environ = {**ENVIRON, **variables}
    transport = httpx.ASGITransport(app=create_app(store))
    connection = Connection("http://emulator", EMULATOR_API_KEY, transport, pacing=UNPACED)
    made = asyncio.run(
        plan_files(workspace.files, connection, adopt=True, secrets_optional=False, environ=environ)
    )
    permissions = Permissions(allow_disable=True, allow_large_change=True)
    report = asyncio.run(
        apply_with_report(made.plan, connection, permissions=permissions, environ=environ)
    )
    assert report.ok, report.failed


# Attributes an outside edit may change and the exported file always manages: not the
# secrets (the API shows none), nor `annotation` and `robots.txt` (managed when stated).
def _editable(model: type[DeploymentBase]) -> dict[str, FieldInfo]:
    skipped = {"type", *secret_fields(model), *stated_only_fields(model)}
    return {api: info for api, info in fields_by_api_name(model).items() if api not in skipped}


def _managed_view(store: SourceStore, source_id: str) -> dict[str, Any]:
    """What of a source the exported file manages, as the account holds it."""
    source = store.sources[source_id]
    model = DEPLOYMENT_MODELS[source.deployment["type"]]
    deployment = {api: source.deployment.get(api) for api in _editable(model)}
    return {"name": source.name, "enabled": source.enabled, "deployment": deployment}


def _changed_paths(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    paths = {key for key in ("name", "enabled") if before[key] != after[key]}
    return paths | {
        f"deployment.{api}"
        for api, value in after["deployment"].items()
        if not same_json(value, before["deployment"][api])
    }


@st.composite
def _field_values(draw: st.DrawFn, api: str, info: FieldInfo, taken: set[str]) -> Any:
    return plain(_value(draw, api, info, taken, hostile_text))


def outside_edits(data: st.DataObject, store: SourceStore) -> tuple[dict[str, set[str]], set[str]]:
    """Random edits made outside git: through the API, or the dashboard (which rewrites the
    annotation). The paths each source changed at, and the sources whose annotation (and
    so the marker in it) was rewritten."""
    taken = {
        name
        for source in store.sources.values()
        for field_name in HOSTNAME_FIELDS
        for name in source.deployment.get(field_name) or []
    }
    before = {source_id: _managed_view(store, source_id) for source_id in store.sources}
    notes = {key: source.deployment.get("annotation") for key, source in store.sources.items()}
    for _ in range(data.draw(st.integers(0, 3), label="edits")):
        source_id = data.draw(st.sampled_from(sorted(store.sources)), label="source")
        source = store.sources[source_id]
        model = DEPLOYMENT_MODELS[source.deployment["type"]]
        kind = data.draw(
            st.sampled_from(["name", "enabled", "attribute", "annotation", "dashboard"]),
            label="kind",
        )
        attributes: dict[str, Any] = {}
        if kind == "name":
            attributes["name"] = data.draw(hostile_text.filter(bool), label="name")
        elif kind == "enabled":
            attributes["enabled"] = not source.enabled
        elif kind == "annotation":
            attributes["deployment"] = {"annotation": data.draw(hostile_text, label="note")}
        else:
            api, info = data.draw(st.sampled_from(sorted(_editable(model).items())), label="api")
            value = data.draw(_field_values(api, info, taken), label="value")
            if kind == "dashboard":
                with contextlib.suppress(ApiProblem):
                    store.dashboard_redeploy(source_id, {api: value})
                continue
            attributes["deployment"] = {api: value}
        if not source.enabled and data.draw(st.booleans(), label="enable too"):
            attributes["enabled"] = True
        with contextlib.suppress(ApiProblem):  # refused as the API refuses it
            store.update_source(source_id, attributes)
    changed = {}
    for source_id, seen in before.items():
        paths = _changed_paths(seen, _managed_view(store, source_id))
        if paths:
            changed[source_id] = paths
    rewritten = {
        key
        for key, source in store.sources.items()
        if source.deployment.get("annotation") != notes[key]
    }
    return changed, rewritten


@given(live_accounts(), st.booleans(), st.booleans(), st.data())
@_profile(short=15)
def test_drift_reports_exactly_the_outside_edits(
    requests: list[dict[str, Any]], omit_unset: bool, adopt: bool, data: st.DataObject
) -> None:
    # An account exported (and, or not, adopted), then edited outside git: `drift` exits 2
    # naming exactly the sources and attributes that changed, else 0, and shows the
    # account's text inert in every format.
    store = account(requests, omit_unset=omit_unset)
    assume(store.sources)
    with tempfile.TemporaryDirectory() as root, serving(store):
        workspace = _empty_workspace(Path(root))
        variables = exported(workspace)
        if adopt:
            _adopt(store, workspace, variables)
        flags = [] if adopt else ["--allow-unadopted"]
        changed, rewritten = outside_edits(data, store)
        # An annotation rewritten (by the dashboard, or through the API) has lost the
        # marker: drift, though nothing the file manages changed.
        unadopted = rewritten if adopt else set()
        code, stdout, stderr = invoke(
            workspace,
            "drift",
            "--emulator",
            "--format",
            "json",
            *flags,
            "exported.yaml",
            environ=variables,
        )
        check_output(workspace, code, stdout, stderr)
        check_inert(stdout, stderr)
        document = json.loads(stdout)
        reported = {
            action["id"]: {change["path"] for change in action["changes"]}
            for action in document["actions"]
        }
        # A moved origin re-sends its credentials: the secret's path joins the change.
        secrets = {
            f"deployment.{api}"
            for model in DEPLOYMENT_MODELS.values()
            for api in secret_fields(model)
        }
        # `default_params` changes parameter by parameter.
        reported = {
            key: {re.sub(r"^(deployment\.default_params)\..*", r"\1", path) for path in paths}
            - secrets
            for key, paths in reported.items()
        }
        assert reported == changed, reported
        adoption = document["adoption"]
        if adopt:
            assert {s["id"] for s in (adoption or {"sources": []})["sources"]} == unadopted
        assert code == (2 if changed or unadopted else 0), stderr
        event(f"drift: {'adopted' if adopt else 'not adopted'}, exit {code}")
        view = data.draw(st.sampled_from(["text", "markdown"]), label="format")
        again = invoke(
            workspace,
            "drift",
            "--emulator",
            "--format",
            view,
            *flags,
            "exported.yaml",
            environ=variables,
        )
        check_output(workspace, *again)
        check_inert(again[1], again[2])
        assert again[0] == code, again


# --------------------------------------------------------------------------- fmt


def _flow(value: Any) -> Raw | None:
    """A list or map of plain scalars in flow style (`[a, b]`, `{auto: format}`), or None."""
    if isinstance(value, list) and all(isinstance(v, str | int | bool) for v in value):
        return Raw(json.dumps(value, ensure_ascii=False))
    if isinstance(value, Node) and all(isinstance(v, str | int | bool) for _, v in value.pairs):
        return Raw("{" + ", ".join(f"{_key(k)}: {_scalar(v)}" for k, v in value.pairs) + "}")
    return None


@st.composite
def restyled(draw: st.DrawFn, document: Node) -> Node:
    """`document` with some lists and maps of scalars in flow style, as people write them."""
    for mapping in _mappings(document, []):
        for index, (key, value) in enumerate(mapping.pairs):
            flow = _flow(value)
            if flow is not None and draw(st.integers(0, 2)) == 0:
                mapping.pairs[index] = (key, flow)
    return document


@st.composite
def commented(draw: st.DrawFn, text: str) -> str:
    """`text` with comment lines and end-of-line comments, each numbered (`# c3`)."""
    lines = text.split("\n")
    out = []
    for number, line in enumerate(lines):
        if line.strip() and draw(st.integers(0, 4)) == 0:
            indent = len(line) - len(line.lstrip(" "))
            out.append(" " * indent + f"# c{number}a")
        if line.strip() and draw(st.integers(0, 4)) == 0:
            line += f"  # c{number}b"
        out.append(line)
    return "\n".join(out)


COMMENT = re.compile(r"# c\d+[ab]")


def _loaded(path: Path) -> tuple[Any, int] | None:
    """What `path` means (its `DesiredState`, and how many sources wait on a reference)."""
    try:
        loaded = load([path], resolve=False)
    except LoadError:
        return None
    return loaded.state, len(loaded.unresolved)


@given(
    st.one_of(documents(), documents().flatmap(mutated)).flatmap(restyled),
    st.booleans(),
    st.data(),
)
@_profile(short=25)
def test_fmt_keeps_meaning_comments_and_invalid_files(
    document: Node, split: bool, data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as root:
        workspace = _write(document, split, Path(root))
        for path in workspace.files:
            text = data.draw(commented(path.read_text(encoding="utf-8")), label=path.name)
            path.write_text(text, encoding="utf-8")
        names = [path.name for path in workspace.files]
        before = {path: path.read_bytes() for path in workspace.files}
        meaning = {path: _loaded(path) for path in workspace.files}
        valid = all(meant is not None for meant in meaning.values())

        code, stdout, stderr = invoke(workspace, "fmt", "--check", *names)
        verdicts = re.compile(r"^(.+): would be reformatted$", re.MULTILINE)
        assert {match[1] for match in verdicts.finditer(stderr)} <= set(names), stderr
        if valid:  # --check's exit 1 for a file it would change is its verdict, not an error
            assert code == 1 or not verdicts.search(stderr), stderr
            check_output(workspace, 0, stdout, verdicts.sub("", stderr))
        else:
            check_output(workspace, code, stdout, stderr)
        assert {path: path.read_bytes() for path in workspace.files} == before, "--check wrote"
        checked = code
        code, stdout, stderr = invoke(workspace, "fmt", *names)
        check_output(workspace, code, stdout, stderr)
        after = {path: path.read_bytes() for path in workspace.files}
        event(
            "fmt: "
            + ("invalid" if not valid else "lost comment" if LOST_COMMENT in stderr else "valid")
        )
        if not valid or LOST_COMMENT in stderr:
            # Invalid, or holding a comment the layout would lose: an error at its place.
            assert code == checked == 1, stderr
            assert after == before, "fmt rewrote a file with errors"
            return
        assert code == 0, stderr
        assert checked == (1 if after != before else 0), (checked, stderr)
        for path in workspace.files:
            assert _loaded(path) == meaning[path], path.read_text()
            kept = COMMENT.findall(path.read_text(encoding="utf-8"))
            assert sorted(kept) == sorted(COMMENT.findall(before[path].decode())), path.read_text()
        code, stdout, stderr = invoke(workspace, "fmt", *names)
        assert code == 0 and stderr == "", stderr
        assert {path: path.read_bytes() for path in workspace.files} == after, "not idempotent"
        assert invoke(workspace, "fmt", "--check", *names)[0] == 0


def test_fmt_refuses_a_file_whose_comment_it_would_lose(tmp_path: Path) -> None:
    # Found by the fmt property (minimised): ruamel's round trip drops the comments between
    # a key and a `{}` on the next line that has a comment of its own, and `fmt` rewrote
    # the file without them.
    text = (
        "version: 1\nsources:\n  - name: B\n    deployment:\n      type: webproxy\n"
        "      imgix_subdomains: [b-fz]\n      default_params:  # c8b\n        # c9a\n"
        "        {}  # c9b\n"
    )
    workspace = _write(Node([("version", 1), ("sources", [])]), False, tmp_path)
    workspace.files[0].write_text(text, encoding="utf-8")
    for args in (["fmt"], ["fmt", "--check"]):
        code, stdout, stderr = invoke(workspace, *args, workspace.files[0].name)
        check_output(workspace, code, stdout, stderr)
        assert code == 1
        assert stderr.splitlines()[:2] == [
            f"sources-0.yaml:7:24: {LOST_COMMENT}",
            f"sources-0.yaml:8:9: {LOST_COMMENT}",
        ], stderr
        assert workspace.files[0].read_text(encoding="utf-8") == text
    # Moved above its key, as the error says, the comment is kept.
    moved = text.replace(
        "      default_params:  # c8b\n        # c9a\n        {}  # c9b",
        "      # c8b\n      # c9a\n      default_params: {}  # c9b",
    )
    workspace.files[0].write_text(moved, encoding="utf-8")
    code, _, stderr = invoke(workspace, "fmt", workspace.files[0].name)
    assert code == 0, stderr
    assert {"# c8b", "# c9a", "# c9b"} <= set(COMMENT.findall(workspace.files[0].read_text()))


# --------------------------------------------------------------------------- flags

ODD_TARGETS = [
    "nope",
    "",
    "-",
    "--x",
    "Fuzz 0 ",
    "fuzz 0",
    "\x1b[31mFuzz 0",
    "::error::target",
    "Fuzz\n0",
    "\u202e0 zzuF",
    "*",
    '"Fuzz 0"',
    "{env: FUZZ_SECRET}",
]
FLAG_VALUES = {
    "--format": ["text", "markdown", "json", "yaml", "", "JSON"],
    "--out": ["plan.json", "-", "sources-0.yaml", "missing/plan.json", "", "."],
    "--expect-digest": ["sha256:" + "0" * 64, "", "sha256:xyz", "sha256:" + "A" * 64, "md5:0"],
    "--max-duration": ["90m", "0s", "-1", "1h2m3s", "h", " 45s ", "9999999h", "1.5h"],
}
FLAGS = {
    "plan": ["--detailed-exitcode", "--resend-secrets", "--take-over", "--adopt"],
    "apply": [
        "--auto-approve",
        "--allow-disable",
        "--allow-large-change",
        "--allow-protected-change",
        "--take-over",
        "--resend-secrets",
        "--adopt",
    ],
    "drift": ["--allow-unadopted", "--require-marker"],
}
VALUED = {
    "plan": ["--format", "--out"],
    "apply": ["--format", "--expect-digest", "--max-duration"],
    "drift": ["--format"],
}


@st.composite
def command_lines(draw: st.DrawFn, names: list[str]) -> list[str]:
    """`plan`, `apply` or `drift` with flags drawn at random, targets known and odd."""
    command = draw(st.sampled_from(sorted(FLAGS)))
    options: list[list[str]] = []
    if draw(st.integers(0, 5)):
        options.append(["--emulator"])
    options += [[flag] for flag in draw(st.lists(st.sampled_from(FLAGS[command]), max_size=4))]
    for name in draw(st.lists(st.sampled_from(VALUED[command]), max_size=3)):
        options.append([name, draw(st.sampled_from(FLAG_VALUES[name]))])
    if command != "drift":
        targets = st.sampled_from(names + ODD_TARGETS) if names else st.sampled_from(ODD_TARGETS)
        options += [["--target", name] for name in draw(st.lists(targets, max_size=3))]
    if not draw(st.integers(0, 9)):
        options.append(["--bogus"])
    return [command, *(arg for option in draw(st.permutations(options)) for arg in option)]


def _resolvable(document: Node) -> str:
    """The document's text with every reference one that reads."""
    return (
        render(document)
        .replace('"FUZZ_NOT_SET"', '"FUZZ_SECRET"')
        .replace("../outside.txt", "secret.txt")
    )


@given(documents().flatmap(lambda d: st.tuples(st.just(d), command_lines(_names(d)))))
@example(
    (Node([("version", 1), ("sources", [])]), ["plan", "--emulator", "--target", "\x1b[2J::x"])
)
@_profile(short=30)
def test_flags_keep_the_documented_exit_codes(case: tuple[Node, list[str]]) -> None:
    document, args = case
    with tempfile.TemporaryDirectory() as root:
        workspace = _write(Node(document.pairs), False, Path(root))
        workspace.files[0].write_text(_resolvable(document), encoding="utf-8")
        code, stdout, stderr = invoke(workspace, *args, workspace.files[0].name)
        saved = workspace.folder / "plan.json"
        usage = code == 1 and re.search(r"^Error: ", stderr, re.MULTILINE) is not None
        check_output(workspace, 0 if usage else code, stdout, stderr)
        check_inert(stderr)
        command = args[0]
        codes = {"plan": {0, 1}, "apply": {0, 1, 3}, "drift": {0, 1, 2}}[command]
        if command == "plan" and "--detailed-exitcode" in args:
            codes.add(2)
        if command == "apply" and "--expect-digest" in args:
            codes.add(4)
        assert code in codes, (code, stderr)
        if usage or "--emulator" not in args:
            assert code == 1, stderr
        if code == 1 and saved.exists():
            raise AssertionError(f"a failed {command} left a plan file")
        targets = {args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "--target"}
        if not usage and targets - set(_names(document)):
            assert code == 1, stderr
            if "--emulator" in args and "--out" not in args:  # else that error comes first
                assert "--target names no source" in stderr, stderr


def _names(document: Node) -> list[str]:
    sources = dict(document.pairs).get("sources") or []
    return [dict(source.pairs)["name"] for source in sources if isinstance(source, Node)]


# --------------------------------------------------------------------------- over HTTP


def _subprocess(workspace: Workspace, *args: str, environ: dict[str, str]) -> tuple[int, str, str]:
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        env=child_env({**ENVIRON, **environ}),
        cwd=workspace.folder,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode, result.stdout, result.stderr


@pytest.mark.parametrize("number", [1, 2])
def test_export_then_drift_over_http_keep_the_contract(
    number: int, _emulator_server: tuple[Any, str], tmp_path: Path
) -> None:
    """A few generated hostile accounts served by uvicorn on 127.0.0.1, through real processes."""
    made: list[tuple[list[dict[str, Any]], bool]] = []

    @given(live_accounts(), st.booleans())
    @seed(number)
    @settings(max_examples=1, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    def pick(requests: list[dict[str, Any]], omit_unset: bool) -> None:
        made.append((requests, omit_unset))

    pick()
    requests, omit_unset = made[-1]
    store = account(requests, omit_unset=omit_unset)
    assert store.sources
    app, url = _emulator_server
    app.state.store = store
    try:
        workspace = _empty_workspace(tmp_path)
        code, stdout, stderr = _subprocess(workspace, "export", "--api-url", url, environ={})
        check_output(workspace, code, stdout, stderr)
        check_inert(stdout, stderr)
        assert code == 0, stderr
        (workspace.folder / "exported.yaml").write_text(stdout, encoding="utf-8")
        variables = header_variables(stdout)
        for command, expected in (("plan", "--detailed-exitcode"), ("drift", "--allow-unadopted")):
            code, stdout, stderr = _subprocess(
                workspace, command, "--api-url", url, expected, "exported.yaml", environ=variables
            )
            check_output(workspace, code, stdout, stderr)
            check_inert(stdout, stderr)
            assert code == 0, stdout + stderr
        first = next(iter(store.sources))
        store.update_source(first, {"name": "\u202e::error::renamed\x1b[2J", "enabled": True})
        code, stdout, stderr = _subprocess(
            workspace,
            "drift",
            "--api-url",
            url,
            "--allow-unadopted",
            "--format",
            "markdown",
            "exported.yaml",
            environ=variables,
        )
        check_output(workspace, code, stdout, stderr)
        check_inert(stdout, stderr)
        assert code == 2, stdout + stderr
        assert first in stdout
    finally:
        app.state.store = SourceStore()


# Any JSON a listing may carry: what a dashboard edit (no API checks) can leave behind.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.floats(allow_nan=False, allow_infinity=False)
    | hostile_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=6,
)


@given(live_accounts(), st.data())
@_profile(short=12)
def test_a_listing_the_format_cannot_hold_is_a_clear_verdict(
    requests: list[dict[str, Any]], data: st.DataObject
) -> None:
    # Values no API check let through (a dashboard edit, a newer API): `drift` reports them
    # (2) or refuses with one clear error (1), `export` writes a file that round-trips or
    # names the source it cannot express; no traceback, nothing raw, --debug's log included.
    store = account(requests, omit_unset=data.draw(st.booleans(), label="omit unset"))
    assume(store.sources)
    with tempfile.TemporaryDirectory() as root, serving(store):
        workspace = _empty_workspace(Path(root))
        variables = exported(workspace)
        for _ in range(data.draw(st.integers(1, 3), label="edits")):
            source_id = data.draw(st.sampled_from(sorted(store.sources)), label="source")
            kind = store.sources[source_id].deployment["type"]  # an earlier edit's, maybe
            model = DEPLOYMENT_MODELS.get(kind) if isinstance(kind, str) else None
            known = list(fields_by_api_name(model)) if model else ["type"]
            # Hostnames stay lists of text: the emulator indexes them, and the dashboard
            # offers nothing else.
            names = sorted({*known, "some_future_attribute"} - {*HOSTNAME_FIELDS})
            attributes = (st.sampled_from(names) | hostile_text).filter(
                lambda name: name not in HOSTNAME_FIELDS
            )
            api = data.draw(attributes, label="attribute")
            with contextlib.suppress(ApiProblem):
                store.dashboard_redeploy(source_id, {api: data.draw(json_values, label="value")})
        debug = ["--debug"] if data.draw(st.booleans(), label="debug") else []
        code, stdout, stderr = invoke(
            workspace,
            *debug,
            "drift",
            "--emulator",
            "--allow-unadopted",
            "exported.yaml",
            environ=variables,
        )
        check_output(workspace, code, stdout, stderr)
        check_inert(stdout, stderr)
        assert code in (0, 1, 2), stderr
        event(f"drift of a raw listing: exit {code}")
        code, stdout, stderr = invoke(workspace, *debug, "export", "--emulator")
        check_output(workspace, code, stdout, stderr)
        check_inert(stdout, stderr)
        assert code in (0, 1), stderr
        event(f"export of a raw listing: exit {code}")
        if code == 1:
            # The source named ("cannot be exported"), or a listing the client refuses.
            assert stdout == "", stdout
            return
        again = workspace.folder / "again.yaml"
        again.write_text(stdout, encoding="utf-8")
        variables = header_variables(stdout)
        code, stdout, stderr = invoke(
            workspace, "plan", "--emulator", "--detailed-exitcode", again.name, environ=variables
        )
        check_output(workspace, code, stdout, stderr)
        assert code == 0, stdout + stderr


# --------------------------------------------------------------------------- apply --wait
#
# `apply --wait` polls the touched sources until they are deployed. The emulator deploys in
# `deploy_delay` seconds of its clock; here that clock is a FakeClock the command's
# connection sleeps on too (started at the real monotonic time, which `--max-duration`
# counts from), so ten minutes of polling take no real time. At the wait's first poll,
# something may befall one touched source: it is deleted (a status, or gone: 404),
# disabled from the dashboard, or reports a status the API never documented.

# The applier's defaults: a poll every 2 s, for 10 minutes at the most (README "Apply").
WAIT_INTERVAL = 2.0
WAIT_TIMEOUT = 600.0
# Documented by the API: deploying, deployed, disabled, deleted.
UNDOCUMENTED_STATUSES = ["failed", "queued", ""]
TROUBLES = [None, None, "deleted", "gone", "disabled", *UNDOCUMENTED_STATUSES]
REPORTED = re.compile(
    r"^(applied|failed|not attempted|skipped|in effect|stale): (create|patch) (Fuzz \d+)"
    r"(?: \(([0-9a-f]+)\))?(?:: .*)?$",
    re.MULTILINE,
)
STILL_DEPLOYING = re.compile(r"^Not seen deployed when --wait ended: (.*)\.$", re.MULTILINE)
PLANNED = re.compile(r"^Plan: (\d+) to create, (\d+) to patch", re.MULTILINE)


class Troubled(SourceStore):
    """An emulated account where, at the first read of one source, trouble befalls it."""

    def __init__(self, trouble: str | None, **options: Any) -> None:
        super().__init__(**options)
        self.trouble = trouble
        self.victim: str | None = None
        self.odd: dict[str, str] = {}
        # Each source's status as the last read of it showed it, and when the first came.
        self.seen: dict[str, str] = {}
        self.first_poll_at: float | None = None

    def get_source(self, source_id: str) -> dict[str, Any]:
        if self.first_poll_at is None:
            self.first_poll_at = self.clock()
        if self.trouble is not None and self.victim is None:
            self.victim = source_id
            # Someone else's edit, not one of the command's writes: it takes no write time.
            on_commit, self.on_commit = self.on_commit, None
            if self.trouble == "gone":
                self.remove_source(source_id)
            elif self.trouble == "disabled":
                self.update_source(source_id, {"enabled": False})
            else:
                self.odd[source_id] = self.trouble
            self.on_commit = on_commit
        resource = super().get_source(source_id)
        self.seen[source_id] = resource["attributes"]["deployment_status"]
        return resource

    def _status(self, source: Any, now: float) -> str:
        if source.id in self.odd:
            return self.odd[source.id]
        return super()._status(source, now)


@dataclass
class WaitReport:
    """What an `apply --wait` printed: each action's outcome and source, what still deploys."""

    outcomes: list[tuple[str, str, str | None]]
    still_deploying: list[str]
    stopped: str | None = None


def wait_report(fmt: str, stdout: str) -> WaitReport:
    if fmt == "json":
        document = json.loads(stdout)
        outcomes = [(r["outcome"], r["source"], r["source_id"]) for r in document["results"]]
        return WaitReport(outcomes, document["still_deploying"], document["stopped"])
    outcomes = [(m[1], m[3], m[4]) for m in REPORTED.finditer(stdout)]
    still = STILL_DEPLOYING.search(stdout)
    return WaitReport(outcomes, still[1].split(", ") if still else [])


@dataclass
class Wait:
    """A document to create, how long a deployment and a write take, the trouble, the
    deadline (`--max-duration`, seconds) and the format."""

    document: Node
    delay: float
    trouble: str | None = None
    max_duration: int | None = None
    fmt: str = "text"
    write_time: float = 0.0


@st.composite
def waits(draw: st.DrawFn) -> Wait:
    return Wait(
        draw(documents().filter(_names)),
        delay=draw(st.sampled_from([0.0, 1.0, 7.0, 45.0, 599.0, 10.0**6])),
        trouble=draw(st.sampled_from(TROUBLES)),
        max_duration=draw(st.sampled_from([None, None, 1, 30, 300, 3600])),
        fmt=draw(st.sampled_from(["text", "json"])),
        write_time=draw(st.sampled_from([0.0, 0.0, 0.0, 20.0])),
    )


def _web_folders(count: int = 1) -> Node:
    sources = [
        Node(
            [
                ("name", f"Fuzz {number}"),
                (
                    "deployment",
                    Node(
                        [
                            ("type", "webfolder"),
                            ("imgix_subdomains", [f"wait{number}-fz"]),
                            ("webfolder_base_url", "https://origin.fuzz.example/"),
                        ]
                    ),
                ),
            ]
        )
        for number in range(count)
    ]
    return Node([("version", 1), ("sources", sources)])


# Found by this test: a touched source the API says is deleted, or in a status it never
# documented, ended the wait as if deployed (exit 0, `ok`); one gone (404) had every
# other reported still deploying, deployed or not; a wait --max-duration ended said
# nothing of it (`stopped: null`).
@given(waits())
@example(Wait(Node([("version", 1), ("sources", [])]), 0.0))
@example(Wait(_web_folders(), 0.0, "deleted", fmt="json"))
@example(Wait(_web_folders(), 0.0, "failed"))
@example(Wait(_web_folders(), 0.0, "failed", max_duration=300))
@example(Wait(_web_folders(), 0.0, ""))
@example(Wait(_web_folders(2), 0.0, "gone", fmt="json"))
@example(Wait(_web_folders(), 10.0**6, max_duration=30, fmt="json"))
@example(Wait(_web_folders(3), 0.0, max_duration=30, fmt="json", write_time=20.0))
@example(Wait(_web_folders(), 0.0, "disabled", max_duration=1, write_time=20.0))
@_profile(short=16)
def test_apply_wait_ends_bounded_with_every_action_and_what_still_deploys(case: Wait) -> None:
    document, delay, trouble, max_duration, fmt = (
        case.document,
        case.delay,
        case.trouble,
        case.max_duration,
        case.fmt,
    )
    clock = FakeClock(start=time.monotonic())
    unlimited = RateLimits(per_second=None, creates_per_hour=None, updates_per_hour=None)
    store = Troubled(
        trouble, clock=clock, deploy_delay=delay, rng=random.Random(0), limits=unlimited
    )
    if case.write_time:
        store.on_commit = lambda store: clock.advance(case.write_time)
    with tempfile.TemporaryDirectory() as root, waiting_on(store, clock):
        workspace = _write(Node(document.pairs), False, Path(root))
        workspace.files[0].write_text(_resolvable(document), encoding="utf-8")
        args = ["apply", "--emulator", "--auto-approve", "--wait", "--format", fmt]
        if max_duration is not None:
            args += ["--max-duration", f"{max_duration}s"]
        started = clock.now
        code, stdout, stderr = invoke(workspace, *args, workspace.files[0].name)
        waited = clock.now - started
        check_output(workspace, code, stdout, stderr)
        check_inert(stdout, stderr)
        context = f"exit {code}, waited {waited}\n{stdout}\n{stderr}"
        planned = PLANNED.search(stdout + stderr)
        if planned is None:  # nothing to do (every source observed), or refused
            assert code in (0, 1), context
            return
        assert code in (0, 3), context
        report = wait_report(fmt, stdout)
        assert len(report.outcomes) == int(planned[1]) + int(planned[2]), context
        # Nothing fails on this account: every action applies, but for --max-duration.
        outcomes = {outcome for outcome, _, _ in report.outcomes}
        if outcomes != {"applied"}:
            assert max_duration is not None and case.write_time, context
            assert outcomes <= {"applied", "failed", "stopped", "not attempted"}, context
            assert code == 3 and "--max-duration" in stdout, context
            # The deadline passed: no wait, and the report says why the run stopped.
            assert store.first_poll_at is None, context
            if fmt == "json":
                assert report.stopped == "stopped by --max-duration", context
        touched = {
            source_id: name
            for outcome, name, source_id in report.outcomes
            if source_id and outcome == "applied"
        }
        still = set(report.still_deploying)
        assert still <= set(touched), context
        assert (code == 0) == (not still and outcomes == {"applied"}), context

        # Bounded: by 10 minutes of polling, by --max-duration (checked after each pause
        # between polls, or before a write), and by the last deployment.
        polled = 0.0 if store.first_poll_at is None else clock.now - store.first_poll_at
        assert polled <= WAIT_TIMEOUT + 1e-6, context
        if max_duration is not None:
            # The fake clock starts at the real monotonic time: its sums round by its size.
            assert waited <= max_duration + max(WAIT_INTERVAL, case.write_time) + 1e-6, context
        if code == 0:
            assert polled <= delay + WAIT_INTERVAL + 1e-6, context
        # Ended by the deadline (not by 10 minutes, nor by giving up on a source), the wait
        # says so, as the writes do when it ends them.
        past_deadline = max_duration is not None and waited >= max_duration
        if fmt == "json" and past_deadline and still - {store.victim} and polled < WAIT_TIMEOUT:
            assert report.stopped == "stopped by --max-duration", context

        # What the report says of each touched source is what its last poll showed.
        for source_id in touched if store.first_poll_at is not None else ():
            seen = store.seen.get(source_id)
            if source_id in still:
                assert seen not in ("deployed", "disabled"), (source_id, seen, context)
            else:
                assert seen in ("deployed", "disabled"), (source_id, seen, context)
                assert store.status(store.sources[source_id]) == seen, context
        if store.victim is not None and trouble not in (None, "disabled"):
            # Deleted, gone, or a status no one can say is deployed: never `ok`.
            assert store.victim in still, context
        if trouble in ("deleted", "gone"):
            assert "--wait gave up" in stderr, context

        # The wait's progress: each touched source's status as it changed, on stderr.
        if store.first_poll_at is not None and "--wait gave up" not in stderr:
            for name in touched.values():
                shown = re.findall(rf"^  {re.escape(name)}: (.*)$", stderr, re.MULTILINE)
                assert shown, (name, context)
        event(f"apply --wait: exit {code}, {trouble or 'no'} trouble, waited {waited:.0f} s")
        if code == 0 and trouble != "disabled":
            planned_again = invoke(
                workspace, "plan", "--emulator", "--detailed-exitcode", workspace.files[0].name
            )
            assert planned_again[0] == 0, planned_again
