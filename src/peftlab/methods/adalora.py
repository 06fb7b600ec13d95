"""AdaLoRA (Zhang et al., 2023, "Adaptive Budget Allocation for Parameter-Efficient Fine-Tuning") through HF
PEFT: LoRA in SVD form (``P·Λ·Q``) whose rank budget moves during training to the weights where it matters,
from ``init_r`` per layer down to an average of ``target_r``.

Training needs two things from the loop, both through the generic hooks of
:class:`~peftlab.methods.base.AdaptationMethod`:

* the schedule's length: PEFT's ``total_step`` (and ``tinit``/``tfinal``, here shares of the run) is set from
  the Trainer's ``state.max_steps`` when training begins (a callback), since the step count is only known
  to the Trainer;
* ``update_and_allocate(step)`` after every optimiser step, before the gradients are zeroed (the importance
  scores read them): the Trainer's ``on_optimizer_step`` callback is exactly there.

Its orthogonality regulariser is added by PEFT to the model's own loss, so AdaLoRA trains on padded batches
(``trains_packed = False``, ``loss_from_model = True``): the row-by-row paths compute the loss from kept logits.
A resumed run restarts the importance estimates (PEFT does not checkpoint them). Checkpoints keep every
rank (masked ones as zeros) and the saved adapter only the ranks in use (``rank_pattern``, read from the
weights); it loads with plain PEFT, which sizes each layer by that pattern, and merges like LoRA.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from peftlab.errors import UserError
from peftlab.methods.base import AdaptationMethod
from peftlab.methods.targets import TargetModules


class AdaLoRAOptions(TargetModules):
    init_r: int = Field(12, ge=1)
    """Initial rank of every adapted weight."""
    target_r: int = Field(8, ge=1)
    """Average rank left after the budget has been allocated."""
    alpha: int = Field(32, ge=1)
    """Scaling numerator: the update is scaled by ``alpha`` over the current rank."""
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    """Dropout on the adapter's input."""
    tinit_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    """Share of the run trained at the full initial rank before the budget starts shrinking."""
    tfinal_ratio: float = Field(0.2, ge=0.0, lt=1.0)
    """Share of the run, at its end, trained at the final allocation."""
    delta_t: int = Field(1, ge=1)
    """Steps between two budget allocations."""
    orth_reg_weight: float = Field(0.5, ge=0.0)
    """Weight of the orthogonality regulariser on ``P`` and ``Q``."""


def _rank_pattern(model) -> dict[str, list[bool]]:
    """Which singular values of each adapted weight are in use (non-zero), in PEFT's ``rank_pattern`` form.

    Read from the weights rather than kept: the allocation zeroes the others (and keeps them zero in the
    final phase), so this is the allocation of whatever weights the model holds (the best checkpoint's, a
    resumed run's), and dropping exact zeros never changes the model's output."""
    return {name: (parameter != 0).view(-1).tolist()
            for name, parameter in model.base_model.model.named_parameters() if ".lora_E." in name}


def _allocate_ranks_callback(options: AdaLoRAOptions):
    from transformers import TrainerCallback

    class AllocateRanks(TrainerCallback):
        """Sets the schedule from the run's length, then reallocates the rank budget after every step.

        Between steps the config holds no ``rank_pattern``, so the Trainer's checkpoints keep every rank (the
        masked ones as zeros) and reload exactly, for the best model and on resume; :meth:`AdaLoRA.save`
        cuts the saved adapter to the ranks in use.
        """

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            config = model.peft_config["default"]
            config.total_step = state.max_steps
            config.tinit = int(options.tinit_ratio * state.max_steps)
            config.tfinal = min(int(options.tfinal_ratio * state.max_steps), state.max_steps - config.tinit - 1)

        def on_optimizer_step(self, args, state, control, model=None, **kwargs):
            config = model.peft_config["default"]
            if state.global_step > config.total_step - config.tfinal:  # final phase: re-mask to the allocation
                config.rank_pattern = _rank_pattern(model)
            model.base_model.update_and_allocate(state.global_step)
            config.rank_pattern = None

    return AllocateRanks()


class AdaLoRA(AdaptationMethod):
    peft_type = "ADALORA"
    name = "adalora"
    Options = AdaLoRAOptions
    default_learning_rate = 3e-4
    trains_packed = False  # the orthogonality regulariser comes through the model's loss (module docstring)
    loss_from_model = True
    source = ("init_r=12, target_r=8, orth_reg_weight=0.5, delta_t=1: PEFT's AdaLoraConfig defaults (init 1.5x "
              "target as in Zhang et al. 2023); alpha, dropout, lr 3e-4 as LoRA; tinit/tfinal 10%/20% of the run "
              "(our choice)")

    def validate(self) -> None:
        """Raises:
        UserError: ``target_r`` above ``init_r`` (the budget can only shrink), or warm-up and final phases
            that leave no steps to allocate in.
        """
        if self.options.target_r > self.options.init_r:
            raise UserError(f"method.target_r={self.options.target_r} is above method.init_r={self.options.init_r}; "
                            "AdaLoRA only shrinks the rank budget")
        if self.options.tinit_ratio + self.options.tfinal_ratio >= 1:
            raise UserError("method.tinit_ratio + method.tfinal_ratio must be below 1 (a phase to allocate in)")

    def peft_config(self, model):
        from peft import AdaLoraConfig, TaskType

        return AdaLoraConfig(
            task_type=TaskType.CAUSAL_LM,
            init_r=self.options.init_r,
            target_r=self.options.target_r,
            lora_alpha=self.options.alpha,
            lora_dropout=self.options.dropout,
            deltaT=self.options.delta_t,
            orth_reg_weight=self.options.orth_reg_weight,
            total_step=1,  # set from the Trainer's step count when training begins (AllocateRanks)
            target_modules=self.options.targets(model),
        )

    def callbacks(self) -> list:
        return [_allocate_ranks_callback(self.options)]

    def save(self, model, directory: Path) -> None:
        """The adapter cut to the ranks in use (``rank_pattern``); PEFT sizes each layer by it on loading."""
        config = model.peft_config["default"]
        config.rank_pattern = _rank_pattern(model)
        try:
            model.save_pretrained(directory)
        finally:
            config.rank_pattern = None
