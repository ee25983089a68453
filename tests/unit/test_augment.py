import torch

from meddx.learn.augment import AugmentConfig, BatchAugment


def test_augment_keeps_shape_and_is_reproducible():
    batch = torch.rand(8, 1, 20, 20)
    augment = BatchAugment(AugmentConfig(flip_axes=[0, 1]), spatial_dims=2)
    a = augment(batch, torch.Generator().manual_seed(3))
    b = augment(batch, torch.Generator().manual_seed(3))
    c = augment(batch, torch.Generator().manual_seed(4))
    assert a.shape == batch.shape
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_identity_config_changes_nothing():
    batch = torch.rand(4, 1, 8, 8, 8)
    none = AugmentConfig(rotate_deg=0, scale=0, translate=0, flip_axes=[], intensity_scale=0,
                         intensity_shift=0, noise_std=0)
    out = BatchAugment(none, spatial_dims=3)(batch, torch.Generator().manual_seed(0))
    assert torch.equal(out, batch)


def test_flip_only_flips():
    batch = torch.arange(16.0).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    flips = AugmentConfig(rotate_deg=0, scale=0, translate=0, flip_axes=[1], intensity_scale=0,
                          intensity_shift=0, noise_std=0)
    out = BatchAugment(flips, spatial_dims=2)(batch, torch.Generator().manual_seed(0))
    flipped = (out == batch.flip(3)).flatten(1).all(1)
    same = (out == batch).flatten(1).all(1)
    assert (flipped | same).all()
    assert 10 < flipped.sum() < 54


def test_rot90_is_a_lossless_quarter_turn():
    batch = torch.rand(32, 1, 6, 6, 6)
    turns = AugmentConfig(rotate_deg=0, scale=0, translate=0, flip_axes=[], rot90=True,
                          intensity_scale=0, intensity_shift=0, noise_std=0)
    out = BatchAugment(turns, spatial_dims=3)(batch, torch.Generator().manual_seed(1))
    for original, turned in zip(batch, out, strict=True):
        candidates = [original.rot90(k, dims) for k in range(4)
                      for dims in ((1, 2), (1, 3), (2, 3))]
        assert any(torch.equal(turned, c) for c in candidates)
    assert not torch.equal(out, batch)
