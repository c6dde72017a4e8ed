"""nbgrader configuration with the settings that keep grades (see shared notes on nbgrader 0.9).

nbgrader's defaults lose grades: a loop that ignores SIGINT fails the whole submission
(`raise_on_iopub_timeout`), deleted test cells are never re-added, any stderr zeroes a correct answer,
and a dying kernel wipes every grade. Each setting below exists to stop one of those.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from traitlets.config import Config

from .layout import Course

# A Python warning as printed to stderr: "path.py:12: RuntimeWarning: message". Only these are harmless;
# any other stderr text from a test cell still zeroes it, as nbgrader intends.
WARNING_PATTERN = r"(?m)^.*:\d+: [A-Za-z]*Warning: "


@dataclass(frozen=True)
class GradingLimits:
    """Limits on one student kernel. They go into the resume fingerprint: changing them regrades."""

    cell_timeout: int = 60          # seconds of wall time per cell
    memory_mb: int = 2048           # address-space limit of the kernel process
    cpu_seconds: int = 600          # CPU time for the whole notebook run
    max_output_lines: int = 1000    # LimitOutput: stream lines kept per cell
    max_attempts: int = 6           # reruns after neutralising a cell that killed or hung the kernel

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def ensure_scripts_on_path() -> None:
    """nbgrader runs the `alembic` script to create a gradebook; find it beside this Python even when
    `course` was started as .venv/bin/course without activating the environment."""
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def nbgrader_config(course: Course, *, db_url: str | None = None,
                    limits: GradingLimits | None = None) -> Config:
    """The traitlets Config every nbgrader app we run gets."""
    from .safe_execute import SafeExecute  # nbgrader imports are slow: only when a config is built

    limits = limits or GradingLimits()
    ensure_scripts_on_path()
    c = Config()
    c.CourseDirectory.root = str(course.course_dir)
    c.CourseDirectory.source_directory = str(course.lessons_dir)
    c.CourseDirectory.course_id = course.course_id
    c.CourseDirectory.db_url = db_url or course.db_url
    c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".*"]

    c.Execute.timeout = limits.cell_timeout
    c.Execute.raise_on_iopub_timeout = False
    c.Execute.interrupt_on_timeout = False     # SafeExecute handles a timeout by neutralising the cell
    c.SafeExecute.memory_mb = limits.memory_mb
    c.SafeExecute.cpu_seconds = limits.cpu_seconds
    c.SafeExecute.max_attempts = limits.max_attempts
    c.OverwriteCells.add_missing_cells = True
    c.IgnorePattern.enabled = True
    c.IgnorePattern.pattern = WARNING_PATTERN
    c.LimitOutput.max_lines = limits.max_output_lines
    c.LimitOutput.max_traceback = 100

    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        IgnorePattern,
        LimitOutput,
        SaveAutoGrades,
    )
    c.Autograde.autograde_preprocessors = [
        SafeExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades,
        AssignLatePenalties, CheckCellMetadata,
    ]
    c.Autograde.create_student = True
    c.GenerateAssignment.create_assignment = True
    return c
