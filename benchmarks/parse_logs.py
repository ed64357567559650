"""Summarise fairseq-train logs (log-format simple): valid loss by update, best valid loss, words/s.

    python benchmarks/parse_logs.py NAME=LOG [NAME=LOG ...]
    python benchmarks/parse_logs.py --ratio BASE=LOG OTHER=LOG [--skip N]
        words/s of OTHER / BASE over the update intervals both logs hold, the first N (default 1) left out
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


def interval_wps(path):
    """{num_updates: words/s} of the train_inner lines of a log."""
    with open(path, errors="replace") as f:
        return {int(u): float(w) for w, u in re.findall(r"train_inner .*?wps=([\d.]+),.*?num_updates=(\d+)", f.read())}


def ratio(base, other, skip=1):
    (bn, bp), (on, op) = (a.split("=", 1) for a in (base, other))
    b, o = interval_wps(bp), interval_wps(op)
    common = sorted(set(b) & set(o))[skip:]
    if not common:
        sys.exit("parse_logs: error: the logs have no update interval in common")
    wb, wo = (sum(x[u] for u in common) / len(common) for x in (b, o))
    print(f"updates {common[0]}-{common[-1]} ({len(common)} intervals in both): {bn} {wb:,.0f} words/s, "
          f"{on} {wo:,.0f} words/s, ratio {on}/{bn} {wo / wb:.3f}")


def main(argv):
    if argv and argv[0] == "--ratio":
        skip = int(argv[argv.index("--skip") + 1]) if "--skip" in argv else 1
        return ratio(argv[1], argv[2], skip)
    runs = {name: parse(path) for name, path in (a.split("=", 1) for a in argv)}
    print(f"{'run':24} {'valid loss by update':48} {'best':>7} {'wps':>9} diverged")
    for name, r in runs.items():
        curve = " ".join(f"{u}:{l:.2f}" for u, l in r["valid"])
        best = min((l for _, l in r["valid"]), default=float("nan"))
        print(f"{name:24} {curve:48} {best:7.3f} {steady_wps(r['wps']):9.0f} {r['diverged']}")
    return runs


if __name__ == "__main__":
    main(sys.argv[1:])
