"""Fixtures shared by the whole suite: pristine upstream releases from PyPI, unzipped into temporary trees; and the
suite's leak check: no process the suite started (Ray, JVMs, vLLM engine cores, environment children, trainers)
may outlive it."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "epo_testkit"))
import leak_check  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("OPENRLHF_EPO_CACHE", Path.home() / ".cache" / "openrlhf-epo"))


def download_wheel(version: str) -> Path:
    """The openrlhf wheel of `version` from PyPI, downloaded once into the cache (pip download --no-deps)."""
    folder = CACHE / "wheels"
    found = sorted(folder.glob(f"openrlhf-{version}-*.whl"))
    if not found:
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(folder), f"openrlhf=={version}"],
            check=True,
        )
        found = sorted(folder.glob(f"openrlhf-{version}-*.whl"))
    return found[0]


def unzip_release(version: str, into: Path) -> Path:
    """Unzip the release wheel under `into`; returns its purelib folder (holds openrlhf/ and upstream's tests/)."""
    with zipfile.ZipFile(download_wheel(version)) as wheel:
        wheel.extractall(into)
    return into / f"openrlhf-{version}.data" / "purelib"


@pytest.fixture(scope="session")
def release_wheel() -> Path:
    """The pristine openrlhf 0.11.2 wheel from PyPI (cached)."""
    return download_wheel("0.11.2")


@pytest.fixture
def release_tree(tmp_path):
    """release_tree(version) -> a fresh tree of that OpenRLHF release (its PyPI wheel unzipped); the purelib folder."""
    return lambda version: unzip_release(version, tmp_path / f"wheel-{version}")


@pytest.fixture
def pristine_tree(release_tree) -> Path:
    """A fresh, pristine OpenRLHF 0.11.2 tree, as upstream ships it."""
    return release_tree("0.11.2")


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
