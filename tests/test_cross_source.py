"""Checks across sources and files: names, ids and hostnames used twice, and the models'
cross-field rules (hostname count, ignore_changes) run on the raw data."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.loader import LoadError, load

UNIQUE = "(hostnames are unique across all imgix sources)"


def blog(name: str, subdomain: str, *extra: str) -> str:
    """One webfolder source (no secret to resolve), with extra lines under `deployment`."""
    lines = [
        f"  - name: {name}",
        "    deployment:",
        "      type: webfolder",
        f"      imgix_subdomains: [{subdomain}]",
        "      webfolder_base_url: https://blog.acme.example/",
        *(f"      {line}" for line in extra),
    ]
    return "\n".join(lines) + "\n"


def write(tmp_path: Path, *sources: str, name: str = "sources.yaml") -> Path:
    path = tmp_path / name
    path.write_text("version: 1\nsources:\n" + "".join(sources))
    return path


def errors_of(*paths: Path) -> list[str]:
    with pytest.raises(LoadError) as caught:
        load(paths, resolve=False, environ={})
    return [str(error) for error in caught.value.errors]


def test_an_entry_that_is_not_a_source_does_not_hide_later_clashes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "  - just text\n",
        blog("Blog", "acme-blog"),
        blog("Blog mirror", "acme-blog"),
    )
    assert errors_of(path) == [
        f"{path}:3:5: sources[0]: must be a mapping (got a string)",
        f"{path}:12:26: deployment.imgix_subdomains[0]: subdomain 'acme-blog' is also used by "
        f"the source at {path}:7:26 {UNIQUE}",
    ]


def test_a_deployment_that_is_not_a_mapping_does_not_hide_later_clashes(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "  - name: Broken\n    deployment: [webfolder]\n",
        blog("Blog", "acme-blog"),
        blog("Blog mirror", "acme-blog"),
    )
    assert errors_of(path) == [
        f"{path}:4:17: deployment: must be a mapping (got a list)",
        f"{path}:13:26: deployment.imgix_subdomains[0]: subdomain 'acme-blog' is also used by "
        f"the source at {path}:8:26 {UNIQUE}",
    ]


def test_custom_domains_are_claimed_when_the_subdomains_are_not_a_list(
    tmp_path: Path,
) -> None:
    first = blog("Blog", "acme-blog", "custom_domains: [images.acme.example]")
    second = blog("Blog mirror", "acme-mirror", "custom_domains: [images.acme.example]")
    second = second.replace("imgix_subdomains: [acme-mirror]", "imgix_subdomains: acme-mirror")
    path = write(tmp_path, first, second)
    assert errors_of(path) == [
        f"{path}:12:25: deployment.imgix_subdomains: must be a list (got 'acme-mirror')",
        f"{path}:14:24: deployment.custom_domains[0]: domain 'images.acme.example' is also "
        f"used by the source at {path}:8:24 {UNIQUE}",
    ]


def test_a_name_is_told_apart_only_by_a_nonempty_text_id(tmp_path: Path) -> None:
    # An empty or numeric id is an error of its own, and pins nothing.
    for bad_id in ('""', "12345"):
        first = blog("Blog", "acme-blog").replace(
            "    deployment:", f"    id: {bad_id}\n    deployment:"
        )
        second = blog("Blog", "acme-mirror").replace(
            "    deployment:", f"    id: {bad_id}\n    deployment:"
        )
        a = write(tmp_path, first, name="a.yaml")
        b = write(tmp_path, second, name="b.yaml")
        found = errors_of(a, b)
        assert (
            f"{b}:3:11: name: name 'Blog' is also used by the source at {a}:3:11 (plans and "
            "--target identify sources by name: add an id to both to tell them apart)"
        ) in found, bad_id


def test_one_source_repeating_its_own_hostname_clashes_with_no_other(tmp_path: Path) -> None:
    path = write(tmp_path, blog("Blog", "acme-blog, acme-blog"))
    assert errors_of(path) == [
        f"{path}:6:25: deployment.imgix_subdomains: imgix_subdomains lists acme-blog more than once"
    ]


def test_a_hostname_of_a_source_that_is_not_first_in_its_file_clashes_across_files(
    tmp_path: Path,
) -> None:
    a = write(tmp_path, blog("Blog", "acme-blog"), blog("Shop", "acme-shop"), name="a.yaml")
    b = write(tmp_path, blog("Shop mirror", "acme-shop"), name="b.yaml")
    assert errors_of(a, b) == [
        f"{b}:6:26: deployment.imgix_subdomains[0]: subdomain 'acme-shop' is also used by "
        f"the source at {a}:11:26 {UNIQUE}"
    ]


def test_the_hostname_count_reads_only_lists(tmp_path: Path) -> None:
    domains = ", ".join(f"d{i}.acme.example" for i in range(101))
    source = blog("Blog", "acme-blog", f"custom_domains: [{domains}]").replace(
        "imgix_subdomains: [acme-blog]", "imgix_subdomains: acme-blog"
    )
    path = write(tmp_path, source)
    assert errors_of(path) == [
        f"{path}:6:25: deployment.imgix_subdomains: must be a list (got 'acme-blog')",
        f"{path}:8:23: deployment.custom_domains: imgix_subdomains and custom_domains may hold "
        "at most 100 names together (got 101)",
    ]
    # 100 domains and a subdomain written as text: the text is no list of 9 names.
    source = source.replace(", d100.acme.example", "")
    path = write(tmp_path, source)
    assert errors_of(path) == [
        f"{path}:6:25: deployment.imgix_subdomains: must be a list (got 'acme-blog')"
    ]


def test_the_hostname_count_of_a_source_after_an_entry_that_is_not_one(
    tmp_path: Path,
) -> None:
    names = ", ".join(f"acme-{i}" for i in range(101))
    path = write(tmp_path, "  - 42\n", blog("Blog", names))
    assert errors_of(path) == [
        f"{path}:3:5: sources[0]: must be a mapping (got an integer)",
        f"{path}:7:25: deployment.imgix_subdomains: imgix_subdomains and custom_domains may "
        "hold at most 100 names together (got 101)",
    ]


def test_ignore_changes_entries_that_are_not_text_are_left_to_the_model(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, blog("Blog", "acme-blog") + "    ignore_changes: [7, deployment.nope]\n")
    assert errors_of(path) == [
        f"{path}:8:21: ignore_changes: ignore_changes names deployment.nope, which is not an "
        "attribute of a webfolder source (use name, enabled or deployment.<attribute>)",
        f"{path}:8:22: ignore_changes[0]: must be a string (got 7)",
    ]


def test_ignore_changes_of_a_source_without_a_deployment_mapping_are_not_checked(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "  - name: Broken\n    deployment: webfolder\n    ignore_changes: [deployment.nope]\n",
    )
    assert errors_of(path) == [f"{path}:4:17: deployment: must be a mapping (got a string)"]


def test_a_source_with_no_claims_claims_nothing(tmp_path: Path) -> None:
    # Names, ids and hostnames that are not text are type errors, never clashes.
    entry = "  - name: 5\n    id: 6\n    deployment: {type: webfolder, imgix_subdomains: [7]}\n"
    path = write(tmp_path, entry, entry)
    assert not any("also used" in line for line in errors_of(path))


def test_a_file_the_fast_check_gives_up_on_still_clashes_with_the_files_before(
    tmp_path: Path,
) -> None:
    # A local tag sends the second file to the precise path after a fast attempt: the
    # sources it numbers must not take the numbers of the first file's sources again.
    a = write(tmp_path, blog("Blog", "acme-blog"), name="a.yaml")
    b = write(tmp_path, blog("Blog mirror", "acme-blog", "annotation: !note x"), name="b.yaml")
    assert errors_of(a, b) == [
        f"{b}:6:26: deployment.imgix_subdomains[0]: subdomain 'acme-blog' is also used by "
        f"the source at {a}:6:26 {UNIQUE}",
        f"{b}:8:19: deployment.annotation: must be a string",
    ]
