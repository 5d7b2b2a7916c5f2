"""A patch's header in `git format-patch` style: what a maintainer (and `git am`) expects of a patch file.

    From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
    From: openrlhf-epo <openrlhf-epo@users.noreply.github.com>
    Date: Mon, 7 Dec 2026 00:00:00 +0000
    Subject: [PATCH n/N] what the patch does

    The body: why.
    ---
     path/of/a/file.py | 12 +++++++-----
     1 file changed, 7 insertions(+), 5 deletions(-)

    diff --git a/...

The series lives as files, not commits, so the `From <hash>` line carries git's `--zero-commit` hash. The diffstat
is the patch's own, recomputed whenever the patch is written (a port onto another release changes the counts), from
the file sections' `+` / `-` lines; `message()` is the part above the `---` separator, which a port carries as it is.
"""
import re
from typing import List, Tuple

ZERO_COMMIT = "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
AUTHOR = "From: openrlhf-epo <openrlhf-epo@users.noreply.github.com>\n"
SEPARATOR = "---\n"
GRAPH_WIDTH = 50  # the widest +/- bar; longer ones are scaled, as git scales them


def _sections(body: str) -> List[Tuple[str, str]]:
    """(path, section text) of each `diff --git a/P b/P` section of body."""
    parts = re.split(r"^(?=diff --git )", body, flags=re.M)
    found = []
    for part in parts:
        if part.startswith("diff --git "):
            path = part.split("\n", 1)[0].split(" b/", 1)[-1]
            found.append((path, part))
    return found


def file_counts(body: str) -> List[Tuple[str, int, int]]:
    """(path, insertions, deletions) per file section of body: its hunks' `+` and `-` lines."""
    counts = []
    for path, section in _sections(body):
        added = removed = 0
        in_hunks = False
        for line in section.splitlines():
            if line.startswith("@@"):
                in_hunks = True
            elif in_hunks and line.startswith("+"):
                added += 1
            elif in_hunks and line.startswith("-"):
                removed += 1
        counts.append((path, added, removed))
    return counts


def _bar(added: int, removed: int) -> str:
    total = added + removed
    if total <= GRAPH_WIDTH:
        return "+" * added + "-" * removed
    plus = max(1, round(added * GRAPH_WIDTH / total)) if added else 0
    return "+" * plus + "-" * ((max(1, GRAPH_WIDTH - plus) if removed else 0))


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def diffstat(body: str) -> str:
    """git's diffstat of the file sections in body: one ` path | N bar` line per file and the summary line."""
    counts = file_counts(body)
    if not counts:
        return ""
    name_width = max(len(path) for path, _, _ in counts)
    count_width = max(len(str(a + r)) for _, a, r in counts)
    lines = [f" {path:<{name_width}} | {a + r:>{count_width}} {_bar(a, r)}".rstrip() + "\n" for path, a, r in counts]
    added, removed = sum(a for _, a, _ in counts), sum(r for _, _, r in counts)
    summary = [_plural(len(counts), "file changed", "files changed")]
    if added:
        summary.append(_plural(added, "insertion(+)", "insertions(+)"))
    if removed:
        summary.append(_plural(removed, "deletion(-)", "deletions(-)"))
    return "".join(lines) + " " + ", ".join(summary) + "\n"


def message(header: str) -> str:
    """The header above its `---` separator (From / Date / Subject lines and the body), ending in one newline."""
    lines = header.splitlines(keepends=True)
    if SEPARATOR in lines:
        lines = lines[: len(lines) - 1 - lines[::-1].index(SEPARATOR)]
    return "".join(lines).rstrip("\n") + "\n"


def with_diffstat(header: str, body: str) -> str:
    """The patch text: header's message, the separator, the diffstat of body, a blank line, body."""
    return message(header) + SEPARATOR + diffstat(body) + "\n" + body
