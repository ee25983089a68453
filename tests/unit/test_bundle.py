import json

import pytest
import torch

from meddx.decision.bundle import (
    FORMAT_VERSION,
    METADATA_FILE,
    WEIGHTS_FILE,
    load_bundle,
    save_bundle,
)
from meddx.errors import BundleError


def _save(path, **meta):
    return save_bundle(path, {"task": "image-classification", "name": "m", **meta},
                       {"w": torch.ones(3)}, "# card\n")


def test_round_trip(tmp_path):
    _save(tmp_path / "b", class_names=["a", "b"], threshold=0.3)
    bundle = load_bundle(tmp_path / "b")
    assert bundle.class_names == ["a", "b"]
    assert bundle.threshold == 0.3
    assert torch.equal(bundle.state_dict()["w"], torch.ones(3))
    assert bundle.metadata["format_version"] == FORMAT_VERSION
    assert "torch" in bundle.metadata["software"]
    assert bundle.model_card.startswith("# card")


def test_replacing_a_bundle_leaves_no_staging_folders(tmp_path):
    _save(tmp_path / "b", threshold=0.1)
    _save(tmp_path / "b", threshold=0.2)
    assert load_bundle(tmp_path / "b").threshold == 0.2
    assert [p.name for p in tmp_path.iterdir()] == ["b"]


def test_failed_write_keeps_the_old_bundle(tmp_path):
    _save(tmp_path / "b", threshold=0.1)
    with pytest.raises(ValueError):
        save_bundle(tmp_path / "b", {"task": "x", "bad": float("nan")}, None, "")
    assert load_bundle(tmp_path / "b").threshold == 0.1
    assert [p.name for p in tmp_path.iterdir()] == ["b"]


def test_incompatible_version_is_refused(tmp_path):
    bundle = _save(tmp_path / "b")
    meta = json.loads((bundle.path / METADATA_FILE).read_text())
    meta["format_version"] = 99
    (bundle.path / METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="format 99 .* not supported"):
        load_bundle(bundle.path)


def test_missing_and_broken_bundles(tmp_path):
    with pytest.raises(BundleError, match="no such bundle"):
        load_bundle(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="not a meddx bundle"):
        load_bundle(tmp_path / "empty")
    bundle = _save(tmp_path / "b")
    (bundle.path / WEIGHTS_FILE).write_bytes(b"garbage")
    with pytest.raises(BundleError, match="cannot read the weights"):
        load_bundle(bundle.path).state_dict()
