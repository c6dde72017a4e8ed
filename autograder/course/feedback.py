"""`course feedback`: nbgrader's HTML feedback, with hidden tests kept hidden.

nbgrader's feedback shows hidden-test source, and even with ClearHiddenTests a failing hidden check's
traceback quotes its lines. Here, in every cell holding a hidden-test block, the block is removed and
each error output is reduced to the exception's one-line message (which the course's checks write for
students). Every HTML file written is then scanned for hidden-test lines and markers. A file that shows
any is withheld (moved to `feedback_withheld/`, never handed out) and reported with the student's name;
the other students' files are kept, since one student's output (a print of the marker text, say) must
not cost everyone their feedback. Math in prose and written answers is rendered as MathML when the page
is written (mathml.py), so the page loads nothing from the internet and reads the same offline. An answer
still waiting for hand grading reads "not graded yet" with its points, and so does the total (nbgrader
prints its empty score as 0.0, which students read as 0 marks): templates/course_feedback/page.html.j2.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nbformat import NotebookNode

from .layout import TEMPLATES, Course, CourseError
from .mathml import notebook_with_mathml, without_remote_mathjax
from .notebooks import load, regions, without_regions

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
WITHHELD = "feedback_withheld"


@dataclass
class FeedbackReport:
    written: list[Path] = field(default_factory=list)
    withheld: list[tuple[str, str, str]] = field(default_factory=list)   # (student, lesson, why)


def hide_hidden_tests(nb: NotebookNode) -> NotebookNode:
    """Remove hidden-test blocks and reduce those cells' tracebacks to one line (in place)."""
    for cell in nb.cells:
        if cell.cell_type != "code" or "### BEGIN HIDDEN TESTS" not in cell.source:
            continue
        cell.source = without_regions(cell.source, ("HIDDEN TESTS",))
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                message = _ANSI.sub("", f"{out.ename}: {out.evalue}" if out.evalue else out.ename)
                out.traceback = [message]
    return nb


def _preprocessor_class(transform: Callable[[NotebookNode], NotebookNode]) -> type:
    """An nbgrader preprocessor that applies `transform` to the notebook before it becomes HTML."""
    from nbgrader.preprocessors import NbGraderPreprocessor

    class Transform(NbGraderPreprocessor):
        def preprocess(self, nb, resources):  # noqa: ANN001, ANN201 (nbconvert's signature)
            return transform(nb), resources

    Transform.__name__ = Transform.__qualname__ = f"Apply_{transform.__name__}"
    return Transform


def _grades_with_pending() -> type:
    """nbgrader's GetGrades that also marks the cells waiting for hand grading (`pending`), sums their
    points into resources (`pending_points`) and leaves their scores out of the total, for
    templates/course_feedback/page.html.j2."""
    from nbgrader.preprocessors import GetGrades

    class GetGradesAndPending(GetGrades):
        def _get_score(self, cell, resources):  # noqa: ANN001, ANN202 (nbgrader's signature)
            super()._get_score(cell, resources)
            grade = self.gradebook.find_grade(cell.metadata.nbgrader["grade_id"], self.notebook_id,
                                              self.assignment_id, self.student_id)
            cell.metadata.nbgrader["pending"] = bool(grade.needs_manual_grade)

        def preprocess(self, nb, resources):  # noqa: ANN001, ANN201 (nbconvert's signature)
            nb, resources = super().preprocess(nb, resources)
            pending = [c.metadata.nbgrader for c in nb.cells if c.metadata.get("nbgrader", {}).get("pending")]
            resources["nbgrader"]["pending_points"] = sum(meta["points"] for meta in pending)
            # a changed resubmission keeps its old hand score until regraded: not counted, as not shown
            resources["nbgrader"]["score"] -= sum(meta.get("score") or 0 for meta in pending)
            return nb, resources

    return GetGradesAndPending


def hidden_lines(course: Course, lesson: str) -> set[str]:
    """Distinctive lines of the lesson's hidden-test blocks: none may appear in feedback."""
    lines = set()
    for path in course.notebooks(lesson):
        for cell in load(path).cells:
            for block in regions(cell.source, ("HIDDEN TESTS",)):
                lines.update(ln.strip() for ln in block.splitlines() if len(ln.strip()) >= 8)
    return lines


def leaks(page: Path, secret: set[str]) -> list[str]:
    """Hidden-test lines and markers a reader of this HTML page would see."""
    import html

    text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
    text_lines = {ln.strip() for ln in text.splitlines()}
    return sorted(s for s in secret if s in text_lines) + [m for m in ("HIDDEN TESTS", "autograder.hidden")
                                                          if m in text]


def feedback(course: Course, lessons: list[str]) -> FeedbackReport:
    """Write feedback HTML for every autograded submission of `lessons`, withholding any that leaks."""
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.converters import GenerateFeedback

    from .config import nbgrader_config
    from .nbgrader_run import NbgraderFailed, run_converter

    config = nbgrader_config(course)
    config.GenerateFeedback.preprocessors = [_preprocessor_class(hide_hidden_tests),
                                             _preprocessor_class(notebook_with_mathml),
                                             _grades_with_pending(), CSSHTMLHeaderPreprocessor]
    config.HTMLExporter.template_file = str(TEMPLATES / "course_feedback" / "page.html.j2")
    report = FeedbackReport()
    for lesson in lessons:
        students = sorted(p.parent.name for p in course.sub("autograded").glob(f"*/{lesson}"))
        if not students:
            continue
        try:
            run_converter(GenerateFeedback, config, assignment=lesson, what=f"feedback for {lesson} failed")
        except NbgraderFailed as exc:
            raise CourseError(f"{exc} (run `course autograde {lesson}` first)") from None
        secret = hidden_lines(course, lesson)
        for path in sorted(course.sub("feedback").glob(f"*/{lesson}/*.html")):
            student = path.parent.parent.name
            path.write_text(without_remote_mathjax(path.read_text()))
            found = leaks(path, secret)
            if not found:
                report.written.append(path)
                continue
            kept = course.sub(WITHHELD, student, lesson, path.name)
            kept.parent.mkdir(parents=True, exist_ok=True)
            path.replace(kept)
            report.withheld.append((student, lesson, (
                f"it would show hidden-test text ({found[0]!r}), printed by the student's own code or "
                f"quoted by a hidden check's message: kept in {kept.relative_to(course.course_dir)} for "
                f"you to read, not handed out; look at autograded/{student}/{lesson}/")))
    return report
