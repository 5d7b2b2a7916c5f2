"""Rollout wall time of 16 concurrent agent episodes with real environments, against the same rollout with instant
environments (target: at most 1.2x) and against an episode-by-episode loop.

The engine is a scripted stand-in for vLLM with a fixed latency per call; it follows each game's planner walkthrough,
so every run takes the same actions. Latencies: 0.25 s (a bare action), 1 s and 2 s (a turn of reasoning plus an
action, 100-200 tokens, from a 3B-7B model on a batched GPU engine). "Instant" environments
replay what the real ones answered in a recording run, with no cost: the ratio is then what the environments add to
a rollout whose generation overlaps them. Episodes run through the agent executor's path: `run_episode` on instances
leased from an `EnvPool` (warmed up beforehand, as in training, where the pool outlives the RL steps).

ALFWorld resets cost about 0.25 s of CPU each (fast-downward's translation of the game), all at an episode's start:
16 of them on a 2-core machine keep the first turns waiting, so the ratio falls as the engine's latency grows or as
cores are added (one environment process each, --workers process / auto).

    .venv/bin/python bench/rollout_time.py [--env alfworld|scienceworld] [--episodes 16] [--latency 0.25,1,2]
"""
import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace as NS

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openrlhf_epo.agent.env_pool import WORKERS, EnvPool, env_factory  # noqa: E402
from openrlhf_epo.agent.episode import EpisodeConfig, run_episode  # noqa: E402
from openrlhf_epo.envs.base import Observation, StepResult, TextEnv  # noqa: E402


class PlanEngine:
    """Stand-in for a vLLM engine: a fixed latency per call, then the task's next oracle action."""

    def __init__(self, tokenizer, plans, latency):
        self.tokenizer, self.plans, self.latency = tokenizer, plans, latency

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        await asyncio.sleep(self.latency)
        prompt = self.tokenizer.decode(prompt_token_ids)
        plan = next(p for task, p in self.plans.items() if task in prompt)
        step = re.search(r"You are now at step (\d+)", prompt)
        text = f"<think>next step of the plan</think><action>{plan[int(step.group(1)) - 1 if step else 0]}</action>"
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return NS(outputs=[NS(token_ids=ids, text=text, finish_reason="stop", logprobs=None)])


class Recorder(TextEnv):
    """A real environment that also records its answers, keyed by (task spec, actions so far)."""

    def __init__(self, env, tape):
        self.env, self.tape, self.key = env, tape, None
        self.name = env.name

    def reset(self, spec, with_admissible=True):
        self.key = (spec.to_json(),)
        self.tape[self.key] = out = self.env.reset(spec, with_admissible)
        return out

    def step(self, action, with_admissible=False):
        self.key += (action,)
        self.tape[self.key] = out = self.env.step(action, with_admissible)
        return out

    def admissible_actions(self):
        return self.env.admissible_actions()

    def close(self):
        self.env.close()


class Replay(TextEnv):
    """An instant environment: answers what the recorded real one answered."""

    name = "replay"

    def __init__(self, tape):
        self.tape, self.key = tape, None

    def reset(self, spec, with_admissible=True) -> Observation:
        self.key = (spec.to_json(),)
        return self.tape[self.key]

    def step(self, action, with_admissible=False) -> StepResult:
        self.key += (action,)
        return self.tape[self.key]

    def admissible_actions(self):
        raise NotImplementedError("the agent loop takes admissible actions from reset / step")

    def close(self):
        pass


def tasks(env_name, n):
    """n task instances with their oracle plans and task texts."""
    if env_name == "alfworld":
        from openrlhf_epo.envs.alfworld_env import AlfWorldEnv, alfworld_task_specs

        cache = Path(tempfile.mkdtemp(prefix="rollout-bench-"))
        specs = alfworld_task_specs("train", n, seed=0, cache_dir=cache, source="generated", progress=False)
        with AlfWorldEnv(cache_dir=cache) as env:
            found = [(s, env.reset(s).task, list(env.walkthrough)) for s in specs]
        return found
    from scienceworld import ScienceWorldEnv as Stock

    from openrlhf_epo.envs.base import TaskSpec
    from openrlhf_epo.envs.scienceworld_env import ScienceWorldEnv

    found, stock = [], Stock("", envStepLimit=100)
    with ScienceWorldEnv() as env:
        for v in range(n):
            spec = TaskSpec("scienceworld", "find-living-thing", variation=v)
            stock.load(spec.task, v, "easy", generateGoldPath=True)
            found.append((spec, env.reset(spec).task, stock.get_gold_action_sequence()))
    stock.close()
    return found


async def rollout(pool, episodes, engine, tokenizer, config, concurrent=True):
    from vllm import SamplingParams

    params = SamplingParams(temperature=1.0, max_tokens=config.max_response_tokens)

    async def one(spec):
        async with pool.lease(spec.env) as env:
            return await run_episode(env, spec, engine, tokenizer, params, config)

    start = time.perf_counter()
    if concurrent:
        done = await asyncio.gather(*(one(s) for s in episodes))
    else:
        done = [await one(s) for s in episodes]
    return time.perf_counter() - start, done


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", choices=["alfworld", "scienceworld"], default="alfworld")
    parser.add_argument("--episodes", type=int, default=16, help="concurrent episodes (4 per task instance)")
    parser.add_argument("--latency", default="0.25,1,2", help="the scripted engine's seconds per call (a list)")
    parser.add_argument("--pool", type=int, default=None, help="environment instances (default: one per episode)")
    parser.add_argument("--workers", choices=WORKERS, default="auto",
                        help="where pooled environments run (--agent.env_workers; default auto)")
    a = parser.parse_args()

    from openrlhf_epo.runtime.offline_models import qwen_tokenizer

    tokenizer = qwen_tokenizer()
    found = tasks(a.env, max(1, a.episodes // 4))
    factory = env_factory(a.workers)
    plans = {text.removeprefix("Your task is to:").strip(): plan for _, text, plan in found}
    episodes = [spec for spec, _, _ in found for _ in range(4)][: a.episodes]
    config = EpisodeConfig(max_turns=max(len(p) for p in plans.values()) + 1)
    size = a.pool or len(episodes)
    tape = {}

    async def run(latency, sequential):
        engine = PlanEngine(tokenizer, plans, latency)
        with EnvPool(size, lambda name: Recorder(factory(name), tape)) as real, \
                EnvPool(size, lambda name: Replay(tape)) as instant:
            await rollout(real, episodes, engine, tokenizer, config)  # warm-up: pool filled, tape recorded
            t_real, done = await rollout(real, episodes, engine, tokenizer, config)
            await rollout(instant, episodes, engine, tokenizer, config)
            t_instant, replayed = await rollout(instant, episodes, engine, tokenizer, config)
            t_seq = (await rollout(real, episodes, engine, tokenizer, config, concurrent=False))[0] if sequential \
                else None
        assert [len(e.turns) for e in done] == [len(e.turns) for e in replayed]
        return t_real, t_instant, t_seq, done

    latencies = [float(x) for x in a.latency.split(",")]
    for i, latency in enumerate(latencies):
        t_real, t_instant, t_seq, done = asyncio.run(run(latency, sequential=i == 0))
        if i == 0:
            turns = sum(len(e.turns) for e in done)
            print(f"{a.env}: {len(episodes)} episodes ({turns} turns, {sum(e.won for e in done)} won), pool {size}, "
                  f"environment workers {a.workers}, {os.cpu_count()} cores")
        print(f"  engine {latency:.2f} s/call: concurrent real {t_real:6.2f} s, instant {t_instant:6.2f} s: "
              f"real / instant = {t_real / t_instant:.2f}x (target <= 1.2)")
        if t_seq is not None:
            print(f"  engine {latency:.2f} s/call: sequential real {t_seq:6.2f} s: sequential / concurrent = "
                  f"{t_seq / t_real:.1f}x")

if __name__ == "__main__":
    main()
