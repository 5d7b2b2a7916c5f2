"""`openrlhf-epo data {scienceworld,alfworld,signpost} --split {train,iid,ood} --out FILE.jsonl`: a prompt dataset of task
instances for OpenRLHF's `--data.prompt_dataset`.

One JSON line per task instance: {"prompt": "<env>: <task> #<variation>", "label": "<TaskSpec JSON>",
"datasource": "<env>_<split>"} (evaluation reports its metrics per data source: `--eval.dataset iid.jsonl,ood.jsonl`
gives `eval_alfworld_iid_*` and `eval_alfworld_ood_*`). Train with
`--data.input_key prompt --data.label_key label`: the agent loop reads the instance from the label and rebuilds every
turn's prompt from the environment (paper appendix D), so the "prompt" field is only a readable name.
"""
import json
from pathlib import Path
from typing import List, Optional

from openrlhf_epo.envs.base import ENVIRONMENTS, SPLITS, TaskSpec
from openrlhf_epo.envs.task_check import read_task_file


# ALFWorld's games: "official" (ALFWorld's data under $ALFWORLD_DATA, what table 1 reports on), "generated" (built
# offline from the alfworld wheel, envs/alfworld_games.py), "auto" (official when present, else generated)
SOURCES = ("auto", "official", "generated")


def task_specs(env: str, split: str, n: Optional[int], seed: int, tasks: Optional[List[str]],
               source: str = "auto") -> List[TaskSpec]:
    if source not in SOURCES:
        raise ValueError(f"--source {source!r} is not one of {', '.join(SOURCES)}")
    if env == "scienceworld":
        if source != "auto":
            raise ValueError(f"--source {source} is for ALFWorld's games; ScienceWorld's tasks ship with its jar")
        from openrlhf_epo.envs.scienceworld_splits import scienceworld_task_specs

        return scienceworld_task_specs(split, n, seed, tasks)
    if env == "alfworld":
        from openrlhf_epo.envs.alfworld_env import alfworld_task_specs

        return alfworld_task_specs(split, n, seed, tasks, source=None if source == "auto" else source)
    if env == "signpost":
        if source != "auto":
            raise ValueError(f"--source {source} is for ALFWorld's games; signpost trails are generated from the spec")
        from openrlhf_epo.envs.signpost_env import signpost_task_specs

        return signpost_task_specs(split, n, seed, tasks)
    raise ValueError(f"environment {env!r} is not one of {', '.join(ENVIRONMENTS)}")


def record(spec: TaskSpec) -> dict:
    return {"prompt": f"{spec.env}: {spec.task} #{spec.variation}", "label": spec.to_json(),
            "datasource": f"{spec.env}_{spec.split}"}


def write_dataset(env: str, split: str, out: Path, n: Optional[int] = None, seed: int = 0,
                  tasks: Optional[List[str]] = None, source: str = "auto") -> int:
    if split not in SPLITS:
        raise ValueError(f"--split {split!r} is not one of {', '.join(SPLITS)}")
    if n is not None and n < 1:
        raise ValueError(f"--n {n} must be >= 1 (or omitted for every instance of the split)")
    specs = task_specs(env, split, n, seed, tasks, source)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w") as handle:  # written aside, then renamed: a crash leaves no half dataset behind
        for spec in specs:
            handle.write(json.dumps(record(spec)) + "\n")
    try:
        read_task_file(tmp)  # what train_ppo_ray will check before its run: a dataset that passes here passes there
    except ValueError:
        tmp.unlink()
        raise
    tmp.replace(out)
    return len(specs)


def add_parser(sub) -> None:
    parser = sub.add_parser("data", help="write a prompt dataset of task instances (JSONL) for --data.prompt_dataset")
    parser.add_argument("env", choices=list(ENVIRONMENTS),
                        help="signpost: the built-in test environment (envs/signpost_env.py)")
    parser.add_argument("--split", choices=list(SPLITS), required=True,
                        help="train; iid = seen task variations / rooms; ood = unseen ones")
    parser.add_argument("--out", required=True, metavar="FILE.jsonl")
    parser.add_argument("--n", type=int, default=None, help="number of instances (default: all of the split)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (and ALFWorld game generation seed)")
    parser.add_argument("--tasks", nargs="+", default=None,
                        help="restrict to these ScienceWorld tasks / ALFWorld task types (default: all)")
    parser.add_argument("--source", choices=SOURCES, default="auto",
                        help="ALFWorld only: official (ALFWorld's data under $ALFWORLD_DATA, as table 1), generated "
                             "(offline games from the alfworld wheel), auto: official when present (default: auto)")
    parser.set_defaults(func=cmd_data)


def cmd_data(args) -> int:
    count = write_dataset(args.env, args.split, Path(args.out), args.n, args.seed, args.tasks, args.source)
    print(f"wrote {count} {args.env} {args.split} task instances to {args.out}")
    return 0
