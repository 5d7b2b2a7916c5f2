"""Episodes through the real ScienceWorld JVM, a group of two on one pooled instance, driven by a scripted engine.

The scripted engine is the stand-in for vLLM (named as such): it replays the simulator's own gold path, the oracle.
"""
import asyncio
import os
import re
from types import SimpleNamespace as NS

import pytest

from openrlhf_epo.agent.env_pool import EnvPool, play_groups
from openrlhf_epo.agent.episode import EpisodeConfig
from openrlhf_epo.envs.base import TaskSpec
from openrlhf_epo.envs.scienceworld_env import ScienceWorldEnv
from openrlhf_epo.runtime.offline_models import qwen_tokenizer

pytestmark = pytest.mark.slow  # starts JVMs

TASK, VARIATION = "find-living-thing", 3


def _java_children():
    me = str(os.getpid())
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read().split()
            cmd = open(f"/proc/{pid}/cmdline").read()
        except OSError:
            continue
        if stat[3] == me and "java" in cmd:
            found.append(int(pid))
    return found


@pytest.fixture(scope="module")
def gold(scienceworld_gold):
    return scienceworld_gold(TASK, VARIATION)


class GoldEngine:
    """Stand-in for a vLLM engine: answers turn t with the t-th gold action."""

    def __init__(self, tokenizer, actions):
        self.tokenizer, self.actions = tokenizer, actions

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        prompt = self.tokenizer.decode(prompt_token_ids)
        step = re.search(r"You are now at step (\d+)", prompt)
        action = self.actions[int(step.group(1)) - 1 if step else 0]
        text = f"<think>following the plan</think><action>{action}</action>"
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return NS(outputs=[NS(token_ids=ids, text=text, finish_reason="stop", logprobs=None)])


def test_gold_path_group_wins_on_one_reused_jvm(gold):
    tokenizer = qwen_tokenizer()
    spec = TaskSpec("scienceworld", TASK, VARIATION, "train")
    pool = EnvPool(1, factory=lambda name: ScienceWorldEnv())
    with pool:
        [episodes] = asyncio.run(play_groups(pool, [spec], 2, GoldEngine(tokenizer, gold), tokenizer,
                                             NS(max_tokens=None, stop=None), EpisodeConfig(history_length=2)))
        assert len(_java_children()) == 1  # one JVM served both episodes
    assert pool.created == 1
    for episode in episodes:
        assert episode.won and episode.done and episode.outcome_reward == 1.0
        assert [t.action for t in episode.turns] == gold[: len(episode.turns)]
        assert "Your current task is:" in tokenizer.decode(episode.turns[0].prompt_ids)
        assert "Current available actions:" in tokenizer.decode(episode.turns[1].prompt_ids)
    assert _java_children() == []  # the pool closed its JVM
