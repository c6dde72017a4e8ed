"""The instructor's `course` command: nbgrader orchestration for this course.

One module per job: `layout` (the course folder and its errors), `config` (nbgrader settings that do not
lose grades), `sandbox` (the resource-limited student kernel), `safe_execute` (recovery from cells that
kill or hang their kernel), `release`/`kit`, `check`, `collect`, `autograde`, `feedback`, `export`,
`gradescope`, `demo`, and `cli` which ties them together. Nothing here is imported by test cells.
"""

import sys

# nbformat validates notebooks with jsonschema, whose format checker imports rfc3987_syntax when it is
# installed (Jupyter brings it). That module builds an Earley parser of the IRI grammar on import: about
# 1 s of CPU in every `course` process, several under load. No notebook schema uses the "iri" format and
# jsonschema treats the module as optional, so the course runs without it; validation is unchanged.
sys.modules.setdefault("rfc3987_syntax", None)
