"""tts_gym: test-time scaling of reasoning LLMs as a Gymnasium environment."""
from __future__ import annotations

from tts_gym.store import GOLD_ABSENT, PAD_ID, ReplayStore

__version__ = "0.1.0"

__all__ = ["ReplayStore", "PAD_ID", "GOLD_ABSENT", "__version__"]
