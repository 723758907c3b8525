"""The issue-16 table from the `RESULT name value` lines of a `scripts/bench all` run (stdin):
each figure, its goal, and whether this run met it. Markdown, for BENCHMARKS.md."""

import sys

values = {}
for line in sys.stdin:
    if line.startswith("RESULT "):
        _, name, value = line.split()
        values[name] = float(value)


def get(name):
    return values.get(name)


def ratio(value):
    return "–" if value is None else "%.2f×" % value


rows = [
    ("gate vs hand-written `WHERE tenant_id`, same query and data (pgbench, 2,000 practices)", "0.59×",
     ratio(get("gate_ratio")), "≥ 0.90×", get("gate_ratio"), lambda v: v >= 0.90),
    ("audit appends vs plain insert, 16 chains", "0.42×", ratio(get("audit_sixteen_chains_ratio")), "≥ 0.80×",
     get("audit_sixteen_chains_ratio"), lambda v: v >= 0.80),
    ("audit appends vs plain insert, one chain", "0.20×", ratio(get("audit_one_chain_ratio")), "≥ 0.60×",
     get("audit_one_chain_ratio"), lambda v: v >= 0.60),
    ("`GET leads?limit=50` vs `/healthz`", "0.03×", ratio(get("leads50_vs_healthz")), "≥ 0.15×",
     get("leads50_vs_healthz"), lambda v: v >= 0.15),
    ("8 concurrent readers of one practice vs 8 readers of 8 practices", "serialized",
     ratio(get("one_vs_eight_practices")), "≥ 0.8×", get("one_vs_eight_practices"), lambda v: v >= 0.8),
    ("field seal, 32 B, vs `openssl speed` 32 B", "0.14×", ratio(get("field_seal_ratio")), "≥ 0.5×",
     get("field_seal_ratio"), lambda v: v >= 0.5),
    ("field open, 32 B, vs `openssl speed` 32 B", "0.27×", ratio(get("field_open_ratio")), "≥ 0.6×",
     get("field_open_ratio"), lambda v: v >= 0.6),
    ("recording seal 1 MiB vs `openssl speed` 64 KiB", "0.28×", ratio(get("recording_seal_ratio")), "≥ 0.8×",
     get("recording_seal_ratio"), lambda v: v >= 0.8),
]
best = max([v for k, v in values.items() if k.startswith("reencrypt_")] or [0])
rows.append((
    "re-encryption (release), rows/s at --jobs 1 / 2 / 4 (4 practices; 1 practice)", "2,182 rows/s",
    "%s; %s" % (
        " / ".join("%.0f" % values.get("reencrypt_many_jobs%d_rows_per_s" % j, 0) for j in (1, 2, 4)),
        " / ".join("%.0f" % values.get("reencrypt_one_jobs%d_rows_per_s" % j, 0) for j in (1, 2, 4))),
    "≥ 20,000 rows/s", best, lambda v: v >= 20000))
rows += [
    ("signed ingest over TLS, whole path, vs pgbench single-row insert of the same shape", "–",
     ratio(get("ingest_vs_insert")), "≥ 0.3×", get("ingest_vs_insert"), lambda v: v >= 0.3),
    ("list 50 leads at 10,000 practices × 1,000 leads vs at 100 practices (p50 latency)", "–",
     ratio(get("list_latency_large_vs_100")), "≤ 1.2×", get("list_latency_large_vs_100"), lambda v: v <= 1.2),
    ("API through PgBouncer (transaction mode) vs direct", "–", ratio(get("pgbouncer_vs_direct")), "≥ 0.9×",
     get("pgbouncer_vs_direct"), lambda v: v >= 0.9),
]
print("| figure | before | now | goal | met |")
print("|---|---|---|---|---|")
for name, before, now, goal, value, test in rows:
    print("| %s | %s | %s | %s | %s |" % (name, before, now, goal, "–" if value is None else ("yes" if test(value) else "no")))
details = ["%s %s" % (k, ("%.0f" if v >= 100 else "%.3f") % v) for k, v in sorted(values.items())]
print("\nRaw figures: " + "; ".join(details))
