"""Hostile text in public outputs: it can neither ping, link, nor forge a CI log line.

Names come from a pull request's file and from the API; error details from the API. The
pull-request comment (markdown) must not ping people, link issues or autolink URLs, and no
line of stdout or stderr may start a GitHub workflow command or hold a raw control
character. Every run is the CLI end to end over real HTTP, to the emulator or to a small
hostile server where the emulator would never answer that way.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from console import child_env, invoke
from ruamel.yaml import YAML
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reconciler.emulator import SourceStore
from reconciler.emulator.server import running_app
from reconciler.plan import HIDDEN
from reconciler.untrusted import markdown_text

pytestmark = pytest.mark.e2e

# What GitHub makes of a comment's text once entities are decoded: each pattern pings
# someone or links somewhere.
GITHUB_LINKS = {
    "mention": re.compile(r"(?<![A-Za-z0-9`])@[A-Za-z0-9]"),
    "issue": re.compile(r"#\d"),
    "GH- reference": re.compile(r"(?i)\bgh-\d"),
    "URL": re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://"),
    "www domain": re.compile(r"(?i)(?<![^\W_])www\."),
    "e-mail": re.compile(r"[\w.+-]@[\w-]+\.\w"),
}
PINGING_NAME = (
    "Ping @acme/security and @octocat re #12, acme/infra#3 and GH-7: "
    "https://evil.example/x, www.evil.example, admin@evil.example"
)
FORGING_NAME = "Evil\r\n::add-mask::hunter2\n  ::error file=x::forged\u2028::warning::y\x1b[2J"
# A workflow command at the start of a line, blanks allowed before it.
COMMAND_LINE = re.compile(r"^\s*::", re.MULTILINE)


def links_in(markdown: str) -> list[str]:
    text = html.unescape(markdown)
    return [f"{kind}: {m.group()!r}" for kind, p in GITHUB_LINKS.items() for m in p.finditer(text)]


def assert_inert(output: str) -> None:
    """No workflow command, no raw control character, no extra line from a hostile text."""
    assert COMMAND_LINE.search(output) is None, output
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]", output), output


def webfolder(name: str, subdomain: str) -> str:
    quoted = name.encode("unicode_escape").decode("ascii").replace('"', '\\"')
    return (
        f'  - name: "{quoted}"\n    deployment:\n      type: webfolder\n'
        f"      imgix_subdomains: [{subdomain}]\n      webfolder_base_url: https://site.example/\n"
    )


@pytest.fixture
def hostile_file(tmp_path: Path) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(
        "version: 1\nsources:\n"
        + webfolder(PINGING_NAME, "pinging")
        + webfolder(FORGING_NAME, "forging")
    )
    return path


def test_markdown_comment_neither_pings_nor_links(
    emulator_store: SourceStore, emulator_url: str, hostile_file: Path
) -> None:
    result = invoke("plan", hostile_file, "--format", "markdown", "--api-url", emulator_url)

    assert result.exit_code == 0, result.output + result.stderr
    assert result.stderr == ""
    # Text we wrote ourselves holds none either, so the whole comment is checked.
    assert links_in(result.stdout) == []
    assert_inert(result.stdout)
    z = "&#8203;"
    summary = (
        f"<details><summary><b>+ create</b> Ping @{z}acme/security and @{z}octocat re "
        f"#{z}12, acme/infra#{z}3 and GH-{z}7: https:{z}//evil.example/x, "
        f"www{z}.evil.example, admin@{z}evil.example</summary>"
    )
    assert summary in result.stdout.splitlines()
    # The name reads the same: only invisible zero-width spaces were added.
    assert html.unescape(summary).replace("\u200b", "").endswith(PINGING_NAME + "</summary>")


def test_markdown_of_a_name_forging_lines_keeps_it_on_its_own(
    emulator_store: SourceStore, emulator_url: str, hostile_file: Path
) -> None:
    result = invoke("plan", hostile_file, "--format", "markdown", "--api-url", emulator_url)

    forged = [line for line in result.stdout.splitlines() if "Evil" in line]
    shown = (
        "::add-mask::hunter2&#92;{0}n  ::error file=x::forged&#92;{0}u2028"
        "::warning::y&#92;{0}u001b[2J"
    )
    assert forged == [
        "<details><summary><b>+ create</b> Evil&#92;r&#92;n" + shown.format("") + "</summary>",
        '| <code>name</code> |  | <code>"Evil&#92;&#92;r&#92;&#92;n'
        + shown.format("&#92;")
        + '"</code> |',
    ]
    assert_inert(result.stdout)


def test_text_plan_drift_and_apply_report_keep_hostile_names_on_their_lines(
    emulator_store: SourceStore, emulator_url: str, hostile_file: Path
) -> None:
    planned = invoke("plan", hostile_file, "--api-url", emulator_url)
    drifted = invoke("drift", hostile_file, "--api-url", emulator_url)
    applied = invoke("apply", hostile_file, "--auto-approve", "--api-url", emulator_url)

    assert planned.exit_code == applied.exit_code == 0, applied.output + applied.stderr
    assert drifted.exit_code == 2
    for result in (planned, drifted, applied):
        assert_inert(result.stdout)
        assert_inert(result.stderr)
    escaped_name = (
        "Evil\\r\\n::add-mask::hunter2\\n  ::error file=x::forged\\u2028::warning::y\\u001b[2J"
    )
    assert f'+ create "{escaped_name}"' in planned.stdout.splitlines()
    assert drifted.stderr.splitlines() == [f"Drift: create {escaped_name}; create {PINGING_NAME}."]
    assert f"applied: create {escaped_name}" in [
        line.split(" (", 1)[0] for line in applied.stdout.splitlines()
    ]


def test_json_plan_is_the_same_document_with_nothing_raw_a_terminal_acts_on(
    emulator_store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    name = "C1 \x9b2J, NEL \x85, LS \u2028, RLO \u202e, ESC \x1b, \r\n::error::x"
    path = tmp_path / "sources.yaml"
    path.write_text("version: 1\nsources:\n" + webfolder(name, "json-c1"))

    result = invoke("plan", path, "--format", "json", "--api-url", emulator_url)

    assert result.exit_code == 0, result.output + result.stderr
    assert_inert(result.stdout)
    assert not re.search("[\u202a-\u202e]", result.stdout)
    assert json.loads(result.stdout)["actions"][0]["source"] == name


# Characters that show nothing: a name holding them reads as another name, or as none.
# The Arabic letter mark is the bidi control the escaping lacked; the others are zero-width
# or invisible format characters (the joiners, which scripts and emoji need, stay raw).
INVISIBLE = "\u00ad\u061c\u180e\u200b\u2060\u2063\u206a\ufeff\ufff9\U000e0041"


@pytest.mark.parametrize("output", ["text", "markdown", "json"])
def test_a_name_of_invisible_characters_shows_each_of_them_in_every_format(
    emulator_store: SourceStore, emulator_url: str, tmp_path: Path, output: str
) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(
        "version: 1\nsources:\n"
        + webfolder("Products", "shown-products")
        + webfolder("Prod" + INVISIBLE + "ucts", "hidden-products")
    )

    result = invoke("plan", path, "--format", output, "--api-url", emulator_url)

    assert result.exit_code == 0, result.output + result.stderr
    raw = [f"U+{ord(c):04X}" for c in INVISIBLE if c in result.stdout]
    assert raw == [], result.stdout
    escapes = "".join(f"\\u{ord(c):04x}" for c in INVISIBLE[:-1]) + "\\udb40\\udc41"
    if output == "markdown":
        escapes = escapes.replace("\\", "&#92;")
    assert f"Prod{escapes}ucts" in result.stdout
    if output == "json":
        sources = [action["source"] for action in json.loads(result.stdout)["actions"]]
        assert set(sources) == {"Prod" + INVISIBLE + "ucts", "Products"}


# Combining marks stacked on one letter: a browser draws them on top of the lines above and
# below ("Zalgo" text), over the rows and warnings a reviewer reads.
STACKED = "Stacked" + "\u0301\u0316" * 40 + "\u0489" * 20


def test_combining_marks_stacked_past_four_on_a_letter_are_escaped_in_the_comment(
    emulator_store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(
        "version: 1\nsources:\n"
        + webfolder(STACKED, "stacked")
        + webfolder("Cafe\u0301 Vie\u0323\u0302t", "accented")
    )

    result = invoke("plan", path, "--format", "markdown", "--api-url", emulator_url)

    assert result.exit_code == 0, result.output + result.stderr
    assert not re.search("[\u0300-\u036f\u0483-\u0489]{5}", result.stdout)
    assert "Cafe\u0301 Vie\u0323\u0302t" in result.stdout  # what languages need stays
    assert "Stacked\u0301\u0316\u0301\u0316&#92;u0301&#92;u0316" in result.stdout


def test_export_to_stdout_puts_no_live_text_at_the_start_of_a_line(
    emulator_store: SourceStore, emulator_url: str
) -> None:
    # A long name would be folded onto lines of its own; a key may start with `::`.
    name = " ".join(["::error::forged"] * 12 + ["::add-mask::hunter2"])
    site = {"type": "webfolder", "imgix_subdomains": ["exported"],
            "webfolder_base_url": "https://site.example/"}  # fmt: skip
    created = emulator_store.create_source({"name": name, "deployment": site})
    params = {"::error::k": "::warning::v", "::set-env name=A::": "1"}
    emulator_store.dashboard_redeploy(created["id"], {"default_params": params})

    result = invoke("export", "--api-url", emulator_url)

    assert result.exit_code == 0, result.output + result.stderr
    assert_inert(result.stdout)
    (source,) = YAML(typ="safe").load(result.stdout)["sources"]
    assert source["name"] == name
    assert source["deployment"]["default_params"] == params


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_export_to_an_output_short_of_a_names_characters_still_plans_to_no_changes(
    emulator_store: SourceStore, emulator_url: str, tmp_path: Path, encoding: str
) -> None:
    # `PYTHONIOENCODING=ascii` (or latin-1, a Windows code page): export printed
    # `name: Caf\u00e9` unquoted, which YAML reads as a backslash and five letters; the
    # exported file renamed the source and moved its origin.
    name, url = "Caf\u00e9 \u2615 \U0001d518", "https://caf\u00e9.example/\u00fc/"
    site = {"type": "webfolder", "imgix_subdomains": ["cafe"], "webfolder_base_url": url}
    emulator_store.create_source({"name": name, "deployment": site})
    env = child_env({"PYTHONIOENCODING": encoding})
    command = [sys.executable, "-m", "reconciler"]

    done = subprocess.run(
        [*command, "export", "--api-url", emulator_url], capture_output=True, env=env, timeout=60
    )

    assert done.returncode == 0, done.stderr
    exported = tmp_path / "exported.yaml"
    exported.write_text(done.stdout.decode(encoding), encoding="utf-8")
    planned = subprocess.run(
        [*command, "plan", exported, "--api-url", emulator_url, "--detailed-exitcode"],
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert planned.returncode == 0, planned.stdout.decode(encoding)


# --------------------------------------------------------------------------- hostile API

DETAIL = "Denied.\r\n::add-mask::hunter2\n::error title=Forged::pwned\x1b]0;title\x07 \u2028::x"
DETAIL_SHOWN = (
    "Denied.\\r\\n::add-mask::hunter2\\n::error title=Forged::pwned\\u001b]0;title\\u0007 "
    "\\u2028::x"
)


def hostile_api(fail: str) -> Starlette:
    """An API that refuses `fail` ("list" or "create") with a forging error detail."""

    def error() -> JSONResponse:
        body = {
            "errors": [{"id": "req-1", "status": "400", "title": "Bad\nRequest", "detail": DETAIL}]
        }
        return JSONResponse(body, status_code=400, media_type="application/vnd.api+json")

    async def sources(request: Request) -> JSONResponse:
        if request.method == "GET" and fail != "list":
            return JSONResponse({"data": [], "meta": {"pagination": {"totalPages": 1}}})
        return error()

    return Starlette(routes=[Route("/api/v1/sources", sources, methods=["GET", "POST"])])


@pytest.fixture
def hostile_url(request: pytest.FixtureRequest) -> Iterator[str]:
    with running_app(hostile_api(request.param)) as url:
        yield url


@pytest.mark.parametrize("hostile_url", ["list"], indirect=True)
def test_an_api_error_detail_cannot_forge_log_lines(hostile_url: str, hostile_file: Path) -> None:
    result = invoke("--debug", "plan", hostile_file, "--api-url", hostile_url)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert_inert(result.stderr)
    assert result.stderr.splitlines() == [
        "DEBUG reconciler.client: GET sources: 400 (attempt 1)",
        f"error: imgix API 400 Bad\\nRequest: {DETAIL_SHOWN} (request id req-1)",
    ]


@pytest.mark.parametrize("hostile_url", ["create"], indirect=True)
def test_a_failed_write_reports_the_detail_on_one_line(
    hostile_url: str, hostile_file: Path
) -> None:
    result = invoke("apply", hostile_file, "--auto-approve", "--api-url", hostile_url)

    assert result.exit_code == 3
    for output in (result.stdout, result.stderr):
        assert_inert(output)
    failed = [line for line in result.stdout.splitlines() if line.startswith("failed:")]
    assert len(failed) == 2
    assert all(
        line.endswith(f": imgix API 400 Bad\\nRequest: {DETAIL_SHOWN} (request id req-1)")
        for line in failed
    )


# A JSON escape of half a UTF-16 pair: `json.loads` keeps it, and no output can encode it.
LONE = "\\ud800"


def lone_surrogate_api() -> Starlette:
    """An API whose one source's name and annotation, and whose create error's detail,
    hold a lone surrogate escape (sent as ASCII JSON, as a server escaping all it sends)."""

    def answer(body: object, status: int = 200) -> Response:
        text = json.dumps(body).replace("LONE", LONE)
        return Response(text, status_code=status, media_type="application/vnd.api+json")

    async def sources(request: Request) -> Response:
        if request.method == "POST":
            return answer({"errors": [{"status": "400", "title": "Bad", "detail": "xLONEx"}]}, 400)
        attributes = {
            "name": "HalfLONE",
            "deployment": {
                "type": "webfolder",
                "webfolder_base_url": "https://site.example/",
                "imgix_subdomains": ["half"],
                "annotation": "noteLONE",
            },
        }
        page = {"data": [{"id": "a" * 24, "type": "sources", "attributes": attributes}]}
        return answer({**page, "meta": {"pagination": {"totalPages": 1}}})

    return Starlette(routes=[Route("/api/v1/sources", sources, methods=["GET", "POST"])])


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        (["plan", "{file}"], 0),
        (["plan", "{file}", "--format", "markdown"], 0),
        (["plan", "{file}", "--format", "json"], 0),
        (["drift", "{file}"], 2),
        (["export"], 0),
        (["apply", "{file}", "--auto-approve"], 3),
    ],
    ids=["plan", "markdown", "json", "drift", "export", "apply"],
)
def test_a_lone_surrogate_in_an_answer_is_shown_as_a_replacement_character(
    hostile_file: Path, arguments: list[str], code: int
) -> None:
    # Was: every command that showed the name ended in "internal error: UnicodeEncodeError".
    arguments = [str(hostile_file) if part == "{file}" else part for part in arguments]
    with running_app(lone_surrogate_api()) as url:
        result = invoke(*arguments, "--api-url", url)

    printed = f"{result.stdout}\n{result.stderr}"
    assert result.exit_code == code, printed
    assert "internal error" not in printed and "Traceback" not in printed
    assert "Half\ufffd" in printed or "Half\\ufffd" in printed
    assert_inert(printed)
    if "apply" in arguments:
        assert "x\ufffdx" in result.stdout


# --------------------------------------------------------------------------- files and arguments


def test_validate_errors_quote_hostile_file_text_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(
        'version: 1\nsources:\n  - name: x\n    deployment:\n      type: "s3\\n::error::forged"\n'
        '      "bad\\n::add-mask::key": 1\n'
    )
    result = invoke("validate", path)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert_inert(result.stderr)
    assert result.stderr.splitlines() == [
        f"{path}:5:13: deployment.type: unknown deployment type 's3\\n::error::forged' "
        "(use one of s3, gcs, azure, webfolder, webproxy, s3_compatible)",
        "1 error in 1 of 1 file",
    ]


def test_a_usage_error_quoting_an_argument_stays_on_its_line(tmp_path: Path) -> None:
    result = invoke("plan", "--x\n::add-mask::hunter2", tmp_path / "sources.yaml")

    assert result.exit_code == 1
    assert_inert(result.stderr)
    # Click quotes the option its own way (by version); either way it stays on its line.
    quoting = [line for line in result.stderr.splitlines() if "hunter2" in line]
    assert len(quoting) == 1 and quoting[0].startswith("Error: No such option")


def test_markdown_text_leaves_ordinary_text_alone() -> None:
    ordinary = "Product images (EU) - cache_ttl_value 86400; acme-products.imgix.net"
    assert markdown_text(ordinary) == ordinary


@pytest.mark.parametrize(
    ("raw", "inert"),
    [
        ("@user", "@&#8203;user"),
        ("@org/team", "@&#8203;org/team"),
        ("#12", "#&#8203;12"),
        ("org/repo#1", "org/repo#&#8203;1"),
        ("gh-12 GH-3 GHX-4", "gh-&#8203;12 GH-&#8203;3 GHX-4"),
        ("ftp://x http://y", "ftp:&#8203;//x http:&#8203;//y"),
        ("www.x.com _www.y.com awww.z", "www&#8203;.x.com &#95;www&#8203;.y.com awww.z"),
        ("<b>&amp;</b>", "&lt;b&gt;&amp;amp;&lt;/b&gt;"),
        (
            "[a](b) *c* `d` |e| ~f~",
            "[a&#93;(b) &#42;c&#42; &#96;d&#96; &#124;e&#124; &#126;f&#126;",
        ),
    ],
)
def test_markdown_text_breaks_each_github_reference(raw: str, inert: str) -> None:
    assert markdown_text(raw) == inert
    assert links_in(markdown_text(raw)) == []


def test_markdown_text_leaves_no_math_for_github_to_draw() -> None:
    # GitHub draws `$...$`, `$$...$$` and `$`...`$` as LaTeX: a name or value such as
    # `$\Huge\text{No changes}$` showed a plan comment's reader big text, or a colour,
    # in place of what the source holds.
    raw = "$\\Huge\\text{No changes}$ $$x$$ $`y`$ US$5"
    inert = markdown_text(raw)
    assert "$" not in inert
    assert inert == (
        "&#36;&#92;&#92;Huge&#92;&#92;text{No changes}&#36; "
        "&#36;&#36;x&#36;&#36; &#36;&#96;y&#96;&#36; US&#36;5"
    )


# --------------------------------------------------------------------------- cut secrets

CUT_SECRET = "Cut-Secret-5e9a-Value"
# A cell is cut at 300 characters: this live annotation is cut inside the secret it ends in.
CUT_ANNOTATION = "n" * 290 + CUT_SECRET


def test_a_live_value_cut_inside_a_secret_shows_no_part_of_it(
    emulator_store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    # Someone pasted the password into the dashboard's annotation (or a server echoed it).
    emulator_store.load_json(
        {
            "version": 1,
            "sources": [
                {
                    "name": CUT_SECRET + "-" + "m" * 200,
                    "deployment": {
                        "type": "webfolder",
                        "imgix_subdomains": ["cut"],
                        "webfolder_base_url": "https://site.example/",
                        "annotation": CUT_ANNOTATION,
                    },
                }
            ],
        }
    )
    path = tmp_path / "sources.yaml"
    path.write_text(
        "version: 1\nsources:\n"
        + webfolder("Cut", "cut")
        + "      annotation: our note\n      username: someone\n"
        + "      password: {env: CUT_PASSWORD}\n"
    )
    env = {"CUT_PASSWORD": CUT_SECRET}

    planned = invoke("plan", path, "--format", "markdown", "--api-url", emulator_url, env=env)
    drifted = invoke("drift", path, "--format", "markdown", "--api-url", emulator_url, env=env)

    saved = tmp_path / "plan.json"
    as_json = invoke(
        "plan", path, "--format", "json", "--out", saved, "--api-url", emulator_url, env=env
    )

    assert planned.exit_code == 0, planned.output + planned.stderr
    assert drifted.exit_code == 2, drifted.output + drifted.stderr
    assert as_json.exit_code == 0, as_json.output + as_json.stderr
    for result in (planned, drifted, as_json):
        assert "deployment.annotation" in result.stdout
        shown = html.unescape(result.stdout + result.stderr)
        assert CUT_SECRET[:8] not in shown, shown
    # The saved plan is written unmasked: the live value holding the secret is hidden there.
    assert CUT_SECRET not in saved.read_text()
    changes = json.loads(saved.read_text())["actions"][0]["changes"]
    assert {c["path"]: c["before"] for c in changes}["deployment.annotation"] == HIDDEN


def test_an_unmanaged_source_named_with_a_secret_is_masked_in_the_saved_plan(
    emulator_store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    # The saved plan is the one output written unmasked: it lists unmanaged sources by name,
    # and names a possible rename's unmanaged source in a notice.
    emulator_store.load_json(
        {
            "version": 1,
            "sources": [
                {
                    "name": "old " + CUT_SECRET,
                    "deployment": {
                        "type": "webfolder",
                        "imgix_subdomains": ["old-site"],
                        "webfolder_base_url": "https://site.example/",
                    },
                }
            ],
        }
    )
    path = tmp_path / "sources.yaml"
    path.write_text(
        "version: 1\nsources:\n"
        + webfolder("New", "new-site")
        + "      username: someone\n      password: {env: CUT_PASSWORD}\n"
    )
    saved = tmp_path / "plan.json"
    env = {"CUT_PASSWORD": CUT_SECRET}
    result = invoke(
        "plan", path, "--format", "json", "--out", saved, "--api-url", emulator_url, env=env
    )
    assert result.exit_code == 0, result.output + result.stderr
    document = json.loads(saved.read_text())
    assert [u["name"] for u in document["unmanaged"]] == ["old ***"]
    (notice,) = [n for n in document["notices"] if n["kind"] == "possible_rename"]
    assert '"old ***"' in notice["detail"]
    assert CUT_SECRET not in saved.read_text() + result.stdout + result.stderr


def test_a_secret_that_is_a_number_the_plan_shows_leaves_the_json_plan_valid(
    emulator_url: str, tmp_path: Path
) -> None:
    # A numeric password equal to the default cache TTL: the redaction point masked the
    # number in `"after": 31536000`, and `plan --format json` printed `"after": ***`.
    secret = "31536000"
    path = tmp_path / "sources.yaml"
    path.write_text(
        "version: 1\nsources:\n" + webfolder("Site", "numeric")
        + "      username: bob\n      password: {env: NUMERIC_PASSWORD}\n",
        encoding="utf-8",
    )  # fmt: skip

    result = invoke(
        "plan", path, "--api-url", emulator_url, "--format", "json",
        env={"NUMERIC_PASSWORD": secret},
    )  # fmt: skip

    assert result.exit_code == 0, result.output + result.stderr
    assert secret not in result.stdout
    (action,) = json.loads(result.stdout)["actions"]
    shown = {change["path"]: change["after"] for change in action["changes"]}
    assert shown["deployment.cache_ttl_value"] == "***"
    assert shown["deployment.password"] == "(write-only, will be sent)"
