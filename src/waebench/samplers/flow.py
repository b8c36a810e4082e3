"""Codes drawn from a normalizing flow fitted to the training codes by maximum likelihood:
a masked autoregressive flow (MAF, Papamakarios et al. 2017) from zuko, the optional
dependency `pip install 'waebench[flow]'`."""

from __future__ import annotations

import torch

from waebench.config_check import at_least, positive
from waebench.samplers.fitting import Standardized, adam_on_minibatches

INSTALL = "the flow sampler needs zuko: pip install 'waebench[flow]' (or pip install zuko)"


def zuko_available() -> bool:
    try:
        import zuko  # noqa: F401
    except ImportError:
        return False
    return True


class FlowSampler:
    """z ~ a MAF of `transforms` autoregressive affine transforms, each a MADE of two
    `hidden`-unit layers, trained for `steps` Adam steps (batch `batch_size`, learning rate
    `lr`) to maximise the likelihood of the standardized codes."""

    name = "flow"
    label = "flow"
    title = "a normalizing flow fitted to the training codes"
    options = {  # the ranges of eval.sampler.flow
        "transforms": at_least(1),
        "hidden": at_least(1),
        "steps": at_least(1),
        "batch_size": at_least(1),
        "lr": positive(),
    }
    needs_prior = False

    def __init__(
        self,
        codes: torch.Tensor,
        seed: int = 0,
        transforms: int = 3,
        hidden: int = 64,
        steps: int = 1000,
        batch_size: int = 256,
        lr: float = 3e-3,
    ) -> None:
        try:
            import zuko
        except ImportError as error:
            raise ImportError(INSTALL) from error
        self.codes = Standardized(codes)
        d = self.codes.data.shape[1]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.flow = zuko.flows.MAF(d, transforms=transforms, hidden_features=(hidden, hidden))
            self.final_loss = adam_on_minibatches(
                lambda u, _: -self.flow().log_prob(u).mean(),
                self.flow.parameters(), self.codes.data, steps, batch_size, lr, seed,
            )  # fmt: skip

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.codes.restore(self.flow().sample((n,)))
