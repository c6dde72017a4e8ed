"""`course report`: one self-contained HTML page per lesson that shows the class at a glance.

An instructor preparing the next class wants to know which exercise, and which misconception, to go over
again. The gradebook has the scores, the autograded notebooks have the failure messages (the checks'
hints, written for students), and the grading records have what went wrong with the grader. The page
puts them side by side: the score distribution, the pass rate of every test cell in notebook order, the
most frequent failure messages per exercise (counted after the numbers in them are blanked, so the same
hint with another student's numbers counts once), the answers still waiting for hand grading, and every
submission the grader failed on with its cause. Figures are also written as PNG files beside the page,
and embedded in it, so the page can be mailed or opened offline.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from .layout import Course, CourseError
from .notebooks import cell_grade_id, nbgrader_meta

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_NUMBER = re.compile(r"(?<![A-Za-z_])[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
TOP_MESSAGES = 5


@dataclass
class LessonReport:
    """What the page of one lesson shows, gathered before anything is drawn."""

    lesson: str
    max_score: float  # of the autograded test cells: written answers are graded by hand
    scores: list[float] = field(default_factory=list)
    test_cells: list[str] = field(default_factory=list)  # notebook order
    passed: Counter = field(default_factory=Counter)
    attempted: Counter = field(default_factory=Counter)
    messages: dict[str, Counter] = field(default_factory=dict)
    examples: dict[tuple[str, str], str] = field(default_factory=dict)
    waiting: list[tuple[str, str]] = field(default_factory=list)  # (student, cell)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (student, cause)
    missing: list[str] = field(default_factory=list)


def message_pattern(message: str) -> str:
    """A failure message with its numbers blanked: the hint it gives, whatever the student's numbers."""
    return _NUMBER.sub("#", " ".join(_ANSI.sub("", message).split()))[:400]


def test_cell_order(course: Course, lesson: str) -> list[str]:
    """grade_ids of the lesson's autograded test cells, in the order a student meets them."""
    ids = []
    for path in course.notebooks(lesson):
        for cell in nbformat.read(path, as_version=4).cells:
            meta = nbgrader_meta(cell)
            if meta.get("grade") and not meta.get("solution"):
                ids.append(cell_grade_id(cell))
    return ids


def _failure_messages(course: Course, student: str, lesson: str, cells: set[str]) -> dict[str, str]:
    """grade_id -> the error message its test cell ended with, from the student's autograded notebook."""
    found = {}
    for path in course.sub("autograded", student, lesson).glob("*.ipynb"):
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:  # noqa: BLE001 - an unreadable graded copy only costs the report its messages
            continue
        for cell in nb.cells:
            gid = cell_grade_id(cell)
            if gid in cells:
                for out in cell.get("outputs", []):
                    if out.get("output_type") == "error":
                        found[gid] = f"{out.get('ename', '')}: {out.get('evalue', '')}".strip(": ")
    return found


def gather(course: Course, lesson: str, rows: list[dict[str, Any]]) -> LessonReport:
    """Collect one lesson's report from the export rows, the autograded notebooks and grading records."""
    from .autograde import RECORDS
    from .export import GRADED

    mine = [r for r in rows if r["lesson"] == lesson]
    report = LessonReport(lesson, 0.0, test_cells=test_cell_order(course, lesson))
    tests = set(report.test_cells)
    for row in mine:
        student = row["student"]
        if row["status"] == "missing":
            report.missing.append(student)
            continue
        if row["status"] not in GRADED:  # the grader failed, not graded yet, or the gradebook is in doubt
            report.failures.append((student, f"{row['status']}: {row['notes']}"))
            continue
        record_path = course.sub(RECORDS, f"{student}--{lesson}.json")
        record = json.loads(record_path.read_text()) if record_path.exists() else {}
        report.failures += [(student, f"{e['cell']}: {e['cause']}") for e in record.get("events", [])]
        auto = [c for c in row["cells"] if c["cell"] in tests]
        report.scores.append(sum(float(c["score"] or 0) for c in auto))
        report.max_score = max(report.max_score, sum(float(c["max_score"] or 0) for c in auto))
        messages = _failure_messages(course, student, lesson, tests)
        for cell in row["cells"]:
            if cell["cell"] in tests:
                report.attempted[cell["cell"]] += 1
                if cell["score"] is not None and cell["score"] >= cell["max_score"]:
                    report.passed[cell["cell"]] += 1
                elif cell["cell"] in messages:
                    pattern = message_pattern(messages[cell["cell"]])
                    report.messages.setdefault(cell["cell"], Counter())[pattern] += 1
                    report.examples.setdefault((cell["cell"], pattern), messages[cell["cell"]])
            elif cell["needs_manual_grade"]:
                report.waiting.append((student, cell["cell"]))
    return report


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def draw(report: LessonReport) -> dict[str, bytes]:
    """The two figures as PNG bytes: the score distribution and the pass rate of each test cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = {}
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    top = max(report.max_score, 1.0)
    ax.hist(report.scores, bins=min(20, max(5, int(top) + 1)), range=(0, top), color="#4c72b0",
            edgecolor="white")
    ax.set_xlabel(f"autograded score (out of {top:g})")
    ax.set_ylabel("students")
    ax.set_title(f"{report.lesson}: scores of {len(report.scores)} graded submission(s)")
    figures["score_distribution.png"] = _png(fig)
    plt.close(fig)

    cells = report.test_cells
    fig, ax = plt.subplots(figsize=(6.4, 0.35 * len(cells) + 1.2))
    rates = [100 * report.passed[c] / report.attempted[c] if report.attempted[c] else 0.0 for c in cells]
    colors = ["#c44e52" if r < 50 else "#dd8452" if r < 80 else "#55a868" for r in rates]
    ax.barh(range(len(cells)), rates, color=colors)
    ax.set_yticks(range(len(cells)), cells)
    ax.invert_yaxis()  # notebook order from the top
    ax.set_xlim(0, 100)
    ax.set_xlabel("students who passed (%)")
    ax.set_title("pass rate of each test cell, in notebook order")
    for i, (rate, cell) in enumerate(zip(rates, cells, strict=True)):
        ax.text(min(rate + 1, 88), i, f"{rate:.0f}% of {report.attempted[cell]}", va="center", fontsize=8)
    figures["pass_rates.png"] = _png(fig)
    plt.close(fig)
    return figures


def _table(head: list[str], rows: list[list[str]]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def render(report: LessonReport, figures: dict[str, bytes]) -> str:
    """The self-contained page: figures inline as data URIs, all text escaped."""
    def img(name: str, alt: str) -> str:
        data = base64.b64encode(figures[name]).decode()
        return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'

    n = len(report.scores)
    mean = sum(report.scores) / n if n else 0.0
    full = sum(1 for s in report.scores if s >= report.max_score > 0)
    parts = [f"<h1>{html.escape(report.lesson)}</h1>",
             f"<p>{n} graded submission(s); mean {mean:.2f} of {report.max_score:g}; {full} with full "
             f"autograded marks; {len(report.missing)} student(s) without a submission; "
             f"{len(report.failures)} grader problem(s).</p>",
             img("score_distribution.png", "score distribution"),
             img("pass_rates.png", "pass rate of each test cell"),
             "<h2>Most frequent failure messages</h2>",
             "<p>Numbers in the messages are shown as # so that one hint counts once; the example is one "
             "student's full message (left empty when it is the same).</p>"]
    for cell in report.test_cells:
        counts = report.messages.get(cell)
        if not counts:
            continue
        rows = [[str(count), pattern, "" if report.examples[(cell, pattern)] == pattern
                 else report.examples[(cell, pattern)][:600]]
                for pattern, count in counts.most_common(TOP_MESSAGES)]
        parts += [f"<h3>{html.escape(cell)}: {report.attempted[cell] - report.passed[cell]} failed</h3>",
                  _table(["students", "message", "example"], rows)]
    parts += ["<h2>Waiting for hand grading</h2>",
              _table(["student", "answer"], [list(w) for w in report.waiting]) if report.waiting
              else "<p>Nothing is waiting.</p>",
              "<h2>Grader problems</h2>",
              _table(["student", "cause"], [list(f) for f in report.failures]) if report.failures
              else "<p>None: every submission was graded without a kernel death, hang or grader failure.</p>"]
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;"
             "padding:.3em .6em;text-align:left;vertical-align:top;font-size:.9em}img{max-width:100%}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(report.lesson)} "
            f"class report</title><style>{style}</style></head><body>{''.join(parts)}</body></html>\n")


def write_reports(course: Course, lessons: list[str], output: Path | None = None) -> list[Path]:
    """Write reports/<lesson>/report.html plus its PNGs for each lesson; returns the pages written."""
    from .export import gradebook_rows, nothing_graded

    rows = gradebook_rows(course)
    if nothing_graded([r for r in rows if r["lesson"] in lessons]):
        raise CourseError(f"nothing has been graded for {', '.join(lessons)}: run `course autograde` first")
    pages = []
    for lesson in lessons:
        report = gather(course, lesson, rows)
        folder = (output or course.sub("reports")) / lesson
        folder.mkdir(parents=True, exist_ok=True)
        figures = draw(report)
        for name, data in figures.items():
            (folder / name).write_bytes(data)
        page = folder / "report.html"
        page.write_text(render(report, figures))
        pages.append(page)
    return pages
