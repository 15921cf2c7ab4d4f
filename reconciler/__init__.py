"""imgix-reconciler: keep imgix Sources in git.

The library surface is what the CLI itself uses: load desired-state files, connect to
the API (or the built-in emulator), plan, render and apply.

    connection = connect(None)                      # IMGIX_API_KEY from the environment
    result = await plan_files([Path("sources.yaml")], connection)
    print(render(result.plan, "text"))
    report = await apply_with_report(result.plan, connection)

A plan saved for a later `apply` carries a MAC: `authenticate_plan` adds it and
`read_plan_file` checks it.

Every error raised for the user derives from `ReconcilerError`, whose `exit_code` is the
exit the CLI gives for it (`reconciler.errors` draws the whole tree).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Bound now: the submodule of the same name would otherwise shadow the function once
# anything imports it (rendering a plan imports only its format's module).
from reconciler.render import render

# Each public name and the module that defines it: imported on first use (PEP 562), so
# `import reconciler` (and the CLI's start-up) does not load every step.
_HOMES = {
    "ActionResult": "report",
    "ApplyRefused": "errors",
    "ApplyReport": "report",
    "ApiError": "client",
    "ClientError": "client",
    "ImgixClient": "client",
    "ConfigurationError": "errors",
    "ExportError": "errors",
    "PlanError": "errors",
    "PlanFileError": "errors",
    "ReconcilerError": "errors",
    "StalePlan": "errors",
    "Export": "export",
    "export_yaml": "export",
    "LiveSource": "live",
    "LoadedState": "loader",
    "LoadError": "loader",
    "LocatedError": "loader",
    "load": "loader",
    "Action": "plan",
    "Change": "plan",
    "Notice": "plan",
    "Plan": "plan",
    "Connection": "reconcile",
    "PlanResult": "reconcile",
    "apply_with_report": "reconcile",
    "authenticate_plan": "reconcile",
    "connect": "reconcile",
    "plan_files": "reconcile",
    "read_plan_file": "reconcile",
    "DesiredState": "specs",
    "SecretRef": "specs",
    "SourceSpec": "specs",
}

__all__ = [
    "Action",
    "ActionResult",
    "ApiError",
    "ApplyRefused",
    "ApplyReport",
    "Change",
    "ClientError",
    "ConfigurationError",
    "Connection",
    "DesiredState",
    "Export",
    "ExportError",
    "ImgixClient",
    "LiveSource",
    "LoadError",
    "LoadedState",
    "LocatedError",
    "Notice",
    "Plan",
    "PlanError",
    "PlanFileError",
    "PlanResult",
    "ReconcilerError",
    "SecretRef",
    "SourceSpec",
    "StalePlan",
    "apply_with_report",
    "authenticate_plan",
    "connect",
    "export_yaml",
    "load",
    "plan_files",
    "read_plan_file",
    "render",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'reconciler' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"reconciler.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


if TYPE_CHECKING:
    from reconciler.client import ApiError, ClientError, ImgixClient
    from reconciler.errors import (
        ApplyRefused,
        ConfigurationError,
        ExportError,
        PlanError,
        PlanFileError,
        ReconcilerError,
        StalePlan,
    )
    from reconciler.export import Export, export_yaml
    from reconciler.live import LiveSource
    from reconciler.loader import LoadedState, LoadError, LocatedError, load
    from reconciler.plan import Action, Change, Notice, Plan
    from reconciler.reconcile import (
        Connection,
        PlanResult,
        apply_with_report,
        authenticate_plan,
        connect,
        plan_files,
        read_plan_file,
    )
    from reconciler.report import ActionResult, ApplyReport
    from reconciler.specs import DesiredState, SecretRef, SourceSpec
