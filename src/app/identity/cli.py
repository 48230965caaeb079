"""Identity commands: `firemode users create`, `firemode demo seed`."""

from __future__ import annotations

import typer


def register(cli: typer.Typer) -> None:
    """Adds the identity command groups to the ``firemode`` command."""
