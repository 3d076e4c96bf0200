"""Load a script of benchmarks/ as a module, so that unit tests can reach its functions."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


def load_benchmark(file_name: str) -> ModuleType:
    """Return the module of `benchmarks/<file_name>`, loaded afresh from its file."""
    # benchmarks/ is a folder of scripts, not a package, so the module is loaded from its file.
    module_name = f"{Path(file_name).stem}_under_test"
    spec = importlib.util.spec_from_file_location(module_name, BENCHMARKS_DIR / file_name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
