"""Run nbgrader converters in-process (no 2 s CLI start-up per call) and turn failures into one line."""

from __future__ import annotations

import functools
import io
import logging
import re
from typing import Any


class NbgraderFailed(Exception):
    """nbgrader itself failed; carries the log so callers can show its last error line."""

    def __init__(self, what: str, log: str):
        lines = log.splitlines()
        # the exception line of nbgrader's logged traceback says what went wrong; its closing
        # "[ERROR] Please see the above traceback" lines do not
        causes = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception)\b.*:", ln)]
        errors = [ln for ln in lines if ln.startswith("[ERROR]") and "above traceback" not in ln
                  and "There was an error processing" not in ln]
        cause = (causes or errors or lines[-1:] or ["no log"])[-1].strip()
        super().__init__(f"{what}: {cause}")
        self.log = log


@functools.cache
def _alembic_head() -> str:
    """The newest migration of the installed nbgrader: the version it stamps into a new gradebook."""
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import ALEMBIC_DIR

    return ScriptDirectory(ALEMBIC_DIR).get_current_head()


def stamp_gradebooks_in_process() -> None:
    """nbgrader starts an `alembic heads` process each time it creates a gradebook (a Python start-up
    and alembic's import: a second on a quiet machine, several under load, for every release); read the
    same constant here instead."""
    import nbgrader.api

    nbgrader.api.get_alembic_version = _alembic_head


def run_converter(converter_cls: type, config: Any, *, assignment: str, student: str = "*",
                  force: bool = True, what: str = "nbgrader") -> str:
    """Run one nbgrader converter for one assignment (and student); returns its captured log."""
    from nbgrader.converters.base import NbGraderException
    from nbgrader.coursedir import CourseDirectory

    stamp_gradebooks_in_process()
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

