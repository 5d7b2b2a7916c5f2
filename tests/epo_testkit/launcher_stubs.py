"""The GPU launchers under bash with their outside commands stubbed: each stub (first on PATH) logs its arguments to
$STUB_LOG; `openrlhf-epo data ... --out FILE` also writes one valid task line there (the dataset step). Used by
tests/launchers/test_launch_scripts.py and test_row_scripts.py, which parse the logged calls with the real parsers."""
import json
import subprocess
import sys
from pathlib import Path

SEED = 7  # the SEED every launcher run gets

STUB = """#!{python}
import json, os, sys
from pathlib import Path
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps({{"cmd": Path(sys.argv[0]).name, "argv": sys.argv[1:]}}) + "\\n")
if Path(sys.argv[0]).name == "openrlhf-epo" and sys.argv[1:2] == ["data"]:  # one valid task line of the split
    from openrlhf_epo.envs.alfworld_games import GENERATOR_VERSION
    from openrlhf_epo.envs.base import TaskSpec
    from openrlhf_epo.envs.scienceworld_splits import variation_splits
    env, split = sys.argv[2], sys.argv[sys.argv.index("--split") + 1]  # openrlhf-epo data ENV --split SPLIT ...
    if env == "scienceworld":
        spec = TaskSpec(env, "boil", variation_splits("boil")[split][0], split)
    else:  # a generated game: its spec is playable here without its file (rebuilt on demand)
        spec = TaskSpec(env, "pick_and_place_simple", 0, split, extra={{"source": "generated", "room": "FloorPlan1",
                        "game_seed": 0, "generator_version": GENERATOR_VERSION}})
    line = json.dumps({{"prompt": "stub", "label": spec.to_json()}})
    Path(sys.argv[sys.argv.index("--out") + 1]).write_text(line + "\\n")
"""


def make_stubs(folder: Path, names=("ray", "openrlhf-epo", "python3")) -> Path:
    """Commands that only log their arguments: `ray`, `openrlhf-epo` and `python3` (for LAUNCH=""), or `names`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        stub = folder / name
        stub.write_text(STUB.format(python=sys.executable))
        stub.chmod(0o755)
    return folder


def official_alfworld_data(home: Path) -> None:
    """The folders of ALFWorld's own data where `alfworld-download` puts them (~/.cache/alfworld/json_2.1.1); the
    dataset step is a stub, so empty split folders are all the scripts look at."""
    for split in ("train", "valid_seen", "valid_unseen"):
        (home / ".cache" / "alfworld" / "json_2.1.1" / split).mkdir(parents=True, exist_ok=True)


def launch(script: Path, work: Path, stubs: Path, **env) -> subprocess.CompletedProcess:
    """`bash script` in `work` with a clean environment (HOME = work) and the stubs first on PATH."""
    environ = {"PATH": f"{stubs}:/usr/local/bin:/usr/bin:/bin", "HOME": str(work), "STUB_LOG": str(work / "calls.jsonl"),
               "SEED": str(SEED), "SAVE_ROOT": str(work / "save"), **env}
    return subprocess.run(["bash", str(script)], cwd=work, env=environ, capture_output=True, text=True, timeout=120)


def run_script(script: Path, work: Path, stubs: Path, **env) -> list:
    """Run the script (ALFWorld's official data present); the stubs' calls."""
    log = work / "calls.jsonl"
    log.unlink(missing_ok=True)
    official_alfworld_data(work)
    done = launch(script, work, stubs, **env)
    assert done.returncode == 0, f"{script.name} failed:\n{done.stderr[-3000:]}"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
