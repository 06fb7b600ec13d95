"""Padding-free training batches: a batch's examples packed into rows, scored only where a label is.

Why: a right-padded batch computes every layer on padding (45% of the tokens of a batch of 8 mined stdlib
examples), and the output projection and cross-entropy on every prompt and padding position, although only
response tokens carry loss. With a 150k-token vocabulary (Qwen2.5-Coder) those logits alone are over a
gigabyte per batch of 8 x 256. Packing removes (nearly all) the padding; ``logits_to_keep`` (a transformers model
argument) restricts the output projection to the positions whose next token is a label.

How attention stays within an example: ``position_ids`` restart at 0 for every example in a row and no
attention mask is passed, which transformers' masking utilities (``find_packed_sequence_indices``) turn into a
block-diagonal causal mask. That detection needs ``past_key_values`` to be None, hence ``use_cache=False``.
``tests/test_packing.py`` checks both: the same loss as padded training, and no attention across examples.

Methods that prepend virtual tokens (prompt and prefix tuning) cannot be packed: PEFT drops
``position_ids`` for them and shifts every position. They train on padded batches
(:class:`~peftlab.data.examples.CompletionCollator`).
"""

from __future__ import annotations

from dataclasses import dataclass

from peftlab.data.examples import IGNORE_INDEX

ROW_LENGTHS = "row_lengths"
"""Key of the collated batch that holds each row's length without its filler (``PackedTrainer`` pops it)."""


@dataclass
class PackedCollator:
    """Packs a batch of tokenized examples into rows of at most ``row_tokens`` tokens, as model keyword args.

    Rows rather than one long row: attention costs the square of a row's length (a mask does not make the
    CPU kernel skip the masked blocks), so eight examples in one 1,200-token row spent 29% of a step in
    attention. Examples go into rows first-fit, longest first; a row shorter than the longest is filled
    with ``pad_token_id`` tokens that form a segment of their own (positions from 0, no labels), and
    ``row_lengths`` says where each row's filler starts (training runs row by row and cuts it off).

    The first label of every example is ignored: in a padded batch position 0 of a row is never a target,
    and here the token before it belongs to the previous example (predicting across the boundary would
    mix two examples).
    """

    pad_token_id: int
    row_tokens: int

    def __call__(self, features: list[dict]):
        import torch  # here, not at import time: building datasets and tasks must not pay for torch

        rows: list[list[dict]] = []
        lengths: list[int] = []
        for feature in sorted(features, key=lambda f: -len(f["input_ids"])):
            size = len(feature["input_ids"])
            row = next((i for i, used in enumerate(lengths) if used + size <= self.row_tokens), None)
            if row is None:
                rows.append([])
                lengths.append(0)
                row = len(rows) - 1
            rows[row].append(feature)
            lengths[row] += size
        width = max(lengths)
        input_ids, labels, positions = [], [], []
        for row in rows:
            ids, row_labels, row_positions = [], [], []
            for feature in row:
                ids.extend(feature["input_ids"])
                row_labels.extend([IGNORE_INDEX, *feature["labels"][1:]])
                row_positions.extend(range(len(feature["input_ids"])))
            padding = width - len(ids)
            input_ids.append(ids + [self.pad_token_id] * padding)
            labels.append(row_labels + [IGNORE_INDEX] * padding)
            positions.append(row_positions + list(range(padding)))
        labels = torch.tensor(labels)
        # Position t predicts token t + 1: keep the logits of the positions whose next token is a label
        # (a boolean (rows, width) mask: transformers then returns the kept logits flattened, row by row).
        keep = torch.zeros_like(labels, dtype=torch.bool)
        keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX
        return {
            "input_ids": torch.tensor(input_ids),
            "position_ids": torch.tensor(positions),
            "labels": labels,
            "logits_to_keep": keep,
            "use_cache": False,
            ROW_LENGTHS: torch.tensor(lengths),  # not a model argument: PackedTrainer pops it
        }


def packed_causal_lm_loss(outputs, labels, num_items_in_batch=None):
    """Cross-entropy of the kept logits (a ``Trainer`` ``compute_loss_func``).

    Summed and divided by ``num_items_in_batch`` (the label count of the whole accumulated batch, which the
    Trainer computes) when given, as transformers' own causal-LM loss does; else the mean.
    """
    import torch.nn.functional as F

    targets = kept_targets(labels)
    logits = outputs.logits.reshape(-1, outputs.logits.shape[-1]).float()
    loss = F.cross_entropy(logits, targets.to(logits.device), reduction="sum")
    return loss / (num_items_in_batch if num_items_in_batch is not None else targets.numel())


def kept_targets(labels):
    """The tokens the kept positions predict (each position's next label), row by row, as the kept logits
    (``logits_to_keep``) and hidden states come."""
    targets = labels[..., 1:]
    return targets[targets != IGNORE_INDEX]
