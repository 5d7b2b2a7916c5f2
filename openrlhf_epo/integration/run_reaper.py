"""Nothing of a run outlives its driver: a watcher process that ends the run's leftovers when the driver is gone.

A driver killed with SIGKILL (an OOM kill, a preempted job, `kill -9`) runs no cleanup. Ray's own fate sharing then
ends the raylet and the workers within seconds, and with them vLLM's engine cores, ScienceWorld's JVMs and the
environments' child processes (each dies with its parent's pipe); but Ray's per-node agents (`ray::DashboardAgent`,
`ray::RuntimeEnvAgent`) first try to report the raylet's death to the dead GCS and linger about a minute, and a
process stuck in a system call may linger longer. A rerun of the same command would find them.

`reap_when_driver_exits()` starts the watcher, which holds the read end of a pipe whose write end only the driver
holds. While the driver lives, the watcher notes its descendants every POLL_S (pid and start time, so a reused pid
is never taken for one of them); the run is also marked, RUN_ID_VAR in the driver's environment, inherited by what
it starts on this node, for a process born after the last look (a mark alone is not enough: a process that
retitles itself, as Ray's agents do, may overwrite its environment block). When the driver ends, however it ends,
the watcher reads end-of-file, waits GRACE_S for the run's processes to exit on their own, then kills (SIGKILL)
those still alive and says which. A clean exit leaves nothing, and the watcher ends quietly.

Run as `python -m openrlhf_epo.integration.run_reaper RUN_ID DRIVER_PID GRACE_S` (what reap_when_driver_exits does).
"""
import os
import select
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional, Set, Tuple

from openrlhf_epo.runtime.extension_batons import clear_stale_batons

RUN_ID_VAR = "OPENRLHF_EPO_RUN_ID"  # OPENRLHF_EPO_*: also forwarded to the Ray workers' runtime environment
GRACE_S = 5.0  # Ray's workers and engine cores end within a few seconds of the raylet; its agents do not
POLL_S = 1.0  # how often the watcher looks at the driver's descendants

_WATCHER: Optional[subprocess.Popen] = None  # held for the driver's lifetime: its stdin pipe is the driver's "alive"
_RUN_ID = ""


def reap_when_driver_exits(grace_s: float = GRACE_S) -> str:
    """Mark this process's run and start its watcher (once per driver: a second call marks the environment again,
    which a caller may have restored meanwhile); the run id."""
    global _WATCHER, _RUN_ID
    if _WATCHER is not None:
        os.environ[RUN_ID_VAR] = _RUN_ID
        return _RUN_ID
    run_id = _RUN_ID = f"{os.getpid()}-{time.time_ns()}"
    os.environ[RUN_ID_VAR] = run_id
    env = {k: v for k, v in os.environ.items() if k != RUN_ID_VAR}  # the watcher is not part of the run it reaps
    # start_new_session: a Ctrl-C to the driver's terminal must not end the watcher before the run's processes.
    # The pipe's write end is not inheritable (PEP 446), so no child of the driver keeps the watcher waiting.
    _WATCHER = subprocess.Popen(
        [sys.executable, "-m", __name__, run_id, str(os.getpid()), str(grace_s)],
        stdin=subprocess.PIPE, env=env, start_new_session=True,
    )
    return run_id


def _process_table() -> Dict[int, Tuple[int, int]]:
    """{pid: (parent pid, start time in clock ticks)} of this node's live processes."""
    table = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":  # a zombie has exited; its parent has not reaped it yet
            table[int(pid)] = (int(fields[1]), int(fields[19]))
    return table


def _descendants(table: Dict[int, Tuple[int, int]], roots: Set[int]) -> Set[Tuple[int, int]]:
    """(pid, start time) of every live descendant of roots."""
    children: Dict[int, List[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, todo = set(), list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            found.add((child, table[child][1]))
            todo.append(child)
    return found


def marked_processes(value: str, variable: str = RUN_ID_VAR) -> Dict[int, str]:
    """{pid: command line} of this node's live processes whose environment block still carries variable=value."""
    needle = f"{variable}={value}".encode()
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":  # exited, not yet reaped by its parent
                    continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                found[int(pid)] = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone, or another user's
            continue
    return found


def run_processes(run_id: str, known: Set[Tuple[int, int]]) -> Dict[Tuple[int, int], str]:
    """{(pid, start time): command line} of the run's live processes: the known descendants of the driver that still
    run (same start time), the marked ones, and their own descendants."""
    table = _process_table()
    alive = {(pid, started) for pid, started in known if table.get(pid, (None, None))[1] == started}
    alive |= {(pid, table[pid][1]) for pid in marked_processes(run_id) if pid in table}
    alive |= _descendants(table, {pid for pid, _ in alive})
    commands = {}
    for pid, started in alive:
        if pid == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                commands[pid, started] = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
    return commands


def reap(run_id: str, driver_pid: int, known: Set[Tuple[int, int]], grace_s: float) -> Dict[int, str]:
    """After the driver ended: wait up to grace_s for the run's processes to end, kill the rest; {pid: command line}
    of those killed."""
    deadline = time.monotonic() + grace_s
    while True:
        left = run_processes(run_id, known)
        if not left:
            return {}
        if time.monotonic() >= deadline:
            break
        known |= left.keys()  # a marked process's children are the run's too, once it is gone
        time.sleep(POLL_S / 4)
    for pid, _ in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    killed = {pid: command for (pid, _), command in sorted(left.items())}
    names = ", ".join(f"{pid} {command[:60]}" for pid, command in killed.items())
    print(f"openrlhf-epo: the driver (pid {driver_pid}) has ended; {len(killed)} process(es) of its run were still "
          f"running {grace_s:g} s later and were killed: {names}", file=sys.stderr, flush=True)
    return killed


def watch(driver_pid: int, pipe: int) -> Set[Tuple[int, int]]:
    """Until the driver's end of the pipe closes: note its descendants every POLL_S, and remove a build lock that a
    killed JIT build left (extension_batons.py: the run's workers would wait for it for ever). Those seen."""
    known: Set[Tuple[int, int]] = set()
    while True:
        readable, _, _ = select.select([pipe], [], [], POLL_S)
        if readable and not os.read(pipe, 65536):  # the driver writes nothing: end-of-file is its end
            return known
        known |= _descendants(_process_table(), {driver_pid})
        clear_stale_batons()


def main(argv: List[str]) -> None:
    run_id, driver_pid, grace_s = argv[0], int(argv[1]), float(argv[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the driver; the pipe says when it is gone
    known = watch(driver_pid, sys.stdin.fileno())
    reap(run_id, driver_pid, known, grace_s)


if __name__ == "__main__":
    main(sys.argv[1:])
