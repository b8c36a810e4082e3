"""The paper's step decay: multiply the lr by `factors[i]` once, after epoch `milestones[i]`."""

from __future__ import annotations


class MilestoneDecay:
    """lr(epoch) = lr0 * prod(factors[i] for milestones[i] <= epoch); a LambdaLR multiplier.

    The WAE paper on MNIST: milestones [30, 50], factors [0.5, 0.2]
    (halve after epoch 30, then divide by 5 after epoch 50).
    """

    def __init__(self, milestones: list[int], factors: list[float]) -> None:
        if len(milestones) != len(factors):
            raise ValueError(
                f"lr_schedule: {len(milestones)} milestones but {len(factors)} factors"
            )
        self.steps = sorted(zip(milestones, factors, strict=True))

    def __call__(self, epoch: int) -> float:
        multiplier = 1.0
        for milestone, factor in self.steps:
            if epoch >= milestone:
                multiplier *= factor
        return multiplier
