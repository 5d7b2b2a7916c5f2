"""Episodes through the real ALFWorld engine (generated games), driven by a scripted engine.

The scripted engine is the one stand-in: it replaces vLLM (which cannot run here) at its `generate` seam and writes
pre-scripted turn outputs, tokenized with the real Qwen tokenizer, honouring max_tokens and the `</action>` stop.
"""
import asyncio
from types import SimpleNamespace as NS

import pytest

from openrlhf_epo.agent.episode import EpisodeConfig, run_episode
from openrlhf_epo.agent.anchor_state import anchor_key
from openrlhf_epo.agent.parsing import EMPTY_ACTION, MISSING_ACTION, NON_ASCII, UNCLOSED_ACTION
from openrlhf_epo.agent.samples import TURN_KEYS, per_turn_samples
from openrlhf_epo.envs.alfworld_env import AlfWorldEnv
from openrlhf_epo.runtime.offline_models import qwen_tokenizer


class ScriptedEngine:
    """Stand-in for a vLLM engine: turn t of the episode answers script(t, prompt_text)."""

    def __init__(self, tokenizer, script):
        self.tokenizer, self.script, self.calls = tokenizer, script, []

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        prompt = self.tokenizer.decode(prompt_token_ids)
        text = self.script(len(self.calls), prompt)
        self.calls.append((prompt, sampling_params))
        for stop in sampling_params.stop or []:
            if stop in text:
                text = text[: text.index(stop) + len(stop)]
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        finish = "stop"
        if len(ids) > sampling_params.max_tokens:
            ids, finish = ids[: sampling_params.max_tokens], "length"
            text = self.tokenizer.decode(ids)
        return NS(outputs=[NS(token_ids=ids, text=text, finish_reason=finish, logprobs=None)])


@pytest.fixture(scope="module")
def tokenizer():
    return qwen_tokenizer()


@pytest.fixture(scope="module")
def game(alfworld_game):
    return alfworld_game("train", 0, "pick_heat_then_place_in_recep")


def test_expert_script_wins_and_makes_one_sample_per_turn(tokenizer, game):
    spec, plan, cache = game
    engine = ScriptedEngine(tokenizer, lambda t, _: f"<think>step {t} of the plan</think><action>{plan[t]}</action>"
                            " and some trailing text the stop string must cut")
    params = NS(max_tokens=None, stop=None, temperature=1.0)
    with AlfWorldEnv(cache_dir=cache) as env:
        first_observation = env.reset(spec).text  # what the episode's reset will show again
        episode = asyncio.run(run_episode(env, spec, engine, tokenizer, params, EpisodeConfig(history_length=2)))
    assert episode.won and episode.done and episode.error is None
    assert [t.action for t in episode.turns] == plan
    assert all(t.valid for t in episode.turns) and episode.outcome_reward == 1.0
    assert all(t.response_text.endswith("</action>") for t in episode.turns)  # stopped after the action
    assert all(call[1].max_tokens == 512 and "</action>" in call[1].stop for call in engine.calls)
    # the prompts: listing 1 first, then listing 2 with the last two (observation, action) pairs
    first, third = engine.calls[0][0], engine.calls[2][0]
    assert "Your current observation is:" in first and "Your task is to:" in first and "Prior to this step" not in first
    assert "you have already taken 2 step(s)" in third and f"Action 2: '{plan[1]}'" in third

    samples = per_turn_samples(episode, "alfworld: heat", spec.to_json())
    assert len(samples) == len(plan)
    for t, (sample, turn) in enumerate(zip(samples, episode.turns)):
        assert sample["observation_tokens"] == turn.prompt_ids + turn.response_ids
        (start, end), = sample["action_ranges"]
        assert (start, end) == (len(turn.prompt_ids), len(turn.prompt_ids) + len(turn.response_ids))
        assert sample["reward"] == 1.0 and sample["label"] == spec.to_json()
        logs = sample["extra_logs"]
        assert set(logs) == set(TURN_KEYS)  # the record's fields, nothing else: the ids are the driver's to give
        assert (logs["turn_index"], logs["num_turns"], logs["won"], logs["invalid_count"]) == (t, len(plan), 1.0, 0.0)
        # GiGPO's inputs: the state the turn acted on (reset's text, then the previous turn's answer) and its reward
        acted_on = first_observation if t == 0 else episode.turns[t - 1].observation
        assert logs["anchor_state"] == anchor_key(acted_on)
        assert logs["step_reward"] == (1.0 if t == len(plan) - 1 else 0.0)
    assert len({s["extra_logs"]["anchor_state"] for s in samples}) == len(plan)  # the expert never repeats a state


def test_invalid_outputs_end_in_a_finished_episode_with_penalties(tokenizer, game):
    spec, _, cache = game
    outputs = [
        "I think I should go somewhere.",  # no tags at all
        "<think>hm</think><action>go to fridge 1",  # never closes its action tag
        "<think>hm</think><action>去冰箱</action>",  # non-ASCII action
        "<think>hm</think><action> </action>",  # empty action
        "<think>" + "very long reasoning " * 400,  # never closes anything: cut at the token cap
    ]
    engine = ScriptedEngine(tokenizer, lambda t, _: outputs[t % len(outputs)])
    config = EpisodeConfig(max_turns=5, invalid_penalty=0.1, max_response_tokens=64)
    with AlfWorldEnv(cache_dir=cache) as env:
        episode = asyncio.run(run_episode(env, spec, engine, tokenizer, NS(max_tokens=None, stop=None), config))
    assert len(episode.turns) == 5 and not episode.won and not episode.done  # our turn limit ended it
    reasons = [t.invalid_reason for t in episode.turns]
    assert reasons == [MISSING_ACTION, UNCLOSED_ACTION, NON_ASCII, EMPTY_ACTION, MISSING_ACTION]
    assert episode.turns[4].finish_reason == "length" and len(episode.turns[4].response_ids) == 64
    assert all(t.observation == "Nothing happens." for t in episode.turns)  # the environment's own answer
    samples = per_turn_samples(episode, "p", spec.to_json())
    assert [s["reward"] for s in samples] == pytest.approx([-0.1] * 5)
    assert [s["extra_logs"]["step_reward"] for s in samples] == pytest.approx([-0.1] * 5)  # lost: penalties only
    assert len({s["extra_logs"]["anchor_state"] for s in samples[1:]}) == 1  # "Nothing happens." four times
    assert all(s["extra_logs"]["invalid"] == 1.0 for s in samples) and samples[4]["truncated"]


def test_a_token_stream_episode_generates_each_turn_from_the_whole_stream(tokenizer, game):
    from openrlhf_epo.agent.samples import concatenated_sample

    spec, plan, cache = game
    engine = ScriptedEngine(tokenizer, lambda t, _: f"<think>t{t}</think><action>{plan[t]}</action>")
    params = NS(max_tokens=None, stop=None, temperature=1.0)
    config = EpisodeConfig(max_turns=3, max_prompt_tokens=4096)
    with AlfWorldEnv(cache_dir=cache) as env:
        episode = asyncio.run(run_episode(env, spec, engine, tokenizer, params, config, stream=True))
    turns = episode.turns
    assert len(turns) == 3 and not episode.context_full
    for before, after in zip(turns, turns[1:]):  # the next context: everything so far, then the answer
        assert after.prompt_ids == before.prompt_ids + before.response_ids + before.feedback_ids
        answer = tokenizer.decode(before.feedback_ids)
        # Qwen's template: close the reply, the observation as the next user message (listing 1), open a reply
        assert answer.startswith("<|im_end|>\n<|im_start|>user\nYou are an expert agent operating in the ALFRED")
        assert f"Your current observation is: {before.observation}\n" in answer
        assert answer.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert turns[-1].feedback_ids == []  # nothing is generated after the last turn
    sample = concatenated_sample(episode, "p", spec.to_json())
    assert sample["observation_tokens"] == turns[-1].prompt_ids + turns[-1].response_ids
    assert [sample["observation_tokens"][a:b] for a, b in sample["action_ranges"]] == [t.response_ids for t in turns]


def test_a_token_stream_stops_when_the_next_context_would_not_fit(tokenizer, game):
    spec, plan, cache = game
    engine = ScriptedEngine(tokenizer, lambda t, _: f"<think>t{t}</think><action>{plan[t]}</action>")
    params = NS(max_tokens=None, stop=None, temperature=1.0)
    with AlfWorldEnv(cache_dir=cache) as env:
        first = asyncio.run(run_episode(env, spec, engine, tokenizer, params, EpisodeConfig(max_turns=1), stream=True))
        budget = len(first.turns[0].prompt_ids) + len(first.turns[0].response_ids) + 30  # no room for an answer
        episode = asyncio.run(run_episode(env, spec, engine, tokenizer, params,
                                          EpisodeConfig(max_turns=5, max_prompt_tokens=budget), stream=True))
    assert len(episode.turns) == 1 and episode.context_full and not episode.done


def test_a_sample_refuses_turns_not_generated_from_the_stream(tokenizer, game):
    from openrlhf_epo.agent.samples import concatenated_sample

    spec, plan, cache = game
    engine = ScriptedEngine(tokenizer, lambda t, _: f"<think>t{t}</think><action>{plan[t]}</action>")
    params = NS(max_tokens=None, stop=None, temperature=1.0)
    with AlfWorldEnv(cache_dir=cache) as env:  # history-window prompts: each turn's prompt is rebuilt
        episode = asyncio.run(run_episode(env, spec, engine, tokenizer, params, EpisodeConfig(max_turns=2)))
    with pytest.raises(ValueError, match="turn 1 of .* was not generated from the episode's token stream"):
        concatenated_sample(episode, "p", spec.to_json())
