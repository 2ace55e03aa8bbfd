from is_sb3.ac.policies import MlpPolicy, RiskACPolicy
from is_sb3.ac.risk_ac import RiskAC

__all__ = ["MlpPolicy", "RiskAC", "RiskACPolicy"]
