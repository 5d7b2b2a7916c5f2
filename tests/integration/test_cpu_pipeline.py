"""The real, patched `python -m openrlhf.cli.train_ppo_ray` end to end on this CPU-only machine.

Ray actor groups, DeepSpeed (ZeRO-2, gloo) for the actor, upstream's rollout actor with the CPU engine in vLLM's place,
weight sync over gloo, the experience maker, the replay buffer, checkpoints and logs: everything is the pipeline a
GPU run uses, on a random tiny Qwen2 with the Qwen tokenizer. EPO is on, samples are per turn, the dataset mixes one
generated ALFWorld game and one ScienceWorld variation. A second invocation resumes from the checkpoint and must
continue EPO's step counter k and its entropy history W_k.

Expected values come from the run's own logged batch entropies and the paper's definitions (Hbar = mean of W_k,
eq. 7 for beta_k), recomputed here.
"""
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from openrlhf_epo.envs.base import TaskSpec
from openrlhf_epo.runtime.offline_models import tiny_qwen2_dir
from openrlhf_epo.tools.data import record

pytestmark = pytest.mark.slow  # two training runs of about two minutes each

STEPS_PER_EPISODE = 2  # two prompts, one per rollout batch


VENV = sys.prefix  # the venv: only this installation's processes count (their command lines name its files)


def _processes(*needles):
    """Live processes of this venv whose command line holds one of the needles (another checkout's Ray or JVMs,
    running alongside, are not this test's business)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline").read().replace("\0", " ")
            state = open(f"/proc/{pid}/stat").read().split()[2]
        except OSError:
            continue
        if state != "Z" and VENV in cmd and any(n in cmd for n in needles):
            found.append((int(pid), cmd[:120]))
    return found


def _train(work: Path, model: Path, data: Path, episodes: int, resume: bool, games: Path):
    args = [
        sys.executable, "-m", "openrlhf.cli.train_ppo_ray", "--runtime.device", "cpu",
        "--actor.model_name_or_path", str(model), "--actor.num_nodes", "1", "--actor.num_gpus_per_node", "1",
        "--vllm.num_engines", "1", "--vllm.tensor_parallel_size", "1",
        "--agent.mode", "per_turn", "--agent.max_turns", "3", "--agent.max_response_tokens", "24",
        "--agent.max_prompt_tokens", "1024", "--agent.pool_size", "2",
        "--data.max_len", "1100", "--data.prompt_dataset", str(data), "--data.input_key", "prompt",
        "--data.label_key", "label",
        "--rollout.batch_size", "1", "--rollout.n_samples_per_prompt", "2", "--rollout.micro_batch_size", "2",
        "--train.batch_size", "4", "--train.micro_batch_size", "2", "--train.num_episodes", str(episodes),
        "--algo.advantage.estimator", "group_norm", "--algo.kl.init_coef", "0",
        "--actor.epo.enable", "--actor.epo.total_steps", "8",
        "--ds.zero_stage", "2", "--ds.param_dtype", "bf16",
        "--ckpt.path", str(work / "ckpt"), "--ckpt.save_steps", "1", "--ckpt.output_dir", str(work / "final"),
        "--logger.tensorboard_dir", str(work / "tb"), "--logger.jsonl_path", str(work / "metrics.jsonl"),
    ] + (["--ckpt.load_enable"] if resume else [])
    env = dict(os.environ, OPENRLHF_EPO_ALFWORLD_GAMES=str(games), RAY_DEDUP_LOGS="0")
    started = time.time()
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=1200)
    return done, time.time() - started


@pytest.fixture(scope="module")
def runs(tmp_path_factory, alfworld_game):
    work = tmp_path_factory.mktemp("cpu-pipeline")
    model = tiny_qwen2_dir()
    spec, _, games = alfworld_game("train", 1, "pick_and_place_simple")
    data = work / "train.jsonl"
    specs = [spec, TaskSpec("scienceworld", "find-living-thing", variation=2)]
    data.write_text("".join(json.dumps(record(s)) + "\n" for s in specs))
    needles = ("raylet", "gcs_server", "py4j.GatewayServer", "multiprocessing.spawn")
    before = {pid for pid, _ in _processes(*needles)}
    first, t1 = _train(work, model, data, episodes=1, resume=False, games=games)
    second, t2 = _train(work, model, data, episodes=2, resume=True, games=games)
    deadline = time.time() + 30
    left = []
    while time.time() < deadline:
        left = [p for p in _processes(*needles) if p[0] not in before]
        if not left:
            break
        time.sleep(1)
    rows = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    return dict(work=work, first=first, second=second, seconds=(t1, t2), rows=rows, left=left)


def _train_rows(runs):
    last = {}
    for row in runs["rows"]:
        if row["kind"] == "train":
            last[row["step"]] = row  # a resumed run may log a step again: keep the last line
    return [last[s] for s in sorted(last)]


def test_both_invocations_finish(runs, report):
    for name in ("first", "second"):
        done = runs[name]
        assert done.returncode == 0, f"{name} run failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    report(f"CPU pipeline, 2 + 2 RL steps with resume: {runs['seconds'][0]:.0f} s and {runs['seconds'][1]:.0f} s")


def test_steps_log_finite_losses_and_both_environments(runs):
    rows = _train_rows(runs)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for r in rows:
        for key in ("policy_loss", "epo/entropy_loss", "epo/smooth_loss", "actor_grad_norm"):
            assert r[key] is not None and math.isfinite(r[key]), (r["step"], key, r[key])
        assert r["rollout/num_episodes"] == 2 and r["rollout/turns_mean"] <= 3
    tasks = {k for r in rows for k in r if k.startswith("rollout/success_")}
    assert "rollout/success_pick_and_place_simple" in tasks and "rollout/success_find-living-thing" in tasks


def test_entropy_history_and_schedule_continue_across_the_resume(runs):
    rows = _train_rows(runs)
    assert [r["epo/k"] for r in rows] == [0, 1, 2, 3]
    assert [r["epo/history_len"] for r in rows] == [1, 2, 3, 4]
    entropies = [r["epo/batch_entropy"] for r in rows]
    assert rows[0]["epo/hbar"] is None  # no history before the first step (logged NaN -> null)
    for i in (1, 2, 3):  # Hbar at step k: the mean of W_k, the batch entropies of the steps before it
        assert rows[i]["epo/hbar"] == pytest.approx(sum(entropies[:i]) / i, rel=1e-6)
    k_mid = 8 // 2  # --actor.epo.total_steps 8
    for r in rows:  # eq. 7, first half, paper defaults: beta_k = 2 + (1 - 2) (1 - exp(-3 k / k_mid))
        assert r["epo/beta"] == pytest.approx(2.0 - (1.0 - math.exp(-3.0 * r["epo/k"] / k_mid)), rel=1e-6)


def test_checkpoint_holds_the_epo_state(runs):
    state = torch.load(runs["work"] / "ckpt" / "_actor" / "global_step2" / "mp_rank_00_model_states.pt",
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
