"""A hostile desired-state file (a pull request's): each attack ends in exit 1 or a masked value.

The author of a pull request chooses its references, so no byte read through one may reach
stdout, stderr, a saved plan or a rendered comment. Each case runs the command end to end
(the CLI over real HTTP to the emulator on 127.0.0.1 where a plan is involved) and looks at
every output stream and every file written.
"""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest
from click.testing import Result
from console import child_env, deployment_of, invoke, output_of, run_cli, writes_since

from reconciler.emulator import SourceStore
from reconciler.plan import HIDDEN, Plan
from reconciler.references import MIN_LENGTH

pytestmark = pytest.mark.e2e

FORMATS = ("text", "markdown", "json")


def forms(value: str) -> set[str]:
    """The ways an output could spell `value`."""
    return {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        html.escape(value),
        html.escape(value, quote=False),
    }


def assert_nowhere(values: Iterable[str], *texts: str) -> None:
    everything = "\n".join(texts)
    leaked = [form for value in values for form in forms(value) if form in everything]
    assert leaked == []


def streams(result: Result) -> str:
    return f"{result.stdout}\n{result.stderr}"


def plan_in_every_format(
    sources: Path, saved: Path, url: str, env: dict[str, str]
) -> list[tuple[Result, str]]:
    """`plan --out` in each format: each run's result and the plan file it saved."""
    runs = []
    for fmt in FORMATS:
        result = invoke("plan", sources, "--format", fmt, "--out", saved, "--api-url", url, env=env)
        assert result.exit_code == 0, result.stderr
        runs.append((result, saved.read_text()))
    return runs


def write(directory: Path, body: str) -> Path:
    (directory / ".git").mkdir(exist_ok=True)  # the repository the references must stay in
    path = directory / "sources.yaml"
    path.write_text("version: 1\nsources:\n" + body)
    return path


# --------------------------------------------------------------------------- references shown

REFERENCED = """\
  - name: Referenced
    deployment:
      type: webfolder
      imgix_subdomains: [hostile-referenced]
      webfolder_base_url: {env: HOSTILE_BASE_URL}
      annotation: {env: S3_SECRET_KEY}
      username: {env: HOSTILE_TOKEN}
      password: {file: secrets/password.txt}
  - name: Bucket
    deployment:
      type: s3
      imgix_subdomains: [hostile-bucket]
      s3_bucket: {file: secrets/bucket.txt}
      s3_access_key: {env: HOSTILE_ACCESS_KEY}
      s3_secret_key: {env: S3_SECRET_KEY}
"""
REFERENCED_ENV = {
    "HOSTILE_BASE_URL": "https://canary-base-7d1.example/",
    "S3_SECRET_KEY": 'aws "secret" \\ <key> & é-7d1',
    "HOSTILE_TOKEN": "ghp_canaryGitHubToken7d1",
    "HOSTILE_ACCESS_KEY": "AKIACANARY7D1",
}
REFERENCED_FILES = {"password.txt": "pass<&>word-7d1", "bucket.txt": "canary-bucket-7d1"}


def referenced_sources(directory: Path) -> Path:
    (directory / "secrets").mkdir(exist_ok=True)
    for name, value in REFERENCED_FILES.items():
        (directory / "secrets" / name).write_text(value + "\n")
    return write(directory, REFERENCED)


def test_values_read_through_references_never_reach_a_plan_in_any_format(
    emulator_store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    sources = referenced_sources(tmp_path)
    saved = tmp_path / "plan.json"
    texts = []
    for result, plan_file in plan_in_every_format(sources, saved, emulator_url, REFERENCED_ENV):
        texts += [streams(result), plan_file]
        assert "HOSTILE_TOKEN" in result.stdout and "secrets/bucket.txt" in result.stdout
    # The pull-request comment, from a fresh process: nothing registered before it started.
    comment = run_cli(
        "plan", sources, "--format", "markdown", "--api-url", emulator_url, env=REFERENCED_ENV
    )
    assert comment.returncode == 0, comment.stderr
    assert '| <code>deployment.username</code> |  | <code>{"env": "HOSTILE_TOKEN"}</code> |' in (
        comment.stdout
    )
    texts.append(output_of(comment))
    assert_nowhere([*REFERENCED_ENV.values(), *REFERENCED_FILES.values()], *texts)
    assert "***" not in "\n".join(texts)  # hidden by design, not by the redaction safety net

    plan = Plan.model_validate_json(saved.read_text())
    after = {c.path: c.after for a in plan.actions for c in a.changes}
    assert after["deployment.annotation"] == {"env": "S3_SECRET_KEY"}
    assert after["deployment.username"] == {"env": "HOSTILE_TOKEN"}
    assert after["deployment.webfolder_base_url"] == {"env": "HOSTILE_BASE_URL"}
    assert after["deployment.s3_bucket"] == {"file": "secrets/bucket.txt"}


def test_a_saved_plan_sends_the_referenced_values_and_prints_none(
    emulator_store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    sources = referenced_sources(tmp_path)
    saved = tmp_path / "plan.json"
    made = invoke("plan", sources, "--out", saved, "--api-url", emulator_url, env=REFERENCED_ENV)
    assert made.exit_code == 0, made.stderr
    mark = len(emulator_store.request_log)
    applied = invoke(
        "apply", saved, "--auto-approve", "--api-url", emulator_url, env=REFERENCED_ENV
    )
    assert applied.exit_code == 0, applied.stderr
    sent = [deployment_of(entry.body) for entry in writes_since(emulator_store, mark)]
    referenced = next(d for d in sent if d.get("type") == "webfolder")
    assert referenced["username"] == REFERENCED_ENV["HOSTILE_TOKEN"]
    assert referenced["webfolder_base_url"] == REFERENCED_ENV["HOSTILE_BASE_URL"]
    assert referenced["annotation"].startswith(
        REFERENCED_ENV["S3_SECRET_KEY"] + " [imgix-reconciler"
    )
    bucket = next(d for d in sent if d.get("type") == "s3")
    assert bucket["s3_bucket"] == REFERENCED_FILES["bucket.txt"]
    values = [*REFERENCED_ENV.values(), *REFERENCED_FILES.values()]
    assert_nowhere(values, streams(made), streams(applied), saved.read_text())

    # Compared by value: in sync now; a rotated value is a patch that hides both sides.
    again = invoke(
        "plan", sources, "--format", "json", "--api-url", emulator_url, env=REFERENCED_ENV
    )
    assert again.exit_code == 0 and json.loads(again.stdout)["actions"] == [], again.stderr
    rotated = {**REFERENCED_ENV, "HOSTILE_TOKEN": "ghp_rotatedCanaryToken7d1"}
    patch = invoke("plan", sources, "--format", "json", "--api-url", emulator_url, env=rotated)
    (action,) = json.loads(patch.stdout)["actions"]
    (change,) = [c for c in action["changes"] if c["path"] == "deployment.username"]
    assert change == {
        "path": "deployment.username",
        "before": HIDDEN,
        "after": {"env": "HOSTILE_TOKEN"},
    }
    assert_nowhere([*values, rotated["HOSTILE_TOKEN"]], streams(again), streams(patch))


# --------------------------------------------------------------------------- confinement


@pytest.mark.parametrize(
    ("reference", "problem"),
    [
        ("{file: /proc/self/environ}", "the path must be relative"),
        ("{file: ../outside/secret.txt}", "the path leads outside the repository"),
        ("{file: ../../../../../../etc/hostname}", "the path leads outside the repository"),
        ("{file: link-out.txt}", "the path leads outside the repository"),
        ("{file: linked-folder/secret.txt}", "the path leads outside the repository"),
        ("{file: /dev/zero}", "the path must be relative"),
    ],
)
@pytest.mark.parametrize("attribute", ["s3_bucket", "s3_secret_key"])
def test_file_references_stay_inside_the_repository(
    emulator_store: SourceStore, emulator_url: str, tmp_path: Path, reference: str, problem: str,
    attribute: str,
) -> None:  # fmt: skip
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("outside-canary-value-5e2\n")
    repository = tmp_path / "repository"
    repository.mkdir()
    os.symlink(outside / "secret.txt", repository / "link-out.txt")
    os.symlink(outside, repository / "linked-folder")
    body = (
        "  - name: Escape\n    deployment:\n      type: s3\n"
        "      imgix_subdomains: [hostile-escape]\n      s3_access_key: AKIAEXAMPLE1\n"
        "      s3_bucket: a-plain-bucket\n      s3_secret_key: {env: HOSTILE_SECRET}\n"
    ).replace(f"{attribute}: a-plain-bucket", f"{attribute}: {reference}")
    body = body.replace(f"{attribute}: {{env: HOSTILE_SECRET}}", f"{attribute}: {reference}")
    sources = write(repository, body)
    saved = repository / "plan.json"
    env = {"HOSTILE_SECRET": "hostile-secret-5e2"}
    for result in (
        invoke("validate", sources, env=env),
        invoke(
            "plan",
            sources,
            "--format",
            "markdown",
            "--out",
            saved,
            "--api-url",
            emulator_url,
            env=env,
        ),
    ):
        assert result.exit_code == 1
        line = result.stderr.splitlines()[0]
        assert line.startswith(f"{sources}:") and f"deployment.{attribute}: " in line
        assert problem in line
        assert result.stdout == ""
        assert_nowhere(["outside-canary-value-5e2"], streams(result))
        assert "Traceback" not in result.stderr
    assert not saved.exists()
    host_environ = Path("/proc/self/environ").read_bytes().decode(errors="replace")
    assert_nowhere([v for v in host_environ.split("\0") if len(v) >= MIN_LENGTH], streams(result))


@pytest.mark.parametrize(
    "outside_text",
    [
        # Invalid: errors quote values and keys.
        "version: outside-canary-5e2\nsources: []\noutside-canary-key-5e2: 1\n",
        # Valid: a plan shows every name and value.
        "version: 1\nsources:\n  - name: outside-canary-5e2\n    deployment:\n"
        "      type: webfolder\n      imgix_subdomains: [outside-canary-key-5e2]\n"
        "      webfolder_base_url: https://outside.example/\n",
    ],
)
def test_a_desired_file_linked_out_of_the_repository_is_refused_unread(
    emulator_url: str, tmp_path: Path, outside_text: str
) -> None:
    # A pull request can replace the desired-state file by a symlink to whatever the
    # runner may read (a credentials file, another job's output).
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "creds.yaml").write_text(outside_text)
    repository = tmp_path / "repository"
    (repository / ".git").mkdir(parents=True)
    (repository / "imgix").mkdir()
    sources = repository / "imgix" / "sources.yaml"
    os.symlink(outside / "creds.yaml", sources)
    for result in (
        invoke("validate", "--no-resolve", sources),
        invoke("plan", sources, "--format", "markdown", "--api-url", emulator_url),
    ):
        assert result.exit_code == 1
        assert result.stdout == ""
        assert result.stderr.splitlines()[0] == (
            f"{sources}:1:1: cannot read the file: it is a symlink that leads outside the "
            f"repository ({repository})"
        )
        assert "outside-canary" not in streams(result)
    # A link inside the repository, and a path in no repository (a pipe), still read.
    os.remove(sources)
    (repository / "real.yaml").write_text(outside_text)
    os.symlink(repository / "real.yaml", sources)
    loose = tmp_path / "loose.yaml"
    os.symlink(outside / "creds.yaml", loose)
    valid = outside_text.startswith("version: 1")
    for path in (sources, loose):
        result = invoke("validate", "--no-resolve", path)
        assert result.exit_code == (0 if valid else 1)
        assert "symlink" not in result.stderr
        assert valid or "outside-canary" in result.stderr


def test_a_desired_file_in_a_folder_linked_into_another_checkout_is_refused_unread(
    tmp_path: Path,
) -> None:
    # The folder, not the file, is the link, and it leads to the root of another checkout
    # on the runner: that checkout's `.git` must not make it look like the repository.
    other = tmp_path / "other-checkout"
    (other / ".git").mkdir(parents=True)
    # Invalid: the errors would quote its values and keys.
    (other / "creds.yaml").write_text("version: outside-canary-5e2\noutside-canary-key-5e2: 1\n")
    repository = tmp_path / "repository"
    (repository / ".git").mkdir(parents=True)
    os.symlink(other, repository / "imgix")
    sources = repository / "imgix" / "creds.yaml"
    result = invoke("validate", "--no-resolve", sources)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"{sources}:1:1: cannot read the file: it is a symlink that leads outside the "
        f"repository ({repository})"
    )
    assert "outside-canary" not in streams(result)


# --------------------------------------------------------------------------- deep nesting

DEEP = 40_000  # past what ruamel's C composer survives on an 8 MiB stack (about 30,000)
NESTED = {
    "flow sequences": "[" * DEEP + "]" * DEEP,
    "flow mappings": "{a: " * DEEP + "1" + "}" * DEEP,
    "compact block sequences": "\n" + "- " * DEEP + "1",
    # Each `]` sits in a string: counting brackets must not take it off.
    "closers hidden in strings": '[ "s\n  ]]\n  ", ' * DEEP + "1" + "]" * DEEP,
}


@pytest.mark.parametrize("nested", NESTED.values(), ids=NESTED.keys())
def test_collections_nested_past_the_c_stack_are_a_located_error_not_a_crash(
    tmp_path: Path, nested: str
) -> None:
    sources = tmp_path / "sources.yaml"
    sources.write_text("version: 1\nsources: " + nested + "\n")
    result = run_cli("validate", "--no-resolve", sources)
    assert result.returncode == 1, result.returncode  # was -11: a segfault, not a word
    assert result.stderr.startswith(f"{sources}:")  # where it passed the bound
    assert "recursive or too deeply nested YAML is not supported" in result.stderr


def test_a_plan_of_a_file_nested_past_the_c_stack_is_a_located_error(
    emulator_url: str, tmp_path: Path
) -> None:
    # `plan` loads its files in a thread while the listing runs.
    sources = tmp_path / "sources.yaml"
    sources.write_text("version: 1\nsources: " + NESTED["flow sequences"] + "\n")
    result = run_cli("plan", sources, "--api-url", emulator_url)
    assert result.returncode == 1, result.returncode
    assert "recursive or too deeply nested YAML is not supported" in result.stderr


@pytest.mark.parametrize("depth", [1000, 9000])
def test_a_plan_loading_on_musls_small_thread_stacks_gives_nested_files_a_located_error(
    tmp_path: Path, depth: int
) -> None:
    # Python on musl (Alpine images) starts threads with musl's 128 KiB stack, and plan
    # loads its files on a thread: a file nested a few hundred levels ended it in a segfault.
    sources = tmp_path / "sources.yaml"
    sources.write_text("version: 1\nsources: " + "[" * depth + "]" * depth + "\n")
    musl = "import threading; threading.stack_size(128 * 1024); import reconciler.__main__"
    result = subprocess.run(
        [sys.executable, "-c", musl, "plan", str(sources), "--emulator"],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=120,
    )
    assert result.returncode == 1, result.returncode  # was -11
    assert "recursive or too deeply nested YAML is not supported" in result.stderr


def test_merge_keys_count_against_the_expansion_budget_and_end_quickly(tmp_path: Path) -> None:
    # 2,000 sources merging one anchor of 200 keys: 400,000 values from 40 KB. ruamel
    # compared every merging map with all before it (hours), and merged values were
    # not counted (400,000 "unknown key" errors).
    anchor = "{" + ", ".join(f"k{n}: {n}" for n in range(200)) + "}"
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        f"version: 1\nsources:\n  - &merged {anchor}\n"
        + "".join(f"  - <<: *merged\n    name: n{n}\n" for n in range(2000))
    )
    result = run_cli("validate", "--no-resolve", sources)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{sources}:1004:5: sources[501]: the file expands to more than 200000 values "
        "(YAML aliases?)",
        "1 error in 1 of 1 file",
    ]


# --------------------------------------------------------------------------- failed checks


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            "      type: webfolder\n      webfolder_base_url: {env: HOSTILE_KEY}\n",
            "deployment.webfolder_base_url: must be an absolute http(s) URL (the value of "
            "{env: HOSTILE_KEY})",
        ),
        (
            "      type: azure\n      azure_account: acct-name\n      azure_bucket: bucket-name\n"
            "      azure_sas_string: {env: HOSTILE_SECRET}\n"
            "      azure_service_type: {env: HOSTILE_KEY}\n",
            "deployment.azure_service_type: must be 'blob' or 'file' (the value of "
            "{env: HOSTILE_KEY})",
        ),
        (
            "      type: s3\n      s3_access_key: AKIAEXAMPLE1\n      s3_bucket: a-bucket\n"
            "      s3_secret_key: {env: HOSTILE_SECRET}\n"
            "      cache_ttl_value: {env: HOSTILE_KEY}\n",
            "deployment.cache_ttl_value: cache_ttl_value cannot take a reference",
        ),
        (
            "      type: webproxy\n      request_handshake: {env: HOSTILE_KEY}\n",
            "deployment.request_handshake: must be exactly 32 latin-1 characters",
        ),
    ],
)
def test_a_referenced_value_failing_a_check_is_never_echoed(
    emulator_url: str, tmp_path: Path, lines: str, expected: str
) -> None:
    api_key = "ak_live_canary_api_key_0123456789abcdef"
    sources = write(
        tmp_path,
        "  - name: Checked\n    deployment:\n      imgix_subdomains: [hostile-checked]\n" + lines,
    )
    # HOSTILE_KEY holds the API key too: IMGIX_API_KEY itself no file may reference.
    env = {"IMGIX_API_KEY": api_key, "HOSTILE_KEY": api_key, "HOSTILE_SECRET": "hostile-secret-5e2"}
    validated = invoke("validate", sources, env=env)
    planned = invoke("plan", sources, "--format", "markdown", "--api-url", emulator_url, env=env)
    for result in (validated, planned):
        assert result.exit_code == 1
        assert expected in result.stderr
        assert result.stdout == ""
        assert_nowhere([api_key, api_key[:20], api_key[-20:]], streams(result))


# --------------------------------------------------------------------------- hard secrets


HARD_SECRETS = {
    "HARD_S3": 'q"\\<&>é1',  # the shortest allowed, every character outputs escape
    "HARD_PASSWORD": 'pa"ss\\wörd<&>',  # basic-auth passwords may hold all but ':'
}
HARD = """\
  - name: Hard
    deployment:
      type: s3
      imgix_subdomains: [hostile-hard]
      s3_access_key: AKIAEXAMPLE1
      s3_bucket: hard-bucket
      s3_secret_key: {env: HARD_S3}
  - name: Hard web
    deployment:
      type: webfolder
      imgix_subdomains: [hostile-hard-web]
      webfolder_base_url: https://hard.example/
      username: {env: HARD_PASSWORD}
      password: {env: HARD_PASSWORD}
"""


def test_secrets_with_quotes_backslashes_and_markup_are_masked_everywhere(
    emulator_store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    assert len(HARD_SECRETS["HARD_S3"]) == MIN_LENGTH
    sources = write(tmp_path, HARD)
    saved = tmp_path / "plan.json"
    texts = [
        text
        for result, plan_file in plan_in_every_format(sources, saved, emulator_url, HARD_SECRETS)
        for text in (streams(result), plan_file)
    ]
    applied = invoke("apply", saved, "--auto-approve", "--api-url", emulator_url, env=HARD_SECRETS)
    assert applied.exit_code == 0, applied.stderr
    stored = {
        v
        for s in emulator_store.sources.values()
        for v in s.deployment.values()
        if isinstance(v, str)
    }
    assert set(HARD_SECRETS.values()) <= stored
    assert_nowhere(HARD_SECRETS.values(), *texts, streams(applied))


# --------------------------------------------------------------------------- short secrets


def test_a_secret_too_short_to_mask_is_a_located_error(emulator_url: str, tmp_path: Path) -> None:
    sources = write(tmp_path, HARD)
    env = {**HARD_SECRETS, "HARD_S3": "images"}
    for result in (
        invoke("validate", sources, env=env),
        invoke("plan", sources, "--api-url", emulator_url, env=env),
    ):
        assert result.exit_code == 1
        assert result.stderr.splitlines()[0] == (
            f"{sources}:9:22: deployment.s3_secret_key: {{env: HARD_S3}} holds fewer than "
            f"{MIN_LENGTH} characters: a value that short cannot be masked in outputs"
        )
        assert "images" not in streams(result)


def test_a_secret_that_is_an_ordinary_word_leaves_the_saved_plan_valid(
    emulator_store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    # Once masked inside `plan --out`, the plan failed its digest: now nothing is masked there.
    sources = write(tmp_path, HARD)
    env = {**HARD_SECRETS, "HARD_S3": "respect_origin"}
    saved = tmp_path / "plan.json"
    made = invoke("plan", sources, "--out", saved, "--api-url", emulator_url, env=env)
    assert made.exit_code == 0, made.stderr
    assert '"respect_origin"' in saved.read_text()  # a default, left as it is
    applied = invoke("apply", saved, "--auto-approve", "--api-url", emulator_url, env=env)
    assert applied.exit_code == 0, applied.stderr


# --------------------------------------------------------------------------- absurd numbers


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("0x" + "f" * 5000, "must be between -9007199254740991 and 9007199254740991"),
        ("1" * 5000, "must be between -9007199254740991 and 9007199254740991"),
        ("9007199254740992", "must be between -9007199254740991 and 9007199254740991"),
        ("-9007199254740992", "must be between -9007199254740991 and 9007199254740991"),
        ("1.0e+300", "must be between -9007199254740991 and 9007199254740991"),
        (".inf", "must be a finite number"),
        ("-.inf", "must be a finite number"),
        (".nan", "must be a finite number"),
    ],
)
@pytest.mark.parametrize("where", ["cache_ttl_value", "default_params"])
def test_numbers_outside_jsons_safe_range_are_located_errors(
    emulator_url: str, tmp_path: Path, value: str, problem: str, where: str
) -> None:
    line = (
        f"      cache_ttl_value: {value}\n"
        if where == "cache_ttl_value"
        else f"      default_params: {{q: {value}}}\n"
    )
    sources = write(
        tmp_path,
        "  - name: Numbers\n    deployment:\n      type: webfolder\n"
        "      imgix_subdomains: [hostile-numbers]\n"
        "      webfolder_base_url: https://numbers.example/\n" + line,
    )
    path = (
        "deployment.cache_ttl_value"
        if where == "cache_ttl_value"
        else "deployment.default_params.q"
    )
    for result in (
        invoke("validate", sources),
        invoke("plan", sources, "--format", "json", "--api-url", emulator_url),
    ):
        assert result.exit_code == 1
        assert "Traceback" not in result.stderr
        assert result.stdout == ""
        (first, *_) = result.stderr.splitlines()
        assert first.startswith(f"{sources}:8:")
        assert f"{path}: {problem}" in first
        assert len(result.stderr) < 1000  # the number itself is never printed


TIDY = """\
version: 1
sources:
  - name: Site
    deployment:
      type: webfolder
      imgix_subdomains: [acme-site]
      webfolder_base_url: https://site.example/
"""
MESSY = TIDY.replace("  - name: Site\n", "  - enabled: true\n    name: Site\n")


def _fmt_through_a_pipe(text: str, *options: str) -> subprocess.CompletedProcess[str]:
    """`fmt OPTIONS <(printf TEXT)`: the file comes through a pipe, as `git show` gives one."""
    command = 'exec "$0" -m reconciler fmt "${@:2}" <(printf %s "$1")'
    return subprocess.run(
        ["bash", "-c", command, sys.executable, text, *options],
        env=child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_fmt_check_reads_a_file_through_a_pipe_once(tmp_path: Path) -> None:
    # The pipe was read twice, by the checks then by the formatter, which saw nothing: a
    # file already in the canonical layout "would be reformatted", exit 1.
    on_disk = tmp_path / "sources.yaml"
    on_disk.write_text(TIDY)
    assert invoke("fmt", "--check", on_disk).exit_code == 0
    tidy = _fmt_through_a_pipe(TIDY, "--check")
    assert (tidy.returncode, tidy.stderr) == (0, "")

    on_disk.write_text(MESSY)
    assert invoke("fmt", "--check", on_disk).exit_code == 1
    would = _fmt_through_a_pipe(MESSY, "--check")
    assert would.returncode == 1 and would.stderr.endswith(": would be reformatted\n")


def test_fmt_refuses_to_rewrite_a_pipe_in_one_line_that_says_why() -> None:
    refused = _fmt_through_a_pipe(MESSY)
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "not a regular file" in refused.stderr
    assert "Traceback" not in refused.stderr and "/proc/" not in refused.stderr


def test_export_merge_into_a_pipe_is_refused_in_one_line_before_any_request(
    emulator_store: SourceStore, emulator_url: str
) -> None:
    # The pipe was read three times: the file was checked, then found empty, and merging
    # into nothing ended in "internal error: TypeError: 'NoneType' object ...".
    command = 'exec "$0" -m reconciler export --api-url "$2" --merge <(printf %s "$1")'
    refused = subprocess.run(
        ["bash", "-c", command, sys.executable, TIDY, emulator_url],
        env=child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "not a regular file" in refused.stderr
    assert "internal error" not in refused.stderr
    assert emulator_store.request_log == []


def test_a_referenced_file_saved_with_a_byte_order_mark_is_read_without_it(
    emulator_store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    # Notepad and PowerShell 5 save UTF-8 with a mark: it was sent as the secret's first
    # character, or refused as "must be 32 latin-1 characters" of a 32-character key.
    (tmp_path / ".git").mkdir()
    key = "0123456789abcdef0123456789abcdef"
    (tmp_path / "signing.txt").write_bytes(b"\xef\xbb\xbf" + key.encode() + b"\r\n")
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "version: 1\nsources:\n  - name: Proxy\n    deployment:\n      type: webproxy\n"
        "      imgix_subdomains: [bom-proxy]\n"
        "      request_signing_key: {file: signing.txt}\n"
    )
    applied = invoke("apply", sources, "--auto-approve", "--api-url", emulator_url)
    assert applied.exit_code == 0, applied.stderr
    # The create, then the patch that records the encrypted value's hash in the marker.
    create, *_ = writes_since(emulator_store, 0)
    assert create.method == "POST"
    assert deployment_of(create.body)["request_signing_key"] == key


@pytest.mark.parametrize("version", ["1.0", "1.3"])
def test_a_yaml_directive_of_a_minor_version_the_parser_lacks_is_a_located_error(
    tmp_path: Path, version: str
) -> None:
    # ruamel asserts the minor version is 1 or 2: "internal error: AssertionError".
    file = tmp_path / "sources.yaml"
    file.write_text(f"# old\n%YAML {version}\n---\nversion: 1\nsources: []\n")
    result = invoke("validate", file)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{file}:2:1: invalid YAML: found incompatible YAML document (%YAML {version}: "
        "version 1.1 or 1.2 is required)",
        "1 error in 1 of 1 file",
    ]


def test_apply_refuses_a_file_linked_out_of_the_repository_without_opening_it(
    emulator_url: str, tmp_path: Path
) -> None:
    # validate and plan refused it unread; apply opened it first, to tell a saved plan from
    # a desired-state file, and waited for ever on a named pipe (or read 16 MiB of a device).
    outside = tmp_path / "outside"
    outside.mkdir()
    os.mkfifo(outside / "pipe")
    repository = tmp_path / "repository"
    (repository / ".git").mkdir(parents=True)
    sources = repository / "sources.yaml"
    sources.symlink_to(outside / "pipe")
    result = run_cli("apply", sources, "--auto-approve", "--api-url", emulator_url)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == (
        f"{sources}:1:1: cannot read the file: it is a symlink that leads outside the "
        f"repository ({repository})"
    )


def test_two_names_alike_once_unicode_normalised_are_one_name_used_twice(
    tmp_path: Path,
) -> None:
    # "Café" typed (é, U+00E9) and pasted from a file name (e + U+0301) read the same in
    # every plan, so a pull request could add a look-alike of a reviewed source's name.
    file = write(
        tmp_path,
        '  - name: "Caf\\u00e9"\n    deployment:\n      type: webfolder\n'
        "      imgix_subdomains: [cafe-one]\n      webfolder_base_url: https://a.example/\n"
        '  - name: "Cafe\\u0301"\n    deployment:\n      type: webfolder\n'
        "      imgix_subdomains: [cafe-two]\n      webfolder_base_url: https://b.example/\n",
    )
    result = invoke("validate", "--no-resolve", file)
    assert result.exit_code == 1, result.stdout
    assert result.stderr.splitlines() == [
        f"{file}:8:11: name: name 'Cafe\u0301' is also used by the source at {file}:3:11 "
        "(the same text once Unicode-normalised; plans and --target identify sources by "
        "name: add an id to both to tell them apart)",
        "1 error in 1 of 1 file",
    ]


def test_a_target_typed_in_another_unicode_form_names_the_source(
    emulator_url: str, tmp_path: Path
) -> None:
    # The file's "Café" pasted with a combining accent, the --target typed with é: the
    # same name on screen. Was: '--target names no source of the file: "Café" (did you
    # mean "Café"?)'.
    file = write(
        tmp_path,
        '  - name: "Cafe\\u0301"\n    deployment:\n      type: webfolder\n'
        "      imgix_subdomains: [cafe-one]\n      webfolder_base_url: https://a.example/\n"
        "  - name: Other\n    deployment:\n      type: webfolder\n"
        "      imgix_subdomains: [other-one]\n      webfolder_base_url: https://b.example/\n",
    )
    result = invoke(
        "plan", file, "--target", "Caf\u00e9", "--format", "json", "--api-url", emulator_url
    )
    assert result.exit_code == 0, result.stderr
    assert [a["source"] for a in json.loads(result.stdout)["actions"]] == ["Cafe\u0301"]


def test_a_custom_domain_under_an_internationalised_top_level_domain_is_valid(
    tmp_path: Path,
) -> None:
    # .рф is xn--p1ai in DNS, .中国 xn--fiqs8s. Was: "must be a lowercase domain name".
    domains = ["images.xn--80ak6aa92e.xn--p1ai", "img.example.xn--fiqs8s", "a.xn--bcher-kva.de"]
    refused = ["img.example.123", "img.example.x-y", "img.example.xn--"]
    file = write(
        tmp_path,
        "  - name: Intl\n    deployment:\n      type: webfolder\n"
        "      imgix_subdomains: [intl]\n      webfolder_base_url: https://a.example/\n"
        f"      custom_domains: [{', '.join(domains + refused)}]\n",
    )
    result = invoke("validate", "--no-resolve", file)
    assert result.exit_code == 1
    assert [line.split(": ", 2)[1] for line in result.stderr.splitlines()[:-1]] == [
        f"deployment.custom_domains[{index}]" for index in range(3, 6)
    ], result.stderr


def test_fmt_writes_an_invisible_character_past_u_ffff_as_yaml_reads_it_back(
    tmp_path: Path,
) -> None:
    # A tag character (U+E0041, invisible) is written escaped; YAML reads no JSON surrogate
    # pair, so "\udb40\udc41" made the file "a lone surrogate escape" error.
    file = tmp_path / "sources.yaml"
    file.write_text(
        'version: 1\nsources:\n  - name: "Tag\\U000E0041 \\u200b"\n    deployment:\n'
        "      type: webfolder\n      imgix_subdomains: [tag]\n"
        "      webfolder_base_url: https://a.example/\n"
    )
    assert invoke("fmt", file).exit_code == 0
    assert '  - name: "Tag\\U000e0041 \\u200b"\n' in file.read_text()
    checked = invoke("validate", "--no-resolve", file)
    assert checked.exit_code == 0, checked.stderr
