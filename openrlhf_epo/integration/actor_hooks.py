"""The hooks the patch series calls from OpenRLHF's PPO code; each is a no-op while --actor.epo.enable is off
(epo_optimizer_windows also serves --actor.loss_agg_mode trajectory: trajectory_loss.py).

Driver (PPOTrainer.ppo_train)          epo_fit_kwargs         -> k (the driver's global step) and K for the actor
PolicyModelActor.fit                   epo_begin_step         -> the actor's EPO state learns k and K
PolicyModelActor.forward (old l.p.)    epo_old_forward_kwargs / epo_old_forward_result -> pi_theta_old's entropies
RemoteExperienceMaker.make_experience  epo_attach_old_entropy -> ... ride on the experience (action_entropy)
ActorPPOTrainer.ppo_train              epo_optimizer_windows  -> the window's trajectory count B (eq. 3 / 4 / 6)
                                       epo_end_step           -> W_{k+1} = W_k + {this step's batch mean}; metrics
ActorPPOTrainer.training_step          epo_forward_kwargs     -> the row-chunked entropy for the actor forward
                                       epo_shape_advantages   -> EA (Cheng et al. 2025), when configured
                                       epo_actor_loss         -> L_MT - lambda * [L_H - beta_k * L_smooth]
PolicyModelActor save / load           epo_checkpoint_state / epo_restore -> W_k rides in the DeepSpeed checkpoint

Per-turn samples carry `turn_index` and `num_turns` in `experience.info` (written by the agent loop); samples
without them are whole episodes whose turns are the runs of action tokens (aggregation.py).
"""
from functools import partial
from typing import Dict, Iterator, Optional

import torch

from openrlhf_epo.epo import (
    EntropyHistory,
    adaptive_beta,
    decayed_coef,
    entropy_shaped_advantages,
    epo_entropy_term,
    positions_in_turn,
    token_entropy,
    token_mean_weights,
    turn_ids_from_action_mask,
)
from openrlhf_epo.agent.samples import TURN_INDEX  # the per-sample turn index the agent loop writes
from openrlhf_epo.integration.data_parallel import all_reduce_max, all_reduce_sum, current_device
from openrlhf_epo.integration.flags import epo_config_from_args
from openrlhf_epo.integration.lr_schedule import rl_steps
from openrlhf_epo.integration.trajectory_loss import (
    counted_windows,
    trajectory_policy_loss,
    trajectory_weights,
    turn_counts,
    window_trajectories,
)

CHECKPOINT_KEY = "openrlhf_epo"


def epo_enabled(args) -> bool:
    epo = getattr(getattr(args, "actor", None), "epo", None)
    return bool(epo is not None and epo.enable)


class EPOState:
    """What the actor keeps across RL steps: the history W_k, the step k, K, and this step's entropy sums."""

    def __init__(self, args):
        self.config = epo_config_from_args(args)
        self.history = EntropyHistory(self.config.history, self.config.history_window)
        self.k = 0
        self.total_steps = self.config.total_steps or None
        self.passes = 0  # passes over this step's replay buffer (training epochs) begun
        self._reset_sums()

    def _reset_sums(self):
        # Device tensors, added to without a host sync per micro-batch; read once, after the update.
        self.sums: Dict[str, torch.Tensor] = {}
        self.turn_sums: Optional[torch.Tensor] = None  # (turns,) entropy sums per turn index
        self.turn_counts: Optional[torch.Tensor] = None

    def add(self, key: str, value: torch.Tensor) -> None:
        value = value.detach().double()
        self.sums[key] = self.sums[key] + value if key in self.sums else value

    @property
    def collecting(self) -> bool:
        # Each sample enters the step's sums once: in the first pass over the replay buffer (epoch 1).
        return self.passes <= 1

    def beta(self) -> float:
        c = self.config
        if c.beta_schedule == "constant":
            return c.beta_const
        if self.total_steps is None:
            raise RuntimeError(
                "--actor.epo.beta_schedule adaptive needs K, the run's number of RL steps: pass --actor.epo.total_steps"
            )
        return adaptive_beta(self.k, self.total_steps, c.beta_start, c.beta_end, c.beta_decay)

    def coef(self) -> float:
        c = self.config
        if c.coef_schedule == "decay":
            return decayed_coef(self.k, self.total_steps or 1, c.coef, c.coef_end)
        return c.coef


def epo_state(trainer) -> EPOState:
    state = getattr(trainer, "_epo_state", None)
    if state is None:
        state = trainer._epo_state = EPOState(trainer.args)
    return state


# ---------------------------------------------------------------------------------------------------------------------
# Driver and actor: the RL step
# ---------------------------------------------------------------------------------------------------------------------


def epo_fit_kwargs(ppo_trainer, global_steps: int) -> Dict:
    """Driver side: the RL step k (OpenRLHF's global step, restored on resume) and K, sent to the actor's fit."""
    args = ppo_trainer.args
    if not epo_enabled(args):
        return {}
    total = args.actor.epo.total_steps
    loader = getattr(ppo_trainer, "prompts_dataloader", None)
    if not total and loader is not None:
        total = rl_steps(len(loader), args)  # the loader yields one prompt at a time
    return {"epo_step": int(global_steps), "epo_total_steps": int(total) if total else None}


def epo_begin_step(trainer, epo_step: Optional[int] = None, epo_total_steps: Optional[int] = None) -> None:
    if not epo_enabled(trainer.args):
        return
    state = epo_state(trainer)
    if epo_step is not None:
        state.k = epo_step
    if epo_total_steps:
        state.total_steps = epo_total_steps
    state.passes = 0
    state._reset_sums()


def epo_optimizer_windows(trainer, micro_batches: Iterator) -> Iterator:
    """Wrap upstream's iter_grad_accum_global_norm for one pass over the replay buffer: count each optimizer-step
    window's trajectories B when eq. 3's weights need it (EPO's L_H / L_smooth with trajectory aggregation,
    --actor.loss_agg_mode trajectory; trajectory_loss.py), and note the pass (W_k's sums come from the first)."""
    epo_on = epo_enabled(trainer.args)
    if epo_on:
        epo_state(trainer).passes += 1
    if trajectory_policy_loss(trainer.args) or (epo_on and epo_state(trainer).config.aggregation == "trajectory"):
        return counted_windows(trainer, micro_batches)
    return micro_batches


def epo_end_step(trainer) -> Dict[str, float]:
    """After the update: all-reduce this step's entropy sums, append the batch mean to W_k, return epo/* metrics."""
    if not epo_enabled(trainer.args):
        return {}
    state = epo_state(trainer)
    hbar_used, beta_used, coef_used = state.history.hbar(), state.beta(), state.coef()
    device = current_device()
    n_turns = all_reduce_max(0 if state.turn_sums is None else state.turn_sums.numel(), trainer.strategy)
    keys = ("entropy", "tokens", "early", "early_n", "late", "late_n", "first", "first_n", "last", "last_n",
            "out_of_band", "band_tokens", "unit_mass", "h_weighted", "penalty_weighted", "train_entropy")
    flat = torch.zeros(len(keys) + 2 * n_turns, dtype=torch.float64, device=device)
    for i, key in enumerate(keys):
        if key in state.sums:
            flat[i] = state.sums[key].to(device)
    if state.turn_sums is not None:
        size = state.turn_sums.numel()
        flat[len(keys) : len(keys) + size] = state.turn_sums.to(device)
        flat[len(keys) + n_turns : len(keys) + n_turns + size] = state.turn_counts.to(device)
    reduced = all_reduce_sum(flat, trainer.strategy).tolist()
    sums = dict(zip(keys, reduced[: len(keys)]))
    turn_sums, turn_counts = reduced[len(keys) : len(keys) + n_turns], reduced[len(keys) + n_turns :]
    batch_mean = state.history.append(sums["entropy"], sums["tokens"], turn_sums, turn_counts)

    metrics = {
        "epo/k": float(state.k),
        "epo/beta": beta_used,
        "epo/coef": coef_used,
        "epo/hbar": float("nan") if hbar_used is None else hbar_used,
        "epo/batch_entropy": batch_mean,
        "epo/history_len": float(len(state.history)),
    }
    ratio = lambda a, b: sums[a] / sums[b] if sums[b] > 0 else float("nan")  # noqa: E731
    metrics["epo/entropy_early"] = ratio("early", "early_n")
    metrics["epo/entropy_late"] = ratio("late", "late_n")
    metrics["epo/entropy_first_tokens"] = ratio("first", "first_n")  # figure 7d
    metrics["epo/entropy_last_tokens"] = ratio("last", "last_n")
    metrics["epo/out_of_band_share"] = ratio("out_of_band", "band_tokens")
    metrics["epo/train_forward_entropy"] = ratio("train_entropy", "tokens")  # vs epo/batch_entropy: pi_old's
    metrics["epo/entropy_loss"] = ratio("h_weighted", "unit_mass")  # L_H of the step's batch (eq. 4)
    metrics["epo/smooth_loss"] = ratio("penalty_weighted", "unit_mass")  # L_smooth (eq. 6): 0 without a band yet
    for t in range(n_turns):
        if turn_counts[t] > 0:
            metrics[f"epo/entropy_turn_{t}"] = turn_sums[t] / turn_counts[t]
    state.k += 1  # a driver that sends k overrides this next step; a bare actor counts its own steps
    return metrics


# ---------------------------------------------------------------------------------------------------------------------
# The experience-making forward: the entropies of pi_theta_old, for W_k
# ---------------------------------------------------------------------------------------------------------------------
# W_k holds the mean entropy of each past batch under the policy that produced it (section 4.2). The training
# forward's entropies are those of a policy that has already taken optimizer steps on the batch's earlier
# mini-batches; the experience maker's actor forward (old log-probs: the weights the engines sampled with) holds the
# right logits, so its entropies at the action positions ride on the experience (`Experience.action_entropy`,
# patch 0002) at the cost of one entropy over the action positions, no second forward.


def epo_old_forward_kwargs(trainer, action_mask: torch.Tensor, attention_mask: torch.Tensor) -> Dict:
    """PolicyModelActor.forward's extra arguments of the actor call: with EPO on, return the output and the entropy
    at the action positions (as the training forward computes it)."""
    if not epo_enabled(trainer.args):
        return {}
    return {"return_output": True, "return_entropy": True,
            **epo_forward_kwargs(trainer, action_mask, attention_mask)}


def epo_old_forward_result(trainer, result, action_mask: torch.Tensor):
    """What PolicyModelActor.forward returns, on the CPU: the old log-probs (B, A), and with EPO on the pair
    (log-probs, entropies) (B, A) each."""
    if not epo_enabled(trainer.args):
        return result.to("cpu")
    log_probs, output = result
    return log_probs.to("cpu"), output.entropy[:, -action_mask.shape[1] :].float().to("cpu")


def epo_attach_old_entropy(args, samples_list, results) -> list:
    """The experience maker's side: set each micro-batch's `action_entropy` and return the old log-probs alone."""
    if not epo_enabled(args):
        return results
    log_probs = []
    for samples, (old_log_probs, entropy) in zip(samples_list, results):
        samples.action_entropy = entropy
        log_probs.append(old_log_probs)
    return log_probs


def rollout_policy_entropy(experience) -> torch.Tensor:
    """(B, A) entropies of pi_theta_old at the action positions, as the experience maker attached them."""
    entropy = getattr(experience, "action_entropy", None)
    if entropy is None:
        raise RuntimeError(
            "EPO's history W_k needs the entropies of the experience-making forward (Experience.action_entropy), "
            "which the patched PolicyModelActor.forward returns: is the openrlhf-epo series (patch 0002) applied to "
            "the OpenRLHF tree that runs the actors and the driver?"
        )
    return entropy.to(experience.action_mask.device)


# ---------------------------------------------------------------------------------------------------------------------
# The training step
# ---------------------------------------------------------------------------------------------------------------------


def epo_forward_kwargs(trainer, action_mask: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> Dict:
    """The actor forward's entropy function while EPO is on: exact, row-chunked, and over the action positions only
    (the training step discards the rest; per-turn prompts are several times longer than their responses)."""
    if not epo_enabled(trainer.args):
        return {}
    rows = trainer.args.actor.epo.entropy_chunk_size
    if not getattr(trainer.actor, "packing_samples", False):
        return {"entropy_fn": partial(tail_entropy, positions=action_mask.shape[1] + 1, chunk_rows=rows)}
    ring = getattr(trainer.strategy, "ring_attn_group", None)
    if attention_mask is None or ring is not None:
        # ring attention hands each rank a slice of the packed row: every position of it is computed
        return {"entropy_fn": partial(token_entropy, chunk_rows=rows)}
    return {"entropy_fn": partial(selected_entropy, positions=packed_action_positions(action_mask, attention_mask),
                                  chunk_rows=rows)}


def packed_action_positions(action_mask: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Packed samples (upstream's unpad: the attended tokens of every row, row after row): which positions' logits
    the training step reads, those predicting an action token (position p predicts token p + 1)."""
    width, actions = attention_mask.shape[1], action_mask.shape[1]
    needed = torch.zeros_like(attention_mask, dtype=torch.bool)
    needed[:, width - 1 - actions : width - 1] = action_mask.bool()
    return needed[attention_mask.bool()]


def selected_entropy(logits: torch.Tensor, positions: torch.Tensor, chunk_rows: int = 0) -> torch.Tensor:
    """(1, T) entropies of a packed row at `positions` (bool, T), zeros elsewhere (never read)."""
    where = positions.to(logits.device).nonzero(as_tuple=True)[0]
    values = token_entropy(logits[:, where], chunk_rows)
    return values.new_zeros(logits.shape[:2]).index_put((torch.zeros_like(where), where), values[0])


def tail_entropy(logits: torch.Tensor, positions: int, chunk_rows: int = 0) -> torch.Tensor:
    """(B, L) entropies with the last `positions` computed and zeros before them (never read by the training step)."""
    tail = token_entropy(logits[:, -positions:], chunk_rows)
    return torch.nn.functional.pad(tail, (logits.shape[1] - tail.shape[1], 0))


def epo_shape_advantages(trainer, advantages: torch.Tensor, output, action_mask: torch.Tensor) -> torch.Tensor:
    """EA (Cheng et al. 2025) when --actor.epo.ea_alpha > 0; the advantages themselves otherwise."""
    if not epo_enabled(trainer.args) or trainer.args.actor.epo.ea_alpha == 0:
        return advantages
    c = epo_state(trainer).config
    entropy = output.entropy[:, -action_mask.shape[1] :]
    return entropy_shaped_advantages(advantages, entropy, c.ea_alpha, c.ea_kappa) * action_mask


def _turn_layout(experience, action_mask: torch.Tensor):
    """Per token: its turn index and its trajectory's turn count, for per-turn samples or concatenated episodes."""
    turn_index = experience.info.get(TURN_INDEX)
    turn_index = None if turn_index is None else torch.as_tensor(turn_index)
    num_turns = turn_counts(experience)
    if turn_index is not None and num_turns is not None:
        shape = action_mask.shape
        return (turn_index.to(action_mask.device).long().unsqueeze(-1).expand(shape),
                num_turns.to(action_mask.device).long().unsqueeze(-1).expand(shape))
    turn_ids = turn_ids_from_action_mask(action_mask)
    total = (turn_ids.max(dim=-1, keepdim=True).values + 1).clamp(min=1)
    return turn_ids.clamp(min=0), total.expand_as(turn_ids)


def epo_actor_loss(trainer, experience, output, loss, loss_batch_info):
    """Return L_MT - lambda * [L_H - beta_k * L_smooth] (algorithm 1, line 17); `loss` itself while EPO is off."""
    if not epo_enabled(trainer.args):
        return loss
    state = epo_state(trainer)
    c = state.config
    mask = experience.action_mask
    entropy = output.entropy[:, -mask.shape[1] :]
    turn_of_token, turns_of_token = _turn_layout(experience, mask)
    dp_size = loss_batch_info["dp_size"]
    if c.aggregation == "token_mean":
        weights = token_mean_weights(mask, loss_batch_info["batch_num_tokens"], dp_size)
    else:
        weights = trajectory_weights(trainer, experience, dp_size)
    hbar = state.history.hbar() if c.history == "global" else state.history.hbar_per_turn(turn_of_token)
    term = epo_entropy_term(
        entropy, weights, mask, state.coef(), state.beta(), hbar, c.smoothing, c.smooth_coef, c.kappa_l, c.kappa_r
    )
    if state.collecting:
        _accumulate(state, rollout_policy_entropy(experience), mask, turn_of_token, turns_of_token, c.edge_tokens)
        # the training forward's entropy: the policy as it moves over the step's mini-batches (drift from W_k's)
        state.add("train_entropy", (entropy.detach().double() * mask).sum())
        if term.out_of_band is not None:  # the tokens this loss penalised
            state.add("out_of_band", term.out_of_band.sum())
            state.add("band_tokens", mask.sum())
        # L_H and L_smooth of the whole batch, for the logs: sums with the loss's own weights without their window
        # normaliser (B trajectories, or N tokens) and dp_size, divided once every micro-batch on every rank is in
        # (epo_end_step)
        window = loss_batch_info["batch_num_tokens"] if c.aggregation == "token_mean" else window_trajectories(trainer)
        unit = weights * (window / dp_size)
        state.add("unit_mass", unit.sum())
        state.add("h_weighted", (entropy.detach() * unit).sum())
        if term.penalty is not None:
            state.add("penalty_weighted", (term.penalty.detach() * unit).sum())
    return loss + term.delta


def _accumulate(state: EPOState, entropy, mask, turn_of_token, turns_of_token, edge_tokens: int) -> None:
    """The step's entropy sums: W_k's batch mean (section 4.2), per turn index, and the figures' token subsets."""
    m = mask.bool()
    h = entropy.double() * m
    state.add("entropy", h.sum())
    state.add("tokens", m.sum())
    # early = first half of a trajectory's turns, late = second half (figure 1's early / late trajectory steps)
    early = m & (turn_of_token.double() < turns_of_token.double() / 2)
    late = m & ~early
    state.add("early", (h * early).sum())
    state.add("early_n", early.sum())
    state.add("late", (h * late).sum())
    state.add("late_n", late.sum())
    # figure 7d: the first and the last `edge_tokens` response tokens of every turn
    position, length = positions_in_turn(mask)
    first = m & (position < edge_tokens)
    last = m & (position >= length - edge_tokens)
    state.add("first", (h * first).sum())
    state.add("first_n", first.sum())
    state.add("last", (h * last).sum())
    state.add("last_n", last.sum())
    # per turn index (one host sync for the bin count; everything else stays on the device)
    size = int(turns_of_token.max()) if turns_of_token.numel() else 1
    sums = torch.zeros(size, dtype=torch.float64, device=h.device).scatter_add_(0, turn_of_token.flatten(), h.flatten())
    counts = torch.zeros(size, dtype=torch.float64, device=h.device).scatter_add_(
        0, turn_of_token.flatten(), m.flatten().double()
    )
    if state.turn_sums is None:
        state.turn_sums, state.turn_counts = sums, counts
        return
    if state.turn_sums.numel() < size:
        grow = size - state.turn_sums.numel()
        state.turn_sums = torch.nn.functional.pad(state.turn_sums, (0, grow))
        state.turn_counts = torch.nn.functional.pad(state.turn_counts, (0, grow))
    state.turn_sums[:size] += sums
    state.turn_counts[:size] += counts


# ---------------------------------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------------------------------


def epo_checkpoint_state(trainer, client_states: Optional[Dict]) -> Dict:
    """client_states plus the EPO history and step, for strategy.save_ckpt."""
    client_states = dict(client_states or {})
    if epo_enabled(trainer.args):
        state = epo_state(trainer)
        client_states[CHECKPOINT_KEY] = {"history": state.history.state_dict(), "k": state.k}
    return client_states


def epo_restore(trainer, checkpoint_states: Optional[Dict]) -> None:
    """Restore W_k and k from a loaded checkpoint, so a resumed run computes the same Hbar and beta_k."""
    if not epo_enabled(trainer.args) or not checkpoint_states or CHECKPOINT_KEY not in checkpoint_states:
        return
    saved = checkpoint_states[CHECKPOINT_KEY]
    state = epo_state(trainer)
    state.history.load_state_dict(saved["history"])
    state.k = int(saved["k"])
