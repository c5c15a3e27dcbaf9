/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Host information from the kernel's files. */
#include <config.h>

#include "hostinfo.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "monotime.h"
#include "vm.h"

/* The value after "key" and a separator in a "key<sep>value" file. */
static int read_field(const char *file, const char *key, char sep, char *out,
                      size_t size) {
  _cleanup_fclose_ FILE *f = fopen(file, "re");
  if (!f)
    return -1;
  char line[512];
  size_t klen = strlen(key);
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, key, klen) != 0)
      continue;
    char *p = line + klen;
    while (*p == ' ' || *p == '\t')
      p++;
    if (*p != sep)
      continue;
    p++;
    while (*p == ' ' || *p == '"')
      p++;
    p[strcspn(p, "\"\n")] = '\0';
    snprintf(out, size, "%s", p);
    return 0;
  }
  return -1;
}

static uint64_t meminfo_kib(const char *key) {
  char v[64];
  if (read_field("/proc/meminfo", key, ':', v, sizeof v) < 0)
    return 0;
  return strtoull(v, NULL, 10) * 1024;
}

/* Sockets and cores per socket from /proc/cpuinfo (physical id, core id). */
static void cpu_topology(uint32_t *sockets, uint32_t *cores) {
  _cleanup_fclose_ FILE *f = fopen("/proc/cpuinfo", "re");
  long max_pkg = -1;
  uint32_t cpu_cores = 0;
  char line[512];
  while (f && fgets(line, sizeof line, f)) {
    const char *colon = strchr(line, ':');
    if (!colon)
      continue;
    if (strncmp(line, "physical id", 11) == 0) {
      long id = strtol(colon + 1, NULL, 10);
      if (id > max_pkg)
        max_pkg = id;
    } else if (strncmp(line, "cpu cores", 9) == 0) {
      cpu_cores = (uint32_t)strtoul(colon + 1, NULL, 10);
    }
  }
  *sockets = max_pkg >= 0 ? (uint32_t)max_pkg + 1 : 1;
  *cores = cpu_cores ? cpu_cores : (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
}

/* What does not change while vmhostd runs, read once: /proc/cpuinfo alone
 * costs tens of microseconds, and host_info is answered inline on the
 * caller's thread. */
static struct {
  char os_name[128], os_version[128], model[256];
  uint32_t threads, sockets, cores;
  uint64_t memory_total;
} fixed = {.os_name = "Linux"};
static pthread_once_t fixed_once = PTHREAD_ONCE_INIT;

static void read_fixed(void) {
  read_field("/etc/os-release", "NAME", '=', fixed.os_name,
             sizeof fixed.os_name);
  read_field("/etc/os-release", "VERSION_ID", '=', fixed.os_version,
             sizeof fixed.os_version);
  read_field("/proc/cpuinfo", "model name", ':', fixed.model,
             sizeof fixed.model);
  fixed.threads = (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
  fixed.memory_total = meminfo_kib("MemTotal");
  cpu_topology(&fixed.sockets, &fixed.cores);
}

/* MemAvailable, read again at most every AVAILABLE_MS: the kernel builds
 * the whole of /proc/meminfo for each read (about half of what answering
 * GET /api/v1/host cost), and the figure is an estimate that moves with
 * the page cache anyway.  Racing readers may both read the file: harmless. */
#define AVAILABLE_MS 1000
static _Atomic uint64_t available, available_at_ms;

static uint64_t memory_available(void) {
  uint64_t t = mono_coarse_ms(), at = atomic_load(&available_at_ms);
  if (at && t - at < AVAILABLE_MS)
    return atomic_load(&available);
  uint64_t v = meminfo_kib("MemAvailable");
  atomic_store(&available, v);
  atomic_store(&available_at_ms, t ? t : 1);
  return v;
}

/* sysinfo()'s uptime (boot time in seconds, rounded up as the kernel
 * rounds it) from the vDSO's clock: no system call. */
static uint64_t uptime_s(void) {
  struct timespec t;
  if (clock_gettime(CLOCK_BOOTTIME, &t) < 0)
    return 0;
  return (uint64_t)t.tv_sec + (t.tv_nsec ? 1 : 0);
}

void hostinfo_read(void (*fn)(void *opaque, const struct vmh_host_info *h),
                   void *opaque) {
  pthread_once(&fixed_once, read_fixed);
  struct utsname u;
  if (uname(&u) < 0)
    memset(&u, 0, sizeof u);
  struct vmh_host_info h = {
      .struct_size = sizeof h,
      .hostname = u.nodename,
      .os_name = fixed.os_name,
      .os_version = fixed.os_version,
      .kernel = u.release,
      .arch = u.machine,
      .cpu_model = fixed.model,
      .cpu_sockets = fixed.sockets,
      .cpu_cores = fixed.cores,
      .cpu_threads = fixed.threads,
      .memory_total = fixed.memory_total,
      .memory_available = memory_available(),
      .uptime_s = uptime_s(),
      .n_vms = (uint32_t)vms_count(),
  };
  fn(opaque, &h);
}
