"""Small functions: none in ``streams/`` longer than 80 lines (the guide's "about 80"),
so a newcomer can read each one whole."""

from __future__ import annotations

import ast
from pathlib import Path

import streams

LIMIT = 80


def test_no_function_in_streams_is_longer_than_80_lines() -> None:
    root = Path(streams.__file__).parent
    long = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > LIMIT:
                    long.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({lines})")
    assert len(list(root.rglob("*.py"))) > 40, "the scan found the package"
    assert not long, "functions over 80 lines:\n" + "\n".join(long)
