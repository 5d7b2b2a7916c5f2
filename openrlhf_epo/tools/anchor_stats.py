"""`openrlhf-epo anchor-stats {scienceworld,alfworld,signpost}`: how often GiGPO's anchor states repeat in an environment.

GiGPO's step-level advantage exists only for turns whose anchor state (the observation the turn acted on, matched by
`agent.anchor_state.anchor_key`) is shared with another turn of the same group. This plays `--group` episodes of the uniformly
random admissible agent on each of `--n` train instances (the groups of a GRPO / GiGPO run before any learning) and
prints the share of turns in step groups of two or more, over all turns and over the turns after the first (every
group's first turns share the reset state), with the mean step-group size. JSON with `--out`.
"""
import json
import random
from pathlib import Path
from typing import Dict, Optional

from tqdm import tqdm

from openrlhf_epo.agent.anchor_state import anchor_key, step_group_stats, step_groups
from openrlhf_epo.envs.base import DEFAULT_MAX_TURNS, ENVIRONMENTS, TURN_LIMITS
from openrlhf_epo.envs.registry import make_env
from openrlhf_epo.tools.data import task_specs
from openrlhf_epo.tools.sft_data import random_plan


def anchor_stats(env_name: str, n: int, group: int, seed: int = 0, max_turns: Optional[int] = None,
                 progress: bool = True) -> Dict[str, float]:
    """Step-group statistics of `group` random admissible episodes on each of n train instances of env_name."""
    if n < 1:
        raise ValueError(f"--n {n} must be >= 1")
    if group < 2:
        raise ValueError(f"--group {group} must be >= 2: a step group needs two trajectories")
    turns = max_turns or DEFAULT_MAX_TURNS[env_name]
    rng = random.Random(seed)
    specs = task_specs(env_name, "train", n, seed, None)
    group_ids, anchors, later_ids, later_anchors = [], [], [], []
    env = make_env(env_name)
    try:
        for g, spec in enumerate(tqdm(specs, desc=f"{env_name} random groups", disable=not progress)):
            for _ in range(group):
                _plan, seen = random_plan(env, spec, turns, rng)  # seen[t]: the observation turn t acted on
                keys = [anchor_key(text) for text in seen]
                group_ids += [g] * len(keys)
                anchors += keys
                later_ids += [g] * (len(keys) - 1)
                later_anchors += keys[1:]
    finally:
        env.close()
    overall = step_group_stats(step_groups(group_ids, anchors))
    after_first = step_group_stats(step_groups(later_ids, later_anchors))
    return {"env": env_name, "instances": n, "group": group, "max_turns": turns, "turns": len(anchors),
            "shared_turn_share": overall["gigpo/shared_turn_share"],
            "shared_turn_share_after_first": after_first["gigpo/shared_turn_share"],
            "step_group_size": overall["gigpo/step_group_size"]}


def add_parser(sub) -> None:
    parser = sub.add_parser("anchor-stats", help="how often GiGPO's anchor states repeat: random admissible groups")
    parser.add_argument("env", choices=list(ENVIRONMENTS))
    parser.add_argument("--n", type=int, default=40, help="train instances, one group each (default: 40)")
    parser.add_argument("--group", type=int, default=8, help="episodes per instance (GiGPO paper: 8) (default: 8)")
    parser.add_argument("--max-turns", type=int, default=None,
                        help=f"turn limit (default: the environment's, {TURN_LIMITS})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, metavar="FILE.json")
    parser.set_defaults(func=cmd_anchor_stats)


def cmd_anchor_stats(args) -> int:
    stats = anchor_stats(args.env, args.n, args.group, args.seed, args.max_turns)
    print(f"{stats['env']}: {stats['instances']} instances x {stats['group']} random admissible episodes, "
          f"{stats['turns']} turns (limit {stats['max_turns']})")
    print(f"  turns in a step group of >= 2: {stats['shared_turn_share']:.3f} "
          f"(after the first turn: {stats['shared_turn_share_after_first']:.3f}); "
          f"mean step-group size {stats['step_group_size']:.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps(stats, indent=1) + "\n")
    return 0
