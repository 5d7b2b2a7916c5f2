"""Eq. 4-7 against explicit loops over trajectories, turns and tokens (not the vectorised code under test)."""
import math

import pytest
import torch

from openrlhf_epo.epo import (
    EntropyHistory,
    adaptive_beta,
    decayed_coef,
    entropy_shaped_advantages,
    epo_entropy_term,
    smoothing_penalty,
    trajectory_mass,
    trajectory_token_weights,
    turn_ids_from_action_mask,
)


def _loop_eq4(values, mask, samples):
    """(1/B) sum_j (1/T_j) sum_t (1/|tau_jt|) sum_i x_jti, with samples = [(traj, turn)] per row (per-turn layout)."""
    trajectories = {}
    for row, (traj, turn) in enumerate(samples):
        tokens = [values[row][i].item() for i in range(len(mask[row])) if mask[row][i]]
        trajectories.setdefault(traj, {})[turn] = sum(tokens) / len(tokens)
    total = 0.0
    for turns in trajectories.values():
        total += sum(turns.values()) / len(turns)
    return total / len(trajectories)


def _per_turn_batch():
    # trajectory 0: 3 turns, trajectory 1: 1 turn, trajectory 2: 2 turns; turns of different lengths
    samples = [(0, 0), (0, 1), (0, 2), (1, 0), (2, 0), (2, 1)]
    lengths = [2, 5, 1, 4, 3, 6]
    mask = torch.zeros(len(samples), 7, dtype=torch.bool)
    for row, n in enumerate(lengths):
        mask[row, 7 - n :] = True  # left-padded responses are right-aligned in OpenRLHF
    num_turns = torch.tensor([{0: 3, 1: 1, 2: 2}[traj] for traj, _ in samples])
    return samples, mask, num_turns


def test_eq4_per_turn_samples():
    samples, mask, num_turns = _per_turn_batch()
    values = torch.rand(mask.shape)
    b = trajectory_mass(mask, num_turns)
    assert b.item() == pytest.approx(3.0)  # three whole trajectories
    weights = trajectory_token_weights(mask, num_turns, b)
    assert (weights * values).sum().item() == pytest.approx(_loop_eq4(values, mask, samples), rel=1e-6)


def test_eq4_concatenated_episodes_take_turns_from_action_runs():
    # row 0: turns of 2, 1, 3 tokens separated by observation tokens; row 1: one turn of 4 tokens
    mask = torch.tensor([[0, 1, 1, 0, 0, 1, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]], dtype=torch.bool)
    values = torch.rand(mask.shape)
    ids = turn_ids_from_action_mask(mask)
    assert ids.tolist() == [[-1, 0, 0, -1, -1, 1, -1, 2, 2, 2], [-1, -1, -1, -1, -1, -1, 0, 0, 0, 0]]
    expected = ((values[0, 1:3].mean() + values[0, 5] + values[0, 7:].mean()) / 3 + values[1, 6:].mean()) / 2
    weights = trajectory_token_weights(mask, None, trajectory_mass(mask))
    assert (weights * values).sum().item() == pytest.approx(expected.item(), rel=1e-6)


def test_short_turns_weigh_as_much_as_long_ones():
    samples, mask, num_turns = _per_turn_batch()
    weights = trajectory_token_weights(mask, num_turns, trajectory_mass(mask, num_turns))
    per_turn = weights.sum(-1)  # each turn of trajectory j carries 1 / (B * T_j)
    for row, (traj, _) in enumerate(samples):
        assert per_turn[row].item() == pytest.approx(1 / (3 * num_turns[row].item()))


def test_eq5_hinge_and_mask_values():
    h = torch.tensor([0.1, 0.5, 1.0, 2.5, 4.0])
    hbar, kl, kr, alpha = 1.0, 0.3, 2.0, 0.1
    hinge = smoothing_penalty(h, hbar, kl, kr, alpha, "hinge")
    expected = [alpha * (max(0, kl * hbar - x) + max(0, x - kr * hbar)) for x in h.tolist()]
    torch.testing.assert_close(hinge, torch.tensor(expected))
    mask = smoothing_penalty(h, hbar, kl, kr, alpha, "mask")
    assert mask.tolist() == pytest.approx([alpha if (x < kl * hbar or x > kr * hbar) else 0.0 for x in h.tolist()])


def test_smoothing_penalty_has_gradient_exactly_outside_band():
    h = torch.tensor([0.1, 0.5, 1.0, 1.9, 2.5, 4.0], requires_grad=True)
    smoothing_penalty(h, 1.0, 0.3, 2.0, 0.1, "hinge").sum().backward()
    outside = [x < 0.3 or x > 2.0 for x in h.tolist()]
    assert [g != 0 for g in h.grad.tolist()] == outside
    assert h.grad.tolist() == pytest.approx([-0.1 if x < 0.3 else (0.1 if x > 2.0 else 0.0) for x in h.tolist()])

    h2 = h.detach().clone().requires_grad_()
    penalty = smoothing_penalty(h2, 1.0, 0.3, 2.0, 0.1, "mask")
    assert not penalty.requires_grad  # definition 9: a constant, no gradient anywhere


def test_epo_term_combines_eq4_to_eq6_as_algorithm_1_line_17():
    samples, mask, num_turns = _per_turn_batch()
    torch.manual_seed(1)
    entropy = (torch.rand(mask.shape) * 3).requires_grad_()
    weights = trajectory_token_weights(mask, num_turns, trajectory_mass(mask, num_turns))
    coef, beta, hbar, alpha, kl, kr = 0.001, 1.7, 1.2, 0.05, 0.0, 2.0
    term = epo_entropy_term(entropy, weights, mask, coef, beta, hbar, "hinge", alpha, kl, kr)
    l_h = _loop_eq4(entropy.detach(), mask, samples)
    penalty = alpha * (torch.relu(kl * hbar - entropy.detach()) + torch.relu(entropy.detach() - kr * hbar))
    l_smooth = _loop_eq4(penalty, mask, samples)
    assert term.entropy_loss.item() == pytest.approx(l_h, rel=1e-6)
    assert term.smooth_loss.item() == pytest.approx(l_smooth, rel=1e-6)
    assert term.delta.item() == pytest.approx(-coef * (l_h - beta * l_smooth), rel=1e-6)
    # k = 0: the window is empty and L_smooth = 0 (algorithm 1, lines 9-14)
    first = epo_entropy_term(entropy, weights, mask, coef, beta, None, "hinge", alpha, kl, kr)
    assert first.smooth_loss.item() == 0.0 and first.delta.item() == pytest.approx(-coef * l_h, rel=1e-6)


def _eq7(k, K, bs, be, ld):
    k_mid = K // 2
    if k <= k_mid:
        return bs + (1 - bs) * (1 - math.exp(-ld * k / k_mid))
    return 1 + (be - 1) * (1 - math.exp(-ld * (k - k_mid) / (K - k_mid)))


def test_eq7_beta_schedule():
    assert adaptive_beta(0, 150) == 2.0
    assert adaptive_beta(75, 150) == pytest.approx(2 - (1 - math.exp(-3)))  # ~1.05 at k_mid
    assert adaptive_beta(149, 150) == pytest.approx(1.0)  # beta_end = 1: exactly 1 after k_mid
    for k in [1, 10, 60, 76, 100, 124]:
        assert adaptive_beta(k, 125, 2.0, 0.5, 3.0) == pytest.approx(_eq7(k, 125, 2.0, 0.5, 3.0))
    assert adaptive_beta(0, 1) == 2.0  # K = 1: k_mid = 0, the only step is k = 0


def test_epo_decay_coef():
    assert decayed_coef(0, 100, 0.01, 0.001) == pytest.approx(0.01)
    assert decayed_coef(99, 100, 0.01, 0.001) == pytest.approx(0.001)
    assert decayed_coef(33, 100, 0.01, 0.001) == pytest.approx(0.01 * 0.1 ** (33 / 99))


def test_history_global_per_turn_and_window():
    history = EntropyHistory("per_turn", window=2)
    assert history.hbar() is None
    history.append(10.0, 10.0, [6.0, 4.0], [4.0, 6.0])  # step means 1.0; turn 0: 1.5, turn 1: 0.667
    history.append(30.0, 10.0, [30.0], [10.0])  # 3.0; turn 0: 3.0
    history.append(20.0, 10.0, [8.0, 12.0], [4.0, 6.0])  # 2.0; turn 0: 2.0, turn 1: 2.0
    assert history.hbar() == pytest.approx((3.0 + 2.0) / 2)  # the window keeps the last two steps
    per_turn = history.hbar_per_turn(torch.tensor([0, 1, 5]))
    assert per_turn.tolist() == pytest.approx([(3.0 + 2.0) / 2, 2.0, 2.5])  # turn 5 unseen: global Hbar
    restored = EntropyHistory("per_turn", window=2)
    restored.load_state_dict(history.state_dict())
    assert restored.hbar_per_turn(torch.tensor([0, 1])).tolist() == per_turn[:2].tolist()
    everything = EntropyHistory("global")
    everything.load_state_dict(history.state_dict())
    assert everything.hbar() == pytest.approx(2.0)


def test_ea_advantage_shaping():
    adv = torch.tensor([1.0, -1.0, 0.2, -0.05])
    h = torch.tensor([0.5, 3.0, 3.0, 0.1], requires_grad=True)
    shaped = entropy_shaped_advantages(adv, h, alpha=0.4, kappa=2.0)
    expected = [a + min(0.4 * e, abs(a) / 2) for a, e in zip(adv.tolist(), h.tolist())]
    assert shaped.tolist() == pytest.approx(expected)
    assert not shaped.requires_grad  # the entropy is detached
    assert (torch.sign(shaped) == torch.sign(adv)).all()  # the clip never flips an advantage


def test_positions_in_turn_count_inside_each_run_of_action_tokens():
    from openrlhf_epo.epo import positions_in_turn

    g = torch.Generator().manual_seed(3)
    mask = torch.rand(6, 40, generator=g) < 0.6  # rows with several runs (concatenated episodes) of any length
    position, length = positions_in_turn(mask)
    for row in range(mask.shape[0]):
        runs, current = [], []
        for i in range(mask.shape[1]):
            if mask[row, i]:
                current.append(i)
            elif current:
                runs.append(current)
                current = []
        if current:
            runs.append(current)
        want_pos, want_len = [0] * mask.shape[1], [0] * mask.shape[1]
        for run in runs:
            for offset, i in enumerate(run):
                want_pos[i], want_len[i] = offset, len(run)
        assert position[row].tolist() == want_pos and length[row].tolist() == want_len
