"""GiGPO's advantages (agent/gigpo.py) against hand computations on scripted episodes with repeated states.

Every expected value below was worked out by hand from the GiGPO paper's equations (episode level eq. 3, discounted
step returns eq. 5, anchor-state step groups eq. 6 and 7, the sum eq. 8); the arithmetic is in the comments."""
import statistics

import pytest
import torch

from openrlhf_epo.agent.anchor_state import anchor_key
from openrlhf_epo.agent.gigpo import discounted_returns, gigpo_advantages


def _flatten(trajectories, group=0, first_id=0):
    """[(states, step rewards)] -> the per-sample columns, one sample per turn."""
    cols = {"ret": [], "r": [], "traj": [], "group": [], "t": [], "anchor": []}
    for i, (states, rewards) in enumerate(trajectories):
        for t, (state, r) in enumerate(zip(states, rewards)):
            cols["ret"].append(sum(rewards))
            cols["r"].append(r)
            cols["traj"].append(first_id + i)
            cols["group"].append(group)
            cols["t"].append(t)
            cols["anchor"].append(anchor_key(state))
    return cols


def _advantages(cols, **kw):
    return gigpo_advantages(torch.tensor(cols["ret"], dtype=torch.float64), torch.tensor(cols["r"]), cols["traj"],
                            cols["group"], cols["t"], cols["anchor"], **kw)


def test_a_state_revisited_inside_one_trajectory_and_states_shared_by_two_of_three():
    # T1 won in 4 turns, looping once in state b; T2 lost in 3; T3 won in 2. gamma 0.5, omega 1, norm mean.
    trajectories = [(["a", "b", "b", "c"], [0, 0, 0, 1]), (["a", "b", "d"], [0, 0, 0]), (["a", "e"], [0, 1])]
    adv, stats = _advantages(_flatten(trajectories), gamma=0.5, omega=1.0, norm="mean")
    # returns 1, 0, 1: mean 2/3, A_E = 1/3, -2/3, 1/3
    # G: T1 0.125 0.25 0.5 1; T2 0 0 0; T3 0.5 1
    # step group a = {0.125, 0, 0.5}, mean 5/24: A_S -1/12, -5/24, 7/24
    # step group b = {T1 t1 0.25, T1 t2 0.5, T2 t1 0}, mean 0.25: A_S 0, 0.25, -0.25; c, d, e alone: 0
    expected = [1 / 3 - 1 / 12, 1 / 3, 1 / 3 + 0.25, 1 / 3,
                -2 / 3 - 5 / 24, -2 / 3 - 0.25, -2 / 3,
                1 / 3 + 7 / 24, 1 / 3]
    assert adv.tolist() == pytest.approx(expected, abs=1e-9)
    assert stats["gigpo/shared_turn_share"] == pytest.approx(6 / 9)  # a and b: 6 of the 9 turns
    assert stats["gigpo/step_group_size"] == pytest.approx(9 / 5)  # 9 turns in 5 step groups


def test_std_normalisation_at_both_levels():
    # two trajectories sharing only their start state; gamma 1: G = 1, 1 and 0, 0
    trajectories = [(["a", "b"], [0, 1]), (["a", "c"], [0, 0])]
    adv, _ = _advantages(_flatten(trajectories), gamma=1.0, omega=1.0, norm="std")
    z = 0.5 / statistics.stdev([1.0, 0.0])  # (1 - 0.5) / std([1, 0]) at both levels (eps 1e-6 aside)
    assert adv.tolist() == pytest.approx([2 * z, z, -2 * z, -z], rel=1e-5)


def test_omega_weighs_the_step_level_and_penalties_enter_the_step_returns():
    # T2 took an invalid-output penalty of 0.1 on its turn 1: step rewards 0, -0.1; return -0.1
    trajectories = [(["a", "b"], [0, 1]), (["a", "b"], [0, -0.1])]
    adv, _ = _advantages(_flatten(trajectories), gamma=0.9, omega=0.5, norm="mean")
    # A_E: returns 1, -0.1, mean 0.45: 0.55, -0.55
    # G: T1 0.9, 1; T2 -0.09, -0.1. a = {0.9, -0.09} mean 0.405: 0.495, -0.495; b = {1, -0.1} mean 0.45: 0.55, -0.55
    expected = [0.55 + 0.5 * 0.495, 0.55 + 0.5 * 0.55, -0.55 - 0.5 * 0.495, -0.55 - 0.5 * 0.55]
    assert adv.tolist() == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("norm", ["mean", "std"])
def test_without_a_shared_state_gigpo_is_the_episode_level_baseline(norm):
    trajectories = [(["s1", "s2", "s3"], [0, 0, 1]), (["t1"], [0]), (["u1", "u2"], [0, 1])]
    adv, stats = _advantages(_flatten(trajectories), gamma=0.95, omega=1.0, norm=norm)
    returns = [1.0, 0.0, 1.0]
    m, sd = statistics.mean(returns), statistics.stdev(returns)
    per_traj = [(r - m) / (sd + 1e-6) if norm == "std" else r - m for r in returns]
    expected = [per_traj[i] for i, (states, _) in enumerate(trajectories) for _ in states]
    assert adv.tolist() == pytest.approx(expected, rel=1e-6)
    assert stats["gigpo/shared_turn_share"] == 0.0


def test_step_groups_never_cross_task_groups():
    # the same observation text in two groups (two task instances) is two states
    g0 = _flatten([(["a"], [1]), (["x"], [0])], group=0, first_id=0)
    g1 = _flatten([(["a"], [0]), (["y"], [0]), (["z"], [1])], group=1, first_id=2)
    cols = {k: g0[k] + g1[k] for k in g0}
    adv, stats = _advantages(cols, gamma=1.0, omega=1.0, norm="mean")
    assert adv.tolist() == pytest.approx([0.5, -0.5, -1 / 3, -1 / 3, 2 / 3])  # episode level only
    assert stats["gigpo/shared_turn_share"] == 0.0


def test_anchor_keys_match_observations_up_to_whitespace_only():
    assert anchor_key("You are in the kitchen.\n  A fridge.") == anchor_key(" You are in the kitchen. A fridge. ")
    assert anchor_key("You are in the kitchen.") != anchor_key("You are in the Kitchen.")
    assert 0 <= anchor_key("x") < 2 ** 56


def test_discounted_returns_by_hand():
    assert discounted_returns([0, 0, 1], 0.5) == [0.25, 0.5, 1.0]
    assert discounted_returns([-0.1, 0, 1], 1.0) == pytest.approx([0.9, 1.0, 1.0])


def test_bad_inputs_are_named():
    cols = _flatten([(["a", "b"], [0, 1]), (["a"], [0])])
    with pytest.raises(ValueError, match="norm 'max' is not one of mean, std"):
        _advantages(cols, norm="max")
    with pytest.raises(ValueError, match="gamma 1.5"):
        _advantages(cols, gamma=1.5)
    missing = {k: v[1:] for k, v in cols.items()}  # trajectory 0 lost its turn 0
    with pytest.raises(ValueError, match=r"trajectory 0 has turns \[1\], not 0..0"):
        _advantages(missing)
    twice = {k: v + v[:1] for k, v in cols.items()}
    with pytest.raises(ValueError, match="trajectory 0 has two samples of turn 0"):
        _advantages(twice)
    with pytest.raises(ValueError, match="anchors has 2 entries for 3 samples"):
        gigpo_advantages(torch.tensor(cols["ret"]), torch.tensor(cols["r"]), cols["traj"], cols["group"], cols["t"],
                         cols["anchor"][:2])
