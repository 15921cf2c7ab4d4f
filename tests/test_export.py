"""Export (reconciler/export.py): live sources as a desired-state file."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from reconciler.export import MAX_VARIABLE_LENGTH, export_document, export_yaml
from reconciler.live import LiveSource
from reconciler.specs import DesiredState

BLOG = LiveSource(
    id="a" * 24,
    name="Blog",
    deployment={
        "type": "webfolder",
        "webfolder_base_url": "https://assets.example.com/",
        "imgix_subdomains": ["acme-blog"],
        "cache_ttl_value": 86400,
        "cache_ttl_error": 300,
        "password_encrypted": "opaque",
        "annotation": "New deployment created for source by dashboard",
        "default_params": {"auto": "format"},
        "some_future_attribute": True,
    },
)
ARCHIVE = LiveSource(
    id="b" * 24,
    name="Blog",
    enabled=False,
    deployment={
        "type": "s3",
        "s3_bucket": "b",
        "s3_access_key": "AKIA",
        "imgix_subdomains": ["acme-archive"],
    },
)


def test_export_omits_defaults_annotation_and_unknown_attributes() -> None:
    (blog, archive) = export_document([BLOG, ARCHIVE])["sources"]
    assert blog["deployment"] == {
        "type": "webfolder",
        "cache_ttl_value": 86400,
        "default_params": {"auto": "format"},
        "imgix_subdomains": ["acme-blog"],
        "webfolder_base_url": "https://assets.example.com/",
        "password": {"env": "BLOG_PASSWORD"},
    }
    assert archive["enabled"] is False


def test_secret_variable_names_are_unique_per_source() -> None:
    twin = BLOG.model_copy(update={"id": "c" * 24})
    names = [s["deployment"]["password"]["env"] for s in export_document([BLOG, twin])["sources"]]
    assert names == ["BLOG_PASSWORD", "BLOG_CCCCCC_PASSWORD"]


def test_exported_file_is_a_valid_desired_state() -> None:
    text = export_yaml([BLOG, ARCHIVE])
    assert text.startswith("# yaml-language-server: $schema=")
    state = DesiredState.model_validate(YAML(typ="safe").load(text))
    assert [s.id for s in state.sources] == ["a" * 24, "b" * 24]


VALID_VARIABLE = re.compile(r"[A-Z_][A-Z0-9_]*")


def blog_named(name: str, source_id: str = "a" * 24) -> LiveSource:
    return BLOG.model_copy(update={"name": name, "id": source_id})


def variable_of(source: LiveSource) -> str:
    (exported,) = export_document([source])["sources"]
    name: str = exported["deployment"]["password"]["env"]
    return name


@pytest.mark.parametrize(
    ("name", "variable"),
    [
        ("Blog", "BLOG_PASSWORD"),
        ("3D models", "SOURCE_3D_MODELS_PASSWORD"),
        ("2024", "SOURCE_2024_PASSWORD"),
        ("Café Bücher", "CAFE_BUCHER_PASSWORD"),
        ("Straße", "STRASSE_PASSWORD"),
        ("Café 画像", "CAFE_PASSWORD"),
        ("画像", "SOURCE_ABC123_PASSWORD"),
        ("", "SOURCE_ABC123_PASSWORD"),
        ("!!!", "SOURCE_ABC123_PASSWORD"),
        ("GitHub assets", "SOURCE_GITHUB_ASSETS_PASSWORD"),
        ("a\r\nb; rm -rf /", "A_B_RM_RF_PASSWORD"),
    ],
)
def test_variable_names_are_valid_shell_and_github_secret_names(name: str, variable: str) -> None:
    assert variable_of(blog_named(name, "f" * 18 + "abc123")) == variable


def test_a_long_name_is_cut_before_the_field_suffix() -> None:
    variable = variable_of(blog_named("Product images for the spring catalogue " * 4))
    assert len(variable) <= MAX_VARIABLE_LENGTH
    assert variable.startswith("PRODUCT_IMAGES_FOR_THE_SPRING_CATALOGUE_")
    assert variable.endswith("_PASSWORD")
    assert "__" not in variable


def test_long_names_that_share_a_prefix_stay_unique() -> None:
    stem = "x" * 80
    sources = [blog_named(stem + str(n), f"{n:024x}") for n in range(12)]
    sources.append(blog_named("", "0" * 18 + "00000b"))
    sources.append(blog_named("", "1" * 18 + "00000b"))
    names = [s["deployment"]["password"]["env"] for s in export_document(sources)["sources"]]
    assert len(set(names)) == len(names) == 14
    for name in names:
        assert VALID_VARIABLE.fullmatch(name) and len(name) <= MAX_VARIABLE_LENGTH, name


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=120), min_size=1, max_size=6))
def test_any_names_give_valid_unique_variables(names: list[str]) -> None:
    sources = [blog_named(name, f"{n:024x}") for n, name in enumerate(names)]
    variables = [s["deployment"]["password"]["env"] for s in export_document(sources)["sources"]]
    assert len(set(variables)) == len(variables)
    for variable in variables:
        assert VALID_VARIABLE.fullmatch(variable), variable
        assert len(variable) <= MAX_VARIABLE_LENGTH
        assert not variable.startswith("GITHUB_")


def test_a_live_value_of_another_json_type_than_the_default_is_kept() -> None:
    """The planner tells 300.0 from 300: export must keep it, or the file would plan a change."""
    odd = BLOG.model_copy(update={"deployment": {**BLOG.deployment, "cache_ttl_error": 300.0}})
    (source,) = export_document([odd])["sources"]
    assert source["deployment"]["cache_ttl_error"] == 300.0
    (plain,) = export_document([BLOG])["sources"]
    assert "cache_ttl_error" not in plain["deployment"]
