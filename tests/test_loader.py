"""The loader: YAML positions, references, located errors, cross-source checks."""

from __future__ import annotations

import contextlib
import os
import random
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reconciler import loader
from reconciler.loader import (
    MAX_C_NESTING,
    MAX_PRECISE_NESTING,
    MAX_VALUES,
    LoadError,
    LocatedError,
    Location,
    load,
    nesting_bound,
    summarize,
)
from reconciler.loading import located as positions
from reconciler.loading import yaml_tree
from reconciler.references import MAX_REFERENCED_BYTES
from reconciler.specs import (
    S3Deployment,
    SecretRef,
    WebFolderDeployment,
    WebProxyDeployment,
    reference_fields,
)

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "sources.yaml"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

EXAMPLE_ENV = {
    "S3_SECRET_KEY": "s3-secret-canary",
    "GCS_SECRET_KEY": "gcs-secret-canary",
    "AZURE_SAS": "sv=2024-01-01&sig=canary",
    "BLOG_PASSWORD": "blog-password-canary",
    "PROXY_SIGNING_KEY": "proxy-signing-key-canary-32chars",
    "ARCHIVE_SECRET_KEY": "archive-secret-canary",
}

S3_SOURCE = """\
version: 1
sources:
  - name: Product images
    deployment:
      type: s3
      imgix_subdomains: [acme-products]
      s3_bucket: acme-product-images
      s3_access_key: AKIAIOSFODNN7EXAMPLE
      s3_secret_key: {env: S3_SECRET_KEY}
"""


def write(tmp_path: Path, text: str, name: str = "sources.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(
    *paths: Path, resolve: bool = False, environ: dict[str, str] | None = None
) -> list[str]:
    with pytest.raises(LoadError) as caught:
        load(paths, resolve=resolve, environ=environ or {})
    return [str(error) for error in caught.value.errors]


# --------------------------------------------------------------------------- the example


def test_example_loads_with_every_reference_resolved() -> None:
    loaded = load([EXAMPLE], environ=EXAMPLE_ENV)
    sources = {spec.name: spec for spec in loaded.state.sources}
    assert list(sources) == [
        "Product images",
        "Marketing assets",
        "User uploads",
        "Blog",
        "Partner proxy",
        "Archive",
    ]
    assert {spec.deployment.type for spec in sources.values()} == {
        "s3",
        "gcs",
        "azure",
        "webfolder",
        "webproxy",
        "s3_compatible",
    }
    s3 = sources["Product images"].deployment
    assert isinstance(s3, S3Deployment)
    assert s3.s3_secret_key.reveal() == "s3-secret-canary"
    assert s3.s3_secret_key.as_reference() == {"env": "S3_SECRET_KEY"}
    proxy = sources["Partner proxy"].deployment
    assert isinstance(proxy, WebProxyDeployment)
    assert proxy.request_handshake is not None
    assert proxy.request_handshake.reveal() == "example-handshake-not-a-secret-0"
    assert proxy.request_handshake.path == str(EXAMPLE.parent / "secrets/proxy-handshake.txt")
    archive = sources["Archive"]
    assert archive.enabled is False
    assert archive.deployment.access_key_id == "WASABIEXAMPLEKEYID01"  # type: ignore[union-attr]
    assert sources["Blog"].id == "6359b5ba8147da20e8edfdd5"
    assert sources["Marketing assets"].ignore_changes == ["deployment.default_params"]


def test_example_locations_point_at_each_source_item() -> None:
    loaded = load([EXAMPLE], environ=EXAMPLE_ENV)
    lines = EXAMPLE.read_text().splitlines()
    for spec, location in zip(loaded.state.sources, loaded.locations, strict=True):
        assert location.file == str(EXAMPLE)
        assert lines[location.line - 1][location.column - 1 :] == f"name: {spec.name}"


def test_example_without_resolving_keeps_references_unread() -> None:
    loaded = load([EXAMPLE], resolve=False, environ={})
    assert len(loaded.state.sources) == 5
    # Its required access_key_id is a reference: valid, but not known without reading.
    assert [loc.line for loc in loaded.unresolved] == [
        next(i for i, line in enumerate(EXAMPLE.read_text().splitlines(), 1) if "Archive" in line)
    ]
    secret = loaded.state.sources[0].deployment.s3_secret_key  # type: ignore[union-attr]
    assert isinstance(secret, SecretRef)
    assert not secret.resolved


# --------------------------------------------------------------------------- references


def test_missing_variable_is_located_at_the_reference(tmp_path: Path) -> None:
    path = write(tmp_path, S3_SOURCE)
    assert errors_of(path, resolve=True) == [
        f"{path}:9:22: deployment.s3_secret_key: environment variable S3_SECRET_KEY is not set"
    ]


def test_file_reference_is_relative_to_the_yaml_file(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "s3.txt").write_text("from-a-file\n")
    path = write(tmp_path, S3_SOURCE.replace("{env: S3_SECRET_KEY}", "{file: keys/s3.txt}"))
    spec = load([path], environ={}).state.sources[0]
    secret = spec.deployment.s3_secret_key  # type: ignore[union-attr]
    assert secret.reveal() == "from-a-file"
    assert secret.locator() == {"file": os.path.realpath(tmp_path / "keys" / "s3.txt")}


def test_file_references_of_a_file_read_through_a_pipe_start_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `plan <(generate-sources)` names /dev/fd/63, a pipe with no folder of its own: its
    # `{file:}` paths started in /dev/fd ("No such file"), where a shell's user means the
    # working directory, and had to stay in /proc/<pid>/fd.
    (tmp_path / ".git").mkdir()
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "s3.txt").write_text("from-a-file\n")
    monkeypatch.chdir(tmp_path)
    text = textwrap.dedent(S3_SOURCE.replace("{env: S3_SECRET_KEY}", "{file: keys/s3.txt}"))
    reader, writer = os.pipe()
    try:
        os.write(writer, text.encode())
        os.close(writer)
        spec = load([f"/dev/fd/{reader}"], environ={}).state.sources[0]
    finally:
        os.close(reader)
    secret = spec.deployment.s3_secret_key  # type: ignore[union-attr]
    assert secret.reveal() == "from-a-file"
    assert secret.locator() == {"file": os.path.realpath(tmp_path / "keys" / "s3.txt")}


def test_file_references_of_a_piped_file_stay_in_the_working_directorys_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    (tmp_path / "outside.txt").write_text("not-in-the-repository\n")
    monkeypatch.chdir(tmp_path / "repo")
    text = textwrap.dedent(S3_SOURCE.replace("{env: S3_SECRET_KEY}", "{file: ../outside.txt}"))
    reader, writer = os.pipe()
    try:
        os.write(writer, text.encode())
        os.close(writer)
        with pytest.raises(LoadError) as refused:
            load([f"/dev/fd/{reader}"], environ={})
    finally:
        os.close(reader)
    root = os.path.realpath(tmp_path / "repo")
    assert [error.message for error in refused.value.errors] == [
        f"{{file: ../outside.txt}}: the path leads outside the repository ({root})"
    ]


def test_unreadable_file_reference_is_located(tmp_path: Path) -> None:
    path = write(tmp_path, S3_SOURCE.replace("{env: S3_SECRET_KEY}", "{file: nowhere.txt}"))
    assert errors_of(path, resolve=True) == [
        f"{path}:9:22: deployment.s3_secret_key: cannot read nowhere.txt: No such file or directory"
    ]


def test_non_secret_reference_resolves_to_a_value_that_remembers_its_reference(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, S3_SOURCE.replace("acme-product-images", "{env: BUCKET}"))
    environ = {"BUCKET": "bucket-from-env", "S3_SECRET_KEY": "s3-secret-value"}
    spec = load([path], environ=environ).state.sources[0]
    assert spec.deployment.s3_bucket == "bucket-from-env"  # type: ignore[union-attr]
    (reference,) = spec.deployment.referenced().values()
    assert str(reference) == "{env: BUCKET}"


def test_resolved_non_secret_reference_is_validated_without_its_value(tmp_path: Path) -> None:
    text = S3_SOURCE + "      image_error: {env: FALLBACK}\n"
    path = write(tmp_path, text)
    environ = {"FALLBACK": "not-a-url-canary", "S3_SECRET_KEY": "s3-secret-value"}
    assert errors_of(path, resolve=True, environ=environ) == [
        f"{path}:10:20: deployment.image_error: must be an absolute http(s) URL "
        "(the value of {env: FALLBACK})"
    ]


def test_malformed_reference_in_a_secret_field(tmp_path: Path) -> None:
    path = write(tmp_path, S3_SOURCE.replace("{env: S3_SECRET_KEY}", "{environment: X}"))
    assert errors_of(path) == [
        f"{path}:9:22: deployment.s3_secret_key: must be a reference: {{env: NAME}} or "
        "{file: path}"
    ]


def test_literal_secret_is_rejected_without_its_value(tmp_path: Path) -> None:
    path = write(tmp_path, S3_SOURCE.replace("{env: S3_SECRET_KEY}", "hunter2"))
    (message,) = errors_of(path)
    assert message.startswith(f"{path}:9:22: deployment.s3_secret_key: s3_secret_key is write-only")
    assert "{env: S3_SECRET_KEY}" in message
    assert "hunter2" not in message


def test_secret_constraint_error_never_shows_the_value(tmp_path: Path) -> None:
    text = """\
    version: 1
    sources:
      - name: Partner proxy
        deployment:
          type: webproxy
          imgix_subdomains: [acme-proxy]
          request_handshake: {env: HANDSHAKE}
    """
    path = write(tmp_path, text)
    (message,) = errors_of(path, resolve=True, environ={"HANDSHAKE": "too-short-canary"})
    assert message == (
        f"{path}:7:26: deployment.request_handshake: must be exactly 32 latin-1 characters "
        "(the value has 16)"
    )


def test_reference_fields_are_scalar_non_secret_attributes() -> None:
    names = reference_fields(WebFolderDeployment)
    assert "webfolder_base_url" in names
    assert "robots.txt" in names
    assert "annotation" in names
    # Numbers and booleans are too short to mask, so they never take a reference.
    for excluded in (
        "type",
        "password",
        "request_handshake",
        "imgix_subdomains",
        "default_params",
        "cache_ttl_value",
        "secure_url_enabled",
    ):
        assert excluded not in names


# --------------------------------------------------------------------------- located errors


def test_errors_of_every_source_are_reported_together(tmp_path: Path) -> None:
    path = FIXTURES / "invalid_five_mistakes.yaml"
    messages = errors_of(path)
    expected = [
        ":8:7: deployment.s3_acess_key: unknown key 's3_acess_key' (did you mean 's3_access_key'?)",
        ":10:27: deployment.cache_ttl_behavior: must be 'respect_origin', 'override_origin' or "
        "'enforce_minimum' (got 'forever')",
        ":12:14: enabled: must be a boolean (got 'sometimes')",
        ":16:27: deployment.webfolder_base_url: must be an absolute http(s) URL",
        ":19:13: deployment.type: unknown deployment type 'ftp'",
    ]
    for fragment in expected:
        assert any(fragment in message for message in messages), (fragment, messages)
    assert f"{path}:4:5: deployment: missing required key 's3_access_key'" in messages


def test_missing_key_points_at_the_mapping_that_lacks_it(tmp_path: Path) -> None:
    path = write(tmp_path, S3_SOURCE.replace("      s3_bucket: acme-product-images\n", ""))
    assert errors_of(path) == [f"{path}:4:5: deployment: missing required key 's3_bucket'"]


def test_a_repeated_key_is_the_files_only_error(tmp_path: Path) -> None:
    # Which of the two values was meant is unknown: nothing is validated against either.
    text = S3_SOURCE + "      cache_ttl_value: 60\n      cache_ttl_value: 3600\n"
    path = write(tmp_path, text.replace("Product images", ""))
    assert errors_of(path) == [
        f"{path}:11:7: duplicate key 'cache_ttl_value' (first at line 10, column 7)"
    ]


def test_an_integer_of_a_hundred_digits_is_out_of_range_beside_the_other_mistakes(
    tmp_path: Path,
) -> None:
    # Python reads it (unlike thousands of digits): the file is validated as usual.
    digits = "9" * yaml_tree.MAX_INTEGER_TEXT
    text = S3_SOURCE.replace("Product images", '""') + f"      cache_ttl_value: {digits}\n"
    path = write(tmp_path, text)
    assert errors_of(path) == [
        f"{path}:3:11: name: must not be empty",
        f"{path}:10:24: deployment.cache_ttl_value: must be between -9007199254740991 and "
        "9007199254740991 (JSON's safe range)",
    ]


def test_an_integer_too_long_for_python_to_read_is_placed_in_a_mapping_or_a_list(
    tmp_path: Path,
) -> None:
    # Past 4300 digits Python refuses to read an integer at all: the text alone tells.
    digits = "1" * 5000
    text = (
        "version: 1\nsources:\n  - name: A\n    deployment:\n      type: webfolder\n"
        f"      imgix_subdomains: [a, {digits}]\n      webfolder_base_url: https://a.example/\n"
        f"      cache_ttl_value: {digits}\n"
    )
    path = write(tmp_path, text)
    safe = "must be between -9007199254740991 and 9007199254740991 (JSON's safe range)"
    assert sorted(errors_of(path)) == [
        f"{path}:6:29: deployment.imgix_subdomains[1]: {safe}",
        f"{path}:8:24: deployment.cache_ttl_value: {safe}",
    ]
    # A key may be one too, written as an explicit key (`?`): placed at the key.
    text = (
        "version: 1\nallow_unknown_params: true\nsources:\n  - name: A\n    deployment:\n"
        "      type: webfolder\n      imgix_subdomains: [a]\n"
        "      webfolder_base_url: https://a.example/\n      default_params:\n"
        f"        ? {digits}\n        : x\n"
    )
    path = write(tmp_path, text)
    assert errors_of(path) == [f"{path}:10:11: deployment.default_params: {safe}"]
    # Nodes that aliases share are walked once, and every other node still is.
    source = (
        "  - name: {n}\n    deployment:\n      type: webfolder\n      imgix_subdomains: [{n}]\n"
        "      webfolder_base_url: https://{n}.example/\n      default_params: {params}\n"
    )
    text = "version: 1\nsources:\n" + "".join(
        source.format(n=n, params=params)
        for n, params in [("a", f"{{w: {digits}}}"), ("b", "&p {auto: format}"), ("c", "*p")]
    )
    text += source.format(n="d", params="*p")
    path = write(tmp_path, text)
    assert errors_of(path) == [f"{path}:8:27: deployment.default_params.w: {safe}"]


def test_a_key_repeated_after_a_collection_key_is_found(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nsources: []\n[a, b]: 1\nversion: 1\n")
    assert errors_of(path) == [f"{path}:4:1: duplicate key 'version' (first at line 1, column 1)"]


def test_an_integer_key_and_a_string_key_of_the_same_text_are_two_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nsources: []\n1: a\n!!str 1: b\n")
    messages = errors_of(path)
    assert f"{path}:4:1: 1: unknown key '1'" in messages
    assert not any("duplicate key" in message for message in messages), messages


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "version: 1\nsourcse: []\n",
            "2:1: sourcse: unknown key 'sourcse' (did you mean 'sources'?)",
        ),
        ("version: 2\nsources: []\n", "1:10: version: must be 1 (got 2)"),
        ("sources: []\n", "1:1: missing required key 'version'"),
        ("- 1\n", "1:1: the file must be a mapping with 'version: 1' and 'sources:'"),
        ("", "1:1: the file must be a mapping with 'version: 1' and 'sources:'"),
        ("version: 1\nsources: {}\n", "2:10: sources: must be a list (got a mapping)"),
        ("version: 1\nsources:\n  - 3\n", "3:5: sources[0]: must be a mapping (got an integer)"),
        (
            "version: 1\nsources:\n  - name: x\n",
            "3:5: sources[0]: missing required key 'deployment'",
        ),
        (
            "version: 1\nsources:\n  - name: x\n    deployment: {}\n",
            "4:5: deployment: missing required key 'type' (one of s3, gcs, azure, webfolder, "
            "webproxy, s3_compatible)",
        ),
        ("version: 1\nsources: [\n", "3:1: invalid YAML: while parsing a flow node: expected "),
        ("version: 1\nversion: 1\n", "2:1: duplicate key 'version' (first at line 1, column 1)"),
        ('version: 1\nx: "\x00"\n', "2:5: invalid YAML: the file contains a character"),
        ("\nversion: \x00\n", "2:10: invalid YAML: the file contains a character"),
        ("version: !!int hunter2\n", "1:1: invalid YAML: a value does not match its tag"),
        ("version: !!timestamp hunter2\n", "1:10: invalid YAML: a value does not match its tag"),
        ("version: 1\nsources: &x [*x]\n", "2:10: sources[0]: must be a mapping"),
    ],
)
def test_file_level_errors_are_located(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    messages = errors_of(path)
    assert any(message.startswith(f"{path}:{expected}") for message in messages), messages
    assert not any("hunter2" in message for message in messages)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "version: 1\nsources: [a\n",
            "3:1: invalid YAML: while parsing a flow sequence: expected ',' or ']', "
            "but got '<stream end>'",
        ),
        (
            'version: 1\nsources: "\x01"\n',
            "2:11: invalid YAML: the file contains a character that YAML does not allow",
        ),
        (
            '\nversion: 1\nsources: "\x01"\n',
            "3:11: invalid YAML: the file contains a character that YAML does not allow",
        ),
        (
            "version: 1\nsources: !!int hunter2\n",
            "1:1: invalid YAML: a value does not match its tag",
        ),
        ("version: !!timestamp hunter2\n", "1:10: invalid YAML: a value does not match its tag"),
        (  # deeper than Python's recursion, within the C parser's bound
            "version: 1\nsources: " + "[" * 3000 + "]" * 3000 + "\n",
            "1:1: recursive or too deeply nested YAML is not supported",
        ),
        (  # the same with a directive
            "%YAML 1.2\n---\nversion: 1\nsources: " + "[" * 3000 + "]" * 3000 + "\n",
            "1:1: recursive or too deeply nested YAML is not supported",
        ),
        (  # an unclosed `[`: where it passes MAX_PRECISE_NESTING, before any precise parse
            "version: 1\nsources: " + "[" * 3000 + "]" * 2999 + "\n",
            f"2:{len('sources: ') + MAX_PRECISE_NESTING}: "
            "recursive or too deeply nested YAML is not supported",
        ),
        (  # the same under a directive only the pure-Python parser reads
            "%YAML 1.1\n---\nversion: 1\nsources: " + "[" * 3000 + "]" * 2999 + "\n",
            f"4:{len('sources: ') + MAX_PRECISE_NESTING}: "
            "recursive or too deeply nested YAML is not supported",
        ),
    ],
)
def test_a_file_that_does_not_parse_is_one_error(tmp_path: Path, text: str, expected: str) -> None:
    # Nothing about the shape of a file that has none: no "must be a mapping" beside it.
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    assert errors_of(path) == [f"{path}:{expected}"]


def test_a_refused_file_nested_past_what_its_error_needs_is_too_deep_where_it_gets_so(
    tmp_path: Path,
) -> None:
    # The pure-Python parser, which words the errors of a file the C parser refuses, reads
    # each token in time proportional to the flow levels open around it: 300 kB of items
    # 400 levels deep took 12 s, 16 MiB many minutes. Such a file is refused where
    # it passes MAX_PRECISE_NESTING (the 32nd `[` is collection 33), without that parse.
    items = "a, " * 1000
    path = write(tmp_path, "version: 1\nsources: " + "[" * 400 + items + "]" * 399 + "\n")
    column = len("sources: ") + MAX_PRECISE_NESTING
    assert errors_of(path) == [
        f"{path}:2:{column}: recursive or too deeply nested YAML is not supported"
    ]
    # Not as deep: the error is the syntax error, worded and placed as before.
    shallow = "[" * (MAX_PRECISE_NESTING - 2)
    path = write(tmp_path, "version: 1\nsources: " + shallow + items + "]" * 10 + "\n")
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:3:1: invalid YAML: while parsing a flow sequence")


def test_a_refused_file_over_the_precise_bytes_gets_the_c_parsers_located_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pure-Python parser words a large file's error in minutes and gigabytes (1.5 MB
    # of `[a, a, ...` took 23 s of CPU and 300 MB): past MAX_PRECISE_BYTES the C parser's
    # own error is reported, at the same place. Shown on a bound of 1,000 bytes.
    monkeypatch.setattr(loader, "MAX_PRECISE_BYTES", 1000)
    items = "a, " * 400 + "a"
    c_error = "invalid YAML: while parsing a flow sequence: did not find expected ',' or ']'"
    path = write(tmp_path, "version: 1\nsources: [" + items + "\n")
    assert errors_of(path) == [f"{path}:3:1: {c_error}"]
    # The same under a `%YAML 1.1` directive, which the C parser's tree is not built for.
    path = write(tmp_path, "%YAML 1.1\n---\nversion: 1\nsources: [" + items + "\n")
    assert errors_of(path) == [f"{path}:5:1: {c_error}"]
    # An undefined alias, which only composing finds.
    path = write(tmp_path, "version: 1\nsources: [" + items + ", *nope]\n")
    column = len("sources: [") + len(items) + 3
    assert errors_of(path) == [f"{path}:2:{column}: invalid YAML: found undefined alias"]
    # A valid file under that directive is refused: the parser its version needs is the
    # slow one. Up to the bound it is read by that parser, as before.
    path = write(tmp_path, "\n%YAML 1.1\n---\nversion: 1\nsources: []\n# " + items + "\n")
    assert errors_of(path) == [
        f"{path}:2:1: a file this large is not read under %YAML 1.1 (its parser would take "
        "minutes): remove the directive to read it as YAML 1.2"
    ]
    with monkeypatch.context() as patched:
        patched.setattr(loader, "MAX_PRECISE_BYTES", 10_000)
        assert load([path], resolve=False).state.sources == []
    # Up to the bound, the pure-Python parser's words, as before.
    monkeypatch.setattr(loader, "MAX_PRECISE_BYTES", 10_000)
    path = write(tmp_path, "version: 1\nsources: [" + items + "\n")
    pure_error = "invalid YAML: while parsing a flow sequence: expected ',' or ']', but got"
    assert errors_of(path) == [f"{path}:3:1: {pure_error} '<stream end>'"]


def test_a_variable_that_is_not_utf8_is_a_located_error_without_its_bytes(
    tmp_path: Path,
) -> None:
    # Python keeps such bytes as lone surrogates: the fingerprint of the secret was an
    # internal error.
    path = write(tmp_path, S3_SOURCE)
    environ = {"S3_SECRET_KEY": "canary-\udcff\udcfe-secret"}
    (error,) = errors_of(path, resolve=True, environ=environ)
    assert error.endswith(
        "deployment.s3_secret_key: environment variable S3_SECRET_KEY is not readable as UTF-8 text"
    )
    assert "canary" not in error


def test_a_file_whose_mapping_holds_itself_is_one_error(tmp_path: Path) -> None:
    # Valid but for the recursion: it must not load as a desired state of no sources.
    path = write(tmp_path, "&root {version: 1, sources: [], loop: *root}\n")
    assert errors_of(path) == [f"{path}:1:1: recursive or too deeply nested YAML is not supported"]


def test_a_reused_anchor_name_loads_without_a_warning(tmp_path: Path) -> None:
    # Well defined (the later anchor wins): nothing for a user to see on stderr.
    text = """\
    version: 1
    x-hosts: &hosts [acme-a]
    x-other: &hosts [acme-b]
    sources:
      - name: A
        deployment: &base
          type: webfolder
          imgix_subdomains: *hosts
          webfolder_base_url: https://origin.example/
      - name: B
        deployment:
          <<: *base
          imgix_subdomains: [acme-c]
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        messages = errors_of(write(tmp_path, text))
    assert [message.split(": ", 1)[1] for message in messages] == [
        "x-hosts: unknown key 'x-hosts'",
        "x-other: unknown key 'x-other'",
    ]


def test_deployment_keys_are_suggested_from_the_type(tmp_path: Path) -> None:
    path = write(tmp_path, S3_SOURCE + "      robots_txt: origin\n")
    assert errors_of(path) == [
        f"{path}:10:7: deployment.robots_txt: unknown key 'robots_txt' (did you mean 'robots.txt'?)"
    ]


def test_model_level_errors_point_at_the_key_they_concern(tmp_path: Path) -> None:
    text = S3_SOURCE.replace("[acme-products]", "[acme-products, acme-products]")
    text += "    ignore_changes: [deployment.nope]\n"
    path = write(tmp_path, text)
    first, second = errors_of(path)
    assert first == (
        f"{path}:6:25: deployment.imgix_subdomains: imgix_subdomains lists acme-products more "
        "than once"
    )
    assert second.startswith(f"{path}:10:21: ignore_changes: ignore_changes names deployment.nope")


def test_unreadable_paths_are_located_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    assert errors_of(missing, tmp_path) == [
        f"{missing}:1:1: cannot read the file: No such file or directory",
        f"{tmp_path}:1:1: cannot read the file: Is a directory",
    ]


def test_non_utf8_file_points_at_the_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_bytes(b"version: 1\nsources: []\n# caf\xe9\n")
    assert errors_of(path) == [f"{path}:3:6: the file is not valid UTF-8"]


@pytest.mark.parametrize(
    ("text", "where"),
    [(b"version: 1\nsources: \xff\n", "2:10"), (b"version: 1\n\xff\n", "2:1"), (b"\xff", "1:1")],
)
def test_non_utf8_file_after_a_byte_order_mark_points_at_the_bad_byte(
    tmp_path: Path, text: bytes, where: str
) -> None:
    # The mark (which editors on Windows write) is not a column of the first line.
    path = tmp_path / "sources.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + text)
    assert errors_of(path) == [f"{path}:{where}: the file is not valid UTF-8"]


# --------------------------------------------------------------------------- across sources


def test_hostname_used_twice_names_both_places() -> None:
    path = FIXTURES / "invalid_shared_hostnames.yaml"
    assert errors_of(path) == [
        f"{path}:12:44: deployment.imgix_subdomains[1]: subdomain 'acme-blog' is also used by "
        f"the source at {path}:6:26 (hostnames are unique across all imgix sources)",
        f"{path}:13:24: deployment.custom_domains[0]: domain 'images.blog.acme.example' is also "
        f"used by the source at {path}:7:24 (hostnames are unique across all imgix sources)",
    ]


def test_duplicate_names_and_ids_across_files(tmp_path: Path) -> None:
    first = write(
        tmp_path,
        S3_SOURCE.replace(
            "    deployment:", "    id: 6359b5ba8147da20e8edfdd5\n    deployment:", 1
        ),
        "a.yaml",
    )
    second = write(
        tmp_path,
        S3_SOURCE.replace("acme-products", "acme-other").replace(
            "    deployment:", "    id: 6359b5ba8147da20e8edfdd5\n    deployment:", 1
        ),
        "b.yaml",
    )
    # Both pinned by id, so the same name is allowed; the same id is not.
    assert errors_of(first, second) == [
        f"{second}:4:9: id: id '6359b5ba8147da20e8edfdd5' is also used by the source at "
        f"{first}:4:9 (two specs cannot manage one live source)",
    ]


def test_several_files_concatenate_in_order(tmp_path: Path) -> None:
    second = write(
        tmp_path,
        S3_SOURCE.replace("Product images", "Other").replace("acme-products", "acme-other"),
        "b.yaml",
    )
    loaded = load([FIXTURES / "valid_minimal.yaml", second], resolve=False)
    assert [spec.name for spec in loaded.state.sources] == ["Minimal", "Other"]
    assert loaded.locations == [
        Location(str(FIXTURES / "valid_minimal.yaml"), 3, 5),
        Location(str(second), 3, 5),
    ]


def test_errors_of_all_files_in_one_run(tmp_path: Path) -> None:
    bad = write(tmp_path, "version: 2\nsources: []\n", "bad.yaml")
    messages = errors_of(bad, FIXTURES / "invalid_cache_ttl.yaml")
    assert [message.split(":")[0] for message in messages] == [
        str(bad),
        str(FIXTURES / "invalid_cache_ttl.yaml"),
    ]


def test_located_error_prints_file_line_column_path_message() -> None:
    error = LocatedError("s.yaml", 14, 7, "deployment.cache_ttl_value", "must be >= 1800")
    assert str(error) == "s.yaml:14:7: deployment.cache_ttl_value: must be >= 1800"
    assert str(LocatedError("s.yaml", 1, 1, "", "bad")) == "s.yaml:1:1: bad"
    assert str(Location("s.yaml", 3, 5).error("name", "x")) == "s.yaml:3:5: name: x"


def test_yaml_merge_keys_and_anchors_load(tmp_path: Path) -> None:
    text = """\
    version: 1
    sources:
      - name: One
        deployment: &base
          type: webfolder
          imgix_subdomains: [acme-one]
          webfolder_base_url: https://origin.acme.example/
      - name: Two
        deployment:
          <<: *base
          imgix_subdomains: [acme-two]
          cache_ttl_value: 60
    """
    path = write(tmp_path, text)
    (message,) = errors_of(path)
    assert message.startswith(f"{path}:12:24: deployment.cache_ttl_value: must be >= 1800")


def test_sources_merging_one_anchor_are_built_without_comparing_mappings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ruamel compares each mapping merging an anchor with every one merged before (hours
    # for 2,000 sources merging 1,000 keys); the loader does not, and leaves ruamel as it
    # found it for other round trips in the process.
    from ruamel.yaml.comments import CommentedMap

    compared: list[object] = []

    def counted(self: CommentedMap, other: object) -> Any:
        compared.append(other)
        return dict.__eq__(self, other)

    monkeypatch.setattr(CommentedMap, "__eq__", counted)
    before = CommentedMap.add_referent
    merging = "".join(
        f"  - name: s{n}\n    deployment:\n      <<: *base\n      imgix_subdomains: [acme-{n}]\n"
        for n in range(3)
    )
    base = (
        "version: 1\nx-base: &base\n  type: webfolder\n"
        "  webfolder_base_url: https://origin.example/\nsources:\n"
    )
    path = write(tmp_path, base + merging)
    errors = errors_of(path)
    assert all("x-base: unknown key" in error for error in errors), errors
    assert compared == []
    assert CommentedMap.add_referent is before


def test_load_error_says_how_many_errors_it_holds(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 2\nsources: {}\n")
    with pytest.raises(LoadError) as caught:
        load([path])
    assert str(caught.value) == "2 error(s) in the desired state"
    assert caught.value.located == caught.value.errors


def test_a_loaded_state_cannot_be_changed() -> None:
    loaded = load([FIXTURES / "valid_minimal.yaml"], resolve=False)
    with pytest.raises(AttributeError):
        loaded.unresolved = []  # type: ignore[misc]


# --------------------------------------------------------------------------- all errors at once

PROXY_SOURCE = """\
version: 1
sources:
  - name: Partner proxy
    deployment:
      type: webproxy
      imgix_subdomains: [acme-proxy]
      secure_url_enabled: false
      cache_ttl_value: 60
"""


def test_web_proxy_secure_urls_are_reported_with_other_mistakes(tmp_path: Path) -> None:
    path = write(tmp_path, PROXY_SOURCE + "      robot.txt: origin\n")
    assert errors_of(path) == [
        f"{path}:7:27: deployment.secure_url_enabled: web proxy sources must have "
        "secure_url_enabled: true",
        f"{path}:8:24: deployment.cache_ttl_value: must be >= 1800 (got 60)",
        f"{path}:9:7: deployment.robot.txt: unknown key 'robot.txt' (did you mean 'robots.txt'?)",
    ]


def test_repeated_hostnames_are_reported_with_other_mistakes(tmp_path: Path) -> None:
    text = S3_SOURCE.replace("[acme-products]", "[acme-products, acme-products]")
    text += "      custom_domains: [a.acme.example, a.acme.example]\n      cache_ttl_value: 60\n"
    path = write(tmp_path, text)
    assert errors_of(path) == [
        f"{path}:6:25: deployment.imgix_subdomains: imgix_subdomains lists acme-products more "
        "than once",
        f"{path}:10:23: deployment.custom_domains: custom_domains lists a.acme.example more "
        "than once",
        f"{path}:11:24: deployment.cache_ttl_value: must be >= 1800 (got 60)",
    ]


def test_hostname_limit_is_reported_with_other_mistakes(tmp_path: Path) -> None:
    names = ", ".join(f"acme-{i}" for i in range(101))
    text = S3_SOURCE.replace("[acme-products]", f"[{names}]") + "      cache_ttl_value: 60\n"
    path = write(tmp_path, text)
    assert errors_of(path) == [
        f"{path}:6:25: deployment.imgix_subdomains: imgix_subdomains and custom_domains may "
        "hold at most 100 names together (got 101)",
        f"{path}:10:24: deployment.cache_ttl_value: must be >= 1800 (got 60)",
    ]


def test_hostname_limit_counts_custom_domains_when_subdomains_are_missing(
    tmp_path: Path,
) -> None:
    domains = ", ".join(f"d{i}.acme.example" for i in range(101))
    text = S3_SOURCE.replace("imgix_subdomains: [acme-products]", f"custom_domains: [{domains}]")
    path = write(tmp_path, text)
    assert errors_of(path) == [
        f"{path}:4:5: deployment: missing required key 'imgix_subdomains'",
        f"{path}:6:23: deployment.custom_domains: imgix_subdomains and custom_domains may hold "
        "at most 100 names together (got 101)",
    ]


def test_ignore_changes_are_checked_with_other_mistakes(tmp_path: Path) -> None:
    text = S3_SOURCE + "      cache_ttl_value: 60\n    ignore_changes: [deployment.nope, name]\n"
    path = write(tmp_path, text)
    assert errors_of(path) == [
        f"{path}:10:24: deployment.cache_ttl_value: must be >= 1800 (got 60)",
        f"{path}:11:21: ignore_changes: ignore_changes names deployment.nope, which is not an "
        "attribute of a s3 source (use name, enabled or deployment.<attribute>)",
    ]


def test_every_unknown_ignore_changes_path_is_named_in_one_error(tmp_path: Path) -> None:
    text = S3_SOURCE + "    ignore_changes: [deployment.nope, name, deployment.gcs_bucket]\n"
    path = write(tmp_path, text)
    assert errors_of(path) == [
        f"{path}:10:21: ignore_changes: ignore_changes names deployment.nope, "
        "deployment.gcs_bucket, which is not an attribute of a s3 source "
        "(use name, enabled or deployment.<attribute>)",
    ]


def test_ignore_changes_of_an_unknown_type_wait_for_the_type(tmp_path: Path) -> None:
    text = S3_SOURCE.replace("type: s3", "type: ftp") + "    ignore_changes: [deployment.nope]\n"
    path = write(tmp_path, text)
    (message,) = errors_of(path)
    assert "unknown deployment type 'ftp'" in message


# --------------------------------------------------------------------------- hostile input


def test_yaml_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    path = FIXTURES / "invalid_billion_laughs.yaml"
    assert errors_of(path) == [
        f"{path}:9:9: laugh6: the file expands to more than {MAX_VALUES} values (YAML aliases?)"
    ]
    laughs = [line for line in path.read_text().splitlines() if line.startswith("laugh")]
    inside = "version: 1\nsources:\n  - name: x\n    deployment:\n"
    inside += "".join(f"      {line}\n" for line in laughs)
    assert errors_of(write(tmp_path, inside)) == [
        f"{tmp_path / 'sources.yaml'}:3:5: sources[0]: the file expands to more than "
        f"{MAX_VALUES} values (YAML aliases?)"
    ]


def test_values_written_out_never_count_against_the_alias_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loader, "MAX_VALUES", 40)
    source = (
        "  - {anchor}name: Source {n}\n"
        "    deployment:\n"
        "      type: webfolder\n"
        "      imgix_subdomains: [acme-{n}]\n"
        "      webfolder_base_url: https://origin.acme.example/\n"
        "      cache_ttl_value: {ttl}\n"
    )
    written = "version: 1\nsources:\n" + "".join(
        source.format(anchor="", n=n, ttl=60 if n == 9 else 3600) for n in range(10)
    )
    # Ten sources written out hold more than 40 values: only the real mistake is reported,
    # by the precise path that a file with an error takes.
    assert errors_of(write(tmp_path, written)) == [
        f"{tmp_path / 'sources.yaml'}:62:24: deployment.cache_ttl_value: must be >= 1800 (got 60)"
    ]
    # One small alias sends the file down the precise path, the one that counts values:
    # still only the alias's copy counts, not the ten sources written out.
    first, second, rest = written.split("      cache_ttl_value: 3600\n", 2)
    aliased = (
        f"{first}      default_params: &params {{auto: format}}\n      cache_ttl_value: 3600\n"
        f"{second}      default_params: *params\n      cache_ttl_value: 3600\n{rest}"
    )
    assert errors_of(write(tmp_path, aliased)) == [
        f"{tmp_path / 'sources.yaml'}:64:24: deployment.cache_ttl_value: must be >= 1800 (got 60)"
    ]
    shared = "version: 1\nsources:\n" + source.format(anchor="&one\n    ", n=0, ttl=3600)
    shared += "  - *one\n" * 10
    (message,) = errors_of(write(tmp_path, shared))
    assert "the file expands to more than 40 values (YAML aliases?)" in message


def test_a_file_expanding_to_exactly_the_alias_budget_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The alias copies `{auto: format}`: two values (its key and its value) past the budget.
    text = (
        "version: 1\nsources:\n"
        "  - name: A\n    deployment:\n      type: webfolder\n      imgix_subdomains: [a]\n"
        "      webfolder_base_url: https://a.example/\n      default_params: &p {auto: format}\n"
        "  - name: B\n    deployment:\n      type: webfolder\n      imgix_subdomains: [b]\n"
        "      webfolder_base_url: https://b.example/\n      default_params: *p\n"
    )
    path = write(tmp_path, text)
    monkeypatch.setattr(loader, "MAX_VALUES", 2)
    assert [source.name for source in load([path], environ={}).state.sources] == ["A", "B"]
    monkeypatch.setattr(loader, "MAX_VALUES", 1)
    assert errors_of(path) == [
        f"{path}:9:5: sources[1]: the file expands to more than 1 values (YAML aliases?)"
    ]


MERGED = (
    "version: 1\nsources:\n"
    "  - name: A\n    enabled: &off false\n    deployment:\n      type: webfolder\n"
    "      imgix_subdomains: [a]\n      webfolder_base_url: https://a.example/\n"
    "      default_params: &p {auto: format}\n"
    "  - name: B\n    enabled: *off\n    deployment:\n      type: webfolder\n"
    "      imgix_subdomains: [b]\n      webfolder_base_url: https://b.example/\n"
    "      default_params: {<<: *p, w: 100}\n"
)


def test_keys_a_merge_brings_in_count_against_the_alias_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `<<: *p` copies `auto: format` into B: two values, counted like an alias's copy.
    path = write(tmp_path, MERGED)
    monkeypatch.setattr(loader, "MAX_VALUES", 2)
    assert load([path], environ={}).state.sources[1].deployment.default_params == {
        "auto": "format",
        "w": 100,
    }
    monkeypatch.setattr(loader, "MAX_VALUES", 1)
    assert errors_of(path) == [
        f"{path}:10:5: sources[1]: the file expands to more than 1 values (YAML aliases?)"
    ]


def test_a_key_yaml_reads_as_a_date_is_reported_as_a_key_that_is_not_text(
    tmp_path: Path,
) -> None:
    text = MERGED.replace("{<<: *p, w: 100}", "{<<: *p, 2024-01-01: x}")
    path = write(tmp_path, text)
    assert errors_of(path) == [f"{path}:16:32: deployment.default_params: keys must be strings"]


def test_a_repeated_key_is_found_beside_a_mapping_two_aliases_share(tmp_path: Path) -> None:
    # B and C share A's `default_params`: the second visit of that node skips it, and
    # still every other mapping (A's own, with its repeated key) is checked.
    source = (
        "  - name: {n}\n    deployment:\n      type: webfolder\n      imgix_subdomains: [{n}]\n"
        "      webfolder_base_url: https://{n}.example/\n      default_params: {params}\n"
    )
    text = "version: 1\nsources:\n" + source.format(n="a", params="&p {auto: format}")
    text = text.replace("  - name: a\n", "  - name: a\n    name: a2\n")
    text += source.format(n="b", params="*p") + source.format(n="c", params="*p")
    path = write(tmp_path, text)
    assert errors_of(path) == [f"{path}:4:5: duplicate key 'name' (first at line 3, column 5)"]


def test_a_number_at_either_end_of_jsons_safe_range_is_kept_and_one_past_it_is_not(
    tmp_path: Path,
) -> None:
    text = (
        "version: 1\nallow_unknown_params: true\nsources:\n  - name: A\n    deployment:\n"
        "      type: webfolder\n      imgix_subdomains: [a]\n"
        "      webfolder_base_url: https://a.example/\n"
        "      default_params: {x-big: 9007199254740991, x-small: -9007199254740991}\n"
    )
    (source,) = load([write(tmp_path, text)], environ={}).state.sources
    assert source.deployment.default_params == {
        "x-big": 9007199254740991,
        "x-small": -9007199254740991,
    }
    path = write(tmp_path, text.replace("-9007199254740991}", "-9007199254740992}"))
    assert errors_of(path) == [
        f"{path}:9:58: deployment.default_params.x-small: must be between -9007199254740991 "
        "and 9007199254740991 (JSON's safe range)"
    ]


@pytest.mark.parametrize(
    "path",
    [EXAMPLE, FIXTURES / "valid_minimal.yaml", FIXTURES / "valid_duplicate_names_pinned.yaml"],
)
def test_the_fast_path_loads_what_the_precise_path_loads(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = load([path], environ=EXAMPLE_ENV)

    def no_fast_parse(text: str) -> None:
        raise AssertionError("the precise path only")

    monkeypatch.setattr(yaml_tree, "fast_compose", no_fast_parse)
    precise = load([path], environ=EXAMPLE_ENV)
    assert fast.locations == precise.locations
    assert fast.unresolved == precise.unresolved
    assert fast.state.model_dump() == precise.state.model_dump()
    assert [s.deployment.referenced() for s in fast.state.sources] == [
        s.deployment.referenced() for s in precise.state.sources
    ]


@pytest.mark.parametrize("options", [{"resolve": False}, {"secrets_optional": True}])
def test_unread_references_keep_the_fast_path(
    options: dict[str, bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The example holds references, a required attribute among them: left unread (or a
    # secret missing in a plan from a fork), they are no error, so the file needs
    # neither the round-trip parse nor a second pass.
    def forbidden(*args: object) -> None:
        raise AssertionError("this path must not run")

    with monkeypatch.context() as patched:
        patched.setattr(loader._DesiredFile, "_parse", forbidden)
        fast = load([EXAMPLE], environ={}, **options)
    with monkeypatch.context() as patched:
        patched.setattr(yaml_tree, "fast_compose", forbidden)
        precise = load([EXAMPLE], environ={}, **options)
    # --no-resolve leaves out the source whose required access key is a reference.
    assert len(fast.unresolved) == (0 if options.get("secrets_optional") else 1)
    assert fast.locations == precise.locations
    assert fast.unresolved == precise.unresolved
    assert fast.state.model_dump() == precise.state.model_dump()


UNUSUAL_BUT_VALID = """\
%TAG !e! tag:example.com,2000:
---
# Flow and block styles, quoted and explicit keys, a block scalar, comments.
version: 1
sources:
  - {name: "Flow One", deployment: {type: webfolder, imgix_subdomains: [flow-one],
      webfolder_base_url: 'https://origin.acme.example/one/', cache_ttl_value: 3_600}}
  - "name": Block Two  # a comment after a value
    ? deployment
    : type: webfolder
      imgix_subdomains:
        - block-two
      webfolder_base_url: https://origin.acme.example/two/
      annotation: |
        Kept by the team.
        Two lines.
      default_params: {auto: format, q: 75, fit: "crop"}
    enabled: false
"""


def test_an_unusual_valid_file_takes_the_fast_path_and_loads_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, UNUSUAL_BUT_VALID)

    def forbidden(*args: object) -> None:
        raise AssertionError("this path must not run")

    with monkeypatch.context() as patched:
        patched.setattr(loader._DesiredFile, "_parse", forbidden)
        fast = load([path], environ={})
    with monkeypatch.context() as patched:
        patched.setattr(yaml_tree, "fast_compose", forbidden)
        precise = load([path], environ={})
    assert [str(place) for place in fast.locations] == [f"{path}:6:5", f"{path}:8:5"]
    assert fast.locations == precise.locations
    assert fast.state.model_dump() == precise.state.model_dump()
    assert fast.state.sources[0].deployment.cache_ttl_value == 3600


def test_aliases_within_the_budget_load(tmp_path: Path) -> None:
    text = """\
    version: 1
    sources:
      - name: One
        deployment:
          type: webfolder
          imgix_subdomains: [acme-one]
          webfolder_base_url: https://origin.acme.example/
          default_params: &params {auto: format, q: 75}
      - name: Two
        deployment:
          type: webfolder
          imgix_subdomains: [acme-two]
          webfolder_base_url: https://origin.acme.example/
          default_params: *params
    """
    loaded = load([write(tmp_path, text)], environ={})
    assert [s.deployment.default_params for s in loaded.state.sources] == [
        {"auto": "format", "q": 75}
    ] * 2


def test_referenced_file_larger_than_the_limit_is_refused(tmp_path: Path) -> None:
    (tmp_path / "huge.txt").write_text("x" * (MAX_REFERENCED_BYTES + 1))
    path = write(tmp_path, S3_SOURCE.replace("{env: S3_SECRET_KEY}", "{file: huge.txt}"))
    assert errors_of(path, resolve=True) == [
        f"{path}:9:22: deployment.s3_secret_key: cannot read huge.txt: larger than 64 KiB"
    ]
    (tmp_path / "huge.txt").write_text("x" * MAX_REFERENCED_BYTES)
    assert load([path], environ={}).state.sources[0].deployment.s3_secret_key.resolved  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("fifo", "cannot read fifo: not a regular file"),
        ("/dev/zero", "{file: /dev/zero}: the path must be relative"),
    ],
)
def test_referenced_file_must_be_a_regular_file(tmp_path: Path, target: str, problem: str) -> None:
    os.mkfifo(tmp_path / "fifo")  # opening it for reading would wait for a writer
    path = write(tmp_path, S3_SOURCE.replace("{env: S3_SECRET_KEY}", f"{{file: {target}}}"))
    assert errors_of(path, resolve=True) == [f"{path}:9:22: deployment.s3_secret_key: {problem}"]


def test_desired_state_file_is_read_with_a_limit(tmp_path: Path) -> None:
    assert errors_of(Path("/dev/zero")) == [
        "/dev/zero:1:1: cannot read the file: larger than 16 MiB"
    ]


def test_bytes_read_before_are_loaded_instead_of_reading_the_path_again(tmp_path: Path) -> None:
    # A pipe (`validate <(generate)`) cannot be read twice: its bytes are handed over.
    pipe = tmp_path / "read-once.yaml"  # gone by now, as a pipe's content is
    loaded = load([pipe], resolve=False, read_already={str(pipe): S3_SOURCE.encode()})
    assert [spec.name for spec in loaded.state.sources] == ["Product images"]
    too_big = {str(pipe): b"#" * (16 * 1024 * 1024 + 1)}
    with pytest.raises(LoadError) as caught:
        load([pipe], resolve=False, read_already=too_big)
    assert [str(e) for e in caught.value.errors] == [
        f"{pipe}:1:1: cannot read the file: larger than 16 MiB"
    ]


# --------------------------------------------------------------------------- scalar types


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "    enabled: 'yes'\n",
            "10:14: enabled: must be a boolean (got 'yes': write true or false)",
        ),
        (
            "    enabled: off\n",
            "10:14: enabled: must be a boolean (got 'off': write true or false)",
        ),
        (
            "    enabled: '0'\n",
            "10:14: enabled: must be a boolean (got '0')",
        ),
        (
            "    enabled: 'true'\n",
            "10:14: enabled: must be a boolean (got the string 'true': write it without quotes)",
        ),
        (
            "      cache_ttl_value: '86400'\n",
            "10:24: deployment.cache_ttl_value: must be an integer (got the string '86400': "
            "write it without quotes)",
        ),
        (
            "      cache_ttl_value: true\n",
            "10:24: deployment.cache_ttl_value: must be an integer (got true)",
        ),
    ],
)
def test_scalars_are_not_coerced_from_strings(tmp_path: Path, line: str, expected: str) -> None:
    path = write(tmp_path, S3_SOURCE + line)
    assert errors_of(path) == [f"{path}:{expected}"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: true\nsources: []\n", "1:10: version: must be 1 (got true)"),
        ("version: 1.0\nsources: []\n", "1:10: version: must be 1 (got 1.0)"),
        (
            "version: '1'\nsources: []\n",
            "1:10: version: must be 1 (got the string '1': write it without quotes)",
        ),
        ("version: 1\n", "1:1: missing required key 'sources'"),
    ],
)
def test_version_and_sources_are_required_as_written(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    assert errors_of(path) == [f"{path}:{expected}"]
    assert load([write(tmp_path, "version: 1\nsources: []\n")]).state.sources == []


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("      cache_ttl_value: {env: TTL}\n", "10:24: deployment.cache_ttl_value"),
        ("      secure_url_enabled: {file: flag.txt}\n", "10:27: deployment.secure_url_enabled"),
    ],
)
def test_numbers_and_booleans_take_no_reference(tmp_path: Path, line: str, expected: str) -> None:
    # A referenced value is never shown, and "86400" or "true" cannot be masked.
    (tmp_path / "flag.txt").write_text("true-canary\n")
    path = write(tmp_path, S3_SOURCE + line)
    environ = {"TTL": "86400-canary", "S3_SECRET_KEY": "s3-secret-value"}
    (message,) = errors_of(path, resolve=True, environ=environ)
    assert message.startswith(f"{path}:{expected}: ")
    assert "cannot take a reference" in message
    assert "canary" not in message


def test_missing_variable_names_no_command(tmp_path: Path) -> None:
    # The same error is printed by plan and apply, where a validate hint would be wrong.
    path = write(tmp_path, S3_SOURCE)
    with pytest.raises(LoadError) as caught:
        load([path], environ={})
    (error,) = caught.value.errors
    assert error.message == "environment variable S3_SECRET_KEY is not set"
    assert error.unread_reference


def test_summary_suggests_no_resolve_only_for_unread_references() -> None:
    unread = LocatedError("s.yaml", 9, 22, "x", "environment variable X is not set", True)
    other = LocatedError("s.yaml", 10, 3, "y", "must be >= 1800")
    assert summarize([other], ["s.yaml"]) == "1 error in 1 of 1 file"
    assert summarize([other, unread], ["s.yaml", "t.yaml"]) == (
        "2 errors in 1 of 2 files (validate --no-resolve checks the files without reading "
        "references)"
    )
    # plan and apply must read them: the way out is to provide them.
    assert summarize([unread], ["s.yaml"], command="plan") == (
        "1 error in 1 of 1 file (set each variable and create each file these references name)"
    )


# --------------------------------------------------------------------------- names and files


PINNED = "    id: {id}\n    deployment:"
FIRST_ID, SECOND_ID = "6359b5ba8147da20e8edfdd5", "6359b5ba8147da20e8edfdd6"


def test_same_name_is_allowed_when_both_sources_are_pinned(tmp_path: Path) -> None:
    path = FIXTURES / "valid_duplicate_names_pinned.yaml"
    loaded = load([path], resolve=False)
    assert [(s.name, s.id) for s in loaded.state.sources] == [
        ("Product images", FIRST_ID),
        ("Product images", SECOND_ID),
    ]


@pytest.mark.parametrize("pinned", ["first", "second", "neither"])
def test_same_name_needs_an_id_on_both_sources(tmp_path: Path, pinned: str) -> None:
    first = S3_SOURCE
    second = S3_SOURCE.replace("acme-products", "acme-other")
    if pinned == "first":
        first = first.replace("    deployment:", PINNED.format(id=FIRST_ID), 1)
    if pinned == "second":
        second = second.replace("    deployment:", PINNED.format(id=SECOND_ID), 1)
    a, b = write(tmp_path, first, "a.yaml"), write(tmp_path, second, "b.yaml")
    assert errors_of(a, b) == [
        f"{b}:3:11: name: name 'Product images' is also used by the source at {a}:3:11 "
        "(plans and --target identify sources by name: add an id to both to tell them apart)"
    ]


def test_pinned_sources_still_need_distinct_ids_and_hostnames(tmp_path: Path) -> None:
    first = S3_SOURCE.replace("    deployment:", PINNED.format(id=FIRST_ID), 1)
    a, b = write(tmp_path, first, "a.yaml"), write(tmp_path, first, "b.yaml")
    assert errors_of(a, b) == [
        f"{b}:4:9: id: id '{FIRST_ID}' is also used by the source at {a}:4:9 (two specs "
        "cannot manage one live source)",
        f"{b}:7:26: deployment.imgix_subdomains[0]: subdomain 'acme-products' is also used by "
        f"the source at {a}:7:26 (hostnames are unique across all imgix sources)",
    ]


def test_a_file_given_twice_is_loaded_once(tmp_path: Path) -> None:
    path = write(tmp_path, S3_SOURCE)
    os.symlink(path, tmp_path / "link.yaml")
    again = tmp_path / ".." / tmp_path.name / "sources.yaml"
    loaded = load(
        [path, again, tmp_path / "link.yaml"], environ={"S3_SECRET_KEY": "s3-secret-value"}
    )
    assert [
        (s.name, str(loc)) for s, loc in zip(loaded.state.sources, loaded.locations, strict=True)
    ] == [("Product images", f"{path}:3:5")]
    # An invalid file given twice reports each error once.
    bad = write(tmp_path, S3_SOURCE + "      cache_ttl_value: 60\n", "bad.yaml")
    assert errors_of(bad, bad) == [
        f"{bad}:10:24: deployment.cache_ttl_value: must be >= 1800 (got 60)"
    ]


# --------------------------------------------------------------------------- owner and safety


def test_owner_and_safety_of_the_files_reach_the_desired_state(tmp_path: Path) -> None:
    first = write(tmp_path, S3_SOURCE.replace("sources:", "owner: acme/images\nsources:"), "a.yaml")
    second = write(tmp_path, "version: 1\nsafety: {max_risky_share: 0.5}\nsources: []\n", "b.yaml")
    state = load([first, second], resolve=False, secrets_optional=True).state
    assert state.owner == "acme/images"
    assert (state.safety.max_risky_share, state.safety.min_risky_count) == (0.5, 3)


def test_files_planned_together_must_name_one_owner(tmp_path: Path) -> None:
    first = write(tmp_path, "version: 1\nowner: team-a\nsources: []\n", "a.yaml")
    second = write(tmp_path, "version: 1\nowner: team-b\nsources: []\n", "b.yaml")
    assert errors_of(first, second) == [
        f"{second}:2:8: owner: differs from owner in {first}: files planned together "
        "share one owner"
    ]


def test_files_planned_together_may_state_the_same_owner_and_safety(tmp_path: Path) -> None:
    settings = "version: 1\nowner: team-a\nsafety: {min_risky_count: 5}\nsources: []\n"
    first = write(tmp_path, settings, "a.yaml")
    second = write(tmp_path, settings, "b.yaml")
    state = load([first, second], resolve=False).state
    assert (state.owner, state.safety.min_risky_count) == ("team-a", 5)


def test_owner_and_safety_hold_when_a_source_waits_for_an_unread_reference(
    tmp_path: Path,
) -> None:
    # --no-resolve leaves the source out (its bucket is unread), not the file's settings:
    # they still reach the state and are still compared with the other files'.
    text = S3_SOURCE.replace("s3_bucket: acme-product-images", "s3_bucket: {env: BUCKET}")
    settings = "owner: team-a\nsafety: {min_risky_count: 5}\nsources:"
    path = write(tmp_path, text.replace("sources:", settings))
    loaded = load([path], resolve=False)
    assert (loaded.state.owner, loaded.state.safety.min_risky_count) == ("team-a", 5)
    assert (loaded.state.sources, loaded.unresolved) == ([], [Location(str(path), 5, 5)])
    other = write(tmp_path, "version: 1\nowner: team-b\nsources: []\n", "b.yaml")
    assert errors_of(path, other) == [
        f"{other}:2:8: owner: differs from owner in {path}: files planned together share one owner"
    ]


@pytest.mark.parametrize("version", [".inf", "9007199254740993"])
def test_a_version_out_of_jsons_range_beside_settings_is_one_error(
    tmp_path: Path, version: str
) -> None:
    path = write(tmp_path, f"version: {version}\nowner: team-a\nsources: []\n")
    (message,) = errors_of(path)
    assert message.startswith(f"{path}:1:10: version: must be "), message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("owner: has space", "owner: must be one word"),
        ("safety: {max_risky_share: 1.5}", "safety.max_risky_share: "),
        ("safety: {min_risky_count: 0}", "safety.min_risky_count: "),
        ("safety: {max_risky: 1}", "safety.max_risky: unknown key"),
    ],
)
def test_bad_owner_or_safety_is_a_located_error(tmp_path: Path, line: str, expected: str) -> None:
    path = write(tmp_path, f"version: 1\n{line}\nsources: []\n")
    (message,) = errors_of(path)
    assert message.startswith(f"{path}:2:"), message
    assert expected in message, message


def test_mode_is_one_of_three(tmp_path: Path) -> None:
    text = S3_SOURCE.replace("    deployment:", "    mode: readonly\n    deployment:")
    (message,) = errors_of(write(tmp_path, text))
    assert message.endswith("mode: must be 'manage', 'observe' or 'protect' (got 'readonly')")


# --------------------------------------------------------------------------- default_params


def test_default_params_of_the_example_validate() -> None:
    loaded = load([EXAMPLE], resolve=False)
    params = [source.deployment.default_params for source in loaded.state.sources]
    assert {"auto": "format,compress", "q": 75} in params


def test_default_params_errors_are_located_and_suggest_a_fix(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        S3_SOURCE
        + """\
      default_params:
        fm: wepb
        atuo: format
      cache_ttl_value: 60
""",
    )
    assert errors_of(path) == [
        f"{path}:11:13: deployment.default_params.fm: must be one of gif, jpg, jp2, json, jxr, "
        "pjpg, mp4, png, png8, png32, webp, webm, blurhash, avif, spritesheet "
        "(got 'wepb'; did you mean 'webp'?)",
        f"{path}:12:9: deployment.default_params.atuo: unknown imgix rendering parameter "
        "'atuo' (did you mean 'auto'?)",
        f"{path}:13:24: deployment.cache_ttl_value: must be >= 1800 (got 60)",
    ]


def test_default_params_in_a_flow_mapping_are_located(tmp_path: Path) -> None:
    path = write(tmp_path, S3_SOURCE + "      default_params: {w: 9000, q: 75}\n")
    assert errors_of(path) == [
        f"{path}:10:27: deployment.default_params.w: must be an integer from 2 to 8192; "
        "or a fraction from 0 to 1 (got 9000)"
    ]


def test_a_param_value_of_no_allowed_type_is_one_error(tmp_path: Path) -> None:
    # The value fails as a string, an integer, a number and a boolean alike: one message.
    path = write(tmp_path, S3_SOURCE + "      default_params: {q: [75], w: {a: 1}}\n")
    assert errors_of(path) == [
        f"{path}:10:24: deployment.default_params.q: must be a string, a number or a "
        "boolean (got a list)",
        f"{path}:10:33: deployment.default_params.w: must be a string, a number or a "
        "boolean (got a mapping)",
    ]


def test_unknown_params_are_allowed_per_file(tmp_path: Path) -> None:
    text = S3_SOURCE.replace("version: 1\n", "version: 1\nallow_unknown_params: true\n")
    path = write(tmp_path, text + "      default_params: {newer-param: 3, fm: webp}\n")
    (source,) = load([path], resolve=False).state.sources
    assert source.deployment.default_params == {"newer-param": 3, "fm": "webp"}
    # Only in that file: another file given with it still refuses unknown names.
    other = write(
        tmp_path,
        S3_SOURCE.replace("acme-products", "acme-other").replace("Product", "Other")
        + "      default_params: {newer-param: 3}\n",
        "other.yaml",
    )
    (error,) = errors_of(path, other)
    assert error.startswith(f"{other}:10:24: deployment.default_params.newer-param: unknown")


def test_allowing_unknown_params_still_checks_known_values(tmp_path: Path) -> None:
    text = S3_SOURCE.replace("version: 1\n", "version: 1\nallow_unknown_params: true\n")
    path = write(tmp_path, text + "      default_params: {newer-param: 3, fm: wepb}\n")
    (error,) = errors_of(path)
    assert "deployment.default_params.fm: must be one of" in error


def test_allow_unknown_params_must_be_a_boolean(tmp_path: Path) -> None:
    text = S3_SOURCE.replace("version: 1\n", 'version: 1\nallow_unknown_params: "yes"\n')
    path = write(tmp_path, text + "      default_params: {newer-param: 3}\n")
    errors = errors_of(path)
    assert errors[0] == (
        f"{path}:2:23: allow_unknown_params: must be a boolean (got 'yes': write true or false)"
    )
    assert len(errors) == 2  # and the unknown name, since nothing allowed it


def test_sources_kept_beside_unread_references_honour_allow_unknown_params(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        """\
        version: 1
        allow_unknown_params: true
        sources:
          - name: Unread
            deployment:
              type: s3
              imgix_subdomains: [acme-unread]
              s3_bucket: {env: BUCKET}
              s3_access_key: AKIAIOSFODNN7EXAMPLE
              s3_secret_key: {env: S3_SECRET_KEY}
          - name: Newer
            deployment:
              type: webfolder
              imgix_subdomains: [acme-newer]
              webfolder_base_url: https://origin.example/
              default_params: {newer-param: 1}
        """,
    )
    loaded = load([path], resolve=False)
    assert [s.name for s in loaded.state.sources] == ["Newer"]
    assert [location.line for location in loaded.unresolved] == [4]


def _real_depth(text: str) -> int:
    from ruamel.yaml import YAML
    from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent

    depth = deepest = 0
    for event in YAML(typ="safe").parse(text):
        if isinstance(event, CollectionStartEvent):
            depth += 1
            deepest = max(deepest, depth)
        elif isinstance(event, CollectionEndEvent):
            depth -= 1
    return deepest


NESTINGS = {
    # Brackets a line balances are the usual shape, and cost nothing.
    "balanced lines": ("- [a, {q: 75}]\n" * 6000, 40),
    # A `]` in a comment, a string, a block scalar or a plain key closes nothing.
    "closers in comments": ("[ # ]]\n" * 6000 + "1" + "]" * 6000, 6000),
    "closers in strings": ('[ "s\n  ]]\n  ", ' * 6000 + "1" + "]" * 6000, 6000),
    "closers in block scalars": ("- - |\n    ]]\n  - [\n" * 6000, 2),
    "closers in plain keys": ("- x]] : [[[[\n" * 6000, 5),
    "carriage returns": ("a: [b]\r  c: [[[\r" * 3000, 4),
    # Past the quick count: each line's own opener counts, the first line's too.
    "one opener a line": ("[\n" * 10_001, 10_001),
    # A line that seems to balance, but for a comment or a string.
    "a closer in a comment on its line": ("[ # ]\n" * 10_001, 10_001),
    "a closer in a string on its line": ('[ "]",\n' * 10_001, 10_001),
    "a closer in a single-quoted string on its line": ("[ ']',\n" * 10_001, 10_001),
    # A line that closes before it opens may still end deeper than it starts.
    "a closer before the openers on its line": ("[[\n" + "], [[\n" * 6000 + "]\n" * 6002, 6002),
    # The least a block level takes: one line, one column.
    "an empty entry": ("-", 1),
}


def test_more_collections_than_the_nesting_bound_side_by_side_are_not_deep(
    tmp_path: Path,
) -> None:
    side_by_side = "[" + "[], " * (MAX_C_NESTING + 1) + "]"
    path = write(tmp_path, f"version: 1\nsources: []\nx: {side_by_side}\n")
    assert errors_of(path) == [f"{path}:3:1: x: unknown key 'x'"]


def test_nesting_past_the_bound_points_at_the_first_collection_past_it(tmp_path: Path) -> None:
    # The file's mapping is one level: the bound is passed at the MAX_C_NESTING-th `[`;
    # collections closed before it count for nothing.
    brackets = MAX_C_NESTING + 2
    deep = "[" * brackets + "]" * brackets
    path = write(tmp_path, f"version: 1\nx: [[], {{}}]\nsources: {deep}\n")
    assert errors_of(path) == [
        f"{path}:3:{len('sources: ') + MAX_C_NESTING}: recursive or too deeply nested YAML "
        "is not supported"
    ]


@pytest.mark.parametrize(("text", "depth"), NESTINGS.values(), ids=NESTINGS.keys())
def test_the_nesting_bound_is_never_below_the_real_depth(text: str, depth: int) -> None:
    with contextlib.suppress(Exception):  # an invalid text nests as far as it was read
        depth = _real_depth(text)
    assert nesting_bound(text) >= depth
    # Files of thousands of one-line lists stay well under the bound that matters.
    if text.startswith("- [a"):
        assert nesting_bound(text) < MAX_C_NESTING


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(alphabet="0123456789-+._:eExXbBoOTtZz ~nNulFfaAsSrRyY\t", max_size=30),
        st.from_regex(
            r"\A[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt ][0-9]{1,2}:[0-9]{2}:[0-9]{2}(\.[0-9]*)?)?\Z"
        ),
        st.from_regex(
            r"\A[-+]?(0b[01_]+|0o[0-7_]+|[0-9_]+|0x[0-9a-fA-F_]+|[0-9]*\.[0-9]*([eE][-+]?[0-9]+)?)\Z"
        ),
        st.text(alphabet="0123456789\u0663\u00b2", min_size=1, max_size=5),  # non-ASCII digits
        st.text(max_size=12),
    )
)
def test_the_fast_resolver_gives_ruamels_yaml_1_2_tag_for_every_plain_scalar(value: str) -> None:
    # Its shortcuts (ASCII digits alone, no timestamp without a `-` fifth) spare compiling
    # patterns; the tags must stay exactly ruamel's.
    from ruamel.yaml.nodes import ScalarNode
    from ruamel.yaml.resolver import VersionedResolver

    fast = yaml_tree.OneVersionResolver(version=(1, 2))
    ruamel = VersionedResolver(version=(1, 2))
    got = fast.resolve(ScalarNode, value, (True, False))
    assert str(got) == str(ruamel.resolve(ScalarNode, value, (True, False)))


def _many_mistakes(count: int) -> dict[str, str]:
    source = (
        "  - name: s{n}\n    deployment:\n      type: webfolder\n"
        "      imgix_subdomains: [b{n}]\n      webfolder_base_url: https://o.example/{n}/\n"
    )
    return {
        "unknown top-level keys": "version: 1\nsources: []\n"
        + "".join(f"k{n:05d}: 1\n" for n in range(count)),
        "a wrong type in every source": "version: 1\nsources:\n"
        + "".join(source.format(n=n) + "      cache_ttl_value: abc\n" for n in range(count)),
        "unknown keys in one source": "version: 1\nsources:\n"
        + source.format(n=0)
        + "".join(f"    x{n:05d}: 1\n" for n in range(count)),
        "missing keys and lists too short": "version: 1\nsources:\n"
        + "".join(f"  - name: s{n}\n    deployment: {{type: webfolder}}\n" for n in range(count))
        + "  - name: x\n    deployment:\n      type: webfolder\n      imgix_subdomains: []\n",
    }


@pytest.mark.parametrize("kind", list(_many_mistakes(1)))
def test_a_file_of_many_mistakes_is_parsed_once_and_placed_as_the_precise_path_would(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pure-Python round-trip parse took 42 s and 645 MB for 300,000 unknown keys:
    # pydantic's errors are placed on the C parser's tree, with the same words and places.
    path = write(tmp_path, _many_mistakes(300)[kind])

    def forbidden(*args: object) -> None:
        raise AssertionError("this path must not run")

    with monkeypatch.context() as patched:
        patched.setattr(loader._DesiredFile, "_parse", forbidden)
        fast = errors_of(path)
    with monkeypatch.context() as patched:
        patched.setattr(yaml_tree, "fast_compose", forbidden)
        precise = errors_of(path)
    assert len(fast) >= 300
    assert fast == precise


def test_many_errors_on_one_mapping_are_placed_in_one_pass_over_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each error once looked its key up by walking the whole mapping: quadratic.
    path = write(tmp_path, _many_mistakes(2_000)["unknown top-level keys"])
    indexed = []
    entries = positions._entries

    def counted(node: Any, index: Any) -> Any:
        if id(node) not in index:
            indexed.append(node)
        return entries(node, index)

    monkeypatch.setattr(positions, "_entries", counted)
    errors = errors_of(path)
    assert len(errors) == 2_000
    assert errors[-1].startswith(f"{path}:2002:1: k01999: unknown key 'k01999'")
    assert len(indexed) == 1


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abcdefgilnorstuvy_0189", max_size=24))
def test_the_suggestion_shortcut_never_changes_difflibs_answer(key: str) -> None:
    import difflib

    known = positions.known_keys(("sources", 0, key), {})
    close = difflib.get_close_matches(key, known, n=1, cutoff=positions.SUGGESTION_CUTOFF)
    expected = f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    assert positions.unknown_key(("sources", 0, key), {}) == expected


MIXED_SOURCE = (
    "  - name: s{n}\n    deployment:\n      type: webfolder\n"
    "      imgix_subdomains: [{host}]\n      webfolder_base_url: https://o.example/{n}/\n"
)


def _mixed(count: int) -> dict[str, tuple[str, str]]:
    """Files of `count` unknown keys plus one error of another kind (or a merge or alias),
    each with a piece of the message that error gets."""
    one, two = MIXED_SOURCE.format(n=1, host="one"), MIXED_SOURCE.format(n=2, host="two")
    ided = "  - id: 0123456789abcdef01234567\n    name"
    shapes = {
        "a repeated key": ("", "k00000: 2\n", ":33:1: duplicate key 'k00000' (first at line 3,"),
        "a repeated key in a source": (one + "    name: again\n", "", "8:5: duplicate key"),
        "a hostname twice": (
            one + MIXED_SOURCE.format(n=2, host="one"),
            "",
            "11:26: deployment.imgix_subdomains[0]: subdomain 'one' is also used",
        ),
        "a name twice": (one + two.replace("s2", "s1"), "", "8:11: name: name 's1' is also"),
        "an id twice": (
            one.replace("  - name", ided) + two.replace("  - name", ided),
            "",
            "9:9: id: id '0123456789abcdef01234567' is also used",
        ),
        "too many hostnames": (
            MIXED_SOURCE.format(n=1, host=", ".join(f"h{i}" for i in range(101))),
            "",
            "6:25: deployment.imgix_subdomains: imgix_subdomains and custom_domains may",
        ),
        "bad ignore_changes": (
            one + "    ignore_changes: [nonsense]\n",
            "",
            "8:21: ignore_changes: ignore_changes names nonsense",
        ),
        "an unread reference": (
            one.replace("type: webfolder", "type: webproxy\n      password: {env: UNSET}"),
            "",
            "6:17: deployment.password: environment variable UNSET",
        ),
        "a reference where none is allowed": (
            one.replace("type: webfolder", "type: webfolder\n      cache_ttl_value: {env: T}"),
            "",
            "6:24: deployment.cache_ttl_value: cache_ttl_value cannot take a reference",
        ),
        "a malformed secret reference": (
            one.replace("type: webfolder", "type: webproxy\n      password: {envy: X}"),
            "",
            "6:17: deployment.password: must be a reference",
        ),
        "a huge integer": ("", "huge: " + "9" * 200 + "\n", ":7: huge: must be between"),
        "an unsafe number": (
            one.replace("  - name", "  - x: .inf\n    name"),
            "big: 9007199254740993\n",
            "3:8: x: must be a finite number",
        ),
        "a bad tag": ("", "tagged: !!int abc\n", "1:1: invalid YAML: a value does not match"),
        "an unknown tag": (
            one.replace("[one]", "!custom [one]"),
            "tagged: !custom abc\n",
            "tagged: unknown key 'tagged'",
        ),
        "a merge key": (
            one + "    <<: {enabled: 3}\n",
            "base: &base {a: 1}\nmerged: {<<: *base}\n",
            "3:5: enabled: must be a boolean (got 3)",
        ),
        "an alias": (
            one.replace("  - name", "  - x: &x {a: 1}\n    name"),
            "again: *x\n",
            "3:5: x: unknown key 'x'",
        ),
        "not ASCII": (
            one.replace("s1", "é€😀 s1") + '  - {x: é€😀, name: "é€😀 s1"}\n',
            "é€😀: 1\n",
            "8:20: name: name 'é€😀 s1' is also used",
        ),
    }
    files = {}
    for kind, (sources, top, expected) in shapes.items():
        listed = f"sources:\n{sources}" if sources else "sources: []\n"
        keys = "".join(f"k{n:05d}: 1\n" for n in range(count))
        files[kind] = (f"version: 1\n{listed}{keys}{top}", expected)
    twice = files["a hostname twice"][0]
    files["CRLF line breaks"] = (twice.replace("\n", "\r\n"), "11:26: deployment.imgix")
    files["a %YAML 1.2 directive"] = (f"%YAML 1.2\n---\n{twice}", "13:26: deployment.imgix")
    return files


@pytest.mark.parametrize("kind", list(_mixed(1)))
def test_one_error_of_another_kind_among_many_needs_no_pure_python_parse(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One repeated key or hostname among 300,000 unknown keys sent the whole file through
    # the pure-Python parser (42 s): the C parser's tree serves, with the same words and
    # places as that parser's.
    text, expected = _mixed(30)[kind]
    path = write(tmp_path, text)

    def forbidden(*args: object) -> None:
        raise AssertionError("this path must not run")

    with monkeypatch.context() as patched:
        patched.setattr(loader._DesiredFile, "_compose_precisely", forbidden)
        fast = errors_of(path, resolve=True)
    with monkeypatch.context() as patched:
        patched.setattr(yaml_tree, "fast_compose", forbidden)
        precise = errors_of(path, resolve=True)
    assert fast == precise
    assert any(expected in error for error in fast), fast


def test_a_yaml_1_1_directive_is_read_by_the_pure_python_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # YAML 1.1 reads `yes` as true: only the round-trip parser follows the directive.
    text = "%YAML 1.1\n---\n" + textwrap.dedent(S3_SOURCE) + "    enabled: yes\n"
    path = write(tmp_path, text)
    composed = []
    compose = loader._DesiredFile._compose_precisely

    def counted(self: Any, text: str) -> Any:
        composed.append(text)
        return compose(self, text)

    monkeypatch.setattr(loader._DesiredFile, "_compose_precisely", counted)
    loaded = load([path], environ={"S3_SECRET_KEY": "s3-secret"})
    assert loaded.state.sources[0].enabled is True
    assert len(composed) == 1
    # Below a comment it is still the file's directive.
    path = write(tmp_path, "# acme's sources\n" + text)
    loaded = load([path], environ={"S3_SECRET_KEY": "s3-secret"})
    assert loaded.state.sources[0].enabled is True


def test_a_key_with_control_characters_is_printed_escaped_on_one_line(tmp_path: Path) -> None:
    # Keys come from an untrusted file: an escape sequence or a line break printed raw
    # would rewrite the terminal or forge a second error line in a public CI log.
    path = write(tmp_path, 'version: 1\nsources: []\n"k\\e[2J\\nx": 1\n')
    (error,) = errors_of(path)
    assert error == rf"{path}:3:1: k\x1b[2J\nx: unknown key 'k\x1b[2J\nx'"
    assert error.isprintable()


@pytest.mark.parametrize(
    ("value", "shown"), [("a" * 60, "a" * 60), ("a" * 56 + "bcdef", "a" * 56 + "b...")]
)
def test_a_long_wrong_value_is_quoted_shortened_past_60_characters(
    tmp_path: Path, value: str, shown: str
) -> None:
    text = (
        "version: 1\nsources:\n  - name: Long\n    deployment:\n      type: webfolder\n"
        "      imgix_subdomains: [long]\n      webfolder_base_url: https://o.example/\n"
        f"      cache_ttl_value: {value}\n"
    )
    (error,) = errors_of(write(tmp_path, text))
    assert error.endswith(f"cache_ttl_value: must be an integer (got '{shown}')")


@pytest.mark.parametrize("key", ["s3_bucket", "s3_access_key"])
def test_an_unread_reference_on_a_required_field_is_one_error(tmp_path: Path, key: str) -> None:
    # Validated as if absent, it must not also be reported missing at the same place.
    line = next(line for line in S3_SOURCE.splitlines() if line.strip().startswith(key))
    path = write(tmp_path, S3_SOURCE.replace(line, f"      {key}: {{env: UNSET_VALUE}}"))
    (message,) = errors_of(path, resolve=True, environ={"S3_SECRET_KEY": "s3-secret-value"})
    assert message.endswith(f"deployment.{key}: environment variable UNSET_VALUE is not set")


def test_an_optional_file_secret_not_there_yet_keeps_where_to_read_it(tmp_path: Path) -> None:
    # A saved plan is applied from another working directory, once the file exists.
    text = S3_SOURCE.replace("{env: S3_SECRET_KEY}", "{file: keys/s3.txt}")
    state = load([write(tmp_path, text)], environ={}, secrets_optional=True).state
    secret = state.sources[0].deployment.s3_secret_key
    assert secret.locator() == {"file": str(tmp_path / "keys" / "s3.txt")}


def _depth_reached(text: str) -> int:
    """How deep the C parser's collections nest before it ends or stops at an error."""
    with contextlib.suppress(Exception):  # an invalid text nests as far as it was read
        return _real_depth(text)
    from ruamel.yaml import YAML
    from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent

    depth = deepest = 0
    with contextlib.suppress(Exception):
        for event in YAML(typ="safe").parse(text):
            if isinstance(event, CollectionStartEvent):
                depth += 1
                deepest = max(deepest, depth)
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    return deepest


_BLOCK_CHAIN = "".join(f"{' ' * column}k:\n{' ' * column}-\n" for column in range(20))
CLOSE_READINGS = {
    # libyaml reads a flow's lines at any column: a balanced line at column 0 may sit
    # under more block levels than twice its width, its own brackets on top of them.
    "a balanced line under block nesting": (
        _BLOCK_CHAIN + " " * 20 + "- [\n" + "[" * 11 + "]" * 11 + "\n" + " " * 20 + "]\n",
        53,
    ),
    "braces alone": ("{k:\n" * 30 + "a\n" + "}\n" * 30, 30),
    "no line break at the end": ("[" * 40, 40),
}


@pytest.mark.parametrize(("text", "depth"), CLOSE_READINGS.values(), ids=CLOSE_READINGS.keys())
def test_the_close_reading_of_the_nesting_bound_is_never_below_the_real_depth(
    text: str, depth: int
) -> None:
    # The reading a file of more than MAX_C_NESTING openers gets, on small files.
    assert _depth_reached(text) == depth
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loader, "MAX_C_NESTING", 0)
        assert nesting_bound(text) >= depth


# Scalars that hold what the bound must not read as closing anything.
_SCALARS = ["a", '"]}"', "'[{'", '"a # ]]"', "'x'' ]'", "a]]", "-1"]

_Tree = Any  # a scalar's text, or ("seq" | "map", children)


def _flow(tree: _Tree, rnd: Any, indent: int) -> str:
    """`tree` in flow style; lines may break after an opener or a comma (with a comment)."""
    if isinstance(tree, str):
        if tree.startswith('"') and rnd.random() < 0.2:  # a quoted string over lines
            return tree[:-1] + "\n" + " " * indent + "]] }" + '"'
        return tree
    kind, children = tree
    items = [
        _flow(child, rnd, indent) if kind == "seq" else f"k{n}: {_flow(child, rnd, indent)}"
        for n, child in enumerate(children)
    ]
    pieces = []
    for n, item in enumerate(items):
        end = "," if n < len(items) - 1 else ""
        if rnd.random() < 0.3:
            comment = " # ]] }" if rnd.random() < 0.5 else ""
            item = f"{comment}\n{' ' * indent}{item}" if n else item
        pieces.append(item + end)
    opener, closer = ("[", "]") if kind == "seq" else ("{", "}")
    return opener + " ".join(pieces) + closer


def _block(tree: _Tree, rnd: Any, indent: int, step: int, style: tuple[float, ...]) -> list[str]:
    """`tree` as block lines at `indent`; `style` holds how often a collection is in flow
    style, a sequence entry compact (`- - a`), a mapping's sequence at its own column."""
    flows, compact, same = style
    pad = " " * indent
    if isinstance(tree, str):
        if rnd.random() < 0.2:  # a block scalar holding brackets
            return [pad + "|", pad + " " * step + "]] }", pad + " " * step + "[ {"]
        return [pad + tree]
    if rnd.random() < flows:
        return [pad + _flow(tree, rnd, indent + 1)]
    kind, children = tree
    lines = []
    for n, child in enumerate(children):
        comment = " # ]]" if rnd.random() < 0.2 else ""
        if kind == "seq":
            if isinstance(child, str) or rnd.random() < compact:  # compact: `- - a`, `- k0: a`
                inner = _block(child, rnd, indent + 2, step, style)
                lines += [pad + "- " + inner[0][indent + 2 :], *inner[1:]]
            else:
                lines += [pad + "-" + comment, *_block(child, rnd, indent + step, step, style)]
        elif isinstance(child, str):
            inner = _block(child, rnd, indent + step, step, style)
            lines += [f"{pad}k{n}: {inner[0].lstrip()}", *inner[1:]]
        else:
            # A sequence in a mapping may start at the mapping's own column.
            own_column = child[0] == "seq" and rnd.random() < same
            inner = _block(child, rnd, indent if own_column else indent + step, step, style)
            if inner[0].lstrip()[:1] in "[{":
                lines += [f"{pad}k{n}: {inner[0].lstrip()}", *inner[1:]]
            else:
                lines += [f"{pad}k{n}:{comment}", *inner]
    return lines


def _chain(kinds: list[str], leaf: str) -> _Tree:
    tree: _Tree = leaf
    for kind in reversed(kinds):
        tree = (kind, [tree])
    return tree


_KINDS = st.sampled_from(["seq", "map"])
_TREES = st.one_of(
    # Chains nest as deep as their lines allow: a sequence and a mapping a column.
    st.builds(
        _chain,
        st.lists(_KINDS, max_size=40) | st.integers(0, 20).map(lambda n: ["map", "seq"] * n),
        st.sampled_from(_SCALARS),
    ),
    st.recursive(
        st.sampled_from(_SCALARS),
        lambda children: st.tuples(_KINDS, st.lists(children, min_size=1, max_size=3)),
        max_leaves=25,
    ),
)


@settings(max_examples=200, deadline=None)
# The densest block nesting: a mapping, its sequence at its own column, a mapping one
# column right in each entry: two levels a column, so the bound doubles the longest line.
@example(
    tree=_chain(["map", "seq"] * 20, "a"),
    rnd=random.Random(0),
    step=1,
    style=(0.0, 0.0, 1.0),
    line_break="\n",
)
@given(
    tree=_TREES,
    rnd=st.randoms(use_true_random=False),
    step=st.integers(1, 3),
    style=st.tuples(
        st.sampled_from([0.0, 0.25]), st.sampled_from([0.0, 0.5]), st.sampled_from([0.5, 1.0])
    ),
    line_break=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_the_nesting_bound_is_never_below_the_depth_the_parser_reaches(
    tree: _Tree, rnd: Any, step: int, style: tuple[float, ...], line_break: str
) -> None:
    # Block, flow and mixed nesting, with brackets in comments, quoted strings and block
    # scalars: a bound below the real depth lets a deep file reach the C composer.
    text = ("\n".join(_block(tree, rnd, 0, step, style)) + "\n").replace("\n", line_break)
    depth = _depth_reached(text)
    assert nesting_bound(text) >= depth
    # A file of more openers than MAX_C_NESTING gets the closer reading: it must hold too.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loader, "MAX_C_NESTING", 0)
        assert nesting_bound(text) >= depth


# Steps of a flow text on narrow lines, so that brackets can nest deeper than twice its
# widest line: openers come more often than closers, so that it grows.
_FLOW_STEPS = ["[", "[", "[", "{", "{", "a", '"]"', "'[{'", '"]\n ]"', "close", "break", "# ]}"]


def _narrow_flow(steps: list[str]) -> str:
    """The valid flow text the steps write, every collection closed at the end."""
    text, open_kinds, filled = "[", ["["], [False]
    for step in [*steps, *["close", "break"] * len(steps)]:
        if step in ("close", "break", "# ]}"):
            if step == "close" and open_kinds:
                text += "]" if open_kinds.pop() == "[" else "}"
                filled.pop()
            elif step != "close":
                text += (" # ]}" if step == "# ]}" else "") + "\n "
            continue
        if not open_kinds:
            break
        if filled[-1]:
            text += ", " if open_kinds[-1] == "[" else ", k: "
        filled[-1] = True
        if step in "[{":
            text += "[" if step == "[" else "{k: "
            open_kinds.append(step)
            filled.append(False)
        else:
            text += step
        if len(text) - text.rfind("\n") > 4:  # narrow lines
            text += "\n "
    return text + "\n"


@settings(max_examples=150, deadline=None)
@example(steps=["[", "[", "break"] * 30, line_break="\n")
@example(steps=["{", "{", "break"] * 30, line_break="\r")
@given(
    steps=st.lists(st.sampled_from(_FLOW_STEPS), min_size=60, max_size=150),
    line_break=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_the_nesting_bound_is_never_below_the_depth_of_narrow_flow_lines(
    steps: list[str], line_break: str
) -> None:
    # A `]` in a string or a comment closes nothing, and a line that seems to balance
    # only goes uncounted if it really does.
    text = _narrow_flow(steps).replace("\n", line_break)
    depth = _depth_reached(text)
    assert nesting_bound(text) >= depth
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loader, "MAX_C_NESTING", 0)
        assert nesting_bound(text) >= depth


def test_block_nesting_two_levels_a_column_counts_toward_the_nesting_bound(
    tmp_path: Path,
) -> None:
    # A mapping, its sequence at its own column, the next mapping one column right: 200
    # levels from lines of 101 columns, then fewer brackets than MAX_C_NESTING. Reading
    # the block levels as one a column would let this file reach the C composer unchecked.
    columns, brackets = 100, MAX_C_NESTING - 150
    block = "".join(f"{' ' * column}k:\n{' ' * column}-\n" for column in range(columns))
    flow = f"{' ' * columns}[\n" * brackets + f"{' ' * columns}]\n" * brackets
    path = tmp_path / "sources.yaml"
    path.write_text(block + flow)
    # Collection MAX_C_NESTING + 1 is bracket MAX_C_NESTING + 1 - 2 * columns, on the
    # line after the block's 2 * columns.
    assert errors_of(path) == [
        f"{path}:{MAX_C_NESTING + 1}:{columns + 1}: recursive or too deeply nested YAML "
        "is not supported"
    ]


def test_list_items_holding_only_comments_are_a_located_error(tmp_path: Path) -> None:
    # ruamel.yaml 0.18.10 (the lowest admitted) raises NotImplementedError ("overlap in
    # comment") on this where newer versions raise a ParserError: "internal error: ...".
    path = tmp_path / "sources.yaml"
    path.write_text("- # a note\n- # a note\n#\nversion: 1\n", encoding="utf-8")
    with pytest.raises(LoadError) as caught:
        loader.load([str(path)], resolve=False)
    (error,) = caught.value.errors
    assert error.file == str(path)
    assert error.message.startswith("invalid YAML: ")
    assert "a note" not in error.message
