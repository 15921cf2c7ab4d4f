"""The canonical layout (reconciler/canonical.py) and the `fmt` command that applies it."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from console import invoke
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from reconciler.canonical import deployment_order, formatted
from reconciler.loader import load

MESSY = """\
# yaml-language-server: $schema=../schemas/sources.schema.json
# Our sources.
sources:
  # first source
  - deployment:            # the deployment
      s3_bucket: acme      # bucket
      type: s3
      # the keys
      s3_access_key: AKIA
      s3_secret_key: {env: S3}
      imgix_subdomains: [acme-products]
      cache_ttl_value: 86400   # a day
    name: Products        # display name
    # pinned
    id: 6359b5ba8147da20e8edfdd5

  # second source
  - name: Blog
    deployment:
        type: webfolder
        webfolder_base_url: "https://blog.example/"
        imgix_subdomains:
        - acme-blog
        password: {env: BLOG_PASSWORD}
version: 1
# end
"""

CANONICAL = """\
# yaml-language-server: $schema=../schemas/sources.schema.json
# Our sources.
version: 1
sources:
  # first source
  - name: Products        # display name
    # pinned
    id: 6359b5ba8147da20e8edfdd5
    deployment:            # the deployment
      type: s3
      imgix_subdomains: [acme-products]
      # the keys
      s3_access_key: AKIA
      s3_bucket: acme      # bucket
      s3_secret_key: {env: S3}
      cache_ttl_value: 86400   # a day

  # second source
  - name: Blog
    deployment:
      type: webfolder
      imgix_subdomains:
        - acme-blog
      webfolder_base_url: https://blog.example/
      password: {env: BLOG_PASSWORD}
# end
"""


def comments(text: str) -> Counter[str]:
    """Each comment, wherever it sits on its line."""
    return Counter("#" + line.split("#", 1)[1] for line in text.splitlines() if "#" in line)


def test_fmt_orders_keys_keeps_every_comment_above_its_key_and_is_idempotent() -> None:
    once = formatted(MESSY)
    assert once == CANONICAL
    assert comments(once) == comments(MESSY)
    assert formatted(once) == once


def test_deployment_order_puts_type_and_hostnames_first_then_the_type_s_own() -> None:
    order = deployment_order("s3")
    assert order[:5] == ("type", "imgix_subdomains", "custom_domains", "s3_access_key", "s3_bucket")
    assert order.index("s3_secret_key") < order.index("cache_ttl_value")
    assert deployment_order("future")[:1] == ("type",)


SOURCE_KEYS = {
    "name": "name: N{n}",
    "id": "id: {n:024x}",
    "enabled": "enabled: false",
    "deployment": "deployment:\n{deployment}",
}
DEPLOYMENT_KEYS = [
    "type: webfolder",
    "imgix_subdomains: [s-{n}]",
    "webfolder_base_url: https://o{n}.example/",
    "cache_ttl_value: 86400",
    "default_params: {{auto: format}}",
    "password: {{env: P{n}}}",
]


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 3))
def test_any_key_order_with_comments_formats_to_the_same_meaning_and_is_stable(
    seed: int, count: int
) -> None:
    """Shuffled keys, a comment above and beside each: the same file, every comment kept."""
    rng = random.Random(seed)
    items = []
    for n in range(count):
        deployment_lines = [key.format(n=n) for key in DEPLOYMENT_KEYS]
        rng.shuffle(deployment_lines)
        deployment = "".join(
            f"      # above {n}.{i}\n      {line}  # beside {n}.{i}\n"
            for i, line in enumerate(deployment_lines)
        )
        keys = list(SOURCE_KEYS)
        rng.shuffle(keys)
        lines = [SOURCE_KEYS[key].format(n=n, deployment=deployment.rstrip("\n")) for key in keys]
        body = "\n".join(
            f"    # on {n}.{key}\n    {line}" for key, line in zip(keys, lines, strict=True)
        )
        items.append("  -\n" + body + "\n")
    text = "version: 1\nsources:\n" + "".join(items)
    once = formatted(text)
    assert comments(once) == comments(text)
    assert formatted(once) == once
    # Each "above" comment still sits right above a line of its own source's deployment.
    lines = once.splitlines()
    for index, line in enumerate(lines):
        if "# above " in line:
            assert "# beside " + line.split("# above ")[1] in lines[index + 1]


def test_fmt_command_rewrites_checks_and_refuses_an_invalid_file(tmp_path: Path) -> None:
    messy = tmp_path / "messy.yaml"
    messy.write_text(MESSY)
    tidy = tmp_path / "tidy.yaml"
    tidy.write_text(CANONICAL)

    check = invoke("fmt", "--check", messy, tidy)
    assert check.exit_code == 1
    assert check.stderr == f"{messy}: would be reformatted\n"
    assert messy.read_text() == MESSY

    messy.chmod(0o644)
    done = invoke("fmt", messy, tidy)
    assert done.exit_code == 0, done.output
    assert done.stderr == f"{messy}: reformatted\n"
    assert messy.stat().st_mode & 0o777 == 0o644  # still readable by the team and CI
    assert messy.read_text() == CANONICAL and tidy.read_text() == CANONICAL
    assert invoke("fmt", "--check", messy).exit_code == 0
    environ = {"S3": "s3-secret-value", "BLOG_PASSWORD": "blog-password-value"}
    assert load([messy], environ=environ).state == load([tidy], environ=environ).state

    invalid = tmp_path / "invalid.yaml"
    invalid.write_text("version: 1\nsources:\n  - name: X\n    deployment: {type: ftp}\n")
    refused = invoke("fmt", invalid, messy)
    assert refused.exit_code == 1
    assert refused.stderr.startswith(f"{invalid}:4:")
    assert invalid.read_text().endswith("{type: ftp}\n")


def test_fmt_goes_on_past_a_file_already_in_the_canonical_layout(tmp_path: Path) -> None:
    tidy = tmp_path / "tidy.yaml"
    tidy.write_text(CANONICAL)
    messy = tmp_path / "messy.yaml"
    messy.write_text(MESSY)

    check = invoke("fmt", "--check", tidy, messy)
    assert check.exit_code == 1
    assert check.stderr == f"{messy}: would be reformatted\n"

    done = invoke("fmt", tidy, messy)
    assert done.exit_code == 0, done.output
    assert done.stderr == f"{messy}: reformatted\n"
    assert messy.read_text() == CANONICAL and tidy.read_text() == CANONICAL


def test_fmt_keeps_a_files_line_ends_and_byte_order_mark(tmp_path: Path) -> None:
    # A file saved on Windows: fmt changes its layout, not its bytes' conventions (as ruff
    # and black do), or every line would show in the diff and the editor would put them back.
    bom = b"\xef\xbb\xbf"
    crlf_messy = tmp_path / "crlf-messy.yaml"
    crlf_messy.write_bytes(MESSY.replace("\n", "\r\n").encode())
    crlf_tidy = tmp_path / "crlf-tidy.yaml"
    crlf_tidy.write_bytes(CANONICAL.replace("\n", "\r\n").encode())
    bom_messy = tmp_path / "bom-messy.yaml"
    bom_messy.write_bytes(bom + MESSY.encode())
    bom_tidy = tmp_path / "bom-tidy.yaml"
    bom_tidy.write_bytes(bom + CANONICAL.encode())
    mixed = tmp_path / "mixed.yaml"  # the first line's end is the file's
    mixed.write_bytes(CANONICAL.replace("\n", "\r\n", 1).encode())

    check = invoke("fmt", "--check", crlf_tidy, bom_tidy)
    assert check.exit_code == 0, check.stderr
    check = invoke("fmt", "--check", crlf_messy, bom_messy, mixed)
    assert check.exit_code == 1
    assert check.stderr.splitlines() == [
        f"{crlf_messy}: would be reformatted",
        f"{bom_messy}: would be reformatted",
        f"{mixed}: would be reformatted",
    ]

    done = invoke("fmt", crlf_messy, bom_messy, mixed, crlf_tidy, bom_tidy)
    assert done.exit_code == 0, done.output
    crlf_canonical = CANONICAL.replace("\n", "\r\n").encode()
    assert crlf_messy.read_bytes() == crlf_tidy.read_bytes() == crlf_canonical
    assert bom_messy.read_bytes() == bom_tidy.read_bytes() == bom + CANONICAL.encode()
    assert mixed.read_bytes() == crlf_canonical


def test_fmt_without_a_file_is_a_usage_error() -> None:
    refused = invoke("fmt", "--check")
    assert refused.exit_code == 1
    assert "Missing argument 'FILES...'" in refused.stderr


def test_fmt_of_a_linked_file_formats_its_target_and_keeps_the_link(tmp_path: Path) -> None:
    # One account's file linked under the name CI plans: the link is the repository's.
    (tmp_path / ".git").mkdir()
    (tmp_path / "accounts").mkdir()
    target = tmp_path / "accounts" / "main.yaml"
    target.write_text(MESSY)
    target.chmod(0o644)
    link = tmp_path / "sources.yaml"
    link.symlink_to(Path("accounts") / "main.yaml")

    done = invoke("fmt", link)

    assert done.exit_code == 0, done.output
    assert done.stderr == f"{link}: reformatted\n"
    assert link.is_symlink() and link.readlink() == Path("accounts") / "main.yaml"
    assert target.read_text() == CANONICAL
    assert target.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in (tmp_path / "accounts").iterdir()) == ["main.yaml"]


def test_a_comment_after_a_nested_mapping_moves_with_its_key_at_its_indentation() -> None:
    text = """\
version: 1
sources:
  - name: Marketing
    deployment:
      type: gcs
      imgix_subdomains: [acme-marketing]
      gcs_bucket: acme-marketing
      gcs_access_key: GOOG1EXAMPLE
      gcs_secret_key: {env: GCS_SECRET_KEY}
      # written at the deployment's indentation, about the key below
    ignore_changes: [deployment.default_params]
"""
    lines = formatted(text).splitlines()
    position = lines.index("    ignore_changes: [deployment.default_params]")
    assert (
        lines[position - 1] == "    # written at the deployment's indentation, about the key below"
    )
    assert lines[position + 1] == "    deployment:"
    assert formatted(formatted(text)) == formatted(text)


def test_the_shipped_example_is_in_the_canonical_layout() -> None:
    # README and the example's header send users to `fmt --check`; the example must pass it.
    example = Path(__file__).parents[1] / "examples" / "sources.yaml"
    result = invoke("fmt", "--check", example)
    assert result.exit_code == 0, result.stderr


def test_no_formatted_line_can_start_a_workflow_command() -> None:
    # Printed (export, fmt --diff), a file may land in a CI log: no value starts a line
    # with `::`, neither where it begins nor where a long value would be folded.
    text = (
        "version: 1\nsources:\n  - name: '::error::named'\n    deployment:\n"
        "      type: webfolder\n      imgix_subdomains: [acme]\n"
        "      webfolder_base_url: https://o.example/\n"
        f"      annotation: {'word ' * 30}::error::folded\n"
    )
    shown = formatted(text)
    assert not any(line.lstrip().startswith("::") for line in shown.splitlines())
    assert "name: '::error::named'" in shown
    assert f"annotation: {'word ' * 30}::error::folded\n" in shown


def test_a_comment_above_a_deployment_s_first_key_moves_with_that_key() -> None:
    # ruamel keeps it with `deployment:`, after that key's end-of-line comment if it has one.
    messy = (
        "version: 1\nsources:\n  - name: Products\n    deployment:   # the deployment\n"
        "      # the bucket, first\n      s3_bucket: acme\n      type: s3\n"
        "      imgix_subdomains: [acme-products]\n      s3_access_key: AKIA\n"
        "      s3_secret_key: {env: S3}\n"
    )
    tidy = (
        "version: 1\nsources:\n  - name: Products\n    deployment:   # the deployment\n"
        "      type: s3\n      imgix_subdomains: [acme-products]\n      s3_access_key: AKIA\n"
        "      # the bucket, first\n      s3_bucket: acme\n      s3_secret_key: {env: S3}\n"
    )
    assert formatted(messy) == tidy
    plain = "    deployment:\n"
    assert formatted(messy.replace("    deployment:   # the deployment\n", plain)) == (
        tidy.replace("    deployment:   # the deployment\n", plain)
    )


def test_a_comment_above_the_key_that_becomes_first_goes_under_the_deployment_line() -> None:
    messy = (
        "version: 1\nsources:\n  - name: Products\n    deployment:   # the deployment\n"
        "      s3_bucket: acme\n      # the type, first once formatted\n      type: s3\n"
        "      imgix_subdomains: [acme-products]\n      s3_access_key: AKIA\n"
        "      s3_secret_key: {env: S3}\n"
    )
    assert formatted(messy) == (
        "version: 1\nsources:\n  - name: Products\n    deployment:   # the deployment\n"
        "      # the type, first once formatted\n      type: s3\n"
        "      imgix_subdomains: [acme-products]\n      s3_access_key: AKIA\n"
        "      s3_bucket: acme\n      s3_secret_key: {env: S3}\n"
    )
    plain = "    deployment:\n"
    assert formatted(messy.replace("    deployment:   # the deployment\n", plain)) == (
        formatted(messy).replace("    deployment:   # the deployment\n", plain)
    )


def test_a_comment_moves_under_a_key_that_had_none() -> None:
    messy = (
        "version: 1\nsources:\n  - name: Products\n    deployment:\n      type: s3\n"
        "      s3_bucket: acme\n      # the key\n      s3_access_key: AKIA\n"
        "      imgix_subdomains: [acme-products]\n      s3_secret_key: {env: S3}\n"
    )
    assert formatted(messy) == (
        "version: 1\nsources:\n  - name: Products\n    deployment:\n      type: s3\n"
        "      imgix_subdomains: [acme-products]\n      # the key\n      s3_access_key: AKIA\n"
        "      s3_bucket: acme\n      s3_secret_key: {env: S3}\n"
    )
    # The key that had none ends in a block list: the comment goes after its last item.
    messy = (
        "version: 1\nsources:\n  - name: Blog\n    deployment:\n      type: webfolder\n"
        "      # the origin\n      webfolder_base_url: https://blog.example/\n"
        "      imgix_subdomains:\n        - acme-blog\n"
    )
    assert formatted(messy) == (
        "version: 1\nsources:\n  - name: Blog\n    deployment:\n      type: webfolder\n"
        "      imgix_subdomains:\n        - acme-blog\n"
        "      # the origin\n      webfolder_base_url: https://blog.example/\n"
    )


def test_a_comment_after_a_block_list_moves_with_the_key_below_it() -> None:
    # ruamel keeps it with the list's last item: it must still land above `password`.
    messy = (
        "version: 1\nsources:\n  - name: Blog\n    deployment:\n      type: webfolder\n"
        "      webfolder_base_url: https://blog.example/\n      imgix_subdomains:\n"
        "        - acme-blog\n      # the password, from CI\n"
        "      password: {env: BLOG_PASSWORD}\n      cache_ttl_value: 60\n"
    )
    assert formatted(messy) == (
        "version: 1\nsources:\n  - name: Blog\n    deployment:\n      type: webfolder\n"
        "      imgix_subdomains:\n        - acme-blog\n"
        "      webfolder_base_url: https://blog.example/\n      # the password, from CI\n"
        "      password: {env: BLOG_PASSWORD}\n      cache_ttl_value: 60\n"
    )


def test_a_deployment_in_flow_style_is_reordered_on_its_own_line() -> None:
    # Its keys hold no comment lines to move: none may be added, or the map breaks apart.
    messy = (
        "version: 1\nsources:\n  - name: Blog\n"
        "    deployment: {webfolder_base_url: 'https://blog.example/', type: webfolder,"
        " imgix_subdomains: [acme-blog]}\n"
        "    id: 6359b5ba8147da20e8edfdd5\n"
    )
    assert formatted(messy) == (
        "version: 1\nsources:\n  - name: Blog\n    id: 6359b5ba8147da20e8edfdd5\n"
        "    deployment: {type: webfolder, imgix_subdomains: [acme-blog],"
        " webfolder_base_url: https://blog.example/}\n"
    )


def test_keys_the_models_do_not_know_keep_their_order_after_the_known_ones() -> None:
    # fmt refuses such a file before formatting it; the layout itself still places them,
    # as the module promises, for a caller that formats a file the models have not read.
    text = (
        "sources:\n  - zeta: 1\n    name: Blog\n    alpha: 2\n    deployment:\n"
        "      zeta: 1\n      type: webfolder\n      alpha: 2\n"
        "      webfolder_base_url: https://blog.example/\n      imgix_subdomains: [acme-blog]\n"
        "extra: 3\nversion: 1\n"
    )
    assert formatted(text) == (
        "version: 1\nsources:\n  - name: Blog\n    deployment:\n      type: webfolder\n"
        "      imgix_subdomains: [acme-blog]\n      webfolder_base_url: https://blog.example/\n"
        "      zeta: 1\n      alpha: 2\n    zeta: 1\n    alpha: 2\nextra: 3\n"
    )


def test_comment_lines_above_a_deployment_s_first_key_move_with_it_blank_line_and_all() -> None:
    # Without an end-of-line comment on `deployment:`, ruamel keeps each line apart.
    messy = (
        "version: 1\nsources:\n  - name: Products\n    deployment:\n"
        "      # the bucket,\n\n      # first\n      s3_bucket: acme\n      type: s3\n"
        "      imgix_subdomains: [acme-products]\n      s3_access_key: AKIA\n"
        "      s3_secret_key: {env: S3}\n"
    )
    assert formatted(messy) == (
        "version: 1\nsources:\n  - name: Products\n    deployment:\n      type: s3\n"
        "      imgix_subdomains: [acme-products]\n      s3_access_key: AKIA\n"
        "      # the bucket,\n\n      # first\n      s3_bucket: acme\n"
        "      s3_secret_key: {env: S3}\n"
    )


def test_fmt_points_at_the_comment_it_would_lose_not_at_a_kept_one_of_the_same_text(
    tmp_path: Path,
) -> None:
    # ruamel drops a comment between a key and its `{...}` on the next line; the same
    # words kept higher up must not take the blame, or moving them changes nothing.
    text = (
        "version: 1\nsources:\n  # c9a\n  - name: B\n    deployment:\n      type: webproxy\n"
        "      imgix_subdomains: [b-fz]\n      default_params:  # c8b\n        # c9a\n"
        "        {}  # c9b\n"
    )
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    for args in (["fmt"], ["fmt", "--check"]):
        refused = invoke(*args, path)
        assert refused.exit_code == 1
        assert [line.split(": fmt cannot keep")[0] for line in refused.stderr.splitlines()] == [
            f"{path}:8:24",
            f"{path}:9:9",
            "2 errors in 1 of 1 file",
        ]
        assert path.read_text() == text


def test_fmt_takes_the_line_ends_of_a_first_line_that_is_blank_or_the_only_one(
    tmp_path: Path,
) -> None:
    # The first line's end is the file's, even when that line is empty; a file with no
    # `\n` at all (its one line ended by a lone CR, which reads as `\n`) is written in `\n`.
    cases = {
        b"\r\nsources: []\r\nversion: 1\r\n": b"version: 1\r\nsources: []\r\n",
        b"\nsources: []\nversion: 1\r": b"version: 1\nsources: []\n",
        b"sources: []\rversion: 1\r": b"version: 1\nsources: []\n",
    }
    paths = []
    for number, data in enumerate(cases):
        path = tmp_path / f"sources-{number}.yaml"
        path.write_bytes(data)
        paths.append(path)
    done = invoke("fmt", *paths)
    assert done.exit_code == 0, done.output
    assert [path.read_bytes() for path in paths] == list(cases.values())


def test_no_formatted_line_carries_the_legacy_workflow_command_form() -> None:
    # `##[error]...` is a workflow command anywhere in a CI log line (`export` and
    # `fmt --diff` print files): such a value is double-quoted, its `[` escaped there.
    text = (
        "version: 1\nsources:\n  - name: 'x ##[stop-commands]t'\n    deployment:\n"
        "      type: webfolder\n      imgix_subdomains: [acme]\n"
        "      webfolder_base_url: https://o.example/\n"
        "      default_params: {'##[error]k': 'a##[warning]v'}\n"
    )
    shown = formatted(text)
    assert "##[" not in shown
    assert YAML(typ="safe").load(shown) == YAML(typ="safe").load(text)


def test_a_comment_after_a_double_quoted_value_is_kept_as_written() -> None:
    # The escaping of double-quoted values (bidi controls as `\u202e`) ends with the
    # value: a comment is the author's own text and keeps its characters.
    text = (
        'version: 1\nsources:\n  - name: "a\u202eb"  # note \u202e kept\n    deployment:\n'
        "      type: webfolder\n      imgix_subdomains: [acme]\n"
        "      webfolder_base_url: https://o.example/  # origin \u2066x\u2069\n"
    )
    shown = formatted(text)
    assert shown == text.replace('"a\u202eb"', '"a\\u202eb"')


def test_fmt_keeps_text_starting_with_a_question_mark_or_colon_in_a_flow_value_as_text(
    tmp_path: Path,
) -> None:
    # ruamel writes `? b` and `: x` plain inside `{...}` and `[...]`, where its reader takes
    # the `?` and `:` for YAML's key and value indicators: the rewritten file was invalid
    # YAML (`: x`) or meant another key (`?q` read back as `q`).
    text = (
        "version: 1\nallow_unknown_params: true\nsources:\n  - name: '? named'\n"
        "    ignore_changes: ['name']\n    deployment:\n      type: webfolder\n"
        "      imgix_subdomains: [acme-a]\n      webfolder_base_url: https://o.example/\n"
        "      default_params: {txt: ': x', '?q': v, txt-font: \"? b\", ':k': '?'}\n"
    )
    sources = tmp_path / "sources.yaml"
    sources.write_text(text)
    before = load([sources], resolve=False).state

    done = invoke("fmt", sources)
    assert done.exit_code == 0, done.output
    assert invoke("validate", "--no-resolve", sources).exit_code == 0
    assert load([sources], resolve=False).state == before
    assert YAML(typ="safe").load(sources.read_text())["sources"][0]["deployment"][
        "default_params"
    ] == {"txt": ": x", "?q": "v", "txt-font": "? b", ":k": "?"}
    assert invoke("fmt", "--check", sources).exit_code == 0


def test_fmt_keeps_a_folded_text_with_a_line_starting_with_a_tab_as_it_reads() -> None:
    # ruamel folds a tab-led line as if it were an ordinary one while its reader keeps the
    # line breaks around it: fmt added a blank line on each side, so the annotation sent on
    # the next apply had two more line breaks than the file said.
    text = (
        "version: 1\nsources:\n  - name: a\n    deployment:\n      type: webproxy\n"
        "      imgix_subdomains: [acme-a]\n      annotation: >-\n        Managed by the team\n"
        "        \tsee the runbook\n\n        Owner: web\n"
    )
    once = formatted(text)
    annotation = YAML(typ="safe").load(once)["sources"][0]["deployment"]["annotation"]
    assert annotation == "Managed by the team\n\tsee the runbook\n\nOwner: web"
    assert formatted(once) == once


def test_fmt_keeps_the_document_start_and_the_comments_above_it(tmp_path: Path) -> None:
    # ruamel drops the `---` line and every comment above it: a file opening with the
    # schema line and `---` (as yamllint's default rules ask) was refused ("cannot keep
    # this comment ... between a key and its value", at 1:1), and one opening with `---`
    # alone lost it, which yamllint then reported.
    body = (
        "version: 1\nsources:\n  - deployment: {type: webproxy, imgix_subdomains: [acme-x]}\n"
        "    name: x\n"
    )
    tidy = (
        "version: 1\nsources:\n  - name: x\n"
        "    deployment: {type: webproxy, imgix_subdomains: [acme-x]}\n"
    )
    header = "# yaml-language-server: $schema=schemas/sources.schema.json\n\n--- # sources\n"
    file = tmp_path / "sources.yaml"
    file.write_text(header + body)
    done = invoke("fmt", file)
    assert done.exit_code == 0, done.stderr
    assert file.read_text() == header + tidy
    assert formatted("---\n" + body) == "---\n" + tidy
    # Above a `%YAML 1.2` directive too (the version every file is read as without one).
    directive = "# header\n%YAML 1.2\n---\n"
    assert formatted(directive + body) == directive + tidy
    assert invoke("fmt", "--check", file).exit_code == 0
