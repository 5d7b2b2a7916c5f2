"""Play episodes on the real vLLM engine (vLLM built for CPUs, fp32) in both sample modes and recompute every
sample's log-probs the way the trainer does.

    python rollout_logprobs.py SPEC.json OUT.json
SPEC: {"model", "specs": [TaskSpec JSON], "modes": ["per_turn", "concat"], "max_turns", "max_prompt_tokens",
       "max_response_tokens", "seed"}

Real parts: `vllm.AsyncLLMEngine` (tools/evaluate.load_engine) behind the agent loop's engine seam, the real
environments, `run_episode`, the executor's sample builders, upstream's `SamplesGenerator._process_response_into_experience`
(sample -> Experience, as the driver converts it) and `openrlhf.models.Actor` (the trainer's log-prob forward) on the
same weights in fp32 (SDPA attention, as the CPU runtime trains). Written per sample: the token stream, the action ranges, the engine's rollout log-probs and the
actor's, at the action positions.
"""
import asyncio
import json
import sys


def main(spec_path, out_path):
    spec = json.loads(open(spec_path).read())
    import torch
    import vllm
    from transformers import AutoTokenizer

    from openrlhf_epo.runtime import flash_attn_stub

    flash_attn_stub.install()
    from openrlhf.models import Actor
    from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator

    from openrlhf_epo.agent.episode import EpisodeConfig, run_episode
    from openrlhf_epo.agent.samples import concatenated_sample, per_turn_samples
    from openrlhf_epo.envs.base import TaskSpec
    from openrlhf_epo.envs.registry import make_env
    from openrlhf_epo.tools.evaluate import LocalEngine, load_engine

    budget = spec["max_prompt_tokens"] + spec["max_response_tokens"]
    llm, _ = load_engine(spec["model"], spec["seed"], budget, dtype="fp32")
    engine = LocalEngine(llm)
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    config = EpisodeConfig(max_turns=spec["max_turns"], max_prompt_tokens=spec["max_prompt_tokens"],
                           max_response_tokens=spec["max_response_tokens"])
    params = vllm.SamplingParams(temperature=1.0, logprobs=0, seed=spec["seed"])
    async def play_all():  # one event loop for the engine's whole life (vLLM's AsyncLLM binds to it)
        rows = []
        for label in spec["specs"]:
            task = TaskSpec.from_json(label)
            for mode in spec["modes"]:
                with make_env(task.env) as env:
                    episode = await run_episode(env, task, engine, tokenizer, params, config, stream=mode == "concat")
                if mode == "per_turn":
                    samples = per_turn_samples(episode, "", label)
                else:
                    samples = [concatenated_sample(episode, "", label)]
                for sample in samples:
                    rows.append(dict(mode=mode, env=task.env, turns=len(episode.turns),
                                     context_full=episode.context_full, tokens=sample["observation_tokens"],
                                     ranges=sample["action_ranges"],
                                     observations=[t.observation for t in episode.turns], sample=sample))
        return rows

    try:
        rows = asyncio.run(play_all())
    finally:
        llm.shutdown()

    actor = Actor(spec["model"], attn_implementation="sdpa", param_dtype="fp32")  # as the CPU runtime's trainer
    generator = SamplesGenerator.__new__(SamplesGenerator)  # only its response -> Experience conversion is used
    with torch.no_grad():
        for row in rows:
            experience = generator._process_response_into_experience(row.pop("sample"), max_len=budget * 8)
            mask = experience.action_mask.bool()
            trainer = actor(experience.sequences, experience.action_mask, experience.attention_mask)
            row["actor"] = trainer[mask].tolist()
            row["rollout"] = experience.rollout_log_probs[mask].tolist()
    with open(out_path, "w") as f:
        json.dump(rows, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
