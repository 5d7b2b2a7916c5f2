"""The tiny model made for the Signpost environment (runtime/signpost_model.py): transformers' AutoTokenizer (what
OpenRLHF and vLLM call) loads its word-level tokenizer as built; every prompt the agent loop renders for fresh
episodes (other seeds than the build's, every split, histories 0-3, non-admissible actions of the vocabulary's
words too) tokenizes without
an unknown token and decodes to text that tokenizes to the same ids; the warm-up's responses keep their tags; the
model loads as a causal LM and its weights are deterministic."""
import random

import pytest
import torch

from openrlhf_epo.agent.prompts import TurnContext, render_chat, render_prompt
from openrlhf_epo.envs.signpost_env import SignpostEnv, signpost_task_specs
from openrlhf_epo.runtime.signpost_model import signpost_model_dir
from openrlhf_epo.tools.sft_data import RESPONSES


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return signpost_model_dir(tmp_path_factory.mktemp("models"), hidden=64, layers=1)


@pytest.fixture(scope="module")
def tokenizer(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def _fresh_prompts(seed=123, episodes=15):
    rng, env = random.Random(seed), SignpostEnv()
    for split in ("train", "iid", "ood"):
        for spec in signpost_task_specs(split, n=episodes, seed=seed):
            obs = env.reset(spec)
            current, actions, history = obs.text, obs.admissible, []
            for _ in range(25):
                yield render_prompt(TurnContext("signpost", obs.task, current, list(history), actions),
                                    history_length=rng.randrange(4)), obs.task
                # now and then a non-admissible action: words of the observation (a model over this vocabulary can
                # write nothing else)
                action = rng.choice(actions + [" ".join(rng.sample(current.split(), 2))])
                result = env.step(action, with_admissible=True)
                history.append((current, action))
                current, actions = result.observation, result.admissible
                if result.done:
                    break


def test_autotokenizer_loads_the_word_level_tokenizer_as_built(tokenizer):
    assert type(tokenizer).__name__ in ("TokenizersBackend", "PreTrainedTokenizerFast")
    assert tokenizer.convert_ids_to_tokens(tokenizer("go east <action>go west</action>")["input_ids"]) == [
        "go", "east", "<action>", "go", "west", "</action>"]
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.apply_chat_template([{"role": "user", "content": "go north"}], tokenize=False,
                                         add_generation_prompt=True) == (
        "<|im_start|>user\ngo north<|im_end|>\n<|im_start|>assistant\n")


def test_every_prompt_of_fresh_episodes_is_covered_and_round_trips(tokenizer):
    count = 0
    for prompt, task in _fresh_prompts():
        text = render_chat(tokenizer, prompt)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id not in ids, text
        decoded = tokenizer.decode(ids, skip_special_tokens=False)
        assert tokenizer(decoded, add_special_tokens=False)["input_ids"] == ids
        count += 1
    assert count > 300


def test_warm_up_responses_keep_their_tags_and_words(tokenizer):
    for respond in RESPONSES.values():
        text = respond("Your task is to: follow the signposts to the end of the trail.", "go west",
                       "You stand in a mossy clearing at the start of a forest trail. A signpost points east.")
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        decoded = tokenizer.decode(ids)
        assert "<action> go west </action>" in decoded and decoded.startswith("<think>")


def test_the_model_loads_as_a_causal_lm_and_is_deterministic(folder, tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True)
    assert model.config.vocab_size == len(tokenizer) and model.config.model_type == "granite"
    ids = torch.tensor([tokenizer("You are an expert agent")["input_ids"]])
    assert model(ids).logits.shape == (1, ids.shape[1], len(tokenizer))
    again = AutoModelForCausalLM.from_pretrained(str(signpost_model_dir(tmp_path, hidden=64, layers=1)))
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kwargs,message", [(dict(hidden=96), "multiple of 64"), (dict(layers=0), "layers=0")])
def test_bad_shapes_are_named(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        signpost_model_dir(tmp_path, **kwargs)
