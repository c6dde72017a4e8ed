"""Run nbgrader converters in-process (no 2 s CLI start-up per call) and turn failures into one line."""

from __future__ import annotations

import io
import logging
from typing import Any

from .layout import CourseError


class NbgraderFailed(Exception):
    """nbgrader itself failed; carries the log so callers can show its last error line."""

    def __init__(self, what: str, log: str):
        lines = [ln for ln in log.splitlines() if "ERROR" in ln or "Error" in ln] or log.splitlines()[-1:]
        super().__init__(f"{what}: {lines[-1].strip() if lines else 'no log'}")
        self.log = log


def run_converter(converter_cls: type, config: Any, *, assignment: str, student: str = "*",
                  force: bool = True, what: str = "nbgrader") -> str:
    """Run one nbgrader converter for one assignment (and student); returns its captured log."""
    from nbgrader.converters.base import NbGraderException
    from nbgrader.coursedir import CourseDirectory

    stream = io.StringIO()
    logger = logging.getLogger(f"course.nbgrader.{id(stream)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    logger.addHandler(handler)
    try:
        coursedir = CourseDirectory(config=config)
        coursedir.assignment_id = assignment
        coursedir.student_id = student
        app = converter_cls(coursedir=coursedir, config=config, log=logger)
        app.force = force
        try:
            app.start()
        except NbGraderException:
            raise NbgraderFailed(what, stream.getvalue()) from None
        return stream.getvalue()
    finally:
        logger.removeHandler(handler)


def require_released(course: Any, lesson: str) -> None:
    if not (course.sub("release", lesson)).is_dir():
        raise CourseError(f"lesson {lesson} has not been released in {course.course_dir}: "
                          f"run `course release {lesson}` first")
