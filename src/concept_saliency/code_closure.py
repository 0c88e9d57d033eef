"""Which library modules a workflow stage runs: the import closure of its stage module.

Every rule declares these files as inputs (``code=stage_code(...)`` in the rules), so that
editing any module a stage uses reruns that stage, and only the stages that use it. The
list is derived from the source itself, so it cannot drift from the code: the closure
follows every ``import`` and ``from ... import`` of the package, at module level and
inside functions (stages import Keras-dependent modules lazily), through package
``__init__`` files.

Light on purpose (``ast`` only, nothing is imported): the Snakefile calls it while it
builds the DAG.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

PACKAGE = "concept_saliency"
ROOT = Path(__file__).resolve().parent


def _module_file(dotted: str) -> Path | None:
    """The file of ``concept_saliency.a.b``: ``a/b.py`` or ``a/b/__init__.py``; None if neither."""
    parts = dotted.split(".")[1:]
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _dotted(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join([PACKAGE, *parts])


def _imported(path: Path) -> set[str]:
    """Dotted names of package modules that ``path`` imports (directly), and their parents."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _dotted(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            elif node.module and node.module.split(".")[0] == PACKAGE:
                module = node.module
            else:
                continue
            names.add(module)
            # `from . import concepts` imports a module, `from .x import f` a name: keep modules
            names.update(f"{module}.{a.name}" for a in node.names
                         if _module_file(f"{module}.{a.name}") is not None)
    # importing a.b.c runs the __init__ of a and a.b too
    with_parents = set()
    for name in names:
        parts = name.split(".")
        with_parents.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
    return with_parents


@lru_cache(maxsize=None)
def module_closure(dotted: str) -> tuple[Path, ...]:
    """Files of ``dotted`` and of every package module it imports, transitively (sorted)."""
    seen: dict[str, Path] = {}
    parts = dotted.split(".")
    todo = [".".join(parts[:i]) for i in range(2, len(parts) + 1)]  # with its packages' __init__
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(name)
        if path is None:
            raise ValueError(f"{name}: no such module in {ROOT}")
        seen[name] = path
        todo += [n for n in _imported(path) if n not in seen and _module_file(n) is not None]
    top = ROOT / "__init__.py"
    return tuple(sorted({*seen.values(), top}))


def stage_code(stage_module: str) -> list[str]:
    """The library files the stage module ``concept_saliency.stages.<stage_module>`` runs."""
    return [str(p) for p in module_closure(f"{PACKAGE}.stages.{stage_module}")]
