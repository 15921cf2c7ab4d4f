"""The fuzzers' findings and chosen seeds, replayed without atheris: the suite's short mode.

`scripts/fuzz.py` holds the targets (imported here by path); each file under
`tests/fixtures/fuzz/TARGET/` is an input a campaign found a bug with (fixed since) or a
seed worth keeping, and must now meet its target's contract: success, or only the
parser's documented error.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent


def _load_fuzz() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_targets", REPOSITORY / "scripts/fuzz.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fuzz = _load_fuzz()
CORPUS: Path = fuzz.FINDINGS


def _saved() -> Iterator[tuple[str, Path]]:
    for folder in sorted(CORPUS.iterdir()):
        for path in sorted(folder.iterdir()):
            yield folder.name, path


@pytest.fixture(autouse=True)
def _scratch(tmp_path: Path) -> None:
    fuzz.scratch(tmp_path)


@pytest.mark.parametrize(("target", "path"), list(_saved()), ids=lambda v: getattr(v, "name", v))
def test_saved_input_meets_its_target_contract(target: str, path: Path) -> None:
    fuzz.TARGETS[target](path.read_bytes())


def test_every_saved_input_belongs_to_a_target() -> None:
    assert {folder.name for folder in CORPUS.iterdir()} <= set(fuzz.TARGETS)


@pytest.mark.parametrize("target", sorted(fuzz.TARGETS))
def test_every_target_has_seeds_that_meet_its_contract(target: str) -> None:
    planted = list(fuzz.seeds(target))
    assert planted
    for seed in planted:
        fuzz.TARGETS[target](seed)


def test_the_marker_version_of_thousands_of_digits_is_text() -> None:
    # Found by probing the annotation target: int() refused it (ValueError) before the fix.
    from reconciler.marker import parse_annotation

    annotation = "note [imgix-reconciler v" + "1" * 5000 + "]"
    assert parse_annotation(annotation) == (annotation, None)


def _leaking_load(*args: object, **kwargs: object) -> None:
    from reconciler.loader import LoadError, LocatedError

    raise LoadError([LocatedError("f.yaml", 1, 1, "name", f"bad value {fuzz.ENV_CANARY}")])


@pytest.mark.parametrize(
    ("target", "planted"),
    [
        ("desired_state", b"version: 1\nsources: []\n"),
        ("annotation", b"\x00[imgix-reconciler v1 fp.a=b]"),
        ("neutraliser", b"\x00::x"),
        ("api_response", b'\x04\x00{"errors": [{"title": "t", "detail": "a\\nb"}]}'),
    ],
)
def test_a_target_catches_a_broken_contract(
    target: str, planted: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The replay is only as good as its assertions: each fails when its parser breaks.
    if target == "desired_state":
        monkeypatch.setattr(fuzz, "load", _leaking_load)
    elif target == "annotation":
        monkeypatch.setattr(fuzz, "compose_annotation", lambda text, marker: "x")
    elif target == "neutraliser":
        monkeypatch.setattr(fuzz.untrusted, "escaped", lambda text: text)
    else:
        monkeypatch.setattr("reconciler.client.escaped", lambda text: text)
    with pytest.raises(AssertionError):
        fuzz.TARGETS[target](planted)


def test_a_plan_file_past_the_bound_is_refused_not_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found reading the plan_file target's entry points: `apply /dev/zero` (or a symlink to
    # it) read without end before `is_plan_file` and `read_plan_file` were bounded.
    from reconciler import reconcile

    monkeypatch.setattr(reconcile, "MAX_PLAN_BYTES", 1000)
    plan = tmp_path / "plan.json"
    plan.write_bytes((REPOSITORY / "tests/golden/plan.saved.json").read_bytes())
    assert plan.stat().st_size > 1000
    assert not reconcile.is_plan_file(plan)
    connection = reconcile.Connection(fuzz.API_URL, fuzz.API_KEY)
    with pytest.raises(reconcile.PlanFileError, match="cannot read the plan: larger than 1000"):
        reconcile.read_plan_file(plan, connection, fuzz.PLAN_ENVIRON)
    monkeypatch.setattr(reconcile, "MAX_PLAN_BYTES", plan.stat().st_size)
    assert reconcile.is_plan_file(plan)


def test_the_headers_target_catches_a_wait_of_a_year(monkeypatch: pytest.MonkeyPatch) -> None:
    # A client that slept whatever Retry-After asks: the injected clock must catch it.
    from reconciler import client

    async def obliging(
        self: client.ImgixClient, outcome: object, error: Exception, *args: object
    ) -> None:
        budget = args[2]
        if budget.attempt >= self._retry.attempts:  # type: ignore[attr-defined]
            raise error
        asked = client._asked_wait(outcome)  # type: ignore[arg-type]
        await self._pacer.pause(asked if asked is not None else 0.0)

    monkeypatch.setattr(client.ImgixClient, "_back_off", obliging)
    with pytest.raises(AssertionError, match="asked to sleep 31536000"):
        fuzz.headers(b"\x01\x03\x00\x00\x00\x00")  # 429 with Retry-After: 31536000


def test_the_headers_target_speaks_http_on_a_socket() -> None:
    # The status line and headers are the input's own bytes, parsed by httpx's h11.
    answer = fuzz._header_answer(b"\x01\x03\x00\x01\x00\x00")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [
        b"HTTP/1.1 429 Too Many Requests",
        b"Retry-After: 31536000",
        b"Content-Type: application/vnd.api+json",
        b"Content-Encoding: gzip",
        f"Content-Length: {len(body)}".encode(),
    ]
    assert json.loads(gzip.decompress(body)) == {
        "data": [],
        "meta": {"pagination": {"totalRecords": 1, "totalPages": 1}},
    }
