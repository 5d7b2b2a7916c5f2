"""`openrlhf-epo eval`: the agent loop over task splits, scored per split and task type."""
import asyncio
import json
import os
import re
import subprocess
import sys
from types import SimpleNamespace as NS

import pytest

from openrlhf_epo.agent.episode import EpisodeConfig
from openrlhf_epo.tools.data import record
from openrlhf_epo.tools.evaluate import check_model_folder, play_all, read_tasks, report

pytestmark = pytest.mark.slow  # ALFWorld games, environment processes


class PlanOrNothing:
    """Stand-in for an engine: follows the planner's plan on the tasks it knows, answers without tags elsewhere."""

    def __init__(self, tokenizer, plans):
        self.tokenizer, self.plans = tokenizer, plans

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        prompt = self.tokenizer.decode(prompt_token_ids)
        plan = next((p for task, p in self.plans.items() if task in prompt), None)
        step = re.search(r"You are now at step (\d+)", prompt)  # a history-window prompt
        # a token stream (--mode concat): one reply opened per turn so far
        turn = int(step.group(1)) - 1 if step else prompt.count("<|im_start|>assistant") - 1
        text = f"<think>plan</think><action>{plan[turn]}</action>" if plan else "no idea"
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return NS(outputs=[NS(token_ids=ids, text=text, finish_reason="stop", logprobs=None)])


@pytest.mark.parametrize("mode", ["per_turn", "concat"])
def test_scores_per_split_and_task_type(alfworld_game, tmp_path, monkeypatch, mode):
    from openrlhf_epo.envs.alfworld_env import AlfWorldEnv
    from openrlhf_epo.runtime.offline_models import qwen_tokenizer

    known = [alfworld_game("iid", 4, "pick_and_place_simple"), alfworld_game("iid", 5, "look_at_obj_in_light")]
    unknown = alfworld_game("ood", 6, "pick_and_place_simple")
    monkeypatch.setenv("OPENRLHF_EPO_ALFWORLD_GAMES", str(unknown[2]))
    (tmp_path / "iid.jsonl").write_text("".join(json.dumps(record(s)) + "\n" for s, _, _ in known))
    (tmp_path / "ood.jsonl").write_text(json.dumps(record(unknown[0])) + "\n")
    tasks = read_tasks([tmp_path / "iid.jsonl", tmp_path / "ood.jsonl"])
    assert [t["source"] for t in tasks] == ["alfworld_iid", "alfworld_iid", "alfworld_ood"]
    with AlfWorldEnv(cache_dir=unknown[2]) as env:
        plans = {env.reset(s).task.removeprefix("Your task is to:").strip(): p for s, p, _ in known}
    tokenizer = qwen_tokenizer()
    config = EpisodeConfig(max_turns=max(len(p) for _, p, _ in known) + 1, max_prompt_tokens=16384)
    done = asyncio.run(play_all(tasks, PlanOrNothing(tokenizer, plans), tokenizer, NS(max_tokens=64, stop=None),
                                config, n_samples=2, concurrency=3, workers="auto", progress=False,
                                stream=mode == "concat"))
    if mode == "concat":  # every turn generated from the whole stream
        for _, _, episode in done:
            for before, after in zip(episode.turns, episode.turns[1:]):
                assert after.prompt_ids == before.prompt_ids + before.response_ids + before.feedback_ids
    result = report(done, n_samples=2)
    iid, ood = result["splits"]["alfworld_iid"], result["splits"]["alfworld_ood"]
    plan_turns = [len(p) for _, p, _ in known]
    assert iid["success_rate"] == 1.0 and iid["pass2"] == 1.0 and iid["invalid_ratio"] == 0.0
    assert iid["turns_mean"] == pytest.approx(sum(plan_turns) / 2)
    assert iid["success_pick_and_place_simple"] == 1.0 and iid["success_look_at_obj_in_light"] == 1.0
    assert ood["success_rate"] == 0.0 and ood["invalid_ratio"] == 1.0 and ood["turns_mean"] == config.max_turns
    assert result["overall"]["num_episodes"] == 6
    assert result["overall"]["success_rate"] == pytest.approx(4 / 6)


def test_bad_inputs_are_named(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "mp_rank_00_model_states.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="is a DeepSpeed checkpoint; evaluate a Hugging Face folder"):
        check_model_folder(str(tmp_path / "ckpt"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x", "label": "{\\"env\\": \\"nethack\\", \\"task\\": \\"t\\"}"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: not a task spec: .*TaskSpec.env='nethack' is not one of "
                                         r"scienceworld, alfworld"):
        read_tasks([bad])
    with pytest.raises(ValueError, match="no such file"):
        read_tasks([tmp_path / "missing.jsonl"])
    from openrlhf_epo.tools.evaluate import evaluate

    with pytest.raises(ValueError, match="--mode 'both' is not one of per_turn, concat"):
        evaluate(str(tmp_path), [bad], None, mode="both")


def test_the_command_runs_a_model_on_vllm(alfworld_game, tmp_path):
    """The real command with a random tiny Qwen2 on vLLM (built for CPUs here): it cannot write the tags, so every
    turn is invalid; no engine process outlives the command."""
    from openrlhf_epo.runtime.offline_models import tiny_qwen2_dir

    spec, _, cache = alfworld_game("iid", 4, "pick_and_place_simple")
    (tmp_path / "iid.jsonl").write_text(json.dumps(record(spec)) + "\n")
    done = subprocess.run([sys.executable, "-m", "openrlhf_epo.tools.cli", "eval", str(tiny_qwen2_dir()),
                           "--data", str(tmp_path / "iid.jsonl"), "--max-turns", "2", "--max-response-tokens", "8",
                           "--out", str(tmp_path / "r.json"), "--dtype", "fp32"],
                          capture_output=True, text=True, env={**os.environ, "OPENRLHF_EPO_ALFWORLD_GAMES": str(cache)})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["splits"]["alfworld_iid"]["num_episodes"] == 1
    assert result["splits"]["alfworld_iid"]["invalid_ratio"] == 1.0 and result["episodes"][0]["turns"] == 2
    assert result["settings"]["engine"] == "vllm" and result["settings"]["dtype"] == "fp32"
    assert "alfworld_iid" in done.stdout and "vLLM on the CPU in fp32" in done.stdout


def test_episodes_that_lost_their_environment_are_counted_not_scored():
    from openrlhf_epo.agent.episode import Episode
    from openrlhf_epo.envs.base import TaskSpec

    sw, alf = TaskSpec("scienceworld", "boil", 0), TaskSpec("alfworld", "pick_and_place_simple", 0)
    won = Episode(spec=sw, task="t", won=True, done=True)
    crashed = Episode(spec=sw, task="t", error="step 2: EnvironmentError_: the JVM died")
    hung = Episode(spec=alf, task="t", error="reset: EnvTimeout: did not answer reset within 5 s")
    tasks = [{"spec": sw, "source": "scienceworld_iid", "prompt": "a"},
             {"spec": alf, "source": "alfworld_iid", "prompt": "b"}]
    result = report([(tasks[0], 0, won), (tasks[0], 0, crashed), (tasks[1], 1, hung)], n_samples=2)
    sw_split, alf_split = result["splits"]["scienceworld_iid"], result["splits"]["alfworld_iid"]
    assert sw_split["num_episodes"] == 1 and sw_split["success_rate"] == 1.0 and sw_split["env_errors"] == 1
    assert sw_split["env_errors_scienceworld"] == 1
    assert "num_episodes" not in alf_split and alf_split["env_errors_alfworld"] == 1  # nothing left to score
    assert result["overall"]["env_errors"] == 2 and result["overall"]["num_episodes"] == 1
    assert [e["error"] is not None for e in result["episodes"]] == [False, True, True]
