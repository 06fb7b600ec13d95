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

In the memory-saving mode a packed row's output projection and loss run :data:`HEAD_CHUNK` positions at a
time, each chunk's logits recomputed in backward instead of kept (:func:`chunked_head_loss`): the layers'
activations are recomputed in that mode already, which left a row's float32 logits (151,936 per position,
~90 MB for 150 positions, held two or three times over through the cross-entropy's backward) the largest
thing in QLoRA's peak besides the weights.
"""

from __future__ import annotations

import torch
from transformers import Trainer

from peftlab.data.examples import IGNORE_INDEX
from peftlab.data.packing import ROW_LENGTHS, kept_targets

HEAD_CHUNK = 32
"""Positions per chunk of the memory-saving loss: 19 MB of float32 logits at Qwen's 151,936-token vocabulary."""


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
    is never computed). With ``head_chunk``, training rows take the chunked loss (:func:`packed_row_loss`)."""

    def __init__(self, *args, head_chunk: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.head_chunk = head_chunk

    def _rows(self, inputs: dict):
        batch = {key: value for key, value in inputs.items() if key != ROW_LENGTHS}
        for row, length in enumerate(inputs[ROW_LENGTHS].tolist()):
            yield {key: value[row:row + 1, :length] if torch.is_tensor(value) else value
                   for key, value in batch.items()}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not (model.training and self.head_chunk):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss = packed_row_loss(model, inputs, self.head_chunk, num_items_in_batch)
        return (loss, {"loss": loss}) if return_outputs else loss


def packed_row_loss(model, row: dict, chunk: int, num_items_in_batch=None):
    """A packed row's loss as :func:`~peftlab.data.packing.packed_causal_lm_loss` computes it from the model's
    kept logits, but from the decoder's last hidden states through :func:`chunked_head_loss`. The decoder
    and head are the wrapped model's own (PEFT injects adapters into their layers, so they are in)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = base.get_decoder()(input_ids=row["input_ids"], position_ids=row["position_ids"],
                                use_cache=False).last_hidden_state
    targets = kept_targets(row["labels"]).to(hidden.device)
    loss = chunked_head_loss(base.get_output_embeddings(), hidden[row["logits_to_keep"]], targets, chunk)
    return loss / (num_items_in_batch if num_items_in_batch is not None else targets.numel())


def chunked_head_loss(head, hidden, targets, chunk: int):
    """The summed cross-entropy of ``head(hidden)`` (positions x hidden size) against ``targets``, ``chunk``
    positions at a time; each chunk's logits are recomputed in backward, not kept."""
    from torch.utils.checkpoint import checkpoint

    def chunk_loss(states, chunk_targets):
        return torch.nn.functional.cross_entropy(head(states).float(), chunk_targets, reduction="sum")

    # zero, but joined to the graph: a row may hold no label at all, and its backward must still run
    total = hidden.sum().float() * 0.0
    for start in range(0, hidden.shape[0], chunk):
        total = total + checkpoint(chunk_loss, hidden[start:start + chunk], targets[start:start + chunk],
                                   use_reentrant=False)
    return total


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
