"""sb3-swfp: flow-matching policies and SWFP online fine-tuning for Stable-Baselines3."""

from sb3_swfp.swfp import SWFP, FlowPolicy, MlpPolicy, MultiInputPolicy

__version__ = "0.1.0"

__all__ = ["SWFP", "FlowPolicy", "MlpPolicy", "MultiInputPolicy", "__version__"]
