"""The grader's end of grading: test cells run here, the student's code runs in the kernel.

An autograded test cell is never executed by the kernel. The grader runs its source (the instructor's,
from the gradebook, hidden tests included) in its own process, where the student's names are `Remote`
objects: calling one, reading an attribute, or applying an operator is a request to the kernel
(`autograder.probe`), and the answer is plain data or another `Remote`. The checks choose their inputs
here, at grading time, and compare the numbers that come back with values computed here; the cell's
outputs (the pass line, or the failure message) are written by this module. So nothing the student's code
does in its own process (patching numpy or the checks, import hooks, input transformers, exception
handlers) can make a test cell pass: it can only change the numbers it answers with.

A kernel that does not connect, answers garbage, dies or runs past the cell's time limit fails that cell
with the cause (`ChannelError`).
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from nbformat import NotebookNode
from nbgrader.utils import is_grade, is_solution

from autograder import wire
from autograder.checks import CheckFailure, StudentObject


class ChannelError(Exception):
    """The kernel did not answer as a grading kernel must (no connection, garbage, death, time out)."""


class RemoteException(Exception):
    """An exception of a class that is not one of Python's own, raised by the student's code."""


_ERRORS: dict[str, type[BaseException]] = {
    name: obj for name, obj in vars(builtins).items()
    if isinstance(obj, type) and issubclass(obj, Exception)}
_ERRORS.pop("StopIteration", None)


def is_autograded_test(cell: NotebookNode) -> bool:
    """A cell whose points nbgrader gives for running without error: here, for passing in the grader."""
    return cell.cell_type == "code" and is_grade(cell) and not is_solution(cell)


class Channel:
    """One test cell's connection to the kernel, with the grader's callbacks and the kernel's handles."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock, self.deadline = sock, deadline
        self.remotes: dict[int, Remote] = {}
        self.callbacks: list[Callable] = []
        self.callback_numbers: dict[int, int] = {}
        self.requests = 0
        self.broken: ChannelError | None = None

    # -- encoding -------------------------------------------------------------------------------------
    def _handle(self, obj: object) -> dict:
        if isinstance(obj, Remote):
            return {"$handle": obj._number}
        if callable(obj):
            number = self.callback_numbers.get(id(obj))
            if number is None:
                number = self.callback_numbers[id(obj)] = len(self.callbacks)
                self.callbacks.append(obj)
            return {"$callback": number}
        raise TypeError(f"a {type(obj).__name__} cannot be sent to the student's kernel (only data, the "
                        "student's own objects and functions can)")

    def _resolve(self, tag: dict) -> object:
        if "$callback" in tag:
            number = int(tag["$callback"])
            if not 0 <= number < len(self.callbacks):
                raise wire.WireError(f"an unknown grader function {number}")
            return self.callbacks[number]
        number = int(tag["$handle"])
        remote = self.remotes.get(number)
        if remote is None:
            remote = self.remotes[number] = Remote(self, number, str(tag.get("type", "object")),
                                                   bool(tag.get("class", False)))
        return remote

    def encode(self, value: object) -> Any:
        return wire.encode(value, self._handle)

    def decode(self, data: Any) -> Any:
        return wire.decode(data, self._resolve)

    # -- requests ------------------------------------------------------------------------------------
    def request(self, message: dict, back: list | None = None) -> object:
        """Send one request and wait for its answer, running the kernel's calls of grader functions.

        The first ChannelError ends the conversation: every later request fails with it (a late answer must
        never be read as the next one's), and `judge` fails the cell with it even if a check caught it."""
        if self.broken is not None:
            raise ChannelError(str(self.broken))
        self.requests += 1
        try:
            return self._exchange(message, back)
        except ChannelError as exc:
            self.broken = exc
            raise

    def _exchange(self, message: dict, back: list | None) -> object:
        try:
            self._send(message)
            while True:
                reply = self._receive()
                if reply.get("op") != "callback":
                    break
                self._run_callback(reply)
            if "error" in reply:
                error = _student_error(reply["error"])
            elif "ok" not in reply:
                raise wire.WireError("an answer without a value")
            else:
                if back is not None:
                    for index, data in reply.get("back", []):
                        _write_back(back[int(index)], self.decode(data))
                return self.decode(reply["ok"])
        except (wire.WireError, OSError) as exc:
            raise ChannelError(_channel_cause(exc)) from None
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            if isinstance(exc, TypeError) and "cannot be sent" in str(exc):
                raise
            raise ChannelError(f"the kernel answered the grader with garbage ({exc})") from None
        raise error

    def _run_callback(self, request: dict) -> None:
        try:
            fn = self.decode({"$callback": request["id"]})
            args, kwargs = self.decode(request["args"]), self.decode(request["kwargs"])
            reply = {"ok": self.encode(fn(*args, **kwargs))}
        except (wire.WireError, ChannelError):
            raise
        except Exception as exc:  # noqa: BLE001 - the grader function's error goes back to the caller
            reply = {"error": {"type": type(exc).__name__, "args": [str(a) for a in exc.args]}}
        self._send(reply)

    def _send(self, message: dict) -> None:
        self.sock.settimeout(max(0.01, self.deadline - time.monotonic()))
        wire.send(self.sock, message)

    def _receive(self) -> dict:
        self.sock.settimeout(max(0.01, self.deadline - time.monotonic()))
        return wire.receive(self.sock)

    def close(self) -> None:
        """Tell the kernel the cell is judged, so its serve line ends."""
        with contextlib.suppress(OSError, wire.WireError):
            self._send({"op": "bye"})

    def fetch(self, name: str) -> object:
        return self.request({"op": "global", "name": name})

    def apply(self, fn: str, *args: object) -> object:
        return self.request({"op": "apply", "fn": fn, "args": self.encode(list(args))})


def _channel_cause(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "the test ran past the cell's time limit while the student's code computed"
    return f"the kernel stopped answering the grader ({exc})"


def _student_error(error: object) -> BaseException:
    """The student's exception, rebuilt in the grader with its class (when it is Python's) and arguments."""
    if not isinstance(error, dict):
        raise wire.WireError("an error that is not described")
    name = str(error.get("type", "Exception"))
    args = [a if isinstance(a, str | int | float) or a is None else str(a)
            for a in wire.decode(error.get("args", []), lambda tag: str(tag))] if error.get("args") else []
    cls = _ERRORS.get(name)
    exc = cls(*args) if cls is not None else _named_exception(name)(*args)
    where = error.get("where")
    if isinstance(where, list) and len(where) == 3:
        exc.student_frame = (str(where[0]), int(where[1]), str(where[2]))
    return exc


_NAMED: dict[str, type[RemoteException]] = {}


def _named_exception(name: str) -> type[RemoteException]:
    """A class carrying the student's exception class name, so messages can name it."""
    if not name.isidentifier():
        name = "Exception"
    if name not in _NAMED:
        _NAMED[name] = type(name, (RemoteException,), {})
    return _NAMED[name]


def _write_back(original: object, changed: object) -> None:
    """Apply the student's in-place change of an argument to the grader's copy, as if it were shared."""
    import numpy as np

    if isinstance(original, np.ndarray) and isinstance(changed, np.ndarray) \
            and original.shape == changed.shape:
        original[...] = changed
    elif type(original) is list and isinstance(changed, list):
        original[:] = changed


class Remote(StudentObject):
    """An object of the student's that lives in the kernel; every use is a request to it."""

    __array_ufunc__ = None  # numpy hands `array * remote` to __rmul__, which the kernel computes

    def __init__(self, channel: Channel, number: int, type_name: str, is_class: bool) -> None:
        object.__setattr__(self, "_channel", channel)
        object.__setattr__(self, "_number", number)
        object.__setattr__(self, "_type", type_name)
        object.__setattr__(self, "_is_class", is_class)
        object.__setattr__(self, "_hash", None)

    @property
    def student_type_name(self) -> str:
        return self._type

    @property
    def __class__(self) -> type:  # noqa: D105 - so that isinstance(StudentClass, type) holds for a class
        return type if self._is_class else Remote

    def run_probe(self, probe: Callable, args: tuple, kwargs: dict) -> object:
        listed = list(args)
        return self._channel.request({"op": "probe", "fn": f"{probe.__module__}:{probe.__qualname__}",
                                      "args": self._channel.encode(listed),
                                      "kwargs": self._channel.encode(kwargs)}, back=listed)

    def __call__(self, *args: object, **kwargs: object) -> object:
        listed, channel = list(args), self._channel
        message = {"op": "call", "target": {"$handle": self._number}, "args": channel.encode(listed),
                   "kwargs": channel.encode(kwargs)}
        return channel.request(message, back=listed)

    def __getattr__(self, name: str) -> object:
        if name.startswith("__") and name.endswith("__") and name not in _ATTRIBUTES:
            raise AttributeError(name)
        return self._channel.request({"op": "getattr", "target": {"$handle": self._number}, "name": name})

    def __setattr__(self, name: str, value: object) -> None:
        self._channel.request({"op": "setattr", "target": {"$handle": self._number}, "name": name,
                               "value": self._channel.encode(value)})

    def __repr__(self) -> str:
        return str(self._channel.apply("repr", self))

    def __str__(self) -> str:
        return str(self._channel.apply("str", self))

    def __hash__(self) -> int:
        if self._hash is None:
            object.__setattr__(self, "_hash", int(self._channel.apply("hash", self)))
        return self._hash

    def __bool__(self) -> bool:
        return bool(self._channel.apply("bool", self))

    def __len__(self) -> int:
        return int(self._channel.apply("len", self))

    def __iter__(self) -> Any:
        return iter(self._channel.apply("list", self))

    def __float__(self) -> float:
        return float(self._channel.apply("float", self))

    def __int__(self) -> int:
        return int(self._channel.apply("int", self))

    def __index__(self) -> int:
        return int(self._channel.apply("index", self))

    def __format__(self, spec: str) -> str:
        return str(self._channel.apply("format", self, spec))

    def __instancecheck__(self, obj: object) -> bool:
        return bool(self._channel.apply("isinstance", obj, self))

    def __subclasscheck__(self, cls: object) -> bool:
        return bool(self._channel.apply("issubclass", cls, self))


_ATTRIBUTES = {"__name__", "__qualname__", "__doc__", "__module__", "__dict__", "__array__"}


def _operator(name: str, *, reflected: bool = False) -> Callable:
    def method(self: Remote, *other: object) -> object:
        args = (*other, self) if reflected else (self, *other)
        return self._channel.apply(name, *args)

    return method


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul"):
    setattr(Remote, f"__{_name}__", _operator(_name))
    setattr(Remote, f"__r{_name}__", _operator(_name, reflected=True))
    setattr(Remote, f"__i{_name}__", _operator(f"i{_name}"))
for _name in ("neg", "pos", "abs", "invert", "eq", "ne", "lt", "le", "gt", "ge", "getitem", "setitem",
              "delitem", "contains"):
    setattr(Remote, f"__{_name}__", _operator(_name))
del _name


def _free_names(tree: ast.AST) -> list[str]:
    """Names the cell reads but never binds, and that are not built-ins: the student's, from the kernel."""
    bound, read = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                read.append(node.id)
            else:
                bound.add(node.id)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    seen: list[str] = []
    for name in read:
        if name not in bound and not hasattr(builtins, name) and name not in seen:
            seen.append(name)
    return seen


def error_output(ename: str, evalue: str) -> NotebookNode:
    """A test cell's failure, shown as the message alone (as the checks show it in a student's kernel)."""
    return NotebookNode(output_type="error", ename=ename, evalue=evalue,
                        traceback=[f"\x1b[1;31m{ename}\x1b[0m: {evalue}"])


def judge(source: str, channel: Channel, label: str) -> list[NotebookNode]:
    """Run a test cell's source here against the kernel's objects; its outputs, as the cell's outputs.

    A ChannelError (the kernel failed to answer) propagates: the caller decides how the cell fails."""
    printed, warned = io.StringIO(), io.StringIO()
    outputs: list[NotebookNode] = []
    try:
        tree = ast.parse(source)
        namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        for name in _free_names(tree):
            with contextlib.suppress(NameError):
                namespace[name] = channel.fetch(name)
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(warned):
            exec(compile(tree, label, "exec"), namespace)  # noqa: S102 - the instructor's test cell
    except ChannelError:
        raise
    except CheckFailure as exc:
        outputs.append(error_output(type(exc).__name__, str(exc)))
    except Exception as exc:  # noqa: BLE001 - like a kernel: any error fails the cell, with its text
        outputs.append(error_output(type(exc).__name__, str(exc)))
    if channel.broken is not None:  # caught by a check as a student error: it is not one
        raise ChannelError(str(channel.broken))
    if warned.getvalue():  # the test cell's own code wrote there: nbgrader zeroes such a cell
        outputs.insert(0, NotebookNode(output_type="stream", name="stderr", text=warned.getvalue()))
    if printed.getvalue():
        outputs.insert(0, NotebookNode(output_type="stream", name="stdout", text=printed.getvalue()))
    return outputs


@contextlib.contextmanager
def loopback(namespace: dict, *, timeout: float = 300) -> Iterator[Channel]:
    """The grading channel inside one process, for tests: a thread serves ``namespace`` as a grading kernel
    serves its notebook's, so checks run against `Remote` objects exactly as when grading, without a kernel.
    ``channel.fetch(name)`` gives the student's object; `judge(source, channel, label)` runs a test cell."""
    from autograder import probe

    ours, theirs = socket.socketpair()
    server = threading.Thread(target=probe.answer_until_done, args=(theirs, namespace), daemon=True)
    server.start()
    channel = Channel(ours, time.monotonic() + timeout)
    try:
        yield channel
    finally:
        channel.close()
        server.join(timeout=10)
        ours.close()
        theirs.close()


SERVE = "__import__('autograder.probe').probe.serve({path!r})"
"""The one line the kernel runs for a test cell: connect to the grader and answer it."""

_ALIVE_CHECK = 0.5
"""Seconds between checks that the kernel is alive while the grader waits for it."""


class JudgedCells:
    """Mixin for nbclient's NotebookClient (and nbgrader's Execute): test cells are judged by `judge`.

    ``probe_folder`` is where the per-cell sockets go; it must be reachable by the kernel and nobody else
    (the sandbox's run folder); by default, the folder of the kernel's connection file."""

    probe_folder: str | None = None
    probe_requests: int = 0
    probe_seconds: float = 0.0

    async def async_execute_cell(self, cell: NotebookNode, cell_index: int,  # noqa: E501
                                 execution_count: int | None = None,
                                 store_history: bool = True) -> NotebookNode:
        if not is_autograded_test(cell):
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        started = time.monotonic()
        folder = Path(self.probe_folder or os.path.dirname(self.km.connection_file))
        path = folder / f"probe{cell_index}.sock"
        from .notebooks import cell_grade_id  # here: notebooks imports this module

        label = f"<test cell {cell_grade_id(cell) or cell_index}>"
        timeout = self.timeout if self.timeout and self.timeout > 0 else 600
        deadline = time.monotonic() + timeout
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            try:  # the kernel can write this folder: whatever it put or removed there fails only this cell
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                umask = os.umask(0o111)  # created 0o666 at once: the sandboxed kernel runs as another user
                try:
                    listener.bind(str(path))
                finally:
                    os.umask(umask)
                listener.listen(1)
            except OSError as exc:
                cell.outputs = [error_output("GraderError", "this test cell could not be graded: the grader "
                                             f"could not open its socket in the kernel's folder ({exc})")]
                cell.execution_count = execution_count
                return cell
            # stop_on_error=False: a serve line ended by the grader's interrupt must not make the kernel
            # abort the next cells it receives (an aborted answer cell leaves its function undefined)
            msg_id = self.kc.execute(SERVE.format(path=str(path)), store_history=False, allow_stdin=False,
                                     stop_on_error=False)
            try:
                sock = await self._accept(listener, msg_id, deadline)
                with sock:
                    channel = Channel(sock, deadline)
                    cell.outputs = judge(cell.source, channel, label)
                    channel.close()
                    self.probe_requests += channel.requests
            except ChannelError as exc:
                cell.outputs = [error_output("GraderError", f"this test cell could not be graded: {exc}")]
                if not getattr(exc, "finished", False):
                    await self._end_request(msg_id, deadline, failed=True)
            else:
                await self._end_request(msg_id, deadline, failed=False)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        cell.execution_count = execution_count
        self.probe_seconds += time.monotonic() - started
        return cell

    async def _reply_within(self, msg_id: str, seconds: float) -> bool:
        """Whether the kernel's reply to ``msg_id`` arrives within ``seconds`` (other replies are dropped)."""
        limit = time.monotonic() + seconds
        while time.monotonic() < limit:
            try:
                msg = await self.kc.shell_channel.get_msg(timeout=max(0.05, limit - time.monotonic()))
            except Exception:  # noqa: BLE001 - queue.Empty: nothing came in time
                return False
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return True
        return False

    async def _accept(self, listener: socket.socket, msg_id: str, deadline: float) -> socket.socket:
        """The kernel's connection; ChannelError when it finishes the serve line without connecting (its
        input was rewritten) or the time runs out."""
        listener.settimeout(0.02)
        alive_checked = time.monotonic()
        while time.monotonic() < deadline:
            try:
                return listener.accept()[0]
            except TimeoutError:
                pass
            if time.monotonic() - alive_checked > _ALIVE_CHECK:
                if not await self.km.is_alive():
                    raise ChannelError("the kernel died before it connected to the grader")
                alive_checked = time.monotonic()
            while await self.kc.shell_channel.msg_ready():
                msg = await self.kc.shell_channel.get_msg(timeout=1)
                if msg.get("parent_header", {}).get("msg_id") == msg_id:
                    error = ChannelError("the kernel did not run the grader's request for this test cell "
                                         "(did code in the notebook change how cells are run?)")
                    error.finished = True
                    raise error
        raise ChannelError("the kernel never connected to the grader to run this test cell")

    async def _end_request(self, msg_id: str, deadline: float, *, failed: bool) -> None:
        """Wait for the kernel to finish the serve line; interrupt it when the cell failed to answer and the
        kernel is still busy (an idle kernel is never interrupted: its reply is already on its way)."""
        if failed:
            if await self._reply_unless_dead(msg_id, 1.0):
                return
            with contextlib.suppress(Exception):
                await self.km.interrupt_kernel()
        if await self._reply_unless_dead(msg_id, max(deadline - time.monotonic(), 10.0)):
            return
        from nbclient.exceptions import CellTimeoutError

        raise CellTimeoutError("the kernel did not finish the grader's request in time")

    async def _reply_unless_dead(self, msg_id: str, seconds: float) -> bool:
        """`_reply_within`, in short slices that check the kernel is alive: a dead kernel never replies, and
        waiting out the cell's time limit for it only delays the rerun of the rest of the notebook."""
        limit = time.monotonic() + seconds
        while True:
            if await self._reply_within(msg_id, min(_ALIVE_CHECK, max(0.0, limit - time.monotonic()))):
                return True
            if not await self.km.is_alive():
                from nbclient.exceptions import DeadKernelError

                raise DeadKernelError("the kernel died while its test cell was graded")
            if time.monotonic() >= limit:
                return False
