"""A build lock left by a killed JIT build (runtime/extension_batons.py) is removed, and the real waiter of torch's
FileBaton then proceeds; a lock a live build works under is kept. Checked against torch's own FileBaton, the boot
hook of a fresh interpreter, and a run's watcher (integration/run_reaper.py)."""
import os
import subprocess
import sys
import time
from pathlib import Path

from openrlhf_epo.runtime.extension_batons import BATON, STALE_AFTER_S, clear_stale_batons, stale_batons

OLD = STALE_AFTER_S + 60  # seconds: a lock this old without a process in its folder is a killed build's


def _lock(root: Path, op: str, age_s: float) -> Path:
    folder = root / op
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / BATON
    lock.touch()
    then = time.time() - age_s
    os.utime(lock, (then, then))
    return lock


def _wait_gone(process: subprocess.Popen, timeout: float) -> bool:
    try:
        process.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def test_torchs_waiter_proceeds_once_the_stale_lock_is_removed(tmp_path, capfd):
    lock = _lock(tmp_path, "fused_adam", OLD)
    waiter = subprocess.Popen([sys.executable, "-c", "import sys; from torch.utils.file_baton import FileBaton; "
                               "FileBaton(sys.argv[1]).wait(); print('proceeded')", str(lock)],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "TORCH_EXTENSIONS_DIR": ""})
    try:
        assert not _wait_gone(waiter, 8), "torch's FileBaton.wait returned while its lock file exists"
        assert clear_stale_batons(tmp_path) == [lock]
        assert not lock.exists()
        assert _wait_gone(waiter, 10), "the waiter still waits after the lock was removed"
        assert waiter.stdout.read().strip() == "proceeded"
    finally:
        waiter.kill()
    err = capfd.readouterr().err
    assert str(lock) in err and "killed torch extension build" in err


def test_a_fresh_lock_and_a_live_builds_lock_are_kept(tmp_path):
    fresh = _lock(tmp_path, "fresh_op", age_s=1)
    building = _lock(tmp_path, "busy_op", OLD)
    (building.parent / "obj").mkdir()
    # a live build: ninja (here a sleep) works in the op's folder, or in a folder below it
    ninja = subprocess.Popen(["sleep", "30"], cwd=building.parent / "obj")
    try:
        assert stale_batons(tmp_path) == []
        assert clear_stale_batons(tmp_path) == []
        assert fresh.exists() and building.exists()
    finally:
        ninja.kill()
        ninja.wait()
    assert clear_stale_batons(tmp_path) == [building]  # its builder is gone: now it is a killed build's lock
    assert fresh.exists()
    assert stale_batons(tmp_path / "absent") == []  # no build root yet: nothing to do


def test_a_fresh_interpreter_removes_a_stale_lock_before_anything_waits(tmp_path):
    lock = _lock(tmp_path, "fused_adam", OLD)
    out = subprocess.run([sys.executable, "-c", "print('started')"], capture_output=True, text=True,
                         env={**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert not lock.exists()
    assert str(lock) in out.stderr


def test_a_runs_watcher_removes_a_lock_that_goes_stale_during_the_run(tmp_path):
    # The driver marks its run and starts its watcher, then lives on; the lock appears after the driver started (so
    # the boot hook has not seen it), already old, as a build killed meanwhile leaves it.
    driver = subprocess.Popen([sys.executable, "-c", "import time; from openrlhf_epo.integration.run_reaper import "
                               "reap_when_driver_exits; reap_when_driver_exits(); print('up', flush=True); "
                               "time.sleep(30)"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path)})
    try:
        assert driver.stdout.readline().strip() == "up"
        time.sleep(3)  # the watcher's own interpreter start (its boot hook) is over: what removes the lock is its poll
        lock = _lock(tmp_path, "deepspeed_shm_comm", OLD)
        deadline = time.monotonic() + 15
        while lock.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not lock.exists(), "the run's watcher left the stale lock in place"
    finally:
        driver.kill()
        driver.wait()
