"""Download-free datasets: seeded generators of the synthetic data the experiments use."""

from .images import SHAPES, ImageSet, digits_32, shape_textures
from .label_ranking import label_ranking_data, mean_spearman
from .point_clouds import mean_squared_distance, ot_benchmark_clouds
from .warcraft import TERRAIN_COSTS, WarcraftMaps, warcraft_maps

__all__ = ["label_ranking_data", "mean_spearman", "warcraft_maps", "WarcraftMaps", "TERRAIN_COSTS",
           "ot_benchmark_clouds", "mean_squared_distance", "ImageSet", "digits_32",
           "shape_textures", "SHAPES"]
