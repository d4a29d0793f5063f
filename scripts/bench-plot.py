#!/usr/bin/python3
"""Summary table and plots of the bench-suite figures (scripts/bench.sh).

Usage: bench-plot.py RAW.csv OUTDIR [--markdown]

RAW.csv has one line per figure and repetition:
  workload,threads,fs,rep,value,unit,better      (better: hi or lo)
Writes OUTDIR/bench-summary.csv (median, min, max per workload, threads and
filesystem, and the ratio of medians, > 1 meaning rdaxfs is better also for
lower-is-better figures such as mount time) and prints the table; with
Debian's python3-matplotlib it also writes OUTDIR/bench-bars.png (rdaxfs vs
ext4-DAX per workload with min-max whiskers), bench-scaling.png (median
against threads) and bench-ratios.png (ratio of medians, 1.0 marked).
"""
import csv
import os
import statistics
import sys

A, B, RAW = "rdaxfs", "ext4-dax", "raw-pmem"


def load(path):
    vals, units, order = {}, {}, []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            key = (row["workload"], int(row["threads"]))
            if key not in order:
                order.append(key)
            units[row["workload"]] = (row["unit"], row["better"])
            vals.setdefault(key + (row["fs"],), []).append(float(row["value"]))
    return vals, units, order


def summary(vals, units, order):
    rows = []
    for w, t in order:
        unit, better = units[w]
        cell = {}
        for fs in (A, B, RAW):
            v = vals.get((w, t, fs))
            if v:
                cell[fs] = (statistics.median(v), min(v), max(v), len(v))
        ratio = None
        if A in cell and B in cell:
            a, b = cell[A][0], cell[B][0]
            if better == "lo":
                ratio = b / a if a > 0 else float("inf")
            else:
                ratio = a / b if b > 0 else float("inf")
        rows.append((w, t, unit, better, cell, ratio))
    return rows


def fmt(c):
    if c is None:
        return "-"
    m, lo, hi, _ = c
    nd = 1 if max(abs(m), abs(hi)) < 1000 else 0
    return f"{m:.{nd}f} [{lo:.{nd}f}-{hi:.{nd}f}]"


def table(rows, markdown):
    head = ["workload", "threads", "unit", "rdaxfs median [min-max]",
            "ext4-DAX median [min-max]", "ratio", "raw pmem"]
    lines = []
    for w, t, unit, better, cell, ratio in rows:
        unit = unit + (" (lower is better)" if better == "lo" else "")
        lines.append([w, str(t), unit, fmt(cell.get(A)), fmt(cell.get(B)),
                      "-" if ratio is None else f"{ratio:.2f}",
                      fmt(cell.get(RAW)) if RAW in cell else ""])
    if markdown:
        out = ["| " + " | ".join(head) + " |",
               "|" + "|".join("---" for _ in head) + "|"]
        out += ["| " + " | ".join(l) + " |" for l in lines]
        return "\n".join(out)
    widths = [max(len(x) for x in col) for col in zip(head, *lines)]
    out = ["  ".join(x.ljust(wd) for x, wd in zip(head, widths))]
    out += ["  ".join(x.ljust(wd) for x, wd in zip(l, widths)) for l in lines]
    return "\n".join(out)


def write_summary(rows, path):
    with open(path, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["workload", "threads", "unit", "better",
                     "rdaxfs_median", "rdaxfs_min", "rdaxfs_max",
                     "ext4dax_median", "ext4dax_min", "ext4dax_max", "ratio",
                     "raw_median"])
        for w, t, unit, better, cell, ratio in rows:
            a = cell.get(A, (None,) * 4)[:3]
            b = cell.get(B, (None,) * 4)[:3]
            r = cell.get(RAW, (None,))[0]
            wr.writerow([w, t, unit, better, *a, *b,
                         "" if ratio is None else f"{ratio:.3f}",
                         "" if r is None else r])


def plots(rows, outdir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench-plot: python3-matplotlib missing (scripts/setup.sh --bench "
              "installs it); table and CSV only", file=sys.stderr)
        return []
    colors = {A: "#1f77b4", B: "#ff7f0e", RAW: "#7f7f7f"}
    workloads = []
    for r in rows:
        if r[0] not in workloads:
            workloads.append(r[0])
    by_w = {w: [r for r in rows if r[0] == w] for w in workloads}
    made = []

    # Bars: one panel per workload, a pair of bars per thread count.
    n = len(workloads)
    cols = 4
    nrows = (n + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.0 * nrows),
                             squeeze=False)
    for ax, w in zip(axes.flat, workloads):
        rs = by_w[w]
        fss = [fs for fs in (A, B, RAW) if any(fs in r[4] for r in rs)]
        width = 0.8 / len(fss)
        for k, fs in enumerate(fss):
            xs, ms, lo, hi = [], [], [], []
            for i, r in enumerate(rs):
                c = r[4].get(fs)
                if c:
                    xs.append(i + (k - (len(fss) - 1) / 2) * width)
                    ms.append(c[0])
                    lo.append(c[0] - c[1])
                    hi.append(c[2] - c[0])
            ax.bar(xs, ms, width, yerr=[lo, hi], capsize=3, color=colors[fs],
                   label=fs)
        ax.set_xticks(range(len(rs)))
        ax.set_xticklabels([f"{r[1]} thr" for r in rs])
        unit, better = rs[0][2], rs[0][3]
        ax.set_title(w, fontsize=9)
        ax.set_ylabel(unit + (" (lower better)" if better == "lo" else ""),
                      fontsize=8)
        ax.tick_params(labelsize=7)
        for i, r in enumerate(rs):
            if r[5] is not None:
                ax.annotate(f"{r[5]:.2f}x", (i, 0), xytext=(0, 2),
                            textcoords="offset points", ha="center",
                            fontsize=7, color="white", weight="bold")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right")
    fig.suptitle("rdaxfs vs ext4 -o dax: median of the repetitions, "
                 "whiskers min-max, label = ratio (>1: rdaxfs better)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    p = os.path.join(outdir, "bench-bars.png")
    fig.savefig(p, dpi=90)
    plt.close(fig)
    made.append(p)

    # Thread scaling: the workloads run with more than one thread count.
    multi = [w for w in workloads if len(by_w[w]) > 1]
    if multi:
        n = len(multi)
        nrows = (n + cols - 1) // cols
        fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.0 * nrows),
                                 squeeze=False)
        for ax, w in zip(axes.flat, multi):
            rs = by_w[w]
            for fs in (A, B):
                pts = [(r[1], r[4][fs]) for r in rs if fs in r[4]]
                if not pts:
                    continue
                t = [p_[0] for p_ in pts]
                m = [p_[1][0] for p_ in pts]
                lo = [p_[1][0] - p_[1][1] for p_ in pts]
                hi = [p_[1][2] - p_[1][0] for p_ in pts]
                ax.errorbar(t, m, yerr=[lo, hi], marker="o", capsize=3,
                            color=colors[fs], label=fs)
            ax.set_xticks([r[1] for r in rs])
            ax.set_xlabel("threads", fontsize=8)
            ax.set_ylabel(rs[0][2], fontsize=8)
            ax.set_title(w, fontsize=9)
            ax.set_ylim(bottom=0)
            ax.tick_params(labelsize=7)
        for ax in list(axes.flat)[n:]:
            ax.axis("off")
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper right")
        fig.suptitle("Thread scaling (median, whiskers min-max)", fontsize=10)
        fig.tight_layout(rect=(0, 0, 1, 0.97))
        p = os.path.join(outdir, "bench-scaling.png")
        fig.savefig(p, dpi=90)
        plt.close(fig)
        made.append(p)

    # Ratios of medians in one picture.
    rr = [r for r in rows if r[5] is not None]
    if rr:
        fig, ax = plt.subplots(figsize=(8, 0.25 * len(rr) + 1.2))
        labels = [f"{r[0]}, {r[1]} thr" for r in rr]
        vals = [min(r[5], 5.0) for r in rr]
        ax.barh(range(len(rr)), vals,
                color=["#2ca02c" if r[5] >= 1.0 else "#d62728" for r in rr])
        ax.axvline(1.0, color="black", lw=1)
        ax.set_yticks(range(len(rr)))
        ax.set_yticklabels(labels, fontsize=7)
        ax.invert_yaxis()
        for i, r in enumerate(rr):
            ax.text(vals[i], i, f" {r[5]:.2f}", va="center", fontsize=7)
        ax.set_xlabel("rdaxfs / ext4-DAX, ratio of medians (>1: rdaxfs better; "
                      "capped at 5)", fontsize=8)
        fig.tight_layout()
        p = os.path.join(outdir, "bench-ratios.png")
        fig.savefig(p, dpi=90)
        plt.close(fig)
        made.append(p)
    return made


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 2:
        sys.exit(__doc__)
    raw, outdir = args
    vals, units, order = load(raw)
    if not order:
        sys.exit(f"bench-plot: no figures in {raw}")
    rows = summary(vals, units, order)
    os.makedirs(outdir, exist_ok=True)
    write_summary(rows, os.path.join(outdir, "bench-summary.csv"))
    print(table(rows, "--markdown" in sys.argv))
    for p in plots(rows, outdir):
        print(f"bench-plot: wrote {p}", file=sys.stderr)


if __name__ == "__main__":
    main()
