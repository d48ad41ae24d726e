"""End the ``clvcast`` process without the interpreter's teardown, when nothing can be lost.

When a command has finished, CPython frees every module it imported, one by one: for pandas,
pyarrow and DuckDB that takes 0.07-0.1 s, in which the user waits and nothing is written
(``python -c "import pandas, pyarrow, duckdb"`` takes 0.45-0.49 s, and 0.36-0.39 s when it
ends with ``os._exit``). :func:`exit_quickly` skips that step, after doing what the teardown
does for the command's results:

- clvcast's clean-up threads finish (:data:`CLEANUP_THREAD_PREFIX`: closing DuckDB and
  removing its spill folder, which otherwise stayed behind in the temporary directory, one
  empty ``clvcast-duckdb-*`` folder a command, and the spill files of a large one);
- the ``atexit`` handlers run: logging flushes and closes its files, MLflow and coverage
  save theirs, temporary folders are removed by their finalizers;
- stdout and stderr are flushed.

It returns instead, and the process ends the usual way, when skipping could lose something:

- a thread that clvcast did not start is still running and is not a daemon (Python waits
  for such a thread before it exits);
- a tracer or a profiler is attached (a debugger, ``python -m cProfile``, coverage): their
  reports are written after the program returns;
- stdout or stderr cannot be flushed (a reader that went away): Python reports it as usual.

Only the command line calls it (:func:`clvcast.cli.console_main`); :func:`clvcast.cli.main`
returns as before, for notebooks and tests.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading

# clvcast's own threads (helper threads of the fits, the import thread of a job) are idle or
# only importing once a command returns: nothing of theirs is waiting to be written.
OWN_THREAD_PREFIX = "clvcast-"
# ... except these, which finish a command's work in the background (they take milliseconds
# by the time a command ends): the exit waits for them.
CLEANUP_THREAD_PREFIX = "clvcast-cleanup-"


def _waited_for_threads() -> list[str]:
    """Names of the live threads Python would wait for that clvcast did not start."""
    current = threading.current_thread()
    return [
        thread.name
        for thread in threading.enumerate()
        if thread is not current
        and not thread.daemon
        and not thread.name.startswith(OWN_THREAD_PREFIX)
    ]


def _observed() -> bool:
    """True when a tracer or profiler watches the process (settrace, setprofile, monitoring)."""
    if sys.gettrace() is not None or sys.getprofile() is not None:
        return True
    monitoring = getattr(sys, "monitoring", None)  # Python 3.12 and later
    if monitoring is None:
        return False
    return any(monitoring.get_tool(tool) is not None for tool in range(6))


def exit_quickly(code: int) -> None:
    """End the process now with ``code``, or return when that could lose something."""
    if _observed() or _waited_for_threads():
        return
    for thread in threading.enumerate():
        if thread.name.startswith(CLEANUP_THREAD_PREFIX):
            thread.join()
    atexit._run_exitfuncs()  # what the teardown would run first; it clears the handlers
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:  # None: the descriptor was closed when Python started
                stream.flush()
    except (OSError, ValueError):  # a closed pipe or stream: the usual exit reports it
        return
    os._exit(code)
