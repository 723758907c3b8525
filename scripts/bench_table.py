"""The issue-27 and issue-16 tables from the `RESULT name value` lines of a `scripts/bench all` run (stdin):
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


def ms(value):
    return "–" if value is None else "%.0f ms" % value


# Issue 27's table: one round trip per request, agency pages at 1,000 practices.
rows27 = [
    ("`GET leads?limit=50` vs `/healthz`", "0.04×", ratio(get("leads50_vs_healthz")), "≥ 0.20×",
     get("leads50_vs_healthz"), lambda v: v >= 0.20),
    ("signed ingest, whole path over TLS, vs pgbench single-row insert", "0.05×", ratio(get("ingest_vs_insert")),
     "≥ 0.30×", get("ingest_vs_insert"), lambda v: v >= 0.30),
    ("Twilio voice webhook vs pgbench single-row insert", "–", ratio(get("twilio_vs_insert")), "≥ 0.30×",
     get("twilio_vs_insert"), lambda v: v >= 0.30),
    ("`GET /agency` with 1,000 practices vs `GET /home` (p50)", "10.4×", ratio(get("agency_vs_home")), "≤ 3×",
     get("agency_vs_home"), lambda v: v <= 3),
    ("`GET /home` with 1,000 practices vs with 3 (p50)", "116 ms at 1,003", ratio(get("home_large_vs_3")) + (
        "" if get("console_home_ms") is None else " (%s)" % ms(get("console_home_ms"))), "≤ 1.5×",
     get("home_large_vs_3"), lambda v: v <= 1.5),
    ("cross-practice ROI report, 1,000 practices × 1,000 leads, p50", "–", ms(get("roi_across_practices_p50_ms")),
     "≤ 150 ms", get("roi_across_practices_p50_ms"), lambda v: v <= 150),
    ("audit trail page at 1,000,000 events in the practice, p50", "1.4 s at 20,000",
     ms(get("audit_page_large_ms")), "≤ 100 ms", get("audit_page_large_ms"), lambda v: v <= 100),
    ("gate vs hand-written `WHERE tenant_id`", "0.68–0.87×", ratio(get("gate_ratio")), "≥ 0.90×",
     get("gate_ratio"), lambda v: v >= 0.90),
    ("field seal 32 B vs `openssl speed`", "0.36–0.69×", ratio(get("field_seal_ratio")), "≥ 0.60×",
     get("field_seal_ratio"), lambda v: v >= 0.60),
    ("field open 32 B vs `openssl speed`", "0.55–0.72×", ratio(get("field_open_ratio")), "≥ 0.60×",
     get("field_open_ratio"), lambda v: v >= 0.60),
    ("API through PgBouncer vs direct", "0.84–0.90×", ratio(get("pgbouncer_vs_direct")), "≥ 0.95×",
     get("pgbouncer_vs_direct"), lambda v: v >= 0.95),
]


def table(title, rows):
    print(title)
    print()
    print("| figure | before | now | goal | met |")
    print("|---|---|---|---|---|")
    for name, before, now, goal, value, test in rows:
        print("| %s | %s | %s | %s | %s |" % (name, before, now, goal,
                                            "–" if value is None else ("yes" if test(value) else "no")))
    print()


table("Issue 27 (one round trip per request):", rows27)
table("Issue 16 (the first performance pass):", rows)
details = ["%s %s" % (k, ("%.0f" if v >= 100 else "%.3f") % v) for k, v in sorted(values.items())]
print("Raw figures: " + "; ".join(details))
