"""The secret canary: planted secret values never show in any output of any command.

Every secret attribute of every type gets a distinctive value, from an environment
variable or a `{file:}` reference. Every command then runs as a subprocess against the
emulator over real HTTP (debug logging and failures included), and every byte it printed
or wrote is searched for those values and for the secure URL tokens the API holds.
"""

from __future__ import annotations

import html
import json
import subprocess
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from console import (
    CANARY_ENV,
    CANARY_FILES,
    SOURCE_BLOCKS,
    SOURCES_YAML,
    invoke,
    output_of,
    run_cli,
    write_sources,
)
from hostile_server import HostileApi, serving

from reconciler.emulator import SourceStore
from reconciler.plan import WILL_BE_SENT, Plan
from reconciler.untrusted import escaped, one_line, quoted

pytestmark = pytest.mark.e2e

# The rotation keeps every value's length (handshakes and signing keys must stay 32).
ROTATED_ENV = {name: value.replace("91f3d", "b6e0a") for name, value in CANARY_ENV.items()}
ROTATED_FILES = {name: value.replace("91f3d", "b6e0a") for name, value in CANARY_FILES.items()}
CANARIES = (*CANARY_ENV.values(), *CANARY_FILES.values(), *ROTATED_ENV.values())
CANARIES += tuple(ROTATED_FILES.values())
# Values every output format escapes (quotes, backslash, `<&>`, non-ASCII), one of them at
# the shortest length allowed, and values referenced on non-secret attributes: shown as
# their reference, never as their value.
HOSTILE_ENV = {
    "E2E_HOSTILE_SECRET": 'q"\\<&>é7',
    "E2E_HOSTILE_URL": "https://canary-91f3d2.e2e.example/",
    "E2E_HOSTILE_USER": 'user-"<&>-ü-91f3d2',
}
HOSTILE_FILES = {"hostile-annotation.txt": 'Note "\\<&>" ö CANARY-91f3d2'}
HOSTILE_ROTATED_ENV = {
    **{name: value.replace("91f3d", "b6e0a") for name, value in HOSTILE_ENV.items()},
    "E2E_HOSTILE_SECRET": 'Q"\\<&>é8',
}
HOSTILE_ROTATED_FILES = {n: v.replace("91f3d", "b6e0a") for n, v in HOSTILE_FILES.items()}
HOSTILE_YAML = """\
  - name: Hostile
    deployment:
      type: webfolder
      imgix_subdomains: [e2e-hostile]
      webfolder_base_url: {env: E2E_HOSTILE_URL}
      annotation: {file: secrets/hostile-annotation.txt}
      username: {env: E2E_HOSTILE_USER}
      password: {env: E2E_HOSTILE_SECRET}
"""
HOSTILE_CANARIES = (*HOSTILE_ENV.values(), *HOSTILE_FILES.values())
HOSTILE_CANARIES += (*HOSTILE_ROTATED_ENV.values(), *HOSTILE_ROTATED_FILES.values())
# A new source whose subdomain another account holds: its create fails with a 400.
TAKEN_YAML = """\
  - name: Taken
    deployment:
      type: webfolder
      imgix_subdomains: [e2e-taken]
      webfolder_base_url: https://taken.e2e.example/
      username: imgix
      password: {env: E2E_BLOG_PASSWORD}
"""


def spellings(value: str) -> set[str]:
    """`value` as an output could spell it: raw, JSON-escaped, HTML-escaped."""
    return {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        html.escape(value),
        html.escape(value, quote=False),
    }


class Transcript:
    """Everything the commands printed and wrote, searched at the end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.texts: list[str] = []

    def run(
        self, *args: str | Path, env: dict[str, str], api: bool = True
    ) -> subprocess.CompletedProcess[str]:
        # Options may follow the arguments: `--api-url` goes last, after the command.
        result = run_cli(*args, *(["--api-url", self.url] if api else []), env=env)
        self.texts.append(output_of(result))
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def run_together(
        self, *runs: tuple[list[str | Path], dict[str, str], bool]
    ) -> list[subprocess.CompletedProcess[str]]:
        """Run independent commands at the same time; results in the order given."""
        with ThreadPoolExecutor(len(runs)) as pool:
            futures = [pool.submit(self.run, *args, env=env, api=api) for args, env, api in runs]
            return [future.result() for future in futures]

    def read(self, path: Path) -> str:
        text = path.read_text(encoding="utf-8")
        self.texts.append(text)
        return text


def test_no_secret_value_reaches_any_output(
    emulator_store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    store = emulator_store
    store.deploy_delay = 0
    sources = write_sources(tmp_path, SOURCES_YAML + HOSTILE_YAML)
    for file_name, value in HOSTILE_FILES.items():
        (tmp_path / "secrets" / file_name).write_text(value + "\n", encoding="utf-8")
    canary_env = {**CANARY_ENV, **HOSTILE_ENV}
    rotated_env = {**ROTATED_ENV, **HOSTILE_ROTATED_ENV}
    transcript = Transcript(emulator_url)
    tokens: set[str] = set()

    saved = tmp_path / "plan.json"
    # Read-only commands run side by side: each subprocess spends most of its time starting.
    valid, text, markdown, as_json = transcript.run_together(
        (["validate", sources], canary_env, False),
        (["--debug", "plan", sources, "--out", saved], canary_env, True),
        (["plan", sources, "--format", "markdown"], canary_env, True),
        (["plan", sources, "--format", "json"], canary_env, True),
    )
    assert valid.returncode == 0, valid.stderr
    for shown in (text, markdown, as_json):
        assert shown.returncode == 0, shown.stderr
        assert WILL_BE_SENT in shown.stdout
    assert "DEBUG reconciler" in text.stderr
    saved_text = transcript.read(saved)
    assert '"secret": {' in saved_text  # placeholders, resolved at apply time
    assert '"reference": {' in saved_text  # referenced non-secret values too
    for file_name in [*CANARY_FILES, *HOSTILE_FILES]:
        assert f"secrets/{file_name}" in saved_text
    for shown in (text, as_json):
        assert "E2E_HOSTILE_URL" in shown.stdout and "E2E_HOSTILE_USER" in shown.stdout

    applied = transcript.run("--debug", "apply", saved, "--auto-approve", env=canary_env)
    assert applied.returncode == 0, applied.stderr
    assert "Apply: 7 applied, 0 failed." in applied.stdout
    tokens.update(s.secure_url_token for s in store.sources.values() if s.secure_url_token)
    assert len(tokens) == 3  # Products, Blog and Proxy have secure URLs

    # Every secret rotates, and a new source fails: the failing apply says so, no value.
    for file_name, value in {**ROTATED_FILES, **HOSTILE_ROTATED_FILES}.items():
        (tmp_path / "secrets" / file_name).write_text(value + "\n")
    sources.write_text(SOURCES_YAML + HOSTILE_YAML + TAKEN_YAML)
    store.foreign_hostnames.add("e2e-taken")
    # Rotating every secret is over the blast radius: allowed on purpose here.
    failing = transcript.run(
        "--debug", "apply", sources, "--auto-approve", "--allow-large-change", env=rotated_env
    )
    assert failing.returncode == 3, failing.stderr
    assert "Apply: 7 applied, 1 failed." in failing.stdout
    assert "failed: create Taken: imgix API 400" in failing.stdout
    tokens.update(s.secure_url_token for s in store.sources.values() if s.secure_url_token)

    # A constraint broken by a secret value is reported without the value.
    broken = {**rotated_env, "E2E_PROXY_HANDSHAKE": "CANARY-short-handshake-5c1d"}
    broken["E2E_BLOG_PASSWORD"] = "CANARY-pass:with-colon-5c1d"
    canaries = [*CANARIES, broken["E2E_PROXY_HANDSHAKE"], broken["E2E_BLOG_PASSWORD"]]
    canaries += [env["E2E_HOSTILE_SECRET"] for env in (HOSTILE_ENV, HOSTILE_ROTATED_ENV)]
    exported = tmp_path / "exported.yaml"
    drift, export, stdout_export, error = transcript.run_together(
        (["drift", sources, "--format", "json"], rotated_env, True),
        (["export", "--out", exported], rotated_env, True),
        (["export"], rotated_env, True),
        (["plan", sources], broken, True),
    )
    assert drift.returncode == 2, drift.stderr
    assert [a["source"] for a in json.loads(drift.stdout)["actions"]] == ["Taken"]
    assert export.returncode == 0, export.stderr
    exported_text = transcript.read(exported)
    assert "env:" in exported_text
    assert stdout_export.returncode == 0, stdout_export.stderr
    assert error.returncode == 1
    assert "request_handshake" in error.stderr
    assert "password" in error.stderr

    # The values did reach the API, so their absence below means something.
    stored = {
        v for s in store.sources.values() for v in s.deployment.values() if isinstance(v, str)
    }
    assert set(ROTATED_ENV.values()) | set(ROTATED_FILES.values()) <= stored
    assert set(HOSTILE_ROTATED_ENV.values()) | set(HOSTILE_ROTATED_FILES.values()) <= {
        value.split(" [imgix-reconciler")[0] for value in stored
    }
    everything = "\n".join(transcript.texts)
    leaked = [value for value in [*canaries, *tokens] if value in everything]
    assert leaked == []
    # Export writes what the live account holds (the API's answer, not a read through a
    # reference), so the non-secret values it now holds may show there and only there.
    exports = {output_of(export), output_of(stdout_export), exported_text}
    beyond_export = "\n".join(text for text in transcript.texts if text not in exports)
    shown = [
        form for value in HOSTILE_CANARIES for form in spellings(value) if form in beyond_export
    ]
    assert shown == []
    assert Plan.model_validate_json(saved_text).summary.create == len(SOURCE_BLOCKS) + 1


# How a server, a message or a renderer may spell a value it echoes, each with a canary
# only that spelling writes so (every other spelling of it differs), so that the mask of
# each spelling is tried on its own. `quoted` spells every text as `json_shown` does (both
# escape one character at a time, the same way), so one canary tries both.
# Each canary holds characters its spelling changes; none holds a C0 control, which no
# storage credential may (the secret is refused before any request).
ECHOED_SPELLINGS: dict[str, tuple[str, Callable[[str], str]]] = {
    "JSON, ASCII only": ("CANARY-é-echo-7c41e0", lambda value: json.dumps(value)[1:-1]),
    "JSON, UTF-8": (
        'CANARY-"\x85-echo-7c41e0',
        lambda value: json.dumps(value, ensure_ascii=False)[1:-1],
    ),
    "escaped": ('CANARY-"\\\x85-echo-7c41e0', escaped),
    "quoted, json_shown": ('CANARY-"\u2028\x85-echo-7c41e0', lambda value: quoted(value)[1:-1]),
    "HTML, quotes kept": ('CANARY-<"-echo-7c41e0', lambda value: html.escape(value, quote=False)),
    "HTML, quotes escaped": ('CANARY-"\x85-echo-7c41e0', html.escape),
    "repr": ("CANARY-\x85é-echo-7c41e0", lambda value: repr(value)[1:-1]),
    "ascii": ("CANARY-é-echo-7c41e0", lambda value: ascii(value)[1:-1]),
    "one_line": ('CANARY-"\\\x85-echo-7c41e0', one_line),
    # A server quoting the request it refused as a URL or a form body would.
    "URL-encoded": ("CANARY-é/K7+-echo-7c41e0", lambda value: urllib.parse.quote(value, safe="")),
    "URL-encoded, / kept": ("CANARY-é/K7-echo-7c41e0", urllib.parse.quote),
    "form-encoded": ("CANARY-é K7+-echo-7c41e0", urllib.parse.quote_plus),
}
ECHO_DESIRED = """\
version: 1
sources:
  - name: Echoed
    deployment:
      type: s3
      imgix_subdomains: [echoed-images]
      s3_access_key: AKIAEXAMPLEECHOED
      s3_bucket: echoed
      s3_secret_key: {env: ECHOED_SECRET_KEY}
"""


@pytest.fixture(scope="module")
def _echoing() -> Iterator[tuple[HostileApi, str]]:
    api = HostileApi(write_attack="error")
    with serving(api) as url:
        yield api, url


# The failed create as each report shows it: markdown, for a comment, spells the mask too.
ECHO_REPORTED = {
    "text": "failed: create Echoed: imgix API 400 bad secret *** here",
    "markdown": "| failed | create | <code>Echoed</code> |  | <code>imgix API 400 bad secret "
    "&#42;&#42;&#42; here",
}


@pytest.mark.parametrize("report_format", ECHO_REPORTED)
@pytest.mark.parametrize("spelling", ECHOED_SPELLINGS)
def test_an_api_error_echoing_the_sent_secret_in_any_spelling_shows_it_masked(
    _echoing: tuple[HostileApi, str], tmp_path: Path, spelling: str, report_format: str
) -> None:
    # The create sends the secret key; the server's 400 quotes it back, spelled as JSON, HTML
    # or a Python message would. The failed create is reported with the mask in its place,
    # in a terminal's report and in a pull request comment's.
    api, url = _echoing
    canary, spell = ECHOED_SPELLINGS[spelling]
    api.write_text = f"bad secret {spell(canary)} here"
    desired = tmp_path / "sources.yaml"
    desired.write_text(ECHO_DESIRED, encoding="utf-8")

    result = invoke(
        *("apply", desired, "--auto-approve", "--api-url", url, "--format", report_format),
        env={"ECHOED_SECRET_KEY": canary},
    )

    printed = output_of(result)
    assert result.exit_code == 3, printed
    assert ECHO_REPORTED[report_format] in result.stdout, printed
    assert "echo-7c41e0" not in printed
