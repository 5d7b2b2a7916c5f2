"""Faults of real environments mid-episode: a killed ALFWorld child process, a killed ScienceWorld JVM, either one
frozen (SIGSTOP: it hangs, as a deadlocked simulator would), an environment that cannot be built. Each fails its
episode (never the caller), its instance is retired and killed, the pool builds a fresh one, and the next episode on
the same pool wins.

The scripted engine is the stand-in for vLLM (named as such): it plays the environment's own oracle (ALFWorld's
stored planner walkthrough, ScienceWorld's gold path) and, before answering turn `at`, injects the fault into the
instance the episode is playing on.
"""
import asyncio
import os
import re
import signal
import time
from types import SimpleNamespace as NS

import pytest

from openrlhf_epo.agent.env_pool import EnvPool, play_episode
from openrlhf_epo.agent.episode import EpisodeConfig
from openrlhf_epo.envs.base import TaskSpec
from openrlhf_epo.runtime.offline_models import qwen_tokenizer
from pipeline_run import alive  # tests/epo_testkit, on sys.path by conftest

pytestmark = pytest.mark.slow  # environment processes and JVMs

SW_TASK, SW_VARIATION = "find-living-thing", 3
PARAMS = NS(max_tokens=None, stop=None)


class OracleEngine:
    """Stand-in for a vLLM engine: answers turn t with the t-th oracle action; calls fault() before turn `at`."""

    def __init__(self, tokenizer, actions, at=None, fault=None):
        self.tokenizer, self.actions, self.at, self.fault = tokenizer, actions, at, fault

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        step = re.search(r"You are now at step (\d+)", self.tokenizer.decode(prompt_token_ids))
        turn = int(step.group(1)) - 1 if step else 0
        if turn == self.at and self.fault is not None:
            self.fault()
            self.fault = None
        text = f"<think>next</think><action>{self.actions[turn]}</action>"
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return NS(outputs=[NS(token_ids=ids, text=text, finish_reason="stop", logprobs=None)])



class Recording:
    """A pool factory that keeps every instance it built."""

    def __init__(self, build):
        self.build, self.built = build, []

    def __call__(self, name):
        instance = self.build(name)
        self.built.append(instance)
        return instance


def _play(pool, spec, engine, timeout=300.0):
    config = EpisodeConfig(history_length=2, env_timeout_s=timeout)
    return asyncio.run(play_episode(pool, spec, engine, engine.tokenizer, PARAMS, config))


@pytest.fixture(scope="module")
def alfworld(alfworld_game):
    spec, plan, cache = alfworld_game("train", 5, "pick_and_place_simple")
    return spec, plan, cache


@pytest.fixture(scope="module")
def gold(scienceworld_gold):
    return scienceworld_gold(SW_TASK, SW_VARIATION)


@pytest.mark.parametrize("fault", ["kill", "freeze"])
def test_a_failing_alfworld_process_fails_its_episode_and_is_replaced(alfworld, fault):
    from openrlhf_epo.envs.subprocess_env import SubprocessEnv

    spec, plan, cache = alfworld
    tokenizer = qwen_tokenizer()
    factory = Recording(lambda name: SubprocessEnv(name, cache_dir=cache))
    with EnvPool(1, factory) as pool:
        def inject():
            os.kill(factory.built[-1].pid, signal.SIGKILL if fault == "kill" else signal.SIGSTOP)

        started = time.monotonic()
        failed = _play(pool, spec, OracleEngine(tokenizer, plan, at=1, fault=inject), timeout=4.0)
        elapsed = time.monotonic() - started
        assert failed.failed and not failed.won and len(failed.turns) <= 1
        if fault == "kill":
            assert "died during step" in failed.error
        else:
            assert "did not answer step within 4 s (--agent.env_timeout_s); it was killed" in failed.error
            assert elapsed < 4.0 + 15  # the timeout bounded the hang
        first = factory.built[0]
        assert pool.retired == 1 and not alive(first.pid)  # retired and killed, even when frozen
        again = _play(pool, spec, OracleEngine(tokenizer, plan))
        assert again.won and not again.failed
        assert pool.created == 2 and factory.built[1].pid != first.pid  # a fresh instance, not the dead one
    assert not alive(factory.built[1].pid)  # the pool closed it


@pytest.mark.parametrize("fault", ["kill", "freeze"])
def test_a_failing_scienceworld_jvm_fails_its_episode_and_is_replaced(gold, fault):
    from openrlhf_epo.envs.scienceworld_env import ScienceWorldEnv

    spec = TaskSpec("scienceworld", SW_TASK, SW_VARIATION, "train")
    tokenizer = qwen_tokenizer()
    factory = Recording(lambda name: ScienceWorldEnv())  # in-process: the JVM is its child
    with EnvPool(1, factory) as pool:
        first_jvm = []

        def inject():
            first_jvm.append(factory.built[-1].java_pid)
            os.kill(first_jvm[0], signal.SIGKILL if fault == "kill" else signal.SIGSTOP)

        failed = _play(pool, spec, OracleEngine(tokenizer, gold, at=2, fault=inject), timeout=5.0)
        assert failed.failed and not failed.won
        expected = "the JVM died" if fault == "kill" else "did not answer step within 5 s"
        assert expected in failed.error, failed.error
        assert pool.retired == 1 and not alive(first_jvm[0])
        again = _play(pool, spec, OracleEngine(tokenizer, gold))
        assert again.won and pool.created == 2 and factory.built[1].java_pid != first_jvm[0]


def test_an_environment_that_cannot_be_built_fails_its_episode():
    from openrlhf_epo.envs.scienceworld_env import ScienceWorldEnv

    spec = TaskSpec("scienceworld", SW_TASK, SW_VARIATION, "train")
    tokenizer = qwen_tokenizer()
    with EnvPool(1, lambda name: ScienceWorldEnv(java_options=["-Xmx1k"])) as pool:  # too small a heap to start
        episode = _play(pool, spec, OracleEngine(tokenizer, ["look around"]))
    assert episode.failed and episode.turns == []
    assert "the ScienceWorld JVM did not start" in episode.error and pool.created == 0


def _children_of_me():
    me, found = str(os.getpid()), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1] == me:
                found.append(int(pid))
        except OSError:
            continue
    return found


def test_an_environment_that_hangs_while_starting_is_killed(alfworld):
    """A JVM paused at startup (HotSpot's own -XX:+PauseAtStartup) and an ALFWorld child frozen as soon as it is
    spawned: each is killed at its start timeout, and the episode fails with that reason."""
    import threading

    from openrlhf_epo.envs.scienceworld_env import DEFAULT_JAVA_OPTIONS, ScienceWorldEnv
    from openrlhf_epo.envs.subprocess_env import SubprocessEnv

    spec = TaskSpec("scienceworld", SW_TASK, SW_VARIATION, "train")
    paused = [*DEFAULT_JAVA_OPTIONS, "-XX:+UnlockDiagnosticVMOptions", "-XX:+PauseAtStartup"]
    started = time.monotonic()
    with EnvPool(1, lambda name: ScienceWorldEnv(java_options=paused, start_timeout=3.0)) as pool:
        episode = _play(pool, spec, OracleEngine(qwen_tokenizer(), ["look around"]), timeout=3.0)
    assert episode.failed and "the ScienceWorld JVM did not start within 3 s; it was killed" in episode.error
    assert time.monotonic() - started < 3.0 + 20
    assert not [pid for pid in _children_of_me() if "java" in open(f"/proc/{pid}/cmdline").read()
                and alive(pid)]

    before, frozen, stop = set(_children_of_me()), [], threading.Event()

    def freeze_the_new_child():
        while not stop.is_set() and not frozen:
            for pid in set(_children_of_me()) - before:
                os.kill(pid, signal.SIGSTOP)
                frozen.append(pid)
            time.sleep(0.01)

    watcher = threading.Thread(target=freeze_the_new_child, daemon=True)
    watcher.start()
    try:
        with pytest.raises(Exception) as hung:
            SubprocessEnv("alfworld", start_timeout=3.0, cache_dir=alfworld[2])
    finally:
        stop.set()
        watcher.join()
    assert frozen and "did not start within 3 s; it was killed" in str(hung.value)
    time.sleep(0.5)
    assert not alive(frozen[0])


def test_an_instance_that_died_while_idle_is_never_leased(alfworld):
    from openrlhf_epo.envs.subprocess_env import SubprocessEnv

    spec, plan, cache = alfworld
    tokenizer = qwen_tokenizer()
    factory = Recording(lambda name: SubprocessEnv(name, cache_dir=cache))
    with EnvPool(1, factory) as pool:
        assert _play(pool, spec, OracleEngine(tokenizer, plan)).won
        os.kill(factory.built[0].pid, signal.SIGKILL)  # between two episodes
        time.sleep(0.5)
        again = _play(pool, spec, OracleEngine(tokenizer, plan))
        assert again.won and pool.created == 2 and pool.retired == 1
