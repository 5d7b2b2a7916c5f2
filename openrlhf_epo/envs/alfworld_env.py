"""ALFWorld (Shridhar et al., 2021) as a `TextEnv`, and its train / iid / ood splits.

The adapter plays a game the way ALFWorld's `AlfredTWEnv.init_env` does: textworld's PDDL environment wrapped in
ALFWorld's `AlfredDemangler` (ids -> "mug 1"), `AlfredInfos` and, on request, `AlfredExpert` (planner or handcoded).
It runs in-process and synchronously: `init_env` registers a gym env with `asynchronous=True`, i.e. worker processes,
which a rollout worker does not need and which could outlive a crashed parent; here nothing is spawned.

Episode semantics, as ALFWorld and the peers (verl-agent, the EPO reference code) define them:
- reset: `Observation.text` is the room ("You are in the middle of a room. Looking quickly around you, you see ..."),
  `Observation.task` the goal line ("Your task is to: put a clean mug in coffeemachine.").
- step: the action string goes to the game as it is (textworld strips the ends); anything that is not one of the
  admissible commands, exactly, gets the game's own "Nothing happens." and changes nothing, but costs a turn.
- reward = textworld's score: 1.0 on the winning step, else 0.0; won = the PDDL goal holds (infos["won"]).
- done = won, or `max_turns` steps taken (50 by default, EPO's ALFWorld setting; info["truncated"] = True then).
- info: "turn", "moves" (actions the game accepted), "truncated", "expert_plan_available"; "admissible" when asked;
  "expert_plan" with an expert attached.
Cost (bench/alfworld_step.py): a step about 20 ms on a generated game, a reset to a new game about 0.2 s (the
PDDL->SAS translation), to the same game again about 0.1 s; full official scenes cost several times more.

Where the games come from:
  - official data (ALFWorld's json_2.1.1, present when $ALFWORLD_DATA points at it): listed by ALFWorld's own
    `AlfredTWEnv.collect_game_files` (solvable games only, its movable / sliced exclusions); train = train,
    iid = valid_seen (seen rooms), ood = valid_unseen (unseen rooms);
  - otherwise games generated offline by `alfworld_games` (cached). Rooms are held out for OOD: OOD_FLOORPLANS (ALFRED's
    own test scenes, FloorPlan1-6, 201-206, 301-306, 401-406) serve ood only; train and iid both come from the other
    96 floorplans, with disjoint game seeds (seed % 3 == 0 train, 1 iid, 2 ood): iid = unseen games in seen rooms.
"""
import json
import os
import random
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from openrlhf_epo.envs import alfworld_games as games
from openrlhf_epo.envs.alfworld_games import GameKey, check_task_types, pddl_guard
from openrlhf_epo.envs import base
from openrlhf_epo.envs.base import SPLITS, EnvironmentError_, Observation, StepResult, TaskSpec, TextEnv

DEFAULT_MAX_TURNS = base.DEFAULT_MAX_TURNS["alfworld"]  # envs/base.py's table
EXPERTS = ("planner", "handcoded")

OFFICIAL_SPLITS = {"train": "train", "iid": "valid_seen", "ood": "valid_unseen"}
OOD_FLOORPLANS = tuple(list(range(1, 7)) + list(range(201, 207)) + list(range(301, 307)) + list(range(401, 407)))
SEEN_FLOORPLANS = tuple(
    fp for room in (range(1, 31), range(201, 231), range(301, 331), range(401, 431)) for fp in room
    if fp not in OOD_FLOORPLANS
)
SPLIT_SEED_RESIDUE = {"train": 0, "iid": 1, "ood": 2}  # game seed % 3: train and iid games can never coincide
# n=None on generated games: the sizes of ALFWorld's official splits.
GENERATED_SPLIT_SIZES = {"train": 3553, "iid": 140, "ood": 134}

_BANNER = "-= Welcome to TextWorld, ALFRED! =-"
_TASK_PREFIX = "Your task is to:"


# ----------------------------------------------------------------------------------------------------------- splits
def official_data_root() -> Optional[Path]:
    """$ALFWORLD_DATA/json_2.1.1 when the official data is there; None when ALFWORLD_DATA does not point at data.

    Importing alfworld sets ALFWORLD_DATA to ~/.cache/alfworld when it is unset (alfworld/info.py), so that default
    path without json_2.1.1 counts as "not set". Any other ALFWORLD_DATA must hold all three split folders; a missing
    one is an error that names it (a half-downloaded data set must not silently turn into generated games).
    """
    value = os.environ.get("ALFWORLD_DATA")
    if not value:
        return None
    root = Path(value).expanduser()
    data = root / "json_2.1.1"
    if not data.exists() and root.resolve() == (Path.home() / ".cache" / "alfworld").resolve():
        return None
    missing = [str(data / folder) for folder in OFFICIAL_SPLITS.values() if not (data / folder).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"ALFWORLD_DATA={value} is set but lacks {', '.join(missing)}; run `alfworld-download` "
            "or unset ALFWORLD_DATA to use the offline-generated games"
        )
    return data


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not one of {', '.join(SPLITS)}")


def candidate_keys(split: str, seed: int, task_type: str):
    """The endless, deterministic stream of generated-game keys of a split and task type (rejects are skipped later)."""
    _check_split(split)
    floorplans = games.feasible_floorplans(task_type, OOD_FLOORPLANS if split == "ood" else SEEN_FLOORPLANS)
    if not floorplans:
        raise ValueError(f"no {split} floorplan can host {task_type}")
    rng = random.Random(f"openrlhf-epo/alfworld-split/{split}/{seed}/{task_type}")
    seen = set()
    while True:
        key = GameKey(task_type, rng.choice(floorplans), rng.randrange(1 << 30) * 3 + SPLIT_SEED_RESIDUE[split])
        if key not in seen:
            seen.add(key)
            yield key


def _round_robin(lists: Dict[str, List[Any]], order: Sequence[str], n: Optional[int]) -> List[tuple]:
    """[(task type, item)], one item of each type in turn (an exhausted type is skipped), n in all (None = all)."""
    out, cursor = [], {t: 0 for t in order}
    while n is None or len(out) < n:
        progressed = False
        for t in order:
            if (n is None or len(out) < n) and cursor[t] < len(lists[t]):
                out.append((t, lists[t][cursor[t]]))
                cursor[t] += 1
                progressed = True
        if not progressed:
            break
    return out


def _official_games(data: Path, split: str, task_types: List[str]) -> Dict[str, List[Path]]:
    """Game files of a split per task type, collected by ALFWorld's own AlfredTWEnv.collect_game_files, sorted."""
    from alfworld.agents.environment.alfred_tw_env import TASK_TYPES as TASK_IDS
    from alfworld.agents.environment.alfred_tw_env import AlfredTWEnv

    ids = [i for i, name in TASK_IDS.items() if name in task_types]
    path = str(data / OFFICIAL_SPLITS[split])
    config = {
        "env": {"goal_desc_human_anns_prob": 0.0, "task_types": ids},
        "dataset": {"data_path": path, "eval_id_data_path": path, "eval_ood_data_path": path,
                    "num_train_games": -1, "num_eval_games": -1},
    }
    mode = {"train": "train", "iid": "eval_in_distribution", "ood": "eval_out_of_distribution"}[split]
    found: Dict[str, List[Path]] = {t: [] for t in task_types}
    for game_file in sorted(AlfredTWEnv(config, train_eval=mode).game_files):
        game_file = Path(game_file)
        task_type = game_file.parent.parent.name.split("-")[0]  # "<task type>-<object>-<mrecep>-<parent>-<scene>"
        if task_type not in found:
            task_type = json.loads((game_file.parent / "traj_data.json").read_text())["task_type"]
        found[task_type].append(game_file)
    return found


def alfworld_task_specs(split: str, n: Optional[int] = None, seed: int = 0, task_types: Optional[List[str]] = None,
                        *, source: Optional[str] = None, cache_dir: Optional[Path] = None,
                        progress: bool = True) -> List[TaskSpec]:
    """The task specs of a split, spread over the task types round-robin; variation = index in the returned list.

    source: "official" (ALFWorld's data under $ALFWORLD_DATA), "generated" (offline games, generated on a cache miss
    into cache_dir, default `alfworld_games.default_cache_dir()`), or None: official when present, else generated.
    n=None: the whole official split, or GENERATED_SPLIT_SIZES[split] generated games. The same arguments give the
    same specs; a spec resets to the same episode.
    """
    _check_split(split)
    task_types = check_task_types(task_types)
    if n is not None and (not isinstance(n, int) or n < 0):
        raise ValueError(f"n={n!r} must be None or an integer >= 0")
    if source not in (None, "official", "generated"):
        raise ValueError(f"source={source!r} is not one of None, 'official', 'generated'")
    data = official_data_root() if source in (None, "official") else None
    if source == "official" and data is None:
        raise FileNotFoundError("ALFWorld's official games were asked for, but ALFWORLD_DATA does not point at its "
                                "json_2.1.1 data: run `alfworld-download` (it fetches them into ~/.cache/alfworld) or "
                                "set ALFWORLD_DATA to the folder that holds json_2.1.1")

    if data is not None:
        found = _official_games(data, split, task_types)
        for t, files in found.items():
            random.Random(f"openrlhf-epo/alfworld-official/{split}/{seed}/{t}").shuffle(files)
        picked = _round_robin(found, task_types, n)
        if n is not None and len(picked) < n:
            raise ValueError(f"n={n} but the official {split} split has {len(picked)} games of {task_types}")
        return [
            TaskSpec(env="alfworld", task=t, variation=i, split=split, seed=seed, game=str(f.parent),
                     extra={"source": "official", "relpath": str(f.parent.relative_to(data))})
            for i, (t, f) in enumerate(picked)
        ]

    n = GENERATED_SPLIT_SIZES[split] if n is None else n
    counts = {t: len(range(k, n, len(task_types))) for k, t in enumerate(task_types)}
    streams = {t: candidate_keys(split, seed, t) for t in task_types}
    made = games.generate_games(streams, counts, cache_dir, progress, desc=f"ALFWorld {split} games")
    return [
        TaskSpec(env="alfworld", task=t, variation=i, split=split, seed=seed, game=str(folder),
                 extra={"source": "generated", "room": f"FloorPlan{key.floorplan}", "game_seed": key.seed,
                        "generator_version": games.GENERATOR_VERSION})
        for i, (t, (key, folder)) in enumerate(_round_robin(made, task_types, n))
    ]


def _stored_game(spec: TaskSpec) -> Optional[Path]:
    if not spec.game:
        return None
    path = Path(spec.game)
    path = path if path.name == "game.tw-pddl" else path / "game.tw-pddl"
    return path if path.is_file() else None


def _generated_key(spec: TaskSpec) -> GameKey:
    extra = spec.extra or {}
    return GameKey(spec.task, int(str(extra["room"]).replace("FloorPlan", "")), int(extra["game_seed"]))


def game_problem(spec: TaskSpec) -> Optional[str]:
    """Why `spec` names no playable game on this machine (None when it does), without generating anything: its game
    file exists, or it is a generated game of this generator (rebuilt on demand, same bytes), or an official game
    present under $ALFWORLD_DATA."""
    if _stored_game(spec) is not None:
        return None
    extra = spec.extra or {}
    if extra.get("source") == "generated":
        if extra.get("generator_version") != games.GENERATOR_VERSION:
            return (f"the game was generated by generator v{extra.get('generator_version')}, this is "
                    f"v{games.GENERATOR_VERSION}; rebuild the task specs (`openrlhf-epo data`)")
        try:
            _generated_key(spec)
        except (KeyError, TypeError, ValueError):
            return f"a generated game needs extra.room (FloorPlanN) and extra.game_seed, got extra={extra!r}"
        return None
    if extra.get("source") == "official" and extra.get("relpath"):
        data = official_data_root()
        if data is not None and (data / extra["relpath"] / "game.tw-pddl").is_file():
            return None
        return (f"official game {extra['relpath']!r} is not under ALFWORLD_DATA ({os.environ.get('ALFWORLD_DATA')!r}): "
                "run `alfworld-download` or point ALFWORLD_DATA at its json_2.1.1 folder")
    return (f"game {spec.game!r} does not exist, and extra.source is neither 'generated' nor 'official' "
            f"(extra={extra!r})")


def resolve_game_file(spec: TaskSpec, cache_dir: Optional[Path] = None) -> Path:
    """The game.tw-pddl of a spec. A spec built on another machine still resolves: a generated game missing from this
    cache is regenerated (same bytes), an official one is looked up under this machine's $ALFWORLD_DATA."""
    if spec.env != "alfworld":
        raise ValueError(f"AlfWorldEnv cannot play a TaskSpec with env={spec.env!r}")
    problem = game_problem(spec)
    if problem is not None:
        raise EnvironmentError_(f"no ALFWorld game for {spec.to_json()}: {problem}")
    stored = _stored_game(spec)
    if stored is not None:
        return stored
    extra = spec.extra or {}
    if extra.get("source") == "generated":
        key = _generated_key(spec)
        folder = games.generate_game(key, cache_dir)
        if folder is None:
            raise EnvironmentError_(f"{spec.to_json()}: game {key} is rejected by the generator")
        return folder / "game.tw-pddl"
    return official_data_root() / extra["relpath"] / "game.tw-pddl"


# ---------------------------------------------------------------------------------------------------------- adapter
class AlfWorldEnv(TextEnv):
    """One ALFWorld game at a time; reset to any spec, reused across episodes.

    max_turns: episode length; the step that reaches it returns done=True (won only if that step won),
        info["truncated"]=True.
    expert: None, "planner" or "handcoded": adds ALFWorld's AlfredExpert wrapper; every step then carries
        info["expert_plan"] (planner: the remaining plan, recomputed by fast-downward each step, which costs seconds
        on full official scenes; handcoded: the next action) and `expert_plan()` returns it. Leave it off for RL.
    """

    name = "alfworld"

    def __init__(self, max_turns: int = DEFAULT_MAX_TURNS, expert: Optional[str] = None,
                 cache_dir: Optional[Path] = None):
        if not isinstance(max_turns, int) or max_turns < 1:
            raise ValueError(f"max_turns={max_turns!r} must be an integer >= 1")
        if expert not in (None,) + EXPERTS:
            raise ValueError(f"expert={expert!r} is not one of None, {', '.join(map(repr, EXPERTS))}")
        self.max_turns = max_turns
        self.expert = expert
        self.cache_dir = cache_dir
        self._pddl = None  # textworld's PddlEnv (holds a copy of fast-downward's library), taken at the first reset
        self._env = None  # the same, wrapped by ALFWorld's wrappers
        self._expert_wrapper = None
        self._loaded: Optional[Path] = None
        self._state = None
        self._spec: Optional[TaskSpec] = None
        self._turn = 0
        self._done = False
        self._closed = False

    # -- lifecycle
    def _build(self):
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredExpert, AlfredInfos

        infos = textworld.EnvInfos(won=True, admissible_commands=True, moves=True, extras=["gamefile"])
        wrappers = [AlfredDemangler(shuffle=False), AlfredInfos]
        if self.expert:
            # By keyword: AlfredTWEnv.init_env passes the type positionally, where AlfredExpert expects `env`.
            self._expert_wrapper = AlfredExpert(expert_type=self.expert)
            wrappers.append(self._expert_wrapper)
            infos.extras.append("expert_plan")
        self._pddl = games.acquire_pddl_env(infos)
        self._loaded = None
        env = self._pddl
        for wrapper in wrappers:
            env = wrapper(env)
        self._env = env

    def close(self) -> None:
        """Hand this instance's fast-downward library back for reuse (see `alfworld_games.acquire_pddl_env`: it cannot
        be unloaded safely); idempotent. Nothing else to release: no process is spawned."""
        if self._pddl is not None:
            pddl, self._pddl, self._env, self._expert_wrapper, self._state = self._pddl, None, None, None, None
            self._loaded = None
            games.release_pddl_env(pddl)
        self._closed = True

    def _check_open(self):
        if self._closed:
            raise RuntimeError("this AlfWorldEnv is closed")

    # -- episodes
    def reset(self, spec: TaskSpec, with_admissible: bool = True) -> Observation:
        """Start `spec`'s episode. text: the room as the game describes it; task: "Your task is to: ..."."""
        self._check_open()
        game_file = resolve_game_file(spec, self.cache_dir)
        if self._env is None:
            self._build()
        try:
            with pddl_guard():
                if self._loaded != game_file:
                    self._loaded = None
                    self._env.load(str(game_file))
                    self._loaded = game_file
                state = self._env.reset()
        except (Exception, SystemExit) as exc:  # fast-downward's translator exits on a malformed problem
            raise EnvironmentError_(f"ALFWorld game {game_file} failed to load: {exc!r}") from exc
        self._state, self._spec, self._turn, self._done = state, spec, 0, False
        text, task = _split_intro(state.feedback, game_file)
        return Observation(text=text, task=task, admissible=self.admissible_actions() if with_admissible else None)

    def step(self, action: str, with_admissible: bool = False) -> StepResult:
        """One action; an unknown or malformed one gets the game's "Nothing happens." and still costs a turn."""
        self._check_open()
        if self._state is None:
            raise RuntimeError("step() before reset()")
        if self._done:
            raise RuntimeError(f"the episode of {self._spec.to_json()} is over; reset() first")
        if not isinstance(action, str):
            raise TypeError(f"action must be a str, not {type(action).__name__}: {action!r}")
        info: Dict[str, Any] = {}
        before = self._state
        try:
            # textworld's PDDL text generator (a module-level tatsu parser) is not thread-safe either: environments
            # stepped from worker threads (the agent loop's pool) would corrupt each other's parse.
            with pddl_guard():
                state, reward, _ = self._env.step(action)
        except Exception as exc:
            # AlfredExpert steps the game, then asks its expert; only the expert's failure is recoverable.
            wrapper = self._expert_wrapper
            if wrapper is None or getattr(wrapper, "state", before) is before:
                raise EnvironmentError_(f"ALFWorld step {action!r} on {self._loaded} failed: {exc!r}") from exc
            state, reward = wrapper.state, float(bool(wrapper.state["won"]))
            info["expert_error"] = repr(exc)
            state["extra.expert_plan"] = []
        self._state = state
        self._turn += 1
        won = bool(state["won"])
        truncated = not won and self._turn >= self.max_turns
        self._done = won or truncated
        info.update(turn=self._turn, moves=state["moves"], truncated=truncated,
                    expert_plan_available=self.expert is not None or self.walkthrough is not None)
        if self.expert:
            info["expert_plan"] = list(state["extra.expert_plan"] or [])
        admissible = self.admissible_actions() if with_admissible else None
        return StepResult(observation=state.feedback, reward=float(reward), done=self._done, won=won,
                          admissible=admissible, info=info)

    def admissible_actions(self) -> List[str]:
        self._check_open()
        if self._state is None:
            raise RuntimeError("admissible_actions() before reset()")
        return list(self._state["admissible_commands"])

    # -- oracles
    def expert_plan(self) -> List[str]:
        """The attached expert's current plan (see `expert`)."""
        self._check_open()
        if not self.expert:
            raise RuntimeError("no expert attached: construct AlfWorldEnv(expert='planner') or expert='handcoded'")
        if self._state is None:
            raise RuntimeError("expert_plan() before reset()")
        return list(self._state["extra.expert_plan"] or [])

    @property
    def walkthrough(self) -> Optional[List[str]]:
        """The plan stored in the loaded game file (generated games store the planner's plan); None if absent."""
        if self._pddl is None or self._loaded is None:
            return None
        plan = self._pddl.walkthrough
        return list(plan) if plan else None

    @property
    def spec(self) -> Optional[TaskSpec]:
        return self._spec


def _split_intro(feedback: str, game_file: Path):
    """The intro as (room description, "Your task is to: ..."), the banner dropped."""
    text = feedback.replace(_BANNER, "").strip()
    at = text.rfind(_TASK_PREFIX)
    if at < 0:
        raise EnvironmentError_(f"ALFWorld game {game_file} has no {_TASK_PREFIX!r} line in its intro: {feedback!r}")
    return re.sub(r"\n{3,}", "\n\n", text[:at]).strip(), text[at:].strip()
