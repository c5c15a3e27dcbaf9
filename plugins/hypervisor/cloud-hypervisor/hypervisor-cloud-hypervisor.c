/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hypervisor-cloud-hypervisor — one Cloud Hypervisor process (VMM) per
 * running VM, driven over its REST API on a unix socket (ch-api.c).
 *
 * A VM is a record in the instance's state dir (<id>.json: name, vsock CID,
 * the VmConfig built from its spec by ch-config.c); a running (or paused)
 * VM also has a VMM, spawned in a process group of its own so that it
 * outlives a vmhostd restart, with its API socket, pid file, event-monitor
 * FIFO, serial-console and vsock sockets under run_dir.  Stopped VMs have
 * no process.
 *
 * One supervisor thread per instance polls every VMM's pidfd (exit →
 * "stopped" after a shutdown, "crashed" otherwise) and event-monitor FIFO
 * (lifecycle events); operations wait on a VM's condition variable for the
 * supervisor to see an exit.  At open, VMMs still running from an earlier
 * vmhostd are adopted from their pid files (checked against the API
 * socket with vmm.ping), never started twice; the files of a VMM that is
 * gone are removed and its VM reads as crashed.
 *
 * Locks: h->lock guards the VM table and each VM's reference count;
 * vm->lock guards a VM's process fields (short holds, never across an API
 * call); vm->api_lock serializes calls on its API connection.  The core
 * serializes operations on one VM; get and list may run beside them.
 *
 * Config keys (etc/plugins/cloud-hypervisor.yaml): binary, run_dir,
 * firmware, shutdown_timeout, api_timeout, event_monitor, agent_port.
 */
#include <config.h>

#define VMH_THREAD_MODEL VMH_THREAD_PARALLEL
#include <vmhost/vmhost-plugin.h>

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "atomicfile.h"
#include "ch-api.h"
#include "ch-config.h"
#include "cleanup.h"
#include "errname.h"
#include "seediso.h"
#include "spawnproc.h"

#define ERRLEN 1024
/* Event-monitor bytes kept while an event is incomplete. */
#define EVBUF 16384
/* How long a killed VMM may take to go. */
#define KILL_WAIT_MS 30000
/* Poll interval while a new VMM makes its API socket. */
#define SOCKET_POLL_NS 5000000L

static const struct vmh_host *host;

struct chvm {
  char id[VMH_ID_LEN + 1];
  unsigned refs; /* under h->lock */

  pthread_mutex_t lock; /* all below */
  pthread_cond_t cond;  /* pid went 0 */
  /* As saved: name, cid, channel, snapshot (the current one, or null),
   * config (its "disks" always there).  Only operations on this VM (which
   * the core serializes) change it, and only by replacing values and
   * changing the disks array: the keys other threads read (name, cid,
   * channel, config's cpus and memory) never move. */
  json_t *record;
  pid_t pid;       /* the VMM; 0: none */
  int pidfd, evfd; /* -1: none */
  int child;       /* pid is our child: reap it */
  int expect_exit; /* we told the VMM to go */
  const char *exit_reason;
  int saw_vmm_shutdown; /* the event monitor said the VMM shut down */
  uint32_t state;       /* last reported */
  int64_t started;      /* realtime seconds of the last boot */
  char evbuf[EVBUF];
  size_t evlen;

  pthread_mutex_t api_lock;
  struct cha *api;
};

struct ch {
  const struct vmh_instance *inst;
  const char *binary, *run_dir, *firmware, *state_dir;
  int64_t shutdown_timeout, api_timeout, agent_port;
  int event_monitor;

  pthread_mutex_t lock;
  struct chvm **vms;
  size_t n_vms;

  int wake_fd; /* eventfd: the supervisor rebuilds its poll set */
  pthread_t thread;
  int thread_up;
  atomic_int stopping;
};

/* ---- Small helpers ------------------------------------------------------- */

static int64_t now_s(void) {
  return (int64_t)time(NULL);
}

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const char *state_name(uint32_t s) {
  static const char *const names[] = {"unknown", "stopped",   "running",
                                      "paused",  "suspended", "crashed"};
  return s < sizeof names / sizeof names[0] ? names[s] : "unknown";
}

/* Ids name files: only what a UUID holds. */
static int check_id(const char *id) {
  size_t n = id ? strlen(id) : 0;

  if (n == 0 || n > VMH_ID_LEN || strspn(id, "0123456789abcdef-") != n)
    return vmh_fail(host, VMH_EINVAL, "VM id '%s' is not a UUID", id ? id : "");
  return 0;
}

/* <dir>/<id><suffix>, refused when it does not fit a unix socket path
 * (every file of a VM sits beside its sockets). */
static int vm_path(const char *dir, const char *id, const char *suffix,
                   char *buf, size_t size) {
  int n = snprintf(buf, size, "%s/%s%s", dir, id, suffix);

  if (n < 0 || (size_t)n >= size ||
      (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path))
    return vmh_fail(host, VMH_EINVAL,
                    "'%s' is too long a directory for unix socket paths", dir);
  return 0;
}

/* The files a VMM has under run_dir while it runs. */
static const char *const run_files[] = {".sock", ".pid", ".events", ".vsock",
                                        ".console"};

static void unlink_run_files(struct ch *h, const char *id) {
  char p[PATH_MAX];
  size_t i;

  for (i = 0; i < sizeof run_files / sizeof run_files[0]; i++)
    if (snprintf(p, sizeof p, "%s/%s%s", h->run_dir, id, run_files[i]) <
        (int)sizeof p)
      unlink(p);
}

/* Removes a flat directory (a snapshot: a few files, no subdirectories). */
static int remove_flat_dir(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int dfd;

  if (d == NULL)
    return errno == ENOENT ? 0 : -1;
  dfd = dirfd(d);
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
      unlinkat(dfd, e->d_name, 0);
  closedir(d);
  return rmdir(dir);
}

static void wake(struct ch *h) {
  uint64_t one = 1;
  if (write(h->wake_fd, &one, sizeof one) < 0)
    host->log(h->inst, VMH_LOG_WARN, "cannot wake the supervisor: %s",
              strerror(errno));
}

/* ---- The VM table -------------------------------------------------------- */

static struct chvm *vm_new(const char *id, json_t *record) {
  struct chvm *vm = calloc(1, sizeof *vm);
  pthread_condattr_t ca;

  if (vm == NULL)
    return NULL;
  snprintf(vm->id, sizeof vm->id, "%s", id);
  vm->refs = 1;
  vm->record = record;
  vm->pidfd = vm->evfd = -1;
  vm->state = VMH_VM_STOPPED;
  pthread_mutex_init(&vm->lock, NULL);
  pthread_mutex_init(&vm->api_lock, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&vm->cond, &ca);
  pthread_condattr_destroy(&ca);
  return vm;
}

static void vm_free(struct chvm *vm) {
  if (vm->pidfd >= 0)
    close(vm->pidfd);
  if (vm->evfd >= 0)
    close(vm->evfd);
  cha_free(vm->api);
  json_decref(vm->record);
  pthread_mutex_destroy(&vm->lock);
  pthread_mutex_destroy(&vm->api_lock);
  pthread_cond_destroy(&vm->cond);
  free(vm);
}

static void vm_put(struct ch *h, struct chvm *vm) {
  unsigned left;

  if (vm == NULL)
    return;
  pthread_mutex_lock(&h->lock);
  left = --vm->refs;
  pthread_mutex_unlock(&h->lock);
  if (left == 0)
    vm_free(vm);
}

/* A reference on the VM of id, or VMH_ENOENT. */
static int vm_get(struct ch *h, const char *id, struct chvm **ret) {
  size_t i;
  int rc;

  if ((rc = check_id(id)) < 0)
    return rc;
  pthread_mutex_lock(&h->lock);
  for (i = 0; i < h->n_vms; i++)
    if (strcmp(h->vms[i]->id, id) == 0) {
      *ret = h->vms[i];
      h->vms[i]->refs++;
      pthread_mutex_unlock(&h->lock);
      return 0;
    }
  pthread_mutex_unlock(&h->lock);
  return vmh_fail(host, VMH_ENOENT,
                  "no VM %s in this Cloud Hypervisor "
                  "instance",
                  id);
}

/* Adds vm to the table (the table takes the caller's reference). */
static int vm_add(struct ch *h, struct chvm *vm) {
  struct chvm **n;

  pthread_mutex_lock(&h->lock);
  n = realloc(h->vms, (h->n_vms + 1) * sizeof *h->vms);
  if (n != NULL) {
    h->vms = n;
    h->vms[h->n_vms++] = vm;
  }
  pthread_mutex_unlock(&h->lock);
  return n ? 0 : vmh_fail(host, VMH_ENOMEM, "out of memory");
}

/* Drops the table's reference on vm. */
static void vm_remove(struct ch *h, struct chvm *vm) {
  size_t i;

  pthread_mutex_lock(&h->lock);
  for (i = 0; i < h->n_vms; i++)
    if (h->vms[i] == vm) {
      h->vms[i] = h->vms[--h->n_vms];
      pthread_mutex_unlock(&h->lock);
      wake(h);
      vm_put(h, vm);
      return;
    }
  pthread_mutex_unlock(&h->lock);
}

static const char *rec_str(json_t *rec, const char *key) {
  return json_string_value(json_object_get(rec, key));
}

static json_t *rec_config(struct chvm *vm) {
  return json_object_get(vm->record, "config");
}

/* Saves vm->record (the caller holds what keeps it stable: the core's
 * ordering of operations on one VM). */
static int save_record(struct ch *h, struct chvm *vm) {
  char path[PATH_MAX];
  _cleanup_free_ char *text = NULL;
  int rc;

  if ((rc = vm_path(h->state_dir, vm->id, ".json", path, sizeof path)) < 0)
    return rc;
  text = json_dumps(vm->record, JSON_COMPACT);
  if (text == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  if (atomic_write(path, text, strlen(text), 0600) < 0)
    return vmh_fail(host, errno_code(errno), "cannot write %s: %s", path,
                    strerror(errno));
  return 0;
}

/* ---- Events and exits ---------------------------------------------------- */

static void emit_state(struct ch *h, const char *id, uint32_t state,
                       const char *reason) {
  struct vmh_event ev = {0};

  ev.struct_size = sizeof ev;
  ev.type = VMH_EVENT_VM_STATE;
  ev.vm_id = id;
  ev.state = state;
  ev.reason = reason;
  host->log(h->inst, VMH_LOG_DEBUG, "VM %s: %s (%s)", id, state_name(state),
            reason);
  host->emit(h->inst, &ev);
}

/* One event of Cloud Hypervisor's event monitor ({"timestamp", "source",
 * "event", "properties"}).  Called with vm->lock held. */
static void on_event(struct ch *h, struct chvm *vm, json_t *ev) {
  const char *src = json_string_value(json_object_get(ev, "source"));
  const char *what = json_string_value(json_object_get(ev, "event"));
  uint32_t st = VMH_VM_UNKNOWN;
  const char *reason = what;

  if (src == NULL || what == NULL)
    return;
  if (strcmp(src, "vmm") == 0) {
    if (strcmp(what, "shutdown") == 0)
      vm->saw_vmm_shutdown = 1;
    return;
  }
  if (strcmp(src, "guest") == 0 && strcmp(what, "panic") == 0) {
    st = VMH_VM_CRASHED;
    reason = "guest-panic";
  } else if (strcmp(src, "vm") != 0) {
    return;
  } else if (strcmp(what, "booted") == 0 || strcmp(what, "resumed") == 0 ||
             strcmp(what, "rebooted") == 0) {
    st = VMH_VM_RUNNING;
    if (strcmp(what, "booted") == 0)
      vm->started = now_s();
  } else if (strcmp(what, "paused") == 0 || strcmp(what, "restored") == 0) {
    st = VMH_VM_PAUSED;
  } else if (strcmp(what, "shutdown") == 0) {
    st = VMH_VM_STOPPED;
    if (vm->exit_reason != NULL)
      reason = vm->exit_reason;
  } else {
    return; /* booting, pausing, snapshotting …: a state follows */
  }
  if (st == vm->state && st == VMH_VM_STOPPED)
    return;
  vm->state = st;
  emit_state(h, vm->id, st, reason);
}

/* Reads what the event monitor wrote: JSON objects, pretty-printed and
 * separated by blank lines.  Called with vm->lock held. */
static void read_events(struct ch *h, struct chvm *vm) {
  for (;;) {
    ssize_t n;
    size_t used = 0;

    if (vm->evfd < 0)
      return;
    n = read(vm->evfd, vm->evbuf + vm->evlen, sizeof vm->evbuf - vm->evlen);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return;
    vm->evlen += (size_t)n;
    for (;;) {
      json_error_t je;
      json_t *ev;
      size_t skip = used;

      while (skip < vm->evlen && strchr(" \t\r\n", vm->evbuf[skip]))
        skip++;
      used = skip;
      if (used == vm->evlen)
        break;
      ev = json_loadb(vm->evbuf + used, vm->evlen - used,
                      JSON_DISABLE_EOF_CHECK, &je);
      if (ev == NULL)
        break; /* incomplete: the rest comes later */
      used += (size_t)je.position;
      on_event(h, vm, ev);
      json_decref(ev);
    }
    memmove(vm->evbuf, vm->evbuf + used, vm->evlen - used);
    vm->evlen -= used;
    if (vm->evlen == sizeof vm->evbuf) {
      host->log(h->inst, VMH_LOG_WARN,
                "VM %s: event monitor wrote %zu bytes that are no event; "
                "dropped",
                vm->id, vm->evlen);
      vm->evlen = 0;
    }
  }
}

/* What ended a VMM we did not tell to go: its wait status (our child), or
 * what the event monitor said (an adopted one). */
static int clean_exit(struct chvm *vm, char *why, size_t size) {
  int status;

  if (vm->child && waitpid(vm->pid, &status, WNOHANG) == vm->pid) {
    if (WIFEXITED(status)) {
      snprintf(why, size, "vmm-exit-%d", WEXITSTATUS(status));
      return WEXITSTATUS(status) == 0 || vm->saw_vmm_shutdown;
    }
    snprintf(why, size, "vmm-killed-by-signal-%d",
             WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return 0;
  }
  snprintf(why, size, "vmm-gone");
  return vm->saw_vmm_shutdown;
}

/* The VMM of vm has exited (its pidfd is readable): reap it, remove its
 * files, report the VM stopped or crashed.  Called with vm->lock held. */
static void vmm_exited(struct ch *h, struct chvm *vm) {
  char why[64];
  uint32_t st;
  int clean;

  read_events(h, vm); /* all it wrote is in the FIFO by now */
  clean = clean_exit(vm, why, sizeof why) || vm->expect_exit;
  host->log(h->inst, clean ? VMH_LOG_DEBUG : VMH_LOG_WARN,
            "VM %s: VMM %d exited (%s)", vm->id, (int)vm->pid,
            clean ? vm->exit_reason ? vm->exit_reason : "shutdown" : why);
  close(vm->pidfd);
  if (vm->evfd >= 0)
    close(vm->evfd);
  vm->pidfd = vm->evfd = -1;
  vm->evlen = 0;
  vm->pid = 0;
  vm->child = 0;
  unlink_run_files(h, vm->id);
  st = clean ? VMH_VM_STOPPED : VMH_VM_CRASHED;
  if (st != vm->state || st == VMH_VM_CRASHED) {
    vm->state = st;
    emit_state(h, vm->id, st,
               clean ? vm->exit_reason ? vm->exit_reason : "shutdown" : why);
  }
  vm->expect_exit = 0;
  vm->exit_reason = NULL;
  vm->saw_vmm_shutdown = 0;
  pthread_cond_broadcast(&vm->cond);
}

static int fd_ready(int fd) {
  struct pollfd p = {fd, POLLIN, 0};
  return fd >= 0 && poll(&p, 1, 0) > 0;
}

/* A ready fd of the poll set: verified against the VM's current fds, which
 * an operation may have replaced since the set was built. */
static void on_ready(struct ch *h, struct chvm *vm, int fd) {
  pthread_mutex_lock(&vm->lock);
  if (fd == vm->evfd)
    read_events(h, vm);
  else if (fd == vm->pidfd && vm->pid != 0 && fd_ready(fd))
    vmm_exited(h, vm);
  pthread_mutex_unlock(&vm->lock);
}

static void *supervise(void *arg) {
  struct ch *h = arg;
  struct pollfd *pfd = NULL;
  struct chvm **who = NULL;

  while (!atomic_load(&h->stopping)) {
    size_t i, n = 1, cap;
    struct pollfd *np;
    struct chvm **nw;

    pthread_mutex_lock(&h->lock);
    cap = 1 + 2 * h->n_vms;
    np = realloc(pfd, cap * sizeof *pfd);
    nw = np ? realloc(who, cap * sizeof *who) : NULL;
    if (np != NULL)
      pfd = np;
    if (nw != NULL)
      who = nw;
    if (np == NULL || nw == NULL) {
      pthread_mutex_unlock(&h->lock);
      host->log(h->inst, VMH_LOG_ERROR, "supervisor: out of memory");
      sleep(1);
      continue;
    }
    pfd[0] = (struct pollfd){h->wake_fd, POLLIN, 0};
    who[0] = NULL;
    for (i = 0; i < h->n_vms; i++) {
      struct chvm *vm = h->vms[i];
      int fds[2], k;
      pthread_mutex_lock(&vm->lock);
      fds[0] = vm->pidfd;
      fds[1] = vm->evfd;
      pthread_mutex_unlock(&vm->lock);
      for (k = 0; k < 2; k++)
        if (fds[k] >= 0) {
          vm->refs++;
          pfd[n] = (struct pollfd){fds[k], POLLIN, 0};
          who[n++] = vm;
        }
    }
    pthread_mutex_unlock(&h->lock);
    if (poll(pfd, n, -1) < 0 && errno != EINTR)
      host->log(h->inst, VMH_LOG_ERROR, "supervisor: poll: %s",
                strerror(errno));
    if (pfd[0].revents & POLLIN) {
      uint64_t v;
      if (read(h->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
        host->log(h->inst, VMH_LOG_ERROR, "supervisor: read: %s",
                  strerror(errno));
    }
    /* Events before exits: a VMM's last events tell how it ended. */
    for (i = 1; i < n; i++)
      if (pfd[i].revents && pfd[i].fd != who[i]->pidfd)
        on_ready(h, who[i], pfd[i].fd);
    for (i = 1; i < n; i++) {
      if (pfd[i].revents)
        on_ready(h, who[i], pfd[i].fd);
      vm_put(h, who[i]);
    }
  }
  free(pfd);
  free(who);
  return NULL;
}

/* Waits up to ms for the VMM of vm to be gone; 1 when it is. */
static int wait_gone(struct chvm *vm, uint64_t ms) {
  struct timespec ts;
  int gone;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += (time_t)(ms / 1000);
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&vm->lock);
  while (vm->pid != 0)
    if (pthread_cond_timedwait(&vm->cond, &vm->lock, &ts) == ETIMEDOUT)
      break;
  gone = vm->pid == 0;
  pthread_mutex_unlock(&vm->lock);
  return gone;
}

/* Kills the VMM (and its process group when it is our child) and waits
 * for the supervisor to see it go. */
static int vmm_kill(struct ch *h, struct chvm *vm, const char *reason) {
  pthread_mutex_lock(&vm->lock);
  if (vm->pid != 0) {
    vm->expect_exit = 1;
    vm->exit_reason = reason;
    if (syscall(SYS_pidfd_send_signal, vm->pidfd, SIGKILL, NULL, 0) < 0 &&
        errno != ESRCH)
      host->log(h->inst, VMH_LOG_WARN, "VM %s: cannot kill VMM %d: %s", vm->id,
                (int)vm->pid, strerror(errno));
    if (vm->child)
      kill(-vm->pid, SIGKILL);
  }
  pthread_mutex_unlock(&vm->lock);
  if (!wait_gone(vm, KILL_WAIT_MS))
    return vmh_fail(host, VMH_EIO, "VM %s: the VMM did not die", vm->id);
  return 0;
}

/* ---- The API ------------------------------------------------------------- */

/* One call on vm's VMM, its failure's message in err. */
static int api_raw(struct chvm *vm, const char *method, const char *endpoint,
                   const char *body, char **resp, char *err, size_t errlen) {
  int rc;

  pthread_mutex_lock(&vm->api_lock);
  rc = cha_call(vm->api, method, endpoint, body, resp, endpoint, err, errlen);
  pthread_mutex_unlock(&vm->api_lock);
  return rc;
}

/* One call on vm's VMM; a failure is the operation's error. */
static int api(struct chvm *vm, const char *method, const char *endpoint,
               const char *body, char **resp) {
  char err[ERRLEN];
  int rc = api_raw(vm, method, endpoint, body, resp, err, sizeof err);

  return rc < 0 ? vmh_fail(host, rc, "VM %s: %s", vm->id, err) : 0;
}

static int api_json(struct chvm *vm, const char *endpoint, json_t *body) {
  _cleanup_free_ char *text = json_dumps(body, JSON_COMPACT);

  if (text == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  return api(vm, "PUT", endpoint, text, NULL);
}

/* Stops the VMM through its API (vm.shutdown, vmm.shutdown), killing it
 * when it does not go within api_timeout. */
static int vmm_shutdown(struct ch *h, struct chvm *vm, const char *reason,
                        int delete_vm) {
  char err[ERRLEN];
  int rc;

  pthread_mutex_lock(&vm->lock);
  if (vm->pid == 0) {
    pthread_mutex_unlock(&vm->lock);
    return 0;
  }
  vm->expect_exit = 1;
  vm->exit_reason = reason;
  pthread_mutex_unlock(&vm->lock);
  /* Each may fail (a VM not booted, a VMM that hangs): the kill below
   * stops it anyway.  A VM that is not running still lets its VMM go; a
   * VMM that did not answer is not asked again. */
  rc = api_raw(vm, "PUT", delete_vm ? "vm.delete" : "vm.shutdown", NULL, NULL,
               err, sizeof err);
  if (rc < 0)
    host->log(h->inst, VMH_LOG_INFO, "VM %s: %s", vm->id, err);
  if (rc != VMH_ETIMEDOUT &&
      api_raw(vm, "PUT", "vmm.shutdown", NULL, NULL, err, sizeof err) < 0)
    host->log(h->inst, VMH_LOG_INFO, "VM %s: %s", vm->id, err);
  if (wait_gone(vm, (uint64_t)h->api_timeout * 1000u))
    return 0;
  host->log(h->inst, VMH_LOG_WARN,
            "VM %s: the VMM did not exit within %" PRId64 " s; killing it",
            vm->id, h->api_timeout);
  return vmm_kill(h, vm, reason);
}

/* ---- Starting a VMM ------------------------------------------------------ */

/* The last line of the VMM's log, for a message about why it failed. */
static void log_tail(struct ch *h, const char *id, char *out, size_t size) {
  char path[PATH_MAX], buf[4096];
  ssize_t n;
  int fd;
  char *end, *line;

  snprintf(out, size, "no output");
  if (snprintf(path, sizeof path, "%s/%s.log", h->run_dir, id) >=
          (int)sizeof path ||
      (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
    return;
  if (lseek(fd, -(off_t)(sizeof buf - 1), SEEK_END) < 0)
    lseek(fd, 0, SEEK_SET);
  n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return;
  buf[n] = '\0';
  end = buf + n;
  while (end > buf && (end[-1] == '\n' || end[-1] == '\r'))
    *--end = '\0';
  line = strrchr(buf, '\n');
  snprintf(out, size, "%.400s", line ? line + 1 : buf);
}

/* Waits for the new VMM's API (vmm.ping): the socket appears once the VMM
 * is up; a VMM that takes the connection and never answers fails with the
 * API timeout. */
static int wait_ping(struct ch *h, struct chvm *vm) {
  uint64_t deadline = mono_ms() + (uint64_t)h->api_timeout * 1000u;
  char err[ERRLEN], tail[512];

  for (;;) {
    struct timespec ts = {0, SOCKET_POLL_NS};
    int rc = api_raw(vm, "GET", "vmm.ping", NULL, NULL, err, sizeof err);
    int gone;

    if (rc == 0)
      return 0;
    pthread_mutex_lock(&vm->lock);
    gone = vm->pid == 0 || fd_ready(vm->pidfd);
    pthread_mutex_unlock(&vm->lock);
    if (gone) {
      log_tail(h, vm->id, tail, sizeof tail);
      return vmh_fail(host, VMH_EIO,
                      "VM %s: %s exited before its API was up: "
                      "%s",
                      vm->id, h->binary, tail);
    }
    if (!cha_refused(vm->api))
      return vmh_fail(host, rc, "VM %s: %s", vm->id, err);
    if (mono_ms() >= deadline)
      return vmh_fail(host, VMH_ETIMEDOUT,
                      "VM %s: %s made no API socket within %" PRId64 " s",
                      vm->id, h->binary, h->api_timeout);
    nanosleep(&ts, NULL);
  }
}

/* Opens the event monitor's FIFO read-write: it never reads as closed
 * (no EOF, no POLLHUP) whether a VMM has it open or not. */
static int open_events(const char *path, int make) {
  if (make) {
    unlink(path);
    if (mkfifo(path, 0600) < 0)
      return -1;
  }
  return open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
}

/* Writes the pid file: a new name renamed into place, so that a reader
 * (adopt) sees a whole pid or none.  Not flushed to disk: after a host
 * crash the pid names no VMM anyway, and adopt checks the process. */
static int write_pid(const char *path, pid_t pid) {
  char tmp[PATH_MAX + 8], text[32];
  int n = snprintf(text, sizeof text, "%d\n", (int)pid), fd, rc;

  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
    return -1;
  rc = write_all(fd, text, (size_t)n);
  if (close(fd) < 0)
    rc = -1;
  if (rc == 0 && rename(tmp, path) == 0)
    return 0;
  n = errno;
  unlink(tmp);
  errno = n;
  return -1;
}

/* Spawns the VMM of vm and waits for its API; on failure nothing of it
 * remains. */
static int vmm_spawn(struct ch *h, struct chvm *vm) {
  char sock[PATH_MAX], pidf[PATH_MAX], evp[PATH_MAX], logp[PATH_MAX];
  char sockarg[PATH_MAX + 8], evarg[PATH_MAX + 8];
  char *argv[6];
  int rc, evfd = -1, pidfd, logfd, argc = 0;
  pid_t pid;

  if ((rc = vm_path(h->run_dir, vm->id, ".sock", sock, sizeof sock)) < 0 ||
      (rc = vm_path(h->run_dir, vm->id, ".pid", pidf, sizeof pidf)) < 0 ||
      (rc = vm_path(h->run_dir, vm->id, ".events", evp, sizeof evp)) < 0 ||
      (rc = vm_path(h->run_dir, vm->id, ".log", logp, sizeof logp)) < 0)
    return rc;
  unlink_run_files(h, vm->id);
  if (h->event_monitor && (evfd = open_events(evp, 1)) < 0)
    return vmh_fail(host, errno_code(errno), "cannot make %s: %s", evp,
                    strerror(errno));
  logfd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (logfd < 0) {
    rc = vmh_fail(host, errno_code(errno), "cannot open %s: %s", logp,
                  strerror(errno));
    goto fail;
  }
  snprintf(sockarg, sizeof sockarg, "path=%s", sock);
  snprintf(evarg, sizeof evarg, "path=%s", evp);
  argv[argc++] = (char *)h->binary;
  argv[argc++] = (char *)"--api-socket";
  argv[argc++] = sockarg;
  if (evfd >= 0) {
    argv[argc++] = (char *)"--event-monitor";
    argv[argc++] = evarg;
  }
  argv[argc] = NULL;
  rc = spawn_process_group(argv, logfd, logfd, &pid);
  close(logfd);
  if (rc != 0) {
    rc = vmh_fail(host, rc == ENOENT ? VMH_EINVAL : VMH_EIO,
                  "cannot run %s: %s (set binary in the plugin's config)",
                  h->binary, strerror(rc));
    goto fail;
  }
  pidfd = spawn_pidfd(pid);
  if (pidfd < 0) {
    rc = vmh_fail(host, VMH_EIO, "pidfd_open: %s", strerror(errno));
    kill(-pid, SIGKILL);
    spawn_wait(pid);
    goto fail;
  }
  pthread_mutex_lock(&vm->lock);
  vm->pid = pid;
  vm->pidfd = pidfd;
  vm->evfd = evfd;
  vm->child = 1;
  vm->expect_exit = 0;
  vm->saw_vmm_shutdown = 0;
  vm->state = VMH_VM_STOPPED;
  pthread_mutex_unlock(&vm->lock);
  wake(h);
  if (write_pid(pidf, pid) < 0) {
    rc = vmh_fail(host, errno_code(errno), "cannot write %s: %s", pidf,
                  strerror(errno));
    vmm_kill(h, vm, "rollback");
    return rc;
  }
  if ((rc = wait_ping(h, vm)) < 0) {
    vmm_kill(h, vm, "rollback");
    return rc;
  }
  return 0;
fail:
  if (evfd >= 0)
    close(evfd);
  unlink_run_files(h, vm->id);
  return rc;
}

/* Spawns the VMM, creates the VM from its record and boots it; on
 * failure the VMM is gone and the VM stopped. */
static int vmm_boot(struct ch *h, struct chvm *vm) {
  int rc;

  if ((rc = vmm_spawn(h, vm)) < 0)
    return rc;
  if ((rc = api_json(vm, "vm.create", rec_config(vm))) < 0 ||
      (rc = api(vm, "PUT", "vm.boot", NULL, NULL)) < 0) {
    vmm_kill(h, vm, "rollback");
    return rc;
  }
  pthread_mutex_lock(&vm->lock);
  vm->started = now_s();
  if (!h->event_monitor)
    vm->state = VMH_VM_RUNNING;
  pthread_mutex_unlock(&vm->lock);
  return 0;
}

/* A VM object for a record, with its API client. */
static struct chvm *vm_make(struct ch *h, const char *id, json_t *rec) {
  char sock[PATH_MAX];
  struct chvm *vm;

  if (vm_path(h->run_dir, id, ".sock", sock, sizeof sock) < 0 ||
      (vm = vm_new(id, rec)) == NULL)
    return NULL;
  vm->api = cha_new(sock, (long)h->api_timeout * 1000L);
  if (vm->api == NULL) {
    vm->record = NULL;
    vm_free(vm);
    return NULL;
  }
  return vm;
}

/* ---- Define, undefine ---------------------------------------------------- */

/* The smallest vsock CID (>= 3) no VM of the instance has. */
static uint32_t free_cid(struct ch *h) {
  uint32_t cid = 3;
  size_t i;
  int again = 1;

  pthread_mutex_lock(&h->lock);
  while (again) {
    again = 0;
    for (i = 0; i < h->n_vms; i++)
      if (json_integer_value(json_object_get(h->vms[i]->record, "cid")) ==
          (json_int_t)cid) {
        cid++;
        again = 1;
      }
  }
  pthread_mutex_unlock(&h->lock);
  return cid;
}

/* VMH_EEXIST when the instance has a VM of that id or name. */
static int check_new(struct ch *h, const struct vmh_vm_spec *spec) {
  size_t i;
  int rc = 0;

  pthread_mutex_lock(&h->lock);
  for (i = 0; i < h->n_vms && rc == 0; i++) {
    const char *name = rec_str(h->vms[i]->record, "name");
    if (strcmp(h->vms[i]->id, spec->id) == 0)
      rc = vmh_fail(host, VMH_EEXIST, "VM %s is already defined", spec->id);
    else if (name != NULL && strcmp(name, spec->name) == 0)
      rc = vmh_fail(host, VMH_EEXIST, "a VM named '%s' already exists",
                    spec->name);
  }
  pthread_mutex_unlock(&h->lock);
  return rc;
}

/* The record of a new VM: its name, CID, channel and VmConfig. */
static int make_record(struct ch *h, const struct vmh_vm_spec *spec,
                       uint32_t cid, const char *seed, json_t **ret) {
  char serial[PATH_MAX], vsock[PATH_MAX], err[ERRLEN];
  struct chc_opts o = {0};
  json_t *cfg = NULL, *rec;
  int rc;

  if ((rc = vm_path(h->run_dir, spec->id, ".console", serial, sizeof serial)) <
          0 ||
      (rc = vm_path(h->run_dir, spec->id, ".vsock", vsock, sizeof vsock)) < 0)
    return rc;
  o.firmware = h->firmware;
  o.serial_path = serial;
  o.vsock_path = spec->guest_channel ? vsock : NULL;
  o.cid = cid;
  o.seed_path = seed;
  if ((rc = chc_vm_config(spec, &o, &cfg, err, sizeof err)) < 0)
    return vmh_fail(host, rc, "%s", err);
  rec = json_pack("{s:s, s:i, s:b, s:n, s:o}", "name", spec->name, "cid",
                  (json_int_t)cid, "channel", spec->guest_channel != 0,
                  "snapshot", "config", cfg);
  if (rec == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  *ret = rec;
  return 0;
}

static void remove_vm_files(struct ch *h, const char *id) {
  char p[PATH_MAX];

  unlink_run_files(h, id);
  if (snprintf(p, sizeof p, "%s/%s.log", h->run_dir, id) < (int)sizeof p)
    unlink(p);
  if (snprintf(p, sizeof p, "%s/%s.seed.iso", h->state_dir, id) < (int)sizeof p)
    unlink(p);
  if (snprintf(p, sizeof p, "%s/%s.json", h->state_dir, id) < (int)sizeof p)
    unlink(p);
}

static int ch_define(void *handle, const struct vmh_vm_spec *spec,
                     uint32_t flags) {
  struct ch *h = handle;
  char seed[PATH_MAX], err[ERRLEN];
  struct chvm *vm = NULL;
  json_t *rec = NULL;
  int rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, VMH_DEFINE_START)) < 0)
    return rc;
  if (spec == NULL || spec->name == NULL)
    return vmh_fail(host, VMH_EINVAL, "define: no spec or no name");
  if ((rc = check_id(spec->id)) < 0 || (rc = check_new(h, spec)) < 0 ||
      (rc = vm_path(h->state_dir, spec->id, ".seed.iso", seed, sizeof seed)) <
          0 ||
      (rc = make_record(h, spec, free_cid(h), seed_wanted(spec) ? seed : NULL,
                        &rec)) < 0)
    return rc;
  vm = vm_make(h, spec->id, rec);
  if (vm == NULL) {
    json_decref(rec);
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  }
  if (seed_wanted(spec)) {
    if ((rc = seed_for_spec(spec, seed, err, sizeof err)) < 0) {
      rc = vmh_fail(host, rc, "VM %s: %s", spec->id, err);
      goto fail;
    }
  }
  if ((rc = save_record(h, vm)) < 0)
    goto fail;
  if ((rc = vm_add(h, vm)) < 0)
    goto fail;
  if ((flags & VMH_DEFINE_START) && (rc = vmm_boot(h, vm)) < 0) {
    vm_remove(h, vm);
    remove_vm_files(h, spec->id);
    return rc;
  }
  host->log(h->inst, VMH_LOG_DEBUG, "defined %s (%s)%s", spec->name, spec->id,
            flags & VMH_DEFINE_START ? " and started it" : "");
  return 0;
fail:
  remove_vm_files(h, spec->id); /* the seed and the record */
  vm_free(vm);
  return rc;
}

static void snap_dir(struct ch *h, const char *id, char *buf, size_t size) {
  snprintf(buf, size, "%s/snapshots/%s", h->state_dir, id);
}

/* Removes every snapshot of a VM, then its directory. */
static void remove_snapshots(struct ch *h, const char *id) {
  char dir[PATH_MAX], p[PATH_MAX];
  struct dirent *e;
  DIR *d;

  snap_dir(h, id, dir, sizeof dir);
  if ((d = opendir(dir)) == NULL)
    return;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.' &&
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name) < (int)sizeof p)
      remove_flat_dir(p);
  closedir(d);
  rmdir(dir);
}

static int ch_undefine(void *handle, const char *vm_id, uint32_t flags) {
  struct ch *h = handle;
  struct chvm *vm;
  int rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) < 0 ||
      (rc = vm_get(h, vm_id, &vm)) < 0)
    return rc;
  if ((rc = vmm_shutdown(h, vm, "deleted", 1)) < 0)
    goto out;
  remove_snapshots(h, vm->id);
  remove_vm_files(h, vm->id);
  vm_remove(h, vm);
  host->log(h->inst, VMH_LOG_DEBUG, "undefined %s", vm->id);
out:
  vm_put(h, vm);
  return rc;
}

/* Whether vm has a VMM now. */
static int vmm_running(struct chvm *vm) {
  int r;
  pthread_mutex_lock(&vm->lock);
  r = vm->pid != 0;
  pthread_mutex_unlock(&vm->lock);
  return r;
}

/* ---- Lifecycle ----------------------------------------------------------- */

static uint32_t ch_state(const char *s) {
  if (s == NULL)
    return VMH_VM_UNKNOWN;
  if (strcmp(s, "Running") == 0)
    return VMH_VM_RUNNING;
  if (strcmp(s, "Paused") == 0 || strcmp(s, "BreakPoint") == 0)
    return VMH_VM_PAUSED;
  if (strcmp(s, "Created") == 0 || strcmp(s, "Shutdown") == 0)
    return VMH_VM_STOPPED;
  return VMH_VM_UNKNOWN;
}

/* vm.info of a VM whose VMM runs, in *ret (a new reference). */
static int vm_info(struct chvm *vm, json_t **ret) {
  _cleanup_free_ char *text = NULL;
  json_t *j;
  int rc;

  if ((rc = api(vm, "GET", "vm.info", NULL, &text)) < 0)
    return rc;
  j = json_loads(text, 0, NULL);
  if (!json_is_object(j)) {
    json_decref(j);
    return vmh_fail(host, VMH_EIO, "VM %s: vm.info answered no JSON object",
                    vm->id);
  }
  *ret = j;
  return 0;
}

/* The VM's state now: the VMM's when it runs, else the last reported. */
static int cur_state(struct chvm *vm, uint32_t *ret) {
  json_t *info;
  pid_t pid;
  int rc;

  pthread_mutex_lock(&vm->lock);
  pid = vm->pid;
  *ret = vm->state;
  pthread_mutex_unlock(&vm->lock);
  if (pid == 0)
    return 0;
  if ((rc = vm_info(vm, &info)) < 0)
    return rc;
  *ret = ch_state(json_string_value(json_object_get(info, "state")));
  json_decref(info);
  return 0;
}

enum action { A_START, A_STOP, A_REBOOT, A_PAUSE, A_RESUME };

static int allowed(enum action a, uint32_t st) {
  switch (a) {
    case A_START:
      return st == VMH_VM_STOPPED || st == VMH_VM_CRASHED;
    case A_STOP:
      return st == VMH_VM_RUNNING || st == VMH_VM_PAUSED ||
             st == VMH_VM_UNKNOWN;
    case A_REBOOT:
    case A_PAUSE:
      return st == VMH_VM_RUNNING;
    case A_RESUME:
      return st == VMH_VM_PAUSED;
  }
  return 0;
}

/* Graceful stop: the power button, then up to timeout_s for the guest to
 * power off (its VMM exits), then the API's shutdown or a kill. */
static int stop_vm(struct ch *h, struct chvm *vm, uint32_t st,
                   uint32_t timeout_s, int force) {
  char err[ERRLEN];

  if (force || st != VMH_VM_RUNNING)
    return vmm_shutdown(h, vm, "destroyed", 0);
  if (api_raw(vm, "PUT", "vm.power-button", NULL, NULL, err, sizeof err) < 0) {
    host->log(h->inst, VMH_LOG_INFO, "VM %s: %s; powering off", vm->id, err);
    return vmm_shutdown(h, vm, "destroyed", 0);
  }
  if (wait_gone(vm, (uint64_t)timeout_s * 1000u))
    return 0;
  host->log(h->inst, VMH_LOG_INFO,
            "VM %s did not shut down within %" PRIu32 " s; powering off",
            vm->id, timeout_s);
  return vmm_shutdown(h, vm, "destroyed", 0);
}

static int act(struct ch *h, const char *vm_id, enum action a,
               uint32_t timeout_s, uint32_t flags) {
  static const char *const verbs[] = {"start", "stop", "reboot", "pause",
                                      "resume"};
  static const char *const endpoints[] = {NULL, NULL, "vm.reboot", "vm.pause",
                                          "vm.resume"};
  struct chvm *vm;
  uint32_t st;
  int rc;

  if ((rc = vm_get(h, vm_id, &vm)) < 0)
    return rc;
  if ((rc = cur_state(vm, &st)) < 0)
    goto out;
  if (!allowed(a, st)) {
    rc = vmh_fail(host, VMH_ESTATE, "VM %s is %s: cannot %s", vm_id,
                  state_name(st), verbs[a]);
    goto out;
  }
  switch (a) {
    case A_START:
      /* A VMM whose VM was shut down through its API (not by us) boots it
       * again: never a second VMM. */
      rc = vmm_running(vm) ? api(vm, "PUT", "vm.boot", NULL, NULL)
                           : vmm_boot(h, vm);
      break;
    case A_STOP:
      rc = stop_vm(h, vm, st, timeout_s, flags & VMH_STOP_FORCE);
      break;
    default:
      rc = api(vm, "PUT", endpoints[a], NULL, NULL);
      if (rc == 0 && !h->event_monitor) {
        pthread_mutex_lock(&vm->lock);
        vm->state = a == A_PAUSE ? VMH_VM_PAUSED : VMH_VM_RUNNING;
        pthread_mutex_unlock(&vm->lock);
      }
  }
out:
  vm_put(h, vm);
  return rc;
}

static int ch_start(void *handle, const char *vm_id, uint32_t flags) {
  int rc = VMH_CHECK_FLAGS(host, flags, 0);
  return rc < 0 ? rc : act(handle, vm_id, A_START, 0, 0);
}

static int ch_stop(void *handle, const char *vm_id, uint32_t timeout_s,
                   uint32_t flags) {
  struct ch *h = handle;
  int rc = VMH_CHECK_FLAGS(host, flags, VMH_STOP_FORCE);

  if (rc < 0)
    return rc;
  if (timeout_s == 0)
    timeout_s = (uint32_t)h->shutdown_timeout;
  return act(h, vm_id, A_STOP, timeout_s, flags);
}

static int ch_reboot(void *handle, const char *vm_id, uint32_t flags) {
  int rc = VMH_CHECK_FLAGS(host, flags, 0);
  return rc < 0 ? rc : act(handle, vm_id, A_REBOOT, 0, 0);
}

static int ch_pause(void *handle, const char *vm_id, uint32_t flags) {
  int rc = VMH_CHECK_FLAGS(host, flags, 0);
  return rc < 0 ? rc : act(handle, vm_id, A_PAUSE, 0, 0);
}

static int ch_resume(void *handle, const char *vm_id, uint32_t flags) {
  int rc = VMH_CHECK_FLAGS(host, flags, 0);
  return rc < 0 ? rc : act(handle, vm_id, A_RESUME, 0, 0);
}

/* ---- Get, list, console -------------------------------------------------- */

/* vCPU and VMM time of a process: utime + stime from /proc/PID/stat. */
static uint64_t cpu_time_ns(pid_t pid) {
  char path[64], buf[1024], *p;
  unsigned long long ut = 0, st = 0;
  long tck = sysconf(_SC_CLK_TCK);
  FILE *f;

  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  if ((f = fopen(path, "re")) == NULL)
    return 0;
  p = fgets(buf, sizeof buf, f);
  fclose(f);
  /* The command name may hold spaces and parentheses: fields start after
   * the last ')'. */
  if (p == NULL || (p = strrchr(buf, ')')) == NULL ||
      sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
             &ut, &st) != 2 ||
      tck <= 0)
    return 0;
  return (ut + st) * (1000000000ull / (unsigned long long)tck);
}

/* Reports vm.  With strict, a VMM that does not answer fails the call;
 * else (list) the VM reads as unknown. */
static int report(struct ch *h, struct chvm *vm, vmh_vm_info_fn fn,
                  void *opaque, int strict) {
  char vsock[PATH_MAX];
  struct vmh_vm_info info = {0};
  json_t *cfg = rec_config(vm), *live = NULL;
  int64_t started;
  pid_t pid;
  int rc;

  pthread_mutex_lock(&vm->lock);
  pid = vm->pid;
  info.state = vm->state;
  started = vm->started;
  pthread_mutex_unlock(&vm->lock);
  info.struct_size = sizeof info;
  info.id = vm->id;
  info.name = rec_str(vm->record, "name");
  info.vcpus = (uint32_t)json_integer_value(
      json_object_get(json_object_get(cfg, "cpus"), "boot_vcpus"));
  info.memory = (uint64_t)json_integer_value(
      json_object_get(json_object_get(cfg, "memory"), "size"));
  if (pid != 0) {
    if ((rc = vm_info(vm, &live)) < 0) {
      if (strict)
        return rc;
      info.state = VMH_VM_UNKNOWN;
    } else {
      info.state = ch_state(json_string_value(json_object_get(live, "state")));
      info.memory_used = (uint64_t)json_integer_value(
          json_object_get(live, "memory_actual_size"));
    }
    info.cpu_time_ns = cpu_time_ns(pid);
    if (info.state == VMH_VM_RUNNING || info.state == VMH_VM_PAUSED)
      info.uptime_s =
          started > 0 && now_s() > started ? (uint64_t)(now_s() - started) : 0;
  }
  if (json_is_true(json_object_get(vm->record, "channel")) &&
      vm_path(h->run_dir, vm->id, ".vsock", vsock, sizeof vsock) == 0) {
    info.channel_type = VMH_CHANNEL_VSOCK;
    info.channel_path = vsock;
    info.channel_port = (uint32_t)h->agent_port;
  }
  rc = fn(opaque, &info);
  json_decref(live);
  return rc;
}

static int ch_get(void *handle, const char *vm_id, vmh_vm_info_fn fn,
                  void *opaque, uint32_t flags) {
  struct ch *h = handle;
  struct chvm *vm;
  int rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) < 0)
    return rc;
  if (fn == NULL)
    return vmh_fail(host, VMH_EINVAL, "get: no visitor");
  if ((rc = vm_get(h, vm_id, &vm)) < 0)
    return rc;
  rc = report(h, vm, fn, opaque, 1);
  vm_put(h, vm);
  return rc;
}

static int ch_list(void *handle, vmh_vm_info_fn fn, void *opaque,
                   uint32_t flags) {
  struct ch *h = handle;
  struct chvm **snap = NULL;
  size_t i, n;
  int rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) < 0)
    return rc;
  if (fn == NULL)
    return vmh_fail(host, VMH_EINVAL, "list: no visitor");
  pthread_mutex_lock(&h->lock);
  n = h->n_vms;
  if (n > 0 && (snap = malloc(n * sizeof *snap)) == NULL) {
    pthread_mutex_unlock(&h->lock);
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  }
  for (i = 0; i < n; i++) {
    snap[i] = h->vms[i];
    snap[i]->refs++;
  }
  pthread_mutex_unlock(&h->lock);
  for (i = 0; i < n; i++) {
    if (rc == 0)
      rc = report(h, snap[i], fn, opaque, 0);
    vm_put(h, snap[i]);
  }
  free(snap);
  return rc;
}

static int ch_console(void *handle, const char *vm_id, vmh_console_fn fn,
                      void *opaque, uint32_t flags) {
  struct ch *h = handle;
  struct vmh_console_info ci = {0};
  char path[PATH_MAX];
  struct chvm *vm;
  uint32_t st;
  int rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) < 0)
    return rc;
  if (fn == NULL)
    return vmh_fail(host, VMH_EINVAL, "console: no visitor");
  if ((rc = vm_get(h, vm_id, &vm)) < 0)
    return rc;
  if ((rc = cur_state(vm, &st)) < 0)
    goto out;
  if (st != VMH_VM_RUNNING && st != VMH_VM_PAUSED) {
    rc = vmh_fail(host, VMH_ESTATE, "VM %s is %s: cannot open its console",
                  vm_id, state_name(st));
    goto out;
  }
  if ((rc = vm_path(h->run_dir, vm->id, ".console", path, sizeof path)) < 0)
    goto out;
  ci.struct_size = sizeof ci;
  ci.type = VMH_CONSOLE_SERIAL;
  ci.path = path;
  rc = fn(opaque, &ci);
out:
  vm_put(h, vm);
  return rc;
}

/* ---- Snapshots ------------------------------------------------------------
 * state_dir/snapshots/<vm>/<name>/: what vm.snapshot wrote (config, state,
 * memory) and vmhost.json (created, vm_state, parent).  The record names
 * the current snapshot. */

#define SNAP_META "vmhost.json"

static int snap_path(struct ch *h, const char *vm_id, const char *name,
                     char *buf, size_t size) {
  int n = snprintf(buf, size, "%s/snapshots/%s/%s", h->state_dir, vm_id, name);
  if (n < 0 || (size_t)n >= size)
    return vmh_fail(host, VMH_EINVAL, "snapshot path too long");
  return 0;
}

static int report_snap(struct ch *h, struct chvm *vm, const char *name,
                       vmh_snapshot_fn fn, void *opaque) {
  char path[PATH_MAX], meta[PATH_MAX + 16];
  struct vmh_snapshot_info si = {0};
  const char *cur = rec_str(vm->record, "snapshot");
  json_t *m;
  int rc;

  if ((rc = snap_path(h, vm->id, name, path, sizeof path)) < 0)
    return rc;
  snprintf(meta, sizeof meta, "%s/%s", path, SNAP_META);
  m = json_load_file(meta, 0, NULL);
  si.struct_size = sizeof si;
  /* A snapshot's name is unique within its VM: it is the id too. */
  si.id = name;
  si.name = name;
  si.parent = rec_str(m, "parent");
  si.created = (int64_t)json_integer_value(json_object_get(m, "created"));
  si.vm_state = (uint32_t)json_integer_value(json_object_get(m, "vm_state"));
  si.current = cur != NULL && strcmp(cur, name) == 0;
  rc = fn(opaque, &si);
  json_decref(m);
  return rc;
}

/* Sets the record's current snapshot (NULL: none) and saves it. */
static int set_current(struct ch *h, struct chvm *vm, const char *name) {
  if (json_object_set_new(vm->record, "snapshot",
                          name ? json_string(name) : json_null()) < 0)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  return save_record(h, vm);
}

/* vm.snapshot into tmp (the VM paused meanwhile), and its metadata. */
static int take_snapshot(struct ch *h, struct chvm *vm, uint32_t st,
                         const char *tmp) {
  char meta[PATH_MAX * 2];
  _cleanup_free_ char *url = NULL, *text = NULL;
  const char *cur = rec_str(vm->record, "snapshot");
  struct timespec ts;
  json_t *body;
  int rc, rc2 = 0;

  if (asprintf(&url, "file://%s", tmp) < 0)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  if (st == VMH_VM_RUNNING && (rc = api(vm, "PUT", "vm.pause", NULL, NULL)) < 0)
    return rc;
  body = json_pack("{s:s}", "destination_url", url);
  rc = body ? api_json(vm, "vm.snapshot", body)
            : vmh_fail(host, VMH_ENOMEM, "out of memory");
  json_decref(body);
  if (st == VMH_VM_RUNNING)
    rc2 = api(vm, "PUT", "vm.resume", NULL, NULL);
  if (rc < 0 || (rc = rc2) < 0)
    return rc;
  clock_gettime(CLOCK_REALTIME, &ts);
  /* created_ns orders snapshots taken within one second. */
  body =
      json_pack("{s:I, s:I, s:i, s:s?}", "created", (json_int_t)ts.tv_sec,
                "created_ns", (json_int_t)ts.tv_sec * 1000000000 + ts.tv_nsec,
                "vm_state", (json_int_t)st, "parent", cur);
  text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  snprintf(meta, sizeof meta, "%s/%s", tmp, SNAP_META);
  if (text == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  if (atomic_write(meta, text, strlen(text), 0600) < 0)
    return vmh_fail(host, errno_code(errno), "cannot write %s: %s", meta,
                    strerror(errno));
  return 0;
}

static int ch_snapshot_create(void *handle, const char *vm_id, const char *name,
                              vmh_snapshot_fn fn, void *opaque,
                              uint32_t flags) {
  struct ch *h = handle;
  char dir[PATH_MAX], tmp[PATH_MAX + 8];
  struct chvm *vm;
  uint32_t st;
  int rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) < 0 ||
      (rc = vmh_check_name(host, "snapshot", name)) < 0 ||
      (rc = vm_get(h, vm_id, &vm)) < 0)
    return rc;
  if ((rc = cur_state(vm, &st)) < 0)
    goto out;
  if (st != VMH_VM_RUNNING && st != VMH_VM_PAUSED) {
    rc = vmh_fail(host, VMH_ESTATE,
                  "VM %s is %s: Cloud Hypervisor snapshots a running or "
                  "paused VM",
                  vm_id, state_name(st));
    goto out;
  }
  if ((rc = snap_path(h, vm_id, name, dir, sizeof dir)) < 0)
    goto out;
  if (access(dir, F_OK) == 0) {
    rc = vmh_fail(host, VMH_EEXIST, "VM %s already has a snapshot '%s'", vm_id,
                  name);
    goto out;
  }
  /* Made under a name no listing shows, renamed once complete. */
  snprintf(tmp, sizeof tmp, "%s/snapshots", h->state_dir);
  mkdir(tmp, 0700);
  snap_dir(h, vm_id, tmp, sizeof tmp);
  mkdir(tmp, 0700);
  snprintf(tmp, sizeof tmp, "%s/snapshots/%s/.%s", h->state_dir, vm_id, name);
  remove_flat_dir(tmp);
  if (mkdir(tmp, 0700) < 0) {
    rc = vmh_fail(host, errno_code(errno), "cannot make %s: %s", tmp,
                  strerror(errno));
    goto out;
  }
  if ((rc = take_snapshot(h, vm, st, tmp)) < 0)
    goto undo;
  if (rename(tmp, dir) < 0) {
    rc = vmh_fail(host, errno_code(errno), "cannot rename %s: %s", tmp,
                  strerror(errno));
    goto undo;
  }
  if ((rc = set_current(h, vm, name)) < 0 ||
      (fn != NULL && (rc = report_snap(h, vm, name, fn, opaque)) < 0)) {
    remove_flat_dir(dir);
    goto out;
  }
  goto out;
undo:
  remove_flat_dir(tmp);
out:
  vm_put(h, vm);
  return rc;
}

struct snap_ent {
  char name[VMH_NAME_MAX + 1];
  int64_t created;
};

static int snap_cmp(const void *a, const void *b) {
  const struct snap_ent *x = a, *y = b;
  if (x->created != y->created)
    return x->created < y->created ? -1 : 1;
  return strcmp(x->name, y->name);
}

static int ch_snapshot_list(void *handle, const char *vm_id, vmh_snapshot_fn fn,
                            void *opaque, uint32_t flags) {
  struct ch *h = handle;
  char dir[PATH_MAX], meta[PATH_MAX * 2];
  struct snap_ent *ents = NULL, *ne;
  size_t n = 0, i;
  struct dirent *e;
  struct chvm *vm;
  DIR *d;
  int rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) < 0)
    return rc;
  if (fn == NULL)
    return vmh_fail(host, VMH_EINVAL, "snapshot_list: no visitor");
  if ((rc = vm_get(h, vm_id, &vm)) < 0)
    return rc;
  snap_dir(h, vm_id, dir, sizeof dir);
  if ((d = opendir(dir)) != NULL) {
    while ((e = readdir(d)) != NULL) {
      json_t *m;
      if (!vmh_name_valid(e->d_name))
        continue; /* ".", "..", a snapshot being made */
      if ((ne = realloc(ents, (n + 1) * sizeof *ents)) == NULL) {
        rc = vmh_fail(host, VMH_ENOMEM, "out of memory");
        break;
      }
      ents = ne;
      snprintf(ents[n].name, sizeof ents[n].name, "%.63s", e->d_name);
      snprintf(meta, sizeof meta, "%s/%s/%s", dir, e->d_name, SNAP_META);
      m = json_load_file(meta, 0, NULL);
      ents[n++].created = json_integer_value(json_object_get(m, "created_ns"));
      json_decref(m);
    }
    closedir(d);
  }
  if (n > 0)
    qsort(ents, n, sizeof *ents, snap_cmp);
  for (i = 0; i < n && rc == 0; i++)
    rc = report_snap(h, vm, ents[i].name, fn, opaque);
  free(ents);
  vm_put(h, vm);
  return rc;
}

/* The snapshot directory of id, which must exist. */
static int find_snap(struct ch *h, const char *vm_id, const char *id, char *dir,
                     size_t size) {
  int rc;

  if (!vmh_name_valid(id))
    return vmh_fail(host, VMH_ENOENT, "VM %s has no snapshot '%s'", vm_id,
                    id ? id : "");
  if ((rc = snap_path(h, vm_id, id, dir, size)) < 0)
    return rc;
  if (access(dir, F_OK) < 0)
    return vmh_fail(host, VMH_ENOENT, "VM %s has no snapshot '%s'", vm_id, id);
  return 0;
}

/* A new VMM restored from the snapshot in dir, resumed when the snapshot
 * was taken running. */
static int restore(struct ch *h, struct chvm *vm, const char *dir) {
  char meta[PATH_MAX + 16];
  _cleanup_free_ char *url = NULL;
  json_t *body, *m;
  uint32_t was;
  int rc;

  snprintf(meta, sizeof meta, "%s/%s", dir, SNAP_META);
  m = json_load_file(meta, 0, NULL);
  was = (uint32_t)json_integer_value(json_object_get(m, "vm_state"));
  json_decref(m);
  if (asprintf(&url, "file://%s", dir) < 0)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  if ((rc = vmm_spawn(h, vm)) < 0)
    return rc;
  body = json_pack("{s:s}", "source_url", url);
  rc = body ? api_json(vm, "vm.restore", body)
            : vmh_fail(host, VMH_ENOMEM, "out of memory");
  json_decref(body);
  if (rc == 0 && was == VMH_VM_RUNNING)
    rc = api(vm, "PUT", "vm.resume", NULL, NULL);
  if (rc < 0) {
    vmm_kill(h, vm, "rollback");
    return rc;
  }
  pthread_mutex_lock(&vm->lock);
  vm->started = now_s();
  if (!h->event_monitor)
    vm->state = was == VMH_VM_RUNNING ? VMH_VM_RUNNING : VMH_VM_PAUSED;
  pthread_mutex_unlock(&vm->lock);
  return 0;
}

static int ch_snapshot_revert(void *handle, const char *vm_id,
                              const char *snapshot_id, uint32_t flags) {
  struct ch *h = handle;
  char dir[PATH_MAX];
  struct chvm *vm;
  int rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) < 0 ||
      (rc = vm_get(h, vm_id, &vm)) < 0)
    return rc;
  if ((rc = find_snap(h, vm_id, snapshot_id, dir, sizeof dir)) < 0 ||
      (rc = vmm_shutdown(h, vm, "snapshot", 0)) < 0 ||
      (rc = restore(h, vm, dir)) < 0)
    goto out;
  rc = set_current(h, vm, snapshot_id);
out:
  vm_put(h, vm);
  return rc;
}

static int ch_snapshot_delete(void *handle, const char *vm_id,
                              const char *snapshot_id, uint32_t flags) {
  struct ch *h = handle;
  char dir[PATH_MAX];
  const char *cur;
  struct chvm *vm;
  int rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) < 0 ||
      (rc = vm_get(h, vm_id, &vm)) < 0)
    return rc;
  if ((rc = find_snap(h, vm_id, snapshot_id, dir, sizeof dir)) < 0)
    goto out;
  if (remove_flat_dir(dir) < 0) {
    rc = vmh_fail(host, errno_code(errno), "cannot remove %s: %s", dir,
                  strerror(errno));
    goto out;
  }
  cur = rec_str(vm->record, "snapshot");
  if (cur != NULL && strcmp(cur, snapshot_id) == 0)
    rc = set_current(h, vm, NULL);
out:
  vm_put(h, vm);
  return rc;
}

/* ---- Disk hot-plug ------------------------------------------------------- */

/* The index of the disk named name in the record's config; -1: none. */
static ssize_t find_disk(struct chvm *vm, const char *name) {
  json_t *disks = json_object_get(rec_config(vm), "disks"), *d;
  size_t i;

  json_array_foreach(disks, i, d) {
    const char *id = rec_str(d, "id");
    if (id != NULL && strcmp(id, name) == 0)
      return (ssize_t)i;
  }
  return -1;
}

/* vm.remove-device of the device id. */
static int remove_device(struct chvm *vm, const char *id, char *err,
                         size_t errlen) {
  json_t *body = json_pack("{s:s}", "id", id);
  _cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

  json_decref(body);
  if (text == NULL)
    return errbuf_fail(err, errlen, VMH_ENOMEM, "out of memory");
  return api_raw(vm, "PUT", "vm.remove-device", text, NULL, err, errlen);
}

static int ch_attach_disk(void *handle, const char *vm_id,
                          const struct vmh_disk *disk, uint32_t flags) {
  struct ch *h = handle;
  char err[ERRLEN];
  json_t *dc = NULL, *disks;
  struct chvm *vm;
  int rc, live;

  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) < 0)
    return rc;
  if (disk == NULL)
    return vmh_fail(host, VMH_EINVAL, "attach_disk: no disk");
  if ((rc = chc_disk_config(disk, &dc, err, sizeof err)) < 0)
    return vmh_fail(host, rc, "%s", err);
  if ((rc = vm_get(h, vm_id, &vm)) < 0) {
    json_decref(dc);
    return rc;
  }
  if (find_disk(vm, disk->name) >= 0) {
    rc = vmh_fail(host, VMH_EEXIST, "VM %s already has a disk %s", vm_id,
                  disk->name);
    goto out;
  }
  live = vmm_running(vm);
  if (live && (rc = api_json(vm, "vm.add-disk", dc)) < 0)
    goto out;
  disks = json_object_get(rec_config(vm), "disks");
  if (json_array_append(disks, dc) < 0 || (rc = save_record(h, vm)) < 0) {
    if (rc == 0)
      rc = vmh_fail(host, VMH_ENOMEM, "out of memory");
    if (find_disk(vm, disk->name) >= 0)
      json_array_remove(disks, (size_t)find_disk(vm, disk->name));
    if (live && remove_device(vm, disk->name, err, sizeof err) < 0)
      host->log(h->inst, VMH_LOG_WARN, "VM %s: undo the hot-plug: %s", vm_id,
                err);
  }
out:
  json_decref(dc);
  vm_put(h, vm);
  return rc;
}

static int ch_detach_disk(void *handle, const char *vm_id,
                          const char *disk_name, uint32_t flags) {
  struct ch *h = handle;
  char err[ERRLEN];
  struct chvm *vm;
  ssize_t i;
  int rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) < 0)
    return rc;
  if (disk_name == NULL)
    return vmh_fail(host, VMH_EINVAL, "detach_disk: no disk name");
  if ((rc = vm_get(h, vm_id, &vm)) < 0)
    return rc;
  i = strcmp(disk_name, CHC_SEED_ID) == 0 ? -1 : find_disk(vm, disk_name);
  if (i < 0) {
    rc = vmh_fail(host, VMH_ENOENT, "VM %s has no disk %s", vm_id, disk_name);
    goto out;
  }
  if (vmm_running(vm) &&
      (rc = remove_device(vm, disk_name, err, sizeof err)) < 0) {
    rc = vmh_fail(host, rc, "VM %s: %s", vm_id, err);
    goto out;
  }
  json_array_remove(json_object_get(rec_config(vm), "disks"), (size_t)i);
  rc = save_record(h, vm);
out:
  vm_put(h, vm);
  return rc;
}

/* ---- Instance ------------------------------------------------------------ */

static int ch_caps(void *handle, struct vmh_hypervisor_caps *ret,
                   uint32_t flags) {
  int rc;

  (void)handle;
  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) < 0)
    return rc;
  if (ret == NULL || ret->struct_size < sizeof *ret)
    return vmh_fail(host, VMH_EINVAL, "caps: struct too small");
  /* Cloud Hypervisor opens paths only: network volumes come mapped
   * locally (VMH_SOURCE_LOCAL) or not at all. */
  ret->source_types =
      VMH_SOURCE_BIT(VMH_SOURCE_FILE) | VMH_SOURCE_BIT(VMH_SOURCE_BLOCK);
  ret->binding_types = UINT32_C(1) << VMH_BINDING_TAP;
  ret->channel_type = VMH_CHANNEL_VSOCK;
  ret->features =
      VMH_HV_SNAPSHOTS | VMH_HV_HOTPLUG_DISK | VMH_HV_PAUSE | VMH_HV_CONSOLE;
  ret->max_vcpus = 255;
  ret->max_memory = 0;
  return 0;
}

/* Whether the binary can be run: a path, or a name found in PATH. */
static int binary_found(const char *bin) {
  const char *path = getenv("PATH"), *p;
  char buf[PATH_MAX];

  if (strchr(bin, '/') != NULL)
    return access(bin, X_OK) == 0;
  for (p = path; p != NULL && *p != '\0';
       p = strchr(p, ':') ? strchr(p, ':') + 1 : NULL) {
    size_t len = strcspn(p, ":");
    if (snprintf(buf, sizeof buf, "%.*s/%s", (int)len, len ? p : ".", bin) <
            (int)sizeof buf &&
        access(buf, X_OK) == 0)
      return 1;
  }
  return 0;
}

static int ch_health(void *handle, uint32_t flags) {
  struct ch *h = handle;
  int rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) < 0)
    return rc;
  if (!binary_found(h->binary))
    return vmh_fail(host, VMH_EIO, "%s not found or not executable", h->binary);
  return 0;
}

/* The pid in run_dir/<id>.pid; 0: none. */
static pid_t read_pid(struct ch *h, const char *id, struct stat *st) {
  char p[PATH_MAX], buf[32];
  ssize_t n;
  int fd;

  if (snprintf(p, sizeof p, "%s/%s.pid", h->run_dir, id) >= (int)sizeof p ||
      (fd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
    return 0;
  n = read(fd, buf, sizeof buf - 1);
  if (st != NULL && fstat(fd, st) < 0)
    memset(st, 0, sizeof *st);
  close(fd);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  return (pid_t)strtol(buf, NULL, 10);
}

/* Whether pid runs with our API socket on its command line (and is not a
 * later process that got the pid). */
static int is_our_vmm(pid_t pid, const char *sock) {
  char p[64], buf[8192];
  ssize_t n, i;
  int fd;

  snprintf(p, sizeof p, "/proc/%d/cmdline", (int)pid);
  if ((fd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
    return 0;
  n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return 0;
  for (i = 0; i < n; i++)
    if (buf[i] == '\0')
      buf[i] = ' ';
  buf[n] = '\0';
  return strstr(buf, sock) != NULL;
}

/* A VMM left running by an earlier vmhostd: adopted when it is ours and
 * alive; otherwise its files go and the VM reads as crashed. */
static void adopt(struct ch *h, struct chvm *vm) {
  char sock[PATH_MAX], evp[PATH_MAX];
  struct stat st;
  pid_t pid = read_pid(h, vm->id, &st);
  uint32_t state;
  int pidfd = -1;

  if (pid <= 0) {
    unlink_run_files(h, vm->id); /* a stale socket without a process */
    return;
  }
  if (vm_path(h->run_dir, vm->id, ".sock", sock, sizeof sock) < 0 ||
      vm_path(h->run_dir, vm->id, ".events", evp, sizeof evp) < 0)
    return;
  pidfd = spawn_pidfd(pid);
  if (pidfd < 0 || !is_our_vmm(pid, sock)) {
    if (pidfd >= 0)
      close(pidfd);
    host->log(h->inst, VMH_LOG_WARN,
              "VM %s: its VMM (pid %d) is gone; removing its files", vm->id,
              (int)pid);
    unlink_run_files(h, vm->id);
    vm->state = VMH_VM_CRASHED;
    return;
  }
  vm->pid = pid;
  vm->pidfd = pidfd;
  vm->child = 0;
  vm->started = (int64_t)st.st_mtime;
  if (h->event_monitor && (vm->evfd = open_events(evp, 0)) < 0)
    host->log(h->inst, VMH_LOG_WARN, "VM %s: no event monitor FIFO %s: %s",
              vm->id, evp, strerror(errno));
  if (cur_state(vm, &state) < 0) {
    host->log(h->inst, VMH_LOG_WARN,
              "VM %s: adopted VMM %d does not answer on %s", vm->id, (int)pid,
              sock);
    state = VMH_VM_UNKNOWN;
  }
  vm->state = state;
  host->log(h->inst, VMH_LOG_INFO,
            "VM %s: adopted its running VMM (pid %d, "
            "%s)",
            vm->id, (int)pid, state_name(state));
}

/* The VMs of the state dir (<id>.json), their VMMs adopted. */
static int load_vms(struct ch *h) {
  char p[PATH_MAX];
  struct dirent *e;
  DIR *d = opendir(h->state_dir);
  int rc = 0;

  if (d == NULL)
    return vmh_fail(host, errno_code(errno), "cannot read %s: %s", h->state_dir,
                    strerror(errno));
  while (rc == 0 && (e = readdir(d)) != NULL) {
    size_t len = strlen(e->d_name);
    char id[VMH_ID_LEN + 1];
    json_error_t je;
    struct chvm *vm;
    json_t *rec;

    if (len <= 5 || len - 5 > VMH_ID_LEN ||
        strcmp(e->d_name + len - 5, ".json") != 0)
      continue;
    snprintf(id, sizeof id, "%.*s", (int)(len - 5), e->d_name);
    if (strspn(id, "0123456789abcdef-") != strlen(id))
      continue;
    snprintf(p, sizeof p, "%s/%s", h->state_dir, e->d_name);
    rec = json_load_file(p, 0, &je);
    if (rec == NULL || rec_str(rec, "name") == NULL ||
        !json_is_object(json_object_get(rec, "config")) ||
        !json_is_array(
            json_object_get(json_object_get(rec, "config"), "disks"))) {
      rc = vmh_fail(host, VMH_EIO, "%s is not a VM record: %s", p,
                    rec ? "no name, config or disks" : je.text);
      json_decref(rec);
      break;
    }
    /* Every key other threads read is there before they can. */
    if (json_object_get(rec, "snapshot") == NULL)
      json_object_set_new(rec, "snapshot", json_null());
    if ((vm = vm_make(h, id, rec)) == NULL) {
      json_decref(rec);
      rc = vmh_fail(host, VMH_ENOMEM, "out of memory");
      break;
    }
    adopt(h, vm);
    if ((rc = vm_add(h, vm)) < 0)
      vm_free(vm);
  }
  closedir(d);
  return rc;
}

/* Run files of VMs without a record (a record removed by hand, a crash
 * between the two): a VMM still running is reported and left alone (its
 * disks may hold data); the files of one that is gone are removed. */
static void sweep_orphans(struct ch *h) {
  char sock[PATH_MAX], id[VMH_ID_LEN + 1];
  struct dirent *e;
  DIR *d = opendir(h->run_dir);

  if (d == NULL)
    return;
  while ((e = readdir(d)) != NULL) {
    size_t len = strlen(e->d_name), i;
    int known = 0;
    pid_t pid;

    if (len <= 5 || len - 5 > VMH_ID_LEN ||
        strcmp(e->d_name + len - 5, ".sock") != 0)
      continue;
    snprintf(id, sizeof id, "%.*s", (int)(len - 5), e->d_name);
    if (strspn(id, "0123456789abcdef-") != strlen(id))
      continue;
    for (i = 0; i < h->n_vms && !known; i++)
      known = strcmp(h->vms[i]->id, id) == 0;
    if (known || vm_path(h->run_dir, id, ".sock", sock, sizeof sock) < 0)
      continue;
    pid = read_pid(h, id, NULL);
    if (pid > 0 && is_our_vmm(pid, sock)) {
      host->log(h->inst, VMH_LOG_WARN,
                "VMM %d (%s) runs a VM this instance has no record of; "
                "left alone",
                (int)pid, sock);
      continue;
    }
    host->log(h->inst, VMH_LOG_INFO, "removing the stale socket %s", sock);
    unlink_run_files(h, id);
  }
  closedir(d);
}

static void ch_close(void *handle) {
  struct ch *h = handle;
  size_t i;

  if (h == NULL)
    return;
  if (h->thread_up) {
    atomic_store(&h->stopping, 1);
    wake(h);
    pthread_join(h->thread, NULL);
  }
  /* The VMMs keep running: a later open adopts them. */
  for (i = 0; i < h->n_vms; i++)
    vm_free(h->vms[i]);
  free(h->vms);
  if (h->wake_fd >= 0)
    close(h->wake_fd);
  pthread_mutex_destroy(&h->lock);
  free(h);
}

static int read_config(struct ch *h, const struct vmh_config *config) {
  int rc;

  if ((rc = host->config_string(config, "binary", "cloud-hypervisor",
                                &h->binary, 0)) < 0 ||
      (rc = host->config_path(config, "run_dir", NULL, &h->run_dir, 0)) < 0 ||
      (rc = host->config_path(config, "firmware", NULL, &h->firmware, 0)) < 0 ||
      (rc = host->config_int(config, "shutdown_timeout", 0, 86400, 60,
                             &h->shutdown_timeout, 0)) < 0 ||
      (rc = host->config_int(config, "api_timeout", 1, 3600, 30,
                             &h->api_timeout, 0)) < 0 ||
      (rc = host->config_bool(config, "event_monitor", 1, &h->event_monitor,
                              0)) < 0 ||
      (rc = host->config_int(config, "agent_port", 1, UINT32_MAX - 1, 1024,
                             &h->agent_port, 0)) < 0)
    return rc;
  if (h->binary[0] == '\0' ||
      (strchr(h->binary, '/') != NULL && h->binary[0] != '/'))
    return vmh_fail(host, VMH_EINVAL,
                    "%s: binary '%s': give an absolute path, or a bare name "
                    "looked up in PATH",
                    host->config_key_where(config, "binary"), h->binary);
  return 0;
}

static int ch_open(const struct vmh_host *host_,
                   const struct vmh_instance *inst,
                   const struct vmh_config *config, void **ret_handle,
                   uint32_t flags) {
  char probe[PATH_MAX];
  struct ch *h;
  int rc;

  (void)host_;
  if ((rc = VMH_CHECK_FLAGS(host, flags, VMH_OPEN_CHECK_ONLY)) < 0)
    return rc;
  if ((h = calloc(1, sizeof *h)) == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  h->inst = inst;
  h->wake_fd = -1;
  pthread_mutex_init(&h->lock, NULL);
  if ((rc = read_config(h, config)) < 0)
    goto fail;
  if (flags & VMH_OPEN_CHECK_ONLY) {
    *ret_handle = h;
    return 0;
  }
  h->state_dir = host->state_dir(inst);
  if (h->run_dir == NULL)
    h->run_dir = h->state_dir;
  /* The longest name a VM's socket gets must fit. */
  if ((rc = vm_path(h->run_dir, "00000000-0000-0000-0000-000000000000",
                    ".console", probe, sizeof probe)) < 0)
    goto fail;
  if (mkdir(h->run_dir, 0700) < 0 && errno != EEXIST) {
    rc = vmh_fail(host, errno_code(errno), "cannot make run_dir %s: %s",
                  h->run_dir, strerror(errno));
    goto fail;
  }
  if ((h->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
    rc = vmh_fail(host, VMH_EIO, "eventfd: %s", strerror(errno));
    goto fail;
  }
  if ((rc = load_vms(h)) < 0)
    goto fail;
  sweep_orphans(h);
  if (pthread_create(&h->thread, NULL, supervise, h) != 0) {
    rc = vmh_fail(host, VMH_EINTERNAL, "cannot start the supervisor thread");
    goto fail;
  }
  h->thread_up = 1;
  host->log(inst, VMH_LOG_DEBUG, "%zu VMs; sockets in %s", h->n_vms,
            h->run_dir);
  *ret_handle = h;
  return 0;
fail:
  ch_close(h);
  return rc;
}

static int ch_load(const struct vmh_host *host_) {
  host = host_;
  if (curl_global_init(CURL_GLOBAL_NOTHING) != CURLE_OK)
    return vmh_fail(host, VMH_EINTERNAL, "libcurl failed to initialize");
  return 0;
}

static struct vmh_hypervisor_ops ops = {
    .open = ch_open,
    .close = ch_close,
    .health = ch_health,
    .caps = ch_caps,
    .define = ch_define,
    .undefine = ch_undefine,
    .start = ch_start,
    .stop = ch_stop,
    .reboot = ch_reboot,
    .pause = ch_pause,
    .resume = ch_resume,
    .get = ch_get,
    .list = ch_list,
    .console = ch_console,
    .snapshot_create = ch_snapshot_create,
    .snapshot_list = ch_snapshot_list,
    .snapshot_revert = ch_snapshot_revert,
    .snapshot_delete = ch_snapshot_delete,
    .attach_disk = ch_attach_disk,
    .detach_disk = ch_detach_disk,
};

static struct vmh_plugin plugin = {
    .kind = VMH_KIND_HYPERVISOR,
    .name = "cloud-hypervisor",
    .version = VMH_PACKAGE_VERSION,
    .description = "Cloud Hypervisor VMMs over their REST API",
    .load = ch_load,
    .hypervisor = &ops,
};

VMH_PLUGIN_REGISTER(plugin)
