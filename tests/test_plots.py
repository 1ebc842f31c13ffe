"""Figures a reader can use: nothing drawn on the frame, one legend outside the curves, titles that
name the model/benchmark and say when the data is synthetic, a readable size, integer depth ticks."""
from __future__ import annotations

import numpy as np
import pytest

import tts_gym
from tts_gym.core import actions as A
from tts_gym.core.spec_model import toy_store
from tts_gym.data.synthetic import synthesize
from tts_gym.envs.env import TTSReplayEnv
from tts_gym.envs.render import render_figure
from tts_gym.reports.plots import scaling_plot, scaling_title

FAMILIES = ("sc", "asc", "esc", "parallel_probe", "cmc")


@pytest.fixture(scope="module")
def single():
    return tts_gym.evaluate([tts_gym.Sweep(f) for f in FAMILIES], stores=None, seeds=range(3), progress=False)


@pytest.fixture(scope="module")
def three():
    stores = [synthesize(8, 32, seed=s, model="synthetic", benchmark=b)
              for s, b in ((1, "aime24"), (2, "aime25"), (3, "hmmt25"))]
    return tts_gym.evaluate([tts_gym.Sweep(f) for f in FAMILIES], stores=stores, seeds=range(2),
                            progress=False)


def _drawn_inside(ax):
    """Every point of every line and error bar lies strictly inside the axes limits."""
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    for line in ax.lines:
        x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
        assert x.size, line.get_label()
        assert (x > x0).all() and (x < x1).all(), (line.get_label(), x.min(), x.max(), x0, x1)
        assert (y > y0).all() and (y < y1).all(), (line.get_label(), y.min(), y.max(), y0, y1)
        # a margin, not just a hair: 1 % of the range on each side
        assert y.max() <= y1 - 0.01 * (y1 - y0) and y.min() >= y0 + 0.01 * (y1 - y0), line.get_label()


def _one_legend_outside(fig):
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    fig.canvas.draw()
    box = fig.legends[0].get_window_extent()
    for ax in fig.axes:
        if ax.get_visible():
            assert not box.overlaps(ax.get_window_extent()), "the legend covers a panel"


def test_single_store_figure(single):
    fig = scaling_plot(single)
    (ax,) = [a for a in fig.axes if a.get_visible()]
    _drawn_inside(ax)
    _one_legend_outside(fig)
    labels = fig.legends[0].get_texts()
    assert [t.get_text() for t in labels][-2:] == ["oracle pass@n", "oracle (adaptive)"]
    assert len(labels) == 7
    title = fig._suptitle.get_text()
    assert "synthetic/seed0" in title and "synthetic data" in title
    w, h = fig.get_size_inches() * fig.dpi
    assert w >= 1000 and h >= 550   # readable without zooming


def test_grid_figure(three, tmp_path):
    fig = scaling_plot(three, path=tmp_path / "grid.png", ncols=2)
    visible = [a for a in fig.axes if a.get_visible()]
    assert len(visible) == 3
    for ax in visible:
        _drawn_inside(ax)
        assert ax.get_title().startswith("synthetic/")
    _one_legend_outside(fig)
    assert fig._suptitle.get_text().endswith("synthetic: aime24, aime25, hmmt25 (synthetic data)")
    assert (tmp_path / "grid.png").stat().st_size > 10_000


def test_titles_name_what_was_evaluated():
    assert scaling_title(["Qwen3-1.7B/aime24"]).endswith("Qwen3-1.7B/aime24")
    assert scaling_title(["Qwen3-8B/aime24", "Qwen3-8B/hmmt25"]).endswith("Qwen3-8B: aime24, hmmt25")
    assert scaling_title(["Qwen3-4B/aime25", "Qwen3-8B/aime25"]).endswith("aime25: Qwen3-4B, Qwen3-8B")
    assert "synthetic data" in scaling_title(["synthetic/seed0"], {"synthetic/seed0"})
    assert "synthetic" not in scaling_title(["Qwen3-1.7B/aime24"])


@pytest.mark.parametrize("steps", [[A.BRANCH], [A.BRANCH, A.BRANCH, A.continue_action(0, 6)]])
def test_render_depth_ticks_are_integers_and_nothing_on_the_edge(steps):
    env = TTSReplayEnv(toy_store(), max_branches=6, render_mode="rgb_array")
    env.reset(options={"question": 0, "permutation": [0, 1, 2, 3, 4]})
    for a in steps:
        env.step(a)
    fig = render_figure(env.state, env.setup, 0, question=env.question, shuffle_seed=env.shuffle_seed)
    ax = fig.axes[0]
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
    x0, x1 = ax.get_xlim()
    y1, y0 = ax.get_ylim()  # inverted: branch 0 on top
    for im in ax.get_images():
        left, right, bottom, top = im.get_extent()
        assert x0 < left and right < x1 and y0 < top and bottom < y1


def test_render_title_says_synthetic():
    env = TTSReplayEnv(synthesize(3, 8, seed=0), max_branches=4, render_mode="rgb_array")
    env.reset(seed=0)
    env.step(A.BRANCH)
    fig = render_figure(env.state, env.setup, 0, question=env.question, shuffle_seed=env.shuffle_seed)
    assert "(synthetic data)" in "\n".join(t.get_text() for t in fig.texts)
    env = TTSReplayEnv(toy_store(), max_branches=4, render_mode="rgb_array")
    env.reset(seed=0)
    fig = render_figure(env.state, env.setup, 0, question=env.question)
    assert "synthetic" not in "\n".join(t.get_text() for t in fig.texts)
