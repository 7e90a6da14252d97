import time

from deai_trainer.comm import RateLimiter, flatten_buckets

import torch


def test_rate_limiter_paces_sends_to_the_link_rate():
    lim = RateLimiter(8e6)  # 1 MB/s
    t0 = time.perf_counter()
    for _ in range(4):
        lim.throttle(50_000, time.perf_counter())  # 4 x 50 kB = 0.2 s at 1 MB/s
    elapsed = time.perf_counter() - t0
    assert 0.18 <= elapsed < 0.5


def test_buckets_cover_every_tensor_once_last_layers_first():
    ts = [torch.zeros(n) for n in (10, 300, 5, 200, 90)]
    buckets = flatten_buckets(ts, bucket_bytes=1200)  # 300 floats per bucket
    flat = [i for b in buckets for i in b]
    assert sorted(flat) == list(range(5)) and flat[0] == 4
    for b in buckets:
        assert sum(ts[i].numel() * 4 for i in b) <= 1200 or len(b) == 1
