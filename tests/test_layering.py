"""docs/DESIGN.md's one-way import rule, checked by walking every module's imports (ast)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kg", "eval", "training", "graphrec")
ALLOWED = {
    "kg": set(),
    "eval": set(),
    "training": {"kg", "eval"},
    "graphrec": {"kg", "training", "eval"},
}


def imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_only_what_design_allows(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"package {package} has no modules"
    violations = []
    for path in files:
        for name in imported_top_levels(path) & set(PACKAGES):
            if name != package and name not in ALLOWED[package]:
                violations.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not violations, "one-way import rule broken:\n" + "\n".join(violations)


def test_checker_catches_a_violation(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("import os\nfrom training.base import Learner\nfrom . import sibling\n")
    assert imported_top_levels(bad) == {"os", "training"}
