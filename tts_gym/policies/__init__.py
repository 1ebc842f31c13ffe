"""Policies: one interface (:class:`~tts_gym.policies.base.Policy`) for baselines, code
controllers, AutoTTS controllers and SB3 agents; the compiled fast path lives in
:mod:`tts_gym.policies.compiled` (imported on demand: it compiles numba kernels)."""
from __future__ import annotations

from tts_gym.policies.autotts_adapter import AutoTTSPolicy, ReplayQuestion, run_autotts_controller
from tts_gym.policies.base import (Policy, PolicyError, RandomMaskedPolicy, SB3Policy,
                                   ScriptedPolicy, action_mask, answer_action)
from tts_gym.policies.coerce import as_policy
from tts_gym.policies.baselines import (POLICIES, AdaptiveConsistency, ConfidenceMomentum,
                                        EarlyStoppingSC, ParallelProbe, SelfConsistency,
                                        make_policy)

__all__ = [
    "Policy", "PolicyError", "ScriptedPolicy", "SB3Policy", "RandomMaskedPolicy", "action_mask",
    "answer_action", "as_policy", "AutoTTSPolicy", "ReplayQuestion", "run_autotts_controller",
    "POLICIES", "make_policy", "SelfConsistency", "AdaptiveConsistency", "EarlyStoppingSC",
    "ParallelProbe", "ConfidenceMomentum",
]
