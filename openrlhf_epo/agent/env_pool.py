"""A bounded pool of environment instances, reused across episodes, and groups of episodes on one task instance.

Starting an environment is expensive (a JVM for ScienceWorld, a PDDL library for ALFWorld) and their number must stay
bounded on a shared node, so episodes lease an instance, reset it to their own task spec, and give it back. All live
episodes run concurrently on one event loop; an episode waiting for a free instance does not block the others.
"""
import asyncio
import contextlib
from typing import Any, Callable, Dict, List

from openrlhf_epo.agent.episode import Episode, EpisodeConfig, run_episode
from openrlhf_epo.envs.base import TaskSpec, TextEnv
from openrlhf_epo.envs.registry import make_env


WORKERS = ("auto", "thread", "process")


def env_factory(workers: str = "auto") -> Callable[[str], TextEnv]:
    """How pooled instances are built. "thread": in this process (their calls run in worker threads); "process": each
    in a child process of its own (envs/subprocess_env.py); "auto": a process for ALFWorld, whose Python-side PDDL
    engine serialises a process's instances, in-process for ScienceWorld, which already works in its own JVM."""
    if workers not in WORKERS:
        raise ValueError(f"environment workers {workers!r} is not one of {', '.join(WORKERS)}")

    def make(env: str) -> TextEnv:
        if workers == "process" or (workers == "auto" and env == "alfworld"):
            from openrlhf_epo.envs.subprocess_env import SubprocessEnv

            return SubprocessEnv(env)
        return make_env(env)

    return make


class EnvPool:
    def __init__(self, size: int, factory: Callable[[str], TextEnv] = make_env):
        if size < 1:
            raise ValueError(f"env pool size {size} must be >= 1")
        self.size, self.factory = size, factory
        self._idle: Dict[str, List[TextEnv]] = {}
        self._all: List[TextEnv] = []
        self._slots = None  # created on first use, inside the running loop
        self.created = 0

    @contextlib.asynccontextmanager
    async def lease(self, env_name: str):
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.size)
        async with self._slots:
            idle = self._idle.setdefault(env_name, [])
            if idle:
                instance = idle.pop()
            else:
                # A slot is free but no idle instance of this kind: retire an idle one of another kind to stay bounded.
                for other in self._idle.values():
                    if other:
                        retired = other.pop()
                        self._all.remove(retired)
                        await asyncio.to_thread(retired.close)
                        break
                instance = await asyncio.to_thread(self.factory, env_name)
                self._all.append(instance)
                self.created += 1
            try:
                yield instance
            finally:
                idle.append(instance)

    def close(self) -> None:
        for instance in self._all:
            instance.close()
        self._all.clear()
        self._idle.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


async def run_group(pool: EnvPool, spec: TaskSpec, n: int, engine: Any, tokenizer: Any, sampling_params: Any,
                    config: EpisodeConfig) -> List[Episode]:
    """n episodes of the same task instance (a GRPO group), concurrently."""

    async def one() -> Episode:
        async with pool.lease(spec.env) as env:
            return await run_episode(env, spec, engine, tokenizer, sampling_params, config)

    return list(await asyncio.gather(*(one() for _ in range(n))))
