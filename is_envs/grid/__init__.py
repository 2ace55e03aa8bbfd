"""The item pick-up grid of Enders et al.: env, item sources, greedy baseline, evaluation."""

from is_envs.grid.distributions import DEPOT, DISTRIBUTIONS, TOTAL_RATE, distribution, validate_probabilities
from is_envs.grid.env import ItemPickupEnv
from is_envs.grid.evaluation import EpisodeEvents, episode_events, evaluate, observes_clock, shift_table
from is_envs.grid.greedy import GreedyPolicy
from is_envs.grid.items import RELEASED_DIR, EpisodeTable, ProbabilityGrid, released_episodes

__all__ = [
    "DEPOT",
    "DISTRIBUTIONS",
    "RELEASED_DIR",
    "TOTAL_RATE",
    "EpisodeEvents",
    "EpisodeTable",
    "GreedyPolicy",
    "ItemPickupEnv",
    "ProbabilityGrid",
    "distribution",
    "episode_events",
    "evaluate",
    "observes_clock",
    "released_episodes",
    "shift_table",
    "validate_probabilities",
]
