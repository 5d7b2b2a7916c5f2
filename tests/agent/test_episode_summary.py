"""The one episode summary of training logs and `openrlhf-epo eval`, against hand-counted figures."""
import pytest

from openrlhf_epo.agent.episode_summary import EpisodeRecord, pass_at_n, summarize, summarize_sources


def _record(traj, group, won, turns, invalid, task="pick", source="alfworld_iid", ret=None):
    return EpisodeRecord(trajectory=traj, group=group, won=won, episode_return=won if ret is None else ret,
                         turns=turns, invalid=invalid, task=task, source=source)


RECORDS = [
    _record(0, 0, 1.0, 4, 0, ret=0.9),
    _record(1, 0, 0.0, 10, 3),
    _record(2, 1, 0.0, 10, 1, task="clean"),
    _record(3, 1, 0.0, 6, 0, task="clean", source="alfworld_ood"),
]


def test_every_episode_counts_once_whatever_its_turns():
    stats = summarize(RECORDS, "eval_")
    assert stats["eval_success_rate"] == pytest.approx(1 / 4)
    assert stats["eval_episode_return"] == pytest.approx(0.9 / 4)
    assert stats["eval_turns_mean"] == pytest.approx(30 / 4)
    assert stats["eval_invalid_ratio"] == pytest.approx(4 / 30)  # invalid turns over all turns, not a mean of ratios
    assert stats["eval_num_episodes"] == 4.0
    assert (stats["eval_success_pick"], stats["eval_success_clean"]) == (pytest.approx(0.5), 0.0)
    assert summarize([], "eval_") == {}


def test_pass_at_n_counts_a_group_with_any_win():
    assert pass_at_n(RECORDS) == pytest.approx(1 / 2)  # group 0 won once, group 1 never


def test_sources_are_summarized_apart_with_pass_at_n_only_for_several_samples():
    by_source = summarize_sources(RECORDS, n_samples=2)
    assert sorted(by_source) == ["alfworld_iid", "alfworld_ood"]
    iid = by_source["alfworld_iid"]
    assert iid["num_episodes"] == 3.0 and iid["success_rate"] == pytest.approx(1 / 3)
    assert iid["invalid_ratio"] == pytest.approx(4 / 24) and iid["pass2"] == pytest.approx(1 / 2)
    assert by_source["alfworld_ood"]["pass2"] == 0.0
    assert "pass1" not in summarize_sources(RECORDS, n_samples=1)["alfworld_iid"]
