"""What other domains do when a session completes, registered by the app at start-up.

Domains above sessions (defects) must not be imported here; they register a hook instead
(see ``src/app/routers.py``). Hooks run inside the completing request's transaction, after
the status change is flushed and before it commits, so their writes commit (or roll back)
with it, exactly once: a completed session can never complete again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from src.app.core.tenancy import Principal
from src.app.sessions.models import TestSession

CompletionHook = Callable[[AsyncSession, TestSession, Principal], Awaitable[None]]

_completion_hooks: list[CompletionHook] = []


def on_session_completed(hook: CompletionHook) -> None:
    """Registers ``hook`` (once, however often this is called with it)."""
    if hook not in _completion_hooks:
        _completion_hooks.append(hook)


async def run_completion_hooks(db: AsyncSession, test_session: TestSession, by: Principal) -> None:
    for hook in _completion_hooks:
        await hook(db, test_session, by)
