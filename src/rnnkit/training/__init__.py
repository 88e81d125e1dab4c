"""The shared training loop and what it needs: every application trains through it.

- :mod:`rnnkit.training.config`: :class:`TrainConfig` (optimizer, schedule, budgets; torch-free);
- :mod:`rnnkit.training.optim`: optimizers and the learning-rate schedule (a pure function);
- :mod:`rnnkit.training.state`: the exact-resume checkpoint (one safetensors file);
- :mod:`rnnkit.training.loop`: :class:`Trainer` and the :class:`TrainingTask` contract;
- :mod:`rnnkit.training.distributed`: torchrun's environment, the process group, DDP, device and
  precision (the only code that knows about ranks; ``docs/distributed.md``);
- :mod:`rnnkit.training.launch`: ``--nproc`` through torch's elastic launcher.

Imports point one way: config <- optim <- loop, state <- loop, distributed <- loop; nothing
here imports an application.
"""

from rnnkit.lazy import lazy_attributes
from rnnkit.training.config import Runtime, TrainConfig, config_dict

_LOOP = (
    "NonFiniteLossError",
    "Score",
    "TrainResult",
    "Trainer",
    "TrainingInterrupted",
    "TrainingTask",
    "detach_state",
    "fit",
    "seed_everything",
)

__all__ = ["Runtime", "TrainConfig", "config_dict", *_LOOP]
# The loop (torch) loads on first use: the command line reads TrainConfig's and Runtime's
# defaults without importing torch.
__getattr__ = lazy_attributes(__name__, dict.fromkeys(_LOOP, "rnnkit.training.loop"))
