from concurrent.futures import Future

import torch

from deai_trainer.outer import OuterLoop, nesterov_outer_step_


def test_nesterov_outer_step_matches_torch_sgd():
    g = torch.Generator().manual_seed(0)
    theta = torch.randn(10, 4, generator=g)
    ref = torch.nn.Parameter(theta.clone())
    sgd = torch.optim.SGD([ref], lr=0.7, momentum=0.9, nesterov=True)
    anchor, mom = [theta.clone()], [torch.zeros_like(theta)]
    for _ in range(5):
        d = torch.randn(10, 4, generator=g)
        ref.grad = d.clone()
        sgd.step()
        nesterov_outer_step_(anchor, mom, [d], lr=0.7, mu=0.9)
        assert torch.allclose(anchor[0], ref.detach(), atol=1e-6)


def test_nesterov_by_hand():
    anchor, mom = [torch.tensor([1.0])], [torch.tensor([0.0])]
    nesterov_outer_step_(anchor, mom, [torch.tensor([1.0])], lr=0.5, mu=0.9)
    # m = 1; theta = 1 - 0.5 * (1 + 0.9*1) = 0.05
    assert torch.allclose(anchor[0], torch.tensor([0.05]))
    nesterov_outer_step_(anchor, mom, [torch.tensor([0.0])], lr=0.5, mu=0.9)
    # m = 0.9; theta = 0.05 - 0.5 * (0 + 0.81) = -0.355
    assert torch.allclose(anchor[0], torch.tensor([-0.355]))


class FakeWorld:
    """Exchange that records what was sent and returns a fixed per-round average."""

    def __init__(self, averages):
        self.averages, self.sent = averages, []

    def __call__(self, delta):
        self.sent.append([d.clone() for d in delta])
        f = Future()
        f.set_result([self.averages[len(self.sent) - 1]])
        return f


def _run(delayed, rounds, local_moves, averages, start="anchor+own"):
    p = torch.nn.Parameter(torch.zeros(3))
    world = FakeWorld(averages)
    applied_rounds = []
    loop = OuterLoop([p], lr=0.7, momentum=0.9, delayed=delayed, exchange=world, start=start)
    anchors = []
    for t in range(rounds):
        with torch.no_grad():
            p.add_(local_moves[t])  # "inner steps"
        out = loop.end_round()
        applied_rounds.append(out.applied is not None)
        anchors.append(loop.anchor[0].clone())
        if delayed and start == "anchor+own":
            # next round starts from the anchor plus this worker's own in-flight progress
            assert torch.allclose(p.detach(), loop.anchor[0] - world.sent[-1][0])
        else:
            assert torch.equal(p.detach(), loop.anchor[0])  # x <- anchor
    loop.flush()
    assert torch.equal(p.detach(), loop.anchor[0])  # after the flush every replica holds the anchor
    return loop, world, anchors, applied_rounds


import pytest


@pytest.mark.parametrize("start", ["anchor+own", "anchor"])
def test_delayed_application_is_one_round_late_and_flushed(start):
    g = torch.Generator().manual_seed(1)
    T = 5
    moves = [torch.randn(3, generator=g) for _ in range(T)]
    avgs = [torch.randn(3, generator=g) for _ in range(T)]
    sync, _, sync_anchors, sync_applied = _run(False, T, moves, avgs)
    dly, world, dly_anchors, dly_applied = _run(True, T, moves, avgs, start)
    assert sync_applied == [True] * T
    assert dly_applied == [False] + [True] * (T - 1)  # first round: nothing to apply yet
    assert torch.equal(dly_anchors[0], torch.zeros(3))
    for t in range(1, T):  # delayed anchor after round t == synchronous anchor after round t-1
        assert torch.allclose(dly_anchors[t], sync_anchors[t - 1], atol=1e-6)
    # after flush every average was applied exactly once, in order: same final anchor
    assert dly.outer_steps == sync.outer_steps == T
    assert torch.allclose(dly.anchor[0], sync.anchor[0], atol=1e-6)
    # the pseudo-gradient sent in round t is (weights at round start) - (weights at round end):
    # only that round's own work, whichever start is used
    for t in range(T):
        assert torch.allclose(world.sent[t][0], -moves[t], atol=1e-6)


def test_on_result_runs_before_the_next_submit_in_delayed_mode():
    order = []
    p = torch.nn.Parameter(torch.zeros(2))

    def exchange(delta):
        order.append("submit")
        f = Future()
        f.set_result([torch.zeros(2)])
        return f

    loop = OuterLoop([p], 0.7, 0.9, True, exchange, on_result=lambda r: order.append("result"))
    for _ in range(3):
        loop.end_round()
    loop.flush()
    assert order == ["submit", "result", "submit", "result", "submit", "result"]
