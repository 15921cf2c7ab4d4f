"""Export (reconciler/export.py): live sources as a desired-state file."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from reconciler.canonical import formatted
from reconciler.export import (
    MAX_VARIABLE_LENGTH,
    Export,
    ExportError,
    export_document,
    export_yaml,
    exported_source,
    merged_yaml,
)
from reconciler.live import LiveSource
from reconciler.references import reserved_variable
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


def test_export_states_enabled_only_when_the_listing_says_false() -> None:
    # BLOG's listing does not say (unknown): stating `false` would disable it on the next
    # apply, and stating `true` would write it on every plan while listings stay silent.
    for listed in (BLOG, BLOG.model_copy(update={"enabled": True})):
        (spec,) = export_document([listed])["sources"]
        assert "enabled" not in spec


def test_secret_variable_names_are_unique_per_source() -> None:
    twin = BLOG.model_copy(update={"id": "c" * 24})
    names = [s["deployment"]["password"]["env"] for s in export_document([BLOG, twin])["sources"]]
    assert names == ["BLOG_PASSWORD", "BLOG_CCCCCC_PASSWORD"]


def test_exported_file_is_a_valid_desired_state() -> None:
    text = export_yaml([BLOG, ARCHIVE]).text
    assert text.startswith("# yaml-language-server: $schema=")
    state = DesiredState.model_validate(YAML(typ="safe").load(text))
    assert [s.id for s in state.sources] == ["a" * 24, "b" * 24]


VALID_VARIABLE = re.compile(r"[A-Z_][A-Z0-9_]*")


def blog_named(name: str, source_id: str = "a" * 24) -> LiveSource:
    return BLOG.model_copy(update={"name": name, "id": source_id})


def variable_of(source: LiveSource) -> str:
    name: str = exported_source(source, set())["deployment"]["password"]["env"]
    return name


def variables_of(sources: list[LiveSource]) -> list[str]:
    """Variable names as generated, before the exported file is checked (names may be empty)."""
    taken: set[str] = set()
    return [exported_source(s, taken)["deployment"]["password"]["env"] for s in sources]


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
        ("GitHub", "SOURCE_GITHUB_PASSWORD"),
        ("a\r\nb; rm -rf /", "A_B_RM_RF_PASSWORD"),
        ("imgix reconciler", "SOURCE_IMGIX_RECONCILER_PASSWORD"),
        ("Actions", "SOURCE_ACTIONS_PASSWORD"),
        ("imgix assets", "IMGIX_ASSETS_PASSWORD"),
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
    names = variables_of(sources)
    assert len(set(names)) == len(names) == 14
    for name in names:
        assert VALID_VARIABLE.fullmatch(name) and len(name) <= MAX_VARIABLE_LENGTH, name


def test_a_third_source_of_the_same_name_and_id_tail_is_numbered_from_two() -> None:
    sources = [blog_named("Blog", f"{n}" * 18 + "abc123") for n in range(4)]
    assert variables_of(sources) == [
        "BLOG_PASSWORD",
        "BLOG_ABC123_PASSWORD",
        "BLOG_ABC123_2_PASSWORD",
        "BLOG_ABC123_3_PASSWORD",
    ]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=120), min_size=1, max_size=6))
def test_any_names_give_valid_unique_variables(names: list[str]) -> None:
    sources = [blog_named(name, f"{n:024x}") for n, name in enumerate(names)]
    variables = variables_of(sources)
    assert len(set(variables)) == len(variables)
    for variable in variables:
        assert VALID_VARIABLE.fullmatch(variable), variable
        assert len(variable) <= MAX_VARIABLE_LENGTH
        assert not variable.startswith("GITHUB_")
        assert not reserved_variable(variable)


def test_a_live_value_of_another_json_type_than_the_default_is_an_error() -> None:
    """The planner tells 300.0 from 300, and the file format takes integers only.

    Writing 300 would plan a change, writing 300.0 a file `validate` rejects: neither.
    """
    odd = BLOG.model_copy(update={"deployment": {**BLOG.deployment, "cache_ttl_error": 300.0}})
    assert exported_source(odd, set())["deployment"]["cache_ttl_error"] == 300.0
    with pytest.raises(ExportError, match=r"cache_ttl_error: Input should be a valid integer"):
        export_document([odd])
    (plain,) = export_document([BLOG])["sources"]
    assert "cache_ttl_error" not in plain["deployment"]


# --------------------------------------------------------------------------- header, validity


def test_the_header_lists_the_variables_to_set_and_the_text_is_already_formatted() -> None:
    exported = export_yaml([BLOG, ARCHIVE])
    assert exported.variables == ["BLOG_PASSWORD", "BLOG_S3_SECRET_KEY"]
    header = exported.text.split("\nversion: 1\n")[0].splitlines()
    assert header[-2:] == ["#   BLOG_PASSWORD", "#   BLOG_S3_SECRET_KEY"]
    assert formatted(exported.text) == exported.text
    no_secret = ARCHIVE.model_copy(
        update={"deployment": {**ARCHIVE.deployment, "type": "webproxy"}}
    )
    assert "# No secret to set" in export_yaml([no_secret]).text


def test_a_source_of_an_unknown_type_is_an_error_naming_it_not_an_invalid_file() -> None:
    future = BLOG.model_copy(
        update={"name": "Future\x1b[2J", "deployment": {**BLOG.deployment, "type": "ftp"}}
    )
    with pytest.raises(ExportError) as raised:
        export_yaml([ARCHIVE, future])
    message = str(raised.value)
    assert '"Future\\u001b[2J"' in message and "a" * 24 in message and '"ftp"' in message
    assert "\x1b" not in message


def test_a_source_the_listing_gave_no_type_is_an_error_saying_so() -> None:
    untyped = BLOG.model_copy(update={"deployment": {"imgix_subdomains": ["acme-blog"]}})
    with pytest.raises(ExportError, match=r"cannot be exported: its type is none, not one of s3,"):
        export_yaml([untyped])


def test_a_live_value_the_format_rejects_is_an_error_naming_the_source() -> None:
    odd = BLOG.model_copy(update={"deployment": {**BLOG.deployment, "cache_ttl_value": 60}})
    unnamed = ARCHIVE.model_copy(update={"name": ""})
    with pytest.raises(ExportError) as raised:
        export_yaml([odd, unnamed])
    first, second = str(raised.value).splitlines()
    assert f'"" ({"b" * 24})' in first and "name" in first
    assert f'"Blog" ({"a" * 24})' in second and "deployment.webfolder.cache_ttl_value" in second


def test_a_source_whose_name_was_not_returned_is_an_error_not_an_invented_name() -> None:
    unnamed = ARCHIVE.model_copy(update={"name": None})
    with pytest.raises(ExportError) as raised:
        export_yaml([BLOG, unnamed])
    assert str(raised.value) == (
        f"live source {'b' * 24} cannot be exported: the API did not return its name"
    )


def test_a_parameter_newer_than_the_catalogue_is_allowed_in_the_exported_file() -> None:
    newer = BLOG.model_copy(
        update={"deployment": {**BLOG.deployment, "default_params": {"fm2031": "x"}}}
    )
    exported = export_yaml([newer, ARCHIVE])
    document = YAML(typ="safe").load(exported.text)
    assert document["allow_unknown_params"] is True
    assert "allow_unknown_params" not in export_document([BLOG, ARCHIVE])
    merged = merged_yaml(export_yaml([ARCHIVE]).text, [newer, ARCHIVE])
    assert YAML(typ="safe").load(merged.text)["allow_unknown_params"] is True


def test_a_merge_into_a_file_that_allows_newer_parameters_keeps_its_lines_as_written() -> None:
    newer = BLOG.model_copy(
        update={"deployment": {**BLOG.deployment, "default_params": {"fm2031": "x"}}}
    )
    also_newer = ARCHIVE.model_copy(
        update={"deployment": {**ARCHIVE.deployment, "default_params": {"fm2032": "y"}}}
    )
    text = export_yaml([newer]).text
    assert "\nallow_unknown_params: true\nsources:\n" in text
    merged = merged_yaml(text, [newer, also_newer])
    assert merged.added == 1
    assert merged.text.startswith(text)
    assert merged.text.count("allow_unknown_params") == 1


def test_a_known_parameter_with_a_value_it_refuses_is_an_error_naming_the_source() -> None:
    wrong = BLOG.model_copy(
        update={"deployment": {**BLOG.deployment, "default_params": {"fm": "wepb"}}}
    )
    with pytest.raises(ExportError, match=r'"Blog" \(a{24}\).*webp'):
        export_yaml([wrong])


# --------------------------------------------------------------------------- --merge

COMMENTED = """\
# Our image sources. Reviewed by the platform team.
version: 1
sources:
  # The blog, served from the CMS.
  - name: Blog   # keep this name: dashboards use it
    id: aaaaaaaaaaaaaaaaaaaaaaaa
    deployment:
      type: webfolder
      webfolder_base_url: "https://assets.example.com/"   # quoted on purpose
      imgix_subdomains: [acme-blog]
      password: {env: OUR_BLOG_SECRET}
      cache_ttl_value: 86400
      default_params: {auto: format}

  # Matched by subdomain, not pinned.
  - name: Old archive name
    deployment:
      type: s3
      s3_bucket: b
      s3_access_key: AKIA
      s3_secret_key: {env: BLOG_PASSWORD}   # a name export would generate
      imgix_subdomains: [acme-archive]
# end of file
"""


def test_merge_keeps_the_document_start_and_the_comments_above_it() -> None:
    # ruamel drops the `---` line and the comments above it: merging into a file that opens
    # with its schema line and `---` lost both without a word.
    header = "# yaml-language-server: $schema=schemas/sources.schema.json\n# Web team.\n---\n"
    body = (
        "version: 1\nsources:\n  - name: a\n    deployment:\n      type: webproxy\n"
        "      imgix_subdomains: [acme-a]\n"
    )
    merged = merged_yaml(header + body, [ARCHIVE])
    assert merged.added == 1
    assert merged.text.startswith(header + body)
    assert "  - name: Blog\n    id: " + "b" * 24 in merged.text


def test_merge_keeps_the_file_and_adds_only_the_missing_sources() -> None:
    twin = BLOG.model_copy(
        update={
            "id": "c" * 24,
            "deployment": {**BLOG.deployment, "imgix_subdomains": ["acme-twin"]},
        }
    )
    merged = merged_yaml(COMMENTED, [BLOG, ARCHIVE, twin])
    assert merged.added == 1
    lines = merged.text.splitlines()
    original = COMMENTED.splitlines()
    # The file's lines come first, unchanged; its closing comment stays at the end.
    assert lines[: len(original) - 1] == original[:-1]
    assert lines[-1] == "# end of file"
    # Only the note on the added source's variables joins the file's comments.
    note = [
        "  # Added by imgix-reconciler export --merge.",
        "  # The API never returns secrets: set these environment variables before `apply`",
        "  # (or replace a reference with {file: path}):",
        "  #   BLOG_CCCCCC_PASSWORD",
    ]
    kept = [line for line in original if line.lstrip().startswith("#")]
    assert [line for line in lines if line.lstrip().startswith("#")] == [
        *kept[:-1],
        *note,
        kept[-1],
    ]
    assert lines[len(original) - 1 : len(original) + 4] == [*note, "  - name: Blog"]
    # The new source's variable avoids the names the file uses, and is reported.
    assert merged.variables == ["BLOG_CCCCCC_PASSWORD"]
    assert "OUR_BLOG_SECRET" in merged.text and "c" * 24 in merged.text
    state = DesiredState.model_validate(YAML(typ="safe").load(merged.text))
    assert [s.name for s in state.sources] == ["Blog", "Old archive name", "Blog"]


def test_merge_lists_the_new_variables_above_the_added_sources_in_the_file_s_indentation() -> None:
    # A reviewer of the pull request reads them in the diff, where a new file has them in
    # its header; without a secret, no note.
    four = (
        "version: 1\nsources:\n- name: Blog\n  id: aaaaaaaaaaaaaaaaaaaaaaaa\n  deployment:\n"
        "    type: webfolder\n    webfolder_base_url: https://assets.example.com/\n"
        "    imgix_subdomains:\n    - acme-blog\n"
    )
    merged = merged_yaml(four, [BLOG, ARCHIVE])
    assert (
        merged.text
        == four
        + (
            "# Added by imgix-reconciler export --merge.\n"
            "# The API never returns secrets: set these environment variables before `apply`\n"
            "# (or replace a reference with {file: path}):\n"
            "#   BLOG_S3_SECRET_KEY\n"
            "- name: Blog\n  id: bbbbbbbbbbbbbbbbbbbbbbbb\n"
        )
        + merged.text.split("id: bbbbbbbbbbbbbbbbbbbbbbbb\n", 1)[1]
    )
    assert merged.variables == ["BLOG_S3_SECRET_KEY"]
    site = BLOG.model_copy(
        update={
            "id": "d" * 24,
            "deployment": {
                "type": "webfolder",
                "imgix_subdomains": ["acme-site"],
                "webfolder_base_url": "https://site.example/",
            },
        }
    )
    plain = merged_yaml(four, [BLOG, site])
    assert plain.variables == [] and "#" not in plain.text


def test_merge_of_a_file_with_nothing_missing_changes_nothing() -> None:
    merged = merged_yaml(COMMENTED, [BLOG, ARCHIVE])
    assert (merged.added, merged.text) == (0, COMMENTED)


def test_merge_keeps_another_indentation_style() -> None:
    four = (
        "version: 1\nsources:\n- name: Blog\n  id: aaaaaaaaaaaaaaaaaaaaaaaa\n  deployment:\n"
        "    type: webfolder\n    webfolder_base_url: https://assets.example.com/\n"
        "    imgix_subdomains:\n    - acme-blog\n"
    )
    merged = merged_yaml(four, [BLOG, ARCHIVE])
    assert merged.text.startswith(four)
    assert "\n- name: Blog\n  id: bbbbbbbbbbbbbbbbbbbbbbbb\n  enabled: false\n" in merged.text


def test_merge_nests_the_added_deployment_as_deep_as_the_file_does() -> None:
    wide = (
        "version: 1\nsources:\n    -   name: Blog\n        id: aaaaaaaaaaaaaaaaaaaaaaaa\n"
        "        deployment:\n            type: webfolder\n"
        "            webfolder_base_url: https://assets.example.com/\n"
        "            imgix_subdomains:\n                -   acme-blog\n"
    )
    merged = merged_yaml(wide, [BLOG, ARCHIVE])
    assert merged.text.startswith(wide)
    added = merged.text[len(wide) :]
    assert (
        "    -   name: Blog\n        id: bbbbbbbbbbbbbbbbbbbbbbbb\n        enabled: false\n"
        "        deployment:\n            type: s3\n"
    ) in added


def test_merge_into_an_empty_flow_list_writes_block_style() -> None:
    merged = merged_yaml("version: 1\nsources: []  # none yet\n", [ARCHIVE])
    state = DesiredState.model_validate(YAML(typ="safe").load(merged.text))
    assert [s.id for s in state.sources] == ["b" * 24]
    assert "# none yet" in merged.text
    assert "\n  - name: Blog\n    id: bbbbbbbbbbbbbbbbbbbbbbbb\n" in merged.text
    # A flow list with sources in it: each stays on its line, the new one in block style.
    one = "version: 1\nsources: [{name: X, deployment: {type: webproxy, imgix_subdomains: [x]}}]\n"
    assert merged_yaml(one, [ARCHIVE]).text.startswith(
        "version: 1\nsources:\n  - {name: X, deployment: {type: webproxy, imgix_subdomains: [x]}}\n"
        "  # Added by imgix-reconciler export --merge.\n"
    )
    assert (
        "\n  - name: Blog\n    id: bbbbbbbbbbbbbbbbbbbbbbbb\n" in merged_yaml(one, [ARCHIVE]).text
    )


def test_small_maps_and_lists_are_written_on_one_line_as_people_write_them() -> None:
    text = export_yaml([BLOG]).text
    assert "\n      imgix_subdomains: [acme-blog]\n" in text
    assert "\n      password: {env: BLOG_PASSWORD}\n" in text
    assert "\n  - name: Blog\n    id: aaaaaaaaaaaaaaaaaaaaaaaa\n    deployment:\n" in text


def test_a_merge_the_file_would_not_validate_with_is_refused() -> None:
    # The live source is missing from the file (another id and subdomain) but claims a
    # custom domain a source in the file has: the merged file would fail `validate`.
    claimed = ARCHIVE.model_copy(
        update={"deployment": {**ARCHIVE.deployment, "custom_domains": ["images.example.com"]}}
    )
    text = COMMENTED.replace(
        "      imgix_subdomains: [acme-blog]\n",
        "      imgix_subdomains: [acme-blog]\n      custom_domains: [images.example.com]\n",
    ).replace("acme-archive", "acme-old")
    with pytest.raises(ExportError, match="the export would not pass validation"):
        merged_yaml(text, [claimed])
    twins = [claimed, claimed.model_copy(update={"id": "c" * 24, "name": "Twin"})]
    with pytest.raises(ExportError, match="the export would not pass validation") as raised:
        export_yaml(twins)
    # Located in the text it would have written, never in a temporary file.
    assert "imgix-reconciler-export-" not in str(raised.value)
    assert (
        "exported file:25:24: deployment.custom_domains[0]: domain 'images.example.com' is "
        "also used by the source at exported file:15:24"
    ) in str(raised.value)


def test_a_merge_that_adds_nothing_leaves_the_file_byte_for_byte() -> None:
    # A round trip through ruamel would respace these: with nothing to add, nothing is.
    text = (
        "version:   1\nsources:\n  - {name: Blog, id: aaaaaaaaaaaaaaaaaaaaaaaa, "
        "deployment: {type: webproxy, imgix_subdomains: [ acme-blog ]}}\n"
    )
    proxy = BLOG.model_copy(update={"deployment": {"type": "webproxy"}})
    assert merged_yaml(text, [proxy]) == Export(text, 0, [])


def test_an_attribute_without_a_default_is_written_only_when_the_api_has_a_value() -> None:
    unset = BLOG.model_copy(update={"deployment": {**BLOG.deployment, "robots.txt": None}})
    assert "robots.txt" not in exported_source(unset, set())["deployment"]
    rules = "User-agent: *\nDisallow: /private/\n"
    set_ = BLOG.model_copy(update={"deployment": {**BLOG.deployment, "robots.txt": rules}})
    assert exported_source(set_, set())["deployment"]["robots.txt"] == rules


def test_the_header_says_why_the_variables_are_needed_and_how_else_to_give_them() -> None:
    header = export_yaml([BLOG]).text.split("\nversion: 1\n")[0].splitlines()
    assert header == [
        "# yaml-language-server: $schema=schemas/sources.schema.json",
        "# Exported by imgix-reconciler from the live sources.",
        "# The API never returns secrets: set these environment variables before `apply`",
        "# (or replace a reference with {file: path}):",
        "#   BLOG_PASSWORD",
    ]


def test_merge_into_a_file_that_puts_a_list_item_s_dash_on_its_own_line() -> None:
    # Valid YAML that ruamel's indentation guess fails on (IndexError): the merge still
    # adds the missing source, in the canonical indentation (the dash joins its item).
    text = (
        "version: 1\nsources:\n  -\n    name: Blog\n    id: aaaaaaaaaaaaaaaaaaaaaaaa\n"
        "    deployment: {type: webproxy, imgix_subdomains: [acme-blog]}\n"
    )
    merged = merged_yaml(text, [ARCHIVE])
    assert merged.added == 1
    assert merged.text.startswith("version: 1\nsources:\n  - name: Blog\n    id: aaaa")
    state = DesiredState.model_validate(YAML(typ="safe").load(merged.text))
    assert [s.id for s in state.sources] == ["a" * 24, "b" * 24]


def test_a_secret_the_api_returns_is_never_written_to_the_file() -> None:
    # The API never returns secrets; an answer that does is untrusted text, not a value
    # to put in a file that goes to git.
    leaky = BLOG.model_copy(
        update={"deployment": {**BLOG.deployment, "password": "leaked-password-value"}}
    )
    exported = export_yaml([leaky])
    assert "leaked-password-value" not in exported.text
    assert exported.variables == ["BLOG_PASSWORD"]


def test_text_a_terminal_would_act_on_is_escaped_and_reads_back_the_same() -> None:
    # Found by test_cli_fuzz's export property: YAML writes the bidi controls (and the
    # line separators' neighbours YAML deems printable) raw, even double-quoted, so
    # `export` printed a name holding U+202E as is, and a terminal showed it reordered.
    name = "\u202eevil\u202c \u2066x\u2069\u200f ::error::x"
    hostile = BLOG.model_copy(
        update={
            "name": name,
            "deployment": {
                **BLOG.deployment,
                "default_params": {"txt": "caption \u202e", "mark-align": "top"},
            },
        }
    )
    text = export_yaml([hostile]).text
    assert not re.search("[\u200e\u200f\u202a-\u202e\u2066-\u2069\x7f-\x9f]", text), text
    assert "\\u202e" in text
    source = YAML(typ="safe").load(text)["sources"][0]
    assert source["name"] == name
    assert source["deployment"]["default_params"]["txt"] == "caption \u202e"
    assert formatted(text) == text


def test_text_starting_with_a_question_mark_or_colon_exports_and_reads_back_the_same() -> None:
    # An overlay text `: x` made the export fail ("would not pass validation": ruamel wrote it
    # plain in `{...}`, where it is invalid YAML), and a parameter named `?q` was exported
    # as `?q:` and read back as `q`, so planning the export proposed a change.
    params = {"txt": ": x", "txt-font": "? b", "?q": "v", ":k": "?"}
    odd = BLOG.model_copy(update={"deployment": {**BLOG.deployment, "default_params": params}})
    text = export_yaml([odd]).text
    source = YAML(typ="safe").load(text)["sources"][0]
    assert source["deployment"]["default_params"] == params
    assert formatted(text) == text


def test_each_source_s_problem_is_its_own_item_of_the_error() -> None:
    odd = BLOG.model_copy(update={"deployment": {**BLOG.deployment, "cache_ttl_value": 60}})
    future = ARCHIVE.model_copy(update={"deployment": {**ARCHIVE.deployment, "type": "ftp"}})
    with pytest.raises(ExportError) as raised:
        export_yaml([odd, future])
    first, second = raised.value.problems
    assert f'"Blog" ({"a" * 24}) cannot be exported as a valid file' in first
    assert f'"Blog" ({"b" * 24}) cannot be exported: its type is "ftp"' in second
    assert str(raised.value) == f"{first}\n{second}"
