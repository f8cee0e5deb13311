from sb3_swfp.swfp.policies import CnnPolicy, FlowPolicy, MlpPolicy, MultiInputPolicy
from sb3_swfp.swfp.swfp import SWFP

__all__ = ["SWFP", "CnnPolicy", "FlowPolicy", "MlpPolicy", "MultiInputPolicy"]
