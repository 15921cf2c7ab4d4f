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

from reconciler.applier import ActionResult, ApplyRefused, ApplyReport
from reconciler.client import ApiError, ClientError, ImgixClient
from reconciler.errors import (
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
from reconciler.render import render
from reconciler.specs import DesiredState, SecretRef, SourceSpec

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
