"""One policy interface for every controller: baselines, LLM-written controllers and SB3 agents.

A :class:`Policy` plays one episode at a time through env actions (:mod:`tts_gym.core.actions`):

* ``reset(view)`` is called once per episode, after ``env.reset``, with the episode's live
  :class:`~tts_gym.envs.view.EpisodeView` (the raw replay state: revealed answer ids, depths, flags,
  cost -- never the gold answer);
* ``act(observation, view) -> int`` is called before every ``env.step`` and returns one action id;
  when it is called again, the previous action has already been applied, so ``view`` shows its
  effect (the revealed answer, the new cost, ...);
* ``name`` and ``params`` identify the policy (``params`` is a plain dict, JSON-serialisable);
* ``predict(observation, state=None, episode_start=None, deterministic=False, action_masks=None)``
  is the stable-baselines3 ``PolicyPredictor`` signature, so SB3's and sb3-contrib's
  ``evaluate_policy`` and our evaluators accept the same objects. Observation-only policies
  (``requires_view = False``: SB3 models, random) act from the observations alone. Code controllers
  (every built-in baseline, controller files) read the raw episode state, which a batch of SB3
  observations does not carry, so they are first bound to the env they play::

      from stable_baselines3.common.evaluation import evaluate_policy
      env = gym.make("tts_gym/Replay-v0")
      policy = make_policy("asc", max_samples=16).bind(env)
      mean_reward, std_reward = evaluate_policy(policy, env, n_eval_episodes=20)

  ``bind`` accepts a single env (wrapped or not), a :class:`~tts_gym.envs.vector.TTSReplayVectorEnv`,
  a Gymnasium ``SyncVectorEnv``, or an SB3 ``DummyVecEnv`` / :class:`~tts_gym.envs.sb3.SB3VecEnv`
  (and SB3 wrappers over them); every sub-env gets its own copy of the policy.

Code controllers are stateful (histories, counters, EMAs, finish-order pools). The natural way to
write one is :class:`ScriptedPolicy`: the controller is a Python generator that ``yield``\\ s env
actions and reads the view between yields, and ``return``\\ s its answer id (or ``None``); the
reference pseudo-code ports almost line by line, with the reference operations available as
sub-generators that keep the reference's "safe wrapper" semantics (``None`` when unavailable)::

    class FirstFinal(ScriptedPolicy):
        name = "first_final"

        def script(self, view):
            a = yield from self.full_read(view)      # SAMPLE; a = revealed final answer id
            return a                                 # -> ANSWER_WITH(a position holding a)

Wrapping a trained SB3 model is one line: ``policy = SB3Policy(model)``.
"""
from __future__ import annotations

import copy
import inspect
from typing import Any, Generator

import numpy as np

from tts_gym.core import actions as A
from tts_gym.core import kernels as K

_OPENED = int(K.OPENED)
_FINISHED = int(K.FINISHED)
_LIVE_MASK = int(K.OPENED | K.FINISHED | K.PRUNED)

__all__ = [
    "Policy", "ScriptedPolicy", "SB3Policy", "RandomMaskedPolicy", "action_mask",
    "answer_action", "PolicyError", "episode_views",
]


def episode_views(env) -> list:
    """The live :class:`~tts_gym.envs.view.EpisodeView` of every sub-env of ``env``, in batch order:
    a single env (Gymnasium wrappers allowed) gives one; a ``TTSReplayVectorEnv``, a Gymnasium
    ``SyncVectorEnv``, an SB3 ``DummyVecEnv`` or ``SB3VecEnv`` (SB3 ``VecEnvWrapper``\\ s allowed) one
    per sub-env. Envs in other processes (``AsyncVectorEnv``, ``SubprocVecEnv``) cannot be read."""
    seen = 0
    while seen < 16:  # unwrap SB3 VecEnvWrappers / adapters
        seen += 1
        unwrapped = getattr(env, "unwrapped", env)
        if hasattr(unwrapped, "episode") and not callable(getattr(type(unwrapped), "episode", None)) \
                and hasattr(unwrapped, "state"):
            return [unwrapped.episode]                               # TTSReplayEnv
        if callable(getattr(unwrapped, "episode", None)) and hasattr(unwrapped, "num_envs"):
            return [unwrapped.episode(j) for j in range(unwrapped.num_envs)]  # TTSReplayVectorEnv
        envs = getattr(unwrapped, "envs", None)
        if isinstance(envs, (list, tuple)):                          # SyncVectorEnv, DummyVecEnv
            return [v for e in envs for v in episode_views(e)]
        inner = getattr(env, "venv", None)                            # SB3 wrappers, SB3VecEnv
        if inner is None or inner is env:
            break
        env = inner
    raise TypeError(f"cannot read the episodes of {type(env).__name__}: bind a policy to a "
                    f"tts_gym env in this process (a single env, TTSReplayVectorEnv, SyncVectorEnv, "
                    f"DummyVecEnv or SB3VecEnv)")


class PolicyError(RuntimeError):
    """A policy was driven incorrectly (``act`` before ``reset``, a script that ended without an
    answer, an answer id that no opened position holds, ...)."""


def action_mask(view) -> np.ndarray:
    """Admissible-action mask (bool, ``4 + 4M``) of the episode behind ``view``; exactly the env's
    ``action_masks()`` (both call :func:`tts_gym.core.kernels.action_mask_episode`)."""
    return view.action_mask()


def answer_action(view, answer_id) -> int:
    """The action committing ``answer_id``: ``ANSWER_WITH(p)`` for the lowest opened position ``p``
    whose latest revealed answer is ``answer_id`` (answer ids are per-question intern ids, so any
    such position commits the same string), or ``ABSTAIN`` for ``None`` / ``-1``.

    Raises :class:`PolicyError` when no opened position currently shows ``answer_id`` (the env can
    only commit a currently visible answer)."""
    if answer_id is None or int(answer_id) < 0:
        return A.ABSTAIN
    latest = view.latest
    hits = np.flatnonzero(latest[:view.cursor] == int(answer_id))
    if hits.size == 0:
        raise PolicyError(f"answer id {int(answer_id)} is not the latest revealed answer of any "
                          f"opened position; the env cannot commit it")
    return A.answer_with_action(int(hits[0]), view.max_branches)


class Policy:
    """Base class of every policy (see the module docstring for the protocol).

    Subclasses implement :meth:`act` (and :meth:`reset` when they keep per-episode state).
    ``requires_view = False`` marks observation-only policies, which must then accept
    ``view=None`` in :meth:`act` and get a working :meth:`predict`.
    """

    name: str = "policy"
    requires_view: bool = True

    def __init__(self, **params: Any) -> None:
        self.params: dict = dict(params)

    # -- binding to an env (SB3 predict for code controllers) -------------------------------------
    def bind(self, env) -> "Policy":
        """Play the episodes of ``env`` in :meth:`predict` (code controllers read the raw state of
        the env's sub-env ``j`` for row ``j`` of the observation batch); returns ``self``. See the
        module docstring for the envs accepted."""
        episode_views(env)  # fails now, with a clear message, on an env that cannot be bound
        self._bound_env = env
        self._rows: list = [self]
        return self

    def _row_policies(self, n: int) -> list:
        """One policy per sub-env: ``self`` for row 0, copies without episode state for the others."""
        rows = self.__dict__.setdefault("_rows", [self])
        env = self.__dict__.get("_bound_env")
        while len(rows) < n:
            try:
                clone = copy.deepcopy(self, memo={id(env): env})
            except Exception as exc:  # noqa: BLE001 - e.g. a controller holding a module
                raise TypeError(f"policy {self.name!r} cannot be copied for sub-env {len(rows)} "
                                f"({exc}); play it on a single env") from None
            rows.append(clone)
        return rows

    def _predict_bound(self, observation, episode_start):
        env = self.__dict__.get("_bound_env")
        if env is None:
            raise TypeError(
                f"policy {self.name!r} reads the raw episode state, which observations do not carry: "
                f"bind it to the env it plays first, e.g. evaluate_policy(policy.bind(env), env)")
        views = episode_views(env)
        obs_b, n, single = _batchify(observation)
        if n != len(views):
            raise ValueError(f"policy {self.name!r} is bound to an env of {len(views)} sub-envs but "
                             f"got a batch of {n} observations")
        rows = self._row_policies(n)
        starts = None if episode_start is None else np.asarray(episode_start, dtype=bool).reshape(-1)
        out = np.empty(n, dtype=np.int64)
        for j in range(n):
            pol, view = rows[j], views[j]
            # a new episode: SB3's episode_start, else a view with no action applied yet
            new = bool(starts[j]) if starts is not None else (view.steps == 0 and view.cursor == 0)
            if new or pol.__dict__.get("_bound_view") is not view:
                pol.reset(view)
                pol._bound_view = view
            out[j] = pol.act(_row(obs_b, j), view)
        return out[0] if single else out

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for key in ("_rows", "_bound_view"):  # per-sub-env copies and the episode being played
            state.pop(key, None)
        return state

    # -- episode protocol ------------------------------------------------------------------------
    def reset(self, view) -> None:  # noqa: D401 - stateless by default
        """Start a new episode (``view`` is the fresh episode's :class:`EpisodeView`)."""

    def act(self, observation, view) -> int:
        raise NotImplementedError

    # -- SB3 PolicyPredictor ---------------------------------------------------------------------
    def predict(self, observation, state=None, episode_start=None, deterministic: bool = False,
                action_masks=None):
        """SB3-compatible ``predict``: a batch of observations -> ``(actions, state)``.

        ``observation`` is one observation or a batch as SB3's VecEnv returns it (array with a
        leading batch axis, or a dict of such arrays). Code controllers (``requires_view``) must be
        bound to the env first (:meth:`bind`); row ``j`` is then played on sub-env ``j``'s episode,
        ``episode_start[j]`` (or a fresh episode) starting a new one. Observation-only policies get
        ``action_masks`` (``[n, A]`` or ``[A]``, as sb3-contrib passes them) row by row in
        :meth:`predict_one`; ``episode_start[j]`` true calls ``reset(None)`` first.
        """
        if self.requires_view:
            return self._predict_bound(observation, episode_start), state
        masks = None
        if action_masks is not None:
            masks = np.asarray(action_masks, dtype=bool)
        obs_b, n, single = _batchify(observation, masks)
        if masks is not None and masks.ndim == 1:
            masks = masks[None]
        out = np.empty(n, dtype=np.int64)
        for j in range(n):
            if episode_start is not None and bool(np.asarray(episode_start).reshape(-1)[j]):
                self.reset(None)
            o = _row(obs_b, j)
            out[j] = self.predict_one(o, None if masks is None else masks[j], deterministic)
        return (out[0] if single else out), state

    def predict_one(self, observation, mask, deterministic: bool) -> int:
        """One action from one observation and its mask (``None``: unknown); the hook that
        observation-only policies override. Default: ``act(observation, None)``."""
        return int(self.act(observation, None))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


def _batchify(observation, masks=None):
    """``(batch, n, was_single)``. The batch size comes from ``masks`` when given (``[n, A]`` or a
    single ``[A]``), else from the observation: an array of rank <= 1 is one observation, a higher
    rank is a batch; a dict observation without masks is taken as a batch (SB3's VecEnv layout)."""
    if masks is not None:
        single = masks.ndim == 1
        n = 1 if single else int(masks.shape[0])
        if isinstance(observation, dict):
            batch = {k: (np.asarray(v)[None] if single else np.asarray(v))
                     for k, v in observation.items()}
        else:
            arr = np.asarray(observation)
            batch = arr[None] if single else arr
        return batch, n, single
    if isinstance(observation, dict):
        first = np.asarray(next(iter(observation.values())))
        return observation, (int(first.shape[0]) if first.ndim >= 1 else 1), False
    arr = np.asarray(observation)
    if arr.ndim <= 1:
        return arr[None], 1, True
    return arr, int(arr.shape[0]), False


def _row(batch, j):
    if isinstance(batch, dict):
        return {k: np.asarray(v)[j] for k, v in batch.items()}
    return batch[j]


# ------------------------------------------------------------------------------------------------
# generator-style controllers
# ------------------------------------------------------------------------------------------------

class ScriptedPolicy(Policy):
    """A controller written as a generator: :meth:`script` ``yield``\\ s action ids and reads
    ``view`` between yields; it ends with ``return answer_id`` (``None``: abstain), which becomes
    ``ANSWER_WITH(a position holding it)`` / ``ABSTAIN``. It may also yield a terminal action
    itself (``ANSWER``, ``ABSTAIN``, ``ANSWER_WITH(i)``) and stop.

    ``obs = yield action`` receives the next observation if a script wants it. All per-episode
    state lives in the generator's locals, so nothing leaks between episodes.

    The reference operations, as sub-generators with the reference's safe-wrapper semantics
    (``None`` when the operation is unavailable; nothing is stepped then)::

        r = yield from self.open(view)        # probe_new -> (answer_id, position, finished) | None
        r = yield from self.advance(view, i)  # probe_more(i) -> (answer_id, finished) | None
        a = yield from self.full_read(view)   # get_new_branch_final_answer -> answer_id | None
        yield from self.prune(view, i)        # zero-cost PRUNE(i) bookkeeping (if admissible)

    Differences to the reference, by design of the env's masks: ``advance`` returns ``None`` for an
    unopened, finished or pruned position (the reference would advance the unopened position
    ``cursor``, address negative indices from the end, and re-charge a finished branch's remainder;
    none of the five algorithms does any of that).
    """

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._gen: Generator | None = None
        self._view = None
        self._M = 0

    def script(self, view) -> Generator[int, Any, Any]:
        raise NotImplementedError

    def __getstate__(self) -> dict:
        # a copy starts with no episode in progress (generators cannot be copied)
        state = super().__getstate__()
        state.update(_gen=None, _view=None, _latest=None, _flags=None)
        return state

    def reset(self, view) -> None:
        if self._gen is not None:
            self._gen.close()
        self._view = view
        self._M = view.max_branches
        self._limit = view.branch_limit
        # live read-only views of this episode's arrays (they follow every step; cached once per
        # episode because the view's properties build a fresh numpy view on each access)
        self._latest = view.latest
        self._flags = view.flags
        self._gen = self.script(view)
        self._started = False

    def act(self, observation, view) -> int:
        gen = self._gen
        if gen is None:
            raise PolicyError(f"{self.name}: act() called before reset() or after the episode ended")
        try:
            if self._started:
                a = gen.send(observation)
            else:
                self._started = True
                a = next(gen)
        except StopIteration as stop:
            self._gen = None
            return answer_action(self._view, stop.value)
        a = int(a)
        if a in (A.ANSWER, A.ABSTAIN) or a >= A.NUM_GLOBAL_ACTIONS + 3 * self._M:
            self._gen = None
            gen.close()
        return a

    # -- reference operations ----------------------------------------------------------------------
    # (``view`` must be the episode's view passed to ``reset``; positions < cursor are exactly the
    # OPENED ones, so one flags test covers "opened, unfinished, unpruned")

    def open(self, view):
        """``probe_new``: BRANCH; ``(answer_id, position, finished)`` or ``None`` when no position
        is left."""
        p = view.cursor
        if p >= self._limit:
            return None
        yield A.BRANCH
        return int(self._latest[p]), p, bool(self._flags[p] & _FINISHED)

    def advance(self, view, i: int):
        """``probe_more(i)``: CONTINUE(i); ``(answer_id, finished)`` or ``None`` when position ``i``
        is not an opened, unfinished, unpruned position."""
        if not 0 <= i < self._M or (self._flags[i] & _LIVE_MASK) != _OPENED:
            return None
        yield A.NUM_GLOBAL_ACTIONS + i
        return int(self._latest[i]), bool(self._flags[i] & _FINISHED)

    def full_read(self, view):
        """``get_new_branch_final_answer``: SAMPLE; the final answer id or ``None``."""
        p = view.cursor
        if p >= self._limit:
            return None
        yield A.SAMPLE
        return int(self._latest[p])

    def prune(self, view, i: int):
        """Zero-cost ``PRUNE(i)`` (skipped when not admissible, e.g. finished positions)."""
        if 0 <= i < self._M and (self._flags[i] & _LIVE_MASK) == _OPENED:
            yield A.NUM_GLOBAL_ACTIONS + 2 * self._M + i
        return None


# ------------------------------------------------------------------------------------------------
# observation policies
# ------------------------------------------------------------------------------------------------

class RandomMaskedPolicy(Policy):
    """Uniformly random admissible action (a sanity baseline; seeded, reproducible).

    ``act(obs, view)`` reads the mask from the view; ``predict`` uses ``action_masks`` (required,
    as sb3-contrib's ``evaluate_policy`` passes them) or an ``"action_mask"`` entry of a dict
    observation. ``answer_prob`` (optional) caps the chance of a terminal action per step so that
    random episodes are not all one step long; ``None`` keeps the uniform choice.
    """

    name = "random"
    requires_view = False

    def __init__(self, seed: int | None = 0, answer_prob: float | None = None) -> None:
        super().__init__(seed=seed, answer_prob=answer_prob)
        self.rng = np.random.default_rng(seed)

    def _choose(self, mask: np.ndarray) -> int:
        mask = np.asarray(mask, dtype=bool)
        valid = np.flatnonzero(mask)
        if valid.size == 0:
            raise PolicyError("no admissible action (is the episode over?)")
        ap = self.params["answer_prob"]
        if ap is not None:
            M = (mask.shape[0] - A.NUM_GLOBAL_ACTIONS) // 4
            terminal = (valid == A.ANSWER) | (valid == A.ABSTAIN) | (valid >= A.NUM_GLOBAL_ACTIONS + 3 * M)
            if terminal.any() and (~terminal).any():
                pool = valid[terminal] if self.rng.random() < ap else valid[~terminal]
                return int(self.rng.choice(pool))
        return int(self.rng.choice(valid))

    def act(self, observation, view) -> int:
        if view is not None:
            return self._choose(action_mask(view))
        return self.predict_one(observation, None, True)

    def predict_one(self, observation, mask, deterministic: bool) -> int:
        if mask is None and isinstance(observation, dict):
            for key in ("action_mask", "action_masks", "mask"):
                if key in observation:
                    mask = observation[key]
                    break
        if mask is None:
            raise PolicyError("RandomMaskedPolicy.predict needs action_masks (or an 'action_mask' "
                              "observation entry)")
        return self._choose(mask)


def _supports_masks(model) -> bool:
    try:
        return "action_masks" in inspect.signature(model.predict).parameters
    except (TypeError, ValueError):
        return False


def _model_max_branches(model) -> int | None:
    """Positions of the env a model was trained on (its ``positions`` observation box), if known."""
    space = getattr(model, "observation_space", None)
    try:
        return int(space["positions"].shape[0])
    except (TypeError, KeyError, IndexError, AttributeError):
        return None


class SB3Policy(Policy):
    """A stable-baselines3 / sb3-contrib model as a :class:`Policy`: ``SB3Policy(model)``.

    Calls ``model.predict(obs, deterministic=...)``, passing ``action_masks`` (the view's mask in
    :meth:`act`, the caller's in :meth:`predict`) when the model accepts them (``MaskablePPO``).
    Recurrent models get their hidden state carried across steps and reset per episode.

    :attr:`max_branches` is read from the model's observation space (``positions`` is
    ``(max_branches, 15)``): :func:`tts_gym.evaluate` plays the model on an env with that many
    positions, so a model trained with any ``max_branches`` is scored as it was trained.
    """

    requires_view = False

    def __init__(self, model, deterministic: bool = True, name: str | None = None,
                 use_masks: bool | None = None) -> None:
        super().__init__(algo=type(model).__name__, deterministic=bool(deterministic))
        self.model = model
        self.name = name or f"sb3_{type(model).__name__.lower()}"
        self.deterministic = bool(deterministic)
        self.use_masks = _supports_masks(model) if use_masks is None else bool(use_masks)
        self.max_branches = _model_max_branches(model)
        self._state = None
        self._start = True

    def reset(self, view) -> None:
        self._state = None
        self._start = True

    def act(self, observation, view) -> int:
        if self.max_branches is not None and isinstance(observation, dict):
            m = np.shape(observation.get("positions"))[:1]
            if m and m[0] != self.max_branches:
                raise ValueError(f"{self.name}: the model was trained with max_branches="
                                 f"{self.max_branches} but the env has {m[0]} positions; build the env "
                                 f"with max_branches={self.max_branches} (tts_gym.evaluate does)")
        mask = action_mask(view) if (self.use_masks and view is not None) else None
        return self.predict_one(observation, mask, self.deterministic)

    def predict_one(self, observation, mask, deterministic: bool) -> int:
        kw = {}
        if self.use_masks and mask is not None:
            kw["action_masks"] = np.asarray(mask, dtype=bool)
        episode_start = np.array([self._start])
        action, self._state = self.model.predict(observation, state=self._state,
                                                 episode_start=episode_start,
                                                 deterministic=deterministic, **kw)
        self._start = False
        return int(np.asarray(action).reshape(-1)[0])

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = False,
                action_masks=None):
        """Pass-through to the model (batched, as SB3 expects)."""
        kw = {}
        if self.use_masks and action_masks is not None:
            kw["action_masks"] = action_masks
        return self.model.predict(observation, state=state, episode_start=episode_start,
                                  deterministic=deterministic, **kw)
