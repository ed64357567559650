"""Cost of --admin-log-dependency: a training step (forward + backward) with the β² meter against the same
step without it, alternated back to back on the same batch and model, the study's 18-18 Admin.

    python benchmarks/dependency_cost.py [--bin work/bench/study-bin] [--pairs 10] [--every 50] [--quick]

Prints the median step times, the ratio metered/plain (the cost of a step that measures), the cost
amortised over --every steps (what --admin-log-dependency N adds to training), and the time spent inside
the meter's own code during the metered steps.
"""
import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import mechanism  # noqa: E402
import study  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", default=os.path.join(ROOT, "work", "bench", "study-bin"))
    p.add_argument("--method", default="admin")
    p.add_argument("--pairs", type=int, default=10)
    p.add_argument("--every", type=int, default=50, help="the --admin-log-dependency interval to amortise over")
    p.add_argument("--quick", action="store_true", help="2-2 layers, width 32 (the tests' mode)")
    args = p.parse_args(argv)
    study.fairseq_style_logging()
    import torch
    from fairseq import utils

    from fairseq_admin.dependency import DependencyMeter

    layers = 2 if args.quick else 18
    task, model, criterion = mechanism.build(args.bin, args.method, layers, 1, args.quick)
    sample = task.first_training_batch(model)
    model.train()

    inside = []  # seconds spent in the meter's own code, per metered step

    def step(metered):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        with utils.set_torch_seed(1):
            if metered:
                meter = DependencyMeter(model)
                observe, spent = meter._observe, [0.0]

                def timed(*a):
                    t = time.perf_counter()
                    observe(*a)
                    spent[0] += time.perf_counter() - t
                meter._observe = timed
                with meter:
                    loss, _, _ = criterion(model, sample)
                    loss.backward()
                meter.results()
                inside.append(spent[0])
            else:
                loss, _, _ = criterion(model, sample)
                loss.backward()
        return time.perf_counter() - start

    step(False), step(True)  # warm-up
    plain, metered = [], []
    inside.clear()
    for i in range(args.pairs):  # alternate the order so that drifts in machine load cancel
        for m in ((False, True) if i % 2 == 0 else (True, False)):
            (metered if m else plain).append(step(m))
    p_med, m_med = statistics.median(plain), statistics.median(metered)
    ratio = m_med / p_med
    print(f"model: {layers}-{layers} {args.method}, {sample['ntokens']} target tokens, torch threads {torch.get_num_threads()}")
    print(f"step without the meter: median {p_med * 1000:.1f} ms over {len(plain)}; with it: {m_med * 1000:.1f} ms over {len(metered)}")
    print(f"ratio metered/plain: {ratio:.4f} (a measuring step costs {100 * (ratio - 1):+.2f}%)")
    print(f"amortised over --admin-log-dependency {args.every}: {100 * (ratio - 1) / args.every:+.3f}% of training time")
    # the meter's own work (two variances per sublayer), timed inside the metered steps: a floor of its cost
    # that machine-load drifts between steps do not blur
    own = statistics.median(inside)
    print(f"time inside the meter's code per metered step: median {own * 1000:.1f} ms = {100 * own / m_med:.2f}% of the step")


if __name__ == "__main__":
    main()
