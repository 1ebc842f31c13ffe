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


def _tokens_label(x, _pos=None) -> str:
    """Tick label of a token count: 500, 20k, 1M."""
    if x >= 1e6:
        return f"{x / 1e6:g}M"
    if x >= 1e3:
        return f"{x / 1e3:g}k"
    return f"{x:g}"


def _pad_limits(lo: float, hi: float, frac: float = 0.06, minimum: float = 1.5) -> tuple[float, float]:
    """``(lo, hi)`` widened so that nothing drawn at ``lo`` or ``hi`` touches the frame."""
    pad = max(minimum, frac * (hi - lo))
    return max(lo - pad, -3.0), min(hi + pad, 103.0)


def draw_scaling(ax, rows: Sequence[Mapping], store: str | None = None, *, oracle=None,
                 pass_at_n=None, errorbars: bool = True, title: str | None = None,
                 legend: bool = True, annotate: bool = False) -> None:
    """Draw one store's scaling curves on a matplotlib ``ax``.

    ``oracle``: an :class:`~tts_gym.evaluation.oracle.OracleCurve` (adaptive bound) or ``None``;
    ``pass_at_n``: ``(tokens, accuracy)`` arrays of the pass@n oracle or ``None``. The limits leave
    a margin around everything drawn (no curve on the frame); ``legend`` puts one outside the axes,
    on the right.
    """
    fams = _rows_by_family(rows, store)
    xs_all, ys_all = [], []
    for i, (fam, rs) in enumerate(fams.items()):
        style = dict(FAMILY_STYLE.get(fam, dict(color=_EXTRA_COLORS[i % len(_EXTRA_COLORS)],
                                                   marker="o", label=fam)))
        label = style.pop("label")
        x = np.array([r["avg_tokens"] for r in rs], dtype=float)
        y = np.array([r["accuracy"] for r in rs], dtype=float)
        xs_all.append(x)
        ys_all.append(y)
        if errorbars:
            # t-intervals of few replicates can reach past 0 or 100; accuracy cannot
            lo = np.clip([r.get("acc_low", r["accuracy"]) for r in rs], 0.0, 100.0).astype(float)
            hi = np.clip([r.get("acc_high", r["accuracy"]) for r in rs], 0.0, 100.0).astype(float)
            ys_all += [lo, hi]
            ax.errorbar(x, y, yerr=np.clip(np.vstack([y - lo, hi - y]), 0, None), linewidth=1.6,
                        markersize=6 if style["marker"] != "*" else 10, capsize=2.5, label=label, **style)
        else:
            ax.plot(x, y, linewidth=1.6, label=label, **style)
        if annotate:
            for r, xi, yi in zip(rs, x, y):
                ax.annotate(r["label"], (xi, yi), fontsize=7, xytext=(3, -8), textcoords="offset points")
    if pass_at_n is not None:
        t, a = (np.asarray(v, dtype=float) for v in pass_at_n)
        keep = t > 0
        t, a = t[keep], a[keep]
        ax.plot(t, a, linestyle="--", color="black", linewidth=1.0, marker=".", alpha=0.7,
                label="oracle pass@n")
        xs_all.append(t)
        ys_all.append(a)
    xs = np.concatenate(xs_all) if xs_all else np.array([1e3, 1e6])
    xs = xs[xs > 0]
    x_first, x_last = (xs.min(), xs.max()) if xs.size else (1e3, 1e6)
    if oracle is not None:
        # the bound over the policies' token range, a little beyond it on both sides (its cheapest
        # points average a few tokens per question, far left of any policy): inside the frame
        fr = oracle.frontier()
        t, a = np.asarray(fr.tokens, float), np.asarray(fr.accuracy, float)
        start, end = x_first / 1.3, x_last * 1.3
        inside = (t > start) & (t < end)
        xo = np.concatenate([[start], t[inside], [end]])
        yo = fr.step(xo)
        ax.plot(xo, yo, color="black", linewidth=1.8, drawstyle="steps-post", label="oracle (adaptive)")
        ys_all.append(yo)
    ax.set_xscale("log")
    ax.set_xlim(x_first / 1.6, x_last * 1.6)
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(_tokens_label))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ys = np.concatenate(ys_all) if ys_all else np.array([0.0, 100.0])
    ys = ys[np.isfinite(ys)]
    if ys.size:
        ax.set_ylim(*_pad_limits(float(ys.min()), float(ys.max())))
    ax.set_xlabel("average tokens per question")
    ax.set_ylabel("accuracy (%)")
    ax.grid(True, which="both", alpha=0.25)
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)


def synthetic_stores(stores: Sequence[str], result=None) -> set[str]:
    """The stores among ``stores`` whose data is synthetic (model ``synthetic``, or a store of
    ``result`` generated by :func:`tts_gym.data.synthetic.synthesize`)."""
    out = {s for s in stores if str(s).split("/", 1)[0] == "synthetic"}
    for st in getattr(result, "stores", None) or ():
        if (getattr(st, "attrs", None) or {}).get("source") == "synthetic" and st.name in stores:
            out.add(st.name)
    return out


def scaling_title(stores: Sequence[str], synthetic: set[str] = frozenset()) -> str:
    """``Accuracy vs. tokens per question -- <what>``, naming the model(s) and benchmark(s) and
    saying when the data is synthetic."""
    models = list(dict.fromkeys(str(s).split("/", 1)[0] for s in stores))
    benches = list(dict.fromkeys(str(s).split("/", 1)[-1] for s in stores))
    if len(stores) == 1:
        what = str(stores[0])
    elif len(models) == 1:
        what = f"{models[0]}: {', '.join(benches)}"
    elif len(benches) == 1:
        what = f"{benches[0]}: {', '.join(models)}"
    else:
        what = f"{', '.join(models)} x {', '.join(benches)}"
    title = f"Accuracy vs. tokens per question \u2014 {what}"
    if synthetic:
        title += " (synthetic data)" if set(stores) <= set(synthetic) else " (some stores synthetic)"
    return title


def scaling_plot(rows, stores: Sequence[str] | None = None, path: str | os.PathLike | None = None, *,
                 oracles: Mapping | None = None, pass_at_n: Mapping | None = None, ncols: int = 3,
                 errorbars: bool = True, suptitle: str | None = None, dpi: int = 130,
                 panel_size=(6.0, 4.4), annotate: bool = False):
    """One panel per store (grid of ``ncols``), one legend outside the panels and a title naming
    the model(s) / benchmark(s) (``suptitle``: another title); returns the matplotlib ``Figure``
    and writes a PNG to ``path`` if given.

    ``rows``: tidy rows (or an ``EvalResult``); ``oracles`` / ``pass_at_n``: per-store-name oracle
    curves / pass@n arrays (see :func:`draw_scaling`); an ``EvalResult`` fills them itself unless
    ``oracles=False``. Panels of synthetic stores say so in their titles.
    """
    from matplotlib import rc_context
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
    synthetic = synthetic_stores(stores, result)
    n = len(stores)
    nc = max(1, min(ncols, n))
    nr = int(np.ceil(n / nc))
    with rc_context({"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "xtick.labelsize": 9,
                     "ytick.labelsize": 9, "legend.fontsize": 9, "figure.titlesize": 13}):
        extra_w = 2.4 if n == 1 else 0.0     # the legend beside a single panel, below a grid
        extra_h = 0.0 if n == 1 else 0.9
        fig = Figure(figsize=(panel_size[0] * nc + extra_w, panel_size[1] * nr + extra_h), dpi=dpi,
                     layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(nr, nc, squeeze=False)
        for i, s in enumerate(stores):
            ax = axes[i // nc][i % nc]
            title = None if n == 1 else s + (" (synthetic)" if s in synthetic and "synthetic" not in s else "")
            draw_scaling(ax, rows, s, oracle=oracles.get(s), pass_at_n=pass_at_n.get(s),
                         errorbars=errorbars, title=title, legend=False, annotate=annotate)
        for j in range(n, nr * nc):
            axes[j // nc][j % nc].set_visible(False)
        handles, labels = {}, {}
        for ax in axes.flat:   # one entry per curve, whichever panel has it
            for h, lab in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(lab, h)
        labels = sorted(handles, key=lambda lab: lab.startswith("oracle"))  # policies, then bounds
        if labels:
            if n == 1:
                fig.legend([handles[k] for k in labels], labels, loc="outside right center", frameon=False)
            else:
                fig.legend([handles[k] for k in labels], labels, loc="outside lower center",
                           ncols=min(len(labels), 7), frameon=False)
        fig.suptitle(suptitle if suptitle is not None else scaling_title(stores, synthetic))
        if path is not None:
            from tts_gym.files import atomic_path
            fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
            with atomic_path(path) as tmp:   # a killed run leaves the previous figure whole
                fig.savefig(tmp, format=fmt)
    return fig
