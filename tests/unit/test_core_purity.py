"""streams/core must stay framework-free: no faust, kafka or prometheus, directly or not."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "streams" / "core"
BANNED = ("faust", "kafka", "aiokafka", "prometheus_client", "mode")


def test_core_sources_import_no_framework() -> None:
    modules = sorted(CORE.rglob("*.py"))
    assert modules
    for path in modules:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in BANNED, f"{path.name} imports {name}"


def test_importing_core_loads_no_framework() -> None:
    code = (
        "import sys, pkgutil, importlib, streams.core as c\n"
        "for m in pkgutil.walk_packages(c.__path__, 'streams.core.'):\n"
        "    importlib.import_module(m.name)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {BANNED!r}]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
