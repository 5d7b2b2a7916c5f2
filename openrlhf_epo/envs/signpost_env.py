"""Signpost: a small built-in text environment, behind the same `TextEnv` as ScienceWorld and ALFWorld, for pipeline
and learning tests that must show an agent getting better within minutes on a CPU.

An instance is a trail of clearings through a forest. The trail is entered from the south, and every clearing has
three paths, north, east and west, listed in a per-clearing random order as the admissible actions `go <direction>`;
the observation names the one a signpost points at. Taking the signposted path reaches the next clearing; another
path loops back to the same clearing (the turn is lost); an action that is not admissible gets "Nothing happens."
Reaching the end of the trail wins: reward 1.0 on that step and 0.0 on every other (one sparse outcome reward), the
episode ends when won, or after `max_turns` turns if one is given (info["truncated"]; the agent loop's
--agent.max_turns, default DEFAULT_MAX_TURNS, bounds it otherwise). The observation says all there is to know (the
environment is fully observed), so a history window adds nothing to a turn's prompt but length.

Tasks (TaskSpec.task), TASKS: "trail", 5 clearings (train and iid); "long-trail", 7 clearings (ood: longer than
anything trained on, and with the same turn budget, harder). Instances come from disjoint seed streams per split
(`variation` indexes one instance of its split, `seed` a second stream), so iid instances are unseen trails of the
trained kind. The expert plan (info["expert_plan"], `expert_plan()`) is the signposts' directions.

A uniformly random admissible agent takes the right path with probability 1/paths at every turn, whatever happened
before, so it wins when at least `clearings` of its `max_turns` draws are right: P(Bin(T, 1/paths) >= clearings),
`random_success` (trail, T = 10: 0.2131; long-trail: 0.0197). The expert wins in `clearings` turns.
"""
import math
import random
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from openrlhf_epo.envs import base
from openrlhf_epo.envs.base import SPLITS, Observation, StepResult, TaskSpec, TextEnv

DEFAULT_MAX_TURNS = base.DEFAULT_MAX_TURNS["signpost"]  # envs/base.py's table


@dataclass(frozen=True)
class TrailKind:
    clearings: int  # correct moves needed: the optimal episode's length
    paths: int  # admissible actions in every clearing


# Every clearing offers the same three directions (listed in a random order): a model warmed up on random admissible
# actions then picks among exactly the actions the random agent picks among, so it starts at the random agent's p
# (with varying subsets of four directions, a warmed-up model picks among all four, listed or not).
TASKS = {"trail": TrailKind(clearings=5, paths=3), "long-trail": TrailKind(clearings=7, paths=3)}
TASKS_OF_SPLIT = {"train": ("trail",), "iid": ("trail",), "ood": ("long-trail",)}
SPLIT_SIZES = {"train": 10000, "iid": 500, "ood": 500}  # variations 0..size-1 of each split
DIRECTIONS = ("north", "east", "west")  # the trail is entered from the south
CLEARINGS = ("mossy", "sunny", "foggy", "rocky", "quiet", "windy", "shady", "grassy", "muddy", "misty", "sandy",
             "stony")
TASK_LINE = "Your task is to: follow the signposts to the end of the trail."


def random_success(task: str, max_turns: int = DEFAULT_MAX_TURNS) -> float:
    """P(a uniformly random admissible agent wins): at least `clearings` right draws of probability 1/paths among
    max_turns."""
    kind = TASKS[task]
    q = 1.0 / kind.paths
    return sum(math.comb(max_turns, k) * q ** k * (1 - q) ** (max_turns - k)
               for k in range(kind.clearings, max_turns + 1))


def spec_problem(spec: TaskSpec) -> Optional[str]:
    """Why spec is not a Signpost instance (None when it is)."""
    if spec.task not in TASKS:
        return f"unknown signpost task {spec.task!r}; accepted: {', '.join(TASKS)}"
    if spec.task not in TASKS_OF_SPLIT[spec.split]:
        return (f"signpost task {spec.task!r} is not in the {spec.split} split (its tasks: "
                f"{', '.join(TASKS_OF_SPLIT[spec.split])})")
    if not 0 <= spec.variation < SPLIT_SIZES[spec.split]:
        return f"variation {spec.variation} is outside the {spec.split} split (0-{SPLIT_SIZES[spec.split] - 1})"
    return None


def signpost_task_specs(split: str, n: Optional[int] = None, seed: int = 0,
                        tasks: Optional[List[str]] = None) -> List[TaskSpec]:
    """n instances of the split (all SPLIT_SIZES[split] when n is None), in a seeded random order."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    allowed = TASKS_OF_SPLIT[split]
    chosen = list(tasks or allowed)
    for task in chosen:
        if task not in allowed:
            raise ValueError(f"signpost task {task!r} is not in the {split} split; accepted: {', '.join(allowed)}")
    size = SPLIT_SIZES[split]
    if n is not None and not 1 <= n <= size * len(chosen):
        raise ValueError(f"n={n}: the signpost {split} split holds {size * len(chosen)} instances")
    variations = random.Random(f"signpost-order/{split}/{seed}").sample(range(size), min(n or size, size))
    specs = [TaskSpec("signpost", task, variation=v, split=split, seed=seed) for v in variations for task in chosen]
    return specs[:n] if n else specs


@dataclass(frozen=True)
class Clearing:
    name: str
    sign: str  # the direction that leads on
    paths: Tuple[str, ...]  # the admissible directions, in the order they are listed


def build_trail(spec: TaskSpec) -> List[Clearing]:
    """The instance's clearings, from its spec alone (the same spec always gives the same trail)."""
    problem = spec_problem(spec)
    if problem:
        raise ValueError(problem)
    kind = TASKS[spec.task]
    rng = random.Random(f"signpost/{spec.split}/{spec.task}/{spec.variation}/{spec.seed}")
    names = rng.sample(CLEARINGS, kind.clearings)
    trail = []
    for name in names:
        paths = tuple(rng.sample(DIRECTIONS, kind.paths))
        trail.append(Clearing(name=name, sign=rng.choice(paths), paths=paths))
    return trail


def _describe(clearing: Clearing) -> str:
    return f"A signpost points {clearing.sign}."  # the paths are the admissible actions the prompt lists


class SignpostEnv(TextEnv):
    """In-process and instant (a step is a few list operations); nothing to start, nothing to kill."""

    name = "signpost"

    def __init__(self, max_turns: Optional[int] = None):
        if max_turns is not None and max_turns < 1:
            raise ValueError(f"max_turns={max_turns} must be >= 1")
        self.max_turns = max_turns
        self._trail: Optional[List[Clearing]] = None
        self._at = self._turn = 0
        self._done = self._closed = False
        self._spec: Optional[TaskSpec] = None

    def reset(self, spec: TaskSpec, with_admissible: bool = True) -> Observation:
        self._check_open()
        if spec.env != self.name:
            raise ValueError(f"a {spec.env} task spec given to the signpost environment: {spec.to_json()}")
        self._trail, self._spec = build_trail(spec), spec
        self._at = self._turn = 0
        self._done = False
        first = self._trail[0]
        text = f"You stand in a {first.name} clearing at the start of a forest trail. {_describe(first)}"
        return Observation(text=text, task=TASK_LINE, admissible=self.admissible_actions() if with_admissible else None)

    def step(self, action: str, with_admissible: bool = False) -> StepResult:
        self._check_open()
        if self._trail is None:
            raise RuntimeError("step() before reset()")
        if self._done:
            raise RuntimeError(f"the episode of {self._spec.to_json()} is over; reset() first")
        if not isinstance(action, str):
            raise TypeError(f"action must be a str, not {type(action).__name__}: {action!r}")
        here = self._trail[self._at]
        taken = action.strip()
        won, reward = False, 0.0
        if taken not in self.admissible_actions():
            text = "Nothing happens."
        elif taken == f"go {here.sign}":
            self._at += 1
            if self._at == len(self._trail):
                won, reward = True, 1.0
                text = f"You take the {here.sign} path and reach the end of the trail. You made it!"
            else:
                following = self._trail[self._at]
                text = f"You take the {here.sign} path and reach a {following.name} clearing. {_describe(following)}"
        else:
            text = (f"You take the {taken.removeprefix('go ')} path, but it loops back to the {here.name} clearing. "
                    f"{_describe(here)}")
        self._turn += 1
        truncated = not won and self.max_turns is not None and self._turn >= self.max_turns
        self._done = won or truncated
        info: Dict[str, Any] = dict(turn=self._turn, truncated=truncated, expert_plan=self.expert_plan())
        admissible = self.admissible_actions() if with_admissible else None
        return StepResult(observation=text, reward=reward, done=self._done, won=won, admissible=admissible, info=info)

    def admissible_actions(self) -> List[str]:
        self._check_open()
        if self._trail is None:
            raise RuntimeError("admissible_actions() before reset()")
        if self._at == len(self._trail):
            return []
        return [f"go {direction}" for direction in self._trail[self._at].paths]

    def expert_plan(self) -> List[str]:
        """The actions that finish the trail from here: the remaining signposts' directions."""
        if self._trail is None:
            raise RuntimeError("expert_plan() before reset()")
        return [f"go {clearing.sign}" for clearing in self._trail[self._at:]]

    @property
    def spec(self) -> Optional[TaskSpec]:
        return self._spec

    def _check_open(self):
        if self._closed:
            raise RuntimeError("this SignpostEnv is closed")

    def close(self) -> None:
        self._closed = True
