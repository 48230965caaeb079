"""What other domains do when a session is created or completes, registered by the app at
start-up.

Domains above sessions (defects) must not be imported here; they register a hook instead
(see ``src/app/routers.py``). Hooks run inside the completing request's transaction, after
the status change is flushed and before it commits, so their writes commit (or roll back)
with it, exactly once: a completed session can never complete again.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from src.app.core.settings import Settings
from src.app.core.tenancy import Principal
from src.app.sessions.models import TestSession

# Completion hooks get the app's settings (the schedule needs its time zone).
CompletionHook = Callable[[AsyncSession, TestSession, Principal, Settings], Awaitable[None]]
# The routines (asset id, rule code) the new session is planned to cover.
CreationHook = Callable[
    [AsyncSession, TestSession, Sequence[tuple[uuid.UUID, str]]], Awaitable[None]
]

_completion_hooks: list[CompletionHook] = []
_creation_hooks: list[CreationHook] = []


def on_session_completed(hook: CompletionHook) -> None:
    """Registers ``hook`` (once, however often this is called with it)."""
    if hook not in _completion_hooks:
        _completion_hooks.append(hook)


async def run_completion_hooks(
    db: AsyncSession, test_session: TestSession, by: Principal, settings: Settings
) -> None:
    for hook in _completion_hooks:
        await hook(db, test_session, by, settings)


def on_session_created(hook: CreationHook) -> None:
    """Registers ``hook`` (once) to run when a session is created (201)."""
    if hook not in _creation_hooks:
        _creation_hooks.append(hook)


async def run_creation_hooks(
    db: AsyncSession, test_session: TestSession, routines: Sequence[tuple[uuid.UUID, str]]
) -> None:
    for hook in _creation_hooks:
        await hook(db, test_session, routines)
