from sb3_swfp.swfp.policies import FlowPolicy, MlpPolicy, MultiInputPolicy
from sb3_swfp.swfp.swfp import SWFP

__all__ = ["SWFP", "FlowPolicy", "MlpPolicy", "MultiInputPolicy"]
