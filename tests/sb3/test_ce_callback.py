"""CertaintyEquivalentEvalCallback keeps the model with the best certainty equivalent, not the best mean."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.logger import configure

from is_sb3.callbacks import CertaintyEquivalentEvalCallback


class Gamble(gym.Env[np.ndarray, int]):
    """One step: action 0 pays N(1, 3²) (higher mean), action 1 pays 0.5 for sure (higher CE at α = 1)."""

    observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = float(self.np_random.normal(1.0, 3.0)) if int(action) == 0 else 0.5
        return np.zeros(1, np.float32), reward, True, False, {}


class Agent:
    """A stand-in for a model whose policy changes during training (SB3's callback interface only)."""

    def __init__(self) -> None:
        self.action, self.num_timesteps, self.risk_aversion = 0, 0, 1.0
        self.logger = configure(None, [""])
        self.saved: list[int] = []

    def get_env(self) -> None:
        return None

    def predict(self, obs: Any, deterministic: bool = False) -> tuple[int, None]:
        return self.action, None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(self.action))
        self.saved.append(self.action)


def test_the_best_model_is_the_one_with_the_best_ce_not_the_best_mean(tmp_path: Path) -> None:
    agent = Agent()
    callback = CertaintyEquivalentEvalCallback(Gamble(), eval_freq=1, n_eval_episodes=200,
                                               best_model_save_path=tmp_path)  # fmt: skip
    callback.init_callback(agent)  # type: ignore[arg-type]
    for action in (0, 1, 0):  # the gamble, the sure payoff, the gamble again
        agent.action = action
        agent.num_timesteps += 1
        callback.on_step()
    (_, ce0, se0, mean0), (_, ce1, se1, mean1), (_, ce2, _, mean2) = callback.history
    assert mean0 > mean1 and mean2 > mean1  # the gamble has the higher mean ...
    assert ce1 == pytest.approx(0.5) and se1 == pytest.approx(0.0)
    assert ce0 < ce1 - 5 * se0  # ... and the lower CE (about 1 − 9/2 = −3.5)
    assert (ce0, mean0) == (ce2, mean2)  # the same episodes at every evaluation
    assert agent.saved == [0, 1] and (tmp_path / "best_model.zip").read_text() == "1"
    assert callback.best_ce == ce1
    assert agent.logger.name_to_value["eval/ce_return"] == ce2


def test_ce_callback_refuses_bad_settings() -> None:
    for kwargs, message in [({"eval_freq": 0}, "eval_freq"), ({"n_eval_episodes": 1}, "n_eval_episodes"),
                            ({"risk_aversion": -1.0}, "risk_aversion")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            CertaintyEquivalentEvalCallback(Gamble(), **kwargs)
