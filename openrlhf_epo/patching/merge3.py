"""A three-way merge of line lists, diff3-style: what `patch port` uses to carry each patch onto another release.

Given a common ancestor (base) and two descendants (ours, theirs), the lines that neither side changed are the
anchors; between two anchors, a region that only one side changed takes that side, a region both sides changed the
same way takes it once, and a region both sides changed differently is a conflict. Like diff3 and `git merge-file`,
edits on adjacent lines (no unchanged base line between them) are one region, hence a conflict when both sides made
them: the merge never guesses how two neighbouring edits combine. There is no fuzz.

One case a line-by-line merge gets silently wrong: ours moves (copies) base lines to a new place, e.g. a refactor
that moves upstream's block into a helper, and theirs changed those lines where they were. The removal conflicts,
but the copy looks like a clean insertion and would carry ours' old version of the lines into theirs. So a region
only ours changed is a conflict too when it holds a run of MOVED_RUN consecutive lines equal (indentation aside) to
base lines theirs changed; `Conflict.moved_from` names them.

The line matching is difflib's (longest matching blocks, with autojunk off: a release's files are long enough for
difflib's popular-line heuristic to drop blank lines and `)` from the matching otherwise).
"""
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Dict, List, Optional, Sequence, Set, Tuple, Union

MOVED_RUN = 3  # consecutive copied lines that make a move (fewer: `)` / `else:` / blank lines match by chance)


@dataclass(frozen=True)
class Conflict:
    """A region both sides changed differently. Ranges are half-open line indices into base, ours and theirs."""

    base: Tuple[int, int]
    ours: Tuple[int, int]
    theirs: Tuple[int, int]
    base_lines: Tuple[str, ...]
    ours_lines: Tuple[str, ...]
    theirs_lines: Tuple[str, ...]
    moved_from: Optional[Tuple[int, int]] = None  # base lines theirs changed that ours copies here (theirs kept
    # this region as it was)


@dataclass
class MergeResult:
    """The merged lines, with each conflict as a Conflict at its place in `chunks`."""

    chunks: List[Union[List[str], Conflict]]

    @property
    def conflicts(self) -> List[Conflict]:
        return [c for c in self.chunks if isinstance(c, Conflict)]

    @property
    def lines(self) -> List[str]:
        if self.conflicts:
            raise ValueError(f"the merge has {len(self.conflicts)} conflict(s): there are no merged lines to take")
        return [line for chunk in self.chunks for line in chunk]


def _matches(base: Sequence[str], other: Sequence[str]) -> List[Tuple[int, int, int]]:
    """(base start, other start, length) of the lines the two share, in order, ending with a zero-length sentinel."""
    return [tuple(m) for m in SequenceMatcher(None, base, other, autojunk=False).get_matching_blocks()]


def _sync_regions(base: Sequence[str], ours: Sequence[str], theirs: Sequence[str]) -> List[Tuple[int, int, int, int]]:
    """(base start, ours start, theirs start, length): base lines that both sides kept, as runs, ending at the ends."""
    ours_blocks, theirs_blocks = _matches(base, ours), _matches(base, theirs)
    regions = []
    i = j = 0
    while i < len(ours_blocks) - 1 and j < len(theirs_blocks) - 1:
        ob, oo, on = ours_blocks[i]
        tb, tt, tn = theirs_blocks[j]
        start, end = max(ob, tb), min(ob + on, tb + tn)  # the overlap of the two kept base ranges
        if start < end:
            regions.append((start, oo + start - ob, tt + start - tb, end - start))
        if ob + on < tb + tn:
            i += 1
        else:
            j += 1
    regions.append((len(base), len(ours), len(theirs), 0))  # the end, so the last changed region is closed
    return regions


def _runs_theirs_changed(base: Sequence[str], changed: Set[int]) -> Dict[Tuple[str, ...], int]:
    """{MOVED_RUN consecutive base lines, stripped: the first's index} for the runs that hold a line theirs changed
    and no blank one."""
    runs = {}
    for k in range(len(base) - MOVED_RUN + 1):
        window = tuple(line.strip() for line in base[k : k + MOVED_RUN])
        if all(window) and any(i in changed for i in range(k, k + MOVED_RUN)):
            runs.setdefault(window, k)
    return runs


def _copied_run(lines: Sequence[str], runs: Dict[Tuple[str, ...], int]) -> Optional[Tuple[int, int]]:
    """The base range of the first run of `runs` that `lines` holds (indentation aside), None if none."""
    for k in range(len(lines) - MOVED_RUN + 1):
        start = runs.get(tuple(line.strip() for line in lines[k : k + MOVED_RUN]))
        if start is not None:
            return start, start + MOVED_RUN
    return None


def merge3(base: Sequence[str], ours: Sequence[str], theirs: Sequence[str]) -> MergeResult:
    """Merge the changes base -> ours and base -> theirs (lists of lines, endings included)."""
    regions = []  # (base, ours, theirs ranges) of the changed regions between the anchors, then the anchors' lines
    b = o = t = 0  # the ends of the last anchor
    for sb, so, st, length in _sync_regions(base, ours, theirs):
        regions.append(((b, sb), (o, so), (t, st), list(base[sb : sb + length])))
        b, o, t = sb + length, so + length, st + length
    changed = {i for (b, sb), _, (t, st), _ in regions if list(theirs[t:st]) != list(base[b:sb]) for i in range(b, sb)}
    runs = _runs_theirs_changed(base, changed) if changed else {}
    chunks: List[Union[List[str], Conflict]] = []
    for (b, sb), (o, so), (t, st), anchor in regions:
        base_part, ours_part, theirs_part = list(base[b:sb]), list(ours[o:so]), list(theirs[t:st])
        if ours_part or theirs_part or base_part:
            moved = _copied_run(ours_part, runs) if ours_part != base_part and theirs_part == base_part else None
            if ours_part == base_part:
                chunks.append(theirs_part)  # only theirs changed it (or neither)
            elif moved is None and (theirs_part == base_part or ours_part == theirs_part):
                chunks.append(ours_part)  # only ours changed it, or both the same way
            else:
                chunks.append(Conflict((b, sb), (o, so), (t, st), tuple(base_part), tuple(ours_part),
                                       tuple(theirs_part), moved_from=moved))
        chunks.append(anchor)
    return MergeResult([c for c in chunks if isinstance(c, Conflict) or c])
