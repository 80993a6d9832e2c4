"""Geometries to and from strings: what lets compiled code hand a geometry to an opaque
operator (``torch.library`` custom ops take tensors and plain values, not objects)."""

from __future__ import annotations

import torch

from ..costs import cost_from_spec
from .base import Geometry
from .grid import Grid
from .low_rank import LRCGeometry
from .pointcloud import PointCloud

__all__ = ["geometry_from_spec"]


def geometry_from_spec(spec: str, tensors: list[torch.Tensor], epsilon: torch.Tensor,
                       scale: torch.Tensor) -> Geometry:
    """The geometry of ``spec`` (from :meth:`Geometry.compile_spec`) on ``tensors`` (from
    ``_tensors()``, with their batch dimension), with the resolved (B,) ``epsilon`` and
    cost ``scale`` of the original."""
    kind, *fields = spec.split("|")
    if kind == "grid":
        geom: Geometry = Grid(x=list(tensors),
                              cost_fns=[cost_from_spec(name) for name in fields[0].split(",")],
                              epsilon=1.0)
    else:
        batched = fields[0] == "1"
        inputs = [t if batched else t.squeeze(0) for t in tensors]
        if kind == "dense":
            geom = Geometry(inputs[0], epsilon=1.0)
        elif kind == "pointcloud":
            geom = PointCloud(inputs[0], inputs[1], cost_fn=cost_from_spec(fields[2]),
                              epsilon=1.0, batch_size=int(fields[1]) or None)
        elif kind == "lowrank":
            geom = LRCGeometry(inputs[0], inputs[1], scale_factor=float(fields[2]),
                               bias=float(fields[3]), epsilon=1.0,
                               batch_size=int(fields[1]) or None)
        else:
            raise ValueError(f"geometry_from_spec: unknown geometry kind {kind!r}")
    # the placeholder epsilon and the unit scale give way to the original's resolved values
    geom._epsilon = epsilon
    geom._scale = scale
    geom._scale_cost_arg = "resolved"
    return geom
