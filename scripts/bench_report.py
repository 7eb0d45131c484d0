"""Records benchmark results with machine info and renders the tables of BENCHMARKS.md.

    python3 scripts/bench_report.py record NAME '{json}'   # writes bench/results/NAME.json, prints a table
    python3 scripts/bench_report.py markdown               # BENCHMARKS.md on stdout
"""

import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys

RESULTS = pathlib.Path(__file__).resolve().parent.parent / "bench" / "results"


def machine() -> dict:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "sha_ni": " sha_ni" in flags,
        "kernel": platform.release(),
        "rustc": rustc,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def rows(name: str, r: dict) -> list[tuple[str, str, str, str]]:
    """(figure, value, target, met) rows of one result."""
    if name == "build":
        ratio = r["ratio_to_sha256sum"]
        return [
            ("messages built", f'{r["messages"]:,} in {r["archives"]} archives', "", ""),
            ("build time (median of 3)", f'{r["build_s"]["median"]:.2f} s (min {r["build_s"]["min"]:.2f}, max {r["build_s"]["max"]:.2f})', "", ""),
            ("messages/s", f'{r["messages_per_s"]:,.0f}', "", ""),
            ("archive output", f'{r["output_mb_per_s"]:.0f} MB/s of {r["output_bytes"] / 1e6:.0f} MB', "", ""),
            ("sha256sum of the output", f'{r["sha256sum_s"]["median"]:.2f} s', "", ""),
            ("build / sha256sum", f"{ratio:.2f}x", "<= 4x", "met" if ratio <= 4 else "missed"),
            ("build / in-process sha256 (SHA-NI)", f'{r["ratio_to_sha256_in_process"]:.1f}x', "", "for reference"),
        ]
    if name == "blocks":
        a, c = r["add_speed_vs_sha256sum"], r["cat_speed_vs_sha256sum"]
        return [
            ("add 1 GiB", f'{r["add_mb_per_s"]:.0f} MB/s ({r["add_s"]["median"]:.2f} s)', "", ""),
            ("cat 1 GiB", f'{r["cat_mb_per_s"]:.0f} MB/s ({r["cat_s"]["median"]:.2f} s)', "", ""),
            ("sha256sum", f'{r["sha256sum_mb_per_s"]:.0f} MB/s', "", ""),
            ("in-process sha256 (SHA-NI)", f'{r["sha256_in_process_mb_per_s"]:.0f} MB/s', "", ""),
            ("add speed / sha256sum", f"{a:.2f}x", ">= 0.5x", "met" if a >= 0.5 else "missed"),
            ("cat speed / sha256sum", f"{c:.2f}x", ">= 0.7x", "met" if c >= 0.7 else "missed"),
            ("add speed / in-process sha256", f'{r["add_speed_vs_sha256_in_process"]:.2f}x', "", "for reference"),
            ("cat speed / in-process sha256", f'{r["cat_speed_vs_sha256_in_process"]:.2f}x', "", "for reference"),
        ]
    if name == "transfer":
        o, h = r["ours_mb_per_s"], r["helia_mb_per_s"]
        ratio, rss = r["ratio_ours_to_helia"], r["ours_fetcher_peak_rss_mib"]
        raw = r.get("raw_pipeline_mb_per_s")
        return [
            (f"ours -> ours, {r['bytes'] // 2**20} MiB", f'{o["median"]:.0f} MB/s (min {o["min"]:.0f}, max {o["max"]:.0f})', "", ""),
        ] + ([
            (f'raw pipeline (libp2p stream x{r["raw_pipeline_streams"]}, SHA-256 per MiB, fdatasync per 16 MiB)',
             f'{raw["median"]:.0f} MB/s (min {raw["min"]:.0f}, max {raw["max"]:.0f})', "", "the limit, same run"),
            ("ours / raw pipeline", f'{r["ratio_ours_to_raw_pipeline"]:.2f}x', ">= 0.8x",
             "met" if r["ratio_ours_to_raw_pipeline"] >= 0.8 else "missed"),
        ] if raw else []) + [
            ("Helia -> Helia, same bytes", f'{h["median"]:.0f} MB/s (min {h["min"]:.0f}, max {h["max"]:.0f})', "", ""),
            ("ours / Helia", f"{ratio:.1f}x", ">= 6x", "met" if ratio >= 6 else "missed"),
            ("our fetcher's peak RSS", f"{rss:.0f} MiB", "< 200 MiB", "met" if rss < 200 else "missed"),
            ("Helia fetcher's peak RSS", f'{r["helia_fetcher_peak_rss_mib"]:.0f} MiB', "", "for reference"),
        ] + ([
            ("Helia fetching from ours", f'{r["helia_from_ours_mb_per_s"]["median"]:.0f} MB/s', "", ""),
            ("Helia from ours / Helia from Helia", f'{r["ratio_helia_from_ours_to_helia_from_helia"]:.2f}x', ">= 1.5x",
             "met" if r["ratio_helia_from_ours_to_helia_from_helia"] >= 1.5 else "missed"),
        ] if "helia_from_ours_mb_per_s" in r else []) + ([
            (f'baseline build ({r["baseline_bin"]}) -> itself', f'{r["baseline_mb_per_s"]["median"]:.0f} MB/s', "", "same run"),
            ("ours / baseline", f'{r["ratio_ours_to_baseline"]:.2f}x', ">= 0.97x (no regression, within run noise)",
             "met" if r["ratio_ours_to_baseline"] >= 0.97 else "missed"),
        ] if "baseline_mb_per_s" in r else [])
    if name == "gossip":
        a, e = r["all_accepted_ms"], r["each_member_ms"]
        return [
            ("daemons, topology", f'{r["nodes"]}, each dials {r["degree"]} others', "", ""),
            (f'announcement to every member accepting it ({r["announcements"]} announcements)',
             f'p50 {a["p50"]:.0f} ms, p99 {a["p99"]:.0f} ms, max {a["max"]:.0f} ms', "", ""),
            ("each member", f'p50 {e["p50"]:.0f} ms, p99 {e["p99"]:.0f} ms, max {e["max"]:.0f} ms', "", ""),
        ]
    if name == "swarm":
        ratio, t, m = r["control_upload_ratio"], r["seconds"], r["members_upload_ratio"]
        return [
            ("members fetching at once", f'{r["members"]} members, {r["history_bytes"] / 2**20:.0f} MiB history in {r["archives"]} archives', "", ""),
            ("until the last member imported it", f'{t["median"]:.1f} s (min {t["min"]:.1f}, max {t["max"]:.1f})', "", ""),
            ("control node upload / history size", f'{ratio["median"]:.2f}x (min {ratio["min"]:.2f}, max {ratio["max"]:.2f})', "<= 1.5x (client-server: 20x)", "met" if ratio["median"] <= 1.5 else "missed"),
            ("members' upload / history size", f'{m["median"]:.2f}x', "", ""),
        ] + ([
            ("each member's fetch time", "p50 {p50:.1f} s, p90 {p90:.1f} s (min {min:.1f}, max {max:.1f})".format(**r["member_seconds"]), "", ""),
            ("each member's upload / history size", "p50 {p50:.2f}x, p90 {p90:.2f}x (min {min:.2f}, max {max:.2f})".format(**r["member_upload_ratio"]), "", ""),
            ("bytes received twice / history size (all members)", f'{r["received_twice_ratio"]["median"]:.2f}x', "", ""),
        ] if "member_seconds" in r else []) + ([
            ("baseline build: until the last member imported it", f'{r["baseline"]["seconds"]["median"]:.1f} s', "", "same run"),
            ("baseline build: control node upload / history size", f'{r["baseline"]["control_upload_ratio"]["median"]:.2f}x', "", "same run"),
            ("members' fetch time / baseline's", f'{t["median"] / r["baseline"]["seconds"]["median"]:.2f}x', "<= 0.8x",
             "met" if t["median"] / r["baseline"]["seconds"]["median"] <= 0.8 else "missed"),
        ] if "baseline" in r else [])
    if name == "memory":
        peak, history = r["member_peak_rss_mib"], r["history_bytes"] / 2**20

        def rss(label, mib):
            return (label, f"{mib:.0f} MiB", "<= 128 MiB", "met" if mib <= 128 else "missed")

        def disk(label, mib):
            ratio = mib / history
            return (label, f"{mib:.0f} MiB ({ratio:.2f}x)", "<= 1.5x", "met" if ratio <= 1.5 else "missed")

        rows = [
            ("member catching up", f'{history:.0f} MiB history, {r["archives"]} archives, {r["seconds"]:.1f} s', "", ""),
            rss("member peak RSS", peak),
            ("idle daemon RSS", f'{r["idle_rss_mib"]:.0f} MiB', "", ""),
        ]
        if "control_rss_after_archiving_mib" in r:
            rows += [
                rss("control node RSS after archiving", r["control_rss_after_archiving_mib"]),
                rss("member peak RSS, restart and walk of every message", r["walk_after_restart_peak_rss_mib"]),
                disk("control node disk", r["control_disk_mib"]),
                disk("member disk", r["member_disk_mib"]),
            ]
        return rows
    if name == "memory-small":
        peak = r["member_peak_rss_mib"]
        return [
            ("member catching up", f'{r["messages"]:,} messages of 200 bytes, {r["archives"]} archives, {r["seconds"]:.1f} s', "", ""),
            ("member peak RSS", f"{peak:.0f} MiB", "<= 128 MiB", "met" if peak <= 128 else "missed"),
            ("member disk", f'{r["member_disk_mib"]:.0f} MiB', "", ""),
        ]
    if name == "catchup":
        c, raw, ratio = r["catchup_s"], r["raw_sled_s"], r["ratio_to_raw_sled"]
        return [
            ("history", f'{r["messages"]:,} messages in {r["archives"]} archives, {r["archive_bytes"] / 1e6:.0f} MB', "", ""),
            ("catch-up, join to last import", f'{c["median"]:.1f} s (min {c["min"]:.1f}, max {c["max"]:.1f})', "<= 30 s", "met" if c["median"] <= 30 else "missed"),
            ("every archive downloaded after", f'{r["download_done_s"]["median"]:.1f} s', "", ""),
            ("imported", f'{r["messages_per_s"]:,.0f} messages/s, {r["mb_per_s"]:.1f} MB/s of archives', "", ""),
            ("raw sled batch inserts, same records", f'{raw["median"]:.1f} s ({r["raw_sled_records_per_s"]:,.0f} records/s)', "", ""),
            ("import speed / raw sled", f"{ratio:.2f}x", ">= 0.5x", "met" if ratio >= 0.5 else "missed"),
        ]
    if name == "wan":
        def row(rtt, p):
            raw = f' / {p["raw_stream"]:.1f}' if "raw_stream" in p else ""
            names = "ours / raw stream / Helia / plain TCP" if raw else "ours / Helia / plain TCP"
            return (f"{rtt} ms RTT: {names}", f'{p["ours"]:.1f}{raw} / {p["helia"]:.1f} / {p["plain_tcp"]:.1f} MB/s', "", "")
        out = [row(rtt, p) for rtt, p in r["curve_mb_per_s"].items()]
        if r.get("ratio_ours_to_helia_at_50ms"):
            h = r["ratio_ours_to_helia_at_50ms"]
            out.append(("ours / Helia at 50 ms", f"{h:.2f}x", ">= 3x", "met" if h >= 3 else "missed"))
            if r.get("ratio_ours_to_raw_stream_at_50ms"):
                t = r["ratio_ours_to_raw_stream_at_50ms"]
                out.append(("ours / raw libp2p stream at 50 ms", f"{t:.2f}x", ">= 0.7x", "met" if t >= 0.7 else "missed"))
            out.append(("ours / plain TCP stream at 50 ms", f'{r["ratio_ours_to_plain_tcp_at_50ms"]:.2f}x', "", ""))
        if r.get("plot"):
            out.append(("plot", r["plot"], "", ""))
        return out
    return [(k, json.dumps(v), "", "") for k, v in r.items()]


def table(name: str, r: dict) -> str:
    lines = ["| figure | value | target | |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows(name, r)]
    return "\n".join(lines)


def main() -> None:
    cmd = sys.argv[1]
    if cmd == "record":
        name, result = sys.argv[2], json.loads(sys.argv[3])
        RESULTS.mkdir(parents=True, exist_ok=True)
        doc = {"name": name, "machine": machine(), "result": result}
        (RESULTS / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
        print(table(name, result))
    elif cmd == "markdown":
        print("# Benchmarks\n")
        print("Measured by `scripts/bench.sh all` (release build, each comparison in the same run, medians of 3).")
        print("Raw figures and machine info: `bench/results/*.json`.\n")
        for path in sorted(RESULTS.glob("*.json")):
            doc = json.loads(path.read_text())
            m = doc["machine"]
            print(f"## {doc['name']}\n")
            print(f"`scripts/bench.sh {doc['name']}` — {m['cpu']}, {m['cores']} cores, SHA-NI {'yes' if m['sha_ni'] else 'no'}, {m['date']}\n")
            print(table(doc["name"], doc["result"]) + "\n")
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
