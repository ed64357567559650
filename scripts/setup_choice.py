"""The decisions of scripts/setup_env.sh, testable apart from pip: Python version, build prerequisites,
which torch build, whether to install fairseq. Standard library only (runs before any install).

    python3 scripts/setup_choice.py python            # exit 1 with one line if this Python is unsupported
    python3 scripts/setup_choice.py prerequisites     # exit 1 with one line if fairseq cannot be compiled
    python3 scripts/setup_choice.py torch             # prints: LABEL<TAB>pip arguments
    python3 scripts/setup_choice.py fairseq VENV_PY   # prints: keep VERSION | install
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import urllib.request

SUPPORTED = ((3, 10), (3, 13))
TORCH_VERSION = os.environ.get("TORCH_VERSION", "2.13.0")
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PACKAGES = ("Debian/Ubuntu: sudo apt install build-essential python3-dev; "
            "RHEL/Fedora: sudo dnf install gcc-c++ python3-devel")


def python_problem(version=sys.version_info[:2]):
    lo, hi = SUPPORTED
    if not lo <= tuple(version) <= hi:
        return (f"Python {version[0]}.{version[1]} is not supported: fairseq-admin needs Python "
                f"{lo[0]}.{lo[1]}-{hi[0]}.{hi[1]}; set PYTHON=python3.12 (for example) and rerun")
    return None


def prerequisites_problem(which=shutil.which, include=None):
    """fairseq-fixed has no wheel for most platforms: it compiles C++ against Python's headers."""
    compiler = next((c for c in (os.environ.get("CXX"), "c++", "g++", "clang++") if c and which(c)), None)
    include = include or sysconfig.get_paths()["include"]
    headers = os.path.exists(os.path.join(include, "Python.h"))
    missing = [what for what, ok in (("a C++ compiler", compiler), ("the Python headers (Python.h)", headers)) if not ok]
    if missing:
        return (f"fairseq-fixed compiles C++ extensions, but {' and '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} missing: install them ({PACKAGES}) and rerun")
    return None


def has_nvidia_gpu():
    if not shutil.which("nvidia-smi"):
        return False
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return any(line.startswith("GPU ") for line in out.splitlines())


def reachable(url, timeout=5.0):
    try:
        urllib.request.urlopen(url, timeout=timeout).close()
        return True
    except Exception:
        return False


def torch_choice(override=None, gpu=None, cpu_index_reachable=None):
    """(label, pip arguments) for torch. FAIRSEQ_ADMIN_TORCH overrides: cpu, cuda, or a pip requirement."""
    override = override if override is not None else os.environ.get("FAIRSEQ_ADMIN_TORCH", "")
    pinned = f"torch=={TORCH_VERSION}"
    if override not in ("", "cpu", "cuda"):
        return f"as FAIRSEQ_ADMIN_TORCH says ({override})", override.split()
    want = override or ("cuda" if (has_nvidia_gpu() if gpu is None else gpu) else "cpu")
    if want == "cuda":  # PyPI's Linux wheels of torch are CUDA builds
        return "CUDA build (an NVIDIA GPU is present)" if not override else "CUDA build (FAIRSEQ_ADMIN_TORCH=cuda)", [pinned]
    why = "no NVIDIA GPU found" if not override else "FAIRSEQ_ADMIN_TORCH=cpu"
    if cpu_index_reachable if cpu_index_reachable is not None else reachable(CPU_INDEX + "/torch/"):
        return f"CPU build ({why})", [pinned, "--extra-index-url", CPU_INDEX]
    # the CPU index is out of reach: pip's own sources decide (a local CPU wheel where one is configured)
    return f"CPU build ({why}; {CPU_INDEX} unreachable, so from pip's configured sources)", [pinned]


def fairseq_action(venv_python):
    """'keep VERSION' when the environment already imports fairseq (any distribution), else 'install'."""
    try:
        out = subprocess.run([venv_python, "-c", "import fairseq; print(fairseq.__version__)"],
                             capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError):
        return "install"
    return f"keep {out.stdout.strip()}" if out.returncode == 0 and out.stdout.strip() else "install"


def main(argv):
    what = argv[0] if argv else ""
    if what in ("python", "prerequisites"):
        problem = python_problem() if what == "python" else prerequisites_problem()
        if problem:
            print(f"setup: error: {problem}", file=sys.stderr)
            return 1
        return 0
    if what == "torch":
        label, args = torch_choice()
        print(label + "\t" + " ".join(args))
        return 0
    if what == "fairseq" and len(argv) == 2:
        print(fairseq_action(argv[1]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
