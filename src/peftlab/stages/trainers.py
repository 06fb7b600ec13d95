"""The ``Trainer`` subclasses that train one row at a time: activation memory then follows one row (at most
``model.max_length`` tokens), not the whole batch, at no cost in arithmetic. The gradients are summed over
the rows and each row's loss is divided by the step's label count, so the update equals the whole batch's
(tests/test_packing.py pins both against padded training).

* :class:`PackedTrainer`: padding-free packed rows (``peftlab.data.packing``).
* :class:`PaddedRowsTrainer`: for methods that cannot be packed (prompt and prefix tuning prepend virtual
  tokens): each example of a right-padded batch is its own row, cut to its length, and the output
  projection is kept to the positions that predict a label (``logits_to_keep``, an int: the last N
  positions, which virtual tokens in front do not shift). With a 150k-token vocabulary, the full logits of
  a padded batch were most of prompt tuning's 6.5 GB peak (bench/results/methods-qwen).
"""

from __future__ import annotations

import torch
from transformers import Trainer

from peftlab.data.examples import IGNORE_INDEX
from peftlab.data.packing import ROW_LENGTHS


def _label_count(inputs: dict):
    """What the Trainer passes as ``num_items_in_batch`` (the labels that carry loss), for the rare call
    without it, so the division stays the same."""
    return (inputs["labels"][:, 1:] != IGNORE_INDEX).sum()


class _RowByRowTrainer(Trainer):
    """Splits each batch into rows (``_rows``): trains row by row within the optimiser step, and evaluates
    row by row too (the batch's mean over its labels; evaluation keeps no logits, only the loss)."""

    def _rows(self, inputs: dict):
        raise NotImplementedError

    def training_step(self, model, inputs, num_items_in_batch=None):
        if num_items_in_batch is None:
            num_items_in_batch = _label_count(inputs)
        loss = 0.0
        for row in self._rows(inputs):
            loss = loss + super().training_step(model, row, num_items_in_batch)
        return loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training:  # a row, from training_step
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = _label_count(inputs)
        loss = sum(super(_RowByRowTrainer, self).compute_loss(model, row, False, labels) for row in self._rows(inputs))
        return (loss, {"loss": loss}) if return_outputs else loss


class PackedTrainer(_RowByRowTrainer):
    """Packed rows, each cut to its own length first (the filler that evens rows out for the collated tensor
    is never computed)."""

    def _rows(self, inputs: dict):
        batch = {key: value for key, value in inputs.items() if key != ROW_LENGTHS}
        for row, length in enumerate(inputs[ROW_LENGTHS].tolist()):
            yield {key: value[row:row + 1, :length] if torch.is_tensor(value) else value
                   for key, value in batch.items()}


class PaddedRowsTrainer(_RowByRowTrainer):
    """Each example of a right-padded batch (``CompletionCollator``) alone, without its padding, with the
    number of final positions whose logits are needed: from the one before the first label to the end. Use
    with ``compute_loss_func=kept_logits_loss``."""

    def _rows(self, inputs: dict):
        for row, mask in enumerate(inputs["attention_mask"]):
            length = int(mask.sum())
            labels = inputs["labels"][row:row + 1, :length]
            first_label = int((labels[0] != IGNORE_INDEX).nonzero()[0]) if (labels != IGNORE_INDEX).any() else length
            yield {"input_ids": inputs["input_ids"][row:row + 1, :length], "attention_mask": mask[None, :length],
                   "labels": labels, "logits_to_keep": max(length - first_label + 1, 1)}


def kept_logits_loss(outputs, labels, num_items_in_batch=None):
    """Cross-entropy of a row whose logits are its last N positions (a ``Trainer`` ``compute_loss_func``):
    position t predicts token t + 1, so the N - 1 first kept logits score the row's last N - 1 labels.
    Summed and divided by ``num_items_in_batch`` when given (as transformers' causal-LM loss does), else the
    mean."""
    import torch.nn.functional as F

    logits = outputs.logits[:, :-1].float()
    targets = labels[:, labels.shape[1] - logits.shape[1]:].to(logits.device)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum",
                           ignore_index=IGNORE_INDEX)
    return loss / (num_items_in_batch if num_items_in_batch is not None else (targets != IGNORE_INDEX).sum())
