"""A three-way merge of line lists, diff3-style: what `patch port` uses to carry each patch onto another release.

Given a common ancestor (base) and two descendants (ours, theirs), the lines that neither side changed are the
anchors; between two anchors, a region that only one side changed takes that side, a region both sides changed the
same way takes it once, and a region both sides changed differently is a conflict. Like diff3 and `git merge-file`,
edits on adjacent lines (no unchanged base line between them) are one region, hence a conflict when both sides made
them: the merge never guesses how two neighbouring edits combine. There is no fuzz.

The line matching is difflib's (longest matching blocks, with autojunk off: a release's files are long enough for
difflib's popular-line heuristic to drop blank lines and `)` from the matching otherwise).
"""
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import List, Sequence, Tuple, Union


@dataclass(frozen=True)
class Conflict:
    """A region both sides changed differently. Ranges are half-open line indices into base, ours and theirs."""

    base: Tuple[int, int]
    ours: Tuple[int, int]
    theirs: Tuple[int, int]
    base_lines: Tuple[str, ...]
    ours_lines: Tuple[str, ...]
    theirs_lines: Tuple[str, ...]


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


def merge3(base: Sequence[str], ours: Sequence[str], theirs: Sequence[str]) -> MergeResult:
    """Merge the changes base -> ours and base -> theirs (lists of lines, endings included)."""
    chunks: List[Union[List[str], Conflict]] = []
    b = o = t = 0  # the ends of the last anchor
    for sb, so, st, length in _sync_regions(base, ours, theirs):
        base_part, ours_part, theirs_part = base[b:sb], ours[o:so], theirs[t:st]
        if ours_part or theirs_part or base_part:
            if list(ours_part) == list(base_part):
                chunks.append(list(theirs_part))  # only theirs changed it (or neither)
            elif list(theirs_part) == list(base_part) or list(ours_part) == list(theirs_part):
                chunks.append(list(ours_part))  # only ours changed it, or both the same way
            else:
                chunks.append(
                    Conflict((b, sb), (o, so), (t, st), tuple(base_part), tuple(ours_part), tuple(theirs_part))
                )
        chunks.append(list(base[sb : sb + length]))
        b, o, t = sb + length, so + length, st + length
    return MergeResult([c for c in chunks if isinstance(c, Conflict) or c])
