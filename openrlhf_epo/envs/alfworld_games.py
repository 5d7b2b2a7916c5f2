"""ALFWorld games built offline from what the alfworld wheel ships, because the official game data cannot be fetched.

ALFWorld's own data (json_2.1.1, from GitHub releases) is not on any package registry, so a machine without it still
needs playable games. The wheel ships everything a game is made of:
  - alfworld/data/alfred.pddl and alfred.twl2: the PDDL domain and the text grammar (its "UNKNOWN GOAL" placeholder
    takes the task sentence, exactly as `alfworld.agents.utils.misc.add_task_to_grammar` does);
  - alfworld/gen/layouts/FloorPlan*-objects.json / -openable.json: the 120 AI2-THOR scenes (which object types a room
    holds; its receptacle instances with ALFRED ids and the point the agent stands at);
  - alfworld/gen/constants.py: which object fits which receptacle (VAL_RECEPTACLE_OBJECTS), the heatable / coolable /
    cleanable / toggleable sets, openable classes, the task types valid per room type (GOALS_VALID), ALFRED's
    train / test scene numbers;
  - alfworld/gen/goal_library.py: the PDDL goal and the task sentences of each task type.

One game = (task type, floorplan, seed). A seeded `random.Random` picks the task's targets among what the scene can
support, keeps a small subset of the scene's receptacles (the ones the task needs, the target objects' homes, a few
distractors) so fast-downward plans in a fraction of a second instead of the 2-27 s of a full scene, places the
target objects and a few distractor objects in receptacles that can hold them, and writes the PDDL problem the way
ALFRED's generator does (ids mangled with `_bar_`, `_minus_`, ...; `(canContain ...)`, `(pickupable ...)`,
`(receptacleAtLocation ...)`, ...). The game is kept only if the planner of textworld's PDDL environment (the one
ALFWorld's planner expert calls) finds a plan and replaying that plan through the environment wins; the plan is stored
as the game's walkthrough. Games that fail are cached as rejected so no seed is ever planned twice.

On disk a game is an ALFWorld game folder: game.tw-pddl (pddl_domain, grammar, pddl_problem, solvable, walkthrough),
initial_state.pddl and traj_data.json (task_type, pddl_params, scene), so ALFWorld's own tools
(`AlfredTWEnv.collect_game_files`, the experts, alfworld-play-tw) accept it. Same (task type, floorplan, seed,
GENERATOR_VERSION) -> byte-identical files.
"""
import contextlib
import json
import os
import random
import shutil
import sys
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

# Part of every cache path: bump it whenever the bytes generated for a given (task type, floorplan, seed) change.
GENERATOR_VERSION = 1

TASK_TYPES = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)

# Scene size kept per game (receptacles, distractor object types): small enough that fast-downward stays well under a
# second, large enough that the agent must search (ALFWorld's own scenes keep 10-40 receptacles).
RECEPTACLES_PER_GAME = (7, 11)
DISTRACTOR_TYPES_PER_GAME = (3, 6)
MAX_REJECTIONS_IN_A_ROW = 50  # a stream rejecting this many seeds in a row is broken, not unlucky
MAX_PLAN_LENGTH = 40  # a plan near the 50-turn episode limit would leave the agent no room; reject such games

# The utility receptacle each task type acts on (the goal's target receptacle may not be it).
UTILITY_RECEPTACLE = {
    "pick_clean_then_place_in_recep": "SinkBasin",
    "pick_heat_then_place_in_recep": "Microwave",
    "pick_cool_then_place_in_recep": "Fridge",
}
LAMP_TYPES = ("DeskLamp", "FloorLamp")
# Receptacle types a lamp stands on (the domain's ToggleObject needs the lamp in a receptacle at the agent's location).
LAMP_HOSTS = ("Desk", "SideTable", "Dresser", "CoffeeTable", "DiningTable", "Shelf", "TVStand")
# Receptacle types of a scene's object list that its openable.json has no instance of get this many synthetic ones.
SYNTHETIC_INSTANCES = {"StoveBurner": 4}

GENERATION_STATS = Counter()  # "planner_runs", "cache_hits", "generated", "rejected": tests and logs read it

_PDDL_LOCK = threading.Lock()


@contextlib.contextmanager
def pddl_guard():
    """Serialise every call into textworld's PDDL engine in this process and undo its side effects.

    textworld's PddlEnv.load / reset call `fast_downward.pddl2sas`, which overwrites sys.argv, swaps sys.stdout and
    flips module-global translator options, and every step renders its feedback with a module-level tatsu parser:
    two threads inside either at once corrupt each other (seen: "pop from empty list" from the parser with two
    episodes stepping in worker threads). ALFWorld instances of one process therefore load, reset and step one at a
    time (a step takes about 20 ms).
    """
    with _PDDL_LOCK:
        argv = sys.argv
        try:
            yield
        finally:
            sys.argv = argv


def default_cache_dir() -> Path:
    """Where generated games live: $OPENRLHF_EPO_ALFWORLD_GAMES, else $OPENRLHF_EPO_CACHE/alfworld-games (the
    project's cache, default ~/.cache/openrlhf-epo)."""
    env = os.environ.get("OPENRLHF_EPO_ALFWORLD_GAMES")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("OPENRLHF_EPO_CACHE")
    return (Path(cache).expanduser() if cache else Path.home() / ".cache" / "openrlhf-epo") / "alfworld-games"


def check_task_types(task_types: Optional[Sequence[str]]) -> List[str]:
    """The task types asked for (all six when None), or a ValueError naming the unknown ones and the accepted ones."""
    if task_types is None:
        return list(TASK_TYPES)
    if isinstance(task_types, str):
        task_types = [task_types]
    task_types = list(task_types)
    unknown = [t for t in task_types if t not in TASK_TYPES]
    if unknown:
        raise ValueError(f"unknown ALFWorld task type(s) {unknown!r}; accepted: {', '.join(TASK_TYPES)}")
    if not task_types:
        raise ValueError(f"task_types=[] is empty; accepted: {', '.join(TASK_TYPES)} (None = all six)")
    return task_types


def room_type(floorplan: int) -> str:
    from alfworld.gen import constants

    for name, numbers in constants.SCENE_TYPE.items():
        if floorplan in numbers:
            return name
    raise ValueError(f"FloorPlan{floorplan} is not an ALFWorld scene; accepted: 1-30, 201-230, 301-330, 401-430")


# ----------------------------------------------------------------------------------------------------------- scenes
@dataclass(frozen=True)
class Receptacle:
    alfred_id: str  # e.g. "Cabinet|+00.38|+00.37|-01.24" (ALFRED's id, before mangling)
    rtype: str  # e.g. "Cabinet", "SinkBasin"
    point: Tuple[int, int, int, int]  # where the agent stands: grid x, grid z, rotation / 90, camera horizon


@dataclass(frozen=True)
class Scene:
    floorplan: int
    room: str
    receptacles: Tuple[Receptacle, ...]  # sorted by id
    portable: Tuple[str, ...]  # object types present that some present receptacle can hold (sorted)
    lamps: Tuple[str, ...]  # toggleable lamp types present


def _layouts_dir() -> Path:
    import alfworld.gen

    return Path(alfworld.gen.__file__).parent / "layouts"


def _point(values) -> Tuple[int, int, int, int]:
    x, z, rotation, horizon = values
    return (int(round(x / 0.25)), int(round(z / 0.25)), int(rotation) // 90 % 4, int(horizon))


_SCENES: Dict[int, Scene] = {}


def load_scene(floorplan: int) -> Scene:
    """A scene from the wheel's layout files; receptacle types listed without an instance get synthetic instances."""
    if floorplan in _SCENES:
        return _SCENES[floorplan]
    from alfworld.gen import constants

    room = room_type(floorplan)
    folder = _layouts_dir()
    object_types = json.loads((folder / f"FloorPlan{floorplan}-objects.json").read_text())
    openable = json.loads((folder / f"FloorPlan{floorplan}-openable.json").read_text())
    holds = constants.VAL_RECEPTACLE_OBJECTS
    static = constants.RECEPTACLES - constants.MOVABLE_RECEPTACLES_SET

    receptacles = []
    for alfred_id, values in sorted(openable.items()):
        parts = alfred_id.split("|")
        if len(parts) == 5:  # "Sink|x|y|z|SinkBasin": the basin is the receptacle
            if (parts[0], parts[-1]) not in (("Sink", "SinkBasin"), ("Bathtub", "BathtubBasin")):
                continue  # e.g. "Bathtub|..|SinkBasin" (FloorPlan4xx): would read "bathtubbasin" yet act as a sink
            rtype = parts[-1]
        else:
            rtype = parts[0]
        if rtype in static and rtype in holds:
            receptacles.append(Receptacle(alfred_id, rtype, _point(values)))
    present = {r.rtype for r in receptacles}
    for rtype in sorted(set(object_types) & static & set(holds)):
        if rtype in present or rtype in ("SinkBasin", "BathtubBasin"):
            continue  # basins only count through their Sink|..|SinkBasin instance (ALFWorld's naming)
        for k in range(SYNTHETIC_INSTANCES.get(rtype, 1)):
            # No recorded point: a fixed pseudo point per (scene, type, instance), kept off the recorded grid.
            h = sum(ord(c) for c in f"{floorplan}{rtype}{k}")
            point = (100 + h % 50, 100 + k, h % 4, 30)
            receptacles.append(Receptacle(f"{rtype}|gen{k + 1}", rtype, point))
    receptacles.sort(key=lambda r: r.alfred_id)
    present = {r.rtype for r in receptacles}
    portable = sorted(
        o for o in set(object_types) if o in constants.OBJECTS_SET and any(o in holds[r] for r in present)
    )
    lamps = tuple(t for t in LAMP_TYPES if t in object_types)
    scene = Scene(floorplan, room, tuple(receptacles), tuple(portable), lamps)
    _SCENES[floorplan] = scene
    return scene


def _fits(obj: str, rtype: str) -> bool:
    from alfworld.gen import constants

    return obj in constants.VAL_RECEPTACLE_OBJECTS.get(rtype, ())


def _action_set(name: str):
    from alfworld.gen import constants

    return constants.VAL_ACTION_OBJECTS[name]


def task_candidates(scene: Scene, task_type: str) -> List[Tuple[str, str, str]]:
    """Every (object_target, parent_target, toggle_target) the scene supports for the task type, sorted.

    The target object must have a home of another type than the goal receptacle (else the game could start won), and
    the goal receptacle is never the utility one (ALFRED's "heat then place" never places into the microwave).
    """
    from alfworld.gen import constants

    if scene.room not in constants.GOALS_VALID[task_type]:
        return []
    rtypes = sorted({r.rtype for r in scene.receptacles})
    if task_type == "look_at_obj_in_light":
        hosts = [t for t in LAMP_HOSTS if t in rtypes]
        if not hosts:
            return []
        return [(o, "", lamp) for lamp in scene.lamps for o in scene.portable if any(_fits(o, r) for r in rtypes)]
    utility = UTILITY_RECEPTACLE.get(task_type)
    if utility and utility not in rtypes:
        return []
    needs = {
        "pick_clean_then_place_in_recep": "Cleanable",
        "pick_heat_then_place_in_recep": "Heatable",
        "pick_cool_then_place_in_recep": "Coolable",
    }.get(task_type)
    out = []
    for obj in scene.portable:
        if needs and obj not in _action_set(needs):
            continue
        for parent in rtypes:
            if parent == utility or not _fits(obj, parent):
                continue
            not_home = {parent, "Fridge"} if utility == "Fridge" else {parent}
            if any(r not in not_home and _fits(obj, r) for r in rtypes):
                out.append((obj, parent, ""))
    return out


def feasible_floorplans(task_type: str, floorplans: Sequence[int]) -> List[int]:
    """The floorplans (of those given) whose scene supports at least one game of the task type."""
    return [fp for fp in floorplans if task_candidates(load_scene(fp), task_type)]


# ------------------------------------------------------------------------------------------------------------- games
@dataclass(frozen=True)
class GameKey:
    task_type: str
    floorplan: int
    seed: int

    def folder(self, cache_dir: Path) -> Path:
        version = f"v{GENERATOR_VERSION}"
        return Path(cache_dir) / version / self.task_type / f"FloorPlan{self.floorplan}" / f"seed-{self.seed}"


def _mangle(alfred_id: str) -> str:
    """ALFRED's id mangling (PlannedGameState.fix_pddl_str_chars): "Mug|+01.00|.." -> "Mug_bar__plus_01_dot_00.."."""
    from alfworld.gen.utils.py_util import multireplace

    return multireplace(alfred_id, {"-": "_minus_", "|": "_bar_", "+": "_plus_", ".": "_dot_", ",": "_comma_"})


def _loc(point) -> str:
    return _mangle("loc|%d|%d|%d|%d" % point)


def _coord(rng: random.Random) -> str:
    return "%+06.2f" % round(rng.uniform(-3.5, 3.5), 2)


def _sample_layout(key: GameKey):
    """Draw the task's targets, the kept receptacles and the object placements; None if the scene cannot host it."""
    from alfworld.gen import constants, goal_library

    scene = load_scene(key.floorplan)
    candidates = task_candidates(scene, key.task_type)
    if not candidates:
        return None
    # str seeds hash with sha512 (random.seed version 2): the same stream in every process, whatever PYTHONHASHSEED.
    rng = random.Random(f"openrlhf-epo/alfworld/v{GENERATOR_VERSION}/{key.task_type}/{key.floorplan}/{key.seed}")
    obj, parent, toggle = rng.choice(candidates)
    utility = UTILITY_RECEPTACLE.get(key.task_type)
    by_type: Dict[str, List[Receptacle]] = {}
    for r in scene.receptacles:
        by_type.setdefault(r.rtype, []).append(r)

    kept: List[Receptacle] = []

    def keep(r: Receptacle):
        if r not in kept:
            kept.append(r)

    if parent:
        pool = by_type[parent]
        for r in rng.sample(pool, rng.randint(1, min(2, len(pool)))):
            keep(r)
    if utility:
        keep(rng.choice(by_type[utility]))
    lamp_host = None
    if toggle:
        lamp_host = rng.choice([r for t in LAMP_HOSTS for r in by_type.get(t, [])])
        keep(lamp_host)

    # Homes of the target instances: never the goal's receptacle type; for cooling, never the fridge (ALFRED counts
    # an object found in the fridge as already cool).
    homes = [
        r for r in scene.receptacles
        if r.rtype != parent and _fits(obj, r.rtype) and not (utility == "Fridge" and r.rtype == "Fridge")
    ]
    n_targets = rng.randint(2, 3) if key.task_type == "pick_two_obj_and_place" else rng.randint(1, 3)
    target_homes = [rng.choice(homes) for _ in range(n_targets)]
    for r in target_homes:
        keep(r)

    size = rng.randint(*RECEPTACLES_PER_GAME)
    others = [r for r in scene.receptacles if r not in kept]
    rng.shuffle(others)
    for r in others[: max(0, size - len(kept))]:
        keep(r)
    kept.sort(key=lambda r: r.alfred_id)

    placements: List[Tuple[str, Receptacle]] = [(obj, r) for r in target_homes]  # (object type, receptacle)
    distractor_pool = [o for o in scene.portable if o != obj and any(_fits(o, r.rtype) for r in kept)]
    n_distractors = min(len(distractor_pool), rng.randint(*DISTRACTOR_TYPES_PER_GAME))
    for o in sorted(rng.sample(distractor_pool, n_distractors)):
        spots = [r for r in kept if _fits(o, r.rtype)]
        for _ in range(rng.randint(1, 2)):
            placements.append((o, rng.choice(spots)))
    if toggle:
        placements.append((toggle, lamp_host))

    # Object ids in ALFRED's form: type and a (made-up, unique) position.
    objects = []
    used = set()
    for otype, r in placements:
        while True:
            alfred_id = f"{otype}|{_coord(rng)}|{_coord(rng)}|{_coord(rng)}"
            if alfred_id not in used:
                break
        used.add(alfred_id)
        objects.append((alfred_id, otype, r))

    # One distinct location per kept receptacle (on a shared point, going to one receptacle would let the agent open
    # or use the other too), one for the agent's start, which no receptacle occupies ("You are in the middle of ...").
    points, taken = {}, set()
    for r in kept:
        p = r.point
        while p in taken:
            p = (p[0], p[1], p[2], p[3] + 1)
        taken.add(p)
        points[r.alfred_id] = p
    while True:
        start = (rng.randint(-12, 12), rng.randint(-12, 12), rng.randint(0, 3), rng.choice((0, 30, 60)))
        if start not in taken:
            break

    template = rng.choice(goal_library.gdict[key.task_type]["templates"])
    sentence = template.format(obj=obj.lower(), recep=parent.lower(), toggle=toggle.lower(), mrecep="")
    return dict(obj=obj, parent=parent, toggle=toggle, kept=kept, objects=objects, points=points, start=start,
                sentence=sentence)


def _problem_pddl(key: GameKey, layout) -> str:
    """The PDDL problem, in the form of ALFRED's PlannedGameState.state_to_pddl (mangled ids, same predicates)."""
    from alfworld.gen import constants, goal_library
    from alfworld.gen.utils.py_util import multireplace

    kept, objects, points = layout["kept"], layout["objects"], layout["points"]
    static = constants.RECEPTACLES - constants.MOVABLE_RECEPTACLES_SET
    otypes = sorted(constants.OBJECTS_SET - static)  # every type constant, as ALFRED declares them
    rtypes = sorted(static)
    kept_rtypes = sorted({r.rtype for r in kept})
    present_otypes = sorted({otype for _, otype, _ in objects})
    actions = constants.VAL_ACTION_OBJECTS
    toggle = layout["toggle"]

    decl = ["agent1 - agent"]
    decl += [f"{t}Type - otype" for t in otypes]
    decl += [f"{t}Type - rtype" for t in rtypes]
    decl += sorted(f"{_mangle(i)} - object" for i, _, _ in objects)
    decl += [f"{_mangle(r.alfred_id)} - receptacle" for r in kept]
    decl += sorted({f"{_loc(p)} - location" for p in points.values()} | {f"{_loc(layout['start'])} - location"})

    init = ["(= (total-cost) 0)"]
    init += [f"(receptacleType {_mangle(r.alfred_id)} {r.rtype}Type)" for r in kept]
    init += [f"(openable {_mangle(r.alfred_id)})" for r in kept if r.rtype in constants.OPENABLE_CLASS_SET]
    init += [f"(receptacleAtLocation {_mangle(r.alfred_id)} {_loc(points[r.alfred_id])})" for r in kept]
    init += [f"(canContain {rt}Type {ot}Type)" for rt in kept_rtypes for ot in present_otypes if _fits(ot, rt)]
    init.append(f"(atLocation agent1 {_loc(layout['start'])})")
    for alfred_id, otype, r in sorted(objects):
        o = _mangle(alfred_id)
        init.append(f"(objectType {o} {otype}Type)")
        init.append(f"(inReceptacle {o} {_mangle(r.alfred_id)})")
        init.append(f"(objectAtLocation {o} {_loc(points[r.alfred_id])})")
        if otype == toggle:
            init.append(f"(toggleable {o})")  # lamps stay off and cannot be picked up
            continue
        init.append(f"(pickupable {o})")
        if otype in constants.MOVABLE_RECEPTACLES_SET:
            init.append(f"(isReceptacleObject {o})")
        for flag, name in (("cleanable", "Cleanable"), ("heatable", "Heatable"), ("coolable", "Coolable"),
                           ("sliceable", "Sliceable")):
            if otype in actions[name]:
                init.append(f"({flag} {o})")

    goal = goal_library.gdict[key.task_type]["pddl"].format(
        obj=layout["obj"], recep=layout["parent"], toggle=toggle, mrecep=""
    )
    # ALFRED writes its goal templates with '#' for '-' (PlannedGameState.fix_pddl_str_chars).
    goal = multireplace(goal, {"-": "_minus_", "#": "-", "|": "_bar_", "+": "_plus_", ".": "_dot_", ",": "_comma_"})
    name = f"plan_gen_v{GENERATOR_VERSION}_{key.task_type}_FloorPlan{key.floorplan}_{key.seed}"
    pad = "\n        "
    return (
        f"(define (problem {name})\n    (:domain alfred)\n"
        f"    (:objects{pad}{pad.join(decl)}\n    )\n"
        f"    (:init{pad}{pad.join(init)}\n    )\n"
        f"{goal.strip()}\n"
    )


def builtin_logic() -> Tuple[str, str]:
    """(PDDL domain, grammar) shipped in the alfworld wheel."""
    from alfworld.info import ALFRED_PDDL_PATH, ALFRED_TWL2_PATH

    return Path(ALFRED_PDDL_PATH).read_text(), Path(ALFRED_TWL2_PATH).read_text()


_FREE_PDDL_ENVS: List = []  # textworld PddlEnvs released by closed planners / environments, ready for reuse
_FREE_LOCK = threading.Lock()


def acquire_pddl_env(infos):
    """A textworld PddlEnv asking for `infos`, recycled when a closed owner left one.

    Every PddlEnv loads its own copy of fast-downward's library (33 MB; the library keeps one task in globals, so
    copies cannot be shared by live games) and textworld never unloads it. Unloading is no way out: once a process has
    loaded a second copy, `fast_downward.close_lib` (dlclose) of any copy but the first makes the process segfault at
    exit (reproduced here). So copies are recycled, never unloaded: a process holds as many as it ever had environments
    open at the same time. The next owner always loads a game before resetting, which replaces all of the env's state.
    """
    with _FREE_LOCK:
        env = _FREE_PDDL_ENVS.pop() if _FREE_PDDL_ENVS else None
    if env is None:
        from textworld.envs.pddl import PddlEnv

        return PddlEnv(infos)
    env.request_infos = infos
    return env


def release_pddl_env(env) -> None:
    with _FREE_LOCK:
        _FREE_PDDL_ENVS.append(env)


class Planner:
    """textworld's PDDL environment behind ALFWorld's demangler, reused across games.

    `solve` asks the environment for its walkthrough, which is fast-downward's plan from `PddlState.replan`, the very
    call behind ALFWorld's planner expert (AlfredExpert(PLANNER) reads `policy_commands`, also `replan`), then replays
    it through the environment: the plan must be admissible step by step and end in `won`.
    """

    def __init__(self):
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler

        infos = textworld.EnvInfos(admissible_commands=True, won=True, extras=["walkthrough"])
        self._pddl = acquire_pddl_env(infos)
        self._env = AlfredDemangler(shuffle=False)(self._pddl)

    def solve(self, game: dict) -> Tuple[Optional[List[str]], str]:
        """(plan, "") when the game is solvable and not already won; else (None, why)."""
        GENERATION_STATS["planner_runs"] += 1
        with pddl_guard():
            self._env.load(dict(game, walkthrough=None))
            state = self._env.reset()
        if state["won"]:
            return None, "won before any action"
        plan = list(state["extra.walkthrough"] or [])
        if not plan:
            return None, "the planner found no plan"
        if len(plan) > MAX_PLAN_LENGTH:
            return None, f"plan of {len(plan)} steps > {MAX_PLAN_LENGTH}"
        for i, command in enumerate(plan):
            if command not in state["admissible_commands"]:
                return None, f"plan step {i} {command!r} is not admissible"
            state, _, _ = self._env.step(command)
        if not state["won"]:
            return None, "replaying the plan does not win"
        return plan, ""

    def close(self):
        if self._pddl is not None:
            pddl, self._pddl, self._env = self._pddl, None, None
            release_pddl_env(pddl)


def _dumps(data) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def build_game(key: GameKey, planner: Planner) -> Tuple[Optional[Dict[str, str]], str]:
    """The files of one game (name -> text), or (None, why) if the scene cannot host it or the planner fails."""
    if key.task_type not in TASK_TYPES:
        check_task_types([key.task_type])
    layout = _sample_layout(key)
    if layout is None:
        return None, f"FloorPlan{key.floorplan} ({room_type(key.floorplan)}) cannot host {key.task_type}"
    domain, grammar = builtin_logic()
    problem = _problem_pddl(key, layout)
    game = {
        "pddl_domain": domain,
        "grammar": grammar.replace("UNKNOWN GOAL", layout["sentence"]),
        "pddl_problem": problem,
        "solvable": True,
        "walkthrough": None,
    }
    plan, why = planner.solve(game)
    if plan is None:
        return None, why
    game["walkthrough"] = plan
    traj = {
        "task_type": key.task_type,
        "task_desc": layout["sentence"],
        "pddl_params": {
            "object_target": layout["obj"],
            "parent_target": layout["parent"],
            "toggle_target": layout["toggle"],
            "mrecep_target": "",
            "object_sliced": False,
        },
        "scene": {"floor_plan": f"FloorPlan{key.floorplan}", "scene_num": key.floorplan, "random_seed": key.seed},
        "generator": {"name": "openrlhf_epo.envs.alfworld_games", "version": GENERATOR_VERSION},
        "plan_length": len(plan),
    }
    return {"game.tw-pddl": _dumps(game), "initial_state.pddl": problem, "traj_data.json": _dumps(traj)}, ""


REJECTED = "rejected.json"


def cached_game(key: GameKey, cache_dir: Optional[Path] = None) -> Tuple[Optional[Path], bool]:
    """(folder, True) for a cached playable game, (None, True) for a cached rejection, (None, False) if not cached."""
    folder = key.folder(Path(cache_dir) if cache_dir else default_cache_dir())
    if (folder / "game.tw-pddl").is_file():
        return folder, True
    if (folder / REJECTED).is_file():
        return None, True
    return None, False


def generate_game(key: GameKey, cache_dir: Optional[Path] = None, planner: Optional[Planner] = None) -> Optional[Path]:
    """The folder of the game `key` (generated on a cache miss), or None if that seed gives no solvable game.

    Rejections are cached too, so a second call never runs the planner. Files are written to a temporary folder and
    renamed into place, so concurrent generators never see half a game.
    """
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    folder, hit = cached_game(key, cache_dir)
    if hit:
        GENERATION_STATS["cache_hits"] += 1
        return folder
    own = planner is None
    planner = planner or Planner()
    try:
        files, why = build_game(key, planner)
    finally:
        if own:
            planner.close()
    if files is None:
        GENERATION_STATS["rejected"] += 1
        files = {REJECTED: _dumps({"reason": why, "task_type": key.task_type, "floorplan": key.floorplan,
                                   "seed": key.seed, "generator_version": GENERATOR_VERSION})}
    else:
        GENERATION_STATS["generated"] += 1
    folder = key.folder(cache_dir)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    for name, text in files.items():
        (tmp / name).write_text(text)
    try:
        os.rename(tmp, folder)
    except OSError:  # another process won the race; its files are the same bytes
        shutil.rmtree(tmp, ignore_errors=True)
    return folder if "game.tw-pddl" in files else None


def generate_games(streams: Dict[str, Iterator[GameKey]], counts: Dict[str, int], cache_dir: Optional[Path] = None,
                   progress: bool = True, desc: str = "ALFWorld games") -> Dict[str, List[Tuple[GameKey, Path]]]:
    """counts[t] playable games from each key stream streams[t] (cache first), under one tqdm bar.

    A stream's rejected keys are skipped; one planner serves the whole run and is created at the first cache miss.
    """
    from tqdm import tqdm

    out: Dict[str, List[Tuple[GameKey, Path]]] = {t: [] for t in counts}
    planner: Optional[Planner] = None
    bar = tqdm(total=sum(counts.values()), desc=desc, unit="game", disable=not progress, leave=False)
    try:
        for task_type, count in counts.items():
            rejected_in_a_row = 0
            for key in streams[task_type]:
                if len(out[task_type]) >= count:
                    break
                if not cached_game(key, cache_dir)[1]:
                    planner = planner or Planner()
                folder = generate_game(key, cache_dir, planner)
                if folder is None:
                    rejected_in_a_row += 1
                    if rejected_in_a_row >= MAX_REJECTIONS_IN_A_ROW:
                        raise RuntimeError(
                            f"{MAX_REJECTIONS_IN_A_ROW} {task_type} games in a row were rejected (last: {key}); "
                            f"see the rejected.json files under {key.folder(cache_dir or default_cache_dir()).parent}"
                        )
                    continue
                rejected_in_a_row = 0
                out[task_type].append((key, folder))
                bar.update(1)
    finally:
        bar.close()
        if planner is not None:
            planner.close()
    return out
