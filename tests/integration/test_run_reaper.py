"""Nothing of a run outlives its driver (integration/run_reaper.py): a driver killed with SIGKILL leaves processes of
its run that would linger (own session, SIGTERM ignored, as Ray's agents linger after the raylet dies): a child whose
environment lost the run's mark (found as the driver's descendant) and a daemonised grandchild, orphaned at once
(found by the mark). The watcher kills both after the grace period and names them, and leaves a process that is not
of the run alone. A driver that exits cleanly, its children gone, ends the watcher quietly."""
import os
import signal
import subprocess
import sys
import time

from pipeline_run import alive  # tests/epo_testkit, on sys.path by conftest

GRACE_S = 1.0

LINGER = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print(os.getpid(), flush=True)
sys.stdout.close()
time.sleep(600)
"""
DAEMONIZE = """
import subprocess, sys
print(subprocess.Popen([sys.executable, sys.argv[1]], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                       start_new_session=True).stdout.readline()
      .decode().strip())
"""
DRIVER = """
import os, subprocess, sys, time
from openrlhf_epo.integration.run_reaper import POLL_S, RUN_ID_VAR, reap_when_driver_exits
grace_s, mode, linger, daemonize = sys.argv[1:]
run_id = reap_when_driver_exits(grace_s=float(grace_s))
unmarked = subprocess.Popen([sys.executable, linger], stdout=subprocess.PIPE, start_new_session=True,
                            env={k: v for k, v in os.environ.items() if k != RUN_ID_VAR})
unmarked.stdout.readline()
# a daemon: its parent exits at once, so it is never the driver's descendant when the watcher looks
daemon = subprocess.run([sys.executable, daemonize, linger], capture_output=True, text=True).stdout.strip()
print(run_id, unmarked.pid, daemon, flush=True)
if mode == "clean":
    unmarked.kill(); unmarked.wait()
    os.kill(int(daemon), 9)
    sys.exit(0)
time.sleep(2 * POLL_S)  # the watcher has seen the driver's children
print("ready", flush=True)
time.sleep(600)
"""


def _watchers(run_id: str):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if run_id in open(f"/proc/{pid}/cmdline").read() and alive(int(pid)):
                found.append(int(pid))
        except OSError:
            continue
    return found


def _wait_until(condition, seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def _start(tmp_path, mode):
    for name, text in (("driver.py", DRIVER), ("linger.py", LINGER), ("daemonize.py", DAEMONIZE)):
        (tmp_path / name).write_text(text)
    log = open(tmp_path / "driver.err", "w")
    driver = subprocess.Popen([sys.executable, str(tmp_path / "driver.py"), str(GRACE_S), mode,
                               str(tmp_path / "linger.py"), str(tmp_path / "daemonize.py")],
                              stdout=subprocess.PIPE, stderr=log, text=True)
    run_id, unmarked, daemon = driver.stdout.readline().split()
    # another run's process: neither the driver's descendant nor marked
    stranger = subprocess.Popen(["sleep", "600"], start_new_session=True)
    return driver, run_id, int(unmarked), int(daemon), stranger


def test_a_killed_drivers_leftovers_are_killed_after_the_grace_period(tmp_path):
    driver, run_id, unmarked, daemon, stranger = _start(tmp_path, "killed")
    try:
        assert driver.stdout.readline().strip() == "ready"
        assert _watchers(run_id), "the watcher runs beside the driver"
        driver.kill()
        driver.wait()
        time.sleep(GRACE_S / 2)
        assert alive(unmarked) and alive(daemon)  # the run's processes get their grace period first
        assert _wait_until(lambda: not alive(unmarked) and not alive(daemon), GRACE_S + 10)
        assert alive(stranger.pid)  # not of this run: left alone
        assert _wait_until(lambda: not _watchers(run_id), 10)
        said = (tmp_path / "driver.err").read_text()
        assert f"the driver (pid {driver.pid}) has ended; 2 process(es) of its run were still running" in said
        assert f"{unmarked} " in said and f"{daemon} " in said and "were killed" in said
    finally:
        for pid in (unmarked, daemon):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        stranger.kill()
        stranger.wait()


def test_a_clean_exit_ends_the_watcher_quietly(tmp_path):
    driver, run_id, unmarked, daemon, stranger = _start(tmp_path, "clean")
    try:
        assert driver.wait(timeout=30) == 0
        assert _wait_until(lambda: not _watchers(run_id), GRACE_S + 10)
        assert "killed" not in (tmp_path / "driver.err").read_text()
        assert alive(stranger.pid)
    finally:
        stranger.kill()
        stranger.wait()
