"""Policies played live (``tts_gym.online``, ``tts-gym run``) against the loopback server.

The loopback server (``tests/loopback_server.py``, hash backend) samples every completion from its
request alone (prompt, seed, ...), like a server honouring per-request seeds, and injects faults on
demand. A store collected from it with a configuration, replayed, must give the answers and costs
of the same policy played live with that configuration; the real llama.cpp server gets the same
checks in ``tests/test_online_llama.py``.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from loopback_server import HashLM, LoopbackServer
from tts_gym.collect import CollectConfig, collect, load_questions
from tts_gym.core import actions as A
from tts_gym.data.hdf5 import open_store
from tts_gym.evaluation.rollout import evaluate_reference_python, make_reference_env, run_episodes
from tts_gym.online import LiveRunError, Server, run
from tts_gym.policies.base import RandomMaskedPolicy, ScriptedPolicy
from tts_gym.policies.baselines import make_policy

NUM_Q, BRANCHES, INTERVAL, MAX_TOKENS = 4, 6, 8, 40
BASELINES = {"sc": {"max_samples": 4}, "asc": {"max_samples": BRANCHES, "threshold": 0.6},
             "esc": {"max_samples": BRANCHES, "window_size": 2},
             "parallel_probe": {"num_chains": BRANCHES, "T": 2, "prune_patience": 1, "warm_up": 1},
             "cmc": {"beta": 0.5}}


def config(**kw) -> CollectConfig:
    base = dict(branches=BRANCHES, interval=INTERVAL, max_tokens=MAX_TOKENS, instruction="", probe_max_tokens=3,
                temperature=1.0, top_p=0.95, seed=7)
    base.update(kw)
    return CollectConfig.with_template("tiny", "raw", **base)


def hash_lm() -> HashLM:
    return HashLM(seed=1, p_eos=0.04)


@pytest.fixture(scope="module")
def questions_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("questions") / "toy.jsonl"
    with open(path, "w") as fh:
        for i in range(NUM_Q):
            fh.write(json.dumps({"id": f"q{i}", "question": f"[qid:q{i}] What is {i} + {i}?", "answer": 2 * i}) + "\n")
    return path


@pytest.fixture(scope="module")
def server():
    with LoopbackServer(hash_lm(), model_name="tiny", latency=0.002) as srv:
        yield srv


@pytest.fixture(scope="module")
def store(server, questions_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("collected") / "toy.h5"
    return collect(config(), load_questions(questions_file), base_url=server.url, output=out, benchmark="toy",
                   concurrency=8, progress="none").store


def replay(store, policy, seed: int, **env_kwargs):
    """Answer strings and costs of ``policy`` replayed on ``store`` (episodes ``(q, seed)``)."""
    res = evaluate_reference_python(store, policy, seeds=[seed], env_kwargs=env_kwargs)
    answers = [store.answer_tables[q][a] if a >= 0 else None for q, a in enumerate(res.answers[0])]
    return answers, res.costs[0].tolist()


def live(result):
    return [r.answer for r in result.results], [r.tokens for r in result.results]


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_live_equals_replay_of_the_collected_store(name, server, store, questions_file):
    params = BASELINES[name]
    for seed in (0, 3):
        expected = replay(store, make_policy(name, **params), seed)
        for prefetch in (True, False):
            res = run(name, questions_file, Server(server.url, "tiny"), config=config(), params=params,
                      shuffle_seed=seed, prefetch=prefetch)
            assert live(res) == expected, (name, seed, prefetch)
            for r in res.results:
                assert r.generated_tokens == r.tokens + r.probe_tokens + r.speculative_tokens
                if not prefetch:
                    assert r.speculative_tokens == 0
            correct = [a == q.gold_answer for a, q in zip(expected[0], load_questions(questions_file))]
            assert [r.correct for r in res.results] == correct


class OpenContinueProbe(ScriptedPolicy):
    """Unfused: BRANCH two positions, CONTINUE each twice (while live), PROBE each, ANSWER by vote."""

    name = "open_continue_probe"

    def script(self, view):
        M = view.max_branches
        for _ in range(2):
            yield A.BRANCH
        for p in range(2):
            for _ in range(2):
                if not view.is_finished(p):
                    yield A.continue_action(p, M)
            yield A.probe_action(p, M)
        yield A.ANSWER


def test_unfused_probes_only_on_demand_and_equal_replay(server, store, questions_file):
    env = make_reference_env(store, fused=False)
    ref = run_episodes(env, OpenContinueProbe(), [(q, 0) for q in range(NUM_Q)])
    expected = ([store.answer_tables[q][a] if a >= 0 else None for q, a in enumerate(ref.answers)],
                ref.costs.tolist())
    res = run(OpenContinueProbe(), questions_file, Server(server.url, "tiny"), config=config(), fused=False,
              shuffle_seed=0, prefetch=False)
    assert live(res) == expected
    for r in res.results:  # one answer-forcing request per PROBE, none for BRANCH/CONTINUE
        asked = r.usage.get("probe", {}).get("requests", 0) + r.usage.get("final", {}).get("requests", 0)
        assert asked <= 2


def test_token_budget_and_masks_live_equal_replay(server, store, questions_file):
    # a seeded random policy over the admissible actions: the same masks give the same actions
    budget = 3 * INTERVAL + 3
    for seed in (0, 1):
        expected = replay(store, RandomMaskedPolicy(seed=seed, answer_prob=0.1), 1, token_budget=budget)
        res = run(RandomMaskedPolicy(seed=seed, answer_prob=0.1), questions_file, Server(server.url, "tiny"),
                  config=config(), shuffle_seed=1, token_budget=budget)
        assert live(res) == expected
        assert max(r.tokens for r in res.results) < budget + MAX_TOKENS


def test_controller_file_and_agent_live_equal_replay(server, store, questions_file):
    from tts_gym.discovery.sandbox import load_controller_policy
    from tts_gym.rl import load_agent_policy

    root = Path(__file__).resolve().parents[1]
    ctrl = lambda: load_controller_policy(root / "agents" / "controllers" / "cmc.py", beta=0.5)  # noqa: E731
    expected = replay(store, ctrl(), 2)
    assert live(run(ctrl(), questions_file, Server(server.url, "tiny"), config=config(), shuffle_seed=2)) == expected
    assert expected == replay(store, make_policy("cmc", beta=0.5), 2)   # the file is CMC
    agent = lambda: load_agent_policy("maskable_ppo_aime24", 0.01, deterministic=True)  # noqa: E731
    expected = replay(store, agent(), 2)
    assert live(run(agent(), questions_file, Server(server.url, "tiny"), config=config(), shuffle_seed=2)) == expected


def test_requests_in_flight_and_token_accounting(questions_file):
    for prefetch in (False, True):
        with LoopbackServer(hash_lm(), model_name="tiny", latency=0.01) as srv:
            t0 = time.perf_counter()
            res = run("cmc", questions_file, Server(srv.url, "tiny", concurrency=4), config=config(),
                      params={"beta": 0.5}, prefetch=prefetch, record=False)
            wall = time.perf_counter() - t0
            st = srv.stats()
        assert res.usage.requests == st["requests"] == st["completed"]
        assert res.usage.completion_tokens == st["completion_tokens"]
        assert st["max_in_flight"] == (1 if not prefetch else 4)   # bounded by the client's concurrency
        total = sum(r.generated_tokens for r in res.results)
        assert total == sum(r.tokens + r.probe_tokens + r.speculative_tokens for r in res.results)
        if not prefetch:
            sequential = wall, [(r.tokens, r.probe_tokens) for r in res.results]
            assert all(r.speculative_tokens == 0 for r in res.results)
        else:   # what the policy read does not depend on what was requested ahead of it
            assert [(r.tokens, r.probe_tokens) for r in res.results] == sequential[1]
    assert wall < sequential[0]  # 10 ms per request: overlapping them pays


def test_questions_in_flight_play_policy_copies_with_the_same_results(server, questions_file):
    one = run("cmc", questions_file, Server(server.url, "tiny"), config=config(), params={"beta": 0.5})
    many = run("cmc", questions_file, Server(server.url, "tiny"), config=config(), params={"beta": 0.5},
               questions_in_flight=3)
    assert live(many) == live(one)
    assert many.store.equals(one.store) and one.store.num_questions == NUM_Q   # recorded in memory by default
    assert run("sc", questions_file, Server(server.url, "tiny"), config=config(), record=False).store is None
    assert [r.id for r in many.results] == [f"q{i}" for i in range(NUM_Q)]


def test_recorded_store_holds_the_sampled_trajectories(server, store, questions_file, tmp_path):
    for mode in ("finished", "complete"):
        out = tmp_path / f"{mode}.h5"
        res = run("cmc", questions_file, Server(server.url, "tiny"), config=config(), params={"beta": 0.5},
                  record=out, record_mode=mode, benchmark="toy-live")
        rec = open_store(out)
        assert rec.equals(res.store) and (rec.model, rec.benchmark) == ("tiny", "toy-live")
        rec.validate()
        ids = json.loads(rec.attrs["branch_ids"])
        assert not (tmp_path / f"{mode}.h5.ckpt").exists()
        for q in range(rec.num_questions):
            bids = ids[str(q)]
            assert len(bids) == int(rec.num_branches[q])
            if mode == "complete":  # every opened position, finished for the store
                assert len(bids) >= res.results[q].opened
            else:
                assert len(bids) >= res.results[q].finished
            for j, b in enumerate(bids):  # the same trajectory as the collector sampled for that branch
                assert rec.branch_tokens[q, j] == store.branch_tokens[q, b]
                assert rec.num_probes[q, j] == store.num_probes[q, b]
                got = [rec.answer_tables[q][a] for a in rec.probe_ids[q, j, :rec.num_probes[q, j]]]
                want = [store.answer_tables[q][a] for a in store.probe_ids[q, b, :store.num_probes[q, b]]]
                assert got == want
                assert rec.answer_tables[q][rec.final_ids[q, j]] == store.answer_tables[q][store.final_ids[q, b]]
            assert rec.gold_answers[q] == store.gold_answers[q]


def test_retried_faults_give_the_same_answers(server, questions_file):
    expected = live(run("asc", questions_file, Server(server.url, "tiny"), config=config(),
                        params=BASELINES["asc"]))
    with LoopbackServer(hash_lm(), model_name="tiny", fail_every=3, reset_every=7) as flaky:
        res = run("asc", questions_file, Server(flaky.url, "tiny", backoff=0.001, max_retries=40), config=config(),
                  params=BASELINES["asc"])
    assert res.usage.retries > 0
    assert live(res) == expected


def test_server_killed_mid_run_is_a_clear_error_and_resumes(questions_file, tmp_path):
    srv = LoopbackServer(hash_lm(), model_name="tiny", latency=0.05).start()
    out = tmp_path / "run.h5"
    ckpt = tmp_path / "run.h5.ckpt"

    def kill_after_first_question():
        while not (ckpt / "q000000.json").exists():
            time.sleep(0.01)
        srv.stop()

    killer = threading.Thread(target=kill_after_first_question, daemon=True)
    killer.start()
    with pytest.raises(LiveRunError) as err:
        run("cmc", questions_file, Server(srv.url, "tiny", max_retries=2, backoff=0.01), config=config(),
            params={"beta": 0.5}, record=out)
    killer.join(5)
    msg = str(err.value)
    assert "server stopped answering" in msg and str(ckpt) in msg and "rerun" in msg
    assert "\n" not in msg
    assert (ckpt / "q000000.json").exists() and not out.exists()
    with LoopbackServer(hash_lm(), model_name="tiny") as again:
        res = run("cmc", questions_file, Server(again.url, "tiny"), config=config(), params={"beta": 0.5}, record=out)
        asked = again.stats()["by_tag"]
    assert res.resumed >= 1 and asked.get("q0", 0) == 0   # the checkpointed question was not played again
    with LoopbackServer(hash_lm(), model_name="tiny") as fresh:
        ref = run("cmc", questions_file, Server(fresh.url, "tiny"), config=config(), params={"beta": 0.5},
                  record=tmp_path / "ref.h5")
    assert live(res) == live(ref)
    for name in ("probe_ids", "num_probes", "branch_tokens", "final_ids"):
        assert np.array_equal(getattr(res.store, name), getattr(ref.store, name))
    assert not ckpt.exists()


class AdvancesUnopened(ScriptedPolicy):
    name = "advances_unopened"

    def script(self, view):
        yield A.BRANCH
        yield A.continue_action(3, view.max_branches)


def test_inadmissible_action_names_question_and_action(server, questions_file):
    with pytest.raises(LiveRunError, match=r"question q0: action CONTINUE\(3\) is not admissible: .*not been opened"):
        run(AdvancesUnopened(), questions_file, Server(server.url, "tiny"), config=config())
    with pytest.raises(ValueError, match="model="):
        run("sc", questions_file, server.url, config=config())


def test_cli_run_writes_report_csv_and_store(server, questions_file, tmp_path, capsys):
    from tts_gym.cli import main

    prefix = tmp_path / "out" / "cmc"
    prefix.parent.mkdir()
    opts = ["run", "--base-url", server.url, "--model", "tiny", "--questions", str(questions_file),
            "--template", "raw", "--instruction", "", "--branches", str(BRANCHES), "--interval", str(INTERVAL),
            "--max-tokens", str(MAX_TOKENS), "--probe-max-tokens", "3", "--temperature", "1.0", "--seed", "7",
            "--progress", "plain", "-o", str(prefix)]
    assert main(opts + ["--policy", "cmc", "--param", "beta=0.5", "--shuffle-seed", "0"]) == 0
    out = capsys.readouterr()
    assert "run: question q3 (4/4)" in out.err and "accuracy" in out.out
    report = json.loads(Path(str(prefix) + ".json").read_text())
    assert report["summary"]["questions"] == NUM_Q and report["summary"]["policy"] == "cmc"
    assert report["config"]["interval"] == INTERVAL
    api = run("cmc", questions_file, Server(server.url, "tiny"), config=config(), params={"beta": 0.5}, shuffle_seed=0)
    assert [q["answer"] for q in report["questions"]] == live(api)[0]
    assert [q["tokens"] for q in report["questions"]] == live(api)[1]
    rows = Path(str(prefix) + ".csv").read_text().splitlines()
    assert rows[0].startswith("index,id,answer,gold,correct,tokens") and len(rows) == NUM_Q + 1
    open_store(str(prefix) + ".h5").validate()
    # existing outputs, bad input: one line on stderr, exit code 2
    assert main(opts + ["--policy", "cmc"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(opts + ["--policy", "cmc", "--agent", "x", "--overwrite"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    assert main(opts + ["--policy", "nope", "--overwrite"]) == 2
    assert main(opts[:6] + [str(tmp_path / "missing.jsonl")] + opts[7:] + ["--policy", "sc", "--overwrite"]) == 2
    assert "no such questions file" in capsys.readouterr().err
