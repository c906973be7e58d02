"""The benchmarks are measurements run by hand, never by CI, so nothing ran them after a merge left them
calling a helper that was gone and a workflow function without its argument. Without running them, this
checks that every name they take from the workflow's modules and from benchmarks/common.py exists, and
that every call of one passes arguments its signature accepts."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("*.py"))
# Modules whose names the benchmarks borrow: the workflow's package and the benchmarks' shared module.
CHECKED_PACKAGE = "cnn_study"


def benchmarks_common():
    spec = importlib.util.spec_from_file_location("common", BENCHMARKS / "common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def problems(source: str, common) -> list[str]:
    """What is wrong with the names a script takes from cnn_study or benchmarks/common.py: one line each."""
    tree = ast.parse(source)
    found: list[str] = []
    names = {}
    for node in ast.walk(tree):  # imports in any scope
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == CHECKED_PACKAGE:
            module = importlib.import_module(node.module)
            for alias in node.names:
                if not hasattr(module, alias.name):
                    try:  # a submodule: from cnn_study import settings
                        importlib.import_module(f"{node.module}.{alias.name}")
                    except ModuleNotFoundError:
                        found.append(f"line {node.lineno}: {node.module} has no {alias.name}")
                        continue
                names[alias.asname or alias.name] = getattr(module, alias.name)
        elif isinstance(node, ast.Import):
            names.update({alias.asname or "common": common for alias in node.names if alias.name == "common"})

    def resolve(node: ast.AST):
        if isinstance(node, ast.Name):
            return names.get(node.id)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner = names.get(node.value.id)
            if inspect.ismodule(owner):
                return getattr(owner, node.attr, None)
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner = names.get(node.value.id)
            if inspect.ismodule(owner) and not hasattr(owner, node.attr):
                found.append(f"line {node.lineno}: {owner.__name__} has no {node.attr}")
        if not isinstance(node, ast.Call):
            continue
        target = resolve(node.func)
        starred = any(isinstance(arg, ast.Starred) for arg in node.args) or any(k.arg is None for k in node.keywords)
        if target is None or inspect.ismodule(target) or starred or not callable(target):
            continue
        try:
            signature = inspect.signature(target)
        except (TypeError, ValueError):  # a builtin without a signature
            continue
        try:
            signature.bind(*node.args, **{keyword.arg: keyword.value for keyword in node.keywords})
        except TypeError as error:
            found.append(f"line {node.lineno}: {ast.unparse(node.func)}(...): {error}")
    return sorted(found, key=lambda problem: int(problem.split()[1].rstrip(":")))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_names_borrowed_from_the_workflow_exist_and_are_called_as_they_are_defined(script):
    assert problems(script.read_text(), benchmarks_common()) == []


def test_the_check_sees_a_missing_helper_a_missing_argument_and_a_missing_import():
    """The faults a merge once made, and one more: each is caught, on its line."""
    source = (
        "import common\n"
        "from cnn_study.backend import device_names\n"
        "from cnn_study.models import NO_SUCH_NAME\n"
        "common.child_cpu_seconds_gone()\n"
        "device_names()\n"
        "device_names('jax')\n"
        "common.load_average(1)\n"
    )
    assert problems(source, benchmarks_common()) == [
        "line 3: cnn_study.models has no NO_SUCH_NAME",
        "line 4: common has no child_cpu_seconds_gone",
        "line 5: device_names(...): missing a required argument: 'backend'",
        "line 7: common.load_average(...): too many positional arguments",
    ]
