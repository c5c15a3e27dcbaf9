/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmhostd: read the config, load and open the plugins, serve, drain.
 *
 * Exit status: 0 after a clean drain; 1 when the daemon cannot start (an
 * instance fails to open, state cannot be read); 2 when the config or a
 * plugin it names is unusable — nothing was started. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "authtoken.h"
#include "cleanup.h"
#include "error.h"
#include "events.h"
#include "hosttelemetry.h"
#include "instance.h"
#include "loader.h"
#include "log.h"
#include "metrics.h"
#include "operations.h"
#include "orchestrate.h"
#include "resources.h"
#include "sdnotify.h"
#include "service.h"
#include "settings.h"
#include "state.h"
#include "vm.h"
#include "vmmetrics.h"
#include "workers.h"

#define DEFAULT_CONFIG SYSCONFDIR "/vmhost/vmhostd.yaml"

enum { EXIT_START = 1, EXIT_CONFIG = 2 };

static void usage(FILE *out) {
  fprintf(out,
          "Usage: vmhostd [--config FILE]          run the daemon\n"
          "       vmhostd --check-config [--config FILE]\n"
          "       vmhostd --dump-plugin FILE\n"
          "       vmhostd --token-create NAME [--role ROLE] [--config FILE]\n"
          "       vmhostd --version | --help\n"
          "\n"
          "  -c, --config FILE     config file (default " DEFAULT_CONFIG
          ")\n"
          "      --check-config    check the config and every plugin's keys,\n"
          "                        start nothing, exit 0 (good) or 2 (bad)\n"
          "      --dump-plugin FILE  print what the loader sees in a plugin\n"
          "      --token-create NAME  make a bearer token for the API (role\n"
          "                        --role: reader, operator or admin; default\n"
          "                        reader) and print it, once\n"
          "  -V, --version         print the version and the plugin ABI\n"
          "  -h, --help            print this help\n"
          "\n"
          "Environment: VMHOST_PLUGIN_DIR (colon-separated) overrides the\n"
          "config's plugin_dir.\n");
}

static double ms_since(const struct timespec *t0) {
  struct timespec t1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (double)(t1.tv_sec - t0->tv_sec) * 1e3 +
         (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static int dump_plugin(const char *file) {
  struct plugin *p;
  /* load() runs too: a plugin that refuses to load is refused here. */
  if (loader_load(file, 0, NULL, &p) < 0 ||
      loader_call_load(p, &host_services) < 0) {
    fprintf(stderr, "vmhostd: error: %s\n", error_get());
    return EXIT_CONFIG;
  }
  loader_dump(p, stdout);
  return 0;
}

static void apply_log_levels(const struct settings *s) {
  log_set_level(s->log_level);
  log_clear_source_levels();
  for (size_t i = 0; i < s->n_levels; i++)
    log_set_source_level(s->levels[i].source, s->levels[i].level);
}

/* SIGHUP: reopen the log file and re-read the log levels. */
static void reload(const char *config_file) {
  struct settings s;
  if (log_reopen() < 0)
    log_error("cannot reopen the log: %s", error_get());
  if (settings_load(config_file, &s) < 0) {
    log_error("SIGHUP: keeping the old log levels: %s", error_get());
    return;
  }
  apply_log_levels(&s);
  settings_free(&s);
  log_info("SIGHUP: log reopened and levels re-read");
}

/* One vmhostd per state directory. */
static int lock_state_dir(const char *dir, int *ret_fd) {
  if (mkdir(dir, 0700) < 0 && errno != EEXIST)
    return error_code(VMH_EIO, "cannot create state_dir %s: %s", dir,
                      strerror(errno));
  _cleanup_free_ char *path = NULL;
  if (asprintf(&path, "%s/vmhostd.lock", dir) < 0)
    return error_code(VMH_ENOMEM, "out of memory");
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return error_code(VMH_EIO, "cannot open %s: %s", path, strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    close(fd);
    return error_code(VMH_EBUSY,
                      "another vmhostd is using state_dir %s (%s is locked)",
                      dir, path);
  }
  *ret_fd = fd;
  return 0;
}

/* STATE_DIR/auth, for the token store. */
static struct auth_store *open_store(const char *state_dir) {
  _cleanup_free_ char *dir = NULL;
  struct auth_store *st = NULL;
  if (asprintf(&dir, "%s/auth", state_dir) < 0 || !(st = auth_store_new(dir))) {
    error_code(VMH_ENOMEM, "out of memory");
    return NULL;
  }
  return st;
}

/* First start: an admin token in a file only root can read, so that the
 * API (which grants nothing without credentials) is usable at once. */
static int bootstrap_tokens(const char *state_dir) {
  struct auth_store *st = open_store(state_dir);
  if (!st)
    return VMH_ENOMEM;
  char err[512];
  _cleanup_free_ char *path = NULL;
  int r = auth_store_bootstrap(st, &path, err, sizeof err);
  auth_store_free(st);
  if (r < 0)
    return error_code(r, "token store: %s", err);
  if (path)
    log_info(
        "first start: wrote an admin API token to %s (send it as "
        "'Authorization: Bearer <token>')",
        path);
  return 0;
}

/* vmhostd --token-create: the token's secret on stdout, once. */
static int token_create(const char *config_file, const char *name,
                        const char *role_name) {
  struct settings s;
  if (settings_load(config_file, &s) < 0) {
    fprintf(stderr, "vmhostd: error: %s\n", error_get());
    return EXIT_CONFIG;
  }
  int role = auth_role_parse(role_name), status = EXIT_START;
  struct auth_store *st = NULL;
  char err[512], secret[AUTH_SECRET_LEN];
  if (role < 0) {
    fprintf(stderr,
            "vmhostd: error: --role is reader, operator or admin, not '%s'\n",
            role_name);
    status = EXIT_CONFIG;
  } else if (mkdir(s.state_dir, 0700) < 0 && errno != EEXIST) {
    fprintf(stderr, "vmhostd: error: cannot create state_dir %s: %s\n",
            s.state_dir, strerror(errno));
  } else if (!(st = open_store(s.state_dir))) {
    fprintf(stderr, "vmhostd: error: %s\n", error_get());
  } else if (auth_store_init(st, err, sizeof err) < 0 ||
             auth_token_create(st, name, role, secret, err, sizeof err) < 0) {
    fprintf(stderr, "vmhostd: error: %s\n", err);
  } else {
    printf("%s\n", secret);
    fprintf(stderr,
            "vmhostd: token '%s' (%s) created; it is shown only now: send it "
            "as 'Authorization: Bearer <token>'\n",
            name, auth_role_name(role));
    status = 0;
  }
  auth_store_free(st);
  settings_free(&s);
  return status;
}

/* The families metrics.c renders after its own. */
static void render_more_metrics(FILE *f) {
  resources_render(f);
  vmmetrics_render(f);
}

static void reconcile_task(void *arg) {
  (void)arg;
  if (!workers_cancelled()) {
    instances_probe_health();
    vms_reconcile();
    resources_sample_pools();
  }
}

static int start_frontends(void) {
  for (size_t i = 0; i < instances_count(); i++) {
    struct vmh_instance *fe = instance_at(i);
    if (fe->kind != VMH_KIND_FRONTEND || !fe->is_open)
      continue;
    if (INSTANCE_CALL(fe, frontend, start, &core_services, 0) < 0) {
      if (!fe->conf->optional)
        return error_code(VMH_EIO, "frontend '%s' cannot start: %s", fe->name,
                          error_get());
      log_warn("optional frontend '%s' is not serving: %s", fe->name,
               error_get());
    }
  }
  return 0;
}

static void stop_frontends(void) {
  for (size_t i = instances_count(); i-- > 0;) {
    struct vmh_instance *fe = instance_at(i);
    if (fe->kind == VMH_KIND_FRONTEND && fe->is_open) {
      struct call c;
      call_begin(&c, fe, "stop");
      fe->plugin->ops.frontend.stop(fe->handle, 0);
      call_end(&c, 0);
    }
  }
}

/* Serve until SIGTERM or SIGINT; returns the signal. */
static int serve(const struct settings *s, const char *config_file,
                 const sigset_t *sigs) {
  for (;;) {
    struct timespec timeout = {
        .tv_sec = s->reconcile_interval_s ? s->reconcile_interval_s : 3600};
    int sig = sigtimedwait(sigs, NULL, &timeout);
    if (sig < 0) {
      if (errno == EAGAIN && s->reconcile_interval_s)
        workers_submit("reconcile", reconcile_task, NULL);
      continue;
    }
    if (sig == SIGHUP) {
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      sdnotify("RELOADING=1\nMONOTONIC_USEC=%llu",
               (unsigned long long)now.tv_sec * 1000000ULL +
                   (unsigned long long)now.tv_nsec / 1000);
      reload(config_file);
      sdnotify("READY=1");
      continue;
    }
    return sig;
  }
}

/* A startup failure: to the log, and to stderr when the log is not there
 * (a file) or not set up yet (check mode), so the operator sees it. */
static void fatal(const struct settings *s, int check_only) {
  if (check_only)
    fprintf(stderr, "vmhostd: error: %s\n", error_get());
  else
    log_error("%s", error_get());
  if (!check_only)
    sdnotify("STATUS=cannot start: %s", error_get());
  if (!check_only && s->log_file)
    fprintf(stderr, "vmhostd: error: %s\n", error_get());
}

/* A problem's place, from its "FILE:LINE:COLUMN: " prefix (none: after
 * every placed one), and its rank among those found. */
struct placed {
  const char *msg;
  size_t file_len;
  unsigned long line, col;
  size_t rank;
};

static void place(struct placed *p, const char *msg, size_t rank) {
  *p = (struct placed){.msg = msg, .line = ULONG_MAX, .rank = rank};
  const char *c = strchr(msg, ':');
  char *end;
  if (!c || c[1] < '0' || c[1] > '9')
    return;
  unsigned long line = strtoul(c + 1, &end, 10);
  if (*end != ':' || end[1] < '0' || end[1] > '9')
    return;
  unsigned long col = strtoul(end + 1, &end, 10);
  if (*end != ':')
    return;
  p->file_len = (size_t)(c - msg);
  p->line = line;
  p->col = col;
}

static int by_place(const void *a, const void *b) {
  const struct placed *x = a, *y = b;
  int f = x->file_len == y->file_len
              ? strncmp(x->msg, y->msg, x->file_len)
              : (x->file_len > y->file_len) - (x->file_len < y->file_len);
  if (f)
    return f;
  if (x->line != y->line)
    return x->line < y->line ? -1 : 1;
  if (x->col != y->col)
    return x->col < y->col ? -1 : 1;
  return x->rank < y->rank ? -1 : x->rank > y->rank;
}

/* Every mistake of the config found (the file's, each instance's), one
 * line each in the order of the file: to the log when it is open, and to
 * stderr when the log is not there (as fatal() does). */
static void report_problems(const struct settings *s, const char *config_file,
                            int logged) {
  size_t n = problems_count();
  _cleanup_free_ struct placed *v = calloc(n ? n : 1, sizeof *v);
  for (size_t i = 0; v && i < n; i++)
    place(&v[i], problem_at(i), i);
  if (v)
    qsort(v, n, sizeof *v, by_place);
  for (size_t i = 0; i < n; i++) {
    const char *msg = v ? v[i].msg : problem_at(i);
    if (!logged || s->log_file)
      fprintf(stderr, "vmhostd: error: %s\n", msg);
    if (logged)
      log_error("%s", msg);
  }
  if (n > 1)
    fprintf(stderr, "vmhostd: %zu errors in %s\n", n, config_file);
  if (logged)
    sdnotify("STATUS=cannot start: %zu error%s in %s", n, n == 1 ? "" : "s",
             config_file);
}

static int run(const char *config_file, int check_only) {
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  struct settings s;
  /* Mistakes of the file do not stop the check: the instances' keys are
   * checked too, and everything is reported in one run. */
  if (settings_load_all(config_file, &s) < 0 && !problems_count()) {
    fprintf(stderr, "vmhostd: error: %s\n", error_get());
    return EXIT_CONFIG;
  }
  int status = EXIT_START, lock_fd = -1, workers = 0;
  int logged = !check_only && !problems_count();

  if (logged) {
    if (log_open(s.log_file, s.log_format) < 0) {
      fprintf(stderr, "vmhostd: error: %s\n", error_get());
      goto out;
    }
    sdnotify_init();
    sdnotify("STATUS=opening %zu instance%s", s.n_instances,
             s.n_instances == 1 ? "" : "s");
  }
  apply_log_levels(&s);

  /* Every plugin checks its keys before anything is made, in both modes;
   * what fails here is memory, or an optional instance's own refusal. */
  if (instances_load(&s) < 0 || instances_open(&s, 1) < 0) {
    _cleanup_free_ char *msg = strdup(error_get());
    report_problems(&s, config_file, logged);
    error_set("%s", msg ? msg : "out of memory");
    fatal(&s, check_only);
    status = EXIT_CONFIG;
    goto out;
  }
  if (problems_count()) {
    report_problems(&s, config_file, logged);
    status = EXIT_CONFIG;
    goto out;
  }
  if (check_only) {
    printf("%s: configuration OK (%zu instance%s)\n", config_file,
           s.n_instances, s.n_instances == 1 ? "" : "s");
    status = 0;
    goto out;
  }

  if (lock_state_dir(s.state_dir, &lock_fd) < 0) {
    fatal(&s, 0);
    goto out;
  }
  /* It exists now: name it without "etc/../" in logs and plugin paths. */
  char *real = realpath(s.state_dir, NULL);
  if (real) {
    free(s.state_dir);
    s.state_dir = real;
  }
  if (bootstrap_tokens(s.state_dir) < 0) {
    fatal(&s, 0);
    goto out;
  }
  /* Signals are taken synchronously by this thread; block them before any
   * other thread exists so every thread inherits the mask. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);

  if (events_init(s.event_history) < 0) {
    log_error("%s", error_get());
    goto out;
  }
  if (workers_start(s.workers) < 0) {
    log_error("cannot start the workers: %s", error_get());
    goto out;
  }
  workers = 1;
  if (ops_init(s.operations_retention_s, s.operations_max) < 0) {
    log_error("%s", error_get());
    goto out;
  }
  int r = instances_open(&s, 0);
  if (r < 0) {
    fatal(&s, 0);
    status = r == VMH_EINVAL ? EXIT_CONFIG : EXIT_START;
    goto out;
  }
  orchestrate_set_boot_dirs(s.boot_dirs, s.n_boot_dirs);
  service_set_liveness_stall(s.liveness_stall_s);
  state_set_compact_size(s.journal_compact_size);
  resources_setup(&s.resources);
  resources_sample_pools();
  metrics_set_extra(render_more_metrics);
  if (telemetry_start(s.state_dir, s.telemetry_interval_s) < 0) {
    log_error("%s", error_get());
    goto out_close;
  }
  if (vms_init(s.state_dir) < 0) {
    log_error("%s", error_get());
    goto out_close;
  }
  if (start_frontends() < 0) {
    log_error("%s", error_get());
    stop_frontends();
    goto out_close;
  }
  service_set_ready(1);
  char summary[128];
  snprintf(summary, sizeof summary, "%zu instance%s, %zu VM%s%s", s.n_instances,
           s.n_instances == 1 ? "" : "s", vms_count(),
           vms_count() == 1 ? "" : "s",
           instances_degraded() ? " (degraded)" : "");
  sdnotify("READY=1\nSTATUS=serving: %s", summary);
  log_info("vmhostd ready: %s, in %.1f ms", summary, ms_since(&t0));

  int sig = serve(&s, config_file, &sigs);
  log_info("%s: draining (up to %u s)", strsignal(sig), s.drain_timeout_s);
  service_set_ready(0);
  /* The manager waits the drain and a margin before it kills. */
  sdnotify("STOPPING=1\nSTATUS=draining (up to %u s)\nEXTEND_TIMEOUT_USEC=%llu",
           s.drain_timeout_s,
           ((unsigned long long)s.drain_timeout_s + 15) * 1000000ULL);
  /* Front-ends keep serving while operations finish, so the answers reach
   * their clients; new work is refused ("shutting down") and work still
   * queued at the deadline is answered as cancelled. */
  workers_drain(s.drain_timeout_s * 1000);
  workers = 0;
  /* Long-polls on operations answer now, not at the front-ends' drain. */
  ops_release_waiters();
  stop_frontends();
  telemetry_stop();
  status = 0;
  if (workers_abandoned()) {
    /* Operations past the deadline still run inside plugins: closing the
     * instances or freeing what those operations use would pull the floor
     * from under them.  Exit and let the kernel reclaim. */
    log_warn("exiting with %u operation%s still running in plugins",
             workers_abandoned(), workers_abandoned() == 1 ? "" : "s");
    log_info("vmhostd stopped");
    /* _exit: no atexit handlers or library destructors racing the threads
     * that still run. */
    _exit(0);
  }

out_close:
  telemetry_stop();
  if (workers) {
    workers_drain(s.drain_timeout_s * 1000);
    workers = 0;
  }
  instances_close();
  if (status == 0)
    log_info("vmhostd stopped");
out:
  problems_clear();
  if (workers)
    workers_drain(0);
  instances_free();
  ops_free();
  vms_free();
  resources_free();
  events_free();
  metrics_free();
  settings_free(&s);
  if (lock_fd >= 0)
    close(lock_fd);
  sdnotify_close();
  log_close();
  return status;
}

int main(int argc, char **argv) {
  enum { OPT_CHECK = 256, OPT_DUMP, OPT_TOKEN, OPT_ROLE };
  static const struct option opts[] = {
      {"config", required_argument, NULL, 'c'},
      {"check-config", no_argument, NULL, OPT_CHECK},
      {"dump-plugin", required_argument, NULL, OPT_DUMP},
      {"token-create", required_argument, NULL, OPT_TOKEN},
      {"role", required_argument, NULL, OPT_ROLE},
      {"version", no_argument, NULL, 'V'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  const char *config_file = DEFAULT_CONFIG, *dump = NULL, *token = NULL,
             *role = NULL;
  /* Blocks of 256 KiB and more (answers of megabytes, their connection
   * buffers) always in mappings of their own, given back when freed.
   * Left to itself, glibc raises this threshold to the largest block
   * freed so far, and every later answer of that size stays in an arena
   * for good (RSS after lists of 10,000 VMs: docs/design.md). */
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  int check_only = 0, c;
  while ((c = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
    switch (c) {
      case 'c':
        config_file = optarg;
        break;
      case OPT_CHECK:
        check_only = 1;
        break;
      case OPT_DUMP:
        dump = optarg;
        break;
      case OPT_TOKEN:
        token = optarg;
        break;
      case OPT_ROLE:
        role = optarg;
        break;
      case 'V':
        printf("vmhostd %s (plugin ABI %d.%d)\n", PACKAGE_VERSION,
               VMH_ABI_MAJOR, VMH_ABI_MINOR);
        return 0;
      case 'h':
        usage(stdout);
        return 0;
      default:
        usage(stderr);
        return EXIT_CONFIG;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "vmhostd: unexpected argument '%s'\n", argv[optind]);
    usage(stderr);
    return EXIT_CONFIG;
  }
  if (role && !token) {
    fprintf(stderr, "vmhostd: --role goes with --token-create\n");
    return EXIT_CONFIG;
  }
  if (dump)
    return dump_plugin(dump);
  if (token)
    return token_create(config_file, token, role ? role : "reader");
  return run(config_file, check_only);
}
