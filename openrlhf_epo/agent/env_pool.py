"""A bounded pool of environment instances, reused across episodes, and groups of episodes on one task instance.

Starting an environment is expensive (a JVM for ScienceWorld, a PDDL library for ALFWorld) and their number must stay
bounded on a shared node, so episodes lease an instance, reset it to their own task spec, and give it back. All live
episodes run concurrently on one event loop; an episode waiting for a free instance does not block the others.

An instance whose episode failed (it crashed, hung past --agent.env_timeout_s or raised) is retired: killed, dropped,
never leased again; the next lease builds a fresh one. An instance that cannot even be built fails its episode too.
"""
import asyncio
import contextlib
from typing import Any, Callable, Dict, List, Optional

from openrlhf_epo.agent.episode import Episode, EpisodeConfig, run_episode
from openrlhf_epo.envs.base import EnvironmentError_, EnvTimeout, TaskSpec, TextEnv
from openrlhf_epo.envs.registry import make_env


WORKERS = ("auto", "thread", "process")


def check_pool(size: Optional[int] = None, workers: Optional[str] = None) -> None:
    """The one check of the pool settings given (AgentConfig at flag time, the pool and its factory): a size of at
    least one instance, a known kind of worker."""
    if size is not None and size < 1:
        raise ValueError(f"env pool size {size} must be >= 1")
    if workers is not None and workers not in WORKERS:
        raise ValueError(f"environment workers {workers!r} is not one of {', '.join(WORKERS)}")


def env_factory(workers: str = "auto", start_timeout: Optional[float] = None) -> Callable[[str], TextEnv]:
    """How pooled instances are built. "thread": in this process (their calls run in worker threads); "process": each
    in a child process of its own (envs/subprocess_env.py); "auto": a process for ALFWorld, whose Python-side PDDL
    engine serialises a process's instances, in-process for ScienceWorld, which already works in its own JVM.
    start_timeout: a child process or JVM that has not started within it is killed (EnvTimeout)."""
    check_pool(workers=workers)

    def make(env: str) -> TextEnv:
        if workers == "process" or (workers == "auto" and env == "alfworld"):
            from openrlhf_epo.envs.subprocess_env import SubprocessEnv

            return SubprocessEnv(env, start_timeout=start_timeout)
        return make_env(env, start_timeout=start_timeout) if env == "scienceworld" else make_env(env)

    return make


class EnvPool:
    def __init__(self, size: int, factory: Callable[[str], TextEnv] = make_env):
        check_pool(size=size)
        self.size, self.factory = size, factory
        self._idle: Dict[str, List[TextEnv]] = {}
        self._all: List[TextEnv] = []
        self._slots = None  # created on first use, inside the running loop
        self._retired: List[TextEnv] = []
        self.created = self.retired = 0

    def retire(self, instance: TextEnv) -> None:
        """Mark a leased instance as broken: at the end of its lease it is killed and dropped, not put back."""
        self._retired.append(instance)

    @contextlib.asynccontextmanager
    async def lease(self, env_name: str, build_timeout: float = 300.0):
        """An instance of `env_name` for the duration of the block (built within build_timeout seconds)."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.size)
        async with self._slots:
            idle = self._idle.setdefault(env_name, [])
            while idle and not idle[-1].alive():  # died while idle (killed, out of memory): dropped, not leased
                dead = idle.pop()
                self._all.remove(dead)
                self.retired += 1
                await asyncio.to_thread(dead.kill)
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
                instance = await _build(self.factory, env_name, build_timeout)
                self._all.append(instance)
                self.created += 1
            try:
                yield instance
            finally:
                if instance in self._retired:
                    self._retired.remove(instance)
                    self._all.remove(instance)
                    self.retired += 1
                    await asyncio.to_thread(instance.kill)
                else:
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


async def _build(factory: Callable[[str], TextEnv], env_name: str, timeout: float) -> TextEnv:
    """factory(env_name) in a worker thread, bounded like every environment call. The factory's own start timeout
    (env_factory) kills a child or JVM that does not start; this bound is the backstop for others, whose build is
    left to finish and its instance closed (there is nothing to kill yet)."""
    build = asyncio.ensure_future(asyncio.to_thread(factory, env_name))
    done, _ = await asyncio.wait([build], timeout=2 * timeout)
    if build not in done:
        build.add_done_callback(lambda f: f.exception() or f.result().close())
        raise EnvTimeout(f"building a {env_name} environment took longer than {2 * timeout:g} s (twice "
                         "--agent.env_timeout_s)")
    try:
        return build.result()
    except EnvironmentError_:
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. a JVM that does not start: named as an environment failure
        raise EnvironmentError_(f"building a {env_name} environment failed: {type(exc).__name__}: {exc}") from exc


async def play_episode(pool: EnvPool, spec: TaskSpec, engine: Any, tokenizer: Any, sampling_params: Any,
                       config: EpisodeConfig, stream: bool = False) -> Episode:
    """One episode of `spec` on a leased instance. A failed environment (crashed, hung, raised, unbuildable) fails
    the episode (`episode.error`), never the caller; its instance is retired. Engine errors propagate."""
    try:
        async with pool.lease(spec.env, build_timeout=config.env_timeout_s) as env:
            episode = await run_episode(env, spec, engine, tokenizer, sampling_params, config, stream=stream)
            if episode.failed:
                pool.retire(env)
            return episode
    except EnvironmentError_ as exc:  # run_episode keeps its own: only the build raises one out of the lease
        return Episode(spec=spec, task="", success_reward=config.success_reward, error=str(exc))


async def play_groups(pool: EnvPool, specs: List[TaskSpec], n: int, engine: Any, tokenizer: Any, sampling_params: Any,
                      config: EpisodeConfig, stream: bool = False,
                      on_episode: Optional[Callable[[], None]] = None) -> List[List[Episode]]:
    """n episodes of each task instance (a GRPO group; eval's n samples of a line), all launched at once: the pool's
    size bounds how many play at the same time. on_episode() is called as each one ends (a progress bar)."""
    async def one(spec: TaskSpec) -> Episode:
        episode = await play_episode(pool, spec, engine, tokenizer, sampling_params, config, stream=stream)
        if on_episode is not None:
            on_episode()
        return episode

    flat = await asyncio.gather(*(one(spec) for spec in specs for _ in range(n)))
    return [list(flat[i * n:(i + 1) * n]) for i in range(len(specs))]
