"""`export` end to end: the round trip against real-looking listings, and never losing a file.

The emulator answers like real listings here (`omit_unset`: keys without a value left
out). Commands run against it over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from console import (
    CANARY_ENV,
    SOURCE_BLOCKS,
    apply_directly,
    invoke,
    run_cli,
    write_sources,
    writes_since,
)
from ruamel.yaml import YAML

from reconciler.emulator import SourceStore
from reconciler.live import LiveSource
from reconciler.loader import load
from reconciler.secrets import declared_secrets
from reconciler.untrusted import one_line

pytestmark = pytest.mark.e2e

# Every optional attribute of every type is set on some source; Uploads is disabled.
EXTRA = {
    "Products": """\
      s3_prefix: images/
      robots.txt: disallow-all
      custom_domains: [img.e2e.example]
      default_params: {auto: format, q: 75}
      image_error: https://e2e.example/error.png
      image_error_append_qs: true
      annotation: Managed in git
""",
    "Marketing": """\
      gcs_prefix: marketing/
      cache_ttl_behavior: override_origin
      cache_ttl_error: 600
      image_missing: https://e2e.example/missing.png
      image_missing_append_qs: true
      crossdomain_xml_enabled: true
""",
    "Uploads": "      azure_prefix: uploads/\n",
    "Blog": "      robots.txt: allow-all\n",
    "Proxy": "      robots.txt: disallow-all\n",
    "Archive": "      cache_ttl_value: 1800\n",
}


def everything_yaml() -> str:
    blocks = []
    for name, block in SOURCE_BLOCKS.items():
        if name == "Uploads":
            block = block.replace("  - name: Uploads\n", "  - name: Uploads\n    enabled: false\n")
        blocks.append(block + EXTRA[name])
    return "version: 1\nsources:\n" + "".join(blocks)


@pytest.fixture
def store(emulator_store: SourceStore) -> SourceStore:
    emulator_store.deploy_delay = 0
    emulator_store.omit_unset = True
    return emulator_store


def header_variables(text: str) -> list[str]:
    """The variables the exported file's header lists."""
    return [line[4:] for line in text.splitlines() if line.startswith("#   ")]


def test_round_trip_of_every_type_and_attribute_plans_nothing_and_writes_nothing(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    original = write_sources(tmp_path, everything_yaml())
    apply_directly(emulator_url, original, CANARY_ENV)
    values = {
        (spec.name, field): reference.reveal()
        for spec in load([original], environ=CANARY_ENV).state.sources
        for field, reference in declared_secrets(spec.deployment).items()
    }
    mark = len(store.request_log)

    exported = tmp_path / "exported.yaml"
    result = invoke("export", "--out", exported, "--api-url", emulator_url)
    assert result.exit_code == 0, result.output
    text = exported.read_text()
    document = YAML(typ="safe").load(text)
    # The header lists every variable the file references, and nothing else.
    references = {
        (source["name"], field): value["env"]
        for source in document["sources"]
        for field, value in source["deployment"].items()
        if isinstance(value, dict) and set(value) == {"env"}
    }
    assert sorted(header_variables(text)) == sorted(references.values())
    assert len(references) == len(values) == 10
    assert (
        f"Set these environment variables before apply: {', '.join(header_variables(text))}."
        in result.stderr
    )
    assert [s.get("enabled", True) for s in document["sources"]].count(False) == 1

    # The user sets the listed variables to the secrets they hold.
    env = {variable: values[key] for key, variable in references.items()}
    valid = invoke("validate", exported, env=env)
    assert valid.exit_code == 0, valid.output
    planned = run_cli("plan", exported, "--detailed-exitcode", "--api-url", emulator_url, env=env)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert planned.stdout.startswith("No changes: 6 unchanged, 0 unmanaged.")
    assert writes_since(store, mark) == []
    assert not any(value in planned.stdout + planned.stderr for value in values.values())


def test_export_never_overwrites_and_merge_adds_only_what_is_missing(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    apply_directly(emulator_url, write_sources(tmp_path), CANARY_ENV)
    hand_written = tmp_path / "sources.yaml"
    before = hand_written.read_text()

    refused = invoke("export", "--out", hand_written, "--api-url", emulator_url)
    assert refused.exit_code == 1
    assert refused.stderr == (
        f"error: {hand_written} exists, and export never overwrites a file: use --merge "
        f"{hand_written} to add the live sources it lacks, or choose another --out\n"
    )
    assert hand_written.read_text() == before

    commented = "# Managed by the platform team.\n" + before.replace(
        "  - name: Blog\n", "  # The blog (comment kept by --merge).\n  - name: Blog\n"
    )
    hand_written.write_text(commented)
    nothing = invoke("export", "--merge", hand_written, "--api-url", emulator_url)
    assert nothing.exit_code == 0, nothing.output
    assert "Nothing to add" in nothing.stderr and hand_written.read_text() == commented

    store.create_source(
        {
            "name": "Made in the dashboard",
            "deployment": {
                "type": "webfolder",
                "imgix_subdomains": ["e2e-dashboard"],
                "webfolder_base_url": "https://dashboard.e2e.example/",
                "password": "dashboard-password",
            },
        }
    )
    merged = invoke("export", "--merge", hand_written, "--api-url", emulator_url)
    assert merged.exit_code == 0, merged.output
    assert merged.stderr == (
        f"Added 1 source to {hand_written}.\n"
        "Set these environment variables before apply: MADE_IN_THE_DASHBOARD_PASSWORD.\n"
    )
    text = hand_written.read_text()
    assert text.startswith(commented)
    assert "name: Made in the dashboard" in text[len(commented) :]
    valid = invoke(
        "validate",
        hand_written,
        env={**CANARY_ENV, "MADE_IN_THE_DASHBOARD_PASSWORD": "dashboard-password"},
    )
    assert valid.exit_code == 0, valid.output

    both = invoke(
        "export", "--out", tmp_path / "new.yaml", "--merge", hand_written, "--api-url", emulator_url
    )
    assert both.exit_code == 1 and "exclude each other" in both.stderr


def test_merge_into_a_file_with_a_dash_alone_on_its_line_adds_the_missing_source(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    store.create_source(
        {"name": "Proxy", "deployment": {"type": "webproxy", "imgix_subdomains": ["e2e-proxy"]}}
    )
    path = tmp_path / "sources.yaml"
    path.write_text(
        "version: 1\nsources:\n  -\n    name: Blog\n"
        "    deployment: {type: webproxy, imgix_subdomains: [e2e-blog]}\n"
    )
    result = invoke("export", "--merge", path, "--api-url", emulator_url)
    assert result.exit_code == 0, result.output + result.stderr
    assert result.stderr == f"Added 1 source to {path}.\n"
    assert "\n  - name: Proxy\n" in path.read_text()


def test_merge_into_a_file_saved_on_windows_keeps_its_byte_order_mark_and_line_ends(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    # Notepad's BOM and CRLF: merge wrote the file back in LF without the mark, so the
    # pull request showed every line changed (fmt keeps both).
    store.create_source(
        {"name": "Proxy", "deployment": {"type": "webproxy", "imgix_subdomains": ["e2e-proxy"]}}
    )
    path = tmp_path / "sources.yaml"
    kept = "# Ours.\r\nversion: 1\r\nsources:\r\n  - name: Blog\r\n"
    kept += "    deployment: {type: webproxy, imgix_subdomains: [e2e-blog]}\r\n"
    path.write_bytes(codecs.BOM_UTF8 + kept.encode())

    result = invoke("export", "--merge", path, "--api-url", emulator_url)

    assert result.exit_code == 0, result.output + result.stderr
    data = path.read_bytes()
    assert data.startswith(codecs.BOM_UTF8 + kept.encode())
    assert b"  - name: Proxy\r\n" in data
    assert data.count(b"\n") == data.count(b"\r\n")


def test_merge_into_an_invalid_file_is_refused_with_its_errors(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nsources:\n  - name: X\n    deployment: {type: ftp}\n")
    result = invoke("export", "--merge", broken, "--api-url", emulator_url)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{broken}:4:")
    assert broken.read_text().endswith("{type: ftp}\n")


def test_a_live_source_the_format_cannot_express_fails_the_export_and_writes_nothing(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    apply_directly(emulator_url, write_sources(tmp_path), CANARY_ENV)
    (blog,) = [s for s in store.sources.values() if s.name == "Blog"]
    # The dashboard skips the API's checks: a TTL below the documented minimum, a name
    # with a terminal escape in it.
    store.dashboard_redeploy(blog.id, {"cache_ttl_value": 60})
    blog.name = "Blog\x1b[2J"
    out = tmp_path / "exported.yaml"
    result = run_cli("export", "--out", out, "--api-url", emulator_url)
    assert result.returncode == 1
    assert result.stderr == (
        f'error: live source "Blog\\u001b[2J" ({blog.id}) cannot be exported as a valid '
        "file: deployment.webfolder.cache_ttl_value: Input should be greater than or equal "
        "to 1800\n"
    )
    assert result.stdout == "" and not out.exists()


def _listing_then(monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[], None]) -> None:
    """Run `meanwhile` once the live sources are listed, before export writes."""
    from reconciler import reconcile

    listed = reconcile.list_live

    async def list_then_act(connection: reconcile.Connection) -> list[LiveSource]:
        live = await listed(connection)
        meanwhile()
        return live

    monkeypatch.setattr(reconcile, "list_live", list_then_act)


@pytest.mark.parametrize("made", ["a file", "a link"])
def test_a_file_made_at_the_out_path_while_listing_is_never_replaced(
    store: SourceStore,
    emulator_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    made: str,
) -> None:
    apply_directly(emulator_url, write_sources(tmp_path), CANARY_ENV)
    out = tmp_path / "exported.yaml"
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("someone's file\n")

    def make() -> None:
        if made == "a file":
            out.write_text("written meanwhile\n")
        else:
            out.symlink_to(elsewhere)

    _listing_then(monkeypatch, make)
    result = invoke("export", "--out", out, "--api-url", emulator_url)

    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {out} exists, and export never overwrites a file")
    if made == "a file":
        assert out.read_text() == "written meanwhile\n"
    else:
        assert out.is_symlink() and elsewhere.read_text() == "someone's file\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_an_edit_made_to_the_merged_file_while_listing_is_never_lost(
    store: SourceStore, emulator_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply_directly(emulator_url, write_sources(tmp_path), CANARY_ENV)
    hand_written = tmp_path / "sources.yaml"
    store.create_source(
        {
            "name": "Made in the dashboard",
            "deployment": {
                "type": "webfolder",
                "imgix_subdomains": ["e2e-dashboard"],
                "webfolder_base_url": "https://dashboard.e2e.example/",
            },
        }
    )
    edited = "# An edit saved while export listed.\n" + hand_written.read_text()
    _listing_then(monkeypatch, lambda: hand_written.write_text(edited))

    result = invoke("export", "--merge", hand_written, "--api-url", emulator_url)

    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {hand_written} changed while export listed the live sources, and --merge "
        "never loses an edit: nothing was written; run export --merge again\n"
    )
    assert hand_written.read_text() == edited


# --------------------------------------------------------------------------- odd --out paths


def _one_source(store: SourceStore) -> None:
    store.create_source(
        {
            "name": "Site",
            "deployment": {
                "type": "webfolder",
                "imgix_subdomains": ["e2e-site"],
                "webfolder_base_url": "https://site.e2e.example/",
            },
        }
    )


def _entries(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


ODD_OUT = {
    # The path given, in a folder holding `folder/` and `file.yaml`; the rest of the one
    # error line after `error: --out PATH`.
    "a folder": ("folder", " is a folder: name a new file in it"),
    "a missing folder": ("missing/sources.yaml", ": the folder missing does not exist"),
    "a file as its folder": ("file.yaml/sources.yaml", ": file.yaml is not a folder"),
    "an empty name": ("", " is a folder: name a new file in it"),
    "a name past the file system's": (
        "s" * 300 + ".yaml",
        ": the file name is 305 bytes long, more than the 255 this file system allows",
    ),
}


@pytest.mark.parametrize("case", ODD_OUT, ids=list(ODD_OUT))
def test_an_out_path_that_cannot_be_a_new_file_is_one_error_before_any_request(
    store: SourceStore,
    emulator_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    # kubectl and terraform fail such a path only once they wrote: export checks before
    # it lists (an account of 100,000 sources takes minutes), and again when it writes.
    _one_source(store)
    given, problem = ODD_OUT[case]
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.yaml").write_text("kept\n")
    before = _entries(tmp_path)
    monkeypatch.chdir(tmp_path)
    logged = len(store.request_log)

    result = invoke("export", "--out", given, "--api-url", emulator_url)

    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    shown = given or "."
    assert result.stderr == f"error: --out {shown}{problem}\n"
    assert len(store.request_log) == logged
    assert _entries(tmp_path) == before
    assert (tmp_path / "file.yaml").read_text() == "kept\n"


def test_an_out_path_that_holds_a_file_is_refused_before_any_request(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    _one_source(store)
    kept = tmp_path / "sources.yaml"
    kept.write_text("kept\n")
    logged = len(store.request_log)
    result = invoke("export", "--out", kept, "--api-url", emulator_url)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {kept} exists, and export never overwrites a file")
    assert len(store.request_log) == logged
    assert kept.read_text() == "kept\n"


def test_an_out_path_in_a_read_only_folder_is_one_error_before_any_request(
    store: SourceStore, emulator_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _one_source(store)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:  # root may write anywhere: the check is asked as others would be
        access = os.access
        # Refused as the kernel would refuse others: only a question that includes writing.
        monkeypatch.setattr(
            os,
            "access",
            lambda path, mode: access(path, mode) and not (Path(path) == locked and mode & os.W_OK),
        )
    logged = len(store.request_log)
    try:
        result = invoke("export", "--out", locked / "sources.yaml", "--api-url", emulator_url)
    finally:
        locked.chmod(0o755)
    assert result.exit_code == 1
    assert result.stderr == f"error: --out {locked}/sources.yaml: cannot write in {locked}\n"
    assert len(store.request_log) == logged and list(locked.iterdir()) == []


def test_an_out_link_to_elsewhere_is_never_followed(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    _one_source(store)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    dangling, to_a_file = tmp_path / "dangling.yaml", tmp_path / "to-a-file.yaml"
    dangling.symlink_to(elsewhere / "absent.yaml")
    (elsewhere / "present.yaml").write_text("someone's file\n")
    to_a_file.symlink_to(elsewhere / "present.yaml")

    for link in (dangling, to_a_file):
        result = invoke("export", "--out", link, "--api-url", emulator_url)
        assert result.exit_code == 1
        assert result.stderr.startswith(f"error: {link} exists, and export never overwrites")
    assert _entries(elsewhere) == ["present.yaml"]
    assert (elsewhere / "present.yaml").read_text() == "someone's file\n"


def test_out_dash_is_stdout_as_for_most_tools(
    store: SourceStore, emulator_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _one_source(store)
    monkeypatch.chdir(tmp_path)

    result = invoke("export", "--out", "-", "--api-url", emulator_url)

    assert result.exit_code == 0, result.output
    assert "  - name: Site\n" in result.stdout
    assert result.stderr == ""
    assert _entries(tmp_path) == []  # no file named `-`

    # Redirected, stdout is the very file --out writes: no byte more or less.
    written = invoke("export", "--out", "sources.yaml", "--api-url", emulator_url)
    assert written.exit_code == 0, written.output
    assert result.stdout == (tmp_path / "sources.yaml").read_text()


@pytest.mark.parametrize(
    "name",
    ["new\nline.yaml", "::error::forged\r.yaml", "\x1b[2Jbell\x07.yaml", "e" * 250 + ".yaml"],
)
def test_an_out_name_with_control_characters_or_of_the_longest_length_is_written(
    store: SourceStore, emulator_url: str, tmp_path: Path, name: str
) -> None:
    # Any name the file system takes is the user's to choose; messages show it escaped.
    # A 255-byte name failed: the temporary beside it needs 14 more.
    _one_source(store)
    out = tmp_path / name

    result = invoke("export", "--out", out, "--api-url", emulator_url)

    assert result.exit_code == 0, result.output
    assert "name: Site" in out.read_text()
    assert _entries(tmp_path) == [name]
    assert result.stderr == f"Wrote 1 source to {one_line(str(out))}.\n"


def test_merge_messages_show_the_file_name_escaped(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    _one_source(store)
    merged = tmp_path / "::warning::a\nb.yaml"
    merged.write_text("version: 1\nsources: []\n")

    added = invoke("export", "--merge", merged, "--api-url", emulator_url)
    again = invoke("export", "--merge", merged, "--api-url", emulator_url)

    assert added.exit_code == again.exit_code == 0, added.output + again.output
    shown = one_line(str(merged))
    assert added.stderr == f"Added 1 source to {shown}.\n"
    assert again.stderr == f"Nothing to add: every live source is in {shown}.\n"


def test_each_source_export_cannot_express_is_an_error_line_of_its_own(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    # They were one line, joined by a literal `\n`.
    for name, subdomain in (("Site", "e2e-site"), ("Blog\n::error::forged", "e2e-blog")):
        created = store.create_source(
            {
                "name": name,
                "deployment": {
                    "type": "webfolder",
                    "imgix_subdomains": [subdomain],
                    "webfolder_base_url": "https://site.e2e.example/",
                },
            }
        )
        store.dashboard_redeploy(created["id"], {"cache_ttl_value": 60})
    out = tmp_path / "exported.yaml"

    result = invoke("export", "--out", out, "--api-url", emulator_url)

    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith('error: live source "Blog\\n::error::forged" (')
    assert lines[1].startswith('error: live source "Site" (')
    minimum = "cache_ttl_value: Input should be greater than or equal to 1800"
    assert all(line.endswith(minimum) for line in lines), lines
    assert not out.exists()


def test_a_problem_with_a_line_break_in_it_is_still_one_escaped_error_line(
    monkeypatch: pytest.MonkeyPatch, emulator_url: str
) -> None:
    # Export escapes what it quotes; a line break left in a problem by a later change
    # must still not split it, nor start a workflow command.
    from reconciler import export
    from reconciler.errors import ExportError

    def refused(live: object, **options: bool) -> export.Export:
        raise ExportError("first\n::error::forged", "second")

    monkeypatch.setattr(export, "export_yaml", refused)
    result = invoke("export", "--api-url", emulator_url)
    assert result.exit_code == 1
    assert result.stderr == "error: first\\n::error::forged\nerror: second\n"
