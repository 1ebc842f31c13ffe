"""tts_gym: test-time scaling of reasoning LLMs as a Gymnasium environment."""
from __future__ import annotations

from tts_gym.store import GOLD_ABSENT, PAD_ID, ReplayStore

__version__ = "0.1.0"

__all__ = ["ReplayStore", "PAD_ID", "GOLD_ABSENT", "__version__"]

# Replay-store I/O and data (issue 2). h5py is imported only when an HDF5 file is opened.
from tts_gym.io import StoreFormatError, StoreNotFoundError, list_stores, load_stores, open_store, save_stores  # noqa: E402
from tts_gym.synthetic import synthesize  # noqa: E402
from tts_gym.datasets import resolve_store  # noqa: E402

__all__ += ["StoreFormatError", "StoreNotFoundError", "open_store", "list_stores", "load_stores", "save_stores",
            "synthesize", "resolve_store"]

# Policies and the pure-Python evaluation loop (issue 4).
from tts_gym.policies import (Policy, RandomMaskedPolicy, SB3Policy, ScriptedPolicy,  # noqa: E402
                              AutoTTSPolicy, make_policy, run_autotts_controller)
from tts_gym.rollout import evaluate_reference_python, run_episodes  # noqa: E402

__all__ += ["Policy", "ScriptedPolicy", "SB3Policy", "RandomMaskedPolicy", "AutoTTSPolicy",
            "make_policy", "run_autotts_controller", "run_episodes", "evaluate_reference_python"]

# Evaluation (issue 5): tables with CIs, frontiers, oracle bounds, plots, Ray backend (lazy imports).
from tts_gym.evaluation.evaluate import Sweep, evaluate  # noqa: E402

__all__ += ["evaluate", "Sweep"]

# Gymnasium environments (issue 3): `tts_gym/Replay-v0`, single and natively batched.
import gymnasium as _gym  # noqa: E402

if "tts_gym/Replay-v0" not in _gym.registry:
    _gym.register(id="tts_gym/Replay-v0", entry_point="tts_gym.env:TTSReplayEnv",
                  vector_entry_point="tts_gym.vector:TTSReplayVectorEnv")
from tts_gym.env import TTSReplayEnv  # noqa: E402
from tts_gym.vector import TTSReplayVectorEnv  # noqa: E402

__all__ += ["TTSReplayEnv", "TTSReplayVectorEnv"]

# Answer extraction / merging and trajectory collection (issue 8); aiohttp is imported only when collecting.
from tts_gym.answers import ERR, extract_answer, extract_boxed, merge_equivalent_answers  # noqa: E402

__all__ += ["ERR", "extract_answer", "extract_boxed", "merge_equivalent_answers"]

# Reference evaluation protocol on the compiled baselines; voting primitives (issue 4, compiled half).
from tts_gym.protocol import ProtocolBatch, ProtocolResult, evaluate_compiled, evaluate_grid_compiled  # noqa: E402
from tts_gym.policies.common import cmc_schedule  # noqa: E402
from tts_gym.voting import conf, conf_table, majority, top_two  # noqa: E402

__all__ += ["ProtocolBatch", "ProtocolResult", "evaluate_compiled", "evaluate_grid_compiled",
            "cmc_schedule", "conf", "conf_table", "majority", "top_two"]
