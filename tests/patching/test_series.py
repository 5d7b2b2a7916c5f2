"""The patch series onto the real OpenRLHF releases (their PyPI wheels, unzipped), through the real CLI.

What each series must pass is checked for every supported release (the tests parametrized by VERSIONS); the
machinery's own behaviour (refusals, prefixes, atomic writes) once, on 0.11.2's series.
"""
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from openrlhf_epo.patching import series as ps
from openrlhf_epo.patching.upstream_suite import run_upstream_suite

# Every supported release, with the number of tests its own upstream suite (shipped in its wheel) has.
UPSTREAM_TESTS = {"0.11.0": 22, "0.11.1": 63, "0.11.2": 221}
VERSIONS = list(UPSTREAM_TESTS)
NEIGHBOUR = "0.10.4"  # the release below the oldest supported one: it has no series
SERIES = ps.series_root() / "openrlhf-0.11.2"
PATCHES = [n for n in (SERIES / "series").read_text().split() if n.endswith(".patch")]
N, LAST = len(PATCHES), PATCHES[-1][:5]  # e.g. 6, "0006-"
TOUCHED = [  # the same files in every release's series
    "openrlhf/cli/train_ppo_ray.py",
    "openrlhf/cli/train_sft.py",
    "openrlhf/models/actor.py",
    "openrlhf/models/loss.py",
    "openrlhf/models/utils.py",
    "openrlhf/trainer/ppo_trainer.py",
    "openrlhf/trainer/ppo_trainer_async.py",
    "openrlhf/trainer/ppo_utils/experience.py",
    "openrlhf/trainer/ppo_utils/experience_maker.py",
    "openrlhf/trainer/ppo_utils/replay_buffer.py",
    "openrlhf/trainer/ppo_utils/samples_generator.py",
    "openrlhf/trainer/ray/launcher.py",
    "openrlhf/trainer/ray/ppo_actor.py",
    "openrlhf/trainer/ray/ppo_critic.py",
    "openrlhf/trainer/ray/vllm_engine.py",
    "openrlhf/trainer/ray/vllm_worker_wrap.py",
    "openrlhf/utils/deepspeed/deepspeed.py",
    "openrlhf/utils/distributed_util.py",
    "openrlhf/utils/utils.py",
]


def patch_names(version):
    return ps.patch_names(ps.series_root() / f"openrlhf-{version}")


def test_every_series_in_patches_is_checked_here():
    assert ps.supported_versions() == VERSIONS


@pytest.mark.parametrize("version", VERSIONS)
def test_manifest_holds_the_hashes_of_the_pristine_release(shared_release, version):
    tree = shared_release(version)
    lines = (ps.series_root() / f"openrlhf-{version}" / "pristine.sha256").read_text().splitlines()
    hashes = dict(reversed(line.split()) for line in lines if line.strip() and not line.startswith("#"))
    assert sorted(hashes) == TOUCHED
    for path, digest in hashes.items():
        assert hashlib.sha256((tree / path).read_bytes()).hexdigest() == digest, path


@pytest.mark.parametrize("version", VERSIONS)
def test_check_reports_every_patch_of_its_own_series_applies_on_the_pristine_release(release_tree, epo_cli, version):
    tree = release_tree(version)
    out = epo_cli("patch", "check", "--target", str(tree))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"target: openrlhf {version} at {tree / 'openrlhf'}"), out.stdout
    assert patch_names(version) == PATCHES  # every release carries the same series, in the same order
    for name in PATCHES:
        assert re.search(rf"applies\s+{re.escape(name)}", out.stdout), out.stdout


@pytest.mark.parametrize("version", VERSIONS)
def test_apply_then_revert_restores_every_byte(release_tree, epo_cli, snapshot, version):
    pristine_tree = release_tree(version)
    before = snapshot(pristine_tree.parent.parent)
    applied = epo_cli("patch", "apply", "--target", str(pristine_tree))
    assert applied.returncode == 0, applied.stderr
    after_apply = snapshot(pristine_tree.parent.parent)
    changed = sorted(k for k in before if before[k] != after_apply[k])
    assert [c.split("purelib/")[1] for c in changed] == TOUCHED
    assert "epo_actor_loss(self, experience, output, loss, loss_batch_info)" in (
        pristine_tree / "openrlhf/trainer/ray/ppo_actor.py"
    ).read_text()

    reverted = epo_cli("patch", "revert", "--target", str(pristine_tree))
    assert reverted.returncode == 0, reverted.stderr
    assert snapshot(pristine_tree.parent.parent) == before  # bytes and file modes, every file of the release


@pytest.mark.parametrize("version", VERSIONS)
def test_stale_bytecode_of_patched_files_is_dropped(release_tree, epo_cli, version):
    """A .pyc compiled from the pristine file must not survive: Python would trust it if the patched file had the
    same size and the same mtime second (pip compiles right before the CLI patches)."""
    import py_compile

    pristine_tree = release_tree(version)
    touched = [pristine_tree / rel for rel in TOUCHED]
    untouched = pristine_tree / "openrlhf/utils/logging_utils.py"
    compiled = [Path(py_compile.compile(str(f), cfile=None)) for f in touched + [untouched]]
    assert all(c.exists() for c in compiled)
    assert epo_cli("patch", "apply", "--target", str(pristine_tree)).returncode == 0
    assert [c.exists() for c in compiled] == [False] * len(touched) + [True]
    for c in compiled[:-1]:
        py_compile.compile(str(c.parent.parent / (c.name.split(".")[0] + ".py")))
    assert epo_cli("patch", "revert", "--target", str(pristine_tree)).returncode == 0
    assert not any(c.exists() for c in compiled[:-1])


def test_apply_twice_is_a_noop_that_says_so(pristine_tree, epo_cli, snapshot):
    assert epo_cli("patch", "apply", "--target", str(pristine_tree)).returncode == 0
    once = snapshot(pristine_tree)
    second = epo_cli("patch", "apply", "--target", str(pristine_tree))
    assert second.returncode == 0
    assert "already applied" in second.stdout and "nothing to do" in second.stdout
    assert snapshot(pristine_tree) == once
    status = epo_cli("patch", "status", "--target", str(pristine_tree))
    assert f"{N} of {N} patches applied" in status.stdout and "[x] 0001-" in status.stdout and f"[x] {LAST}" in status.stdout


def test_status_and_check_of_a_patched_tree(pristine_tree, epo_cli):
    assert f"0 of {N} patches applied" in epo_cli("patch", "status", "--target", str(pristine_tree)).stdout
    epo_cli("patch", "apply", "--target", str(pristine_tree))
    out = epo_cli("patch", "check", "--target", str(pristine_tree))
    assert out.returncode == 0 and re.search(r"applied\s+0001-", out.stdout), out.stdout
    assert re.search(r"applied\s+0002-", out.stdout), out.stdout


def test_neighbouring_release_without_a_series_is_refused_and_left_untouched(release_tree, epo_cli, snapshot):
    older = release_tree(NEIGHBOUR)  # a real neighbouring release, from PyPI
    before = snapshot(older.parent.parent)
    for action in ("apply", "check", "revert", "status"):
        out = epo_cli("patch", action, "--target", str(older))
        assert out.returncode == 1, (action, out.stdout)
        assert f"openrlhf {NEIGHBOUR}" in out.stderr and "supports" not in out.stdout
        assert f"patch series for openrlhf {', '.join(VERSIONS)} only" in out.stderr, out.stderr
        assert "Nothing was changed" in out.stderr
    assert snapshot(older.parent.parent) == before


def test_declared_version_wins_over_matching_files(pristine_tree, epo_cli, snapshot):
    # The files are 0.11.2's, but the metadata says otherwise: trust neither silently, refuse.
    metadata = pristine_tree.parent.parent / "openrlhf-0.11.2.dist-info" / "METADATA"
    metadata.write_text(metadata.read_text().replace("Version: 0.11.2", "Version: 0.10.9", 1))
    before = snapshot(pristine_tree.parent.parent)
    out = epo_cli("patch", "apply", "--target", str(pristine_tree))
    assert out.returncode == 1 and "openrlhf 0.10.9" in out.stderr and "0.11.2 only" in out.stderr, out.stderr
    assert snapshot(pristine_tree.parent.parent) == before


def test_hand_modified_target_is_refused_and_left_untouched(pristine_tree, epo_cli, snapshot):
    actor = pristine_tree / "openrlhf/trainer/ray/ppo_actor.py"
    actor.write_text(actor.read_text().replace("self.actor.train()", "self.actor.train()  # local tweak"))
    before = snapshot(pristine_tree.parent.parent)
    for action in ("apply", "revert"):
        out = epo_cli("patch", action, "--target", str(pristine_tree))
        assert out.returncode == 1
        assert "modified outside openrlhf-epo" in out.stderr and "openrlhf/trainer/ray/ppo_actor.py" in out.stderr
        assert "Nothing was changed" in out.stderr
    check = epo_cli("patch", "check", "--target", str(pristine_tree))
    assert check.returncode == 1 and "MODIFIED" in check.stdout
    assert snapshot(pristine_tree.parent.parent) == before


def test_half_patched_target_is_refused(pristine_tree, epo_cli, snapshot):
    # Another tool (GNU patch) applied the first file section of our patch only.
    sections = (SERIES / "0001-epo-flags-and-actor-loss-hook.patch").read_text().split("diff --git ")
    first_file_only = "diff --git " + sections[1]
    assert TOUCHED[0] in first_file_only.splitlines()[0] and TOUCHED[1] not in first_file_only
    subprocess.run(["patch", "-p1"], input=first_file_only, text=True, cwd=pristine_tree, check=True, capture_output=True)
    before = snapshot(pristine_tree.parent.parent)
    out = epo_cli("patch", "apply", "--target", str(pristine_tree))
    assert out.returncode == 1 and "modified outside openrlhf-epo" in out.stderr
    assert TOUCHED[0] in out.stderr
    assert snapshot(pristine_tree.parent.parent) == before


def test_a_conflicting_hunk_is_named_by_check(pristine_tree, epo_cli):
    train = pristine_tree / "openrlhf/cli/train_ppo_ray.py"
    train.write_text(train.read_text().replace('help="Reward clip range"', 'help="clip range of rewards"'))
    out = epo_cli("patch", "check", "--target", str(pristine_tree))
    assert out.returncode == 1
    assert re.search(r"conflicts\s+0001-.*openrlhf/cli/train_ppo_ray.py: hunk #1", out.stdout), out.stdout


def test_unknown_tree_is_refused(tmp_path, epo_cli):
    (tmp_path / "openrlhf").mkdir()
    (tmp_path / "openrlhf/__init__.py").write_text("")
    out = epo_cli("patch", "apply", "--target", str(tmp_path))
    assert out.returncode == 1 and "cannot tell which openrlhf release" in out.stderr and "0.11.2" in out.stderr
    missing = epo_cli("patch", "apply", "--target", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "holds no openrlhf/ package" in missing.stderr


def test_installed_openrlhf_is_found_with_its_version():
    target = ps.installed_target()
    assert target.version == "0.11.2"
    assert (target.root / "openrlhf" / "trainer" / "ray" / "ppo_actor.py").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("version", VERSIONS)
def test_upstream_suite_passes_on_the_patched_release(patched_release, report, version):
    # Upstream's own tests, shipped inside the wheel, run from the tree that holds openrlhf/ and tests/ side by side.
    tree = patched_release(version)
    result = run_upstream_suite(tree)
    report(f"upstream openrlhf {version} test suite on the patched tree: {result.summary}")
    assert result.ok, result.output[-3000:]
    assert result.passed == UPSTREAM_TESTS[version], result.summary
    # The tree under test really was the patched one.
    assert "add_arguments(parser)" in (tree / "openrlhf/cli/train_ppo_ray.py").read_text()


def test_a_failed_write_rolls_back_every_file(pristine_tree, snapshot, monkeypatch):
    target = ps.target_from_dir(pristine_tree)
    series = ps.series_for(target)
    before = snapshot(pristine_tree.parent.parent)
    real_replace, calls = ps.os.replace, []

    def replace_then_fail(src, dst):  # the disk fills up after the first file
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(ps.os, "replace", replace_then_fail)
    with pytest.raises(OSError, match="No space left"):
        ps.apply(target, series)
    assert len(calls) == 2
    assert snapshot(pristine_tree.parent.parent) == before  # first file restored, no temp file left behind


def _run_train_ppo_ray(tree, *flags):
    code = (
        "import runpy, sys; from openrlhf_epo.runtime import flash_attn_stub; flash_attn_stub.install(); "
        "import openrlhf; print('openrlhf from', openrlhf.__file__, flush=True); "
        "sys.argv = ['train_ppo_ray', *sys.argv[1:]]; runpy.run_module('openrlhf.cli.train_ppo_ray', run_name='__main__')"
    )
    env = {**__import__("os").environ, "PYTHONPATH": str(tree), "DS_ACCELERATOR": "cpu"}
    return subprocess.run([sys.executable, "-c", code, *flags], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_patched_train_ppo_ray_takes_and_validates_epo_flags(pristine_tree, epo_cli):
    assert epo_cli("patch", "apply", "--target", str(pristine_tree)).returncode == 0
    helped = _run_train_ppo_ray(pristine_tree, "--help")
    assert helped.returncode == 0, helped.stderr[-2000:]
    assert f"openrlhf from {pristine_tree}" in helped.stdout
    for flag in ("--actor.epo.enable", "--actor.epo.coef", "--actor.epo.kappa_l", "--actor.epo.history_window"):
        assert flag in helped.stdout
    bad = _run_train_ppo_ray(pristine_tree, "--actor.epo.kappa_l", "3", "--actor.epo.kappa_r", "2")
    assert bad.returncode != 0
    assert "--actor.epo.kappa_l=3.0 > --actor.epo.kappa_r=2.0" in bad.stderr, bad.stderr[-2000:]


def test_a_prefix_of_the_series_is_recognised_and_completed(pristine_tree, epo_cli, snapshot):
    # An older openrlhf-epo applied only the first patch (GNU patch, the whole first file of the series).
    first = (SERIES / "0001-epo-flags-and-actor-loss-hook.patch").read_text()
    subprocess.run(["patch", "-p1"], input=first, text=True, cwd=pristine_tree, check=True, capture_output=True)
    status = epo_cli("patch", "status", "--target", str(pristine_tree))
    assert f"1 of {N} patches applied" in status.stdout and "[x] 0001-" in status.stdout and "[ ] 0002-" in status.stdout
    check = epo_cli("patch", "check", "--target", str(pristine_tree))
    assert re.search(r"applied\s+0001-", check.stdout) and re.search(r"applies\s+0002-", check.stdout)
    out = epo_cli("patch", "apply", "--target", str(pristine_tree))
    assert out.returncode == 0 and "applied 0002-" in out.stdout and f"applied {LAST}" in out.stdout
    assert "applied 0001-" not in out.stdout
    assert epo_cli("patch", "revert", "--target", str(pristine_tree)).returncode == 0
    assert f"0 of {N} patches applied" in epo_cli("patch", "status", "--target", str(pristine_tree)).stdout


@pytest.mark.parametrize("version", VERSIONS)
def test_train_ppo_ray_takes_every_openrlhf_epo_flag_group_through_one_call_pair(patched_release, version):
    # One entry point (integration/arguments.py): one add call where upstream builds its parser, one check call; no
    # patch adds a flag group of its own. Checked by running the patched release's real parser.
    text = (patched_release(version) / "openrlhf/cli/train_ppo_ray.py").read_text()
    calls = re.findall(r"^\s+(\w+)\((?:parser|args)\)", text, flags=re.M)
    epo_calls = [c for c in calls if re.fullmatch(r"(add|check)_\w*(arguments|args)", c)]
    assert epo_calls == ["add_arguments", "check_args"], epo_calls
    for name in ("add_arguments", "check_args"):  # integration/arguments.py's, through the file's hooks module
        assert text.count(f"from openrlhf_epo.integration.hooks.train_ppo_ray import {name}\n") == 1, name
    code = ("import sys, runpy; sys.argv = ['train_ppo_ray', '--help']; "
            "runpy.run_path('openrlhf/cli/train_ppo_ray.py', run_name='__main__')")
    shown = subprocess.run([sys.executable, "-c", code], cwd=patched_release(version), capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr[-3000:]
    for flag in ("--actor.epo.enable", "--agent.mode", "--runtime.device", "--logger.jsonl_path"):
        assert flag in shown.stdout, flag
