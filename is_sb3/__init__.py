"""is-rl's agents: entropic critic losses, certainty equivalents and risk-averse SB3 algorithms."""

from is_sb3.ac import RiskAC
from is_sb3.discrete_sac import DiscreteRiskSAC
from is_sb3.losses import CriticLoss, critic_loss, exponential_mse, itakura_saito, mse, softplus_loss
from is_sb3.risk import certainty_equivalent, certainty_equivalent_with_se, entropic_risk
from is_sb3.sac import RiskSAC

__version__ = "0.1.0"

__all__ = [
    "CriticLoss",
    "DiscreteRiskSAC",
    "RiskAC",
    "RiskSAC",
    "certainty_equivalent",
    "certainty_equivalent_with_se",
    "critic_loss",
    "entropic_risk",
    "exponential_mse",
    "itakura_saito",
    "mse",
    "softplus_loss",
]
