"""The instructor's `course` command: nbgrader orchestration for this course.

One module per job: `layout` (the course folder and its errors), `config` (nbgrader settings that do not
lose grades), `sandbox` (the resource-limited student kernel), `safe_execute` (recovery from cells that
kill or hang their kernel), `release`/`kit`, `check`, `collect`, `autograde`, `feedback`, `export`,
`gradescope`, `demo`, and `cli` which ties them together. Nothing here is imported by test cells.
"""
