"""An nbgrader Execute preprocessor that survives cells which kill or hang their kernel.

nbgrader's Execute gives up on the whole notebook when the kernel dies (os._exit, segfault, out of
memory) or when a cell ignores the interrupt sent at its timeout. Here a cell that kills the kernel or
exceeds the per-cell timeout is *neutralised*: the notebook is run again from the top in a fresh kernel
with that cell replaced by a `raise` naming the cause. Every cell that does not depend on it gets its
normal score; the neutralised cell gets its original source back and an error output with the cause,
so a test cell in that position scores zero and the feedback says why. Each neutralisation is appended
to `SafeExecute.events`, which the grading worker stores beside the grades.

Every kernel (each rerun too) starts in a fresh run folder from `sandbox.new_run`: its working folder
holds only the notebook being graded and the data files its lesson declares in the source notebook's
metadata (`"course": {"data_files": ["name.csv", ...]}`), never whatever else sits in `lessons/NN/` or in
the course folder. How far the kernel is isolated from everything else is `sandbox.isolation()`.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any, ClassVar

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Integer

from . import notebooks, sandbox
from .judge import JudgedCells


class _CellKilled(Exception):
    def __init__(self, index: int, reason: str):
        super().__init__(reason)
        self.index, self.reason = index, reason


def declared_data_files(source_notebook: Path) -> list[Path]:
    """The data files a lesson's source notebook declares, each checked to be a file of its lesson folder.

    Read from the instructor's source, never from the submission, whose metadata the student controls.
    """
    if not source_notebook.is_file():
        return []
    metadata = notebooks.load(source_notebook).get("metadata", {})
    names = metadata.get("course", {}).get("data_files", [])
    folder = source_notebook.parent.resolve()
    files = []
    for name in names:
        path = (folder / name).resolve()  # resolved: neither "..", an absolute name nor a link leads out
        if folder not in path.parents or not path.is_file():
            raise ValueError(f"{source_notebook} declares the data file {name!r}, which is not a file inside "
                             f"{folder}: list files of the lesson folder by relative name in the notebook's "
                             "metadata course.data_files")
        files.append(path)
    return files


class SafeExecute(JudgedCells, Execute):
    """Execute with a sandboxed kernel and per-cell recovery (see module docstring)."""

    memory_mb = Integer(2048, help="address-space limit of the student kernel (MiB)").tag(config=True)
    cpu_seconds = Integer(600, help="CPU-time limit of the student kernel (s)").tag(config=True)
    max_attempts = Integer(6, help="reruns after neutralising a killing or hanging cell").tag(config=True)

    events: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shutdown_kernel = "immediate"
        self._spec_root = None

    def create_kernel_manager(self):  # noqa: ANN201 (nbclient's signature)
        if self._spec_root is None:
            folders = self.config.get("CourseDirectory", {})
            hidden = [Path(folders[key]) for key in ("root", "source_directory") if key in folders]
            settings = sandbox.sandbox_settings(sandbox.isolation(), hidden)
            self._spec_root = sandbox.write_kernel_spec(self.memory_mb, self.cpu_seconds, settings)
        ksm = KernelSpecManager(kernel_dirs=[str(self._spec_root)])
        run = sandbox.new_run(self._spec_root)  # one folder per (re)started kernel
        self._fill_work_folder(run / "work")
        self.km = self.kernel_manager_class(kernel_name=sandbox.KERNEL_NAME, kernel_spec_manager=ksm,
                                            config=self.config, connection_file=str(run / "kernel.json"),
                                            **sandbox.private_connection(run))
        return self.km

    def _source_notebook(self) -> Path | None:
        """The instructor's source of the notebook being graded, when nbgrader says which one it is."""
        info = (self.resources or {}).get("nbgrader", {})
        source_dir = self.config.get("CourseDirectory", {}).get("source_directory")
        if not source_dir or "assignment" not in info or "notebook" not in info:
            return None
        return Path(source_dir, info["assignment"], f"{info['notebook']}.ipynb")

    def _fill_work_folder(self, work: Path) -> None:
        """The kernel's working folder: this notebook and its lesson's declared data files, nothing else."""
        name = (self.resources or {}).get("nbgrader", {}).get("notebook", "notebook")
        (work / f"{name}.ipynb").write_text(json.dumps(self.nb, indent=1, ensure_ascii=False))
        source = self._source_notebook()
        if source is not None:
            for path in declared_data_files(source):
                target = work / path.relative_to(source.parent.resolve())
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
        self.resources.setdefault("metadata", {})["path"] = str(work)

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None):  # noqa: ANN201
        neutralised: dict[int, str] = {}
        resources = resources if resources is not None else {}
        given_path = resources.get("metadata", {}).get("path")
        try:
            for attempt in range(self.max_attempts + 1):
                work = copy.deepcopy(nb)
                for index, reason in neutralised.items():
                    work.cells[index].source = f"raise RuntimeError({reason!r})"
                try:
                    out, resources = super().preprocess(work, resources, km)
                except _CellKilled as kill:
                    neutralised[kill.index] = kill.reason
                    cell_name = notebooks.cell_grade_id(nb.cells[kill.index]) or f"cell {kill.index}"
                    SafeExecute.events.append({"cell": cell_name, "index": kill.index, "cause": kill.reason})
                    if attempt < self.max_attempts:
                        continue
                    # Out of reruns: keep what ran before this cell, and grade nothing after it.
                    out = work
                    for index in range(kill.index + 1, len(out.cells)):
                        if out.cells[index].cell_type == "code":
                            neutralised[index] = (f"not run: {attempt + 1} cells killed or hung the kernel, "
                                                  "the last one before this cell")
                    SafeExecute.events.append({"cell": "rest of notebook", "index": kill.index + 1,
                                               "cause": "not run: too many cells killed or hung the kernel"})
                for index, reason in neutralised.items():
                    cell = out.cells[index]
                    cell.source = nb.cells[index].source
                    cell.outputs = [NotebookNode(
                        output_type="error", ename="CellNotGraded", evalue=reason,
                        traceback=[f"CellNotGraded: {reason}. This cell was skipped so the rest of the "
                                   "notebook could be graded."])]
                return out, resources
            raise AssertionError("unreachable: the last attempt always returns")
        finally:
            if given_path is not None:
                resources["metadata"]["path"] = given_path
            if self._spec_root is not None:
                shutil.rmtree(self._spec_root, ignore_errors=True)
                self._spec_root = None

    def execute_cell(self, cell: NotebookNode, cell_index: int, execution_count: int | None = None,
                     store_history: bool = True) -> NotebookNode:
        """nbgrader's preprocess_cell calls nbclient's sync ``execute_cell``, which wraps the *function*
        ``NotebookClient.async_execute_cell``: without this, JudgedCells' override was skipped and test
        cells ran in the student's kernel under `course autograde`. Route it through the method."""
        return run_sync(self.async_execute_cell)(cell, cell_index, execution_count, store_history)

    def preprocess_cell(self, cell: NotebookNode, resources: Any, index: int):  # noqa: ANN201
        try:
            return super().preprocess_cell(cell, resources, index)
        except CellTimeoutError:
            raise _CellKilled(index, f"the cell ran longer than the {self.timeout} s time limit") from None
        except DeadKernelError:
            raise _CellKilled(index, self._death_cause()) from None

    def _death_cause(self) -> str:
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        code = None
        if process is not None:
            try:
                code = process.wait(timeout=5)
            except Exception:  # noqa: BLE001 - a process we cannot wait for is described as unresponsive
                code = None
        return sandbox.describe_exit(code, self.cpu_seconds)
