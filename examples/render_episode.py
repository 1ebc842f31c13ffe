"""Play one episode with a simple probing controller and save its rendering as a PNG.

    python examples/render_episode.py                       # embedded synthetic store
    python examples/render_episode.py --data ../shared/autotts-replay --model Qwen3-1.7B --benchmark aime24
    python examples/render_episode.py --out /tmp/episode.png --question 3 --seed 7

The controller is a small Parallel-Probe-like rule written against the raw episode state
(``env.unwrapped.episode``): open ``width`` branches, then advance every live branch once per round
(opening order); prune a branch whose latest answer disagrees with the plurality for ``patience``
rounds in a row (keeping at least two live); answer the plurality once it has stayed the same for
``stable_rounds`` rounds, or when nothing is left to advance. The ``rgb_array`` frame of the final
state -- width x depth grid coloured by answer cluster, pruned/finished markers, gold cluster marked
because the episode has ended -- is written with matplotlib.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym
import numpy as np

import tts_gym  # noqa: F401  (registers tts_gym/Replay-v0)
from tts_gym.core import actions as A
from tts_gym.core.voting import majority


def plurality(view) -> int:
    """The answer ``ANSWER`` would commit (-1: none): the plurality of the latest answers of opened,
    unpruned positions, ties to the earliest first occurrence."""
    winner = majority([int(view.latest[p]) for p in range(view.cursor)
                       if view.latest[p] >= 0 and not view.is_pruned(p)])
    return -1 if winner is None else winner


def play(env, width: int, patience: int, stable_rounds: int) -> dict:
    view = env.unwrapped.episode
    M = env.unwrapped.max_branches
    for _ in range(min(width, view.branch_limit)):
        _, _, _, _, info = env.step(A.BRANCH)
    disagree = np.zeros(M, int)
    last_winner, stable = -1, 0
    while True:
        winner = plurality(view)
        stable = stable + 1 if winner == last_winner else 0
        last_winner = winner
        live = [p for p in range(view.cursor) if not (view.is_finished(p) or view.is_pruned(p))]
        if not live or (winner >= 0 and stable >= stable_rounds):
            break
        for p in live:
            disagree[p] = disagree[p] + 1 if int(view.latest[p]) != winner else 0
        for p in sorted(live, key=lambda p: -disagree[p]):
            if disagree[p] >= patience and len(live) > 2:
                env.step(A.prune_action(p, M))
                live.remove(p)
        for p in live:
            env.step(A.continue_action(p, M))
    _, reward, _, _, info = env.step(A.ANSWER)
    return {"reward": reward, **{k: info[k] for k in ("answer", "correct", "tokens")}}


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="store path (default: the embedded synthetic store)")
    ap.add_argument("--model", default=None)
    ap.add_argument("--benchmark", default=None)
    ap.add_argument("--question", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="reference shuffle seed")
    ap.add_argument("--max-branches", type=int, default=16)
    ap.add_argument("--width", type=int, default=12)
    ap.add_argument("--patience", type=int, default=4)
    ap.add_argument("--stable-rounds", type=int, default=6)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "img" / "episode.png"))
    args = ap.parse_args(argv)

    env = gym.make("tts_gym/Replay-v0", store=args.data, model=args.model, benchmark=args.benchmark,
                   max_branches=args.max_branches, render_mode="rgb_array")
    env.reset(options={"question": args.question, "shuffle_seed": args.seed})
    result = play(env, args.width, args.patience, args.stable_rounds)
    frame = env.render()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    import matplotlib.image
    matplotlib.image.imsave(out, frame)
    print(f"answer {result['answer']!r} ({'correct' if result['correct'] else 'wrong'}), "
          f"{result['tokens']:,} tokens; frame {frame.shape[1]}x{frame.shape[0]} saved to {out}")
    return out


if __name__ == "__main__":
    main()
