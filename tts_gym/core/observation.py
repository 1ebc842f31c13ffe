"""The fixed-shape, relabeling-invariant observation of :class:`tts_gym.envs.env.TTSReplayEnv`.

An observation is a flat :class:`gymnasium.spaces.Dict` of two float32 :class:`~gymnasium.spaces.Box`
(so it works with stable-baselines3's ``MultiInputPolicy``)::

    {"positions": Box(0, 1, (M, NUM_POSITION_FEATURES)),    # one row per branch position
     "globals":   Box(0, high, (NUM_GLOBAL_FEATURES,))}     # episode-level features

with ``M = max_branches`` rows in opening order. Answer ids never appear: every feature is computed
from counts and equalities of revealed answers, so relabeling a question's answer ids (or its answer
strings) leaves the observation unchanged. The gold answer is never used.

The *vote pool* is the set of opened, unpruned positions that have revealed an answer; a position
votes with its latest revealed answer. The *plurality* answer is the pool's most frequent answer,
ties going to the answer whose first occurrence (in opening order) is earliest -- the rule of the
default ``ANSWER`` aggregator (:func:`tts_gym.core.kernels.default_answer`). The *runner-up* is the most
frequent other answer (same tie rule).

Per-position features (``positions[p, j]``; rows of unopened positions are zero except
``available``):

====  ===================  ======================================================================
 j    name                 value
====  ===================  ======================================================================
 0    ``opened``           1 if position ``p`` has been opened (``BRANCH`` or ``SAMPLE``)
 1    ``live``             1 if opened, not finished and not pruned (it can still be advanced)
 2    ``finished``         1 if its trajectory is complete (end of the branch reached)
 3    ``pruned``           1 if ``PRUNE(p)`` was taken
 4    ``sampled``          1 if it was opened by ``SAMPLE`` (full read, final answer only)
 5    ``available``        1 if not opened yet but openable (``p < min(M, N_q)``)
 6    ``depth``            intervals advanced / ``depth_scale`` (``K_max + 1``: 1 = longest branch done)
 7    ``revealed``         1 if it has revealed an answer
 8    ``unrevealed``       1 if it advanced past its last reveal (unfused mode: ``PROBE(p)`` would
                           reveal something new)
 9    ``share``            share of the vote pool holding its latest answer (0 outside the pool)
10    ``agrees_top1``      1 if its latest answer is the plurality answer (in the pool)
11    ``agrees_top2``      1 if its latest answer is the runner-up answer (in the pool)
12    ``stability``        ``min(stable, H) / H``: ``stable`` = consecutive reveals that repeated its
                           current answer (1 = just changed); ``H = stability_horizon`` (10)
13    ``finished_share``   share of the finished answers equal to its latest answer (0 if none);
                           the *finished answers* are the revealed final answers of finished
                           unpruned positions (in unfused mode a finished position may not have
                           revealed its final answer yet)
14    ``fresh``            1 if it revealed an answer at the last step
====  ===================  ======================================================================

Global features (``globals[j]``):

====  ===================  ======================================================================
 j    name                 value
====  ===================  ======================================================================
 0    ``width``            ``cursor / M`` (positions opened)
 1    ``limit``            ``min(M, N_q) / M`` (positions that can be opened at all)
 2    ``cost``             ``min(1, cost / cost_scale)``; ``cost_scale`` = the token budget if set,
                           else ``M`` x the largest fully-probed branch cost of the data
 3    ``budget``           ``min(1, cost / token_budget)`` (0 without a budget)
 4    ``top1_share``       plurality count / pool size (0 with an empty pool)
 5    ``top2_share``       runner-up count / pool size
 6    ``votes``            pool size / ``M``
 7    ``clusters``         distinct answers in the pool / ``M``
 8    ``finished``         finished positions / ``M``
 9    ``live``             live positions / ``M``
10    ``pruned``           pruned positions / ``M``
11    ``confidence``       Beta-majority confidence of the finished answers:
                           ``conf(t1, t2) = P[Binomial(t1 + t2 + 1, 1/2) <= t1]`` (0 if ``t1 = 0``),
                           ``t1``/``t2`` = counts of the two most frequent finished answers
12    ``finished_top1``    ``t1 /`` number of finished answers (0 if none)
13    ``cost_weight``      the episode's ``gamma`` (reward = 1{correct} - gamma * cost / token_scale);
                           bounded by the largest ``gamma`` the env can draw (at least 1)
14    ``steps``            ``min(1, steps / step_scale)``: actions applied so far; ``step_scale`` =
                           ``max_episode_steps`` if set, else ``M * (K_max + 2)`` (twice that unfused)
====  ===================  ======================================================================

The kernels (:func:`observe_episode`, :func:`observe_subset`) write into
preallocated batch-first float32 buffers (``positions[E, M, F]``, ``globals[E, G]``) and allocate
nothing. Rows of unopened positions are constant within an episode, so after a full write at reset
(``full=True``) a step only needs to rewrite the opened rows (``full=False``).
"""
from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numba as nb
import numpy as np
from gymnasium import spaces

from tts_gym.core.kernels import FINISHED, PRUNED, SAMPLED, EnvParams, ReplayData, position_limit
from tts_gym.core.voting import conf_table

POSITION_FEATURES = ("opened", "live", "finished", "pruned", "sampled", "available", "depth",
                     "revealed", "unrevealed", "share", "agrees_top1", "agrees_top2", "stability",
                     "finished_share", "fresh")
GLOBAL_FEATURES = ("width", "limit", "cost", "budget", "top1_share", "top2_share", "votes",
                   "clusters", "finished", "live", "pruned", "confidence", "finished_top1",
                   "cost_weight", "steps")
NUM_POSITION_FEATURES = len(POSITION_FEATURES)
NUM_GLOBAL_FEATURES = len(GLOBAL_FEATURES)
G_COST_WEIGHT = GLOBAL_FEATURES.index("cost_weight")

(P_OPENED, P_LIVE, P_FINISHED, P_PRUNED, P_SAMPLED, P_AVAILABLE, P_DEPTH, P_REVEALED, P_UNREVEALED,
 P_SHARE, P_TOP1, P_TOP2, P_STABILITY, P_FINISHED_SHARE, P_FRESH) = range(NUM_POSITION_FEATURES)
(G_WIDTH, G_LIMIT, G_COST, G_BUDGET, G_TOP1, G_TOP2, G_VOTES, G_CLUSTERS, G_FINISHED, G_LIVE,
 G_PRUNED, G_CONF, G_FIN_TOP1, _G_GAMMA, G_STEPS) = range(NUM_GLOBAL_FEATURES)

CONF_TABLE_MAX = 128
"""Counts above this are clipped when looking up the confidence table (``M <= 128`` in practice)."""

DEFAULT_STABILITY_HORIZON = 10


class ObsParams(NamedTuple):
    """Normalisers of the observation (see the module docstring)."""
    depth_scale: float        # K_max + 1
    cost_scale: float         # token budget, else M * max fully-probed branch cost
    step_scale: float         # max_episode_steps, else M * (K_max + 2) (x2 unfused)
    stability_horizon: float  # H
    budget: float             # token budget (0: none)


@lru_cache(maxsize=4)
def confidence_table(max_count: int = CONF_TABLE_MAX) -> np.ndarray:
    """float64 table ``[max_count + 1, max_count + 1]`` of ``conf(t1, t2) = P[Bin(t1+t2+1, 1/2) <= t1]``
    (0 for ``t1 = 0``): the corner of the one exact table, :func:`tts_gym.core.voting.conf_table`."""
    table = np.ascontiguousarray(conf_table()[: max_count + 1, : max_count + 1])
    table.flags.writeable = False
    return table


def make_obs_params(data: ReplayData, params: EnvParams, *, max_episode_steps: int | None = None,
                    stability_horizon: float = DEFAULT_STABILITY_HORIZON) -> ObsParams:
    """Normalisers derived from the packed data and the env parameters."""
    M = int(params.max_branches)
    k_max = int(data.num_probes.max()) if data.num_probes.size else 0
    pf = data.probe_interval.astype(np.int64)[:, None]
    full_cost = np.maximum(data.branch_tokens, data.num_probes.astype(np.int64) * pf)
    max_branch_cost = float(full_cost.max()) if full_cost.size else 1.0
    budget = float(params.token_budget) if params.token_budget > 0 else 0.0
    cost_scale = budget if budget > 0 else max(1.0, M * max_branch_cost)
    if max_episode_steps:
        step_scale = float(max_episode_steps)
    else:
        step_scale = float(M * (k_max + 2) * (1 if params.fused else 2))
    return ObsParams(depth_scale=float(k_max + 1), cost_scale=float(cost_scale),
                     step_scale=max(1.0, step_scale), stability_horizon=float(stability_horizon),
                     budget=budget)


def observation_space(max_branches: int, max_cost_weight: float = 1.0) -> spaces.Dict:
    """The single-episode observation space (see the module docstring)."""
    M = int(max_branches)
    high = np.ones(NUM_GLOBAL_FEATURES, dtype=np.float32)
    high[G_COST_WEIGHT] = max(1.0, float(max_cost_weight))
    return spaces.Dict({
        "positions": spaces.Box(0.0, 1.0, shape=(M, NUM_POSITION_FEATURES), dtype=np.float32),
        "globals": spaces.Box(np.zeros(NUM_GLOBAL_FEATURES, np.float32), high, dtype=np.float32),
    })


def make_buffers(num_envs: int, max_branches: int):
    """Zeroed batch-first observation buffers ``(positions[E, M, F], globals[E, G])``."""
    return (np.zeros((num_envs, max_branches, NUM_POSITION_FEATURES), np.float32),
            np.zeros((num_envs, NUM_GLOBAL_FEATURES), np.float32))


def make_scratch(data: ReplayData) -> np.ndarray:
    """Counting scratch ``int32[2, A]`` (``A`` = largest answer table); must start zeroed and is left
    zeroed by the kernels."""
    a = int(data.num_answers.max()) if data.num_answers.size else 1
    return np.zeros((2, max(a, 1)), np.int32)


# ---------------------------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------------------------

@nb.njit(cache=True, nogil=True, _nrt=False)
def observe_episode(state, data, params, oparams, conf, gamma, e, pos, glob, scratch, full):
    """Write episode ``e``'s observation into ``pos[e]`` / ``glob[e]``.

    ``full=False`` rewrites only the opened rows (valid when the buffer holds this episode's
    previous observation); ``full=True`` rewrites every row (needed after a reset)."""
    M = pos.shape[1]
    n = state.cursor[e]
    limit = position_limit(state, data, params, e)
    cnt = scratch[0]
    fcnt = scratch[1]
    # this episode's rows as 1-D views (hoisted out of the loops)
    flags = state.flags[e]
    latest = state.latest[e]
    depth = state.depth[e]
    rdepth = state.revealed_depth[e]
    stable = state.stable[e]
    rtime = state.reveal_time[e]
    # pass 1: vote counts over the pool, finished-answer counts, flag counts
    pool = 0
    nfin = 0      # finished positions
    nfinal = 0    # ... whose final answer has been revealed (the "finished answers")
    npruned = 0
    for p in range(n):
        f = flags[p]
        if f & PRUNED:
            npruned += 1
            continue
        fin = (f & FINISHED) != 0
        nfin += fin
        a = latest[p]
        if a >= 0:
            pool += 1
            cnt[a] += 1
            if fin and rdepth[p] == depth[p]:
                fcnt[a] += 1
                nfinal += 1
    nlive = n - npruned - nfin
    # pass 2: plurality / runner-up (first-occurrence tie rule) and finished top-2 counts.
    # A processed answer's count is negated to mark it seen.
    b1, c1, b2, c2, distinct = -1, 0, -1, 0, 0
    t1, t2 = 0, 0
    for p in range(n):
        a = latest[p]
        if a < 0 or (flags[p] & PRUNED):
            continue
        c = cnt[a]
        if c > 0:
            distinct += 1
            if c > c1:
                b2, c2 = b1, c1
                b1, c1 = a, c
            elif c > c2:
                b2, c2 = a, c
            cnt[a] = -c
            fc = fcnt[a]
            if fc > t1:
                t2 = t1
                t1 = fc
            elif fc > t2:
                t2 = fc
    inv_pool = 1.0 / pool if pool > 0 else 0.0
    inv_fin = 1.0 / nfinal if nfinal > 0 else 0.0
    inv_h = 1.0 / oparams.stability_horizon
    inv_depth = 1.0 / oparams.depth_scale
    last = state.steps[e] - 1
    # pass 3: per-position rows of opened positions
    pe = pos[e]
    for p in range(n):
        f = flags[p]
        a = latest[p]
        dp = depth[p]
        pruned = (f & PRUNED) != 0
        finished = (f & FINISHED) != 0
        row = pe[p]
        row[P_OPENED] = 1.0
        row[P_LIVE] = 1.0 if not (pruned or finished) else 0.0
        row[P_FINISHED] = 1.0 if finished else 0.0
        row[P_PRUNED] = 1.0 if pruned else 0.0
        row[P_SAMPLED] = 1.0 if (f & SAMPLED) else 0.0
        row[P_AVAILABLE] = 0.0
        d = dp * inv_depth
        row[P_DEPTH] = d if d < 1.0 else 1.0
        row[P_UNREVEALED] = 1.0 if dp > rdepth[p] else 0.0
        if a >= 0:
            row[P_REVEALED] = 1.0
            if not pruned:
                row[P_SHARE] = -cnt[a] * inv_pool
                row[P_TOP1] = 1.0 if a == b1 else 0.0
                row[P_TOP2] = 1.0 if a == b2 else 0.0
            else:
                row[P_SHARE] = 0.0
                row[P_TOP1] = 0.0
                row[P_TOP2] = 0.0
            s = stable[p] * inv_h
            row[P_STABILITY] = s if s < 1.0 else 1.0
            row[P_FINISHED_SHARE] = fcnt[a] * inv_fin
            row[P_FRESH] = 1.0 if rtime[p] == last else 0.0
        else:
            row[P_REVEALED] = 0.0
            row[P_SHARE] = 0.0
            row[P_TOP1] = 0.0
            row[P_TOP2] = 0.0
            row[P_STABILITY] = 0.0
            row[P_FINISHED_SHARE] = 0.0
            row[P_FRESH] = 0.0
    # pass 4: clear the scratch (only touched entries; after pass 3, which reads it)
    for p in range(n):
        a = latest[p]
        if a >= 0:
            cnt[a] = 0
            fcnt[a] = 0
    if full:
        F = pos.shape[2]
        for p in range(n, M):
            row = pos[e, p]
            for j in range(F):
                row[j] = 0.0
            row[P_AVAILABLE] = 1.0 if p < limit else 0.0
    # globals
    g = glob[e]
    invm = 1.0 / M
    g[G_WIDTH] = n * invm
    g[G_LIMIT] = limit * invm
    cost = state.cost[e]
    x = cost / oparams.cost_scale
    g[G_COST] = x if x < 1.0 else 1.0
    if oparams.budget > 0:
        x = cost / oparams.budget
        g[G_BUDGET] = x if x < 1.0 else 1.0
    else:
        g[G_BUDGET] = 0.0
    g[G_TOP1] = c1 * inv_pool
    g[G_TOP2] = c2 * inv_pool
    g[G_VOTES] = pool * invm
    g[G_CLUSTERS] = distinct * invm
    g[G_FINISHED] = nfin * invm
    g[G_LIVE] = nlive * invm
    g[G_PRUNED] = npruned * invm
    cmax = conf.shape[0] - 1
    g[G_CONF] = conf[t1 if t1 < cmax else cmax, t2 if t2 < cmax else cmax]
    g[G_FIN_TOP1] = t1 * inv_fin
    g[_G_GAMMA] = gamma
    x = state.steps[e] / oparams.step_scale
    g[G_STEPS] = x if x < 1.0 else 1.0


@nb.njit(cache=True, nogil=True, _nrt=False)
def observe_subset(state, data, params, oparams, conf, gammas, pos, glob, scratch, env_ids, full):
    """:func:`observe_episode` for the episodes ``env_ids`` only."""
    for j in range(env_ids.shape[0]):
        e = env_ids[j]
        observe_episode(state, data, params, oparams, conf, gammas[e], e, pos, glob, scratch, full)


def feature_dict(obs: dict, p: int | None = None) -> dict:
    """Readable ``{feature name: value}`` of one observation (a position row if ``p`` is given)."""
    if p is None:
        return dict(zip(GLOBAL_FEATURES, map(float, obs["globals"])))
    return dict(zip(POSITION_FEATURES, map(float, obs["positions"][p])))


# cache entries also keyed on the compiled layer's sources (see tts_gym.core.numba_cache)
from tts_gym.core.numba_cache import bind_module_cache  # noqa: E402

bind_module_cache(globals())
