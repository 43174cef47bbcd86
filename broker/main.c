/*
 * zq-broker - the zq broker daemon: parses the command line and runs zq_broker.
 *
 * Exit codes: 0 after SIGTERM/SIGINT (everything committed), 1 a fatal error at run time,
 * 2 usage (bad option or value; CURVE key file or directory unreadable), 3 an endpoint
 * cannot be bound, 4 the store cannot be opened (data dir unusable, locked by another
 * broker, database damaged or too new).
 */
#include "config.h"
#include "zq.h"
#include "zq_broker.h"
#include "zq_log.h"
#include "zq_util.h"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EXIT_USAGE = 2, EXIT_BIND = 3, EXIT_STORE = 4 };

static zq_broker_t *s_broker;

static void s_on_signal(int sig)
{
    (void)sig;
    zq_broker_stop(s_broker); /* async-signal-safe */
}

static void s_usage(FILE *fp)
{
    fprintf(fp,
            "Usage: zq-broker [OPTION]...\n"
            "The zq broker: stores tasks durably (SQLite) and hands them to zq-worker processes.\n"
            "\n"
            "  --listen URL, --broker URL  frontend endpoint (default: $ZQ_BROKER, else %s)\n"
            "  --upstream URL              worker results endpoint (default: frontend port + 1,\n"
            "                              or PATH.up for ipc://PATH)\n"
            "  --events URL                event PUB endpoint (default: frontend port + 2,\n"
            "                              or PATH.ev for ipc://PATH)\n"
            "  --data-dir DIR              where the store lives (default %s; created 0700)\n"
            "  --sync off|normal|full      durability: normal (default) survives a crash of the\n"
            "                              broker, full also a power cut, off is for benchmarks\n"
            "  --lookahead SECONDS         hand ETA tasks to a worker this early (default %g)\n"
            "  --heartbeat SECONDS         worker heartbeat interval; a worker is dead after %d\n"
            "                              missed ones (default %g)\n"
            "  --max-ready-in-memory N     ready tasks per queue kept in memory; the rest wait\n"
            "                              on disk (default %d)\n"
            "  --curve-secret FILE         CurveZMQ: the broker's secret key (zq-ctl keygen);\n"
            "                              every socket then lets in only CURVE clients whose\n"
            "                              public key is in --curve-authorized\n"
            "  --curve-authorized DIR      the public key files (NAME.key) let in; read again at\n"
            "                              every connection (docs/management.md \"Security\")\n"
            "  -l, --loglevel LEVEL        DEBUG, INFO (default), WARNING, ERROR\n"
            "  -h, --help                  show this help and exit\n"
            "  -V, --version               show the version and exit\n"
            "\n"
            "A port of 0 or * binds an ephemeral port (then upstream and events are ephemeral\n"
            "too); the log line \"ready: ...\" names the endpoints actually bound.\n"
            "Exit status: 0 stopped by SIGTERM/SIGINT, 1 fatal error, 2 usage error,\n"
            "3 cannot bind an endpoint, 4 cannot open the store.\n",
            ZQ_DEFAULT_BROKER, ZQ_BROKER_DEFAULT_DATA_DIR, ZQ_BROKER_DEFAULT_LOOKAHEAD,
            ZQ_BROKER_DEAD_AFTER, ZQ_BROKER_DEFAULT_HEARTBEAT, ZQ_BROKER_DEFAULT_MAX_READY);
}

static int s_bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int s_bad(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ZQ_ERROR("zq-broker: %s (see zq-broker --help)", msg);
    return EXIT_USAGE;
}

/* A number of seconds: >= 0, or > 0 when !allow_zero. 0, or -1 after logging. */
static int s_seconds(const char *opt, const char *arg, int allow_zero, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno || end == arg || *end || !isfinite(v) || v < 0 || (!allow_zero && v == 0)) {
        s_bad("%s: not a number of seconds %s 0: '%s'", opt, allow_zero ? ">=" : ">", arg);
        return -1;
    }
    *out = v;
    return 0;
}

static int s_endpoint_ok(const char *ep)
{
    return ep && (!strncmp(ep, "tcp://", 6) || !strncmp(ep, "ipc://", 6) ||
                  !strncmp(ep, "inproc://", 9)) &&
           strlen(ep) < 400;
}

int main(int argc, char **argv)
{
    /* Messages and batches of up to 8 MiB come from the heap rather than from mmap(), and up
     * to 64 MiB freed at the heap's top stays there between bursts: every page handed back
     * to the kernel costs a page fault (~1 us on a VM) when the next burst touches it again.
     * Measured: ~1.2 us of the broker's ~34 us per task (bench/README.md). */
    mallopt(M_MMAP_THRESHOLD, 8 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    enum { O_LISTEN = 256, O_UPSTREAM, O_EVENTS, O_DATA, O_SYNC, O_LOOKAHEAD, O_HEARTBEAT,
           O_MAXREADY, O_CURVE_SECRET, O_CURVE_AUTHORIZED };
    static const struct option opts[] = {
        {"listen", required_argument, NULL, O_LISTEN},
        {"broker", required_argument, NULL, O_LISTEN},
        {"upstream", required_argument, NULL, O_UPSTREAM},
        {"events", required_argument, NULL, O_EVENTS},
        {"data-dir", required_argument, NULL, O_DATA},
        {"sync", required_argument, NULL, O_SYNC},
        {"lookahead", required_argument, NULL, O_LOOKAHEAD},
        {"heartbeat", required_argument, NULL, O_HEARTBEAT},
        {"max-ready-in-memory", required_argument, NULL, O_MAXREADY},
        {"curve-secret", required_argument, NULL, O_CURVE_SECRET},
        {"curve-authorized", required_argument, NULL, O_CURVE_AUTHORIZED},
        {"loglevel", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    zq_broker_config_t cfg;
    zq_broker_config_init(&cfg);
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":l:hV", opts, NULL)) != -1) {
        switch (c) {
        case O_LISTEN:
        case O_UPSTREAM:
        case O_EVENTS:
            if (!s_endpoint_ok(optarg))
                return s_bad("%s: not an endpoint (tcp://HOST:PORT or ipc://PATH): '%s'",
                             c == O_LISTEN ? "--listen" : c == O_UPSTREAM ? "--upstream"
                                                                          : "--events",
                             optarg);
            if (c == O_LISTEN)
                cfg.frontend = optarg;
            else if (c == O_UPSTREAM)
                cfg.upstream = optarg;
            else
                cfg.events = optarg;
            break;
        case O_DATA:
            if (!*optarg)
                return s_bad("--data-dir: must not be empty");
            cfg.data_dir = optarg;
            break;
        case O_SYNC:
            if (zq_store_parse_sync(optarg, &cfg.sync) != ZQ_OK)
                return s_bad("--sync: must be off, normal or full, not '%s'", optarg);
            break;
        case O_LOOKAHEAD:
            if (s_seconds("--lookahead", optarg, 1, &cfg.lookahead) != 0)
                return EXIT_USAGE;
            break;
        case O_HEARTBEAT:
            if (s_seconds("--heartbeat", optarg, 0, &cfg.heartbeat) != 0)
                return EXIT_USAGE;
            break;
        case O_MAXREADY: {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || v < 1 || v > 100000000)
                return s_bad("--max-ready-in-memory: not a count >= 1: '%s'", optarg);
            cfg.max_ready_in_memory = v;
            break;
        }
        case O_CURVE_SECRET:
        case O_CURVE_AUTHORIZED:
            if (!*optarg)
                return s_bad("%s: must not be empty",
                             c == O_CURVE_SECRET ? "--curve-secret" : "--curve-authorized");
            if (c == O_CURVE_SECRET)
                cfg.curve_secret = optarg;
            else
                cfg.curve_authorized = optarg;
            break;
        case 'l': {
            zq_log_level_t level;
            if (zq_log_parse_level(optarg, &level) != ZQ_OK)
                return s_bad("--loglevel: unknown level '%s' (DEBUG, INFO, WARNING, ERROR)",
                             optarg);
            zq_log_set_level(level);
            break;
        }
        case 'h':
            s_usage(stdout);
            return 0;
        case 'V':
            printf("zq-broker %s\n", PACKAGE_VERSION);
            return 0;
        case ':':
            return s_bad("%s: missing value", argv[optind - 1]);
        default:
            return s_bad("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return s_bad("unexpected argument '%s'", argv[optind]);
    if (!cfg.curve_secret != !cfg.curve_authorized)
        return s_bad("CURVE needs both --curve-secret FILE and --curve-authorized DIR");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    int err = ZQ_OK;
    s_broker = zq_broker_new(&cfg, &err);
    if (!s_broker) /* zq_broker_new logged why */
        return err == ZQ_ESTORE ? EXIT_STORE : err == ZQ_EIO ? EXIT_BIND
                                           : err == ZQ_EINVAL ? EXIT_USAGE
                                                              : 1;
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    int rc = zq_broker_run(s_broker);
    zq_broker_destroy(&s_broker);
    return rc == ZQ_OK ? 0 : 1;
}
