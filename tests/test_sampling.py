"""The negative sampler: distribution for alpha 0 and 1, refills, exact restore."""

import numpy as np
import pytest
import torch

from gru4rec_pipeline.training.sampler import NegativeSampler

SUPPORT = np.array([1, 2, 3, 4, 5, 10, 20, 40, 0, 15])


def draw(alpha, rows=100):
    sampler = NegativeSampler(SUPPORT, n_sample=1000, alpha=alpha, store_size=7000, seed=5)
    return torch.cat([sampler.next() for _ in range(rows)]).numpy()  # 14 refills


@pytest.mark.parametrize("alpha", [0.0, 1.0, 0.5])
def test_distribution_follows_support_to_the_alpha(alpha):
    samples = draw(alpha)
    weights = SUPPORT.astype(float) ** alpha if alpha else np.ones(len(SUPPORT))
    expected = weights / weights.sum() * len(samples)
    observed = np.bincount(samples, minlength=len(SUPPORT))
    positive = expected > 0
    assert observed[~positive].sum() == 0
    chi_square = ((observed[positive] - expected[positive]) ** 2 / expected[positive]).sum()
    assert chi_square < 35  # 99.99th percentile of chi-square with <= 9 degrees of freedom is ~33.7


def test_restore_continues_the_same_stream():
    sampler = NegativeSampler(SUPPORT, n_sample=4, alpha=0.5, store_size=12, seed=1)
    for _ in range(5):
        sampler.next()
    saved = sampler.state_dict()
    expected = [sampler.next().clone() for _ in range(7)]
    restored = NegativeSampler(SUPPORT, n_sample=4, alpha=0.5, store_size=12, seed=99)
    restored.load_state_dict(saved)
    for row in expected:
        torch.testing.assert_close(restored.next(), row)


def test_every_store_is_the_search_of_the_next_uniform_draws():
    """The stream is ``searchsorted(cdf, torch.rand(rows * n_sample, generator))`` store after store, whatever
    buffers a refill reuses."""
    from gru4rec_pipeline.training.sampler import sampling_cdf

    sampler = NegativeSampler(SUPPORT, n_sample=4, alpha=0.5, store_size=12, seed=3)
    generator = torch.Generator().manual_seed(3)
    cdf = torch.as_tensor(sampling_cdf(SUPPORT, 0.5))
    for _ in range(3):  # three stores of three rows
        uniform = torch.rand(12, generator=generator, dtype=torch.float64)
        expected = torch.searchsorted(cdf, uniform, right=True).clamp_(max=len(SUPPORT) - 1).view(3, 4)
        for row in expected:
            torch.testing.assert_close(sampler.next(), row)


def test_store_rows_and_shape():
    sampler = NegativeSampler(SUPPORT, n_sample=3, alpha=0.0, store_size=10)
    assert sampler.rows == 3
    assert sampler.next().shape == (3,)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_guided_search_equals_binary_search(alpha):
    from gru4rec_pipeline.training.sampler import GuidedSearch, sampling_cdf

    rng = np.random.default_rng(2)
    support = np.concatenate([rng.zipf(1.3, size=500), np.zeros(40, dtype=np.int64)])
    rng.shuffle(support)
    cdf = torch.as_tensor(sampling_cdf(support, alpha))
    search = GuidedSearch(cdf, slices_per_item=2)  # coarse: many slices hold boundaries and need the search
    uniform = torch.rand(200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    # Exact slice edges and the cdf values themselves are the boundary cases of right=True.
    edges = torch.arange(search.slices, dtype=torch.float64) / search.slices
    uniform = torch.cat(
        [uniform, edges, cdf[cdf < 1], torch.tensor([0.0, np.nextafter(1.0, 0.0)], dtype=torch.float64)]
    )
    torch.testing.assert_close(search(uniform), torch.searchsorted(cdf, uniform, right=True), rtol=0, atol=0)
