"""`--actor.loss_agg_mode trajectory` through the real, patched `train_ppo_ray` parser, and the hook's contract.
The loss and gradient against eq. 3 by hand are in test_actor_training_step.py."""
import sys
from pathlib import Path
from types import SimpleNamespace as NS

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "epo_testkit"))
from train_args import parse_train_ppo_args  # noqa: E402

from openrlhf_epo.integration.trajectory_loss import (  # noqa: E402
    TRAJECTORY_AGG,
    counted_windows,
    policy_loss_kwargs,
    window_trajectories,
)

BASE = ["--actor.model_name_or_path", "some/model", "--algo.advantage.estimator", "reinforce"]


def test_the_parser_offers_trajectory_beside_upstreams_modes():
    args = parse_train_ppo_args(BASE + ["--actor.loss_agg_mode", TRAJECTORY_AGG])
    assert args.actor.loss_agg_mode == TRAJECTORY_AGG
    assert parse_train_ppo_args(BASE).actor.loss_agg_mode == "token-mean"  # upstream's default stays


def test_dynamic_batching_is_refused_with_the_trajectory_mode(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_train_ppo_args(BASE + ["--actor.loss_agg_mode", TRAJECTORY_AGG, "--train.dynamic_batch_enable"])
    message = f"{exit_info.value}{capsys.readouterr().err}"
    assert "--actor.loss_agg_mode trajectory with --train.dynamic_batch_enable" in message
    assert "drop one of them" in message


def _trainer(mode, gas=1):
    return NS(args=NS(actor=NS(loss_agg_mode=mode)), strategy=NS(accumulated_gradient=gas))


def _experience(lengths, num_turns):
    mask = torch.zeros(len(lengths), max(lengths), dtype=torch.bool)
    for row, n in enumerate(lengths):
        mask[row, :n] = True
    # per-turn samples (a turn index marks them): each row one turn of its trajectory, in order
    return NS(action_mask=mask, info={"num_turns": torch.tensor(num_turns), "turn_index": torch.arange(len(lengths))})


def test_upstream_modes_get_no_weights():
    for mode in ("token-mean", "seq-mean-token-mean"):
        assert policy_loss_kwargs(_trainer(mode), _experience([2], [1]), {"dp_size": 1}) == {}


def test_weights_are_one_over_trajectories_turns_and_turn_length():
    # a window of two micro-batches (gas 2): trajectory A has 2 turns (lengths 3, 1), trajectory B 1 turn (length 2)
    trainer = _trainer(TRAJECTORY_AGG, gas=2)
    first, second = _experience([3, 1], [2, 2]), _experience([2], [1])
    stream = counted_windows(trainer, iter([(first, None), (second, None)]))
    weights = []
    for experience, _ in stream:
        weights.append(policy_loss_kwargs(trainer, experience, {"dp_size": 1})["token_weights"])
    # B = 2 trajectories, pre-divided by gas = 2 as upstream's token count is: 1 / (B/gas * T_j * |tau|)
    assert window_trajectories(trainer).item() == pytest.approx(1.0)
    torch.testing.assert_close(weights[0], torch.tensor([[1 / 6, 1 / 6, 1 / 6], [1 / 2, 0, 0]]))
    torch.testing.assert_close(weights[1], torch.tensor([[1 / 2, 1 / 2]]))
    # with the DeepSpeed step scaling each micro-batch by 1 / gas, each trajectory weighs 1/2 of the window's loss
    assert (weights[0].sum() + weights[1].sum()).item() / 2 == pytest.approx(1.0)


def test_weights_without_the_window_count_are_an_error():
    with pytest.raises(RuntimeError, match="trajectory count B is unknown"):
        policy_loss_kwargs(_trainer(TRAJECTORY_AGG), _experience([2], [1]), {"dp_size": 1})
