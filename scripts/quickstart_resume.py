"""Before the quickstart trains: may it resume the run in SAVE_DIR? (An output is reused only if what made it
is the same.)

    python scripts/quickstart_resume.py SAVE_DIR BIN_DIR "SETTINGS" UPDATES

SETTINGS names what else decides the result (threads, device). The run in SAVE_DIR is resumed only if it
was made from the same binarized data (binarize.sh's stamp BIN_DIR/.done) with the same
SETTINGS, and (UPDATES > 0) has not already trained for more than UPDATES updates; otherwise one line
naming the difference and exit 1. The identity is written to SAVE_DIR/quickstart.run (atomically) for
the next run to compare.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from fairseq_admin.checkpoints import load_checkpoint  # noqa: E402
from fairseq_admin.errors import AdminError  # noqa: E402
from fairseq_admin.files import atomic_write_text  # noqa: E402

STAMP = "quickstart.run"


def data_identity(bin_dir: str) -> str:
    """binarize.sh's stamp BIN_DIR/.done: the hash of the BPE'd text and the fairseq-preprocess settings."""
    with open(os.path.join(bin_dir, ".done"), encoding="utf-8") as f:
        return f.read().strip()


def trained_updates(checkpoint: str) -> int:
    history = load_checkpoint(checkpoint).get("optimizer_history") or [{}]
    return int(history[-1].get("num_updates", 0))


def main(save_dir: str, bin_dir: str, settings: str, updates: int) -> int:
    want = {"data": data_identity(bin_dir), "settings": settings}
    stamp, last = os.path.join(save_dir, STAMP), os.path.join(save_dir, "checkpoint_last.pt")
    how = f"give another WORK, or delete {save_dir} to start again"
    if os.path.exists(last):
        if os.path.exists(stamp):
            with open(stamp, encoding="utf-8") as f:
                have = json.load(f)
            if have.get("data") != want["data"]:
                print(f"quickstart: error: {save_dir} holds a run trained on other data (another SAMPLE_LINES, "
                      f"or another corpus) than {bin_dir} holds now: {how}", file=sys.stderr)
                return 1
            if have.get("settings") != settings:
                print(f"quickstart: error: {save_dir} holds a run made with {have.get('settings')}, not {settings}: "
                      f"resuming would mix them; rerun with those settings, {how}", file=sys.stderr)
                return 1
        if updates > 0:
            done = trained_updates(last)
            if done > updates:
                print(f"quickstart: error: {save_dir} holds a run already trained for {done} updates, more than "
                      f"UPDATES={updates}: rerun with UPDATES={done} (or more) to use it, {how}", file=sys.stderr)
                return 1
    os.makedirs(save_dir, exist_ok=True)
    atomic_write_text(stamp, json.dumps(want, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__.split("\n\n")[1].strip())
    try:
        sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
    except AdminError as e:  # e.g. an unreadable checkpoint_last.pt
        sys.exit(f"quickstart: error: {e}")
