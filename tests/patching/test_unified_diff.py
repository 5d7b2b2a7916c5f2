"""The in-memory applier and the diff writer, against GNU diff and GNU patch as the independent oracle."""
import random
import subprocess

import pytest

from openrlhf_epo.patching.unified_diff import (
    HunkConflict,
    PatchFormatError,
    apply_patch,
    format_file_diff,
    hunk_spans,
    parse_patch,
)


def _gnu_diff(tmp_path, old, new, name="f.py"):
    (tmp_path / "a").mkdir(exist_ok=True)
    (tmp_path / "b").mkdir(exist_ok=True)
    for side, text in (("a", old), ("b", new)):
        path = tmp_path / side / name
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(text)
    out = subprocess.run(["diff", "-ruN", "a", "b"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode in (0, 1), out.stderr
    return out.stdout


def _gnu_patch(tmp_path, text, patch_text, name="f.py"):
    work = tmp_path / "gnu"
    work.mkdir(exist_ok=True)
    (work / name).write_text(text)
    subprocess.run(["patch", "-p1", "-F0", "-s"], input=patch_text, text=True, cwd=work, check=True)
    return (work / name).read_text()


def _random_edit(rng, lines):
    out = list(lines)
    for _ in range(rng.randint(1, 6)):
        pos = rng.randrange(len(out) + 1)
        kind = rng.choice(["insert", "delete", "replace"])
        if kind == "insert" or not out or pos == len(out):
            out.insert(pos, f"inserted {rng.random():.6f}\n")
        elif kind == "delete":
            del out[pos]
        else:
            out[pos] = f"replaced {rng.random():.6f}\n"
    return out


@pytest.mark.parametrize("seed", range(25))
def test_random_edits_round_trip_like_gnu_patch(tmp_path, seed):
    rng = random.Random(seed)
    old_lines = [f"line {i} {rng.choice('abc')}\n" for i in range(rng.randint(5, 120))]
    new_lines = _random_edit(rng, old_lines)
    if seed % 5 == 0:  # files without a final newline
        new_lines[-1] = new_lines[-1].rstrip("\n")
    if seed % 7 == 0:
        old_lines[-1] = old_lines[-1].rstrip("\n")
    old, new = "".join(old_lines), "".join(new_lines)
    patch = parse_patch(_gnu_diff(tmp_path, old, new))
    assert apply_patch({"f.py": old}, patch) == {"f.py": new}
    assert apply_patch({"f.py": new}, patch.reversed()) == {"f.py": old}


def test_hunks_found_at_an_offset_like_gnu_patch(tmp_path):
    old = "".join(f"row {i}\n" for i in range(60))
    new = old.replace("row 10\n", "row ten\n").replace("row 50\n", "row fifty\n")
    text = _gnu_diff(tmp_path, old, new)
    shifted = "header one\nheader two\nheader three\n" + old.replace("row 30\n", "row 30\nextra\nextra\n")
    ours = apply_patch({"f.py": shifted}, parse_patch(text))["f.py"]
    assert ours == _gnu_patch(tmp_path, shifted, text)
    assert "row ten\n" in ours and "row fifty\n" in ours


def test_created_and_deleted_files(tmp_path):
    created = parse_patch(_gnu_diff(tmp_path, None, "brand new\nfile\n", name="new.py"))
    assert created.files[0].old_path is None
    assert apply_patch({"new.py": None}, created) == {"new.py": "brand new\nfile\n"}
    assert apply_patch({"new.py": "brand new\nfile\n"}, created.reversed()) == {"new.py": None}
    with pytest.raises(HunkConflict, match="already exists"):
        apply_patch({"new.py": "something\n"}, created)


def test_conflict_names_file_and_hunk(tmp_path):
    old = "".join(f"row {i}\n" for i in range(40))
    new = old.replace("row 5\n", "row five\n").replace("row 30\n", "row thirty\n")
    patch = parse_patch(_gnu_diff(tmp_path, old, new))
    drifted = old.replace("row 29\n", "row twenty-nine\n")
    with pytest.raises(HunkConflict, match=r"f\.py: hunk #2 \(@@ -28,7 \+28,7 @@\) does not match"):
        apply_patch({"f.py": drifted}, patch)


def test_malformed_patches_are_rejected_with_the_reason():
    with pytest.raises(PatchFormatError, match="no file changes"):
        parse_patch("just some text\n", name="notes.txt")
    with pytest.raises(PatchFormatError, match="ends early"):
        parse_patch("--- a/x.py\n+++ b/x.py\n@@ -1,3 +1,3 @@\n a\n-b\n")
    with pytest.raises(PatchFormatError, match="malformed hunk header"):
        parse_patch("--- a/x.py\n+++ b/x.py\n@@ -1,x +1 @@\n")


@pytest.mark.parametrize("seed", range(10))
def test_written_diffs_apply_with_gnu_patch_and_ours(tmp_path, seed):
    rng = random.Random(100 + seed)
    old_lines = [f"line {i} {rng.choice('ab')}\n" if i % 4 else "\n" for i in range(rng.randint(5, 300))]
    new_lines = _random_edit(rng, old_lines)
    if seed % 3 == 0:  # files without a final newline, on either side
        new_lines[-1] = new_lines[-1].rstrip("\n")
    if seed % 4 == 0:
        old_lines[-1] = old_lines[-1].rstrip("\n")
    old, new = "".join(old_lines), "".join(new_lines)
    text = format_file_diff("f.py", old, new)
    assert text.startswith("diff --git a/f.py b/f.py\n--- a/f.py\n+++ b/f.py\n@@ -")
    assert _gnu_patch(tmp_path, old, text) == new
    assert apply_patch({"f.py": old}, parse_patch(text)) == {"f.py": new}


def test_a_written_diff_of_a_new_file_and_of_no_change(tmp_path):
    created = format_file_diff("pkg/new.py", None, "one\ntwo\n")
    assert created.splitlines()[:5] == [
        "diff --git a/pkg/new.py b/pkg/new.py",
        "new file mode 100644",
        "--- /dev/null",
        "+++ b/pkg/new.py",
        "@@ -0,0 +1,2 @@",
    ]
    assert apply_patch({"pkg/new.py": None}, parse_patch(created)) == {"pkg/new.py": "one\ntwo\n"}
    assert format_file_diff("f.py", "same\n", "same\n") == ""


def test_the_header_before_the_first_file_is_kept():
    header = "Subject: [PATCH 1/2] why\n\nBody.\n\n"
    text = header + "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n"
    patch = parse_patch(text)
    assert patch.header == header and patch.reversed().header == header


def test_hunk_spans_name_where_each_hunk_lands_in_the_patched_file(tmp_path):
    old = "".join(f"row {i}\n" for i in range(40))
    new = old.replace("row 5\n", "row 5\nadded\nadded\n").replace("row 30\n", "row thirty\n")
    (fp,) = parse_patch(_gnu_diff(tmp_path, old, new)).files
    spans = hunk_spans(old, fp)
    assert len(spans) == 2
    patched = new.splitlines(keepends=True)
    assert patched[spans[0][0] : spans[0][1]] == fp.hunks[0].new_lines
    assert patched[spans[1][0] : spans[1][1]] == fp.hunks[1].new_lines and "row thirty\n" in fp.hunks[1].new_lines


def test_real_git_format_patch_output_parses_with_its_whole_header_kept(tmp_path):
    # git itself writes the patch: From / Date / Subject lines, a body, the `---` separator and a diffstat, then the
    # sections, then git's signature; the header (up to the first `diff --git`) must be kept whole, the `---` line
    # must not be taken for a file header, and the patch must apply to the old file.
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    old = "".join(f"line {i}\n" for i in range(30))
    new = old.replace("line 3\n", "line three\n").replace("line 25\n", "line 25\nline 25b\n")
    (repo / "f.py").write_text(old)
    subprocess.run(git + ["add", "f.py"], check=True)
    subprocess.run(git + ["commit", "-qm", "base"], check=True)
    (repo / "f.py").write_text(new)
    subprocess.run(git + ["commit", "-qam", "Say what\n\nThe body says why.\n--- not a file header\n"], check=True)
    text = subprocess.run(git[:3] + ["format-patch", "-1", "--stdout"], check=True, capture_output=True,
                          text=True).stdout
    patch = parse_patch(text)
    assert patch.header == text[: text.index("diff --git ")]
    assert patch.header.startswith("From ") and "Subject: [PATCH] Say what\n" in patch.header
    assert "\n---\n f.py | 3 ++-\n" in patch.header  # the separator and git's diffstat stay in the header
    assert [f.path for f in patch.files] == ["f.py"] and len(patch.files[0].hunks) == 2
    assert apply_patch({"f.py": old}, patch)["f.py"] == new
