"""The appendix-D prompts: first turn without history, later turns with the last h pairs."""
import pytest

from openrlhf_epo.agent.prompts import TurnContext, render_prompt


def test_alfworld_first_turn_is_listing_1():
    text = render_prompt(TurnContext("alfworld", "put a mug in desk", "You are in a room.", [], ["look", "go to desk 1"]))
    assert text.startswith("You are an expert agent operating in the ALFRED Embodied Environment.\n"
                           "Your current observation is: You are in a room.\n")
    assert "Your admissible actions of the current situation are: ['look', 'go to desk 1']." in text
    assert "Prior to this step" not in text
    assert text.endswith("present it within <action> </action> tags.")


def test_alfworld_first_turn_shows_the_task_line():
    text = render_prompt(TurnContext("alfworld", "Your task is to: put a mug in desk.", "You are in a room.", [], []))
    assert "Your current observation is: You are in a room.\n\nYour task is to: put a mug in desk.\n" in text


def test_history_window_keeps_the_last_h_pairs():
    history = [("obs1", "act1"), ("obs2", "act2"), ("obs3", "act3")]
    ctx = TurnContext("alfworld", "Your task is to: put a mug in desk", "obs4", history, ["look"])
    text = render_prompt(ctx, history_length=2)
    assert "Environment. Your task is to: put a mug in desk\n" in text
    assert "you have already taken 3 step(s). Below are the most recent 2 observations" in text
    assert "[Observation 2: 'obs2', Action 2: 'act2']" in text and "[Observation 3: 'obs3', Action 3: 'act3']" in text
    assert "obs1" not in text and "act1" not in text
    assert "You are now at step 4 and your current observation is: obs4" in text
    assert render_prompt(ctx, history_length=0).startswith("You are an expert agent operating in the ALFRED")
    assert "Prior to this step" not in render_prompt(ctx, history_length=0)


def test_scienceworld_prompts_list_templates_and_available_actions():
    first = render_prompt(TurnContext("scienceworld", "boil water", "You are in the kitchen.", [], ["look around", "open oven"]))
    assert "Your current task is: boil water" in first
    assert '{"action": "focus on OBJ", "description": "signal intent on a task object"}' in first
    assert "Current available actions:\nlook around\nopen oven\n" in first
    later = render_prompt(TurnContext("scienceworld", "boil water", "o2", [("o1", "look around")], ["wait"]), 2)
    assert "you have already taken 1 step(s)" in later and "You are now at step 2" in later


def test_unknown_environment_is_named():
    with pytest.raises(ValueError, match="no prompt for environment 'webshop'"):
        render_prompt(TurnContext("webshop", "t", "o"))


def test_long_action_lists_are_cut_to_fit_not_the_task_or_history():
    from openrlhf_epo.agent.episode import fit_prompt
    from openrlhf_epo.runtime.offline_models import qwen_tokenizer

    tokenizer = qwen_tokenizer()
    actions = [f"move object number {i} to container number {i + 1}" for i in range(3000)]
    ctx = TurnContext("scienceworld", "find a living thing", "You are outside.", [("o1", "look around")], actions)
    ids, shown = fit_prompt(ctx, tokenizer, 2048, history_length=2)
    text = tokenizer.decode(ids)
    assert len(ids) <= 2048 and 0 < shown < len(actions)
    assert "Your current task is: find a living thing" in text and "You are now at step 2" in text
    assert actions[shown - 1] in text and actions[shown] not in text  # the head of the list, as the env ordered it
    assert text.rstrip().endswith("<|im_start|>assistant")
    one_more = TurnContext(ctx.env, ctx.task, ctx.observation, ctx.history, actions[: shown + 1])
    assert len(fit_prompt(one_more, tokenizer, 10**6, 2)[0]) > 2048  # the largest prefix that fits


def test_the_next_user_message_uses_the_templates_own_markup():
    from openrlhf_epo.agent.prompts import render_continuation
    from openrlhf_epo.runtime.offline_models import qwen_tokenizer

    text = render_continuation(qwen_tokenizer(), "the room is dark")
    assert text == "<|im_end|>\n<|im_start|>user\nthe room is dark<|im_end|>\n<|im_start|>assistant\n"
