/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libvmhutil (plugins/common) and the ABI's header helpers: crash-safe
 * writes, spawning, the port table and MACs, histograms, URLs, the string
 * map. */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vmhost/vmhost-plugin.h>

#include "atomicfile.h"
#include "core-unit.h"
#include "errname.h"
#include "histogram.h"
#include "netcommon.h"
#include "spawnproc.h"
#include "strmap.h"
#include "url.h"

static char dir[] = "/tmp/vmhutil.XXXXXX";

static char *slurp(const char *path) {
  static char buf[256];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  CHECK(fd >= 0);
  ssize_t n = read(fd, buf, sizeof buf - 1);
  CHECK(n >= 0);
  buf[n] = '\0';
  close(fd);
  return buf;
}

/* The entries of dir, sorted, space-separated. */
static const char *listing(void) {
  static char out[512];
  struct dirent **names;
  int n = scandir(dir, &names, NULL, alphasort);
  CHECK(n >= 0);
  out[0] = '\0';
  for (int i = 0; i < n; i++) {
    if (strcmp(names[i]->d_name, ".") && strcmp(names[i]->d_name, "..")) {
      strcat(out, *out ? " " : "");
      strcat(out, names[i]->d_name);
    }
    free(names[i]);
  }
  free(names);
  return out;
}

static void test_atomic_write(void) {
  char path[64], sub[64];
  struct stat st;

  snprintf(path, sizeof path, "%s/state", dir);
  CHECK_INT(atomic_write(path, "one\n", 4, 0640), ==, 0);
  CHECK_STR(slurp(path), "one\n");
  CHECK(stat(path, &st) == 0);
  CHECK_INT(st.st_mode & 07777, ==, 0640); /* exactly: no umask */
  CHECK_INT(atomic_write(path, "two", 3, 0600), ==, 0);
  CHECK_STR(slurp(path), "two");
  CHECK_STR(listing(), "state"); /* no temporary file left */

  /* A relative path: the directory to fsync is ".". */
  char cwd[256];
  CHECK(getcwd(cwd, sizeof cwd) != NULL);
  CHECK(chdir(dir) == 0);
  CHECK_INT(atomic_write("rel", "r", 1, 0600), ==, 0);
  CHECK_INT(fsync_parent("rel"), ==, 0);
  CHECK(chdir(cwd) == 0);
  CHECK_STR(slurp(path), "two");
  snprintf(sub, sizeof sub, "%s/rel", dir);
  CHECK(unlink(sub) == 0);

  /* Failures leave nothing behind and say why through errno. */
  snprintf(sub, sizeof sub, "%s/none/state", dir);
  errno = 0;
  CHECK_INT(atomic_write(sub, "x", 1, 0600), ==, -1);
  CHECK_INT(errno, ==, ENOENT);
  snprintf(sub, sizeof sub, "%s/adir", dir);
  CHECK(mkdir(sub, 0700) == 0);
  errno = 0;
  CHECK_INT(atomic_write(sub, "x", 1, 0600), ==, -1); /* rename over a dir */
  CHECK_INT(errno, ==, EISDIR);
  CHECK_STR(listing(), "adir state");
  CHECK(rmdir(sub) == 0);

  /* Streaming, then giving up: the old content stays. */
  struct atomic_file af;
  CHECK_INT(atomic_open(&af, path, 0600), ==, 0);
  CHECK_INT(write_all(af.fd, "partial", 7), ==, 0);
  atomic_abort(&af);
  CHECK_INT(af.fd, ==, -1);
  CHECK_STR(slurp(path), "two");
  CHECK_STR(listing(), "state");
}

/* Run sh -c script through spawn_process; its wait status. */
static int sh(const char *script, int out_fd) {
  char *argv[] = {"sh", "-c", (char *)script, NULL};
  pid_t pid;
  CHECK_INT(spawn_process(argv, out_fd, -1, &pid), ==, 0);
  return spawn_wait(pid);
}

/* publish_at: a file made under a temporary name appears under its name,
 * never over an existing one. */
static void test_publish(void) {
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  CHECK(dfd >= 0);
  int fd =
      openat(dfd, ".tmp-vol", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  CHECK(fd >= 0);
  CHECK_INT(write_all(fd, "vol", 3), ==, 0);
  CHECK_INT(publish_at(fd, dfd, ".tmp-vol", "vol"), ==, 0);
  char path[64];
  snprintf(path, sizeof path, "%s/vol", dir);
  CHECK_STR(listing(), "state vol");
  CHECK_STR(slurp(path), "vol");
  close(fd);
  /* A second file published under the same name is refused: EEXIST, the
   * first kept, the temporary left for the caller to remove. */
  fd = openat(dfd, ".tmp-vol", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  CHECK(fd >= 0);
  errno = 0;
  CHECK_INT(publish_at(fd, dfd, ".tmp-vol", "vol"), ==, -1);
  CHECK_INT(errno, ==, EEXIST);
  CHECK_STR(listing(), ".tmp-vol state vol");
  CHECK_STR(slurp(path), "vol");
  close(fd);
  CHECK(unlinkat(dfd, ".tmp-vol", 0) == 0 && unlinkat(dfd, "vol", 0) == 0);
  close(dfd);
}

static void test_spawn(void) {
  sigset_t block, old;
  char script[128];
  int p[2], status;

  /* The parent blocks SIGTERM and ignores SIGPIPE, as vmhostd does: the
   * child must get neither. */
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  CHECK(pthread_sigmask(SIG_BLOCK, &block, &old) == 0);
  signal(SIGPIPE, SIG_IGN);
  status = sh("kill -TERM $$; exit 0", -1);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
  status = sh("kill -PIPE $$; exit 0", -1);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE);
  signal(SIGPIPE, SIG_DFL);
  CHECK(pthread_sigmask(SIG_SETMASK, &old, NULL) == 0);

  /* A descriptor the parent forgot to mark close-on-exec stays here. */
  int leak = open("/dev/null", O_RDONLY);
  CHECK(leak > 2);
  snprintf(script, sizeof script, "test -e /proc/$$/fd/%d && exit 3; exit 0",
           leak);
  status = sh(script, -1);
  CHECK(WIFEXITED(status));
  CHECK_INT(WEXITSTATUS(status), ==, 0);
  close(leak);

  /* stdout to the given fd, stdin from /dev/null. */
  CHECK(pipe2(p, O_CLOEXEC) == 0);
  status = sh("read x; echo \"in=$x out\"", p[1]);
  close(p[1]);
  CHECK(WIFEXITED(status));
  char buf[64];
  ssize_t n = read(p[0], buf, sizeof buf - 1);
  close(p[0]);
  CHECK(n > 0);
  buf[n] = '\0';
  CHECK_STR(buf, "in= out\n");

  char *missing[] = {"vmhutil-no-such-program", NULL};
  pid_t pid;
  CHECK_INT(spawn_process(missing, -1, -1, &pid), ==, ENOENT);
}

/* spawn_process_group: the child leads a group of its own; spawn_pidfd
 * turns readable when it exits, and the status is still there to reap. */
static void test_spawn_group(void) {
  char *argv[] = {"sh", "-c", "exit 7", NULL};
  struct pollfd pfd;
  int fd, status;
  pid_t pid;

  CHECK_INT(spawn_process_group(argv, -1, -1, &pid), ==, 0);
  /* Not reaped yet: even exited, the child still has its group. */
  CHECK(getpgid(pid) == pid);
  fd = spawn_pidfd(pid);
  CHECK(fd >= 0);
  CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  pfd = (struct pollfd){fd, POLLIN, 0};
  CHECK_INT(poll(&pfd, 1, 60000), ==, 1);
  status = spawn_wait(pid);
  CHECK(WIFEXITED(status));
  CHECK_INT(WEXITSTATUS(status), ==, 7);
  close(fd);
  errno = 0;
  CHECK_INT(spawn_pidfd(pid), ==, -1);
  CHECK_INT(errno, ==, ESRCH);
}

struct port {
  struct net_port key;
  int n;
};

static uint32_t counter(void *opaque) {
  return (*(uint32_t *)opaque)++;
}

static int taken_1(void *opaque, const char *mac) {
  (void)opaque;
  return strcmp(mac, "52:54:00:00:00:01") == 0;
}

static void test_ports(void) {
  struct ptrvec t = {0};
  struct port a = {{"vm-a", "net0", "52:54:00:00:00:00"}, 1};
  struct port b = {{"vm-b", "net0", "52:54:00:00:00:02"}, 2};
  struct port c = {{"vm-a", "net1", "52:54:00:00:00:03"}, 3};
  size_t i;
  char mac[NET_MAC_LEN + 1];
  uint32_t next = 0;

  CHECK_INT(ptrvec_insert(&t, 0, &a.key), ==, 0);
  CHECK_INT(ptrvec_insert(&t, 1, &b.key), ==, 0);
  CHECK_INT(ptrvec_insert(&t, 1, &c.key), ==, 0); /* a c b */
  CHECK(net_ports_find(&t, "vm-a", "net1", &i) == &c.key);
  CHECK_INT(i, ==, 1);
  CHECK(net_ports_find(&t, "vm-b", "net1", NULL) == NULL);
  CHECK(net_ports_find_mac(&t, "52:54:00:00:00:02") == &b.key);
  CHECK(ptrvec_remove(&t, 0) == &a.key); /* c b */
  CHECK(net_ports_find(&t, "vm-a", "net0", NULL) == NULL);
  CHECK(t.v[0] == &c.key && t.v[1] == &b.key);
  CHECK_INT(ptrvec_insert(&t, 0, &a.key), ==, 0); /* a c b */

  /* 0 is held by a, 1 refused by `taken`, 2 and 3 held: 4 it is. */
  CHECK_INT(net_ports_new_mac(&t, counter, taken_1, &next, 10, mac), ==, 0);
  CHECK_STR(mac, "52:54:00:00:00:04");
  next = 0;
  CHECK_INT(net_ports_new_mac(&t, counter, taken_1, &next, 4, mac), ==, -1);
  net_format_mac(0x12abcdef, mac); /* the low 24 bits */
  CHECK_STR(mac, "52:54:00:ab:cd:ef");
  CHECK(net_hash_port("a", "b") != net_hash_port("ab", ""));
  ptrvec_free(&t);
  CHECK(t.v == NULL && t.n == 0);
}

static void put_labels(FILE *f, const void *opaque) {
  fprintf(f, "op=\"%s\"", (const char *)opaque);
}

static void test_histogram(void) {
  static const struct hist_layout l = {1000, 3, {1, 500, 2000}}; /* ms */
  struct hist h = {0};
  char *text = NULL;
  size_t len = 0;

  hist_observe(&h, &l, 0);
  hist_observe(&h, &l, 1); /* le is inclusive */
  hist_observe(&h, &l, 501);
  hist_observe(&h, &l, 2500); /* +Inf */
  CHECK_INT(hist_count(&h, &l), ==, 4);
  FILE *f = open_memstream(&text, &len);
  CHECK(f != NULL);
  hist_write(f, "x_seconds", put_labels, "get", &h, &l);
  fclose(f);
  CHECK_STR(text,
            "x_seconds_bucket{op=\"get\",le=\"0.001\"} 2\n"
            "x_seconds_bucket{op=\"get\",le=\"0.5\"} 2\n"
            "x_seconds_bucket{op=\"get\",le=\"2\"} 3\n"
            "x_seconds_bucket{op=\"get\",le=\"+Inf\"} 4\n"
            "x_seconds_sum{op=\"get\"} 3.002\n"
            "x_seconds_count{op=\"get\"} 4\n");
  free(text);
}

/* Label values and HELP text escaped as the exposition format wants. */
static void test_prom_escape(void) {
  char buf[16], *text = NULL;
  size_t len = 0;

  CHECK_INT(prom_escape(buf, sizeof buf, "a\\b\"c\nd"), ==, 10);
  CHECK_STR(buf, "a\\\\b\\\"c\\nd");
  CHECK_INT(prom_escape(buf, sizeof buf, NULL), ==, 0);
  CHECK_STR(buf, "");
  /* Cut to fit, never in the middle of an escape. */
  CHECK_INT(prom_escape(buf, 5, "abc\"d"), ==, 3);
  CHECK_STR(buf, "abc");
  CHECK_INT(prom_escape(buf, 1, "abc"), ==, 0);
  FILE *f = open_memstream(&text, &len);
  CHECK(f != NULL);
  prom_put_label(f, "x\"y\\z\n");
  prom_put_family(f, "n_total", "counter", "say \"a\\b\"\nok");
  fclose(f);
  CHECK_STR(text,
            "x\\\"y\\\\z\\n"
            "# HELP n_total say \"a\\\\b\"\\nok\n"
            "# TYPE n_total counter\n");
  free(text);
}

struct grown {
  uint32_t struct_size;
  uint32_t old;
  uint64_t appended;
};

/* errno_code: what a failed system call means to a client. */
static void test_errno_code(void) {
  CHECK_INT(errno_code(ENOENT), ==, VMH_ENOENT);
  CHECK_INT(errno_code(ENOTDIR), ==, VMH_ENOENT);
  CHECK_INT(errno_code(EEXIST), ==, VMH_EEXIST);
  CHECK_INT(errno_code(EDQUOT), ==, VMH_ENOSPC);
  CHECK_INT(errno_code(EROFS), ==, VMH_EPERM);
  CHECK_INT(errno_code(EBUSY), ==, VMH_EBUSY);
  CHECK_INT(errno_code(EIO), ==, VMH_EIO);
  CHECK_INT(errno_code(ECONNREFUSED), ==, VMH_EIO);
}

static void test_header_helpers(void) {
  char long_name[VMH_NAME_MAX + 2];

  CHECK(vmh_name_valid("a") && vmh_name_valid("data_1.img") &&
        vmh_name_valid("0-x"));
  CHECK(!vmh_name_valid(NULL) && !vmh_name_valid("") && !vmh_name_valid("-x") &&
        !vmh_name_valid(".x") && !vmh_name_valid("_x") &&
        !vmh_name_valid("A") && !vmh_name_valid("a/b") &&
        !vmh_name_valid("a b"));
  memset(long_name, 'a', sizeof long_name);
  long_name[VMH_NAME_MAX] = '\0';
  CHECK(vmh_name_valid(long_name));
  long_name[VMH_NAME_MAX] = 'a';
  long_name[VMH_NAME_MAX + 1] = '\0';
  CHECK(!vmh_name_valid(long_name));

  struct grown g = {.struct_size = 8};
  CHECK(VMH_HAS_FIELD(&g, old));
  CHECK(!VMH_HAS_FIELD(&g, appended));
  g.struct_size = sizeof g;
  CHECK(VMH_HAS_FIELD(&g, appended));
}

static void test_url(void) {
  char *u = url_path("file://", "/srv/my pool/100%/ü/a:b~c");
  CHECK(u && strcmp(u, "file:///srv/my%20pool/100%25/%C3%BC/a:b~c") == 0);
  free(u);
  u = url_path("nfs://server", "");
  CHECK(u && strcmp(u, "nfs://server") == 0);
  free(u);
}

/* Against a plain array: every key maps to what was put last, removed keys
 * are gone, and removal (which shifts entries back) loses no other key. */
static void test_strmap(void) {
  enum { N = 5000 };
  static char keys[N][16];
  struct strmap m = {0};

  CHECK(strmap_get(&m, "x") == NULL && strmap_remove(&m, "x") == NULL);
  for (int i = 0; i < N; i++) {
    snprintf(keys[i], sizeof keys[i], "vm-%d", i);
    CHECK_INT(strmap_put(&m, keys[i], keys[i]), ==, 0);
  }
  CHECK_INT(m.n, ==, N);
  CHECK_INT(strmap_put(&m, keys[7], keys[8]), ==, 0); /* replaces */
  CHECK_INT(m.n, ==, N);
  CHECK(strmap_get(&m, "vm-7") == keys[8]);
  CHECK_INT(strmap_put(&m, keys[7], keys[7]), ==, 0);
  for (int i = 0; i < N; i += 3)
    CHECK(strmap_remove(&m, keys[i]) == keys[i]);
  CHECK(strmap_remove(&m, keys[0]) == NULL);
  for (int i = 0; i < N; i++)
    CHECK(strmap_get(&m, keys[i]) == (i % 3 ? keys[i] : NULL));
  CHECK(strmap_get(&m, "vm-") == NULL && strmap_get(&m, "") == NULL);
  for (int i = 0; i < N; i++)
    strmap_remove(&m, keys[i]);
  CHECK_INT(m.n, ==, 0);
  CHECK_INT(strmap_reserve(&m, 100), ==, 0);
  CHECK(strmap_get(&m, "vm-1") == NULL);
  strmap_free(&m);
}

int main(void) {
  CHECK(mkdtemp(dir) != NULL);
  test_atomic_write();
  test_publish();
  test_spawn();
  test_spawn_group();
  test_ports();
  test_histogram();
  test_prom_escape();
  test_errno_code();
  test_header_helpers();
  test_url();
  test_strmap();
  char path[64];
  snprintf(path, sizeof path, "%s/state", dir);
  CHECK(unlink(path) == 0 && rmdir(dir) == 0);
  return 0;
}
