"""Rendering: ansi text grid, rgb_array image, gold marked only at the end, the example script."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from tts_gym.core import actions as A
from tts_gym.envs.env import TTSReplayEnv
from tts_gym.core.spec_model import toy_store
from tts_gym.envs.render import UNREVEALED, episode_grid

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def toy():
    return toy_store()


def _toy_episode(toy, mode, fused=True):
    env = TTSReplayEnv(toy, max_branches=6, render_mode=mode, fused=fused)
    env.reset(options={"question": 0, "permutation": [0, 1, 2, 3, 4]})
    for a in (A.BRANCH, A.BRANCH, A.SAMPLE, A.continue_action(0, 6), A.continue_action(1, 6),
              A.prune_action(1, 6)):
        env.step(a)
    return env


def test_grid_contents(toy):
    env = _toy_episode(toy, "ansi")
    grid, clusters, votes = episode_grid(env.state, env.data, 0, True)
    tab = toy.answer_tables[0]
    # position 0: "7", "42"; position 1 (pruned): "ERR", "13"; position 2 sampled: final "42" only
    assert [tab[a] for a in grid[0, :2]] == ["7", "42"]
    assert [tab[a] for a in grid[1, :2]] == ["ERR", "13"]
    assert grid[2, :1].tolist() == [UNREVEALED] and tab[grid[2, 1]] == "42"
    assert tab[clusters[0]] == "42" and votes[clusters[0]] == 2  # pruned position 1 does not vote


def test_ansi(toy):
    env = _toy_episode(toy, "ansi")
    text = env.render()
    assert isinstance(text, str)
    assert "opened 3/6" in text and "cost 500 tokens" in text
    lines = text.splitlines()
    assert any(line.lstrip().startswith("1x") and "pruned" in line for line in lines)
    assert any("sampled" in line and "|" in line for line in lines)
    assert "gold" not in text.lower()  # nothing about the gold before the end
    env.step(A.ANSWER)
    text = env.render()
    assert "answer: '42' -> correct" in text and "gold: '42' = cluster A" in text


def test_ansi_unfused_and_empty(toy):
    env = TTSReplayEnv(toy, max_branches=4, render_mode="ansi", fused=False)
    env.reset(options={"question": 1, "shuffle_seed": 0})
    assert "no branch opened" in env.render()
    env.step(A.BRANCH)
    env.step(A.continue_action(0, 4))
    assert " ..  " in env.render()  # advanced twice, nothing revealed
    env.step(A.probe_action(0, 4))
    row = [line for line in env.render().splitlines() if line.strip().startswith("0 ")][0]
    assert ".A" in row


def test_rgb_array(toy):
    env = _toy_episode(toy, "rgb_array")
    before = env.render()
    assert before.dtype == np.uint8 and before.ndim == 3 and before.shape[2] == 3
    assert before.shape[0] >= 300 and before.shape[1] >= 500
    assert len(np.unique(before.reshape(-1, 3), axis=0)) > 10  # not blank
    env.step(A.ANSWER)
    after = env.render()
    assert after.shape == before.shape and not np.array_equal(before, after)  # gold marked at the end


def test_render_without_mode_warns(toy):
    env = TTSReplayEnv(toy, max_branches=4)
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert env.render() is None


def test_gold_mark_only_after_end(toy):
    """Two stores differing only in the gold render identically until the episode ends."""
    import dataclasses
    other = dataclasses.replace(toy, gold_answers=("13",) + toy.gold_answers[1:],
                                gold_ids=np.array([toy.answer_tables[0].index("13"), *toy.gold_ids[1:]], np.int32))
    frames = []
    for store in (toy, other):
        env = TTSReplayEnv(store, max_branches=6, render_mode="rgb_array")
        env.reset(options={"question": 0, "permutation": [0, 1, 2, 3, 4]})
        env.step(A.BRANCH)
        env.step(A.BRANCH)
        frames.append(env.render())
        env.step(A.ABSTAIN)
        frames.append(env.render())
    np.testing.assert_array_equal(frames[0], frames[2])
    assert not np.array_equal(frames[1], frames[3])


def test_example_script_writes_png(tmp_path):
    spec = importlib.util.spec_from_file_location("render_episode", REPO / "examples" / "render_episode.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = mod.main(["--out", str(tmp_path / "ep.png"), "--max-branches", "8", "--width", "6"])
    import matplotlib.image
    img = matplotlib.image.imread(out)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 400


def test_make_with_render_modes(toy):
    for mode in ("ansi", "rgb_array"):
        env = gym.make("tts_gym/Replay-v0", store=toy, max_branches=4, render_mode=mode)
        env.reset(seed=0)
        env.step(A.BRANCH)
        assert env.render() is not None
