"""Groups of episodes on one task instance, concurrently, through a bounded pool of real ALFWorld instances.

The scripted engine is the stand-in for vLLM (named as such): it answers each prompt with the next action of the
stored planner walkthrough of the game the prompt describes, and yields to the event loop so requests interleave.
"""
import asyncio
import re
from types import SimpleNamespace as NS

import pytest

from openrlhf_epo.agent.env_pool import EnvPool, play_groups
from openrlhf_epo.agent.episode import EpisodeConfig
from openrlhf_epo.envs.alfworld_env import AlfWorldEnv, alfworld_task_specs
from openrlhf_epo.runtime.offline_models import qwen_tokenizer


class WalkthroughEngine:
    """Stand-in for a vLLM engine: plays the planner's plan of whichever game the prompt is about."""

    def __init__(self, tokenizer, plans):
        self.tokenizer, self.plans, self.in_flight, self.max_in_flight = tokenizer, plans, 0, 0
        self.overlapped = asyncio.Event()

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if self.in_flight >= 2:
            self.overlapped.set()
        # A batch forms while requests wait, as in a real engine: until a second request has come (at most 5 s),
        # so episodes that run concurrently overlap here however loaded the machine is; sequential ones never do.
        try:
            await asyncio.wait_for(self.overlapped.wait(), timeout=5)
        except asyncio.TimeoutError:
            pass
        prompt = self.tokenizer.decode(prompt_token_ids)
        task = next(t for t in self.plans if t.removeprefix("Your task is to:").strip() in prompt)
        step = re.search(r"You are now at step (\d+)", prompt)
        text = f"<think>next</think><action>{self.plans[task][int(step.group(1)) - 1 if step else 0]}</action>"
        self.in_flight -= 1
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return NS(outputs=[NS(token_ids=ids, text=text, finish_reason="stop", logprobs=None)])


@pytest.fixture(scope="module")
def games(tmp_path_factory):
    cache = tmp_path_factory.mktemp("games")
    specs = alfworld_task_specs("train", n=2, seed=4, task_types=["pick_and_place_simple", "pick_cool_then_place_in_recep"],
                                cache_dir=cache, progress=False)
    plans = {}
    with AlfWorldEnv(cache_dir=cache) as env:
        for spec in specs:
            task = env.reset(spec).task
            plans[task] = env.walkthrough
    assert len(plans) == 2, "two different games"
    return specs, plans, cache


def test_groups_share_their_task_instance_and_the_pool_stays_bounded(games):
    specs, plans, cache = games
    tokenizer = qwen_tokenizer()
    engine = WalkthroughEngine(tokenizer, plans)
    pool = EnvPool(2, factory=lambda name: AlfWorldEnv(cache_dir=cache))

    async def rollout():
        return await play_groups(pool, specs, 3, engine, tokenizer, NS(max_tokens=None, stop=None), EpisodeConfig())

    with pool:
        groups = asyncio.run(rollout())
    assert pool.created == 2  # six episodes, two instances, reused
    assert engine.max_in_flight >= 2  # episodes generated concurrently
    for spec, group in zip(specs, groups):
        assert len(group) == 3 and all(e.spec == spec and e.won for e in group)
        assert len({e.task for e in group}) == 1  # the n members played the same task instance
        assert len({tuple(e.turns[0].prompt_ids) for e in group}) == 1
        assert [t.action for t in group[0].turns] == plans[group[0].task]
