"""The LR schedule over RL steps with per-turn samples.

Upstream's schedulers (transformers' `get_scheduler`, a `LambdaLR` that DeepSpeed steps after every optimizer step)
count optimizer steps, and the run's optimizer-step count is fixed in advance: prompts x n / --train.batch_size. With
per-turn samples an RL step brings one sample per turn of each episode, so that count is unknown until the episodes
are played: a guess too high stretches the warm-up and leaves the cosine short of its minimum, one too low ends the
schedule early and trains at the floor.

Here the schedule counts RL steps instead: the scheduler is built for K RL steps (agent_flags.scheduler_steps), and
each of its lambdas is wrapped (`RLStepLambda`) to ignore DeepSpeed's optimizer-step counter and answer for the
current RL step, so every optimizer step of RL step k (0-based) trains at base_lr x f(k + 1): with f upstream's own
lambda, the warm-up covers the first --actor.lr_warmup_ratio of the RL steps and a cosine reaches its minimum at
the last one, whatever the number of samples each step brings. The RL step rides in the scheduler's state dict, so a
resumed run continues where it stopped (with the schedule of its own K).
"""
import math

from torch.optim.lr_scheduler import LambdaLR


def rl_steps(num_prompts: int, args) -> int:
    """K, the run's RL steps: one per --rollout.batch_size prompts, for every pass (--train.num_episodes)."""
    return max(1, math.ceil(num_prompts / args.rollout.batch_size)) * args.train.num_episodes


class RLStepLambda:
    """An LR lambda answering for the current RL step. `inner` lives in a slot, outside __dict__: LambdaLR's
    state dict saves a callable's __dict__, so a checkpoint keeps the RL step and a resumed run its own schedule."""

    __slots__ = ("inner", "__dict__")

    def __init__(self, inner):
        self.inner = inner
        self.steps_begun = 0  # RL steps whose training has begun: k + 1 during RL step k

    def __call__(self, _optimizer_steps: int) -> float:
        return self.inner(self.steps_begun)


def follow_rl_steps(scheduler, args):
    """Wrap the scheduler's lambdas when per-turn samples make upstream's optimizer-step count unknowable; return it."""
    agent = getattr(args, "agent", None)
    if agent is None or agent.mode != "per_turn" or not isinstance(scheduler, LambdaLR):
        return scheduler
    scheduler.lr_lambdas = [RLStepLambda(fn) for fn in scheduler.lr_lambdas]
    _apply(scheduler)
    return scheduler


def begin_rl_step(scheduler) -> None:
    """At the start of an RL step's training: move the schedule to this step (no-op for schedulers left alone)."""
    lambdas = getattr(scheduler, "lr_lambdas", [])
    if not lambdas or not all(isinstance(fn, RLStepLambda) for fn in lambdas):
        return
    for fn in lambdas:
        fn.steps_begun += 1
    _apply(scheduler)


def _apply(scheduler) -> None:
    """Set every param group's LR from the lambdas now (DeepSpeed's own steps then keep it for the RL step)."""
    for group, base, fn in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * fn(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]
