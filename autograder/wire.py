"""What travels between a grading kernel and the grader: plain data, and names for everything else.

When a notebook is graded, the checks run in the grader's process and the student's code runs in the
kernel (`autograder.probe` is the kernel's end). Every value that crosses is encoded here as JSON: numbers
(Python and numpy scalars keep their type), strings, None, lists, tuples, dicts, sets and numpy arrays
(dtype, shape, bytes, writeable flag). Anything else stays where it lives and crosses as a *handle*, a
number the other side uses to ask about it. Decoding builds only those plain types, never an object
chosen by the sender, so a kernel that sends garbage can make a check fail but cannot run code in the
grader. The format is private to one grading run.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Callable
from typing import Any

import numpy as np

MAX_MESSAGE = 256 * 2**20
"""Bytes in one message; a kernel that sends more is answering garbage."""

_HEADER = struct.Struct("!I")
_NUMPY_KINDS = "biufc"


class WireError(Exception):
    """A message that is not in this format (or too large): the sender is broken or lying."""


def send(sock: Any, message: dict) -> None:
    """Write one length-prefixed JSON message."""
    data = json.dumps(message, separators=(",", ":")).encode()
    sock.sendall(_HEADER.pack(len(data)) + data)


def receive(sock: Any) -> dict:
    """Read one message; WireError when the stream ends or holds something else."""
    (size,) = _HEADER.unpack(_read(sock, _HEADER.size))
    if size > MAX_MESSAGE:
        raise WireError(f"a message of {size} bytes (the limit is {MAX_MESSAGE})")
    try:
        message = json.loads(_read(sock, size))
    except ValueError as exc:
        raise WireError(f"a message that is not JSON ({exc})") from None
    if not isinstance(message, dict):
        raise WireError("a message that is not a JSON object")
    return message


def _read(sock: Any, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise WireError("the connection closed mid-message")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def encode(value: object, handle: Callable[[object], dict]) -> Any:
    """``value`` as JSON data; ``handle(obj)`` names what is not plain data (and is called for it only)."""
    if value is None or isinstance(value, bool | str):
        return value
    if type(value) is int:
        return value if abs(value) < 2**53 else {"$int": str(value)}
    if type(value) is float:
        return {"$float": repr(value)}
    if type(value) is complex:
        return {"$complex": [repr(value.real), repr(value.imag)]}
    if isinstance(value, np.generic) and value.dtype.kind in _NUMPY_KINDS:
        return {"$scalar": value.dtype.str, "b": base64.b64encode(value.tobytes()).decode()}
    if isinstance(value, np.ndarray) and value.dtype.kind in _NUMPY_KINDS:
        plain = np.array(value, order="C", subok=False)
        return {"$array": plain.dtype.str, "shape": list(plain.shape), "w": bool(value.flags.writeable),
                "b": base64.b64encode(plain.tobytes()).decode()}
    if type(value) in (list, tuple, set, frozenset):
        return {"$" + type(value).__name__: [encode(v, handle) for v in value]}
    if type(value) is dict:
        return {"$dict": [[encode(k, handle), encode(v, handle)] for k, v in value.items()]}
    return handle(value)


def decode(data: Any, resolve: Callable[[dict], object]) -> Any:
    """The value ``encode`` described; ``resolve(tag)`` turns a handle back into an object."""
    if data is None or isinstance(data, bool | str):
        return data
    if type(data) is int:
        return data
    if isinstance(data, list) or not isinstance(data, dict) or len(data) not in (1, 2, 3, 4):
        raise WireError(f"an unknown value {str(data)[:80]!r}")
    try:
        if "$float" in data:
            return float(data["$float"])
        if "$int" in data:
            return int(data["$int"])
        if "$complex" in data:
            real, imag = data["$complex"]
            return complex(float(real), float(imag))
        if "$scalar" in data:
            return np.frombuffer(base64.b64decode(data["b"]), dtype=_dtype(data["$scalar"]))[0]
        if "$array" in data:
            dtype, shape = _dtype(data["$array"]), tuple(int(n) for n in data["shape"])
            array = np.frombuffer(base64.b64decode(data["b"]), dtype=dtype).reshape(shape).copy()
            array.setflags(write=bool(data["w"]))
            return array
        for kind in (list, tuple, set, frozenset):
            if "$" + kind.__name__ in data:
                return kind(decode(v, resolve) for v in data["$" + kind.__name__])
        if "$dict" in data:
            return {decode(k, resolve): decode(v, resolve) for k, v in data["$dict"]}
    except WireError:
        raise
    except (TypeError, ValueError, KeyError, OverflowError, base64.binascii.Error) as exc:
        raise WireError(f"a malformed value {str(data)[:80]!r} ({exc})") from None
    if "$handle" in data or "$callback" in data:
        return resolve(data)
    raise WireError(f"an unknown value {str(data)[:80]!r}")


def _dtype(text: object) -> np.dtype:
    dtype = np.dtype(str(text))
    if dtype.kind not in _NUMPY_KINDS:
        raise WireError(f"an array of dtype {dtype}")
    return dtype
