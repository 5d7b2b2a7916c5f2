"""A killed run resumes and loses nothing. The real, patched `train_ppo_ray` on the CPU runtime in the GPU launchers'
shape (two actor ranks under ZeRO-3, two vLLM engines, colocated), GRPO groups of two episodes, EPO on, one prompt
per RL step: two prompts (an ALFWorld game, a ScienceWorld variation) for two episodes are four RL steps, with a
checkpoint after each and --ckpt.max_num 1 (the rotation must not delete the only complete checkpoint before the
next is written). The same command runs four times:

1. SIGKILL to the driver during the rollout of step 2 (checkpoint 1 complete);
2. rerun: resumes from step 1; SIGKILL to the driver during the training of step 2;
3. rerun: resumes from step 1, finishes step 2; SIGKILL to the driver and both actor ranks while they save step 3's
   checkpoint (a node lost mid-save: the ranks do not get to finish it), after step 3's metrics were logged;
4. rerun: resumes from step 2 (step 3's unfinished save removed), runs steps 3 and 4, exits cleanly.

After each kill nothing of the killed invocation may run beyond a short grace period. At the end the metrics log
holds each step once; k, W_k, Hbar, beta_k and the LR are those of an uninterrupted run of four steps, recomputed
here from the paper's definitions over the logged batch entropies (Hbar = the mean of W_k; eq. 7); the data loader
continues its epoch; the last checkpoint holds the four steps' history.
"""
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from openrlhf_epo.envs.base import TaskSpec
from openrlhf_epo.runtime.offline_models import tiny_qwen2_dir
from openrlhf_epo.tools.data import record

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "epo_testkit"))
from leak_check import marked_processes  # noqa: E402
from pipeline_run import HYBRID_SHAPE, train_command  # noqa: E402

pytestmark = pytest.mark.slow  # four invocations of a two-rank run: several minutes

STEPS, K_MID = 4, 8 // 2  # --actor.epo.total_steps 8 (pipeline_run.train_command)
LR, WARMUP, MIN_LR = 2e-6, 0.5, 0.25
GRACE_S = 30  # the run's watcher kills leftovers 5 s after the driver; Ray's workers end by themselves before
INVOCATION_MARK = "OPENRLHF_EPO_RESUME_TEST_RUN"  # OPENRLHF_EPO_*: reaches every Ray worker and its children
TASKS = ("rollout/success_pick_and_place_simple", "rollout/success_find-living-thing")


class Invocation:
    """One run of the command: its output gathered as it comes; `kill_when(condition)` sends SIGKILL to the driver
    (and to `also`'s processes) as soon as condition(self) holds."""

    def __init__(self, command, env, work: Path, name: str):
        self.mark = f"{os.getpid()}-{time.time_ns()}"
        self.work, self.name, self.chunks, self.started = work, name, [], time.time()
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={"RAY_ADDRESS": "local", **env, INVOCATION_MARK: self.mark})
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.chunks.append(line)

    @property
    def output(self) -> str:
        return "".join(self.chunks)

    def processes(self):
        return marked_processes(self.mark, INVOCATION_MARK)

    def kill_when(self, condition, also: str = "", timeout: float = 900) -> float:
        deadline = time.time() + timeout
        while not condition(self):
            assert self.proc.poll() is None, f"{self.name} ended before its kill:\n{self.output[-4000:]}"
            assert time.time() < deadline, f"{self.name}: no kill point within {timeout} s:\n{self.output[-4000:]}"
            time.sleep(0.005)
        ranks = [pid for pid, command in self.processes() if also and also in command]
        self.proc.send_signal(signal.SIGKILL)
        for pid in ranks:
            os.kill(pid, signal.SIGKILL)
        killed_at = time.time() - self.started
        self.finish()
        return killed_at

    def finish(self, timeout: float = 1200):
        self.proc.wait(timeout=timeout)
        self.reader.join(timeout=30)
        return self.proc.returncode

    def left_after(self, grace_s: float):
        """(processes of this invocation still alive after up to grace_s, seconds waited)."""
        started = time.time()
        while True:
            left = self.processes()
            if not left or time.time() - started > grace_s:
                return left, time.time() - started
            time.sleep(0.5)


def _complete_step(work: Path):
    path = work / "ckpt" / "epo_last_complete.json"
    return json.loads(path.read_text())["global_step"] if path.exists() else None


def _after_checkpoint(step: int, text: str):
    """Once checkpoint `step` is complete: the first `text` in the output written after that moment."""
    seen = {}

    def condition(inv: Invocation) -> bool:
        if "offset" not in seen:
            if _complete_step(inv.work) == step:
                seen["offset"] = len(inv.output)
            return False
        return text in inv.output[seen["offset"]:]

    return condition


def _rows(path: Path, kind="train"):
    return [row for row in map(json.loads, path.read_text().splitlines()) if row["kind"] == kind]


@pytest.fixture(scope="module")
def chain(tmp_path_factory, alfworld_game):
    work = tmp_path_factory.mktemp("resume")
    spec, _, games = alfworld_game("train", 1, "pick_and_place_simple")
    data = work / "train.jsonl"
    data.write_text("".join(json.dumps(record(s)) + "\n" for s in
                        [spec, TaskSpec("scienceworld", "find-living-thing", variation=2)]))
    extra = ["--ckpt.max_num", "1", "--actor.adam.lr", str(LR), "--actor.lr_warmup_ratio", str(WARMUP),
             "--actor.min_lr_ratio", str(MIN_LR)]
    env = dict(os.environ, OPENRLHF_EPO_ALFWORLD_GAMES=str(games), RAY_DEDUP_LOGS="0")
    metrics, found = work / "metrics.jsonl", {}

    def start(n: int) -> Invocation:
        command = train_command(work, tiny_qwen2_dir(), data, shape=HYBRID_SHAPE, estimator="group_norm",
                                episodes=2, train_batch=4, resume=n > 1, extra=extra)
        return Invocation(command, env, work, f"invocation {n}")

    def killed(inv: Invocation, at: float):
        left, waited = inv.left_after(GRACE_S)
        found[inv.name] = dict(returncode=inv.proc.returncode, killed_at=at, left=left, waited=waited,
                               output=inv.output, complete=_complete_step(work),
                               steps=[r["step"] for r in _rows(metrics)],
                               dirs=sorted(p.name for p in (work / "ckpt" / "_actor").iterdir()))

    first = start(1)  # step 1, then killed while step 2's episodes are generated
    killed(first, first.kill_when(_after_checkpoint(1, "Generate samples")))
    second = start(2)  # resumes from 1; killed in its first training step (step 2)
    killed(second, second.kill_when(lambda inv: "Train epoch" in inv.output))
    third = start(3)  # resumes from 1, finishes 2; killed with its actor ranks once they save step 3
    third_save = work / "ckpt" / "_actor" / "global_step3"
    killed(third, third.kill_when(lambda inv: third_save.exists(), also="PolicyModelActor"))
    last = start(4)
    last.finish()
    found["invocation 4"] = dict(returncode=last.proc.returncode, output=last.output, left=last.left_after(GRACE_S)[0],
                                 seconds=time.time() - last.started)
    return dict(work=work, runs=found, rows=_rows(metrics), metrics=metrics)


def test_every_kill_landed_where_it_was_meant_and_the_last_run_finishes(chain, report):
    runs = chain["runs"]
    for n in (1, 2, 3):
        assert runs[f"invocation {n}"]["returncode"] == -signal.SIGKILL
    first, second, third, last = (runs[f"invocation {n}"] for n in (1, 2, 3, 4))
    # 1: during the rollout of step 2: step 1 logged and complete, step 2 not yet trained
    assert first["steps"] == [1] and first["complete"] == 1 and "Train epoch" not in first["output"].split(
        "Generate samples")[-1]
    # 2: during the training of step 2, which it had not finished (not logged, not saved)
    assert "Loading the checkpoint" in second["output"] and second["steps"] == [1] and second["complete"] == 1
    # 3: during the save of step 3: its metrics already logged, the save not complete
    assert third["steps"] == [1, 2, 3] and third["complete"] == 2
    assert "global_step2" in third["dirs"], "the rotation kept the complete checkpoint while step 3's was written"
    assert last["returncode"] == 0, last["output"][-5000:]
    report("killed and resumed pipeline (2 ranks ZeRO-3, 2 vLLM engines): kills at "
           + ", ".join(f"{runs[f'invocation {n}']['killed_at']:.0f} s" for n in (1, 2, 3))
           + f", last invocation {last['seconds']:.0f} s; the killed runs' processes gone "
           + ", ".join(f"{runs[f'invocation {n}']['waited']:.0f}" for n in (1, 2, 3)) + " s after the kills")


def test_nothing_of_a_killed_run_outlives_it(chain):
    for n in (1, 2, 3):
        run = chain["runs"][f"invocation {n}"]
        assert run["left"] == [], f"invocation {n}: still running {GRACE_S} s after the kill: {run['left']}"
    assert chain["runs"]["invocation 4"]["left"] == []


def test_the_unfinished_save_is_removed_and_the_resume_starts_after_the_last_complete_one(chain):
    output = chain["runs"]["invocation 4"]["output"]
    assert "_actor/global_step3: a save that did not finish" in output
    assert "1 line(s) of steps after 2, which this run redoes, moved to" in output
    superseded = _rows(Path(f"{chain['metrics']}.superseded"))
    assert [r["step"] for r in superseded] == [3]  # invocation 3's step 3, redone by invocation 4


def test_the_metrics_log_holds_each_step_once(chain):
    assert [r["step"] for r in chain["rows"]] == list(range(1, STEPS + 1))
    for r in chain["rows"]:
        for key in ("policy_loss", "epo/entropy_loss", "epo/smooth_loss", "actor_grad_norm", "epo/batch_entropy"):
            assert r[key] is not None and math.isfinite(r[key]), (r["step"], key)
        assert r["rollout/num_episodes"] == 2 and r["rollout/turns_mean"] <= 3


def test_k_the_entropy_history_and_beta_continue_as_in_one_run(chain):
    rows = chain["rows"]
    assert [r["epo/k"] for r in rows] == list(range(STEPS))
    assert [r["epo/history_len"] for r in rows] == list(range(1, STEPS + 1))
    entropies = [r["epo/batch_entropy"] for r in rows]  # each logged by the invocation that trained the step
    assert rows[0]["epo/hbar"] is None
    for i in range(1, STEPS):  # Hbar at step k: the mean of W_k, the batch entropies of the steps before it
        assert rows[i]["epo/hbar"] == pytest.approx(sum(entropies[:i]) / i, rel=1e-6)
    for r in rows:  # eq. 7, first half, paper defaults: beta_k = 2 + (1 - 2) (1 - exp(-3 k / k_mid))
        assert r["epo/beta"] == pytest.approx(2.0 - (1.0 - math.exp(-3.0 * r["epo/k"] / K_MID)), rel=1e-6)


def test_the_learning_rate_follows_the_four_steps_across_the_kills(chain):
    warmup = math.ceil(STEPS * WARMUP)
    for r in chain["rows"]:  # linear warm-up over half the RL steps, then a cosine down to MIN_LR x LR at the last
        s = r["step"]
        expected = LR * s / warmup if s < warmup else LR * (
            MIN_LR + (1 - MIN_LR) * 0.5 * (1 + math.cos(math.pi * (s - warmup) / (STEPS - warmup))))
        assert r["actor_lr"] == pytest.approx(expected, rel=1e-6), s


def test_the_data_loader_continues_its_epochs(chain):
    rows = chain["rows"]
    task_of = [[t for t in TASKS if t in r] for r in rows]
    assert all(len(t) == 1 for t in task_of)  # one prompt (one task) per step
    for epoch in (rows[:2], rows[2:]):  # each epoch plays both prompts once, across the kills
        assert {t for r in epoch for t in TASKS if t in r} == set(TASKS)


def test_the_engines_get_the_resumed_weights_then_every_step(chain):
    # the last invocation: the checkpoint's weights once, then after each of its two steps, to both engines
    assert chain["runs"]["invocation 4"]["output"].count("update weight: model.embed_tokens.weight") == 2 * 3


def test_the_last_checkpoint_holds_the_four_steps_history(chain):
    state = torch.load(chain["work"] / "ckpt" / "_actor" / "global_step4" / "zero_pp_rank_0_mp_rank_00_model_states.pt",
                       map_location="cpu", weights_only=False)
    epo = state["openrlhf_epo"]
    assert epo["k"] == STEPS
    assert [r["mean"] for r in epo["history"]["records"]] == pytest.approx(
        [r["epo/batch_entropy"] for r in chain["rows"]], rel=1e-6)
