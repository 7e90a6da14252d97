import pytest

from deai_trainer.config import ConfigError, parse_job, rendezvous_from_env


def _doc(method, **extra):
    return {"method": method, "data": {"train": "t.json", "heldOut": "h.json"}, "budget": {"tokens": 1024}, **extra}


def test_outer_defaults_depend_on_the_delay():
    assert (parse_job(_doc("diloco")).outer_lr, parse_job(_doc("diloco")).outer_momentum) == (0.7, 0.9)
    x = parse_job(_doc("diloco-x"))
    assert x.diloco.delayed_overlap and (x.outer_lr, x.outer_momentum) == (0.35, 0.85)
    sync = parse_job(_doc("diloco-x", diloco={"delayedOverlap": False}))
    assert (sync.outer_lr, sync.outer_momentum) == (0.7, 0.9)
    pinned = parse_job(_doc("diloco-x", outer={"lr": 0.5, "momentum": 0.8}))
    assert (pinned.outer_lr, pinned.outer_momentum) == (0.5, 0.8)


def test_compression_bits_and_allocation():
    c = parse_job(_doc("diloco-x")).diloco.compression
    assert c.bits == 4 and c.allocation == "uniform"
    assert parse_job(_doc("diloco-x", diloco={"compression": {"bits": 8}})).diloco.compression.bits == 8
    with pytest.raises(ConfigError):
        parse_job(_doc("diloco-x", diloco={"compression": {"bits": 3}}))
    with pytest.raises(ConfigError):
        parse_job(_doc("diloco-x", diloco={"compression": {"allocation": "greedy"}}))


def test_elastic_rendezvous_and_resume_from_env():
    base = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500", "WORLD_SIZE": "2", "RANK": "1"}
    rv = rendezvous_from_env(2, {**base, "DEAI_EXCHANGE": "http://x:29600", "DEAI_GROUP": "3", "DEAI_STAGE": "1",
                                 "DEAI_GROUPS": "4", "DEAI_RESUME_FROM": "jobs/j/round-000004"})
    assert rv.elastic and (rv.group, rv.stage, rv.groups, rv.resume_from) == (3, 1, 4, "jobs/j/round-000004")
    assert rendezvous_from_env(1, {**base, "WORLD_SIZE": "4", "RANK": "3", "DEAI_RESUME_FROM": "r"}).resume_from == "r"
    with pytest.raises(ConfigError):  # elastic: the world is the group's stages only
        rendezvous_from_env(1, {**base, "WORLD_SIZE": "4", "DEAI_EXCHANGE": "http://x", "DEAI_GROUP": "0"})
    with pytest.raises(ConfigError):
        rendezvous_from_env(2, {**base, "DEAI_EXCHANGE": "http://x"})  # no DEAI_GROUP
    with pytest.raises(ConfigError):
        rendezvous_from_env(2, {**base, "DEAI_EXCHANGE": "tcp://x", "DEAI_GROUP": "0", "DEAI_STAGE": "1"})
