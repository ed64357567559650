"""fairseq-admin: Admin initialisation (Liu et al., EMNLP 2020, arXiv:2004.08249) for fairseq.

Load with ``--user-dir`` (this folder); importing registers the model, its architectures and
the ``translation_admin`` task.
"""
import os

__version__ = "0.1.0"

#: the folder to pass to fairseq's --user-dir
USER_DIR = os.path.dirname(os.path.abspath(__file__))

# torch >= 2.6 loads checkpoints with weights_only=True, which fairseq's checkpoints (argparse
# Namespace, numpy scalars) cannot pass. Loading a checkpoint runs pickle: trust your checkpoints.
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

from .errors import AdminError, install_excepthook  # noqa: E402,F401  (AdminError: public)

install_excepthook()

from . import baselines, model, radam, task  # noqa: E402,F401  (registration on import)
