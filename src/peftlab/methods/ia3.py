"""(IA)^3 (Liu et al., 2022) through HF PEFT: learned vectors rescale the attention keys and values and the
input of the feed-forward output projection; nothing else trains."""

from __future__ import annotations

from peftlab.methods.base import AdaptationMethod
from peftlab.methods.targets import TargetModules, resolve_target_modules, uses_conv1d


class IA3(AdaptationMethod):
    peft_type = "IA3"
    name = "ia3"
    Options = TargetModules
    default_learning_rate = 3e-4
    source = "lr 3e-4 as for LoRA in Weyssow et al. 2023; targets k, v and the FF output as in Liu et al. 2022"

    def peft_config(self, model):
        """PEFT config. With user-given ``target_modules``, those that are the architecture's feed-forward
        output projection are scaled on their input (``feedforward_modules``), the others on their output."""
        from peft import IA3Config, TaskType

        feedforward = resolve_target_modules(model, "feedforward_out")
        targets = self.options.target_modules or resolve_target_modules(model, "key_value") + feedforward
        targets = list(dict.fromkeys(targets))
        return IA3Config(
            task_type=TaskType.CAUSAL_LM,
            target_modules=targets,
            feedforward_modules=[name for name in targets if name in feedforward],
            fan_in_fan_out=uses_conv1d(model, targets),
        )
