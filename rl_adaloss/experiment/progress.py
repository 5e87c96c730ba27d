"""A progress bar for one training run: env steps, steps per second (fps) and the latest evaluation return."""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

__all__ = ["TrainingProgress"]


class TrainingProgress(BaseCallback):
    """A tqdm bar over the training budget; its rate is the fps, its postfix the latest evaluation return.

    Args:
        total: the training budget in env steps.
        eval_callback: the run's ``EvalCallback`` (its ``last_mean_reward`` is shown once an evaluation happened).
        desc: the bar's label (the run folder's name).
    """

    def __init__(self, total: int, eval_callback: Any = None, desc: str = "train") -> None:
        super().__init__()
        self.total, self.eval_callback, self.desc = total, eval_callback, desc
        self._bar: Any = None
        self._evals = 0

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=self.total, desc=self.desc, unit="step", unit_scale=True, dynamic_ncols=True)

    def _on_step(self) -> bool:
        self._bar.update(self.training_env.num_envs)
        evals = len(getattr(self.eval_callback, "evaluations_timesteps", []))
        if evals != self._evals:
            self._evals = evals
            self._bar.set_postfix_str(f"eval return {self.eval_callback.last_mean_reward:.1f}")
        return True

    def _on_training_end(self) -> None:
        if self._bar is not None:
            self._bar.close()
