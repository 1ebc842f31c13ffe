"""The flat discrete action layout shared by the kernels, the envs and every policy.

With ``M = max_branches`` positions (a position is a branch's index in the episode's shuffled
order, i.e. its opening order), the action space is ``Discrete(4 + 4*M)``:

==================  ==================  ===============================================================
id                  name                effect
==================  ==================  ===============================================================
``0``               ``BRANCH``          open the next branch (position ``cursor``) and advance it one
                                        interval (``pf`` tokens); fused mode reveals probe 1
``1``               ``SAMPLE``          read the next branch to completion at its full cost ``T_b``,
                                        revealing only its final answer (SC/ASC/ESC's primitive)
``2``               ``ANSWER``          stop; answer with the default aggregator (see the env docs)
``3``               ``ABSTAIN``         stop without an answer (scored wrong; a controller's ``None``)
``4 + i``           ``CONTINUE(i)``     advance position ``i`` one interval; on an exhausted probe list
                                        this is the finishing step (charges ``max(0, T_b - K_b*pf)``,
                                        reveals the final answer); fused mode reveals the new answer
``4 + M + i``       ``PROBE(i)``        reveal position ``i``'s answer at its current depth (unfused
                                        mode only; costs ``probe_cost`` tokens)
``4 + 2M + i``      ``PRUNE(i)``        zero-cost bookkeeping: position ``i`` takes no more actions and
                                        leaves the default vote
``4 + 3M + i``      ``ANSWER_WITH(i)``  stop; answer with position ``i``'s latest revealed answer
==================  ==================  ===============================================================
"""
from __future__ import annotations

BRANCH = 0
SAMPLE = 1
ANSWER = 2
ABSTAIN = 3
NUM_GLOBAL_ACTIONS = 4


def num_actions(max_branches: int) -> int:
    return NUM_GLOBAL_ACTIONS + 4 * max_branches


def continue_action(i: int, max_branches: int) -> int:
    return NUM_GLOBAL_ACTIONS + i


def probe_action(i: int, max_branches: int) -> int:
    return NUM_GLOBAL_ACTIONS + max_branches + i


def prune_action(i: int, max_branches: int) -> int:
    return NUM_GLOBAL_ACTIONS + 2 * max_branches + i


def answer_with_action(i: int, max_branches: int) -> int:
    return NUM_GLOBAL_ACTIONS + 3 * max_branches + i


def describe(action: int, max_branches: int) -> str:
    """Human-readable name of an action id, e.g. ``'CONTINUE(3)'`` (used in error messages)."""
    a, m = int(action), int(max_branches)
    if a < 0 or a >= num_actions(m):
        return f"<invalid action id {a}; valid ids are 0..{num_actions(m) - 1}>"
    if a < NUM_GLOBAL_ACTIONS:
        return ("BRANCH", "SAMPLE", "ANSWER", "ABSTAIN")[a]
    kind, i = divmod(a - NUM_GLOBAL_ACTIONS, m)
    return f"{('CONTINUE', 'PROBE', 'PRUNE', 'ANSWER_WITH')[kind]}({i})"
