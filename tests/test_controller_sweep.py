"""Beta-sweeps of controller files: sharded sandbox jobs (local processes, Ray) and the in-process
path give the same per-episode results; the fast question object agrees with the env."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_store
from reference_rounds import method_path
from tts_gym.discovery.controller_eval import (ControllerCode, betas_per_job, evaluate_in_process,
                                               sweep_controller)
from tts_gym.discovery.sandbox import SandboxLimits, SearchSet

PROBING = '''
from collections import Counter


class Controller:
    """Probe 2 + 6*beta branches in lock-step until their latest answers agree 3 times."""

    def __init__(self, beta):
        self.width = 2 + round(6 * beta)

    def solve(self, question):
        open_ = []
        for _ in range(self.width):
            out = question.probe_new()
            if out is None:
                break
            answer, index, finished = out
            open_.append([index, answer, finished])
        streak, last = 0, None
        while any(not f for _, _, f in open_):
            for br in open_:
                if not br[2]:
                    br[1], br[2] = question.probe_more(br[0])
            winner = Counter(b[1] for b in open_).most_common(1)[0][0]
            streak = streak + 1 if winner == last else 0
            last = winner
            if streak >= 3:
                break
        return last if last is not None else (open_[0][1] if open_ else None)
'''

LIMITS = SandboxLimits(timeout_s=300, episode_timeout_s=10)


def _stores():
    return [shared_store("Qwen3-1.7B", "aime24"), shared_store("Qwen3-8B", "aime24")]


def test_betas_per_job():
    assert betas_per_job(11, 4, 2) == 11
    assert betas_per_job(11, 1, 2) == 3
    assert betas_per_job(2, 4, 16) == 1
    assert betas_per_job(5, 1, 1) == 3


@pytest.mark.parametrize("source", ["probing", "r0004"])
def test_sharded_sweep_equals_in_process(source):
    code = PROBING if source == "probing" else method_path(4).read_text()
    stores, seeds, betas = _stores(), [0, 5, 9], [0.0, 0.3, 0.6, 1.0]
    search = SearchSet(stores, seeds)
    ev = sweep_controller(code, search, betas, LIMITS, workers=2)
    assert ev.ok, (ev.error_kind, ev.error)
    ref = evaluate_in_process(ControllerCode(code), stores, betas, seeds)
    for p in ev.per_beta:
        b = p["beta"]
        for store, r in zip(stores, ref.results[b]):
            st = p["stores"][store.name]
            assert (st["correct"], st["total_tokens"]) == (r.sumC, r.sumTT), (source, b, store.name)
        sl = np.concatenate([np.asarray(r.costs).reshape(-1) for r in ref.results[b]])
        np.testing.assert_array_equal(ev.episodes[b]["cost"], sl)


def test_in_process_equals_the_env_loop():
    """The in-process path (ReferenceQuestion + the kernels' re-play) gives the env loop's results
    (AutoTTSPolicy through TTSReplayEnv) episode by episode."""
    from tts_gym.discovery.sandbox import load_controller_policy
    from tts_gym.evaluation.rollout import evaluate_reference_python
    import tempfile
    from pathlib import Path
    store = shared_store("Qwen3-4B", "aime24")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "probing.py"
        path.write_text(PROBING)
        fast = evaluate_in_process(ControllerCode.from_file(path), [store], [0.5], range(3))
        env_res = evaluate_reference_python(store, load_controller_policy(path, 0.5), range(3))
    (r,) = fast.results[0.5]
    for k in ("answers", "costs", "correct"):
        np.testing.assert_array_equal(getattr(r, k), getattr(env_res, k), k)


def test_ray_sweep_equals_local(ray_local):
    stores, seeds, betas = _stores(), [1, 2], [0.2, 0.8]
    search = SearchSet(stores, seeds)
    local = sweep_controller(PROBING, search, betas, LIMITS, workers=2)
    remote = sweep_controller(PROBING, search, betas, LIMITS, workers=2, backend="ray")
    assert local.ok and remote.ok, (remote.error_kind, remote.error)
    assert local.per_beta == remote.per_beta
    for b in betas:
        for k in ("cost", "answer", "correct"):
            np.testing.assert_array_equal(local.episodes[b][k], remote.episodes[b][k])
