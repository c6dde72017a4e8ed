"""Hidden checks (instructor only, never shipped): one module per lesson, imported only by the grader."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable


def silently(check: Callable, *args: object, **kwargs: object) -> None:
    """Rerun a visible check without its pass line: the test cell's own call of the visible check has
    printed it already, and the feedback shows it once."""
    with contextlib.redirect_stdout(io.StringIO()):
        check(*args, **kwargs)
