"""With per-turn samples the LR follows RL steps (integration/lr_schedule.py): upstream's own scheduler
(transformers' `get_scheduler`, stepped after every optimizer step as DeepSpeed steps it), built for K RL steps, gives
every optimizer step of RL step k the LR of the paper's schedule at k, whatever the number of optimizer steps each
RL step takes. Expected values: the cosine-with-warm-up formula, written out here."""
import math
from types import SimpleNamespace as NS

import pytest
import torch
from transformers import get_scheduler

from openrlhf_epo.integration.lr_schedule import begin_rl_step, follow_rl_steps

BASE_LR, WARMUP_RATIO, MIN_RATIO, K = 1e-3, 0.1, 0.2, 20
WINDOWS = [1, 7, 3, 12, 2, 5, 9, 1, 4, 6, 2, 8, 3, 1, 10, 2, 5, 3, 7, 4]  # optimizer steps of each RL step (turns)


def paper_lr(k: int) -> float:
    """RL step k of K (0-based): linear warm-up over the first 10% of the steps, then a cosine down to the minimum
    LR, reached at the last step."""
    warmup = math.ceil(K * WARMUP_RATIO)
    s = k + 1
    if s < warmup:
        return BASE_LR * s / warmup
    progress = (s - warmup) / (K - warmup)
    return BASE_LR * (MIN_RATIO + (1 - MIN_RATIO) * 0.5 * (1 + math.cos(math.pi * progress)))


def scheduler(mode="per_turn"):
    params = [torch.nn.Parameter(torch.zeros(3))]
    optimizer = torch.optim.SGD(params, lr=BASE_LR)
    built = get_scheduler("cosine_with_min_lr", optimizer, num_warmup_steps=math.ceil(K * WARMUP_RATIO),
                          num_training_steps=K, scheduler_specific_kwargs={"min_lr_rate": MIN_RATIO})
    return follow_rl_steps(built, NS(agent=NS(mode=mode))), optimizer


def train(sched, optimizer, windows):
    """The LR every optimizer step trained at, per RL step."""
    seen = []
    for steps in windows:
        begin_rl_step(sched)  # the actor's ppo_train
        used = []
        for _ in range(steps):
            used.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            sched.step()  # what DeepSpeed does after every optimizer step
        seen.append(used)
    return seen


def test_every_optimizer_step_of_an_rl_step_trains_at_that_steps_lr():
    sched, optimizer = scheduler()
    seen = train(sched, optimizer, WINDOWS)
    for k, used in enumerate(seen):
        assert used == pytest.approx([paper_lr(k)] * len(used), rel=1e-12), k
    assert seen[0][0] > 0  # warm-up starts above zero
    assert seen[-1][0] == pytest.approx(BASE_LR * MIN_RATIO)  # the minimum at the last RL step
    assert max(max(u) for u in seen) == pytest.approx(BASE_LR)
    assert sched.get_last_lr()[0] == pytest.approx(paper_lr(K - 1))  # what the actor logs as actor_lr


def test_a_resumed_scheduler_continues_the_schedule():
    sched, optimizer = scheduler()
    train(sched, optimizer, WINDOWS[:6])
    saved = sched.state_dict()  # what DeepSpeed's checkpoint keeps
    resumed, optimizer2 = scheduler()
    resumed.load_state_dict(saved)
    seen = train(resumed, optimizer2, WINDOWS[6:9])
    for k, used in zip(range(6, 9), seen):
        assert used == pytest.approx([paper_lr(k)] * len(used), rel=1e-12), k


def test_other_modes_keep_upstreams_scheduler():
    sched, optimizer = scheduler(mode="concat")  # one sample per episode: upstream's optimizer-step count is exact
    seen = train(sched, optimizer, [3, 3])
    assert seen[0][0] == 0.0 and seen[0][1] == pytest.approx(BASE_LR / 2)  # upstream: per optimizer step
