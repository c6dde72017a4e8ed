"""The student kit, as a student gets it: proof that it installs and runs every lesson on its own.

`course release` builds the kit; it is unzipped, installed with `pip install .` into a fresh virtual
environment that has nothing else (no system site packages, no PYTHONPATH, no user site), exactly as its
README says, and every source notebook (solutions in place, hidden-test blocks removed, as a student's
kit has none) runs top to bottom in a kernel of that environment: no cell may raise and every visible
test cell must earn its points. One environment serves all lessons, and is kept for the next test run
while the kit's dependencies stay the same (`kit_python`).
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.course.kit import KIT_DEPENDENCIES, KIT_NAME, TORCH
from autograder.course.notebooks import cell_grade_id

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted(p.name for p in (ROOT / "lessons").iterdir() if p.is_dir())
CELL_TIMEOUT = 900  # per cell: lesson 07 trains a network in one cell


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a student's shell: nothing that would let the repository's packages leak in."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}}
    return {**env, "PYTHONNOUSERSITE": "1", "MPLBACKEND": "Agg", **extra}


@pytest.fixture(scope="session")
def kit(real_release: Path, tmp_path_factory) -> Path:
    """The kit folder, unzipped from the student_kit.zip that the real `course release` wrote."""
    base = tmp_path_factory.mktemp("kit")
    with zipfile.ZipFile(real_release / "build" / "student_kit.zip") as zf:
        zf.extractall(base / "unzipped")
    return base / "unzipped" / "student_kit"


KIT_VENVS = Path(os.environ.get("COURSE_KIT_VENV_CACHE", Path.home() / ".cache" / "course-tests"))
"""Where installed kit environments are kept between test runs, one per dependency list and Python."""


def _pip(python: Path, *args: str, cwd: Path | None = None) -> None:
    done = subprocess.run([str(python), "-m", "pip", *args], cwd=cwd, env=clean_env(), capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, f"pip {' '.join(args)}:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"


@pytest.fixture(scope="session")
def kit_python(kit: Path) -> Path:
    """The python of a venv into which the kit was installed as its README says (`pip install .`).

    The venv is fresh (nothing but what the kit's pyproject.toml brings) and kept between test runs under
    KIT_VENVS, keyed by the kit's pyproject.toml and this Python's version: installing its dependencies
    (some 600 MB, jupyterlab and scikit-learn) took about 70 s of every run. The first run of a key does
    `pip install .` with `--no-compile` (the same packages; pip's ahead-of-time bytecode of every module,
    some 15 s, is left to the imports that need it); a later one reinstalls the kit package itself
    (`--no-deps --force-reinstall`) and `pip check` proves the kept dependencies still satisfy it.
    COURSE_FRESH_KIT_VENV=1 rebuilds it."""
    key = hashlib.sha256((kit / "pyproject.toml").read_bytes() + sys.version.encode()).hexdigest()[:16]
    venv = KIT_VENVS / f"kit-venv-{key}"
    python = venv / "bin" / "python"
    done = venv / "installed"
    KIT_VENVS.mkdir(parents=True, exist_ok=True)
    with open(KIT_VENVS / f"kit-venv-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # one builder at a time (parallel test runs)
        if os.environ.get("COURSE_FRESH_KIT_VENV") == "1" or not done.exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=clean_env(),
                           timeout=300)
            _pip(python, "install", "--quiet", "--no-compile", ".", cwd=kit)
            done.touch()
        else:
            _pip(python, "install", "--quiet", "--no-deps", "--force-reinstall", ".", cwd=kit)
        _pip(python, "check")
    return python


def run_in_kit(python: Path, code: str) -> subprocess.CompletedProcess:
    """Run code with the kit's python from an empty folder (so nothing on the current path leaks in)."""
    with tempfile.TemporaryDirectory() as empty:
        return subprocess.run([str(python), "-c", code], cwd=empty, env=clean_env(), capture_output=True,
                              text=True, timeout=300)


def test_the_kit_is_a_named_package_with_every_dependency_and_a_guide(kit: Path) -> None:
    meta = tomllib.loads((kit / "pyproject.toml").read_text())["project"]
    assert meta["name"] == KIT_NAME == "backprop-course-kit"
    assert meta["optional-dependencies"]["torch"] == [TORCH]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert TORCH in project["optional-dependencies"]["torch"], "the kit's torch pin differs from the course's"
    for requirement in KIT_DEPENDENCIES:
        assert requirement in project["dependencies"], f"{requirement} differs from the course's pyproject"
    readme = (kit / "README.md").read_text()
    for step in ("python3 -m venv .venv", ". .venv/bin/activate", r".venv\Scripts\activate", "pip install .",
                 "jupyter lab", "passed:", "original file name", TORCH, "download.pytorch.org/whl/cpu"):
        assert step in readme, step
    for lesson in LESSONS:
        assert f"notebooks/{lesson}/" in readme, lesson


def test_the_kit_installs_the_visible_checks_and_nothing_hidden(kit_python: Path) -> None:
    done = run_in_kit(kit_python, "import autograder.checks, autograder.lesson01, numpy, matplotlib, sklearn;"
                                  "print(autograder.__file__)")
    assert done.returncode == 0, done.stderr[-2000:]
    assert str(kit_python.parents[1]) in done.stdout, "the kit's autograder is not the installed one"
    for name in ("autograder.hidden", "autograder.course", "reference_impl"):
        done = run_in_kit(kit_python, f"import {name}")
        assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr, f"{name} is in the kit"


def kit_kernel_spec(python: Path, folder: Path) -> Path:
    """A kernel spec directory whose kernel is the kit's python, with a student's clean environment and
    JupyterLab's inline figures (so a plot that fails to draw shows here as it would for a student)."""
    spec = folder / "kernels" / "student-kit"
    spec.mkdir(parents=True)
    env = {"PYTHONPATH": "", "PYTHONNOUSERSITE": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "student kit", "language": "python", "env": env}))
    return spec.parent


def without_hidden_tests(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The source notebook with its solutions but without hidden-test blocks, as a kit student runs it."""
    from nbgrader.preprocessors import ClearHiddenTests

    stripped, _ = ClearHiddenTests().preprocess(copy.deepcopy(nb), {})
    return stripped


def execute_in_kit(nb: nbformat.NotebookNode, python: Path, cwd: Path) -> nbformat.NotebookNode:
    """Run every cell (even after errors, so all failures show) in a kernel of the kit's environment."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    from autograder.course.sandbox import private_connection

    with tempfile.TemporaryDirectory(prefix="kit-kernel-") as folder:
        specs = KernelSpecManager(kernel_dirs=[str(kit_kernel_spec(python, Path(folder)))])
        km = KernelManager(kernel_name="student-kit", kernel_spec_manager=specs,
                           **private_connection(folder))
        client = NotebookClient(nb, km=km, timeout=CELL_TIMEOUT, allow_errors=True,
                                resources={"metadata": {"path": str(cwd)}})
        client.execute()
    return nb


def describe_failures(nb: nbformat.NotebookNode) -> list[str]:
    """'cell N (grade_id): error' for each cell that raised (stderr in a test cell shows in its grade)."""
    failures = []
    for n, cell in enumerate(nb.cells):
        label = cell_grade_id(cell) or ""
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                failures.append(f"cell {n} {label}: {out.ename}: {out.evalue}"[:600])
    return failures


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_lesson_runs_in_the_kit_and_passes_its_visible_tests(kit: Path, kit_python: Path,
                                                                   lesson: str) -> None:
    from autograder.course import notebooks

    (source,) = sorted((ROOT / "lessons" / lesson).glob("*.ipynb"))
    executed = execute_in_kit(without_hidden_tests(notebooks.load(source)), kit_python,
                              kit / "notebooks" / lesson)
    failures = describe_failures(executed)
    assert not failures, f"{lesson} in the student kit:\n" + "\n".join(failures)
    scores = notebooks.grade(executed)
    assert scores, f"{lesson} has no test cells"
    lost = [f"{gid}: {s.error}" for gid, s in scores.items() if s.score != s.max_score]
    assert not lost, f"{lesson} in the student kit:\n" + "\n".join(lost)
