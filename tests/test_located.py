"""Positions and wording of the errors in a desired-state file (reconciler/loading/located.py),
seen through the loader: `FILE:LINE:COL: path: message` as a user reads it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from reconciler.loader import LoadError, load, summarize

# A valid webfolder source; each test appends the attribute it gets wrong.
WEBFOLDER = """\
version: 1
sources:
  - name: Blog
    deployment:
      type: webfolder
      imgix_subdomains: [acme-blog]
      webfolder_base_url: https://blog.acme.example/
"""


def errors_of(tmp_path: Path, text: str, *, environ: dict[str, str] | None = None) -> list[str]:
    """The file's errors as printed, its path shortened to `f.yaml`."""
    path = tmp_path / "f.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(LoadError) as caught:
        load([path], resolve=environ is not None, environ=environ or {})
    return [str(error).replace(str(path), "f.yaml", 1) for error in caught.value.errors]


# A merge key sends a file down the precise path (the round-trip tree), which places errors
# by a walk of its own: each case is checked on both trees. Merging nothing, at the end of
# the deployment, moves no line.
BOTH_PATHS = pytest.mark.parametrize("tail", ["", "      <<: {}\n"], ids=["fast", "precise"])


@BOTH_PATHS
def test_an_empty_list_that_needs_an_item_says_how_many(tmp_path: Path, tail: str) -> None:
    text = WEBFOLDER.replace("[acme-blog]", "[]") + tail
    assert errors_of(tmp_path, text) == [
        "f.yaml:6:25: deployment.imgix_subdomains: must have at least 1 item(s)"
    ]


@BOTH_PATHS
def test_a_value_off_its_pattern_shows_the_pattern_and_the_value(tmp_path: Path, tail: str) -> None:
    text = WEBFOLDER.replace("  - name: Blog\n", "  - name: Blog\n    id: blog-1\n") + tail
    assert errors_of(tmp_path, text) == ["f.yaml:4:9: id: must match ^[0-9a-f]{24}$ (got 'blog-1')"]


@BOTH_PATHS
@pytest.mark.parametrize(
    ("value", "got"), [("null", "null"), ("[1, 2]", "a list"), ("{a: 1}", "a mapping")]
)
def test_a_default_param_of_no_accepted_type_is_one_error_at_its_key(
    tmp_path: Path, tail: str, value: str, got: str
) -> None:
    # Each member of the union (string, integer, number, boolean) fails: one error, at the
    # name of the parameter, naming what was written but not quoting it.
    text = WEBFOLDER + f"      default_params: {{w: {value}}}\n" + tail
    assert errors_of(tmp_path, text) == [
        "f.yaml:8:24: deployment.default_params.w: "
        f"must be a string, a number or a boolean (got {got})"
    ]


def test_a_quoted_value_that_is_not_yaml_is_shown_as_written(tmp_path: Path) -> None:
    text = WEBFOLDER + "      cache_ttl_value: '{'\n"
    assert errors_of(tmp_path, text) == [
        "f.yaml:8:24: deployment.cache_ttl_value: must be an integer (got '{')"
    ]


def test_a_value_of_a_type_yaml_alone_has_is_not_shown(tmp_path: Path) -> None:
    # A custom tag's value has no name among the file's types: the rule alone.
    text = WEBFOLDER + "      cache_ttl_value: !custom 1800\n"
    assert errors_of(tmp_path, text) == [
        "f.yaml:8:24: deployment.cache_ttl_value: must be an integer"
    ]


def test_only_an_unread_reference_suggests_checking_without_references(tmp_path: Path) -> None:
    # `validate --no-resolve` would not help with a mistake in the file itself.
    path = tmp_path / "f.yaml"
    path.write_text(WEBFOLDER + "      cache_ttl_value: -1\n")
    with pytest.raises(LoadError) as caught:
        load([path], resolve=True, environ={})
    assert summarize(caught.value.errors, [str(path)]) == "1 error in 1 of 1 file"

    path.write_text(WEBFOLDER.replace("https://blog.acme.example/", "{env: BLOG_URL}"))
    with pytest.raises(LoadError) as caught:
        load([path], resolve=True, environ={})
    assert summarize(caught.value.errors, [str(path)]) == (
        "1 error in 1 of 1 file (validate --no-resolve checks the files without reading references)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            WEBFOLDER + "      cache_ttl_value: 99999999999\n",
            "f.yaml:8:24: deployment.cache_ttl_value: must be <= 31536000 (got 99999999999)",
        ),
        (
            "version: 1\nsafety: {min_risky_count: 0}\nsources: []\n",
            "f.yaml:2:27: safety.min_risky_count: must be >= 1 (got 0)",
        ),
    ],
    ids=["at most", "at least"],
)
def test_a_number_out_of_bounds_names_the_bound_as_an_operator(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert errors_of(tmp_path, text) == [expected]


def test_an_empty_name_must_not_be_empty(tmp_path: Path) -> None:
    assert errors_of(tmp_path, WEBFOLDER.replace("name: Blog", "name: ''")) == [
        "f.yaml:3:11: name: must not be empty"
    ]


# The source's own attributes, written on the line after `name:` (line 4, value at column 14
# for `enabled: `).
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", "must be a boolean (got 5)"),
        ("1.5", "must be a boolean (got 1.5)"),
        ("null", "must be a boolean (got null)"),
        ("[true]", "must be a boolean (got a list)"),
        ("{on: true}", "must be a boolean (got a mapping)"),
        ("'true'", "must be a boolean (got the string 'true': write it without quotes)"),
        ("'False'", "must be a boolean (got the string 'False': write it without quotes)"),
        # YAML 1.1 booleans (Ansible, Compose) are text in YAML 1.2, in any case.
        ("yes", "must be a boolean (got 'yes': write true or false)"),
        ("Off", "must be a boolean (got 'Off': write true or false)"),
        ("Y", "must be a boolean (got 'Y': write true or false)"),
        ("no", "must be a boolean (got 'no': write true or false)"),
        ("On", "must be a boolean (got 'On': write true or false)"),
        ("n", "must be a boolean (got 'n': write true or false)"),
        ("sometimes", "must be a boolean (got 'sometimes')"),
        ("'5'", "must be a boolean (got '5')"),
    ],
)
def test_a_wrong_boolean_is_shown_as_yaml_spells_it(
    tmp_path: Path, value: str, expected: str
) -> None:
    text = WEBFOLDER.replace("  - name: Blog\n", f"  - name: Blog\n    enabled: {value}\n")
    assert errors_of(tmp_path, text) == [f"f.yaml:4:14: enabled: {expected}"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", "must be an integer (got true)"),
        ("false", "must be an integer (got false)"),
        ("'86400'", "must be an integer (got the string '86400': write it without quotes)"),
        ("'yes'", "must be an integer (got 'yes')"),
        ("[60]", "must be an integer (got a list)"),
    ],
)
def test_a_wrong_integer_is_shown_as_yaml_spells_it(
    tmp_path: Path, value: str, expected: str
) -> None:
    text = WEBFOLDER + f"      cache_ttl_value: {value}\n"
    assert errors_of(tmp_path, text) == [f"f.yaml:8:24: deployment.cache_ttl_value: {expected}"]


@pytest.mark.parametrize(
    ("length", "shown"), [(60, "x" * 60), (61, "x" * 57 + "...")], ids=["60", "61"]
)
def test_a_long_value_is_cut_to_one_readable_line(tmp_path: Path, length: int, shown: str) -> None:
    text = WEBFOLDER.replace("  - name: Blog\n", f"  - name: Blog\n    enabled: {'x' * length}\n")
    assert errors_of(tmp_path, text) == [f"f.yaml:4:14: enabled: must be a boolean (got '{shown}')"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 1\nsafety: [1]\nsources: []\n", "2:9: safety: must be a mapping (got a list)"),
        ("version: 1\nsources: [3]\n", "2:11: sources[0]: must be a mapping (got an integer)"),
        (
            "version: 1\nsources:\n  - name: Blog\n    deployment: s3\n",
            "4:17: deployment: must be a mapping (got a string)",
        ),
        (
            WEBFOLDER + "      default_params: [w]\n",
            "8:23: deployment.default_params: must be a mapping (got a list)",
        ),
        (
            WEBFOLDER.replace("[acme-blog]", "acme-blog"),
            "6:25: deployment.imgix_subdomains: must be a list (got 'acme-blog')",
        ),
        (
            "version: 1\nsources:\n  - name: Blog\n    deployment: true\n",
            "4:17: deployment: must be a mapping (got a boolean)",
        ),
        (
            "version: 1\nsources:\n  - name: Blog\n    deployment: 1.5\n",
            "4:17: deployment: must be a mapping (got a number)",
        ),
        ("version: 1\nsources: {}\n", "2:10: sources: must be a list (got a mapping)"),
        (WEBFOLDER.replace("name: Blog", "name: 5"), "3:11: name: must be a string (got 5)"),
        (
            "version: 1\nsafety: {max_risky_share: half}\nsources: []\n",
            "2:27: safety.max_risky_share: must be a number (got 'half')",
        ),
    ],
    ids=[
        "model",
        "source",
        "deployment",
        "dict",
        "list",
        "boolean",
        "float",
        "list of",
        "string",
        "number",
    ],
)
def test_a_wrong_type_is_named_in_the_projects_words(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert errors_of(tmp_path, text) == [f"f.yaml:{expected}"]


S3 = """\
version: 1
sources:
  - name: Products
    deployment:
      type: s3
      imgix_subdomains: [acme-products]
      s3_bucket: acme-product-images
      s3_access_key: AKIAIOSFODNN7EXAMPLE
      s3_secret_key: {env: S3_SECRET_KEY}
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "version: 1\nsources: []\nownr: a\n",
            "3:1: ownr: unknown key 'ownr' (did you mean 'owner'?)",
        ),
        (
            WEBFOLDER.replace("  - name: Blog\n", "  - name: Blog\n    enabeld: true\n"),
            "4:5: enabeld: unknown key 'enabeld' (did you mean 'enabled'?)",
        ),
        (
            S3 + "      s3_bukcet_prefix: x/\n",
            "10:7: deployment.s3_bukcet_prefix: unknown key 's3_bukcet_prefix' "
            "(did you mean 's3_prefix'?)",
        ),
        # Only the names of the deployment's own type: `webfolder_base_url` is no s3 name.
        (
            S3 + "      webfolder_base_ur: x\n",
            "10:7: deployment.webfolder_base_ur: unknown key 'webfolder_base_ur'",
        ),
        ("version: 1\nsources: []\nzzz: 1\n", "3:1: zzz: unknown key 'zzz'"),
        # Three letters of ten in common: difflib's ratio is the cutoff itself, 0.6.
        (
            "version: 1\nsources: []\nownzz: a\n",
            "3:1: ownzz: unknown key 'ownzz' (did you mean 'owner'?)",
        ),
        (
            "version: 1\nsources: []\nsafety: {max_risky_shar: 1}\n",
            "3:10: safety.max_risky_shar: unknown key 'max_risky_shar' "
            "(did you mean 'max_risky_share'?)",
        ),
    ],
    ids=["file", "source", "deployment", "other type", "nothing close", "at the cutoff", "safety"],
)
def test_an_unknown_key_is_placed_at_the_key_with_the_closest_known_name(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert errors_of(tmp_path, text) == [f"f.yaml:{expected}"]


def test_a_key_holding_control_characters_stays_on_one_line(tmp_path: Path) -> None:
    text = WEBFOLDER.replace("  - name: Blog\n", '  - name: Blog\n    "en\\tabled\\n": true\n')
    assert errors_of(tmp_path, text) == [
        "f.yaml:4:5: en\\tabled\\n: unknown key 'en\\tabled\\n' (did you mean 'enabled'?)"
    ]


def test_a_wrong_value_merged_in_is_placed_at_its_merge_key(tmp_path: Path) -> None:
    # The merged key has no line of its own in the mapping that receives it.
    text = """\
    version: 1
    sources:
      - <<: {enabled: maybe}
        name: Blog
        deployment:
          <<: {cache_ttl_value: -1}
          type: webfolder
          imgix_subdomains: [acme-blog]
          webfolder_base_url: https://blog.acme.example/
    """
    assert errors_of(tmp_path, text) == [
        "f.yaml:3:5: enabled: must be a boolean (got 'maybe')",
        "f.yaml:6:7: deployment.cache_ttl_value: must be >= 1800 (got -1)",
    ]


@BOTH_PATHS
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # pydantic read the bytes as text: a URL the file does not show.
        (
            "webfolder_base_url: !!binary aHR0cHM6Ly9ldmlsLmV4YW1wbGUv",
            "7:27: deployment.webfolder_base_url: must not be binary data (!!binary): "
            "write the text itself",
        ),
        (
            "annotation: 2024-01-01",
            "8:19: deployment.annotation: YAML reads this as a timestamp, which JSON has "
            "not (quote it if it is text)",
        ),
        (
            "default_params: !!set {w, h}",
            "8:23: deployment.default_params: must be a list or a mapping, not a set (!!set)",
        ),
        # No request, fingerprint or output can encode it: plan ended in an internal error.
        (
            'annotation: "note\\ud800"',
            "8:19: deployment.annotation: must be Unicode text (it holds a lone surrogate "
            "escape such as \\ud800)",
        ),
        (
            'default_params: {"w\\udc00": 1}',
            "8:23: deployment.default_params: must be Unicode text (it holds a lone "
            "surrogate escape such as \\ud800)",
        ),
        # A file written by a JSON encoder (`json.dumps` escapes a character past U+FFFF as
        # a surrogate pair): the pair is no lone surrogate, and the error said it was.
        (
            'annotation: "smile \\ud83d\\ude00"',
            "8:19: deployment.annotation: must be Unicode text: YAML reads JSON's surrogate "
            "pair \\ud83d\\ude00 as two halves of a character (write the character itself, "
            "or \\U0001f600)",
        ),
    ],
    ids=[
        "binary",
        "timestamp",
        "set",
        "lone surrogate",
        "lone surrogate in a key",
        "surrogate pair",
    ],
)
def test_a_value_json_cannot_carry_is_a_located_error(
    tmp_path: Path, line: str, expected: str, tail: str
) -> None:
    text = WEBFOLDER
    if line.startswith("webfolder_base_url"):  # in place of the file's own, on line 7
        text = text.replace("      webfolder_base_url: https://blog.acme.example/\n", "")
    assert errors_of(tmp_path, f"{text}      {line}\n{tail}") == [f"f.yaml:{expected}"]


# Each key as YAML reads it (a number, a boolean, null: pydantic names it `str(key)`, such
# as 'None', which the file does not spell) and as it is shown.
NOT_STRING_KEYS = pytest.mark.parametrize(
    ("key", "shown"),
    [("1", "1"), ("true", "true"), ("1.5", "1.5"), ("null", "null"), ("~", "null")],
)


@BOTH_PATHS
@NOT_STRING_KEYS
def test_a_key_that_is_not_a_string_is_named_as_a_key(
    tmp_path: Path, tail: str, key: str, shown: str
) -> None:
    # Placed at the key and named as one (`1`, not the index `[1]`; `null`, not 'None').
    # Not the wording of a wrong value ("must be a string, a number or a boolean (got an
    # integer)" about `a`), nor pydantic's own.
    in_source = WEBFOLDER.replace("  - name: Blog\n", f"  - name: Blog\n    {key}: x\n")
    assert errors_of(tmp_path, in_source + tail) == [
        f"f.yaml:4:5: {shown}: keys must be strings (got {shown})"
    ]
    in_parameters = WEBFOLDER + f"      default_params:\n        w: 100\n        {key}: a\n"
    assert errors_of(tmp_path, in_parameters + tail) == [
        f"f.yaml:10:9: deployment.default_params.{shown}: keys must be strings (got {shown})"
    ]


@NOT_STRING_KEYS
def test_a_top_level_key_that_is_not_a_string_is_named_at_its_place(
    tmp_path: Path, key: str, shown: str
) -> None:
    text = f"version: 1\n{key}: x\nsources: []\n"
    assert errors_of(tmp_path, text) == [f"f.yaml:2:1: {shown}: keys must be strings (got {shown})"]


def test_a_key_that_is_a_list_is_placed_at_it_and_named_by_its_mapping(tmp_path: Path) -> None:
    text = WEBFOLDER + "      default_params:\n        w: 100\n        ? [a]\n        : b\n"
    assert errors_of(tmp_path, text) == [
        "f.yaml:10:11: deployment.default_params: keys must be strings"
    ]


@BOTH_PATHS
def test_a_key_spelled_like_the_deployment_type_is_an_unknown_key_at_its_place(
    tmp_path: Path, tail: str
) -> None:
    # pydantic's path names the type (`s3`) where the file has none: the key is not it.
    text = S3 + "      s3: x\n" + tail
    assert errors_of(tmp_path, text) == ["f.yaml:10:7: deployment.s3: unknown key 's3'"]


def test_the_hostname_limit_alone_is_reported_once(tmp_path: Path) -> None:
    # The loader checks the limit on the raw data; the model's own copy of the rule, which
    # runs only when every field is valid, is dropped.
    names = ", ".join(f"acme-{i}" for i in range(101))
    text = WEBFOLDER.replace("[acme-blog]", f"[{names}]")
    assert errors_of(tmp_path, text) == [
        "f.yaml:6:25: deployment.imgix_subdomains: imgix_subdomains and custom_domains may "
        "hold at most 100 names together (got 101)"
    ]


@pytest.mark.parametrize("merge", ["", "<<: {}, "], ids=["fast", "precise"])
@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ("version: '1'\nsafety: {", "1:10: version: must be 1 (got the string '1'"),
        ("version: 1\nsafety: {max_risky_share: '0.5', ", "2:27: safety.max_risky_share: "),
        ("version: 1\nsafety: {max_risky_share: '1', ", "2:27: safety.max_risky_share: "),
    ],
    ids=["version", "number", "integer as number"],
)
def test_a_quoted_setting_valid_without_quotes_says_to_drop_them(
    tmp_path: Path, settings: str, expected: str, merge: str
) -> None:
    errors = errors_of(tmp_path, f"{settings}{merge}min_risky_count: 3}}\nsources: []\n")
    assert len(errors) == 1
    assert errors[0].startswith(f"f.yaml:{expected}")
    assert errors[0].endswith(": write it without quotes)")


@pytest.mark.parametrize("value", ["'2'", "'1.0'", "'true'"])
def test_a_quoted_version_that_is_not_1_without_quotes_gets_no_hint(
    tmp_path: Path, value: str
) -> None:
    assert errors_of(tmp_path, f"version: {value}\nsources: []\n") == [
        f"f.yaml:1:10: version: must be 1 (got {value})"
    ]
