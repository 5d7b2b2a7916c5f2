"""Per-turn samples balanced across data-parallel ranks, with a loss that stays exact.

An RL step's per-turn sample count S depends on how many turns its episodes lasted, so upstream's even split
(`RayActorGroup.async_run_method_batch`: chunks of ceil(n / ranks)) gives ranks different numbers of forwards,
micro-batches and optimizer windows. Under ZeRO-3 every forward all-gathers parameters collectively, and the training
step all-reduces its normalisers per micro-batch: a rank with one micro-batch fewer leaves the others waiting forever.

Two places fix that, both on the driver and both no-ops for samples without group ids (upstream's own runs):
- experience making (`split_for_ranks`): the S samples form M micro-batches, M a multiple of every model group's
  data-parallel size and rows as even as possible (at most `rollout.micro_batch_size` each, one more only when
  micro-batches of 1 meet an S that is not a multiple of the ranks), so every rank runs the same number of log-prob /
  value forwards. No sample is added or dropped.
- training (`pad_for_ranks`): the samples are dealt to the ranks by length (upstream's long / short interleave, so
  ranks also get similar token counts), and every rank is filled up to the same count T / ranks, where T is S rounded
  up to a multiple of `train.batch_size`: each rank then runs the same micro-batches in whole optimizer windows
  (a partial window would leave its gradient in DeepSpeed's accumulation buffer for the next step). The fillers are
  copies of a real sample with an empty action mask, and an empty action mask carries zero weight everywhere:
  upstream's token and sample normalisers (`aggregate_loss`, `get_loss_batch_info` count samples with action tokens),
  PolicyLoss, the KL term and ValueLoss (masked sums), EPO's L_H, L_smooth and trajectory mass B (token weights from
  the mask, `trajectory_mass` counts non-empty samples), and the entropy history. The logged training metrics skip
  them too (`real_sample_status`, `real_value_status`). Their number is logged as `rollout/pad_samples`.
"""
import copy
import math
from typing import Dict, List, Optional, Sequence

import torch

from openrlhf_epo.agent.samples import GROUP_ID
from openrlhf_epo.integration.data_parallel import all_reduce_sum

PAD_SAMPLES_METRIC = "rollout/pad_samples"


def is_per_turn(samples: Sequence) -> bool:
    """True for the agent loop's per-turn samples (they carry a group id); upstream's samples pass untouched."""
    info = getattr(samples[0], "info", None) if samples else None
    return isinstance(info, dict) and GROUP_ID in info


def data_parallel_size(group) -> int:
    """Ranks of a RayActorGroup that receive distinct chunks (ring-attention / tensor-parallel copies share one)."""
    return len(group._actor_handlers) // group.duplicate_actors


def common_multiple(groups: Sequence) -> int:
    """The least common multiple of the data-parallel sizes of the groups that exist (None entries are skipped)."""
    sizes = [data_parallel_size(g) for g in groups if g is not None]
    return math.lcm(*sizes) if sizes else 1


def split_for_ranks(samples: List, micro_batch_size: int, ranks: int) -> List[List]:
    """Contiguous micro-batches, sizes differing by at most one, as many as a multiple of `ranks`: the fewest with at
    most `micro_batch_size` rows, or, where the samples cannot fill that many (micro-batches of 1 and a sample count
    that is not a multiple of the ranks), the most there are samples for (some then hold one row more)."""
    if micro_batch_size < 1 or ranks < 1:
        raise ValueError(f"micro_batch_size {micro_batch_size} and ranks {ranks} must be >= 1")
    if len(samples) < ranks:
        raise ValueError(
            f"{len(samples)} per-turn samples cannot give each of {ranks} data-parallel ranks a micro-batch: "
            f"raise --rollout.batch_size x --rollout.n_samples_per_prompt to at least {ranks}"
        )
    count = min(math.ceil(math.ceil(len(samples) / micro_batch_size) / ranks), len(samples) // ranks) * ranks
    base, extra = divmod(len(samples), count)
    batches, start = [], 0
    for i in range(count):
        size = base + (i < extra)
        batches.append(samples[start : start + size])
        start += size
    return batches


def padding_sample(template):
    """A zero-weight copy of a single-sample Experience: same shapes and keys, no action tokens."""
    pad = copy.deepcopy(template)
    pad.action_mask = torch.zeros_like(template.action_mask)
    for name in ("advantages", "returns"):
        if getattr(pad, name) is not None:
            setattr(pad, name, torch.zeros_like(getattr(pad, name)))
    return pad


def pad_for_ranks(experiences: List, ranks: int, train_batch_size: int) -> tuple:
    """(one batched Experience per rank, number of padding samples): the items of `experiences` dealt to `ranks`
    ranks by length and filled up to the same count, T / ranks with T = S rounded up to `train_batch_size`."""
    from openrlhf.trainer.ppo_utils.experience import make_experience_batch, split_experience_batch

    if train_batch_size % ranks:
        raise ValueError(f"--train.batch_size {train_batch_size} is not a multiple of the {ranks} data-parallel ranks")
    items = [item for experience in experiences for item in split_experience_batch(experience)]
    if not items:
        raise ValueError("no experience to train on")
    total = math.ceil(len(items) / train_batch_size) * train_batch_size
    per_rank = total // ranks
    items.sort(key=lambda item: int(item.total_length), reverse=True)
    dealt: List[List] = [[] for _ in range(ranks)]
    for i, item in enumerate(items):  # snake order: rank 0 takes the longest and the shortest of each round
        round_, pos = divmod(i, ranks)
        dealt[pos if round_ % 2 == 0 else ranks - 1 - pos].append(item)
    template = items[-1]  # the shortest sample: the cheapest filler
    for share in dealt:
        share.extend(padding_sample(template) for _ in range(per_rank - len(share)))
    return [make_experience_batch(share) for share in dealt], total - len(items)


def _real_rows(action_mask: torch.Tensor) -> torch.Tensor:
    return action_mask.reshape(action_mask.shape[0], -1).sum(-1) > 0


def real_sample_status(status: Dict, experience) -> Dict:
    """The actor's training-step status without padding rows: `num_samples` counts samples with action tokens and
    every per-sample metric keeps their rows only (upstream reduces it as mean x num_samples, so a micro-batch with
    no real sample contributes a sum of 0 with weight 0)."""
    real = _real_rows(experience.action_mask)
    if bool(real.all()):
        return status
    metrics, weights = status["metrics"], status["weights"]
    for key, value in metrics.items():
        if weights.get(key) == "sample" and isinstance(value, torch.Tensor) and value.dim() > 0 \
                and value.shape[0] == real.shape[0]:
            kept = value[real.to(value.device)]
            metrics[key] = kept if kept.numel() else torch.zeros(1, dtype=value.dtype, device=value.device)
    status["num_samples"] = float(real.sum().item())
    return status


def real_value_status(status: Dict, values: torch.Tensor, experience, strategy) -> Dict:
    """The critic's status, for per-turn samples with `values` the mean over the real action tokens of this
    micro-batch on all ranks, the same on every rank (upstream's per-rank masked mean counts a rank that holds only
    padding as a mean value of 0)."""
    if not is_per_turn([experience]):
        return status
    mask = experience.action_mask.to(values.dtype)
    sums = torch.stack([(values.detach() * mask).sum(), mask.sum()]).double()
    all_reduce_sum(sums, strategy)
    status["values"] = (sums[0] / sums[1]).item() if sums[1] > 0 else 0.0
    return status


def rank_even_micro_batches(maker, samples: List) -> List[List]:
    """Experience making: the forward micro-batches of per-turn samples, as many for every rank of every model
    group (actor, critic, reference, reward model) that runs them."""
    groups = [maker.actor_model_group, maker.critic_model_group, maker.initial_model_group, maker.reward_model_group]
    return split_for_ranks(samples, maker.args.rollout.micro_batch_size, common_multiple(groups))


def balance_per_turn_experiences(trainer, experiences: List, status: Optional[Dict] = None) -> List:
    """Driver, before the experiences go to the actor (and critic) shards: per-turn samples padded so every rank
    trains the same whole optimizer windows; the padding count goes into `status` for the logs."""
    if not is_per_turn(experiences):
        return experiences
    ranks = common_multiple([trainer.actor_model_group, getattr(trainer, "critic_model_group", None)])
    balanced, pads = pad_for_ranks(experiences, ranks, trainer.args.train.batch_size)
    if status is not None:
        status[PAD_SAMPLES_METRIC] = float(pads)
    return balanced
