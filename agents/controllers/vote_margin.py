"""Vote-margin self-consistency: a minimal controller file, and a template for new ones.

Reads whole trajectories (``get_new_branch_final_answer``, cost ``T_b`` each) until one answer
leads the runner-up by ``margin`` votes, at most ``max_reads`` of them; ``beta`` in [0, 1] raises
both, so token use grows with ``beta``. Usable as

    tts-gym eval --controller agents/controllers/vote_margin.py --param beta=0.5
    tts-gym discover --seed-controller agents/controllers/vote_margin.py ...
"""


class Controller:
    def __init__(self, beta):
        b = max(0.0, min(1.0, float(beta)))
        self.max_reads = 2 + round(30 * b)
        self.margin = 2 + round(2 * b)

    def solve(self, question):
        counts = {}                      # insertion order = first occurrence (breaks ties)
        for _ in range(self.max_reads):
            answer = question.get_new_branch_final_answer()
            if answer is None:           # every branch is used
                break
            counts[answer] = counts.get(answer, 0) + 1
            ranked = sorted(counts.values(), reverse=True)
            if ranked[0] - (ranked[1] if len(ranked) > 1 else 0) >= self.margin:
                break
        if not counts:
            return None
        return max(counts, key=counts.get)
