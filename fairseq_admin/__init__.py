"""fairseq-admin: Admin initialisation (Liu et al., EMNLP 2020, arXiv:2004.08249) for fairseq.

Load with ``--user-dir`` (this folder); importing registers the model, its architectures and
the ``translation_admin`` task.
"""
import os

__version__ = "0.1.0"

#: the folder to pass to fairseq's --user-dir
USER_DIR = os.path.dirname(os.path.abspath(__file__))

from .errors import AdminError, check_fairseq_version, install_excepthook  # noqa: E402,F401  (AdminError: public)

# one line instead of a traceback, only for this plugin's own errors and for a refused or truncated checkpoint
install_excepthook()
check_fairseq_version()

from .checkpoints import allow_fairseq_checkpoint_types  # noqa: E402

# torch >= 2.6 loads checkpoints weights-only: allow exactly the data types fairseq checkpoints hold
# (argparse.Namespace, numpy scalars, omegaconf containers); every load stays weights-only.
allow_fairseq_checkpoint_types()

from . import baselines, model, radam, task  # noqa: E402,F401  (registration on import)
