"""Ray backend of :func:`tts_gym.evaluate`: a sweep (stores x configurations x replicate blocks) as
Ray tasks.

* Each store and its episode set are put into Ray's object store **once** (``ray.put``); tasks receive
  the references and Ray hands every worker the shared, zero-copy numpy buffers -- nothing is re-read
  from disk or re-sent per task.
* A task is :func:`tts_gym.evaluation.evaluate.run_task` -- the very function the local backend runs
  -- on one (store, configuration, replicate block); results are assembled in task order by the same
  code, so tables are identical to the local backend's (``tests/test_ray_backend.py``).
* ``address=None`` starts (or reuses) a local Ray instance (``num_cpus`` CPUs, default all);
  ``address="auto"`` or ``"ray://host:10001"`` joins an existing cluster. The package must be
  importable on the workers (install it there, or use a Ray runtime environment).
* Inside a task, numba runs ``workers`` threads (default 1: Ray already runs one task per CPU).
"""
from __future__ import annotations

from typing import Sequence

_REMOTE = None


def _remote_fn():
    global _REMOTE
    if _REMOTE is None:
        import ray

        @ray.remote(num_cpus=1, max_retries=1)
        def _evaluate_task(store, episodes, configs, task, workers):
            from tts_gym.evaluation.evaluate import run_task
            return run_task(store, episodes, configs, task, workers)

        _REMOTE = _evaluate_task
    return _REMOTE


def ensure_ray(address: str | None = None, num_cpus: int | None = None, **init_kwargs):
    """Initialise Ray if needed (local instance, or join ``address``); returns the ``ray`` module."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - ray is an optional dependency
        raise ImportError("the Ray backend needs ray: pip install 'tts_gym[distributed]'") from exc
    if not ray.is_initialized():
        kw = dict(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
        kw.update(init_kwargs)
        if address:
            ray.init(address=address, **kw)
        else:
            ray.init(num_cpus=num_cpus, **kw)
    return ray


def run_ray(stores, configs, episodes, tasks: Sequence, *, address: str | None = None,
            num_cpus: int | None = None, workers: int | None = 1, progress=None) -> list[dict]:
    """Execute ``tasks`` as Ray tasks; returns their results in task order."""
    from tts_gym.evaluation.evaluate import progress_bar

    ray = ensure_ray(address, num_cpus)
    fn = _remote_fn()
    store_refs = [ray.put(s) for s in stores]
    ep_refs = {s.name: ray.put(episodes[s.name]) for s in stores}
    cfg_ref = ray.put(list(configs))
    w = 1 if workers is None else int(workers)
    refs = [fn.remote(store_refs[t.store], ep_refs[stores[t.store].name], cfg_ref, t, w) for t in tasks]
    index = {r: i for i, r in enumerate(refs)}
    results: list = [None] * len(refs)
    sizes = [t.size * episodes[stores[t.store].name].episodes_per_replicate for t in tasks]
    pending = list(refs)
    with progress_bar(sum(sizes), "evaluating (ray)", progress) as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for r in done:
                i = index[r]
                results[i] = ray.get(r)
                bar.update(sizes[i])
    return results
