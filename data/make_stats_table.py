"""Print the markdown table comparing the synthetic store with the 12 real AutoTTS stores.

    python data/make_stats_table.py                     # real stores from ../shared/autotts-replay
    python data/make_stats_table.py --data OUT.h5 --seeds 10

Rows: each real store, the mean over the real stores, the embedded synthetic default store
(seed 0, 30 x 128), and the mean over ``--seeds`` synthetic seeds. The statistics are those of
:func:`tts_gym.data.summary.summarize_store`:

* majority@N / pass@N: share of questions whose majority final answer over all N branches is the
  gold (ties: the answer of the earliest stored branch) / whose gold is among the N final answers;
* tokens: mean branch length ``T``; K: mean probes per branch;
* distinct finals / answers: mean distinct final answers / distinct answers counting probes, per question;
* first depth: mean 1-based probe index at which a branch's final answer first appears among its
  probes (and as a share of ``K``);
* ERR: share of probes that are the unparseable answer ``"ERR"``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from tts_gym.data.resolve import resolve_stores
from tts_gym.data.summary import summarize_store
from tts_gym.data.synthetic import synthesize

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "autotts-replay"
COLUMNS = [  # (header, key, format)
    ("majority@N", "majority_acc", "{:.1%}"),
    ("pass@N", "pass_acc", "{:.1%}"),
    ("gold anywhere", "gold_anywhere", "{:.1%}"),
    ("branch acc.", "branch_acc", "{:.1%}"),
    ("mean tokens", "tokens_mean", "{:,.0f}"),
    ("mean K", "k_mean", "{:.1f}"),
    ("distinct finals", "distinct_finals", "{:.1f}"),
    ("distinct answers", "distinct_answers", "{:.1f}"),
    ("first depth", "first_final_depth", "{:.1f}"),
    ("first depth / K", "first_final_frac", "{:.2f}"),
    ("ERR probes", "err_probe_share", "{:.1%}"),
]


def row(name: str, stats: dict) -> str:
    return "| " + " | ".join([name] + [fmt.format(stats[key]) for _, key, fmt in COLUMNS]) + " |"


def mean_stats(rows: list[dict]) -> dict:
    return {key: float(np.mean([r[key] for r in rows])) for _, key, _ in COLUMNS}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("TTS_GYM_DATA", DEFAULT_DATA)),
                    help="directory of AutoTTS JSON or an HDF5 store file")
    ap.add_argument("--seeds", type=int, default=10, help="synthetic seeds averaged in the last row")
    args = ap.parse_args(argv)

    real = [summarize_store(s) for s in resolve_stores(args.data)]
    synth = [summarize_store(synthesize(seed=seed)) for seed in range(args.seeds)]
    out = ["| store | " + " | ".join(h for h, _, _ in COLUMNS) + " |",
           "|---|" + "---:|" * len(COLUMNS)]
    out += [row(f"{r['model']} {r['benchmark']}", r) for r in real]
    out.append(row(f"**real: mean of {len(real)}**", mean_stats(real)))
    out.append(row("**synthetic seed 0** (default store)", synth[0]))
    out.append(row(f"**synthetic: mean of seeds 0-{args.seeds - 1}**", mean_stats(synth)))
    spread = {key: (min(r[key] for r in real), max(r[key] for r in real)) for _, key, _ in COLUMNS}
    out.append("| *real: min-max* | " + " | ".join(
        f"{fmt.format(spread[key][0])}-{fmt.format(spread[key][1])}" for _, key, fmt in COLUMNS) + " |")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
