"""Project-wide rules that no single module's tests would notice breaking."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "lessons").glob("*/*.ipynb") if ".ipynb_checkpoints" not in p.parts)
NBGRADER_KEYS = {"schema_version", "grade", "solution", "locked", "grade_id", "points", "task"}


def _requirement(spec: str) -> tuple[str, str]:
    name, version = re.match(r"([A-Za-z0-9_.\-]+)(.*)", spec.strip()).groups()
    return name.lower().replace("_", "-"), version.replace(" ", "")


def test_environment_yml_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_requirement(s) for s in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {_requirement(s) for s in env["dependencies"] if isinstance(s, str)}
    conda -= {("python", ">=3.11"), ("pip", "")}
    assert conda == wanted, f"only in environment.yml: {conda - wanted}; only in pyproject: {wanted - conda}"
    assert project["requires-python"] == ">=3.11"


def test_torch_is_optional_and_pinned() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(_requirement(s)[0] == "torch" for s in project["dependencies"])
    assert project["optional-dependencies"]["torch"] == ["torch==2.13.0"]
    assert "torch==2.13.0" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.parent.name)
def test_notebook_is_stored_clean_with_valid_nbgrader_metadata(path: Path) -> None:
    assert path.stem == path.parent.name.split("_", 1)[1], "lessons/NN_name/name.ipynb"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("language") == "python"
    ids = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name}: stored with outputs"
        meta = cell.metadata.get("nbgrader")
        if meta is None:
            continue
        assert set(meta) <= NBGRADER_KEYS, f"unknown nbgrader keys {set(meta) - NBGRADER_KEYS}"
        assert meta["schema_version"] == 3
        for key in ("grade", "solution", "locked"):
            assert isinstance(meta[key], bool), f"{key} missing in {meta}"
        flagged = meta["grade"] or meta["solution"] or meta["locked"] or meta.get("task", False)
        if flagged:
            assert re.fullmatch(r"[A-Za-z0-9_-]+", meta["grade_id"])
            ids.append(meta["grade_id"])
        if meta["grade"] or meta.get("task"):
            assert meta["points"] > 0
        if meta.get("task"):
            assert cell.cell_type == "markdown"
        if meta["grade"] and not meta["solution"]:
            assert cell.cell_type == "code" and meta["locked"], "autograded tests are locked code cells"
    assert len(ids) == len(set(ids)), f"duplicate grade_id in {path.name}"
    assert any(c.metadata.get("nbgrader", {}).get("grade") for c in nb.cells), "no graded cells"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_reference_impl_never_imports_autograder() -> None:
    for path in (ROOT / "reference_impl").rglob("*.py"):
        assert "autograder" not in _imports(path), path


def test_student_side_of_autograder_works_without_reference_impl() -> None:
    """Students get checks.py and the visible lesson checks, never reference_impl."""
    lessons = sorted((ROOT / "autograder").glob("lesson*.py"))
    modules = ["autograder.checks"] + [f"autograder.{p.stem}" for p in lessons]
    code = (
        "import sys, importlib\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('reference_impl', 'torch', 'nbgrader'):\n"
        "            raise ImportError('students do not have ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_visible_checks_never_import_reference_impl_even_lazily() -> None:
    for path in [ROOT / "autograder" / "checks.py", *sorted((ROOT / "autograder").glob("lesson*.py"))]:
        assert "reference_impl" not in _imports(path), f"{path.name} is shipped to students"
