"""The catalogue of imgix rendering parameters: built reproducibly, and every value form
checked with a valid and an invalid value generated from the catalogue itself."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from console import invoke

from reconciler import rendering_params
from reconciler.rendering_params import (
    Problem,
    ValueForm,
    _item_pattern,
    catalogue,
    default_params_schema,
    problems,
)
from reconciler.schema import sources_schema

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "build_rendering_params.py"
VENDORED = REPO / "scripts" / "imgix-url-params"


# --------------------------------------------------------------------------- the script


def build(out: Path, *extra: str) -> None:
    subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), *extra],
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_the_script_run_twice_gives_the_same_file_as_the_shipped_one(tmp_path: Path) -> None:
    # On a copy, so the run cannot read anything it wrote before.
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    for name in ("parameters.json", "LICENSE"):
        (upstream / name).write_bytes((VENDORED / name).read_bytes())
    first, second = tmp_path / "first", tmp_path / "second"
    build(first, "--from", str(upstream / "parameters.json"))
    build(second, "--from", str(upstream))
    package = resources.files("reconciler")
    for name in ("rendering_params.json", "rendering_params.LICENSE"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
        assert (first / name).read_bytes() == package.joinpath(name).read_bytes(), (
            f"reconciler/{name} is not what scripts/build_rendering_params.py makes: rerun it"
        )


def test_the_catalogue_records_its_source_and_ships_the_licence() -> None:
    upstream = json.loads((VENDORED / "parameters.json").read_text(encoding="utf-8"))
    data = json.loads(resources.files("reconciler").joinpath("rendering_params.json").read_text())
    assert data["source"] == {
        "package": "imgix-url-params",
        "version": upstream["version"],
        "license": "BSD-3-Clause",
    }
    assert catalogue().version == upstream["version"]
    notice = resources.files("reconciler").joinpath("rendering_params.LICENSE").read_text()
    assert f"imgix-url-params {upstream['version']}" in notice
    assert "Copyright (c) 2016 Zebrafish Labs" in notice
    assert "Redistribution and use in source and binary forms" in notice
    assert len(catalogue().parameters) == len(upstream["parameters"])


def test_the_wheel_carries_the_catalogue() -> None:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert '"rendering_params.json", "rendering_params.LICENSE"' in text


def test_aliases_and_dependencies_come_from_upstream() -> None:
    table = catalogue()
    assert table.find("f") is table.parameters["fit"]
    assert table.find("width") is table.parameters["w"]
    assert table.parameters["ar"].depends == ("fit=crop",)


# --------------------------------------------------------------------------- value forms


def valid_value(form: ValueForm) -> Any:
    """A value of `form`, made from what the catalogue says about it."""
    low, high = form.minimum, form.maximum
    kind = form.form
    if kind == "boolean":
        return True
    if kind == "integer":
        return int(low) if low is not None else int(high) if high is not None else 0
    if kind in ("number", "unit_scalar"):
        if low is not None and high is not None:
            return (low + high) / 2
        return low if low is not None else 0.5
    if kind in ("enum", "integer_choice"):
        return form.values[-1]
    if kind == "list":
        return ",".join(map(str, form.values[:2])) if form.values else "en,fr"
    if kind == "tuple":
        return ",".join(str(valid_value(alternatives[0])) for alternatives in form.items)
    return {
        "string": "text",
        "hex_color": "1a2b3c",
        "color_keyword": catalogue().color_keywords[0],
        "font": "Avenir Next",
        "url": "https://assets.example.com/logo.png",
        "path": "/logo.png",
        "interval": f"{int(low or 1)}-{int(low or 1) + 4}",
        "ratio": "16:9",
        "timestamp": 1767225600,
    }[kind]


def invalid_value(form: ValueForm) -> Any:
    """A value `form` refuses: out of its range, off its list, or of the wrong shape."""
    kind, high, low = form.form, form.maximum, form.minimum
    if kind == "integer":
        return int(high) + 1 if high is not None else int(low) - 1 if low is not None else "1.5"
    if kind in ("number", "unit_scalar"):
        return high + 0.5 if high is not None else "half"
    if kind == "integer_choice":
        return max(form.values) + 1
    if kind == "enum":
        return f"{form.values[0]}x"
    if kind == "list":
        return f"{form.values[0]},nope" if form.values else "en,,fr"
    if kind == "tuple":
        return ",".join(str(valid_value(alternatives[0])) for alternatives in form.items[1:])
    return {
        "boolean": "yes",
        "string": "",
        "hex_color": "12345",
        "color_keyword": "reed",
        "font": " ",
        "url": "assets.example.com/logo.png",
        "path": "logo.png",
        "interval": "1-b",
        "ratio": "16x9",
        "timestamp": -1,
    }[kind]


def distinct_forms() -> list[tuple[str, ValueForm]]:
    """Each value form of the catalogue once (with a parameter that has it), items included."""
    seen: dict[ValueForm, str] = {}
    pending = [(name, form) for name, p in catalogue().parameters.items() for form in p.forms]
    while pending:
        name, form = pending.pop(0)
        seen.setdefault(form, name)
        pending += [(name, choice) for alternatives in form.items for choice in alternatives]
    return sorted(((n, f) for f, n in seen.items()), key=lambda pair: repr(pair[1]))


FORMS = distinct_forms()


def form_id(pair: tuple[str, ValueForm]) -> str:
    name, form = pair
    bounds = f"[{form.minimum}..{form.maximum}]" if form.form not in ("enum", "tuple") else ""
    return f"{form.form}{bounds}-{name}"


def test_every_upstream_value_type_is_covered() -> None:
    kinds = {form.form for _, form in FORMS}
    assert kinds == {
        "boolean",
        "integer",
        "integer_choice",
        "number",
        "unit_scalar",
        "enum",
        "list",
        "tuple",
        "string",
        "hex_color",
        "color_keyword",
        "font",
        "url",
        "path",
        "interval",
        "ratio",
        "timestamp",
    }


@pytest.mark.parametrize("pair", FORMS, ids=[form_id(p) for p in FORMS])
def test_each_value_form_takes_a_valid_value_and_refuses_an_invalid_one(
    pair: tuple[str, ValueForm],
) -> None:
    _, form = pair
    good, bad = valid_value(form), invalid_value(form)
    assert form.accepts(_text(good)), good
    assert not form.accepts(_text(bad)), bad


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


SINGLE_FORM = sorted(
    (name, p.forms[0]) for name, p in catalogue().parameters.items() if len(p.forms) == 1
)


@pytest.fixture(scope="module")
def schema_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(sources_schema())


def file_with(params: dict[str, Any], **top: Any) -> dict[str, Any]:
    deployment = {
        "type": "webproxy",
        "imgix_subdomains": ["acme-proxy"],
        "default_params": params,
    }
    return {"version": 1, **top, "sources": [{"name": "Proxy", "deployment": deployment}]}


def test_every_parameter_with_a_valid_value_passes_validate_and_the_schema(
    schema_validator: jsonschema.Draft202012Validator,
) -> None:
    params = {name: valid_value(p.forms[0]) for name, p in catalogue().parameters.items()}
    assert problems(params) == []
    assert list(schema_validator.iter_errors(file_with(params))) == []


def _by_form() -> list[tuple[str, ValueForm]]:
    seen: dict[ValueForm, str] = {}
    for name, form in SINGLE_FORM:
        seen.setdefault(form, name)
    return [(name, form) for form, name in seen.items()]


@pytest.mark.parametrize("pair", _by_form(), ids=[form_id(p) for p in _by_form()])
def test_an_invalid_value_of_each_form_fails_validate_and_the_schema(
    pair: tuple[str, ValueForm], schema_validator: jsonschema.Draft202012Validator
) -> None:
    name, form = pair
    bad = invalid_value(form)
    (problem,) = problems({name: bad})
    assert (problem.key, problem.kind) == (name, "param_value")
    assert problem.message.startswith("must be ")
    assert list(schema_validator.iter_errors(file_with({name: bad}))), (name, bad)


# --------------------------------------------------------------------------- messages


def test_a_mistyped_value_suggests_the_closest_allowed_one() -> None:
    (problem,) = problems({"fm": "wepb"})
    assert problem.message.startswith("must be one of gif, jpg,")
    assert problem.message.endswith("(got 'wepb'; did you mean 'webp'?)")
    # The words come from whichever form has them, after forms that have none.
    (colour,) = problems({"bg": "reed"})
    assert colour.message.endswith("(got 'reed'; did you mean 'red'?)")


def test_a_mistyped_name_suggests_the_closest_parameter() -> None:
    (problem,) = problems({"atuo": "format"})
    assert problem == type(problem)(
        "atuo", "unknown_param", "unknown imgix rendering parameter 'atuo' (did you mean 'auto'?)"
    )


def test_a_list_value_suggests_the_list_with_the_wrong_item_replaced() -> None:
    (problem,) = problems({"auto": "fromat,compress"})
    assert "did you mean 'format,compress'?" in problem.message
    # Only a list that its fix makes valid is suggested: "format,zzzz" would be refused too.
    (unfixable,) = problems({"auto": "fromat,zzzz"})
    assert unfixable.message.endswith("(got 'fromat,zzzz')")


def test_an_unknown_name_without_a_close_one_points_at_allow_unknown_params() -> None:
    (problem,) = problems({"zzqqxx": 1})
    assert problem.message == (
        "unknown imgix rendering parameter 'zzqqxx' (allow_unknown_params: true at the top "
        f"of the file accepts parameters newer than imgix-url-params {catalogue().version})"
    )
    assert problems({"zzqqxx": 1}, allow_unknown=True) == []
    # Known names are still checked when unknown ones are allowed.
    assert [p.key for p in problems({"zzqqxx": 1, "fm": "wepb"}, allow_unknown=True)] == ["fm"]


def test_an_alias_is_its_parameter_and_may_not_repeat_it() -> None:
    assert problems({"f": "crop", "height": 0.5}) == []
    (problem,) = problems({"fit": "crop", "f": "clip"})
    assert problem == Problem(
        "f", "param_value", "'f' and 'fit' are the same parameter (fit): keep one"
    )


def test_quoted_and_unquoted_numbers_are_the_same_value() -> None:
    assert problems({"q": 75, "dpr": "2.5", "w": "0.5", "h": 300}) == []
    assert [p.key for p in problems({"dpr": "6", "q": True})] == ["dpr", "q"]


def test_a_hex_colour_that_yaml_read_as_a_number_says_to_quote_it() -> None:
    (problem,) = problems({"bg": 0})
    assert problem.message.endswith("(got 0; quote a hex colour made of digits, such as '000000')")
    # Only a number for a colour: quoted text, or a number for something else, says not.
    assert problems({"bg": "12345", "w": -5}) == [
        Problem(
            "bg",
            "param_value",
            "must be a hex colour (RGB, ARGB, RRGGBB or AARRGGBB); or a CSS colour name "
            "(got '12345')",
        ),
        Problem(
            "w",
            "param_value",
            "must be an integer from 2 to 8192; or a fraction from 0 to 1 (got -5)",
        ),
    ]


def test_the_schema_completes_names_and_aliases() -> None:
    schema, definitions = default_params_schema()
    assert schema["properties"]["fm"] == {"$ref": "#/$defs/ImgixParam.fm"}
    assert schema["properties"]["f"] == {"$ref": "#/$defs/ImgixParam.fit"}
    assert "webp" in definitions["ImgixParam.fm"]["enum"]
    assert "Takes effect with fit=crop" in definitions["ImgixParam.ar"]["description"]


def test_the_schema_refuses_unknown_names_unless_the_file_allows_them(
    schema_validator: jsonschema.Draft202012Validator,
) -> None:
    assert list(schema_validator.iter_errors(file_with({"atuo": "format"})))
    allowed = file_with({"newparam": "x"}, allow_unknown_params=True)
    assert list(schema_validator.iter_errors(allowed)) == []


def test_suggestions_are_bounded_for_hostile_files() -> None:
    # Thousands of bad names would each cost a fuzzy match: past the first ones, none.
    found = problems({f"atuo{i}": 1 for i in range(500)})
    assert len(found) == 500
    assert "did you mean" in found[0].message
    assert "did you mean" not in found[-1].message
    # The bound is exact: the hundredth problem still has its suggestion, the next none.
    names = [name for name in sorted(catalogue().parameters) if len(name) >= 3][:101]
    near_misses = {f"{name}~": 1 for name in names}
    suggested = ["did you mean" in p.message for p in problems(near_misses)]
    assert suggested == [True] * 100 + [False]
    past_the_bound = problems({**dict(list(near_misses.items())[:100]), "fm": "wepb"})
    assert past_the_bound[-1].message.endswith("(got 'wepb')")
    # A value is matched up to 200 characters: a list of 200 gets its fix, of 201 none.
    at_the_bound, past_it = (
        "fromat" + ",format" * 27 + ",true",
        "fromat" + ",format" * 26 + ",true,enhance",
    )
    assert (len(at_the_bound), len(past_it)) == (200, 201)
    fixed = at_the_bound.replace("fromat", "format")
    assert problems({"auto": at_the_bound})[0].message.endswith(f"; did you mean {fixed!r}?)")
    assert "did you mean" not in problems({"auto": past_it})[0].message
    (long_value,) = problems({"fm": "wepb" * 1000})
    assert "did you mean" not in long_value.message
    assert long_value.message.endswith("...')")


def test_an_integer_past_pythons_digit_limit_is_judged_by_its_bounds_not_an_exception() -> None:
    # int() refuses text of more than 4300 digits: one hostile value must not hide the
    # file's other problems behind Python's own message.
    huge = "9" * 5000
    found = problems(
        {"w": huge, "chromasub": huge, "frame": f"1-{huge}", "expires": huge, "fm": "wepb"}
    )
    assert [p.key for p in found] == ["w", "chromasub", "fm"]
    assert found[0].message.startswith("must be an integer from 2 to 8192; or a fraction")
    assert found[1].message.startswith("must be one of 444, 422, 420 (got '999")
    assert problems({"blend-pad": f"-{huge}"}) == []
    assert [p.key for p in problems({"fill-gen-seed": f"-{huge}"})] == ["fill-gen-seed"]


def test_a_choice_of_integers_refuses_text_that_is_no_integer() -> None:
    assert problems({"chromasub": "4:4:4"}) == [
        Problem(
            "chromasub",
            "param_value",
            "must be one of 444, 422, 420 (got '4:4:4'; did you mean '444'?)",
        )
    ]


def test_a_value_ending_in_a_newline_is_refused_not_sent_to_imgix() -> None:
    # A YAML block scalar (`q: |`) ends in a newline, which a regular expression's `$`
    # matches before: the value imgix would get is "75\n", not 75.
    params = {
        "q": "75\n",
        "dpr": "2\n",
        "bg": "fff\n",
        "chromasub": "444\n",
        "expires": "1767225600\n",
        "frame": "1-5\n",
        "ar": "16:9\n",
    }
    assert [p.key for p in problems(params)] == list(params)
    assert problems({k: v.rstrip("\n") for k, v in params.items()}) == []


def test_a_url_python_would_repair_or_cannot_split_is_refused_at_its_key() -> None:
    # urlsplit drops leading blanks and any tab or newline, and raises on an unclosed
    # IPv6 bracket: the value imgix gets is the text as written.
    params = {
        "mark": " https://assets.example.com/logo.png",
        "mark-base": "https://assets.example.com/lo\ngo/",
        "mask": "ht\ttps://assets.example.com/mask.png",
        "blend": "https://[assets.example.com/logo.png",
        "fm": "wepb",
    }
    found = problems(params)
    assert [p.key for p in found] == list(params)
    assert found[3].message.startswith("must be a hex colour")
    assert "an absolute http(s) URL" in found[3].message
    assert problems({"mark": "https://[::1]:8443/logo.png"}) == []


def test_a_non_scalar_value_or_a_non_string_key_has_only_the_models_error(tmp_path: Path) -> None:
    # The model's type check reports these; the catalogue adds no second error of its own,
    # and still checks the keys after them.
    path = tmp_path / "sources.yaml"
    path.write_text(
        "version: 1\nsources:\n  - name: Proxy\n    deployment:\n      type: webproxy\n"
        "      imgix_subdomains: [acme-proxy]\n"
        "      default_params: {fm: [webp], 7: x, w: -5}\n",
        encoding="utf-8",
    )
    result = invoke("validate", str(path))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{path}:7:24: deployment.default_params.fm: must be a string, a number or a boolean "
        "(got a list)",
        f"{path}:7:36: deployment.default_params.7: keys must be strings (got 7)",
        f"{path}:7:45: deployment.default_params.w: must be an integer from 2 to 8192; "
        "or a fraction from 0 to 1 (got -5)",
        "3 errors in 1 of 1 file",
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ar", "16:9"),
        ("ar", "0.5:1"),
        ("ar", "0:9"),
        ("ar", "16:0.0"),
        ("frame", "2-"),
        ("frame", "-"),
        ("mark", "HTTPS://assets.example.com/logo.png"),
        ("mark", "https://?logo.png"),
        ("mark", "https://#logo"),
        ("mark", "https://assets.example.com/lo\ngo.png"),
        # A value is its text: `true` is the word true, a number its digits.
        ("auto", True),
        ("auto", False),
        ("video-generate-subtitles", False),
        ("fm", True),
        ("video-subtitle-translations", 5),
        ("video-subtitle-translations", True),
        ("txt-font", 5),
        ("txt-font", 1.5),
        # Each item of a tuple has its own form.
        ("border", "2,reed"),
        ("border", "2,red"),
        ("duotone", "000,fff"),
        ("duotone", "000,ffff0"),
        ("rect", "0,0,10,x"),
        ("rect", "center,top,10,10"),
        ("fill-gradient-radial-radius", "0.5,.5"),
        ("fill-gradient-radial-radius", "0.5,half"),
        # A choice of integers reads its text as an integer, as the integer form does.
        ("chromasub", "+444"),
        ("chromasub", "0420"),
        ("chromasub", "-444"),
        ("orient", "-0"),
        ("orient", "+3"),
        ("orient", "05"),
        ("orient", "0"),
        ("orient", "1"),
        ("orient", "+90"),
        ("rect", "middle,top,10,10"),
        ("expires", 0),
        ("expires", -1),
        ("blend-pad", "x"),
        ("blend-pad", "-12"),
    ],
)
def test_validate_and_the_schema_agree_on_a_value_at_the_edge_of_its_form(
    name: str, value: Any, schema_validator: jsonschema.Draft202012Validator
) -> None:
    by_validate = problems({name: value}) == []
    by_schema = not list(schema_validator.iter_errors(file_with({name: value})))
    assert by_validate == by_schema, (name, value, by_validate)


def _patterns(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        return own + [p for value in node.values() for p in _patterns(value)]
    if isinstance(node, list):
        return [p for value in node for p in _patterns(value)]
    return []


def test_every_schema_pattern_is_a_regex_in_the_dialect_editors_use() -> None:
    # JSON Schema patterns are ECMA-262 regular expressions, which editors and
    # check-jsonschema compile in unicode mode: there `\-` outside a class is an error, and
    # check-jsonschema refuses the whole schema.
    regress = pytest.importorskip("regress")
    schema, definitions = default_params_schema()
    patterns = _patterns([schema, definitions])
    assert any("save" in p for p in patterns)
    for pattern in patterns:
        regress.Regex(pattern, "u")


def test_a_hex_colour_of_digits_left_unquoted_is_refused_since_yaml_drops_its_zeros(
    tmp_path: Path,
) -> None:
    # `bg: 001122` reads as the number 1122, which imgix would take for the colour #1122
    # (ARGB): a different colour, so every unquoted number is refused, as the schema does.
    path = tmp_path / "sources.yaml"
    path.write_text(
        "version: 1\nsources:\n  - name: Proxy\n    deployment:\n      type: webproxy\n"
        "      imgix_subdomains: [acme-proxy]\n"
        "      default_params: {bg: 001122, txt-color: 112233, blend-color: '001122'}\n",
        encoding="utf-8",
    )
    result = invoke("validate", str(path))
    assert result.exit_code == 1
    hint = "quote a hex colour made of digits, such as '000000')"
    assert result.stderr.splitlines() == [
        f"{path}:7:28: deployment.default_params.bg: must be a hex colour (RGB, ARGB, RRGGBB "
        f"or AARRGGBB); or a CSS colour name (got 1122; {hint}",
        f"{path}:7:47: deployment.default_params.txt-color: must be a hex colour (RGB, ARGB, "
        f"RRGGBB or AARRGGBB); or a CSS colour name (got 112233; {hint}",
        "2 errors in 1 of 1 file",
    ]


def test_a_ratio_takes_fractional_sides_but_no_zero_side() -> None:
    assert problems({"ar": "0.5:1"}) == []
    assert problems({"ar": "1.5:0.25"}) == []
    for shapeless in ("0:9", "16:0", "0.0:1", "0:0"):
        (problem,) = problems({"ar": shapeless})
        assert problem.message == f"must be a ratio such as 16:9 (got {shapeless!r})"


def test_an_interval_needs_a_bound_and_a_tuple_checks_every_item() -> None:
    assert problems({"frame": "2-", "video-clip-start": "-3", "rect": "center,top,10,10"}) == []
    (no_bound,) = problems({"frame": "-"})
    assert no_bound.message == "must be an integer; or an interval such as 1-5 (got '-')"
    (bad_item,) = problems({"rect": "0,0,10,x"})
    assert bad_item.message.startswith("must be 4 comma-separated values (an integer >= 0 or")


def test_a_url_is_absolute_http_or_https_and_a_number_is_finite() -> None:
    fine = {"mark": "http://assets.example.com/logo.png", "mask": "https://a.example/X.png"}
    assert problems(fine) == []
    wrong = ["ftp://assets.example.com/logo.png", "https:/logo.png", "mailto:logo@example.com"]
    for url in wrong:
        (problem,) = problems({"mark": url})
        assert problem.message.startswith("must be an absolute http(s) URL; or a path"), url
    # float() reads 1e999 as infinity, which no range check would catch.
    assert [p.key for p in problems({"w": "1e999", "dpr": "-1e999", "fp-z": "1e400"})] == [
        "w",
        "dpr",
        "fp-z",
    ]


COLOUR = "a hex colour (RGB, ARGB, RRGGBB or AARRGGBB) or a CSS colour name"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("bg-remove", "maybe", "must be true or false (got 'maybe')"),
        ("bg-replace", "", "must be text (got '')"),
        ("blend-pad", "x", "must be an integer (got 'x')"),
        ("fill-gen-seed", -1, "must be an integer >= 0 (got -1)"),
        ("dpr", 9, "must be a number from 0 to 5 (got 9)"),
        ("fp-x", 2, "must be a fraction from 0 to 1 (got 2)"),
        (
            "mask",
            "x",
            "must be one of ellipse, corners; or an absolute http(s) URL; or a path "
            "starting with / (got 'x')",
        ),
        ("expires", "soon", "must be a Unix timestamp (got 'soon')"),
        ("txt-font", " ", "must be a font name (got ' ')"),
        (
            "auto",
            "x",
            "must be a comma-separated list of enhance, format, redeye, compress, true (got 'x')",
        ),
        ("video-subtitle-translations", "a,,b", "must be a comma-separated list (got 'a,,b')"),
        (
            "border",
            "2,reed",
            f"must be 2 comma-separated values (an integer; {COLOUR}) (got '2,reed')",
        ),
        ("frame", "x", "must be an integer; or an interval such as 1-5 (got 'x')"),
        ("ar", "wide", "must be a ratio such as 16:9 (got 'wide')"),
        # A value is shown as the file has it: a YAML boolean in its own words, a long text cut.
        ("flip", True, "must be one of h, v, hv (got true)"),
        ("flip", False, "must be one of h, v, hv (got false)"),
        (
            "mark",
            "m" * 60,
            f"must be an absolute http(s) URL; or a path starting with / (got '{'m' * 60}')",
        ),
        (
            "mark",
            "m" * 61,
            f"must be an absolute http(s) URL; or a path starting with / (got '{'m' * 57}...')",
        ),
    ],
)
def test_each_form_says_in_words_what_it_takes(name: str, value: Any, message: str) -> None:
    assert problems({name: value}) == [Problem(name, "param_value", message)]


def test_both_booleans_are_taken() -> None:
    assert problems({"bg-remove": False, "flip": "h"}) == []
    assert problems({"bg-remove": "false"}) == []


def test_a_schema_word_with_regex_characters_matches_only_itself() -> None:
    # No word of today's catalogue holds one, so no public door reaches this: a newer
    # catalogue's "a.b" or "x+" must not become a pattern that also takes "axb" or "xx".
    words = ValueForm("enum", values=("a.b", "x+", "(c)", "d|e", "f-g", "h\\i", "j/k", "[l]"))
    pattern = re.compile(f"^{_item_pattern(words)}$")
    assert all(pattern.match(str(word)) for word in words.values)
    assert not any(pattern.match(text) for text in ("axb", "xx", "c", "d", "e", "f", "hi"))
    regress = pytest.importorskip("regress")
    regress.Regex(_item_pattern(words), "u")


def test_a_package_loader_that_cannot_read_the_catalogue_names_the_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rendering_params.shipped, "read", lambda name: None)
    catalogue.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match=r"rendering_params\.json"):
            catalogue()
    finally:
        monkeypatch.undo()
        catalogue.cache_clear()
    assert catalogue().find("w") is not None
