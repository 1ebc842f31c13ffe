"""tts_gym: test-time scaling of reasoning LLMs as a Gymnasium environment.

The package is organised by stage, data flowing one way::

    data/        stores: ReplayStore, HDF5, AutoTTS import, synthetic, fetch, the one resolver
    core/        compiled kernels over explicit state: actions, transition, observation, voting
    envs/        TTSReplayEnv, TTSReplayVectorEnv, episode view, rendering, SB3 adapter
    policies/    the policy interface, the registry of built-in policies, Python and compiled baselines
    evaluation/  episode sets, runners, results with confidence intervals, frontiers, oracle bounds
    reports/     tables and plots
    discovery/   LLM-driven controller search in a sandbox
    collect/     building stores from a live OpenAI-compatible server
    rl/          stable-baselines3 training: networks, trained agents as policies

The names below are imported on first use (PEP 562), so ``import tts_gym`` stays cheap; importing it
registers ``tts_gym/Replay-v0`` with Gymnasium.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.2.0"

_EXPORTS = {
    "ReplayStore": "tts_gym.data.store",
    "open_store": "tts_gym.data.hdf5",
    "load_stores": "tts_gym.data.hdf5",
    "save_stores": "tts_gym.data.hdf5",
    "synthesize": "tts_gym.data.synthetic",
    "resolve_stores": "tts_gym.data.resolve",
    "TTSReplayEnv": "tts_gym.envs.env",
    "TTSReplayVectorEnv": "tts_gym.envs.vector",
    "Policy": "tts_gym.policies.base",
    "make_policy": "tts_gym.policies.baselines",
    "evaluate": "tts_gym.evaluation.evaluate",
    "Sweep": "tts_gym.evaluation.evaluate",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def _register(gymnasium) -> None:
    if "tts_gym/Replay-v0" not in gymnasium.registry:
        gymnasium.register(id="tts_gym/Replay-v0", entry_point="tts_gym.envs.env:TTSReplayEnv",
                           vector_entry_point="tts_gym.envs.vector:TTSReplayVectorEnv")


class _RegisterOnGymnasiumImport(importlib.abc.MetaPathFinder):
    """Registers the env id as soon as gymnasium is imported, so that ``import tts_gym`` does not
    pay for importing gymnasium (about 70 modules) when only the data or evaluation side is used."""

    def find_spec(self, name, path=None, target=None):
        if name != "gymnasium":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_register(module):
            exec_module(module)
            _register(module)

        spec.loader.exec_module = exec_and_register
        return spec


if "gymnasium" in sys.modules:
    _register(sys.modules["gymnasium"])
else:
    sys.meta_path.insert(0, _RegisterOnGymnasiumImport())


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tts_gym' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
