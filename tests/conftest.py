"""Shared fixtures: seeds, a tiny quadratic problem, tiny SB3 settings."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def seed() -> int:
    torch.manual_seed(0)
    return 0


@pytest.fixture
def quadratic():
    """A tiny least-squares problem: returns (params, loss_fn) with a fixed well-conditioned design."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g)
    w_true = torch.randn(4, 1, generator=g)
    y = x @ w_true

    def make():
        w = torch.nn.Parameter(torch.zeros(4, 1))
        b = torch.nn.Parameter(torch.zeros(1))

        def loss_fn():
            return 0.5 * ((x @ w + b - y) ** 2).mean()

        return [w, b], loss_fn

    return make


@pytest.fixture
def tiny_sb3_kwargs() -> dict:
    return dict(policy_kwargs=dict(net_arch=[16]), device="cpu", seed=0, verbose=0)
