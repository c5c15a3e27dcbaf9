/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* freeze/thaw: FIFREEZE on every mounted writable filesystem that supports
 * it (children before parents), FITHAW on thaw.  The thaw is guaranteed:
 * a watchdog process forked at freeze time thaws everything after the
 * timeout, whatever happens to the host, the channel or this process; a
 * thaw request kills the watchdog.  While frozen the agent writes nothing
 * but its channel and stderr. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <mntent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"

#define E(x) VMHOST__AGENT__V1__ERROR_CODE__ERROR_##x
#define MAX_MOUNTS 256

/* What is frozen now (owned here; mount points malloc'ed). */
static char *frozen[MAX_MOUNTS];
static size_t n_frozen;
static pid_t watchdog = -1;

static int pseudo(const char *type) {
  static const char *const skip[] = {
      "proc",       "sysfs",    "devtmpfs", "devpts", "cgroup",      "cgroup2",
      "securityfs", "debugfs",  "tracefs",  "pstore", "bpf",         "mqueue",
      "hugetlbfs",  "configfs", "fusectl",  "autofs", "binfmt_misc", "efivarfs",
      "rpc_pipefs", "nsfs",     "ramfs",    "rootfs", "squashfs",    "iso9660"};
  for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
    if (!strcmp(type, skip[i]))
      return 1;
  return 0;
}

/* FITHAW on each frozen mount point; returns how many thawed. */
static uint32_t thaw_all(void) {
  uint32_t n = 0;
  while (n_frozen) {
    char *m = frozen[--n_frozen];
    int fd = open(m, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0 && ioctl(fd, FITHAW, 0) == 0)
      n++;
    else
      agent_log("cannot thaw %s: %s", m, strerror(errno));
    if (fd >= 0)
      close(fd);
    free(m);
  }
  return n;
}

static void stop_watchdog(void) {
  if (watchdog > 0) {
    kill(watchdog, SIGKILL);
    waitpid(watchdog, NULL, 0);
  }
  watchdog = -1;
}

/* When the watchdog has fired, the filesystems are thawed already: forget
 * them. */
static void reap_watchdog(void) {
  if (watchdog > 0 && waitpid(watchdog, NULL, WNOHANG) == watchdog) {
    watchdog = -1;
    while (n_frozen)
      free(frozen[--n_frozen]);
  }
}

void freeze_release(void) {
  stop_watchdog();
  if (n_frozen)
    agent_log("thawed %u filesystems", thaw_all());
}

/* The watchdog: sleeps, then thaws what the parent froze (its copy of the
 * list).  Killed by a thaw request before that. */
static pid_t start_watchdog(uint32_t timeout_s) {
  pid_t pid = fork();
  if (pid != 0)
    return pid;
  signal(SIGTERM, SIG_DFL);
  signal(SIGINT, SIG_IGN);
  unsigned left = timeout_s;
  while ((left = sleep(left)) > 0) {
  }
  uint32_t n = thaw_all();
  agent_log("thawed %u filesystems: no thaw came within %us", n, timeout_s);
  _exit(0);
}

static int freeze_one(const struct mntent *m, dev_t *devs, size_t *n_devs) {
  struct stat st;
  int fd = open(m->mnt_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return 0; /* hidden under another mount: not ours to freeze */
  if (fstat(fd, &st) < 0) {
    close(fd);
    return 0;
  }
  for (size_t i = 0; i < *n_devs; i++)
    if (devs[i] == st.st_dev) { /* the same filesystem mounted twice */
      close(fd);
      return 0;
    }
  int r = ioctl(fd, FIFREEZE, 0);
  int e = errno;
  close(fd);
  if (r < 0) {
    if (e == EOPNOTSUPP || e == ENOTTY || e == EINVAL)
      return 0;
    errno = e;
    return -1;
  }
  if ((frozen[n_frozen] = strdup(m->mnt_dir)) == NULL) {
    /* Thaw it at once: we could not remember it. */
    fd = open(m->mnt_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
      ioctl(fd, FITHAW, 0);
      close(fd);
    }
    errno = ENOMEM;
    return -1;
  }
  n_frozen++;
  devs[(*n_devs)++] = st.st_dev;
  return 0;
}

/* The writable mounts, in mount order. */
static size_t list_mounts(struct mntent *ms, char **bufs) {
  FILE *f = setmntent("/proc/self/mounts", "r");
  size_t n = 0;
  struct mntent *m;
  if (f == NULL)
    return 0;
  while (n < MAX_MOUNTS && (m = getmntent(f)) != NULL) {
    if (pseudo(m->mnt_type) || hasmntopt(m, "ro"))
      continue;
    /* getmntent's strings die with the next call: keep copies. */
    if ((bufs[n] = strdup(m->mnt_dir)) == NULL)
      break;
    ms[n].mnt_dir = bufs[n];
    ms[n].mnt_type = NULL;
    n++;
  }
  endmntent(f);
  return n;
}

int do_freeze(const struct agent_config *c,
              const Vmhost__Agent__V1__FreezeRequest *req,
              AgentResponse *resp) {
  if (!c->allow_freeze)
    return agent_error(resp, E(PERMISSION_DENIED),
                       "freeze is disabled (allow_freeze)");
  reap_watchdog();
  if (n_frozen || watchdog > 0)
    return agent_error(resp, E(BUSY), "already frozen; thaw first");
  uint32_t timeout = req->timeout_s && req->timeout_s < c->freeze_timeout_s
                         ? req->timeout_s
                         : c->freeze_timeout_s;
  static struct mntent ms[MAX_MOUNTS];
  static char *bufs[MAX_MOUNTS];
  static dev_t devs[MAX_MOUNTS];
  size_t n = list_mounts(ms, bufs), n_devs = 0;
  Vmhost__Agent__V1__FreezeResponse *f = malloc(sizeof *f);
  int r = -1;
  if (f == NULL)
    goto out;
  vmhost__agent__v1__freeze_response__init(f);
  resp->body_case = VMHOST__AGENT__V1__RESPONSE__BODY_FREEZE;
  resp->freeze = f;
  if ((f->frozen = calloc(n + 1, sizeof *f->frozen)) == NULL)
    goto out;
  /* Children before parents: the reverse of mount order. */
  for (size_t i = n; i-- > 0;) {
    if (freeze_one(&ms[i], devs, &n_devs) < 0) {
      agent_error(resp, E(IO), "cannot freeze %s: %s; thawed the others",
                  ms[i].mnt_dir, strerror(errno));
      thaw_all();
      goto out;
    }
  }
  if (n_frozen && (watchdog = start_watchdog(timeout)) < 0) {
    agent_error(resp, E(IO), "cannot start the thaw watchdog: %s; thawed",
                strerror(errno));
    thaw_all();
    goto out;
  }
  for (size_t i = 0; i < n_frozen; i++)
    if ((f->frozen[f->n_frozen] = strdup(frozen[i])) != NULL)
      f->n_frozen++;
  agent_log("froze %zu filesystems (thaw in %us at the latest)", n_frozen,
            timeout);
  r = 0;
out:
  for (size_t i = 0; i < n; i++)
    free(bufs[i]);
  return r;
}

int do_thaw(AgentResponse *resp) {
  reap_watchdog();
  stop_watchdog();
  Vmhost__Agent__V1__ThawResponse *t = malloc(sizeof *t);
  uint32_t n = thaw_all();
  agent_log("thawed %u filesystems", n);
  if (t == NULL)
    return -1;
  vmhost__agent__v1__thaw_response__init(t);
  t->thawed = n;
  resp->body_case = VMHOST__AGENT__V1__RESPONSE__BODY_THAW;
  resp->thaw = t;
  return 0;
}
