"""OpenRLHF's asynchronous trainer (`--train.async_enable`, with partial rollouts) on per-turn samples: the real,
patched `train_ppo_ray` on the CPU runtime, two actor ranks under ZeRO-3 and two vLLM engines (not colocated:
upstream's asynchronous trainer generates while it trains), EPO on GiGPO (--algo.advantage.estimator gigpo: GRPO's
episode level plus the step level over anchor states), groups of two episodes.

Over-sampling as the asynchronous trainer allows it: each generation asks for 3 prompts (--rollout.vllm_generate_batch_size)
and a step trains on 2 (--rollout.batch_size). Four prompts in one pass: the generator makes 3 groups, the first step
takes 2; the group left is short of a step, so the generator makes the dataset's last group before the second step.
Each step must hold exactly 2 groups (4 episodes), whatever their turn counts. The expected values follow from these
flags and the run's own logs.
"""
import json
import math
import os
import sys
from pathlib import Path

import pytest

from openrlhf_epo.envs.base import TaskSpec
from openrlhf_epo.runtime.offline_models import tiny_qwen2_dir
from openrlhf_epo.tools.data import record

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "epo_testkit"))
from pipeline_run import NEEDLES, engine_processes, left_behind, run, train_command, venv_processes  # noqa: E402

pytestmark = pytest.mark.slow  # one asynchronous run of two steps: about three minutes

TRAIN_BATCH = 4
SHAPE = ["--actor.num_nodes", "1", "--actor.num_gpus_per_node", "2", "--vllm.num_engines", "2",
         "--vllm.tensor_parallel_size", "1", "--ds.zero_stage", "3"]
ASYNC = ["--train.async_enable", "--train.partial_rollout_enable", "--rollout.batch_size", "2",
         "--rollout.vllm_generate_batch_size", "3"]


@pytest.fixture(scope="module")
def async_run(tmp_path_factory, alfworld_game):
    work = tmp_path_factory.mktemp("async")
    made = [alfworld_game("train", seed, "pick_and_place_simple") for seed in (4, 5)]
    specs, games = [spec for spec, _, _ in made], made[0][2]  # both games in the fixture's one folder
    specs += [TaskSpec("scienceworld", "find-living-thing", variation=v) for v in (4, 5)]
    data = work / "train.jsonl"
    data.write_text("".join(json.dumps(record(s)) + "\n" for s in specs))
    before = {pid for pid, _ in venv_processes(*NEEDLES) + engine_processes()}
    env = dict(os.environ, OPENRLHF_EPO_ALFWORLD_GAMES=str(games), RAY_DEDUP_LOGS="0")
    command = train_command(work, tiny_qwen2_dir(), data, shape=SHAPE, estimator="gigpo", episodes=1,
                            train_batch=TRAIN_BATCH, extra=ASYNC)
    done, seconds = run(command, env)
    left = left_behind(before)
    metrics = work / "metrics.jsonl"
    rows = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.exists() else []
    return dict(done=done, seconds=seconds, rows=[r for r in rows if r["kind"] == "train"], left=left)


def test_the_asynchronous_run_finishes(async_run, report):
    done = async_run["done"]
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    assert "queue_size=1" in done.stdout + done.stderr  # upstream's asynchronous trainer (PPOTrainerAsync) ran
    report(f"asynchronous pipeline (partial rollouts, 2 ranks ZeRO-3, 2 vLLM engines): {async_run['seconds']:.0f} s")


def test_every_step_trains_on_whole_groups(async_run):
    rows = async_run["rows"]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert r["rollout/num_episodes"] == 4  # 2 groups of 2 episodes, not a group and a half
        samples = round(r["rollout/turns_mean"] * r["rollout/num_episodes"])
        assert r["rollout/pad_samples"] == math.ceil(samples / TRAIN_BATCH) * TRAIN_BATCH - samples
        for key in ("policy_loss", "epo/entropy_loss", "epo/smooth_loss", "actor_grad_norm"):
            assert r[key] is not None and math.isfinite(r[key]), (r["step"], key, r[key])
    assert [r["epo/k"] for r in rows] == [0, 1] and [r["epo/history_len"] for r in rows] == [1, 2]
    # GiGPO: the two episodes of a group start in the same state, so some turns always share a step group
    assert all(0 < r["gigpo/shared_turn_share"] <= 1 and r["gigpo/step_group_size"] > 1 for r in rows), rows
    tasks = {k for r in rows for k in r if k.startswith("rollout/success_")}
    assert "rollout/success_pick_and_place_simple" in tasks and "rollout/success_find-living-thing" in tasks


def test_both_engines_got_the_weights_after_every_step(async_run):
    logs = async_run["done"].stdout + async_run["done"].stderr
    assert logs.count("update weight: model.embed_tokens.weight") == 2 * len(async_run["rows"])


def test_nothing_is_left_running(async_run):
    assert not async_run["left"], f"left running: {async_run['left']}"
