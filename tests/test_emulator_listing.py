"""Listing filters and sorts on stored fields: the same pages as filtering built resources."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.emulator import ApiProblem, RateLimits, SourceStore
from reconciler.emulator.deployments import public_deployment, shown_value
from reconciler.emulator.limits import ManualClock
from reconciler.emulator.listing import Resource, parse_query, select, shown_in
from reconciler.emulator.store import FILTERABLE

MINIMAL: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent / "fixtures" / "emulator-deployments.json").read_text()
)
UNLIMITED = RateLimits(per_second=None, creates_per_hour=None, updates_per_hour=None)

# Values a filter may ask for, chosen so that some sources match and some do not.
FILTER_VALUES: dict[str, list[str]] = {
    "name": ["a", "b", "a,b"],
    "enabled": ["true", "false", "true,false"],
    "deployment_status": ["deployed", "deploying", "disabled", "deployed,disabled"],
    "date_deployed": ["1000", "1010", "1000,1020"],
    "deployment.type": ["s3", "gcs,webfolder", "webproxy,s3_compatible,azure"],
    "deployment.imgix_subdomains": ["sub0", "sub1,sub2", "missing"],
    "deployment.allows_upload": ["false", "null"],
    "deployment.secure_url_enabled": ["true", "false"],
    "deployment.s3_bucket": ["b", "null"],
    "deployment.custom_domains": ["img0.example", "img1.example,img2.example", "null"],
    "deployment.annotation": ["New deployment created for source by dashboard"],
}
SORTS = ["", "name", "-name", "enabled,name", "-date_deployed", "date_deployed,-enabled"]
FIELDS = [None, "name", "name,deployment.type", "deployment_status,deployment.allows_upload"]

source_plans = st.lists(
    st.fixed_dictionaries(
        {
            "kind": st.sampled_from(sorted(MINIMAL)),
            "name": st.sampled_from(["a", "b", "a,b"]),
            "after": st.sampled_from([0, 2, 10]),
            "enabled": st.booleans(),
            "secure": st.booleans(),
            "custom": st.booleans(),
            "dashboard": st.booleans(),
        }
    ),
    max_size=12,
)
queries = st.fixed_dictionaries(
    {
        "filters": st.dictionaries(
            st.sampled_from(sorted(FILTER_VALUES)), st.integers(0, 3), max_size=2
        ),
        "sort": st.sampled_from(SORTS),
        "fields": st.sampled_from(FIELDS),
        "number": st.integers(0, 4),
        "size": st.sampled_from([None, 1, 3, 100]),
    }
)


def filled(plans: list[dict[str, Any]]) -> SourceStore:
    clock = ManualClock(1000.0)
    store = SourceStore(clock=clock, rng=random.Random(5), limits=UNLIMITED, deploy_delay=5.0)
    for index, plan in enumerate(plans):
        clock.advance(plan["after"])
        deployment = {"type": plan["kind"], "imgix_subdomains": [f"sub{index}"]}
        deployment |= MINIMAL[plan["kind"]]
        # A web proxy must sign its URLs.
        deployment["secure_url_enabled"] = plan["secure"] or plan["kind"] == "webproxy"
        if plan["custom"]:
            deployment["custom_domains"] = [f"img{index}.example"]
        created = store.create_source(
            {"name": plan["name"], "enabled": plan["enabled"], "deployment": deployment}
        )
        if plan["dashboard"]:
            store.dashboard_redeploy(created["id"], {"cache_ttl_value": 60})
    clock.advance(3)
    return store


def params_of(query: dict[str, Any]) -> dict[str, str]:
    params = {
        f"filter[{path}]": FILTER_VALUES[path][choice % len(FILTER_VALUES[path])]
        for path, choice in query["filters"].items()
    }
    if query["sort"]:
        params["sort"] = query["sort"]
    if query["fields"] is not None:
        params["fields[sources]"] = query["fields"]
    params["page[number]"] = str(query["number"])
    if query["size"] is not None:
        params["page[size]"] = str(query["size"])
    return params


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans=source_plans, query=queries)
def test_pages_match_filtering_every_built_resource(
    plans: list[dict[str, Any]], query: dict[str, Any]
) -> None:
    store = filled(plans)
    params = params_of(query)
    everything: list[Resource] = [store.resource(s) for s in store.sources.values()]
    expected = select(
        everything,
        parse_query(params, store.max_page_size, FILTERABLE),
        shown=shown_in,
        build=lambda resource: resource,
    )
    assert store.list_sources(params) == expected


def test_only_the_page_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    store = filled([{"kind": "s3", "name": "a", "after": 0, "enabled": True} | _plain()] * 30)
    built: list[str] = []
    real = store._resource

    def counted(source: Any, now: float) -> Resource:
        built.append(source.id)
        return real(source, now)

    monkeypatch.setattr(store, "_resource", counted)
    page = store.list_sources({"page[size]": "7", "page[number]": "2", "sort": "-name"})
    assert [r["id"] for r in page.resources] == built
    assert len(built) == 7 and page.pagination["totalRecords"] == 30


def _plain() -> dict[str, Any]:
    return {"secure": False, "custom": False, "dashboard": False}


def test_shown_value_is_what_public_deployment_shows() -> None:
    store = filled(
        [
            {"kind": kind, "name": "a", "after": 0, "enabled": True, **_plain(), "secure": secure}
            for kind in sorted(MINIMAL)
            for secure in (False, True)
        ]
    )
    for source in store.sources.values():
        shown = public_deployment(source.deployment, source.encrypted)
        names = FILTERABLE | shown.keys() | source.deployment.keys() | {"not_an_attribute"}
        for name in sorted(names):
            assert shown_value(source.deployment, source.encrypted, name) == shown.get(name), name


def test_the_page_hook_sees_each_page_once_cut_and_may_change_the_account() -> None:
    store = filled([{"kind": "s3", "name": "a", "after": 0, "enabled": True} | _plain()] * 25)
    ids = list(store.sources)
    served: list[int] = []

    def remove_first_after_page_0(number: int) -> None:
        served.append(number)
        if number == 0:
            store.remove_source(ids[0])

    store.on_page_listed = remove_first_after_page_0
    first = store.list_sources({"page[size]": "10", "page[number]": "0"})
    second = store.list_sources({"page[size]": "10", "page[number]": "1"})

    assert served == [0, 1]
    # Page 0 was cut before the removal; page 1 after it, shifted by one.
    assert [r["id"] for r in first.resources] == ids[:10]
    assert first.pagination["totalRecords"] == 25
    assert [r["id"] for r in second.resources] == ids[11:21]
    assert second.pagination["totalRecords"] == 24


def test_a_removed_source_is_gone_and_frees_its_hostnames() -> None:
    store = filled([{"kind": "s3", "name": "a", "after": 0, "enabled": True} | _plain()] * 3)
    removed, *kept = store.sources
    committed: list[int] = []
    store.on_commit = lambda committed_store: committed.append(len(committed_store.sources))

    store.remove_source(removed)

    assert list(store.sources) == kept
    assert committed == [2]
    assert [r["id"] for r in store.list_sources({}).resources] == kept
    deployment = {"type": "s3", "imgix_subdomains": ["sub0"]} | MINIMAL["s3"]
    assert store.create_source({"name": "again", "deployment": deployment})["id"] not in kept
    with pytest.raises(ApiProblem):
        store.remove_source(removed)


def test_no_page_hook_by_default() -> None:
    assert SourceStore().on_page_listed is None
