"""What every test gets: a recursion limit put back as it was.

The bug tables exec students' wrong answers in the test process, and one of them is a recursive sort that
raises the limit to 100 000 (lesson 03). Left raised, a later wrong answer that recurses without end (a
`Dual.__radd__` that calls itself) overflows the C stack and kills the whole test worker instead of
raising RecursionError.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _recursion_limit_restored() -> Iterator[None]:
    limit = sys.getrecursionlimit()
    yield
    sys.setrecursionlimit(limit)
