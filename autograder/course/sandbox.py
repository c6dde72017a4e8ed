"""How the course starts student kernels: under limits, in a sandbox that can reach nothing of the course.

Run as `python -P -m autograder.course.sandbox -f CONNECTION_FILE`, this is the grading kernel: an
ipykernel under memory and CPU-time limits, whose working folder is a fresh folder holding only the
notebook being graded (and the lesson's declared data files). `-P` keeps that folder off `sys.path`, so a
module a student writes there cannot shadow an installed one.

How far it is isolated is decided once per grading process (`isolation()`):
- "root": the grader runs as root (CI, Gradescope's container, Docker). The kernel gets its own mount,
  PID, network, IPC and UTS namespaces, sees a new root filesystem that holds only the system folders,
  the Python installation, the visible checks (with the kernel's end of the grading channel, `probe` and
  `wire`) and its own run folder, and runs as the unprivileged user
  `course-sandbox` (created once, no home, no shell).
- "userns": the grader is an ordinary user and the system allows user namespaces: the same sandbox,
  with the grader's own user id mapped inside and every capability dropped.
- "user": root, but namespaces are refused: only the drop to `course-sandbox`.
- "none": neither; `isolation_warning()` says plainly what is not isolated.

In the namespaced modes the launcher process forks an init (PID 1 of the new PID namespace) that forks
the kernel; when the kernel ends, the init ends, and Linux kills every process left in the namespace, so
nothing a notebook starts outlives it. A launcher killed by the grader takes the namespace with it.

Test cells are judged in the grader (`autograder.course.judge`), so the kernel never needs the hidden checks
or `reference_impl`: it imports nothing of the course before it hides the repository, and neither can be
imported (or read) by student code.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import pwd
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

KERNEL_NAME = "course-sandbox"
MEMORY_ENV = "COURSE_KERNEL_MEMORY_MB"
CPU_ENV = "COURSE_KERNEL_CPU_SECONDS"
SANDBOX_ENV = "COURSE_SANDBOX"
GRADER_ENV = "COURSE_GRADER_PID"
SANDBOX_USER = "course-sandbox"

VISIBLE_CHECKS = ("__init__.py", "checks.py", "lesson[0-9][0-9].py", "probe.py", "wire.py")
"""The files of the `autograder` package the kernel can read: those a student's kit installs, and the
kernel's end of the grading channel (`probe`, which answers the grader, and its encoding `wire`)."""

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
DEVICES = ("null", "zero", "full", "random", "urandom")
KEPT_ENV = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_NUMERIC", "TZ", "TERM")

# Unix-domain socket paths are limited to 107 bytes on Linux (103 on macOS); keep a margin.
_MAX_SOCKET_PATH = 90

_CLONE_NEWNS, _CLONE_NEWUTS, _CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
_CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_MOUNT_ATTR_RDONLY, _AT_RECURSIVE, _SYS_MOUNT_SETATTR = 1, 0x8000, 442
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS = 1, 38


# ---------------------------------------------------------------- grader side

@dataclass(frozen=True)
class Isolation:
    """How student kernels are isolated on this machine, and why not better."""

    mode: str          # "root", "userns", "user" or "none" (module docstring)
    reason: str = ""   # why the better modes are unavailable ("" when namespaced)
    uid: int = -1      # the sandbox user (mode "root" and "user")
    gid: int = -1

    @property
    def namespaced(self) -> bool:
        return self.mode in ("root", "userns")


@functools.cache
def isolation() -> Isolation:
    """Decide once per process how kernels are isolated (creates the sandbox user when root)."""
    if not sys.platform.startswith("linux"):
        return Isolation("none", f"sandboxing needs Linux namespaces; this is {sys.platform}")
    if os.geteuid() == 0:
        uid, gid = ensure_sandbox_user()
        problem = _probe_namespaces(user=False)
        if not problem:
            return Isolation("root", uid=uid, gid=gid)
        unreadable = _unreadable_python()
        if unreadable:
            return Isolation("none", f"{problem}, and the Python installation ({unreadable}) is not readable "
                                     f"by other users, so the kernel cannot run as {SANDBOX_USER}")
        return Isolation("user", problem, uid, gid)
    problem = _probe_namespaces(user=True)
    return Isolation("none", problem) if problem else Isolation("userns")


def isolation_warning() -> str:
    """One plain paragraph on what student code can reach here, or "" when it is fully isolated.

    `course autograde` prints it once at the start of a run.
    """
    iso = isolation()
    if iso.namespaced:
        return ""
    fix = ("Grade as root (student code then runs as the user course-sandbox in namespaces) or on a system "
           "that allows unprivileged user namespaces")
    if iso.mode == "user":
        return (f"warning: student kernels run as the user {SANDBOX_USER} but without namespaces "
                f"({iso.reason}): student code can read every file readable by all users (the lessons with "
                "their solutions, the repository and the hidden checks unless you restrict their "
                "permissions), use the network, and leave processes running after its notebook. "
                f"It cannot write the course folder. {fix}.")
    user = pwd.getpwuid(os.geteuid()).pw_name
    return (f"warning: student code is NOT isolated ({iso.reason}): it runs as {user}, so it can read and "
            "write everything you can (the gradebook, every submission, the lessons with their solutions, "
            "the hidden checks), use the network, and leave processes running after its notebook. Grade "
            f"on an account or machine that holds nothing else. {fix}.")


def ensure_sandbox_user() -> tuple[int, int]:
    """(uid, gid) of `course-sandbox`, created on first use (system user, no home, no login shell)."""
    command = ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
               "--shell", "/usr/sbin/nologin", SANDBOX_USER]
    cause = "useradd did not run"
    for attempt in range(50):
        try:
            entry = pwd.getpwnam(SANDBOX_USER)
            return entry.pw_uid, entry.pw_gid
        except KeyError:
            pass
        if attempt == 0:
            try:
                cause = subprocess.run(command, capture_output=True, text=True, check=False).stderr.strip()
            except OSError as exc:
                cause = str(exc)
        else:
            time.sleep(0.1)  # a parallel grading process may be creating it right now
    raise RuntimeError(f"could not create the user {SANDBOX_USER} ({cause}): create it with "
                       f"`{' '.join(command)}`")


def _probe_namespaces(*, user: bool) -> str:
    """"" when this process may create the kernel's namespaces and mount in them, else what refused it."""
    code = f"from autograder.course.sandbox import _probe; _probe(user={user})"
    try:
        done = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"namespaces could not be tried: {exc}"
    if done.returncode == 0:
        return ""
    what = "user namespaces" if user else "namespaces"
    return f"{what} are refused here ({(done.stderr.strip().splitlines() or ['no reason'])[-1]})"


def _probe(*, user: bool) -> None:
    """Run in a throw-away process: enter the kernel's namespaces and mount a tmpfs, or exit with why not."""
    try:
        _unshare(user=user)
        _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
        _mount("probe", "/tmp", "tmpfs", _MS_NOSUID | _MS_NODEV, "size=4k")
        _read_only("/tmp")
    except OSError as exc:
        sys.exit(str(exc))


def _unreadable_python() -> str:
    """The first folder of this Python that other users cannot enter or read, or ""."""
    for prefix in {sys.prefix, sys.base_prefix}:
        path = Path(prefix).resolve()
        for folder in [*reversed(path.parents), path]:
            if folder.stat().st_mode & 0o005 != 0o005:
                return str(folder)
    return ""


def private_connection(folder: str | Path) -> dict[str, str]:
    """KernelManager settings that put a kernel's sockets in ``folder``, so no other kernel can take them.

    Over TCP, jupyter_client picks "free" ports by binding port 0 and closing the socket; the kernel binds
    them a moment later. Kernels started at once by different processes (``--jobs``, parallel tests) can
    be handed the same port, and one dies with "Address already in use" before it replies to anything.
    ZeroMQ IPC sockets in a folder of our own cannot collide (and, unlike TCP, reach a kernel that has no
    network). Where IPC is unavailable (Windows) or the folder's path is too long for a socket name, the
    default TCP transport is kept.
    """
    prefix = str(Path(folder) / "kernel")
    if os.name != "posix" or len(prefix) + len("-99") > _MAX_SOCKET_PATH:
        return {}
    return {"transport": "ipc", "ip": prefix}


def sandbox_settings(iso: Isolation, hidden: list[Path]) -> dict:
    """What the kernel launcher needs to build its sandbox: the mode and what it may see.

    ``hidden`` are folders that must stay unreadable (course folder, lessons, repository); they matter
    only where they lie inside a folder the kernel sees anyway (e.g. a non-editable install).
    """
    import autograder

    package = Path(autograder.__file__).resolve().parent
    visible = sorted(str(p) for pattern in VISIBLE_CHECKS for p in package.glob(pattern))
    concealed = [package / "hidden", package / "course", package.parent / "reference_impl", *hidden]
    return {
        "mode": iso.mode, "uid": iso.uid, "gid": iso.gid,
        "expose": sorted({*SYSTEM_DIRS, sys.prefix, sys.base_prefix, sys.exec_prefix}) + visible,
        "conceal": sorted({str(Path(p).resolve()) for p in concealed}),
    }


def write_kernel_spec(memory_mb: int, cpu_seconds: int, sandbox: dict | None = None) -> Path:
    """Write a kernel spec directory for these limits; returns the folder to give a KernelSpecManager.

    ``sandbox`` comes from `sandbox_settings` (None: no sandbox, as for the instructor's own notebooks).
    The folder also holds each kernel's run folder (`new_run`) and the empty mount point of its root.
    """
    root = Path(tempfile.mkdtemp(prefix="course-kernels-"))
    spec_dir = root / KERNEL_NAME
    spec_dir.mkdir()
    (root / "root").mkdir()
    root.chmod(0o711)  # the sandbox user must reach its run folder, never list the others
    spec = {
        "argv": [sys.executable, "-P", "-m", "autograder.course.sandbox", "-f", "{connection_file}",
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
            SANDBOX_ENV: json.dumps({**(sandbox or {"mode": "none"}), "root": str(root / "root")}),
            # the process that starts the kernel: a launcher whose parent is no longer it is an orphan
            GRADER_ENV: str(os.getpid()),
        },
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return root


def new_run(spec_root: Path) -> Path:
    """A fresh run folder for one kernel: its sockets, connection file, `home/` and working folder `work/`.

    The grader's matplotlib font list is copied into the kernel's matplotlib folder, so a kernel that
    plots does not spend a moment rebuilding it.
    """
    run = Path(tempfile.mkdtemp(prefix="run", dir=spec_root))
    (run / "work").mkdir()
    (run / "home" / "matplotlib").mkdir(parents=True)
    cache = Path(os.environ.get("MPLCONFIGDIR") or
                 Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "matplotlib")
    for fonts in cache.glob("fontlist-*.json"):
        shutil.copyfile(fonts, run / "home" / "matplotlib" / fonts.name)
    return run


def apply_limits(memory_mb: int, cpu_seconds: int) -> None:
    """Limit this process: address space (MemoryError instead of swapping) and CPU time (SIGXCPU)."""
    if memory_mb > 0:
        size = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (size, size))
    if cpu_seconds > 0:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))


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


# ---------------------------------------------------------------- kernel side (the launcher process)

_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (the grader, or the launcher)."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: None if s is None else s.encode()
    _check(_LIBC.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {target}")


def _read_only(path: str) -> None:
    """Make the mount at ``path`` and every mount below it read-only."""
    class MountAttr(ctypes.Structure):
        _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                    ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]

    attr = MountAttr(_MOUNT_ATTR_RDONLY, 0, 0, 0)
    result = _LIBC.syscall(_SYS_MOUNT_SETATTR, -100, path.encode(), _AT_RECURSIVE, ctypes.byref(attr),
                           ctypes.sizeof(attr))
    _check(result, f"read-only {path} (mount_setattr needs Linux 5.12 or later)")


def _bind(source: str, root: str, *, writable: bool = False) -> None:
    """Show ``source`` at the same path inside the new root ``root`` (read-only unless ``writable``)."""
    target = root + source
    if os.path.islink(source):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.readlink(source), target)
        return
    if os.path.isdir(source):
        Path(target).mkdir(parents=True, exist_ok=True)
    else:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        if not os.path.exists(target):
            Path(target).touch()
    _mount(source, target, None, _MS_BIND | _MS_REC)
    if not writable:
        _read_only(target)


def _new_root(settings: dict, run: Path) -> None:
    """Build the kernel's filesystem (module docstring) and move into it; needs the new mount namespace."""
    root = settings["root"]
    os.umask(0o022)
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)   # nothing we mount propagates back to the host
    _mount("sandbox", root, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755,size=1m")
    for path in settings["expose"]:
        if os.path.lexists(path):
            _bind(path, root)
    _bind(str(run), root, writable=True)
    for name in DEVICES:
        _bind(f"/dev/{name}", root, writable=True)
    for folder in ("tmp", "proc"):
        Path(root, folder).mkdir(exist_ok=True)
    _mount("proc", root + "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    for path in settings["conceal"]:
        if os.path.isdir(root + path):
            _mount("hidden", root + path, "tmpfs", _MS_RDONLY | _MS_NOSUID | _MS_NODEV, "size=4k")
    _mount(None, root, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
    os.chroot(root)


def _drop_privileges(settings: dict, run: Path) -> None:
    """Become the sandbox user (root grader) or give up every capability (user namespace)."""
    if settings["mode"] in ("root", "user"):
        uid, gid = settings["uid"], settings["gid"]
        for folder, _, files in os.walk(run):
            for path in [folder, *(os.path.join(folder, f) for f in files)]:
                os.chown(path, uid, gid)
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    elif settings["mode"] == "userns":
        class Header(ctypes.Structure):
            _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

        empty = (ctypes.c_uint32 * 6)()
        _check(_LIBC.capset(ctypes.byref(Header(0x20080522, 0)), empty), "drop capabilities")
    if _LIBC is not None:
        _check(_LIBC.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no new privileges")


def _unshare(*, user: bool) -> None:
    """New mount, PID, network, IPC and UTS namespaces (and a user namespace mapping only our own ids)."""
    flags = _CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWNET | _CLONE_NEWIPC | _CLONE_NEWUTS
    uid, gid = os.getuid(), os.getgid()
    _check(_LIBC.unshare(flags | (_CLONE_NEWUSER if user else 0)), "unshare")
    if user:
        maps = {"setgroups": "deny", "uid_map": f"{uid} {uid} 1", "gid_map": f"{gid} {gid} 1"}
        for name, text in maps.items():
            Path("/proc/self", name).write_text(text)


def _namespaces(settings: dict, grader: int) -> None:
    """Enter new namespaces and fork: returns only in the kernel process; the others relay its end."""
    _unshare(user=settings["mode"] == "userns")
    # interrupts are for the kernel; this launcher and the init must not die of them
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    status_r, status_w = os.pipe()
    init = os.fork()
    if init == 0:                      # PID 1 of the new namespace
        os.close(status_r)
        _die_with_parent()
        kernel = os.fork()
        if kernel == 0:
            os.close(status_w)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            return
        # This init keeps its privileges: a kernel without them may neither ptrace nor signal it.
        os.chdir("/")
        while True:                    # reap orphans until the kernel itself ends
            pid, status = os.wait()
            if pid == kernel:
                os.write(status_w, str(status).encode())
                os._exit(0)            # as PID 1 exits, Linux kills whatever the notebook left running
    os.close(status_w)
    while not os.waitpid(init, os.WNOHANG)[0]:
        if os.getppid() != grader:     # the grader died and the parent-death signal did not reach us
            os.kill(init, signal.SIGKILL)
        time.sleep(0.2)
    relayed = os.read(status_r, 64)
    status = int(relayed) if relayed else None
    if status is not None and os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)      # die of the kernel's signal, so the grader can say why it ended
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    os._exit(os.WEXITSTATUS(status) if status is not None and os.WIFEXITED(status) else 1)


def _forget_course_modules() -> None:
    """The grader's own modules (imported to start this launcher) are no business of student code."""
    for name in [n for n in sys.modules if n == "autograder.course" or n.startswith("autograder.course.")]:
        del sys.modules[name]
    package = sys.modules.get("autograder")
    if package is not None and hasattr(package, "course"):
        delattr(package, "course")


def _kernel_environment(run: Path) -> None:
    """Only the settings a kernel needs: nothing of the grader's environment, a home in its run folder."""
    spec_env = {MEMORY_ENV, CPU_ENV, "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "MALLOC_ARENA_MAX", "MPLBACKEND", "PYTHONWARNINGS"}
    for name in list(os.environ):
        if name not in spec_env and name not in KEPT_ENV and not name.startswith("NBGRADER_"):
            del os.environ[name]
    home = str(run / "home")
    # JPY_PARENT_PID=1 tells ipykernel not to poll for its parent (in a PID namespace the parent is PID 1)
    # and not to print its standalone-kernel banner on the grader's terminal; joblib (scikit-learn) would
    # warn on stderr that it cannot use /dev/shm, which the sandbox does not have
    os.environ.update(JPY_PARENT_PID="1", JOBLIB_MULTIPROCESSING="0", HOME=home, TMPDIR=home,
                      MPLCONFIGDIR=os.path.join(home, "matplotlib"), IPYTHONDIR=os.path.join(home, "ipython"))


def main() -> None:
    settings = json.loads(os.environ.pop(SANDBOX_ENV, "") or '{"mode": "none"}')
    grader = int(os.environ.pop(GRADER_ENV, "0") or 0) or os.getppid()
    _die_with_parent()
    if os.getppid() != grader:  # the grader died before the parent-death signal was armed: nobody waits
        os._exit(1)
    if settings["mode"] != "none":
        run = Path(sys.argv[sys.argv.index("-f") + 1]).resolve().parent
        if settings["mode"] in ("root", "userns"):
            _namespaces(settings, grader)  # from here on: the kernel process, PID 2 of its namespace
            work = os.getcwd()
            _new_root(settings, run)
            os.chdir(work)
        _drop_privileges(settings, run)
        _die_with_parent()  # a change of user clears it (in mode "user" the kernel is this process)
        _kernel_environment(run)
    _forget_course_modules()
    apply_limits(int(os.environ.get(MEMORY_ENV, "0")), int(os.environ.get(CPU_ENV, "0")))
    # The kernel's own diagnostics (e.g. when it is shut down mid-message) would land on the grader's
    # terminal; student output is unaffected, ipykernel sends it to the notebook over ZMQ.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    from ipykernel.kernelapp import launch_new_instance

    launch_new_instance(argv=sys.argv[1:])


if __name__ == "__main__":
    main()
