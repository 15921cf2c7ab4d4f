"""Live sources as a desired-state file that plans to no changes.

Attributes equal to the documented default are left out (omitted means default), the
API-rewritten `annotation` is not managed, and each secret becomes an `{env: NAME}`
reference with a generated name, since the API never returns the value; a header lists
the variables to set. The text is in the canonical layout (`reconciler.canonical`), and
it is checked the way `validate` checks a file before anyone gets it: a live source the
format cannot express is an error naming it, never a file that fails validation.

`merged_yaml` adds the live sources a file lacks to it, through ruamel.yaml's round trip:
the file's comments, key order, formatting and variable names stay as they are.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.util import load_yaml_guess_indent

from reconciler import rendering_params
from reconciler.canonical import canonical_yaml, deployment_order, document_start, dumped
from reconciler.errors import ConfigurationError, ExportError
from reconciler.live import LiveSource
from reconciler.loader import LoadError, load
from reconciler.plan import same_json
from reconciler.references import reserved_variable
from reconciler.specs import (
    ALLOW_UNKNOWN_PARAMS,
    DEPLOYMENT_MODELS,
    SourceSpec,
    deployment_defaults,
    deployment_fields,
    fields_by_api_name,
    secret_fields,
)
from reconciler.untrusted import escaped, quoted

# Relative to the exported file: `imgix-reconciler schema > schemas/sources.schema.json`
# beside it makes editors complete and check it.
SCHEMA_LINE = "# yaml-language-server: $schema=schemas/sources.schema.json"
# Generated variable names stay well inside what shells, CI systems and GitHub accept.
MAX_VARIABLE_LENGTH = 60


def secret_variable(source: LiveSource, field: str, taken: set[str]) -> str:
    """A readable, unique environment variable name for one secret of one source.

    Valid in a shell and as a GitHub secret name: `[A-Z_][A-Z0-9_]*`, no `GITHUB_`
    prefix, none a file may not reference, at most `MAX_VARIABLE_LENGTH` characters.
    """
    suffix = "_" + _variable_part(field)
    tag = _variable_part(source.id)[-6:]
    slug = _variable_part(source.name or "") or _variable_part(f"SOURCE_{tag}")
    if (
        slug[0].isdigit()
        or slug.startswith("GITHUB_")
        or slug == "GITHUB"
        or reserved_variable(slug + suffix)
    ):
        slug = f"SOURCE_{slug}"
    candidates = [slug, f"{slug}_{tag}" if tag else slug]
    for candidate in candidates:
        name = _fitted(candidate, suffix)
        if name not in taken:
            break
    count = 2
    while name in taken:
        name = _fitted(candidates[-1], f"_{count}{suffix}")
        count += 1
    taken.add(name)
    return name


def _variable_part(text: str) -> str:
    """`text` as upper-case ASCII words joined by `_`: accents folded, other letters dropped."""
    folded = unicodedata.normalize("NFKD", text.upper()).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Z0-9]+", "_", folded.upper()).strip("_")


def _fitted(stem: str, suffix: str) -> str:
    """`stem` + `suffix`, the stem cut so the name fits (the suffix says which secret)."""
    room = MAX_VARIABLE_LENGTH - len(suffix)
    return stem[:room].rstrip("_") + suffix


@dataclass(frozen=True)
class Export:
    """A desired-state text to write, with what it adds."""

    text: str
    # How many sources the text adds (all of them for a new file).
    added: int
    # Environment variables the added sources reference: set them before `apply`.
    variables: list[str]


def exported_source(source: LiveSource, taken: set[str]) -> dict[str, Any]:
    """One live source as a spec mapping, keys in canonical order.

    Raises `ExportError` for a source of a type the file format does not have, or whose
    name the listing did not return (a spec needs one, and none is invented).
    """
    if source.name is None:
        raise ExportError(
            f"{_described(source)} cannot be exported: the API did not return its name"
        )
    spec: dict[str, Any] = {"name": source.name, "id": source.id}
    # Unknown (not listed) is left unstated: a plan then leaves it as it is.
    if source.enabled is False:
        spec["enabled"] = False
    model = DEPLOYMENT_MODELS.get(source.type or "")
    if model is None:
        kind = quoted(source.type) if source.type else "none"
        raise ExportError(
            f"{_described(source)} cannot be exported: its type is {kind}, not one of "
            f"{', '.join(DEPLOYMENT_MODELS)}"
        )
    defaults = deployment_defaults(model)
    secrets = secret_fields(model)
    deployment: dict[str, Any] = {"type": source.type}
    for _, api in deployment_fields(model):
        if api in ("type", "annotation"):
            continue
        if api in secrets:
            marker = secrets[api]
            required = fields_by_api_name(model)[api].is_required()
            if required or (marker.encrypted_as and source.deployment.get(marker.encrypted_as)):
                deployment[api] = {"env": secret_variable(source, api, taken)}
            continue
        value = source.deployment.get(api)
        # A null, `[]` or `{}` is how some listings give a key that has no value: unknown,
        # so unstated (an empty map may even come as `[]`, which the file cannot state).
        if value is None or (type(value) in (list, dict) and not value):
            continue
        # Compared as the planner compares: a live 300.0 is not the default 300. An
        # attribute with no documented default is written whenever the API has a value.
        if api in defaults and same_json(value, defaults[api]):
            continue
        deployment[api] = value
    order = deployment_order(source.type)
    spec["deployment"] = {key: deployment[key] for key in order if key in deployment}
    return spec


def _described(source: LiveSource) -> str:
    if source.name is None:
        return f"live source {escaped(source.id)}"
    return f"live source {quoted(source.name)} ({escaped(source.id)})"


def needs_unknown_params(live: Sequence[LiveSource]) -> bool:
    """Whether a live source holds a rendering parameter newer than the catalogue."""
    return any(
        len(rendering_params.problems(params))
        != len(rendering_params.problems(params, allow_unknown=True))
        for source in live
        if isinstance(params := source.deployment.get("default_params"), dict)
    )


def _checked(source: LiveSource, spec: dict[str, Any], *, allow_unknown: bool) -> dict[str, Any]:
    """`spec` if the file format accepts it; else an error naming the source and why."""
    context = {ALLOW_UNKNOWN_PARAMS: True} if allow_unknown else None
    try:
        SourceSpec.model_validate(spec, context=context)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, detail['loc'])) or 'source'}: {detail['msg']}"
            for detail in error.errors(include_input=False, include_url=False)
        )
        raise ExportError(
            f"{_described(source)} cannot be exported as a valid file: {escaped(problems)}"
        ) from None
    return spec


def _exported(
    live: Sequence[LiveSource], taken: set[str], *, allow_unknown: bool
) -> list[dict[str, Any]]:
    """Each live source as a checked spec, ordered by name then id; every problem at once."""
    specs: list[dict[str, Any]] = []
    problems: list[str] = []
    for source in sorted(live, key=lambda s: (s.name or "", s.id)):
        try:
            spec = exported_source(source, taken)
            specs.append(_checked(source, spec, allow_unknown=allow_unknown))
        except ExportError as error:
            problems.extend(error.problems)
    if problems:
        raise ExportError(*problems)
    return specs


def export_document(live: Sequence[LiveSource]) -> dict[str, Any]:
    """The desired-state document for `live`, sources ordered by name then id.

    A parameter newer than the catalogue is what the account holds, so the file allows
    unknown parameters rather than refusing to describe it.
    """
    allow_unknown = needs_unknown_params(live)
    document: dict[str, Any] = {"version": 1}
    if allow_unknown:
        document[ALLOW_UNKNOWN_PARAMS] = True
    document["sources"] = _exported(live, set(), allow_unknown=allow_unknown)
    return document


def _variables(value: Any) -> Iterator[str]:
    """The `{env: NAME}` references in a document, in order."""
    if isinstance(value, dict):
        if set(value) == {"env"} and isinstance(value["env"], str):
            yield value["env"]
            return
        for item in value.values():
            yield from _variables(item)
    elif isinstance(value, list):
        for item in value:
            yield from _variables(item)


def _to_set(variables: Sequence[str]) -> list[str]:
    """Comment lines (without `# `) asking for `variables` before `apply`."""
    return [
        "The API never returns secrets: set these environment variables before `apply`",
        "(or replace a reference with {file: path}):",
        *(f"  {name}" for name in variables),
    ]


def header(variables: Sequence[str]) -> str:
    """The comment lines on top of an exported file: the schema line, the variables to set."""
    lines = [SCHEMA_LINE, "# Exported by imgix-reconciler from the live sources."]
    if variables:
        lines += [f"# {line}" for line in _to_set(variables)]
    else:
        lines.append("# No secret to set: no source holds one.")
    return "\n".join(lines) + "\n"


def export_yaml(live: Sequence[LiveSource], *, ascii_only: bool = False) -> Export:
    """The desired-state file for `live`: header, then the sources in canonical layout.

    `ascii_only` is for an output that cannot encode every character: YAML's own escapes
    in double quotes (`"Caf\\xE9"`) keep the text's meaning, where the stream's error
    handler would write `Caf\\u00e9` into a plain scalar, read back as a backslash.
    """
    document = export_document(live)
    variables = list(_variables(document))
    yaml = canonical_yaml()
    yaml.allow_unicode = not ascii_only
    text = header(variables) + dumped(_styled(document), yaml)
    _check_validates(text)
    return Export(text, len(document["sources"]), variables)


def merged_yaml(text: str, live: Sequence[LiveSource]) -> Export:
    """`text` (a valid desired-state file) with the live sources it lacks appended.

    A live source is in the file when a source there has its `id` or one of its
    subdomains, as the planner matches. New variable names avoid those the file uses.
    """
    # ruamel drops a `---` line and the comments above it: kept as written, around the merge.
    start, text = document_start(text)
    yaml = canonical_yaml()
    yaml.preserve_quotes = True
    # Write new sources the way the file indents its list (ruamel guesses it from the text).
    try:
        _, indent, offset = load_yaml_guess_indent(text)
    except IndexError:  # ruamel's guess fails on a list item's dash alone on its line
        indent = offset = None
    dash_column = 2  # the canonical layout's
    if isinstance(indent, int) and isinstance(offset, int) and indent > offset:
        yaml.indent(mapping=indent - offset, sequence=indent, offset=offset)
        dash_column = offset
    document = yaml.load(text)
    sources = document["sources"]
    ids = {str(s.get("id")) for s in sources if isinstance(s, dict) and s.get("id")}
    subdomains = {
        str(name)
        for s in sources
        if isinstance(s, dict) and isinstance(s.get("deployment"), dict)
        for name in s["deployment"].get("imgix_subdomains") or []
    }
    missing = [
        source
        for source in live
        if source.id not in ids
        and not subdomains.intersection(source.deployment.get("imgix_subdomains") or [])
    ]
    if not missing:
        return Export(start + text, 0, [])
    allow_unknown = document.get(ALLOW_UNKNOWN_PARAMS) is True
    if not allow_unknown and needs_unknown_params(missing):
        document.insert(list(document).index("sources"), ALLOW_UNKNOWN_PARAMS, True)
        allow_unknown = True
    added = _exported(missing, set(_variables(document)), allow_unknown=allow_unknown)
    if isinstance(sources, CommentedSeq) and sources.fa.flow_style():
        sources.fa.set_block_style()
    first = len(sources)
    for spec in added:
        sources.append(_styled(spec))
    variables = list(_variables(added))
    if variables:
        # Where the pull request's reviewer reads the new sources, as a new file's header
        # lists them; the file's own header is the user's and stays as written.
        note = ["Added by imgix-reconciler export --merge.", *_to_set(variables)]
        sources.yaml_set_comment_before_after_key(first, before="\n".join(note), indent=dash_column)
    merged = start + dumped(document, yaml)
    _check_validates(merged)
    return Export(merged, len(added), variables)


def _styled(value: Any) -> Any:
    """`value` for ruamel: a map or list of plain values on one line (`{env: NAME}`,
    `[acme-blog]`), as people write them; larger ones in block style."""
    if isinstance(value, dict):
        styled: CommentedMap | CommentedSeq = CommentedMap(
            (key, _styled(item)) for key, item in value.items()
        )
        items = list(value.values())
    elif isinstance(value, list):
        styled = CommentedSeq(_styled(item) for item in value)
        items = value
    else:
        return value
    if all(not isinstance(item, (dict, list)) for item in items):
        styled.fa.set_flow_style()
    else:
        styled.fa.set_block_style()
    return styled


def out_exists(out: Path) -> ConfigurationError:
    """The refusal of an `--out` path that holds a file, a folder's entry or a link."""
    return ConfigurationError(
        f"{out} exists, and export never overwrites a file: use --merge {out} to "
        "add the live sources it lacks, or choose another --out"
    )


def check_new_file(out: Path) -> None:
    """Refuse an `--out` path that cannot become a new file, before anything is listed.

    Listing a large account takes minutes: a path that can only fail is refused first.
    Writing checks again (`atomic.write_new`), as the folder may change meanwhile.
    """
    folder = out.parent
    if not folder.exists():
        raise ConfigurationError(f"--out {out}: the folder {folder} does not exist")
    if not folder.is_dir():
        raise ConfigurationError(f"--out {out}: {folder} is not a folder")
    with contextlib.suppress(OSError, ValueError):  # not told: writing fails if too long
        longest = os.pathconf(folder, "PC_NAME_MAX")
        length = len(os.fsencode(out.name))
        if length > longest:
            raise ConfigurationError(
                f"--out {out}: the file name is {length} bytes long, more than the "
                f"{longest} this file system allows"
            )
    if out.is_dir() and not out.is_symlink():
        raise ConfigurationError(f"--out {out} is a folder: name a new file in it")
    if out.exists() or out.is_symlink():
        raise out_exists(out)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigurationError(f"--out {out}: cannot write in {folder}")


def _check_validates(text: str) -> None:
    """Refuse to hand out a text `validate --no-resolve` would reject (a backstop)."""
    with tempfile.TemporaryDirectory(prefix="imgix-reconciler-export-") as directory:
        path = Path(directory) / "sources.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load([path], resolve=False)
        except LoadError as error:
            # A message may name the file twice (a hostname's other source): both times.
            lines = [str(e).replace(str(path), "exported file") for e in error.errors]
            raise ExportError(
                "the export would not pass validation:", *map(escaped, lines)
            ) from None
