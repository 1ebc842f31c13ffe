"""The Ray backend gives exactly the local backend's tables (local Ray instance, 2 CPUs)."""
from __future__ import annotations

import numpy as np

from conftest import SHARED_REPLAY_DIR, shared_store
from tts_gym.evaluation.evaluate import Sweep, evaluate


def test_ray_equals_local(ray_local):
    stores = [shared_store("Qwen3-1.7B", "aime24"), shared_store("Qwen3-8B", "hmmt25")]
    grid = [Sweep("sc", n=[4]), Sweep("parallel_probe", num_chains=[8]), Sweep("cmc", beta=[0.0, 0.5])]
    kw = dict(seeds=range(6), progress=False)
    local = evaluate(grid, stores, **kw)
    remote = evaluate(grid, stores, backend="ray", replicate_block=2, **kw)
    assert remote.backend == "ray"
    assert local.rows == remote.rows            # identical tables, floats included
    for key, o in local.outcomes.items():
        r = remote.outcomes[key]
        for k in ("answer", "cost", "correct", "steps"):
            np.testing.assert_array_equal(getattr(o, k), getattr(r, k))
    assert local.to_markdown() == remote.to_markdown()


def test_ray_subsample_protocol(ray_local):
    store = shared_store("Qwen3-0.6B", "aime25")
    kw = dict(protocol="subsample", n=16, replicates=4, seed=1, progress=False)
    local = evaluate(Sweep("asc", max_samples=[8, 16]), store, **kw)
    remote = evaluate(Sweep("asc", max_samples=[8, 16]), store, backend="ray", replicate_block=3, **kw)
    assert local.rows == remote.rows


def test_eval_cli_ray_backend(ray_local, capsys):
    import json

    from tts_gym.cli import main
    args = ["eval", "--policy", "pp", "--param", "num_chains=8", "--data",
            str(SHARED_REPLAY_DIR), "--model", "Qwen3-4B",
            "--benchmark", "aime25", "--seeds", "4", "--json"]
    assert main(args) == 0
    local = json.loads(capsys.readouterr().out)
    assert main(args + ["--backend", "ray"]) == 0
    remote = json.loads(capsys.readouterr().out)
    assert remote["backend"] == "ray"
    for k in ("sumC", "sumTT", "accuracy", "avg_tokens", "tokens_int"):
        assert local[k] == remote[k]
