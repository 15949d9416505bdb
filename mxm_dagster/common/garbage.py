"""Python's cyclic garbage collector kept away from large, long-lived object graphs.

Loading thousands of SQLMesh models, or building thousands of asset definitions, allocates
millions of objects that all live on. The collector scans them anyway: each young collection
walks what was just allocated, each full one the whole heap, and every later collection in the
process walks them again. At 5,000 models that was a third of the model introspection in the
load child and a quarter of a warm definitions load (docs/benchmarks.md, ADR 23). Reference
counting still frees everything as usual; only cycles wait.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collection_paused() -> Iterator[None]:
    """The block runs with the cyclic collector off, for a process that ends soon after (the
    load child): it is on again after the block if it was before."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


#: Below this many objects built, freezing would save the collector nothing worth keeping frozen
#: cycles for good: a 20-model project's definitions are ~3,000 objects, 5,000 models' ~520,000.
FREEZE_FROM_OBJECTS = 50_000


@contextmanager
def built_to_last(freeze_from: int = FREEZE_FROM_OBJECTS) -> Iterator[None]:
    """The block builds what the process keeps to its end (definitions, a loaded Context): it
    runs with the collector paused, then the cycles it left behind are collected in one pass
    over what it allocated and, when it built at least `freeze_from` objects, what survives is
    frozen out of every later collection (`gc.freeze`). A frozen object is still freed when
    nothing refers to it; a frozen cycle that becomes garbage is not, which is why only large
    builds that last are frozen."""
    with collection_paused():
        yield
        built = gc.get_count()[0]  # the youngest generation: everything the block allocated
        gc.collect(0)
        if built >= freeze_from:
            gc.freeze()
