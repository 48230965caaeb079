"""A server process freezes its start-up heap (see ``main._freeze_startup_heap``)."""

from __future__ import annotations

import gc

from src.app.main import GC_YOUNG_THRESHOLD, _freeze_startup_heap


def test_start_up_freezes_the_heap_and_collects_young_objects_less_often() -> None:
    threshold = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    try:
        _freeze_startup_heap()
        # The app, its models and its libraries: far more than anything a test made.
        assert gc.get_freeze_count() > frozen_before + 50_000
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *threshold[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
