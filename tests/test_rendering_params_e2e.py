"""default_params end to end: the CLI against the emulator over real HTTP.

A mistyped parameter stops `plan` before any request; a changed one shows key by key,
and `apply` sends the whole map (the API replaces maps whole).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from console import deployment_of, invoke, run_cli, stopped_at_loading, writes_since

from reconciler.emulator import SourceStore

pytestmark = pytest.mark.e2e

SOURCE = """\
version: 1
sources:
  - name: Photos
    deployment:
      type: webfolder
      imgix_subdomains: [e2e-photos]
      webfolder_base_url: https://photos.e2e.example/
      default_params: {PARAMS}
"""


def write(tmp_path: Path, params: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(SOURCE.replace("{PARAMS}", params), encoding="utf-8")
    return path


@pytest.fixture
def store(emulator_store: SourceStore) -> SourceStore:
    emulator_store.deploy_delay = 0
    return emulator_store


def test_a_mistyped_parameter_stops_plan_before_a_write_or_second_page(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    path = write(tmp_path, "{fm: wepb, atuo: format}")
    result = run_cli("plan", path, "--api-url", emulator_url)
    assert result.returncode == 1
    assert f"{path}:8:28: deployment.default_params.fm: must be one of" in result.stderr
    assert "(got 'wepb'; did you mean 'webp'?)" in result.stderr
    assert (
        f"{path}:8:34: deployment.default_params.atuo: unknown imgix rendering parameter "
        "'atuo' (did you mean 'auto'?)" in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert stopped_at_loading(store)


def test_a_changed_parameter_is_planned_key_by_key_and_applied_whole(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    store.create_source(
        {
            "name": "Photos",
            "deployment": {
                "type": "webfolder",
                "imgix_subdomains": ["e2e-photos"],
                "webfolder_base_url": "https://photos.e2e.example/",
                "default_params": {"auto": "format", "fm": "png"},
            },
        }
    )
    path = write(tmp_path, "{auto: format, q: 75}")
    planned = invoke("plan", path, "--api-url", emulator_url)
    assert planned.exit_code == 0, planned.output
    assert '~ deployment.default_params.fm: "png" -> (removed)' in planned.stdout
    assert "~ deployment.default_params.q: (not set) -> 75" in planned.stdout
    assert "deployment.default_params.auto" not in planned.stdout

    mark = len(store.request_log)
    applied = invoke("apply", path, "--auto-approve", "--api-url", emulator_url)
    assert applied.exit_code == 0, applied.output
    (write_request,) = writes_since(store, mark)
    assert deployment_of(write_request.body)["default_params"] == {"auto": "format", "q": 75}
    again = invoke("plan", path, "--detailed-exitcode", "--api-url", emulator_url)
    assert again.exit_code == 0, again.output
