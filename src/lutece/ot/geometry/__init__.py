"""Geometries: where the cost comes from and how its Gibbs kernel is applied.

:class:`Geometry` (a dense cost matrix), :class:`PointCloud` (a cost function between two
point clouds, dense or online), :class:`Grid` (separable cost on a Cartesian grid) and
:class:`LRCGeometry` (a cost given by low-rank factors). Solvers only use the kernel
operations of the base class, so every solver runs on every geometry.
"""

from .base import DEFAULT_EPSILON_SCALE, Geometry
from .grid import Grid
from .low_rank import LRCGeometry
from .pointcloud import PointCloud

__all__ = ["Geometry", "PointCloud", "Grid", "LRCGeometry", "DEFAULT_EPSILON_SCALE"]
