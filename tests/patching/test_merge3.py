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
