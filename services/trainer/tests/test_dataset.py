import json

import pytest

from deai_trainer.dataset import ContentDigestError, ShardIntegrityError, read_dataset
from deai_trainer.manifest import ManifestError, load_manifest, parse_manifest


def _slot_path(manifest, slot):
    p = manifest.placement(slot)
    return __import__("pathlib").Path(p.endpoint.removeprefix("file://")) / p.bucket / p.key


def test_round_trip_reads_verified_bytes(small_layout):
    data, _, path = small_layout
    manifest = load_manifest(path)
    assert manifest.stripes == 3 and len(manifest.leaves) == 3 * 6
    assert read_dataset(manifest) == data


def test_corrupted_data_shard_is_refused_naming_stripe_and_slot(small_layout):
    _, _, path = small_layout
    manifest = load_manifest(path)
    obj = _slot_path(manifest, 2)
    raw = bytearray(obj.read_bytes())
    raw[1 * manifest.shard_size + 17] ^= 0x01  # one bit in stripe 1, slot 2
    obj.write_bytes(bytes(raw))
    with pytest.raises(ShardIntegrityError) as err:
        read_dataset(manifest)
    assert (err.value.stripe, err.value.slot) == (1, 2)
    assert "stripe=1 slot=2" in str(err.value)


def test_truncated_slot_object_is_refused(small_layout):
    _, _, path = small_layout
    manifest = load_manifest(path)
    obj = _slot_path(manifest, 0)
    obj.write_bytes(obj.read_bytes()[: 2 * manifest.shard_size + 100])
    with pytest.raises(ShardIntegrityError) as err:
        read_dataset(manifest)
    assert (err.value.stripe, err.value.slot) == (2, 0)


def test_leaf_table_must_match_shard_root(small_layout):
    _, _, path = small_layout
    doc = json.loads(path.read_text())
    doc["leaves"][5] = "00" * 32
    with pytest.raises(ManifestError, match="shardRoot"):
        parse_manifest(doc)


def test_leaf_and_shard_swapped_together_still_fails_the_root(small_layout):
    # An attacker who rewrites a shard *and* its leaf is caught by the root.
    _, manifest, path = small_layout
    from deai_trainer.merkle import leaf_hash
    obj = _slot_path(manifest, 1)
    raw = bytearray(obj.read_bytes())
    raw[0] ^= 0xFF
    obj.write_bytes(bytes(raw))
    doc = json.loads(path.read_text())
    doc["leaves"][1] = leaf_hash(bytes(raw[: manifest.shard_size])).hex()
    with pytest.raises(ManifestError):
        parse_manifest(doc)


def test_content_digest_is_checked(small_layout):
    _, _, path = small_layout
    doc = json.loads(path.read_text())
    doc["contentDigest"] = "sha256:" + "ab" * 32
    with pytest.raises(ContentDigestError):
        read_dataset(parse_manifest(doc))


def test_manifest_shape_errors(small_layout):
    _, _, path = small_layout
    doc = json.loads(path.read_text())
    bad = dict(doc, stripes=doc["stripes"] + 1)
    with pytest.raises(ManifestError, match="stripes"):
        parse_manifest(bad)
    bad = dict(doc, placements=[p for p in doc["placements"] if p["slot"] != 3])
    with pytest.raises(ManifestError, match="data slots"):
        parse_manifest(bad)
