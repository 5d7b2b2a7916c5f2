"""ScienceWorld (Wang et al., 2022) as a `TextEnv`: the real simulator in its own JVM, with lean steps.

EPO's ScienceWorld episodes run 30 turns and more (paper, section 1; 30 in RLVMR's setup, where the paper's baseline
numbers come from), so the environment step sits inside every rollout turn. The package's `ScienceWorldEnv.step()`
costs 25-90 ms on this machine because, after the simulator's own step, it also asks the JVM for the look-around
text, the inventory, the task description and the list of every valid action-object combination (hundreds to
thousands of strings, fetched one py4j round trip each: most of the cost). This adapter makes the same simulator
call, `PythonInterface.step`, then reads only the score, the completion flag and the move count, and asks for the
valid actions only when the caller wants them (``with_admissible=True`` or `admissible_actions()`): about 5.5 ms per
step (4.5x-16x cheaper, bench/scienceworld_step.py; what remains is the simulator's own step). When asked for, the
list comes over as one string (`_Jvm.admissible`): about 15 ms per step.

Same episode as the stock step: the look, inventory and task queries are read-only "free actions", so observation,
reward, score and done are the stock step's for the same actions (tested on gold paths, unknown and malformed
actions). One difference is deliberate: the valid-action query is not read-only in the package. It names objects
that share a name by drawing from `scala.util.Random`, the generator that also moves the world (bees in grow-fruit
and the genetics tasks), so in the stock env the world's random course depends on those per-step queries, and two
queries in one state can name objects differently. Here the generator's state is restored around every query
(`_Jvm.admissible`): an episode does not depend on whether or when admissible actions were asked for, and in tasks
with random processes it can differ from the stock env's (which is perturbed by its own queries).

Episode semantics, as the package and the peers define them:
- reward = change in score (0-100), as the stock step computes it; the first observation's score is the baseline.
- done when the simulator marks the task complete, when the score is negative (ScienceWorld's failure, -100, e.g.
  after focusing on a wrong object), past ``env_step_limit`` simulator moves (the stock rule), or when the adapter's
  turn limit ``max_turns`` is reached (``info["truncated"]``).
- won = the simulator marked the task complete and the score is positive (RLVMR / verl-agent's rule, without
  counting a truncated episode with partial score as a win).

The JVM: one per instance, started once (about 1 s) and reused: `reset` to a new TaskSpec reloads the task in the
same JVM. Its heap is capped and its identity hash codes are constant, so that the same TaskSpec gives the same
episode (see `DEFAULT_JAVA_OPTIONS`). A JVM that dies (killed, out of memory) is detected: `step` returns done, not
won, and ``error`` naming the instance and the cause; the next `reset` starts a new JVM. No java process
outlives its instance: `close()` (also on ``__exit__``, garbage collection and interpreter exit) shuts the gateway
down, closes the JVM's stdin (py4j's ``--die-on-broken-pipe`` then exits it) and waits for the pid, killing it if it
lingers. `scienceworld` and `py4j` are imported only when a JVM starts (they are the optional extra
``openrlhf-epo[scienceworld]``), so the constants and validators here import without them.
"""
import itertools
import os
import signal
import subprocess
import tempfile
import threading
import weakref
from typing import Any, Dict, List, Optional, Sequence

from openrlhf_epo.envs import base
from openrlhf_epo.envs.base import EnvironmentError_, EnvTimeout, Observation, StepResult, TaskSpec, TextEnv
from openrlhf_epo.envs.scienceworld_splits import MAX_VARIATIONS, check_task

# -Xmx512m -XX:+UseSerialGC: Java's default heap is 1/4 of RAM and keeps growing (590 MB after the benchmark, 0.6-2.3 GB
# seen); capped, an instance stays near 470 MB at the same speed (-Xmx256m: 345 MB, still the same speed; 192m starts
# to slow the valid-action query down). -XX:hashCode=2 (constant identity hash codes) makes episodes reproducible: the
# simulator keeps a room's objects in hash sets keyed by identity hash codes, so with Java's default hashing the order
# in which a room lists its objects (and offers an ambiguous name's candidates) changes from one reset of the same
# task variation to the next (find-living-thing variation 225: 6 different first episodes in 15 resets). With
# constant hashes the order follows insertion, the same every time, for about 1.2x the step time (5.7 against 4.9 ms).
DEFAULT_JAVA_OPTIONS = ("-Xmx512m", "-XX:+UseSerialGC", "-XX:+UnlockExperimentalVMOptions", "-XX:hashCode=2")
DEFAULT_SIMPLIFICATIONS = "easy"
DEFAULT_MAX_TURNS = base.DEFAULT_MAX_TURNS["scienceworld"]  # envs/base.py's table
DEFAULT_ENV_STEP_LIMIT = 100  # the package's envStepLimit, as RLVMR sets it
# The package's simplifications (`get_possible_simplifications()`), plus "easy" = all of them.
SIMPLIFICATIONS = ("teleportAction", "selfWateringFlowerPots", "openContainers", "openDoors", "noElectricalAction")
# TaskSpec.extra keys this environment reads (per-episode overrides of the constructor's values).
EXTRA_KEYS = ("simplifications", "max_turns")


def check_simplifications(text: str, task: Optional[str] = None) -> str:
    """`text` (comma-separated, no spaces, "" = none) if ScienceWorld accepts it, else a ValueError naming choices."""
    if not isinstance(text, str):
        raise ValueError(f"simplifications={text!r} must be a comma-separated string such as 'easy'")
    for item in filter(None, text.split(",")):
        if item not in ("easy",) + SIMPLIFICATIONS:
            accepted = ", ".join(("easy",) + SIMPLIFICATIONS)
            raise ValueError(f"unknown ScienceWorld simplification {item!r} in {text!r}; accepted: {accepted}")
    # The package refuses this combination (electrical tasks need `connect` actions); "easy" is allowed there.
    if task and ("power-component" in task or "conductivity" in task) and "noElectricalAction" in text:
        raise ValueError(f"simplification noElectricalAction removes the actions that task {task!r} needs")
    return text


def _check_max_turns(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"max_turns={value!r} must be a positive integer")
    return value


class _Jvm:
    """One java child process running ScienceWorld's py4j server, and its gateway.

    Holds no reference to the environment object, so a weakref finalizer can close it when the environment is
    collected or the interpreter exits.
    """

    def __init__(self, java_options: Sequence[str], label: str, start_timeout: Optional[float] = None):
        from py4j.java_gateway import find_jar_path
        from scienceworld.constants import BASEPATH, JAR_PATH

        # What py4j's launch_gateway does (as the stock class calls it), but holding the process from the first
        # moment, so a JVM that fails to start is reaped and its message quoted. stderr goes to an unlinked temporary
        # file (a crash message: OutOfMemoryError, a bad option); stdout carries the port, then the simulator's
        # per-step debug text, which a daemon thread drains.
        self.stderr = tempfile.TemporaryFile()
        command = ["java", "-classpath", os.pathsep.join((find_jar_path(), JAR_PATH)), *java_options]
        command += ["--add-opens", "java.base/java.util=ALL-UNNAMED"]  # to read java.util.Random's state
        # --die-on-broken-pipe: the JVM exits when our end of its stdin closes, even if Python is killed.
        command += ["py4j.GatewayServer", "--die-on-broken-pipe", "0"]
        try:
            self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                         cwd=BASEPATH)
        except FileNotFoundError:
            self.stderr.close()
            raise EnvironmentError_(
                f"{label}: no `java` on PATH; ScienceWorld needs Java 17 (apt-get install openjdk-17-jre-headless)"
            ) from None
        # A JVM that hangs while starting (no port line, or a frozen gateway) is killed when start_timeout runs out:
        # the blocked read or py4j call then fails at once.
        fired = threading.Event()

        def expire():
            fired.set()
            self.proc.kill()

        watchdog = threading.Timer(start_timeout, expire) if start_timeout else None
        if watchdog is not None:
            watchdog.daemon = True
            watchdog.start()
        try:
            self._connect(label, java_options)
        except EnvironmentError_:
            if fired.is_set():
                raise EnvTimeout(f"{label}: the ScienceWorld JVM did not start within {start_timeout:g} s; it was "
                                 "killed") from None
            raise
        finally:
            if watchdog is not None:
                watchdog.cancel()

    def _connect(self, label: str, java_options: Sequence[str]) -> None:
        """Read the JVM's port, open the gateway and set the simulator up."""
        from py4j.java_gateway import GatewayParameters, JavaGateway

        first_line = self.proc.stdout.readline()
        try:
            port = int(first_line)
        except ValueError:
            # The JVM reports a bad option on stdout.
            stdout = (first_line + self.proc.stdout.read()).decode("utf-8", "replace")
            self.proc.wait()
            self.proc.stdout.close()
            tail = " ".join((self.stderr_tail() + "\n" + stdout).split())[-600:] or "no message"
            self.stderr.close()
            raise EnvironmentError_(
                f"{label}: the ScienceWorld JVM did not start with options {list(java_options)} "
                f"({_describe_exit(self.proc.returncode)}): {tail}"
            ) from None
        self.drain = threading.Thread(target=_drain, args=(self.proc.stdout,), name=f"{label}-stdout", daemon=True)
        self.drain.start()
        self.gateway = JavaGateway(gateway_parameters=GatewayParameters(port=port), java_process=self.proc)
        try:
            self.server = self.gateway.jvm.scienceworld.runtime.pythonapi.PythonInterface()
            # The simulator's one random generator (scala.util.Random, re-seeded with the variation index at every
            # load) and its private 48-bit state, readable thanks to --add-opens (see `admissible`).
            java_lang_class = self.gateway.jvm.java.lang.Class
            self.random = java_lang_class.forName("scala.util.Random$").getField("MODULE$").get(None).self()
            self.random_state = java_lang_class.forName("java.util.Random").getDeclaredField("seed")
            self.random_state.setAccessible(True)
            self.join = self.gateway.jvm.java.lang.String.join
            self.connections = java_lang_class.forName("py4j.GatewayServer").getDeclaredField("connections")
            self.connections.setAccessible(True)
            self.tune_connections()
        except Exception as exc:
            self.close()
            raise EnvironmentError_(f"{label}: the ScienceWorld JVM started but could not be set up: {exc}") from None

    def tune_connections(self) -> None:
        """TCP_NODELAY on the JVM's end of every py4j connection.

        py4j's Java side writes an answer through an 8 KB buffer with Nagle's algorithm on: an answer longer than that
        (the valid-action list is 10-100 KB) leaves in pieces, and the last piece waits for an acknowledgement that
        Linux delays by 40 ms. With NODELAY the list arrives in the time the simulator takes to build it.
        """
        from py4j.protocol import Py4JJavaError

        connections = self.connections.get(self.gateway.java_gateway_server)
        for index in range(connections.size()):
            try:
                connections.get(index).getSocket().setTcpNoDelay(True)
            except Py4JJavaError:  # a connection closing meanwhile: nothing to tune (the setting is only for speed)
                pass

    def admissible(self) -> List[str]:
        """The valid action-object combinations, leaving the simulator's random generator as it found it.

        Building the list names objects that share a name with `Random.nextInt` (InputParser.chooseUniqueReferents),
        drawing from the generator that also drives the world (bees in grow-fruit and the genetics tasks). Without the
        restore, asking for the admissible actions would change how the episode unfolds, and two calls in a row could
        name objects differently. java.util.Random.setSeed(s) stores s XOR 0x5DEECE66D, hence the XOR.

        The list comes over as one joined string: iterating py4j's proxy of it costs a round trip per action (the
        stock env's way: 12-80 ms for a thousand actions, on top of the 9 ms the simulator needs to build the list).
        """
        state = self.random_state.get(self.random)  # an AtomicLong, which py4j hands over as its value
        try:
            actions = self.server.getValidActionObjectCombinations()
            count = actions.size()
            joined = self.join("\n", actions) if count else ""
            out = joined.split("\n") if count else []
            return out if len(out) == count else list(actions)  # an action with a newline: item by item
        finally:
            self.random.setSeed(state ^ 0x5DEECE66D)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr_tail(self, limit: int = 600) -> str:
        try:
            self.stderr.seek(0, 2)
            size = self.stderr.tell()
            self.stderr.seek(max(0, size - limit))
            return self.stderr.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""

    def exit_status(self, wait: float = 0.0) -> Optional[int]:
        """The JVM's return code, None while it runs (waits up to `wait` seconds for a dying one to be reaped)."""
        try:
            return self.proc.wait(timeout=wait) if wait else self.proc.poll()
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        """Shut the gateway down and make sure the java process is gone (reaped). Safe to call twice."""
        try:
            self.gateway.shutdown()
        except Exception:
            pass
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # EOF on stdin: py4j's --die-on-broken-pipe calls System.exit
            except Exception:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.drain.join(timeout=1)  # the process is gone: its stdout is at EOF
        for stream in (self.proc.stdout, self.stderr):
            try:
                stream.close()
            except Exception:
                pass


def _drain(stream) -> None:
    for _ in stream:
        pass


def _describe_exit(code: Optional[int]) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


class ScienceWorldEnv(TextEnv):
    """ScienceWorld behind the `TextEnv` interface: one capped JVM per instance, admissible actions only on request.

    Args:
        simplifications: ScienceWorld's simplification string, "easy" (all of them, as RLVMR and the EPO reference
            code use) by default; TaskSpec.extra["simplifications"] overrides it per episode.
        max_turns: the adapter's turn limit (30, RLVMR's budget); TaskSpec.extra["max_turns"] overrides it.
        env_step_limit: the package's own limit on simulator moves (some actions take several moves), 100 as RLVMR.
        java_options: JVM options; the default caps the heap at 512 MB with the serial collector and makes episodes
            reproducible (`DEFAULT_JAVA_OPTIONS`); without "-XX:hashCode=2" steps are about 1.2x faster, but a
            room's objects are listed in a different order from one reset to the next.
        name: the instance's name in error messages (default "scienceworld-<n>").
        start_timeout: seconds a JVM may take to start (at construction and at every restart); a slower one is
            killed (EnvTimeout). None: no bound.
    """

    name = "scienceworld"
    _instances = itertools.count()

    def __init__(
        self,
        simplifications: str = DEFAULT_SIMPLIFICATIONS,
        max_turns: int = DEFAULT_MAX_TURNS,
        env_step_limit: int = DEFAULT_ENV_STEP_LIMIT,
        java_options: Sequence[str] = DEFAULT_JAVA_OPTIONS,
        name: Optional[str] = None,
        start_timeout: Optional[float] = None,
    ):
        self.simplifications = check_simplifications(simplifications)
        self.max_turns = _check_max_turns(max_turns)
        if not isinstance(env_step_limit, int) or isinstance(env_step_limit, bool) or env_step_limit < 1:
            raise ValueError(f"env_step_limit={env_step_limit!r} must be a positive integer")
        self.env_step_limit = env_step_limit
        self.java_options = tuple(java_options)
        self.start_timeout = start_timeout
        self.label = name or f"scienceworld-{next(self._instances)}"
        self._jvm: Optional[_Jvm] = None
        self._finalizer: Optional[weakref.finalize] = None
        self._closed = False
        self._restart_needed = False
        self._spec: Optional[TaskSpec] = None
        self._done = True
        self._start_jvm()

    # ---- the JVM's lifetime --------------------------------------------------------------------------------------
    def _start_jvm(self) -> None:
        self._stop_jvm()
        jvm = _Jvm(self.java_options, self.label, self.start_timeout)
        self._jvm = jvm
        self._finalizer = weakref.finalize(self, jvm.close)  # also runs at interpreter exit
        self._restart_needed = False

    def _stop_jvm(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # runs jvm.close once, then detaches
        self._finalizer = None
        self._jvm = None

    @property
    def java_pid(self) -> Optional[int]:
        """The pid of this instance's java process (None once closed)."""
        return None if self._jvm is None else self._jvm.pid

    def close(self) -> None:
        self._stop_jvm()
        self._closed = True
        self._done = True

    def kill(self) -> None:
        """SIGKILL the JVM first (a py4j call blocked on its socket then fails at once), then close."""
        jvm = self._jvm
        if jvm is not None and jvm.proc.poll() is None:
            jvm.proc.kill()
        self.close()

    def _where(self) -> str:
        pid = self.java_pid
        spec = self._spec
        episode = f", task {spec.task!r} variation {spec.variation}" if spec is not None else ""
        return f"ScienceWorld instance {self.label} (java pid {pid}{episode})"

    def _failure(self, exc: BaseException, during: str) -> str:
        """The error message for a py4j failure; marks the JVM for a restart unless it is alive and only threw."""
        from py4j.protocol import Py4JJavaError

        jvm = self._jvm
        java_threw = isinstance(exc, Py4JJavaError)
        # A dying JVM may not be reaped yet when py4j notices the closed socket: give it a moment to report its status.
        code = None if jvm is None else jvm.exit_status(wait=0.0 if java_threw else 2.0)
        if java_threw and code is None:
            return f"{self._where()} failed during {during}: the simulator threw {str(exc.java_exception)[:300]}"
        self._restart_needed = True
        if code is None:
            cause = "the connection to the JVM failed (the JVM still runs; the next reset replaces it)"
        else:
            cause = f"the JVM died ({_describe_exit(code)}; the next reset starts a new one)"
        cause += f": {type(exc).__name__}: {str(exc)[:200]}"
        tail = jvm.stderr_tail() if jvm is not None else ""
        if tail:
            cause += f"; java stderr: {tail[-300:]}"
        return f"{self._where()} failed during {during}: {cause}"

    # ---- episodes ------------------------------------------------------------------------------------------------
    def _episode_settings(self, spec: TaskSpec) -> Dict[str, Any]:
        if not isinstance(spec, TaskSpec):
            raise TypeError(f"reset expects a TaskSpec, got {type(spec).__name__}")
        if spec.env != "scienceworld":
            raise ValueError(f"{self.label} is a ScienceWorld environment; the spec is for env={spec.env!r}")
        check_task(spec.task)
        limit = MAX_VARIATIONS[spec.task]
        if not isinstance(spec.variation, int) or not 0 <= spec.variation < limit:
            raise ValueError(f"variation={spec.variation!r} of task {spec.task!r} must be in 0..{limit - 1}")
        unknown = sorted(set(spec.extra) - set(EXTRA_KEYS))
        if unknown:
            raise ValueError(f"TaskSpec.extra keys {unknown} are not ScienceWorld's; accepted: {', '.join(EXTRA_KEYS)}")
        simplifications = check_simplifications(spec.extra.get("simplifications", self.simplifications), spec.task)
        max_turns = _check_max_turns(spec.extra.get("max_turns", self.max_turns))
        return {"simplifications": simplifications, "max_turns": max_turns}

    def reset(self, spec: TaskSpec, with_admissible: bool = True) -> Observation:
        """Load `spec`'s task variation in this instance's JVM (a new JVM if the last one died) and look around.

        The world is fixed by task and variation (the simulator seeds itself with the variation index at every load);
        spec.split and spec.seed record where the spec came from and do not change the episode.
        """
        from py4j.protocol import Py4JError

        if self._closed:
            raise RuntimeError(f"{self.label} is closed")
        settings = self._episode_settings(spec)
        if self._restart_needed or self._jvm is None or self._jvm.exit_status() is not None:
            self._start_jvm()
        self._spec, self._done = spec, True
        server = self._jvm.server
        try:
            self._jvm.tune_connections()  # py4j opens a connection per concurrent caller: tune any new one
            error = server.load(spec.task, spec.variation, settings["simplifications"], False)
            if error:
                raise EnvironmentError_(f"{self._where()} could not load the task: {error}")
            # The stock reset() reloads the task once more, then steps "look around": one load gives the same state.
            text = server.step("look around")
            self._last_score = int(round(100 * server.getScore()))
            task = server.freeActionTaskDesc()  # the stock info["taskDesc"]
            admissible = self._jvm.admissible() if with_admissible else None
        except Py4JError as exc:
            raise EnvironmentError_(self._failure(exc, "reset")) from None
        self._max_turns = settings["max_turns"]
        self._turns = 0
        self._done = False
        return Observation(text=text, task=task, admissible=admissible)

    def step(self, action: str, with_admissible: bool = False) -> StepResult:
        """One simulator step; any string is an action (unknown ones get ScienceWorld's own answer)."""
        from py4j.protocol import Py4JError

        if self._spec is None or self._closed:
            raise RuntimeError(f"{self.label}: call reset(spec) before step()")
        if self._done:
            raise RuntimeError(f"{self._where()}: the episode is over; call reset(spec) for a new one")
        if not isinstance(action, str):
            raise TypeError(f"action must be a str, got {type(action).__name__}: {action!r}")
        # py4j sends UTF-8 and raises on lone surrogates (the stock env does too); replace them, the simulator answers.
        action = action.encode("utf-8", "replace").decode("utf-8")
        self._turns += 1
        server = self._jvm.server
        try:
            text = server.step(action)
            score = int(round(100 * server.getScore()))  # as the stock step: 0-1 -> 0-100
            completed = bool(server.getCompleted())
            moves = int(server.getNumMoves())
        except Py4JError as exc:
            self._done = True
            error = self._failure(exc, f"step {self._turns} (action {action[:80]!r})")
            info = {"score": self._last_score, "turns": self._turns}
            return StepResult(observation="", reward=0.0, done=True, won=False, error=error, info=info)
        reward = score - self._last_score
        self._last_score = score
        env_done = completed or score < 0 or moves > self.env_step_limit  # the stock step's isCompleted
        truncated = not env_done and self._turns >= self._max_turns
        self._done = env_done or truncated
        info: Dict[str, Any] = {"score": score, "moves": moves, "turns": self._turns, "truncated": truncated}
        admissible = None
        if with_admissible:
            try:
                admissible = self._jvm.admissible()
            except Py4JError as exc:
                self._done = True
                return StepResult(observation=text, reward=float(reward), done=True, won=False,
                                  error=self._failure(exc, "admissible actions"), info=info)
        won = completed and score > 0
        return StepResult(observation=text, reward=float(reward), done=self._done, won=won, admissible=admissible,
                          info=info)

    def admissible_actions(self) -> List[str]:
        """The valid action-object combinations of the current state (sorted, as the package returns them)."""
        from py4j.protocol import Py4JError

        if self._spec is None or self._closed:
            raise RuntimeError(f"{self.label}: call reset(spec) before admissible_actions()")
        try:
            return self._jvm.admissible()
        except Py4JError as exc:
            raise EnvironmentError_(self._failure(exc, "admissible actions")) from None
