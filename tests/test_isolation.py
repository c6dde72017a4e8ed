"""The grading kernel reaches nothing (issue 11 §1): attacks run through the real SafeExecute path.

Each kernel test executes a small notebook whose cells try one attack each and print what happened;
the test then checks the attack failed and, from outside, that nothing it tried to leave behind exists.
The root path (sandbox user + namespaces) runs where the tests run as root and namespaces work; the
user-namespace path runs the same grading as the unprivileged user `nobody`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from traitlets.config import Config

import autograder
from autograder.course import sandbox
from autograder.course.safe_execute import SafeExecute, declared_data_files

REPO = Path(autograder.__file__).resolve().parent.parent
LESSON = "01_toy"

# Cell 0 of every attack notebook: `attempt(label, fn)` prints one JSON line saying what fn did.
HARNESS = """\
import json, os, sys
def attempt(label, fn):
    try:
        value = fn()
        print(json.dumps({label: ["ok", repr(value)[:200]]}))
    except BaseException as exc:
        print(json.dumps({label: [type(exc).__name__, str(exc)[:200]]}))
"""


IDENTITY = ("attempt('identity', lambda: [line.split()[1] for line in open('/proc/self/status') "
            "if line.startswith(('Uid:', 'CapEff:', 'NoNewPrivs:'))])")
INTERNET = "attempt('internet', lambda: __import__('socket').create_connection(('1.1.1.1', 53), 3))"


def _identity(seen: dict[str, list[str]]) -> list[str]:
    """(uid, effective capabilities, no_new_privs) as the kernel saw them in /proc/self/status."""
    return json.loads(seen["identity"][1].replace("'", '"'))


def _namespaced() -> bool:
    return sandbox.isolation().namespaced


needs_sandbox = pytest.mark.skipif(not sys.platform.startswith("linux") or not _namespaced(),
                                   reason="needs Linux namespaces (root, or user namespaces allowed)")


def _course(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A course folder with a gradebook and another student's submission, and a lessons folder whose
    lesson declares one data file and also holds a stray `autograder/` package nobody declared."""
    course, lessons = tmp_path / "course", tmp_path / "lessons"
    (course / "submitted" / "bob" / LESSON).mkdir(parents=True)
    (course / "gradebook.db").write_bytes(b"SQLite format 3\0")
    (course / "submitted" / "bob" / LESSON / "toy.ipynb").write_text("{}")
    lesson = lessons / LESSON
    (lesson / "data").mkdir(parents=True)
    (lesson / "data" / "points.csv").write_text("x,y\n1,2\n")
    (lesson / "autograder").mkdir()
    (lesson / "autograder" / "__init__.py").write_text("FAKE = True\n")
    source = new_notebook(cells=[new_code_cell("from autograder.hidden import lesson01 as hidden")],
                          metadata={"course": {"data_files": ["data/points.csv"]}})
    nbformat.write(source, str(lesson / "toy.ipynb"))
    return course, lessons, lesson / "toy.ipynb"


def _grade(cells: list[str], course: Path, lessons: Path) -> dict[str, list[str]]:
    """Execute HARNESS + cells as SafeExecute does when grading lesson 01_toy; the attempts' outcomes."""
    config = Config()
    config.Execute.timeout = 60
    config.Execute.raise_on_iopub_timeout = False
    config.Execute.interrupt_on_timeout = False
    config.CourseDirectory.root = str(course)
    config.CourseDirectory.source_directory = str(lessons)
    nb = new_notebook(cells=[new_code_cell(HARNESS), *(new_code_cell(c) for c in cells)])
    resources = {"metadata": {"path": str(course / "autograded" / "eve" / LESSON)},
                 "nbgrader": {"assignment": LESSON, "notebook": "toy", "student": "eve"}}
    SafeExecute.events.clear()
    out, _ = SafeExecute(config=config).preprocess(nb, resources)
    assert resources["metadata"]["path"].endswith(f"eve/{LESSON}"), "the caller's resources are restored"
    outcomes: dict[str, list[str]] = {}
    for cell in out.cells:
        for output in cell.outputs:
            for line in output.get("text", "").splitlines():
                if line.startswith("{"):
                    outcomes.update(json.loads(line))
    return outcomes


def _processes_with(token: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if token in cmdline.read_bytes().decode(errors="replace"):
                found.append(cmdline.parent.name)
        except OSError:
            pass  # the process ended while we looked
    return found


def _failed(outcome: list[str]) -> bool:
    return outcome[0] != "ok"


@pytest.mark.slow
@needs_sandbox
def test_a_grading_kernel_reaches_nothing(tmp_path: Path) -> None:
    course, lessons, source = _course(tmp_path)
    token = f"course-attack-{uuid.uuid4().hex}"
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    secrets = {
        "gradebook": course / "gradebook.db",
        "other student": course / "submitted/bob" / LESSON / "toy.ipynb",
        "source notebook": source, "hidden checks": REPO / "autograder/hidden/lesson01.py",
        "reference_impl": REPO / "reference_impl/numerical.py", "repository": REPO / "README.md",
        "grader module": REPO / "autograder/course/autograde.py",
    }
    escapes = [tmp_path / "escape.txt", course / "escape.txt", lessons / LESSON / "escape.txt",
               REPO / f"escape-{token}.txt", Path("/var/tmp") / token, Path("/dev/shm") / token]
    cells = [
        *(f"attempt('read {name}', lambda: open({str(p)!r}, 'rb').read(16))" for name, p in secrets.items()),
        # walk up from the working folder looking for the gradebook, as the reported attack did
        "from pathlib import Path\nhere = Path('.').resolve()\n"
        "attempt('find gradebook', lambda: [p for p in [here, *here.parents] if (p / 'gradebook.db')"
        ".exists()] or 1 / 0)",
        *(f"attempt('write {path}', lambda: open({str(path)!r}, 'w').write('x'))" for path in escapes),
        "attempt('write own folder', lambda: open('scratch.txt', 'w').write('x'))",
        "attempt('working folder', lambda: sorted(str(p) for p in Path('.').rglob('*')))",
        "import socket\n"
        f"attempt('tcp to the grader', lambda: socket.create_connection(('127.0.0.1', {port}), 3))",
        INTERNET,
        "import subprocess\n"
        f"sleeper = [sys.executable, '-c', 'import time; time.sleep(300)', '{token}']\n"
        "attempt('detached', lambda: subprocess.Popen(sleeper, start_new_session=True).pid)",
        "attempt('import grader', lambda: __import__('autograder.course.autograde'))",
        "attempt('import hidden checks', lambda: __import__('autograder.hidden.lesson01'))",
        "attempt('import reference_impl', lambda: __import__('reference_impl.numerical'))",
        "attempt('loaded', lambda: sorted(n for n in sys.modules if n.split('.')[0] in ('autograder', "
        "'reference_impl')))",
        IDENTITY,
    ]
    try:
        seen = _grade(cells, course, lessons)
    finally:
        listener.close()
    for label in secrets:
        assert _failed(seen[f"read {label}"]), (label, seen[f"read {label}"])
    assert _failed(seen["find gradebook"]), seen["find gradebook"]
    for path in escapes:
        assert _failed(seen[f"write {path}"]) and not path.exists(), path
    assert seen["write own folder"][0] == "ok"
    # only the notebook, the declared data file and what the kernel wrote; no stray lesson files
    assert seen["working folder"] == ["ok", repr(["data", "data/points.csv", "scratch.txt", "toy.ipynb"])]
    assert _failed(seen["tcp to the grader"]) and _failed(seen["internet"])
    assert seen["detached"][0] == "ok"
    deadline = time.monotonic() + 10
    while _processes_with(token) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _processes_with(token), "a process started by the notebook outlived it"
    assert seen["import grader"][0] == "ModuleNotFoundError"
    assert seen["import hidden checks"][0] == seen["import reference_impl"][0] == "ModuleNotFoundError"
    # only the (empty) package the launcher was started from: no checks, hidden or not, no reference_impl
    assert seen["loaded"] == ["ok", repr(["autograder"])], seen["loaded"]
    uid, caps, no_new_privs = _identity(seen)
    assert caps == "0000000000000000" and no_new_privs == "1"
    if os.geteuid() == 0:
        assert int(uid) == sandbox.ensure_sandbox_user()[0]


@pytest.mark.slow
@needs_sandbox
def test_nothing_in_the_working_folder_shadows_or_survives_a_restart(tmp_path: Path) -> None:
    """A fake `autograder/` and `sklearn/` written into the working folder, then a fresh kernel forced
    with os._exit: the rerun starts in a new empty folder, and neither fake is ever imported."""
    course, lessons, _ = _course(tmp_path)
    cells = [
        "for package in ('autograder', 'sklearn'):\n"
        "    os.makedirs(package, exist_ok=True)\n"
        "    open(f'{package}/__init__.py', 'w').write('FAKE = True')\n"
        "    open(f'{package}/lesson01.py', 'w').write('FAKE = True')\n"
        "open('runs.txt', 'a').write('x')",
        "os._exit(0)",
        "attempt('runs', lambda: open('runs.txt').read())",
        "attempt('sklearn', lambda: hasattr(__import__('sklearn'), 'FAKE'))",
        # forget the real package, as an attacker would, and import it again
        "for name in [n for n in sys.modules if n.split('.')[0] == 'autograder']:\n"
        "    del sys.modules[name]\n"
        "attempt('checks', lambda: __import__('autograder.lesson01').lesson01.__file__)",
    ]
    seen = _grade(cells, course, lessons)
    assert [e["cause"] for e in SafeExecute.events] == [sandbox.describe_exit(0, 600)]
    assert seen["runs"] == ["ok", repr("x")], "the rerun must start in a fresh folder"
    assert seen["sklearn"] == ["ok", "False"]
    assert seen["checks"] == ["ok", repr(str(REPO / "autograder" / "lesson01.py"))]


@pytest.mark.slow
@needs_sandbox
def test_only_the_visible_checks_and_the_channel_are_importable(tmp_path: Path, monkeypatch) -> None:
    """The kernel never holds the hidden checks or reference_impl (test cells are judged in the grader),
    only the visible checks and its end of the grading channel. Also: a course folder inside a folder the
    kernel sees anyway (as the package's own folders are in a non-editable install) is concealed there."""
    monkeypatch.setattr(sandbox, "SYSTEM_DIRS", (*sandbox.SYSTEM_DIRS, str(tmp_path)))
    tmp_path.chmod(0o755)
    (tmp_path / "shared.txt").write_text("seen")
    (tmp_path / "shared.txt").chmod(0o644)
    course, lessons, _ = _course(tmp_path)
    seen = _grade(["attempt('visible', lambda: __import__('autograder.lesson01').lesson01.__name__)",
                   "attempt('channel', lambda: __import__('autograder.probe').probe.serve.__name__)",
                   "attempt('hidden', lambda: __import__('autograder.hidden.lesson01'))",
                   "attempt('grader', lambda: __import__('autograder.course.judge'))",
                   "attempt('reference', lambda: __import__('reference_impl.numerical'))",
                   f"attempt('shared', lambda: open({str(tmp_path / 'shared.txt')!r}).read())",
                   f"attempt('course', lambda: os.listdir({str(course)!r}))",
                   f"attempt('lessons', lambda: os.listdir({str(lessons)!r}))"], course, lessons)
    assert seen["visible"] == ["ok", repr("autograder.lesson01")]
    assert seen["channel"] == ["ok", repr("serve")]
    assert seen["hidden"][0] == seen["reference"][0] == seen["grader"][0] == "ModuleNotFoundError", seen
    assert seen["shared"] == ["ok", repr("seen")]
    assert seen["course"] == seen["lessons"] == ["ok", "[]"], seen


def _grade_as_nobody(root: Path) -> tuple[dict, Path]:
    """Run USERNS_SCRIPT as `nobody` in `root`; its report, and the file its kernel tried to write."""
    root.chmod(0o755)
    work = root / "nobody"
    work.mkdir()
    work.chmod(0o777)
    escape = root / "escape.txt"
    script = root / "grade_as_nobody.py"
    script.write_text(USERNS_SCRIPT.format(tests=str(Path(__file__).parent), tmp=str(work),
                                           hidden=str(REPO / "autograder/hidden/lesson01.py"),
                                           escape=str(escape)))
    # This Python may live in root's home, which nobody cannot enter: in a private mount namespace, a
    # world-readable tmpfs replaces the home and only the Python installation is bound back into it.
    home, prefix, stash = Path.home(), Path(sys.base_prefix).resolve(), root / "stash"
    stash.mkdir()
    reach_python = ""
    if home in prefix.parents:
        reach_python = (f"mount --bind {prefix} {stash} && mount -t tmpfs -o mode=0755 none {home} && "
                        f"mkdir -p {prefix} && mount --bind {stash} {prefix} && ")
    command = (f"{reach_python}exec setpriv --reuid=nobody --regid=nogroup --clear-groups "
               f"env HOME={work} {sys.executable} -P {script}")
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", command],
                          capture_output=True, text=True, timeout=300, cwd=work)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), escape


USERNS_SCRIPT = """\
import json, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
import test_isolation as t
from autograder.course import sandbox
iso = sandbox.isolation()
seen = {{}}
if iso.mode == "userns":
    course, lessons, source = t._course(Path({tmp!r}))
    seen = t._grade([
        "attempt('read', lambda: open({hidden!r}).read(16))",
        "attempt('write', lambda: open({escape!r}, 'w').write('x'))",
        t.IDENTITY, t.INTERNET], course, lessons)
print(json.dumps({{"mode": iso.mode, "reason": iso.reason, "seen": seen}}))
"""


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("unshare"),
                    reason="runs the grader as `nobody`: needs root, setpriv and unshare")
def test_an_unprivileged_grader_sandboxes_kernels_in_user_namespaces() -> None:
    root = Path(tempfile.mkdtemp(prefix="course-as-nobody-"))  # pytest's tmp_path is closed to others
    try:
        report, escape = _grade_as_nobody(root)
        escaped = escape.exists()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if report["mode"] != "userns":
        pytest.skip(f"user namespaces are not available to nobody here: {report['reason']}")
    seen = report["seen"]
    assert seen["read"][0] == "FileNotFoundError", seen
    assert _failed(seen["write"]) and not escaped, seen
    assert _failed(seen["internet"]), seen
    uid, caps, no_new_privs = _identity(seen)
    assert caps == "0000000000000000" and no_new_privs == "1" and uid != "0", seen


# ---------------------------------------------------------------- in-process: no kernel

def test_declared_data_files_must_be_files_of_the_lesson_folder(tmp_path: Path) -> None:
    _, lessons, source = _course(tmp_path)
    assert declared_data_files(source) == [(lessons / LESSON / "data" / "points.csv").resolve()]
    assert declared_data_files(tmp_path / "missing.ipynb") == []
    (lessons / LESSON / "data" / "link.csv").symlink_to(tmp_path / "course" / "gradebook.db")
    for bad in ("../../course/gradebook.db", "/etc/passwd", "data/none.csv", "data/link.csv"):
        nb = nbformat.read(str(source), as_version=4)
        nb.metadata["course"]["data_files"] = [bad]
        nbformat.write(nb, str(source))
        with pytest.raises(ValueError, match="not a file inside"):
            declared_data_files(source)


def test_the_sandbox_never_exposes_the_hidden_checks_or_the_grader() -> None:
    settings = sandbox.sandbox_settings(sandbox.Isolation("root", uid=1, gid=1), [Path("/srv/course")])
    package = Path(autograder.__file__).resolve().parent
    exposed = [Path(p) for p in settings["expose"]]
    assert package / "checks.py" in exposed and package / "lesson01.py" in exposed
    assert package / "probe.py" in exposed and package / "wire.py" in exposed
    assert "preload" not in settings
    assert not [p for p in exposed if p == package or "hidden" in p.parts or "course" in p.parts
                or p == package.parent or "reference_impl" in p.parts]
    for concealed in (package / "hidden", package / "course", package.parent / "reference_impl"):
        assert str(concealed) in settings["conceal"]


@pytest.mark.parametrize("mode, says", [
    ("none", ["NOT isolated", "gradebook", "network", "processes"]),
    ("user", ["course-sandbox", "without namespaces", "readable by all users", "network", "processes"]),
    ("root", []), ("userns", []),
])
def test_autograde_is_told_plainly_what_is_not_isolated(monkeypatch, mode: str, says: list[str]) -> None:
    monkeypatch.setattr(sandbox, "isolation", lambda: sandbox.Isolation(mode, "namespaces are refused here"))
    warning = sandbox.isolation_warning()
    assert all(word in warning for word in says), warning
    assert bool(warning) == bool(says)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd"), reason="creating users needs root")
def test_the_sandbox_user_is_created_once_and_cannot_log_in() -> None:
    import pwd

    first, again = sandbox.ensure_sandbox_user(), sandbox.ensure_sandbox_user()
    assert first == again and first[0] != 0
    entry = pwd.getpwnam(sandbox.SANDBOX_USER)
    assert entry.pw_shell.endswith("nologin") and not Path(entry.pw_dir).exists()
