"""Stale build locks of torch's JIT extensions: found and removed, so a killed build never hangs the next run.

DeepSpeed JIT-builds its CPU ops (FusedAdam, the shared-memory collectives) through torch.utils.cpp_extension, which
serialises the processes that load an op with a "baton": an empty `lock` file in the op's build folder, made with
O_EXCL by the first process and removed when its ninja run ends. Every load takes it (ninja checks the build even
when nothing is stale), and the others wait, polling until the file is gone, for ever. A process killed while it
holds the baton (a stopped run, a resume test's kill, an OOM kill) leaves the file behind, and every later run of the
venv then waits without a word in its first optimizer's construction (seen here: a PPO run idle for 110 minutes).

The file carries no owner. What marks a live build: the holder runs ninja with the build folder as its working
directory, and the holder's own work around it (version check, writing build.ninja) takes well under a second. A
lock older than STALE_AFTER_S whose folder no live process works in is therefore stale. `clear_stale_batons` removes
those and says so; it runs at every interpreter start of the CPU venv (runtime/boot.py, before anything can wait)
and in every run's watcher between its polls (integration/run_reaper.py: a waiter that started before the lock went
stale proceeds as soon as the file is gone: torch's wait only polls for it).

Standard library only: boot.py runs it in every interpreter, torch not yet imported.
"""
import os
import sys
import time
from pathlib import Path
from typing import List, Optional, Set

BATON = "lock"  # torch.utils.cpp_extension's FileBaton: <build folder>/lock
STALE_AFTER_S = 60.0  # a live holder's own work around its ninja run takes well under a second


def extensions_dir() -> Optional[Path]:
    """torch's JIT build root of this process (TORCH_EXTENSIONS_DIR, which boot.py sets), None when unset."""
    value = os.environ.get("TORCH_EXTENSIONS_DIR")
    return Path(value) if value else None


def _working_dirs() -> Set[str]:
    """The working directories of this node's live processes that this user may read."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            found.add(os.readlink(f"/proc/{pid}/cwd"))
        except OSError:  # gone, or another user's
            continue
    return found


def stale_batons(root: Path, stale_after_s: float = STALE_AFTER_S) -> List[Path]:
    """The baton files under root (one level: root/<op>/lock) older than stale_after_s whose build folder is no live
    process's working directory."""
    try:
        folders = [entry for entry in os.scandir(root) if entry.is_dir()]
    except OSError:  # no build root yet
        return []
    now = time.time()
    old = []
    for folder in folders:
        lock = Path(folder.path) / BATON
        try:
            age = now - lock.stat().st_mtime
        except OSError:
            continue
        if age > stale_after_s:
            old.append(lock)
    if not old:  # the common case costs one listing and a stat per op, nothing more
        return []
    busy = _working_dirs()
    return [lock for lock in old if not any(d == str(lock.parent) or d.startswith(f"{lock.parent}{os.sep}")
                                            for d in busy)]


def clear_stale_batons(root: Optional[Path] = None, stale_after_s: float = STALE_AFTER_S) -> List[Path]:
    """Remove the stale batons under root (default: this process's extensions_dir()) and name each on stderr; the
    ones removed."""
    root = root or extensions_dir()
    if root is None:
        return []
    removed = []
    for lock in stale_batons(root, stale_after_s):
        try:
            lock.unlink()
        except OSError:  # another process removed it first, or it is not ours to remove
            continue
        removed.append(lock)
        print(f"openrlhf-epo: removed {lock}, the build lock of a killed torch extension build (no process builds "
              f"there; older than {stale_after_s:g} s): a run waiting on it proceeds", file=sys.stderr, flush=True)
    return removed
