"""Bachelier trading tasks: one dynamics core, three front ends, reference solutions."""

from is_envs.finance.dynamics import (
    BachelierTask,
    GaussianReturnTask,
    OptionHedgingTask,
    QuadraticPenaltyTask,
)
from is_envs.finance.envs import BachelierEnv, BachelierTradingEnv, OptionHedgingEnv, QuadraticPenaltyEnv
from is_envs.finance.reference import DynamicProgram, reference_solution, risk_neutral_call_price, task_of
from is_envs.finance.simulator import BachelierSimulator, Transitions
from is_envs.finance.vector import BachelierVecEnv

__all__ = [
    "BachelierEnv",
    "BachelierSimulator",
    "BachelierTask",
    "BachelierTradingEnv",
    "BachelierVecEnv",
    "DynamicProgram",
    "GaussianReturnTask",
    "OptionHedgingEnv",
    "OptionHedgingTask",
    "QuadraticPenaltyEnv",
    "QuadraticPenaltyTask",
    "Transitions",
    "reference_solution",
    "risk_neutral_call_price",
    "task_of",
]
