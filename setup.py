"""fairseq-admin: Admin initialisation for deep Post-LN Transformers, as a fairseq --user-dir plugin.

Install order matters (fairseq-fixed compiles against an installed torch, see README):
    pip install torch==2.13.0 numpy Cython
    pip install --no-build-isolation -e .
"""
from setuptools import setup

setup(
    name="fairseq-admin",
    version="0.1.0",
    description="Admin (arXiv:2004.08249) for fairseq: profiled shortcut scaling for deep Post-LN Transformers",
    license="MIT",
    packages=["fairseq_admin"],
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.0",
        "fairseq-fixed==0.12.3.1",
        "hydra-core==1.3.2",
        "omegaconf==2.3.0",
        "sacrebleu>=2.0",
        "sacremoses>=0.1",
        "subword-nmt>=0.3.8",
    ],
    extras_require={"plot": ["matplotlib>=3.5"], "test": ["pytest>=7"]},
    entry_points={"console_scripts": ["fairseq-admin = fairseq_admin.cli:main"]},
)
