/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* network-nat — a routed IPv4 network behind NAT: a Linux bridge holding the
 * gateway address, masquerade + forward rules in an nftables table of its
 * own (inet vmhost-<instance>), and dnsmasq for DHCP (and DNS) on that
 * bridge only.
 *
 * Restart safety drives the design: close() leaves the bridge, the rules and
 * dnsmasq running, and open() adopts them (the bridge and its address as
 * they are, the table flushed and refilled in one nftables transaction,
 * dnsmasq through its pid file when its command line and config are still
 * ours), so a vmhostd restart never cuts a guest's connection.  `ensure:
 * absent` in the config removes the network instead (see etc/plugins/nat.yaml).
 *
 * Netlink through libnl-route-3, rules through libnftables; no shell and no
 * ip(8)/nft(8) anywhere. */
#include <config.h>

#define VMH_THREAD_MODEL VMH_THREAD_SERIALIZE_INSTANCE
#include <vmhost/vmhost-plugin.h>

#include "atomicfile.h"
#include "netcommon.h"
#include "spawnproc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <net/if.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/route.h>
#include <nftables/libnftables.h>

#define IFNAME_MAX NET_IFNAME_MAX
#define MAC_LEN NET_MAC_LEN
#define DNSMASQ "dnsmasq"
#define SUPERVISE_MS 500 /* how often the supervisor looks at dnsmasq */

struct reservation {
  char mac[MAC_LEN + 1];
  uint32_t ip; /* host order */
};

struct nat {
  const struct vmh_host *host;
  const struct vmh_instance *inst;
  const char *name;              /* instance name */
  const char *bridge, *upstream; /* upstream: as configured, or NULL */
  char upstream_if[IF_NAMESIZE]; /* the one in the rules; "" for any */
  int dns, absent;
  uint32_t net, mask, gw, range_lo, range_hi; /* host order */
  int prefix;
  char cidr[INET_ADDRSTRLEN + 4], gateway[INET_ADDRSTRLEN];
  struct reservation *res;
  size_t n_res;
  struct ptrvec ports; /* of struct net_port */
  int random_errno;    /* new_mac's getrandom failure (port_bind) */
  char *dir, *conf_path, *pid_path, *lease_path, *ports_path, *log_path;
  char **argv; /* dnsmasq's command line, NULL-terminated */
  /* The supervisor thread and the operations share dnsmasq's pid. */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  pthread_t thread;
  int thread_started, stopping;
  pid_t dnsmasq;
};

/* ---- Helpers ------------------------------------------------------------- */

static int fail(struct nat *n, int code, const char *fmt, ...) VMH_PRINTF(3, 4);
/* Set on the supervisor thread, which serves no operation: its errors go
 * to the log, not to host->error (the message of an operation's reply). */
static __thread int on_supervisor;

static int fail(struct nat *n, int code, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  if (on_supervisor) {
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
    n->host->log(n->inst, VMH_LOG_ERROR, "%s", buf);
  } else {
    n->host->verror(fmt, ap);
  }
  va_end(ap);
  return code;
}

static char *xasprintf(const char *fmt, ...) VMH_PRINTF(1, 2);
static char *xasprintf(const char *fmt, ...) {
  char *s = NULL;
  va_list ap;

  va_start(ap, fmt);
  if (vasprintf(&s, fmt, ap) < 0)
    s = NULL;
  va_end(ap);
  return s;
}

static void ip_str(uint32_t ip, char out[INET_ADDRSTRLEN]) {
  struct in_addr a = {.s_addr = htonl(ip)};
  inet_ntop(AF_INET, &a, out, INET_ADDRSTRLEN);
}

static int parse_ip(const char *s, uint32_t *ret) {
  struct in_addr a;

  if (inet_pton(AF_INET, s, &a) != 1)
    return -1;
  *ret = ntohl(a.s_addr);
  return 0;
}

static uint32_t prefix_mask(int prefix) {
  return prefix == 0 ? 0 : UINT32_MAX << (32 - prefix);
}

/* Text that goes into the ports file: no tab or newline. */
static int valid_field(const char *s) {
  return s != NULL && *s && strpbrk(s, "\t\n\r") == NULL;
}

static int in_subnet(const struct nat *n, uint32_t ip) {
  return (ip & n->mask) == n->net;
}

/* Write `data` to `path` so that a crash leaves the old or the new file,
 * never half of one.  Readable by all: dnsmasq reads it after dropping
 * privileges. */
static int write_atomic(struct nat *n, const char *path, const char *data) {
  if (atomic_write(path, data, strlen(data), 0644) < 0)
    return fail(n, VMH_EIO, "cannot write %s: %s", path, strerror(errno));
  return 0;
}

/* The whole of a small file, NUL-terminated; NULL if it cannot be read. */
static char *read_file(const char *path, size_t *ret_len) {
  FILE *f = fopen(path, "re");
  char *buf = NULL;
  size_t len = 0, cap = 0;

  if (f == NULL)
    return NULL;
  for (;;) {
    if (len + 4096 + 1 > cap) {
      char *nb = realloc(buf, cap = len + 4096 + 1);
      if (nb == NULL) {
        free(buf);
        fclose(f);
        return NULL;
      }
      buf = nb;
    }
    size_t got = fread(buf + len, 1, 4096, f);
    len += got;
    if (got == 0)
      break;
  }
  fclose(f);
  buf[len] = '\0';
  if (ret_len)
    *ret_len = len;
  return buf;
}

/* ---- Config -------------------------------------------------------------- */

static int parse_subnet(struct nat *n, const char *s) {
  char ip[INET_ADDRSTRLEN + 1], *end;
  const char *slash = strchr(s, '/');
  size_t len;
  long plen;

  if (slash == NULL || (len = (size_t)(slash - s)) >= sizeof ip)
    goto bad;
  memcpy(ip, s, len);
  ip[len] = '\0';
  if (parse_ip(ip, &n->net) < 0 || slash[1] < '0' || slash[1] > '9')
    goto bad;
  plen = strtol(slash + 1, &end, 10);
  if (*end != '\0' || plen < 0 || plen > 32)
    goto bad;
  if (plen < 8 || plen > 29)
    return fail(n, VMH_EINVAL,
                "subnet %s: use a prefix from /8 to /29 (room for a gateway, "
                "a DHCP range and a broadcast address)",
                s);
  n->prefix = (int)plen;
  n->mask = prefix_mask(n->prefix);
  if (n->net & ~n->mask)
    return fail(n, VMH_EINVAL,
                "subnet %s has host bits set; give the network address", s);
  ip_str(n->net, ip);
  snprintf(n->cidr, sizeof n->cidr, "%s/%d", ip, n->prefix);
  return 0;
bad:
  return fail(n, VMH_EINVAL,
              "subnet '%s' is not an IPv4 network such as 10.0.0.0/24", s);
}

static int host_ok(const struct nat *n, uint32_t ip) {
  return in_subnet(n, ip) && ip != n->net && ip != (n->net | ~n->mask);
}

static int parse_range(struct nat *n, const char *s) {
  char lo[INET_ADDRSTRLEN + 1];
  const char *dash = strchr(s, '-');
  size_t len;

  if (dash == NULL || (len = (size_t)(dash - s)) >= sizeof lo)
    goto bad;
  memcpy(lo, s, len);
  lo[len] = '\0';
  if (parse_ip(lo, &n->range_lo) < 0 || parse_ip(dash + 1, &n->range_hi) < 0)
    goto bad;
  if (!host_ok(n, n->range_lo) || !host_ok(n, n->range_hi))
    return fail(n, VMH_EINVAL,
                "dhcp_range %s is not inside subnet %s (network and broadcast "
                "addresses excluded)",
                s, n->cidr);
  if (n->range_lo > n->range_hi)
    return fail(n, VMH_EINVAL, "dhcp_range %s: the start is after the end", s);
  if (n->gw >= n->range_lo && n->gw <= n->range_hi)
    return fail(n, VMH_EINVAL,
                "dhcp_range %s contains the gateway %s; leave it out", s,
                n->gateway);
  return 0;
bad:
  return fail(n, VMH_EINVAL,
              "dhcp_range '%s' is not START-END such as "
              "10.0.0.10-10.0.0.200",
              s);
}

static int parse_reservations(struct nat *n, const struct vmh_config *cfg) {
  const struct vmh_host *h = n->host;
  const struct vmh_config *list, *item;
  uint32_t count, i;
  size_t j;
  int rc;

  if ((rc = h->config_list(cfg, "reservations", &list, &count, 0)) < 0)
    return rc;
  if (count == 0)
    return 0;
  n->res = calloc(count, sizeof *n->res);
  if (n->res == NULL)
    return fail(n, VMH_ENOMEM, "out of memory");
  for (i = 0; i < count; i++) {
    struct reservation *r = &n->res[i];
    const char *mac, *ip;
    if ((rc = h->config_at(list, i, &item)) < 0 ||
        (rc = h->config_string(item, "mac", NULL, &mac, VMH_CFG_REQUIRED)) <
            0 ||
        (rc = h->config_string(item, "ip", NULL, &ip, VMH_CFG_REQUIRED)) < 0)
      return rc;
    if (net_parse_mac(mac, r->mac) < 0)
      return fail(n, VMH_EINVAL,
                  "%s: reservation MAC '%s' is not a unicast MAC such as "
                  "52:54:00:12:34:56",
                  h->config_where(item), mac);
    if (parse_ip(ip, &r->ip) < 0 || !host_ok(n, r->ip) || r->ip == n->gw)
      return fail(n, VMH_EINVAL,
                  "%s: reservation IP '%s' is not a host address of subnet "
                  "%s other than the gateway",
                  h->config_where(item), ip, n->cidr);
    for (j = 0; j < i; j++)
      if (strcmp(n->res[j].mac, r->mac) == 0 || n->res[j].ip == r->ip)
        return fail(n, VMH_EINVAL,
                    "%s: reservation %s %s repeats the MAC or IP of an "
                    "earlier one",
                    h->config_where(item), mac, ip);
    n->n_res++;
  }
  return 0;
}

static int parse_config(struct nat *n, const struct vmh_config *cfg) {
  const struct vmh_host *h = n->host;
  const char *subnet, *gateway, *range, *ensure;
  char lo[INET_ADDRSTRLEN], hi[INET_ADDRSTRLEN], buf[64];
  int rc;

  /* Every key is read before anything is judged, so that a typo is reported
   * even when another key is wrong too. */
  if ((rc = h->config_string(cfg, "bridge", NULL, &n->bridge,
                             VMH_CFG_REQUIRED)) < 0 ||
      (rc = h->config_string(cfg, "subnet", NULL, &subnet, VMH_CFG_REQUIRED)) <
          0 ||
      (rc = h->config_string(cfg, "gateway", NULL, &gateway, 0)) < 0 ||
      (rc = h->config_string(cfg, "dhcp_range", NULL, &range, 0)) < 0 ||
      (rc = h->config_bool(cfg, "dns", 1, &n->dns, 0)) < 0 ||
      (rc = h->config_string(cfg, "upstream", NULL, &n->upstream, 0)) < 0 ||
      (rc = h->config_string(cfg, "ensure", "present", &ensure, 0)) < 0)
    return rc;
  if (strcmp(ensure, "present") == 0)
    n->absent = 0;
  else if (strcmp(ensure, "absent") == 0)
    n->absent = 1;
  else
    return fail(n, VMH_EINVAL, "ensure: '%s' is not present or absent", ensure);
  if (!net_valid_ifname(n->bridge))
    return fail(n, VMH_EINVAL,
                "bridge '%s' is not an interface name (1 to 15 characters, "
                "no space, '/' or ':')",
                n->bridge);
  if (n->upstream != NULL &&
      (!net_valid_ifname(n->upstream) || strcmp(n->upstream, n->bridge) == 0))
    return fail(n, VMH_EINVAL,
                "upstream '%s' is not an interface name other than the "
                "bridge",
                n->upstream);
  if ((rc = parse_subnet(n, subnet)) < 0)
    return rc;
  if (gateway != NULL) {
    if (parse_ip(gateway, &n->gw) < 0)
      return fail(n, VMH_EINVAL, "gateway '%s' is not an IPv4 address",
                  gateway);
    if (!host_ok(n, n->gw))
      return fail(n, VMH_EINVAL,
                  "gateway %s is outside subnet %s (or is its network or "
                  "broadcast address)",
                  gateway, n->cidr);
  } else {
    n->gw = n->net + 1;
  }
  ip_str(n->gw, n->gateway);
  if (range != NULL) {
    if ((rc = parse_range(n, range)) < 0)
      return rc;
  } else {
    /* The default: every host address but the gateway's. */
    n->range_lo = n->net + 1;
    n->range_hi = (n->net | ~n->mask) - 1;
    if (n->gw == n->range_lo)
      n->range_lo++;
    else if (n->gw == n->range_hi)
      n->range_hi--;
    ip_str(n->range_lo, lo);
    ip_str(n->range_hi, hi);
    snprintf(buf, sizeof buf, "%s-%s", lo, hi);
    if ((rc = parse_range(n, buf)) < 0)
      return rc;
  }
  return parse_reservations(n, cfg);
}

/* ---- Paths and dnsmasq's command line ------------------------------------ */

static int make_paths(struct nat *n) {
  const char *dir = n->host->state_dir(n->inst);

  if (dir == NULL)
    return fail(n, VMH_EINTERNAL, "no state directory");
  n->dir = strdup(dir);
  n->conf_path = xasprintf("%s/dnsmasq.conf", dir);
  n->pid_path = xasprintf("%s/dnsmasq.pid", dir);
  n->lease_path = xasprintf("%s/leases", dir);
  n->ports_path = xasprintf("%s/ports", dir);
  n->log_path = xasprintf("%s/dnsmasq.log", dir);
  if (!n->dir || !n->conf_path || !n->pid_path || !n->lease_path ||
      !n->ports_path || !n->log_path)
    return fail(n, VMH_ENOMEM, "out of memory");
  return 0;
}

static void free_argv(char **argv) {
  if (argv == NULL)
    return;
  for (char **a = argv; *a; a++)
    free(*a);
  free(argv);
}

/* Every option on the command line, so that /proc/PID/cmdline tells whether
 * a running dnsmasq is ours and current; the conf file holds only the
 * reservations (and stops dnsmasq from reading /etc/dnsmasq.conf). */
static int build_argv(struct nat *n) {
  char lo[INET_ADDRSTRLEN], hi[INET_ADDRSTRLEN], mask[INET_ADDRSTRLEN];
  char *v[32] = {0};
  int i = 0, k;

  ip_str(n->range_lo, lo);
  ip_str(n->range_hi, hi);
  ip_str(n->mask, mask);
  v[i++] = strdup(DNSMASQ);
  v[i++] = xasprintf("--conf-file=%s", n->conf_path);
  v[i++] = xasprintf("--interface=%s", n->bridge);
  v[i++] = strdup("--bind-interfaces");
  v[i++] = strdup("--except-interface=lo");
  v[i++] = xasprintf("--dhcp-range=%s,%s,%s,1h", lo, hi, mask);
  v[i++] = xasprintf("--dhcp-option=option:router,%s", n->gateway);
  v[i++] = xasprintf("--dhcp-leasefile=%s", n->lease_path);
  v[i++] = xasprintf("--pid-file=%s", n->pid_path);
  v[i++] = xasprintf("--log-facility=%s", n->log_path);
  /* dnsmasq is the only DHCP server of its bridge: answer clients that ask
   * for an address it does not know (after a lease file loss) at once. */
  v[i++] = strdup("--dhcp-authoritative");
  /* The ping probe before each offer costs three seconds a lease; the
   * range belongs to dnsmasq alone. */
  v[i++] = strdup("--no-ping");
  if (n->dns) {
    v[i++] = xasprintf("--host-record=gateway,%s", n->gateway);
    v[i++] = strdup("--domain-needed");
  } else {
    v[i++] = strdup("--port=0");
  }
  v[i] = NULL;
  for (k = 0; k < i; k++)
    if (v[k] == NULL) {
      for (k = 0; k < i; k++)
        free(v[k]);
      return fail(n, VMH_ENOMEM, "out of memory");
    }
  n->argv = calloc((size_t)i + 1, sizeof *n->argv);
  if (n->argv == NULL) {
    for (k = 0; k < i; k++)
      free(v[k]);
    return fail(n, VMH_ENOMEM, "out of memory");
  }
  memcpy(n->argv, v, (size_t)i * sizeof *v);
  return 0;
}

static char *conf_text(struct nat *n) {
  size_t cap = 128 + n->n_res * 64, len = 0, i;
  char *s = malloc(cap), ip[INET_ADDRSTRLEN];

  if (s == NULL)
    return NULL;
  len += (size_t)snprintf(s + len, cap - len,
                          "# generated by vmhostd's nat network %s; "
                          "rewritten at every start\n",
                          n->name);
  for (i = 0; i < n->n_res; i++) {
    ip_str(n->res[i].ip, ip);
    len += (size_t)snprintf(s + len, cap - len, "dhcp-host=%s,%s\n",
                            n->res[i].mac, ip);
  }
  return s;
}

/* ---- dnsmasq ------------------------------------------------------------- */

/* 1: `pid` runs our exact command line; 0: it runs dnsmasq with our pid
 * file but another command line (an older config); -1: not ours or gone. */
static int dnsmasq_match(struct nat *n, pid_t pid) {
  char path[64], *buf;
  size_t len, off = 0;
  int i, exact = 1, ours = 0;
  char *want_pid = NULL;

  if (pid <= 0)
    return -1;
  snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
  buf = read_file(path, &len);
  if (buf == NULL || len == 0) { /* gone, or a zombie */
    free(buf);
    return -1;
  }
  want_pid = xasprintf("--pid-file=%s", n->pid_path);
  for (i = 0; off < len; i++) {
    const char *arg = buf + off;
    if (want_pid && strcmp(arg, want_pid) == 0)
      ours = 1;
    if (exact && (n->argv[i] == NULL || strcmp(arg, n->argv[i]) != 0))
      exact = 0;
    off += strlen(arg) + 1;
  }
  if (exact && n->argv[i] != NULL)
    exact = 0;
  /* argv[0] may be a path: what counts is the program's base name. */
  const char *base = strrchr(buf, '/');
  base = base ? base + 1 : buf;
  if (strcmp(base, DNSMASQ) != 0)
    ours = exact = 0;
  free(want_pid);
  free(buf);
  return exact ? 1 : ours ? 0 : -1;
}

static pid_t read_pidfile(struct nat *n) {
  char *s = read_file(n->pid_path, NULL);
  long v = s ? strtol(s, NULL, 10) : 0;

  free(s);
  return v > 0 && v < INT32_MAX ? (pid_t)v : 0;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Stop a dnsmasq of ours: SIGTERM, then SIGKILL after two seconds. */
static void dnsmasq_kill(struct nat *n, pid_t pid) {
  int i;

  if (pid <= 0 || dnsmasq_match(n, pid) < 0)
    return;
  kill(pid, SIGTERM);
  for (i = 0; i < 200 && dnsmasq_match(n, pid) >= 0; i++)
    sleep_ms(10);
  if (dnsmasq_match(n, pid) >= 0) {
    kill(pid, SIGKILL);
    for (i = 0; i < 100 && dnsmasq_match(n, pid) >= 0; i++)
      sleep_ms(10);
  }
}

/* Start dnsmasq (it daemonizes: it outlives vmhostd, which is the point)
 * and wait for its pid file.  Under n->lock. */
static int dnsmasq_start(struct nat *n) {
  pid_t child, pid = 0;
  int status = 0, rc, i;

  unlink(n->pid_path);
  /* spawn_process resets the signal mask and dispositions: dnsmasq must
   * not inherit vmhostd's blocked SIGTERM, or SIGTERM would never stop it. */
  rc = spawn_process(n->argv, -1, -1, &child);
  if (rc != 0)
    return fail(n, VMH_EIO, "cannot run %s: %s (install dnsmasq-base)", DNSMASQ,
                strerror(rc));
  /* The first process exits once the daemon is set up (or failed); its
   * status says which. */
  if (waitpid(child, &status, 0) == child &&
      !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
    return fail(n, VMH_EIO,
                "dnsmasq for bridge %s failed to start (status %d); see its "
                "message in vmhostd's log and %s",
                n->bridge, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                n->log_path);
  for (i = 0; i < 500; i++) {
    pid = read_pidfile(n);
    if (pid > 0 && dnsmasq_match(n, pid) == 1)
      break;
    pid = 0;
    sleep_ms(10);
  }
  if (pid == 0)
    return fail(n, VMH_EIO, "dnsmasq for bridge %s wrote no pid file %s",
                n->bridge, n->pid_path);
  n->dnsmasq = pid;
  n->host->log(n->inst, VMH_LOG_INFO, "dnsmasq started on %s, pid %d",
               n->bridge, (int)pid);
  n->host->counter_add(n->inst, "dnsmasq_starts", 1);
  return 0;
}

/* Adopt the dnsmasq of the pid file if it runs our command line and
 * config; else replace it.  must_restart: the reservations differ from
 * what the running one read, or the bridge was made anew. */
static int dnsmasq_ensure(struct nat *n, int must_restart) {
  pid_t pid = read_pidfile(n);
  int m = dnsmasq_match(n, pid);

  if (m == 1 && !must_restart) {
    n->dnsmasq = pid;
    n->host->log(n->inst, VMH_LOG_INFO, "adopted running dnsmasq pid %d",
                 (int)pid);
    return 0;
  }
  if (m >= 0) {
    n->host->log(n->inst, VMH_LOG_INFO,
                 "restarting dnsmasq pid %d: its config or bridge changed",
                 (int)pid);
    dnsmasq_kill(n, pid);
  }
  return dnsmasq_start(n);
}

static void *supervisor(void *arg) {
  struct nat *n = arg;
  struct timespec ts;
  long wait_ms = SUPERVISE_MS;

  on_supervisor = 1;
  pthread_mutex_lock(&n->lock);
  while (!n->stopping) {
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += wait_ms / 1000;
    ts.tv_nsec += (wait_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&n->cond, &n->lock, &ts);
    if (n->stopping)
      break;
    if (dnsmasq_match(n, n->dnsmasq) == 1)
      continue;
    n->host->log(n->inst, VMH_LOG_WARN, "dnsmasq pid %d is gone; restarting it",
                 (int)n->dnsmasq);
    n->dnsmasq = 0;
    if (dnsmasq_start(n) == 0) {
      wait_ms = SUPERVISE_MS;
    } else {
      /* Back off (bridge deleted under us, say) up to 30 s a try. */
      wait_ms = wait_ms * 2 > 30000 ? 30000 : wait_ms * 2;
      n->host->log(n->inst, VMH_LOG_ERROR,
                   "dnsmasq restart failed; next try in %ld ms", wait_ms);
    }
  }
  pthread_mutex_unlock(&n->lock);
  return NULL;
}

/* ---- Netlink ------------------------------------------------------------- */

static int nl_fail(struct nat *n, const char *what, int err) {
  return fail(n, VMH_EIO, "%s: %s", what, nl_geterror(err));
}

static struct nl_sock *nl_open(struct nat *n) {
  struct nl_sock *sk = nl_socket_alloc();
  int err;

  if (sk == NULL) {
    fail(n, VMH_ENOMEM, "out of memory");
    return NULL;
  }
  if ((err = nl_connect(sk, NETLINK_ROUTE)) < 0) {
    nl_fail(n, "netlink connect", err);
    nl_socket_free(sk);
    return NULL;
  }
  return sk;
}

struct overlap_ctx {
  struct nat *n;
  int bridge_ifindex;
  char found[128];
};

static void overlap_cb(struct nl_object *obj, void *arg) {
  struct overlap_ctx *c = arg;
  struct rtnl_addr *a = (struct rtnl_addr *)obj;
  struct nl_addr *local = rtnl_addr_get_local(a);
  char ifname[IF_NAMESIZE] = "?", ip[INET_ADDRSTRLEN];
  uint32_t v, m;
  int plen;

  if (c->found[0] || rtnl_addr_get_family(a) != AF_INET || local == NULL ||
      nl_addr_get_len(local) != 4 ||
      rtnl_addr_get_ifindex(a) == c->bridge_ifindex)
    return;
  memcpy(&v, nl_addr_get_binary_addr(local), 4);
  v = ntohl(v);
  plen = rtnl_addr_get_prefixlen(a);
  /* Two networks overlap when they agree on the shorter prefix. */
  m = prefix_mask(plen < c->n->prefix ? plen : c->n->prefix);
  if ((v & m) != (c->n->net & m))
    return;
  if_indextoname((unsigned)rtnl_addr_get_ifindex(a), ifname);
  ip_str(v, ip);
  snprintf(c->found, sizeof c->found, "%s/%d on %s", ip, plen, ifname);
}

/* Refuse a subnet that another interface already uses: its routes would
 * fight ours. */
static int check_overlap(struct nat *n, struct nl_sock *sk) {
  struct overlap_ctx c = {.n = n, .bridge_ifindex = -1};
  struct nl_cache *cache = NULL;
  struct rtnl_link *link = NULL;
  int err;

  if (rtnl_link_get_kernel(sk, 0, n->bridge, &link) == 0) {
    c.bridge_ifindex = rtnl_link_get_ifindex(link);
    rtnl_link_put(link);
  }
  if ((err = rtnl_addr_alloc_cache(sk, &cache)) < 0)
    return nl_fail(n, "reading interface addresses", err);
  nl_cache_foreach(cache, overlap_cb, &c);
  nl_cache_free(cache);
  if (c.found[0])
    return fail(n, VMH_EINVAL,
                "subnet %s overlaps %s; choose a subnet no interface uses",
                n->cidr, c.found);
  return 0;
}

/* The bridge, made if missing (*created = 1), with the gateway address,
 * up. */
static int setup_bridge(struct nat *n, struct nl_sock *sk, int *created) {
  struct rtnl_link *link = NULL, *change = NULL;
  struct rtnl_addr *addr = NULL;
  struct nl_addr *local = NULL, *brd = NULL;
  uint32_t be;
  int err, rc = VMH_EIO;

  err = rtnl_link_get_kernel(sk, 0, n->bridge, &link);
  if (err < 0) {
    if ((err = rtnl_link_bridge_add(sk, n->bridge)) < 0) {
      nl_fail(n, "creating bridge", err);
      goto cleanup;
    }
    n->host->log(n->inst, VMH_LOG_INFO, "created bridge %s", n->bridge);
    *created = 1;
    if ((err = rtnl_link_get_kernel(sk, 0, n->bridge, &link)) < 0) {
      nl_fail(n, "reading the new bridge", err);
      goto cleanup;
    }
  } else if (!rtnl_link_is_bridge(link)) {
    rc = fail(n, VMH_EINVAL,
              "interface %s exists and is not a bridge; name another bridge",
              n->bridge);
    goto cleanup;
  }
  addr = rtnl_addr_alloc();
  be = htonl(n->gw);
  local = nl_addr_build(AF_INET, &be, 4);
  be = htonl(n->net | ~n->mask);
  brd = nl_addr_build(AF_INET, &be, 4);
  if (addr == NULL || local == NULL || brd == NULL) {
    rc = fail(n, VMH_ENOMEM, "out of memory");
    goto cleanup;
  }
  nl_addr_set_prefixlen(local, n->prefix);
  rtnl_addr_set_ifindex(addr, rtnl_link_get_ifindex(link));
  rtnl_addr_set_family(addr, AF_INET);
  rtnl_addr_set_local(addr, local);
  rtnl_addr_set_broadcast(addr, brd);
  err = rtnl_addr_add(sk, addr, 0);
  if (err < 0 && err != -NLE_EXIST) {
    nl_fail(n, "adding the gateway address", err);
    goto cleanup;
  }
  change = rtnl_link_alloc();
  if (change == NULL) {
    rc = fail(n, VMH_ENOMEM, "out of memory");
    goto cleanup;
  }
  rtnl_link_set_flags(change, IFF_UP);
  if ((err = rtnl_link_change(sk, link, change, 0)) < 0) {
    nl_fail(n, "setting the bridge up", err);
    goto cleanup;
  }
  rc = 0;
cleanup:
  if (change)
    rtnl_link_put(change);
  if (addr)
    rtnl_addr_put(addr);
  if (local)
    nl_addr_put(local);
  if (brd)
    nl_addr_put(brd);
  if (link)
    rtnl_link_put(link);
  return rc;
}

struct route_ctx {
  int ifindex;
};

static void default_route_cb(struct nl_object *obj, void *arg) {
  struct route_ctx *c = arg;
  struct rtnl_route *r = (struct rtnl_route *)obj;
  struct nl_addr *dst = rtnl_route_get_dst(r);

  if (c->ifindex || rtnl_route_get_table(r) != RT_TABLE_MAIN ||
      rtnl_route_get_family(r) != AF_INET ||
      (dst && nl_addr_get_prefixlen(dst) != 0) ||
      rtnl_route_get_nnexthops(r) < 1)
    return;
  c->ifindex = rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(r, 0));
}

/* The interface the masquerade applies to: `upstream`, else the IPv4
 * default route's as it is now, else any interface but the bridge (no
 * default route: whatever route a destination has). */
static int resolve_upstream(struct nat *n, struct nl_sock *sk) {
  struct route_ctx c = {0};
  struct nl_cache *cache = NULL;
  int err;

  if (n->upstream) {
    snprintf(n->upstream_if, sizeof n->upstream_if, "%s", n->upstream);
    return 0;
  }
  if ((err = rtnl_route_alloc_cache(sk, AF_INET, 0, &cache)) < 0)
    return nl_fail(n, "reading routes", err);
  nl_cache_foreach(cache, default_route_cb, &c);
  nl_cache_free(cache);
  n->upstream_if[0] = '\0';
  if (c.ifindex <= 0 ||
      if_indextoname((unsigned)c.ifindex, n->upstream_if) == NULL) {
    n->upstream_if[0] = '\0';
    n->host->log(n->inst, VMH_LOG_WARN,
                 "no IPv4 default route: masquerading towards any interface "
                 "but %s",
                 n->bridge);
  } else {
    n->host->log(n->inst, VMH_LOG_INFO, "upstream: %s (the default route's)",
                 n->upstream_if);
  }
  return 0;
}

/* ---- nftables ------------------------------------------------------------ */

static int nft_run(struct nat *n, const char *cmd) {
  struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  int rc = 0;

  if (ctx == NULL)
    return fail(n, VMH_ENOMEM, "nft_ctx_new failed");
  nft_ctx_buffer_output(ctx);
  nft_ctx_buffer_error(ctx);
  if (nft_run_cmd_from_buffer(ctx, cmd) != 0) {
    const char *e = nft_ctx_get_error_buffer(ctx);
    rc = fail(n, VMH_EIO,
              "nftables refused the rules of table inet vmhost-%s: %s", n->name,
              e && *e ? e : "(no message)");
  }
  nft_ctx_free(ctx);
  return rc;
}

/* The table in one transaction: made if missing, flushed, refilled.  A
 * restart therefore never duplicates a rule, and conntrack keeps the NAT of
 * established connections across it. */
static int setup_rules(struct nat *n) {
  char oif[64] = "";
  char *cmd;
  int rc;

  if (n->upstream_if[0])
    snprintf(oif, sizeof oif, "oifname \"%s\" ", n->upstream_if);
  cmd = xasprintf(
      "table inet vmhost-%1$s\n"
      "flush table inet vmhost-%1$s\n"
      "table inet vmhost-%1$s {\n"
      "  chain postrouting {\n"
      "    type nat hook postrouting priority srcnat; policy accept;\n"
      "    ip saddr %2$s ip daddr != %2$s %3$smasquerade\n"
      "  }\n"
      "  chain forward {\n"
      "    type filter hook forward priority filter; policy accept;\n"
      "    iifname \"%4$s\" accept\n"
      "    oifname \"%4$s\" ct state established,related accept\n"
      "  }\n"
      "}\n",
      n->name, n->cidr, oif, n->bridge);
  if (cmd == NULL)
    return fail(n, VMH_ENOMEM, "out of memory");
  rc = nft_run(n, cmd);
  free(cmd);
  return rc;
}

/* ---- Forwarding ---------------------------------------------------------- */

static int enable_forwarding(struct nat *n) {
  const char *path = "/proc/sys/net/ipv4/ip_forward";
  int fd = open(path, O_WRONLY | O_CLOEXEC);

  if (fd < 0 || write(fd, "1\n", 2) != 2) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    return fail(n, VMH_EIO, "cannot enable forwarding (%s): %s", path,
                strerror(e));
  }
  close(fd);
  return 0;
}

/* ---- Ports --------------------------------------------------------------- */

static void free_port(struct net_port *p) {
  if (p == NULL)
    return;
  free(p->vm_id);
  free(p->nic_name);
  free(p);
}

static int save_ports(struct nat *n) {
  size_t cap = 64, len = 0, i;
  char *s;
  int rc;

  for (i = 0; i < n->ports.n; i++)
    cap += strlen(net_port_at(&n->ports, i)->vm_id) +
           strlen(net_port_at(&n->ports, i)->nic_name) + 24;
  s = malloc(cap);
  if (s == NULL)
    return fail(n, VMH_ENOMEM, "out of memory");
  s[0] = '\0';
  for (i = 0; i < n->ports.n; i++)
    len += (size_t)snprintf(
        s + len, cap - len, "%s\t%s\t%s\n", net_port_at(&n->ports, i)->vm_id,
        net_port_at(&n->ports, i)->nic_name, net_port_at(&n->ports, i)->mac);
  rc = write_atomic(n, n->ports_path, s);
  free(s);
  return rc;
}

static int load_ports(struct nat *n) {
  char *buf = read_file(n->ports_path, NULL), *line, *save = NULL;
  int rc = 0, lineno = 0;

  if (buf == NULL)
    return errno == ENOENT ? 0
                           : fail(n, VMH_EIO, "cannot read %s: %s",
                                  n->ports_path, strerror(errno));
  for (line = strtok_r(buf, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    char *vm = line, *nic, *mac;
    struct net_port *p;
    lineno++;
    nic = strchr(vm, '\t');
    mac = nic ? strchr(nic + 1, '\t') : NULL;
    if (mac == NULL) {
      rc = fail(n, VMH_EIO, "%s:%d: not VM<tab>NIC<tab>MAC", n->ports_path,
                lineno);
      break;
    }
    *nic++ = '\0';
    *mac++ = '\0';
    p = calloc(1, sizeof *p);
    if (p == NULL || net_parse_mac(mac, p->mac) < 0 ||
        (p->vm_id = strdup(vm)) == NULL ||
        (p->nic_name = strdup(nic)) == NULL ||
        net_ports_find(&n->ports, vm, nic, NULL) != NULL) {
      free_port(p);
      rc = fail(n, VMH_EIO, "%s:%d: bad or repeated port", n->ports_path,
                lineno);
      break;
    }
    if (ptrvec_push(&n->ports, p) < 0) {
      rc = fail(n, VMH_ENOMEM, "out of memory");
      free_port(p);
      break;
    }
  }
  free(buf);
  return rc;
}

/* ---- Teardown (ensure: absent) ------------------------------------------- */

/* Remove exactly what this network made: dnsmasq of our pid file, our
 * table, our bridge, our files.  Each step is idempotent. */
static int teardown(struct nat *n, struct nl_sock *sk) {
  struct rtnl_link *link = NULL;
  const char *files[] = {n->conf_path, n->pid_path, n->lease_path,
                         n->ports_path, n->log_path};
  char *cmd;
  int rc, err;

  dnsmasq_kill(n, read_pidfile(n));
  /* "table" first: deleting a table that does not exist is an error. */
  cmd = xasprintf("table inet vmhost-%1$s\ndelete table inet vmhost-%1$s\n",
                  n->name);
  if (cmd == NULL)
    return fail(n, VMH_ENOMEM, "out of memory");
  rc = nft_run(n, cmd);
  free(cmd);
  if (rc < 0)
    return rc;
  if (rtnl_link_get_kernel(sk, 0, n->bridge, &link) == 0) {
    if (!rtnl_link_is_bridge(link)) {
      rtnl_link_put(link);
      return fail(n, VMH_EINVAL, "%s is not a bridge; left alone", n->bridge);
    }
    err = rtnl_link_delete(sk, link);
    rtnl_link_put(link);
    if (err < 0)
      return nl_fail(n, "deleting the bridge", err);
  }
  for (size_t i = 0; i < sizeof files / sizeof *files; i++)
    unlink(files[i]);
  n->host->log(n->inst, VMH_LOG_INFO, "network removed (ensure: absent)");
  return 0;
}

/* ---- Operations ---------------------------------------------------------- */

static void nat_free(struct nat *n) {
  size_t i;

  if (n == NULL)
    return;
  if (n->thread_started) {
    pthread_mutex_lock(&n->lock);
    n->stopping = 1;
    pthread_cond_signal(&n->cond);
    pthread_mutex_unlock(&n->lock);
    pthread_join(n->thread, NULL);
  }
  pthread_mutex_destroy(&n->lock);
  pthread_cond_destroy(&n->cond);
  for (i = 0; i < n->ports.n; i++)
    free_port(net_port_at(&n->ports, i));
  ptrvec_free(&n->ports);
  free(n->res);
  free_argv(n->argv);
  free(n->dir);
  free(n->conf_path);
  free(n->pid_path);
  free(n->lease_path);
  free(n->ports_path);
  free(n->log_path);
  free(n);
}

static int nat_open(const struct vmh_host *host,
                    const struct vmh_instance *inst,
                    const struct vmh_config *config, void **ret_handle,
                    uint32_t flags) {
  struct nat *n = calloc(1, sizeof *n);
  struct nl_sock *sk = NULL;
  char *conf = NULL, *old = NULL;
  pthread_condattr_t ca;
  int rc, created = 0;

  if (n == NULL) {
    host->error("out of memory");
    return VMH_ENOMEM;
  }
  n->host = host;
  n->inst = inst;
  n->name = host->instance_name(inst);
  pthread_mutex_init(&n->lock, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&n->cond, &ca);
  pthread_condattr_destroy(&ca);
  if ((rc = parse_config(n, config)) < 0)
    goto cleanup;
  if (flags & VMH_OPEN_CHECK_ONLY) {
    rc = 0;
    goto done;
  }
  if ((rc = make_paths(n)) < 0 || (rc = build_argv(n)) < 0)
    goto cleanup;
  if ((sk = nl_open(n)) == NULL) {
    rc = VMH_EIO;
    goto cleanup;
  }
  if (n->absent) {
    if ((rc = teardown(n, sk)) < 0)
      goto cleanup;
    goto done;
  }
  if ((rc = check_overlap(n, sk)) < 0 ||
      (rc = setup_bridge(n, sk, &created)) < 0 ||
      (rc = enable_forwarding(n)) < 0 || (rc = resolve_upstream(n, sk)) < 0 ||
      (rc = setup_rules(n)) < 0 || (rc = load_ports(n)) < 0)
    goto cleanup;
  conf = conf_text(n);
  if (conf == NULL) {
    rc = fail(n, VMH_ENOMEM, "out of memory");
    goto cleanup;
  }
  old = read_file(n->conf_path, NULL);
  if (old == NULL || strcmp(old, conf) != 0)
    if ((rc = write_atomic(n, n->conf_path, conf)) < 0)
      goto cleanup;
  pthread_mutex_lock(&n->lock);
  /* A dnsmasq that outlived its bridge holds sockets of the old one. */
  rc = dnsmasq_ensure(n, created || old == NULL || strcmp(old, conf) != 0);
  pthread_mutex_unlock(&n->lock);
  if (rc < 0)
    goto cleanup;
  if ((rc = pthread_create(&n->thread, NULL, supervisor, n)) != 0) {
    rc = fail(n, VMH_EIO, "cannot start the dnsmasq supervisor: %s",
              strerror(rc));
    goto cleanup;
  }
  n->thread_started = 1;
done:
  *ret_handle = n;
  n = NULL;
  rc = 0;
cleanup:
  if (sk)
    nl_socket_free(sk);
  free(conf);
  free(old);
  nat_free(n);
  return rc;
}

/* Leaves bridge, rules and dnsmasq running: see the top of the file. */
static void nat_close(void *handle) {
  nat_free(handle);
}

static int link_state(struct nat *n, uint32_t *mtu, uint32_t *up) {
  struct nl_sock *sk = nl_open(n);
  struct rtnl_link *link = NULL;
  int err;

  *mtu = 0;
  *up = 0;
  if (sk == NULL)
    return VMH_EIO;
  err = rtnl_link_get_kernel(sk, 0, n->bridge, &link);
  nl_socket_free(sk);
  if (err < 0)
    return fail(n, VMH_EIO, "bridge %s is gone: %s", n->bridge,
                nl_geterror(err));
  *mtu = rtnl_link_get_mtu(link);
  *up = (rtnl_link_get_flags(link) & IFF_UP) != 0;
  rtnl_link_put(link);
  return 0;
}

static int nat_health(void *handle, uint32_t flags) {
  struct nat *n = handle;
  uint32_t mtu, up;
  int rc, alive;

  (void)flags;
  if (n->absent)
    return 0;
  if ((rc = link_state(n, &mtu, &up)) < 0)
    return rc;
  if (!up)
    return fail(n, VMH_EIO, "bridge %s is down", n->bridge);
  pthread_mutex_lock(&n->lock);
  alive = dnsmasq_match(n, n->dnsmasq) == 1;
  pthread_mutex_unlock(&n->lock);
  if (!alive)
    return fail(n, VMH_EIO, "dnsmasq is not running (being restarted)");
  return 0;
}

static int nat_info(void *handle, vmh_network_info_fn fn, void *opaque,
                    uint32_t flags) {
  struct nat *n = handle;
  struct vmh_network_info info = {.struct_size = sizeof info};

  (void)flags;
  if (fn == NULL)
    return fail(n, VMH_EINVAL, "info: no visitor");
  info.bridge = n->bridge;
  info.cidr = n->cidr;
  info.gateway = n->gateway;
  info.n_ports = (uint32_t)n->ports.n;
  if (!n->absent && link_state(n, &info.mtu, &info.up) < 0)
    info.up = 0;
  return fn(opaque, &info);
}

static void binding_of(struct nat *n, const struct net_port *p,
                       struct vmh_nic_binding *b) {
  memset(b, 0, sizeof *b);
  b->struct_size = sizeof *b;
  b->type = VMH_BINDING_BRIDGE;
  b->bridge = n->bridge;
  b->mac = p->mac;
}

/* 24 random bits for a MAC; errno of a failed getrandom kept in *opaque. */
static uint32_t random_mac_bits(void *opaque) {
  struct nat *n = opaque;
  unsigned char r[3] = {0, 0, 0};
  if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
    n->random_errno = errno;
  return (uint32_t)r[0] << 16 | (uint32_t)r[1] << 8 | r[2];
}

/* A MAC of a reservation in the config. */
static int mac_reserved(void *opaque, const char *mac) {
  struct nat *n = opaque;
  for (size_t i = 0; i < n->n_res; i++)
    if (strcmp(n->res[i].mac, mac) == 0)
      return 1;
  return 0;
}

/* 52:54:00 (QEMU's prefix) and 24 random bits nobody here holds. */
static int new_mac(struct nat *n, char out[MAC_LEN + 1]) {
  n->random_errno = 0;
  int r =
      net_ports_new_mac(&n->ports, random_mac_bits, mac_reserved, n, 1000, out);
  if (n->random_errno)
    return fail(n, VMH_EIO, "getrandom: %s", strerror(n->random_errno));
  if (r < 0)
    return fail(n, VMH_ENOSPC, "no free MAC found");
  return 0;
}

static int nat_port_bind(void *handle, const struct vmh_port_request *req,
                         vmh_nic_binding_fn fn, void *opaque, uint32_t flags) {
  struct nat *n = handle;
  struct vmh_nic_binding b;
  struct net_port *p = NULL;
  int rc;

  (void)flags;
  if (req == NULL || !valid_field(req->vm_id) || !valid_field(req->nic_name))
    return fail(n, VMH_EINVAL, "port_bind: bad VM id or NIC name");
  if (n->absent)
    return fail(n, VMH_ESTATE,
                "network %s is configured ensure: absent; it binds no port",
                n->name);
  if (req->vlan != 0)
    return fail(n, VMH_ENOTSUP,
                "NIC %s: network %s is a NAT network; it has no VLANs",
                req->nic_name, n->name);
  if (net_ports_find(&n->ports, req->vm_id, req->nic_name, NULL))
    return fail(n, VMH_EEXIST, "network %s already has a port for VM %s NIC %s",
                n->name, req->vm_id, req->nic_name);
  p = calloc(1, sizeof *p);
  if (p == NULL)
    return fail(n, VMH_ENOMEM, "out of memory");
  if (req->mac != NULL) {
    if (net_parse_mac(req->mac, p->mac) < 0) {
      rc = fail(n, VMH_EINVAL,
                "NIC %s: MAC '%s' is not a unicast MAC such as "
                "52:54:00:12:34:56",
                req->nic_name, req->mac);
      goto fail;
    }
    if (net_ports_find_mac(&n->ports, p->mac)) {
      rc = fail(n, VMH_EEXIST, "MAC %s is already bound on network %s", p->mac,
                n->name);
      goto fail;
    }
  } else if ((rc = new_mac(n, p->mac)) < 0) {
    goto fail;
  }
  if ((p->vm_id = strdup(req->vm_id)) == NULL ||
      (p->nic_name = strdup(req->nic_name)) == NULL) {
    rc = fail(n, VMH_ENOMEM, "out of memory");
    goto fail;
  }
  if (ptrvec_push(&n->ports, p) < 0) {
    rc = fail(n, VMH_ENOMEM, "out of memory");
    goto fail;
  }
  if ((rc = save_ports(n)) < 0) {
    n->ports.n--;
    goto fail;
  }
  binding_of(n, p, &b);
  rc = fn ? fn(opaque, &b) : 0;
  if (rc < 0) { /* the caller refused it: nothing of the port remains */
    n->ports.n--;
    save_ports(n);
    goto fail;
  }
  return 0;
fail:
  free_port(p);
  return rc;
}

static int nat_port_unbind(void *handle, const char *vm_id,
                           const char *nic_name, uint32_t flags) {
  struct nat *n = handle;
  struct net_port *p;
  size_t i;
  int rc;

  (void)flags;
  if (vm_id == NULL || nic_name == NULL ||
      (p = net_ports_find(&n->ports, vm_id, nic_name, &i)) == NULL)
    return fail(n, VMH_ENOENT, "network %s has no port for VM %s NIC %s",
                n->name, vm_id ? vm_id : "?", nic_name ? nic_name : "?");
  ptrvec_remove(&n->ports, i);
  if ((rc = save_ports(n)) < 0) {
    /* Put it back where it was (no allocation: the array keeps its size):
     * memory and file agree. */
    ptrvec_insert(&n->ports, i, p);
    return rc;
  }
  free_port(p);
  return 0;
}

static int nat_port_list(void *handle, vmh_port_fn fn, void *opaque,
                         uint32_t flags) {
  struct nat *n = handle;
  struct vmh_nic_binding b;
  int rc;

  (void)flags;
  for (size_t i = 0; fn && i < n->ports.n; i++) {
    binding_of(n, net_port_at(&n->ports, i), &b);
    if ((rc = fn(opaque, net_port_at(&n->ports, i)->vm_id,
                 net_port_at(&n->ports, i)->nic_name, &b)) != 0)
      return rc;
  }
  return 0;
}

/* dnsmasq's lease file: "EXPIRY MAC IP HOSTNAME CLIENT-ID" per line. */
static int nat_port_addresses(void *handle, const char *vm_id,
                              const char *nic_name, vmh_address_fn fn,
                              void *opaque, uint32_t flags) {
  struct nat *n = handle;
  struct net_port *p;
  char *buf, *line, *save = NULL;
  int rc = 0;

  (void)flags;
  if (vm_id == NULL || nic_name == NULL ||
      (p = net_ports_find(&n->ports, vm_id, nic_name, NULL)) == NULL)
    return fail(n, VMH_ENOENT, "network %s has no port for VM %s NIC %s",
                n->name, vm_id ? vm_id : "?", nic_name ? nic_name : "?");
  if (n->absent || (buf = read_file(n->lease_path, NULL)) == NULL)
    return 0; /* no lease file yet: no address yet */
  for (line = strtok_r(buf, "\n", &save); line && rc == 0;
       line = strtok_r(NULL, "\n", &save)) {
    char mac[MAC_LEN + 1], lmac[32], ip[64];
    long long expiry;
    uint32_t v;
    if (sscanf(line, "%lld %31s %63s", &expiry, lmac, ip) != 3 ||
        net_parse_mac(lmac, mac) < 0 || strcmp(mac, p->mac) != 0 ||
        parse_ip(ip, &v) < 0)
      continue;
    /* 0 means an infinite lease. */
    if (expiry != 0 && expiry < (long long)time(NULL))
      continue;
    rc = fn ? fn(opaque, ip) : 0;
  }
  free(buf);
  return rc;
}

static struct vmh_network_ops ops = {
    .open = nat_open,
    .close = nat_close,
    .health = nat_health,
    .info = nat_info,
    .port_bind = nat_port_bind,
    .port_unbind = nat_port_unbind,
    .port_list = nat_port_list,
    .port_addresses = nat_port_addresses,
};

static struct vmh_plugin plugin = {
    .kind = VMH_KIND_NETWORK,
    .name = "nat",
    .version = VMH_PACKAGE_VERSION,
    .description = "NAT network: bridge, nftables masquerade, dnsmasq DHCP/DNS",
    .network = &ops,
};

VMH_PLUGIN_REGISTER(plugin)
