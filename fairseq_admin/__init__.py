"""fairseq-admin: Admin initialisation (Liu et al., EMNLP 2020, arXiv:2004.08249) for fairseq.

Load with ``--user-dir`` (this folder); importing registers the models (with their dataclass configs),
their architectures (Admin, the Post-LN/Pre-LN baselines and the other stabilisers: B2T, ReZero, T-Fixup,
DS-Init), the ``translation_admin`` task, the ``radam`` optimizer and the ``inverse_sqrt_nowarmup``
schedule. This folder is what fairseq imports (config, model, layers, residual, omega, weight_init,
baselines, stabilizers, lr_scheduler, task, profiler, profile_file, radam, distributed, checkpoints,
files, errors); the tools (the ``fairseq-admin`` command,
recipes, data preparation, scoring, averaging, folding, diagnostics) are the separate ``tools`` package.
"""
import os

__version__ = "0.1.0"

#: the folder to pass to fairseq's --user-dir
USER_DIR = os.path.dirname(os.path.abspath(__file__))

from .errors import AdminError, check_fairseq_version, install_excepthook  # noqa: E402,F401  (AdminError: public)

# one line instead of a traceback, only for this plugin's own errors and for a refused or truncated checkpoint
install_excepthook()
check_fairseq_version()

from .checkpoints import (  # noqa: E402
    allow_fairseq_checkpoint_types,
    install_atomic_checkpoint_copy,
    install_config_guard,
)

# torch >= 2.6 loads checkpoints weights-only: allow exactly the data types fairseq checkpoints hold
# (argparse.Namespace, numpy scalars, omegaconf containers); every load stays weights-only.
allow_fairseq_checkpoint_types()
# and no checkpoint's config may hold code that fairseq would eval() while building its model
install_config_guard()
# and fairseq's copy of a saved checkpoint onto checkpoint_last.pt / _best.pt is atomic (full disk: the old stays)
install_atomic_checkpoint_copy()

from . import baselines, lr_scheduler, model, radam, stabilizers, task  # noqa: E402,F401  (registration on import)
