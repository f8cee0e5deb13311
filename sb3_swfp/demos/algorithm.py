"""What an SB3 off-policy algorithm whose replay buffer may hold demonstrations does beyond SB3's: SWFP's and RLPD's.

Mixed in before the SB3 class (``class RLPD(DemonstrationsMixin, SAC)``), it

- ends the episode running in the buffer where ``learn()`` resets the env, so that no n-step return runs on
  across the reset (SB3's own ``_setup_learn`` ends one only in a memory-optimised buffer);
- checks the demonstrations against the env's id when the model is built (``_setup_model``, so ``load`` too) and
  against a new env's in ``set_env``;
- refuses, in ``load_replay_buffer``, a buffer whose demonstrations were recorded on another env (the model keeps
  its own), and ends the restored buffer's last episode with ``truncate_last_traj``.
"""

from __future__ import annotations

import os
from typing import Any

from sb3_swfp.demos.buffers import check_demonstrations_env
from sb3_swfp.demos.replay import truncate_last_n_step_transitions


class DemonstrationsMixin:
    """The replay-buffer handling SWFP and RLPD share; put before the SB3 off-policy class it extends."""

    def _setup_model(self) -> None:
        super()._setup_model()
        check_demonstrations_env(self.replay_buffer, self.env)

    def _setup_learn(self, total_timesteps: int, callback: Any = None, reset_num_timesteps: bool = True,
                     tb_log_name: str = "run", progress_bar: bool = False) -> tuple[int, Any]:  # fmt: skip
        if reset_num_timesteps or self._last_obs is None:  # SB3 resets the env below: the buffer's running episodes end
            truncate_last_n_step_transitions(self.replay_buffer)
        return super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)

    def set_env(self, env: Any, force_reset: bool = True) -> None:
        """As SB3's; the demonstrations in the replay buffer are checked against the new env's id first, as the
        constructor checks them."""
        check_demonstrations_env(self.replay_buffer, env)
        super().set_env(env, force_reset)

    def load_replay_buffer(self, path: str | os.PathLike | Any, truncate_last_traj: bool = True) -> None:
        """As SB3's; a buffer the model cannot train with (:meth:`_check_restored_buffer`: one whose demonstrations
        were recorded on another env; SWFP's also one without demonstrations where the model trains with them) is
        refused and the model keeps its own, and SWFP's demonstration buffer then samples with the model's ``n_steps``
        and ``gamma``; ``truncate_last_traj`` ends the restored buffer's last episode for n-step returns, as SB3's
        HER buffer does (the saved episode was finished, none runs on past it)."""
        previous = self.replay_buffer
        super().load_replay_buffer(path, truncate_last_traj)
        try:
            self._check_restored_buffer(path)
        except ValueError:
            self.replay_buffer = previous
            raise
        if truncate_last_traj:
            truncate_last_n_step_transitions(self.replay_buffer)

    def _check_restored_buffer(self, path: str | os.PathLike | Any) -> None:
        """Raise ``ValueError`` where the buffer :meth:`load_replay_buffer` just restored from ``path`` cannot serve
        this model; adapt it to the model otherwise."""
        check_demonstrations_env(self.replay_buffer, self.env)
