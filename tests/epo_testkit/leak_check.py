"""A pytest plugin: after the whole session, no process the session started may still run.

Every process the suite starts inherits SESSION_MARK from the pytest process (Ray's raylet and workers, the JVMs,
vLLM's engine cores, environment children, train_ppo_ray subprocesses; OPENRLHF_EPO_* variables also ride in Ray's
runtime_env), so a leak is found even when its parent died and it was re-parented to init, and a suite running beside
this one is left alone. Survivors of a grace period are named in the summary, killed, and fail the session.
Registered by tests/conftest.py; `pytest -p leak_check` loads it elsewhere.
"""
import os
import signal
import time

import pytest

from openrlhf_epo.integration import run_reaper

SESSION_MARK = "OPENRLHF_EPO_TEST_SESSION"
LEAK_GRACE_S = float(os.environ.get("OPENRLHF_EPO_LEAK_GRACE_S", "30"))  # Ray workers, engine cores: seconds to exit
_LEAKED = []


def marked_processes(mark: str, variable: str = SESSION_MARK):
    """[(pid, command line)] of live processes whose environment carries variable=mark."""
    return sorted(run_reaper.marked_processes(mark, variable).items())


def pytest_sessionstart(session):
    os.environ[SESSION_MARK] = f"{os.getpid()}-{time.time_ns()}"


def _bound_to_this_process() -> set:
    """Helpers that end with the pytest process itself, not with a test: multiprocessing's resource tracker (started
    the first time a test spawns a child here; it exits when this process's end of its pipe closes)."""
    from multiprocessing import resource_tracker

    pid = getattr(resource_tracker._resource_tracker, "_pid", None)
    return {pid} if pid else set()


def _left(mark: str):
    own = _bound_to_this_process()
    return [(pid, command) for pid, command in marked_processes(mark) if pid not in own]


def pytest_sessionfinish(session, exitstatus):
    mark = os.environ.get(SESSION_MARK)
    if not mark:
        return
    deadline = time.monotonic() + LEAK_GRACE_S
    left = _left(mark)
    while left and time.monotonic() < deadline:
        time.sleep(1.0)
        left = _left(mark)
    for pid, command in left:
        _LEAKED.append(f"pid {pid}: {command[:300]}")
        try:
            os.kill(pid, signal.SIGKILL)  # a leak fails the session, but must not outlive it either
        except OSError:
            pass
    if left:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    terminalreporter.section("openrlhf-epo leak check")
    if not _LEAKED:
        terminalreporter.write_line("no process started by the suite outlived it")
        return
    terminalreporter.write_line(f"{len(_LEAKED)} process(es) started by the suite were still running (killed now):")
    for line in _LEAKED:
        terminalreporter.write_line(line)
