"""Environments shipped with sb3_swfp, registered with gymnasium on import.

- ``SWFPToyBandit-v0``: the paper's 2-D one-step toy (Sec. 5.1), see :mod:`sb3_swfp.envs.toy`.
"""

from gymnasium.envs.registration import register, registry

from sb3_swfp.envs.toy import ToyBanditEnv, toy_demonstrations

TOY_BANDIT_ID = "SWFPToyBandit-v0"

if TOY_BANDIT_ID not in registry:
    # No TimeLimit: the env terminates after its single step by itself.
    register(id=TOY_BANDIT_ID, entry_point="sb3_swfp.envs.toy:ToyBanditEnv")

__all__ = ["TOY_BANDIT_ID", "ToyBanditEnv", "toy_demonstrations"]
