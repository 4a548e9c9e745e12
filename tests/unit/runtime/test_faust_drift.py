"""Faust's internals are fenced in streams/runtime/faust_internals.py, and pinned there.

The worker's exactness leans on private parts of faust, mode and aiokafka (a copied fetch
loop, the ack bookkeeping, the store's databases). An upgrade may change them silently,
so each relied-on function's installed source is compared with the fingerprint recorded
when it was last read, and no other product module may use a private name of theirs.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import faust.streams
import pytest

from streams.runtime import faust_internals
from streams.runtime.faust_internals import FINGERPRINTS, RELIED_ON, fingerprint

STREAMS = Path(faust_internals.__file__).resolve().parents[1]
FRAMEWORKS = ("faust", "mode", "aiokafka")


def test_every_relied_on_function_is_fingerprinted() -> None:
    recorded = json.loads(FINGERPRINTS.read_text())
    assert set(recorded) == set(RELIED_ON), (
        "record with: python -m streams.runtime.faust_internals --record"
    )


@pytest.mark.parametrize("name", sorted(RELIED_ON))
def test_installed_source_matches_its_fingerprint(name: str) -> None:
    recorded = json.loads(FINGERPRINTS.read_text())[name]
    assert fingerprint(name) == recorded, (
        f"{name} changed in the installed version (fingerprint {fingerprint(name)}, recorded "
        f"{recorded}). Re-read it: streams/runtime/faust_internals.py relies on it because "
        f"{RELIED_ON[name]}. Then record: python -m streams.runtime.faust_internals --record"
    )


def test_the_compiled_stream_iterator_switch_still_exists() -> None:
    """route_acks_through_consumer sets it to None; a rename would silently undo issue 11."""
    assert hasattr(faust.streams, "_CStreamIterator")


def _imports_a_framework(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        if any(n.split(".")[0] in FRAMEWORKS for n in names):
            return True
    return False


def test_no_other_module_touches_a_private_name() -> None:
    """Outside faust_internals.py, a module that imports faust, mode or aiokafka may use a
    private attribute only of its own objects (``self._x``), and imports no private name."""
    found = []
    for path in sorted(STREAMS.rglob("*.py")):
        if path.name == "faust_internals.py":
            continue
        tree = ast.parse(path.read_text())
        if not _imports_a_framework(tree):
            continue
        for node in ast.walk(tree):
            private = None
            if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
                own = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
                if not own and not node.attr.startswith("__"):
                    private = node.attr
            elif isinstance(node, ast.ImportFrom):
                private = next((a.name for a in node.names if a.name.startswith("_")), None)
            if private:
                found.append(f"{path.relative_to(STREAMS.parent)}:{node.lineno} {private}")
    assert not found, f"private names used outside streams/runtime/faust_internals.py: {found}"
