"""The command's quick exit: what it keeps (atexit, buffered output) and when it steps back."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# A module-level object whose finalizer runs only in the interpreter's teardown: its line on
# stdout shows whether the process went through the usual exit.
PROLOGUE = """
import atexit, os, sys, threading
from clvcast.process_exit import exit_quickly

class Teardown:
    def __del__(self):
        os.write(1, b"teardown\\n")

marker = Teardown()
atexit.register(lambda: print("atexit handler ran"))
print("buffered line")  # stdout is a pipe here: block-buffered, not yet written
"""


def _run(body: str) -> subprocess.CompletedProcess:
    script = PROLOGUE + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )


def test_exit_runs_atexit_flushes_output_and_skips_the_teardown():
    result = _run("exit_quickly(3)\nprint('returned')\n")
    assert result.returncode == 3, result.stderr
    assert result.stdout.splitlines() == ["buffered line", "atexit handler ran"]


@pytest.mark.parametrize(
    ("thread_name", "steps_back"),
    [("clvcast-cores_0", False), ("uploader", True)],
    ids=["own idle thread: exits", "foreign thread Python would wait for: steps back"],
)
def test_threads_that_hold_the_exit(thread_name, steps_back):
    result = _run(
        f"""
        release = threading.Event()
        threading.Thread(target=release.wait, args=(60,), name={thread_name!r}).start()
        exit_quickly(0)
        print("returned")
        release.set()
        """
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    if steps_back:
        assert lines[:2] == ["buffered line", "returned"]
        assert "teardown" in lines and "atexit handler ran" in lines
    else:
        assert lines == ["buffered line", "atexit handler ran"]


def test_exit_waits_for_the_clean_up_threads():
    """A clean-up thread (closing DuckDB, removing its spill folder) finishes its work
    before the process ends; the teardown is still skipped."""
    result = _run(
        """
        import time
        def clean_up():
            time.sleep(0.5)
            os.write(1, b"cleaned up\\n")
        threading.Thread(target=clean_up, name="clvcast-cleanup-test").start()
        exit_quickly(0)
        print("returned")
        """
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()  # the thread writes unbuffered: its line may come first
    assert sorted(lines) == ["atexit handler ran", "buffered line", "cleaned up"]


def test_steps_back_under_a_tracer_or_profiler():
    for attach in ("sys.settrace(lambda *a: None)", "sys.setprofile(lambda *a: None)"):
        result = _run(f"{attach}\nexit_quickly(5)\nprint('returned')\n")
        assert result.returncode == 0, result.stderr
        assert "returned" in result.stdout, attach


def test_exits_when_python_started_without_a_stdout():
    """`clvcast ... >&-`: Python sets sys.stdout to None; print writes nothing, and the
    exit must not fail on it."""
    result = _run("sys.stdout = None\nexit_quickly(6)\nos.write(2, b'returned\\n')\n")
    assert result.returncode == 6, result.stderr
    assert result.stderr == ""


def test_steps_back_when_stdout_cannot_be_flushed():
    result = _run(
        """
        sys.stdout.close()
        exit_quickly(4)
        os.write(2, b"returned\\n")
        """
    )
    assert result.returncode == 0
    assert "returned" in result.stderr
