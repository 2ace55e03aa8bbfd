"""Bachelier trading tasks: one dynamics core, three front ends, reference solutions."""

from is_envs.finance.dynamics import (
    BachelierTask,
    GaussianReturnTask,
    HedgingWithCostsTask,
    OptionHedgingTask,
    QuadraticPenaltyTask,
)
from is_envs.finance.envs import BachelierEnv, BachelierTradingEnv, OptionHedgingEnv, QuadraticPenaltyEnv
from is_envs.finance.reference import (
    CostDynamicProgram,
    DynamicProgram,
    reference_solution,
    risk_neutral_call_price,
    task_of,
)
from is_envs.finance.simulator import BachelierSimulator, CostSimulator, Transitions
from is_envs.finance.vector import BachelierVecEnv

__all__ = [
    "BachelierEnv",
    "BachelierSimulator",
    "BachelierTask",
    "BachelierTradingEnv",
    "BachelierVecEnv",
    "CostDynamicProgram",
    "CostSimulator",
    "DynamicProgram",
    "GaussianReturnTask",
    "HedgingWithCostsTask",
    "OptionHedgingEnv",
    "OptionHedgingTask",
    "QuadraticPenaltyEnv",
    "QuadraticPenaltyTask",
    "Transitions",
    "reference_solution",
    "risk_neutral_call_price",
    "task_of",
]
