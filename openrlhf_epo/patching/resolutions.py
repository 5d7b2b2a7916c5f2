"""Hand resolutions of the port's conflicts, kept in a text file so that a port can be rerun and reproduce its series.

When `patch port` meets a region that both the series and the new release changed, it writes every such region into
a file in diff3's layout, one block each, and stops. The maintainer writes under each block the lines that take the
region's place, and reruns the port with `--resolutions FILE`; the successful port keeps the resolutions it used as
`port-resolutions` in the new series folder, so the next port onto that release (after the series changed) starts
from them. A resolution applies where the file and all three sides match exactly: when the series or the release
changes that region, the conflict is new and is reported again.

    @@@@@@@ openrlhf/cli/train_ppo_ray.py: 0010-policy-loss-per-trajectory.patch hunk #1 (@@ -448,9 +448,10 @@)
    # optional note lines: why the resolution is what it is (copied into the series file's comments)
    <<<<<<< the series: openrlhf 0.11.2 through 0010-policy-loss-per-trajectory.patch
    ...the region in the patched old release...
    ||||||| pristine openrlhf 0.11.2
    ...the region in the old release...
    ======= pristine openrlhf 0.11.1
    ...the region in the new release...
    >>>>>>> resolved
    ...the lines that replace the region (a block without this section is unresolved)...

Lines keep their endings; a last line without one is followed by "\\ No newline at end of file", as in a diff.
"""
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from .series import PatchError
from .unified_diff import NO_NEWLINE, diff_lines

BLOCK = "@@@@@@@"
OURS, BASE, THEIRS, RESOLVED = "<<<<<<<", "|||||||", "=======", ">>>>>>>"
Key = Tuple[str, Tuple[str, ...], Tuple[str, ...], Tuple[str, ...]]  # path, ours, base, theirs


@dataclass
class Resolution:
    """One region of one file: the three sides the merge saw, and the lines a maintainer chose (None: not yet)."""

    path: str
    where: str  # which patch and hunk of the series, for people: not part of the match
    ours: Tuple[str, ...]
    base: Tuple[str, ...]
    theirs: Tuple[str, ...]
    resolved: Optional[Tuple[str, ...]] = None
    note: List[str] = field(default_factory=list)
    labels: Tuple[str, str, str] = ("the series", "base", "target")  # the marker lines' text, for people

    @property
    def key(self) -> Key:
        return (self.path, self.ours, self.base, self.theirs)


def _section(marker: str, label: str, lines: Iterable[str]) -> List[str]:
    return [f"{marker} {label}\n" if label else f"{marker}\n"] + diff_lines("", lines)


def format_resolutions(blocks: List[Resolution], preamble: str = "") -> str:
    out = [f"# {line}\n" for line in textwrap.wrap(preamble, 116)]
    for block in blocks:
        out.append(f"{BLOCK} {block.path}: {block.where}\n")
        out.extend(f"# {line}\n" for line in block.note)
        out.extend(_section(OURS, block.labels[0], block.ours))
        out.extend(_section(BASE, block.labels[1], block.base))
        out.extend(_section(THEIRS, block.labels[2], block.theirs))
        if block.resolved is not None:
            out.extend(_section(RESOLVED, "resolved", block.resolved))
    return "".join(out)


def parse_resolutions(text: str, name: str = "<resolutions>") -> List[Resolution]:
    blocks: List[Resolution] = []
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith(BLOCK + " ")]
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        blocks.append(_parse_block(lines[start:end], f"{name}:{start + 1}"))
    return blocks


def _parse_block(lines: List[str], where: str) -> Resolution:
    title = lines[0][len(BLOCK) :].strip()
    path, _, patch_and_hunk = title.partition(": ")
    note = []
    i = 1
    while i < len(lines) and lines[i].startswith("#"):
        note.append(lines[i][1:].strip())
        i += 1
    sections: Dict[str, List[str]] = {}
    labels: Dict[str, str] = {}
    current: Optional[List[str]] = None
    for line in lines[i:]:
        marker = line[:7]
        if marker in (OURS, BASE, THEIRS, RESOLVED) and line[7:8] in (" ", "\n", "\r", ""):
            if marker in sections:
                raise PatchError(f"{where}: a second {marker} section in the block of {path}")
            current = sections[marker] = []
            labels[marker] = line[8:].rstrip("\n")
        elif line.rstrip("\n") == NO_NEWLINE and current:
            current[-1] = current[-1].rstrip("\n")
        elif current is None:
            raise PatchError(f"{where}: {line.rstrip()!r} before the block's {OURS} section (notes start with #)")
        else:
            current.append(line)
    missing = [m for m in (OURS, BASE, THEIRS) if m not in sections]
    if missing or not path:
        raise PatchError(
            f"{where}: a block needs a title '{BLOCK} PATH: WHERE' and the sections {OURS}, {BASE} and {THEIRS} "
            f"(then {RESOLVED} with the resolved lines); missing: {', '.join(missing) or 'the path'}"
        )
    resolved = tuple(sections[RESOLVED]) if RESOLVED in sections else None
    return Resolution(
        path,
        patch_and_hunk,
        tuple(sections[OURS]),
        tuple(sections[BASE]),
        tuple(sections[THEIRS]),
        resolved,
        note,
        (labels[OURS], labels[BASE], labels[THEIRS]),
    )


def load_resolutions(path: Path) -> Dict[Key, Resolution]:
    """The resolved blocks of a file, by what they match; unresolved blocks are left out (they resolve nothing)."""
    if not Path(path).is_file():
        raise PatchError(f"--resolutions {path}: no such file (the port writes one beside its output on conflicts)")
    blocks = parse_resolutions(Path(path).read_text(encoding="utf-8"), str(path))
    return {b.key: b for b in blocks if b.resolved is not None}
