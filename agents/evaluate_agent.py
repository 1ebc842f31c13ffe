"""Evaluate a trained agent on the held-out stores next to the AutoTTS baselines.

    python agents/evaluate_agent.py --agent maskable_ppo_aime24 --seeds 10 \
        --cost-weights 0.001 0.002 0.005 0.01 0.02 0.05

* The agent is a tts_gym Policy (tts_gym.rl.AgentPolicy, one per cost weight) played through
  tts_gym.evaluate's Python episode loop, under the reference protocol (questions x reference shuffle
  seeds 0..S-1) on Qwen3-{0.6B,1.7B,4B,8B} x {AIME25, HMMT25}.
* The baselines (SC@64, ASC@64, ESC@64, Parallel-Probe@64, CMC beta=0.5/1.0, and their sweeps for the
  curves) run on the same episodes through the compiled path (tts_gym.evaluation.protocol.evaluate_compiled);
  the script checks that tts_gym.evaluate reproduces them bit for bit on those episodes.
* Writes docs/rl_results.md (tables) and docs/img/rl_curve.png (accuracy vs tokens).
"""
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import tts_gym
from tts_gym.cli.dataclass_args import parse_dataclass
from tts_gym.data.catalog import HELDOUT_BENCHMARKS, MODELS, SEARCH_BENCHMARKS
from tts_gym.data.resolve import resolve_stores
from tts_gym.files import atomic_path, atomic_write
from tts_gym.evaluation.evaluate import MAIN_TABLE_CONFIGS, Sweep, config_label, main_table
from tts_gym.evaluation.protocol import evaluate_compiled, evaluate_grid_compiled
from tts_gym.rl import load_agent_policy, set_torch_threads

SWEEPS = {"SC": ("sc", [{"max_samples": n} for n in (1, 2, 4, 8, 16, 32, 64)]),
          "ASC": ("asc", [{"max_samples": n, "threshold": 0.95} for n in (4, 8, 16, 32, 64)]),
          "ESC": ("esc", [{"max_samples": n, "window_size": 8} for n in (16, 32, 64)]),
          "Parallel-Probe": ("parallel_probe", [{"num_chains": n} for n in (4, 8, 16, 32, 64)]),
          "CMC": ("cmc", [{"beta": round(0.05 * i, 2)} for i in range(21)])}


@dataclass
class Args:
    agent: str = "maskable_ppo_aime24"
    """agent name (agents/trained) or path"""
    data: str | None = None
    """replay data holding the held-out stores (default: $TTS_GYM_DATA or the fetched cache)"""
    seeds: int = 10
    """reference shuffle seeds 0..S-1 (the AutoTTS protocol uses 100)"""
    cost_weights: tuple[float, ...] = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)
    """cost weights the agent is played at (its operating points)"""
    greedy: bool | None = None
    """--greedy: argmax actions; --no-greedy: sample from the trained policy (seeded); default: the
    agent config's 'deterministic' entry"""
    out: str = "docs/rl_results.md"
    """the markdown report"""
    plot: str = "docs/img/rl_curve.png"
    """the accuracy-vs-tokens figure"""
    json: str | None = None
    """also write the rows as JSON"""


def avg(rows, label):
    sel = [r for r in rows if r["label"] == label]
    return float(np.mean([r["accuracy"] for r in sel])), float(np.mean([r["avg_tokens"] for r in sel]))


def main(argv=None):
    args = parse_dataclass(Args, argv, __doc__)
    set_torch_threads(1)
    t0 = time.perf_counter()

    stores = [s for b in HELDOUT_BENCHMARKS for s in resolve_stores(args.data, MODELS, b)]
    seeds = list(range(args.seeds))
    base = load_agent_policy(args.agent, deterministic=args.greedy, seed=0)
    cfg = base.config
    args.greedy = base.deterministic

    # baselines + the agent on identical episodes, through tts_gym.evaluate
    rl_labels = [f"RL w={w:g}" for w in args.cost_weights]
    policies = [(fam, params) for fam, params in MAIN_TABLE_CONFIGS]
    policies.append(Sweep(lambda cost_weight: base.with_cost_weight(cost_weight), name="rl",
                          grid={"cost_weight": list(args.cost_weights)},
                          labels=rl_labels))
    res = tts_gym.evaluate(policies, stores=stores, seeds=seeds, progress=True)
    rows = res.rows
    # the compiled reference path gives the same baseline numbers on the same episodes
    for fam, params in MAIN_TABLE_CONFIGS:
        label = config_label(fam, params)
        for st, r in zip(stores, evaluate_compiled(stores, fam, params, seeds=seeds)):
            row = res.row(label, st)
            assert (row["sum_correct"], row["sum_tokens"]) == (r.sumC, r.sumTT), (label, st.name)
    # baseline sweeps for the curves (compiled)
    curves, sweep_params = {}, {}
    for name, (fam, grid) in SWEEPS.items():
        out = evaluate_grid_compiled(stores, fam, grid, seeds=seeds)
        curves[name] = [(float(np.mean([x.avg_tokens for x in r])), float(np.mean([x.accuracy for x in r])))
                        for r in out]
        sweep_params[name] = grid
    curves["RL agent (cost-weight sweep)"] = [avg(rows, lab)[::-1] for lab in rl_labels]
    base_full = {}   # 100-seed reference numbers of the two CMC rows, for context
    for fam, params in (("cmc", {"beta": 0.5}), ("cmc", {"beta": 1.0})):
        r = evaluate_compiled(stores, fam, params)
        base_full[config_label(fam, params)] = (float(np.mean([x.accuracy for x in r])),
                                                float(np.mean([x.avg_tokens for x in r])))
    wall = time.perf_counter() - t0

    write_report(args, cfg, rows, rl_labels, base_full, wall, curves, sweep_params)
    plot(args.plot, curves, rows)
    if args.json:
        atomic_write(args.json, json.dumps(rows, indent=1, default=str))
    print(Path(args.out).read_text())


def at_equal_tokens(curve, tokens):
    """A baseline curve's accuracy interpolated (in log tokens) at ``tokens``."""
    pts = sorted(curve)
    return float(np.interp(np.log(tokens), np.log([t for t, _ in pts]), [a for _, a in pts]))


def matched_budget_table(rows, rl_labels, curves, sweep_params):
    lines = ["| RL operating point | accuracy % | tokens / question | CMC at equal tokens | Δ vs CMC | "
             "ASC at equal tokens | CMC configurations it dominates |", "|---|---:|---:|---:|---:|---:|---|"]
    for lab in rl_labels:
        a, t = avg(rows, lab)
        c, asc = at_equal_tokens(curves["CMC"], t), at_equal_tokens(curves["ASC"], t)
        dom = [f"β={p['beta']:g}" for p, (ct, ca) in zip(sweep_params["CMC"], curves["CMC"]) if a >= ca and t <= ct]
        lines.append(f"| {lab} | {a:.2f} | {t / 1000:,.1f}k | {c:.2f} | {a - c:+.2f} | {asc:.2f} | "
                     f"{', '.join(dom) or '—'} |")
    return lines


def write_report(args, cfg, rows, rl_labels, base_full, wall, curves, sweep_params):
    labels = list(dict.fromkeys(r["label"] for r in rows))
    cmc_acc, cmc_tok = avg(rows, "CMC β=0.5")
    lines = [
        "# RL agent vs AutoTTS baselines on the held-out stores",
        "",
        f"Agent `{cfg.get('name')}` ({cfg.get('algo')}, max_branches={cfg.get('max_branches')}, "
        f"{cfg.get('timesteps_done', 0):,} env steps on {', '.join(cfg.get('stores', []))}; "
        f"cost weight drawn log-uniformly from {cfg.get('cost_weight_range')} per episode). Reproduce the "
        f"agent with:",
        "",
        f"    {cfg.get('command')}",
        "",
        f"and this page with `python agents/evaluate_agent.py --agent {args.agent} --seeds {args.seeds} "
        f"--cost-weights {' '.join(f'{w:g}' for w in args.cost_weights)}`.",
        "",
        f"**Episodes.** Reference protocol with shuffle seeds 0..{args.seeds - 1} ({args.seeds} of the "
        f"AutoTTS protocol's 100, because the agent is played through the Python evaluation loop) x "
        f"30 questions per store, on Qwen3-0.6B/1.7B/4B/8B x AIME25/HMMT25 (never seen in training). "
        f"Every row, baselines included, is computed on exactly these episodes (the baselines through "
        f"`tts_gym.evaluate` and `tts_gym.evaluation.protocol.evaluate_compiled`, which agree bit for bit). "
        f"`RL w=x` is the single trained agent with its cost weight input set to x "
        f"(reward = 1{{correct}} − x · tokens / 100k), "
        + ("acting greedily (argmax of its masked action logits)." if args.greedy else
           "sampling its actions from the trained stochastic policy (generator seeded with 0).")
        + (f" Model selection: {cfg['selection']}." if cfg.get("selection") else ""),
        "",
        "## Averaged over the 8 held-out stores",
        "",
        "| configuration | accuracy % | tokens / question | vs CMC β=0.5 |",
        "|---|---:|---:|---|",
    ]
    for lab in labels:
        a, t = avg(rows, lab)
        if lab == "CMC β=0.5":
            verdict = "—"
        else:
            better_acc, cheaper = a >= cmc_acc, t <= cmc_tok
            verdict = ("**dominates**" if better_acc and cheaper else
                       "more accurate, costlier" if better_acc else
                       "cheaper, less accurate" if cheaper else "dominated")
        lines.append(f"| {lab} | {a:.2f} | {t / 1000:,.1f}k | {verdict} |")
    ok = [lab for lab in rl_labels if avg(rows, lab)[0] >= cmc_acc and avg(rows, lab)[1] <= cmc_tok]
    lines += ["", ("**Goal met:** " + ", ".join(ok) + f" reach ≥ {cmc_acc:.2f} % at ≤ {cmc_tok / 1000:.1f}k tokens "
                   "(CMC β=0.5 on these episodes).") if ok else
              f"**Goal not met:** no RL operating point reaches CMC β=0.5's {cmc_acc:.2f} % at ≤ "
              f"{cmc_tok / 1000:.1f}k tokens per question on these episodes (see the curve and the notes).", ""]
    lines += ["### The agent against CMC's and ASC's curves", "",
              "CMC swept over β = 0, 0.05, ..., 1 and ASC over max_samples = 4..64 on the same episodes; "
              "their accuracy is interpolated (in log tokens) at each RL point's token count.", ""]
    lines += matched_budget_table(rows, rl_labels, curves, sweep_params) + [""]
    if base_full:
        lines += ["For reference, with all 100 seeds: " + "; ".join(
            f"{k} {a:.2f} % at {t / 1000:.1f}k" for k, (a, t) in base_full.items()) + ".", ""]
    lines += ["## Per model (accuracy %, tokens per question)", "",
              main_table(rows, search=SEARCH_BENCHMARKS[0], benchmarks=list(HELDOUT_BENCHMARKS)), "",
              "![accuracy vs tokens](img/rl_curve.png)", "",
              f"Evaluation wall time: {wall / 60:.1f} min on the shared 2-core machine.", ""]
    notes = cfg.get("notes")
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out, "\n".join(lines))


def plot(path, curves, rows):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, pts in curves.items():
        pts = sorted(pts)
        x, y = [t / 1000 for t, _ in pts], [a for _, a in pts]
        rl = name.startswith("RL")
        ax.plot(x, y, "o-" if not rl else "s-", lw=2.5 if rl else 1.3, ms=6 if rl else 3, label=name,
                color="black" if rl else None, zorder=5 if rl else 2)
    cmc = avg(rows, "CMC β=0.5")
    ax.plot([cmc[1] / 1000], [cmc[0]], "*", ms=16, color="tab:purple", mec="black", zorder=6,
            label="CMC β=0.5 (target)")
    ax.set_xscale("log")
    ax.set_xlabel("tokens per question (thousands, log scale)")
    ax.set_ylabel("accuracy % (mean of 8 held-out stores)")
    ax.set_title("Held-out AIME25 + HMMT25, Qwen3 0.6B–8B")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, format="png")


if __name__ == "__main__":
    main()
