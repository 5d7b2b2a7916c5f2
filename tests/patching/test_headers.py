"""Every patch of every supported series is a `git format-patch` file (patching/headers.py), checked against git
itself: its diffstat holds `git apply --numstat`'s counts, and `git apply` takes the series in order on the pristine
release, to the same files our applier writes."""
import re
import shutil
import subprocess

import pytest

from openrlhf_epo.patching import series as ps
from openrlhf_epo.patching.headers import AUTHOR, ZERO_COMMIT, diffstat, message, with_diffstat

VERSIONS = ps.supported_versions()
pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed: no oracle for the format")


def _git(*args, cwd=None):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_each_patch_has_a_format_patch_header_numbered_in_its_series(version):
    series = ps.load_series(version)
    for n, patch in enumerate(series.patches, start=1):
        text = (series.folder / patch.name).read_text()
        lines = text.splitlines(keepends=True)
        assert lines[:2] == [ZERO_COMMIT, AUTHOR], patch.name
        assert re.fullmatch(r"Date: \w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}\n", lines[2]), lines[2]
        subject = re.fullmatch(rf"Subject: \[PATCH {n}/{len(series.patches)}\] (\S.*)\n", lines[3])
        assert subject, (patch.name, lines[3])
        body = message(patch.header).split("\n\n", 1)
        assert len(body) == 2 and body[1].strip(), f"{patch.name}: no body saying why"


@pytest.mark.parametrize("version", VERSIONS)
def test_each_diffstat_holds_gits_own_counts(version, tmp_path):
    series = ps.load_series(version)
    for patch in series.patches:
        text = (series.folder / patch.name).read_text()
        numstat = _git("apply", "--numstat", str(series.folder / patch.name), cwd=tmp_path)
        assert numstat.returncode == 0, numstat.stderr
        expected = [(int(a), int(d), path) for a, d, path in (line.split("\t") for line in numstat.stdout.splitlines())]
        stat = text.split("\n---\n", 1)[1].split("\n\n", 1)[0].splitlines()
        got = [(path.strip(), int(count)) for path, count in (line.split("|")[0:1] + line.split("|")[1].split()[:1]
                                                               for line in stat[:-1])]
        assert got == [(path, a + d) for a, d, path in expected], patch.name
        added, removed = sum(a for a, _, _ in expected), sum(d for _, d, _ in expected)
        summary = stat[-1]
        assert f"{len(expected)} file" in summary and (not added or f"{added} insertion" in summary), summary
        assert not removed or f"{removed} deletion" in summary, summary


@pytest.mark.parametrize("version", VERSIONS)
def test_git_applies_the_series_in_order_to_what_our_applier_writes(version, release_tree, patched_release):
    tree = release_tree(version)  # a writable copy of the pristine release
    series = ps.load_series(version)
    for patch in series.patches:
        done = _git("apply", "--check", str(series.folder / patch.name), cwd=tree)
        assert done.returncode == 0, f"{patch.name}: {done.stderr}"
        assert _git("apply", str(series.folder / patch.name), cwd=tree).returncode == 0
    ours = patched_release(version)
    for rel in series.paths:
        assert (tree / rel).read_text() == (ours / rel).read_text(), rel


def test_a_rewritten_header_keeps_the_message_and_recomputes_the_stat():
    body = ("diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1,2 +1,2 @@\n-a\n+b\n c\n"
            "diff --git a/y.py b/y.py\n--- a/y.py\n+++ b/y.py\n@@ -1 +1,3 @@\n y\n"
            "+-- a line that starts with two dashes\n+z\n")
    header = ZERO_COMMIT + AUTHOR + "Subject: [PATCH 1/1] what\n\nWhy.\n---\n old.py | 99 ++++\n 1 file changed\n\n"
    text = with_diffstat(header, body)
    assert text == (ZERO_COMMIT + AUTHOR + "Subject: [PATCH 1/1] what\n\nWhy.\n---\n"
                    " x.py | 2 +-\n y.py | 2 ++\n 2 files changed, 3 insertions(+), 1 deletion(-)\n\n" + body)
    assert diffstat("") == "" and message("Subject: s\n\nb\n") == "Subject: s\n\nb\n"
