/*
 * replay: runs a tick file through the nq runtime engine via the C ABI and
 * prints one line per decision.
 *
 *   replay CHECKPOINT TICKS_CSV [--warmup-bars BARS_CSV] [--bench] [--no-prepare]
 *          [--trades] [--session S] [--commission USD] [--slippage-ticks T]
 *          [--drawdown-limit USD] [--sample SEED]
 *
 * TICKS_CSV: header, then `ts_utc_ns,price,size,side` (side B, A/S or N/empty).
 * BARS_CSV:  header, then `ts_utc_ns,open,high,low,close,volume` (1-minute bars
 *            fed before the ticks, so the features are warm when ticks start).
 * After the last tick a clock flush closes the open bar.
 *
 * After each policy decision, once it has been acted on (printed here), the
 * program calls nq_engine_prepare, as a live system would in the idle time
 * before the next tick: the next bar-closing tick then decides sooner, with
 * the same result. --no-prepare leaves it out (to compare latencies).
 *
 * Output (stdout), exact enough to compare bit for bit (%.17g round-trips a
 * double, %.9g a float):
 *   decision source=bar|tick|flush ts_ns=.. bar_ts_ns=.. kind=policy action=BUY
 *     position=0 target_position=1 stop=..|none target=..|none close=.. atr=..
 *     equity=.. mask=7 n_actions=3 probs=p0,p1,p2
 *   summary decisions=.. policy_decisions=.. prepared_decisions=.. ticks=.. rejected=..
 *     layout_hash=.. obs_dim=.. version=..
 * Rejected ticks are reported on stderr and skipped, as a live feed would.
 *
 * --trades: after every call, the simulated account's events
 * (nq_engine_last_events), and at the end nq_engine_end_of_data closes an
 * open position (source=end_of_data) and a totals line follows the summary:
 *   entry source=.. ts_ns=.. side=1 contracts=1 price=.. stop=.. target=.. commission=..
 *   trade source=.. side=-1 contracts=1 entry_ts_ns=.. exit_ts_ns=.. entry_price=..
 *     exit_price=.. gross_pnl=.. commission=.. net_pnl=.. exit_reason=STOP
 *     bars_held=.. mae=.. mfe=..
 *   breach source=.. ts_ns=..
 *   trades count=.. net_pnl=..
 *
 * --session, --commission, --slippage-ticks, --drawdown-limit (0 = none) and
 * --sample SEED (sampled instead of greedy decisions) override the
 * checkpoint's settings through nq_engine_options, as nq-eval's flags do.
 *
 * --bench: prints nothing per decision; times every nq_engine_on_tick call
 * with clock_gettime(CLOCK_MONOTONIC) and reports p50/p99/max of the calls
 * that returned a policy decision (the bar-closing ticks) and of all calls.
 * nq_engine_prepare is not timed: it runs after the decision, off the clock.
 *
 * Build (from the repository root, after cargo build -p nq-runtime-ffi --release):
 *   cc -O2 -std=c11 -Iruntime/ffi/include runtime/ffi/examples/c/replay.c \
 *      $CARGO_TARGET_DIR/release/libnq_runtime_ffi.a -lpthread -ldl -lm -o replay
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nq_runtime.h"

#define USAGE                                                                              \
    "replay CHECKPOINT TICKS_CSV [--warmup-bars BARS_CSV] [--bench] [--no-prepare] [--trades]" \
    " [--session S] [--commission USD] [--slippage-ticks T] [--drawdown-limit USD]"            \
    " [--sample SEED]"

static void die(const char *what, const char *detail) {
    fprintf(stderr, "replay: %s: %s\n", what, detail);
    exit(2);
}

/* The whole file in a malloc'd buffer: malloc's alignment (>= 8) lets the
 * engine read the weights in place. */
static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) die(path, "cannot open");
    if (fseek(f, 0, SEEK_END) != 0) die(path, "cannot seek");
    long size = ftell(f);
    if (size < 0) die(path, "cannot tell size");
    rewind(f);
    uint8_t *buf = malloc(size > 0 ? (size_t)size : 1);
    if (!buf) die(path, "out of memory");
    if (size > 0 && fread(buf, 1, (size_t)size, f) != (size_t)size) die(path, "short read");
    fclose(f);
    *len = (size_t)size;
    return buf;
}

static void print_decision(const char *source, const nq_decision *d) {
    printf("decision source=%s ts_ns=%" PRId64 " bar_ts_ns=%" PRId64 " kind=%s action=%s"
           " position=%d target_position=%d",
           source, d->ts_ns, d->bar_ts_ns, nq_decision_kind_name(d->kind),
           nq_action_name(d->action), d->position, d->target_position);
    if (d->has_stop) printf(" stop=%.17g", d->stop_price); else printf(" stop=none");
    if (d->has_target) printf(" target=%.17g", d->target_price); else printf(" target=none");
    printf(" close=%.17g atr=%.17g equity=%.17g mask=%u n_actions=%u probs=",
           d->close, d->atr, d->equity, d->mask, d->n_actions);
    for (uint32_t i = 0; i < d->n_actions; i++) printf(i ? ",%.9g" : "%.9g", (double)d->probs[i]);
    printf("\n");
}

/* Totals of the closed trades printed with --trades. */
static long trade_count = 0;
static double trade_net_pnl = 0.0;

static void print_trade(const char *source, const nq_trade *t) {
    printf("trade source=%s side=%d contracts=%d entry_ts_ns=%" PRId64 " exit_ts_ns=%" PRId64
           " entry_price=%.17g exit_price=%.17g gross_pnl=%.17g commission=%.17g net_pnl=%.17g"
           " exit_reason=%s bars_held=%u mae=%.17g mfe=%.17g\n",
           source, t->side, t->contracts, t->entry_ts_ns, t->exit_ts_ns, t->entry_price,
           t->exit_price, t->gross_pnl, t->commission, t->net_pnl,
           nq_exit_reason_name(t->exit_reason), t->bars_held, t->mae, t->mfe);
    trade_count++;
    trade_net_pnl += t->net_pnl;
}

/* What the last feeding call did to the simulated account. */
static void print_events(nq_engine *engine, const char *source, int64_t ts_ns) {
    nq_events ev;
    if (nq_engine_last_events(engine, &ev) != NQ_OK) return;
    if (ev.has_entry)
        printf("entry source=%s ts_ns=%" PRId64 " side=%d contracts=%d price=%.17g stop=%.17g"
               " target=%.17g commission=%.17g\n",
               source, ev.entry.ts_ns, ev.entry.side, ev.entry.contracts, ev.entry.price,
               ev.entry.stop_price, ev.entry.target_price, ev.entry.commission);
    if (ev.has_trade) print_trade(source, &ev.trade);
    if (ev.has_second_trade) print_trade(source, &ev.second_trade);
    if (ev.breached) printf("breach source=%s ts_ns=%" PRId64 "\n", source, ts_ns);
}

static double number_arg(const char *flag, const char *value) {
    char *end;
    double x = strtod(value, &end);
    if (end == value || *end != '\0') die(flag, "not a number");
    return x;
}

static void report_error(nq_engine *engine, const char *what, long line) {
    nq_error err;
    nq_engine_last_error(engine, &err);
    fprintf(stderr, "replay: %s line %ld: %s: %s\n", what, line, nq_status_name(err.code),
            err.message);
}

/* Idle time after acting on a policy decision: work ahead on the next one. */
static void prepare_next(nq_engine *engine, const nq_decision *d, int prepare) {
    if (!prepare || d->kind != NQ_KIND_POLICY) return;
    nq_status s = nq_engine_prepare(engine);
    if (s != NQ_OK) {
        nq_error err;
        nq_engine_last_error(engine, &err);
        fprintf(stderr, "replay: nq_engine_prepare: %s: %s\n", nq_status_name(s), err.message);
        exit(1);
    }
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted samples. */
static int64_t percentile(const int64_t *sorted, size_t n, double p) {
    if (n == 0) return 0;
    size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return sorted[rank - 1];
}

static void print_latency(const char *label, int64_t *ns, size_t n) {
    qsort(ns, n, sizeof *ns, cmp_i64);
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += (double)ns[i];
    printf("bench %s n=%zu p50_ns=%" PRId64 " p99_ns=%" PRId64 " max_ns=%" PRId64
           " mean_ns=%.0f\n",
           label, n, percentile(ns, n, 50), percentile(ns, n, 99), n ? ns[n - 1] : 0,
           n ? sum / (double)n : 0.0);
}

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

int main(int argc, char **argv) {
    const char *ckpt_path = NULL, *ticks_path = NULL, *bars_path = NULL;
    int bench = 0, prepare = 1, trades = 0;
    nq_engine_options options;
    nq_engine_options_default(&options);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--bench") == 0) bench = 1;
        else if (strcmp(argv[i], "--no-prepare") == 0) prepare = 0;
        else if (strcmp(argv[i], "--trades") == 0) trades = 1;
        else if (strcmp(argv[i], "--session") == 0 && i + 1 < argc) {
            if (strlen(argv[++i]) >= sizeof options.session) die("--session", "too long");
            strcpy(options.session, argv[i]);
        } else if (strcmp(argv[i], "--commission") == 0 && i + 1 < argc)
            options.commission_per_side = number_arg(argv[i], argv[i + 1]), i++;
        else if (strcmp(argv[i], "--slippage-ticks") == 0 && i + 1 < argc)
            options.slippage_ticks = number_arg(argv[i], argv[i + 1]), i++;
        else if (strcmp(argv[i], "--drawdown-limit") == 0 && i + 1 < argc)
            options.drawdown_limit_usd = number_arg(argv[i], argv[i + 1]), i++;
        else if (strcmp(argv[i], "--sample") == 0 && i + 1 < argc) {
            options.sampling = NQ_SAMPLING_SAMPLE;
            options.seed = strtoull(argv[++i], NULL, 10);
        }
        else if (strcmp(argv[i], "--warmup-bars") == 0 && i + 1 < argc) bars_path = argv[++i];
        else if (!ckpt_path) ckpt_path = argv[i];
        else if (!ticks_path) ticks_path = argv[i];
        else die("usage", USAGE);
    }
    if (!ckpt_path || !ticks_path)
        die("usage", USAGE);

    size_t ckpt_len;
    uint8_t *ckpt = read_file(ckpt_path, &ckpt_len);

    /* Caller-owned storage: the library allocates nothing. aligned_alloc wants
     * a size that is a multiple of the alignment. */
    size_t align = nq_engine_align();
    size_t size = (nq_engine_size() + align - 1) / align * align;
    void *storage = aligned_alloc(align, size);
    if (!storage) die("engine storage", "out of memory");
    nq_error err;
    nq_engine *engine = nq_engine_init_with(storage, size, ckpt, ckpt_len, &options, &err);
    if (!engine) {
        fprintf(stderr, "replay: %s: %s: %s\n", ckpt_path, nq_status_name(err.code), err.message);
        return 2;
    }

    nq_decision d;
    long decisions = 0, rejected = 0, ticks = 0, line = 0;
    char buf[512];

    if (bars_path) {
        FILE *f = fopen(bars_path, "r");
        if (!f) die(bars_path, "cannot open");
        while (fgets(buf, sizeof buf, f)) {
            if (++line == 1) continue; /* header */
            nq_bar bar;
            if (sscanf(buf, "%" SCNd64 ",%lf,%lf,%lf,%lf,%lf", &bar.ts_ns, &bar.open, &bar.high,
                       &bar.low, &bar.close, &bar.volume) != 6) {
                fprintf(stderr, "replay: %s line %ld: not ts,open,high,low,close,volume\n",
                        bars_path, line);
                return 2;
            }
            nq_status s = nq_engine_on_bar(engine, &bar, &d);
            if (s == NQ_DECISION) {
                decisions++;
                if (!bench) print_decision("bar", &d);
                prepare_next(engine, &d, prepare);
            }
            if (trades && !bench && s >= 0) print_events(engine, "bar", bar.ts_ns);
            if (s < 0) {
                rejected++;
                report_error(engine, bars_path, line);
            }
        }
        fclose(f);
    }

    FILE *f = fopen(ticks_path, "r");
    if (!f) die(ticks_path, "cannot open");
    size_t cap = 1 << 16, n_decision_ns = 0, n_all_ns = 0;
    int64_t *decision_ns = bench ? malloc(cap * sizeof *decision_ns) : NULL;
    int64_t *all_ns = bench ? malloc(cap * sizeof *all_ns) : NULL;
    size_t all_cap = cap;
    int64_t last_ts = 0;
    line = 0;
    while (fgets(buf, sizeof buf, f)) {
        if (++line == 1) continue; /* header */
        nq_tick tick;
        char side[8] = "";
        int got = sscanf(buf, "%" SCNd64 ",%lf,%lf,%7[A-Za-z]", &tick.ts_ns, &tick.price,
                         &tick.size, side);
        if (got < 3) {
            fprintf(stderr, "replay: %s line %ld: not ts_utc_ns,price,size,side\n", ticks_path,
                    line);
            return 2;
        }
        switch (side[0]) {
        case 'B': case 'b': tick.side = NQ_SIDE_BUY; break;
        case 'A': case 'a': case 'S': case 's': tick.side = NQ_SIDE_SELL; break;
        default: tick.side = NQ_SIDE_NONE; break;
        }
        ticks++;
        int64_t t0 = bench ? now_ns() : 0;
        nq_status s = nq_engine_on_tick(engine, &tick, &d);
        if (bench) {
            int64_t dt = now_ns() - t0;
            if (n_all_ns == all_cap) {
                all_cap *= 2;
                all_ns = realloc(all_ns, all_cap * sizeof *all_ns);
            }
            all_ns[n_all_ns++] = dt;
            if (s == NQ_DECISION && d.kind == NQ_KIND_POLICY) {
                if (n_decision_ns == cap) {
                    cap *= 2;
                    decision_ns = realloc(decision_ns, cap * sizeof *decision_ns);
                }
                decision_ns[n_decision_ns++] = dt;
            }
            if (!all_ns || !decision_ns) die("bench", "out of memory");
        }
        if (s == NQ_DECISION) {
            decisions++;
            if (!bench) print_decision("tick", &d);
            prepare_next(engine, &d, prepare);
        }
        if (trades && !bench && s >= 0) print_events(engine, "tick", tick.ts_ns);
        if (s < 0) {
            rejected++;
            report_error(engine, ticks_path, line);
        }
        if (s >= 0) last_ts = tick.ts_ns;
    }
    fclose(f);

    /* The market went quiet: a clock one bar after the last tick closes the open bar. */
    int64_t end_ns = last_ts + 60 * (int64_t)1000000000;
    if (ticks > 0 && nq_engine_flush(engine, end_ns, &d) == NQ_DECISION) {
        decisions++;
        if (!bench) print_decision("flush", &d);
    }
    if (trades && !bench) {
        if (ticks > 0) print_events(engine, "flush", end_ns);
        /* A replay's data ends here: close what the simulation holds. */
        nq_trade last;
        if (nq_engine_end_of_data(engine, end_ns, &last) == NQ_TRADE_CLOSED)
            print_trade("end_of_data", &last);
    }

    uint64_t policy_decisions = 0, prepared_decisions = 0, layout_hash = 0;
    const float *obs;
    size_t obs_len = 0;
    nq_engine_decision_count(engine, &policy_decisions);
    nq_engine_prepared_decisions(engine, &prepared_decisions);
    nq_engine_layout_hash(engine, &layout_hash);
    nq_engine_observation(engine, &obs, &obs_len);
    printf("summary decisions=%ld policy_decisions=%" PRIu64 " prepared_decisions=%" PRIu64
           " ticks=%ld rejected=%ld layout_hash=%016" PRIx64 " obs_dim=%zu version=%s\n",
           decisions, policy_decisions, prepared_decisions, ticks, rejected, layout_hash, obs_len,
           nq_version());
    if (trades && !bench)
        printf("trades count=%ld net_pnl=%.17g\n", trade_count, trade_net_pnl);
    if (bench) {
        print_latency("decision_ticks", decision_ns, n_decision_ns);
        print_latency("all_ticks", all_ns, n_all_ns);
        free(decision_ns);
        free(all_ns);
    }

    nq_engine_deinit(engine);
    free(storage);
    free(ckpt);
    return 0;
}
