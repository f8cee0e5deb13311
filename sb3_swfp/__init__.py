"""sb3-swfp: flow-matching policies and SWFP online fine-tuning for Stable-Baselines3."""

import sb3_swfp.envs  # noqa: F401  (registers SWFPToyBandit-v0 with gymnasium)
from sb3_swfp.common.callbacks import BCPretrainCallback, EvalFromStartCallback
from sb3_swfp.demos import DemoDictReplayBuffer, Demonstrations, DemoReplayBuffer, collect_demonstrations, load_demonstrations
from sb3_swfp.presets import FINETUNE_KWARGS, PRETRAIN_KWARGS, finetune_kwargs
from sb3_swfp.swfp import SWFP, CnnPolicy, FlowPolicy, MlpPolicy, MultiInputPolicy

__version__ = "0.2.0"

__all__ = [
    "SWFP",
    "FINETUNE_KWARGS",
    "PRETRAIN_KWARGS",
    "BCPretrainCallback",
    "CnnPolicy",
    "DemoDictReplayBuffer",
    "DemoReplayBuffer",
    "Demonstrations",
    "EvalFromStartCallback",
    "FlowPolicy",
    "MlpPolicy",
    "MultiInputPolicy",
    "__version__",
    "collect_demonstrations",
    "finetune_kwargs",
    "load_demonstrations",
]
