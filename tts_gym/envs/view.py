"""Read-only accessor of one episode's raw replay state, for code controllers.

RL agents see the fixed-shape, relabeling-invariant observation; controllers written as code
(baselines, LLM-written controllers, the AutoTTS adapter) read the raw state instead: revealed answer
ids per position, depths, flags, the episode's cost. :class:`EpisodeView` exposes exactly that and
nothing about the gold answer.

Answer ids are per-question intern ids: two positions hold the same answer iff their ids are equal.
:meth:`EpisodeView.answer_string` maps an id back to the exact revealed string.

Code that wants the RL observation of the episode under *other* settings (a trained agent played in
an env with more positions, or with its own training normalisers: :class:`tts_gym.rl.AgentPolicy`)
uses :meth:`EpisodeView.write_observation` and :meth:`EpisodeView.action_mask` with its own
:class:`~tts_gym.core.kernels.EnvParams`; both run the env's own kernels on this episode's state.
"""
from __future__ import annotations

import numpy as np

from tts_gym.core.kernels import FINISHED, OPENED, PRUNED, SAMPLED, EnvParams, EnvState, ReplayData
from tts_gym.core.observation import (NUM_GLOBAL_FEATURES, NUM_POSITION_FEATURES, ObsParams, confidence_table,
                                 make_scratch, observe_episode)


class EpisodeView:
    """Live, read-only view of episode ``e`` of a kernel state (no copies; values change as it steps).

    Attributes mirror :class:`tts_gym.core.kernels.EnvState` for one episode; arrays are length
    ``max_branches`` and meaningful for positions ``< cursor``.
    """

    __slots__ = ("_state", "_data", "_params", "_e", "_tables", "_state1", "_scratch", "live")

    def __init__(self, state: EnvState, data: ReplayData, params: EnvParams, e: int,
                 answer_tables, *, live: bool = False):
        # the view carries the store tensors without the gold ids: a policy holding it cannot score
        # itself (scoring reads the env's own ReplayData)
        data = data._replace(gold_ids=np.full_like(data.gold_ids, -1))
        self._state, self._data, self._params, self._e = state, data, params, int(e)
        self._tables = answer_tables  # indexed by the packed question index (all stores concatenated)
        self._state1 = None   # this episode as a batch of one (live slices), built on first use
        self._scratch = None  # observation kernel's counting scratch, idem
        # live: the tensors fill in as the episode is played (a model server answers each step), so
        # what a branch will say is not known ahead of the step that reveals it
        self.live = bool(live)

    # --- scalars ---------------------------------------------------------------------------------
    @property
    def max_branches(self) -> int:
        return int(self._params.max_branches)

    @property
    def branch_limit(self) -> int:
        """Positions this episode may open: ``min(max_branches, N_q)``."""
        return int(min(self._params.max_branches, self._data.num_branches[self._state.question[self._e]]))

    @property
    def fused(self) -> bool:
        """Whether the env runs fused: ``CONTINUE``/``BRANCH`` also reveal the new answer (no
        ``PROBE``)."""
        return bool(self._params.fused)

    @property
    def num_branches(self) -> int:
        """Branches stored for this question (``N_q``)."""
        return int(self._data.num_branches[self._state.question[self._e]])

    @property
    def probe_interval(self) -> int:
        return int(self._data.probe_interval[self._state.question[self._e]])

    @property
    def cursor(self) -> int:
        return int(self._state.cursor[self._e])

    @property
    def cost(self) -> int:
        return int(self._state.cost[self._e])

    @property
    def steps(self) -> int:
        return int(self._state.steps[self._e])

    @property
    def done(self) -> bool:
        return bool(self._state.done[self._e])

    # --- per-position arrays (read-only views) ----------------------------------------------------
    def _ro(self, arr) -> np.ndarray:
        v = arr[self._e]
        v = v.view()
        v.flags.writeable = False
        return v

    @property
    def latest(self) -> np.ndarray:
        """Latest revealed answer id per position (-1: none)."""
        return self._ro(self._state.latest)

    @property
    def depth(self) -> np.ndarray:
        """Intervals advanced per position (``K_b + 1`` once finished)."""
        return self._ro(self._state.depth)

    @property
    def flags(self) -> np.ndarray:
        return self._ro(self._state.flags)

    @property
    def ledger(self) -> np.ndarray:
        return self._ro(self._state.ledger)

    @property
    def stable(self) -> np.ndarray:
        return self._ro(self._state.stable)

    @property
    def reveal_time(self) -> np.ndarray:
        return self._ro(self._state.reveal_time)

    @property
    def finish_time(self) -> np.ndarray:
        return self._ro(self._state.finish_time)

    def is_opened(self, i: int) -> bool:
        return bool(self._state.flags[self._e, i] & OPENED)

    def is_finished(self, i: int) -> bool:
        return bool(self._state.flags[self._e, i] & FINISHED)

    def is_pruned(self, i: int) -> bool:
        return bool(self._state.flags[self._e, i] & PRUNED)

    def is_sampled(self, i: int) -> bool:
        return bool(self._state.flags[self._e, i] & SAMPLED)

    def action_mask(self, out: np.ndarray | None = None, *, params: EnvParams | None = None) -> np.ndarray:
        """Admissible actions of this episode now (bool, length ``4 + 4M``; one compiled call).

        ``params``: judge admissibility under these :class:`~tts_gym.core.kernels.EnvParams` (their
        ``max_branches`` ``M`` sets the action layout, their budget and ``fused`` the masking) instead
        of the env's own. ``out``: a bool buffer of length ``4 + 4M`` to write into."""
        from tts_gym.core.kernels import action_mask_episode
        p = self._params if params is None else params
        n = 4 + 4 * int(p.max_branches)
        if out is None:
            out = np.zeros(n, np.bool_)
        elif out.shape != (n,):
            raise ValueError(f"action mask buffer must have shape ({n},), got {out.shape}")
        action_mask_episode(self._state, self._data, p, self._e, out)
        return out

    def write_observation(self, oparams: ObsParams, gamma: float, positions: np.ndarray,
                          globals_: np.ndarray, *, params: EnvParams | None = None):
        """Write this episode's RL observation (:mod:`tts_gym.core.observation`) into caller buffers.

        Runs the env's observation kernel (:func:`tts_gym.core.observation.observe_episode`, a full write)
        on this episode's current state, with normalisers ``oparams``, cost weight ``gamma`` (the
        ``cost_weight`` global) and ``params`` (default: the env's own; only ``max_branches`` ``M``
        matters: it sets the number of rows and the ``available``/``limit`` features).
        ``positions``: float32 ``[M, NUM_POSITION_FEATURES]``; ``globals_``: float32
        ``[NUM_GLOBAL_FEATURES]``. With the env's own ``params``, ``oparams`` and ``gamma`` the result
        equals the observation the env returned for this state. The gold answer is not read.

        Not thread-safe for one view (a counting scratch is kept on the view). Returns
        ``(positions, globals_)``."""
        p = self._params if params is None else params
        M = int(p.max_branches)
        if (positions.shape != (M, NUM_POSITION_FEATURES) or positions.dtype != np.float32
                or globals_.shape != (NUM_GLOBAL_FEATURES,) or globals_.dtype != np.float32):
            raise ValueError(f"observation buffers must be float32 [{M}, {NUM_POSITION_FEATURES}] and "
                             f"[{NUM_GLOBAL_FEATURES}], got {positions.dtype} {positions.shape} and "
                             f"{globals_.dtype} {globals_.shape}")
        if self._state.cursor[self._e] > M:
            raise ValueError(f"the episode has opened {self.cursor} positions, more than max_branches={M}")
        st = self._state1
        if st is None:
            # the episode as a batch of one: slices of the live state arrays (no copies), so the
            # kernel writes row 0 of the caller's buffers
            e = self._e
            st = self._state1 = EnvState(*(getattr(self._state, f)[e:e + 1] for f in EnvState._fields))
            self._scratch = make_scratch(self._data)
        observe_episode(st, self._data, p, oparams, confidence_table(), float(gamma), 0,
                        positions[None], globals_[None], self._scratch, True)
        return positions, globals_

    @property
    def committed_answer(self) -> int:
        """Answer id committed by the terminating action (-1: none yet, or abstained)."""
        return int(self._state.answer[self._e])

    def answer_string(self, answer_id: int) -> str | None:
        """The exact string of a revealed answer id (``None`` for -1)."""
        if answer_id < 0:
            return None
        return self._tables[int(self._state.question[self._e])][int(answer_id)]

    def __repr__(self) -> str:
        return (f"EpisodeView(cursor={self.cursor}, cost={self.cost}, steps={self.steps}, "
                f"done={self.done})")
