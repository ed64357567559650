"""Pass fairseq-train's log through, adding after each train_inner line the progress towards --max-update:
updates done, updates/s over the run so far, and the time left at that rate.

    fairseq-train ... 2>&1 | python scripts/progress.py TOTAL_UPDATES
"""
import re
import sys
import time


def main(total: int) -> None:
    start = first = None
    for line in sys.stdin:
        sys.stdout.write(line)
        m = re.search(r"\| train_inner \|.*?num_updates=(\d+)", line)
        if not m:
            continue
        done, now = int(m.group(1)), time.monotonic()
        if start is None:  # rates from the first logged interval on (the start-up is not an update)
            start, first = now, done
            continue
        rate = (done - first) / (now - start) if now > start else 0.0
        left = (total - done) / rate if rate > 0 else float("nan")
        eta = f"{int(left // 60)}:{int(left % 60):02d}" if left == left else "?"
        sys.stdout.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} | INFO | quickstart | update {done}/{total}, "
                         f"{rate:.2f} updates/s, about {eta} left\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(int(sys.argv[1]))
