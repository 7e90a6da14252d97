import pytest

from deai_trainer.config import ConfigError, parse_job


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
