"""Evaluate the shipped brevity-weighted consensus configurations on the held-out stores.

    python agents/evaluate_bwc.py

* Episodes: the reference protocol with all 100 shuffle seeds x 30 questions on Qwen3-0.6B/1.7B/4B/8B x
  AIME25/HMMT25 (held out: never loaded by the search, ``agents/search_bwc.py``), and on AIME24 (the
  search stores) for context. One ``tts_gym.evaluate`` call runs everything on identical episodes:
  the main-table baselines (SC@64, ASC@64, ESC@64, Parallel-Probe@64, CMC beta=0.5 and beta=1), the
  shipped ``bwc`` presets (``tts_gym/policies/brevity_consensus.json``) and the baseline sweeps for
  the curve.
* Paired comparisons of each ``bwc`` target against CMC beta=0.5 and beta=1 on the 8-store held-out
  average (the 240 held-out questions pooled; each store has 30): accuracy difference in percentage
  points with 95 % intervals over the 100 seeds (t) and over the 240 questions (bootstrap), and the
  token difference per question.
* Writes ``--out`` (markdown tables), ``--plot`` (held-out curve) and ``--search-plot`` (the search
  objective per generation, from the shipped file's selection record); prints the tables.

The configuration file must be committed unchanged (the held-out numbers are then those of a
recorded selection); ``--allow-uncommitted`` skips that check.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODELS = ("Qwen3-0.6B", "Qwen3-1.7B", "Qwen3-4B", "Qwen3-8B")
HELD_OUT = ("aime25", "hmmt25")
SEARCH = "aime24"
TARGETS = ("sc64-15pct", "cmc-beta0.5", "cmc-beta1")
SWEEPS = [("sc", {"max_samples": [1, 2, 4, 8, 16, 32, 64]}),
          ("asc", {"max_samples": [4, 8, 16, 32, 64], "threshold": [0.95]}),
          ("parallel_probe", {"num_chains": [4, 8, 16, 32, 64]}),
          ("cmc", {"beta": [round(0.1 * i, 1) for i in range(11)]})]


def committed(path: Path) -> str | None:
    """The commit the file is committed at, unchanged; ``None`` if it differs from HEAD."""
    try:
        dirty = subprocess.run(["git", "status", "--porcelain", "--", str(path)], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
        head = subprocess.run(["git", "log", "-1", "--format=%H", "--", str(path)], cwd=REPO,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return None if dirty or not head else head


def pooled(res, label, stores):
    """``(correct, cost)`` ``[seeds, questions of all stores]`` of one configuration."""
    outs = [res.outcome(label, s) for s in stores]
    return (np.concatenate([o.correct for o in outs], axis=1),
            np.concatenate([o.cost for o in outs], axis=1))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="replay data (default $TTS_GYM_DATA or ../shared/autotts-replay)")
    p.add_argument("--seeds", type=int, default=100, help="reference seeds 0..N-1 (the protocol: 100)")
    p.add_argument("--held-out", nargs="+", default=list(HELD_OUT), metavar="BENCHMARK",
                   help="held-out benchmarks (default: aime25 hmmt25; another list only to try the script)")
    p.add_argument("--out", default="docs/bwc_results.md")
    p.add_argument("--plot", default="docs/img/bwc_curve.png")
    p.add_argument("--search-plot", default="docs/img/bwc_search.png")
    p.add_argument("--json", default=None, help="also write the table rows as JSON")
    p.add_argument("--allow-uncommitted", action="store_true")
    args = p.parse_args(argv)

    import tts_gym
    from tts_gym.data.resolve import resolve_store
    from tts_gym.evaluation.evaluate import MAIN_TABLE_CONFIGS, Sweep, config_label, main_table
    from tts_gym.evaluation.stats import paired_difference
    from tts_gym.policies import brevity_consensus as bwc
    from tts_gym.rl.train import default_data_dir

    commit = committed(bwc.CONFIG_FILE)
    if commit is None and not args.allow_uncommitted:
        raise SystemExit(f"evaluate_bwc: commit {bwc.CONFIG_FILE.relative_to(REPO)} first (the held-out "
                         f"evaluation must be of a recorded selection), or pass --allow-uncommitted")
    shipped = json.loads(bwc.CONFIG_FILE.read_text())
    data = args.data or default_data_dir()
    held = [resolve_store(data, m, b) for b in args.held_out for m in MODELS]
    search = [resolve_store(data, m, SEARCH) for m in MODELS if SEARCH not in args.held_out]
    t0 = time.perf_counter()

    targets = [t for t in TARGETS if t in bwc.PRESETS]
    fronts = sorted(k for k in bwc.PRESETS if k.startswith("front-"))
    labels = {t: bwc.label({"preset": t}) for t in targets + fronts}
    main_labels = [config_label(f, q) for f, q in MAIN_TABLE_CONFIGS]
    policies = [(f, q) for f, q in MAIN_TABLE_CONFIGS]
    policies += [Sweep("bwc", grid=[{"preset": t} for t in targets + fronts])]
    sweep_cfgs = []
    for fam, grid in SWEEPS:
        for c in Sweep(fam, grid=grid).configs():
            if c.label not in main_labels:
                sweep_cfgs.append(c)
    policies += sweep_cfgs
    res = tts_gym.evaluate(policies, stores=held + search, seeds=range(args.seeds), progress=None)
    wall = time.perf_counter() - t0

    def avg(label, stores):
        rs = [res.row(label, s) for s in stores]
        return float(np.mean([r["accuracy"] for r in rs])), float(np.mean([r["avg_tokens"] for r in rs]))

    cmc05, cmc1, sc64 = "CMC β=0.5", "CMC β=1", "SC@64"
    a05, t05 = avg(cmc05, held)
    a1, t1 = avg(cmc1, held)
    asc, tsc = avg(sc64, held)
    lines = ["# Brevity-weighted consensus (`bwc`) on the held-out stores", "",
             f"Configurations: `tts_gym/policies/brevity_consensus.json` at commit `{commit}` "
             f"(selected on the AIME24 search stores by `{shipped['selection']['command']}` at commit "
             f"`{shipped['selection']['commit']}`). Episodes: reference protocol, seeds 0..{args.seeds - 1} x "
             f"30 questions per store; held-out = Qwen3-0.6B/1.7B/4B/8B x "
             f"{'/'.join(b.upper() for b in args.held_out)} ({len(held)} stores, "
             f"{len(held) * 30 * args.seeds:,} episodes per configuration). Reproduce: "
             f"`python agents/evaluate_bwc.py`.",
             "", f"## Held-out average ({len(held)} stores)", "",
             "| configuration | accuracy % | tokens / question | vs CMC β=0.5 |", "|---|---:|---:|---|"]
    for lab in main_labels + [labels[t] for t in targets]:
        a, t = avg(lab, held)
        if lab == cmc05:
            verdict = "—"
        else:
            verdict = ("**dominates**" if a >= a05 and t <= t05 else "more accurate, costlier" if a >= a05
                       else "cheaper, less accurate" if t <= t05 else "dominated")
        lines.append(f"| {lab} | {a:.2f} | {t / 1000:,.1f}k | {verdict} |")
    lines += ["", "## Paired differences on the identical held-out episodes", "",
              f"Accuracy difference in percentage points (95 % interval over the seeds, t; and over the "
              f"{30 * len(held)} questions, bootstrap); token difference per question (95 % interval over "
              f"the seeds).", "",
              "| bwc preset | vs | Δ accuracy pp | 95 % CI (seeds) | 95 % CI (questions) | Δ tokens / question | "
              "95 % CI (seeds) |", "|---|---|---:|---:|---:|---:|---:|"]
    comparisons = {}
    for t in targets:
        for ref in (cmc05, cmc1, sc64):
            ca, ta = pooled(res, labels[t], held)
            cb, tb = pooled(res, ref, held)
            ds = paired_difference(ca, cb, ta, tb, over="replicates", label_a=labels[t], label_b=ref)
            dq = paired_difference(ca, cb, ta, tb, over="questions", label_a=labels[t], label_b=ref)
            comparisons[(t, ref)] = (ds, dq)
            lines.append(f"| {t} | {ref} | {ds.accuracy_diff.mean:+.2f} | [{ds.accuracy_diff.low:+.2f}, "
                         f"{ds.accuracy_diff.high:+.2f}] | [{dq.accuracy_diff.low:+.2f}, {dq.accuracy_diff.high:+.2f}] | "
                         f"{ds.tokens_diff.mean / 1000:+,.1f}k | [{ds.tokens_diff.low / 1000:+,.1f}k, "
                         f"{ds.tokens_diff.high / 1000:+,.1f}k] |")
    goals = []
    if "cmc-beta0.5" in targets:
        a, t = avg(labels["cmc-beta0.5"], held)
        goals.append(f"- Goal (≥ CMC β=0.5's {a05:.2f} % at ≤ its {t05 / 1000:.1f}k): `cmc-beta0.5` preset "
                     f"{a:.2f} % at {t / 1000:.1f}k — **{'met' if a >= a05 and t <= t05 else 'not met'}**.")
    if "cmc-beta1" in targets:
        a, t = avg(labels["cmc-beta1"], held)
        goals.append(f"- Moonshot 1 (≥ CMC β=1's {a1:.2f} % at ≤ its {t1 / 1000:.1f}k): `cmc-beta1` preset "
                     f"{a:.2f} % at {t / 1000:.1f}k — **{'met' if a >= a1 and t <= t1 else 'not met'}**.")
    ok_sc = [(lab, *avg(lab, held)) for lab in labels.values()]
    ok_sc = [(lab, a, t) for lab, a, t in ok_sc if t <= 0.15 * tsc]
    best = max(ok_sc, key=lambda x: x[1]) if ok_sc else None
    goals.append(f"- Moonshot 2 (≥ SC@64's {asc:.2f} % at ≤ 15 % of its {tsc / 1000:.1f}k = "
                 f"{0.15 * tsc / 1000:.1f}k): best shipped preset within that budget "
                 + (f"{best[0]} {best[1]:.2f} % at {best[2] / 1000:.1f}k — **{'met' if best[1] >= asc else 'not met'}**."
                    if best else "— none within the budget."))
    lines += ["", "## Acceptance", ""] + goals
    lines += ["", "## Per model (accuracy %, tokens per question)", "",
              main_table([r for r in res.rows if r["label"] in main_labels + [labels[t] for t in targets]],
                         search=SEARCH, benchmarks=list(dict.fromkeys([SEARCH, *args.held_out]))), "",
              "## Frontier presets (held-out average)", "",
              "| preset | accuracy % | tokens / question | AIME24 (search) accuracy % | tokens |",
              "|---|---:|---:|---:|---:|"]
    for f in fronts:
        a, t = avg(labels[f], held)
        sa, st = avg(labels[f], search or held)
        lines.append(f"| {f} | {a:.2f} | {t / 1000:,.1f}k | {sa:.2f} | {st / 1000:,.1f}k |")
    lines += ["", "![held-out curve](img/bwc_curve.png)", "", "![search objective](img/bwc_search.png)", "",
              f"Evaluation wall time: {wall:.0f} s (shared 2-core machine).", ""]
    text = "\n".join(lines)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps(res.rows, indent=1, default=str))
    plot_curve(args.plot, res, held, labels, targets, fronts,
               f"{' + '.join(b.upper() for b in args.held_out)}, Qwen3 0.6B–8B, {args.seeds} seeds")
    plot_search(args.search_plot, shipped)
    print(text)


def plot_curve(path, res, held, labels, targets, fronts, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tts_gym.reports.plots import FAMILY_STYLE
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    fams = {}
    for c in res.configs:
        if c.family != "bwc":
            fams.setdefault(c.family, []).append(c.label)
    for fam, labs in fams.items():
        pts = sorted((np.mean([res.row(lab, s)["avg_tokens"] for s in held]),
                      np.mean([res.row(lab, s)["accuracy"] for s in held])) for lab in labs)
        style = dict(FAMILY_STYLE.get(fam, {}))
        name = style.pop("label", fam)
        ax.plot([t / 1000 for t, _ in pts], [a for _, a in pts], "-", lw=1.2, ms=4 if style.get("marker") != "*" else 8,
                label=name, **style)
    pts = sorted((np.mean([res.row(labels[f], s)["avg_tokens"] for s in held]),
                  np.mean([res.row(labels[f], s)["accuracy"] for s in held])) for f in fronts)
    if pts:
        ax.plot([t / 1000 for t, _ in pts], [a for _, a in pts], "o-", color="black", lw=2.2, ms=4,
                label="BWC (frontier presets)", zorder=5)
    for t, mk in zip(targets, ("v", "P", "X")):
        a = np.mean([res.row(labels[t], s)["accuracy"] for s in held])
        x = np.mean([res.row(labels[t], s)["avg_tokens"] for s in held])
        ax.plot([x / 1000], [a], mk, ms=11, color="gold", mec="black", zorder=6, label=f"BWC {t}")
    for lab, mk in (("CMC β=0.5", "*"), ("CMC β=1", "*")):
        a = np.mean([res.row(lab, s)["accuracy"] for s in held])
        x = np.mean([res.row(lab, s)["avg_tokens"] for s in held])
        ax.plot([x / 1000], [a], mk, ms=15, color="tab:red", mec="black", zorder=6)
        ax.annotate(lab, (x / 1000, a), xytext=(5, -12), textcoords="offset points", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("tokens per question (thousands, log scale)")
    ax.set_ylabel(f"accuracy % (mean of {len(held)} stores)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)


def plot_search(path, shipped):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    curve = shipped["selection"].get("curve")
    if not curve:
        return
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(range(len(curve)), curve, "-", color="black")
    ax.set_xlabel("generation (0 = random start)")
    ax.set_ylabel("frontier gain over CMC (pp)")
    ax.set_title("Search objective on the AIME24 search stores (search seeds)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)


if __name__ == "__main__":
    sys.exit(main())
