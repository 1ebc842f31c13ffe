"""LLM-driven discovery of test-time-scaling controllers, with a sandbox for untrusted code.

* :mod:`~tts_gym.discovery.sandbox` -- evaluate a controller behind an operating-system boundary
  (bubblewrap namespaces, seccomp, episode processes audited for cross-episode state, no gold answers, no API key,
  whole-sandbox limits) with a restricted namespace as defence in depth; costs and correctness are
  re-computed in the parent from the sandbox's action logs;
* :mod:`~tts_gym.discovery.controller_eval` -- controller files evaluated in-process
  (``tts-gym eval --controller --trusted``) and beta-sweeps sharded over sandboxed processes or Ray;
* :mod:`~tts_gym.discovery.reference_api` -- the AutoTTS reference's controller API
  (``LLMDesignedMethod``, its helpers and seed classes) for files in the reference's format;
* :mod:`~tts_gym.discovery.proposer` -- prompt building and the Anthropic Messages API client;
* :mod:`~tts_gym.discovery.explorer` -- the per-round explorer agent with tools (evaluate drafts,
  show traces, read the history, submit);
* :mod:`~tts_gym.discovery.history` -- per-round folders, atomic writes, resume;
* :mod:`~tts_gym.discovery.loop` -- the propose / evaluate / feed-back loop (``tts-gym discover``);
* :mod:`~tts_gym.discovery.prices` -- dollars per million tokens of the Claude models.

Controller files (``class Controller`` built as ``Controller(beta)``, or the reference's
``class OptimalController`` built as ``OptimalController(config={"beta": b})``, both with
``solve(question)``) are evaluated with :func:`evaluate_controller` (sandboxed), or, for code you
trust, loaded in-process as policies with :func:`load_controller_policy`.
"""
from __future__ import annotations

__all__ = ["load_controller_policy", "evaluate_controller", "SearchSet", "SandboxLimits",
           "DiscoveryConfig", "run_discovery", "CONTROLLER_INTERFACE"]


def __getattr__(name):  # lazy: importing the package must not pull numba or the SDK
    if name in ("load_controller_policy", "evaluate_controller", "SearchSet", "SandboxLimits"):
        from tts_gym.discovery import sandbox
        return getattr(sandbox, name)
    if name in ("DiscoveryConfig", "run_discovery"):
        from tts_gym.discovery import loop
        return getattr(loop, name)
    if name == "CONTROLLER_INTERFACE":
        from tts_gym.discovery.proposer import CONTROLLER_INTERFACE
        return CONTROLLER_INTERFACE
    raise AttributeError(f"module 'tts_gym.discovery' has no attribute {name!r}")
