"""Plain ReLU MLP, the decoder of LIIF and of ARASFSR without global modulation."""

from __future__ import annotations

from torch import Tensor, nn


class MLP(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, hidden: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(in_dim, h), nn.ReLU(inplace=True)]
            in_dim = h
        layers.append(nn.Linear(in_dim, out_dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)

    def forward_hidden(self, h: Tensor) -> Tensor:
        """The network after the first linear layer; ``h`` is its pre-activation."""
        return self.layers[1:](h)
