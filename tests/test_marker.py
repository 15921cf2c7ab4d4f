"""The annotation marker (reconciler/marker.py): composing and parsing its text."""

from __future__ import annotations

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
