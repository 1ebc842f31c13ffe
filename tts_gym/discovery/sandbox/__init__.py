"""Untrusted (LLM-written) controllers, evaluated behind an operating-system boundary.

Layers, outermost first:

* :mod:`~tts_gym.discovery.sandbox.confinement` -- bubblewrap: new user/pid/net/mount/ipc/uts
  namespaces, uid 65534 without capabilities, the runtime read-only and nothing else of the host,
  whole-sandbox limits; no silent downgrade (:class:`SandboxUnavailable` unless
  ``allow_unsandboxed``);
* :mod:`~tts_gym.discovery.sandbox.seccomp` -- a whole-sandbox and a per-episode seccomp filter
  (classic BPF generated here);
* :mod:`~tts_gym.discovery.sandbox.worker` -- the worker inside, which forks episode processes
  from a warm, clean state (a batch of episodes each, with fresh controller globals per episode,
  and a random sample re-run alone and compared; or one fresh process per episode), with Landlock
  as an extra layer where the kernel has it, and an audit hook;
* :mod:`~tts_gym.discovery.sandbox.namespace` / :mod:`~tts_gym.discovery.sandbox.interface` -- the
  Python-level restricted namespace (defence in depth) and the controller interface (import
  allow-list, controller convention, question object);
* :mod:`~tts_gym.discovery.sandbox.frames` -- the output channel, parsed defensively;
* :mod:`~tts_gym.discovery.sandbox.runner` / :mod:`~tts_gym.discovery.sandbox.evaluation` -- one
  job in the parent, and the evaluation over a beta sweep with every action log re-played by the
  compiled kernels in the parent (scores never come from the sandbox);
* :mod:`~tts_gym.discovery.sandbox.inprocess` -- controller files you trust, in-process.
"""
from __future__ import annotations

_EXPORTS = {
    "SandboxLimits": "runner", "JobResult": "runner", "run_job": "runner",
    "SearchSet": "evaluation", "ControllerEvaluation": "evaluation",
    "redact_store": "evaluation", "evaluate_controller": "evaluation",
    "replay_logs": "evaluation", "run_unrestricted_probe": "evaluation",
    "DEFAULT_BETAS": "evaluation",
    "load_controller_policy": "inprocess", "FileController": "inprocess",
    "check_controller_source": "inprocess",
    "SandboxUnavailable": "confinement", "child_environment": "confinement",
    "require": "confinement",
    "ControllerRejected": "interface", "check_source": "namespace",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):  # lazy: the worker imports only what it needs
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'tts_gym.discovery.sandbox' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(f"tts_gym.discovery.sandbox.{mod}"), name)
