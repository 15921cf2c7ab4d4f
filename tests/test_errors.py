import inspect

import pytest

import reconciler
from reconciler import (
    applier,
    client,
    errors,
    export,
    loader,
    pacing,
    planner,
    reconcile,
    references,
)
from reconciler.errors import EXIT_ERROR, EXIT_STALE, ReconcilerError


def _raised_for_the_user() -> list[type[BaseException]]:
    """Every public exception class the package's modules define."""
    found = []
    for module in (errors, applier, client, export, loader, pacing, planner, reconcile, references):
        for name, member in vars(module).items():
            if (
                inspect.isclass(member)
                and issubclass(member, BaseException)
                and not name.startswith("_")
                and member.__module__.startswith("reconciler.")
            ):
                found.append(member)
    return found


def test_every_error_raised_for_the_user_derives_from_the_one_root() -> None:
    # Caught where they are raised and turned into a located error or an action's failure.
    internal = {"NotStarted", "UnreadableReference", "MissingReference", "Unreadable"}
    for error in _raised_for_the_user():
        if error.__name__ not in internal:
            assert issubclass(error, ReconcilerError), error


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (reconciler.StalePlan("changed"), EXIT_STALE),
        (reconciler.ConfigurationError("no key"), EXIT_ERROR),
        (reconciler.LoadError([]), EXIT_ERROR),
        (reconciler.ApplyRefused("no"), EXIT_ERROR),
        (reconciler.ApiError(500, "Server Error", None, None), EXIT_ERROR),
    ],
)
def test_each_error_carries_the_exit_code_it_means(error: ReconcilerError, code: int) -> None:
    assert error.exit_code == code


def test_the_root_is_public_and_documents_the_whole_tree() -> None:
    assert reconciler.ReconcilerError is ReconcilerError
    for error in _raised_for_the_user():
        if issubclass(error, ReconcilerError) and error is not ReconcilerError:
            assert error.__name__ in (errors.__doc__ or ""), error


def test_the_exit_codes_are_the_ones_product_md_promises() -> None:
    # Scripts and CI branch on these numbers: they never change.
    assert (errors.EXIT_OK, EXIT_ERROR, errors.EXIT_CHANGES, errors.EXIT_PARTIAL) == (0, 1, 2, 3)
    assert EXIT_STALE == 4 == reconciler.StalePlan("changed").exit_code


def test_errors_keep_what_the_cli_needs_to_point_at_the_files() -> None:
    # The CLI turns spec indices and located errors into file:line:column lines.
    assert reconciler.PlanError("twice", spec_indices=iter([3, 1])).spec_indices == (3, 1)
    assert reconciler.PlanError("once").spec_indices == ()
    located = [loader.LocatedError("f.yaml", 2, 3, "name", "bad")]
    refused = reconciler.ApplyRefused("no", located=located)
    assert refused.located == tuple(located) and refused.refusals == ()
    assert str(refused) == "no"
