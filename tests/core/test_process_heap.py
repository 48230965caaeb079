"""A server process freezes its start-up heap (see ``main._freeze_startup_heap``)."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from src.app.core.settings import Settings
from src.app.main import GC_YOUNG_THRESHOLD, create_app


@contextmanager
def _restored_logging() -> Iterator[None]:
    """The lifespan configures the process's logging: give the test run its own back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    access = logging.getLogger("uvicorn.access")
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        access.disabled = False


async def test_the_lifespan_freezes_the_heap_and_collects_young_objects_less_often() -> None:
    threshold = gc.get_threshold()
    gc.unfreeze()  # start from nothing frozen, whatever ran before
    app = create_app(Settings(audit_seal_interval_seconds=0))
    try:
        with _restored_logging():
            async with app.router.lifespan_context(app):
                # The app, its models and its libraries: far more than a test makes.
                assert gc.get_freeze_count() > 50_000
                assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *threshold[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
