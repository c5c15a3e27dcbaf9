/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ovs-db — the OVSDB connection's thread and its job queue (ovs-db.h).
 *
 * OVS's headers need OVS's own config.h first, and it clashes with
 * vmhost's: this file and ovs-rows.c include only OVS's (they are built
 * apart, as libovsrows, with OVS's include directories). */
#include <ovs/config.h>

#include "ovs-db.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "openvswitch/poll-loop.h"
#include "openvswitch/vlog.h"
#include "ovsdb-idl.h"
#include "vswitch-idl.h"

#define MAX_TRIES 5 /* commits that raced another client, retried */

enum job_state { JOB_NEW, JOB_COMMITTING, JOB_APPLYING, JOB_DONE };

struct job {
  struct job *next;
  odb_build_fn build;
  void *arg;
  int wait_applied;
  long long deadline; /* ms, CLOCK_MONOTONIC */
  /* Owned by the IDL thread while queued or running. */
  enum job_state state;
  struct ovsdb_idl_txn *txn;
  int64_t cfg; /* next_cfg to wait for */
  int tries;
  /* Results, read by the caller once done is set. */
  int rc, committed, done;
  char err[ODB_ERR_LEN];
};

struct odb {
  const struct vmh_host *host;
  const struct vmh_instance *inst;
  char *remote;
  int64_t timeout_ms;
  struct ovsdb_idl *idl; /* the IDL thread's only */
  pthread_t thread;
  int thread_started;
  int wake[2]; /* a byte on wake[1] wakes the thread */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  /* Under mu: */
  struct job *queue, **tail;
  int stop;
  int connected; /* as of the thread's last loop */
  int ready;     /* the first copy of the database has arrived */
};

static long long now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void job_fail(struct job *j, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void job_fail(struct job *j, int rc, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(j->err, sizeof j->err, fmt, ap);
  va_end(ap);
  j->rc = rc;
  j->state = JOB_DONE;
}

static void wake(struct odb *db) {
  char c = 0;

  /* A full pipe already holds a wake-up. */
  if (write(db->wake[1], &c, 1) < 0 && errno != EAGAIN)
    db->host->log(db->inst, VMH_LOG_WARN, "cannot wake the OVSDB thread: %s",
                  strerror(errno));
}

static void drain(struct odb *db) {
  char buf[64];

  while (read(db->wake[0], buf, sizeof buf) > 0)
    ;
}

/* The IDL as this plugin uses it: only the tables and columns it reads or
 * writes are replicated (the replica of a big switch stays small). */
static void monitor(struct ovsdb_idl *idl) {
  static const struct ovsdb_idl_column *const cols[] = {
      &ovsrec_open_vswitch_col_bridges,
      &ovsrec_open_vswitch_col_next_cfg,
      &ovsrec_open_vswitch_col_cur_cfg,
      &ovsrec_bridge_col_name,
      &ovsrec_bridge_col_ports,
      &ovsrec_bridge_col_external_ids,
      &ovsrec_bridge_col_datapath_type,
      &ovsrec_bridge_col_fail_mode,
      &ovsrec_port_col_name,
      &ovsrec_port_col_interfaces,
      &ovsrec_port_col_tag,
      &ovsrec_port_col_trunks,
      &ovsrec_port_col_external_ids,
      &ovsrec_interface_col_name,
      &ovsrec_interface_col_type,
      &ovsrec_interface_col_external_ids,
      &ovsrec_interface_col_mtu_request,
  };
  size_t i;

  for (i = 0; i < sizeof cols / sizeof cols[0]; i++)
    ovsdb_idl_add_column(idl, cols[i]);
  /* cur_cfg changes on every reconfiguration: it is waited on, not a
   * reason to look at the replica again. */
  ovsdb_idl_omit_alert(idl, &ovsrec_open_vswitch_col_cur_cfg);
}

static void finish(struct odb *db, struct job *j) {
  if (j->txn != NULL) {
    ovsdb_idl_txn_destroy(j->txn);
    j->txn = NULL;
  }
  pthread_mutex_lock(&db->mu);
  db->queue = j->next;
  if (db->queue == NULL)
    db->tail = &db->queue;
  j->done = 1;
  pthread_cond_broadcast(&db->cv);
  pthread_mutex_unlock(&db->mu);
}

/* Build the job's transaction from the replica and start its commit. */
static void job_start(struct odb *db, struct job *j) {
  const struct ovsrec_open_vswitch *ovs;
  int rc;

  j->err[0] = '\0';
  j->txn = ovsdb_idl_txn_create(db->idl);
  ovsdb_idl_txn_add_comment(j->txn, "vmhost network %s",
                            db->host->instance_name(db->inst));
  rc = j->build(j->arg, db->idl, j->txn, j->err);
  if (rc != 0) {
    j->rc = rc == ODB_DONE ? 0 : rc;
    j->state = JOB_DONE;
    return;
  }
  ovs = ovsrec_open_vswitch_first(db->idl);
  if (j->wait_applied && ovs != NULL)
    ovsdb_idl_txn_increment(j->txn, &ovs->header_,
                            &ovsrec_open_vswitch_col_next_cfg, false);
  j->state = JOB_COMMITTING;
}

static void job_commit(struct odb *db, struct job *j) {
  enum ovsdb_idl_txn_status st = ovsdb_idl_txn_commit(j->txn);
  const struct ovsrec_open_vswitch *ovs;

  switch (st) {
    case TXN_INCOMPLETE:
      return;
    case TXN_UNCHANGED:
      j->state = JOB_DONE;
      return;
    case TXN_SUCCESS:
      j->committed = 1;
      ovs = ovsrec_open_vswitch_first(db->idl);
      if (!j->wait_applied || ovs == NULL) {
        j->state = JOB_DONE;
        return;
      }
      j->cfg = ovsdb_idl_txn_get_increment_new_value(j->txn);
      ovsdb_idl_txn_destroy(j->txn);
      j->txn = NULL;
      j->state = JOB_APPLYING;
      return;
    case TXN_TRY_AGAIN:
      ovsdb_idl_txn_destroy(j->txn);
      j->txn = NULL;
      if (!ovsdb_idl_is_connected(db->idl)) {
        job_fail(j, VMH_EIO,
                 "OVSDB %s unavailable: the connection dropped during the "
                 "transaction",
                 db->remote);
        return;
      }
      if (++j->tries >= MAX_TRIES) {
        job_fail(j, VMH_EAGAIN,
                 "OVSDB %s: the transaction raced other clients %d times; "
                 "try again",
                 db->remote, j->tries);
        return;
      }
      j->state = JOB_NEW; /* rebuilt from the new replica */
      return;
    case TXN_UNCOMMITTED:
    case TXN_ABORTED:
    case TXN_NOT_LOCKED:
    case TXN_ERROR:
    default:
      job_fail(j, VMH_EIO, "OVSDB %s refused the transaction: %s", db->remote,
               ovsdb_idl_txn_get_error(j->txn));
      return;
  }
}

static void job_step(struct odb *db, struct job *j) {
  const struct ovsrec_open_vswitch *ovs;

  if (j->state == JOB_NEW) {
    if (!ovsdb_idl_is_connected(db->idl) ||
        !ovsdb_idl_has_ever_connected(db->idl)) {
      job_fail(j, VMH_EIO, "OVSDB %s unavailable: not connected (%s)",
               db->remote,
               ovsdb_idl_get_last_error(db->idl)
                   ? strerror(ovsdb_idl_get_last_error(db->idl))
                   : "connecting");
      return;
    }
    job_start(db, j);
  }
  if (j->state == JOB_COMMITTING)
    job_commit(db, j);
  if (j->state == JOB_APPLYING) {
    ovs = ovsrec_open_vswitch_first(db->idl);
    if (ovs == NULL || ovs->cur_cfg >= j->cfg)
      j->state = JOB_DONE;
    else if (!ovsdb_idl_is_connected(db->idl))
      job_fail(j, VMH_EIO,
               "OVSDB %s unavailable: the connection dropped before "
               "ovs-vswitchd applied the change",
               db->remote);
  }
  if (j->state != JOB_DONE && now_ms() >= j->deadline) {
    if (j->state == JOB_APPLYING)
      job_fail(j, VMH_ETIMEDOUT,
               "ovs-vswitchd did not apply the change within %lld ms (is it "
               "running and connected to %s?)",
               (long long)db->timeout_ms, db->remote);
    else
      job_fail(j, VMH_ETIMEDOUT, "OVSDB %s did not answer within %lld ms",
               db->remote, (long long)db->timeout_ms);
  }
}

/* Logs the connection going down or coming back, once each time. */
static void track_connection(struct odb *db) {
  int up =
      ovsdb_idl_is_connected(db->idl) && ovsdb_idl_has_ever_connected(db->idl);
  int was;

  pthread_mutex_lock(&db->mu);
  was = db->connected;
  db->connected = up;
  if (up && !db->ready) {
    db->ready = 1;
    pthread_cond_broadcast(&db->cv);
  }
  pthread_mutex_unlock(&db->mu);
  if (up != was && db->ready)
    db->host->log(db->inst, up ? VMH_LOG_INFO : VMH_LOG_WARN, "OVSDB %s: %s",
                  db->remote, up ? "connected" : "connection lost");
}

static void *loop(void *arg) {
  struct odb *db = arg;
  struct job *j;
  int stop;

  /* OVS's log goes to stderr by default: this plugin reports through the
   * host instead. */
  vlog_set_levels(NULL, VLF_ANY_DESTINATION, VLL_OFF);
  db->idl = ovsdb_idl_create(db->remote, &ovsrec_idl_class, false, true);
  monitor(db->idl);
  for (;;) {
    ovsdb_idl_run(db->idl);
    track_connection(db);
    pthread_mutex_lock(&db->mu);
    stop = db->stop;
    j = db->queue;
    pthread_mutex_unlock(&db->mu);
    if (stop)
      break;
    if (j != NULL) {
      job_step(db, j);
      if (j->state == JOB_DONE) {
        finish(db, j);
        continue; /* the next job, if any, without sleeping */
      }
      if (j->txn != NULL)
        ovsdb_idl_txn_wait(j->txn);
      poll_timer_wait_until(j->deadline);
    }
    ovsdb_idl_wait(db->idl);
    poll_fd_wait(db->wake[0], POLLIN);
    poll_block();
    drain(db);
  }
  /* Jobs still queued: the instance is closing. */
  while ((j = db->queue) != NULL) {
    job_fail(j, VMH_ECANCELED, "network %s is closing",
             db->host->instance_name(db->inst));
    finish(db, j);
  }
  ovsdb_idl_destroy(db->idl);
  db->idl = NULL;
  return NULL;
}

int odb_run(struct odb *db, odb_build_fn build, void *arg, int wait_applied,
            char err[ODB_ERR_LEN], int *committed) {
  struct job j;

  memset(&j, 0, sizeof j);
  j.build = build;
  j.arg = arg;
  j.wait_applied = wait_applied;
  j.deadline = now_ms() + db->timeout_ms;
  pthread_mutex_lock(&db->mu);
  *db->tail = &j;
  db->tail = &j.next;
  wake(db);
  /* The thread finishes every job by its deadline (or at close). */
  while (!j.done)
    pthread_cond_wait(&db->cv, &db->mu);
  pthread_mutex_unlock(&db->mu);
  if (committed != NULL)
    *committed = j.committed;
  if (j.rc < 0)
    snprintf(err, ODB_ERR_LEN, "%s", j.err);
  return j.rc;
}

int odb_connected(struct odb *db) {
  int up;

  pthread_mutex_lock(&db->mu);
  up = db->connected;
  pthread_mutex_unlock(&db->mu);
  return up;
}

void odb_close(struct odb *db) {
  if (db == NULL)
    return;
  if (db->thread_started) {
    pthread_mutex_lock(&db->mu);
    db->stop = 1;
    pthread_mutex_unlock(&db->mu);
    wake(db);
    pthread_join(db->thread, NULL);
  }
  pthread_mutex_destroy(&db->mu);
  pthread_cond_destroy(&db->cv);
  if (db->wake[0] >= 0)
    close(db->wake[0]);
  if (db->wake[1] >= 0)
    close(db->wake[1]);
  free(db->remote);
  free(db);
}

/* Waits for the first copy of the database, up to the timeout. */
static int wait_ready(struct odb *db) {
  struct timespec until;
  int ready, rc = 0;

  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += db->timeout_ms / 1000;
  until.tv_nsec += (db->timeout_ms % 1000) * 1000000;
  if (until.tv_nsec >= 1000000000) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000;
  }
  pthread_mutex_lock(&db->mu);
  while (!db->ready && rc == 0)
    rc = pthread_cond_timedwait(&db->cv, &db->mu, &until);
  ready = db->ready;
  pthread_mutex_unlock(&db->mu);
  return ready;
}

int odb_open(const struct vmh_host *host, const struct vmh_instance *inst,
             const char *remote, int64_t timeout_ms, struct odb **ret) {
  struct odb *db = calloc(1, sizeof *db);
  sigset_t all, old;
  int err;

  *ret = NULL;
  if (db == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  db->host = host;
  db->inst = inst;
  db->timeout_ms = timeout_ms;
  db->tail = &db->queue;
  db->wake[0] = db->wake[1] = -1;
  pthread_mutex_init(&db->mu, NULL);
  pthread_cond_init(&db->cv, NULL);
  db->remote = strdup(remote);
  if (db->remote == NULL) {
    odb_close(db);
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  }
  if (pipe2(db->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
    err = errno;
    odb_close(db);
    return vmh_fail(host, VMH_EIO, "cannot make a pipe: %s", strerror(err));
  }
  /* The daemon takes its signals on one thread; the IDL thread, whose
   * library installs handlers, must never be the one they land on. */
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  err = pthread_create(&db->thread, NULL, loop, db);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (err != 0) {
    odb_close(db);
    return vmh_fail(host, VMH_EIO, "cannot start the OVSDB thread: %s",
                    strerror(err));
  }
  db->thread_started = 1;
  if (!wait_ready(db)) {
    odb_close(db);
    return vmh_fail(host, VMH_EIO,
                    "cannot reach OVSDB at %s within %lld ms; is ovsdb-server "
                    "running there (key ovsdb)?",
                    remote, (long long)timeout_ms);
  }
  *ret = db;
  return 0;
}
