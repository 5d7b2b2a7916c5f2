"""Unified diffs, parsed and applied in memory (exact context, no fuzz), and written (`format_file_diff`, for the port).

Why our own applier instead of GNU patch: `openrlhf-epo patch apply` must be atomic across a whole series (every hunk of
every patch applies, or no file changes) and must tell precisely which hunk conflicts. Applying in memory first and
writing only at the end gives both; `patch` writes file by file.

A hunk matches only where its old lines appear verbatim. Like `patch`, it may be found at an offset from the line its
header names (earlier hunks of the same file shift it), searched nearest first; unlike `patch`, never with fuzz.
"""
import difflib
import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

_HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
NO_NEWLINE = "\\ No newline at end of file"


class PatchFormatError(ValueError):
    """The patch file itself is malformed."""


class HunkConflict(Exception):
    """A hunk's old lines are not in the file: the target differs from what the patch was made against."""

    def __init__(self, path: str, hunk_index: int, header: str, reason: str):
        super().__init__(f"{path}: hunk #{hunk_index + 1} ({header}) {reason}")
        self.path = path
        self.hunk_index = hunk_index


@dataclass
class Hunk:
    header: str
    old_start: int
    new_start: int
    old_lines: List[str]  # with their line endings, as they must appear in the file
    new_lines: List[str]

    def reversed(self) -> "Hunk":
        return Hunk(self.header, self.new_start, self.old_start, self.new_lines, self.old_lines)


@dataclass
class FilePatch:
    old_path: Optional[str]  # None when the patch creates the file
    new_path: Optional[str]  # None when the patch deletes the file
    hunks: List[Hunk] = field(default_factory=list)

    @property
    def path(self) -> str:
        return self.new_path or self.old_path

    def reversed(self) -> "FilePatch":
        return FilePatch(self.new_path, self.old_path, [h.reversed() for h in self.hunks])


@dataclass
class Patch:
    name: str
    files: List[FilePatch]
    header: str = ""  # what precedes the first file section: the subject and the body that says why

    def reversed(self) -> "Patch":
        return Patch(self.name, [f.reversed() for f in self.files], self.header)


def _strip_path(raw: str, strip: int) -> Optional[str]:
    path = raw.split("\t")[0].strip()
    if path == "/dev/null":
        return None
    parts = path.split("/")
    if len(parts) <= strip:
        raise PatchFormatError(f"cannot strip {strip} component(s) from path {path!r}")
    return "/".join(parts[strip:])


def parse_patch(text: str, name: str = "<patch>", strip: int = 1) -> Patch:
    """Parse a unified diff (git or diff -u style); paths lose `strip` leading components, as with `patch -p1`."""
    lines = text.splitlines(keepends=True)
    files: List[FilePatch] = []
    header_end = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("--- ") or i + 1 >= len(lines) or not lines[i + 1].startswith("+++ "):
            i += 1  # commit message, `diff --git` and `index` lines: not part of the change
            continue
        if header_end is None:  # the file section starts at its `diff --git` line, if it has one
            header_end = max([k for k in range(i) if lines[k].startswith("diff --git ")], default=i)
        current = FilePatch(_strip_path(line[4:], strip), _strip_path(lines[i + 1][4:], strip))
        if current.path is None:
            raise PatchFormatError(f"{name}: a file patch with /dev/null on both sides")
        files.append(current)
        i += 2
        while i < len(lines) and lines[i].startswith("@@"):
            i = _parse_hunk(lines, i, current, name)
        # `diff -N` marks a created or deleted file by an empty side at line 0 rather than /dev/null, as GNU patch reads it
        if len(current.hunks) == 1 and current.hunks[0].old_start == 0 and not current.hunks[0].old_lines:
            current.old_path = None
        if len(current.hunks) == 1 and current.hunks[0].new_start == 0 and not current.hunks[0].new_lines:
            current.new_path = None
    if not files:
        raise PatchFormatError(f"{name}: no file changes found (is this a unified diff?)")
    return Patch(name, files, "".join(lines[:header_end]))


def _parse_hunk(lines: List[str], i: int, target: FilePatch, name: str) -> int:
    m = _HUNK_HEADER.match(lines[i])
    if not m:
        raise PatchFormatError(f"{name}: malformed hunk header {lines[i].rstrip()!r}")
    old_len = int(m.group(2)) if m.group(2) is not None else 1
    new_len = int(m.group(4)) if m.group(4) is not None else 1
    hunk = Hunk(lines[i].rstrip("\n"), int(m.group(1)), int(m.group(3)), [], [])
    i += 1
    last: List[List[str]] = []  # the sides the previous line went to, for "\ No newline at end of file"
    while len(hunk.old_lines) < old_len or len(hunk.new_lines) < new_len or (
        i < len(lines) and lines[i].rstrip("\n") == NO_NEWLINE
    ):
        if i >= len(lines):
            raise PatchFormatError(f"{name}: {target.path}: hunk {hunk.header!r} ends early")
        line = lines[i]
        tag, body = line[:1], line[1:]
        if line.rstrip("\n") == NO_NEWLINE:
            for side in last:
                side[-1] = side[-1].rstrip("\n")
        elif tag == " " or line in ("\n", "\r\n"):  # some editors strip the space of empty context lines
            body = body if tag == " " else line
            hunk.old_lines.append(body)
            hunk.new_lines.append(body)
            last = [hunk.old_lines, hunk.new_lines]
        elif tag == "-":
            hunk.old_lines.append(body)
            last = [hunk.old_lines]
        elif tag == "+":
            hunk.new_lines.append(body)
            last = [hunk.new_lines]
        else:
            raise PatchFormatError(f"{name}: {target.path}: unexpected line in hunk {hunk.header!r}: {line!r}")
        i += 1
    if len(hunk.old_lines) != old_len or len(hunk.new_lines) != new_len:
        raise PatchFormatError(f"{name}: {target.path}: hunk {hunk.header!r} does not match its line counts")
    target.hunks.append(hunk)
    return i


def apply_file_patch(text: Optional[str], fp: FilePatch) -> Optional[str]:
    """Return the file's text after `fp`; None means the file does not exist (before or after)."""
    if fp.old_path is None:
        if text is not None:
            raise HunkConflict(fp.path, 0, "new file", "would create a file that already exists")
        text = ""
    elif text is None:
        raise HunkConflict(fp.path, 0, fp.hunks[0].header if fp.hunks else "", "the file does not exist")
    lines = text.splitlines(keepends=True)
    out: List[str] = []
    cursor = 0  # lines before cursor are final; hunks may not overlap
    for hunk, pos in zip(fp.hunks, _place_hunks(lines, fp)):
        out.extend(lines[cursor:pos])
        out.extend(hunk.new_lines)
        cursor = pos + len(hunk.old_lines)
    out.extend(lines[cursor:])
    if fp.new_path is None:
        if out:
            raise HunkConflict(fp.path, len(fp.hunks) - 1, "delete", "the file is not empty after removing its lines")
        return None
    return "".join(out)


def _place_hunks(lines: List[str], fp: FilePatch) -> List[int]:
    """Where each hunk's old lines start in `lines`, in order and without overlap; HunkConflict for one not found."""
    positions: List[int] = []
    cursor = 0
    delta = 0  # how far earlier hunks moved the file relative to the headers
    for index, hunk in enumerate(fp.hunks):
        pos = _locate(lines, hunk, cursor, max(hunk.old_start - 1, 0) + delta)
        if pos is None:
            raise HunkConflict(fp.path, index, hunk.header, "does not match the file")
        delta = pos - max(hunk.old_start - 1, 0)
        positions.append(pos)
        cursor = pos + len(hunk.old_lines)
    return positions


def hunk_spans(text: Optional[str], fp: FilePatch) -> List[Tuple[int, int]]:
    """Given the file's text before `fp`: the [start, end) line range each hunk occupies in the file after it (context
    included), to name the hunk a region of the patched file belongs to."""
    lines = (text or "").splitlines(keepends=True)
    spans: List[Tuple[int, int]] = []
    growth = 0  # lines the earlier hunks added
    for hunk, pos in zip(fp.hunks, _place_hunks(lines, fp)):
        start = pos + growth
        spans.append((start, start + len(hunk.new_lines)))
        growth += len(hunk.new_lines) - len(hunk.old_lines)
    return spans


def _locate(lines: List[str], hunk: Hunk, lo: int, expected: int) -> Optional[int]:
    """Nearest position >= lo where the hunk's old lines appear verbatim."""
    size = len(hunk.old_lines)
    if size == 0:  # pure insertion: the header's position is all there is to go by
        return expected if lo <= expected <= len(lines) else None
    last_start = len(lines) - size
    for distance in range(0, max(expected - lo, last_start - expected) + 1):
        for pos in (expected - distance, expected + distance):
            if lo <= pos <= last_start and lines[pos : pos + size] == hunk.old_lines:
                return pos
    return None


def apply_patch(contents: Dict[str, Optional[str]], patch: Patch) -> Dict[str, Optional[str]]:
    """Apply a whole patch to in-memory contents (path -> text or None); returns a new dict, the input unchanged."""
    result = dict(contents)
    for fp in patch.files:
        result[fp.path] = apply_file_patch(result.get(fp.path), fp)
    return result


def format_file_diff(path: str, old: Optional[str], new: Optional[str], context: int = 3) -> str:
    """The git-style unified diff of one file (a/ and b/ prefixes, `context` lines around each change, GNU diff's
    hunk ranges and "\\ No newline at end of file"); "" when old == new. None stands for an absent file."""
    if old == new:
        return ""
    a, b = (old or "").splitlines(keepends=True), (new or "").splitlines(keepends=True)
    out = [f"diff --git a/{path} b/{path}\n"]
    if old is None:
        out.append("new file mode 100644\n")
    elif new is None:
        out.append("deleted file mode 100644\n")
    out.append(f"--- {'/dev/null' if old is None else 'a/' + path}\n")
    out.append(f"+++ {'/dev/null' if new is None else 'b/' + path}\n")
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)  # autojunk would drop blank lines from the matching
    for group in matcher.get_grouped_opcodes(context):
        (_, i1, _, j1, _), (_, _, i2, _, j2) = group[0], group[-1]
        out.append(f"@@ -{_hunk_range(i1, i2)} +{_hunk_range(j1, j2)} @@\n")
        for tag, x1, x2, y1, y2 in group:
            if tag == "equal":
                out.extend(diff_lines(" ", a[x1:x2]))
                continue
            out.extend(diff_lines("-", a[x1:x2]))
            out.extend(diff_lines("+", b[y1:y2]))
    return "".join(out)


def _hunk_range(start: int, end: int) -> str:
    """GNU diff's `start,length` of a hunk side (1-based; an empty side names the line before it; length 1 omitted)."""
    length = end - start
    if length == 1:
        return str(start + 1)
    return f"{start + 1 if length else start},{length}"


def diff_lines(tag: str, lines: Iterable[str]) -> List[str]:
    """Each line behind `tag` (" ", "-", "+", or "" outside a diff); a line without an ending gets diff's marker."""
    out = []
    for line in lines:
        out.append(tag + line)
        if not line.endswith("\n"):
            out.append("\n" + NO_NEWLINE + "\n")
    return out
