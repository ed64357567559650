"""Summarise fairseq-train logs (log-format simple): valid loss by update, best valid loss, words/s.

    python benchmarks/parse_logs.py NAME=LOG [NAME=LOG ...]
"""
import re
import sys


def parse(path):
    valid, wps, diverged = [], [], False
    with open(path, errors="replace") as f:
        for line in f:
            m = re.search(r"\| valid on 'valid' subset \| loss ([\d.]+|nan|inf).*num_updates (\d+)", line)
            if m:
                valid.append((int(m.group(2)), float(m.group(1))))
            m = re.search(r"train_inner .*wps=([\d.]+)", line)
            if m:
                wps.append(float(m.group(1)))
            if "Minimum loss scale reached" in line or "FloatingPointError" in line:
                diverged = True
    return {"valid": valid, "wps": wps, "diverged": diverged}


def steady_wps(wps):
    """Mean words/s over the logged intervals after the first (start-up) one."""
    tail = wps[1:] or wps
    return sum(tail) / len(tail) if tail else float("nan")


def main(argv):
    runs = {name: parse(path) for name, path in (a.split("=", 1) for a in argv)}
    print(f"{'run':24} {'valid loss by update':48} {'best':>7} {'wps':>9} diverged")
    for name, r in runs.items():
        curve = " ".join(f"{u}:{l:.2f}" for u, l in r["valid"])
        best = min((l for _, l in r["valid"]), default=float("nan"))
        print(f"{name:24} {curve:48} {best:7.3f} {steady_wps(r['wps']):9.0f} {r['diverged']}")
    return runs


if __name__ == "__main__":
    main(sys.argv[1:])
