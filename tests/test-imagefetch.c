/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* imagefetch (plugins/common): file:// sources into a memory sink — a whole
 * download, resumes whose kept bytes must be hashed too, a server that
 * cannot resume, a failing sink, refused URLs and digests. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <stdint.h>
#include <unistd.h>
#include <vmhost/vmhost-plugin.h>

#include "core-unit.h"
#include "imagefetch.h"

#define SIZE (3 * 1024 * 1024 + 123)

static char message[1024]; /* the last error set */
static char logged[4096];  /* every line logged */

static void fake_log(const struct vmh_instance *inst, int level,
                     const char *fmt, ...) {
  size_t used = strlen(logged);
  va_list ap;

  (void)inst;
  (void)level;
  va_start(ap, fmt);
  vsnprintf(logged + used, sizeof logged - used, fmt, ap);
  va_end(ap);
  used = strlen(logged);
  snprintf(logged + used, sizeof logged - used, "\n");
}

static void fake_verror(const char *fmt, va_list ap) {
  vsnprintf(message, sizeof message, fmt, ap);
}

static const struct vmh_host host = {
    .struct_size = sizeof host,
    .log = fake_log,
    .verror = fake_verror,
};

/* A sink in memory that can be told to fail. */
struct mem {
  unsigned char *buf;
  size_t len;
  size_t fail_at;     /* a write reaching past this fails; 0: never */
  uint64_t first_off; /* offset of the first write */
  unsigned writes, truncates;
  uint64_t last_done, last_total;
};

static int mem_write(void *opaque, const void *buf, size_t len,
                     uint64_t offset) {
  struct mem *m = opaque;

  CHECK_INT(offset, ==, m->len); /* sequential */
  if (m->writes++ == 0)
    m->first_off = offset;
  if (m->fail_at && m->len + len > m->fail_at)
    return vmh_fail(&host, VMH_ENOSPC, "sink full at %zu", m->fail_at);
  m->buf = realloc(m->buf, m->len + len);
  CHECK(m->buf != NULL);
  memcpy(m->buf + m->len, buf, len);
  m->len += len;
  return 0;
}

static ssize_t mem_read(void *opaque, void *buf, size_t len, uint64_t offset) {
  struct mem *m = opaque;

  if (offset >= m->len)
    return 0;
  if (len > m->len - offset)
    len = m->len - offset;
  memcpy(buf, m->buf + offset, len);
  return (ssize_t)len;
}

static int mem_truncate(void *opaque, uint64_t size) {
  struct mem *m = opaque;

  CHECK_INT(size, <=, m->len);
  m->len = size;
  m->truncates++;
  return 0;
}

static void mem_progress(void *opaque, uint64_t done, uint64_t total) {
  struct mem *m = opaque;
  m->last_done = done;
  m->last_total = total;
}

/* The sink holding a copy of the first n bytes of data. */
static void mem_fill(struct mem *m, const unsigned char *data, size_t n) {
  memset(m, 0, sizeof *m);
  m->buf = malloc(n ? n : 1);
  CHECK(m->buf != NULL);
  memcpy(m->buf, data, n);
  m->len = n;
}

static unsigned char *data;
static char url[128], digest[FETCH_SHA256_HEX + 1];

/* fetch_run of url into m, resuming after what m holds. */
static int run(struct mem *m, const char *u, const char *sha,
               const struct fetch_policy *pol, struct fetch_result *res) {
  const struct fetch_sink sink = {mem_write, mem_read, mem_truncate, m};
  const struct fetch_request req = {
      .host = &host,
      .what = "image test",
      .url = u,
      .sha256 = sha,
      .policy = pol,
      .sink = &sink,
      .have = m->len,
      .progress = mem_progress,
      .progress_opaque = m,
  };
  message[0] = logged[0] = '\0';
  return fetch_run(&req, res);
}

static void test_whole(void) {
  struct fetch_result res;
  struct mem m;

  mem_fill(&m, data, 0);
  CHECK_INT(run(&m, url, digest, NULL, &res), ==, 0);
  CHECK_INT(res.size, ==, SIZE);
  CHECK_STR(res.sha256, digest);
  CHECK_INT(m.len, ==, SIZE);
  CHECK(memcmp(m.buf, data, SIZE) == 0);
  CHECK_INT(m.first_off, ==, 0);
  CHECK_INT(m.truncates, ==, 0);
  CHECK_INT(m.last_done, ==, SIZE);
  CHECK_INT(m.last_total, ==, SIZE);
  CHECK_LACKS(logged, "resuming");
  free(m.buf);
}

static void test_resume(void) {
  static char other[FETCH_SHA256_HEX + 1];
  struct fetch_result res;
  struct mem m;

  /* Half kept: the rest is fetched from there, and the digest covers all. */
  mem_fill(&m, data, SIZE / 2);
  CHECK_INT(run(&m, url, digest, NULL, &res), ==, 0);
  CHECK_INT(m.first_off, ==, SIZE / 2);
  CHECK_INT(m.len, ==, SIZE);
  CHECK(memcmp(m.buf, data, SIZE) == 0);
  CHECK_STR(res.sha256, digest);
  CHECK_HAS(logged, "image test: resuming the download at byte 1572925");
  free(m.buf);

  /* The same resume checked against another digest: refused, dropped. */
  memset(other, 'a', FETCH_SHA256_HEX);
  mem_fill(&m, data, SIZE / 2);
  CHECK_INT(run(&m, url, other, NULL, &res), ==, VMH_EINVAL);
  CHECK(!res.keep);
  CHECK_STR(res.sha256, "");
  CHECK_HAS(message, "image test: the download from ");
  CHECK_LACKS(message, digest); /* not what it got (a file the caller */
  CHECK_HAS(message, other);    /* may not read), what it was told */
  free(m.buf);

  /* A kept prefix that is not the content's: the digest sees it. */
  mem_fill(&m, data, SIZE / 2);
  m.buf[7] ^= 1;
  CHECK_INT(run(&m, url, digest, NULL, &res), ==, VMH_EINVAL);
  CHECK(!res.keep);
  free(m.buf);

  /* More kept than the source has (file:// cannot resume there): the sink
   * starts over, and the hash with it. */
  mem_fill(&m, data, SIZE);
  m.buf = realloc(m.buf, SIZE + 10);
  CHECK(m.buf != NULL);
  memset(m.buf + SIZE, 'x', 10);
  m.len = SIZE + 10;
  CHECK_INT(run(&m, url, digest, NULL, &res), ==, 0);
  CHECK_INT(m.truncates, ==, 1);
  CHECK_INT(m.len, ==, SIZE);
  CHECK(memcmp(m.buf, data, SIZE) == 0);
  free(m.buf);
}

static void test_sink_error(void) {
  struct fetch_result res;
  struct mem m;

  mem_fill(&m, data, 0);
  m.fail_at = SIZE / 3;
  CHECK_INT(run(&m, url, digest, NULL, &res), ==, VMH_ENOSPC);
  CHECK_STR(message, "sink full at 1048617"); /* the sink's own message */
  CHECK(!res.keep);
  CHECK_INT(m.writes, >, 1);
  CHECK_LACKS(logged, "resuming"); /* not retried */
  free(m.buf);
}

static void test_refused(void) {
  struct fetch_policy web = fetch_policy_default;
  struct fetch_policy files = fetch_policy_default;
  char *const tmp_dirs[] = {(char *)"/tmp"};
  char want[FETCH_SHA256_HEX + 1], upper[FETCH_SHA256_HEX + 1];
  struct fetch_result res;
  struct mem m;

  /* file:// only under the policy's directories, whatever the file. */
  files.file_dirs = tmp_dirs;
  files.n_file_dirs = 1;
  CHECK_INT(fetch_check(&host, "image t", url, digest, NULL, want), ==,
            VMH_EPERM);
  CHECK_HAS(message,
            "is not a file under a directory of "
            "image_sources.file_dirs (the config names none)");
  CHECK_INT(fetch_check(&host, "image t", url, digest, &files, want), ==, 0);
  static const char *const outside[] = {
      "file:///etc/shadow",        "file:///proc/self/environ",
      "file:///tmp/../etc/passwd", "file:///tmp/%2e%2e/etc/passwd",
      "file://localhost/tmp/x",    "file:///tmp"};
  for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++) {
    CHECK_INT(fetch_check(&host, "image t", outside[i], digest, &files, want),
              ==, VMH_EPERM);
    CHECK_HAS(message,
              "is not a file under a directory of "
              "image_sources.file_dirs");
  }
  char link[] = "/tmp/imagefetch-link.XXXXXX", lurl[64];
  CHECK(mkdtemp(link) != NULL);
  CHECK(rmdir(link) == 0 && symlink("/etc/passwd", link) == 0);
  snprintf(lurl, sizeof lurl, "file://%s", link);
  CHECK_INT(fetch_check(&host, "image t", lurl, digest, &files, want), ==,
            VMH_EPERM);
  unlink(link);

  web.protocols = "http,https";
  CHECK_INT(fetch_check(&host, "image t", "ftp://x/y", digest, NULL, want), ==,
            VMH_EINVAL);
  CHECK_STR(message,
            "image t: url 'ftp://x/y' must start with file://, http:// or "
            "https://");
  CHECK_INT(fetch_check(&host, "image t", "file:/x", digest, NULL, want), ==,
            VMH_EINVAL);
  CHECK_INT(fetch_check(&host, "image t", NULL, digest, NULL, want), ==,
            VMH_EINVAL);
  CHECK_HAS(message, "url '(none)'");
  CHECK_INT(fetch_check(&host, "image t", url, digest, &web, want), ==,
            VMH_EINVAL);
  CHECK_HAS(message, "must start with http:// or https://");
  CHECK_INT(fetch_check(&host, "image t", "https://h/x", digest, &web, want),
            ==, 0);

  /* Digests: 64 hex digits, any case, given back in lower case. */
  for (int i = 0; i <= FETCH_SHA256_HEX; i++)
    upper[i] = (char)(digest[i] >= 'a' ? digest[i] - 'a' + 'A' : digest[i]);
  CHECK_INT(fetch_check(&host, "image t", url, upper, &files, want), ==, 0);
  CHECK_STR(want, digest);
  CHECK_INT(fetch_check(&host, "image t", url, "xyz", &files, want), ==,
            VMH_EINVAL);
  CHECK_STR(message,
            "image t: give its sha256 as 64 hex digits (sha256sum "
            "FILE)");
  upper[FETCH_SHA256_HEX - 1] = 'g';
  CHECK_INT(fetch_check(&host, "image t", url, upper, &files, want), ==,
            VMH_EINVAL);
  CHECK_INT(fetch_check(&host, "image t", url, NULL, &files, want), ==,
            VMH_EINVAL);

  /* Loopback, private and link-local addresses: refused at connect, with
   * the address named (nothing listens there: the refusal comes first). */
  mem_fill(&m, data, 0);
  static const char *const priv[] = {
      "http://127.0.0.1:9/x",   "http://[::1]:9/x",
      "http://10.0.0.1:9/x",    "http://169.254.169.254/latest",
      "http://192.168.1.1:9/x", "http://[::ffff:127.0.0.1]:9/x"};
  for (size_t i = 0; i < sizeof priv / sizeof priv[0]; i++) {
    CHECK_INT(run(&m, priv[i], digest, NULL, &res), ==, VMH_EPERM);
    CHECK_HAS(message, "a loopback, link-local or private address");
  }
  free(m.buf);

  /* The policy holds in the transfer too, and nothing is kept. */
  mem_fill(&m, data, 0);
  CHECK_INT(run(&m, url, digest, &web, &res), ==, VMH_EIO);
  CHECK_HAS(message, "image test: download of file://");
  CHECK_HAS(message, "; check the url");
  CHECK(!res.keep);
  CHECK_INT(m.writes, ==, 0);

  /* No such file: a refusal, not retried. */
  CHECK_INT(run(&m, "file:///nonexistent/vmh-imagefetch", digest, NULL, &res),
            ==, VMH_EIO);
  CHECK_HAS(message, "check the url");
  CHECK(!res.keep);
  CHECK_LACKS(logged, "resuming");
  free(m.buf);
}

int main(void) {
  char path[] = "/tmp/imagefetch.XXXXXX";
  unsigned char dig[32];
  int fd = mkstemp(path);

  CHECK(fd >= 0);
  data = malloc(SIZE);
  CHECK(data != NULL);
  for (size_t i = 0; i < SIZE; i++)
    data[i] = (unsigned char)(i * 2654435761u >> 13);
  CHECK_INT(write(fd, data, SIZE), ==, SIZE);
  close(fd);
  CHECK_INT(gnutls_hash_fast(GNUTLS_DIG_SHA256, data, SIZE, dig), ==, 0);
  for (int i = 0; i < 32; i++)
    snprintf(digest + 2 * i, 3, "%02x", dig[i]);
  snprintf(url, sizeof url, "file://%s", path);
  CHECK_INT(fetch_global_init(&host), ==, 0);

  test_whole();
  test_resume();
  test_sink_error();
  test_refused();

  unlink(path);
  free(data);
  return 0;
}
