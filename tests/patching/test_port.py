"""`openrlhf-epo patch port`: 0.11.2's series rebuilt onto 0.11.1 and 0.11.0 (their PyPI wheels) reproduces the series
checked in for them; a conflict is named (file, hunk, sides) and nothing is written; the target's own suite gates it."""
import re
import shutil
from pathlib import Path

import pytest

from openrlhf_epo.patching import port
from openrlhf_epo.patching import series as ps
from openrlhf_epo.patching.headers import message
from openrlhf_epo.patching.resolutions import format_resolutions, load_resolutions, parse_resolutions
from openrlhf_epo.patching.unified_diff import apply_patch
from openrlhf_epo.tools import cli

SOURCE = "0.11.2"
PORTED = ["0.11.1", "0.11.0"]  # the releases whose checked-in series are ports of SOURCE's


def series_folder(version):
    return ps.series_root() / f"openrlhf-{version}"


def patched_contents(series, tree):
    """The files of `tree` the series touches, after the whole series, in memory."""
    contents = {rel: ps.read_file(tree, rel) for rel in series.paths}
    for patch in series.patches:
        contents = apply_patch(contents, patch)
    return contents


def port_args(onto, out, resolutions=None):
    return ["--from", SOURCE, "--onto", str(onto), "--out", str(out)] + (
        ["--resolutions", str(resolutions)] if resolutions else []
    )


def copy_release(shared_release, version, into: Path) -> Path:
    """A modifiable copy of the release as an unpacked tree: openrlhf/, upstream's tests/, and its version.txt."""
    into.mkdir(parents=True)
    shutil.copytree(shared_release(version) / "openrlhf", into / "openrlhf")
    shutil.copytree(shared_release(version) / "tests", into / "tests")
    (into / "version.txt").write_text(version + "\n")
    return into


@pytest.mark.parametrize("version", PORTED)
def test_port_reproduces_the_checked_in_series(tmp_path, epo_cli, shared_release, version):
    out = tmp_path / f"openrlhf-{version}"
    resolutions = series_folder(version) / port.RESOLUTIONS_FILE
    ran = epo_cli("patch", "port", *port_args(version, out, resolutions), "--no-suite")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert f"wrote {out}" in ran.stdout and "resolved by hand: openrlhf/cli/train_ppo_ray.py" in ran.stdout
    ported, checked_in = ps.load_series(version, tmp_path), ps.load_series(version)
    assert [p.name for p in ported.patches] == [p.name for p in checked_in.patches] == ps.patch_names(
        series_folder(SOURCE)
    )
    # the message carried as it is, the diffstat the target's own (as checked in)
    assert [message(p.header) for p in ported.patches] == [message(p.header) for p in ps.load_series(SOURCE).patches]
    assert [p.header for p in ported.patches] == [p.header for p in checked_in.patches]
    assert ported.pristine == checked_in.pristine  # the target's own hashes
    tree = shared_release(version)
    assert patched_contents(ported, tree) == patched_contents(checked_in, tree)  # byte for byte, every file
    assert (out / "series").read_text() == (series_folder(version) / "series").read_text()  # the hand notes kept


def test_port_without_resolutions_reports_every_hunk_that_needs_a_hand_and_writes_nothing(tmp_path, epo_cli):
    out = tmp_path / "openrlhf-0.11.1"
    ran = epo_cli("patch", "port", *port_args("0.11.1", out))
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "8 hunk(s) need a hand; nothing was written" in ran.stdout
    for patch, path, hunk in [
        ("0003-experience-maker-reward-shaping-in-a-method", "trainer/ppo_utils/experience_maker.py", 1),
        ("0003-experience-maker-reward-shaping-in-a-method", "trainer/ppo_utils/experience_maker.py", 2),
        ("0004-agent-per-turn-samples-and-group-advantages", "trainer/ppo_utils/experience_maker.py", 2),
        ("0010-policy-loss-per-trajectory", "cli/train_ppo_ray.py", 1),
        ("0012-gigpo-advantage-estimator", "cli/train_ppo_ray.py", 1),
        ("0012-gigpo-advantage-estimator", "trainer/ppo_utils/experience_maker.py", 2),
    ]:
        assert f"{patch}.patch: openrlhf/{path}: hunk #{hunk}" in ran.stdout, ran.stdout
    # 0003 moves upstream's group baselines into a method, and 0.11.1 lacks one of their branches: the moved copy is
    # reported, not carried over from 0.11.2.
    assert re.search(
        r"0003-experience-maker-reward-shaping-in-a-method\.patch: openrlhf/trainer/ppo_utils/experience_maker\.py: "
        r"hunk #2 \(@@ [-+,\d ]+ @@\): the series copies lines \d+-\d+ of openrlhf 0\.11\.2 here",
        ran.stdout,
    ), ran.stdout
    # What 0.11.1 lacks is said as such: upstream added --actor.loss_agg_mode in 0.11.2.
    assert "openrlhf 0.11.1 lacks the lines the series changes there (lines 441-448 of openrlhf 0.11.2)" in ran.stdout
    assert '"--actor.loss_agg_mode",' in ran.stdout and "pristine openrlhf 0.11.1:\n      (no lines)" in ran.stdout
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["openrlhf-0.11.1.conflicts"]
    # The conflicts file holds exactly the regions the checked-in series resolved, to be resolved.
    blocks = parse_resolutions((tmp_path / "openrlhf-0.11.1.conflicts").read_text())
    assert all(b.resolved is None for b in blocks)
    assert {b.key for b in blocks} == set(load_resolutions(series_folder("0.11.1") / port.RESOLUTIONS_FILE))


def test_a_target_that_changed_a_line_beside_a_hunk_is_reported_with_file_and_hunk(tmp_path, epo_cli, shared_release):
    tree = copy_release(shared_release, "0.11.1", tmp_path / "edited")
    actor = tree / "openrlhf/trainer/ray/ppo_actor.py"
    needed = "                loss -= entropy_loss * self.args.actor.entropy_coef\n"  # 0001 inserts its hook below
    edited = needed.replace("loss -= ", "loss = loss - ")
    actor.write_text(actor.read_text().replace(needed, edited))
    out = tmp_path / "out" / "openrlhf-0.11.1"
    ran = epo_cli("patch", "port", *port_args(tree, out, series_folder("0.11.1") / port.RESOLUTIONS_FILE))
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "1 hunk(s) need a hand" in ran.stdout
    hunk = "0001-epo-flags-and-actor-loss-hook.patch: openrlhf/trainer/ray/ppo_actor.py: hunk #2 (@@ -351,6 +354,8 @@)"
    assert hunk in ran.stdout, ran.stdout
    assert "| " + needed.rstrip() in ran.stdout and "| " + edited.rstrip() in ran.stdout  # the two sides
    assert not out.exists() and [p.name for p in out.parent.iterdir()] == ["openrlhf-0.11.1.conflicts"]
    assert "loss = loss - entropy_loss" in (out.parent / "openrlhf-0.11.1.conflicts").read_text()


def test_a_release_without_a_file_the_series_changes_is_refused_naming_it(tmp_path, shared_release, capsys):
    tree = copy_release(shared_release, "0.11.1", tmp_path / "release")
    (tree / "openrlhf/trainer/ppo_trainer_async.py").unlink()
    out = tmp_path / "out" / "openrlhf-0.11.1"
    resolutions = series_folder("0.11.1") / port.RESOLUTIONS_FILE
    assert cli.main(["patch", "port", *port_args(tree, out, resolutions), "--no-suite"]) == 1
    said = capsys.readouterr().out
    assert "1 hunk(s) need a hand; nothing was written" in said
    assert "openrlhf 0.11.1 has no openrlhf/trainer/ppo_trainer_async.py, which the series changes" in said
    assert not out.parent.exists()  # nothing to resolve in a file: not even a conflicts file


def test_the_ported_series_must_pass_the_targets_own_suite(tmp_path, epo_cli, shared_release):
    tree = copy_release(shared_release, "0.11.1", tmp_path / "release")
    shutil.rmtree(tree / "tests")
    (tree / "tests").mkdir()
    (tree / "tests/test_patched.py").write_text(
        "from pathlib import Path\n\n\n"
        "def test_the_tree_under_test_is_patched():\n"
        "    assert 'add_arguments(parser)' in Path('openrlhf/cli/train_ppo_ray.py').read_text()\n"
    )
    resolutions = series_folder("0.11.1") / port.RESOLUTIONS_FILE
    passing = tmp_path / "passing" / "openrlhf-0.11.1"
    ran = epo_cli("patch", "port", *port_args(tree, passing, resolutions))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "upstream openrlhf 0.11.1 test suite on the patched tree: 1 passed" in ran.stdout
    assert (passing / "series").is_file()
    assert "add_arguments" not in (tree / "openrlhf/cli/train_ppo_ray.py").read_text()  # a copy was patched

    (tree / "tests/test_patched.py").write_text("def test_upstream_breaks():\n    assert False\n")
    failing = tmp_path / "failing" / "openrlhf-0.11.1"
    with pytest.raises(ps.PatchError, match=r"test suite fails on the ported series \(1 failed"):
        port.port(SOURCE, str(tree), failing, resolutions, log=lambda line: None)
    assert not failing.parent.exists() or list(failing.parent.iterdir()) == []


def test_a_port_replaces_an_older_series_folder_but_nothing_else(tmp_path, shared_release):
    resolutions = series_folder("0.11.1") / port.RESOLUTIONS_FILE
    out = tmp_path / "openrlhf-0.11.1"
    shutil.copytree(series_folder("0.11.1"), out)
    (out / "0001-epo-flags-and-actor-loss-hook.patch").write_text("stale\n")
    port.port(SOURCE, "0.11.1", out, resolutions, run_suite=False, log=lambda line: None)
    assert (out / "0001-epo-flags-and-actor-loss-hook.patch").read_text() == (
        series_folder("0.11.1") / "0001-epo-flags-and-actor-loss-hook.patch"
    ).read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["openrlhf-0.11.1"]  # no scratch folder left
    other = tmp_path / "notes"
    other.mkdir()
    with pytest.raises(ps.PatchError, match="exists and is not a series folder"):
        port.port(SOURCE, "0.11.1", other, resolutions, run_suite=False, log=lambda line: None)


@pytest.mark.parametrize(
    "args, says",
    [
        (["--from", "0.10.4", "--onto", "0.11.1"], "no patch series for openrlhf 0.10.4; this openrlhf-epo supports"),
        (["--from", SOURCE, "--onto", SOURCE], "openrlhf 0.11.2 is the release the series is for: nothing to port"),
        (["--from", SOURCE, "--onto", "latest"], "--onto 'latest' is neither an existing folder nor a release version"),
    ],
)
def test_refusals_name_the_bad_value(capsys, args, says):
    assert cli.main(["patch", "port", *args]) == 1
    assert says in capsys.readouterr().err


def test_a_tree_that_is_not_an_openrlhf_release_is_refused(tmp_path, capsys):
    assert cli.main(["patch", "port", "--from", SOURCE, "--onto", str(tmp_path)]) == 1
    assert "holds no openrlhf/ package" in capsys.readouterr().err
    (tmp_path / "openrlhf").mkdir()
    (tmp_path / "openrlhf/__init__.py").write_text("")
    assert cli.main(["patch", "port", "--from", SOURCE, "--onto", str(tmp_path)]) == 1
    assert "not an openrlhf release tree: it declares no version" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["openrlhf"]


def test_resolutions_round_trip_with_notes_and_a_missing_final_newline():
    text = format_resolutions(
        parse_resolutions(
            "@@@@@@@ a.py: 0001-x.patch hunk #1\n# why: because\n<<<<<<< ours\nx = 1\n||||||| base\nx = 0\n"
            "======= theirs\nx = 2\n\\ No newline at end of file\n>>>>>>> resolved\nx = 3\n"
        ),
        "a preamble",
    )
    (block,) = parse_resolutions(text)
    assert (block.path, block.where, block.note) == ("a.py", "0001-x.patch hunk #1", ["why: because"])
    assert (block.ours, block.base, block.theirs) == (("x = 1\n",), ("x = 0\n",), ("x = 2",))
    assert block.resolved == ("x = 3\n",)
    with pytest.raises(ps.PatchError, match="missing: ======="):
        parse_resolutions("@@@@@@@ a.py: here\n<<<<<<< ours\nx\n||||||| base\ny\n")


def test_a_moved_block_is_reported_as_a_copy_of_lines_the_new_release_changed():
    # the merge's Conflict for a region only the series changed, holding a copy of lines 3-5 the new release changed
    copy = ("    def _helper(self):\n", "        a = 1\n", "        b = 2\n", "        c = 3\n")
    conflict = port.Conflict((20, 20), (30, 34), (18, 18), (), copy, (), moved_from=(2, 5))
    text = port.describe(port.NeedsHand("0004-x.patch", "openrlhf/f.py", "hunk #2", conflict), ("0.11.2", "0.11.1"))
    assert "copies lines 3-5 of 0.11.2" in text and "lines 31-34 of the series" in text
    assert "write 0.11.1's version of the copy" in text
    assert "        a = 1" in text  # the series' side is quoted
