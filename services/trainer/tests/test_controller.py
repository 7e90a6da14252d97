from deai_trainer.controller import AdaptiveConfig, CommController


def cfg(**kw):
    base = dict(enabled=True, h_min=10, h_max=100, hidden_fraction=0.5, min_rank=2, max_rank=16)
    base.update(kw)
    return AdaptiveConfig(**base)


def test_rank_shrinks_first_then_h_grows_when_comm_is_exposed():
    c = CommController(10, cfg())
    # window = 10 steps * 0.1 s = 1 s; budget 0.5 s; comm 2 s is too slow
    c.update(step_s=0.1, comm_s=2.0)
    assert (c.rank_cap, c.h) == (8, 10)
    c.update(0.1, 2.0)
    c.update(0.1, 2.0)
    assert (c.rank_cap, c.h) == (2, 10)
    c.update(0.1, 2.0)  # rank at its floor: H grows so 2 s fits in half the window
    assert c.h == 40 and c.rank_cap == 2
    c.update(0.1, 2.0)  # budget now 2 s -> hidden, within hysteresis band: no change
    assert c.h == 40


def test_cheap_comm_restores_rank_then_h_but_not_below_h_min():
    c = CommController(10, cfg())
    c.rank_cap, c.h = 2, 80
    for _ in range(3):
        c.update(0.1, 0.0)
    assert c.rank_cap == 16 and c.h == 80
    for _ in range(5):
        c.update(0.1, 0.0)
    assert c.h == 10


def test_h_is_capped_and_disabled_controller_never_moves():
    c = CommController(50, cfg(min_rank=16))
    c.update(0.01, 100.0)
    assert c.h == 100
    d = CommController(30, cfg(enabled=False))
    d.update(0.1, 100.0)
    assert (d.h, d.rank_cap) == (30, 16)
