"""Seeded Warcraft-style shortest-path maps (after Vlastelica et al., ICLR 2020, as used by
Berthet et al., NeurIPS 2020, Section 5.3), at small scale and without any download.

A map is an H x W grid of terrain tiles. Each terrain type has a hidden cost per cell and a
distinct small RGB texture (a base colour, a stripe pattern of its own orientation and
frequency, and per-tile noise). Terrains form blobs (a smoothed random field cut into
levels), so the optimal path has to go around expensive regions. The label of a map is the
0/1 mask of its minimum-cost path from the top-left to the bottom-right cell
(``lutece.perturbed.shortest_path_grid`` on the true costs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..perturbed.solvers import shortest_path_grid

__all__ = ["TERRAIN_COSTS", "WarcraftMaps", "warcraft_maps"]

# Hidden per-cell costs of the terrain types (grass, forest, sand, hills, water-like), in
# the range of the Warcraft benchmark's costs.
TERRAIN_COSTS = (0.8, 1.2, 5.3, 7.7, 9.2)
_TEXTURE_SEED = 20_200_221


@dataclass
class WarcraftMaps:
    """images (N, 3, H*tile, W*tile) in [0, 1]; terrain (N, H, W) int64; costs (N, H, W);
    paths (N, H, W) 0/1 optimal path masks; tile: pixels per cell side."""

    images: torch.Tensor
    terrain: torch.Tensor
    costs: torch.Tensor
    paths: torch.Tensor
    tile: int

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index):
        return self.images[index], self.costs[index], self.paths[index]


def _textures(tile: int, generator: torch.Generator) -> torch.Tensor:
    """One (3, tile, tile) texture per terrain type: colour + oriented stripes."""
    num_types = len(TERRAIN_COSTS)
    rows = torch.arange(tile, dtype=torch.float32)[:, None]
    cols = torch.arange(tile, dtype=torch.float32)[None, :]
    textures = []
    for kind in range(num_types):
        colour = torch.rand(3, 1, 1, generator=generator) * 0.6 + 0.2
        angle = math.pi * kind / num_types
        frequency = 2 * math.pi * (1 + kind % 3) / tile
        stripes = torch.sin(frequency * (rows * math.cos(angle) + cols * math.sin(angle)))
        textures.append((colour + 0.15 * stripes).clamp(0, 1))
    return torch.stack(textures)


def warcraft_maps(num_maps: int, grid: int = 12, tile: int = 8, seed: int = 0,
                  *, pixel_noise: float = 0.08) -> WarcraftMaps:
    """Generate ``num_maps`` seeded maps of ``grid`` x ``grid`` cells, ``tile`` pixels a cell."""
    if num_maps < 1 or grid < 2 or tile < 2:
        raise ValueError(f"warcraft_maps: need num_maps >= 1, grid >= 2, tile >= 2; got "
                         f"{num_maps}, {grid}, {tile}")
    g = torch.Generator().manual_seed(seed)
    # The textures are the world's, not the map's: the same for every seed, so that a model
    # trained on one seed's maps reads another's.
    textures = _textures(tile, torch.Generator().manual_seed(_TEXTURE_SEED))
    # Smooth random field -> terrain levels by quantiles, so every type occurs.
    field = torch.randn(num_maps, 1, grid + 4, grid + 4, generator=g)
    kernel = torch.ones(1, 1, 3, 3) / 9
    field = F.conv2d(F.conv2d(field, kernel), kernel)[:, 0]  # (N, grid, grid)
    levels = torch.quantile(field.flatten(1), torch.linspace(0, 1, len(TERRAIN_COSTS) + 1)[1:-1],
                            dim=1).T  # (N, types - 1)
    terrain = (field.flatten(1)[:, :, None] > levels[:, None, :]).sum(-1).reshape(field.shape)
    costs = torch.tensor(TERRAIN_COSTS)[terrain]
    tiles = textures[terrain]  # (N, grid, grid, 3, tile, tile)
    images = tiles.permute(0, 3, 1, 4, 2, 5).reshape(num_maps, 3, grid * tile, grid * tile)
    images = (images + pixel_noise * torch.randn(images.shape, generator=g)).clamp(0, 1)
    return WarcraftMaps(images=images, terrain=terrain, costs=costs,
                        paths=shortest_path_grid(costs), tile=tile)
