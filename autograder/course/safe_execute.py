"""An nbgrader Execute preprocessor that survives cells which kill or hang their kernel.

nbgrader's Execute gives up on the whole notebook when the kernel dies (os._exit, segfault, out of
memory) or when a cell ignores the interrupt sent at its timeout. Here a cell that kills the kernel or
exceeds the per-cell timeout is *neutralised*: the notebook is run again from the top in a fresh kernel
with that cell replaced by a `raise` naming the cause. Every cell that does not depend on it gets its
normal score; the neutralised cell gets its original source back and an error output with the cause,
so a test cell in that position scores zero and the feedback says why. Each neutralisation is appended
to `SafeExecute.events`, which the grading worker stores beside the grades.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from typing import Any, ClassVar

from jupyter_client.kernelspec import KernelSpecManager
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Integer

from . import sandbox


class _CellKilled(Exception):
    def __init__(self, index: int, reason: str):
        super().__init__(reason)
        self.index, self.reason = index, reason


def _grade_id(cell: NotebookNode) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


class SafeExecute(Execute):
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
            self._spec_root = sandbox.write_kernel_spec(self.memory_mb, self.cpu_seconds)
        ksm = KernelSpecManager(kernel_dirs=[str(self._spec_root)])
        sockets = tempfile.mkdtemp(prefix="ipc", dir=self._spec_root)  # one folder per (re)started kernel
        self.km = self.kernel_manager_class(kernel_name=sandbox.KERNEL_NAME, kernel_spec_manager=ksm,
                                            config=self.config, **sandbox.private_connection(sockets))
        return self.km

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None):  # noqa: ANN201
        neutralised: dict[int, str] = {}
        try:
            for attempt in range(self.max_attempts + 1):
                work = copy.deepcopy(nb)
                for index, reason in neutralised.items():
                    work.cells[index].source = f"raise RuntimeError({reason!r})"
                try:
                    out, resources = super().preprocess(work, resources, km)
                except _CellKilled as kill:
                    neutralised[kill.index] = kill.reason
                    cell_name = _grade_id(nb.cells[kill.index]) or f"cell {kill.index}"
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
            if self._spec_root is not None:
                shutil.rmtree(self._spec_root, ignore_errors=True)
                self._spec_root = None

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
