"""Token-budget micro-batches: sort by length, pack until the padded size hits the budget,
right-pad with an attention mask, run one forward pass per micro-batch, restore input order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from scoring.prm.formatting import Encoded

# rows_fn(input_ids (B, T), attention_mask (B, T), batch_index (N,), token_index (N,)) -> (N, C):
# the model's outputs at the N gathered positions of the micro-batch.
RowsFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def plan_micro_batches(
    lengths: Sequence[int], *, max_tokens: int, max_batch_size: int | None = None
) -> list[list[int]]:
    """Group sequence indices into micro-batches whose padded size (rows x longest row) stays
    within ``max_tokens``; longest first so that an out-of-memory shows on the first batch. A
    sequence longer than the budget goes alone.

    >>> plan_micro_batches([5, 3, 9, 2], max_tokens=10)
    [[2], [0, 1], [3]]
    >>> plan_micro_batches([4, 4, 4], max_tokens=100, max_batch_size=2)
    [[0, 1], [2]]
    >>> plan_micro_batches([], max_tokens=10)
    []
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be >= 1")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        new_longest = max(longest, lengths[i])
        too_many = max_batch_size is not None and len(current) >= max_batch_size
        if current and (too_many or new_longest * (len(current) + 1) > max_tokens):
            batches.append(current)
            current, new_longest = [], lengths[i]
        current.append(i)
        longest = new_longest
    if current:
        batches.append(current)
    return batches


def pad_right(
    sequences: Sequence[Sequence[int]], pad_id: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id lists into ``input_ids`` (B, T) and ``attention_mask`` (B, T).

    >>> ids, mask = pad_right([[1, 2, 3], [4]], pad_id=0)
    >>> ids.tolist(), mask.tolist()
    ([[1, 2, 3], [4, 0, 0]], [[1, 1, 1], [1, 0, 0]])
    """
    longest = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), longest), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(list(seq), dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids.to(device), mask.to(device)


def gather_rows(
    encoded: Sequence[Encoded],
    rows_fn: RowsFn,
    *,
    pad_id: int,
    max_tokens: int,
    max_batch_size: int | None = None,
    device: torch.device | str = "cpu",
) -> list[torch.Tensor]:
    """ONE forward pass per trace (traces packed into micro-batches); returns, per trace in the
    input order, the float32 outputs (n_positions, C) at its step positions followed by its
    trajectory position when it has one."""
    batches = plan_micro_batches(
        [len(e) for e in encoded], max_tokens=max_tokens, max_batch_size=max_batch_size
    )
    results: list[torch.Tensor | None] = [None] * len(encoded)
    with torch.inference_mode():
        for batch in batches:
            seqs = [encoded[i].input_ids for i in batch]
            input_ids, attention_mask = pad_right(seqs, pad_id, device)  # (B, T), (B, T)
            wanted = [_wanted_positions(encoded[i]) for i in batch]
            batch_index = torch.tensor(
                [row for row, pos in enumerate(wanted) for _ in pos], dtype=torch.long
            )  # (N,)
            token_index = torch.tensor([p for pos in wanted for p in pos], dtype=torch.long)  # (N,)
            rows = rows_fn(
                input_ids, attention_mask, batch_index.to(device), token_index.to(device)
            )  # (N, C)
            rows = rows.float().cpu()
            start = 0
            for row, i in enumerate(batch):
                n = len(wanted[row])
                results[i] = rows[start : start + n]
                start += n
    return [r if r is not None else torch.empty(0) for r in results]


def _wanted_positions(enc: Encoded) -> list[int]:
    if enc.trajectory_position is None:
        return list(enc.positions)
    return [*enc.positions, enc.trajectory_position]
