"""Running policies live against an OpenAI-compatible completions server (``tts-gym run``).

The policy objects that run on replay (baselines, AutoTTS controllers, trained agents) act through
the same :class:`~tts_gym.envs.view.EpisodeView`; :class:`LiveEpisode` backs it with requests to a
server instead of a stored trajectory, charging tokens exactly as the replay does, and
:func:`run` plays a list of questions, reports answers and costs, and records what it sampled as a
replay store::

    from tts_gym.online import Server, run
    res = run("cmc", "questions.jsonl", Server("http://localhost:8000", "Qwen/Qwen3-1.7B"),
              params={"beta": 0.5}, interval=500, record="live.h5")
    print(res.format_summary())

Needs ``pip install 'tts_gym[collect]'`` (aiohttp).
"""
from __future__ import annotations

from tts_gym.online.episode import LiveActionError, LiveEpisode
from tts_gym.online.runner import (RECORD_MODES, LiveRunError, QuestionResult, RunResult, Server, as_questions,
                                   resolve_policy, run, run_async)

__all__ = ["LiveActionError", "LiveEpisode", "LiveRunError", "QuestionResult", "RECORD_MODES", "RunResult",
           "Server", "as_questions", "resolve_policy", "run", "run_async"]
