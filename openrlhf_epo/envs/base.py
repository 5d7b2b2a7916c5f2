"""The small interface between the agent loop and a text environment; the agent loop uses nothing else.

A task instance is a `TaskSpec`: JSON-serialisable, and resetting to the same spec gives the same episode. An
environment object is reused across episodes (reset to a new spec each time) and must be closed; it is also a
context manager.
"""
import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

ENVIRONMENTS = ("scienceworld", "alfworld", "signpost")  # signpost: built in, for tests (envs/signpost_env.py)
SPLITS = ("train", "iid", "ood")
# An episode's turn limit when --agent.max_turns is not given, the one table of them: EPO / verl-agent's ALFWorld
# episode length, RLVMR's ScienceWorld budget (the EPO paper takes its baselines from RLVMR), and twice the signpost
# trail's optimal 5 turns (room for lost turns).
DEFAULT_MAX_TURNS = {"alfworld": 50, "scienceworld": 30, "signpost": 10}
TURN_LIMITS = ", ".join(f"{turns} {env}" for env, turns in DEFAULT_MAX_TURNS.items())  # for help texts


class EnvironmentError_(RuntimeError):
    """An environment failed (crashed process, unloadable game); the message says which instance and why."""


class EnvTimeout(EnvironmentError_):
    """An environment that did not answer in time (--agent.env_timeout_s): it was killed."""


@dataclass(frozen=True)
class TaskSpec:
    env: str  # "scienceworld" | "alfworld" | "signpost"
    task: str  # ScienceWorld task name; ALFWorld task type; signpost trail kind
    variation: int = 0  # ScienceWorld variation index; ALFWorld: index of the game within its split
    split: str = "train"  # "train" | "iid" | "ood"
    seed: int = 0
    game: Optional[str] = None  # ALFWorld: path of the game folder (official data or generated cache)
    extra: Dict[str, Any] = field(default_factory=dict)  # environment-specific knobs, e.g. {"room": "FloorPlan7"}

    def __post_init__(self):
        if self.env not in ENVIRONMENTS:
            raise ValueError(f"TaskSpec.env={self.env!r} is not one of {', '.join(ENVIRONMENTS)}")
        if self.split not in SPLITS:
            raise ValueError(f"TaskSpec.split={self.split!r} is not one of {', '.join(SPLITS)}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TaskSpec":
        try:
            data = json.loads(text) if isinstance(text, str) else dict(text)
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a task spec: {str(text)[:200]!r} ({exc})") from None


@dataclass
class Observation:
    """What reset returns: the first observation, the task description, the admissible actions (None = not asked)."""

    text: str
    task: str
    admissible: Optional[List[str]] = None


@dataclass
class StepResult:
    """What step returns. `error` set means the environment failed during the step (the episode is lost, not the
    agent's fault); `admissible` is None unless asked for."""

    observation: str
    reward: float  # this step's reward from the environment (ScienceWorld: change in score; ALFWorld: 0/1)
    done: bool
    won: bool
    admissible: Optional[List[str]] = None
    error: Optional[str] = None  # the failure, naming the instance and the cause (e.g. ScienceWorld's JVM died)
    info: Dict[str, Any] = field(default_factory=dict)  # environment-specific: "score", "moves", "truncated", ...


class TextEnv(ABC):
    """The interface. `step` never raises on a malformed or unknown action: the environment's own answer comes back."""

    name = "base"

    @abstractmethod
    def reset(self, spec: TaskSpec, with_admissible: bool = True) -> Observation:
        """Start the episode of `spec`; the admissible actions are computed only when asked for."""

    @abstractmethod
    def step(self, action: str, with_admissible: bool = False) -> StepResult:
        """Take one action string; the result's `admissible` is filled only when asked for."""

    @abstractmethod
    def admissible_actions(self) -> List[str]:
        """The actions the current state admits."""

    @abstractmethod
    def close(self) -> None:
        """Release the instance (processes included); idempotent."""

    def alive(self) -> bool:
        """Whether the instance can still serve an episode (its process runs); the pool never leases a dead one."""
        return True

    def kill(self) -> None:
        """Stop the instance at once, even in the middle of a call that hangs (its processes killed, no clean
        shutdown), so that the blocked call returns with an error; idempotent. An instance without processes of its
        own can only be closed: a call stuck in it keeps its thread until it returns."""
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
