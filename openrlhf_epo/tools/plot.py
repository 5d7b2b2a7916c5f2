"""`openrlhf-epo plot --run LABEL=PATH[,PATH...] [--run ...] --out DIR`: the paper's figures and Table 1 metrics
from training logs.

A run (one seed) is a `--logger.jsonl_path` file or a tensorboard log folder of OpenRLHF's TensorboardLogger (tags
`train/<key>` and `eval/<key>`); a resumed run may log a step twice, and the last value written for a step wins.
Each `--run` is one method, its paths the seeds. Written to DIR:

  reward.png                  training reward vs step: `rollout/success_rate` (else `rollout/reward_mean`), Fig. 2a
  success_<source>.png        evaluation success `eval_<source>_pass1` vs step, one per split (IID, OOD), Fig. 2b-c;
                              success_overall.png for `eval_success_rate`
  entropy_early_late.png      token entropy of a trajectory's early vs late turns (`epo/entropy_early`,
                              `epo/entropy_late`: first / second half of its turns), Fig. 1
  entropy_first_last_tokens.png  token entropy of the first vs last N response tokens of each turn
                              (`epo/entropy_first_tokens`, `epo/entropy_last_tokens`; N = --actor.epo.edge_tokens,
                              the paper's 10), Fig. 7d
  entropy_band_<method>.png   batch entropy `epo/batch_entropy` against the band [kappa_l Hbar, kappa_r Hbar] of
                              Eq. 5 around the historical mean `epo/hbar` (section 4.2)
  entropy_turns_<method>.png  entropy per turn index (`epo/entropy_turn_<t>`) at a few training steps
  summary.json                Succ.* and Succ.-bar per method and split (appendix B.1.2), mean and std over seeds

Curves: a method's line is the mean over its seeds at the steps that every seed logged (non-null) for that metric;
other steps are dropped, so seeds of different lengths plot up to the shortest. The shade is +-1 sample std over
seeds (`--spread std`) or their min-max (`--spread minmax`). `--smooth N` applies a centered running average of N
points to each seed before the mean (wandb's "running average"; the paper's figures use N=10, B.1.2); it never
touches summary.json.

Succ.* and Succ.-bar (appendix B.1.2; values in the units logged, a fraction of episodes won):
  Succ.*     "the average of maximum success rates across random seeds": per seed, the maximum of
             `eval_<source>_pass1` over all its evaluations; then the mean (and std) over seeds.
  Succ.-bar  "average performance after convergence ... we first identify a convergence period where performance
             stabilizes": per seed, the mean success over the evaluations whose step lies in its convergence window;
             then the mean (and std) over seeds. ALFWorld: "from step 125 onward (inclusive)", the default for
             `alfworld_*` splits; ScienceWorld: windows chosen per run ("epochs 70-120, 90-120, and 90-120"), so
             there is no default and `--window` gives them (an epoch of the paper is a training step here).
`--window START[-END]` (steps, inclusive; no END: to the last evaluation) sets every run's window,
`--window LABEL=W` those of one method, `--window LABEL=W1,W2,...` one per seed in its --run order.
"""
import json
import math
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

PAPER_SMOOTH = 10  # B.1.2: "wandb's default running average (window size of 10)"
ALFWORLD_CONVERGED_FROM = 125  # B.1.2: "averaging the success rates from step 125 onward (inclusive)"
REWARD_KEYS = ("rollout/success_rate", "rollout/reward_mean")
OVERALL_KEY, OVERALL = "eval_success_rate", "overall"
PASS1 = re.compile(r"^eval_(.+)_pass1$")
TURN = re.compile(r"^epo/entropy_turn_(\d+)$")
KINDS = ("train", "eval")

Series = Dict[int, float]  # step -> value


@dataclass
class Run:
    """One seed's logged metrics: {kind: {step: {key: value}}}, null/NaN values left out."""

    path: Path
    rows: Dict[str, Dict[int, Dict[str, float]]]

    def series(self, kind: str, key: str) -> Series:
        return {step: row[key] for step, row in sorted(self.rows[kind].items()) if key in row}

    def keys(self, kind: str) -> set:
        return {key for row in self.rows[kind].values() for key in row}

    def splits(self) -> Dict[str, str]:
        """{split name: eval key}: one per `eval_<source>_pass1`, plus `overall` for `eval_success_rate`."""
        keys = self.keys("eval")
        found = {m.group(1): key for key in keys if (m := PASS1.match(key))}
        if OVERALL_KEY in keys:
            found[OVERALL] = OVERALL_KEY
        return found


# ---------------------------------------------------------------------------------------------------- reading


def read_jsonl(path: Path) -> Run:
    """A `--logger.jsonl_path` file; the last line per (kind, step) wins (a resumed run re-logs its steps)."""
    rows = {kind: {} for kind in KINDS}
    try:
        lines = Path(path).read_text(encoding="utf-8").split("\n")  # not splitlines: file:line as editors count
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a text file; expected a --logger.jsonl_path file or a tensorboard folder "
                         f"(or an events.out.tfevents.* file)") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not valid JSON ({exc.msg}); expected one object per line as "
                             f"--logger.jsonl_path writes") from None
        if not isinstance(row, dict):
            raise ValueError(f"{where}: a JSON {type(row).__name__}, expected an object {{\"kind\", \"step\", ...}}")
        kind, step = row.get("kind"), row.get("step")
        if kind not in KINDS:
            raise ValueError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
        if isinstance(step, bool) or not isinstance(step, int):
            raise ValueError(f"{where}: step {step!r} is not an integer")
        metrics = {}
        for key, value in row.items():
            if key in ("kind", "step", "time") or value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{where}: metric {key!r} is {value!r}, expected a number or null")
            if not math.isnan(value):
                metrics[key] = float(value)
        rows[kind][step] = metrics
    return Run(Path(path), rows)


def _event_source(path: Path) -> Path:
    if path.is_file():
        return path
    folders = sorted({p.parent for p in path.rglob("events.out.tfevents.*")})
    if not folders:
        raise ValueError(f"{path} is a folder without tensorboard event files (events.out.tfevents.*); expected a "
                         f"--logger.jsonl_path file or a tensorboard run folder")
    if len(folders) > 1:
        raise ValueError(f"{path} holds the tensorboard logs of {len(folders)} runs "
                         f"({', '.join(str(f) for f in folders)}); pass each seed's folder")
    return folders[0]


def read_tensorboard(path: Path) -> Run:
    """A TensorboardLogger folder (or one event file): scalars `train/<key>` and `eval/<key>` (logging_utils.py);
    per (tag, step) the value written last wins, the JSONL rule for a resumed run."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator
    except ImportError:
        raise ValueError(f"{path} is a tensorboard log, but the tensorboard package is not installed: pip install "
                         f"tensorboard, or pass the run's --logger.jsonl_path file (JSONL needs nothing)") from None
    # size 0 keeps every scalar (the default samples 10,000); no purge: we apply last-wins per step ourselves
    accumulator = EventAccumulator(str(_event_source(path)), size_guidance={SCALARS: 0}, purge_orphaned_data=False)
    accumulator.Reload()
    rows = {kind: {} for kind in KINDS}
    for tag in accumulator.Tags()["scalars"]:
        kind, _, key = tag.partition("/")
        if kind not in rows or not key or key == "global_step":
            continue
        for event in sorted(accumulator.Scalars(tag), key=lambda e: e.wall_time):
            row = rows[kind].setdefault(event.step, {})
            if math.isnan(event.value):
                row.pop(key, None)
            else:
                row[key] = float(event.value)
    return Run(Path(path), rows)


def read_run(path: Path) -> Run:
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path} does not exist (expected a --logger.jsonl_path file or a tensorboard log folder)")
    if path.is_dir() or "tfevents" in path.name:
        return read_tensorboard(path)
    return read_jsonl(path)


def parse_runs(specs: Sequence[str]) -> Dict[str, List[Path]]:
    """`--run LABEL=PATH[,PATH...]` options -> {label: seed paths}, in the order given."""
    methods: Dict[str, List[Path]] = {}
    for spec in specs:
        label, sep, rest = spec.partition("=")
        label, paths = label.strip(), [p.strip() for p in rest.split(",") if p.strip()]
        if not sep:
            raise ValueError(f"--run {spec!r} has no '=': expected LABEL=PATH[,PATH...] (one path per seed)")
        if not label or not paths:
            raise ValueError(f"--run {spec!r}: expected a non-empty LABEL=PATH[,PATH...]")
        if label in methods:
            raise ValueError(f"--run label {label!r} is given twice; list all its seeds in one --run {label}=A,B")
        methods[label] = [Path(p) for p in paths]
    return methods


# ---------------------------------------------------------------------------------------------------- windows


@dataclass(frozen=True)
class Window:
    """A convergence window of training steps, both ends inclusive; end None: through the last evaluation."""

    start: int
    end: Optional[int] = None

    def __contains__(self, step: int) -> bool:
        return step >= self.start and (self.end is None or step <= self.end)

    def __str__(self) -> str:
        return f"{self.start}-{'' if self.end is None else self.end}"


def parse_window(text: str) -> Window:
    match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d*)\s*)?", text)
    if not match:
        raise ValueError(f"--window {text!r}: expected START or START-END in training steps (e.g. 125, 70-120)")
    start, end = int(match.group(1)), int(match.group(2)) if match.group(2) else None
    if end is not None and end < start:
        raise ValueError(f"--window {text!r}: END {end} is before START {start}")
    return Window(start, end)


def parse_windows(specs: Sequence[str], methods: Dict[str, List[Path]]) -> Dict[Tuple[str, int], Window]:
    """`--window` options -> {(label, seed index): window}; a later option overrides an earlier one."""
    windows: Dict[Tuple[str, int], Window] = {}
    for spec in specs or ():
        label, sep, rest = spec.partition("=")
        if not sep:
            window = parse_window(label)
            windows.update({(lab, i): window for lab, paths in methods.items() for i in range(len(paths))})
            continue
        if label not in methods:
            raise ValueError(f"--window {spec!r}: no --run labelled {label!r} (labels: {', '.join(methods)})")
        parts, n = [parse_window(p) for p in rest.split(",")], len(methods[label])
        if len(parts) not in (1, n):
            raise ValueError(f"--window {spec!r} gives {len(parts)} windows; {label} has {n} seed(s): give 1 or {n}")
        windows.update({(label, i): parts[0 if len(parts) == 1 else i] for i in range(n)})
    return windows


def paper_window(split: str, run: Run) -> Optional[Window]:
    """B.1.2's window where the paper fixes one: ALFWorld from step 125 on; ScienceWorld's are per run (None)."""
    sources = [s for s in run.splits() if s != OVERALL] if split == OVERALL else [split]
    if sources and all(s.startswith("alfworld") for s in sources):
        return Window(ALFWORLD_CONVERGED_FROM)
    return None


# ---------------------------------------------------------------------------------------------------- summary


def succ_star(success: Series) -> float:
    """One seed's contribution to Succ.*: its maximum success rate over all evaluations (B.1.2)."""
    return max(success.values())


def succ_bar(success: Series, window: Window) -> Optional[float]:
    """One seed's contribution to Succ.-bar: its mean success over the evaluations inside its convergence window
    (B.1.2); None when no evaluation falls inside."""
    inside = [value for step, value in success.items() if step in window]
    return statistics.fmean(inside) if inside else None


def _over_seeds(values: List[float]) -> Dict[str, Optional[float]]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None}


def summarize(methods: Dict[str, List[Run]], windows: Dict[Tuple[str, int], Window]) -> Dict:
    """summary.json: per method and evaluation split, Succ.* and Succ.-bar with their per-seed values."""
    out = {}
    for label, runs in methods.items():
        splits = sorted({split: key for run in runs for split, key in run.splits().items()}.items())
        out[label] = {}
        for split, key in splits:
            seeds = [(i, run, run.series("eval", key)) for i, run in enumerate(runs)]
            missing = [str(run.path) for _, run, success in seeds if not success]
            seeds = [(i, run, success) for i, run, success in seeds if success]
            if missing:
                print(f"note: {label} {split}: {', '.join(missing)} logged no {key}; "
                      f"its statistics use the other seeds")
            stars = [succ_star(success) for _, _, success in seeds]
            used = [windows.get((label, i)) or paper_window(split, run) for i, run, _ in seeds]
            bars = [succ_bar(success, w) if w else None for (_, _, success), w in zip(seeds, used)]
            entry = {
                "metric": key,
                "seeds": [str(run.path) for _, run, _ in seeds],
                "succ_star": {**_over_seeds(stars), "per_seed": stars},
                "succ_bar": {"mean": None, "std": None, "per_seed": bars,
                             "windows": [str(w) if w else None for w in used]},
            }
            if None in used:
                print(f"note: {label} {split}: Succ.-bar needs a convergence window; the paper chose ScienceWorld's "
                      f"per run (B.1.2): pass --window {label}=START[-END][,...]")
            elif None in bars:
                empty = [f"{run.path} (window {w})" for (_, run, _), w, b in zip(seeds, used, bars) if b is None]
                print(f"note: {label} {split}: no evaluation inside the convergence window of {', '.join(empty)}; "
                      f"Succ.-bar left null")
            else:
                entry["succ_bar"].update(_over_seeds(bars))
            out[label][split] = entry
    return out


def _pm(stat: Dict) -> str:
    if stat["mean"] is None:
        return "-"
    return f"{stat['mean']:.3f}" + ("" if stat["std"] is None else f" ± {stat['std']:.3f}")


def print_table(summary: Dict) -> None:
    print(f"{'method':<14} {'split':<18} {'seeds':>5}  {'Succ.*':<15} {'Succ.-bar':<15} window(s)")
    for label, splits in summary.items():
        for split, entry in splits.items():
            windows = ",".join(dict.fromkeys(w or "none" for w in entry["succ_bar"]["windows"]))
            print(f"{label:<14} {split:<18} {len(entry['seeds']):>5}  {_pm(entry['succ_star']):<15} "
                  f"{_pm(entry['succ_bar']):<15} {windows}")


# ---------------------------------------------------------------------------------------------------- curves


def align(per_seed: List[Series]) -> Tuple[List[int], List[List[float]]]:
    """The steps every seed logged, and each seed's values at them."""
    steps = sorted(set.intersection(*(set(s) for s in per_seed))) if per_seed else []
    return steps, [[s[step] for step in steps] for s in per_seed]


def running_average(values: List[float], n: int) -> List[float]:
    """Centered running average over n points (fewer at the ends); n <= 1 leaves the values as they are."""
    if n <= 1:
        return list(values)
    before, after = (n - 1) // 2, n // 2
    return [statistics.fmean(values[max(0, i - before): i + after + 1]) for i in range(len(values))]


def spread(per_seed: List[List[float]], how: str) -> Tuple[List[float], List[float], List[float]]:
    """Mean over seeds per step, and the shade's lower and upper edges (+-1 sample std, or min-max)."""
    columns = list(zip(*per_seed))
    mean = [statistics.fmean(c) for c in columns]
    if how == "minmax":
        return mean, [min(c) for c in columns], [max(c) for c in columns]
    std = [statistics.stdev(c) if len(c) > 1 else 0.0 for c in columns]
    return mean, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)]


@dataclass
class Options:
    out: Path
    smooth: int = 0
    spread: str = "std"
    kappa_l: float = 0.0
    kappa_r: float = 2.0


def _curve(ax, per_seed: List[Series], opts: Options, **style) -> bool:
    steps, values = align(per_seed)
    if not steps:
        return False
    mean, low, high = spread([running_average(v, opts.smooth) for v in values], opts.spread)
    ax.plot(steps, mean, **style)
    if len(per_seed) > 1:
        ax.fill_between(steps, low, high, color=style.get("color"), alpha=0.2, linewidth=0)
    return True


def _new_axes(title: str, ylabel: str):
    from matplotlib.figure import Figure  # the Agg canvas, without pyplot's global state

    figure = Figure(figsize=(6, 4), dpi=100)
    ax = figure.add_subplot()
    ax.set(title=title, xlabel="training step", ylabel=ylabel)
    ax.grid(alpha=0.3)
    return figure, ax


def _save(figure, ax, opts: Options, name: str) -> Path:
    ax.legend(fontsize="small")
    figure.tight_layout()
    path = opts.out / name
    figure.savefig(path, format="png")
    return path


def _color(index: int):
    from matplotlib import colormaps

    return colormaps["tab10"](index % 10)


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "method"


def _method_curves(methods: Dict[str, List[Run]], opts: Options, name: str, title: str, ylabel: str,
                   candidates: Sequence[str]) -> Optional[Path]:
    """One figure, one line per method: the first of `candidates` that all its seeds log (named in the legend
    when it is not the first)."""
    figure, ax = _new_axes(title, ylabel)
    drawn = 0
    for index, (label, runs) in enumerate(methods.items()):
        key = _shared_key(runs, candidates)
        if key is None:
            print(f"note: {name}: {label} logs no {' or '.join(candidates)} in all its seeds; left out")
        elif _curve(ax, [run.series(_kind(key), key) for run in runs], opts, color=_color(index),
                    label=label if key == candidates[0] else f"{label} ({key})"):
            drawn += 1
        else:
            print(f"note: {name}: the seeds of {label} share no step with {key}; left out")
    return _save(figure, ax, opts, name) if drawn else None


def _kind(key: str) -> str:
    return "eval" if key.startswith("eval_") else "train"


def _shared_key(runs: List[Run], candidates: Sequence[str]) -> Optional[str]:
    return next((k for k in candidates if all(k in run.keys(_kind(k)) for run in runs)), None)


def plot_reward(methods, opts) -> Optional[Path]:
    return _method_curves(methods, opts, "reward.png", "Training reward", "training reward", REWARD_KEYS)


def plot_success(methods, opts) -> List[Path]:
    splits = sorted({split: key for runs in methods.values() for run in runs for split, key in run.splits().items()
                     }.items())
    written = []
    for split, key in splits:
        title = "Evaluation success (all splits)" if split == OVERALL else f"Evaluation success: {split}"
        path = _method_curves(methods, opts, f"success_{split}.png", title, "success rate", [key])
        written += [path] if path else []
    return written


def _paired_entropy(methods, opts, name: str, title: str, pairs) -> Optional[Path]:
    """One solid and one dashed curve per method: pairs = ((key, legend part, dash), (key, legend part, dash))."""
    figure, ax = _new_axes(title, "token entropy")
    drawn = 0
    for index, (label, runs) in enumerate(methods.items()):
        for key, part, dash in pairs:
            if _shared_key(runs, [key]) is None:
                print(f"note: {name}: {label} logs no {key}; left out")
            elif _curve(ax, [run.series("train", key) for run in runs], opts, color=_color(index), linestyle=dash,
                        label=f"{label} {part}"):
                drawn += 1
    return _save(figure, ax, opts, name) if drawn else None


def plot_entropy_early_late(methods, opts) -> Optional[Path]:
    """Figure 1: entropy of a trajectory's early turns against its late turns, over training."""
    return _paired_entropy(methods, opts, "entropy_early_late.png", "Token entropy of early vs late turns",
                           (("epo/entropy_early", "early turns", "-"), ("epo/entropy_late", "late turns", "--")))


def plot_entropy_first_last_tokens(methods, opts) -> Optional[Path]:
    """Figure 7d: entropy of the first against the last response tokens of every turn, over training."""
    return _paired_entropy(methods, opts, "entropy_first_last_tokens.png",
                           "Token entropy of the first vs last tokens of a response",
                           (("epo/entropy_first_tokens", "first tokens", "-"),
                            ("epo/entropy_last_tokens", "last tokens", "--")))


def plot_entropy_band(label: str, index: int, runs: List[Run], opts: Options) -> Optional[Path]:
    """Batch entropy against the band of Eq. 5 around the historical mean Hbar (the mean Hbar over seeds)."""
    name = f"entropy_band_{_slug(label)}.png"
    if _shared_key(runs, ["epo/batch_entropy"]) is None or _shared_key(runs, ["epo/hbar"]) is None:
        print(f"note: {name}: {label} logs no epo/batch_entropy and epo/hbar (an EPO run does); skipped")
        return None
    figure, ax = _new_axes(f"Entropy band: {label}", "token entropy")
    _curve(ax, [run.series("train", "epo/batch_entropy") for run in runs], opts, color=_color(index),
           label="batch entropy")
    steps, values = align([run.series("train", "epo/hbar") for run in runs])
    if steps:
        hbar = [statistics.fmean(c) for c in zip(*values)]
        ax.plot(steps, hbar, color="black", linestyle="--", label="Hbar (historical mean)")
        ax.fill_between(steps, [opts.kappa_l * h for h in hbar], [opts.kappa_r * h for h in hbar], color="gray",
                        alpha=0.2, linewidth=0, label=f"band [{opts.kappa_l:g} Hbar, {opts.kappa_r:g} Hbar]")
    return _save(figure, ax, opts, name)


def plot_entropy_turns(label: str, index: int, runs: List[Run], opts: Options, lines: int = 4) -> Optional[Path]:
    """Entropy per turn index (mean over seeds) at up to `lines` training steps spread over the run."""
    name = f"entropy_turns_{_slug(label)}.png"
    turns = sorted(set.intersection(*({int(m.group(1)) for k in run.keys("train") if (m := TURN.match(k))}
                                      for run in runs)))
    steps = align([{s: 0.0 for s, row in run.rows["train"].items() if any(TURN.match(k) for k in row)}
                   for run in runs])[0]
    if not turns or not steps:
        print(f"note: {name}: {label} logs no epo/entropy_turn_<t> at a step all its seeds share; skipped")
        return None
    figure, ax = _new_axes(f"Entropy per turn: {label}", "token entropy")
    ax.set_xlabel("turn index")
    ax.xaxis.get_major_locator().set_params(integer=True)
    picked = sorted({steps[round(i * (len(steps) - 1) / max(1, lines - 1))] for i in range(min(lines, len(steps)))})
    for shade, step in enumerate(picked):
        rows = [run.rows["train"][step] for run in runs]
        present = [t for t in turns if all(f"epo/entropy_turn_{t}" in row for row in rows)]
        ax.plot(present, [statistics.fmean(row[f"epo/entropy_turn_{t}"] for row in rows) for t in present],
                marker="o", color=_color(index), alpha=0.35 + 0.65 * (shade + 1) / len(picked), label=f"step {step}")
    return _save(figure, ax, opts, name)


def make_figures(methods: Dict[str, List[Run]], opts: Options) -> List[Path]:
    slugs = [_slug(label) for label in methods]
    if len(set(slugs)) < len(slugs):
        raise ValueError(f"--run labels {', '.join(methods)} give clashing file names ({', '.join(slugs)}); "
                         f"make them differ in letters or digits")
    written = [plot_reward(methods, opts), *plot_success(methods, opts), plot_entropy_early_late(methods, opts),
               plot_entropy_first_last_tokens(methods, opts)]
    for index, (label, runs) in enumerate(methods.items()):
        written += [plot_entropy_band(label, index, runs, opts), plot_entropy_turns(label, index, runs, opts)]
    return [path for path in written if path]


# ---------------------------------------------------------------------------------------------------- command


def plot(run_specs: Sequence[str], out: Path, window_specs: Sequence[str] = (), smooth: int = 0,
         spread_how: str = "std", kappa_l: float = 0.0, kappa_r: float = 2.0) -> Tuple[List[Path], Dict]:
    """Figures and summary.json in `out`; returns the figure paths and the summary."""
    if smooth < 0:
        raise ValueError(f"--smooth {smooth} must be >= 0 (0 or 1: no smoothing; the paper uses {PAPER_SMOOTH})")
    if spread_how not in ("std", "minmax"):
        raise ValueError(f"--spread {spread_how!r} is not one of std, minmax")
    if not 0 <= kappa_l <= kappa_r:
        raise ValueError(f"--kappa-l {kappa_l} and --kappa-r {kappa_r} must satisfy 0 <= kappa_l <= kappa_r "
                         f"(paper: 0.0, 2.0)")
    paths = parse_runs(run_specs)
    windows = parse_windows(window_specs, paths)
    methods = {label: [read_run(p) for p in seeds] for label, seeds in paths.items()}
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ValueError("openrlhf-epo plot needs matplotlib: pip install 'openrlhf-epo[plot]'") from None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = make_figures(methods, Options(out, smooth, spread_how, kappa_l, kappa_r))
    if not figures:
        raise ValueError(f"nothing to plot: no run logs {' or '.join(REWARD_KEYS)}, eval_<source>_pass1, "
                         f"{OVERALL_KEY} or epo/* entropies ({', '.join(str(p) for s in paths.values() for p in s)})")
    summary = summarize(methods, windows)
    document = {
        "definitions": {
            "succ_star": "B.1.2 'the average of maximum success rates across random seeds': per seed the maximum "
                         "success over its evaluations, mean and sample std over seeds",
            "succ_bar": "B.1.2 'average performance after convergence': per seed the mean success over the "
                        "evaluations inside its convergence window (steps, inclusive), mean and sample std over "
                        "seeds",
        },
        "options": {"window": list(window_specs or []), "smooth": smooth, "spread": spread_how,
                    "kappa_l": kappa_l, "kappa_r": kappa_r},
        "methods": summary,
    }
    (out / "summary.json").write_text(json.dumps(document, indent=2) + "\n")
    return figures, summary


def add_parser(sub) -> None:
    parser = sub.add_parser("plot", help="figures (reward, IID/OOD success, entropy) and Succ.*/Succ.-bar of runs")
    parser.add_argument("--run", action="append", required=True, metavar="LABEL=PATH[,PATH...]",
                        help="one method: its seeds' --logger.jsonl_path files or tensorboard folders (repeat)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the PNGs and summary.json")
    parser.add_argument("--window", action="append", default=[], metavar="[LABEL=]START[-END][,...]",
                        help="Succ.-bar convergence window in steps, inclusive (B.1.2); default: from step "
                             f"{ALFWORLD_CONVERGED_FROM} on for ALFWorld, none for ScienceWorld; repeatable")
    parser.add_argument("--smooth", type=int, default=0, metavar="N",
                        help=f"centered running average of N points on the curves (paper: {PAPER_SMOOTH}; default 0)")
    parser.add_argument("--spread", choices=["std", "minmax"], default="std",
                        help="shade over seeds: +-1 sample std (default) or min-max")
    parser.add_argument("--kappa-l", type=float, default=0.0, help="band lower edge kappa_l Hbar (paper: 0.0)")
    parser.add_argument("--kappa-r", type=float, default=2.0, help="band upper edge kappa_r Hbar (paper: 2.0)")
    parser.set_defaults(func=cmd_plot)


def cmd_plot(args) -> int:
    figures, summary = plot(args.run, args.out, args.window, args.smooth, args.spread, args.kappa_l, args.kappa_r)
    print_table(summary)
    for path in figures:
        print(f"wrote {path}")
    print(f"wrote {Path(args.out) / 'summary.json'}")
    return 0
