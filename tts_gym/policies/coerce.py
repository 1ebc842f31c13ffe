"""Any object the evaluators accept, as a :class:`~tts_gym.policies.base.Policy`.

It knows every kind (policies, AutoTTS controllers, stable-baselines3 models), so it sits above
both :mod:`tts_gym.policies.base` and :mod:`tts_gym.policies.autotts_adapter`, which builds on base.
"""
from __future__ import annotations

from tts_gym.policies.autotts_adapter import AutoTTSPolicy
from tts_gym.policies.base import Policy, SB3Policy

__all__ = ["as_policy"]


def as_policy(obj, *, keep_controllers: bool = False):
    """Coerce ``obj`` into something the evaluators can play.

    * a :class:`Policy` (or any object with ``reset`` and ``act``) is returned unchanged;
    * an AutoTTS-style controller (``solve(question)``) becomes an
      :class:`~tts_gym.policies.autotts_adapter.AutoTTSPolicy`, or is returned unchanged with
      ``keep_controllers=True`` (the Python loop then plays it without a worker thread);
    * a stable-baselines3 model (``predict`` and ``policy``) becomes an :class:`SB3Policy`.
    """
    if isinstance(obj, Policy) or (hasattr(obj, "act") and hasattr(obj, "reset")):
        return obj
    if hasattr(obj, "solve"):
        if keep_controllers:
            return obj
        return AutoTTSPolicy(obj)
    if hasattr(obj, "predict") and hasattr(obj, "policy"):
        return SB3Policy(obj)
    raise TypeError(f"cannot use {type(obj).__name__} as a policy: expected a tts_gym Policy "
                    f"(reset/act), an AutoTTS controller (solve) or a stable-baselines3 model")
