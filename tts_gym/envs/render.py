"""Rendering of an episode's width-depth grid: ``"ansi"`` text and ``"rgb_array"`` images.

The grid has one row per opened position (opening order) and one column per interval of depth.
A cell shows the answer revealed at that depth, as an *answer cluster*: clusters are lettered
``A, B, C, ...`` by their current vote count (the plurality is ``A``; ties by first occurrence), then
answers that are no longer anyone's latest, in order of appearance. Cell kinds:

* a letter / a colour: the answer revealed at that depth;
* ``.`` / light grey: advanced but not revealed (unfused mode between probes, or the intermediate
  intervals of a ``SAMPLE`` full read, which reveals only the final answer);
* ``|`` after the row / a black bar: the trajectory is finished;
* ``x`` row marker / hatched row label: the position was pruned.

In fused mode every interval is revealed, so the grid is the exact history. In unfused mode only
the latest reveal of each position is known to the state, so earlier probes show as ``.``.

The gold answer's cluster is marked only once the episode has ended (``ended=True``): the text
rendering names it, the image outlines its cells and its legend entry. Before that, nothing in a
rendering depends on the gold.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from tts_gym.core.kernels import FINISHED, PRUNED, SAMPLED
from tts_gym.core.voting import ranked

UNREVEALED = -2
EMPTY = -3
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# 20 well-separated colours (tab20-like, reordered so the first ones differ most), RGB 0-255
PALETTE = np.array([
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207), (127, 127, 127),
    (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
    (196, 156, 148), (247, 182, 210), (219, 219, 141), (158, 218, 229), (90, 90, 160),
], dtype=np.uint8)
OTHER_COLOUR = (60, 60, 60)
UNREVEALED_COLOUR = (225, 225, 225)
EMPTY_COLOUR = (255, 255, 255)


def episode_grid(state, data, e: int = 0, fused: bool = True):
    """``(grid[n, D] int, clusters: list[int], votes: dict)`` for episode ``e``: answer ids per cell
    (``UNREVEALED``/``EMPTY`` codes), the answer ids in cluster order, and the vote count per id."""
    n = int(state.cursor[e])
    q = int(state.question[e])
    depth = state.depth[e, :n]
    D = max(1, int(depth.max()) if n else 1)
    grid = np.full((n, D), EMPTY, np.int64)
    for p in range(n):
        b = int(state.order[e, p])
        d = int(depth[p])
        k = int(data.num_probes[q, b])
        f = int(state.flags[e, p])
        grid[p, :d] = UNREVEALED
        if f & SAMPLED:
            grid[p, d - 1] = int(state.latest[e, p])
        elif fused:
            for j in range(d):
                grid[p, j] = int(data.probe_ids[q, b, j]) if j < k else int(data.final_ids[q, b])
        elif int(state.latest[e, p]) >= 0:
            grid[p, int(state.revealed_depth[e, p]) - 1] = int(state.latest[e, p])
    # clusters: current votes first (plurality first, ties by first occurrence), then the rest
    pool = [int(state.latest[e, p]) for p in range(n)
            if state.latest[e, p] >= 0 and not (int(state.flags[e, p]) & PRUNED)]
    order = ranked(pool)
    seen = set(order)
    rest = []
    for a in grid[grid >= 0].tolist():
        if a not in seen:
            seen.add(a)
            rest.append(a)
    return grid, order + rest, dict(Counter(pool))


def _label(k: int) -> str:
    return LETTERS[k] if k < len(LETTERS) else "#"


def _short(s: str | None, width: int = 18) -> str:
    if s is None:
        return "None"
    return s if len(s) <= width else s[: width - 1] + "~"


def _summary(state, setup, e, ended, question, shuffle_seed, cost_weight) -> dict:
    q = int(state.question[e]) if question is None else int(question)
    store, sq = setup.store_question(q)
    info = {"question": q, "store": store, "store_question": sq, "shuffle_seed": shuffle_seed,
            "cursor": int(state.cursor[e]), "M": setup.M, "cost": int(state.cost[e]),
            "steps": int(state.steps[e]), "gamma": cost_weight, "ended": bool(ended),
            "done": bool(state.done[e])}
    if ended:
        gold = setup.gold_answer(q)
        tab = setup.answer_tables[q]
        info["gold_id"] = tab.index(gold) if gold in tab else -1
        info["gold"] = gold
        a = int(state.answer[e]) if state.done[e] else -1
        info["answer_id"] = a
        info["answer"] = tab[a] if a >= 0 else None
        info["correct"] = a >= 0 and a == info["gold_id"]
    return info


def render_ansi(state, setup, e: int = 0, *, ended: bool = False, question=None, shuffle_seed=None,
                cost_weight: float | None = None) -> str:
    """Text grid of episode ``e`` (see the module docstring)."""
    grid, clusters, votes = episode_grid(state, setup.data, e, setup.params.fused)
    s = _summary(state, setup, e, ended, question, shuffle_seed, cost_weight)
    tab = setup.answer_tables[s["question"]]
    label = {a: _label(k) for k, a in enumerate(clusters)}
    head = (f"question {s['question']} ({s['store']} #{s['store_question']}"
            + (f", shuffle seed {s['shuffle_seed']}" if shuffle_seed is not None and shuffle_seed >= 0 else "")
            + f") | opened {s['cursor']}/{s['M']} | cost {s['cost']:,} tokens | step {s['steps']}"
            + (f" | gamma {cost_weight:g}" if cost_weight is not None else ""))
    lines = [head]
    n, D = grid.shape
    if n == 0:
        lines.append("(no branch opened)")
    else:
        lines.append(f"{'pos':>4} {'depth':>5}  {'answers by depth':<{max(D, 16)}}  latest")
        for p in range(n):
            f = int(state.flags[e, p])
            cells = "".join(label[a] if a >= 0 else ("." if a == UNREVEALED else " ") for a in grid[p])
            end = "|" if f & FINISHED else " "
            status = "pruned" if f & PRUNED else ("sampled" if f & SAMPLED else ("finished" if f & FINISHED else "live"))
            a = int(state.latest[e, p])
            mark = "x" if f & PRUNED else " "
            lines.append(f"{p:>4}{mark}{int(state.depth[e, p]):>5}  {(cells + end):<{max(D, 16)}} "
                         f" {label.get(a, '-')}  {status}")
    gold_id = s.get("gold_id", -1)
    parts = []
    for k, a in enumerate(clusters[:12]):
        g = " *gold*" if ended and a == gold_id else ""
        parts.append(f"{_label(k)}={_short(tab[a])!r} ({votes.get(a, 0)}){g}")
    if len(clusters) > 12:
        parts.append(f"... {len(clusters) - 12} more")
    if parts:
        lines.append("clusters (votes): " + ", ".join(parts))
    if ended:
        if s["done"]:
            lines.append(f"answer: {_short(s['answer'], 40)!r} -> {'correct' if s['correct'] else 'wrong'}")
        else:
            lines.append("truncated without an answer -> wrong")
        if gold_id >= 0:
            lines.append(f"gold: {_short(s['gold'], 40)!r} = cluster "
                         f"{label[gold_id] if gold_id in label else '(never revealed here)'}")
        else:
            lines.append(f"gold: {_short(s['gold'], 40)!r} (appears in no branch of this question)")
    return "\n".join(lines) + "\n"


def render_rgb(state, setup, e: int = 0, *, ended: bool = False, question=None, shuffle_seed=None,
               cost_weight: float | None = None, dpi: int = 100) -> np.ndarray:
    """``uint8[H, W, 3]`` image of the width-depth grid of episode ``e`` (matplotlib, Agg canvas)."""
    fig = render_figure(state, setup, e, ended=ended, question=question, shuffle_seed=shuffle_seed,
                        cost_weight=cost_weight, dpi=dpi)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return np.ascontiguousarray(rgba[..., :3])


def render_figure(state, setup, e: int = 0, *, ended: bool = False, question=None, shuffle_seed=None,
                  cost_weight: float | None = None, dpi: int = 100):
    """The matplotlib ``Figure`` behind :func:`render_rgb` (to save at another size or inspect)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Rectangle
    from matplotlib.ticker import MaxNLocator

    grid, clusters, votes = episode_grid(state, setup.data, e, setup.params.fused)
    s = _summary(state, setup, e, ended, question, shuffle_seed, cost_weight)
    tab = setup.answer_tables[s["question"]]
    colour = {a: (tuple(PALETTE[k]) if k < len(PALETTE) else OTHER_COLOUR) for k, a in enumerate(clusters)}
    n, D = grid.shape
    rows = max(n, 1)
    img = np.empty((rows, D, 3), np.uint8)
    img[:] = EMPTY_COLOUR
    for p in range(n):
        for j in range(D):
            a = int(grid[p, j])
            if a >= 0:
                img[p, j] = colour[a]
            elif a == UNREVEALED:
                img[p, j] = UNREVEALED_COLOUR
    legend_in = 3.3  # inches kept free on the right for the legend
    grid_in = min(12.0, max(4.5, 0.12 * D + 1.0))
    width = grid_in + legend_in
    height = min(14.0, max(4.8, 1.9 + 0.17 * rows))
    gold_id = s.get("gold_id", -1)
    store = setup.stores[int(setup.question_store[s["question"]])]
    synthetic = (store.attrs or {}).get("source") == "synthetic" or store.model == "synthetic"
    lines = [f"{s['store']}{' (synthetic data)' if synthetic else ''}, question {s['store_question']}"
             + (f", shuffle seed {shuffle_seed}" if shuffle_seed is not None and shuffle_seed >= 0 else ""),
             f"opened {s['cursor']}/{s['M']} | cost {s['cost']:,} tokens | step {s['steps']}"]
    if ended:
        if s["done"]:
            lines.append(f"answer {_short(s['answer'], 24)!r}: {'CORRECT' if s['correct'] else 'wrong'}")
        else:
            lines.append("truncated without an answer: wrong")
        lines[-1] += f" | gold {_short(s['gold'], 24)!r}" + ("" if gold_id >= 0 else " (in no branch)")
    height += 0.19  # room for the third title line at the end: the frame size never changes
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    left = 0.75 / width
    # the title over the whole width (grid and legend), the grid below it
    fig.text(left, 1 - 0.12 / height, "\n".join(lines), ha="left", va="top", fontsize=10)
    top = 1 - (0.3 + 0.19 * 3) / height
    ax = fig.add_axes([left, 0.1, (grid_in - 0.9) / width, top - 0.1])
    ax.imshow(img, aspect="auto", interpolation="nearest", extent=(0, D, rows, 0))
    ax.set_xlabel(f"depth (intervals of {int(setup.data.probe_interval[s['question']])} tokens)")
    ax.set_ylabel("branch position (opening order)")
    for p in range(n):
        f = int(state.flags[e, p])
        d = int(state.depth[e, p])
        if f & FINISHED:
            ax.add_patch(Rectangle((d, p + 0.05), 0.3, 0.9, color="black", lw=0))
        if f & PRUNED:
            ax.add_patch(Rectangle((0, p), d, 1, fill=False, hatch="xx", edgecolor="black", lw=0))
            ax.plot([0, d], [p + 0.5, p + 0.5], color="black", lw=1.2)
        if ended and gold_id >= 0:
            for j in np.flatnonzero(grid[p] == gold_id):
                ax.add_patch(Rectangle((j + 0.08, p + 0.08), 0.84, 0.84, fill=False, edgecolor="gold", lw=1.8))
    # a margin all round: no cell, bar or marker on the frame; depths are whole intervals
    ax.set_xlim(-0.3, D + 0.7)
    ax.set_ylim(rows + 0.3, -0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    step = max(1, rows // 16)
    ax.set_yticks(np.arange(0, rows, step) + 0.5)
    ax.set_yticklabels([str(p) for p in range(0, rows, step)])
    if n == 0:
        ax.text(D / 2, 0.5, "no branch opened", ha="center", va="center")
    handles = []
    for k, a in enumerate(clusters[:16]):
        is_gold = ended and a == gold_id
        handles.append(Patch(facecolor=np.array(colour[a]) / 255.0,
                             edgecolor="gold" if is_gold else "none", linewidth=2.5 if is_gold else 0,
                             label=f"{_label(k)}  {_short(tab[a], 14)}  ({votes.get(a, 0)})"
                                   + ("  = GOLD" if is_gold else "")))
    if len(clusters) > 16:
        handles.append(Patch(facecolor=np.array(OTHER_COLOUR) / 255.0, label=f"{len(clusters) - 16} more answers"))
    handles.append(Patch(facecolor=np.array(UNREVEALED_COLOUR) / 255.0, edgecolor="grey",
                         label="advanced, not revealed"))
    handles.append(Patch(facecolor="black", label="| finished"))
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="xx", label="pruned"))
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=((grid_in - 0.05) / width, top + 0.02),
               fontsize=8, title="answer clusters (votes of latest answers)", title_fontsize=8,
               frameon=False)
    return fig


def render_state(state, setup, e: int = 0, *, mode: str = "ansi", ended: bool = False, question=None,
                 shuffle_seed=None, cost_weight=None):
    """Render episode ``e`` of a kernel state in ``mode`` (``"ansi"`` or ``"rgb_array"``)."""
    kw = dict(ended=ended, question=question, shuffle_seed=shuffle_seed, cost_weight=cost_weight)
    if mode == "ansi":
        return render_ansi(state, setup, e, **kw)
    if mode == "rgb_array":
        return render_rgb(state, setup, e, **kw)
    raise ValueError(f"unknown render mode {mode!r}; use 'ansi' or 'rgb_array'")
