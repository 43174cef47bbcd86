/*
 * zq-worker - command line front end of the worker (mirrors `celery worker`).
 * Exit status: 0 after a warm shutdown, 1 on a runtime error (broker refused us, a worker
 * with this name is already connected, the plugin directory cannot be read) or after a
 * cold shutdown, 2 on a usage error.
 */
#include "config.h"
#include "zq_log.h"
#include "zq_worker.h"

#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char s_usage[] =
    "Usage: zq-worker --plugins DIR [OPTIONS]\n"
    "\n"
    "  Start a worker: load the task plugins in DIR, join the broker and run tasks.\n"
    "\n"
    "  Examples: zq-worker --plugins ./plugins -l INFO\n"
    "            zq-worker --plugins ./plugins -c 4 -Q hipri,lopri -n w1@%%h\n"
    "\n"
    "Worker Options:\n"
    "  --plugins DIR                 Load every *.so in DIR (required).\n"
    "  -b, --broker URL              Broker URL (default: $ZQ_BROKER, else %s).\n"
    "  -n, --hostname NAME           Node name (default zq@%%h). Expands %%h (host name),\n"
    "                                %%n (its first label), %%d (its domain).\n"
    "  -l, --loglevel LEVEL          DEBUG|INFO|WARNING|ERROR|CRITICAL (default WARNING).\n"
    "  --prefetch N                  Tasks held beyond the running ones (default: the\n"
    "                                concurrency).\n"
    "  --heartbeat SECONDS           Interval between heartbeats (default 2).\n"
    "  --control URL                 Endpoint of the control socket that zq-ctl status,\n"
    "                                inspect and shell query (default tcp://127.0.0.1:*,\n"
    "                                a free port; announced to the broker).\n"
    "  --allow-insecure-plugins      Load plugins from world-writable files or directories.\n"
    "\n"
    "Security Options (CurveZMQ; all three or none, see docs/management.md):\n"
    "  --curve-secret FILE           This worker's secret key file (zq-ctl keygen).\n"
    "  --curve-server-key FILE       The broker's public key file.\n"
    "  --curve-authorized DIR        Public keys (NAME.key) allowed to query the control\n"
    "                                socket (zq-ctl status/inspect); read at each connection.\n"
    "\n"
    "Pool Options:\n"
    "  -c, --concurrency N           Child processes / threads (default: number of CPUs).\n"
    "  -P, --pool [prefork|threads|solo]\n"
    "                                prefork (default): a crashing task only kills its\n"
    "                                child, which is replaced; hard limits and terminate work.\n"
    "                                threads: a crashing task takes the worker down; soft\n"
    "                                limits only. solo: tasks run inline, no limits, and\n"
    "                                heartbeats wait while a task runs.\n"
    "  --time-limit SECONDS          Hard time limit per task (prefork only).\n"
    "  --soft-time-limit SECONDS     Soft time limit per task (prefork and threads).\n"
    "\n"
    "Queue Options:\n"
    "  -Q, --queues q1,q2            Queues to consume from (default: celery).\n"
    "\n"
    "Options:\n"
    "  --version                     Print the version and exit.\n"
    "  --help                        Show this message and exit.\n"
    "\n"
    "SIGTERM/SIGINT: warm shutdown (unstarted tasks go back to the broker, running ones\n"
    "finish); a second signal: cold shutdown (running tasks are lost). Exit status: 0 after\n"
    "a warm shutdown, 1 on errors or after a cold shutdown, 2 on usage errors.\n";

enum {
    OPT_PLUGINS = 256,
    OPT_PREFETCH,
    OPT_HEARTBEAT,
    OPT_TIME_LIMIT,
    OPT_SOFT_TIME_LIMIT,
    OPT_CONTROL,
    OPT_INSECURE,
    OPT_CURVE_SECRET,
    OPT_CURVE_SERVER_KEY,
    OPT_CURVE_AUTHORIZED,
    OPT_HELP,
    OPT_VERSION
};

static int s_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int s_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "zq-worker: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'zq-worker --help' for help.\n");
    va_end(ap);
    return 2;
}

static int s_parse_int(const char *opt, const char *s, int min, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < min || v > 100000) {
        char want[64];
        snprintf(want, sizeof want, "an integer >= %d", min);
        fprintf(stderr,
                "zq-worker: %s: expected %s, got '%s'\nTry 'zq-worker --help' for help.\n",
                opt, want, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int s_parse_seconds(const char *opt, const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !isfinite(v) || v < 0 || v > 1e7) {
        fprintf(stderr,
                "zq-worker: %s: expected a number of seconds >= 0, got '%s'\n"
                "Try 'zq-worker --help' for help.\n",
                opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"plugins", required_argument, NULL, OPT_PLUGINS},
        {"broker", required_argument, NULL, 'b'},
        {"loglevel", required_argument, NULL, 'l'},
        {"concurrency", required_argument, NULL, 'c'},
        {"pool", required_argument, NULL, 'P'},
        {"hostname", required_argument, NULL, 'n'},
        {"queues", required_argument, NULL, 'Q'},
        {"prefetch", required_argument, NULL, OPT_PREFETCH},
        {"heartbeat", required_argument, NULL, OPT_HEARTBEAT},
        {"time-limit", required_argument, NULL, OPT_TIME_LIMIT},
        {"soft-time-limit", required_argument, NULL, OPT_SOFT_TIME_LIMIT},
        {"control", required_argument, NULL, OPT_CONTROL},
        {"allow-insecure-plugins", no_argument, NULL, OPT_INSECURE},
        {"curve-secret", required_argument, NULL, OPT_CURVE_SECRET},
        {"curve-server-key", required_argument, NULL, OPT_CURVE_SERVER_KEY},
        {"curve-authorized", required_argument, NULL, OPT_CURVE_AUTHORIZED},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    zq_worker_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.prefetch = -1;
    cfg.pool = ZQ_POOL_PREFORK;
    zq_log_level_t level = ZQ_LOG_WARNING; /* Celery's default */
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":b:l:c:P:n:Q:", opts, NULL)) != -1) {
        switch (c) {
        case OPT_PLUGINS: cfg.plugins_dir = optarg; break;
        case 'b': cfg.broker_url = optarg; break;
        case 'l':
            if (zq_log_parse_level(optarg, &level) != ZQ_OK)
                return s_usage_error("--loglevel: unknown level '%s' (DEBUG, INFO, WARNING, "
                                     "ERROR or CRITICAL)", optarg);
            break;
        case 'c':
            if (s_parse_int("--concurrency", optarg, 1, &cfg.concurrency) != 0)
                return 2;
            break;
        case 'P':
            if (zq_pool_kind_parse(optarg, &cfg.pool) != ZQ_OK)
                return s_usage_error("--pool: unknown pool '%s' (prefork, threads or solo)",
                                     optarg);
            break;
        case 'n': cfg.nodename = optarg; break;
        case 'Q': cfg.queues = optarg; break;
        case OPT_PREFETCH:
            if (s_parse_int("--prefetch", optarg, 0, &cfg.prefetch) != 0)
                return 2;
            break;
        case OPT_HEARTBEAT:
            if (s_parse_seconds("--heartbeat", optarg, &cfg.heartbeat) != 0)
                return 2;
            if (cfg.heartbeat < 0.05)
                return s_usage_error("--heartbeat: %s is too short (at least 0.05 s)", optarg);
            break;
        case OPT_TIME_LIMIT:
            if (s_parse_seconds("--time-limit", optarg, &cfg.time_limit) != 0)
                return 2;
            break;
        case OPT_SOFT_TIME_LIMIT:
            if (s_parse_seconds("--soft-time-limit", optarg, &cfg.soft_time_limit) != 0)
                return 2;
            break;
        case OPT_CONTROL: cfg.control = optarg; break;
        case OPT_INSECURE: cfg.allow_insecure_plugins = 1; break;
        case OPT_CURVE_SECRET: cfg.curve_secret = optarg; break;
        case OPT_CURVE_SERVER_KEY: cfg.curve_server_key = optarg; break;
        case OPT_CURVE_AUTHORIZED: cfg.curve_authorized = optarg; break;
        case OPT_HELP: printf(s_usage, ZQ_DEFAULT_BROKER); return 0;
        case OPT_VERSION: printf("zq-worker %s\n", PACKAGE_VERSION); return 0;
        case ':': return s_usage_error("option '%s' needs a value", argv[optind - 1]);
        default: return s_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return s_usage_error("unexpected argument '%s'", argv[optind]);
    if (!cfg.plugins_dir)
        return s_usage_error("missing --plugins DIR (the directory of task plugins to load)");
    int ncurve = !!cfg.curve_secret + !!cfg.curve_server_key + !!cfg.curve_authorized;
    if (ncurve && ncurve < 3)
        return s_usage_error("CURVE needs all of --curve-secret FILE, --curve-server-key FILE "
                             "and --curve-authorized DIR (the keys that may query the control "
                             "socket)");
    zq_log_set_level(level);
    zq_worker_t *w = zq_worker_new(&cfg);
    if (!w)
        return 1;
    zq_worker_banner(w, stdout);
    int rc = zq_worker_run(w);
    zq_worker_destroy(&w);
    return rc;
}
