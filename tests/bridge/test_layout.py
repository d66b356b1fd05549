"""The bridge's public classes and functions say in a line what they are for."""

from __future__ import annotations

import ast
from pathlib import Path

BRIDGE = Path(__file__).parents[2] / "bridge"


def test_every_public_class_and_function_of_the_bridge_has_a_docstring():
    missing = []
    for path in sorted(BRIDGE.rglob("*.py")):
        def visit(node: ast.AST, prefix: str = "", path: Path = path) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    if child.name.startswith("_"):
                        continue
                    if not ast.get_docstring(child):
                        where = path.relative_to(BRIDGE.parent)
                        missing.append(f"{where}:{child.lineno} {prefix}{child.name}")
                    if isinstance(child, ast.ClassDef):
                        visit(child, f"{child.name}.")

        visit(ast.parse(path.read_text()))
    assert not missing, "\n".join(missing)
