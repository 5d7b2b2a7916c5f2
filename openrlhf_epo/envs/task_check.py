"""Task data checked before anything expensive starts: every line of a prompt or eval dataset names a task instance
this machine can play.

A bad line (not JSON, no task spec under the label key, an unknown environment, task, split or variation, a
ScienceWorld variation outside its split's block, an ALFWorld game that is not there) is otherwise found only when a
rollout engine reaches it, deep inside Ray, minutes or hours into a run. `check_dataset_files` / `read_task_file` raise one ValueError
naming the file, the line number, the bad value and what is accepted; the driver calls it before Ray starts
(integration/agent_flags.check_agent_args), as do `openrlhf-epo data` (on what it wrote) and `eval` (on what it reads).
"""
import json
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

from openrlhf_epo.envs.base import TaskSpec

LOCAL_FORMATS = (".json", ".jsonl")  # what `openrlhf-epo data` writes; other dataset forms are not read here


def spec_problem(spec: TaskSpec) -> Optional[str]:
    """Why `spec` is not a task instance of its environment (None when it is): the task, the variation within the
    split's block, the game file; env and split are checked by TaskSpec itself."""
    if spec.env == "scienceworld":
        from openrlhf_epo.envs.scienceworld_splits import MAX_VARIATIONS, TASKS, variation_splits

        if spec.task not in MAX_VARIATIONS:
            return f"unknown ScienceWorld task {spec.task!r}; accepted: {', '.join(TASKS)}"
        block = variation_splits(spec.task)[spec.split]
        if spec.variation not in block:
            span = f"{block[0]}-{block[-1]}" if block else "none"
            return (f"variation {spec.variation} of {spec.task!r} is not in its {spec.split} block (variations "
                    f"{span} of 0-{MAX_VARIATIONS[spec.task] - 1}; scienceworld_splits.py)")
        return None
    if spec.env == "signpost":
        from openrlhf_epo.envs.signpost_env import spec_problem as signpost_problem

        return signpost_problem(spec)
    from openrlhf_epo.envs.alfworld_env import game_problem
    from openrlhf_epo.envs.alfworld_games import TASK_TYPES

    if spec.task not in TASK_TYPES:
        return f"unknown ALFWorld task type {spec.task!r}; accepted: {', '.join(TASK_TYPES)}"
    return game_problem(spec)


def _rows(path: Path) -> Iterator[Tuple[int, object]]:
    """(line number, parsed row) of a JSON-lines file, or of a JSON array file (row numbers count from 1)."""
    text = path.read_text()
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
        yield from enumerate(rows, 1)
        return
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not a JSON line ({exc}): {line[:120]!r}") from None


def read_task_file(path: Path, label_key: str = "label",
                   input_key: Optional[str] = None) -> List[Tuple[TaskSpec, dict]]:
    """(TaskSpec, row) of every row, in order; ValueError at the first bad row, naming path:line, the value and the
    fix."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file (write one with `openrlhf-epo data ...`)")
    tasks = []
    for number, row in _rows(path):
        where = f"{path}:{number}"
        if not isinstance(row, dict):
            raise ValueError(f"{where}: a row must be a JSON object, got {str(row)[:120]!r}")
        if input_key is not None and input_key not in row:
            raise ValueError(f"{where}: no {input_key!r} field (--data.input_key); the row has {sorted(row)}")
        if label_key not in row:
            raise ValueError(f"{where}: no {label_key!r} field (--data.label_key: the task spec column); the row has "
                             f"{sorted(row)}")
        try:
            spec = TaskSpec.from_json(row[label_key])
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        problem = spec_problem(spec)
        if problem is not None:
            raise ValueError(f"{where}: {problem}")
        tasks.append((spec, row))
    if not tasks:
        raise ValueError(f"{path}: no task lines")
    return tasks


def dataset_paths(datasets: str) -> List[str]:
    """The paths of upstream's comma-separated dataset argument (`path@data_dir` keeps its path)."""
    return [part.split("@")[0].strip() for part in datasets.split(",") if part.strip()]


def check_dataset_files(datasets: Optional[str], label_key: str, input_key: Optional[str] = None) -> List[str]:
    """Check every local JSON / JSON-lines file of a dataset argument; returns the parts that are not such files
    (a Hugging Face dataset name, a saved dataset folder), which are read only by upstream's loader."""
    unchecked = []
    for part in dataset_paths(datasets or ""):
        path = Path(part).expanduser()
        if path.suffix.lower() in LOCAL_FORMATS:
            read_task_file(path, label_key, input_key)
        else:
            unchecked.append(part)
    return unchecked
