"""The twelve spatial item distributions of Enders et al., and validation of user grids.

Each distribution is a 5×5 grid of per-step spawn probabilities with the depot's cell at 0 and the
other 24 cells summing to ``TOTAL_RATE`` = 0.24 (on average 0.24 items per step).
"""

from __future__ import annotations

import numpy as np

__all__ = ["DEPOT", "DISTRIBUTIONS", "GRID_SIZE", "TOTAL_RATE", "distribution", "validate_probabilities"]

GRID_SIZE = 5
DEPOT = (2, 0)
TOTAL_RATE = 0.24

_rows, _cols = np.indices((GRID_SIZE, GRID_SIZE))
_ring = np.minimum.reduce([_rows, _cols, GRID_SIZE - 1 - _rows, GRID_SIZE - 1 - _cols])  # 0 outer .. 2 centre


def _normalised(weights: np.ndarray) -> np.ndarray:
    """Depot set to 0, the other 24 cells scaled to sum to TOTAL_RATE."""
    p = np.asarray(weights, dtype=np.float64).copy()
    p[DEPOT] = 0.0
    p *= TOTAL_RATE / p.sum()
    p.setflags(write=False)
    return p


def _hotspots() -> np.ndarray:
    centres = [(1, 1), (2, 3), (4, 2)]
    return np.sum([np.exp(-(np.abs(_rows - r) + np.abs(_cols - c))) for r, c in centres], axis=0)


_UNSTRUCTURED = 1e-3 * np.array(
    [
        [14.95, 6.41, 6.50, 16.43, 12.60],
        [6.18, 8.10, 7.78, 8.93, 12.09],
        [0.0, 17.69, 6.24, 14.91, 8.93],
        [10.57, 16.50, 12.00, 12.44, 1.96],
        [7.38, 5.11, 3.04, 11.61, 11.64],
    ]
)

_COL_V = np.array([3, 2, 1, 2, 3])
_COL_A = np.array([1, 2, 3, 2, 1])

#: name -> read-only 5×5 spawn probabilities (gradient1 is the training distribution)
DISTRIBUTIONS: dict[str, np.ndarray] = {
    "gradient1": _normalised(_cols + 1.0),  # pl = 0.24/74, p = pl·(col+1)
    "gradient2": _normalised(5.0 - _cols),  # pl = 0.24/70
    "gradient3": _normalised(_rows + 1.0),  # pl = 0.24/72
    "gradient4": _normalised(_COL_V[_cols] * 1.0),  # pl = 0.24/52, column weights (3,2,1,2,3)
    "gradient5": _normalised(_COL_A[_cols] * 1.0),  # pl = 0.24/44, column weights (1,2,3,2,1)
    "gradient6": _normalised(_COL_V[_rows] * 1.0),  # pl = 0.24/54, row weights (3,2,1,2,3)
    "gradient7": _normalised(_COL_A[_rows] * 1.0),  # pl = 0.24/42, row weights (1,2,3,2,1)
    "gradient8": _normalised(3.0 - _ring),  # pl = 0.24/62, rings 3 (outer), 2, 1 (centre)
    "gradient9": _normalised(1.0 + _ring),  # pl = 0.24/34, rings 1 (outer), 2, 3 (centre)
    "uniform": _normalised(np.ones((GRID_SIZE, GRID_SIZE))),  # p = 0.01
    "hotspots": _normalised(_hotspots()),
    "unstructured": _normalised(_UNSTRUCTURED),
}


def validate_probabilities(p: object, name: str = "distribution") -> np.ndarray:
    """Check a user grid of spawn probabilities: shape (5, 5), finite, in [0, 1], depot 0."""
    arr = np.asarray(p, dtype=np.float64)
    if arr.shape != (GRID_SIZE, GRID_SIZE):
        raise ValueError(f"{name} must be a {GRID_SIZE}x{GRID_SIZE} grid of probabilities, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or np.any(arr > 1):
        raise ValueError(f"{name} must hold finite probabilities in [0, 1]")
    if arr[DEPOT] != 0:
        raise ValueError(f"{name} must be 0 on the depot cell {DEPOT}, got {arr[DEPOT]}")
    out = arr.copy()
    out.setflags(write=False)
    return out


def distribution(name_or_grid: str | object) -> np.ndarray:
    """A named distribution (see :data:`DISTRIBUTIONS`) or a validated user grid."""
    if isinstance(name_or_grid, str):
        try:
            return DISTRIBUTIONS[name_or_grid]
        except KeyError:
            raise ValueError(
                f"unknown distribution {name_or_grid!r}; valid names are {sorted(DISTRIBUTIONS)}"
            ) from None
    return validate_probabilities(name_or_grid)
