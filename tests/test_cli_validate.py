"""`imgix-reconciler validate` and `schema`: exit codes, located errors, no leaked secrets."""

from __future__ import annotations

import copy
import gc
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from reconciler import loader
from reconciler.cli import main
from reconciler.schema import render_sources_schema

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "sources.yaml"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Values distinctive enough to search for in any output; the signing key is 32 latin-1
# characters so that it passes validation and reaches every later step.
CANARIES = {
    "S3_SECRET_KEY": "canary-s3-7f3a9c",
    "GCS_SECRET_KEY": "canary-gcs-7f3a9c",
    "AZURE_SAS": "canary-azure-7f3a9c",
    "BLOG_PASSWORD": "canary-blog-7f3a9c",
    "PROXY_SIGNING_KEY": "canary-proxy-7f3a9c-0123456789ab",
    "ARCHIVE_SECRET_KEY": "canary-archive-7f3a9c",
}
ERROR_LINE = re.compile(r"^[^:\n]+:\d+:\d+: ")
SUMMARY_LINE = re.compile(r"^\d+ errors? in \d+ of \d+ files?( \(.+\))?$")
NO_RESOLVE_HINT = "(validate --no-resolve checks the files without reading references)"


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    # catch_exceptions=False: a traceback fails the test instead of becoming exit code 1.
    base = dict.fromkeys(CANARIES)  # click's env: None unsets a variable
    return CliRunner().invoke(main, list(args), env={**base, **(env or {})}, catch_exceptions=False)


def assert_located_failure(result: Result) -> list[str]:
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert lines, "an invalid file must say why"
    assert SUMMARY_LINE.match(lines[-1]), lines[-1]
    for line in lines[:-1]:
        assert ERROR_LINE.match(line), line
    assert result.stdout == ""
    return lines[:-1]


# --------------------------------------------------------------------------- validate


def test_example_is_valid_without_resolving() -> None:
    result = run("validate", str(EXAMPLE), "--no-resolve")
    assert result.exit_code == 0, result.output
    assert result.stderr == f"{EXAMPLE}: 6 sources valid\n"
    assert result.stdout == ""


def test_example_is_valid_with_its_variables_set() -> None:
    result = run("validate", str(EXAMPLE), env=CANARIES)
    assert result.exit_code == 0, result.output
    for value in CANARIES.values():
        assert value not in result.output


def test_example_without_its_variables_names_each_one() -> None:
    lines = assert_located_failure(run("validate", str(EXAMPLE)))
    assert len(lines) == len(CANARIES)
    for line, name in zip(lines, CANARIES, strict=True):
        assert line.endswith(f"environment variable {name} is not set")
    # The hint is said once, in the summary, by the command it names.
    assert run("validate", str(EXAMPLE)).stderr.splitlines()[-1] == (
        f"6 errors in 1 of 1 file {NO_RESOLVE_HINT}"
    )


def test_cache_ttl_error_is_located_on_its_line() -> None:
    path = FIXTURES / "invalid_cache_ttl.yaml"
    line = path.read_text().splitlines().index("      cache_ttl_value: 60") + 1
    lines = assert_located_failure(run("validate", "--no-resolve", str(path)))
    assert lines == [f"{path}:{line}:24: deployment.cache_ttl_value: must be >= 1800 (got 60)"]


def test_five_mistakes_are_all_reported() -> None:
    path = FIXTURES / "invalid_five_mistakes.yaml"
    lines = assert_located_failure(run("validate", "--no-resolve", str(path)))
    for where, what in [
        ("8:7", "unknown key 's3_acess_key'"),
        ("10:27", "deployment.cache_ttl_behavior: must be 'respect_origin'"),
        ("12:14", "enabled: must be a boolean"),
        ("16:27", "deployment.webfolder_base_url: must be an absolute http(s) URL"),
        ("19:13", "deployment.type: unknown deployment type 'ftp'"),
    ]:
        assert any(line.startswith(f"{path}:{where}: ") and what in line for line in lines), (
            where,
            lines,
        )


def test_every_error_is_listed_but_annotations_stay_few(tmp_path: Path) -> None:
    # GitHub shows 10 error annotations per step: 300 unknown keys list 300 lines in the
    # log, exit 1 with the exact count, and write 10 annotations and one that says so.
    path = tmp_path / "mistakes.yaml"
    path.write_text("version: 1\nsources: []\n" + "".join(f"k{n:03d}: 1\n" for n in range(300)))
    result = run("validate", str(path), env={"GITHUB_ACTIONS": "true"})
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    listed = [line for line in lines if ERROR_LINE.match(line)]
    annotations = [line for line in lines if line.startswith("::error")]
    assert len(listed) == 300
    assert listed[-1] == f"{path}:302:1: k299: unknown key 'k299'"
    assert lines[-1] == "300 errors in 1 of 1 file"
    assert len(annotations) == 11
    assert "290 more error(s) not annotated" in annotations[-1]


def test_exactly_as_many_errors_as_annotations_adds_no_note_of_more(tmp_path: Path) -> None:
    # GitHub's ten annotations hold ten errors whole: no "0 more error(s)" annotation.
    path = tmp_path / "mistakes.yaml"
    path.write_text("version: 1\nsources: []\n" + "".join(f"k{n:03d}: 1\n" for n in range(10)))
    result = run("validate", str(path), env={"GITHUB_ACTIONS": "true"})
    assert result.exit_code == 1
    annotations = [line for line in result.stderr.splitlines() if line.startswith("::error")]
    assert len(annotations) == 10
    assert not any("more error(s)" in line for line in annotations)


def test_literal_secret_is_rejected_and_never_printed() -> None:
    path = FIXTURES / "invalid_literal_secret.yaml"
    result = run("validate", str(path))
    (line,) = assert_located_failure(result)
    assert line.startswith(f"{path}:9:22: deployment.s3_secret_key: ")
    assert "{env: S3_SECRET_KEY}" in line
    assert "hunter2" not in result.stdout
    assert "hunter2" not in result.stderr


def test_secret_failing_its_constraint_is_never_printed(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(
        "version: 1\nsources:\n  - name: Partner proxy\n    deployment:\n      type: webproxy\n"
        "      imgix_subdomains: [acme-proxy]\n      request_handshake: {env: PROXY_SIGNING_KEY}\n"
    )
    canary = "canary-too-short-handshake"
    result = run("validate", str(path), env={"PROXY_SIGNING_KEY": canary})
    (line,) = assert_located_failure(result)
    assert "must be exactly 32 latin-1 characters" in line
    assert canary not in result.stdout
    assert canary not in result.stderr


@pytest.mark.parametrize("command", [["validate"], ["plan", "--emulator"]])
def test_a_variable_that_is_not_utf8_is_located_not_an_internal_error(
    tmp_path: Path, command: list[str]
) -> None:
    # Bytes that are not UTF-8 (kept by Python as lone surrogates): `plan` ended in
    # "internal error: UnicodeEncodeError" when it fingerprinted the secret.
    path = tmp_path / "sources.yaml"
    path.write_text(
        "version: 1\nsources:\n  - name: Products\n    deployment:\n      type: s3\n"
        "      imgix_subdomains: [acme-products]\n      s3_bucket: acme-products\n"
        "      s3_access_key: AKIAIOSFODNN7EXAMPLE\n      s3_secret_key: {env: S3_SECRET_KEY}\n"
    )
    env = {"S3_SECRET_KEY": "canary-\udcff-s3"}
    result = run(command[0], str(path), *command[1:], env=env)
    (line,) = assert_located_failure(result)
    assert line == (
        f"{path}:9:22: deployment.s3_secret_key: environment variable S3_SECRET_KEY is not "
        "readable as UTF-8 text"
    )
    assert "canary" not in result.output


def test_errors_of_several_files_in_one_run(tmp_path: Path) -> None:
    result = run(
        "validate",
        "--no-resolve",
        str(FIXTURES / "invalid_cache_ttl.yaml"),
        str(tmp_path / "missing.yaml"),
        str(FIXTURES / "valid_minimal.yaml"),
    )
    lines = assert_located_failure(result)
    assert [line.split(":")[0] for line in lines] == [
        str(FIXTURES / "invalid_cache_ttl.yaml"),
        str(tmp_path / "missing.yaml"),
    ]
    assert result.stderr.splitlines()[-1] == "2 errors in 2 of 3 files"


def test_a_file_given_twice_is_checked_once() -> None:
    path = FIXTURES / "invalid_cache_ttl.yaml"
    lines = assert_located_failure(run("validate", "--no-resolve", str(path), str(path)))
    assert len(lines) == 1
    assert "also used by" not in lines[0]
    assert result_summary(path, path) == "1 error in 1 of 1 file"


def result_summary(*paths: Path) -> str:
    return run("validate", "--no-resolve", *map(str, paths)).stderr.splitlines()[-1]


def test_validate_needs_a_file() -> None:
    result = CliRunner().invoke(main, ["validate"])
    assert result.exit_code == 1  # a usage mistake: 2 means "changes" in this tool
    assert "Missing argument" in result.stderr


# --------------------------------------------------------------------------- schema


def test_schema_prints_the_shipped_schema() -> None:
    result = run("schema")
    assert result.exit_code == 0
    assert result.stdout == render_sources_schema()
    assert json.loads(result.stdout)["$defs"]["S3Deployment"]["additionalProperties"] is False


# --------------------------------------------------------------------------- never a traceback


def _example_data() -> Any:
    return YAML(typ="safe").load(EXAMPLE.read_text())


def _dump(data: Any) -> str:
    stream = StringIO()
    YAML(typ="safe").dump(data, stream)
    return stream.getvalue()


def _slots(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every (container path, key) in the data, to pick a place to mutate."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield (*path, key)
            yield from _slots(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield (*path, index)
            yield from _slots(value, (*path, index))


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        data = data[step]
    return data


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["s3", "webproxy", "ftp", "acme-blog", "https://x.example/", "origin"]),
    st.lists(st.text(max_size=4), max_size=2),
    st.dictionaries(st.sampled_from(["env", "file", "x"]), st.text(max_size=8), max_size=2),
)
KEYS = st.one_of(
    st.text(min_size=1, max_size=12),
    st.sampled_from(["name", "id", "deployment", "type", "s3_secret_key", "robots.txt", "nmae"]),
)


@st.composite
def mutated_data(draw: st.DrawFn) -> str:
    data = _example_data()
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        slots = list(_slots(data))
        if not slots:
            break
        path = draw(st.sampled_from(slots))
        parent = _parent(data, path)
        key = path[-1]
        action = draw(st.sampled_from(["delete", "replace", "insert", "duplicate"]))
        if action == "delete":
            del parent[key]
        elif action == "replace":
            parent[key] = draw(SCALARS)
        elif action == "insert" and isinstance(parent, dict):
            parent[draw(KEYS)] = draw(SCALARS)
        elif action == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
    return _dump(data)


@st.composite
def mutated_text(draw: st.DrawFn) -> str:
    lines = EXAMPLE.read_text().splitlines()
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        index = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        action = draw(st.sampled_from(["delete", "duplicate", "indent", "dedent", "insert"]))
        if action == "delete":
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, lines[index])
        elif action == "indent":
            lines[index] = " " * draw(st.integers(1, 3)) + lines[index]
        elif action == "dedent":
            lines[index] = lines[index][draw(st.integers(1, 3)) :]
        else:
            at = draw(st.integers(min_value=0, max_value=len(lines[index])))
            noise = draw(st.sampled_from([":", "- ", "{", "]", "'", "&a ", "*a", "\t", "#", "x"]))
            lines[index] = lines[index][:at] + noise + lines[index][at:]
        if not lines:
            break
    return "\n".join(lines) + "\n"


ARBITRARY_YAML = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)),
    max_leaves=8,
).map(_dump)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of examples/ so the example's {file: ...} references resolve."""
    target = tmp_path_factory.mktemp("mutated")
    shutil.copytree(EXAMPLE.parent / "secrets", target / "secrets")
    return target


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    text=st.one_of(mutated_data(), mutated_text(), ARBITRARY_YAML, st.text(max_size=200)),
    resolve=st.booleans(),
)
def test_any_input_ends_in_success_or_located_errors(
    workdir: Path, text: str, resolve: bool
) -> None:
    path = workdir / "sources.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    args = ["validate", str(path)] + ([] if resolve else ["--no-resolve"])
    result = run(*args, env=CANARIES)
    assert result.exit_code in (0, 1), result.output
    if result.exit_code == 1:
        assert_located_failure(result)
    else:
        assert result.stderr.endswith(" valid\n")
    for value in CANARIES.values():
        assert value not in result.output
    assert "Traceback" not in result.output


# What a command that never talks to the API or draws a terminal must not import: the
# HTTP client, the emulator's server stack, rich (and the planner's deepdiff).
NOT_FOR_OFFLINE = ("httpx", "starlette", "uvicorn", "rich", "deepdiff")


def imported_by(args: list[str]) -> set[str]:
    """Top-level packages a fresh process holds after running the CLI with `args`."""
    return {name.split(".")[0] for name in modules_imported_by(args)}


def modules_imported_by(args: list[str]) -> set[str]:
    """Modules a fresh process holds after running the CLI with `args`.

    Its stdout and stderr are pipes, as in CI: not a terminal.
    """
    probe = (
        "import sys\n"
        "from reconciler.cli import main\n"
        "try:\n"
        f"    main({args!r}, prog_name='imgix-reconciler')\n"
        "except SystemExit:\n"
        "    pass\n"
        "names = {name for name, module in sys.modules.items() if module}\n"
        "print(' '.join(sorted(names)), file=sys.stderr)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS", "NO_COLOR")}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO, env=env
    )
    loaded = set(done.stderr.splitlines()[-1].split())
    assert "reconciler.cli" in loaded
    return loaded


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "--no-resolve", str(EXAMPLE)],
        ["validate", str(REPO / "tests" / "fixtures" / "invalid_five_mistakes.yaml")],
        ["schema"],
        ["--help"],
    ],
)
def test_offline_commands_import_neither_the_client_nor_the_server_nor_rich(
    args: list[str],
) -> None:
    loaded = imported_by(args)
    assert loaded.isdisjoint(NOT_FOR_OFFLINE), sorted(loaded & set(NOT_FOR_OFFLINE))


@pytest.mark.parametrize("args", [["--help"], ["plan", "--help"], ["plna"], ["plan"]])
def test_help_and_usage_errors_import_no_pydantic(args: list[str]) -> None:
    loaded = imported_by(args)
    assert loaded.isdisjoint({"pydantic", "pydantic_core", "ruamel", *NOT_FOR_OFFLINE})


def test_schema_imports_no_pydantic_nor_yaml() -> None:
    # It prints the schema generated at build time (tests/test_schema.py keeps it in sync).
    loaded = imported_by(["schema"])
    assert loaded.isdisjoint({"pydantic", "pydantic_core", "ruamel", *NOT_FOR_OFFLINE})
    # It reads nothing from outside: no redaction point, no logging.
    assert loaded.isdisjoint({"reconciler.redact", "reconciler.untrusted", "logging"})


def test_start_up_is_frozen_while_the_clis_own_process_runs_a_command() -> None:
    # The cycle collector's passes during the command skip what start-up made.
    probe = (
        "import gc, sys\n"
        "from reconciler import cli, loader\n"
        "real_load = loader.load\n"
        "def load(*args, **kwargs):\n"
        "    print('frozen while loading', gc.get_freeze_count() > BEFORE, file=sys.stderr)\n"
        "    return real_load(*args, **kwargs)\n"
        "loader.load = load\n"
        "BEFORE = gc.get_freeze_count()\n"
        f"sys.argv = ['imgix-reconciler', 'validate', '--no-resolve', {str(EXAMPLE)!r}]\n"
        "cli.run()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert "frozen while loading True" in done.stderr


def test_a_command_run_in_another_process_leaves_its_collector_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `gc.unfreeze` cannot undo only the command's part (Python 3.12 starts with objects
    # frozen), so a caller of `main` keeps its collector exactly as it was.
    counts: list[int] = []
    real_load = loader.load

    def recording_load(*args: Any, **kwargs: Any) -> Any:
        counts.append(gc.get_freeze_count())
        return real_load(*args, **kwargs)

    monkeypatch.setattr(loader, "load", recording_load)
    before = gc.get_freeze_count()
    result = run("validate", "--no-resolve", str(EXAMPLE))
    assert result.exit_code == 0, result.output
    assert counts == [before]
    assert gc.get_freeze_count() == before


def plugins_looked_up(env: dict[str, str]) -> bool:
    """Whether `validate` of the example made pydantic look for plugins."""
    probe = (
        "import sys\n"
        "from reconciler.cli import main\n"
        "try:\n"
        f"    main(['validate', '--no-resolve', {str(EXAMPLE)!r}], prog_name='imgix-reconciler')\n"
        "except SystemExit:\n"
        "    pass\n"
        "from pydantic.plugin import _loader\n"
        "print(_loader._plugins is not None, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO, env=env
    )
    assert "1 source" in done.stderr or "sources valid" in done.stderr, done.stderr
    return done.stderr.splitlines()[-1] == "True"


def test_no_pydantic_plugin_sees_the_values_unless_asked() -> None:
    # A plugin is handed every value validated, referenced ones included.
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    assert not plugins_looked_up(env)
    assert plugins_looked_up({**env, "PYDANTIC_DISABLE_PLUGINS": "none-in-particular"})


def test_plan_as_text_to_a_pipe_imports_no_rich() -> None:
    loaded = imported_by(["plan", str(EXAMPLE), "--emulator", "--format", "text"])
    assert "httpx" in loaded  # it did plan
    assert "rich" not in loaded


def test_apply_to_a_pipe_imports_no_rich() -> None:
    # Its progress is lines in CI's log: rich draws only the bar on a terminal.
    minimal = REPO / "tests" / "fixtures" / "valid_minimal.yaml"
    loaded = modules_imported_by(["apply", str(minimal), "--emulator", "--auto-approve"])
    assert "reconciler.progress" in loaded  # it did apply
    assert not any(name.split(".")[0] == "rich" for name in loaded)


@pytest.mark.parametrize(
    "args",
    [
        ["plan", str(EXAMPLE), "--emulator", "--format", "json"],
        ["plan", str(EXAMPLE), "--emulator", "--format", "markdown"],
        ["drift", str(EXAMPLE), "--emulator"],
    ],
)
def test_plan_and_drift_import_neither_the_applier_nor_the_apply_progress_nor_report(
    args: list[str],
) -> None:
    # They check the ownership rail (reconciler.rails) but never apply nor report.
    loaded = modules_imported_by(args)
    assert {"reconciler.planner", "reconciler.rails"} <= loaded  # it did plan
    assert loaded.isdisjoint({"reconciler.applier", "reconciler.progress", "reconciler.report"})


def test_plan_outside_github_actions_imports_no_github_module() -> None:
    # `github.active()` is false without GITHUB_ACTIONS: neither the step summary nor the
    # masking of the API key needs the module then (tests/test_action.py runs it inside).
    loaded = modules_imported_by(["plan", str(EXAMPLE), "--emulator", "--format", "json"])
    assert "reconciler.planner" in loaded  # it did plan
    assert "reconciler.github" not in loaded


@pytest.mark.parametrize(
    "args",
    [
        ["schema"],
        ["validate", "--no-resolve", str(EXAMPLE)],
        ["plan", str(EXAMPLE), "--emulator", "--format", "json"],
    ],
)
def test_shipped_files_are_read_without_pkgutil_nor_resource_readers(args: list[str]) -> None:
    # The schema, the parameter catalogue and the demo account are read through the
    # package's loader (reconciler.shipped).
    loaded = modules_imported_by(args)
    assert "reconciler.shipped" in loaded
    assert loaded.isdisjoint({"pkgutil", "importlib.readers", "importlib.resources.readers"})


def test_validate_imports_neither_the_planner_nor_the_applier() -> None:
    loaded = modules_imported_by(["validate", "--no-resolve", str(EXAMPLE)])
    assert "reconciler.loader" in loaded
    assert loaded.isdisjoint({"reconciler.planner", "reconciler.applier", "reconciler.rails"})


def test_validate_imports_no_logging() -> None:
    # Nothing of it logs: the redaction point wraps logging once something imported it
    # (tests/test_redact.py shows a later record masked all the same).
    loaded = modules_imported_by(["validate", "--no-resolve", str(EXAMPLE)])
    assert "reconciler.redact" in loaded  # the redaction point is in place
    assert "logging" not in loaded


def test_plan_as_json_defines_no_apply_report_document() -> None:
    # `--format json` imports the module that holds both documents; only apply's report
    # needs the report's model, defined at the first report.
    probe = (
        "import sys\n"
        "from reconciler.cli import main\n"
        "try:\n"
        f"    main(['plan', {str(EXAMPLE)!r}, '--emulator', '--format', 'json'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "from reconciler.render import json\n"
        "print(json._document_model.cache_info().currsize, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert '"digest"' in done.stdout  # it did plan
    assert done.stderr.splitlines()[-1] == "0"


@pytest.mark.parametrize("command", [["validate"], ["plan", "--emulator"]])
def test_a_relative_path_in_a_deleted_directory_says_the_directory_is_gone(
    tmp_path: Path, command: list[str]
) -> None:
    # A CI step whose working directory an earlier step removed: "No such file or
    # directory" alone named neither the file nor the reason.
    gone = tmp_path / "checkout"
    gone.mkdir()
    shutil.copy(EXAMPLE, gone / "sources.yaml")
    run = (
        'cd "$1" && rm -r "$1" && shift && exec "$@"',
        "sh",
        str(gone),
        sys.executable,
        "-c",
        "from reconciler.cli import main; main()",
        *command,
        "--no-resolve" if command == ["validate"] else "--format=json",
        "sources.yaml",
    )
    done = subprocess.run(["sh", "-c", *run], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr == (
        "error: the current directory no longer exists, so sources.yaml cannot be found "
        "(give an absolute path, or run from a directory that exists)\n"
    )
    assert done.stdout == ""
