"""Dual (flux) representation of the complex phi^4 field in 1+1D at chemical potential mu."""

from scalar_ml.physics.params import Lattice, PhysicsParams

__all__ = ["Lattice", "PhysicsParams"]
