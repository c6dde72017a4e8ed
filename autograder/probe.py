"""The kernel's end of grading: run what the grader asks on the student's objects, send back what happened.

When a notebook is graded, its test cells are not run in the kernel. For each one the grader sends the
kernel one line, `serve(path)`, and then drives the student's code from its own process over the Unix
socket at ``path``: fetch a global, call it with arguments the grader drew, read an attribute, apply an
operator, or run one of the visible checks' probes (``autograder.lessonNN`` functions that need to watch
the student's code from inside, e.g. count its recursion depth). Every answer is plain data (`wire`) or a
handle for an object that stays here. Nothing here judges: whatever this module or the student's code
sends, the grader compares it with values it computed itself, so tampering with this module can only
produce wrong numbers. Output is swallowed and warnings are silenced while student code runs: only the
grader writes the test cell's output.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import io
import operator
import socket
import sys
import warnings
from typing import Any

import numpy as np

from autograder import wire
from autograder.checks import student_frame

APPLY = {name: getattr(operator, name) for name in (
    "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "neg", "pos", "abs", "invert",
    "eq", "ne", "lt", "le", "gt", "ge", "getitem", "setitem", "delitem", "contains", "index",
    "iadd", "isub", "imul", "itruediv", "ifloordiv", "ipow", "imatmul")}
APPLY.update({name: getattr(builtins, name) for name in (
    "len", "repr", "str", "hash", "bool", "float", "int", "complex", "list", "isinstance", "issubclass",
    "callable", "dir", "format")})
APPLY["type_name"] = lambda obj: type(obj).__name__
"""What the grader may apply to the student's objects: Python's own operators and built-ins, nothing else."""

class _Session:
    """One test cell's conversation: the objects handed out so far, by handle number."""

    def __init__(self, sock: socket.socket, namespace: dict) -> None:
        self.sock, self.namespace = sock, namespace
        self.objects: list[object] = []
        self.numbers: dict[int, int] = {}

    def handle(self, obj: object) -> dict:
        number = self.numbers.get(id(obj))
        if number is None:
            number = self.numbers[id(obj)] = len(self.objects)
            self.objects.append(obj)
        return {"$handle": number, "type": type(obj).__name__, "class": isinstance(obj, type)}

    def resolve(self, tag: dict) -> object:
        if "$handle" in tag:
            return self.objects[int(tag["$handle"])]
        number = int(tag["$callback"])
        session = self

        def grader_function(*args: object, **kwargs: object) -> object:
            return session.ask({"op": "callback", "id": number, "args": session.encode(list(args)),
                                "kwargs": session.encode(kwargs)})

        grader_function.__name__ = grader_function.__qualname__ = f"f{number}"
        return grader_function

    def encode(self, value: object) -> Any:
        return wire.encode(value, self.handle)

    def decode(self, data: Any) -> Any:
        return wire.decode(data, self.resolve)

    def ask(self, message: dict) -> object:
        """Send a request of our own (a call of a grader function) and serve until its answer comes."""
        wire.send(self.sock, message)
        while True:
            reply = wire.receive(self.sock)
            if "op" not in reply:
                if "error" in reply:
                    raise _rebuild(reply["error"])
                return self.decode(reply["ok"])
            self.answer(reply)

    def answer(self, request: dict) -> None:
        with _quiet():
            try:
                value, back = self.perform(request)
                reply = {"ok": self.encode(value), "back": back}
            except Exception as exc:  # noqa: BLE001 - the student's exception is the observation
                reply = {"error": _describe(exc)}
        wire.send(self.sock, reply)

    def perform(self, request: dict) -> tuple[object, list]:
        op = request["op"]
        if op == "global":
            name = str(request["name"])
            if name not in self.namespace:
                raise NameError(f"name {name!r} is not defined")
            return self.namespace[name], []
        if op == "getattr":
            return getattr(self.decode(request["target"]), str(request["name"])), []
        if op == "setattr":
            setattr(self.decode(request["target"]), str(request["name"]), self.decode(request["value"]))
            return None, []
        if op == "apply":
            args = self.decode(request["args"])
            return APPLY[str(request["fn"])](*args), []
        if op in ("call", "probe"):
            target = self.decode(request["target"]) if op == "call" else _probe_function(str(request["fn"]))
            args, kwargs = self.decode(request["args"]), self.decode(request["kwargs"])
            before = [_snapshot(a) for a in args]
            value = target(*args, **kwargs)
            back = [[i, self.encode(a)] for i, (a, b) in enumerate(zip(args, before, strict=True))
                    if b is not None and not _same(a, b)]
            return value, back
        raise ValueError(f"unknown request {op!r}")


def _probe_function(name: str) -> Any:
    """A function of a shipped check module, by 'autograder.lessonNN:function'."""
    module_name, _, attribute = name.partition(":")
    if not module_name.startswith("autograder.lesson") or "." in module_name[len("autograder."):]:
        raise ValueError(f"{name} is not a probe of a visible check module")
    return getattr(importlib.import_module(module_name), attribute)


def _snapshot(value: object) -> object:
    """A copy to tell whether the call changed an argument in place (arrays and lists only)."""
    if isinstance(value, np.ndarray) and value.flags.writeable:
        return value.copy()
    if type(value) is list:
        return list(value)
    return None


def _same(value: object, before: object) -> bool:
    if isinstance(before, np.ndarray):
        return value.shape == before.shape and bool(np.array_equal(value, before, equal_nan=True))
    return len(value) == len(before) and all(a is b for a, b in zip(value, before, strict=True))


def _describe(exc: BaseException) -> dict:
    """An exception as data: its class name, its arguments where they are plain, where the student raised."""
    try:
        args = wire.encode(list(exc.args), lambda obj: wire.encode(repr(obj), None))
    except Exception:  # noqa: BLE001 - arguments that cannot even be shown travel as text
        args = [str(exc)]
    where = student_frame(exc)
    return {"type": type(exc).__name__, "args": args, "where": list(where) if where else None}


_BUILTIN_ERRORS = {name: obj for name, obj in vars(builtins).items()
                   if isinstance(obj, type) and issubclass(obj, Exception)}


def _rebuild(error: dict) -> Exception:
    """The grader's exception, raised into the student's code that called a grader function."""
    cls = _BUILTIN_ERRORS.get(str(error.get("type")), RuntimeError)
    return cls(*[str(a) for a in error.get("args", [])])


@contextlib.contextmanager
def _quiet() -> Any:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


def serve(path: str) -> None:
    """Answer the grader on the socket at ``path`` until it says the test cell is judged."""
    main = sys.modules["__main__"].__dict__
    try:
        from IPython import get_ipython

        shell = get_ipython()
        namespace = shell.user_ns if shell is not None else main
    except ImportError:
        namespace = main
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        answer_until_done(sock, namespace)


def answer_until_done(sock: socket.socket, namespace: dict) -> None:
    """Answer requests about ``namespace`` on a connected socket until the grader says goodbye."""
    session = _Session(sock, namespace)
    while True:
        request = wire.receive(sock)
        if request.get("op") == "bye":
            return
        session.answer(request)
