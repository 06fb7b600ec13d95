"""LoRA (Hu et al., 2021) through HF PEFT: low-rank updates on the attention projections by default.

Also the bases of the LoRA variants, each in its own module: :meth:`LoRA.lora_kwargs` adds ``LoraConfig``
arguments (DoRA, rsLoRA), and :class:`ResidualLoRA` is LoRA whose initialisation moves part of each base
weight into the adapter (PiSSA, OLoRA), saved converted into a plain LoRA.
"""

from __future__ import annotations

from pathlib import Path
from tempfile import TemporaryDirectory

from pydantic import Field

from peftlab.methods.base import AdaptationMethod
from peftlab.methods.targets import TargetModules


class LoRAOptions(TargetModules):
    r: int = Field(16, ge=1)
    """Rank of the low-rank update."""
    alpha: int = Field(32, ge=1)
    """Scaling numerator: the update is scaled by ``alpha / r``."""
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    """Dropout on the adapter's input."""


class LoRA(AdaptationMethod):
    peft_type = "LORA"
    name = "lora"
    Options = LoRAOptions
    default_learning_rate = 3e-4
    source = "r=16, alpha=32, dropout=0.05, lr 3e-4 as in the PEFT-for-code studies (Weyssow et al. 2023)"

    def lora_kwargs(self) -> dict:
        """Further ``LoraConfig`` arguments; a LoRA variant (DoRA, rsLoRA, PiSSA, ...) names its own here."""
        return {}

    def peft_config(self, model):
        from peft import LoraConfig, TaskType

        return LoraConfig(
            task_type=TaskType.CAUSAL_LM,
            r=self.options.r,
            lora_alpha=self.options.alpha,
            lora_dropout=self.options.dropout,
            target_modules=self.options.targets(model),
            **self.lora_kwargs(),
        )


class ResidualLoRA(LoRA):
    """LoRA initialised from the base weights (PiSSA, OLoRA): ``A0``, ``B0`` are cut from each target weight
    ``W`` and training runs on the residual ``W - s·B0·A0``, so the model in memory no longer has the original
    base weights.

    Saved adapters are therefore converted by PEFT (``save_pretrained(path_initial_model_for_weight_conversion=)``)
    into a plain LoRA of rank ``2r``: ``ΔW = s·(B·A - B0·A0) = s·[B | -B0]·[A ; A0]``, which loads with plain
    ``PeftModel.from_pretrained`` onto the *original* base (``load``, ``peftlab export --merge``, any PEFT user).
    The initial adapter this needs is kept in memory from :meth:`apply` and written to a scratch directory
    only while saving. The live config says ``init_lora_weights=True`` right after the initialisation (as the
    PEFT docs do), so the Trainer's checkpoints reload as plain weights (best model, resume) instead of
    re-running the initialisation on an already residual model. A resumed run re-runs the initialisation on
    the freshly loaded base, seeded by ``train.seed`` like the first: the same ``A0``, ``B0`` and residual.
    """

    def init_lora_weights(self) -> str:
        """PEFT's ``init_lora_weights`` value for this initialisation."""
        raise NotImplementedError

    def lora_kwargs(self) -> dict:
        return {"init_lora_weights": self.init_lora_weights()}

    def apply(self, model):
        from peft import get_peft_model_state_dict

        peft_model = super().apply(model)
        peft_model.peft_config["default"].init_lora_weights = True
        self._initial_adapter = {key: value.detach().clone()
                                 for key, value in get_peft_model_state_dict(peft_model).items()}
        return peft_model

    def save(self, model, directory: Path) -> None:
        from safetensors.torch import save_file

        with TemporaryDirectory(prefix="peftlab-initial-adapter-") as scratch:
            initial = Path(scratch) / "initial"
            model.peft_config["default"].save_pretrained(str(initial))
            save_file(self._initial_adapter, str(initial / "adapter_model.safetensors"))
            model.save_pretrained(directory, path_initial_model_for_weight_conversion=str(initial))
