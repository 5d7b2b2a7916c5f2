"""GiGPO's anchor states (Feng et al. 2025, section 4.2): the key of the observation a turn acted on, and the step
groups of the turns that share one. Pure Python: the engine computes the keys of every per-turn sample
(agent/samples.py), the driver's GiGPO advantage (agent/gigpo.py) and `openrlhf-epo anchor-stats` group them.
"""
import hashlib
import re
from collections import defaultdict
from typing import Dict, List, Sequence, Tuple

_SPACE = re.compile(r"\s+")


def anchor_key(observation: str) -> int:
    """The anchor state of an observation as a 56-bit integer (it rides to the driver as an int64 sample field):
    the text with runs of whitespace collapsed and the ends stripped, hashed. Two turns share a state exactly when
    their normalised observations are equal (a collision between two different observations of one group is about
    n_states^2 / 2^57 likely)."""
    text = _SPACE.sub(" ", observation).strip()
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=7).digest(), "big")


def step_groups(group_ids: Sequence[int], anchors: Sequence[int]) -> Dict[Tuple[int, int], List[int]]:
    """{(group, anchor state): the rows of its turns}: eq. 6's step groups, never across task groups."""
    groups: Dict[Tuple[int, int], List[int]] = defaultdict(list)
    for row, (group, anchor) in enumerate(zip(group_ids, anchors)):
        groups[(int(group), int(anchor))].append(row)
    return groups


def step_group_stats(groups: Dict[Tuple[int, int], List[int]]) -> Dict[str, float]:
    """gigpo/step_group_size: mean turns per step group; gigpo/shared_turn_share: the share of turns whose step group
    holds two or more (the turns that get a step-level signal)."""
    sizes = [len(rows) for rows in groups.values()]
    turns = sum(sizes)
    return {"gigpo/step_group_size": turns / len(sizes) if sizes else 0.0,
            "gigpo/shared_turn_share": sum(s for s in sizes if s > 1) / turns if turns else 0.0}
