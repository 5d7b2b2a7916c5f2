"""ScienceWorld through `ScienceWorldEnv`, checked against the package's own stock environment.

The oracles are ScienceWorld itself: gold action sequences come from the simulator's gold-path generator
(`load(..., generateGoldPath=True)`), and the lean step is compared with the stock `ScienceWorldEnv.step()` on the
same actions in another JVM. No mocks: every environment here is the real JVM. The process table (/proc) is read
before and after to make sure no java process outlives its instance.
"""
import os
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager

import pytest
from scienceworld import ScienceWorldEnv as StockScienceWorldEnv

from openrlhf_epo.envs.base import EnvironmentError_, TaskSpec
from openrlhf_epo.envs.scienceworld_env import DEFAULT_JAVA_OPTIONS, SIMPLIFICATIONS, ScienceWorldEnv
from openrlhf_epo.envs.scienceworld_splits import (
    MAX_VARIATIONS,
    TASKS,
    scienceworld_task_specs,
    variation_splits,
)

# Gold paths of different kinds of task (life science, change of state, chemistry, measurement, electricity, plants and
# bees), variations from all three splits; each path loads in about a second and has 10-60 actions.
GOLD_CASES = [
    ("find-living-thing", 225),
    ("boil", 3),
    ("chemistry-mix", 16),
    ("use-thermometer", 0),
    ("power-component", 15),
    ("grow-fruit", 0),  # bees move at random: the world draws from the simulator's generator every tick
]
MALFORMED = [
    "",
    "   ",
    "\n\n",
    "asdkjh qwe zzz",
    "focus on \U0001f984",
    "ñandú abrir la puerta",
    "x" * 20000,
    "look around\nopen door",
    "\x00",
    "focus on",
    "open the the the door to kitchen",
]
NO_MATCH = "No known action matches that input."


def spec(task, variation, split="train", **extra):
    return TaskSpec(env="scienceworld", task=task, variation=variation, split=split, extra=extra)


def java_descendants(root: int = None) -> set:
    """Pids of java processes (zombies included: an unreaped child is a leak too) below `root` (default: us)."""
    root = os.getpid() if root is None else root
    parent, name = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm_end = stat.rindex(")")
        name[int(entry)] = stat[stat.index("(") + 1 : comm_end]
        parent[int(entry)] = int(stat[comm_end + 2 :].split()[1])
    below, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parent.items() if ppid in frontier} - below
        below |= frontier
    return {pid for pid in below if name.get(pid) == "java"}


def process_exists(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


@contextmanager
def capped_java_for_stock():
    """The stock class cannot pass JVM options; JAVA_TOOL_OPTIONS caps its heap like ours (only while it starts)."""
    before = os.environ.get("JAVA_TOOL_OPTIONS")
    os.environ["JAVA_TOOL_OPTIONS"] = " ".join(DEFAULT_JAVA_OPTIONS)
    try:
        yield
    finally:
        if before is None:
            del os.environ["JAVA_TOOL_OPTIONS"]
        else:
            os.environ["JAVA_TOOL_OPTIONS"] = before


@pytest.fixture(scope="module")
def no_leaked_java():
    """Every JVM-backed fixture depends on this one, so its check runs after they all have closed."""
    before = java_descendants()
    yield before
    leaked = java_descendants() - before
    assert not leaked, f"java processes left running by the ScienceWorld tests: {sorted(leaked)}"


@pytest.fixture(scope="module")
def env(no_leaked_java):
    with ScienceWorldEnv(name="sw-under-test") as instance:
        yield instance
    assert not process_exists(instance.java_pid or -1)


@pytest.fixture(scope="module")
def stock(no_leaked_java):
    with capped_java_for_stock():
        instance = StockScienceWorldEnv("", envStepLimit=100)
    pid = instance._gateway.java_process.pid
    yield instance
    instance.close()
    instance._gateway.java_process.wait(timeout=10)
    assert not process_exists(pid)


@pytest.fixture(scope="module")
def gold_paths(stock):
    """(task, variation) -> the simulator's own gold action sequence."""
    paths = {}
    for task, variation in GOLD_CASES:
        stock.load(task, variation, "easy", generateGoldPath=True)
        path = paths[(task, variation)] = stock.get_gold_action_sequence()
        assert path and not path[0].startswith("ERROR"), path
    return paths


def stock_reset(stock, task, variation, simplifications="easy"):
    stock.load(task, variation, simplifications)  # no gold path: the stock reset would regenerate it
    return stock.reset()


# ---- splits (no JVM) -------------------------------------------------------------------------------------------------
def test_splits_are_disjoint_and_cover_every_variation():
    for task in TASKS:
        parts = variation_splits(task)
        train, iid, ood = set(parts["train"]), set(parts["iid"]), set(parts["ood"])
        assert not (train & iid) and not (train & ood) and not (iid & ood), task
        assert train | iid | ood == set(range(MAX_VARIATIONS[task])), task
        assert max(train) < min(iid) and max(iid) < min(ood), task  # the package's contiguous blocks


def test_task_specs_are_deterministic_round_robin_and_disjoint_across_splits():
    first = scienceworld_task_specs("train", n=90, seed=7)
    assert first == scienceworld_task_specs("train", n=90, seed=7)
    assert first != scienceworld_task_specs("train", n=90, seed=8)
    assert [s.task for s in first[: len(TASKS)]] == list(TASKS)  # round-robin: each task once before any twice
    assert all(s.split == "train" and s.seed == 7 and s.env == "scienceworld" for s in first)
    everything = {split: scienceworld_task_specs(split, None, seed=0) for split in ("train", "iid", "ood")}
    keys = {split: {(s.task, s.variation) for s in specs} for split, specs in everything.items()}
    assert sum(len(v) for v in keys.values()) == sum(MAX_VARIATIONS.values())
    assert not (keys["train"] & keys["iid"]) and not (keys["train"] & keys["ood"]) and not (keys["iid"] & keys["ood"])
    chosen = scienceworld_task_specs("ood", n=5, seed=1, tasks=["melt", "boil"])
    assert [s.task for s in chosen] == ["melt", "boil", "melt", "boil", "melt"]
    assert {s.variation for s in chosen} <= set(variation_splits("melt")["ood"]) | set(variation_splits("boil")["ood"])
    assert len(scienceworld_task_specs("iid", None, seed=3, tasks=["boil"])) == 7


def test_task_specs_name_bad_arguments():
    with pytest.raises(ValueError, match="unknown ScienceWorld task 'boiling'.*boil, change-the-state"):
        scienceworld_task_specs("train", n=1, tasks=["boiling"])
    with pytest.raises(ValueError, match="split='test' is not one of train, iid, ood"):
        scienceworld_task_specs("test", n=1)
    with pytest.raises(ValueError, match="n=8 exceeds the 7 'iid' instances"):
        scienceworld_task_specs("iid", n=8, tasks=["boil"])
    with pytest.raises(ValueError, match="n=-1"):
        scienceworld_task_specs("iid", n=-1)


# ---- the live package ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_split_table_matches_the_live_package(stock):
    assert stock.get_task_names() == list(TASKS)
    assert sorted(stock.get_possible_simplifications()) == sorted(SIMPLIFICATIONS)
    for task in TASKS:
        stock.load(task, 0, "")
        assert stock.get_max_variations(task) == MAX_VARIATIONS[task], task
        ours = variation_splits(task)
        assert ours["train"] == stock.get_variations_train(), task
        assert ours["iid"] == stock.get_variations_dev(), task
        assert ours["ood"] == stock.get_variations_test(), task


@pytest.mark.slow
@pytest.mark.parametrize("task,variation", GOLD_CASES, ids=[f"{t}-{v}" for t, v in GOLD_CASES])
def test_gold_path_wins_through_the_adapter(env, gold_paths, task, variation):
    actions = gold_paths[(task, variation)]
    first = env.reset(spec(task, variation, max_turns=len(actions)), with_admissible=False)
    assert first.admissible is None and first.task.startswith("Task Description:")
    for turn, action in enumerate(actions, 1):
        result = env.step(action)
        assert "error" not in result.info
        if result.done:  # some gold paths carry a few actions past the completing one (boil: 2)
            break
    assert result.done and result.won, f"not won after {turn}/{len(actions)} gold actions: {result}"
    assert result.info["score"] == 100 and not result.info["truncated"]


@pytest.mark.slow
@pytest.mark.parametrize("task,variation", GOLD_CASES[:3], ids=[f"{t}-{v}" for t, v in GOLD_CASES[:3]])
def test_lean_step_equals_stock_step(env, stock, gold_paths, task, variation):
    """Same observation, reward, score, moves and done as the stock step, unknown actions and time passing included.

    (Tasks whose world does not draw random numbers: in grow-fruit the stock step's own valid-action query moves the
    simulator's generator, and with it the bees; see test_admissible_queries_do_not_change_the_episode.)
    """
    actions = ["wait1", "inventory", "xyzzy", "look around", ""] + gold_paths[(task, variation)]
    stock_obs, stock_info = stock_reset(stock, task, variation)
    first = env.reset(spec(task, variation, max_turns=len(actions)), with_admissible=True)
    assert (first.text, first.task, first.admissible) == (stock_obs, stock_info["taskDesc"], stock_info["valid"])
    for turn, action in enumerate(actions, 1):
        want_obs, want_reward, want_done, want_info = stock.step(action)
        asked = turn % 5 == 0  # every fifth step also asks for the admissible actions
        got = env.step(action, with_admissible=asked)
        assert (got.observation, got.reward, got.done, got.info["score"], got.info["moves"]) == (
            want_obs, want_reward, want_done, want_info["score"], want_info["moves"]), f"turn {turn}: {action!r}"
        # The package names same-named objects at random (its list can change between two calls in one state);
        # where its list is stable, ours is the same list.
        if asked and stock.get_valid_action_object_combinations() == want_info["valid"]:
            assert got.admissible == want_info["valid"], f"turn {turn}"
        if want_done:
            break
    assert got.done and got.won


@pytest.mark.slow
def test_admissible_queries_do_not_change_the_episode(env, gold_paths):
    """Asking for the admissible actions (never, always, sometimes) leaves the world's random course untouched."""
    task, variation = "grow-fruit", 0
    actions = gold_paths[(task, variation)]

    def play(every):
        first = env.reset(spec(task, variation, max_turns=len(actions)), with_admissible=every > 0)
        trace = [first.text]
        for turn, action in enumerate(actions, 1):
            result = env.step(action, with_admissible=every > 0 and turn % every == 0)
            trace.append((result.observation, result.reward, result.done, result.won, result.info["score"]))
            if result.done:
                break
        return trace

    never = play(0)
    assert never[-1][3], "the gold path should win"
    assert play(1) == never and play(3) == never
    # In one state, two queries give the same list (the package's own list changes from call to call here).
    env.reset(spec("find-living-thing", 225), with_admissible=False)
    assert env.admissible_actions() == env.admissible_actions()


@pytest.mark.slow
def test_malformed_actions_get_the_environments_own_answer(env, stock):
    stock_reset(stock, "boil", 0)
    env.reset(spec("boil", 0, max_turns=100), with_admissible=False)
    for action in MALFORMED:
        want = stock.step(action)
        got = env.step(action)
        assert (got.observation, got.reward, got.done, got.won) == (want[0], want[1], want[2], False), repr(action[:40])
    # A lone surrogate cannot be sent as UTF-8: the stock env raises a py4j error, the adapter sends "?" instead.
    got = env.step("focus on \ud800")
    assert got.observation == stock.step("focus on ?")[0] == NO_MATCH and not got.done
    assert "error" not in got.info


@pytest.mark.slow
def test_negative_score_ends_the_episode_as_a_loss(env, stock):
    stock_reset(stock, "find-living-thing", 0)
    env.reset(spec("find-living-thing", 0), with_admissible=False)
    want = stock.step("focus on air")  # air is not a living thing: ScienceWorld's failure, score -100
    got = env.step("focus on air")
    assert want[3]["score"] == got.info["score"] == -100
    assert got.done and not got.won and got.reward == want[1] < 0 and not got.info["truncated"]
    with pytest.raises(RuntimeError, match="episode is over"):
        env.step("look around")


@pytest.mark.slow
def test_turn_limit_truncates_without_a_win(env):
    env.reset(spec("boil", 1, max_turns=3), with_admissible=False)
    results = [env.step("look around") for _ in range(3)]
    assert [r.done for r in results] == [False, False, True]
    assert results[-1].info["truncated"] and not results[-1].won and results[-1].info["turns"] == 3
    env.reset(spec("boil", 1), with_admissible=False)  # the constructor's limit again (30)
    assert sum(1 for _ in range(29) if not env.step("wait1").done) == 29 and env.step("wait1").done


@pytest.mark.slow
def test_same_spec_gives_the_same_episode(env, gold_paths):
    task, variation = GOLD_CASES[0]
    actions = gold_paths[(task, variation)]

    def play():
        first = env.reset(spec(task, variation), with_admissible=True)
        steps = [env.step(a) for a in actions]
        return first, [(s.observation, s.reward, s.done, s.won, s.info["score"]) for s in steps]

    once = play()
    env.reset(spec("chemistry-mix", 16), with_admissible=False)  # another task in between, same JVM
    for action in gold_paths[("chemistry-mix", 16)][:5]:
        env.step(action)
    assert play() == once


@pytest.mark.slow
def test_bad_specs_and_arguments_are_named(env):
    with pytest.raises(ValueError, match="unknown ScienceWorld task 'boiling'; accepted: boil, "):
        env.reset(spec("boiling", 0))
    with pytest.raises(ValueError, match=r"variation=30 of task 'boil' must be in 0..29"):
        env.reset(spec("boil", 30))
    with pytest.raises(ValueError, match="unknown ScienceWorld simplification 'hard'"):
        env.reset(spec("boil", 0, simplifications="hard"))
    with pytest.raises(ValueError, match=r"TaskSpec.extra keys \['room'\] are not ScienceWorld's"):
        env.reset(spec("boil", 0, room="kitchen"))
    with pytest.raises(ValueError, match="noElectricalAction removes the actions"):
        env.reset(spec("power-component", 0, simplifications="noElectricalAction"))
    with pytest.raises(ValueError, match="max_turns=0"):
        env.reset(spec("boil", 0, max_turns=0))
    with pytest.raises(ValueError, match="the spec is for env='alfworld'"):
        env.reset(TaskSpec(env="alfworld", task="pick_and_place_simple"))
    with pytest.raises(ValueError, match="unknown ScienceWorld simplification 'Easy'"):
        ScienceWorldEnv(simplifications="Easy")  # refused before any JVM starts


@pytest.mark.slow
def test_jvm_is_started_with_the_capped_heap(env):
    with open(f"/proc/{env.java_pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    assert all(option.encode() in argv for option in DEFAULT_JAVA_OPTIONS), argv


@pytest.mark.slow
def test_killed_jvm_ends_the_step_with_an_error_and_the_next_reset_recovers(no_leaked_java):
    victim = ScienceWorldEnv(name="victim")
    try:
        first = victim.reset(spec("boil", 2), with_admissible=False)
        assert not victim.step("look around").done
        old_pid = victim.java_pid
        os.kill(old_pid, signal.SIGKILL)
        result = victim.step("look around")
        assert result.done and not result.won and result.observation == ""
        error = result.error
        assert "victim" in error and str(old_pid) in error and "SIGKILL" in error and "'boil' variation 2" in error
        assert not process_exists(old_pid)  # reaped, not a zombie
        with pytest.raises(RuntimeError, match="episode is over"):
            victim.step("look around")
        again = victim.reset(spec("boil", 2), with_admissible=True)
        assert victim.java_pid != old_pid and again.text == first.text and again.admissible
        assert not victim.step("look around").done
        # killed between episodes: the next reset notices and starts a new JVM, without an error
        idle_pid = victim.java_pid
        os.kill(idle_pid, signal.SIGKILL)
        time.sleep(0.2)
        assert victim.reset(spec("boil", 2), with_admissible=False).text == first.text
        assert victim.java_pid not in (old_pid, idle_pid) and not process_exists(idle_pid)
    finally:
        pid = victim.java_pid
        victim.close()
        victim.close()  # idempotent
    assert not process_exists(pid) and victim.java_pid is None
    with pytest.raises(RuntimeError, match="closed"):
        victim.reset(spec("boil", 2))


@pytest.mark.slow
def test_unclosed_instances_leave_no_java_at_collection_or_exit(no_leaked_java):
    """Dropped without close(): the finalizer ends the JVM at garbage collection and at interpreter exit."""
    program = textwrap.dedent(
        """
        import atexit, gc, os, weakref
        # atexit runs the last-registered hook first: registered before weakref.finalize registers its own (with the
        # first environment), this check runs after the environments' finalizers.
        assert not weakref.finalize._registered_with_atexit
        kept_pid = []
        atexit.register(lambda: print(kept_pid[0], os.path.exists(f"/proc/{kept_pid[0]}"), flush=True))
        from openrlhf_epo.envs.scienceworld_env import ScienceWorldEnv
        dropped = ScienceWorldEnv(name="dropped")
        pid = dropped.java_pid
        del dropped
        gc.collect()
        print(pid, os.path.exists(f"/proc/{pid}"), flush=True)
        kept = ScienceWorldEnv(name="kept-until-exit")
        kept_pid.append(kept.java_pid)
        """
    )
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    (dropped_pid, dropped_alive), (kept_pid, kept_alive_at_exit) = [line.split() for line in out.stdout.split("\n")[:2]]
    assert dropped_alive == "False" and kept_alive_at_exit == "False", out.stdout
    assert not process_exists(int(kept_pid)) and not process_exists(int(dropped_pid))


@pytest.mark.slow
def test_step_before_reset_and_a_jvm_that_cannot_start_are_refused(no_leaked_java):
    with ScienceWorldEnv(name="fresh") as fresh:
        with pytest.raises(RuntimeError, match="call reset"):
            fresh.step("look around")
        with pytest.raises(RuntimeError, match="call reset"):
            fresh.admissible_actions()
    refused = r"bad-jvm: the ScienceWorld JVM did not start with options \['-Xmx1k'\] \(exited with status 1\): .*small"
    with pytest.raises(EnvironmentError_, match=refused):
        ScienceWorldEnv(name="bad-jvm", java_options=["-Xmx1k"])
