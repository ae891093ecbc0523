"""The runtime core is QGIS-free: every module under runtime/ imports with QGIS and Qt blocked.

One guard over the whole package (found by walking the folder, so a new module is covered the day it
is added): training/, bench/, scripts and the Dask batch runner use the runtime without QGIS."""
import os
import subprocess
import sys

from support import PLUGINS, REPO

BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('qgis', 'PyQt5', 'PyQt6', 'processing'):
            raise ImportError(f'{name} is blocked: the runtime must not import QGIS or Qt')
sys.meta_path.insert(0, Block())
import importlib
for name in sys.argv[1:]:
    importlib.import_module(name)
bad = sorted(m for m in sys.modules if m.split('.')[0] in ('qgis', 'PyQt5', 'PyQt6', 'processing'))
assert not bad, bad
print(len(sys.argv) - 1)
"""


def runtime_modules():
    names = []
    root = REPO / "runtime"
    for folder, _, files in os.walk(root):
        rel = os.path.relpath(folder, REPO).replace(os.sep, ".")
        for f in sorted(files):
            if f.endswith(".py"):
                mod = f"spectral_transformers.{rel}" + ("" if f == "__init__.py" else f".{f[:-3]}")
                names.append(mod)
    return sorted(names)


def test_every_runtime_module_imports_without_qgis():
    modules = runtime_modules()
    assert len(modules) >= 20 and "spectral_transformers.runtime.parameters" in modules
    proc = subprocess.run([sys.executable, "-c", BLOCKER, *modules], capture_output=True, text=True, cwd="/",
                          env=dict(os.environ, PYTHONPATH=str(PLUGINS)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == str(len(modules))
