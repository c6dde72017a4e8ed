"""How the course starts kernels: the student kernel under limits, and a connection no other kernel takes.

Run as `python -m autograder.course.sandbox -f CONNECTION_FILE`, this is the grading kernel: an ipykernel
under memory and CPU-time limits taken from the kernel spec's environment. It also asks Linux to kill it
when the grading process that started it dies, so an interrupted `course autograde` leaves no orphaned
kernels spinning on a student's infinite loop.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import tempfile
from pathlib import Path

KERNEL_NAME = "course-sandbox"
MEMORY_ENV = "COURSE_KERNEL_MEMORY_MB"
CPU_ENV = "COURSE_KERNEL_CPU_SECONDS"


# Unix-domain socket paths are limited to 107 bytes on Linux (103 on macOS); keep a margin.
_MAX_SOCKET_PATH = 90


def private_connection(folder: str | Path) -> dict[str, str]:
    """KernelManager settings that put a kernel's sockets in ``folder``, so no other kernel can take them.

    Over TCP, jupyter_client picks "free" ports by binding port 0 and closing the socket; the kernel binds
    them a moment later. Kernels started at once by different processes (``--jobs``, parallel tests) can
    be handed the same port, and one dies with "Address already in use" before it replies to anything.
    ZeroMQ IPC sockets in a folder of our own cannot collide. Where IPC is unavailable (Windows) or the
    folder's path is too long for a socket name, the default TCP transport is kept.
    """
    prefix = str(Path(folder) / "kernel")
    if os.name != "posix" or len(prefix) + len("-99") > _MAX_SOCKET_PATH:
        return {}
    return {"transport": "ipc", "ip": prefix}


def write_kernel_spec(memory_mb: int, cpu_seconds: int) -> Path:
    """Write a kernel spec directory for these limits; returns the folder to give a KernelSpecManager."""
    root = Path(tempfile.mkdtemp(prefix="course-kernels-"))
    spec_dir = root / KERNEL_NAME
    spec_dir.mkdir()
    spec = {
        "argv": [sys.executable, "-m", "autograder.course.sandbox", "-f", "{connection_file}",
                 "--IPKernelApp.log_level=ERROR"],
        "display_name": "Python 3 (course autograder sandbox)",
        "language": "python",
        "env": {
            MEMORY_ENV: str(memory_mb), CPU_ENV: str(cpu_seconds),
            # one BLAS thread per kernel: parallel grading already uses every core
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            # glibc reserves 64 MiB of address space per malloc arena and makes more under contention:
            # without a cap, a busy machine can push a healthy kernel past its address-space limit
            "MALLOC_ARENA_MAX": "2",
            "MPLBACKEND": "Agg", "PYTHONWARNINGS": "default",
        },
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return root


def apply_limits(memory_mb: int, cpu_seconds: int) -> None:
    """Limit this process: address space (MemoryError instead of swapping) and CPU time (SIGXCPU)."""
    if memory_mb > 0:
        size = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (size, size))
    if cpu_seconds > 0:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    except OSError:
        pass  # no glibc: the grader's own cleanup still shuts kernels down


def describe_exit(returncode: int | None, cpu_seconds: int) -> str:
    """Say in words why a kernel process ended, for the gradebook's record and the feedback."""
    if returncode is None:
        return "the kernel stopped responding"
    if returncode < 0:
        sig = -returncode
        if sig == signal.SIGXCPU:
            return f"the kernel used up its CPU-time limit of {cpu_seconds} s"
        if sig == signal.SIGKILL:
            return "the kernel was killed (SIGKILL, usually out of memory)"
        if sig == signal.SIGSEGV:
            return "the kernel crashed with a segmentation fault"
        return f"the kernel was killed by signal {signal.Signals(sig).name}"
    return f"the kernel process exited with status {returncode} (os._exit or a fatal error)"


def main() -> None:
    apply_limits(int(os.environ.get(MEMORY_ENV, "0")), int(os.environ.get(CPU_ENV, "0")))
    _die_with_parent()
    # The kernel's own diagnostics (e.g. when it is shut down mid-message) would land on the grader's
    # terminal; student output is unaffected, ipykernel sends it to the notebook over ZMQ.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    from ipykernel.kernelapp import launch_new_instance

    launch_new_instance(argv=sys.argv[1:])


if __name__ == "__main__":
    main()
