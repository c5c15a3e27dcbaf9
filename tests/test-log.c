/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Logging: both formats parse back, levels filter, messages cannot forge
 * lines, rotation works, and concurrent writers never mix their lines. */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <regex.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core-unit.h"
#include "log.h"

static char dir[64];

#define STAMP \
  "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z"

static regex_t text_re, stamp_re;

/* dir/name, in one of a few static buffers: enough for rename(). */
static char *path_in(const char *name) {
  static char buf[4][256];
  static int next;
  char *p = buf[next++ % 4];

  snprintf(p, sizeof buf[0], "%s/%s", dir, name);
  return p;
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "re");
  char *buf = NULL;
  size_t cap = 0, len = 0, n;

  if (!f)
    unit_fail(__FILE__, __LINE__, "cannot read %s", path);
  do {
    if (cap - len < 4096) {
      cap = cap * 2 + 65536;
      buf = realloc(buf, cap);
      CHECK(buf != NULL);
    }
    n = fread(buf + len, 1, cap - len - 1, f);
    len += n;
  } while (n > 0);
  fclose(f);
  buf[len] = '\0';
  return buf;
}

/* Split buf into lines in place; every line must end in '\n'. */
static size_t split_lines(char *buf, char **lines, size_t max) {
  size_t n = 0;
  char *p = buf, *nl;

  while (*p) {
    nl = strchr(p, '\n');
    CHECK(nl != NULL); /* no partial last line */
    *nl = '\0';
    CHECK(n < max);
    lines[n++] = p;
    p = nl + 1;
  }
  return n;
}

/* A text line: check its shape and time; return its "source: msg" part. */
static const char *text_line(const char *line, const char *level, time_t before,
                             time_t after) {
  regmatch_t m[3];
  struct tm tm = {0};
  time_t t;
  const char *rest;

  if (regexec(&text_re, line, 3, m, 0) != 0)
    unit_fail(__FILE__, __LINE__, "not a text log line: %s", line);
  CHECK(strncmp(line + m[1].rm_so, level, strlen(level)) == 0 &&
        (size_t)(m[1].rm_eo - m[1].rm_so) == strlen(level));
  rest = strptime(line, "%Y-%m-%dT%H:%M:%S", &tm);
  CHECK(rest != NULL);
  t = timegm(&tm); /* the stamp is UTC */
  CHECK_INT(t, >=, before);
  CHECK_INT(t, <=, after);
  return line + m[2].rm_so;
}

/* The clock the stamps use: time() may lag it by a tick (a coarse clock). */
static time_t now(void) {
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec;
}

static void use_file(const char *name, enum log_format format) {
  unlink(path_in(name));
  CHECK_INT(log_open(path_in(name), format), ==, 0);
}

/* ---- before log_open: stderr, text ------------------------------------ */

static void test_stderr_default(void) {
  int saved = dup(STDERR_FILENO);
  int fd = open(path_in("stderr"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  time_t before = now(), after;
  char *buf, *lines[4];

  CHECK(saved >= 0 && fd >= 0);
  CHECK(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
  close(fd);
  log_info("before open %d", 42);
  log_debug("not at the default level");
  after = now();
  CHECK(dup2(saved, STDERR_FILENO) == STDERR_FILENO);
  close(saved);

  buf = slurp(path_in("stderr"));
  CHECK_INT(split_lines(buf, lines, 4), ==, 1);
  CHECK_STR(text_line(lines[0], "info", before, after), "core: before open 42");
  free(buf);
}

/* ---- stderr to systemd's journal ----------------------------------------- */

/* stderr on a file named by JOURNAL_STREAM (when match, its own device and
 * inode; else another's; tail appended), log_open(NULL, format), one line per
 * level; the file's contents. */
static char *journal_lines(bool match, const char *tail,
                           enum log_format format) {
  int saved = dup(STDERR_FILENO);
  int fd = open(path_in("journal"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  struct stat st;
  char stream[64];

  CHECK(saved >= 0 && fd >= 0);
  CHECK(fstat(fd, &st) == 0);
  snprintf(stream, sizeof stream, "%llu:%llu%s", (unsigned long long)st.st_dev,
           (unsigned long long)st.st_ino + (match ? 0 : 1), tail);
  CHECK(setenv("JOURNAL_STREAM", stream, 1) == 0);
  CHECK(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
  close(fd);
  CHECK_INT(log_open(NULL, format), ==, 0);
  log_set_level(VMH_LOG_DEBUG);
  log_error("e");
  log_warn("w");
  log_msg("hv0", VMH_LOG_INFO, "i\nforged");
  log_debug("d");
  log_close();
  CHECK(dup2(saved, STDERR_FILENO) == STDERR_FILENO);
  close(saved);
  CHECK(unsetenv("JOURNAL_STREAM") == 0);
  return slurp(path_in("journal"));
}

static void test_journal_stream(void) {
  time_t before = now(), after;
  char *buf, *lines[8];

  /* The journal's stream: priorities, no time, still one line each. */
  buf = journal_lines(true, "", LOG_TEXT);
  CHECK_STR(buf, "<3>core: e\n<4>core: w\n<6>hv0: i\\nforged\n<7>core: d\n");
  free(buf);

  /* Another file than the one JOURNAL_STREAM names, or a malformed
   * JOURNAL_STREAM: the usual lines. */
  for (int i = 0; i < 2; i++) {
    buf = journal_lines(i == 1, i == 1 ? ":3" : "", LOG_TEXT);
    after = now();
    CHECK_INT(split_lines(buf, lines, 8), ==, 4);
    CHECK_STR(text_line(lines[0], "error", before, after), "core: e");
    CHECK_STR(text_line(lines[3], "debug", before, after), "core: d");
    free(buf);
  }

  /* JSON is asked for as it is, journal or not. */
  buf = journal_lines(true, "", LOG_JSON);
  CHECK_INT(split_lines(buf, lines, 8), ==, 4);
  CHECK(strncmp(lines[0], "{\"time\":\"", 9) == 0);
  free(buf);
}

/* ---- text format: escaping ---------------------------------------------- */

static void test_text_escaping(void) {
  time_t before = now(), after;
  char *buf, *lines[8];

  use_file("text.log", LOG_TEXT);
  log_msg("nfs1", VMH_LOG_WARN,
          "user said: x\n2026-01-01T00:00:00.000Z error core: forged\r");
  log_msg("nfs1", VMH_LOG_ERROR, "esc \x1b[31mred\x7f tab\there bad\xff\xfe é");
  log_msg(NULL, VMH_LOG_INFO, "sep \xe2\x80\xa8 nel \xc2\x85 end");
  /* A surrogate, an overlong '/', a code point above U+10FFFF, a cut
   * sequence: one U+FFFD per maximal ill-formed subpart. */
  log_info(
      "[\xed\xa0\x80][\xc0\xaf][\xf4\x90\x80\x80][\xe2\x82]"
      "[\xe0\x80\xaf][\xf0\x8f\xbf\xbf]");
  after = now();
  log_close();

  buf = slurp(path_in("text.log"));
  CHECK_INT(split_lines(buf, lines, 8), ==, 4);
  CHECK_STR(text_line(lines[0], "warn", before, after),
            "nfs1: user said: x\\n2026-01-01T00:00:00.000Z error core: "
            "forged\\r");
  CHECK_STR(text_line(lines[1], "error", before, after),
            "nfs1: esc \\x1b[31mred\\x7f tab\there bad\xEF\xBF\xBD\xEF\xBF\xBD"
            " é");
  CHECK_STR(text_line(lines[2], "info", before, after),
            "core: sep \\u2028 nel \\u0085 end");
#define FFFD "\xEF\xBF\xBD"
  CHECK_STR(text_line(lines[3], "info", before, after),
            "core: [" FFFD FFFD FFFD "][" FFFD FFFD "][" FFFD FFFD FFFD FFFD
            "][" FFFD "][" FFFD FFFD FFFD "][" FFFD FFFD FFFD FFFD "]");
  free(buf);
}

/* ---- JSON format --------------------------------------------------------- */

static json_t *json_line(const char *line) {
  json_error_t err;
  json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, &err);
  const char *stamp;

  if (!o)
    unit_fail(__FILE__, __LINE__, "not JSON (%s): %s", err.text, line);
  CHECK(json_is_object(o));
  CHECK_INT(json_object_size(o), ==, 4);
  stamp = json_string_value(json_object_get(o, "time"));
  CHECK(stamp && regexec(&stamp_re, stamp, 0, NULL, 0) == 0);
  CHECK(json_is_string(json_object_get(o, "level")));
  CHECK(json_is_string(json_object_get(o, "source")));
  CHECK(json_is_string(json_object_get(o, "msg")));
  return o;
}

static void test_json(void) {
  char *buf, *lines[8];
  json_t *o;

  use_file("json.log", LOG_JSON);
  log_msg("nfs1", VMH_LOG_ERROR, "q\"b\\s\nt\tc\x01 bad\xff é \xe2\x80\xa8 %s",
          "end");
  log_msg("we\"ird\n", VMH_LOG_WARN, "plain");
  log_close();

  buf = slurp(path_in("json.log"));
  CHECK_INT(split_lines(buf, lines, 8), ==, 2);
  CHECK_HAS(lines[0], "\\u2028");
  o = json_line(lines[0]);
  CHECK_STR(json_string_value(json_object_get(o, "level")), "error");
  CHECK_STR(json_string_value(json_object_get(o, "source")), "nfs1");
  CHECK_STR(json_string_value(json_object_get(o, "msg")),
            "q\"b\\s\nt\tc\x01 bad\xEF\xBF\xBD é \xe2\x80\xa8 end");
  json_decref(o);
  o = json_line(lines[1]);
  CHECK_STR(json_string_value(json_object_get(o, "level")), "warn");
  CHECK_STR(json_string_value(json_object_get(o, "source")), "we\"ird\n");
  CHECK_STR(json_string_value(json_object_get(o, "msg")), "plain");
  json_decref(o);
  free(buf);
}

/* ---- long messages --------------------------------------------------- */

static void test_truncation(void) {
  size_t big_len = 3 * LOG_MSG_MAX;
  char *big = malloc(big_len + 1), *buf, *lines[4];
  const char *msg;
  size_t len;
  json_t *o;

  CHECK(big != NULL);
  for (size_t i = 0; i < big_len; i += 2)
    memcpy(big + i, "\xC3\xA9", 2); /* é: a cut must not split one */
  big[big_len] = '\0';

  use_file("long.log", LOG_JSON);
  log_info("%s", big);
  log_close();
  buf = slurp(path_in("long.log"));
  CHECK_INT(split_lines(buf, lines, 4), ==, 1);
  o = json_line(lines[0]);
  msg = json_string_value(json_object_get(o, "msg"));
  len = strlen(msg);
  CHECK_INT(len, <=, LOG_MSG_MAX + 3);
  CHECK_INT(len, >=, LOG_MSG_MAX - 8);
  CHECK(strcmp(msg + len - 3, "\xE2\x80\xA6") == 0); /* … */
  CHECK_LACKS(msg, "\xEF\xBF\xBD");
  json_decref(o);
  free(buf);

  /* 3-byte characters after 2 bytes: the cut falls after 2 bytes of one,
   * which must go, not turn into U+FFFD. */
  big[0] = 'x';
  big[1] = 'y';
  for (size_t i = 2; i + 3 <= big_len; i += 3)
    memcpy(big + i, "\xE2\x82\xAC", 3); /* € */
  big[big_len - (big_len - 2) % 3] = '\0';
  use_file("long3.log", LOG_TEXT);
  log_info("%s", big);
  log_close();
  buf = slurp(path_in("long3.log"));
  CHECK_INT(split_lines(buf, lines, 4), ==, 1);
  CHECK_HAS(lines[0], "xy\xE2\x82\xAC");
  CHECK_HAS(lines[0], "\xE2\x82\xAC\xE2\x80\xA6");
  CHECK_LACKS(lines[0], "\xEF\xBF\xBD");
  free(buf);

  /* Escapes count against the limit: still one line, still cut. */
  memset(big, '\n', big_len);
  use_file("long.txt", LOG_TEXT);
  log_info("%s", big);
  log_close();
  buf = slurp(path_in("long.txt"));
  CHECK_INT(split_lines(buf, lines, 4), ==, 1);
  CHECK_INT(strlen(lines[0]), <=, LOG_MSG_MAX + 64);
  CHECK_HAS(lines[0], "\\n\\n\xE2\x80\xA6");
  free(buf);
  free(big);
}

/* ---- levels ------------------------------------------------------------ */

static void test_levels(void) {
  char *buf, *lines[16];

  CHECK_INT(log_level_parse("error"), ==, VMH_LOG_ERROR);
  CHECK_INT(log_level_parse("warn"), ==, VMH_LOG_WARN);
  CHECK_INT(log_level_parse("info"), ==, VMH_LOG_INFO);
  CHECK_INT(log_level_parse("debug"), ==, VMH_LOG_DEBUG);
  CHECK_INT(log_level_parse("warning"), ==, -1);
  CHECK_INT(log_level_parse(NULL), ==, -1);
  CHECK_INT(log_set_source_level("", VMH_LOG_INFO), ==, VMH_EINVAL);
  CHECK_INT(log_set_source_level(NULL, VMH_LOG_INFO), ==, VMH_EINVAL);
  CHECK_INT(log_set_source_level("x", 7), ==, VMH_EINVAL);

  use_file("levels.log", LOG_TEXT);
  log_set_level(VMH_LOG_WARN);
  CHECK_INT(log_set_source_level("nfs1", VMH_LOG_INFO), ==, 0);
  CHECK_INT(log_set_source_level("nfs1", VMH_LOG_DEBUG), ==, 0); /* replace */
  CHECK_INT(log_set_source_level("rbd", VMH_LOG_ERROR), ==, 0);
  CHECK(!log_enabled("core", VMH_LOG_INFO));
  CHECK(log_enabled("core", VMH_LOG_WARN));
  CHECK(log_enabled("nfs1", VMH_LOG_DEBUG));
  CHECK(!log_enabled("rbd", VMH_LOG_WARN));
  CHECK(!log_enabled("other", VMH_LOG_INFO));

  log_info("core info: dropped");
  log_warn("core warn: kept");
  log_msg("nfs1", VMH_LOG_DEBUG, "nfs1 debug: kept");
  log_msg("rbd", VMH_LOG_WARN, "rbd warn: dropped");
  log_msg("rbd", VMH_LOG_ERROR, "rbd error: kept");
  log_msg("other", VMH_LOG_INFO, "other info: dropped");
  log_clear_source_levels();
  log_msg("nfs1", VMH_LOG_DEBUG, "nfs1 debug after clear: dropped");
  log_msg("rbd", VMH_LOG_WARN, "rbd warn after clear: kept");
  log_set_level(VMH_LOG_DEBUG);
  log_debug("core debug: kept");
  log_close(); /* also back to level info */
  CHECK(!log_enabled("core", VMH_LOG_DEBUG));

  buf = slurp(path_in("levels.log"));
  CHECK_INT(split_lines(buf, lines, 16), ==, 5);
  CHECK(strstr(lines[0], " warn core: core warn: kept"));
  CHECK(strstr(lines[1], " debug nfs1: nfs1 debug: kept"));
  CHECK(strstr(lines[2], " error rbd: rbd error: kept"));
  CHECK(strstr(lines[3], " warn rbd: rbd warn after clear: kept"));
  CHECK(strstr(lines[4], " debug core: core debug: kept"));
  free(buf);
}

/* ---- errors and errno -----------------------------------------------------
 */

static void test_open_errors(void) {
  char *buf, *lines[4];

  use_file("keep.log", LOG_TEXT);
  CHECK_INT(log_open(path_in("no/such/dir/x.log"), LOG_TEXT), ==, VMH_ENOENT);
  CHECK_INT(log_open(path_in("x.log"), (enum log_format)7), ==, VMH_EINVAL);
  errno = ENOENT;
  log_warn("still here: %m");
  CHECK_INT(errno, ==, ENOENT);
  log_close();

  /* A sink that fails (stderr read-only): lines are dropped, errno kept. */
  {
    int saved = dup(STDERR_FILENO), ro = open("/dev/null", O_RDONLY);

    CHECK(saved >= 0 && ro >= 0);
    CHECK(dup2(ro, STDERR_FILENO) == STDERR_FILENO);
    close(ro);
    errno = EEXIST;
    log_error("dropped");
    CHECK_INT(errno, ==, EEXIST);
    CHECK(dup2(saved, STDERR_FILENO) == STDERR_FILENO);
    close(saved);
  }
  buf = slurp(path_in("keep.log"));
  CHECK_INT(split_lines(buf, lines, 4), ==, 1);
  CHECK_HAS(lines[0], "still here: No such file or directory");
  free(buf);
}

/* ---- rotation ------------------------------------------------------------ */

static size_t count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  size_t n = 0;

  CHECK(d != NULL);
  while (readdir(d))
    n++;
  closedir(d);
  return n;
}

static void test_reopen(void) {
  char *buf, *lines[4], *old;

  size_t fds;

  CHECK_INT(log_reopen(), ==, 0); /* on stderr: nothing to do */
  use_file("rot.log", LOG_JSON);
  /* Reopening closes the old file. */
  fds = count_fds();
  for (int i = 0; i < 10; i++)
    CHECK_INT(log_reopen(), ==, 0);
  CHECK_INT(log_open(path_in("rot.log"), LOG_JSON), ==, 0);
  CHECK_INT(count_fds(), ==, fds);
  log_info("one");
  old = path_in("rot.log.1");
  CHECK_INT(rename(path_in("rot.log"), old), ==, 0);
  log_info("two"); /* still the renamed file, as logrotate expects */
  CHECK_INT(log_reopen(), ==, 0);
  log_info("three");
  log_close();

  buf = slurp(old);
  CHECK_INT(split_lines(buf, lines, 4), ==, 2);
  CHECK_HAS(lines[0], "\"msg\":\"one\"");
  CHECK_HAS(lines[1], "\"msg\":\"two\"");
  free(buf);
  buf = slurp(path_in("rot.log"));
  CHECK_INT(split_lines(buf, lines, 4), ==, 1);
  CHECK_HAS(lines[0], "\"msg\":\"three\"");
  free(buf);
}

/* ---- concurrent writers, with rotation under way ----------------------- */

#define WRITERS 4
#define PER_WRITER 400
#define ROTATIONS 5

static size_t pad_len(int n) {
  return (size_t)(n * 37) % 6000; /* many lines longer than PIPE_BUF */
}

static void *writer(void *arg) {
  int id = (int)(intptr_t)arg;
  char *pad = malloc(6001);

  CHECK(pad != NULL);
  memset(pad, 'x', 6000);
  for (int n = 0; n < PER_WRITER; n++) {
    pad[pad_len(n)] = '\0';
    log_msg("w", VMH_LOG_INFO, "t%d n%d %s", id, n, pad);
    pad[pad_len(n)] = 'x';
  }
  free(pad);
  return NULL;
}

/* Check the writers' lines in buf: whole, well-formed, each seen once. */
static size_t check_writer_lines(char *buf, bool seen[WRITERS][PER_WRITER]) {
  static char *lines[WRITERS * PER_WRITER + 1];
  size_t n = split_lines(buf, lines, WRITERS * PER_WRITER + 1);

  for (size_t i = 0; i < n; i++) {
    int id, seq, used = 0;
    const char *p = strstr(lines[i], " info w: t");

    if (!p || regexec(&text_re, lines[i], 0, NULL, 0) != 0)
      unit_fail(__FILE__, __LINE__, "mangled line: %.200s", lines[i]);
    CHECK_INT(sscanf(p, " info w: t%d n%d %n", &id, &seq, &used), ==, 2);
    CHECK(id >= 0 && id < WRITERS && seq >= 0 && seq < PER_WRITER);
    CHECK(!seen[id][seq]);
    seen[id][seq] = true;
    CHECK_INT(strlen(p + used), ==, pad_len(seq));
    CHECK_INT(strspn(p + used, "x"), ==, pad_len(seq));
  }
  return n;
}

static void start_writers(pthread_t t[WRITERS]) {
  for (int i = 0; i < WRITERS; i++)
    CHECK_INT(pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i), ==, 0);
}

static void join_writers(pthread_t t[WRITERS]) {
  for (int i = 0; i < WRITERS; i++)
    pthread_join(t[i], NULL);
}

/* To a file, rotated while the writers run. */
static void test_concurrent_file(void) {
  static bool seen[WRITERS][PER_WRITER];
  pthread_t t[WRITERS];
  char name[32];
  size_t total = 0;

  use_file("conc.log", LOG_TEXT);
  start_writers(t);
  for (int r = 0; r < ROTATIONS; r++) {
    struct timespec ms = {0, 2000000};

    nanosleep(&ms, NULL); /* spread the rotations; any timing is correct */
    snprintf(name, sizeof name, "conc.log.%d", r);
    CHECK_INT(rename(path_in("conc.log"), path_in(name)), ==, 0);
    CHECK_INT(log_reopen(), ==, 0);
  }
  join_writers(t);
  log_close();

  for (int r = 0; r <= ROTATIONS; r++) {
    char *buf;

    snprintf(name, sizeof name, r < ROTATIONS ? "conc.log.%d" : "conc.log", r);
    buf = slurp(path_in(name));
    total += check_writer_lines(buf, seen);
    free(buf);
  }
  CHECK_INT(total, ==, WRITERS * PER_WRITER);
}

struct pipe_data {
  int fd;
  char *buf;
  size_t len;
};

static void *pipe_reader(void *arg) {
  struct pipe_data *d = arg;
  size_t cap = 0;
  ssize_t n;

  do {
    if (cap - d->len < 65536) {
      cap = cap * 2 + 65536;
      d->buf = realloc(d->buf, cap + 1);
      CHECK(d->buf != NULL);
    }
    n = read(d->fd, d->buf + d->len, cap - d->len);
    CHECK(n >= 0);
    d->len += (size_t)n;
  } while (n > 0);
  d->buf[d->len] = '\0';
  return NULL;
}

/* To stderr on a pipe: lines longer than PIPE_BUF would interleave if two
 * writers were ever inside write(2) at once. */
static void test_concurrent_pipe(void) {
  static bool seen[WRITERS][PER_WRITER];
  struct pipe_data d = {0};
  pthread_t t[WRITERS], reader;
  int p[2], saved = dup(STDERR_FILENO);
  char *before;

  CHECK(saved >= 0 && pipe(p) == 0);
  CHECK(dup2(p[1], STDERR_FILENO) == STDERR_FILENO);
  close(p[1]);
  d.fd = p[0];
  CHECK_INT(pthread_create(&reader, NULL, pipe_reader, &d), ==, 0);

  use_file("before-pipe.log", LOG_TEXT);
  CHECK_INT(log_open(NULL, LOG_TEXT), ==, 0); /* back from a file */
  start_writers(t);
  join_writers(t);
  log_close();
  CHECK(dup2(saved, STDERR_FILENO) == STDERR_FILENO); /* the pipe's EOF */
  close(saved);
  pthread_join(reader, NULL);
  close(p[0]);

  CHECK_INT(check_writer_lines(d.buf, seen), ==, WRITERS * PER_WRITER);
  free(d.buf);
  before = slurp(path_in("before-pipe.log"));
  CHECK_STR(before, "");
  free(before);
}

static void remove_dir(void) {
  char cmd[128];

  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK_INT(system(cmd), ==, 0);
}

int main(void) {
  const char *tmp = getenv("TMPDIR");

  snprintf(dir, sizeof dir, "%s/test-log.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  CHECK(mkdtemp(dir) != NULL);
  CHECK_INT(
      regcomp(&text_re, "^" STAMP " (error|warn|info|debug) ([^ :]+: .*)$",
              REG_EXTENDED),
      ==, 0);
  CHECK_INT(regcomp(&stamp_re, "^" STAMP "$", REG_EXTENDED | REG_NOSUB), ==, 0);

  test_stderr_default();
  test_journal_stream();
  test_text_escaping();
  test_json();
  test_truncation();
  test_levels();
  test_open_errors();
  test_reopen();
  test_concurrent_file();
  test_concurrent_pipe();

  regfree(&text_re);
  regfree(&stamp_re);
  remove_dir();
  return 0;
}
