/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* storage-iscsi — the LUNs of iSCSI targets as a storage pool.
 *
 * The storage administrator provisions LUNs on the array; this pool
 * discovers them (SendTargets on every portal, then REPORT LUNS, INQUIRY
 * and READ CAPACITY on every target: iscsi-scan.c), names each after its
 * device identifier, and hands a hypervisor an iSCSI network source.  It
 * makes and deletes nothing on the array.  All protocol work goes through
 * libiscsi: no iscsiadm, no kernel initiator, no local block device.
 *
 * The table of volumes is refreshed when it is older than
 * refresh_interval (by the call that finds it stale, and by the instance's
 * own thread, which also finds LUNs that vanished while a VM uses them).
 * A volume is "used" from the vol_source that hands it to a VM until the
 * core's vol_unmap when the VM stops using it (delete, detach, a create
 * rolled back); with wipe_on_release it is then zeroed by the instance's
 * thread and offered again only when that finished.  Used and wiping
 * volumes are kept in <state_dir>/claims across restarts, written through
 * atomicfile. */
#include <config.h>

#define VMH_THREAD_MODEL VMH_THREAD_SERIALIZE_INSTANCE
#include <vmhost/vmhost-plugin.h>

#include "atomicfile.h"
#include "cleanup.h"
#include "iscsi-scan.h"
#include "url.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ERRLEN 1024
#define SECRET_MAX 256
#define DEFAULT_PORT "3260"
#define IQN_PREFIX "iqn.2024-01.org.vmhost:"
/* Retry of a failed wipe (seconds), and the most a refresh is put off
 * by failures (a portal down is asked again at most this often). */
#define RETRY_S 2

static const struct vmh_host *host;

/* CHAP for the targets that match (iqn NULL: every target). */
struct auth {
  const char *iqn;
  const char *user; /* NULL: no CHAP */
  char secret[SECRET_MAX];
};

enum use { FREE = 0, USED = 1, WIPING = 2 };

struct vol {
  char name[VMH_NAME_MAX + 1];
  char *portal; /* owned: the configured portal it was found on */
  char *iqn;    /* owned */
  uint32_t lun;
  uint64_t size;
  uint32_t block_size;
  enum use use;
  bool present; /* in the last scan of its target (or not yet scanned) */
  bool scanned; /* its target answered in this refresh (merge only) */
};

struct pool {
  const struct vmh_instance *inst;
  const char *name;
  const char **portals; /* "host:port", normalised; owned array */
  uint32_t n_portals;
  const char **targets; /* owned array of borrowed IQNs; NULL: all */
  uint32_t n_targets;
  const char *initiator;
  struct auth *auths; /* [0]: the default (iqn NULL), then per target */
  uint32_t n_auths;
  int64_t timeout;
  int64_t refresh_interval;
  int wipe;
  char *claims_path; /* NULL in check-only mode */

  pthread_mutex_t lock; /* vols, status, the thread's wake-ups */
  pthread_cond_t wake;
  struct vol *vols;
  size_t n_vols;
  struct timespec refreshed; /* last refresh that reached a portal */
  bool fresh_once;           /* refreshed at least once */
  char status[ERRLEN];       /* "" or what is wrong (health, pool info) */
  bool all_down;             /* no portal answered the last refresh */
  bool stop;
  pthread_t thread;
  bool thread_started;
  /* One refresh at a time: a call that finds the table stale waits for a
   * refresh the thread has begun rather than starting its own. */
  pthread_mutex_t refresh_lock;
};

/* ---- Helpers ------------------------------------------------------------- */

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double ts_s(const struct timespec *t) {
  return (double)t->tv_sec + (double)t->tv_nsec / 1e9;
}

static struct vol *find_vol(struct pool *p, const char *name) {
  for (size_t i = 0; i < p->n_vols; i++)
    if (strcmp(p->vols[i].name, name) == 0)
      return &p->vols[i];
  return NULL;
}

static void vol_clear(struct vol *v) {
  free(v->portal);
  free(v->iqn);
  memset(v, 0, sizeof *v);
}

static void vol_remove(struct pool *p, struct vol *v) {
  size_t i = (size_t)(v - p->vols);
  vol_clear(v);
  memmove(v, v + 1, (p->n_vols - i - 1) * sizeof *v);
  p->n_vols--;
}

/* Appends a zeroed volume named `name`; NULL when out of memory. */
static struct vol *vol_add(struct pool *p, const char *name) {
  struct vol *v = realloc(p->vols, (p->n_vols + 1) * sizeof *v);
  if (v == NULL)
    return NULL;
  p->vols = v;
  v = &p->vols[p->n_vols++];
  memset(v, 0, sizeof *v);
  snprintf(v->name, sizeof v->name, "%s", name);
  return v;
}

static const struct auth *auth_for(const struct pool *p, const char *iqn) {
  for (uint32_t i = 1; i < p->n_auths; i++)
    if (strcmp(p->auths[i].iqn, iqn) == 0)
      return &p->auths[i];
  return &p->auths[0];
}

static bool target_wanted(const struct pool *p, const char *iqn) {
  if (p->targets == NULL)
    return true;
  for (uint32_t i = 0; i < p->n_targets; i++)
    if (strcmp(p->targets[i], iqn) == 0)
      return true;
  return false;
}

static void plugin_event(struct pool *p, const char *reason, const char *obj,
                         const char *msg) {
  struct vmh_event ev = {.struct_size = sizeof ev,
                         .type = VMH_EVENT_PLUGIN,
                         .reason = reason,
                         .object = obj,
                         .message = msg};
  host->emit(p->inst, &ev);
}

/* ---- Claims: used and wiping volumes, kept across restarts ---------------
 *
 * One line per volume: "used|wiping NAME SIZE BLOCK LUN PORTAL IQN".  The
 * target's coordinates are kept so that a volume whose target is down at
 * start is still known (and still refused to a second VM). */

static int claims_save(struct pool *p) {
  _cleanup_free_ char *buf = NULL;
  size_t len = 0;
  FILE *f;
  int rc = 0;

  if (p->claims_path == NULL)
    return 0;
  if ((f = open_memstream(&buf, &len)) == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  for (size_t i = 0; i < p->n_vols; i++) {
    const struct vol *v = &p->vols[i];
    if (v->use != FREE)
      fprintf(f, "%s %s %" PRIu64 " %" PRIu32 " %" PRIu32 " %s %s\n",
              v->use == USED ? "used" : "wiping", v->name, v->size,
              v->block_size, v->lun, v->portal, v->iqn);
  }
  if (fclose(f) != 0)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  if (atomic_write(p->claims_path, buf, len, 0600) < 0)
    rc = vmh_fail(host, VMH_EIO, "pool %s: cannot write %s: %s", p->name,
                  p->claims_path, strerror(errno));
  return rc;
}

static int claims_load(struct pool *p) {
  _cleanup_fclose_ FILE *f = fopen(p->claims_path, "re");
  char use[16], name[VMH_NAME_MAX + 1], portal[512], iqn[512];
  uint64_t size;
  uint32_t block, lun;
  int n;

  if (f == NULL)
    return errno == ENOENT
               ? 0
               : vmh_fail(host, VMH_EIO, "pool %s: cannot read %s: %s", p->name,
                          p->claims_path, strerror(errno));
  while ((n = fscanf(
              f, "%15s %63s %" SCNu64 " %" SCNu32 " %" SCNu32 " %511s %511s",
              use, name, &size, &block, &lun, portal, iqn)) == 7) {
    struct vol *v;
    if (!vmh_name_valid(name) || find_vol(p, name))
      continue;
    if ((v = vol_add(p, name)) == NULL ||
        (v->portal = strdup(portal)) == NULL || (v->iqn = strdup(iqn)) == NULL)
      return vmh_fail(host, VMH_ENOMEM, "out of memory");
    v->size = size;
    v->block_size = block;
    v->lun = lun;
    v->use = strcmp(use, "wiping") == 0 ? WIPING : USED;
    v->present = true;
  }
  if (n != EOF)
    host->log(p->inst, VMH_LOG_WARN, "%s: ignored a malformed line",
              p->claims_path);
  return 0;
}

/* ---- Refresh: scan every portal, merge into the table ---------------------
 */

/* What one refresh found, before it is merged. */
struct scan {
  struct pool *p;
  const char *portal; /* the portal being scanned */
  const char *iqn;    /* the target being scanned */
  struct vol *found;
  size_t n_found;
  const char **done_iqns; /* targets scanned (through any portal) */
  size_t n_done;
  char **failed; /* "portal iqn" of targets that refused or broke */
  size_t n_failed;
  uint32_t n_skipped;
  uint32_t portals_up;
  char err[ERRLEN]; /* every failure, "; "-separated (cut when long) */
  int oom;
};

static void scan_free(struct scan *sc) {
  for (size_t i = 0; i < sc->n_found; i++)
    vol_clear(&sc->found[i]);
  free(sc->found);
  for (size_t i = 0; i < sc->n_done; i++)
    free((char *)sc->done_iqns[i]);
  free(sc->done_iqns);
  for (size_t i = 0; i < sc->n_failed; i++)
    free(sc->failed[i]);
  free(sc->failed);
}

static int push_str(char ***arr, size_t *n, const char *s) {
  char **a = realloc(*arr, (*n + 1) * sizeof *a);
  if (a == NULL)
    return -1;
  *arr = a;
  if ((a[*n] = strdup(s)) == NULL)
    return -1;
  (*n)++;
  return 0;
}

static void note_failure(struct scan *sc, const char *what, const char *err) {
  size_t n = strlen(sc->err);

  host->log(sc->p->inst, VMH_LOG_WARN, "%s", err);
  snprintf(sc->err + n, sizeof sc->err - n, "%s%s", n ? "; " : "", err);
  if (what && push_str(&sc->failed, &sc->n_failed, what) < 0)
    sc->oom = 1;
}

static int found_lun(void *opaque, const struct scan_lun *l) {
  struct scan *sc = opaque;
  struct vol *v;

  for (size_t i = 0; i < sc->n_found; i++)
    if (strcmp(sc->found[i].name, l->name) == 0) {
      /* One LU seen twice (two LUN numbers, or a second path): the first
       * sighting names it; say so, since it may be a misconfiguration. */
      host->log(sc->p->inst, VMH_LOG_DEBUG,
                "%s: LUN %" PRIu32 " of %s is the same unit as LUN %" PRIu32
                " of %s",
                l->name, l->lun, sc->iqn, sc->found[i].lun, sc->found[i].iqn);
      return 0;
    }
  v = realloc(sc->found, (sc->n_found + 1) * sizeof *v);
  if (v == NULL)
    return VMH_ENOMEM;
  sc->found = v;
  v = &sc->found[sc->n_found];
  memset(v, 0, sizeof *v);
  snprintf(v->name, sizeof v->name, "%s", l->name);
  v->lun = l->lun;
  v->size = l->size;
  v->block_size = l->block_size;
  v->present = true;
  if ((v->portal = strdup(sc->portal)) == NULL ||
      (v->iqn = strdup(sc->iqn)) == NULL) {
    vol_clear(v);
    return VMH_ENOMEM;
  }
  sc->n_found++;
  host->log(sc->p->inst, VMH_LOG_DEBUG,
            "%s: %s LUN %" PRIu32 " on %s, %" PRIu64
            " bytes, %s %s serial '%s'",
            l->name, sc->iqn, l->lun, sc->portal, l->size, l->vendor,
            l->product, l->serial);
  return 0;
}

/* Scans one target found on the portal being scanned. */
static int scan_one_target(void *opaque, const char *iqn) {
  struct scan *sc = opaque;
  struct pool *p = sc->p;
  const struct auth *a;
  struct iscsi_context *s = NULL;
  struct scan_auth sa;
  char err[ERRLEN], what[1100];
  int rc;

  if (!target_wanted(p, iqn))
    return 0;
  for (size_t i = 0; i < sc->n_done; i++)
    if (strcmp(sc->done_iqns[i], iqn) == 0)
      return 0; /* already scanned through another portal */
  a = auth_for(p, iqn);
  sa = (struct scan_auth){a->user, a->secret};
  snprintf(what, sizeof what, "%s %s", sc->portal, iqn);
  rc = scan_open(p->initiator, sc->portal, iqn, &sa, (int)p->timeout, &s, err,
                 sizeof err);
  if (rc == 0) {
    sc->iqn = iqn;
    err[0] = '\0';
    rc = scan_luns(s, sc->portal, iqn, found_lun, sc, &sc->n_skipped, err,
                   sizeof err);
    scan_close(s);
  }
  if (rc == VMH_ENOMEM)
    return rc;
  if (rc < 0) {
    /* A target that refuses us hides nothing else. */
    note_failure(sc, what, err);
    return 0;
  }
  if (push_str((char ***)&sc->done_iqns, &sc->n_done, iqn) < 0)
    return VMH_ENOMEM;
  return 0;
}

static int scan_portal(struct scan *sc, const char *portal) {
  struct pool *p = sc->p;
  const struct auth *a = &p->auths[0];
  struct scan_auth sa = {a->user, a->secret};
  struct iscsi_context *s = NULL;
  char err[ERRLEN];
  int rc;

  sc->portal = portal;
  rc = scan_open(p->initiator, portal, NULL, &sa, (int)p->timeout, &s, err,
                 sizeof err);
  if (rc == 0) {
    sc->portals_up++;
    rc = scan_targets(s, portal, scan_one_target, sc, err, sizeof err);
    scan_close(s);
  }
  if (rc == VMH_ENOMEM)
    return rc;
  if (rc < 0)
    note_failure(sc, NULL, err);
  return 0;
}

/* Whether v's target answered this refresh through v's portal or any. */
static bool answered(const struct scan *sc, const struct vol *v) {
  char what[1100];

  snprintf(what, sizeof what, "%s %s", v->portal, v->iqn);
  for (size_t i = 0; i < sc->n_failed; i++)
    if (strcmp(sc->failed[i], what) == 0)
      return false;
  for (size_t i = 0; i < sc->n_done; i++)
    if (strcmp(sc->done_iqns[i], v->iqn) == 0)
      return true;
  return false;
}

/* Merges a scan into the table (p->lock held).  A free volume that is
 * gone from a target that answered is dropped; a used one is kept and
 * reported, never dropped; volumes of targets that did not answer stay as
 * they were. */
static void merge(struct pool *p, struct scan *sc) {
  char msg[ERRLEN];

  for (size_t i = 0; i < p->n_vols;) {
    struct vol *v = &p->vols[i];
    bool seen = false;
    for (size_t k = 0; k < sc->n_found && !seen; k++)
      seen = strcmp(sc->found[k].name, v->name) == 0;
    if (seen || !answered(sc, v)) {
      i++;
      continue;
    }
    if (v->use == FREE) {
      host->log(p->inst, VMH_LOG_INFO, "%s: LUN %" PRIu32 " of %s is gone",
                v->name, v->lun, v->iqn);
      vol_remove(p, v);
      continue;
    }
    if (v->present) {
      snprintf(msg, sizeof msg,
               "volume %s (LUN %" PRIu32
               " of %s), %s, vanished from the "
               "target",
               v->name, v->lun, v->iqn,
               v->use == USED ? "in use by a VM" : "being wiped");
      host->log(p->inst, VMH_LOG_ERROR, "%s", msg);
      plugin_event(p, VMH_REASON_VOLUME_VANISHED, v->name, msg);
      v->present = false;
    }
    i++;
  }
  for (size_t k = 0; k < sc->n_found; k++) {
    struct vol *f = &sc->found[k], *v = find_vol(p, f->name);
    if (v == NULL) {
      if ((v = vol_add(p, f->name)) == NULL) {
        sc->oom = 1;
        return;
      }
      host->log(p->inst, VMH_LOG_INFO,
                "%s: LUN %" PRIu32 " of %s on %s, %" PRIu64 " bytes", f->name,
                f->lun, f->iqn, f->portal, f->size);
    } else if (!v->present) {
      snprintf(msg, sizeof msg, "volume %s (LUN %" PRIu32 " of %s) is back",
               f->name, f->lun, f->iqn);
      host->log(p->inst, VMH_LOG_WARN, "%s", msg);
      plugin_event(p, VMH_REASON_VOLUME_BACK, f->name, msg);
    }
    enum use use = v->use;
    free(v->portal);
    free(v->iqn);
    *v = *f;
    v->use = use;
    memset(f, 0, sizeof *f);
  }
}

/* The health message after a refresh (p->lock held). */
static void set_status(struct pool *p, const struct scan *sc) {
  size_t gone = 0;

  for (size_t i = 0; i < p->n_vols; i++)
    gone += !p->vols[i].present;
  snprintf(p->status, sizeof p->status, "%s", sc->err);
  if (gone) {
    size_t n = strlen(p->status);
    snprintf(p->status + n, sizeof p->status - n,
             "%s%zu volume(s) in use vanished from their targets",
             n ? "; " : "", gone);
  }
  host->gauge_set(p->inst, "luns", (int64_t)p->n_vols);
  host->gauge_set(p->inst, "luns_vanished", (int64_t)gone);
  host->gauge_set(p->inst, "targets_failed", (int64_t)sc->n_failed);
  host->gauge_set(p->inst, "portals_down",
                  (int64_t)(p->n_portals - sc->portals_up));
}

/* Scans every portal and merges what answered.  VMH_EIO ("unavailable")
 * when no portal answered. */
static int refresh(struct pool *p) {
  struct scan sc = {.p = p};
  int rc = 0;

  for (uint32_t i = 0; i < p->n_portals && rc == 0; i++)
    rc = scan_portal(&sc, p->portals[i]);
  host->counter_add(p->inst, "refreshes", 1);
  if (sc.n_skipped)
    host->log(p->inst, VMH_LOG_WARN,
              "%" PRIu32
              " LUN(s) have no device identifier (VPD 0x83): "
              "without a stable name they are not offered",
              sc.n_skipped);
  pthread_mutex_lock(&p->lock);
  if (rc == 0 && sc.portals_up > 0) {
    merge(p, &sc);
    clock_gettime(CLOCK_MONOTONIC, &p->refreshed);
    p->fresh_once = true;
  }
  p->all_down = sc.portals_up == 0;
  set_status(p, &sc);
  if (rc == 0 && sc.oom)
    rc = vmh_fail(host, VMH_ENOMEM, "out of memory");
  else if (rc == 0 && p->all_down)
    rc = vmh_fail(host, VMH_EIO, "pool %s: unavailable: %s", p->name, sc.err);
  pthread_mutex_unlock(&p->lock);
  scan_free(&sc);
  return rc;
}

static bool stale(struct pool *p) {
  bool r;

  pthread_mutex_lock(&p->lock);
  r = !p->fresh_once || p->all_down ||
      now_s() - ts_s(&p->refreshed) >= (double)p->refresh_interval;
  pthread_mutex_unlock(&p->lock);
  return r;
}

/* Refreshes when the table is stale; 0 when it is fresh enough to answer
 * from. */
static int ensure_fresh(struct pool *p) {
  int rc = 0;

  if (!stale(p))
    return 0;
  pthread_mutex_lock(&p->refresh_lock);
  if (stale(p))
    rc = refresh(p);
  pthread_mutex_unlock(&p->refresh_lock);
  return rc;
}

/* ---- The instance's thread: periodic refresh, wipes ----------------------
 */

/* Zeroes one volume; 0 when done (the volume is free again). */
static int wipe_one(struct pool *p, const char *name) {
  struct iscsi_context *s = NULL;
  char err[ERRLEN], what[1100], *portal, *iqn;
  uint32_t lun, block;
  uint64_t size;
  struct vol *v;
  int rc;

  pthread_mutex_lock(&p->lock);
  v = find_vol(p, name);
  if (v == NULL || v->use != WIPING || !v->present) {
    pthread_mutex_unlock(&p->lock);
    return -1;
  }
  portal = strdup(v->portal);
  iqn = strdup(v->iqn);
  lun = v->lun;
  size = v->size;
  block = v->block_size;
  pthread_mutex_unlock(&p->lock);
  if (portal == NULL || iqn == NULL) {
    free(portal);
    free(iqn);
    return -1;
  }
  const struct auth *a = auth_for(p, iqn);
  struct scan_auth sa = {a->user, a->secret};
  snprintf(what, sizeof what, "volume %s (LUN %" PRIu32 " of %s)", name, lun,
           iqn);
  host->log(p->inst, VMH_LOG_INFO, "wiping %s, %" PRIu64 " bytes", what, size);
  rc = scan_open(p->initiator, portal, iqn, &sa, (int)p->timeout, &s, err,
                 sizeof err);
  if (rc == 0) {
    rc = scan_zero(s, what, lun, size, block, err, sizeof err);
    scan_close(s);
  }
  free(portal);
  free(iqn);
  if (rc < 0) {
    host->log(p->inst, VMH_LOG_WARN, "wipe of %s failed, will retry: %s", name,
              err);
    return rc;
  }
  pthread_mutex_lock(&p->lock);
  if ((v = find_vol(p, name)) != NULL && v->use == WIPING) {
    v->use = FREE;
    if (claims_save(p) < 0)
      host->log(p->inst, VMH_LOG_ERROR, "%s", "cannot save the claims");
  }
  pthread_mutex_unlock(&p->lock);
  host->counter_add(p->inst, "wipes", 1);
  host->log(p->inst, VMH_LOG_INFO, "wiped %s: offered again", name);
  return 0;
}

/* The name of a volume waiting for its wipe (p->lock held); false: none. */
static bool next_wipe(struct pool *p, char *name, size_t size) {
  for (size_t i = 0; i < p->n_vols; i++)
    if (p->vols[i].use == WIPING && p->vols[i].present) {
      snprintf(name, size, "%s", p->vols[i].name);
      return true;
    }
  return false;
}

static void *worker(void *arg) {
  struct pool *p = arg;
  char name[VMH_NAME_MAX + 1];
  bool failed = false;

  pthread_mutex_lock(&p->lock);
  while (!p->stop) {
    struct timespec until;
    double wait = failed ? RETRY_S : (double)p->refresh_interval;
    bool wipe = !failed && next_wipe(p, name, sizeof name);

    if (!wipe) {
      clock_gettime(CLOCK_MONOTONIC, &until);
      if (p->refresh_interval > 0 || failed) {
        until.tv_sec += (time_t)wait;
        pthread_cond_timedwait(&p->wake, &p->lock, &until);
      } else {
        pthread_cond_wait(&p->wake, &p->lock);
      }
      if (p->stop)
        break;
      failed = false;
      wipe = next_wipe(p, name, sizeof name);
    }
    pthread_mutex_unlock(&p->lock);
    if (wipe) {
      failed = wipe_one(p, name) < 0;
    } else if (p->refresh_interval > 0 && stale(p)) {
      pthread_mutex_lock(&p->refresh_lock);
      if (stale(p))
        refresh(p);
      pthread_mutex_unlock(&p->refresh_lock);
    }
    pthread_mutex_lock(&p->lock);
  }
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

/* ---- Config --------------------------------------------------------------
 */

/* "host:port" with the default port added; IPv6 hosts in brackets. */
static int portal_norm(struct pool *p, const struct vmh_config *node,
                       const char *in, const char **ret) {
  const char *colon, *close;
  char *out;

  if (in[0] == '[') {
    close = strchr(in, ']');
    if (close == NULL || close == in + 1 ||
        (close[1] != '\0' && close[1] != ':'))
      goto bad;
    colon = close[1] == ':' ? close + 1 : NULL;
  } else {
    colon = strchr(in, ':');
    if (colon && strchr(colon + 1, ':'))
      return vmh_fail(host, VMH_EINVAL,
                      "%s: portal '%s': write an IPv6 address in brackets, "
                      "[addr]:port",
                      host->config_where(node), in);
    if (colon == in || in[0] == '\0')
      goto bad;
  }
  if (colon) {
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || colon[1] == '\0' || port < 1 || port > 65535)
      goto bad;
    out = strdup(in);
  } else if (asprintf(&out, "%s:" DEFAULT_PORT, in) < 0) {
    out = NULL;
  }
  if (out == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  *ret = out;
  return 0;
bad:
  return vmh_fail(host, VMH_EINVAL,
                  "%s: portal '%s' is not host:port (port 1..65535; IPv6 as "
                  "[addr]:port)",
                  host->config_where(node), in);
}

static int read_list(struct pool *p, const struct vmh_config *cfg,
                     const char *key, const char ***ret, uint32_t *n,
                     uint32_t flags, bool portals) {
  const struct vmh_config *list, *el;
  const char *s;
  int rc;

  if ((rc = host->config_list(cfg, key, &list, n, flags)) < 0)
    return rc;
  if (list && *n == 0)
    return vmh_fail(host, VMH_EINVAL, "%s: `%s` is empty",
                    host->config_key_where(cfg, key), key);
  if (list == NULL)
    return 0;
  if ((*ret = calloc(*n, sizeof **ret)) == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  for (uint32_t i = 0; i < *n; i++) {
    if ((rc = host->config_at(list, i, &el)) < 0 ||
        (rc = host->config_string(el, NULL, NULL, &s, VMH_CFG_REQUIRED)) < 0)
      return rc;
    if (portals) {
      if ((rc = portal_norm(p, el, s, &(*ret)[i])) < 0)
        return rc;
    } else {
      (*ret)[i] = s;
    }
  }
  return 0;
}

/* The CHAP secret in `path`: a regular file nobody but its owner may read
 * (the secret is never in the YAML); trailing newlines dropped. */
static int read_secret(struct pool *p, const struct vmh_config *cfg,
                       const char *path, char *out, size_t size) {
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  const char *where = host->config_key_where(cfg, "password_file");
  struct stat st;
  ssize_t n;

  if (fd < 0 || fstat(fd, &st) < 0)
    return vmh_fail(host, VMH_EINVAL, "%s: password_file %s: %s", where, path,
                    strerror(errno));
  if (!S_ISREG(st.st_mode))
    return vmh_fail(host, VMH_EINVAL,
                    "%s: password_file %s is not a regular file", where, path);
  if (st.st_mode & (S_IRWXG | S_IRWXO))
    return vmh_fail(host, VMH_EPERM,
                    "%s: password_file %s is open to group or others (mode "
                    "%04o): chmod 600 it",
                    where, path, (unsigned)(st.st_mode & 07777));
  n = read(fd, out, size);
  if (n < 0)
    return vmh_fail(host, VMH_EIO, "%s: password_file %s: %s", where, path,
                    strerror(errno));
  if ((size_t)n == size)
    return vmh_fail(host, VMH_EINVAL,
                    "%s: password_file %s: the secret is longer than %zu "
                    "bytes",
                    where, path, size - 1);
  while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
    n--;
  out[n] = '\0';
  if (n == 0)
    return vmh_fail(host, VMH_EINVAL, "%s: password_file %s is empty", where,
                    path);
  (void)p;
  return 0;
}

/* username + password_file of one map into *a (both or neither). */
static int read_auth(struct pool *p, const struct vmh_config *cfg,
                     struct auth *a) {
  const char *file;
  int rc;

  if ((rc = host->config_string(cfg, "username", NULL, &a->user, 0)) < 0 ||
      (rc = host->config_path(cfg, "password_file", NULL, &file, 0)) < 0)
    return rc;
  if ((a->user == NULL) != (file == NULL))
    return vmh_fail(
        host, VMH_EINVAL, "%s: CHAP needs both `username` and `password_file`",
        host->config_key_where(cfg, a->user ? "username" : "password_file"));
  return file ? read_secret(p, cfg, file, a->secret, sizeof a->secret) : 0;
}

static int read_target_auth(struct pool *p, const struct vmh_config *cfg) {
  const struct vmh_config *list, *el;
  uint32_t n;
  int rc;

  if ((rc = host->config_list(cfg, "target_auth", &list, &n, 0)) < 0)
    return rc;
  if ((p->auths = calloc(n + 1, sizeof *p->auths)) == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  p->n_auths = n + 1;
  if ((rc = read_auth(p, cfg, &p->auths[0])) < 0)
    return rc;
  for (uint32_t i = 0; i < n; i++) {
    struct auth *a = &p->auths[i + 1];
    if ((rc = host->config_at(list, i, &el)) < 0 ||
        (rc = host->config_string(el, "iqn", NULL, &a->iqn, VMH_CFG_REQUIRED)) <
            0 ||
        (rc = read_auth(p, el, a)) < 0)
      return rc;
    if (a->user == NULL)
      return vmh_fail(host, VMH_EINVAL,
                      "%s: target_auth for %s names no `username` and "
                      "`password_file`",
                      host->config_where(el), a->iqn);
  }
  return 0;
}

/* The default initiator name: stable for the host (its name), within what
 * an IQN may hold (lower case letters, digits, '.', '-'). */
static int default_initiator(struct pool *p) {
  char hn[256], *out;
  size_t n, i;

  if (gethostname(hn, sizeof hn) < 0)
    snprintf(hn, sizeof hn, "localhost");
  hn[sizeof hn - 1] = '\0';
  n = strlen(IQN_PREFIX);
  if ((out = malloc(n + strlen(hn) + 1)) == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  memcpy(out, IQN_PREFIX, n);
  for (i = 0; hn[i]; i++) {
    char c = hn[i];
    if (c >= 'A' && c <= 'Z')
      c = (char)(c - 'A' + 'a');
    out[n + i] = ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-')
                     ? c
                     : '-';
  }
  out[n + i] = '\0';
  p->initiator = out;
  return 0;
}

static int read_config(struct pool *p, const struct vmh_config *cfg) {
  const char *init;
  int rc;

  if ((rc = read_list(p, cfg, "portals", &p->portals, &p->n_portals,
                      VMH_CFG_REQUIRED, true)) < 0 ||
      (rc = read_list(p, cfg, "targets", &p->targets, &p->n_targets, 0,
                      false)) < 0 ||
      (rc = host->config_string(cfg, "initiator_name", NULL, &init, 0)) < 0 ||
      (rc = read_target_auth(p, cfg)) < 0 ||
      (rc = host->config_int(cfg, "timeout", 1, 3600, 10, &p->timeout, 0)) <
          0 ||
      (rc = host->config_int(cfg, "refresh_interval", 0, 86400, 60,
                             &p->refresh_interval, 0)) < 0 ||
      (rc = host->config_bool(cfg, "wipe_on_release", 0, &p->wipe, 0)) < 0)
    return rc;
  if (init == NULL)
    return default_initiator(p);
  if (strncmp(init, "iqn.", 4) != 0 && strncmp(init, "eui.", 4) != 0 &&
      strncmp(init, "naa.", 4) != 0)
    return vmh_fail(host, VMH_EINVAL,
                    "%s: initiator_name '%s' is not an iSCSI name (iqn.…, "
                    "eui.… or naa.…)",
                    host->config_key_where(cfg, "initiator_name"), init);
  if ((p->initiator = strdup(init)) == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  return 0;
}

/* ---- Operations ----------------------------------------------------------
 */

static void is_close(void *handle) {
  struct pool *p = handle;

  if (p->thread_started) {
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
  }
  for (size_t i = 0; i < p->n_vols; i++)
    vol_clear(&p->vols[i]);
  free(p->vols);
  for (uint32_t i = 0; p->portals && i < p->n_portals; i++)
    free((char *)p->portals[i]);
  free(p->portals);
  free(p->targets);
  if (p->auths)
    for (uint32_t i = 0; i < p->n_auths; i++)
      memset(p->auths[i].secret, 0, sizeof p->auths[i].secret);
  free(p->auths);
  free((char *)p->initiator);
  free(p->claims_path);
  pthread_mutex_destroy(&p->lock);
  pthread_mutex_destroy(&p->refresh_lock);
  pthread_cond_destroy(&p->wake);
  free(p);
}

static int is_open(const struct vmh_host *h, const struct vmh_instance *inst,
                   const struct vmh_config *config, void **ret_handle,
                   uint32_t flags) {
  struct pool *p;
  pthread_condattr_t ca;
  int rc;

  (void)h;
  if ((rc = VMH_CHECK_FLAGS(host, flags, VMH_OPEN_CHECK_ONLY)) < 0)
    return rc;
  if ((p = calloc(1, sizeof *p)) == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  p->inst = inst;
  p->name = host->instance_name(inst);
  pthread_mutex_init(&p->lock, NULL);
  pthread_mutex_init(&p->refresh_lock, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->wake, &ca);
  pthread_condattr_destroy(&ca);
  if ((rc = read_config(p, config)) < 0)
    goto fail;
  if (flags & VMH_OPEN_CHECK_ONLY) {
    *ret_handle = p;
    return 0;
  }
  if (asprintf(&p->claims_path, "%s/claims", host->state_dir(inst)) < 0) {
    p->claims_path = NULL;
    rc = vmh_fail(host, VMH_ENOMEM, "out of memory");
    goto fail;
  }
  if ((rc = claims_load(p)) < 0)
    goto fail;
  host->log(inst, VMH_LOG_INFO,
            "initiator %s, %" PRIu32
            " portal(s), first %s, %zu claimed "
            "volume(s)",
            p->initiator, p->n_portals, p->portals[0], p->n_vols);
  /* A portal down at start is not fatal: the pool answers "unavailable"
   * until it comes back. */
  if (refresh(p) < 0)
    host->log(inst, VMH_LOG_WARN, "%s", p->status);
  if (pthread_create(&p->thread, NULL, worker, p) != 0) {
    rc = vmh_fail(host, VMH_EINTERNAL, "cannot start the pool's thread");
    goto fail;
  }
  p->thread_started = true;
  *ret_handle = p;
  return 0;
fail:
  is_close(p);
  return rc;
}

static int is_health(void *handle, uint32_t flags) {
  struct pool *p = handle;
  int rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) < 0)
    return rc;
  pthread_mutex_lock(&p->lock);
  if (p->status[0])
    rc = vmh_fail(host, VMH_EIO, "pool %s: %s", p->name, p->status);
  pthread_mutex_unlock(&p->lock);
  return rc;
}

static int is_pool_info(void *handle, vmh_pool_info_fn fn, void *opaque,
                        uint32_t flags) {
  struct pool *p = handle;
  struct vmh_pool_info info = {.struct_size = sizeof info,
                               .default_format = VMH_FORMAT_RAW};
  char status[ERRLEN];
  int rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) < 0 || (rc = ensure_fresh(p)) < 0)
    return rc;
  pthread_mutex_lock(&p->lock);
  for (size_t i = 0; i < p->n_vols; i++) {
    const struct vol *v = &p->vols[i];
    info.capacity += v->size;
    if (v->use == USED)
      info.allocation += v->size;
    else if (v->use == FREE)
      info.available += v->size;
  }
  info.n_volumes = (uint32_t)p->n_vols;
  /* What is wrong: the targets that refused us, volumes that vanished. */
  snprintf(status, sizeof status, "%s", p->status);
  info.message = status[0] ? status : NULL;
  pthread_mutex_unlock(&p->lock);
  return fn(opaque, &info);
}

/* What a visitor is shown of one volume, copied under the lock. */
struct vol_view {
  char name[VMH_NAME_MAX + 1];
  uint64_t size;
  enum use use;
  char *location; /* owned: iscsi://portal/IQN/LUN */
};

/* Copies v into *view (p->lock held); -1 when out of memory. */
static int view_vol(const struct vol *v, struct vol_view *view) {
  _cleanup_free_ char *base = NULL, *path = NULL;

  snprintf(view->name, sizeof view->name, "%s", v->name);
  view->size = v->size;
  view->use = v->use;
  /* The portal is "host:port" or "[v6]:port" already, as a URL has it. */
  if (asprintf(&base, "iscsi://%s", v->portal) < 0) {
    base = NULL;
    return -1;
  }
  if (asprintf(&path, "/%s/%" PRIu32, v->iqn, v->lun) < 0) {
    path = NULL;
    return -1;
  }
  view->location = url_path(base, path);
  return view->location ? 0 : -1;
}

static int report(const struct vol_view *v, vmh_volume_info_fn fn,
                  void *opaque) {
  struct vmh_volume_info info = {
      .struct_size = sizeof info,
      .name = v->name,
      .capacity = v->size,
      /* A LUN is all the array's from our side: in use, all of it. */
      .allocation = v->use == FREE ? 0 : v->size,
      .format = VMH_FORMAT_RAW,
      .location = v->location,
  };
  return fn(opaque, &info);
}

static int is_vol_list(void *handle, vmh_volume_info_fn fn, void *opaque,
                       uint32_t flags) {
  struct pool *p = handle;
  _cleanup_free_ struct vol_view *views = NULL;
  size_t n;
  int rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) < 0 || (rc = ensure_fresh(p)) < 0)
    return rc;
  pthread_mutex_lock(&p->lock);
  n = p->n_vols;
  views = calloc(n ? n : 1, sizeof *views);
  for (size_t i = 0; views && i < n && rc == 0; i++)
    rc = view_vol(&p->vols[i], &views[i]);
  pthread_mutex_unlock(&p->lock);
  if (views == NULL || rc < 0)
    rc = vmh_fail(host, VMH_ENOMEM, "out of memory");
  for (size_t i = 0; i < n && rc == 0; i++)
    rc = report(&views[i], fn, opaque);
  for (size_t i = 0; views && i < n; i++)
    free(views[i].location);
  return rc;
}

/* Looks `name` up after a refresh if stale; copies it to *view (whose
 * location the caller frees). */
static int lookup(struct pool *p, const char *name, struct vol_view *view) {
  struct vol *v;
  int rc;

  if ((rc = vmh_check_name(host, "volume", name)) < 0 ||
      (rc = ensure_fresh(p)) < 0)
    return rc;
  pthread_mutex_lock(&p->lock);
  if ((v = find_vol(p, name)) == NULL) {
    rc = vmh_fail(host, VMH_ENOENT,
                  "pool %s has no LUN named %s (LUNs are named after their "
                  "device identifier; list the pool)",
                  p->name, name);
  } else if (view_vol(v, view) < 0) {
    rc = vmh_fail(host, VMH_ENOMEM, "out of memory");
  }
  pthread_mutex_unlock(&p->lock);
  return rc;
}

static int is_vol_get(void *handle, const char *name, vmh_volume_info_fn fn,
                      void *opaque, uint32_t flags) {
  struct vol_view view = {0};
  int rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) == 0 &&
      (rc = lookup(handle, name, &view)) == 0)
    rc = report(&view, fn, opaque);
  free(view.location);
  return rc;
}

static int is_vol_create(void *handle, const struct vmh_volume_spec *spec,
                         uint32_t flags) {
  struct pool *p = handle;
  int rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) < 0)
    return rc;
  return vmh_fail(host, VMH_ENOTSUP,
                  "pool %s: iSCSI LUNs are provisioned on the array, not by "
                  "vmhostd: have a LUN made on one of the pool's targets (it "
                  "shows at the next refresh) and give its volume name to "
                  "the disk, without a size",
                  p->name);
}

static int is_vol_delete(void *handle, const char *name, uint32_t flags) {
  struct pool *p = handle;
  int rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) < 0)
    return rc;
  return vmh_fail(host, VMH_ENOTSUP,
                  "pool %s: iSCSI LUNs are removed on the array, not by "
                  "vmhostd (%s stays until the array drops it)%s",
                  p->name, name,
                  p->wipe ? "; its data is wiped when a VM releases it" : "");
}

static int is_vol_source(void *handle, const char *name, vmh_disk_source_fn fn,
                         void *opaque, uint32_t flags) {
  struct pool *p = handle;
  struct vmh_disk_source src = {.struct_size = sizeof src,
                                .type = VMH_SOURCE_ISCSI,
                                .format = VMH_FORMAT_RAW};
  _cleanup_free_ char *portal = NULL, *iqn = NULL;
  const struct auth *a;
  struct vol *v;
  int rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, VMH_SOURCE_LOCAL)) < 0 ||
      (rc = vmh_check_name(host, "volume", name)) < 0)
    return rc;
  if (flags & VMH_SOURCE_LOCAL)
    return vmh_fail(host, VMH_ENOTSUP,
                    "pool %s: an iSCSI volume has no local path: the "
                    "hypervisor must open it over the network (QEMU's "
                    "libiscsi); this pool logs in to no kernel initiator",
                    p->name);
  if ((rc = ensure_fresh(p)) < 0)
    return rc;
  pthread_mutex_lock(&p->lock);
  v = find_vol(p, name);
  if (v == NULL)
    rc = vmh_fail(host, VMH_ENOENT, "pool %s has no LUN named %s", p->name,
                  name);
  else if (v->use == WIPING)
    rc = vmh_fail(host, VMH_EBUSY,
                  "pool %s: volume %s is being wiped after its last VM; it "
                  "is offered again when that finished",
                  p->name, name);
  else if (!v->present)
    rc = vmh_fail(host, VMH_EIO,
                  "pool %s: volume %s (LUN %" PRIu32
                  " of %s) vanished from "
                  "its target",
                  p->name, name, v->lun, v->iqn);
  else if ((portal = strdup(v->portal)) == NULL ||
           (iqn = strdup(v->iqn)) == NULL)
    rc = vmh_fail(host, VMH_ENOMEM, "out of memory");
  if (rc == 0) {
    src.lun = v->lun;
    if (v->use != USED) {
      v->use = USED;
      if ((rc = claims_save(p)) < 0)
        v->use = FREE;
    }
  }
  pthread_mutex_unlock(&p->lock);
  if (rc < 0)
    return rc;
  a = auth_for(p, iqn);
  src.portal = portal;
  src.iqn = iqn;
  src.auth_user = a->user;
  src.auth_secret = a->user ? a->secret : NULL;
  return fn(opaque, &src);
}

/* The core calls this whenever a VM stops using a volume (delete, detach,
 * a create rolled back): the volume is released, and wiped first with
 * wipe_on_release. */
static int is_vol_unmap(void *handle, const char *name, uint32_t flags) {
  struct pool *p = handle;
  bool released = false;
  struct vol *v;
  int rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) < 0 ||
      (rc = vmh_check_name(host, "volume", name)) < 0)
    return rc;
  pthread_mutex_lock(&p->lock);
  v = find_vol(p, name);
  if (v != NULL && v->use == USED) {
    v->use = p->wipe ? WIPING : FREE;
    if ((rc = claims_save(p)) < 0)
      v->use = USED;
    else
      released = true;
    if (released && p->wipe)
      pthread_cond_signal(&p->wake);
  }
  pthread_mutex_unlock(&p->lock);
  if (released)
    host->log(p->inst, VMH_LOG_INFO, "%s released%s", name,
              p->wipe ? ": wiping it" : "");
  return rc;
}

/* ---- Registration -------------------------------------------------------- */

static int is_load(const struct vmh_host *h) {
  host = h;
  return 0;
}

static struct vmh_storage_ops ops = {
    .open = is_open,
    .close = is_close,
    .health = is_health,
    .pool_info = is_pool_info,
    .vol_list = is_vol_list,
    .vol_get = is_vol_get,
    .vol_create = is_vol_create,
    .vol_delete = is_vol_delete,
    .vol_source = is_vol_source,
    .vol_unmap = is_vol_unmap,
};

static struct vmh_plugin plugin = {
    .kind = VMH_KIND_STORAGE,
    .name = "iscsi",
    .version = VMH_PACKAGE_VERSION,
    .description = "iSCSI LUNs over libiscsi: discovery, CHAP, wipe on release",
    .load = is_load,
    .storage = &ops,
};

VMH_PLUGIN_REGISTER(plugin)
