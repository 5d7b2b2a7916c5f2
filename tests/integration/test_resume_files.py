"""What a resume reads, on the files a killed run leaves (integration/checkpoints.py, integration/metrics_log.py):
the step directories and `latest` pointers OpenRLHF's DeepSpeed saves write per model group, the completion record
the driver writes once every group's save returned, and the metrics log a kill may have cut short. The pipeline
test (test_pipeline_resume.py) kills real runs; these are the cases it cannot hit on purpose."""
import json
from types import SimpleNamespace as NS

import pytest

from openrlhf_epo.integration.checkpoints import COMPLETE_FILE, mark_complete, prepare_resume
from openrlhf_epo.integration.metrics_log import keep_steps_up_to, log_metrics


def _args(tmp_path, load=True):
    return NS(ckpt=NS(path=str(tmp_path / "ckpt"), load_enable=load),
              logger=NS(jsonl_path=str(tmp_path / "metrics.jsonl")))


def _save(group_dir, step, latest=True, files=("mp_rank_00_model_states.pt",)):
    """A step directory as DeepSpeed writes it; `latest` pointed at it when the save got that far."""
    tag = group_dir / f"global_step{step}"
    tag.mkdir(parents=True, exist_ok=True)
    for name in files:
        (tag / name).write_bytes(b"x" * 8)
    if latest:
        (group_dir / "latest").write_text(f"global_step{step}")


def test_a_torn_newest_save_is_removed_and_latest_points_back(tmp_path, capsys):
    args = _args(tmp_path)
    actor, critic = tmp_path / "ckpt" / "_actor", tmp_path / "ckpt" / "_critic"
    _save(actor, 1), _save(critic, 1)
    mark_complete(args, "global_step1", 1)
    _save(actor, 2)  # the actor's save of step 2 wrote `latest`; the critic's never started
    assert prepare_resume(args) == "global_step1"
    assert (actor / "latest").read_text() == "global_step1" and (critic / "latest").read_text() == "global_step1"
    assert not (actor / "global_step2").exists() and (actor / "global_step1" / "mp_rank_00_model_states.pt").exists()
    said = capsys.readouterr().out
    assert "_actor/global_step2: a save that did not finish" in said and "`latest` named global_step2" in said


def test_a_save_torn_before_latest_is_removed_too(tmp_path):
    args = _args(tmp_path)
    actor = tmp_path / "ckpt" / "_actor"
    _save(actor, 3)
    mark_complete(args, "global_step3", 3)
    _save(actor, 4, latest=False)
    prepare_resume(args)
    assert sorted(p.name for p in actor.iterdir()) == ["global_step3", "latest"]


def test_older_and_best_checkpoints_are_kept(tmp_path):
    args = _args(tmp_path)
    actor = tmp_path / "ckpt" / "_actor"
    _save(actor, 1), _save(actor, 2)
    (actor / "best_global_step1").mkdir()
    mark_complete(args, "global_step2", 2)
    prepare_resume(args)
    assert sorted(p.name for p in actor.iterdir()) == ["best_global_step1", "global_step1", "global_step2", "latest"]


def test_a_first_save_that_never_finished_means_a_fresh_start(tmp_path):
    args = _args(tmp_path)
    actor = tmp_path / "ckpt" / "_actor"
    _save(actor, 1, latest=False)
    (actor / "zero_to_fp32.py").write_text("# DeepSpeed's converter, copied in at the first save\n")
    assert prepare_resume(args) is None
    assert not actor.exists()  # upstream would try to load a folder with nothing in it


def test_a_checkpoint_without_a_record_loads_as_upstream_does(tmp_path):
    args = _args(tmp_path)
    actor = tmp_path / "ckpt" / "_actor"
    _save(actor, 1), _save(actor, 2)  # saved by a run without openrlhf-epo's record
    assert prepare_resume(args) is None
    assert (actor / "latest").read_text() == "global_step2" and (actor / "global_step2").exists()


def test_nothing_is_touched_without_load_enable(tmp_path):
    args = _args(tmp_path, load=False)
    actor = tmp_path / "ckpt" / "_actor"
    _save(actor, 1)
    mark_complete(args, "global_step1", 1)
    _save(actor, 2)
    assert prepare_resume(args) is None
    assert (actor / "global_step2").exists() and (actor / "latest").read_text() == "global_step2"


def test_a_record_naming_a_missing_checkpoint_is_refused(tmp_path):
    args = _args(tmp_path)
    actor = tmp_path / "ckpt" / "_actor"
    _save(actor, 2)
    mark_complete(args, "global_step1", 1)
    with pytest.raises(FileNotFoundError, match=r"names global_step1 .* has no global_step1 .*latest` \(global_step2\)"):
        prepare_resume(args)
    assert (actor / "global_step2").exists()  # refused before anything is removed


def test_a_corrupt_record_is_named(tmp_path):
    args = _args(tmp_path)
    _save(tmp_path / "ckpt" / "_actor", 1)
    (tmp_path / "ckpt" / COMPLETE_FILE).write_text('{"tag": "global_step1"}')
    with pytest.raises(ValueError, match=f"{COMPLETE_FILE} is not a checkpoint record"):
        prepare_resume(args)


def test_the_record_names_the_newest_complete_step(tmp_path):
    args = _args(tmp_path)
    (tmp_path / "ckpt").mkdir()
    mark_complete(args, "global_step1", 1)
    mark_complete(args, "global_step2", 2)
    assert json.loads((tmp_path / "ckpt" / COMPLETE_FILE).read_text()) == {"tag": "global_step2", "global_step": 2}
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == [COMPLETE_FILE]  # no temporary file left


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_steps_after_the_resumed_one_move_aside(tmp_path):
    args = _args(tmp_path)
    for step in (1, 2, 3):
        log_metrics(args, "train", step, {"loss": float(step)})
        if step < 3:
            log_metrics(args, "eval", step, {"eval_pass1": 0.5})
    with open(tmp_path / "metrics.jsonl", "a") as handle:
        handle.write('{"kind": "train", "step": 4, "lo')  # the kill cut this write short
    assert keep_steps_up_to(args, 2) == 1
    assert [(r["kind"], r["step"]) for r in _rows(tmp_path / "metrics.jsonl")] == [
        ("train", 1), ("eval", 1), ("train", 2), ("eval", 2)]
    assert [(r["kind"], r["step"], r["loss"]) for r in _rows(tmp_path / "metrics.jsonl.superseded")] == [
        ("train", 3, 3.0)]
    log_metrics(args, "train", 3, {"loss": 30.0})  # the resumed run redoes step 3
    assert [r["step"] for r in _rows(tmp_path / "metrics.jsonl") if r["kind"] == "train"] == [1, 2, 3]


def test_a_fresh_start_on_an_old_file_moves_all_of_it_aside(tmp_path):
    args = _args(tmp_path)
    log_metrics(args, "train", 1, {"loss": 1.0})
    assert keep_steps_up_to(args, 0) == 1
    assert (tmp_path / "metrics.jsonl").read_text() == ""
    assert _rows(tmp_path / "metrics.jsonl.superseded")[0]["step"] == 1


def test_a_file_that_needs_nothing_is_left_as_it_is(tmp_path):
    args = _args(tmp_path)
    log_metrics(args, "train", 1, {"loss": 1.0})
    before = (tmp_path / "metrics.jsonl").stat()
    assert keep_steps_up_to(args, 1) == 0
    assert (tmp_path / "metrics.jsonl").stat().st_ino == before.st_ino
    assert not (tmp_path / "metrics.jsonl.superseded").exists()


def test_a_bad_line_inside_the_file_is_named(tmp_path):
    args = _args(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"kind": "train", "step": 1}\nnot json\n{"kind": "train", "step": 2}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl, line 2: not a metrics line \('not json'\)"):
        keep_steps_up_to(args, 1)
