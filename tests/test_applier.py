"""The applier against the emulator, with hand-written plans (the planner is tested apart)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from conftest import FakeClock

from reconciler.applier import (
    REREAD_AFTER,
    Listing,
    SecretResolver,
    WaitEnd,
    apply_plan,
    wait_until_deployed,
)
from reconciler.client import ApiError, ImgixClient, TransportError
from reconciler.emulator import EMULATOR_API_KEY, SourceStore, create_app
from reconciler.emulator.limits import Faults
from reconciler.errors import ApplyRefused, StalePlan
from reconciler.live import LiveSource
from reconciler.loader import load
from reconciler.marker import Marker, parse_annotation
from reconciler.pacing import Pacer, Pacing, Stop
from reconciler.plan import Action, OwnedElsewhere, Plan, Summary, compute_digest
from reconciler.planner import PlanOptions, plan
from reconciler.rails import Permissions, check_permissions
from reconciler.render import render_report
from reconciler.report import ActionResult, ApplyReport
from reconciler.specs import DesiredState

SECRET = "applier-canary-secret-0123456789"
REPORT_SCHEMA = Path(__file__).parent.parent / "schemas" / "apply-report.schema.json"


def s3_deployment(subdomains: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "type": "s3",
        "s3_access_key": "AKIAEXAMPLE",
        "s3_bucket": "bucket",
        "s3_secret_key": {"secret": {"env": "APPLIER_SECRET"}},
        "imgix_subdomains": subdomains,
        **extra,
    }


def make_plan(*actions: Action) -> Plan:
    listed = list(actions)
    return Plan(
        digest=compute_digest(listed),
        summary=Summary(
            create=sum(a.action == "create" for a in listed),
            patch=sum(a.action == "patch" for a in listed),
            unchanged=0,
            unmanaged=0,
        ),
        actions=listed,
    )


def create(name: str, subdomains: list[str]) -> Action:
    return Action(
        action="create",
        source=name,
        id=None,
        changes=[],
        writes=[{"name": name, "enabled": True, "deployment": s3_deployment(subdomains)}],
    )


def seed(store: SourceStore, name: str, subdomains: list[str]) -> str:
    deployment = s3_deployment(subdomains, s3_secret_key="seeded-secret-value")
    return str(store.create_source({"name": name, "deployment": deployment})["id"])


def patch(store: SourceStore, source_id: str, *writes: dict[str, Any], **fields: Any) -> Action:
    from reconciler.live import LiveSource

    live = LiveSource.from_resource(store.get_source(source_id))
    return Action(
        action="patch",
        source=live.name,
        id=source_id,
        changes=[],
        writes=list(writes),
        live_fingerprint=live.fingerprint(),
        **fields,
    )


def client_for(store: SourceStore, clock: FakeClock) -> ImgixClient:
    return ImgixClient(
        api_key=EMULATOR_API_KEY,
        base_url="http://emulator",
        transport=httpx.ASGITransport(app=create_app(store)),
        pacing=Pacing(per_second=None, creates_per_hour=None, updates_per_hour=None),
        clock=clock.time,
        sleep=clock.sleep,
    )


def run(store: SourceStore, clock: FakeClock, plan: Plan, **options: Any) -> Any:
    async def go() -> Any:
        async with client_for(store, clock) as client:
            return await apply_plan(
                plan, client, resolver=SecretResolver({"APPLIER_SECRET": SECRET}), **options
            )

    return asyncio.run(go())


def writes_in(store: SourceStore) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in store.request_log if r.method in ("POST", "PATCH")]


def test_applies_creates_and_patches_and_resolves_secrets_at_send_time(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    existing = seed(emulator_store, "Blog", ["acme-blog"])
    plan = make_plan(
        create("Products", ["acme-products"]),
        patch(emulator_store, existing, {"deployment": {"cache_ttl_value": 86400}}),
    )
    report = run(emulator_store, fake_clock, plan)
    assert report.ok and report.writes == 2
    posted = next(r for r in emulator_store.request_log if r.method == "POST")
    assert posted.body["data"]["attributes"]["deployment"]["s3_secret_key"] == SECRET
    assert emulator_store.get_source(existing)["attributes"]["deployment"]["cache_ttl_value"] == (
        86400
    )


def test_destructive_plan_is_refused_without_allow_disable_and_nothing_is_written(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    existing = seed(emulator_store, "Blog", ["acme-blog"])
    emulator_store.request_log.clear()
    plan = make_plan(patch(emulator_store, existing, {"enabled": False}, destructive=True))
    with pytest.raises(ApplyRefused, match="--allow-disable"):
        run(emulator_store, fake_clock, plan)
    assert writes_in(emulator_store) == []
    assert run(emulator_store, fake_clock, plan, allow_disable=True).ok


def test_a_stale_saved_plan_is_refused_before_any_write(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    existing = seed(emulator_store, "Blog", ["acme-blog"])
    plan = make_plan(
        create("Products", ["acme-products"]),
        patch(emulator_store, existing, {"deployment": {"cache_ttl_value": 86400}}),
    )
    emulator_store.dashboard_redeploy(existing, {"cache_ttl_value": 7200})
    emulator_store.request_log.clear()
    with pytest.raises(StalePlan, match=r"Blog .* changed"):
        run(emulator_store, fake_clock, plan, saved=True)
    assert writes_in(emulator_store) == []


def test_a_saved_create_whose_hostname_was_taken_since_is_stale(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    plan = make_plan(create("Products", ["acme-products"]))
    seed(emulator_store, "Someone else", ["acme-products"])
    with pytest.raises(StalePlan, match="acme-products now taken"):
        run(emulator_store, fake_clock, plan, saved=True)


def test_a_missing_secret_refuses_before_any_write(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    plan = make_plan(create("Products", ["acme-products"]))

    async def go() -> None:
        async with client_for(emulator_store, fake_clock) as client:
            await apply_plan(plan, client, resolver=SecretResolver({}))

    with pytest.raises(ApplyRefused, match="APPLIER_SECRET is not set"):
        asyncio.run(go())
    assert writes_in(emulator_store) == []


def test_one_failed_action_does_not_stop_the_others_and_dependents_are_skipped(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    emulator_store.foreign_hostnames.add("taken-elsewhere")
    doomed = create("Doomed", ["taken-elsewhere"])
    dependent = create("Dependent", ["acme-dependent"]).model_copy(
        update={"depends_on": [doomed.key]}
    )
    plan = make_plan(doomed, create("Products", ["acme-products"]), dependent)
    report = run(emulator_store, fake_clock, plan)
    outcomes = {r.source: r.outcome for r in report.results}
    assert outcomes == {"Doomed": "failed", "Products": "applied", "Dependent": "skipped"}
    failed = next(r for r in report.results if r.source == "Doomed")
    assert "taken-elsewhere" in (failed.error or "")
    assert SECRET not in (failed.error or "")
    assert report.stopped is None  # a failure is no stop: nothing says --max-duration
    skipped = next(r for r in report.results if r.source == "Dependent")
    assert skipped.error == f"not attempted: it waits for {doomed.key}, which did not apply"


def test_a_released_hostname_is_claimed_only_after_the_release(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    old = seed(emulator_store, "Old", ["acme-old", "acme-moving"])
    new = seed(emulator_store, "New", ["acme-new"])
    release = patch(emulator_store, old, {"deployment": {"imgix_subdomains": ["acme-old"]}})
    claim = patch(
        emulator_store,
        new,
        {"deployment": {"imgix_subdomains": ["acme-new", "acme-moving"]}},
        depends_on=[release.key],
    )
    emulator_store.request_log.clear()
    report = run(emulator_store, fake_clock, make_plan(claim, release))
    assert report.ok
    assert writes_in(emulator_store) == [
        ("PATCH", f"/api/v1/sources/{old}"),
        ("PATCH", f"/api/v1/sources/{new}"),
    ]


def test_wait_polls_until_deployed_on_the_injected_clock(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    source_id = seed(emulator_store, "Blog", ["acme-blog"])
    seen: list[str | None] = []

    async def go() -> WaitEnd:
        async with client_for(emulator_store, fake_clock) as client:
            return await wait_until_deployed(
                client,
                [source_id],
                interval=2.0,
                sleep=fake_clock.sleep,
                on_status=lambda s: seen.append(s.deployment_status),
            )

    assert asyncio.run(go()) == WaitEnd([], {})
    assert seen[0] == "deploying" and seen[-1] == "deployed"
    assert fake_clock.elapsed >= emulator_store.deploy_delay


STAMP_YAML = """\
version: 1
sources:
  - name: Products
    deployment:
      type: s3
      imgix_subdomains: [acme-products]
      s3_bucket: products
      s3_access_key: AKIAEXAMPLE
      s3_secret_key: {env: APPLIER_SECRET}
"""


def test_the_marker_records_the_secret_actually_sent_not_the_one_planned(
    emulator_store: SourceStore, fake_clock: FakeClock, tmp_path: Path
) -> None:
    """A saved plan made without (or with another) secret, applied with this one, converges."""
    (tmp_path / "sources.yaml").write_text(STAMP_YAML)
    files = [tmp_path / "sources.yaml"]
    options = PlanOptions(fingerprint_key=b"key")

    async def go() -> tuple[Plan, Plan]:
        async with client_for(emulator_store, fake_clock) as client:
            unresolved = load(files, environ={}, secrets_optional=True).state
            saved = plan(unresolved, await client.list_sources(), options)
            report = await apply_plan(
                saved,
                client,
                resolver=SecretResolver({"APPLIER_SECRET": SECRET}),
                fingerprint_key=b"key",
            )
            assert report.ok
            resolved = load(files, environ={"APPLIER_SECRET": SECRET}).state
            rotated = load(files, environ={"APPLIER_SECRET": SECRET + "-rotated"}).state
            live = await client.list_sources()
            return plan(resolved, live, options), plan(rotated, live, options)

    same, rotated = asyncio.run(go())
    assert same.actions == []
    assert [c.path for a in rotated.actions for c in a.changes] == ["deployment.s3_secret_key"]


@pytest.mark.parametrize(
    ("locator", "environ", "reason"),
    [
        ({"env": "APPLIER_SECRET"}, {"APPLIER_SECRET": ""}, "variable APPLIER_SECRET is empty"),
        ({"file": "/dev/zero"}, {}, "cannot read /dev/zero: not a regular file"),
    ],
)  # fmt: skip
def test_applying_reads_secrets_by_the_loaders_rules(
    locator: dict[str, str], environ: dict[str, str], reason: str
) -> None:
    """A saved plan's secrets are read like the file's: no empty value, no endless file."""
    with pytest.raises(ApplyRefused, match=reason):
        SecretResolver(environ).value(locator)


def test_a_saved_plan_may_claim_what_its_own_patches_release(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    old = seed(emulator_store, "Old", ["acme-old", "acme-moving"])
    release = patch(emulator_store, old, {"deployment": {"imgix_subdomains": ["acme-old"]}})
    claim = create("New", ["acme-new", "acme-moving"]).model_copy(
        update={"depends_on": [release.key]}
    )
    report = run(emulator_store, fake_clock, make_plan(release, claim), saved=True)
    assert report.ok

    # Listed before the patch that releases it, the claim is still no stale plan.
    emulator_store.sources = {}
    old = seed(emulator_store, "Old", ["acme-old", "acme-moving"])
    release = patch(emulator_store, old, {"deployment": {"imgix_subdomains": ["acme-old"]}})
    claim = claim.model_copy(update={"depends_on": [release.key]})
    assert run(emulator_store, fake_clock, make_plan(claim, release), saved=True).ok


def test_a_saved_patch_of_a_source_listed_with_null_custom_domains_is_applied(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    # An answer with null for a hostname list (as if none): it releases nothing, it is not
    # a crash of the freshness check.
    existing = seed(emulator_store, "Blog", ["acme-blog"])
    emulator_store.sources[existing].deployment["custom_domains"] = None
    domains = {"deployment": {"custom_domains": ["img.example.com"]}}
    plan = make_plan(patch(emulator_store, existing, domains))

    report = run(emulator_store, fake_clock, plan, saved=True)

    assert [r.outcome for r in report.results] == ["applied"]
    live = LiveSource.from_resource(emulator_store.get_source(existing))
    assert live.hostnames == {"acme-blog", "img.example.com"}


def test_a_saved_patch_whose_claim_was_taken_since_is_stale(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    mine = seed(emulator_store, "Mine", ["acme-mine"])
    grow = patch(
        emulator_store, mine, {"deployment": {"imgix_subdomains": ["acme-mine", "acme-extra"]}}
    )
    seed(emulator_store, "Intruder", ["acme-extra"])
    emulator_store.request_log.clear()
    with pytest.raises(StalePlan, match="Mine: acme-extra now taken"):
        run(emulator_store, fake_clock, make_plan(grow), saved=True)
    assert writes_in(emulator_store) == []


def test_a_wait_that_gives_up_names_what_is_still_deploying(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    emulator_store.deploy_delay = 10_000
    source_id = seed(emulator_store, "Slow", ["acme-slow"])

    async def go() -> WaitEnd:
        async with client_for(emulator_store, fake_clock) as client:
            return await wait_until_deployed(
                client, [source_id], interval=2.0, timeout=6.0, sleep=fake_clock.sleep
            )

    assert asyncio.run(go()) == WaitEnd([source_id], {})
    assert not ApplyReport(still_deploying=[source_id]).ok


class _Polled:
    """An API whose sources answer a poll with a status, a 404 or a failure, by id."""

    def __init__(self, answers: dict[str, str | BaseException]) -> None:
        self.answers = answers

    async def get_source(self, source_id: str) -> LiveSource:
        answer = self.answers[source_id]
        if isinstance(answer, BaseException):
            raise answer
        return LiveSource(id=source_id, deployment_status=answer)


def test_a_wait_tells_why_each_source_was_not_seen_deployed(fake_clock: FakeClock) -> None:
    # Only the report tells deleted sources from those still deploying at the end.
    gone = ApiError(404, "Not Found", None, None)
    api = _Polled({"a": "deploying", "b": "deleted", "c": gone, "d": "deployed"})

    heard: list[str] = []

    async def go(ids: list[str]) -> WaitEnd:
        heard.clear()
        return await wait_until_deployed(
            api,  # type: ignore[arg-type]
            ids,
            interval=2.0,
            timeout=6.0,
            sleep=fake_clock.sleep,
            on_gave_up=heard.append,
        )

    assert asyncio.run(go(["a", "b", "c", "d"])) == WaitEnd(
        ["a", "b", "c"], {"b": "deleted", "c": "gone"}
    )
    assert heard == ["imgix API 404 Not Found", "deleted while deploying: b"]
    api.answers["c"] = TransportError("no response")  # the API down: c's state is unknown
    assert asyncio.run(go(["c", "a", "d"])) == WaitEnd(["c", "a"], {"c": "unknown"})
    assert heard == ["no response"]
    # An error other than 404 says nothing of the source: unknown too, not gone.
    api.answers["c"] = ApiError(500, "Internal Server Error", None, None)
    assert asyncio.run(go(["c", "a", "d"])) == WaitEnd(["c", "a"], {"c": "unknown"})
    assert heard == ["imgix API 500 Internal Server Error"]
    api.answers["c"] = TransportError("")  # named by its kind, never by nothing
    assert asyncio.run(go(["c"])) == WaitEnd(["c"], {"c": "unknown"})
    assert heard == ["TransportError"]


def test_a_secret_read_at_apply_time_must_pass_its_attributes_checks(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    """A saved plan applied with a malformed secret is refused before any write (exit 1)."""
    action = Action(
        action="create",
        source="Proxy",
        id=None,
        changes=[],
        writes=[
            {
                "name": "Proxy",
                "deployment": {
                    "type": "webproxy",
                    "imgix_subdomains": ["acme-proxy"],
                    "request_handshake": {"secret": {"env": "APPLIER_SECRET"}},
                },
            }
        ],
    )
    short = "short-canary-value"

    async def go() -> None:
        async with client_for(emulator_store, fake_clock) as client:
            await apply_plan(
                make_plan(action), client, resolver=SecretResolver({"APPLIER_SECRET": short})
            )

    with pytest.raises(ApplyRefused) as refused:
        asyncio.run(go())
    assert str(refused.value) == (
        "request_handshake (from {env: APPLIER_SECRET}) must be exactly 32 latin-1 "
        f"characters (the value has {len(short)})"
    )
    assert short not in str(refused.value)
    assert writes_in(emulator_store) == []


# --------------------------------------------------------------------------- rails


def _folder(name: str, base: str = "https://o.example/", **top: Any) -> dict[str, Any]:
    deployment = {"type": "webfolder", "webfolder_base_url": base}
    return {"name": name, **top, "deployment": {**deployment, "imgix_subdomains": [name.lower()]}}


def _live(name: str, source_id: str) -> LiveSource:
    deployment = {
        "type": "webfolder",
        "webfolder_base_url": "https://o.example/",
        "imgix_subdomains": [name.lower()],
    }
    return LiveSource(id=source_id, name=name, enabled=True, deployment=deployment)


def test_each_rail_refuses_naming_its_sources_and_is_lifted_by_its_own_flag() -> None:
    names = ["a", "b", "c", "d"]
    live = [_live(n, f"{i:024x}") for i, n in enumerate(names)]
    files = DesiredState.model_validate(
        {
            "version": 1,
            "sources": [
                _folder("a", "https://moved.example/"),
                _folder("b", "https://moved.example/"),
                _folder("c", "https://moved.example/", mode="protect"),
                _folder("d", enabled=False),
            ],
        }
    )
    made = plan(files, live, PlanOptions(fingerprint_key=b"k"))
    with pytest.raises(ApplyRefused) as refused:
        check_permissions(made)
    message = str(refused.value)
    assert message.startswith("nothing was written, for 3 reasons:")
    for flag in ("--allow-disable", "--allow-large-change", "--allow-protected-change"):
        assert flag in message
    assert [r.sources[0][1] for r in refused.value.refusals] == ["d", "a", "c"]
    everything = Permissions(
        allow_disable=True, allow_large_change=True, allow_protected_change=True
    )
    check_permissions(made, permissions=everything)
    for lifted in ("allow_disable", "allow_large_change", "allow_protected_change"):
        flags = {name: name != lifted for name in everything.__dataclass_fields__}
        with pytest.raises(ApplyRefused) as still:
            check_permissions(made, permissions=Permissions(**flags))
        assert f"--{lifted.replace('_', '-')}" in str(still.value)


def test_an_edited_saved_plan_cannot_hide_its_blast_radius() -> None:
    live = [_live(n, f"{i:024x}") for i, n in enumerate("abc")]
    files = DesiredState.model_validate(
        {"version": 1, "sources": [_folder(n, "https://moved.example/") for n in "abc"]}
    )
    made = plan(files, live, PlanOptions(fingerprint_key=b"k"))
    assert made.blast_radius is not None and made.blast_radius.exceeded
    forged = made.model_copy(
        update={"blast_radius": made.blast_radius.model_copy(update={"exceeded": False})}
    )
    with pytest.raises(ApplyRefused, match="--allow-large-change"):
        check_permissions(forged)


def test_reference_placeholders_are_resolved_and_checked_like_the_loader_does() -> None:
    resolver = SecretResolver({"BASE": "https://origin.example/", "NOTE": "note-from-env"})
    body = {
        "webfolder_base_url": {"reference": {"env": "BASE"}},
        "annotation": {"reference": {"env": "NOTE"}},
    }
    assert resolver.resolve(body) == {
        "webfolder_base_url": "https://origin.example/",
        "annotation": "note-from-env",
    }
    # The marker is the action's, rendered by the applier: a plan carries no text of it.
    with pytest.raises(ApplyRefused, match="malformed placeholder"):
        resolver.resolve({"annotation": {"reference": {"env": "NOTE"}, "suffix": " [x]"}})
    bad = SecretResolver({"BASE": "not-a-url-canary"})
    with pytest.raises(ApplyRefused) as refused:
        bad.resolve({"webfolder_base_url": {"reference": {"env": "BASE"}}})
    assert str(refused.value) == (
        "webfolder_base_url (from {env: BASE}) must be an absolute http(s) URL"
    )
    with pytest.raises(ApplyRefused, match="takes no reference"):
        bad.resolve({"cache_ttl_value": {"reference": {"env": "BASE"}}})
    with pytest.raises(ApplyRefused, match="malformed placeholder"):
        bad.resolve({"s3_bucket": {"reference": {"env": "BASE"}, "extra": 1}})


def test_refusals_show_outside_text_neutralised() -> None:
    hostile = make_plan().model_copy(
        update={
            "owned_elsewhere": [
                OwnedElsewhere(source="x\n::error::forged", id="a" * 24, owner="\x1b[31mevil")
            ]
        }
    )
    with pytest.raises(ApplyRefused) as refused:
        check_permissions(hostile)
    message = str(refused.value)
    assert "\x1b" not in message and "\n" not in message
    assert '"\\u001b[31mevil"' in message and "--take-over" in message


# --------------------------------------------------------------------------- re-read


def budgeted(store: SourceStore, clock: FakeClock) -> ImgixClient:
    """A client allowed one update an hour: a plan's second patch waits an hour for it."""
    return ImgixClient(
        api_key=EMULATOR_API_KEY,
        base_url="http://emulator",
        transport=httpx.ASGITransport(app=create_app(store)),
        pacing=Pacing(per_second=None, creates_per_hour=None, updates_per_hour=1),
        clock=clock.time,
        sleep=clock.sleep,
    )


def apply_budgeted(store: SourceStore, clock: FakeClock, plan: Plan, **options: Any) -> ApplyReport:
    async def go() -> ApplyReport:
        async with budgeted(store, clock) as client:
            return await apply_plan(
                plan,
                client,
                resolver=SecretResolver({"APPLIER_SECRET": SECRET}),
                clock=clock.time,
                **options,
            )

    return asyncio.run(go())


def on_first_write(store: SourceStore, meanwhile: Callable[[], None]) -> None:
    """Run `meanwhile` once the first write is committed (the next one waits an hour)."""

    def commit(store: SourceStore) -> None:
        store.on_commit = None
        meanwhile()

    store.on_commit = commit


TTL = {"deployment": {"cache_ttl_value": 86400}}
# The second patch also sends a secret: read (and masked) before the first write.
TTL_AND_SECRET = {
    "deployment": {"cache_ttl_value": 86400, "s3_secret_key": {"secret": {"env": "APPLIER_SECRET"}}}
}


def two_patches(store: SourceStore) -> tuple[str, str, Plan]:
    first = seed(store, "First", ["acme-first"])
    second = seed(store, "Second", ["acme-second"])
    plan = make_plan(patch(store, first, TTL), patch(store, second, TTL_AND_SECRET))
    return first, second, plan


def reads_of(store: SourceStore, source_id: str) -> list[str]:
    """The requests for one source, in order (`GET`, `PATCH`)."""
    path = f"/api/v1/sources/{source_id}"
    return [entry.method for entry in store.request_log if entry.path == path]


@pytest.mark.parametrize("saved", [True, False])
def test_a_patch_that_waited_for_the_budget_does_not_overwrite_a_dashboard_edit(
    emulator_store: SourceStore, fake_clock: FakeClock, saved: bool
) -> None:
    first, second, plan = two_patches(emulator_store)
    hostile = "\x1b[31m::error::forged"
    edit = {"cache_ttl_value": 7200, SECRET: 1, hostile: 2}
    on_first_write(emulator_store, lambda: emulator_store.dashboard_redeploy(second, edit))
    listed = [LiveSource.from_resource(emulator_store.get_source(i)) for i in (first, second)]
    listing = None if saved else Listing(listed, fake_clock.now)

    report = apply_budgeted(emulator_store, fake_clock, plan, saved=saved, listing=listing)

    assert [(r.source, r.outcome) for r in report.results] == [
        ("First", "applied"),
        ("Second", "stale"),
    ]
    assert not report.ok and report.writes == 1
    assert fake_clock.elapsed >= 3600  # the second patch waited for the budget, then read
    assert reads_of(emulator_store, second) == ["GET"]
    deployment = emulator_store.get_source(second)["attributes"]["deployment"]
    assert deployment["cache_ttl_value"] == 7200  # the edit survives
    error = report.results[1].error or ""
    assert error == (
        "not applied: it changed since the plan (deployment.\\u001b[31m::error::forged, "
        "deployment.annotation, deployment.***, deployment.cache_ttl_value); run plan again"
    )
    assert SECRET not in error and "\x1b" not in error
    document = json.loads(render_report(report, "json"))
    jsonschema.validate(document, json.loads(REPORT_SCHEMA.read_text(encoding="utf-8")))
    assert document["counts"] == {"applied": 1, "stale": 1}
    assert "1 not applied (changed since the plan)" in render_report(report, "text")


def test_a_patch_whose_source_is_unchanged_after_the_wait_is_written_after_one_read(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    first, second, plan = two_patches(emulator_store)

    report = apply_budgeted(emulator_store, fake_clock, plan, saved=True)

    assert report.ok and report.writes == 2
    # The first patch went out at once: no read; the second, an hour later: read, written.
    assert reads_of(emulator_store, first) == ["PATCH"]
    assert reads_of(emulator_store, second) == ["GET", "PATCH"]


def test_a_patch_another_run_already_made_during_the_wait_is_in_effect(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    first = seed(emulator_store, "First", ["acme-first"])
    second = seed(emulator_store, "Second", ["acme-second"])
    plan = make_plan(patch(emulator_store, first, TTL), patch(emulator_store, second, TTL))
    change = {"cache_ttl_value": 86400}
    on_first_write(emulator_store, lambda: emulator_store.dashboard_redeploy(second, change))

    report = apply_budgeted(emulator_store, fake_clock, plan)

    assert [r.outcome for r in report.results] == ["applied", "in effect"]
    assert report.ok and report.writes == 1
    assert reads_of(emulator_store, second) == ["GET"]


def test_a_patch_of_a_referenced_value_another_run_made_during_the_wait_is_in_effect(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    # It was stale: the value behind the reference is read before the write, so it is known.
    first = seed(emulator_store, "First", ["acme-first"])
    second = seed(emulator_store, "Second", ["acme-second"])
    keyed = {"deployment": {"s3_access_key": {"reference": {"env": "APPLIER_SECRET"}}}}
    plan = make_plan(patch(emulator_store, first, TTL), patch(emulator_store, second, keyed))
    change = {"s3_access_key": SECRET}
    on_first_write(emulator_store, lambda: emulator_store.dashboard_redeploy(second, change))

    report = apply_budgeted(emulator_store, fake_clock, plan)

    assert [r.outcome for r in report.results] == ["applied", "in effect"]
    assert report.ok and report.writes == 1


def test_a_source_gone_during_the_wait_is_stale_and_a_failed_read_writes_nothing(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    _, second, plan = two_patches(emulator_store)

    def gone() -> None:
        emulator_store.sources = {
            key: value for key, value in emulator_store.sources.items() if key != second
        }

    on_first_write(emulator_store, gone)
    report = apply_budgeted(emulator_store, fake_clock, plan)
    assert [r.outcome for r in report.results] == ["applied", "stale"]
    assert report.results[1].error == "not applied: it no longer exists; run plan again"

    emulator_store.sources = {}
    _, second, plan = two_patches(emulator_store)
    emulator_store.request_log.clear()
    on_first_write(emulator_store, lambda: setattr(emulator_store, "faults", Faults(1.0)))
    report = apply_budgeted(emulator_store, fake_clock, plan)
    assert [r.outcome for r in report.results] == ["applied", "failed"]
    assert (report.results[1].error or "").startswith(
        "not written: reading the source again before its write failed: "
    )
    assert "PATCH" not in reads_of(emulator_store, second)


def test_a_listing_older_than_the_threshold_makes_every_patch_read_first(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    """`apply FILE` answered at the prompt two minutes after its listing."""
    first, second, plan = two_patches(emulator_store)
    unpaced = client_for(emulator_store, fake_clock)
    listing = Listing([], fake_clock.now - REREAD_AFTER - 1)

    async def go() -> ApplyReport:
        async with unpaced as client:
            return await apply_plan(
                plan,
                client,
                resolver=SecretResolver({"APPLIER_SECRET": SECRET}),
                listing=listing,
                clock=fake_clock.time,
            )

    assert asyncio.run(go()).ok
    assert reads_of(emulator_store, first) == ["GET", "PATCH"]
    assert reads_of(emulator_store, second) == ["GET", "PATCH"]


def test_a_patch_planned_without_a_fingerprint_is_checked_against_its_listing(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    # A plan made by hand, or by a caller that hashes nothing: the listing it was made from
    # is what the source must still be before the late write goes out.
    source_id = seed(emulator_store, "Blog", ["acme-blog"])
    emulator_store.sources[source_id].deployment["dropped_later"] = None
    listed = LiveSource.from_resource(emulator_store.get_source(source_id))
    unhashed = patch(emulator_store, source_id, TTL).model_copy(update={"live_fingerprint": None})
    # An attribute the API starts or stops returning, null, is a change all the same.
    emulator_store.dashboard_redeploy(source_id, {"cache_ttl_value": 7200, "added_later": None})
    del emulator_store.sources[source_id].deployment["dropped_later"]
    emulator_store.request_log.clear()

    async def go() -> ApplyReport:
        async with client_for(emulator_store, fake_clock) as client:
            return await apply_plan(
                make_plan(unhashed),
                client,
                resolver=SecretResolver({"APPLIER_SECRET": SECRET}),
                listing=Listing([listed], fake_clock.now - REREAD_AFTER - 1),
                clock=fake_clock.time,
            )

    report = asyncio.run(go())

    assert [(r.outcome, r.error) for r in report.results] == [
        (
            "stale",
            "not applied: it changed since the plan "
            "(deployment.added_later, deployment.annotation, deployment.cache_ttl_value, "
            "deployment.dropped_later); run plan again",
        )
    ]
    assert reads_of(emulator_store, source_id) == ["GET"]


class _FirstPatchRefused(httpx.AsyncBaseTransport):
    """The emulator, but the first PATCH is refused with a 429 asking for one second."""

    def __init__(self, store: SourceStore) -> None:
        self.inner = httpx.ASGITransport(app=create_app(store))
        self.refused = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH" and not self.refused:
            self.refused = True
            return httpx.Response(429, headers={"Retry-After": "1"}, json={"errors": []})
        return await self.inner.handle_async_request(request)


def test_a_patch_read_before_its_write_is_not_read_again_for_its_retry(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    """A refused write's retry comes a second after the re-read: that read is still fresh."""
    source_id = seed(emulator_store, "Blog", ["acme-blog"])
    plan = make_plan(patch(emulator_store, source_id, TTL))
    transport = _FirstPatchRefused(emulator_store)
    client = ImgixClient(
        api_key=EMULATOR_API_KEY,
        base_url="http://emulator",
        transport=transport,
        pacing=Pacing(per_second=None, creates_per_hour=None, updates_per_hour=None),
        clock=fake_clock.time,
        sleep=fake_clock.sleep,
    )

    async def go() -> ApplyReport:
        async with client:
            return await apply_plan(
                plan,
                client,
                resolver=SecretResolver({}),
                listing=Listing([], fake_clock.now - REREAD_AFTER - 1),
                clock=fake_clock.time,
            )

    assert asyncio.run(go()).ok
    assert transport.refused
    # The emulator saw the re-read and the retried write; the refused one never reached it.
    assert reads_of(emulator_store, source_id) == ["GET", "PATCH"]


def test_the_later_writes_of_one_action_are_not_read_again(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    """An action's own first write changed the source: the second is not a stale plan."""
    source_id = seed(emulator_store, "Blog", ["acme-blog"])
    plan = make_plan(
        patch(emulator_store, source_id, TTL, {"deployment": {"cache_ttl_value": 3600}})
    )

    report = apply_budgeted(emulator_store, fake_clock, plan, saved=True)

    assert report.ok and report.writes == 2
    assert fake_clock.elapsed >= 3600  # its second write waited for the budget
    assert reads_of(emulator_store, source_id) == ["PATCH", "PATCH"]


def test_a_stale_action_names_five_changed_paths_at_most_and_none_it_cannot_know(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    _, second, plan = two_patches(emulator_store)
    many = {f"added_{n}_" + "x" * 100: n for n in range(8)}
    on_first_write(emulator_store, lambda: emulator_store.dashboard_redeploy(second, many))
    report = apply_budgeted(emulator_store, fake_clock, plan, saved=True)
    error = report.results[1].error or ""
    assert error.startswith("not applied: it changed since the plan (deployment.added_0_xxx")
    assert error.endswith("xx…, deployment.added_4_" + "x" * 60 + "… and 4 more); run plan again")

    # Without the listing the plan was made from, the change is known, not what it was.
    emulator_store.sources = {}
    _, second, plan = two_patches(emulator_store)
    on_first_write(emulator_store, lambda: emulator_store.dashboard_redeploy(second, many))
    report = apply_budgeted(emulator_store, fake_clock, plan)
    assert report.results[1].error == "not applied: it changed since the plan; run plan again"


# --------------------------------------------------------------------------- resuming


def test_a_saved_plan_applied_again_is_in_effect_and_writes_nothing(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    """A stopped run resumed: what the first run made is recognised, not called stale."""
    existing = seed(emulator_store, "Blog", ["acme-blog"])
    renamed = {
        "name": "Journal",
        "enabled": False,
        "deployment": {"cache_ttl_value": 86400, "annotation": "kept in git"},
    }
    plan = make_plan(
        create("Products", ["acme-products"]),
        patch(emulator_store, existing, renamed, destructive=True),
    )
    first = run(emulator_store, fake_clock, plan, saved=True, allow_disable=True)
    assert first.ok and first.writes == 2
    emulator_store.request_log.clear()

    again = run(emulator_store, fake_clock, plan, saved=True, allow_disable=True)

    assert [r.outcome for r in again.results] == ["in effect", "in effect"]
    assert again.ok and again.writes == 0 and again.touched_ids == []
    assert writes_in(emulator_store) == []

    # One attribute put back by hand since: that patch is no longer in effect but stale.
    emulator_store.dashboard_redeploy(existing, {"annotation": "edited by hand"})
    with pytest.raises(StalePlan, match=r"Blog \(.*\) changed"):
        run(emulator_store, fake_clock, plan, saved=True, allow_disable=True)
    assert writes_in(emulator_store) == []


def test_a_saved_plan_that_sets_referenced_values_is_in_effect_once_applied(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    # It was stale once applied, so a stopped run of a file with a referenced attribute
    # (the example's access_key_id) could not be resumed: yet apply reads the values
    # behind the references before it checks the plan, so it knows them.
    existing = seed(emulator_store, "Blog", ["acme-blog"])
    noted = {"deployment": {"annotation": {"reference": {"env": "APPLIER_SECRET"}}}}
    created = create("Products", ["acme-products"])
    created.writes[0]["deployment"]["s3_access_key"] = {"reference": {"env": "APPLIER_SECRET"}}
    plan = make_plan(created, patch(emulator_store, existing, noted))
    assert run(emulator_store, fake_clock, plan, saved=True).ok
    emulator_store.request_log.clear()

    again = run(emulator_store, fake_clock, plan, saved=True)

    assert [r.outcome for r in again.results] == ["in effect", "in effect"]
    assert writes_in(emulator_store) == []

    # Another value behind the references now: neither action is in effect.
    async def with_another_value() -> Any:
        async with client_for(emulator_store, fake_clock) as client:
            other = SecretResolver({"APPLIER_SECRET": "another-value-0123456789abcdefgh"})
            return await apply_plan(plan, client, resolver=other, saved=True)

    with pytest.raises(StalePlan, match=r"Products: acme-products now taken; Blog \(.*\) changed"):
        asyncio.run(with_another_value())
    assert writes_in(emulator_store) == []


def test_a_saved_create_with_its_marker_applied_again_is_in_effect(
    emulator_store: SourceStore, fake_clock: FakeClock, tmp_path: Path
) -> None:
    (tmp_path / "sources.yaml").write_text(STAMP_YAML)
    environ = {"APPLIER_SECRET": SECRET}
    desired = load([tmp_path / "sources.yaml"], environ=environ).state
    saved = plan(desired, [], PlanOptions(fingerprint_key=b"key"))
    assert saved.actions[0].marker is not None

    def apply() -> ApplyReport:
        return run(emulator_store, fake_clock, saved, saved=True, fingerprint_key=b"key")

    assert apply().ok
    emulator_store.request_log.clear()
    again = apply()
    assert [r.outcome for r in again.results] == ["in effect"]
    assert writes_in(emulator_store) == []

    # An edit in the dashboard drops the marker: the create is no longer known to be in
    # effect, and its hostname is now another source's.
    (source_id,) = emulator_store.sources
    emulator_store.dashboard_redeploy(source_id, {})
    with pytest.raises(StalePlan, match="acme-products now taken"):
        apply()


def test_a_saved_plan_made_without_its_secrets_applied_again_is_in_effect(
    emulator_store: SourceStore, fake_clock: FakeClock, tmp_path: Path
) -> None:
    # Planned where the secrets are not (a pull request's job), applied where they are: the
    # source records the fingerprint of the secret sent, which the plan could not know. A
    # stopped run resumed, or a job retried, was refused "acme-products now taken" (exit
    # 4), and a second job racing the first reported its create failed.
    (tmp_path / "sources.yaml").write_text(STAMP_YAML)
    unresolved = load([tmp_path / "sources.yaml"], environ={}, secrets_optional=True).state
    saved = plan(unresolved, [], PlanOptions(fingerprint_key=b"key"))
    first = run(emulator_store, fake_clock, saved, saved=True, fingerprint_key=b"key")
    assert first.ok
    made = first.results[0].source_id
    emulator_store.request_log.clear()

    resumed = run(emulator_store, fake_clock, saved, saved=True, fingerprint_key=b"key")
    racing = run(emulator_store, fake_clock, saved, fingerprint_key=b"key")

    assert [r.outcome for r in resumed.results] == ["in effect"]
    assert [(r.outcome, r.source_id) for r in racing.results] == [("in effect", made)]
    assert writes_in(emulator_store) == [("POST", "/api/v1/sources")]  # the racing one, refused


def test_a_create_another_run_of_the_plan_made_first_is_in_effect_not_failed(
    emulator_store: SourceStore, fake_clock: FakeClock, tmp_path: Path
) -> None:
    # Two applies of one plan at once (two jobs of one account, a retried job): both
    # planned the create, the second's was refused "acme-products is already in use" and
    # it exited 3, though the source it wanted was there, marker and secret alike.
    (tmp_path / "sources.yaml").write_text(STAMP_YAML)
    desired = load([tmp_path / "sources.yaml"], environ={"APPLIER_SECRET": SECRET}).state
    planned = plan(desired, [], PlanOptions(fingerprint_key=b"key"))

    def apply() -> ApplyReport:
        return run(emulator_store, fake_clock, planned, fingerprint_key=b"key")

    first = apply()
    assert first.ok
    emulator_store.request_log.clear()

    second = apply()

    assert [(r.outcome, r.source_id) for r in second.results] == [
        ("in effect", first.results[0].source_id)
    ]
    assert second.ok and second.writes == 0 and second.stopped is None
    assert writes_in(emulator_store) == [("POST", "/api/v1/sources")]  # refused

    # A source made otherwise (its marker gone with a dashboard edit) is not this create's.
    (source_id,) = emulator_store.sources
    emulator_store.dashboard_redeploy(source_id, {})
    third = apply()
    assert [r.outcome for r in third.results] == ["failed"]
    assert "acme-products is already in use" in str(third.results[0].error)


def test_creates_another_run_made_first_are_found_in_one_listing_not_one_each(
    emulator_store: SourceStore, fake_clock: FakeClock, tmp_path: Path
) -> None:
    # Each refused create listed the whole account again: 50 of them in an account of
    # thousands of sources are minutes of reads at 4 requests/s.
    (tmp_path / "sources.yaml").write_text(
        "version: 1\nsources:\n"
        + "".join(
            STAMP_YAML.split("sources:\n")[1]
            .replace("Products", f"Products {n}")
            .replace("acme-products", f"acme-products-{n}")
            for n in range(3)
        )
    )
    desired = load([tmp_path / "sources.yaml"], environ={"APPLIER_SECRET": SECRET}).state
    planned = plan(desired, [], PlanOptions(fingerprint_key=b"key"))
    assert run(emulator_store, fake_clock, planned, fingerprint_key=b"key").ok
    emulator_store.request_log.clear()

    second = run(emulator_store, fake_clock, planned, fingerprint_key=b"key")

    assert [r.outcome for r in second.results] == ["in effect"] * 3
    listings = [r for r in emulator_store.request_log if r.method == "GET"]
    assert len(listings) == 1


def test_a_create_of_a_referenced_value_another_run_made_first_is_in_effect(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    # The value behind the reference is read before the first write: the source the other
    # run made is known to hold it, as a secret's fingerprint is known from the marker.
    created = create("Products", ["acme-products"])
    created.writes[0]["deployment"]["s3_access_key"] = {"reference": {"env": "APPLIER_SECRET"}}
    planned = make_plan(created)
    first = run(emulator_store, fake_clock, planned)
    assert first.ok

    second = run(emulator_store, fake_clock, planned)

    assert [(r.outcome, r.source_id) for r in second.results] == [
        ("in effect", first.results[0].source_id)
    ]


class _AnotherRunCreatesLate:
    """The emulator's client, but another run makes `late` just before this one creates it,
    after this run listed the account for an earlier refused create."""

    def __init__(self, client: ImgixClient, late: Action) -> None:
        self.client = client
        self.late = late
        self.listed = asyncio.Event()

    async def list_sources(self) -> list[LiveSource]:
        listed = await self.client.list_sources()
        self.listed.set()
        return listed

    async def get_source(self, source_id: str) -> LiveSource:
        return await self.client.get_source(source_id)

    async def create_source(self, attributes: dict[str, Any]) -> LiveSource:
        if attributes["name"] == self.late.source:
            await self.listed.wait()
            await apply_plan(
                make_plan(self.late),
                self.client,
                resolver=SecretResolver({"APPLIER_SECRET": SECRET}),
            )
        return await self.client.create_source(attributes)

    async def update_source(self, source_id: str, attributes: dict[str, Any]) -> LiveSource:
        return await self.client.update_source(source_id, attributes)


def test_a_create_another_run_made_after_the_last_listing_is_found_by_listing_again(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    early, late = create("Products", ["acme-products"]), create("Docs", ["acme-docs"])
    assert run(emulator_store, fake_clock, make_plan(early)).ok

    async def go() -> ApplyReport:
        async with client_for(emulator_store, fake_clock) as client:
            return await apply_plan(
                make_plan(early, late),
                _AnotherRunCreatesLate(client, late),
                resolver=SecretResolver({"APPLIER_SECRET": SECRET}),
            )

    report = asyncio.run(go())

    assert [r.outcome for r in report.results] == ["in effect", "in effect"]
    listings = [r for r in emulator_store.request_log if r.method == "GET"]
    assert len(listings) == 2


class _CreatesFail:
    """The emulator's client, but every create fails with `error`."""

    def __init__(self, client: ImgixClient, error: Exception) -> None:
        self.client = client
        self.error = error

    async def list_sources(self) -> list[LiveSource]:
        return await self.client.list_sources()

    async def get_source(self, source_id: str) -> LiveSource:
        return await self.client.get_source(source_id)

    async def create_source(self, attributes: dict[str, Any]) -> LiveSource:
        raise self.error

    async def update_source(self, source_id: str, attributes: dict[str, Any]) -> LiveSource:
        return await self.client.update_source(source_id, attributes)


@pytest.mark.parametrize(
    "error",
    [
        ApiError(500, "Internal Server Error", None, None),
        TransportError("no response from the API (connection reset)"),
        TransportError(""),
    ],
    ids=repr,
)
def test_a_create_failing_otherwise_than_for_its_hostname_is_failed_though_its_source_exists(
    emulator_store: SourceStore, fake_clock: FakeClock, error: Exception
) -> None:
    # Only a refusal for a hostname in use says another run got there first; a server
    # error or no answer is a write that failed, whatever the account holds.
    planned = make_plan(create("Products", ["acme-products"]))
    assert run(emulator_store, fake_clock, planned).ok

    async def go() -> ApplyReport:
        async with client_for(emulator_store, fake_clock) as client:
            return await apply_plan(
                planned,
                _CreatesFail(client, error),
                resolver=SecretResolver({"APPLIER_SECRET": SECRET}),
            )

    report = asyncio.run(go())

    # An error without a message is named by its kind: the report never says nothing.
    why = str(error) or type(error).__name__
    assert [(r.outcome, r.error) for r in report.results] == [("failed", why)]
    assert not report.ok


def test_hostnames_the_api_lists_in_another_order_are_still_in_effect(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    existing = seed(emulator_store, "Blog", ["acme-a"])
    grow = {"deployment": {"imgix_subdomains": ["acme-a", "acme-b"], "cache_ttl_value": 86400}}
    plan = make_plan(patch(emulator_store, existing, grow))
    assert run(emulator_store, fake_clock, plan, saved=True).ok
    emulator_store.dashboard_redeploy(existing, {"imgix_subdomains": ["acme-b", "acme-a"]})

    again = run(emulator_store, fake_clock, plan, saved=True)

    assert [r.outcome for r in again.results] == ["in effect"]
    emulator_store.dashboard_redeploy(existing, {"imgix_subdomains": ["acme-a"]})
    with pytest.raises(StalePlan, match=r"Blog \(.*\) changed"):
        run(emulator_store, fake_clock, plan, saved=True)


def test_an_action_of_two_writes_without_a_pending_disable_records_none_between_them(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    # A pending disable recorded by the first write would have the next plan disable a
    # source the file wants enabled, were the run killed between the two writes.
    existing = seed(emulator_store, "Blog", ["acme-blog"])
    marked = patch(
        emulator_store,
        existing,
        {"deployment": {"cache_ttl_value": 86400, "annotation": None}},
        {"deployment": {"cache_ttl_value": 3600, "annotation": None}},
        marker=Marker(),
    )
    emulator_store.request_log.clear()

    assert run(emulator_store, fake_clock, make_plan(marked)).ok

    sent = [
        parse_annotation(r.body["data"]["attributes"]["deployment"]["annotation"])
        for r in emulator_store.request_log
        if r.method == "PATCH"
    ]
    assert [a.marker is not None and a.marker.pending_disable for a in sent] == [False, False]


def test_a_saved_patch_clearing_the_annotation_text_is_in_effect_once_applied(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    # Empty text is no text: the live annotation holds the marker alone.
    existing = seed(emulator_store, "Blog", ["acme-blog"])
    cleared = {"deployment": {"cache_ttl_value": 86400, "annotation": ""}}
    saved = make_plan(patch(emulator_store, existing, cleared, marker=Marker()))
    assert run(emulator_store, fake_clock, saved, saved=True).ok
    emulator_store.request_log.clear()

    again = run(emulator_store, fake_clock, saved, saved=True)

    assert [r.outcome for r in again.results] == ["in effect"]
    assert writes_in(emulator_store) == []


def test_placeholders_are_resolved_wherever_the_body_holds_them() -> None:
    resolver = SecretResolver({"APPLIER_SECRET": SECRET})
    body = {"deployment": {"list": [{"secret": {"env": "APPLIER_SECRET"}}, "plain", 3]}}
    assert resolver.resolve(body) == {"deployment": {"list": [SECRET, "plain", 3]}}
    assert body["deployment"]["list"][0] == {"secret": {"env": "APPLIER_SECRET"}}
    # A map whose first key is named like a placeholder, but that holds text, is sent as is.
    params = {"deployment": {"default_params": {"secret": "text", "w": "100"}}}
    assert resolver.resolve(params) == params
    assert resolver.resolve({"default_params": {"reference": "text"}}) == {
        "default_params": {"reference": "text"}
    }


WEB_YAML = """\
version: 1
sources:
  - name: Site
    deployment:
      type: webfolder
      imgix_subdomains: [acme-site]
      webfolder_base_url: https://site.example/
      username: reader
      password: {env: APPLIER_SECRET}
"""


def test_a_web_secrets_encrypted_value_is_recorded_and_the_next_plan_is_empty(
    emulator_store: SourceStore, fake_clock: FakeClock, tmp_path: Path
) -> None:
    (tmp_path / "sources.yaml").write_text(WEB_YAML)
    environ = {"APPLIER_SECRET": SECRET}
    desired = load([tmp_path / "sources.yaml"], environ=environ).state
    options = PlanOptions(fingerprint_key=b"key")
    made = plan(desired, [], options)
    assert made.actions[0].record_encrypted
    heard: list[ActionResult] = []

    report = run(emulator_store, fake_clock, made, fingerprint_key=b"key", on_result=heard.append)

    assert report.ok and report.writes == 2  # the create, then the annotation that records
    assert heard == report.results
    (source_id,) = emulator_store.sources
    live = LiveSource.from_resource(emulator_store.get_source(source_id))
    assert live.annotation.marker is not None and live.annotation.marker.encrypted
    again = plan(desired, [live], options)
    assert again.actions == [] and again.notices == []


def test_a_web_secret_sent_without_annotation_text_is_recorded_after_the_live_text(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    # A hand-written patch sending only the password: the record keeps the text the
    # source came back with, and adds the fingerprint and the encrypted value.
    site = str(
        emulator_store.create_source(
            {
                "name": "Site",
                "deployment": {
                    "type": "webfolder",
                    "imgix_subdomains": ["acme-site"],
                    "webfolder_base_url": "https://site.example/",
                    "username": "reader",
                    "password": "an-older-password-value",
                },
            }
        )["id"]
    )
    password = {"deployment": {"password": {"secret": {"env": "APPLIER_SECRET"}}}}
    action = patch(emulator_store, site, password, marker=Marker(), record_encrypted=True)

    report = run(emulator_store, fake_clock, make_plan(action), fingerprint_key=b"key")

    assert report.ok and report.writes == 2
    returned = LiveSource.from_resource(emulator_store.get_source(site))
    assert returned.annotation.text == "New deployment created for source by imgix-emulator"
    recorded = returned.annotation.marker
    assert recorded is not None
    assert set(recorded.fingerprints) == {"password"} and set(recorded.encrypted) == {"password"}


# --------------------------------------------------------------------------- audit


def test_a_saved_patch_whose_source_was_removed_since_is_stale_and_names_it(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    existing = seed(emulator_store, "Blog", ["acme-blog"])
    plan = make_plan(
        create("Products", ["acme-products"]),
        patch(emulator_store, existing, {"deployment": {"cache_ttl_value": 86400}}),
    )
    emulator_store.remove_source(existing)
    emulator_store.request_log.clear()
    with pytest.raises(StalePlan) as refused:
        run(emulator_store, fake_clock, plan, saved=True)
    assert f"Blog ({existing}) no longer exists" in str(refused.value)
    assert writes_in(emulator_store) == []


def test_a_saved_create_whose_hostname_another_source_took_is_stale_though_its_secret_is_unknown(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    """The write-only secret is passed over, not the attributes that follow it."""
    wanted = create("Products", ["acme-products"])
    deployment = {**wanted.writes[0]["deployment"], "cache_ttl_value": 86400}
    wanted = wanted.model_copy(update={"writes": [{**wanted.writes[0], "deployment": deployment}]})
    plan = make_plan(wanted)
    # Everything the create sets but the attribute after its secret: not its source.
    taken = {k: v for k, v in deployment.items() if k != "cache_ttl_value"}
    emulator_store.create_source(
        {"name": "Products", "deployment": {**taken, "s3_secret_key": "someone-elses-key"}}
    )
    emulator_store.request_log.clear()
    with pytest.raises(StalePlan, match="acme-products now taken"):
        run(emulator_store, fake_clock, plan, saved=True)
    assert writes_in(emulator_store) == []


def test_a_saved_patch_claiming_a_hostname_in_its_second_write_is_stale_once_it_is_taken(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    mine = seed(emulator_store, "Mine", ["acme-mine"])
    grow = patch(
        emulator_store,
        mine,
        {"name": "Mine, renamed"},
        {"deployment": {"imgix_subdomains": ["acme-mine", "acme-extra"]}},
    )
    seed(emulator_store, "Theirs", ["acme-extra"])
    emulator_store.request_log.clear()
    with pytest.raises(StalePlan, match="Mine: acme-extra now taken"):
        run(emulator_store, fake_clock, make_plan(grow), saved=True)
    assert writes_in(emulator_store) == []


class _UnreadableAfterFirstWrite:
    """The emulator's client, but a source cannot be read once a first write is made."""

    def __init__(self, client: ImgixClient, error: Exception) -> None:
        self.client = client
        self.error = error
        self.written = False

    async def list_sources(self) -> list[LiveSource]:
        return await self.client.list_sources()

    async def get_source(self, source_id: str) -> LiveSource:
        if self.written:
            raise self.error
        return await self.client.get_source(source_id)

    async def create_source(self, attributes: dict[str, Any]) -> LiveSource:
        return await self.client.create_source(attributes)

    async def update_source(self, source_id: str, attributes: dict[str, Any]) -> LiveSource:
        returned = await self.client.update_source(source_id, attributes)
        self.written = True
        return returned


@pytest.mark.parametrize(
    ("error", "why"),
    [
        (
            TransportError("no response from the API (connection reset)"),
            "no response from the API (connection reset)",
        ),
        (TransportError(""), "TransportError"),  # named by its kind, never by nothing
    ],
)
def test_a_patch_whose_source_cannot_be_read_after_the_wait_is_failed_and_not_written(
    emulator_store: SourceStore, fake_clock: FakeClock, error: Exception, why: str
) -> None:
    _, second, plan = two_patches(emulator_store)

    async def go() -> ApplyReport:
        async with budgeted(emulator_store, fake_clock) as client:
            return await apply_plan(
                plan,
                _UnreadableAfterFirstWrite(client, error),
                resolver=SecretResolver({"APPLIER_SECRET": SECRET}),
                clock=fake_clock.time,
            )

    report = asyncio.run(go())

    assert [r.outcome for r in report.results] == ["applied", "failed"]
    assert report.writes == 1
    assert report.results[1].error == (
        f"not written: reading the source again before its write failed: {why}"
    )
    assert "PATCH" not in reads_of(emulator_store, second)
    assert report.stopped is None


def stoppable(store: SourceStore, clock: FakeClock, stop: Stop) -> ImgixClient:
    """One update an hour, and the run's `Stop` in the pacer (as `apply` wires it)."""
    pacing = Pacing(per_second=None, creates_per_hour=None, updates_per_hour=1)
    return ImgixClient(
        api_key=EMULATOR_API_KEY,
        base_url="http://emulator",
        transport=httpx.ASGITransport(app=create_app(store)),
        pacing=pacing,
        clock=clock.time,
        sleep=clock.sleep,
        pacer=Pacer(pacing, clock=clock.time, sleep=clock.sleep, stop=stop),
    )


def apply_stoppable(store: SourceStore, clock: FakeClock, plan: Plan, stop: Stop) -> ApplyReport:
    async def go() -> ApplyReport:
        async with stoppable(store, clock, stop) as client:
            return await apply_plan(
                plan,
                client,
                resolver=SecretResolver({"APPLIER_SECRET": SECRET}),
                stop=stop,
                clock=clock.time,
            )

    return asyncio.run(go())


def test_a_signal_between_an_actions_writes_reports_it_failed_after_the_writes_made(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    """Its second write would wait an hour for the budget: past the stop's grace."""
    source_id = seed(emulator_store, "Blog", ["acme-blog"])
    plan = make_plan(
        patch(emulator_store, source_id, TTL, {"deployment": {"cache_ttl_value": 3600}}),
    )
    stop = Stop()
    on_first_write(emulator_store, lambda: stop.request("stopped by SIGTERM"))

    report = apply_stoppable(emulator_store, fake_clock, plan, stop)

    (result,) = report.results
    assert result.outcome == "failed" and result.source_id == source_id
    assert result.error == "stopped after 1 of 2 writes: stopped by SIGTERM"
    assert report.writes == 1 and report.stopped == "stopped by SIGTERM"
    assert reads_of(emulator_store, source_id) == ["PATCH"]


def test_a_deadline_between_an_actions_writes_stops_the_run_as_max_duration_does(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    """No action was left unattempted: the cut action alone says the run was stopped."""
    source_id = seed(emulator_store, "Blog", ["acme-blog"])
    plan = make_plan(
        patch(emulator_store, source_id, TTL, {"deployment": {"cache_ttl_value": 3600}}),
    )
    stop = Stop(deadline=fake_clock.now + 600, clock=fake_clock.time)

    report = apply_stoppable(emulator_store, fake_clock, plan, stop)

    (result,) = report.results
    assert result.outcome == "failed"
    assert result.error == (
        "stopped after 1 of 2 writes: it could not finish within --max-duration "
        "(the hourly update budget frees up in 61 min)"
    )
    assert report.writes == 1 and not report.ok
    assert report.stopped == stop.reason == "stopped by --max-duration"
    assert fake_clock.elapsed < 600


class _CreatesAfter:
    """The emulator's client, but a create is sent only once `ready` is set."""

    def __init__(self, client: ImgixClient, ready: asyncio.Event) -> None:
        self.client = client
        self.ready = ready

    async def list_sources(self) -> list[LiveSource]:
        return await self.client.list_sources()

    async def get_source(self, source_id: str) -> LiveSource:
        return await self.client.get_source(source_id)

    async def create_source(self, attributes: dict[str, Any]) -> LiveSource:
        await self.ready.wait()
        return await self.client.create_source(attributes)

    async def update_source(self, source_id: str, attributes: dict[str, Any]) -> LiveSource:
        return await self.client.update_source(source_id, attributes)


def test_an_action_cut_by_the_deadline_stops_the_run_though_another_finishes_after_it(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    source_id = seed(emulator_store, "Blog", ["acme-blog"])
    cut = patch(emulator_store, source_id, TTL, {"deployment": {"cache_ttl_value": 3600}})
    stop = Stop(deadline=fake_clock.now + 600, clock=fake_clock.time)

    async def go() -> ApplyReport:
        reported = asyncio.Event()

        def on_result(result: ActionResult) -> None:
            if result.key == cut.key:
                reported.set()

        async with stoppable(emulator_store, fake_clock, stop) as client:
            return await apply_plan(
                make_plan(cut, create("Products", ["acme-products"])),
                _CreatesAfter(client, reported),
                resolver=SecretResolver({"APPLIER_SECRET": SECRET}),
                stop=stop,
                clock=fake_clock.time,
                on_result=on_result,
            )

    report = asyncio.run(go())

    assert [r.outcome for r in report.results] == ["failed", "applied"]
    assert report.stopped == stop.reason == "stopped by --max-duration"


def test_an_action_waiting_for_one_the_plan_does_not_hold_is_not_held_up_by_it(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    # A saved plan edited by hand, or cut down: the run goes on, it does not crash.
    waiting = create("Products", ["acme-products"]).model_copy(
        update={"depends_on": ["patch:src-not-in-the-plan"]}
    )

    report = run(emulator_store, fake_clock, make_plan(waiting))

    assert [r.outcome for r in report.results] == ["applied"]
    assert writes_in(emulator_store) == [("POST", "/api/v1/sources")]


def test_a_wait_past_the_deadline_ends_as_a_stop_and_names_the_sources_still_deploying(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    emulator_store.deploy_delay = 10_000
    source_id = seed(emulator_store, "Slow", ["acme-slow"])
    stop = Stop(deadline=fake_clock.now + 5, clock=fake_clock.time)

    async def go() -> WaitEnd:
        async with client_for(emulator_store, fake_clock) as client:
            return await wait_until_deployed(
                client, [source_id], interval=2.0, sleep=fake_clock.sleep, stop=stop
            )

    assert asyncio.run(go()) == WaitEnd([source_id], {})
    assert stop.reason == "stopped by --max-duration"
    assert 5 <= fake_clock.elapsed < 10  # the poll after the deadline is not made
    polls = [e for e in emulator_store.request_log if e.method == "GET"]
    assert len(polls) == 3


def test_a_wait_tells_which_sources_were_deleted_while_deploying(fake_clock: FakeClock) -> None:
    api = _Polled({"a": "deleted", "b": "deploying", "c": "deleted"})
    heard: list[str] = []

    async def go() -> WaitEnd:
        return await wait_until_deployed(
            api,  # type: ignore[arg-type]
            ["a", "b", "c"],
            interval=2.0,
            timeout=2.0,
            sleep=fake_clock.sleep,
            on_gave_up=heard.append,
        )

    assert asyncio.run(go()) == WaitEnd(["a", "b", "c"], {"a": "deleted", "c": "deleted"})
    assert heard == ["deleted while deploying: a, c"]


def test_a_wait_cancelled_while_it_polls_is_cancelled_not_reported(fake_clock: FakeClock) -> None:
    # A task cancelled under the poll: gather hands its CancelledError back as an answer.
    api = _Polled({"a": "deploying", "b": asyncio.CancelledError()})

    async def go() -> WaitEnd:
        return await wait_until_deployed(
            api,  # type: ignore[arg-type]
            ["a", "b"],
            interval=2.0,
            timeout=60.0,
            sleep=fake_clock.sleep,
        )

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(go())


def test_wait_polls_every_two_seconds_and_gives_up_after_ten_minutes_by_default(
    fake_clock: FakeClock,
) -> None:
    """README: sources still deploying after 10 minutes are listed (`apply --wait`)."""
    api = _Polled({"a": "deploying"})

    end = asyncio.run(wait_until_deployed(api, ["a"], sleep=fake_clock.sleep))  # type: ignore[arg-type]

    assert end == WaitEnd(["a"], {})
    assert fake_clock.elapsed == 600.0
    assert set(fake_clock.sleeps) == {2.0}


@pytest.mark.parametrize("timeout", [5.0, 6.0])
def test_wait_gives_up_at_its_first_poll_at_or_past_the_timeout(
    fake_clock: FakeClock, timeout: float
) -> None:
    api = _Polled({"a": "deploying"})

    async def go() -> WaitEnd:
        return await wait_until_deployed(
            api,  # type: ignore[arg-type]
            ["a"],
            interval=2.0,
            timeout=timeout,
            sleep=fake_clock.sleep,
        )

    assert asyncio.run(go()) == WaitEnd(["a"], {})
    assert fake_clock.elapsed == 6.0  # polled at 0, 2, 4 and 6 s


def test_a_write_the_deadline_leaves_no_time_for_is_not_attempted_and_not_counted(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    source_id = seed(emulator_store, "Blog", ["acme-blog"])
    plan = make_plan(patch(emulator_store, source_id, TTL))
    stop = Stop(deadline=fake_clock.now + 0.5, clock=fake_clock.time)
    emulator_store.request_log.clear()

    report = apply_stoppable(emulator_store, fake_clock, plan, stop)

    (result,) = report.results
    assert result.outcome == "stopped"
    assert result.error == "not attempted: it could not finish within --max-duration"
    assert report.writes == 0 and report.stopped == "stopped by --max-duration"
    assert writes_in(emulator_store) == []


def test_a_saved_patch_that_only_resends_a_secret_is_sent_though_nothing_shows_it(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    """A write-only value cannot be compared: an unchanged source is not taken as in effect."""
    source_id = seed(emulator_store, "Blog", ["acme-blog"])
    rotate = {"deployment": {"s3_secret_key": {"secret": {"env": "APPLIER_SECRET"}}}}
    plan = make_plan(patch(emulator_store, source_id, rotate))
    emulator_store.request_log.clear()

    report = run(emulator_store, fake_clock, plan, saved=True)

    assert [r.outcome for r in report.results] == ["applied"]
    assert report.writes == 1
    assert writes_in(emulator_store) == [("PATCH", f"/api/v1/sources/{source_id}")]


def test_the_permissions_given_to_apply_lift_their_rail(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    existing = seed(emulator_store, "Blog", ["acme-blog"])
    plan = make_plan(patch(emulator_store, existing, {"enabled": False}, destructive=True))
    report = run(emulator_store, fake_clock, plan, permissions=Permissions(allow_disable=True))
    assert report.ok and report.writes == 1


def test_actions_after_a_stop_are_not_attempted_and_say_why(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    stop = Stop()
    stop.request("stopped by SIGINT")
    plan = make_plan(create("Products", ["acme-products"]))

    report = run(emulator_store, fake_clock, plan, stop=stop)

    assert [(r.outcome, r.error) for r in report.results] == [
        ("stopped", "not attempted: stopped by SIGINT")
    ]
    assert report.writes == 0 and writes_in(emulator_store) == []


def test_a_stale_saved_plan_says_every_reason_in_one_message(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    blog = seed(emulator_store, "Blog", ["acme-blog"])
    shop = seed(emulator_store, "Shop", ["acme-shop"])
    plan = make_plan(patch(emulator_store, blog, TTL), patch(emulator_store, shop, TTL))
    emulator_store.remove_source(blog)
    emulator_store.dashboard_redeploy(shop, {"cache_ttl_value": 7200})
    with pytest.raises(StalePlan) as refused:
        run(emulator_store, fake_clock, plan, saved=True)
    assert str(refused.value) == (
        f"the saved plan is stale, nothing was written: Blog ({blog}) no longer exists; "
        f"Shop ({shop}) changed. Run plan again and review the new plan."
    )


def test_a_plan_without_markers_is_sent_as_planned_whatever_the_fingerprint_key(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    plan = make_plan(create("Products", ["acme-products"]))
    report = run(emulator_store, fake_clock, plan, fingerprint_key=b"key")
    assert report.ok and report.writes == 1
    (source_id,) = emulator_store.sources
    live = LiveSource.from_resource(emulator_store.get_source(source_id))
    assert live.name == "Products" and live.hostnames == {"acme-products"}


def test_a_marked_plan_applied_without_a_fingerprint_key_records_the_plans_marker(
    emulator_store: SourceStore, fake_clock: FakeClock, tmp_path: Path
) -> None:
    (tmp_path / "sources.yaml").write_text(STAMP_YAML)
    desired = load([tmp_path / "sources.yaml"], environ={"APPLIER_SECRET": SECRET}).state
    planned = plan(desired, [], PlanOptions(fingerprint_key=b"key"))
    assert planned.actions[0].marker is not None

    report = run(emulator_store, fake_clock, planned)

    assert report.ok
    (source_id,) = emulator_store.sources
    live = LiveSource.from_resource(emulator_store.get_source(source_id))
    assert live.annotation.marker is not None
    assert live.annotation.marker.fingerprints == planned.actions[0].marker.fingerprints


ANNOTATED_YAML = STAMP_YAML + "      annotation: Managed in git\n"


def test_a_saved_plan_keeps_the_annotation_text_beside_its_marker_and_knows_it_in_effect(
    emulator_store: SourceStore, fake_clock: FakeClock, tmp_path: Path
) -> None:
    (tmp_path / "sources.yaml").write_text(ANNOTATED_YAML)
    desired = load([tmp_path / "sources.yaml"], environ={"APPLIER_SECRET": SECRET}).state
    saved = plan(desired, [], PlanOptions(fingerprint_key=b"key"))

    def apply() -> ApplyReport:
        return run(emulator_store, fake_clock, saved, saved=True, fingerprint_key=b"key")

    assert apply().ok
    (source_id,) = emulator_store.sources
    live = LiveSource.from_resource(emulator_store.get_source(source_id))
    assert live.annotation.text == "Managed in git" and live.annotation.marker is not None
    assert [r.outcome for r in apply().results] == ["in effect"]

    # Applied with another secret: the marker it would send records another fingerprint,
    # so the source is not what this run makes it, and that secret was never sent.
    async def with_another_secret() -> ApplyReport:
        async with client_for(emulator_store, fake_clock) as client:
            other = SecretResolver({"APPLIER_SECRET": SECRET[::-1]})
            return await apply_plan(
                saved, client, resolver=other, saved=True, fingerprint_key=b"key"
            )

    with pytest.raises(StalePlan, match="acme-products now taken"):
        asyncio.run(with_another_secret())


def test_a_stale_action_names_five_changed_paths_whole_and_clips_only_past_80_characters(
    emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    _, second, plan = two_patches(emulator_store)
    # With the annotation the emulator rewrites, five paths: all named, none counted.
    edit = {"k" * 69: 1, "l" * 70: 2, "m_1": 3, "m_2": 4}
    on_first_write(emulator_store, lambda: emulator_store.dashboard_redeploy(second, edit))
    report = apply_budgeted(emulator_store, fake_clock, plan, saved=True)
    assert report.results[1].error == (
        "not applied: it changed since the plan (deployment.annotation, "
        f"deployment.{'k' * 69}, deployment.{'l' * 68}…, deployment.m_1, deployment.m_2); "
        "run plan again"
    )


@pytest.mark.parametrize(
    ("age", "requests"),
    [(59.0, ["PATCH"]), (REREAD_AFTER, ["GET", "PATCH"]), (60.5, ["GET", "PATCH"])],
    ids=["59 s", "exactly the threshold", "half a second past the minute"],
)
def test_a_patch_starting_more_than_a_minute_after_its_listing_reads_its_source_first(
    emulator_store: SourceStore, fake_clock: FakeClock, age: float, requests: list[str]
) -> None:
    """README: more than a minute after the listing, a patch's source is read again."""
    source_id = seed(emulator_store, "Blog", ["acme-blog"])
    plan = make_plan(patch(emulator_store, source_id, TTL))

    async def go() -> ApplyReport:
        async with client_for(emulator_store, fake_clock) as client:
            return await apply_plan(
                plan,
                client,
                resolver=SecretResolver({}),
                listing=Listing([], fake_clock.now - age),
                clock=fake_clock.time,
            )

    assert asyncio.run(go()).ok
    assert reads_of(emulator_store, source_id) == requests


def test_wait_ends_at_once_for_sources_disabled_or_deleted(fake_clock: FakeClock) -> None:
    """README: --wait polls until every touched source is deployed (or disabled); a deleted
    one will never deploy."""
    api = _Polled({"a": "disabled", "b": "deployed", "c": "deleted"})

    end = asyncio.run(wait_until_deployed(api, ["a", "b", "c"], sleep=fake_clock.sleep))  # type: ignore[arg-type]

    assert end == WaitEnd(["c"], {"c": "deleted"})
    assert fake_clock.elapsed == 0.0


DISABLED_YAML = """\
version: 1
sources:
  - name: Products
    enabled: false
    deployment:
      type: s3
      imgix_subdomains: [acme-products]
      s3_bucket: products
      s3_access_key: AKIAEXAMPLE
      s3_secret_key: {env: APPLIER_SECRET}
      cache_ttl_value: %d
"""


def planned_disabled(store: SourceStore, file: Path, ttl: int) -> Plan:
    """The plan of `DISABLED_YAML` with cache TTL `ttl`, written to `file`, for `store`."""
    file.write_text(DISABLED_YAML % ttl)
    live = [LiveSource.from_resource(store.get_source(i)) for i in store.sources]
    environ = {"APPLIER_SECRET": SECRET}
    return plan(load([file], environ=environ).state, live, PlanOptions(fingerprint_key=b"key"))


def test_a_disabled_source_changed_and_disabled_again_keeps_no_pending_disable(
    emulator_store: SourceStore, fake_clock: FakeClock, tmp_path: Path
) -> None:
    """Every write but the last records the pending disable; the last, which disables, clears it."""

    def planned(ttl: int) -> Plan:
        return planned_disabled(emulator_store, tmp_path / "sources.yaml", ttl)

    assert run(emulator_store, fake_clock, planned(86400), fingerprint_key=b"key").ok
    (source_id,) = emulator_store.sources
    change = planned(7200)
    assert len(change.actions[0].writes) == 2
    markers: list[Any] = []

    def first_write_marker() -> None:
        live = LiveSource.from_resource(emulator_store.get_source(source_id))
        markers.append(live.annotation.marker)

    on_first_write(emulator_store, first_write_marker)
    report = run(emulator_store, fake_clock, change, fingerprint_key=b"key")

    assert report.ok and report.writes == 2
    live = LiveSource.from_resource(emulator_store.get_source(source_id))
    assert live.enabled is False and live.deployment["cache_ttl_value"] == 7200
    assert markers[0] is not None and markers[0].pending_disable
    assert live.annotation.marker is not None and not live.annotation.marker.pending_disable
    assert planned(7200).actions == []


def test_an_apply_killed_after_the_enabling_write_is_finished_by_the_next_plan_unflagged(
    emulator_store: SourceStore, fake_clock: FakeClock, tmp_path: Path
) -> None:
    """A kill between the writes of one action leaves a disabled source enabled (serving);
    the next plan disables it again as the end of the reviewed change, not as a disable
    of the user's that needs --allow-disable."""

    def planned(ttl: int) -> Plan:
        return planned_disabled(emulator_store, tmp_path / "sources.yaml", ttl)

    assert run(emulator_store, fake_clock, planned(86400), fingerprint_key=b"key").ok
    (source_id,) = emulator_store.sources
    change = planned(7200)
    (action,) = change.actions
    assert len(action.writes) == 2 and "disables" not in action.risks
    # The job killed once its first write is made: the account as that write left it.
    killed: list[dict[str, Any]] = []
    on_first_write(emulator_store, lambda: killed.append(emulator_store.to_json()))
    assert run(emulator_store, fake_clock, change, fingerprint_key=b"key").ok
    emulator_store.load_json(killed[0])
    assert LiveSource.from_resource(emulator_store.get_source(source_id)).enabled is True

    (finish,) = planned(7200).actions
    assert finish.writes[-1].get("enabled") is False
    assert not finish.destructive and "disables" not in finish.risks
    assert run(emulator_store, fake_clock, planned(7200), fingerprint_key=b"key").ok
    live = LiveSource.from_resource(emulator_store.get_source(source_id))
    assert live.enabled is False and live.deployment["cache_ttl_value"] == 7200
    assert planned(7200).actions == []
