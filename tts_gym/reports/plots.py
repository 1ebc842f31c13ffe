"""Scaling-curve figures in the style of the AutoTTS paper (matplotlib, Agg canvas, no pyplot).

Accuracy (percent) against average tokens per question on a log x axis, one curve per method
family (a sweep: SC@N, ASC@N, ESC@N, Parallel-Probe@N, CMC over beta), each point with its
confidence interval over replicates as a vertical error bar, and the oracle bounds above them:

* **oracle (adaptive)** -- the per-episode cheapest reveal of the gold (:func:`.oracle.oracle_curve`),
  a step function that bounds every policy;
* **oracle pass@n** -- the SC@n fixed-schedule oracle (:func:`.oracle.schedule_oracle`): correct when
  the gold is among the first ``n`` full reads.

The functions take the tidy rows of an :class:`~tts_gym.evaluation.evaluate.EvalResult` (or the
same dicts loaded from its JSON), so figures can be redrawn from saved results.
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np

FAMILY_ORDER = ("sc", "asc", "esc", "parallel_probe", "cmc")
FAMILY_STYLE = {
    "sc": dict(color="#7f7f7f", marker="o", label="SC@N"),
    "asc": dict(color="#1f77b4", marker="s", label="ASC"),
    "esc": dict(color="#2ca02c", marker="^", label="ESC"),
    "parallel_probe": dict(color="#ff7f0e", marker="D", label="Parallel-Probe"),
    "cmc": dict(color="#d62728", marker="*", label="CMC (β sweep)"),
}
_EXTRA_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


def _rows_by_family(rows: Sequence[Mapping], store: str | None) -> dict[str, list[Mapping]]:
    out: dict[str, list[Mapping]] = {}
    for r in rows:
        if store is not None and r["store"] != store:
            continue
        out.setdefault(r["family"], []).append(r)
    for fam in out:
        out[fam].sort(key=lambda r: r["avg_tokens"])
    order = [f for f in FAMILY_ORDER if f in out] + sorted(f for f in out if f not in FAMILY_ORDER)
    return {f: out[f] for f in order}


def draw_scaling(ax, rows: Sequence[Mapping], store: str | None = None, *, oracle=None,
                 pass_at_n=None, errorbars: bool = True, title: str | None = None,
                 legend: bool = True, annotate: bool = False) -> None:
    """Draw one store's scaling curves on a matplotlib ``ax``.

    ``oracle``: an :class:`~tts_gym.evaluation.oracle.OracleCurve` (adaptive bound) or ``None``;
    ``pass_at_n``: ``(tokens, accuracy)`` arrays of the pass@n oracle or ``None``.
    """
    fams = _rows_by_family(rows, store)
    xs_all = []
    for i, (fam, rs) in enumerate(fams.items()):
        style = dict(FAMILY_STYLE.get(fam, dict(color=_EXTRA_COLORS[i % len(_EXTRA_COLORS)],
                                                   marker="o", label=fam)))
        label = style.pop("label")
        x = np.array([r["avg_tokens"] for r in rs], dtype=float)
        y = np.array([r["accuracy"] for r in rs], dtype=float)
        xs_all.append(x)
        if errorbars:
            lo = np.array([r.get("acc_low", r["accuracy"]) for r in rs], dtype=float)
            hi = np.array([r.get("acc_high", r["accuracy"]) for r in rs], dtype=float)
            ax.errorbar(x, y, yerr=np.clip(np.vstack([y - lo, hi - y]), 0, None), linewidth=1.6, markersize=6 if
                        style["marker"] != "*" else 10, capsize=2.5, label=label, **style)
        else:
            ax.plot(x, y, linewidth=1.6, label=label, **style)
        if annotate:
            for r, xi, yi in zip(rs, x, y):
                ax.annotate(r["label"], (xi, yi), fontsize=6, xytext=(3, -8), textcoords="offset points")
    xs = np.concatenate(xs_all) if xs_all else np.array([1e3, 1e6])
    xs = xs[xs > 0]
    lo_x, hi_x = (xs.min() / 1.6, xs.max() * 1.6) if xs.size else (1e3, 1e6)
    if pass_at_n is not None:
        t, a = (np.asarray(v, dtype=float) for v in pass_at_n)
        ax.plot(t, a, linestyle="--", color="black", linewidth=1.0, marker=".", alpha=0.7,
                label="oracle pass@n")
        lo_x = min(lo_x, t.min() / 1.6) if t.size else lo_x
    if oracle is not None:
        grid = np.geomspace(lo_x, hi_x, 400)
        ax.plot(grid, oracle.accuracy_at(grid), color="black", linewidth=1.8, drawstyle="steps-post",
                label="oracle (adaptive)")
    ax.set_xscale("log")
    ax.set_xlim(lo_x, hi_x)
    ax.set_xlabel("average tokens per question")
    ax.set_ylabel("accuracy (%)")
    ax.grid(True, which="both", alpha=0.25)
    if title:
        ax.set_title(title, fontsize=10)
    if legend:
        ax.legend(fontsize=7, loc="lower right")


def scaling_plot(rows, stores: Sequence[str] | None = None, path: str | os.PathLike | None = None, *,
                 oracles: Mapping | None = None, pass_at_n: Mapping | None = None, ncols: int = 3,
                 errorbars: bool = True, suptitle: str | None = None, dpi: int = 130,
                 panel_size=(4.6, 3.6), annotate: bool = False):
    """One panel per store (grid of ``ncols``); returns the matplotlib ``Figure`` and writes a PNG to
    ``path`` if given.

    ``rows``: tidy rows (or an ``EvalResult``); ``oracles`` / ``pass_at_n``: per-store-name oracle
    curves / pass@n arrays (see :func:`draw_scaling`); an ``EvalResult`` fills them itself unless
    ``oracles=False``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    auto = hasattr(rows, "rows")
    result = rows if auto else None
    rows = result.rows if auto else list(rows)
    if stores is None:
        stores = list(dict.fromkeys(r["store"] for r in rows))
    if auto and oracles is None:
        oracles = {s: result.oracle(s) for s in stores}
    if auto and pass_at_n is None and oracles is not False:
        from tts_gym.evaluation.oracle import schedule_oracle
        pass_at_n = {}
        for s in stores:
            st = next(x for x in result.stores if x.name == s)
            so = schedule_oracle(st, result.episodes[s])
            pass_at_n[s] = (so.sc_tokens, so.sc_accuracy)
    oracles = oracles or {}
    pass_at_n = pass_at_n or {}
    n = len(stores)
    nc = max(1, min(ncols, n))
    nr = int(np.ceil(n / nc))
    fig = Figure(figsize=(panel_size[0] * nc, panel_size[1] * nr), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nr, nc, squeeze=False)
    for i, s in enumerate(stores):
        ax = axes[i // nc][i % nc]
        draw_scaling(ax, rows, s, oracle=oracles.get(s), pass_at_n=pass_at_n.get(s),
                     errorbars=errorbars, title=s, legend=(i == 0), annotate=annotate)
    for j in range(n, nr * nc):
        axes[j // nc][j % nc].set_visible(False)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    if path is not None:
        from tts_gym.files import atomic_path
        fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
        with atomic_path(path) as tmp:   # a killed run leaves the previous figure whole
            fig.savefig(tmp, format=fmt)
    return fig
