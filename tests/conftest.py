"""Fixtures shared by the whole suite: pristine upstream releases from PyPI, unzipped into temporary trees; and the
suite's leak check: no process the suite started (Ray, JVMs, vLLM engine cores, environment children, trainers)
may outlive it."""
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "epo_testkit"))
import leak_check  # noqa: E402

from openrlhf_epo.patching import series as ps  # noqa: E402
from openrlhf_epo.patching.releases import cached_release, download_wheel, unzip_release  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def release_wheel() -> Path:
    """The pristine openrlhf 0.11.2 wheel from PyPI (cached)."""
    return download_wheel("0.11.2")


@pytest.fixture
def release_tree(tmp_path):
    """release_tree(version) -> a fresh tree of that OpenRLHF release (its PyPI wheel unzipped), to modify; the
    purelib folder (openrlhf/ and upstream's tests/; the dist-info two levels up)."""
    return lambda version: unzip_release(version, tmp_path / f"wheel-{version}")


@pytest.fixture
def pristine_tree(release_tree) -> Path:
    """A fresh, pristine OpenRLHF 0.11.2 tree, as upstream ships it."""
    return release_tree("0.11.2")


@pytest.fixture(scope="session")
def shared_release():
    """shared_release(version) -> the purelib folder of that release, unpacked once into the cache and shared by the
    whole session: read it, never write it (release_tree gives a tree to modify)."""
    return cached_release


@pytest.fixture(scope="session")
def patched_release(tmp_path_factory):
    """patched_release(version) -> a tree of that release with its series applied, made once per session (read only)."""
    trees = {}

    def get(version: str) -> Path:
        if version not in trees:
            tree = unzip_release(version, tmp_path_factory.mktemp(f"patched-{version}"))
            target = ps.target_from_dir(tree)
            ps.apply(target, ps.series_for(target))
            trees[version] = tree
        return trees[version]

    return get


@pytest.fixture
def epo_cli():
    """Run `openrlhf-epo ARGS...` as a user would; returns the CompletedProcess (never raises on exit status)."""

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "openrlhf_epo.tools.cli", *args], capture_output=True, text=True, cwd=REPO
        )

    return run


def tree_bytes(root: Path) -> dict:
    """Every file under root (relative path -> (bytes, mode)): for byte-identity checks."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mode)
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.fixture
def snapshot():
    return tree_bytes


_REPORTS = []


def pytest_configure(config):
    if not config.pluginmanager.has_plugin("leak_check"):
        config.pluginmanager.register(leak_check, "leak_check")


@pytest.fixture
def report():
    """report(line): a figure a test measured (e.g. upstream's test count), printed in the session summary."""
    return _REPORTS.append


def pytest_terminal_summary(terminalreporter):
    if _REPORTS:
        terminalreporter.section("openrlhf-epo figures")
        for line in _REPORTS:
            terminalreporter.write_line(line)


@pytest.fixture(scope="module")
def alfworld_game(tmp_path_factory):
    """alfworld_game(split, seed, task_type) -> (spec, walkthrough, cache dir): an offline-generated ALFWorld game and
    the planner's plan stored in it (the environment's own oracle)."""
    from openrlhf_epo.envs.alfworld_env import AlfWorldEnv, alfworld_task_specs

    cache = tmp_path_factory.mktemp("alfworld-games")

    def make(split: str, seed: int, task_type: str):
        spec = alfworld_task_specs(split, n=1, seed=seed, task_types=[task_type], cache_dir=cache, progress=False)[0]
        with AlfWorldEnv(cache_dir=cache) as env:
            env.reset(spec)
            plan = env.walkthrough
        assert plan, "a generated game stores its planner walkthrough"
        return spec, plan, cache

    return make


@pytest.fixture(scope="session")
def scienceworld_gold():
    """scienceworld_gold(task, variation) -> the simulator's own gold action sequence (the stock ScienceWorldEnv)."""
    paths = {}

    def get(task: str, variation: int):
        if (task, variation) not in paths:
            from scienceworld import ScienceWorldEnv as Stock

            stock = Stock("", envStepLimit=100)
            try:
                stock.load(task, variation, "easy", generateGoldPath=True)
                paths[task, variation] = stock.get_gold_action_sequence()
            finally:
                stock.close()
        return paths[task, variation]

    return get
