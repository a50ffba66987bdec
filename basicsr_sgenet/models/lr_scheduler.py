"""Learning-rate schedules BasicSR 1.4.2 lacks, for the peers' published recipes."""
import math

from torch.optim.lr_scheduler import LRScheduler


class CosineAnnealingRestartCyclicLR(LRScheduler):
    """Cosine annealing with restarts, each period with its own floor (Restormer's).

    In period i (``periods[i]`` iterations) the learning rate goes from
    ``restart_weights[i] * base_lr`` (roughly) down to ``eta_mins[i]`` along half a cosine:
    ``eta_min + weight * (base_lr - eta_min) * (1 + cos(pi * t / period)) / 2``. Restormer
    uses periods [92000, 208000] with floors [3e-4, 1e-6] at base 3e-4: constant, then decay.

    Args:
        optimizer: the optimizer whose learning rate is scheduled.
        periods (list of int): iterations of each period.
        restart_weights (list of float): weight of each period (default 1 each).
        eta_mins (list of float): floor of each period.
    """

    def __init__(self, optimizer, periods, restart_weights=None, eta_mins=(0, ), last_epoch=-1):
        restart_weights = [1] * len(periods) if restart_weights is None else list(restart_weights)
        if not (len(periods) == len(restart_weights) == len(eta_mins)) or not periods:
            raise ValueError(f'CosineAnnealingRestartCyclicLR: periods, restart_weights and eta_mins must have the '
                             f'same, non-zero length, got {len(periods)}, {len(restart_weights)}, {len(eta_mins)}.')
        self.periods = list(periods)
        self.restart_weights = restart_weights
        self.eta_mins = list(eta_mins)
        self.cumulative_period = [sum(self.periods[:i + 1]) for i in range(len(self.periods))]
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        index = next((i for i, end in enumerate(self.cumulative_period) if self.last_epoch <= end),
                     len(self.periods) - 1)
        start = self.cumulative_period[index - 1] if index else 0
        weight, eta_min, period = self.restart_weights[index], self.eta_mins[index], self.periods[index]
        progress = min((self.last_epoch - start) / period, 1.0)
        return [eta_min + weight * 0.5 * (base_lr - eta_min) * (1 + math.cos(math.pi * progress))
                for base_lr in self.base_lrs]
