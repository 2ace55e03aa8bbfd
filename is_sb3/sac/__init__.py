from is_sb3.sac.risk_sac import RiskSAC

__all__ = ["RiskSAC"]
