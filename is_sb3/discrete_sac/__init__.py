from is_sb3.discrete_sac.discrete_sac import DiscreteRiskSAC, discrete_sac_target
from is_sb3.discrete_sac.policies import CnnPolicy, DiscreteSACPolicy, EndersCNN, MlpPolicy

__all__ = ["CnnPolicy", "DiscreteRiskSAC", "DiscreteSACPolicy", "EndersCNN", "MlpPolicy", "discrete_sac_target"]
