"""The real, patched `python -m openrlhf.cli.train_ppo_ray` end to end on this CPU-only machine, in the shape of the
paper's GPU launchers (examples/scripts/epo_common.sh): two actor ranks under ZeRO-3, two vLLM engines (vLLM built
for CPUs) colocated with them (--train.colocate_all, with the launchers' sleep flags, which the CPU runtime turns off
with a note), weight sync over gloo, per-turn samples balanced across the ranks, EPO on.

PPO (GAE) runs for two RL steps with a critic of two ranks and eq. 3's policy-loss aggregation; GRPO runs in the
same shape in test_pipeline_resume.py, killed three times and resumed. The dataset mixes one generated ALFWorld
game and one ScienceWorld variation; the model is a random tiny Qwen2 with the Qwen tokenizer. Not in the launchers' shape here: --ds.packing_samples (flash-attention only; the CPU runtime pads).

Expected values come from the run's own logs and the paper's definitions (Hbar = mean of W_k, eq. 7 for beta_k),
recomputed here.
"""
import json
import math
import os
import sys
from pathlib import Path

import pytest
import torch

from openrlhf_epo.envs.base import TaskSpec
from openrlhf_epo.runtime.offline_models import tiny_qwen2_dir
from openrlhf_epo.tools.data import record

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "epo_testkit"))
from pipeline_run import (HYBRID_SHAPE, NEEDLES, engine_processes, left_behind, run, train_command,  # noqa: E402
                          venv_processes)

pytestmark = pytest.mark.slow  # a training run of about two minutes

TRAIN_BATCH = 4  # per-turn samples per optimizer step: 2 ranks x micro-batches of 1 x 2 accumulation steps
LR = {"actor": 2e-6, "critic": 4e-6}
WARMUP, MIN_LR = 0.5, 0.25
SCHEDULE = [flag for role, lr in LR.items() for flag in (
    f"--{role}.adam.lr", str(lr), f"--{role}.lr_warmup_ratio", str(WARMUP), f"--{role}.min_lr_ratio", str(MIN_LR))]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, alfworld_game):
    estimator = "gae"
    work = tmp_path_factory.mktemp(f"cpu-pipeline-{estimator}")
    model = tiny_qwen2_dir()
    spec, _, games = alfworld_game("train", 1, "pick_and_place_simple")
    data = work / "train.jsonl"
    specs = [spec, TaskSpec("scienceworld", "find-living-thing", variation=2)]
    data.write_text("".join(json.dumps(record(s)) + "\n" for s in specs))
    before = {pid for pid, _ in venv_processes(*NEEDLES) + engine_processes()}
    invocations = [(2, False)]
    env = dict(os.environ, OPENRLHF_EPO_ALFWORLD_GAMES=str(games), RAY_DEDUP_LOGS="0")
    extra = SCHEDULE + ["--actor.loss_agg_mode", "trajectory"]  # eq. 3's aggregation of the policy loss (patch 0010)
    done = [run(train_command(work, model, data, shape=HYBRID_SHAPE, estimator=estimator, episodes=episodes,
                              train_batch=TRAIN_BATCH, resume=resume, extra=extra), env)
            for episodes, resume in invocations]
    left = left_behind(before)
    rows = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    return dict(estimator=estimator, work=work, invocations=[d for d, _ in done], seconds=[t for _, t in done],
                rows=rows, left=left)


def _train_rows(runs):
    last = {}
    for row in runs["rows"]:
        if row["kind"] == "train":
            last[row["step"]] = row
    return [last[s] for s in sorted(last)]


def test_every_invocation_finishes_and_says_what_the_cpu_changes(runs, report):
    for i, done in enumerate(runs["invocations"]):
        assert done.returncode == 0, f"invocation {i + 1} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        assert "--vllm.enable_sleep -> off" in done.stdout and "--ds.enable_sleep -> off" in done.stdout
        assert "openrlhf-epo CPU runtime: computing in " in done.stdout
    seconds = " and ".join(f"{t:.0f} s" for t in runs["seconds"])
    report(f"CPU pipeline ({runs['estimator']}, 2 ranks ZeRO-3, 2 vLLM engines, colocated): {seconds}")


def test_steps_log_finite_losses_and_both_environments(runs):
    rows = _train_rows(runs)
    assert [r["step"] for r in rows] == [1, 2]
    keys = ["policy_loss", "epo/entropy_loss", "epo/smooth_loss", "actor_grad_norm", "epo/batch_entropy",
            "epo/train_forward_entropy"]
    keys += ["critic_loss", "values"]
    for r in rows:
        for key in keys:
            assert r[key] is not None and math.isfinite(r[key]), (r["step"], key, r[key])
        assert r["rollout/num_episodes"] == 2 and r["rollout/turns_mean"] <= 3
    tasks = {k for r in rows for k in r if k.startswith("rollout/success_")}
    assert "rollout/success_pick_and_place_simple" in tasks and "rollout/success_find-living-thing" in tasks


def test_every_rank_got_whole_windows_of_the_step_samples(runs):
    for r in _train_rows(runs):  # S per-turn samples, filled up to a multiple of the batch for the two ranks
        samples = round(r["rollout/turns_mean"] * r["rollout/num_episodes"])
        assert r["rollout/pad_samples"] == math.ceil(samples / TRAIN_BATCH) * TRAIN_BATCH - samples


def test_both_engines_got_the_weights_after_every_step(runs):
    logs = "".join(d.stdout + d.stderr for d in runs["invocations"])
    steps = len(_train_rows(runs))
    # vLLM's worker prints one line per synced parameter; the first parameter marks one sync of one engine
    assert logs.count("update weight: model.embed_tokens.weight") == 2 * steps


def test_entropy_history_and_schedule_follow_the_steps(runs):
    rows = _train_rows(runs)
    assert [r["epo/k"] for r in rows] == list(range(len(rows)))
    assert [r["epo/history_len"] for r in rows] == list(range(1, len(rows) + 1))
    entropies = [r["epo/batch_entropy"] for r in rows]
    assert rows[0]["epo/hbar"] is None  # no history before the first step (logged NaN -> null)
    for i in range(1, len(rows)):  # Hbar at step k: the mean of W_k, the batch entropies of the steps before it
        assert rows[i]["epo/hbar"] == pytest.approx(sum(entropies[:i]) / i, rel=1e-6)
    k_mid = 8 // 2  # --actor.epo.total_steps 8
    for r in rows:  # eq. 7, first half, paper defaults: beta_k = 2 + (1 - 2) (1 - exp(-3 k / k_mid))
        assert r["epo/beta"] == pytest.approx(2.0 - (1.0 - math.exp(-3.0 * r["epo/k"] / k_mid)), rel=1e-6)


def _paper_lr(base: float, k: int, steps: int) -> float:
    """RL step k (0-based) of `steps`: linear warm-up over the first WARMUP of the RL steps, then a cosine down to
    MIN_LR x base at the last one."""
    warmup, s = math.ceil(steps * WARMUP), k + 1
    if s < warmup:
        return base * s / warmup
    progress = (s - warmup) / (steps - warmup)
    return base * (MIN_LR + (1 - MIN_LR) * 0.5 * (1 + math.cos(math.pi * progress)))


def test_the_learning_rate_follows_the_rl_steps(runs):
    steps = 2  # K: 2 prompts, 2 per step, 2 passes (--train.num_episodes)
    for r in _train_rows(runs):  # whatever the number of optimizer steps each RL step took
        assert r["actor_lr"] == pytest.approx(_paper_lr(LR["actor"], r["step"] - 1, steps), rel=1e-6)
        assert r["critic_lr"] == pytest.approx(_paper_lr(LR["critic"], r["step"] - 1, steps), rel=1e-6)


def test_checkpoint_holds_the_epo_state(runs):
    # ZeRO-3 with two ranks: each rank saves its model-states file; the client state (EPO's) rides in rank 0's
    state = torch.load(runs["work"] / "ckpt" / "_actor" / "global_step2" / "zero_pp_rank_0_mp_rank_00_model_states.pt",
                       map_location="cpu", weights_only=False)
    epo = state["openrlhf_epo"]
    rows = _train_rows(runs)
    assert epo["k"] == 2
    saved = [record["mean"] for record in epo["history"]["records"]]
    assert saved == pytest.approx([r["epo/batch_entropy"] for r in rows[:2]], rel=1e-6)
    assert (runs["work"] / "final" / "model.safetensors").exists()
    assert list((runs["work"] / "tb").iterdir())


def test_no_ray_or_environment_process_is_left(runs):
    assert not runs["left"], f"left running: {runs['left']}"
