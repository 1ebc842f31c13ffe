"""A small permutation-equivariant actor-critic for ``tts_gym/Replay-v0`` (SB3 / sb3-contrib policies).

The env's action space is ``Discrete(4 + 4M)``: four global actions (``BRANCH``, ``SAMPLE``,
``ANSWER``, ``ABSTAIN``) and four per-position actions (``CONTINUE(i)``, ``PROBE(i)``, ``PRUNE(i)``,
``ANSWER_WITH(i)``). A flat MLP would have to learn ``CONTINUE(i)`` separately for every ``i``; here
one shared MLP scores every position from its own features and an episode context, so what is learnt
about position 3 applies to position 40 (the network is equivariant to permuting the opened
positions). The per-position work is one ``F -> H`` layer and one ``H -> 4`` layer (the cost of a
forward pass grows with ``M * H``); sizes are tiny (``hidden=32``: ~6k parameters).

::

    g      = MLP(globals with log-scaled cost weight)                episode context     [B, H]
    h_i    = relu(W_p x_i + U_p g)                                   per position        [B, M, H]
    z      = MLP([g, mean_opened(h), max_opened(h)])                 pooled state        [B, H]
    global logits   = W_g z                                          BRANCH SAMPLE ANSWER ABSTAIN
    position logits = W_o h_i + U_o z                                CONTINUE PROBE PRUNE ANSWER_WITH (of i)
    value           = from relu(W_v z)

``action_kinds`` restricts what the agent may ever choose (the others get a fixed ``-1e8`` logit, on top
of the env's admissibility mask); the default drops ``ABSTAIN`` (dominated by ``ANSWER``), ``PROBE``
(never admissible in fused mode) and ``ANSWER_WITH`` (committing a minority answer).

The cost weight ``w`` enters as ``(log(w) - centre) / half_width`` over ``cost_weight_range``, so a
log-uniform training range maps to ``[-1, 1]``.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from tts_gym.core.observation import G_COST_WEIGHT

__all__ = ["ACTION_KINDS", "DEFAULT_ACTION_KINDS", "ReplayFeatures", "EquivariantNet",
           "ReplayActorCriticPolicy", "MaskableReplayPolicy", "allowed_actions"]

ACTION_KINDS = ("branch", "sample", "answer", "abstain", "continue", "probe", "prune", "answer_with")
DEFAULT_ACTION_KINDS = ("branch", "sample", "answer", "continue", "prune")


def allowed_actions(max_branches: int, kinds: Sequence[str]) -> np.ndarray:
    """Bool mask over ``Discrete(4 + 4M)`` of the actions of the given kinds."""
    bad = set(kinds) - set(ACTION_KINDS)
    if bad:
        raise ValueError(f"unknown action kinds {sorted(bad)}; choose from {ACTION_KINDS}")
    M = int(max_branches)
    out = np.zeros(4 + 4 * M, np.bool_)
    for k, name in enumerate(ACTION_KINDS[:4]):
        out[k] = name in kinds
    for k, name in enumerate(ACTION_KINDS[4:]):
        out[4 + k * M: 4 + (k + 1) * M] = name in kinds
    return out


class ReplayFeatures(BaseFeaturesExtractor):
    """Concatenate ``globals`` and the flattened ``positions`` (the structure is used by
    :class:`EquivariantNet`, which un-flattens them)."""

    def __init__(self, observation_space: spaces.Dict):
        M, F = observation_space["positions"].shape
        G = observation_space["globals"].shape[0]
        super().__init__(observation_space, features_dim=G + M * F)

    def forward(self, obs) -> th.Tensor:
        return th.cat([obs["globals"], obs["positions"].flatten(1)], dim=1)


class EquivariantNet(nn.Module):
    """The shared encoder and the actor / critic heads (SB3 ``mlp_extractor`` protocol:
    ``latent_dim_pi`` = number of actions, the logits themselves; ``latent_dim_vf`` = ``hidden``)."""

    def __init__(self, max_branches: int, num_position_features: int, num_global_features: int,
                 hidden: int = 32, cost_weight_range: Sequence[float] = (1e-3, 0.3),
                 action_kinds: Sequence[str] = DEFAULT_ACTION_KINDS):
        super().__init__()
        self.M, self.F, self.G, H = int(max_branches), int(num_position_features), int(num_global_features), int(hidden)
        lo, hi = (float(x) for x in cost_weight_range)
        self.g_centre = 0.5 * (math.log(lo) + math.log(hi))
        self.g_half = max(1e-6, 0.5 * (math.log(hi) - math.log(lo)))
        self.g_floor = lo * 1e-2
        self.latent_dim_pi = 4 + 4 * self.M
        self.latent_dim_vf = H
        self.glob = nn.Sequential(nn.Linear(self.G, H), nn.ReLU(), nn.Linear(H, H), nn.ReLU())
        self.pos_in = nn.Linear(self.F, H)
        self.pos_ctx = nn.Linear(H, H, bias=False)
        self.pool = nn.Sequential(nn.Linear(3 * H, H), nn.ReLU())
        self.pos_out = nn.Linear(H, 4)
        self.pos_zout = nn.Linear(H, 4, bias=False)
        self.glob_out = nn.Linear(H, 4)
        self.value_hid = nn.Sequential(nn.Linear(H, H), nn.ReLU())
        allowed = allowed_actions(self.M, action_kinds)
        self.register_buffer("blocked", th.as_tensor(~allowed), persistent=False)

    def init_heads(self) -> None:
        """Small initial logits (near-uniform first policy), as SB3 does for its action net."""
        for layer in (self.pos_out, self.pos_zout, self.glob_out):
            nn.init.orthogonal_(layer.weight, gain=0.01)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)

    def encode(self, features: th.Tensor):
        G, M, F = self.G, self.M, self.F
        g = features[:, :G]
        p = features[:, G:].reshape(-1, M, F)
        lg = (th.log(g[:, G_COST_WEIGHT].clamp_min(self.g_floor)) - self.g_centre) / self.g_half
        g = th.cat([g[:, :G_COST_WEIGHT], lg[:, None], g[:, G_COST_WEIGHT + 1:]], dim=1)
        ge = self.glob(g)
        h = th.relu(self.pos_in(p) + self.pos_ctx(ge)[:, None, :])
        opened = p[..., :1]                                   # feature 0: opened
        hm = h * opened
        n = opened.sum(1).clamp_min(1.0)
        z = self.pool(th.cat([ge, hm.sum(1) / n, hm.amax(1)], dim=1))
        return h, z

    def actor(self, h: th.Tensor, z: th.Tensor) -> th.Tensor:
        pos_logits = (self.pos_out(h) + self.pos_zout(z)[:, None, :]).transpose(1, 2).reshape(h.shape[0], 4 * self.M)
        logits = th.cat([self.glob_out(z), pos_logits], dim=1)
        return logits.masked_fill(self.blocked, -1e8)

    def numpy_actor(self):
        """A numpy copy of the actor (``features [B, G + M*F] -> logits [B, 4 + 4M]``): the same
        function as :meth:`forward_actor` (float32), without torch's per-op overhead -- several times
        faster for the batch-of-one calls of the Python evaluation loop. Snapshot of the current
        weights."""
        W = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in self.state_dict().items()}
        G, M, F = self.G, self.M, self.F
        c, hw, floor, gi = self.g_centre, self.g_half, self.g_floor, G_COST_WEIGHT
        blocked = self.blocked.cpu().numpy()

        def lin(x, name, bias=True):
            y = x @ W[name + ".weight"].T
            return y + W[name + ".bias"] if bias else y

        def relu(x):
            return np.maximum(x, 0.0)

        def actor(features: np.ndarray) -> np.ndarray:
            f = np.asarray(features, np.float32).reshape(-1, G + M * F)
            g = f[:, :G].copy()
            g[:, gi] = (np.log(np.maximum(g[:, gi], floor)) - c) / hw
            p = f[:, G:].reshape(-1, M, F)
            ge = relu(lin(relu(lin(g, "glob.0")), "glob.2"))
            h = relu(lin(p, "pos_in") + lin(ge, "pos_ctx", False)[:, None, :])
            hm = h * p[..., :1]
            n = np.maximum(p[..., :1].sum(1), 1.0)
            z = relu(lin(np.concatenate([ge, hm.sum(1) / n, hm.max(1)], axis=1), "pool.0"))
            pos = (lin(h, "pos_out") + lin(z, "pos_zout", False)[:, None, :]).transpose(0, 2, 1)
            logits = np.concatenate([lin(z, "glob_out"), pos.reshape(f.shape[0], 4 * M)], axis=1)
            logits[:, blocked] = -1e8
            return logits

        return actor

    def forward(self, features: th.Tensor):
        h, z = self.encode(features)
        return self.actor(h, z), self.value_hid(z)

    def forward_actor(self, features: th.Tensor) -> th.Tensor:
        return self.actor(*self.encode(features))

    def forward_critic(self, features: th.Tensor) -> th.Tensor:
        return self.value_hid(self.encode(features)[1])


class _ReplayPolicyMixin:
    """Installs :class:`ReplayFeatures` + :class:`EquivariantNet` in an SB3 actor-critic policy.
    Extra policy keyword arguments: ``hidden``, ``cost_weight_range``, ``action_kinds``."""

    def __init__(self, observation_space, action_space, lr_schedule, *, hidden: int = 32,
                 cost_weight_range: Sequence[float] = (1e-3, 0.3),
                 action_kinds: Sequence[str] = DEFAULT_ACTION_KINDS, **kwargs):
        self.net_kwargs = {"hidden": int(hidden), "cost_weight_range": [float(x) for x in cost_weight_range],
                           "action_kinds": list(action_kinds)}
        kwargs.setdefault("features_extractor_class", ReplayFeatures)
        kwargs.setdefault("share_features_extractor", True)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build_mlp_extractor(self) -> None:
        M, F = self.observation_space["positions"].shape
        G = self.observation_space["globals"].shape[0]
        self.mlp_extractor = EquivariantNet(M, F, G, **self.net_kwargs)

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        self.action_net = nn.Identity()          # the extractor already outputs the logits
        self.mlp_extractor.init_heads()
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_constructor_parameters(self):
        data = super()._get_constructor_parameters()
        data.update(self.net_kwargs)
        return data


class ReplayActorCriticPolicy(_ReplayPolicyMixin, ActorCriticPolicy):
    """For plain :class:`stable_baselines3.PPO` (inadmissible actions are the env's penalized no-ops)."""


def _maskable_base():
    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
    return MaskableActorCriticPolicy


class MaskableReplayPolicy(_ReplayPolicyMixin, _maskable_base()):
    """For :class:`sb3_contrib.MaskablePPO`."""
