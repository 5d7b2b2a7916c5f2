"""The suite's leak check (tests/epo_testkit/leak_check.py), run on a session of its own: a process a test starts
and leaves behind (detached into its own session, as a daemonised Ray or JVM would be) fails the session, is named
and killed; a clean session passes."""
import os
import subprocess
import sys
import time
from pathlib import Path

from pipeline_run import alive  # tests/epo_testkit, on sys.path by conftest

KIT = Path(__file__).resolve().parents[1] / "epo_testkit"

LEAKY = '''
import subprocess, pathlib
def test_starts_a_daemon():
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    pathlib.Path("sleeper.pid").write_text(str(proc.pid))
'''

CLEAN = '''
import multiprocessing, subprocess
def test_waits_for_its_child():
    subprocess.run(["true"], check=True)

def test_spawns_a_child_and_joins_it():  # starts multiprocessing's resource tracker, which lives as long as pytest
    child = multiprocessing.get_context("spawn").Process(target=print)
    child.start()
    child.join()
'''


def _session(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_inner.py").write_text(body)
    env = {**os.environ, "PYTHONPATH": str(KIT), "OPENRLHF_EPO_LEAK_GRACE_S": "2"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "leak_check", "-p", "no:cacheprovider",
                           "test_inner.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_a_leaked_process_fails_the_session_and_is_killed(tmp_path):
    done = _session(tmp_path, LEAKY)
    pid = int((tmp_path / "sleeper.pid").read_text())
    assert done.returncode == 1, done.stdout[-2000:]
    assert "1 passed" in done.stdout  # the test itself passed: the leak alone failed the session
    assert "were still running (killed now)" in done.stdout and f"pid {pid}: sleep 600" in done.stdout
    for _ in range(50):
        if not alive(pid):
            break
        time.sleep(0.1)
    assert not alive(pid)


def test_a_clean_session_passes(tmp_path):
    done = _session(tmp_path, CLEAN)
    assert done.returncode == 0, done.stdout[-2000:]
    assert "no process started by the suite outlived it" in done.stdout
