"""fairseq-admin: Admin initialisation for deep Post-LN Transformers, as a fairseq --user-dir plugin.

Install order matters (fairseq-fixed compiles against an installed torch, see README):
    pip install torch==2.13.0 numpy Cython
    pip install --no-build-isolation -e .[fairseq]     # [fairseq]: only where no fairseq is installed

fairseq itself is not a hard requirement, so that an environment which already has one (upstream 0.12.2
on Python <= 3.10, or a source checkout) keeps it; the extra "fairseq" installs fairseq-fixed.
"""
from setuptools import setup

setup(
    name="fairseq-admin",
    version="0.1.0",
    description="Admin (arXiv:2004.08249) for fairseq: profiled shortcut scaling for deep Post-LN Transformers",
    license="MIT",
    packages=["fairseq_admin", "fairseq_admin.tools"],
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.0",
        "sacrebleu>=2.0",
        "sacremoses>=0.1",
        "subword-nmt>=0.3.8",
    ],
    extras_require={"fairseq": ["fairseq-fixed==0.12.3.1"], "plot": ["matplotlib>=3.5"],
                    "tensorboard": ["tensorboardX"], "test": ["pytest>=7"]},
    entry_points={"console_scripts": ["fairseq-admin = fairseq_admin.tools.cli:main"]},
)
