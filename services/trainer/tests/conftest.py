import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture
def small_layout(tmp_path):
    """A 3-stripe dataset (k=4, m=2, 4 KiB shards) with its manifest."""
    from deai_trainer.corpus import generate
    from deai_trainer.layout import build_layout, write_manifest

    data = generate(40_000, seed=5)
    manifest = build_layout(data, tmp_path / "store", name="small", k=4, m=2, shard_size=4096)
    path = tmp_path / "manifest.json"
    write_manifest(manifest, path)
    return data, manifest, path
