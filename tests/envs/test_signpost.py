"""The built-in Signpost environment (envs/signpost_env.py): the expert wins every instance in the optimal number of
turns, a uniformly random admissible agent wins as often as the binomial formula says (P(Bin(T, 1/paths) >=
clearings), written out here), a spec always gives the same trail, the splits do not share instances, and the
episode rules (a wrong path loops back, a non-admissible action does nothing, both cost a turn) hold."""
import math
import random

import pytest

from openrlhf_epo.envs.base import TaskSpec
from openrlhf_epo.envs.registry import make_env
from openrlhf_epo.envs.signpost_env import SignpostEnv, build_trail, random_success, signpost_task_specs
from openrlhf_epo.envs.task_check import spec_problem


def _play(env, spec, choose, max_turns):
    obs = env.reset(spec)
    actions, result, turns = obs.admissible, None, 0
    while turns < max_turns:
        result = env.step(choose(actions), with_admissible=True)
        turns += 1
        if result.done:
            break
        actions = result.admissible
    return result, turns


@pytest.mark.parametrize("split,clearings", [("train", 5), ("iid", 5), ("ood", 7)])
def test_the_expert_wins_every_instance_in_the_optimal_number_of_turns(split, clearings):
    env = make_env("signpost")
    for spec in signpost_task_specs(split, n=200, seed=1):
        env.reset(spec)
        plan = env.expert_plan()
        assert len(plan) == clearings
        for i, action in enumerate(plan):
            result = env.step(action)
            assert result.reward == (1.0 if i == clearings - 1 else 0.0)
        assert result.won and result.done and not result.info["truncated"]


def _binomial_tail(turns, q, needed):
    return sum(math.comb(turns, k) * q ** k * (1 - q) ** (turns - k) for k in range(needed, turns + 1))


@pytest.mark.parametrize("task,split,paths,clearings", [("trail", "iid", 3, 5), ("long-trail", "ood", 3, 7)])
def test_a_random_admissible_agent_wins_as_often_as_the_binomial_tail(task, split, paths, clearings):
    env, rng, turns, n = SignpostEnv(), random.Random(0), 10, 4000
    specs = signpost_task_specs(split, n=500, seed=2)
    wins = sum(_play(env, specs[i % len(specs)], rng.choice, turns)[0].won for i in range(n))
    expected = _binomial_tail(turns, 1 / paths, clearings)
    assert random_success(task, turns) == pytest.approx(expected, rel=1e-12)
    assert abs(wins / n - expected) < 4 * math.sqrt(expected * (1 - expected) / n) + 1e-3, (wins / n, expected)


def test_the_random_success_of_a_trail_is_in_the_range_a_learning_test_needs():
    assert 0.05 <= random_success("trail") <= 0.3  # 0.213 at the default 10 turns


def test_a_spec_always_gives_the_same_trail_and_instances_differ():
    spec = TaskSpec("signpost", "trail", variation=7, split="train", seed=3)
    assert build_trail(spec) == build_trail(TaskSpec.from_json(spec.to_json()))
    trails = {tuple(build_trail(s)) for s in signpost_task_specs("train", n=300)}
    assert len(trails) == 300


def test_train_and_iid_share_no_trail():
    train = {tuple(build_trail(s)) for s in signpost_task_specs("train", seed=0)}
    iid = {tuple(build_trail(s)) for s in signpost_task_specs("iid", seed=0)}
    assert len(train) == 10000 and len(iid) == 500 and not train & iid


def test_wrong_and_invalid_actions_cost_a_turn_and_change_nothing():
    env = SignpostEnv(max_turns=3)
    spec = TaskSpec("signpost", "trail", variation=0, split="iid")
    first = env.reset(spec)
    sign = env.expert_plan()[0]
    wrong = next(a for a in first.admissible if a != sign)
    looped = env.step(wrong, with_admissible=True)
    assert "loops back" in looped.observation and looped.admissible == first.admissible
    assert env.expert_plan()[0] == sign and looped.reward == 0.0 and not looped.done
    nothing = env.step("dance wildly")
    assert nothing.observation == "Nothing happens." and env.expert_plan()[0] == sign
    last = env.step(sign)
    assert last.done and last.info["truncated"] and not last.won  # three turns used, one clearing passed
    with pytest.raises(RuntimeError, match="is over; reset"):
        env.step(sign)


def test_the_observation_names_the_sign_and_the_paths_in_the_listed_order():
    env = SignpostEnv()
    obs = env.reset(TaskSpec("signpost", "trail", variation=4, split="train"))
    here = build_trail(TaskSpec("signpost", "trail", variation=4, split="train"))[0]
    assert obs.text.endswith(f"A signpost points {here.sign}.")
    assert obs.admissible == [f"go {d}" for d in here.paths]
    orders = {tuple(c.paths) for s in signpost_task_specs("train", n=100) for c in build_trail(s)}
    assert {frozenset(o) for o in orders} == {frozenset({"north", "east", "west"})}  # always the same three paths
    assert len(orders) == 6  # listed in every order
    assert obs.task == "Your task is to: follow the signposts to the end of the trail."


def test_bad_specs_are_named():
    assert spec_problem(TaskSpec("signpost", "trail", variation=10000, split="train")) == (
        "variation 10000 is outside the train split (0-9999)")
    with pytest.raises(ValueError, match="signpost task 'long-trail' is not in the train split"):
        signpost_task_specs("train", n=3, tasks=["long-trail"])
    with pytest.raises(ValueError, match="a scienceworld task spec given to the signpost environment"):
        SignpostEnv().reset(TaskSpec("scienceworld", "boil"))
