"""Natively batched ``tts_gym/Replay-v0``: ``E`` replay episodes stepped in one compiled call.

``gymnasium.make_vec("tts_gym/Replay-v0", num_envs=E, vectorization_mode="vector_entry_point")``
builds a :class:`TTSReplayVectorEnv`. Each :meth:`~TTSReplayVectorEnv.step` runs one numba kernel
that checks, steps, rewards and observes all ``E`` episodes over batch-first state arrays
(:mod:`tts_gym.core.kernels`, :mod:`tts_gym.core.observation`); episodes that ended are redrawn with vectorised
numpy (precomputed reference permutations), never with a per-env Python loop.

Semantics per sub-environment are those of :class:`tts_gym.envs.env.TTSReplayEnv` (same arguments, same
rewards and observations, the same infos batched), with these vector conventions:

* **Autoreset** (``metadata["autoreset_mode"]``, chosen with ``autoreset_mode=``):

  - ``AutoresetMode.NEXT_STEP`` (default, gymnasium's default): the step that ends an episode returns
    its final observation; the *next* step resets that sub-env, ignores its action and returns the
    first observation of the new episode with reward 0 and ``terminated = truncated = False``.
    Until then its row of :meth:`action_masks` is all ``True`` (any action is ignored).
  - ``AutoresetMode.SAME_STEP`` (stable-baselines3's own convention): the step that
    ends an episode resets it at once and returns the new episode's first observation;
    the final observation is in ``infos["final_obs"]`` (batched arrays, rows valid where
    ``infos["_final_obs"]``) and the final step's info in ``infos["final_info"]``.
  - ``AutoresetMode.DISABLED``: no autoreset; reset ended sub-envs with
    ``reset(options={"reset_mask": mask})``; stepping an ended one raises. The SB3 adapter
    (:class:`tts_gym.envs.sb3.SB3VecEnv`) uses this mode and redraws ended episodes itself.

* **Infos** are dicts of arrays over the batch: ``action_mask`` (``bool[E, A]``, as under the
  ``"sync"`` and ``"async"`` modes), ``position``, ``revealed_id``, ``finished``, ``charge``,
  ``cost``, ``cursor``, ``cost_weight``, ``invalid_action`` on every step; when a sub-env ended:
  ``correct``, ``answer_id``, ``answer`` (object array of strings) and ``tokens``, each with its
  gymnasium ``_key`` mask. The strings of the single env's ``revealed`` and ``error`` are left out
  (``revealed_id`` and ``invalid_action`` carry them), and reset infos hold ``question``,
  ``shuffle_seed`` and ``cost_weight`` (after an autoreset: :attr:`~TTSReplayVectorEnv.questions`,
  :attr:`~TTSReplayVectorEnv.shuffle_seeds`). ``mask_in_info=False`` drops ``action_mask``
  (one ``bool[E, A]`` mask computation and copy per step less) for consumers that call
  :meth:`~TTSReplayVectorEnv.action_masks` themselves or use none.
* **Invalid actions**: by default (``invalid_action="penalize"``) inadmissible actions are no-ops
  rewarded ``-invalid_action_penalty``, flagged in ``infos["invalid_action"]``;
  ``invalid_action="raise"`` checks the whole batch before stepping anything and raises a
  ``ValueError`` naming the sub-env, the action and the rule. Out-of-space ids always raise, and
  actions that are not integers raise a ``TypeError`` (they are never rounded).
* **Step limit**: ``max_episode_steps=N`` (what ``gymnasium.make_vec(..., max_episode_steps=N)``
  passes; also accepted as ``step_limit``) truncates exactly as the single env does under
  ``gymnasium.make(..., max_episode_steps=N)``: same step, reward, infos and observations.
* **Pickling**: the env pickles and deep-copies; the compiled handles (and the worker pool of
  ``num_threads > 1``) are rebuilt on load.
* **Seeding**: one generator for the batch (``reset(seed=s)``); ``reset(options=...)`` accepts
  ``question``, ``shuffle_seed``, ``permutation``, ``cost_weight`` (scalars or per-env arrays) and
  ``reset_mask``.
* **Copies**: observations, rewards and infos are fresh arrays (``copy=True``). With ``copy=False``
  the observation arrays are the env's internal buffers, overwritten by the next ``step``/``reset``
  (faster for consumers that copy anyway).
* **Rendering**: ``render()`` returns a 1-tuple with the frame of sub-env 0.
* **Threads**: ``num_threads=T > 1`` checks all actions first (on the calling thread), then steps ``T``
  contiguous slices of the batch concurrently (the kernel releases the GIL; one persistent worker
  pool per env, each slice with its own scratch buffer). Results are identical to ``num_threads=1``
  (the default, one compiled call per step); worth it for large batches on idle cores.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba as nb
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from llvmlite import ir
from numba.core import cgutils
from numba.core import types as nbt
from numba.core.extending import intrinsic
from numba.experimental import structref

from tts_gym.core.actions import NUM_GLOBAL_ACTIONS, describe, num_actions
from tts_gym.envs.env import (KERNEL_MODULES, RebuiltOnUnpickling, ReplaySetup, _check_step_limit, compiled_entry,
                              refresh_numba_cache)
from tts_gym.core.kernels import (ERR_BAD_ACTION, ERR_DONE, ERROR_MESSAGES, OK, action_mask_batch,
                                  check_action, env_step, make_state, reset_batch)
from tts_gym.core.observation import make_buffers, make_scratch, observe_episode, observe_subset

__all__ = ["TTSReplayVectorEnv", "vec_step"]

_INT64 = np.dtype(np.int64)


PREFETCH_DISTANCE = 16
"""vec_step prefetches the state/observation rows of episode ``e + 16`` while it steps episode ``e``
(the batch's state is far larger than the caches; ~25 % faster at E = 8192, M = 64)."""


def _make_prefetch(rw: int):
    @intrinsic
    def prefetch(typingctx, arr, i, j):
        sig = nbt.void(arr, i, j)

        def codegen(context, builder, signature, args):
            aryty = signature.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1], args[2]],
                                           wraparound=False)
            i8p = builder.bitcast(ptr, ir.IntType(8).as_pointer())
            i32 = ir.IntType(32)
            fnty = ir.FunctionType(ir.VoidType(), [i8p.type, i32, i32, i32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
            builder.call(fn, [i8p, i32(rw), i32(3), i32(1)])
            return context.get_dummy_value()

        return sig, codegen
    return prefetch


# hint the CPU to load the cache line of arr[i, j] (LLVM llvm.prefetch; no effect on results)
_prefetch_read = _make_prefetch(0)
_prefetch_write = _make_prefetch(1)


@nb.njit(cache=True, nogil=True, _nrt=False, inline="always")
def _prefetch_episode(state, pos, glob, f):
    _prefetch_read(state.flags, f, 0)
    _prefetch_read(state.depth, f, 0)
    _prefetch_read(state.latest, f, 0)
    _prefetch_read(state.revealed_depth, f, 0)
    _prefetch_read(state.stable, f, 0)
    _prefetch_read(state.reveal_time, f, 0)
    _prefetch_read(state.ledger, f, 0)
    _prefetch_read(state.order, f, 0)
    n = state.cursor[f] + 1
    if n > pos.shape[1]:
        n = pos.shape[1]
    for r in range(n):
        _prefetch_write(pos[f], r, 0)
    _prefetch_write(glob, f, 0)


# rows of the per-step output blocks (one copy per block and step instead of one per field)
I_POSITION, I_REVEALED, I_CHARGE, I_COST, I_CURSOR, I_ANSWER = range(6)
F_TERMINATED, F_TRUNCATED, F_DONE, F_FINISHED, F_CORRECT, F_INVALID = range(6)


@nb.njit(cache=True, nogil=True, _nrt=False)
def vec_check(state, data, params, actions, skip, raise_mode, e0, e1):
    """Check the actions of episodes ``e0 <= e < e1`` (skipped ones excluded) without changing anything.

    Returns ``(bad, code)``: ``bad`` the index of the first episode whose action is out of the space,
    addresses an ended episode, or (``raise_mode``) is inadmissible, with its error code; ``(-1, OK)``
    if all pass."""
    M = params.max_branches
    n_actions = NUM_GLOBAL_ACTIONS + 4 * M
    for e in range(e0, e1):
        if skip[e]:
            continue
        if raise_mode:
            c = check_action(state, data, params, e, actions[e])
        elif actions[e] < 0 or actions[e] >= n_actions:
            c = ERR_BAD_ACTION
        else:
            c = ERR_DONE if state.done[e] else OK
        if c != OK:
            return e, c
    return -1, OK


@nb.njit(cache=True, nogil=True, _nrt=False)
def vec_step_range(state, data, params, oparams, conf, gammas, pos, glob, scratch, actions, skip,
                   penalty, dense, inv_scale, max_steps, elapsed, codes, ints, flags, rewards, e0, e1):
    """Step, reward and observe episodes ``e0 <= e < e1`` whose ``skip`` flag is off (their actions
    already checked by :func:`vec_check`); returns ``(ended, invalid)`` over the range.

    Touches only rows ``e0 .. e1-1`` of the state and outputs, plus ``scratch`` (left zeroed): disjoint
    ranges with their own scratch buffers may run concurrently (the kernel releases the GIL)."""
    n_done = 0
    n_invalid = 0
    for e in range(e0, e1):
        if e + PREFETCH_DISTANCE < e1:
            _prefetch_episode(state, pos, glob, e + PREFETCH_DISTANCE)
        if skip[e]:
            codes[e] = 0
            rewards[e] = 0.0
            ints[I_POSITION, e] = -1
            ints[I_REVEALED, e] = -1
            ints[I_CHARGE, e] = 0
            ints[I_COST, e] = 0
            ints[I_CURSOR, e] = 0
            ints[I_ANSWER, e] = -1
            for k in range(flags.shape[0]):
                flags[k, e] = False
            continue
        c, ch, p, rv, fin, done, tr, corr, r = env_step(state, data, params, e, actions[e],
                                                        gammas[e], dense, inv_scale, max_steps,
                                                        penalty, elapsed)
        if c != OK:
            n_invalid += 1
        rewards[e] = r
        ints[I_POSITION, e] = p
        ints[I_REVEALED, e] = rv
        ints[I_CHARGE, e] = ch
        ints[I_COST, e] = state.cost[e]
        ints[I_CURSOR, e] = state.cursor[e]
        ints[I_ANSWER, e] = state.answer[e] if done else -1
        flags[F_TERMINATED, e] = done
        flags[F_TRUNCATED, e] = tr
        flags[F_DONE, e] = done or tr
        flags[F_FINISHED, e] = fin
        flags[F_CORRECT, e] = corr
        flags[F_INVALID, e] = c != OK
        if done or tr:
            n_done += 1
        if c == OK:
            observe_episode(state, data, params, oparams, conf, gammas[e], e, pos, glob, scratch,
                            False)
    return n_done, n_invalid


@nb.njit(cache=True, nogil=True, _nrt=False)
def vec_step(state, data, params, oparams, conf, gammas, pos, glob, scratch, actions, skip,
             raise_mode, penalty, dense, inv_scale, max_steps, elapsed, codes, ints, flags, rewards):
    """Check, step, reward and observe every episode whose ``skip`` flag is off.

    Before anything changes, every action is checked; returns ``(bad, 0, 0)`` with ``bad`` the index
    of the first episode whose action is out of the space, addresses an ended episode, or
    (``raise_mode``) is inadmissible -- then nothing was stepped -- else ``(-1, ended, invalid)``:
    the numbers of episodes that ended and of inadmissible actions (no-ops rewarded ``-penalty``).
    Rewards: dense ``-gamma * charge * inv_scale`` per step, plus ``1{correct}`` at the end; sparse
    ``1{correct} - gamma * cost * inv_scale`` at the end (``-gamma * cost * inv_scale`` on truncation
    without termination; as with Gymnasium's ``TimeLimit``, the ``max_steps``-th step is truncated
    even when it also terminates).
    Per-episode outputs go to ``ints[I_*, e]`` (int64), ``flags[F_*, e]`` (bool) and ``rewards[e]``;
    skipped episodes get neutral values. (= :func:`vec_check` then :func:`vec_step_range` over all.)"""
    E = actions.shape[0]
    bad, c = vec_check(state, data, params, actions, skip, raise_mode, 0, E)
    if bad >= 0:
        codes[bad] = c
        return bad, 0, 0
    n_done, n_invalid = vec_step_range(state, data, params, oparams, conf, gammas, pos, glob, scratch,
                                       actions, skip, penalty, dense, inv_scale, max_steps, elapsed,
                                       codes, ints, flags, rewards, 0, E)
    return -1, n_done, n_invalid


# The batch's kernel state and buffers live in one StructRef: numba's per-call typing of the
# EnvState/ReplayData NamedTuples costs tens of microseconds (typeof(EnvState) ~0.7 ms uncached),
# passing one StructRef through a precompiled entry point costs well under one.

@structref.register
class _VecCoreType(nbt.StructRef):
    def preprocess_fields(self, fields):
        return tuple((name, nbt.unliteral(typ)) for name, typ in fields)


class _VecCore(structref.StructRefProxy):
    """Opaque handle on a vector env's kernel state and buffers."""


_VEC_FIELDS = ["state", "data", "params", "oparams", "conf", "gammas", "pos", "glob", "scratch", "mask",
               "elapsed", "codes", "ints", "flags", "rewards"]
structref.define_proxy(_VecCore, _VecCoreType, _VEC_FIELDS)


@nb.njit(cache=True)
def _make_vec_core(state, data, params, oparams, conf, gammas, pos, glob, scratch, mask, elapsed,
                   codes, ints, flags, rewards):
    return _VecCore(state, data, params, oparams, conf, gammas, pos, glob, scratch, mask, elapsed,
                    codes, ints, flags, rewards)


@nb.njit(cache=True, nogil=True)
def _vec_core_step(core, actions, skip, raise_mode, penalty, dense, inv_scale, max_steps):
    return vec_step(core.state, core.data, core.params, core.oparams, core.conf, core.gammas,
                    core.pos, core.glob, core.scratch, actions, skip, raise_mode, penalty, dense,
                    inv_scale, max_steps, core.elapsed, core.codes, core.ints, core.flags,
                    core.rewards)


@nb.njit(cache=True, nogil=True)
def _vec_core_check(core, actions, skip, raise_mode):
    """Threaded step, phase 1: check every action (records the first bad one's code)."""
    bad, c = vec_check(core.state, core.data, core.params, actions, skip, raise_mode, 0, actions.shape[0])
    if bad >= 0:
        core.codes[bad] = c
    return bad


@nb.njit(cache=True, nogil=True)
def _vec_core_step_range(core, scratch, actions, skip, penalty, dense, inv_scale, max_steps, e0, e1):
    """Threaded step, phase 2: step episodes ``[e0, e1)`` with their own ``scratch`` (GIL released)."""
    return vec_step_range(core.state, core.data, core.params, core.oparams, core.conf, core.gammas,
                          core.pos, core.glob, scratch, actions, skip, penalty, dense, inv_scale,
                          max_steps, core.elapsed, core.codes, core.ints, core.flags, core.rewards,
                          e0, e1)


@nb.njit(cache=True, nogil=True)
def _vec_core_reset(core, questions, perms, ids):
    """Start episodes ``questions[j]`` with orders ``perms[j]`` in sub-envs ``ids[j]`` and observe them
    (the caller has set their ``gammas``)."""
    reset_batch(core.state, questions, perms, ids)
    observe_subset(core.state, core.data, core.params, core.oparams, core.conf, core.gammas, core.pos,
                   core.glob, core.scratch, ids, True)


@nb.njit(cache=True, nogil=True)
def _vec_core_mask(core):
    action_mask_batch(core.state, core.data, core.params, core.mask)


refresh_numba_cache([vec_check, vec_step_range, vec_step, _make_vec_core, _vec_core_step,
                     _vec_core_check, _vec_core_step_range, _vec_core_reset, _vec_core_mask],
                    KERNEL_MODULES)


def _autoreset_mode(mode) -> AutoresetMode:
    if isinstance(mode, AutoresetMode):
        return mode
    if isinstance(mode, str):
        key = mode.replace("_", "").replace("-", "").lower()
        for m in AutoresetMode:
            if key in (m.name.replace("_", "").lower(), str(m.value).replace("_", "").lower()):
                return m
    raise ValueError(f"autoreset_mode must be an AutoresetMode (NEXT_STEP, SAME_STEP, DISABLED), got {mode!r}")


def _object_action_ids(a: np.ndarray, venv) -> np.ndarray:
    """An object array of Python integers (e.g. from a list holding ints beyond int64) as int64,
    refusing other objects and naming the first id outside the space."""
    flat = a.reshape(-1)
    if not all(x.__class__ is int or isinstance(x, np.integer) for x in flat):
        return a  # refused by the dtype check that follows
    n = venv.single_action_space.n
    for e, x in enumerate(flat):
        if not 0 <= int(x) < n:
            raise ValueError(venv.error_message(e, int(x), ERR_BAD_ACTION))
    return np.array([int(x) for x in flat], np.int64).reshape(a.shape)


class TTSReplayVectorEnv(RebuiltOnUnpickling, VectorEnv):
    """``num_envs`` replay episodes stepped in one compiled call (see the module docstring).

    Accepts every argument of :class:`tts_gym.envs.env.TTSReplayEnv` plus ``num_envs``,
    ``autoreset_mode``, ``copy``, ``mask_in_info`` and ``num_threads``; the store and episode
    options (``max_branches`` to ``num_shuffle_seeds``) go to :class:`tts_gym.envs.env.ReplaySetup`
    as they are, with the same defaults.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4,
                "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, store=None, model: str | None = None,
                 benchmark: str | None = None, *, autoreset_mode=AutoresetMode.NEXT_STEP,
                 copy: bool = True, mask_in_info: bool = True, render_mode: str | None = None,
                 step_limit: int | None = None, max_episode_steps: int | None = None,
                 num_threads: int = 1, **setup_options):
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if int(num_threads) < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, "
                             f"got {render_mode!r}")
        self.setup = su = ReplaySetup(store, model, benchmark, **setup_options,
                                      max_episode_steps=_check_step_limit(step_limit, max_episode_steps))
        self.autoreset_mode = _autoreset_mode(autoreset_mode)
        self.metadata = dict(type(self).metadata, autoreset_mode=self.autoreset_mode)
        self.render_mode = render_mode
        self.num_envs = E = int(num_envs)
        self._shape = (E,)
        self.copy = bool(copy)
        self.mask_in_info = bool(mask_in_info)
        self.max_branches = M = su.M
        self.single_observation_space = su.observation_space
        self.single_action_space = su.action_space
        self.observation_space = batch_space(self.single_observation_space, E)
        self.action_space = batch_space(self.single_action_space, E)
        self.data, self.params = su.data, su.params
        self.state = make_state(E, M)
        self.state.done[:] = True  # stepping before reset() raises
        self._pos, self._glob = make_buffers(E, M)
        self._scratch = make_scratch(su.data)
        self._gammas = np.zeros(E, np.float64)
        self._mask = np.zeros((E, num_actions(M)), np.bool_)
        self._mask_dirty = True
        self._codes = np.zeros(E, np.int32)
        self._ints = np.zeros((6, E), np.int64)
        self._flags = np.zeros((6, E), np.bool_)
        self._rewards = np.zeros(E, np.float64)
        self._elapsed = np.zeros(E, np.int32)
        self._no_skip = np.zeros(E, np.bool_)
        self._needs_reset = np.zeros(E, np.bool_)
        self._any_needs_reset = False
        self._ended = np.zeros(E, np.bool_)
        self._question = np.full(E, -1, np.int64)
        self._shuffle_seed = np.full(E, -1, np.int64)
        self._counter = 0
        self._has_reset = False
        self._step_args = (bool(su.raise_invalid), float(su.invalid_action_penalty), bool(su.dense_reward),
                           1.0 / su.token_scale, int(su.max_episode_steps))
        self.num_threads = min(int(num_threads), E)
        self._build_core()

    # rebuilt from the rest on unpickling (numba handles, the worker pool)
    _DERIVED = ("_core", "_step_fn", "_reset_fn", "_mask_fn", "_check_fn", "_range_fn", "_slices", "_pool",
                "_views")

    def _build_core(self) -> None:
        """The compiled-side handles over this env's arrays: the core holding the state and buffers,
        the kernels' direct entry points and, with ``num_threads > 1``, the worker pool."""
        su, E, M = self.setup, self.num_envs, self.max_branches
        self._core = _make_vec_core(self.state, su.data, su.params, su.oparams, su.conf, self._gammas,
                                    self._pos, self._glob, self._scratch, self._mask, self._elapsed,
                                    self._codes, self._ints, self._flags, self._rewards)
        # compile/load the kernels once and keep their direct entry points (no per-call typing);
        # all-skip steps and empty resets change nothing but the per-step output buffers
        skip_all = np.ones(E, np.bool_)
        self._step_fn = compiled_entry(_vec_core_step, self._core, np.zeros(E, np.int64), skip_all,
                                       *self._step_args)
        self._reset_fn = compiled_entry(_vec_core_reset, self._core, np.zeros(0, np.int32),
                                        np.zeros((0, M), np.int32), np.zeros(0, np.int64))
        self._mask_fn = compiled_entry(_vec_core_mask, self._core)
        self._mask_dirty = True
        # num_threads > 1: check on the calling thread, then step contiguous slices concurrently
        T = self.num_threads
        self._pool = None
        if T > 1:
            bounds = np.linspace(0, E, T + 1).round().astype(np.int64)
            scratches = [self._scratch] + [make_scratch(su.data) for _ in range(T - 1)]
            self._check_fn = compiled_entry(_vec_core_check, self._core, np.zeros(E, np.int64), skip_all,
                                            self._step_args[0])
            self._range_fn = compiled_entry(_vec_core_step_range, self._core, self._scratch,
                                            np.zeros(E, np.int64), skip_all, *self._step_args[1:], 0, 0)
            self._slices = [(scratches[i], int(bounds[i]), int(bounds[i + 1])) for i in range(T)]
            self._pool = ThreadPoolExecutor(max_workers=T - 1, thread_name_prefix="tts_gym-vec")

    # -- helpers -----------------------------------------------------------------------------------
    def _reset_ids(self, ids: np.ndarray, options: dict | None = None) -> dict:
        """Draw and start new episodes for sub-envs ``ids`` (vectorised); returns their reset infos."""
        su = self.setup
        o = options or {}

        def pick(key):
            v = o.get(key)
            if v is None:
                return None
            v = np.asarray(v)
            if v.ndim == 0 or (key == "permutation" and v.ndim == 1):
                return v
            if len(v) == self.num_envs and len(ids) != self.num_envs:
                return v[ids]
            return v

        q, seeds, perms, g = su.draw(self.np_random, len(ids), self._counter,
                                     questions=pick("question"), shuffle_seeds=pick("shuffle_seed"),
                                     permutations=pick("permutation"), cost_weights=pick("cost_weight"))
        self._counter += len(ids)
        self._gammas[ids] = g
        self._reset_fn(self._core, q, perms, np.ascontiguousarray(ids, dtype=np.int64))
        self._elapsed[ids] = 0
        self._ended[ids] = False
        self._question[ids] = q
        self._shuffle_seed[ids] = seeds
        self._mask_dirty = True
        return {"question": q, "shuffle_seed": seeds, "cost_weight": g}

    def _obs(self) -> dict:
        if self.copy:
            return {"positions": self._pos.copy(), "globals": self._glob.copy()}
        return {"positions": self._pos, "globals": self._glob}

    def _step_threaded(self, a: np.ndarray, skip: np.ndarray):
        """``_step_fn`` split over ``num_threads`` threads: the whole batch is checked before anything
        is stepped, then the slices run concurrently (slice 0 on the calling thread)."""
        raise_mode, penalty, dense, inv_scale, max_steps = self._step_args
        bad = self._check_fn(self._core, a, skip, raise_mode)
        if bad >= 0:
            return bad, 0, 0
        fn, core = self._range_fn, self._core
        futures = [self._pool.submit(fn, core, sc, a, skip, penalty, dense, inv_scale, max_steps, e0, e1)
                   for sc, e0, e1 in self._slices[1:]]
        sc, e0, e1 = self._slices[0]
        n_done, n_invalid = fn(core, sc, a, skip, penalty, dense, inv_scale, max_steps, e0, e1)
        for f in futures:
            d, i = f.result()
            n_done += d
            n_invalid += i
        return -1, n_done, n_invalid

    def error_message(self, e: int, action: int, code: int) -> str:
        if code == ERR_BAD_ACTION:
            n = self.single_action_space.n
            return (f"sub-env {e}: action {action} is outside the action space Discrete({n}): "
                    f"valid ids are 0..{n - 1}")
        return (f"sub-env {e}: inadmissible action {action} = {describe(action, self.max_branches)}: "
                f"{ERROR_MESSAGES.get(code, f'error code {code}')}")

    # -- gymnasium VectorEnv API -------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if isinstance(seed, (list, tuple)):
            raise TypeError("TTSReplayVectorEnv takes one int seed for the whole batch")
        super().reset(seed=seed)
        if seed is not None:
            self._counter = 0
        options = dict(options or {})
        unknown = set(options) - {"question", "shuffle_seed", "permutation", "cost_weight", "reset_mask"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}")
        reset_mask = options.pop("reset_mask", None)
        if reset_mask is None:
            ids = np.arange(self.num_envs)
            mask = np.ones(self.num_envs, np.bool_)
        else:
            mask = np.asarray(reset_mask, dtype=np.bool_)
            if mask.shape != (self.num_envs,):
                raise ValueError(f"reset_mask must be a bool array of shape ({self.num_envs},)")
            ids = np.flatnonzero(mask)
        if not self._has_reset and len(ids) != self.num_envs:
            raise ValueError("the first reset() must reset every sub-env")
        drawn = self._reset_ids(ids, options)
        self._needs_reset[ids] = False
        self._any_needs_reset = bool(self._needs_reset.any())
        self._has_reset = True
        infos: dict[str, Any] = {}
        for k, v in drawn.items():
            full = np.zeros(self.num_envs, dtype=v.dtype)
            full[ids] = v
            infos[k] = full
            infos["_" + k] = mask.copy()
        if self.mask_in_info:
            infos["action_mask"] = self._state_masks()
        return self._obs(), infos

    def step(self, actions):
        E = self.num_envs
        a = actions
        if a.__class__ is not np.ndarray or a.dtype is not _INT64 or a.shape != self._shape:
            a = np.asarray(actions)
            if a.dtype == object:
                a = _object_action_ids(a, self)
            if a.dtype.kind not in "iu":
                raise TypeError(f"actions must be integer action ids in 0..{self.single_action_space.n - 1} "
                                f"(an integer array of shape ({E},)), got dtype {a.dtype}")
            if a.dtype.kind == "u" and a.size and int(a.max()) > np.iinfo(np.int64).max:
                bad = int(np.argmax(a))
                raise ValueError(self.error_message(bad, int(a.reshape(-1)[bad]), ERR_BAD_ACTION))
            if a.shape != self._shape:
                try:
                    a = a.reshape(E)
                except ValueError:
                    raise ValueError(f"expected {E} actions, got an array of shape {np.shape(actions)}") from None
            a = np.ascontiguousarray(a, dtype=np.int64)
        su = self.setup
        mode = self.autoreset_mode
        if mode is AutoresetMode.NEXT_STEP and self._any_needs_reset:
            skip = self._needs_reset.copy()
            self._reset_ids(np.flatnonzero(skip))
        else:
            skip = self._no_skip
        if self._pool is None:
            bad, n_done, n_invalid = self._step_fn(self._core, a, skip, *self._step_args)
        else:
            bad, n_done, n_invalid = self._step_threaded(a, skip)
        if bad >= 0:
            if mode is AutoresetMode.NEXT_STEP and skip is not self._no_skip:
                self._needs_reset[skip] = False  # those sub-envs were reset above
                self._any_needs_reset = bool(self._needs_reset.any())
            code = int(self._codes[bad])
            if code == ERR_DONE and not self._has_reset:
                raise RuntimeError("call reset() before step()")
            raise ValueError(self.error_message(int(bad), int(a[bad]), code))
        self._mask_dirty = True
        ints = self._ints.copy()
        flags = self._flags.copy()
        term, trunc = flags[F_TERMINATED], flags[F_TRUNCATED]
        infos: dict[str, Any] = {
            "position": ints[I_POSITION], "revealed_id": ints[I_REVEALED], "finished": flags[F_FINISHED],
            "charge": ints[I_CHARGE], "cost": ints[I_COST], "cursor": ints[I_CURSOR],
            "cost_weight": self._gammas.copy(), "invalid_action": flags[F_INVALID],
        }
        any_done = n_done > 0
        if any_done:
            done = flags[F_DONE]
            ids = np.flatnonzero(done)
            self._ended[ids] = True
            ans = ints[I_ANSWER]
            answer = np.full(E, None, dtype=object)
            sel = ids[ans[ids] >= 0]
            answer[sel] = su.flat_answers[su.answer_offset[self._question[sel]] + ans[sel]]
            infos.update(correct=flags[F_CORRECT], _correct=done, answer_id=ans, _answer_id=done,
                         answer=answer, _answer=done, tokens=ints[I_COST], _tokens=done)
        if mode is AutoresetMode.NEXT_STEP:
            self._needs_reset = flags[F_DONE].copy() if any_done else self._no_skip  # only ever cleared
            self._any_needs_reset = any_done
        elif mode is AutoresetMode.SAME_STEP and any_done:
            final_obs = {"positions": np.zeros_like(self._pos), "globals": np.zeros_like(self._glob)}
            final_obs["positions"][ids] = self._pos[ids]
            final_obs["globals"][ids] = self._glob[ids]
            final_info = dict(infos, terminated=term, truncated=trunc)
            if self.mask_in_info:
                final_info["action_mask"] = self._state_masks()  # of the final states, before the resets
            infos["final_obs"], infos["_final_obs"] = final_obs, done
            infos["final_info"], infos["_final_info"] = final_info, done
            self._reset_ids(ids)
        if self.mask_in_info:
            infos["action_mask"] = self._state_masks()
        return self._obs(), self._rewards.copy(), term, trunc, infos

    def action_masks(self) -> np.ndarray:
        """``bool[E, 4 + 4M]`` admissible actions of every sub-env (one compiled call; sb3-contrib's
        convention). Rows of sub-envs awaiting a ``NEXT_STEP`` autoreset are all ``True`` (their next
        action is ignored); ``infos["action_mask"]`` has the mask of the state each step returned."""
        masks = self._state_masks()
        if self._any_needs_reset and self.autoreset_mode is AutoresetMode.NEXT_STEP:
            masks[self._needs_reset] = True
        return masks

    def _state_masks(self) -> np.ndarray:
        """A copy of the admissible actions of every sub-env's current state."""
        if self._mask_dirty:
            self._mask_fn(self._core)
            self._mask_dirty = False
        return self._mask.copy()

    def episode(self, e: int = 0):
        """Live read-only :class:`~tts_gym.envs.view.EpisodeView` of sub-env ``e`` (the same object
        on every call: it follows the sub-env's episodes)."""
        e = int(e)
        if not 0 <= e < self.num_envs:
            raise IndexError(f"sub-env {e} out of range 0..{self.num_envs - 1}")
        views = self.__dict__.setdefault("_views", {})
        view = views.get(e)
        if view is None:
            from tts_gym.envs.view import EpisodeView
            view = views[e] = EpisodeView(self.state, self.data, self.params, e, self.setup.answer_tables)
        return view

    @property
    def questions(self) -> np.ndarray:
        """Packed question index of each sub-env's current episode."""
        return self._question.copy()

    @property
    def shuffle_seeds(self) -> np.ndarray:
        """Reference shuffle seed of each sub-env's current episode (-1: random/explicit order)."""
        return self._shuffle_seed.copy()

    @property
    def cost_weights(self) -> np.ndarray:
        return self._gammas.copy()

    def render(self):
        if self.render_mode is None:
            return None
        from tts_gym.envs.render import render_state
        return (render_state(self.state, self.setup, 0, mode=self.render_mode, ended=bool(self._ended[0]),
                             question=int(self._question[0]), shuffle_seed=int(self._shuffle_seed[0]),
                             cost_weight=float(self._gammas[0])),)

    def close_extras(self, **kwargs):
        pool = getattr(self, "_pool", None)
        if pool is not None:
            self._pool = None
            pool.shutdown(wait=True)


# cache entries also keyed on the compiled layer's sources (see tts_gym.core.numba_cache)
from tts_gym.core.numba_cache import bind_module_cache  # noqa: E402

bind_module_cache(globals())
