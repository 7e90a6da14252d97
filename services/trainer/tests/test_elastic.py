"""Elastic outer exchange: groups as separate worlds meeting at the coordinator."""
import json
import threading
import time

import pytest

from deai_trainer.coordinator import Coordinator, make_server
from deai_trainer.corpus import generate
from deai_trainer.launch import ElasticGroup
from deai_trainer.layout import build_layout, write_manifest


# --- the coordinator's state machine (no processes) ---------------------------------------

class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _propose_async(coord, r, stage, group, body):
    out = {}

    def run():
        try:
            out["res"] = coord.propose(r, stage, group, body, wait_s=5.0)
        except Exception as exc:  # noqa: BLE001
            out["err"] = exc
    t = threading.Thread(target=run)
    t.start()
    return t, out


def test_round_closes_when_every_expected_group_posted_and_agrees_on_max():
    c = Coordinator(timeout_s=100)
    assert c.join(0, 1)["founding"] and c.join(1, 1)["founding"]
    t0, o0 = _propose_async(c, 1, 0, 0, {"ranks": [2, 5], "stats": [0.1, 0.0], "step": 5, "h": 5})
    time.sleep(0.1)
    assert "res" not in o0  # waits for group 1
    t1, o1 = _propose_async(c, 1, 0, 1, {"ranks": [4, 3], "stats": [0.2, 0.0], "step": 5, "h": 5})
    t0.join(), t1.join()
    for o in (o0, o1):
        assert o["res"]["member"] and o["res"]["members"] == [0, 1]
        assert o["res"]["ranks"] == [4, 5] and o["res"]["stats"] == [0.2, 0.0]
    c.payload(1, 0, 1, b"bb")
    c.payload(1, 0, 0, b"a")
    header, blobs = c.result(1, 0, wait_s=1)
    assert header["members"] == [0, 1] and blobs == [b"a", b"bb"] and header["endStep"] == 5


def test_a_missing_group_is_dropped_at_the_timeout_and_a_late_one_is_told_it_is_out():
    clock = FakeClock()
    c = Coordinator(timeout_s=2, clock=clock)
    c.join(0, 1), c.join(1, 1)
    t0, o0 = _propose_async(c, 1, 0, 0, {"ranks": None, "stats": None, "step": 3, "h": 3})
    time.sleep(0.1)
    clock.t = 2.5  # past the quorum timeout
    t0.join(2)
    assert o0["res"]["members"] == [0]
    assert c.state()["expected"] == [0]
    # group 1 arrives late: not a member, same answer, and waited for from the next round on
    late = c.propose(1, 0, 1, {"ranks": None, "stats": None, "step": 3, "h": 3}, wait_s=1)
    assert late["member"] is False and late["members"] == [0]
    with pytest.raises(ValueError):
        c.payload(1, 0, 1, b"x")
    assert c.state()["expected"] == [0, 1]


def test_leave_unblocks_a_round_and_join_after_the_start_is_not_founding():
    c = Coordinator(timeout_s=100)
    c.join(0, 1), c.join(1, 1)
    t0, o0 = _propose_async(c, 1, 0, 0, {"ranks": None, "stats": None, "step": 4, "h": 4})
    time.sleep(0.1)
    c.leave(1, "killed")
    t0.join(2)
    assert o0["res"]["members"] == [0]
    c.payload(1, 0, 0, b"a")
    info = c.join(1, 1)
    assert info == {"founding": False, "lastPosted": 1, "endStepOfLastPosted": 4, "firstRound": 1}
    with pytest.raises(ValueError):
        c.join(2, 2)  # every group has the same number of stages


# --- real worker processes ----------------------------------------------------------------

@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("edata")
    paths = {}
    for name, size, seed in (("train", 200_000, 1), ("heldOut", 20_000, 2)):
        m = build_layout(generate(size, seed), root / "store", name=name, k=4, m=2, shard_size=16384)
        paths[name] = root / f"{name}.json"
        write_manifest(m, paths[name])
    return {k: str(v) for k, v in paths.items()}


@pytest.fixture
def coordinator():
    coord = Coordinator(timeout_s=20, groups=2)
    server = make_server(coord)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    yield coord, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def job(data, tmp_path, steps=30, **diloco):
    return {
        "jobId": "el", "method": "diloco-x", "seed": 7,
        "model": {"contextLength": 16, "dModel": 32, "nLayers": 2, "nHeads": 2},
        "pipeline": {"stages": 1},
        "data": {"train": data["train"], "heldOut": data["heldOut"], "batchSize": 4, "heldOutTokens": 1024},
        "budget": {"tokens": 2 * 4 * 16 * steps},
        "outer": {"lr": 0.7, "momentum": 0.9},
        "diloco": {"innerSteps": 5, **diloco},
        "checkpoint": {"endpoint": f"file://{tmp_path}", "bucket": "ck", "prefix": "jobs/el", "everyRounds": 2},
        "verifyReplicas": True, "timeoutS": 60,
    }


def anchor_digests(events):
    """outer step -> anchor digest, from replicaCheck lines."""
    out = {}
    for e in events:
        if e["event"] == "replicaCheck" and e["where"].startswith("outer step"):
            out[int(e["where"].split()[2])] = e["digest"]
    return out


def start(tmp_path, cfg, group, url, groups=2, env=None, tag=""):
    path = tmp_path / "job.json"
    path.write_text(json.dumps(cfg))
    return ElasticGroup(path, tmp_path, group, cfg["pipeline"]["stages"], groups, url, env=env, tag=tag)


@pytest.mark.parametrize("stages", [1, 2])
def test_two_elastic_groups_train_with_bitwise_identical_anchors(data, tmp_path, coordinator, stages):
    coord, url = coordinator
    cfg = {**job(data, tmp_path), "pipeline": {"stages": stages, "microBatches": 2}}
    groups = [start(tmp_path, cfg, g, url) for g in range(2)]
    codes = [g.wait(120) for g in groups]
    assert codes == [[0] * stages, [0] * stages], "\n".join(g.stderr() for g in groups)
    for s in range(stages):
        ev = [[e for e in g.events() if e["stage"] == s] for g in groups]
        summaries = [next(e for e in evs if e["event"] == "summary") for evs in ev]
        assert all(x["elastic"] and x["innerSteps"] == 30 and x["outerSteps"] == 6 for x in summaries)
        assert summaries[0]["finalDigest"] == summaries[1]["finalDigest"]
        a, b = anchor_digests(ev[0]), anchor_digests(ev[1])
        assert len(a) == 6 and a == b
    last = [next(e for e in g.events() if e["event"] == "summary" and e["stage"] == stages - 1) for g in groups]
    assert last[0]["trainLosses"][-1] < last[0]["trainLosses"][0]
    assert last[0]["heldOutLoss"] == last[1]["heldOutLoss"] < 5.0
    rounds = coord.state()["rounds"]
    assert len(rounds) == 6 and all(r["members"] == [0, 1] and r["closedBy"] == "all" for r in rounds)


@pytest.mark.parametrize("delayed", [True, False])
def test_a_group_killed_mid_run_rejoins_from_its_checkpoint(data, tmp_path, coordinator, delayed):
    """Group 1 is SIGKILLed after its round-2 checkpoint; group 0 keeps training; group 1 restarts
    from DEAI_RESUME_FROM, replays the rounds it missed and ends with group 0's anchor."""
    coord, url = coordinator
    cfg = job(data, tmp_path, steps=200, delayedOverlap=delayed)
    g0, g1 = start(tmp_path, cfg, 0, url), start(tmp_path, cfg, 1, url)
    deadline = time.monotonic() + 90
    while not any(e["event"] == "checkpoint" and e["round"] == 2 for e in g1.events()):
        assert time.monotonic() < deadline and g1.procs[0].poll() is None, g1.stderr()
        time.sleep(0.05)
    g1.kill()
    coord.leave(1, "killed")  # what the operator does when it sees the exit
    killed_at = max((e["step"] for e in g0.events() if e["event"] == "progress"), default=0)
    g1b = start(tmp_path, cfg, 1, url, env={"DEAI_RESUME_FROM": "jobs/el/round-000002"}, tag="b")
    assert g0.wait(180) == [0], g0.stderr()
    assert g1b.wait(180) == [0], g1b.stderr()
    e0, e1 = g0.events(), g1b.events()
    resumed = next(e for e in e1 if e["event"] == "resumed")
    joined = next(e for e in e1 if e["event"] == "joined")
    assert resumed["step"] == 10 and joined["founding"] is False and joined["replayedRounds"] >= 1
    rejoin_step = joined["step"]
    assert rejoin_step > killed_at  # group 0 trained on while group 1 was away
    s0 = next(e for e in e0 if e["event"] == "summary")
    s1 = next(e for e in e1 if e["event"] == "summary")
    assert s0["innerSteps"] == s1["innerSteps"] == 200
    assert s0["finalDigest"] == s1["finalDigest"]
    a, b = anchor_digests(e0), anchor_digests(e1)
    common = set(a) & set(b)
    assert common and all(a[k] == b[k] for k in common)
    # group 0 was a member of every round (nothing it trained was left out)
    rounds = coord.state()["rounds"]
    assert all(0 in r["members"] for r in rounds) and not any(0 in r["late"] for r in rounds)


def test_a_warm_spare_takes_a_group_when_assigned(data, tmp_path, coordinator):
    """DEAI_STANDBY=1: the spare loads torch and the data, waits, then trains as the group it is given."""
    coord, url = coordinator
    cfg = job(data, tmp_path, steps=60)
    path = tmp_path / "job.json"
    path.write_text(json.dumps(cfg))
    spare = ElasticGroup(path, tmp_path, -1, 1, 2, url, tag="-spare", standby=True)
    g0 = start(tmp_path, cfg, 0, url)
    deadline = time.monotonic() + 60
    while not spare.ready():
        assert time.monotonic() < deadline and spare.procs[0].poll() is None, spare.stderr()
        time.sleep(0.05)
    assert not [e for e in spare.events() if e["event"] == "start"]  # nothing runs before the assignment
    spare.assign(1, url)
    assert g0.wait(120) == [0], g0.stderr()
    assert spare.wait(120) == [0], spare.stderr()
    s0 = next(e for e in g0.events() if e["event"] == "summary")
    s1 = next(e for e in spare.events() if e["event"] == "summary")
    assert s1["group"] == 1 and s0["innerSteps"] == s1["innerSteps"] == 60
    assert s0["finalDigest"] == s1["finalDigest"]
    a, b = anchor_digests(g0.events()), anchor_digests(spare.events())
    assert set(a) & set(b) and all(a[k] == b[k] for k in set(a) & set(b))
