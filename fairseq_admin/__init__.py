"""fairseq-admin: Admin initialisation (Liu et al., EMNLP 2020, arXiv:2004.08249) for fairseq.

Load with ``--user-dir`` (this folder); importing registers the model, its architectures and
the ``translation_admin`` task.
"""
import os

__version__ = "0.1.0"

#: the folder to pass to fairseq's --user-dir
USER_DIR = os.path.dirname(os.path.abspath(__file__))

from .checkpoints import allow_fairseq_checkpoint_types  # noqa: E402
from .errors import AdminError, install_excepthook  # noqa: E402,F401  (AdminError: public)

# torch >= 2.6 loads checkpoints weights-only: allow exactly the data types fairseq checkpoints hold
# (argparse.Namespace, numpy scalars, omegaconf containers); every load stays weights-only.
allow_fairseq_checkpoint_types()
# one line instead of a traceback, for this plugin's own errors and for a refused checkpoint only
install_excepthook()

from . import baselines, model, radam, task  # noqa: E402,F401  (registration on import)
