"""One home for source names: no source name is written as a string literal outside :mod:`training.sources.names`.

Every non-test module of kg/, eval/, training/ and graphrec/ is parsed (ast) and a string
constant equal to a source name (``"als"``, ``"gnn"``, ``"pop"``...) fails the test where
the code uses it *as a source*:

* a dict key (``{"als": ...}``) or a subscript (``sources["als"]``);
* a comparison operand (``name == "als"``, ``name in ("als", "gnn")``), unless the other
  side is named in :data:`NOT_SOURCES` (``init == "text"`` is the GNN's initialisation,
  ``"gnn" in stages`` a pipeline stage);
* a positional argument of a call (``sources.get("als")``, ``self._make("gnn")``,
  ``work.source_dir("fit", "gnn")``), unless the function, or the name the call's value is
  assigned to, is named in :data:`NOT_SOURCES` (``roles.columns("text")``,
  ``init: str = _doc("...", "text")``);
* the value given to, assigned to, or defaulting a name that says source: ``name``,
  ``desc`` (a progress bar's label), ``primary`` or anything containing ``source``
  (``name = "als"`` in a class body, ``desc="gnn"``, ``source="als"``);
* an element of a tuple, list or set made only of two or more source names
  (``("gnn", "als", "text")``);
* the fallback of ``or`` (``primary or "text"``).

Other strings that happen to spell a source are left alone: docstrings, keyword arguments
not named for a source (``init="text"``), plain values (``mode = "text" if ... else "random"``),
tuples that are not all source names (``("text", "categorical", ...)``, the stages).
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from training.sources.names import EMBEDDING_PRECEDENCE, Source

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kg", "eval", "training", "graphrec")
HOME = Path("training/sources/names.py")
SOURCE_NAMES = frozenset(member.value for member in Source)
NOT_SOURCES = frozenset({"init", "stage", "stages", "columns"})
"""Names of what is compared with, called, or assigned to when a string spells a source without being one:
the GNN's initialisation (``init == "text"``), pipeline stages (``"gnn" in stages``), kg's attribute
roles (``roles.columns("text")``)."""

def _name_of(node: ast.AST) -> str:
    """What an expression is called: ``x`` -> x, ``a.b`` -> b, ``d["k"]`` -> k, ``f(...)`` -> f's name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
        return node.slice.value
    if isinstance(node, ast.Call):
        return _name_of(node.func)
    return ""


def _says_source(identifier: str | None) -> bool:
    return bool(identifier) and (identifier in {"name", "desc", "primary"} or "source" in identifier.lower())


def _is_source_constant(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in SOURCE_NAMES


def _compared_as_source(compare: ast.Compare, operand: ast.AST) -> bool:
    others = [side for side in [compare.left, *compare.comparators] if side is not operand]
    return not any(_name_of(side) in NOT_SOURCES for side in others)


def _assigned_to(node: ast.AST | None) -> set[str]:
    """The names an assignment statement binds (empty for anything else)."""
    if isinstance(node, ast.Assign):
        return {_name_of(target) for target in node.targets}
    if isinstance(node, ast.AnnAssign):
        return {_name_of(node.target)}
    return set()


def _context(node: ast.Constant, parent: ast.AST, grandparent: ast.AST | None) -> str | None:
    """How a source-name constant is used, when it is used as a source; else ``None``."""
    if isinstance(parent, ast.Dict) and any(key is node for key in parent.keys):
        return "dict key"
    if isinstance(parent, ast.Subscript) and parent.slice is node:
        return "subscript"
    if isinstance(parent, ast.Compare):
        return "comparison" if _compared_as_source(parent, node) else None
    if isinstance(parent, (ast.Tuple, ast.List, ast.Set)):
        if isinstance(grandparent, ast.Compare):
            return "comparison" if _compared_as_source(grandparent, parent) else None
        if len(parent.elts) >= 2 and all(_is_source_constant(e) for e in parent.elts):
            return "collection of source names"
        return None
    if isinstance(parent, ast.Call) and any(arg is node for arg in parent.args):
        callee = _name_of(parent.func)
        if callee in NOT_SOURCES or _assigned_to(grandparent) & NOT_SOURCES:
            return None
        return f"argument of {callee}()"
    if isinstance(parent, ast.keyword):
        return f"{parent.arg}=" if _says_source(parent.arg) else None
    if isinstance(parent, (ast.Assign, ast.AnnAssign)) and parent.value is node:
        named = sorted(name for name in _assigned_to(parent) if _says_source(name))
        return f"{named[0]} =" if named else None
    if isinstance(parent, ast.arguments):
        positional = parent.posonlyargs + parent.args
        pairs = list(zip(positional[len(positional) - len(parent.defaults) :], parent.defaults))
        pairs += [(arg, default) for arg, default in zip(parent.kwonlyargs, parent.kw_defaults) if default is not None]
        named = [arg.arg for arg, default in pairs if default is node and _says_source(arg.arg)]
        return f"default of {named[0]}" if named else None
    if isinstance(parent, ast.BoolOp):
        return "fallback"
    return None


def source_literals(source: str, filename: str = "<string>") -> list[tuple[int, str, str]]:
    """``(line, literal, context)`` of every source name used as a source in ``source`` (Python code)."""
    tree = ast.parse(source, filename=filename)
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    found = []
    for node in ast.walk(tree):
        if _is_source_constant(node):
            parent = parents[node]
            context = _context(node, parent, parents.get(parent))
            if context is not None:
                found.append((node.lineno, node.value, context))
    return sorted(found)


def _modules() -> list[Path]:
    files = [path.relative_to(ROOT) for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]
    assert HOME in files, f"{HOME} is gone: update this test"
    return [path for path in files if path != HOME]


def _literals_of(path: Path) -> list[tuple[int, str, str]]:
    return source_literals((ROOT / path).read_text(encoding="utf-8"), str(path))


def test_no_source_name_literal_outside_the_source_type():
    found = [
        f"{path}:{line}: {literal!r} ({context})"
        for path in _modules()
        for line, literal, context in _literals_of(path)
    ]
    assert not found, "source names written as string literals; use training.sources.names.Source:\n" + "\n".join(found)


def test_checker_finds_each_use_as_a_source():
    code = '''
"""Docstrings may say "als"."""
class L:
    name = "als"
    other = "itemknn"
x = {"gnn": 1}
y = sources["pop"]
z = sources.get("ease")
if name == "graphfilter" or name in ("als", "text"):
    pass
order = ("gnn", "als", "text")
bar(desc="gnn", source="pop", init="text")
def f(primary="gnn", role="text"):
    return primary or "text"
work.source_dir("fit", "gnn")
self._fit_cf("als")
'''
    assert source_literals(code) == [
        (4, "als", "name ="),
        (6, "gnn", "dict key"),
        (7, "pop", "subscript"),
        (8, "ease", "argument of get()"),
        (9, "als", "comparison"),
        (9, "graphfilter", "comparison"),
        (9, "text", "comparison"),
        (11, "als", "collection of source names"),
        (11, "gnn", "collection of source names"),
        (11, "text", "collection of source names"),
        (12, "gnn", "desc="),
        (12, "pop", "source="),
        (13, "gnn", "default of primary"),
        (14, "text", "fallback"),
        (15, "gnn", "argument of source_dir()"),
        (16, "als", "argument of _fit_cf()"),
    ]


def test_checker_leaves_other_meanings_alone():
    code = """
INITS = ("text", "random")
ROLES = ("text", "categorical", "multi", "numeric")
STAGES = ("text", "als", "neighbors", "gnn")
if kwargs["init"] == "text" or learner.init == "text" or "als" in self.stages:
    pass
names = item_roles.columns("text")
init: str = _doc("initialisation: text or random", "text")
mode = "text" if projection else "random"
f(init="text", column="text")
"""
    assert source_literals(code) == []


def test_a_member_is_its_plain_string(tmp_path):
    import json

    from safetensors.numpy import load_file, save_file

    assert [member.value for member in Source] == ["text", "als", "itemknn", "ease", "graphfilter", "gnn", "pop"]
    for member in Source:
        plain = member.value
        assert member == plain and hash(member) == hash(plain) and Source(plain) is member
        assert (str(member), f"{member}", f"{member:>12}", repr(member)) == (plain, plain, f"{plain:>12}", repr(plain))
        assert {plain: 1}[member] == 1 and {member: 1}[plain] == 1
        assert json.loads(json.dumps({member: [member]})) == {plain: [plain]}
        assert (tmp_path / member).name == plain
    save_file({"x": np.zeros(1, np.float32)}, str(tmp_path / "t.safetensors"), metadata={Source.GNN: Source.ALS})
    with safe_open(str(tmp_path / "t.safetensors"), "np") as f:
        assert f.metadata() == {"gnn": "als"}
    assert load_file(str(tmp_path / "t.safetensors"))["x"].shape == (1,)
    with pytest.raises(ValueError, match="'hybrid' is not a valid Source"):
        Source("hybrid")


def test_labels_and_precedence():
    assert [member.label for member in Source] == [
        "text similarity", "ALS", "item-KNN", "EASE", "graph filter", "GNN", "MostPop",
    ]  # fmt: skip
    assert Source.label_of("itemknn") == "item-KNN" and Source.label_of("hybrid - kg") == "hybrid - kg"
    assert EMBEDDING_PRECEDENCE == ("gnn", "als", "text")


def test_every_learner_names_itself_with_a_source_or_a_gnn_kind():
    from training.pipeline.phase import SOURCE_CLASSES

    assert all(cls.name == name for name, cls in SOURCE_CLASSES.items())
    # The GNN source is fitted by one of its learner kinds; MostPop is a baseline, not a saved learner.
    assert set(SOURCE_CLASSES) == set(Source) - {Source.GNN, Source.POP} | {"lightgcn", "gat"}
