"""Numbers the emulator cannot serve are refused: 400 on the way in, an error in a state file.

Python's json reads `1e999` as infinity and integers of any length; stored, such a value
would make every later listing fail (JSON has no infinity), across restarts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from console import invoke

from reconciler.emulator import SourceStore
from reconciler.emulator.errors import BadRequest
from reconciler.emulator.numbers import MAX_SAFE_INTEGER, unsafe_number

SOURCES = "/api/v1/sources"
SITE: dict[str, Any] = {
    "type": "webfolder",
    "imgix_subdomains": ["numbers"],
    "webfolder_base_url": "https://site.example/",
}
REFUSAL = f"numbers must be finite, and integers within ±{MAX_SAFE_INTEGER}"


@pytest.fixture
def api(emulator_url: str, emulator_headers: dict[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator_url, headers=emulator_headers, timeout=5) as client:
        yield client


def raw_body(attributes_json: str, source_id: str | None = None) -> bytes:
    """A request body spelled by hand: `json.dumps` would not write these numbers."""
    identity = f'"id": "{source_id}", ' if source_id else ""
    return f'{{"data": {{{identity}"type": "sources", "attributes": {attributes_json}}}}}'.encode()


def create_json(deployment_extra: str) -> str:
    return (
        '{"name": "Numbers", "deployment": {"type": "webfolder", '
        '"imgix_subdomains": ["numbers"], "webfolder_base_url": "https://site.example/", '
        f"{deployment_extra}}}}}"
    )


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ('"default_params": {"a": 1e999}', "deployment.default_params.a"),
        ('"default_params": {"a": -1e999}', "deployment.default_params.a"),
        ('"default_params": {"a": NaN}', "deployment.default_params.a"),
        ('"default_params": {"w": [1, Infinity]}', "deployment.default_params.w[1]"),
        ('"default_params": {"a": 9007199254740992}', "deployment.default_params.a"),
        ('"cache_ttl_value": -90071992547409930', "deployment.cache_ttl_value"),
    ],
)
def test_a_number_json_cannot_carry_is_a_located_400(
    api: httpx.Client, emulator_store: SourceStore, extra: str, path: str
) -> None:
    response = api.post(SOURCES, content=raw_body(create_json(extra)))

    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["detail"] == f"{path}: {REFUSAL}."
    assert emulator_store.sources == {}
    assert api.get(SOURCES).status_code == 200


def test_an_integer_of_absurd_length_is_a_400_not_a_crash(
    api: httpx.Client, emulator_store: SourceStore
) -> None:
    response = api.post(SOURCES, content=raw_body(create_json('"cache_ttl_value": ' + "9" * 5000)))

    assert response.status_code == 400
    assert response.json()["errors"][0]["detail"] == "The request body is not valid JSON."
    assert emulator_store.sources == {}


def test_a_patch_cannot_store_one_either(api: httpx.Client, emulator_store: SourceStore) -> None:
    created = api.post(SOURCES, json={"data": {"type": "sources", "attributes": {
        "name": "Numbers", "deployment": SITE}}})  # fmt: skip
    assert created.status_code == 201, created.text
    source_id = created.json()["data"]["id"]
    attributes = '{"deployment": {"default_params": {"q": 1e999}}}'

    response = api.patch(f"{SOURCES}/{source_id}", content=raw_body(attributes, source_id))

    assert response.status_code == 400
    assert response.json()["errors"][0]["detail"] == f"deployment.default_params.q: {REFUSAL}."
    assert emulator_store.sources[source_id].deployment["default_params"] == {}
    listed = api.get(SOURCES)
    assert listed.status_code == 200
    assert [s["id"] for s in listed.json()["data"]] == [source_id]


def test_a_dashboard_change_cannot_store_one(emulator_store: SourceStore) -> None:
    created = emulator_store.create_source({"name": "Numbers", "deployment": SITE})
    with pytest.raises(BadRequest, match=r"^deployment\.cache_ttl_error: numbers must be"):
        emulator_store.dashboard_redeploy(created["id"], {"cache_ttl_error": math.inf})


def state_with(value: Any) -> dict[str, Any]:
    deployment = {**SITE, "default_params": {"a": value}}
    return {
        "version": 1,
        "sources": [{"id": "a" * 24, "name": "Numbers", "deployment": deployment}],
    }


def test_a_state_file_holding_one_is_refused_naming_where(tmp_path: Path) -> None:
    # What an emulator before this check wrote after accepting `{"a": 1e999}`.
    state = tmp_path / "state.json"
    written = json.dumps(state_with(math.inf))
    assert '"a": Infinity' in written
    state.write_text(written)

    result = invoke("emulator", "--port", "0", "--state", state)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"error: {state}: not an emulator state file "
        f"(sources[0].deployment.default_params.a: {REFUSAL})\n"
    )
    assert state.read_text() == written


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"a": [1, 2.5, True, None, "x"]}, None),
        ({"a": MAX_SAFE_INTEGER, "b": -MAX_SAFE_INTEGER}, None),
        # Number.MAX_SAFE_INTEGER spelled out: the bound itself is carried, one past is not.
        ({"a": 9_007_199_254_740_991, "b": -9_007_199_254_740_991}, None),
        ({"a": -9_007_199_254_740_992}, "a"),
        ({"a": {"b": [0, MAX_SAFE_INTEGER + 1]}}, "a.b[1]"),
        ([math.nan], "[0]"),
        ({"a": [True, False, math.inf]}, "a[2]"),  # booleans are skipped, not an end
        (-math.inf, ""),
    ],
)
def test_unsafe_number_finds_the_first_offender(value: Any, where: str | None) -> None:
    assert unsafe_number(value) == where
