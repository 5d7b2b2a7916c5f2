"""Faults injected into the real pipeline: the patched `train_ppo_ray` on the CPU runtime (two actor ranks under
ZeRO-3, two vLLM engines, colocated), GRPO groups of four episodes, two RL steps of one ALFWorld and one ScienceWorld
task instance each (16 episodes in all).

While it runs, this test kills the first ScienceWorld JVM and the first ALFWorld child process the run starts, and
freezes (SIGSTOP) the second ALFWorld child, a hung environment: each is hit while its instance is being built for
an episode, so each fault costs exactly one episode. The run must finish; the logs must count 3 env errors (2
ALFWorld, 1 ScienceWorld), the scored episodes must be the 16 attempted minus the failed ones and minus the healthy
ones of groups dropped for having fewer than two; nothing may be left running.
"""
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from openrlhf_epo.envs.base import TaskSpec
from openrlhf_epo.runtime.offline_models import tiny_qwen2_dir
from openrlhf_epo.tools.data import record

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "epo_testkit"))
from leak_check import marked_processes  # noqa: E402
from pipeline_run import (ENV_TITLE, HYBRID_SHAPE, NEEDLES, engine_processes, left_behind, run,  # noqa: E402
                          titled_processes, train_command, venv_processes)

pytestmark = pytest.mark.slow  # one training run of two steps: a few minutes

N, STEPS, TIMEOUT_S = 4, 2, 15
FAULTS = [
    dict(kind="alfworld", nth=0, signal=signal.SIGKILL),
    dict(kind="alfworld", nth=1, signal=signal.SIGSTOP),  # hangs: killed by the run at --agent.env_timeout_s
    dict(kind="scienceworld", nth=0, signal=signal.SIGKILL),
]


RUN_MARK = "OPENRLHF_EPO_FAULT_RUN"  # OPENRLHF_EPO_*: forwarded to every Ray worker, inherited by their children


class FaultInjector(threading.Thread):
    """Watches for this run's environment processes (those carrying RUN_MARK: never another run's); hits the n-th
    one of each kind as soon as it appears (while the pool builds it for an episode)."""

    def __init__(self, mark: str):
        super().__init__(daemon=True)
        self.mark, self.seen = mark, {"alfworld": [], "scienceworld": []}
        self.hit, self.stop = [], threading.Event()

    def _processes(self):
        ours = {pid for pid, _ in marked_processes(self.mark, RUN_MARK)}
        alfworld = [pid for pid, _ in titled_processes(ENV_TITLE + "alfworld") if pid in ours]
        jvms = [pid for pid, _ in venv_processes("py4j.GatewayServer") if pid in ours]
        return {"alfworld": alfworld, "scienceworld": jvms}

    def run(self):
        while not self.stop.is_set() and len(self.hit) < len(FAULTS):
            for kind, pids in self._processes().items():
                for pid in pids:
                    if pid not in self.seen[kind]:
                        self.seen[kind].append(pid)
            for fault in FAULTS:
                seen = self.seen[fault["kind"]]
                if fault not in [h for h, _ in self.hit] and len(seen) > fault["nth"]:
                    try:
                        os.kill(seen[fault["nth"]], fault["signal"])
                        self.hit.append((fault, seen[fault["nth"]]))
                    except OSError:
                        pass
            time.sleep(0.02)


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory, alfworld_game):
    work = tmp_path_factory.mktemp("faults")
    made = [alfworld_game("train", seed, "pick_and_place_simple") for seed in (4, 5)]
    specs, games = [], made[0][2]
    for (alf, _, _), variation in zip(made, (4, 5)):  # each step: one ALFWorld and one ScienceWorld instance
        specs += [alf, TaskSpec("scienceworld", "find-living-thing", variation=variation)]
    data = work / "train.jsonl"
    data.write_text("".join(json.dumps(record(s)) + "\n" for s in specs))
    before = {pid for pid, _ in venv_processes(*NEEDLES) + engine_processes()}
    mark = f"{os.getpid()}-{time.time_ns()}"
    injector = FaultInjector(mark)
    env = dict(os.environ, OPENRLHF_EPO_ALFWORLD_GAMES=str(games), RAY_DEDUP_LOGS="0", **{RUN_MARK: mark})
    extra = ["--rollout.batch_size", "2", "--rollout.n_samples_per_prompt", str(N), "--agent.max_turns", "4",
             "--agent.env_timeout_s", str(TIMEOUT_S)]
    command = train_command(work, tiny_qwen2_dir(), data, shape=HYBRID_SHAPE, estimator="group_norm", episodes=1,
                            train_batch=4, extra=extra)
    injector.start()
    try:
        done, seconds = run(command, env)
    finally:
        injector.stop.set()
        injector.join()
    left = left_behind(before)
    metrics = work / "metrics.jsonl"
    rows = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.exists() else []
    return dict(done=done, seconds=seconds, rows=[r for r in rows if r["kind"] == "train"], left=left,
                hit=injector.hit)


def test_the_run_finishes_despite_the_faults(faulty_run, report):
    done = faulty_run["done"]
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    assert len(faulty_run["hit"]) == len(FAULTS), faulty_run["hit"]  # every fault was injected
    report(f"pipeline with 3 injected environment faults (2 ranks ZeRO-3, 2 vLLM engines): {faulty_run['seconds']:.0f} s")


def test_each_fault_is_counted_once_per_environment(faulty_run):
    rows = faulty_run["rows"]
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    total = lambda key: sum(r[key] for r in rows)  # noqa: E731
    assert total("rollout/env_errors") == 3
    assert total("rollout/env_errors_alfworld") == 2 and total("rollout/env_errors_scienceworld") == 1


def test_failed_episodes_are_not_among_the_trained_ones(faulty_run):
    rows = faulty_run["rows"]
    scored = sum(r["rollout/num_episodes"] for r in rows)
    dropped = sum(r["rollout/env_error_dropped"] for r in rows)
    assert scored + 3 + dropped == STEPS * 2 * N  # every attempted episode is scored, failed or dropped
    assert scored <= STEPS * 2 * N - 3


def test_nothing_is_left_running(faulty_run):
    assert faulty_run["left"] == []
    for _, pid in faulty_run["hit"]:  # the frozen child too: killed by the run, not left stopped
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"
