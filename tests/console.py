"""Running the console program end to end: a clean child environment, a six-source file.

Shared by the end-to-end tests (`test_cli.py`, `test_canary.py`, `test_secrets_e2e.py`).
Every run is `python -m reconciler ...` in a subprocess, so what a user sees is what the
tests see: exit codes, stdout, stderr, files, over real HTTP to the emulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from click.testing import CliRunner, Result

from reconciler.applier import ApplyReport
from reconciler.cli import main
from reconciler.emulator import EMULATOR_API_KEY, LoggedRequest, SourceStore, create_app
from reconciler.pacing import Pacing
from reconciler.progress import ApplyProgress
from reconciler.reconcile import Connection, apply_with_report, plan_files

if TYPE_CHECKING:
    from conftest import FakeClock

UNPACED = Pacing(per_second=None, creates_per_hour=None, updates_per_hour=None)

# Distinctive values, searched for in every output. Request handshakes and signing keys
# must be 32 latin-1 characters; basic-auth passwords must not hold ':'.
CANARY_ENV = {
    "E2E_S3_SECRET_KEY": "CANARY-env-s3-secret-91f3d2",
    "E2E_AZURE_SAS": "CANARY-env-azure-sas-91f3d2",
    "E2E_BLOG_PASSWORD": "CANARY-env-blog-password-91f3d2",
    "E2E_BLOG_SIGNING_KEY": "CANARY-env-blog-signing-91f3d2-x",
    "E2E_PROXY_HANDSHAKE": "CANARY-env-proxy-handshake-91f3d",
}
CANARY_FILES = {
    "gcs-secret.txt": "CANARY-file-gcs-secret-91f3d2",
    "blog-handshake.txt": "CANARY-file-blog-handshake-91f3d",
    "proxy-password.txt": "CANARY-file-proxy-password-91f3d2",
    "proxy-signing.txt": "CANARY-file-proxy-signing-91f3d2",
    "archive-secret.txt": "CANARY-file-archive-secret-91f3d2",
}
for _value in [*CANARY_ENV.values(), *CANARY_FILES.values()]:
    assert _value.isascii(), _value
assert all(len(CANARY_ENV[k]) == 32 for k in ("E2E_BLOG_SIGNING_KEY", "E2E_PROXY_HANDSHAKE"))
assert all(len(CANARY_FILES[k]) == 32 for k in ("blog-handshake.txt", "proxy-signing.txt"))

# Names of the shipped example's secrets: a developer's shell may hold them.
EXAMPLE_SECRET_ENV = (
    "S3_SECRET_KEY",
    "GCS_SECRET_KEY",
    "AZURE_SAS",
    "BLOG_PASSWORD",
    "PROXY_SIGNING_KEY",
    "ARCHIVE_SECRET_KEY",
)

# What makes the CLI speak GitHub (reconciler.github); tests that want it set it.
GITHUB_ENV = ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT", "GITHUB_WORKSPACE")

# One source of each type; every secret attribute appears, from env and from files.
SOURCE_BLOCKS = {
    "Products": """\
  - name: Products
    deployment:
      type: s3
      imgix_subdomains: [e2e-products]
      s3_bucket: e2e-products
      s3_access_key: AKIAE2EEXAMPLEKEY01
      s3_secret_key: {env: E2E_S3_SECRET_KEY}
      secure_url_enabled: true
      cache_ttl_value: 604800
""",
    "Marketing": """\
  - name: Marketing
    deployment:
      type: gcs
      imgix_subdomains: [e2e-marketing]
      gcs_bucket: e2e-marketing
      gcs_access_key: GOOG1E2EEXAMPLEKEY
      gcs_secret_key: {file: secrets/gcs-secret.txt}
""",
    "Uploads": """\
  - name: Uploads
    deployment:
      type: azure
      imgix_subdomains: [e2e-uploads]
      azure_account: e2euploads
      azure_bucket: user-content
      azure_service_type: blob
      azure_sas_string: {env: E2E_AZURE_SAS}
""",
    "Blog": """\
  - name: Blog
    deployment:
      type: webfolder
      imgix_subdomains: [e2e-blog]
      webfolder_base_url: https://blog.e2e.example/uploads/
      username: imgix
      password: {env: E2E_BLOG_PASSWORD}
      request_handshake: {file: secrets/blog-handshake.txt}
      request_signing_key: {env: E2E_BLOG_SIGNING_KEY}
      secure_url_enabled: true
""",
    "Proxy": """\
  - name: Proxy
    deployment:
      type: webproxy
      imgix_subdomains: [e2e-proxy]
      username: partner
      password: {file: secrets/proxy-password.txt}
      request_handshake: {env: E2E_PROXY_HANDSHAKE}
      request_signing_key: {file: secrets/proxy-signing.txt}
""",
    "Archive": """\
  - name: Archive
    deployment:
      type: s3_compatible
      storage_provider: Wasabi
      imgix_subdomains: [e2e-archive]
      bucket_name: e2e-archive
      endpoint_url: https://s3.eu-central-1.wasabisys.com
      region: eu-central-1
      access_key_id: WASABIE2EEXAMPLE01
      secret_key: {file: secrets/archive-secret.txt}
""",
}
SOURCE_NAMES = tuple(SOURCE_BLOCKS)


def sources_yaml(*names: str) -> str:
    """A desired-state file holding the named sources (all six by default), in order."""
    return "version: 1\nsources:\n" + "".join(SOURCE_BLOCKS[n] for n in names or SOURCE_NAMES)


SOURCES_YAML = sources_yaml()


def write_sources(directory: Path, text: str = SOURCES_YAML, name: str = "sources.yaml") -> Path:
    """Write a desired-state file and its secret files (canary values) into `directory`."""
    secrets = directory / "secrets"
    secrets.mkdir(exist_ok=True)
    for file_name, value in CANARY_FILES.items():
        (secrets / file_name).write_text(value + "\n", encoding="utf-8")
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def child_env(extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """A clean copy of os.environ: no IMGIX_* and no secret names, the emulator's key set."""
    # GitHub's variables too: under GitHub Actions the CLI would add annotations and masks.
    removed = {*CANARY_ENV, *EXAMPLE_SECRET_ENV, "NO_COLOR", *GITHUB_ENV}
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("IMGIX_") and name not in removed
    }
    env["IMGIX_API_KEY"] = EMULATOR_API_KEY
    for name, value in (extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run_cli(
    *args: str | Path | int,
    env: Mapping[str, str | None] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m reconciler ARGS` with no terminal on stdin; `env` adds to `child_env`."""
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *map(str, args)],
        env=child_env(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def invoke(*args: str | Path, env: Mapping[str, str | None] | None = None) -> Result:
    """The same command in-process (still over real HTTP to the emulator)."""
    cleared: dict[str, str | None] = {
        name: None
        for name in os.environ
        if name.startswith("IMGIX_") or name in (*CANARY_ENV, *EXAMPLE_SECRET_ENV, *GITHUB_ENV)
    }
    merged = {**cleared, "IMGIX_API_KEY": EMULATOR_API_KEY, **(env or {})}
    return CliRunner().invoke(main, [str(arg) for arg in args], env=merged, catch_exceptions=False)


def writes_since(store: SourceStore, mark: int) -> list[LoggedRequest]:
    """The POST and PATCH requests the emulator answered after `request_log[mark]`."""
    return [entry for entry in store.request_log[mark:] if entry.method in ("POST", "PATCH")]


def stopped_at_loading(store: SourceStore) -> bool:
    """Whether a plan stopped by its files read at most one page and wrote nothing.

    `plan` lists while the files load, so a file with errors may have cost a read by the
    time its errors are known, and the listing stops there; the tests' accounts fit in
    one page.
    """
    log = store.request_log
    return len(log) <= 1 and all(entry.method == "GET" for entry in log)


def deployment_of(body: Any) -> dict[str, Any]:
    """The `deployment` object of a logged JSON:API request body."""
    deployment = body["data"]["attributes"].get("deployment", {})
    assert isinstance(deployment, dict)
    return deployment


def apply_directly(url: str, file: Path, environ: Mapping[str, str]) -> ApplyReport:
    """Apply `file` through the library, unpaced: quick set-up of a managed account."""
    connection = Connection(url, EMULATOR_API_KEY, pacing=UNPACED)
    made = asyncio.run(plan_files([file], connection, secrets_optional=False, environ=environ))
    report = asyncio.run(apply_with_report(made.plan, connection, environ=environ))
    assert report.ok, report.failed
    return report


def output_of(result: subprocess.CompletedProcess[str] | Result) -> str:
    """stdout and stderr together, for assertions that look at everything printed."""
    return f"{result.stdout}\n{result.stderr}"


@contextlib.contextmanager
def waiting_on(store: SourceStore, clock: FakeClock) -> Iterator[None]:
    """`--emulator` serves `store`, its connection on `clock` (no real sleep)."""
    transport = httpx.ASGITransport(app=create_app(store))

    def connect(*args: Any, **kwargs: Any) -> Connection:
        return Connection(
            "http://emulator",
            EMULATOR_API_KEY,
            transport,
            pacing=UNPACED,
            clock=clock,
            sleep=clock.sleep,
        )

    async def no_heartbeat(self: ApplyProgress, sleep: Any) -> None:
        # On a FakeClock a lone sleeper moves time on while requests are under way: the
        # heartbeat's minute would pass between two writes, and deadlines with it.
        await asyncio.Event().wait()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("reconciler.reconcile.connect", connect)
        patch.setattr(ApplyProgress, "heartbeat", no_heartbeat)
        yield
