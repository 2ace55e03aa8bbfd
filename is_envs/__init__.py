"""is-rl's environments: Bachelier trading tasks with analytic answers and the item pick-up grid.

Importing the package registers the Gymnasium ids::

    import gymnasium as gym, is_envs
    env = gym.make("is_envs/QuadraticPenalty-v0", sigma=0.5)
"""

from gymnasium.envs.registration import register, registry

_IDS = {
    "is_envs/BachelierTrading-v0": "is_envs.finance.envs:BachelierTradingEnv",
    "is_envs/QuadraticPenalty-v0": "is_envs.finance.envs:QuadraticPenaltyEnv",
    "is_envs/OptionHedging-v0": "is_envs.finance.envs:OptionHedgingEnv",
    "is_envs/ItemPickup-v0": "is_envs.grid.env:ItemPickupEnv",
}

for _id, _entry_point in _IDS.items():
    if _id not in registry:
        register(id=_id, entry_point=_entry_point)

__all__: list[str] = []
