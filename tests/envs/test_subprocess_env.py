"""Environments in child processes (envs/subprocess_env.py): the same episodes as in-process, crashes named, no
process left behind."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from openrlhf_epo.agent.env_pool import env_factory
from openrlhf_epo.envs.alfworld_env import AlfWorldEnv
from openrlhf_epo.envs.base import EnvironmentError_
from openrlhf_epo.envs.subprocess_env import SubprocessEnv
from pipeline_run import alive  # tests/epo_testkit, on sys.path by conftest

pytestmark = pytest.mark.slow  # child interpreters import textworld / alfworld




def _transcript(env, spec, plan):
    first = env.reset(spec)
    out = [(first.text, first.task, first.admissible)]
    for action in plan + ["jump over the moon"]:
        result = env.step(action, True)
        out.append((result.observation, result.reward, result.done, result.won, result.admissible))
        if result.done:
            break
    return out


def test_a_child_plays_the_same_episode_as_the_parent(alfworld_game, monkeypatch):
    spec, plan, cache = alfworld_game("train", 5, "pick_clean_then_place_in_recep")
    monkeypatch.setenv("OPENRLHF_EPO_ALFWORLD_GAMES", str(cache))
    with AlfWorldEnv(cache_dir=cache) as local:
        expected = _transcript(local, spec, plan)
    with SubprocessEnv("alfworld") as remote:
        assert remote.pid != os.getpid() and alive(remote.pid)
        assert open(f"/proc/{remote.pid}/cmdline").read().startswith("openrlhf-epo::env-alfworld")  # as ps shows it
        got = _transcript(remote, spec, plan)
        assert remote.attribute("walkthrough") == plan
        pid = remote.pid
    assert got == expected and expected[-1][3] is True  # the plan wins, in both
    assert not alive(pid)


def test_a_crashed_child_is_named_and_errors_cross_the_pipe(alfworld_game):
    spec, plan, cache = alfworld_game("train", 5, "pick_clean_then_place_in_recep")
    env = SubprocessEnv("alfworld", cache_dir=cache)
    with pytest.raises(RuntimeError, match="step\\(\\) before reset\\(\\)"):  # the child's own error, re-raised
        env.step("look")
    env.reset(spec)
    os.kill(env.pid, signal.SIGKILL)
    with pytest.raises(EnvironmentError_, match=r"alfworld environment process \(pid \d+\) died during step "
                                                r"\(exit status -9\)"):
        env.step("look")
    env.close()
    with pytest.raises(RuntimeError, match="closed"):
        env.reset(spec)


def test_bad_construction_arguments_are_reported_by_the_parent():
    with pytest.raises(ValueError, match="max_turns=0 must be an integer >= 1"):
        SubprocessEnv("alfworld", max_turns=0)
    with pytest.raises(ValueError, match="environment 'nethack' is not one of alfworld, scienceworld"):
        SubprocessEnv("nethack")
    with pytest.raises(ValueError, match="environment workers 'gpu' is not one of auto, thread, process"):
        env_factory("gpu")


def test_the_child_exits_when_its_parent_is_killed(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(os.getcwd())!r})
        from openrlhf_epo.envs.subprocess_env import SubprocessEnv
        env = SubprocessEnv("alfworld")
        print(env.pid, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert alive(child)
    parent.kill()
    parent.wait()
    deadline = time.time() + 20
    while alive(child) and time.time() < deadline:
        time.sleep(0.2)
    assert not alive(child), "the environment process outlived its parent"


def test_auto_workers_put_alfworld_in_a_process_and_scienceworld_in_process():
    make = env_factory("auto")
    alf = make("alfworld")
    try:
        assert isinstance(alf, SubprocessEnv)
    finally:
        alf.close()
    from openrlhf_epo.envs.scienceworld_env import ScienceWorldEnv

    sw = make("scienceworld")
    try:
        assert isinstance(sw, ScienceWorldEnv)
    finally:
        sw.close()
