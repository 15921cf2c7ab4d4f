"""The annotation marker (reconciler/marker.py): composing and parsing its text."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.marker import Marker, compose_annotation, parse_annotation

MARKERS = st.builds(
    Marker,
    fingerprints=st.dictionaries(
        st.sampled_from(["s3_secret_key", "password"]), st.text("0123456789abcdef", min_size=1)
    ),
    encrypted=st.dictionaries(st.just("password"), st.text("0123456789abcdef", min_size=1)),
    owner=st.one_of(st.none(), st.sampled_from(["team-a", "acme/infra"])),
    pending_disable=st.booleans(),
)
# Text as a file may state it: blanks and newlines at either end included (a YAML block
# scalar ends in one), and text that itself looks like a marker.
TEXTS = st.one_of(
    st.none(),
    st.text(st.sampled_from(list("ab \t\n[]")), max_size=8),
    st.sampled_from(["Managed in git\n", "note ", "   ", "x [imgix-reconciler v1 owner.name=b]"]),
    # An unclosed marker in the text: its tokens must not be read as the marker's.
    st.sampled_from(["[imgix-reconciler v1 pending.enabled=false", "x [imgix-reconciler v2"]),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(text=TEXTS, marker=MARKERS)
def test_a_composed_annotation_parses_back_to_its_text_and_marker(
    text: str | None, marker: Marker
) -> None:
    parsed = parse_annotation(compose_annotation(text, marker))
    assert parsed.marker == marker
    assert parsed.text == (text or None)


def test_text_without_a_marker_is_the_whole_annotation() -> None:
    assert parse_annotation("Managed in git ") == ("Managed in git ", None)
    assert parse_annotation("") == (None, None)


def test_tokens_of_unknown_kinds_are_ignored() -> None:
    # A later version may add kinds; `future.name` must not be read as the owner.
    parsed = parse_annotation("[imgix-reconciler v1 future.name=x owner.team=y fp.a=1]")
    assert parsed == (None, Marker(fingerprints={"a": "1"}))


def test_the_marker_text_is_the_format_earlier_writes_left_on_live_sources() -> None:
    # Live annotations keep what earlier versions wrote: the text itself is the contract.
    written = (
        "Managed in git [imgix-reconciler v1 fp.password=0a fp.s3_secret_key=3f "
        "enc.password=9b owner.name=acme/infra pending.enabled=false]"
    )
    marker = Marker(
        fingerprints={"s3_secret_key": "3f", "password": "0a"},
        encrypted={"password": "9b"},
        owner="acme/infra",
        pending_disable=True,
    )
    assert compose_annotation("Managed in git", marker) == written
    assert parse_annotation(written) == ("Managed in git", marker)


def test_a_marker_cannot_be_changed_once_made() -> None:
    # Plans share one parsed marker between actions: none may edit it for the others.
    marker = Marker(owner="a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        marker.owner = "b"  # type: ignore[misc]


def test_the_tokens_are_read_in_any_order() -> None:
    # A later version may order its tokens otherwise: a token after `pending.enabled=false`
    # is read like one before it.
    parsed = parse_annotation("[imgix-reconciler v1 pending.enabled=false fp.a=1 owner.name=o]")
    assert parsed == (None, Marker(fingerprints={"a": "1"}, owner="o", pending_disable=True))
    # Nor does a token that is no `kind.field=value` hide the ones after it.
    parsed = parse_annotation("[imgix-reconciler v1 stray fp.a=1 x=y owner.name=o]")
    assert parsed == (None, Marker(fingerprints={"a": "1"}, owner="o"))


def test_text_written_against_the_marker_is_kept_whole() -> None:
    # Edited by hand with no space before the marker: only a separating space is dropped.
    assert parse_annotation("note[imgix-reconciler v1 fp.a=1]").text == "note"
    assert parse_annotation("note\n[imgix-reconciler v1 fp.a=1]").text == "note\n"
