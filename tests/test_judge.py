"""The grading channel: what crosses between kernel and grader, and how test cells are judged in the grader.

`wire` must carry every value a check compares without changing its type or bits, and refuse anything
else; `Remote` objects must behave like the student's objects they stand for (calls, attributes,
operators, exceptions, in-place changes, callbacks); `judge` must write a test cell's outputs itself.
All of it runs over `judge.loopback` (a thread serving a namespace, as a kernel serves its notebook).
"""

from __future__ import annotations

import math
import socket
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from autograder import wire
from autograder.checks import in_kernel, student_frame, type_name
from autograder.course import judge


def _roundtrip(value: object) -> object:
    def refuse(obj: object) -> dict:
        raise AssertionError(f"{obj!r} should be data")

    return wire.decode(wire.encode(value, refuse), lambda tag: pytest.fail(f"unexpected handle {tag}"))


@pytest.mark.parametrize("value", [
    None, True, 0, -3, 2**70, 0.1, -0.0, math.inf, "text", 1 + 2j,
    np.float32(1.5), np.int64(7), np.float64(0.25), [1, (2.0, None)], {"a": [1], 3: "b"}, {1, 2},
    frozenset({"x"}), (), [],
])
def test_plain_values_cross_unchanged(value: object) -> None:
    back = _roundtrip(value)
    assert type(back) is type(value) and back == value
    if isinstance(value, float):
        assert math.copysign(1, back) == math.copysign(1, value)


def test_nan_crosses() -> None:
    assert math.isnan(_roundtrip(math.nan))


DTYPES = [np.float64, np.float32, np.int32, np.int64, np.bool_, np.complex128]


@given(hnp.arrays(dtype=st.sampled_from(DTYPES),
                  shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)))
def test_arrays_keep_dtype_shape_and_bits(array: np.ndarray) -> None:
    back = _roundtrip(array)
    assert isinstance(back, np.ndarray) and back.dtype == array.dtype and back.shape == array.shape
    assert back.tobytes() == np.ascontiguousarray(array).tobytes()


def test_read_only_arrays_stay_read_only() -> None:
    frozen = np.arange(3.0)
    frozen.setflags(write=False)
    assert not _roundtrip(frozen).flags.writeable
    assert _roundtrip(np.arange(3.0)).flags.writeable


@pytest.mark.parametrize("garbage", [
    [1, 2], {"$array": "O", "shape": [1], "w": True, "b": ""},
    {"$array": "<f8", "shape": [3], "w": True, "b": "AA=="},
    {"$float": "x"}, {"$dict": [[[1], 2]]}, {"$what": 1}, {"$scalar": "|O8", "b": ""}, 1.5,
])
def test_garbage_is_refused_without_building_anything(garbage: object) -> None:
    with pytest.raises(wire.WireError):
        wire.decode(garbage, lambda tag: pytest.fail("no handle here"))


def test_oversized_message_is_refused() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(wire._HEADER.pack(wire.MAX_MESSAGE + 1))
        with pytest.raises(wire.WireError, match="limit"):
            wire.receive(ours)


# ---------------------------------------------------------------------------------------------------------
# Remote objects behave like the student's
# ---------------------------------------------------------------------------------------------------------

STUDENT = '''
import numpy as np

class Value:
    def __init__(self, data):
        self.data = data
        self.grad = 0.0
    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data)
    __radd__ = __add__
    def __mul__(self, other):
        return Value(self.data * (other.data if isinstance(other, Value) else other))
    def __repr__(self):
        return f"Value({self.data})"

def double_in_place(x):
    x *= 2
    return None

def apply_twice(f, x):
    return f(f(x))

def broken(x):
    y = x + 1
    raise ValueError(f"bad input {y}")

def blank():
    raise NotImplementedError()

class OwnError(Exception):
    pass

def own_error():
    raise OwnError("mine")

def as_float32(x):
    return np.float32(x)

def returns_function():
    return lambda v: v * 3
'''


@pytest.fixture
def channel():
    namespace: dict = {}
    exec(compile(STUDENT, "<answer cell>", "exec"), namespace)
    with judge.loopback(namespace, timeout=60) as ch:
        yield ch


def test_calls_attributes_and_operators_run_in_the_kernel(channel: judge.Channel) -> None:
    value_class = channel.fetch("Value")
    assert isinstance(value_class, type) and type_name(value_class) == "type"
    a = value_class(2.0)
    b = a + value_class(3.0)
    assert type_name(b) == "Value" and b.data == 5.0 and isinstance(b, value_class)
    assert (1 + a).data == 3.0 and (a * 4).data == 8.0
    a.grad = 1.5
    assert a.grad == 1.5 and repr(a) == "Value(2.0)"
    assert not isinstance(3.0, value_class)
    assert channel.fetch("Value") is value_class  # one stand-in per kernel object: identity holds
    with pytest.raises(AttributeError):
        a.missing  # noqa: B018


def test_in_place_changes_reach_the_graders_array(channel: judge.Channel) -> None:
    x = np.arange(3.0)
    assert channel.fetch("double_in_place")(x) is None
    assert x.tolist() == [0.0, 2.0, 4.0]


def test_grader_functions_are_called_back(channel: judge.Channel) -> None:
    seen: list[type] = []

    def f(v: object) -> float:
        seen.append(type(v))
        return v + 1

    assert channel.fetch("apply_twice")(f, 1.0) == 3.0
    assert seen == [float, float]
    assert channel.fetch("as_float32")(0.5).dtype == np.float32
    assert channel.fetch("returns_function")()(2) == 6


def test_student_exceptions_keep_their_class_args_and_line(channel: judge.Channel) -> None:
    with pytest.raises(ValueError, match="bad input 2") as info:
        channel.fetch("broken")(1)
    line = STUDENT.splitlines().index('    raise ValueError(f"bad input {y}")') + 1
    assert student_frame(info.value)[:2] == ("<answer cell>", line)  # (IPython also gives the line's text)
    with pytest.raises(NotImplementedError) as blank:
        channel.fetch("blank")()
    assert blank.value.args == ()
    with pytest.raises(judge.RemoteException) as own:
        channel.fetch("own_error")()
    assert type(own.value).__name__ == "OwnError" and str(own.value) == "mine"
    with pytest.raises(NameError):
        channel.fetch("not_defined")


def test_in_kernel_runs_probes_where_the_objects_live(channel: judge.Channel) -> None:
    value_class = channel.fetch("Value")
    assert in_kernel(np.shape, [1, 2]) == (2,)  # local objects: called here
    with pytest.raises(ValueError, match="not a probe"):
        in_kernel(np.shape, value_class)  # only functions of the visible check modules run in a kernel


def test_grader_objects_that_are_not_data_are_refused(channel: judge.Channel) -> None:
    with pytest.raises(TypeError, match="cannot be sent"):
        channel.fetch("apply_twice")(len, np.random.default_rng(0))


# ---------------------------------------------------------------------------------------------------------
# judge: the grader writes the cell's outputs
# ---------------------------------------------------------------------------------------------------------


def test_judge_writes_the_pass_line_and_the_failure_message(channel: judge.Channel) -> None:
    ok = judge.judge("print('passed: x')\nassert double_in_place(np.ones(2)) is None", channel, "<t>")
    assert [o.output_type for o in ok] == ["stream"] and ok[0].text == "passed: x\n"
    source = "from autograder.checks import CheckFailure\nraise CheckFailure('wrong: 3 != 4')"
    failed = judge.judge(source, channel, "<t>")
    assert [(o.ename, o.evalue) for o in failed] == [("CheckFailure", "wrong: 3 != 4")]
    missing = judge.judge("undefined_function(1)", channel, "<t>")
    assert missing[0].ename == "NameError"


def test_a_kernel_that_stops_answering_fails_the_cell() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        channel = judge.Channel(ours, time.monotonic() + 0.5)
        with pytest.raises(judge.ChannelError, match="time limit"):
            channel.fetch("anything")
        theirs.sendall(b"\x00\x00\x00\x05garba")
        with pytest.raises(judge.ChannelError):
            judge.Channel(ours, time.monotonic() + 5).fetch("x")


def test_a_check_that_catches_the_kernels_failure_still_fails_the_cell() -> None:
    """A check's `except Exception` is for the student's errors: a channel that broke under it still fails
    the cell as ungradable (so the grader interrupts the kernel at once), and is never asked again."""
    with judge.loopback({"slow": lambda: time.sleep(1)}, timeout=0.2) as channel:
        source = "try:\n    slow()\nexcept Exception:\n    pass\nprint('passed: nothing')"
        with pytest.raises(judge.ChannelError, match="time limit"):
            judge.judge(source, channel, "<t>")
        requests = channel.requests
        with pytest.raises(judge.ChannelError, match="time limit"):
            channel.fetch("slow")
        assert channel.requests == requests



def test_numpy_and_format_see_the_students_value(channel: judge.Channel) -> None:
    namespace_value = channel.fetch("Value")(2.5)
    assert f"{channel.fetch('as_float32')(0.5):.2f}" == "0.50"
    assert f"{namespace_value!r:>12}" == "  Value(2.5)"
    with pytest.raises(TypeError, match="'float' and 'Value'"):  # as in the kernel: Value has no __rmul__
        np.ones(2) * namespace_value  # noqa: B018
