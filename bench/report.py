"""Targets, the printed table and the plot, all from the results dict (bench/results/latest.json)."""

from __future__ import annotations

import math
from pathlib import Path

# The targets.
MAX_FLOOR_RATIO = 2.0  # p50 latency <= 2 x floor (empty round trip + json parse of the body)
# "Linear growth": between two sizes, the service's ms per 1,000 observations may grow by at most
# this much more than json.loads' time per byte of the same bodies, timed in the same run.  Parsing
# is linear, yet its time per byte grows by up to 1.6x from 1 MB to 10 MB bodies on this VM, as
# memory outgrows the CPU's caches; a quadratic scan would grow about 10x per 10x size.
MAX_PER_1K_GROWTH = 1.5
MIN_THROUGHPUT_SHARE = 0.5  # hook requests/s with the most clients >= half of discovery's
# "No memory growth": RSS after the calls may exceed RSS after warm-up by allocator noise only.
MEMORY_SLACK_KB = 2048
MEMORY_SLACK_SHARE = 0.02
# Above this share of the CPUs used by other processes during the run, the table carries a warning.
MAX_OTHER_CPU_SHARE = 0.05


def _target(name: str, passed: bool, value: str, limit: str, detail: str = "") -> dict:
    return {"target": name, "pass": passed, "value": value, "limit": limit, "detail": detail}


def targets(results: dict) -> list[dict]:
    out = []
    rows = results["latency"]
    for row in rows:
        name = f"latency {row['hook']} {row['observations']:,} obs"
        if "error" in row:
            out.append(_target(name, False, "failed", f"<= {MAX_FLOOR_RATIO:g}x floor", row["error"]))
        else:
            out.append(_target(
                name, row["floor_ratio"] <= MAX_FLOOR_RATIO, f"{row['floor_ratio']:.3f}x floor",
                f"<= {MAX_FLOOR_RATIO:g}x", f"p50 {row['p50_ms']:.1f} ms, floor {row['floor_ms']:.1f} ms",
            ))
    for hook in dict.fromkeys(r["hook"] for r in rows):
        series = [r for r in rows if r["hook"] == hook]
        for smaller, larger in zip(series, series[1:]):
            name = f"linear {hook} {smaller['observations']:,} -> {larger['observations']:,} obs"
            if "error" in smaller or "error" in larger:
                out.append(_target(name, False, "failed", f"<= {MAX_PER_1K_GROWTH:g}x"))
                continue
            growth = larger["ms_per_1k_obs"] / smaller["ms_per_1k_obs"]
            parse_growth = (
                (larger["parse_p50_ms"] / larger["body_bytes"]) / (smaller["parse_p50_ms"] / smaller["body_bytes"])
            )
            relative = growth / parse_growth
            out.append(_target(
                name, relative <= MAX_PER_1K_GROWTH, f"{relative:.2f}x json.loads' growth", f"<= {MAX_PER_1K_GROWTH:g}x",
                f"{smaller['ms_per_1k_obs']:.2f} -> {larger['ms_per_1k_obs']:.2f} ms per 1,000 obs ({growth:.2f}x; "
                f"json.loads per byte {parse_growth:.2f}x); cost ~ n^{larger['growth_exponent']:.2f}",
            ))
    tp = results.get("throughput")
    if tp:
        if "error" in tp:
            out.append(_target("throughput", False, "failed", "", tp["error"]))
        else:
            most = max(tp["clients"])
            hook, discovery = tp["hook_rps"][str(most)], tp["discovery_rps"][str(most)]
            share = hook / discovery
            detail = f"{hook:.0f} vs {discovery:.0f} req/s"
            if (ceiling := tp.get("ceiling")) and "error" not in ceiling:
                detail += f"; with no clinical work at all {ceiling_share(ceiling):.2f}x (the ceiling)"
            out.append(_target(
                f"throughput {most} clients", share >= MIN_THROUGHPUT_SHARE, f"{share:.2f}x discovery",
                f">= {MIN_THROUGHPUT_SHARE:g}x", detail,
            ))
    memory = results.get("memory")
    if memory:
        if "error" in memory:
            out.append(_target("memory growth", False, "failed", "", memory["error"]))
        else:
            slack = max(MEMORY_SLACK_KB, MEMORY_SLACK_SHARE * memory["rss_after_warmup_kb"])
            out.append(_target(
                f"memory growth over {memory['calls']:,} calls", memory["growth_kb"] <= slack,
                f"{memory['growth_kb'] / 1024:+.1f} MiB", f"<= {slack / 1024:.1f} MiB",
                f"{memory['rss_after_warmup_kb'] / 1024:.0f} -> {memory['rss_after_calls_kb'] / 1024:.0f} MiB RSS "
                f"(master + workers), {memory['growth_per_call_kb']:+.2f} KiB/call",
            ))
    return out


def ceiling_share(ceiling: dict) -> float:
    return ceiling["hook_rps"] / ceiling["discovery_rps"]


CEILING_WORDS = "hook handlers doing no clinical work (the request read, parsed and validated; no cards)"


def add_derived(results: dict) -> None:
    """Floor, floor ratio, ms per 1,000 observations and growth exponent for each latency row."""
    previous: dict[str, dict] = {}
    for row in results["latency"]:
        # The round trip timed alternately with this request's calls (the run's, if they failed).
        rt = row.get("round_trip_p50_ms", results["round_trip"]["p50_ms"])
        row["floor_ms"] = rt + row["parse_p50_ms"]
        if "error" in row:
            continue
        row["floor_ratio"] = row["p50_ms"] / row["floor_ms"]
        # Cost of the payload: latency above the empty round trip, per 1,000 observations.
        row["payload_ms"] = max(row["p50_ms"] - rt, 1e-6)
        row["ms_per_1k_obs"] = row["payload_ms"] / (row["observations"] / 1000)
        before = previous.get(row["hook"])
        row["growth_exponent"] = (
            math.log(row["payload_ms"] / before["payload_ms"]) / math.log(row["observations"] / before["observations"])
            if before else None
        )
        previous[row["hook"]] = row


def steadiness(results: dict) -> str | None:
    """How much the machine's speed moved during the run: the same json.loads, timed in every block,
    at its p95 against its fastest (1.0x on a steady machine)."""
    spreads = [row["parse_p95_ms"] / row["parse_min_ms"] for row in results["latency"] if row.get("parse_min_ms")]
    if not spreads:
        return None
    return (f"Steadiness: the same json.loads of a body took up to {max(spreads):.1f}x its fastest time "
            "(p95 / min over the blocks of one request): the machine's speed moved by that much during the run.")


def table(results: dict) -> str:
    meta = results["meta"]
    rt = results["round_trip"]
    lines = [
        f"CDS service benchmark: {meta['server']} ({meta['workers']} workers), {meta['cpus']} CPUs, "
        f"Python {meta['python']}, commit {meta['commit']}",
        f"Empty round trip (GET /cds-services): p50 {rt['p50_ms']:.2f} ms, p95 {rt['p95_ms']:.2f} ms (n={rt['n']})",
    ]
    if meta["other_cpu_share"] > MAX_OTHER_CPU_SHARE:
        lines.append(f"WARNING: other processes used {meta['other_cpu_share']:.0%} of the CPUs during the run "
                     f"(load average {meta['load_average_before']:.1f} before it): the numbers are pessimistic; "
                     "rerun on a quiet machine")
    lines += [
        "",
        f"{'history':>10} {'hook':<13} {'body':>8} {'parse':>7} {'+gc':>7} {'floor':>7} {'p50':>8} {'p95':>8} "
        f"{'p50/floor':>9} {'ms/1k obs':>9} {'n':>3}  cards",
    ]
    for row in results["latency"]:
        head = (f"{row['observations']:>10,} {row['hook']:<13} {row['body_bytes'] / 1024:>6,.0f}KB "
                f"{row['parse_p50_ms']:>7.2f} {row['parse_gc_p50_ms']:>7.2f} {row['floor_ms']:>7.2f}")
        if "error" in row:
            lines.append(f"{head}  FAILED: {row['error'][:80]}")
            continue
        lines.append(
            f"{head} {row['p50_ms']:>8.2f} {row['p95_ms']:>8.2f} {row['floor_ratio']:>8.2f}x "
            f"{row['ms_per_1k_obs']:>9.2f} {row['n']:>3}  {row['answer']['cards']} "
            f"({', '.join(row['answer']['indicators']) or 'none'})"
        )
    lines.append("(times in ms; parse = json.loads of the body, collector paused; +gc = the same with the "
                 "default collector; floor = empty round trip p50 + parse p50, both timed alongside the calls)")
    if steady := steadiness(results):
        lines.append(steady)
    tp = results.get("throughput")
    if tp and "error" not in tp:
        lines += ["", f"Throughput (req/s; {tp['seconds']:g} s per setting; hook = {tp['hook']} "
                      f"{tp['observations']:,} obs)",
                  f"{'clients':>10} {'discovery':>10} {'hook':>10} {'hook/discovery':>15} {'hook vs 1 client':>17}"]
        one = tp["hook_rps"][str(tp["clients"][0])]
        for clients in tp["clients"]:
            d, h = tp["discovery_rps"][str(clients)], tp["hook_rps"][str(clients)]
            lines.append(f"{clients:>10} {d:>10.0f} {h:>10.1f} {h / d:>14.2f}x {h / one:>16.2f}x")
        ceiling = tp.get("ceiling", {})
        if "error" in ceiling:
            lines.append(f"  ceiling: FAILED: {ceiling['error'][:200]}")
        elif ceiling:
            lines.append(f"  ceiling, {CEILING_WORDS}, {ceiling['clients']} clients: discovery "
                         f"{ceiling['discovery_rps']:.0f}, hook {ceiling['hook_rps']:.1f}, {ceiling_share(ceiling):.2f}x")
    memory = results.get("memory")
    if memory and "error" not in memory:
        lines += ["", f"Memory (RSS of master + workers; {memory['calls']:,} calls of {memory['request']['hook']} "
                      f"{memory['request']['observations']:,} obs after {memory['warmup_calls']} warm-up calls)",
                  f"  after warm-up {memory['rss_after_warmup_kb'] / 1024:.1f} MiB, after calls "
                  f"{memory['rss_after_calls_kb'] / 1024:.1f} MiB, growth {memory['growth_kb'] / 1024:+.1f} MiB; "
                  f"peak (sum of VmHWM over the run) {memory['peak_hwm_kb'] / 1024:.1f} MiB"]
    lines += ["", "Targets"]
    width = max((len(t["target"]) + len(t["value"]) for t in results["targets"]), default=0) + 1
    for t in results["targets"]:
        lines.append(f"  {'PASS' if t['pass'] else 'MISS'}  {t['target']}{t['value']:>{width - len(t['target'])}}"
                     f"  ({t['limit']})" + (f"  {t['detail']}" if t["detail"] else ""))
    return "\n".join(lines)


def markdown(results: dict) -> str:
    """The results as README tables (bench/results/latest.md), to paste after a new run."""
    meta, rt = results["meta"], results["round_trip"]
    lines = [
        f"{meta['workers']} gunicorn workers (`{meta['server']}`), {meta['cpus']} CPUs, Python {meta['python']}, "
        f"commit {meta['commit']}; other processes used {meta['other_cpu_share']:.0%} of the CPUs during the run.",
        f"Empty round trip (GET /cds-services): p50 {rt['p50_ms']:.2f} ms, p95 {rt['p95_ms']:.2f} ms.",
        "",
        "| observations (+ orders, conditions) | hook | body | json.loads | json.loads with gc | floor | p50 | p95 "
        "| p50 / floor | ms per 1,000 obs | cards |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for row in results["latency"]:
        head = (f"| {row['observations']:,} (+{row['medications']}, +{row['conditions']}) | {row['hook']} "
                f"| {row['body_bytes'] / 1024:,.0f} KB | {row['parse_p50_ms']:.1f} ms | {row['parse_gc_p50_ms']:.1f} ms "
                f"| {row['floor_ms']:.1f} ms ")
        if "error" in row:
            lines.append(head + f"| failed: {row['error'][:60]} | | | | |")
            continue
        lines.append(
            head + f"| {row['p50_ms']:.1f} ms | {row['p95_ms']:.1f} ms | {row['floor_ratio']:.2f}x "
            f"| {row['ms_per_1k_obs']:.1f} | {row['answer']['cards']} ({', '.join(row['answer']['indicators'])}) |"
        )
    if steady := steadiness(results):
        lines += ["", steady]
    tp = results.get("throughput")
    if tp and "error" not in tp:
        lines += ["", f"Throughput, requests/s ({tp['seconds']:g} s per setting; hook = {tp['hook']} with "
                      f"{tp['observations']:,} observations):", "",
                  "| clients | discovery | hook | hook / discovery |", "|--:|--:|--:|--:|"]
        for clients in tp["clients"]:
            d, h = tp["discovery_rps"][str(clients)], tp["hook_rps"][str(clients)]
            lines.append(f"| {clients} | {d:,.0f} | {h:,.0f} | {h / d:.2f}x |")
        ceiling = tp.get("ceiling", {})
        if ceiling and "error" not in ceiling:
            lines.append(f"| {ceiling['clients']}, ceiling: {CEILING_WORDS} | {ceiling['discovery_rps']:,.0f} "
                         f"| {ceiling['hook_rps']:,.0f} | {ceiling_share(ceiling):.2f}x |")
    memory = results.get("memory")
    if memory and "error" not in memory:
        lines += ["", f"Memory (RSS of master + workers): {memory['rss_after_warmup_kb'] / 1024:.0f} MiB after warm-up, "
                      f"{memory['rss_after_calls_kb'] / 1024:.0f} MiB after {memory['calls']:,} more calls "
                      f"({memory['growth_kb'] / 1024:+.1f} MiB); peak {memory['peak_hwm_kb'] / 1024:.0f} MiB "
                      "(sum of each process's VmHWM over the run)."]
    lines += ["", "| target | result | limit | |", "|---|--:|--:|---|"]
    for t in results["targets"]:
        lines.append(f"| {t['target']} | {t['value']} | {t['limit']} | {'PASS' if t['pass'] else '**MISS**'} |")
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    """Latency vs history size (log x and y) per hook, p50 with the p50-p95 band, floor and 2 x floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    rows = results["latency"]
    for hook, colour in zip(dict.fromkeys(r["hook"] for r in rows), ("tab:blue", "tab:orange", "tab:green")):
        ok = [r for r in rows if r["hook"] == hook and "error" not in r]
        if not ok:
            continue
        x = [r["observations"] for r in ok]
        ax.plot(x, [r["p50_ms"] for r in ok], "o-", color=colour, label=f"{hook} p50")
        ax.fill_between(x, [r["p50_ms"] for r in ok], [r["p95_ms"] for r in ok], color=colour, alpha=0.15,
                        label=f"{hook} p50-p95")
    floor_rows = [r for r in rows if r["hook"] == rows[-1]["hook"]]
    x = [r["observations"] for r in floor_rows]
    floor = [r["floor_ms"] for r in floor_rows]
    ax.plot(x, floor, "s--", color="black", label="floor (round trip + json parse)")
    ax.plot(x, [MAX_FLOOR_RATIO * f for f in floor], ":", color="grey", label=f"target ({MAX_FLOOR_RATIO:g} x floor)")
    ax.axhline(results["round_trip"]["p50_ms"], color="black", linewidth=0.6, alpha=0.5,
               label="empty round trip (GET /cds-services)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:,.0f}" if value >= 1 else f"{value:g}")
    ax.set_xticks(x)  # the measured sizes
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.yaxis.set_major_formatter(plain)
    ax.set_xlabel("observations in the request (plus medication and condition histories)")
    ax.set_ylabel("latency (ms)")
    meta = results["meta"]
    ax.set_title(f"Hook latency vs history size: {meta['workers']} gunicorn workers, {meta['cpus']} CPUs, loopback",
                 fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
