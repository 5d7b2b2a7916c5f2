"""A TextEnv that lives in a child process of its own: environments whose work is Python CPU time step in parallel.

ALFWorld's PDDL engine (textworld + fast-downward) keeps module-global state, so inside one process its instances
load, reset and step one at a time (`alfworld_games.pddl_guard`): 16 concurrent episodes would queue behind one lock
and one GIL. One process per pooled instance removes both; ScienceWorld needs none of this (its work happens in its
JVM, and the Python side waits on a socket without holding the GIL).

The child is started with "spawn" (forking a process that holds threads, JVM pipes or a CUDA context is unsafe),
builds the named environment, and serves reset / step / admissible_actions / attribute reads over a pipe. A child
that dies mid-call becomes an EnvironmentError_ naming it and its exit status; a parent that dies closes the pipe and
the child exits on its own (it never outlives the rollout worker).
"""
import multiprocessing
import pickle
from typing import Any, Dict, List, Optional

from openrlhf_epo.envs.base import EnvironmentError_, EnvTimeout, Observation, StepResult, TaskSpec, TextEnv
from openrlhf_epo.envs.registry import make_env


PROCESS_TITLE = "openrlhf-epo::env-{}"  # what `ps` / `top` show for an environment's child process


def _name_process(env_name: str) -> None:
    """Retitle the child as vLLM retitles its engine cores ("VLLM::EngineCore"), so that a user (or a test) can tell
    environment processes apart from the other spawned children. setproctitle comes with vLLM; without it the
    child keeps Python's command line."""
    try:
        import setproctitle
    except ImportError:
        return
    setproctitle.setproctitle(PROCESS_TITLE.format(env_name))


def _serve(conn, env_name: str, kwargs: Dict[str, Any]) -> None:
    """The child's loop: one request (method, args) in, one (ok, value) out, until close or a closed pipe."""
    _name_process(env_name)
    try:
        env = make_env(env_name, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send((False, _portable(exc)))
        return
    conn.send((True, None))
    try:
        while True:
            try:
                method, args = conn.recv()
            except (EOFError, OSError):  # the parent is gone
                return
            if method == "close":
                break
            try:
                value = getattr(env, args[0]) if method == "attribute" else getattr(env, method)(*args)
                conn.send((True, value))
            except BaseException as exc:  # noqa: BLE001
                conn.send((False, _portable(exc)))
    finally:
        env.close()
        conn.close()


def _portable(exc: BaseException) -> BaseException:
    """The exception itself when it pickles, else an EnvironmentError_ carrying its text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return EnvironmentError_(f"{type(exc).__name__}: {exc}")


class SubprocessEnv(TextEnv):
    """`env_name`'s environment (constructed with `kwargs`) in a child process; same interface, same answers.
    start_timeout: a child that has not built its environment within it is killed (EnvTimeout)."""

    def __init__(self, env_name: str, start_timeout: Optional[float] = None, **kwargs):
        self.name = env_name
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._proc = context.Process(target=_serve, args=(child, env_name, kwargs), daemon=True,
                                     name=f"openrlhf-epo-{env_name}")
        self._proc.start()
        child.close()
        self._closed = False
        self._receive("start", timeout=start_timeout)

    @property
    def pid(self) -> Optional[int]:
        return self._proc.pid

    def _receive(self, what: str, timeout: Optional[float] = None):
        if timeout is not None and not self._conn.poll(timeout):
            self.kill()
            raise EnvTimeout(f"the {self.name} environment process (pid {self._proc.pid}) did not {what} within "
                             f"{timeout:g} s; it was killed")
        try:
            ok, value = self._conn.recv()
        except (EOFError, OSError):
            self._proc.join(timeout=5)
            self._closed = True
            raise EnvironmentError_(
                f"the {self.name} environment process (pid {self._proc.pid}) died during {what} "
                f"(exit status {self._proc.exitcode})"
            ) from None
        if not ok:
            raise value
        return value

    def _call(self, method: str, *args):
        if self._closed:
            raise RuntimeError(f"this {self.name} SubprocessEnv is closed")
        try:
            self._conn.send((method, args))
        except (BrokenPipeError, OSError):
            return self._receive(method)  # reports the dead child
        return self._receive(method)

    def reset(self, spec: TaskSpec, with_admissible: bool = True) -> Observation:
        return self._call("reset", spec, with_admissible)

    def step(self, action: str, with_admissible: bool = False) -> StepResult:
        return self._call("step", action, with_admissible)

    def admissible_actions(self) -> List[str]:
        return self._call("admissible_actions")

    def attribute(self, name: str) -> Any:
        """An attribute of the environment object in the child (e.g. ALFWorld's `walkthrough`)."""
        return self._call("attribute", name)

    def alive(self) -> bool:
        return not self._closed and self._proc.is_alive()

    def kill(self) -> None:
        """SIGKILL the child: a call blocked on its pipe gets EOF and raises EnvironmentError_."""
        if self._proc.is_alive():
            self._proc.kill()
        self._proc.join(timeout=5)
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._conn.send(("close", ()))
        except (BrokenPipeError, OSError):
            pass
        self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(timeout=5)
        self._conn.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
