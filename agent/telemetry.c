/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* telemetry: what the guest says of itself — OS, kernel, hostname, uptime,
 * CPU and memory use, filesystems with use, NICs with addresses. */
#include <config.h>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <mntent.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "agent.h"

#define MAX_FS 64
#define MAX_NICS 32
#define MAX_ADDRS 16

typedef Vmhost__Agent__V1__TelemetryResponse Telemetry;

/* A value of os-release ("NAME=..." unquoted), or NULL. */
static char *os_release(const char *key) {
  FILE *f = fopen("/etc/os-release", "r");
  if (f == NULL)
    f = fopen("/usr/lib/os-release", "r");
  if (f == NULL)
    return NULL;
  char line[512], *ret = NULL;
  size_t kl = strlen(key);
  while (ret == NULL && fgets(line, sizeof line, f)) {
    if (strncmp(line, key, kl) || line[kl] != '=')
      continue;
    char *v = line + kl + 1;
    v[strcspn(v, "\n")] = 0;
    size_t l = strlen(v);
    if (l >= 2 && (v[0] == '"' || v[0] == '\'') && v[l - 1] == v[0]) {
      v[l - 1] = 0;
      v++;
    }
    ret = strdup(v);
  }
  fclose(f);
  return ret;
}

/* Busy share of all CPUs since the previous call (0 on the first). */
static double cpu_use(void) {
  static unsigned long long last_busy, last_total;
  unsigned long long v[8] = {0};
  FILE *f = fopen("/proc/stat", "r");
  if (f == NULL)
    return 0;
  int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
                 &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
  fclose(f);
  if (n < 4)
    return 0;
  unsigned long long total = 0, idle = v[3] + v[4];
  for (int i = 0; i < 8; i++)
    total += v[i];
  unsigned long long busy = total - idle;
  double r = 0;
  if (last_total && total > last_total)
    r = (double)(busy - last_busy) / (double)(total - last_total);
  last_busy = busy;
  last_total = total;
  return r;
}

static uint64_t mem_available(void) {
  FILE *f = fopen("/proc/meminfo", "r");
  char line[128];
  unsigned long long kb = 0;
  if (f == NULL)
    return 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
      break;
  fclose(f);
  return (uint64_t)kb * 1024;
}

static int add_fs(Telemetry *t, const struct mntent *m) {
  static const char *const skip[] = {
      "proc",    "sysfs",   "devpts",      "cgroup",   "cgroup2", "securityfs",
      "debugfs", "tracefs", "pstore",      "bpf",      "mqueue",  "configfs",
      "fusectl", "autofs",  "binfmt_misc", "efivarfs", "nsfs",    "hugetlbfs"};
  for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
    if (!strcmp(m->mnt_type, skip[i]))
      return 0;
  struct statvfs sv;
  if (statvfs(m->mnt_dir, &sv) < 0)
    return 0;
  Vmhost__Agent__V1__Filesystem *fs = malloc(sizeof *fs);
  if (fs == NULL)
    return -1;
  vmhost__agent__v1__filesystem__init(fs);
  t->filesystems[t->n_filesystems++] = fs;
  fs->size = (uint64_t)sv.f_blocks * sv.f_frsize;
  fs->used = (uint64_t)(sv.f_blocks - sv.f_bfree) * sv.f_frsize;
  fs->read_only = hasmntopt(m, "ro") != NULL;
  if ((fs->mountpoint = strdup(m->mnt_dir)) == NULL ||
      (fs->device = strdup(m->mnt_fsname)) == NULL ||
      (fs->type = strdup(m->mnt_type)) == NULL)
    return -1;
  return 0;
}

static int filesystems(Telemetry *t) {
  if ((t->filesystems = calloc(MAX_FS, sizeof *t->filesystems)) == NULL)
    return -1;
  FILE *f = setmntent("/proc/self/mounts", "r");
  if (f == NULL)
    return 0;
  struct mntent *m;
  int r = 0;
  while (r == 0 && t->n_filesystems < MAX_FS && (m = getmntent(f)) != NULL)
    r = add_fs(t, m);
  endmntent(f);
  return r;
}

static Vmhost__Agent__V1__Nic *nic_of(Telemetry *t, const char *name) {
  for (size_t i = 0; i < t->n_nics; i++)
    if (!strcmp(t->nics[i]->name, name))
      return t->nics[i];
  if (t->n_nics == MAX_NICS)
    return NULL;
  Vmhost__Agent__V1__Nic *n = calloc(1, sizeof *n);
  if (n == NULL)
    return NULL;
  vmhost__agent__v1__nic__init(n);
  t->nics[t->n_nics++] = n;
  char path[64 + IF_NAMESIZE], mac[32] = "";
  snprintf(path, sizeof path, "/sys/class/net/%s/address", name);
  FILE *f = fopen(path, "r");
  if (f) {
    if (fgets(mac, sizeof mac, f))
      mac[strcspn(mac, "\n")] = 0;
    fclose(f);
  }
  n->name = strdup(name);
  n->mac = strdup(mac);
  n->addresses = calloc(MAX_ADDRS, sizeof *n->addresses);
  return n->name && n->mac && n->addresses ? n : NULL;
}

static int prefix_len(const struct sockaddr *mask) {
  const unsigned char *b;
  size_t len;
  if (mask == NULL)
    return 0;
  if (mask->sa_family == AF_INET) {
    b = (const unsigned char *)&((const struct sockaddr_in *)mask)->sin_addr;
    len = 4;
  } else {
    b = (const unsigned char *)&((const struct sockaddr_in6 *)mask)->sin6_addr;
    len = 16;
  }
  int n = 0;
  for (size_t i = 0; i < len; i++)
    n += __builtin_popcount(b[i]);
  return n;
}

static int nics(Telemetry *t) {
  if ((t->nics = calloc(MAX_NICS, sizeof *t->nics)) == NULL)
    return -1;
  struct ifaddrs *ifs, *i;
  if (getifaddrs(&ifs) < 0)
    return 0;
  int r = 0;
  for (i = ifs; r == 0 && i; i = i->ifa_next) {
    if (i->ifa_flags & IFF_LOOPBACK)
      continue;
    Vmhost__Agent__V1__Nic *n = nic_of(t, i->ifa_name);
    if (n == NULL) {
      r = t->n_nics == MAX_NICS ? 0 : -1;
      continue;
    }
    int fam = i->ifa_addr ? i->ifa_addr->sa_family : 0;
    if ((fam != AF_INET && fam != AF_INET6) || n->n_addresses == MAX_ADDRS)
      continue;
    char a[INET6_ADDRSTRLEN], s[INET6_ADDRSTRLEN + 16];
    const void *src =
        fam == AF_INET
            ? (const void *)&((struct sockaddr_in *)i->ifa_addr)->sin_addr
            : (const void *)&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
    inet_ntop(fam, src, a, sizeof a);
    snprintf(s, sizeof s, "%s/%d", a, prefix_len(i->ifa_netmask));
    if ((n->addresses[n->n_addresses] = strdup(s)) == NULL)
      r = -1;
    else
      n->n_addresses++;
  }
  freeifaddrs(ifs);
  return r;
}

int do_telemetry(const struct agent_config *c, AgentResponse *resp) {
  (void)c;
  Telemetry *t = malloc(sizeof *t);
  if (t == NULL)
    return -1;
  vmhost__agent__v1__telemetry_response__init(t);
  resp->body_case = VMHOST__AGENT__V1__RESPONSE__BODY_TELEMETRY;
  resp->telemetry = t;
  struct utsname u;
  struct sysinfo si;
  char host[256] = "";
  uname(&u);
  sysinfo(&si);
  gethostname(host, sizeof host - 1);
  char *name = os_release("PRETTY_NAME"), *ver = os_release("VERSION_ID");
  t->os_name = name ? name : strdup(u.sysname);
  t->os_version = ver ? ver : strdup("");
  t->kernel = strdup(u.release);
  t->arch = strdup(u.machine);
  t->hostname = strdup(host);
  if (!t->os_name || !t->os_version || !t->kernel || !t->arch || !t->hostname)
    return -1;
  t->uptime_s = (uint64_t)si.uptime;
  t->cpus = (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
  t->cpu_use = cpu_use();
  t->memory_total = (uint64_t)si.totalram * si.mem_unit;
  t->memory_available = mem_available();
  return filesystems(t) < 0 || nics(t) < 0 ? -1 : 0;
}
