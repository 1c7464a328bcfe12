"""Ranges of network constructor arguments, stated on the annotations themselves.

The config schema reads constructor signatures, so ``r_max: PositiveFloat`` makes
``model.r_max=0`` a config error naming the key, before any data is read.
"""

from typing import Annotated

from annotated_types import Ge, Gt

PositiveFloat = Annotated[float, Gt(0)]
PositiveInt = Annotated[int, Ge(1)]
NonNegativeInt = Annotated[int, Ge(0)]

__all__ = ["NonNegativeInt", "PositiveFloat", "PositiveInt"]
