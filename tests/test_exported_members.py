import reconciler

PUBLIC = {
    # errors: every one the package raises for the user derives from this root
    "ReconcilerError",
    # load
    "load", "LoadedState", "LoadError", "LocatedError", "DesiredState", "SourceSpec", "SecretRef",
    # connect and fetch
    "connect", "Connection", "ConfigurationError", "ImgixClient", "ApiError", "ClientError",
    "LiveSource",
    # plan and render
    "plan_files", "PlanResult", "PlanError", "PlanFileError", "Plan", "Action", "Change", "Notice",
    "render", "authenticate_plan", "read_plan_file", "export_yaml", "Export", "ExportError",
    # apply
    "apply_with_report", "ApplyReport", "ActionResult", "ApplyRefused", "StalePlan",
}  # fmt: skip


def test_the_public_surface_is_exactly_what_is_meant_to_be_public() -> None:
    assert set(reconciler.__all__) == PUBLIC


def test_every_exported_name_exists_and_belongs_to_the_package() -> None:
    for name in reconciler.__all__:
        member = getattr(reconciler, name)
        assert member.__module__.startswith("reconciler."), name
