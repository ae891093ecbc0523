"""Imports inside runtime/ run one way: the task layer uses models, models use physics, physics uses
the pipeline, the pipeline uses io, and everything may use the ground (config, monitor, errors, deps).

A static scan of every import statement (function-level ones included), so an import that runs back
up fails here the day it is written, not when a circular import bites at run time."""
import ast

from support import REPO

RUNTIME = REPO / "runtime"
# rank of each room: a module may import rooms of its own rank or lower
RANKS = {"parameters": 6, "tasks": 6, "models": 5, "physics": 4, "pipeline": 3, "io": 2,
         "deps": 1, "native": 1, "config": 0, "monitor": 0, "errors": 0, "": 0}


def room(parts):
    """The room of a module given as parts under runtime/ (``["models", "spectf"]`` → ``models``)."""
    return parts[0] if parts else ""


def imports(path, runtime=RUNTIME):
    """(line, imported module parts under ``runtime``) of every runtime import in ``path``."""
    rel = path.relative_to(runtime).with_suffix("").parts
    package = list(rel[:-1]) if rel[-1] != "__init__" else list(rel[:-1])
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                if node.level - 1 > len(package):
                    continue  # above runtime/ (the plugin root): not a runtime room
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.startswith("spectral_transformers.runtime"):
                base = target = node.module.split(".")[2:]
            else:
                continue
            if not node.module or not target:  # "from . import x" / "from runtime import x": x is the room
                for alias in node.names:
                    yield node.lineno, target + [alias.name]
            else:
                yield node.lineno, target


def test_rooms_are_known():
    for path in RUNTIME.rglob("*.py"):
        parts = path.relative_to(RUNTIME).with_suffix("").parts
        name = parts[0] if len(parts) > 1 else parts[0]
        assert name in RANKS or name == "__init__", f"{path}: new room {name!r}: give it a rank here"


def test_no_import_runs_back_up():
    bad = []
    for path in sorted(RUNTIME.rglob("*.py")):
        parts = path.relative_to(RUNTIME).with_suffix("").parts
        own = RANKS.get(parts[0] if len(parts) > 1 or parts[0] != "__init__" else "", 0)
        for line, target in imports(path):
            other = RANKS.get(room(target))
            if other is not None and other > own:
                bad.append(f"{path.relative_to(REPO)}:{line} imports runtime.{'.'.join(target)}")
    assert not bad, "imports that run back up:\n" + "\n".join(bad)


def test_the_scan_sees_back_imports(tmp_path):
    """The scan itself: a function-level upward import in a pipeline module is found."""
    fake = tmp_path / "runtime" / "pipeline"
    fake.mkdir(parents=True)
    (fake / "x.py").write_text("def f():\n    from ..models import spectf\n    from . import writer\n"
                               "from spectral_transformers.runtime.physics.toa import X\n")
    found = list(imports(fake / "x.py", tmp_path / "runtime"))
    assert sorted(found) == [(2, ["models"]), (3, ["pipeline", "writer"]), (4, ["physics", "toa"])]
    assert [RANKS[room(t)] > RANKS["pipeline"] for _, t in sorted(found)] == [True, False, True]
