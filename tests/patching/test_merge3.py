"""The three-way merge on small hand-written texts: what merges cleanly, and what is a conflict."""
import pytest

from openrlhf_epo.patching.merge3 import Conflict, merge3


def lines(text):
    return text.splitlines(keepends=True)


BASE = lines("def f(x):\n    a = 1\n    b = 2\n    c = 3\n    d = 4\n    e = 5\n    return a + b\n")


def test_edits_apart_from_each_other_merge_cleanly():
    ours = lines("def f(x):\n    a = 10\n    b = 2\n    c = 3\n    d = 4\n    e = 5\n    return a + b\n")
    theirs = lines("def f(x):\n    a = 1\n    b = 2\n    c = 3\n    d = 4\n    e = 50\n    return a + b\n")
    result = merge3(BASE, ours, theirs)
    assert result.conflicts == []
    both = "def f(x):\n    a = 10\n    b = 2\n    c = 3\n    d = 4\n    e = 50\n    return a + b\n"
    assert result.lines == lines(both)


def test_insertion_and_deletion_on_either_side_merge_cleanly():
    ours = BASE[:3] + ["    # ours: a comment\n"] + BASE[3:]  # inserted after b
    theirs = BASE[:5] + BASE[6:]  # e deleted
    result = merge3(BASE, ours, theirs)
    assert "".join(result.lines) == "".join(BASE[:3] + ["    # ours: a comment\n"] + BASE[3:5] + BASE[6:])


def test_the_same_change_on_both_sides_is_taken_once():
    both = lines("def f(x):\n    a = 1\n    b = 20\n    c = 3\n    d = 4\n    e = 5\n    return a + b\n")
    assert merge3(BASE, both, both).lines == both


def test_one_side_unchanged_takes_the_other():
    theirs = lines("def g(x):\n    a = 1\n    b = 2\n    c = 3\n    d = 4\n    e = 5\n    return a - b\n")
    assert merge3(BASE, BASE, theirs).lines == theirs
    assert merge3(BASE, theirs, BASE).lines == theirs


def test_edits_on_adjacent_lines_are_a_conflict():
    """Like diff3 and git merge-file: with no unchanged line between them, two edits are one region, and the merge
    does not guess how they combine."""
    ours = lines("def f(x):\n    a = 1\n    b = 20\n    c = 3\n    d = 4\n    e = 5\n    return a + b\n")
    theirs = lines("def f(x):\n    a = 1\n    b = 2\n    c = 30\n    d = 4\n    e = 5\n    return a + b\n")
    result = merge3(BASE, ours, theirs)
    (conflict,) = result.conflicts
    assert conflict.base_lines == ("    b = 2\n", "    c = 3\n")
    assert conflict.ours_lines == ("    b = 20\n", "    c = 3\n")
    assert conflict.theirs_lines == ("    b = 2\n", "    c = 30\n")
    assert conflict.base == (2, 4) and conflict.ours == (2, 4) and conflict.theirs == (2, 4)
    with pytest.raises(ValueError, match="1 conflict"):
        result.lines


def test_different_changes_of_the_same_line_are_a_conflict_in_place():
    ours = lines("def f(x):\n    a = 1\n    b = 2\n    c = 'ours'\n    d = 4\n    e = 5\n    return a + b\n")
    theirs = lines("def f(x):\n    a = 1\n    b = 2\n    c = 'theirs'\n    d = 4\n    e = 5\n    return a + b\n")
    chunks = merge3(BASE, ours, theirs).chunks
    assert chunks[0] == BASE[:3] and chunks[2] == BASE[4:]  # the lines around it are merged
    assert chunks[1] == Conflict(
        (3, 4), (3, 4), (3, 4), ("    c = 3\n",), ("    c = 'ours'\n",), ("    c = 'theirs'\n",)
    )


def test_a_change_of_lines_the_other_side_deleted_is_a_conflict_with_an_empty_side():
    ours = BASE[:4] + ["    d = 40\n"] + BASE[5:]
    theirs = BASE[:3] + BASE[6:]  # c, d and e deleted
    (conflict,) = merge3(BASE, ours, theirs).conflicts
    assert conflict.theirs_lines == () and conflict.base_lines == tuple(BASE[3:6])
    assert conflict.ours_lines == ("    c = 3\n", "    d = 40\n", "    e = 5\n")


def test_different_insertions_at_the_same_place_are_a_conflict():
    ours = BASE[:4] + ["    x = 'ours'\n"] + BASE[4:]
    theirs = BASE[:4] + ["    x = 'theirs'\n"] + BASE[4:]
    (conflict,) = merge3(BASE, ours, theirs).conflicts
    assert conflict.base_lines == () and conflict.base == (4, 4)


def test_blank_and_repeated_lines_still_anchor_the_merge():
    """difflib's autojunk would drop lines that occur in more than 1% of a 200+ line file (blank lines, `)`) from the
    matching, and so shift the anchors; the merge turns it off."""
    base = [f"line {i}\n" if i % 3 else "\n" for i in range(400)]
    ours, theirs = list(base), list(base)
    ours[10], theirs[390] = "ours\n", "theirs\n"
    merged = merge3(base, ours, theirs).lines
    assert merged[10] == "ours\n" and merged[390] == "theirs\n" and len(merged) == 400


# A refactor that moves a block into a helper (the shape of a behaviour-free upstream refactor), against a release
# whose block lacks one branch: the copy must not carry the other release's branch silently.
CALLER = lines(
    "def shape(rewards, mode):\n"
    "    if mode == 'rloo':\n"
    "        rewards = rewards - rloo_baseline(rewards)\n"
    "    elif mode == 'group_norm':\n"
    "        rewards = normalise(rewards)\n"
    "    elif mode == 'flash':\n"
    "        rewards = rewards - rewards.mean()\n"
    "    return rewards\n"
    "\n"
    "\n"
    "def other():\n"
    "    return 1\n"
)


def _moved(block_release):
    """ours: the block moved into a helper method after other() (indented one level deeper, so no line of it equals a
    line of the block); block_release: the caller's block of the other release."""
    helper = ["\n", "\n", "class Shaper:\n", "    def _baseline(self, rewards, mode):\n"]
    helper += ["    " + line for line in CALLER[1:7]] + ["        return rewards\n"]
    ours = CALLER[:1] + ["    rewards = _baseline(rewards, mode)\n"] + CALLER[7:] + helper
    theirs = CALLER[:1] + block_release + CALLER[7:]
    return ours, theirs


def test_a_moved_block_whose_source_the_other_side_changed_is_a_conflict_naming_the_source():
    ours, theirs = _moved(CALLER[1:5])  # the other release has no 'flash' branch
    result = merge3(CALLER, ours, theirs)
    moved = [c for c in result.conflicts if c.moved_from is not None]
    assert len(moved) == 1, result.chunks
    start, end = moved[0].moved_from
    assert end - start == 3 and 1 <= start and end <= 7  # three lines of the block, in the old caller
    assert "    def _baseline(self, rewards, mode):\n" in moved[0].ours_lines
    assert moved[0].theirs_lines == moved[0].base_lines  # the other side kept the helper's place as it was
    # the removal at the call site is a conflict of its own, as before
    assert any(c.moved_from is None and "    rewards = _baseline(rewards, mode)\n" in c.ours_lines
               for c in result.conflicts)


def test_a_moved_block_the_other_side_left_alone_merges_cleanly():
    ours, _ = _moved(CALLER[1:7])
    theirs = CALLER[:10] + ["def other_name():\n"] + CALLER[11:]  # the other release renamed other() only
    result = merge3(CALLER, ours, theirs)
    assert result.conflicts == []
    assert result.lines[-1] == "        return rewards\n" and "def other_name():\n" in result.lines


def test_two_lines_in_common_with_a_changed_region_are_not_a_move():
    theirs = CALLER[:5] + CALLER[7:]  # no 'flash' branch
    ours = CALLER + ["\n", "\n", "def flash(rewards):\n", "    elif mode == 'flash':\n",
                     "        rewards = rewards - rewards.mean()\n", "    return -rewards\n"]
    # two changed lines copied, then a line that is not the base's next one: fewer than MOVED_RUN in a row
    result = merge3(CALLER, ours, theirs)
    assert result.conflicts == []
