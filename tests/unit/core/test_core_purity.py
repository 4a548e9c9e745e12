"""The framework-free layers stay framework-free: streams/core (pure domain), streams/ingest
(the boundary) and streams/processing (processors over plain mappings) import no faust,
kafka, prometheus or settings library, directly or not, and nothing of the layers above."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

STREAMS = Path(__file__).resolve().parents[3] / "streams"
BANNED = (
    "faust",
    "kafka",
    "aiokafka",
    "prometheus_client",
    "mode",
    "pydantic",
    "pydantic_settings",
)
LAYERS = {  # layer -> the streams packages it may import
    "core": ("streams.core",),
    "ingest": ("streams.core", "streams.ingest"),
    "processing": ("streams.core", "streams.ingest", "streams.processing"),
}


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_layer_sources_import_no_framework_and_nothing_above(layer: str) -> None:
    modules = sorted((STREAMS / layer).rglob("*.py"))
    assert modules
    for path in modules:
        for name in _imports(path):
            assert name.split(".")[0] not in BANNED, f"{layer}/{path.name} imports {name}"
            if name.startswith("streams"):
                allowed = LAYERS[layer]
                assert name.startswith(allowed), f"{layer}/{path.name} imports {name} (above it)"


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_importing_a_layer_loads_no_framework(layer: str) -> None:
    code = (
        f"import sys, pkgutil, importlib, streams.{layer} as c\n"
        f"for m in pkgutil.walk_packages(c.__path__, 'streams.{layer}.'):\n"
        "    importlib.import_module(m.name)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {BANNED!r}]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
