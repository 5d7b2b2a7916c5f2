"""A resume starts from the last checkpoint every model finished saving, never from a torn one.

OpenRLHF saves a step's checkpoint per model group (`<ckpt.path>/_actor`, `_critic`): each DeepSpeed rank writes its
files, then rank 0 writes `latest` (DeepSpeed's pointer, written without waiting for the other ranks' files), and the
actor's and the critic's saves are separate. A run killed during a save can leave a step directory half written,
`latest` naming it, or the actor at step N and the critic at N - 1; upstream's resume loads whatever `latest` names.

Here the driver records a step as complete (COMPLETE_FILE in --ckpt.path, replaced atomically) only after every
group's save of it has returned on every rank. Before the models load, `prepare_resume` makes each group's `latest`
name that step again and removes the newer step directories a killed save left behind, saying which.
"""
import json
import os
import re
import shutil
from typing import Optional

COMPLETE_FILE = "epo_last_complete.json"
GROUP_DIRS = ("_actor", "_critic")  # OpenRLHF's DeepSpeed checkpoint folders under --ckpt.path
STEP_TAG = re.compile(r"global_step(\d+)$")  # the tag upstream's save_logs_and_checkpoints gives a step's checkpoint


def replace_file(path: str, text: str) -> None:
    """Replace path's content with text: a reader (or a crash) sees the old file or the new one, never a part."""
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def mark_complete(args, tag: str, global_step: int) -> None:
    """Record `tag` (global_step) as the newest checkpoint every group has finished saving (nothing for a trainer
    built without a checkpoint folder, as upstream's unit tests build one)."""
    folder = getattr(args.ckpt, "path", None)
    if not folder:
        return
    path = os.path.join(folder, COMPLETE_FILE)
    replace_file(path, json.dumps({"tag": tag, "global_step": int(global_step)}) + "\n")


def last_complete(ckpt_path: str) -> Optional[dict]:
    """{"tag", "global_step"} of the last complete checkpoint, None when none was recorded."""
    path = os.path.join(ckpt_path, COMPLETE_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as handle:
            record = json.load(handle)
        return {"tag": str(record["tag"]), "global_step": int(record["global_step"])}
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a checkpoint record ({error}); it holds {{\"tag\": ..., \"global_step\": "
                         "...}, written by openrlhf-epo after each complete save. Delete it to resume from "
                         "DeepSpeed's `latest` instead") from None


def _step_dirs(group_dir: str):
    """{step: directory name} of the regular step checkpoints in one group's folder."""
    steps = {}
    for name in os.listdir(group_dir):
        match = STEP_TAG.match(name)
        if match and os.path.isdir(os.path.join(group_dir, name)):
            steps[int(match.group(1))] = name
    return steps


def _read_latest(group_dir: str) -> Optional[str]:
    path = os.path.join(group_dir, "latest")
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        return handle.read().strip() or None


def prepare_resume(args) -> Optional[str]:
    """With --ckpt.load_enable, before any model loads: point every group's `latest` at the last complete checkpoint
    and remove the torn step directories newer than it. The tag resumed from (None: a fresh start)."""
    if not getattr(args.ckpt, "load_enable", False):
        return None
    record = last_complete(args.ckpt.path)
    groups = [os.path.join(args.ckpt.path, name) for name in GROUP_DIRS
              if os.path.isdir(os.path.join(args.ckpt.path, name))]
    if record is None:
        for group_dir in groups:
            if _read_latest(group_dir) is None:  # only torn saves: the first save never finished
                _remove_torn(group_dir, _step_dirs(group_dir), newer_than=-1)
                if set(os.listdir(group_dir)) <= {"zero_to_fp32.py"}:
                    shutil.rmtree(group_dir)  # upstream would try to load it; there is nothing to load
        return None  # a checkpoint from before openrlhf-epo recorded saves: upstream's `latest`, as upstream does
    tag, step = record["tag"], record["global_step"]
    for group_dir in groups:
        if not os.path.isdir(os.path.join(group_dir, tag)):
            raise FileNotFoundError(
                f"{os.path.join(args.ckpt.path, COMPLETE_FILE)} names {tag} as the last complete checkpoint, but "
                f"{group_dir} has no {tag} (removed by hand?). Restore it, or delete the record to resume from "
                f"DeepSpeed's `latest` ({_read_latest(group_dir)})")
        _remove_torn(group_dir, _step_dirs(group_dir), newer_than=step)
        latest = _read_latest(group_dir)
        if latest != tag:
            print(f"openrlhf-epo: {group_dir}: `latest` named {latest}, whose save did not finish; resuming from "
                  f"{tag}, the last complete checkpoint", flush=True)
            replace_file(os.path.join(group_dir, "latest"), tag)
    return tag


def _remove_torn(group_dir: str, steps: dict, newer_than: int) -> None:
    for step in sorted(s for s in steps if s > newer_than):
        print(f"openrlhf-epo: removing {os.path.join(group_dir, steps[step])}: a save that did not finish "
              "(the run was stopped during it)", flush=True)
        shutil.rmtree(os.path.join(group_dir, steps[step]))
