"""The seeded end-to-end comparison's table: ferd's `ferd-official-code` runs against the official
code's (tools/peer/seeded_comparison.sh), per epoch and at the end, as Markdown.

Run:  python3 tools/peer/compare_seeded.py OUT   (the folder seeded_comparison.sh filled)

Per epoch, the mean over seeds of each side's teacher agreement on the kept images, the mean
synthesis terms and the label distribution (its smallest and largest class share); at the end,
clean and PGD-20 accuracy on the same 1,000 balanced test images (average, worst class, NSD),
every student evaluated by the same `ferd evaluate`: each side's mean with its 95% interval
(Student's t over the seeds), whether ferd's mean lies inside the official code's interval, and
Welch's two-sample t-test of the difference (which, unlike the interval, counts ferd's own
spread).
"""
import json
import math
import pathlib
import statistics
import sys

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom.
T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
       2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060,
       2.056, 2.052, 2.048, 2.045, 2.042]
SIDES = [("ferd", "ferd"), ("official", "official code")]


def interval(values):
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, float("nan")
    return mean, T95[len(values) - 2] * statistics.stdev(values) / math.sqrt(len(values))


def welch(a, b):
    """Welch's t of the difference of the means and its degrees of freedom (Satterthwaite)."""
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    if va + vb == 0:
        return float("inf") if statistics.fmean(a) != statistics.fmean(b) else 0.0, len(a) + len(b) - 2
    t = (statistics.fmean(a) - statistics.fmean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return t, df


def runs(out, side):
    return sorted(p for p in out.glob(f"{side}-*") if (p / "eval.json").is_file())


def epochs(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]


def finals(run):
    report = json.loads((run / "eval.json").read_text())
    pgd = next(a["robust"] for a in report["attacks"] if a["name"].startswith("pgd"))
    out = {}
    for name, acc in [("clean", report["clean"]), ("PGD-20", pgd)]:
        out[f"{name} average"] = 100 * acc["overall"]
        out[f"{name} worst class"] = 100 * acc["worst_class"][1]
        out[f"{name} NSD"] = acc["nsd"]
    return out


def main():
    out = pathlib.Path(sys.argv[1])
    found = {side: runs(out, side) for side, _ in SIDES}
    print(f"Seeds: ferd {len(found['ferd'])}, official code {len(found['official'])}.\n")
    print("Per epoch (mean over seeds; distribution: smallest and largest class share):\n")
    print("| epoch | side | teacher agreement | L_bn | L_adv | L_oh | L_uni | p min / max |")
    print("|---|---|---|---|---|---|---|---|")
    histories = {side: [epochs(r) for r in found[side]] for side, _ in SIDES}
    n_epochs = min(len(h) for hs in histories.values() for h in hs)
    for e in range(n_epochs):
        for side, label in SIDES:
            rows = [h[e] for h in histories[side]]
            mean = lambda f: statistics.fmean(f(r) for r in rows)  # noqa: E731
            terms = [mean(lambda r, k=k: r["synthesis_mean"][k]) for k in ["bn", "adv", "oh", "uni"]]
            p_min = mean(lambda r: min(r["class_distribution"]))
            p_max = mean(lambda r: max(r["class_distribution"]))
            print(f"| {e + 1} | {label} | {100 * mean(lambda r: r['teacher_agreement']):.1f}% | "
                  + " | ".join(f"{t:.3f}" for t in terms) + f" | {p_min:.3f} / {p_max:.3f} |")
    print("\nFinal student, 1,000 balanced test images (mean ± 95% interval over seeds):\n")
    print("| figure | ferd | official code | ferd's mean inside the official interval "
          "| Welch's t (df): different at 5%? |")
    print("|---|---|---|---|---|")
    values = {side: [finals(r) for r in found[side]] for side, _ in SIDES}
    for key in values["ferd"][0]:
        if any(v[key] is None for s, _ in SIDES for v in values[s]):
            print(f"| {key} | — | — | undefined for a student at 0% | — |")
            continue
        (fm, fh), (om, oh) = (interval([v[key] for v in values[s]]) for s, _ in SIDES)
        digits = 3 if "NSD" in key else 1
        inside = "yes" if abs(fm - om) <= oh else "**no**"
        t, df = welch(*([v[key] for v in values[s]] for s, _ in SIDES))
        quantile = T95[min(max(int(df), 1), len(T95)) - 1]  # df rounded down: conservative
        different = "**yes**" if abs(t) > quantile else "no"
        print(f"| {key} | {fm:.{digits}f} ± {fh:.{digits}f} | {om:.{digits}f} ± {oh:.{digits}f} "
              f"| {inside} | {t:.2f} ({df:.1f}): {different} |")


if __name__ == "__main__":
    main()
