"""How per-token values (entropies, penalties) become one scalar: eq. 4 and eq. 6, or a plain token mean.

Every aggregation here is a weighted sum  L = sum_{s,i} W[s,i] * x[s,i]  with token weights W built once per
micro-batch, so L_H and L_smooth share them and the loss stays exact under micro-batching and data parallelism.

Eq. 4 / 6 weigh token i of turn t of trajectory j by 1 / (B * T_j * |tau_{j,t}|). Two sample layouts carry the turns:
- per-turn samples (the paper's setting): each sample is one turn; `num_turns` gives T_j of its trajectory.
- concatenated episodes (upstream's MultiTurnAgentExecutor): one sample per trajectory; each maximal run of action
  tokens is one turn (the runs are the episode's action ranges; environment tokens between them are masked out).

Normalisation follows upstream's `aggregate_loss`: B is counted over the whole optimizer-step window on all
data-parallel ranks (the caller passes it pre-divided by the gradient-accumulation steps, as upstream does), and the
result is multiplied by dp_size because DeepSpeed averages gradients across ranks. For per-turn samples B is the
trajectory mass of the window, sum over its samples of 1 / T_j: exactly the number of trajectories when the window
holds whole trajectories, and a proper weighted mean of turn means when a shuffle splits one across windows.
"""
from typing import Optional

import torch


def turn_ids_from_action_mask(action_mask: torch.Tensor) -> torch.Tensor:
    """Per token: the index of its turn (0, 1, ...) within its row, -1 outside action tokens."""
    mask = action_mask.bool()
    previous = torch.zeros_like(mask)
    previous[:, 1:] = mask[:, :-1]
    starts = mask & ~previous
    return torch.where(mask, starts.long().cumsum(dim=1) - 1, torch.full_like(mask, -1, dtype=torch.long))


def positions_in_turn(action_mask: torch.Tensor):
    """(position, length) per token: its 0-based index inside its run of action tokens (its turn's response) and that
    run's length; both 0 outside action tokens."""
    mask = action_mask.bool()
    counted = mask.long().cumsum(dim=1)  # action tokens so far in the row
    previous = torch.zeros_like(mask)
    previous[:, 1:] = mask[:, :-1]
    starts = mask & ~previous
    before_run = torch.where(starts, counted - 1, torch.zeros_like(counted)).cummax(dim=1).values
    position = torch.where(mask, counted - 1 - before_run, torch.zeros_like(counted))
    turn_ids = turn_ids_from_action_mask(action_mask)
    slots = (turn_ids + 1).clamp(min=0)
    lengths = torch.zeros(mask.shape[0], int(slots.max().item()) + 1 if slots.numel() else 1, dtype=torch.long,
                          device=mask.device).scatter_add_(1, slots, mask.long())
    length = torch.where(mask, lengths.gather(1, slots), torch.zeros_like(counted))
    return position, length


def trajectory_mass(action_mask: torch.Tensor, num_turns: Optional[torch.Tensor] = None) -> torch.Tensor:
    """This micro-batch's share of B: sum of 1 / T_j over per-turn samples, or the number of non-empty episodes."""
    nonempty = (action_mask.reshape(action_mask.shape[0], -1).sum(-1) > 0).float()
    if num_turns is None:
        return nonempty.sum()
    return (nonempty / num_turns.float().clamp(min=1)).sum()


def trajectory_token_weights(
    action_mask: torch.Tensor,
    num_turns: Optional[torch.Tensor],
    window_trajectories: torch.Tensor,
    dp_size: int = 1,
) -> torch.Tensor:
    """W of eq. 4 / 6: 1 / (B * T_j * |tau_{j,t}|) on action tokens, 0 elsewhere (times dp_size)."""
    mask = action_mask.float()
    if num_turns is not None:  # one turn per sample
        turn_len = mask.sum(-1, keepdim=True).clamp(min=1)
        weights = mask / (turn_len * num_turns.float().clamp(min=1).unsqueeze(-1))
    else:  # one trajectory per sample, turns = runs of action tokens
        turn_ids = turn_ids_from_action_mask(action_mask)
        n_slots = int(turn_ids.max().item()) + 2 if turn_ids.numel() else 1
        slots = (turn_ids + 1).clamp(min=0)  # slot 0 collects the non-action tokens
        lengths = torch.zeros(mask.shape[0], n_slots, dtype=mask.dtype, device=mask.device)
        lengths.scatter_add_(1, slots, mask)
        turns = (lengths[:, 1:] > 0).sum(-1, keepdim=True).clamp(min=1).float()
        weights = mask / (lengths.gather(1, slots).clamp(min=1) * turns)
    return weights / window_trajectories * dp_size


def token_mean_weights(action_mask: torch.Tensor, window_tokens: torch.Tensor, dp_size: int = 1) -> torch.Tensor:
    """A plain token mean over the window (upstream's entropy bonus): 1 / N_tokens on action tokens."""
    return action_mask.float() / window_tokens * dp_size


def weighted_sum(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (values * weights).sum()
