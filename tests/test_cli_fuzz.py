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

import json
import os
import re
import subprocess
import sys
import tempfile
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import annotated_types
import pytest
from click.testing import CliRunner
from console import child_env
from hypothesis import HealthCheck, example, given, seed, settings
from hypothesis import strategies as st
from pydantic.fields import FieldInfo

from reconciler.cli import main
from reconciler.specs import (
    CACHE_TTL_VALUE_MIN,
    DEPLOYMENT_MODELS,
    SourceSpec,
    fields_by_api_name,
    reference_fields,
    secret_fields,
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


def _value(draw: st.DrawFn, api: str, info: FieldInfo, taken: set[str]) -> Any:
    """A value the model accepts for one field, read from its annotation and metadata."""
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
        return draw(st.integers(low if low is not None else 0, high or 10**6))
    if typing.get_origin(annotation) is list:
        return _hostnames(draw, api, taken) if api in ("imgix_subdomains", "custom_domains") else []
    if typing.get_origin(annotation) is dict:
        return Node(draw(st.sampled_from([[], [("auto", "format")], [("q", 75)]])))
    if "url" in checks:
        return "https://origin.fuzz.example/" + draw(st.from_regex(r"[a-z]{0,8}", fullmatch=True))
    if "basic_auth" in checks:
        return draw(st.from_regex(r"[a-z]{1,12}", fullmatch=True))
    letters = st.characters(codec="utf-8", categories=["L", "N", "P", "Zs"])
    return draw(st.text(letters, min_size=1, max_size=24))


@st.composite
def deployments(draw: st.DrawFn, taken: set[str]) -> Node:
    """A deployment of any type: required fields, some optional ones, secrets referenced."""
    kind, model = draw(st.sampled_from(sorted(DEPLOYMENT_MODELS.items())))
    secrets = secret_fields(model)
    pairs: list[tuple[str, Any]] = [("type", kind)]
    for api, info in fields_by_api_name(model).items():
        if api == "type" or (not info.is_required() and draw(st.integers(0, 3)) != 0):
            continue
        if api in secrets:
            pairs.append((api, _reference(draw)))
        else:
            pairs.append((api, _value(draw, api, info, taken)))
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


def invoke(workspace: Workspace, *args: str) -> tuple[int, str, str]:
    """The command in-process, in the repository folder; exit code, stdout, stderr."""
    runner = CliRunner()
    env = {name: None for name in os.environ if name.startswith(("IMGIX_", "GITHUB_"))}
    cwd = os.getcwd()
    os.chdir(workspace.folder)
    try:
        result = runner.invoke(main, list(args), env={**env, **ENVIRON})
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
