"""The collector pauses of common/garbage.py, each in a fresh interpreter: freezing is for good,
so it must not happen to the test process itself."""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import gc, json, sys
from mxm_dagster.common.garbage import built_to_last, collection_paused

class Node:
    def __init__(self):
        self.me = self  # a cycle: only the collector frees it

def build(n):
    kept = [[i] for i in range(n)]  # lists are always tracked by the collector
    for _ in range(100):
        Node()  # cyclic garbage the build leaves behind
    return kept

frozen_before = gc.get_freeze_count()
with built_to_last(freeze_from=int(sys.argv[1])):
    paused = not gc.isenabled()
    kept = build(int(sys.argv[2]))
gc.disable()
with collection_paused():
    pass
print(json.dumps({
    "paused": paused,
    "enabled_after": gc.isenabled() is False,  # it was off before the second block: stays off
    "frozen": gc.get_freeze_count() - frozen_before,
    "cycles_left": sum(isinstance(o, Node) for o in gc.get_objects()),
}))
"""


def _probe(freeze_from: int, objects: int) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(freeze_from), str(objects)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_a_large_build_is_frozen_after_its_cycles_are_collected() -> None:
    found = _probe(freeze_from=10_000, objects=50_000)
    assert found["paused"] is True
    assert found["cycles_left"] == 0  # collected before the freeze, not frozen for good
    assert found["frozen"] >= 50_000  # what the build kept is out of later collections
    assert found["enabled_after"] is True


def test_a_small_build_is_not_frozen() -> None:
    found = _probe(freeze_from=10_000, objects=1_000)
    assert found["paused"] is True
    assert found["cycles_left"] == 0
    assert found["frozen"] == 0
