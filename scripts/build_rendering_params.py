"""Derive the rendering-parameter catalogue from imgix's `imgix-url-params` npm package.

    python scripts/build_rendering_params.py                   # from the vendored copy
    python scripts/build_rendering_params.py --npm 11.36.0     # npm pack, then vendor it
    python scripts/build_rendering_params.py --from DIR_OR_JSON [--out DIR]

Reads the package's `dist/parameters.json` (BSD licence, Zebrafish Labs) and writes
`rendering_params.json` (the catalogue `reconciler.rendering_params` reads) and
`rendering_params.LICENSE` (the upstream notice, shipped beside it) into the package.
The output is deterministic: keys sorted, lists in upstream order, no timestamps, so
running it twice on the same input gives the same bytes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENDORED = HERE / "imgix-url-params"
PACKAGE = HERE.parent / "reconciler"
UPSTREAM = "imgix-url-params"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    given = parser.add_mutually_exclusive_group()
    given.add_argument("--from", dest="source", type=Path, help="parameters.json or package dir")
    given.add_argument("--npm", metavar="VERSION", help="fetch this version with `npm pack`")
    parser.add_argument("--out", type=Path, default=PACKAGE, help="directory to write into")
    args = parser.parse_args(argv)

    if args.npm:
        fetched = fetch(args.npm)
        VENDORED.mkdir(exist_ok=True)
        shutil.copyfile(fetched / "parameters.json", VENDORED / "parameters.json")
        shutil.copyfile(fetched / "LICENSE", VENDORED / "LICENSE")
        source = VENDORED
    else:
        source = args.source or VENDORED
    parameters, licence = locate(source)
    upstream = json.loads(parameters.read_text(encoding="utf-8"))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rendering_params.json").write_text(render(catalogue(upstream)), encoding="utf-8")
    (args.out / "rendering_params.LICENSE").write_text(
        notice(upstream["version"], licence.read_text(encoding="utf-8")), encoding="utf-8"
    )
    print(f"catalogue of {UPSTREAM} {upstream['version']} written to {args.out}")
    return 0


def fetch(version: str) -> Path:
    """`npm pack` the package into a temporary directory: its parameters.json and LICENSE."""
    work = Path(tempfile.mkdtemp(prefix="imgix-url-params-"))
    subprocess.run(
        ["npm", "pack", f"{UPSTREAM}@{version}", "--silent"],
        cwd=work,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    (tarball,) = work.glob("*.tgz")
    with tarfile.open(tarball) as archive:
        archive.extractall(work, filter="data")
    package = work / "package"
    (licence,) = package.glob("LICENSE*")
    out = work / "out"
    out.mkdir()
    shutil.copyfile(package / "dist" / "parameters.json", out / "parameters.json")
    shutil.copyfile(licence, out / "LICENSE")
    return out


def locate(source: Path) -> tuple[Path, Path]:
    """The parameters JSON and the licence file of a vendored copy, a package dir or a file."""
    if source.is_file():
        candidates = [source.parent / "LICENSE", source.parent / "LICENSE.md"]
        parameters = source
    else:
        parameters = next(
            p
            for p in (source / "parameters.json", source / "dist" / "parameters.json")
            if p.is_file()
        )
        candidates = [source / "LICENSE", source / "LICENSE.md"]
    licence = next((c for c in candidates if c.is_file()), None)
    if licence is None:
        sys.exit(f"no LICENSE beside {parameters}: the BSD notice must ship with the catalogue")
    return parameters, licence


def catalogue(upstream: dict[str, Any]) -> dict[str, Any]:
    """The catalogue: each parameter's aliases, value forms and dependencies."""
    aliases: dict[str, list[str]] = {}
    for alias, name in upstream["aliases"].items():
        if alias != name:
            aliases.setdefault(name, []).append(alias)
    parameters = {}
    for name, spec in upstream["parameters"].items():
        parameters[name] = {
            "aliases": sorted(aliases.get(name, [])),
            "depends": list(spec.get("depends", [])),
            "description": spec.get("short_description", ""),
            "docs": spec.get("url", ""),
            "forms": [form(expected) for expected in spec["expects"]],
        }
    return {
        "source": {"package": UPSTREAM, "version": upstream["version"], "license": "BSD-3-Clause"},
        "color_keywords": list(upstream["colorKeywordValues"]),
        "fonts": list(upstream["fontValues"]),
        "parameters": parameters,
    }


def form(expected: dict[str, Any]) -> dict[str, Any]:
    """One upstream `expects` entry as a value form; only strict ranges bound a value."""
    kind = expected["type"]
    limits = expected.get("strict_range") or {}
    if kind == "unit_scalar" and "min" in expected:
        limits = {"min": expected["min"], "max": expected["max"]}
    bounds = {key: limits[key] for key in ("min", "max") if key in limits}
    if kind == "string" and "possible_values" in expected:
        return {"form": "enum", "values": list(expected["possible_values"])}
    if kind == "integer" and "possible_values" in expected:
        return {"form": "integer_choice", "values": list(expected["possible_values"])}
    if kind == "list" and "length" in expected:
        items = [[form(e) for e in expected[str(i)]] for i in range(expected["length"])]
        return {"form": "tuple", "items": items}
    if kind == "list":
        values = expected.get("possible_values")
        return {"form": "list", **({"values": list(values)} if values else {})}
    if kind == "interval":
        lower = (expected["lower_bound"].get("strict_range") or {}).get("min")
        return {"form": "interval", **({"min": lower} if lower is not None else {})}
    if kind in ("integer", "number", "unit_scalar", "ratio"):
        return {"form": kind, **bounds}
    if kind in ("boolean", "string", "hex_color", "color_keyword", "font", "url", "path"):
        return {"form": kind}
    if kind == "timestamp":
        return {"form": "timestamp"}
    raise SystemExit(f"unknown value type {kind!r} in {UPSTREAM}: teach this script about it")


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def notice(version: str, licence: str) -> str:
    return (
        f"reconciler/rendering_params.json is derived from {UPSTREAM} {version}\n"
        f"(https://github.com/imgix/{UPSTREAM}), distributed under this licence:\n\n"
        + licence.rstrip()
        + "\n"
    )


if __name__ == "__main__":
    sys.exit(main())
