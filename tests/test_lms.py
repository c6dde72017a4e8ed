"""LMS grade files: Canvas's gradebook import and Moodle's grade import, held to their documented shapes.

Canvas (Instructure's "How do I import grades in the Gradebook?"): a header row; the identity columns
Student, ID, SIS User ID, SIS Login ID, Section, of which Canvas matches a row by ID, SIS User ID or SIS
Login ID; an optional second row "Points Possible"; then one column per assignment. Moodle (grade import
from a CSV file): a header row, one column that identifies the user (mapped at import to username, ID
number or email address) and one column per grade item.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from autograder.course.layout import CourseError
from autograder.course.lms import CANVAS_FIELDS, left_empty, read_roster, write_lms

L1, L2 = "01_finite_differences", "02_chain_rule"
ROWS = [
    {"student": "alice", "lesson": L1, "score": 12.0, "max_score": 12.0, "status": "graded"},
    {"student": "alice", "lesson": L2, "score": 17.5, "max_score": 19.0, "status": "needs manual grading"},
    {"student": "bob", "lesson": L1, "score": 4.0, "max_score": 12.0, "status": "graded"},
    {"student": "bob", "lesson": L2, "score": 0.0, "max_score": 19.0, "status": "missing"},
]


def read(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


def test_canvas_file_has_the_documented_columns_and_a_points_possible_row(tmp_path):
    rows = read(write_lms("canvas", ROWS, tmp_path, None))
    assert rows[0] == [*CANVAS_FIELDS, "01_finite_differences", "02_chain_rule"]
    assert rows[1][0] == "Points Possible" and rows[1][5:] == ["12", "19"]
    # without a roster the course id is the SIS Login ID, one of the three columns Canvas matches on
    assert rows[2] == ["alice", "", "", "alice", "", "12", "17.5"]
    assert rows[3] == ["bob", "", "", "bob", "", "4", "0"]
    assert all(len(r) == len(rows[0]) for r in rows)


def test_canvas_roster_supplies_the_ids_canvas_matches_on(tmp_path):
    roster = tmp_path / "canvas_export.csv"
    roster.write_text("Student,ID,SIS User ID,SIS Login ID,Section,Homework 1 (111)\n"
                      "    Points Possible,,,,,10\n"
                      '"Liddell, Alice",4711,S-001,alice,Sec A,\n'
                      '"Builder, Bob",4712,S-002,BOB,Sec A,\n', encoding="utf-8")
    rows = read(write_lms("canvas", ROWS, tmp_path, roster))
    by_student = {r[0]: r for r in rows[2:]}
    assert by_student["Liddell, Alice"][:5] == ["Liddell, Alice", "4711", "S-001", "alice", "Sec A"]
    # 'bob' matches 'BOB': case is ignored; the Points Possible row is no student
    assert by_student["Builder, Bob"][1] == "4712"
    assert len(rows) == 4


def test_a_student_missing_from_the_roster_is_refused_by_name(tmp_path):
    roster = tmp_path / "canvas_export.csv"
    roster.write_text("Student,ID,SIS User ID,SIS Login ID,Section\nLiddell Alice,4711,S-001,alice,A\n")
    with pytest.raises(CourseError, match=r"not in the roster: bob"):
        write_lms("canvas", ROWS, tmp_path, roster)
    assert not (tmp_path / "canvas_grades.csv").exists()


def test_moodle_file_identifies_users_by_a_mappable_column(tmp_path):
    rows = read(write_lms("moodle", ROWS, tmp_path, None))
    assert rows == [["Username", "01_finite_differences", "02_chain_rule"],
                    ["alice", "12", "17.5"], ["bob", "4", "0"]]


def test_moodle_roster_by_email_local_part(tmp_path):
    roster = tmp_path / "moodle_export.csv"
    roster.write_text("First name,Last name,ID number,Institution,Department,Email address\n"
                      "Alice,Liddell,1001,,,alice@uni.example\nBob,Builder,1002,,,bob@uni.example\n")
    rows = read(write_lms("moodle", ROWS, tmp_path, roster))
    assert rows[0] == ["ID number", "Email address", "01_finite_differences", "02_chain_rule"]
    assert rows[1] == ["1001", "alice@uni.example", "12", "17.5"]


def test_an_unreadable_or_empty_roster_is_one_clear_error(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("Student,ID\n")
    with pytest.raises(CourseError, match="no student rows"):
        read_roster(empty)
    with pytest.raises(CourseError, match="cannot read the roster"):
        read_roster(tmp_path / "absent.csv")


def test_a_grade_the_course_does_not_stand_behind_is_left_empty_and_listed(tmp_path):
    rows = [*ROWS[:3], {**ROWS[3], "status": "grader failed", "notes": "kernel died"}]
    canvas = read(write_lms("canvas", rows, tmp_path, None))
    assert canvas[3][-1] == ""  # Canvas reads an empty cell as "no change"
    assert read(write_lms("moodle", rows, tmp_path, None))[2][-1] == ""
    assert left_empty(rows) == [f"alice {L2}: needs manual grading", f"bob {L2}: grader failed"]
