"""The agent executor as OpenRLHF's rollout engine calls it (n concurrent `execute` calls for one prompt), on real
ALFWorld games, with a scripted engine as the stand-in for vLLM; its responses through the driver's expansion and
upstream's real response -> Experience conversion."""
import asyncio
import json
from types import SimpleNamespace as NS

import pytest

from openrlhf_epo.agent.episode import EpisodeConfig
from openrlhf_epo.envs.alfworld_env import AlfWorldEnv
from openrlhf_epo.agent.config import AgentConfig
from openrlhf_epo.integration.agent_executor import EPOAgentExecutor
from openrlhf_epo.integration.rollout_hooks import IdSource, expand_agent_responses
from openrlhf_epo.runtime.offline_models import qwen_tokenizer


class HalfRightEngine:
    """Stand-in for a vLLM engine: even-numbered callers follow the plan, odd ones answer without an action tag."""

    def __init__(self, tokenizer, plan):
        self.tokenizer, self.plan, self.steps = tokenizer, plan, {}

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        await asyncio.sleep(0)
        prompt = self.tokenizer.decode(prompt_token_ids)
        step = int(prompt.split("You are now at step ")[1].split()[0]) - 1 if "You are now at step" in prompt else 0
        caller = asyncio.current_task().get_name()
        if int(caller.rsplit("-", 1)[-1]) % 2:
            text = "<think>no idea</think> wait"
        else:
            text = f"<think>plan</think><action>{self.plan[step]}</action>"
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return NS(outputs=[NS(token_ids=ids, text=text, finish_reason="stop", logprobs=None)])


@pytest.fixture(scope="module")
def game(alfworld_game):
    return alfworld_game("iid", 2, "look_at_obj_in_light")


@pytest.fixture(scope="module")
def to_experience():
    from openrlhf_epo.runtime import flash_attn_stub

    flash_attn_stub.install()
    from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator

    generator = SamplesGenerator.__new__(SamplesGenerator)
    return lambda response: generator._process_response_into_experience(response, max_len=4096)


def test_a_group_of_executions_becomes_per_turn_experiences(game, to_experience, monkeypatch):
    spec, plan, cache = game
    monkeypatch.setenv("OPENRLHF_EPO_AGENT", json.dumps({"pool_size": 2, "episode": {"max_turns": 4,
                                                                                      "invalid_penalty": 0.1}}))
    executor = EPOAgentExecutor()
    executor.pool.factory = lambda name: AlfWorldEnv(cache_dir=cache)
    assert executor.config.episode.max_turns == 4 and executor.config.pool_size == 2
    tokenizer = qwen_tokenizer()
    engine = HalfRightEngine(tokenizer, plan)

    async def engine_side():  # what RolloutRayActor.generate_responses does: n concurrent executes
        tasks = [asyncio.create_task(executor.execute("alfworld: look", spec.to_json(), NS(max_tokens=None, stop=None),
                                                      4096, tokenizer, engine), name=f"sample-{i}")
                 for i in range(4)]
        return await asyncio.gather(*tasks)

    try:
        responses = asyncio.run(engine_side())
    finally:
        executor.close()
    experiences = [to_experience(r) for r in expand_agent_responses(responses, IdSource())]
    assert len(plan) <= 4, "the look task's plan fits the turn limit"
    by_traj = {}
    for e in experiences:
        by_traj.setdefault(int(e.info["traj_id"]), []).append(e)
    assert len(by_traj) == 4 and {int(e.info["group_id"]) for e in experiences} == {0}
    won = [t for t, es in by_traj.items() if es[0].info["won"].item() == 1.0]
    assert len(won) == 2  # the two callers that followed the plan
    for traj, es in by_traj.items():
        turns = [int(e.info["turn_index"]) for e in es]
        assert turns == list(range(len(es))) and all(int(e.info["num_turns"]) == len(es) for e in es)
        if traj in won:
            assert len(es) == len(plan) and all(e.rewards.item() == 1.0 for e in es)
        else:  # four invalid turns, each penalised, then the turn limit
            assert len(es) == 4 and all(e.rewards.item() == pytest.approx(-0.1) for e in es)
        assert all(e.action_mask.sum() > 0 for e in es)


def test_bad_agent_config_is_named(monkeypatch):
    with pytest.raises(ValueError, match="agent mode 'both' is not one of per_turn, concat"):
        AgentConfig(mode="both")
    monkeypatch.setenv("OPENRLHF_EPO_AGENT", json.dumps({"episode": {"turns": 3}}))
    with pytest.raises(ValueError, match=r"unknown episode settings \['turns'\]"):
        EPOAgentExecutor()
    assert EpisodeConfig().max_response_tokens == 512
