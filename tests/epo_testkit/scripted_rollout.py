"""A rollout engine actor for tests: upstream's real `RolloutRayActor` (its generate / generate_responses / sleep /
wake_up, the agent executor it loads from --train.agent_func_path) around a scripted stand-in for
`vllm.AsyncLLMEngine`. vLLM cannot start without a GPU: the stand-in is the only stub, at that boundary.

The script plays every task instance with three behaviours, handed out per task instance in arrival order of the
episodes' first turns (trajectory k of a group gets behaviour k mod 3):
  0 "plan":    the environment's own oracle (ALFWorld's planner walkthrough, ScienceWorld's gold path): wins;
  1 "invalid": `<think>` without an `<action>` tag, every turn: an invalid turn each time, until the turn limit;
  2 "idle":    a valid but useless action ("look" / "look around") until the turn limit.
An episode keeps its behaviour for its whole life (identified by the asyncio task that runs it, which upstream's
generate_responses creates per execute call).
"""
import asyncio
import re
import weakref
from types import SimpleNamespace as NS
from typing import Dict, List, Tuple

import ray

BEHAVIOURS = ("plan", "invalid", "idle")
IDLE = {"alfworld": "look", "scienceworld": "look around"}


class ScriptedLLM:
    """Stand-in for vllm.AsyncLLMEngine: `generate(prompt, sampling_params, request_id)` yields one vLLM-shaped
    output. scripts: {task text: (env name, oracle actions)}; latency: seconds per generate call (the engine's)."""

    def __init__(self, tokenizer, scripts: Dict[str, Tuple[str, List[str]]], latency: float = 0.0):
        self.tokenizer, self.scripts, self.latency = tokenizer, scripts, latency
        # asyncio task -> (behaviour, task text); weak keys: a finished task's id() may be reused by a new episode
        self.behaviour_of = weakref.WeakKeyDictionary()
        self.arrivals: Dict[str, int] = {}
        self.calls: List[str] = []
        self.unfinished = self.peak = 0
        self.output_processor = NS(get_num_unfinished_requests=lambda: self.unfinished)

    def _script(self, prompt: str):
        episode = asyncio.current_task()
        if episode not in self.behaviour_of:
            task = next((t for t in self.scripts if t in prompt), None)
            if task is None:
                raise AssertionError(f"the scripted engine knows no task in prompt {prompt[-400:]!r}")
            k = self.arrivals.get(task, 0)
            self.arrivals[task] = k + 1
            self.behaviour_of[episode] = (BEHAVIOURS[k % len(BEHAVIOURS)], task)
        return self.behaviour_of[episode]

    async def generate(self, prompt, sampling_params, request_id=None):
        self.unfinished += 1
        self.peak = max(self.peak, self.unfinished)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            text_in = self.tokenizer.decode(prompt["prompt_token_ids"])
            behaviour, task = self._script(text_in)
            env, oracle = self.scripts[task]
            step = re.search(r"You are now at step (\d+)", text_in)
            turn = int(step.group(1)) - 1 if step else 0
            if behaviour == "plan":
                text = f"<think>step {turn + 1} of the plan</think><action>{oracle[turn]}</action>"
            elif behaviour == "invalid":
                text = "<think>I am not sure what to do</think> maybe look around"
            else:
                text = f"<think>let me look</think><action>{IDLE[env]}</action>"
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][: sampling_params.max_tokens]
            logprobs = [{t: NS(logprob=-0.5)} for t in ids] if sampling_params.logprobs is not None else None
            yield NS(outputs=[NS(token_ids=ids, text=self.tokenizer.decode(ids), finish_reason="stop",
                                 logprobs=logprobs)])
        finally:
            self.unfinished -= 1

    async def sleep(self, level=1):
        self.calls.append("sleep")

    async def wake_up(self, tags=None):
        self.calls.append(f"wake_up:{','.join(tags or [])}")

    async def reset_prefix_cache(self):
        self.calls.append("reset_prefix_cache")


def scripted_rollout_actor():
    """The Ray actor class: upstream's RolloutRayActor with the scripted engine in place of vLLM's."""
    from openrlhf.trainer.ray.vllm_engine import RolloutRayActor, _load_agent_executor

    class ScriptedRolloutActor(RolloutRayActor.__ray_actor_class__):
        def __init__(self, agent_func_path, tokenizer_dir, scripts, latency=0.0):
            from transformers import AutoTokenizer

            self.executor = _load_agent_executor(agent_func_path)  # upstream's loader, as in RolloutRayActor
            self.llm = ScriptedLLM(AutoTokenizer.from_pretrained(tokenizer_dir), scripts, latency)
            self._mm_pad_token_ids = None

        def engine_calls(self):
            return list(self.llm.calls)

        def peak_concurrency(self):
            return self.llm.peak

    return ray.remote(ScriptedRolloutActor)

