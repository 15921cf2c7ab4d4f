"""Command line: parse options, call the steps, map outcomes to exit codes.

Each command is thin: the logic it calls lives in the module of its step.
"""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="imgix-reconciler")
def main() -> None:
    """Keep imgix Sources in git: validate, plan, apply and detect drift."""


# Commands are registered below, one function each; see product.md for the contract.
