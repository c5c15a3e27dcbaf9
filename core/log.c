/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Logging: one line per message, text or JSON, to stderr or a file. */
#include <config.h>

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "errname.h"
#include "error.h"
#include "validate.h"

/* Bytes of (escaped) source name kept per line. */
#define LOG_SOURCE_MAX 128
/* A whole line: time, level, source, message, JSON punctuation, "…\n". */
#define LOG_LINE_MAX (LOG_MSG_MAX + LOG_SOURCE_MAX + 128)

static const char *const level_names[] = {
    [VMH_LOG_ERROR] = "error",
    [VMH_LOG_WARN] = "warn",
    [VMH_LOG_INFO] = "info",
    [VMH_LOG_DEBUG] = "debug",
};

/* The journal's priority prefixes (sd-daemon(3): LOG_ERR, LOG_WARNING,
 * LOG_INFO, LOG_DEBUG). */
static const char *const journal_prefixes[] = {
    [VMH_LOG_ERROR] = "<3>",
    [VMH_LOG_WARN] = "<4>",
    [VMH_LOG_INFO] = "<6>",
    [VMH_LOG_DEBUG] = "<7>",
};

/* The sink.  Writers hold sink_lock across their write(2), so lines never
 * interleave (not even on a pipe, or after a short write) and whoever swaps
 * the fd may close the old one as soon as it has let go of the lock. */
static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static int sink_fd = STDERR_FILENO;
static enum log_format sink_format = LOG_TEXT;
/* Text lines on a stderr that is systemd's journal: no time, a priority. */
static bool sink_journal;

/* Serializes log_open/log_reopen/log_close, which open files without holding
 * sink_lock; guards sink_path. */
static pthread_mutex_t conf_lock = PTHREAD_MUTEX_INITIALIZER;
static char *sink_path;

/* Levels.  default_level and max_level are atomics so that log_enabled
 * decides the common cases without a lock: a line above max_level (the
 * highest configured level) is never written, and without overrides the
 * default decides.  Only a line that some override might let through looks
 * the source up, under the read lock. */
struct source_level {
  char *source;
  int level;
};
static pthread_rwlock_t level_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct source_level *overrides;
static size_t n_overrides;
static atomic_int default_level = VMH_LOG_INFO;
static atomic_int max_level = VMH_LOG_INFO;
static atomic_bool have_overrides;

static int clamp_level(int level) {
  if (level < VMH_LOG_ERROR)
    return VMH_LOG_ERROR;
  if (level > VMH_LOG_DEBUG)
    return VMH_LOG_DEBUG;
  return level;
}

/* ---- levels ------------------------------------------------------------ */

/* With level_lock held for writing. */
static void update_max_level(void) {
  int max = atomic_load(&default_level);

  for (size_t i = 0; i < n_overrides; i++)
    if (overrides[i].level > max)
      max = overrides[i].level;
  atomic_store(&max_level, max);
  atomic_store(&have_overrides, n_overrides > 0);
}

void log_set_level(int level) {
  pthread_rwlock_wrlock(&level_lock);
  atomic_store(&default_level, clamp_level(level));
  update_max_level();
  pthread_rwlock_unlock(&level_lock);
}

int log_set_source_level(const char *source, int level) {
  struct source_level *grown;
  char *copy;
  int ret = 0;

  if (!source || !*source)
    return error_code(VMH_EINVAL, "log level: empty source name");
  if (level < VMH_LOG_ERROR || level > VMH_LOG_DEBUG)
    return error_code(VMH_EINVAL, "log level of '%s': %d is not a level",
                      source, level);

  pthread_rwlock_wrlock(&level_lock);
  for (size_t i = 0; i < n_overrides; i++) {
    if (strcmp(overrides[i].source, source) == 0) {
      overrides[i].level = level;
      goto out;
    }
  }
  copy = strdup(source);
  grown =
      copy ? realloc(overrides, (n_overrides + 1) * sizeof *overrides) : NULL;
  if (!grown) {
    free(copy);
    ret = error_code(VMH_ENOMEM, "log level of '%s': out of memory", source);
    goto out;
  }
  overrides = grown;
  overrides[n_overrides++] = (struct source_level){copy, level};
out:
  update_max_level();
  pthread_rwlock_unlock(&level_lock);
  return ret;
}

void log_clear_source_levels(void) {
  pthread_rwlock_wrlock(&level_lock);
  for (size_t i = 0; i < n_overrides; i++)
    free(overrides[i].source);
  free(overrides);
  overrides = NULL;
  n_overrides = 0;
  update_max_level();
  pthread_rwlock_unlock(&level_lock);
}

int log_level_parse(const char *s) {
  if (!s)
    return -1;
  for (int i = VMH_LOG_ERROR; i <= VMH_LOG_DEBUG; i++)
    if (strcmp(s, level_names[i]) == 0)
      return i;
  return -1;
}

int log_enabled(const char *source, int level) {
  int limit;

  if (level > atomic_load_explicit(&max_level, memory_order_relaxed))
    return 0;
  if (!atomic_load_explicit(&have_overrides, memory_order_relaxed))
    return level <= atomic_load_explicit(&default_level, memory_order_relaxed);

  if (!source)
    source = "core";
  pthread_rwlock_rdlock(&level_lock);
  limit = atomic_load_explicit(&default_level, memory_order_relaxed);
  for (size_t i = 0; i < n_overrides; i++) {
    if (strcmp(overrides[i].source, source) == 0) {
      limit = overrides[i].level;
      break;
    }
  }
  pthread_rwlock_unlock(&level_lock);
  return level <= limit;
}

/* ---- building a line --------------------------------------------------- */

/* A fixed buffer that refuses, rather than overflows, what does not fit. */
struct line {
  char buf[LOG_LINE_MAX];
  size_t len;
};

static void put(struct line *l, const char *s, size_t n) {
  if (n > sizeof l->buf - l->len)
    n = sizeof l->buf - l->len;
  memcpy(l->buf + l->len, s, n);
  l->len += n;
}

static void puts_(struct line *l, const char *s) {
  put(l, s, strlen(s));
}

/* Length of the well-formed UTF-8 sequence at s[0..n), or 0 when it is
 * ill-formed; then *bad is the length of its maximal subpart (the bytes one
 * U+FFFD replaces, as Unicode recommends). */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *bad) {
  unsigned char c = s[0], lo = 0x80, hi = 0xBF;
  size_t need;

  if (c < 0x80)
    return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 3;
    if (c == 0xE0)
      lo = 0xA0; /* overlong */
    if (c == 0xED)
      hi = 0x9F; /* surrogates */
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 4;
    if (c == 0xF0)
      lo = 0x90; /* overlong */
    if (c == 0xF4)
      hi = 0x8F; /* above U+10FFFF */
  } else {
    *bad = 1;
    return 0;
  }
  for (size_t i = 1; i < need; i++) {
    if (i >= n || s[i] < lo || s[i] > hi) {
      *bad = i;
      return 0;
    }
    lo = 0x80;
    hi = 0xBF;
  }
  return need;
}

/* The escape for one character of s, or NULL to copy it as is.  Besides
 * what JSON requires, both formats escape DEL, the C1 controls and the
 * Unicode line and paragraph separators: some viewers break lines there. */
static const char *escape_char(const unsigned char *s, size_t n,
                               enum log_format format, char tmp[8]) {
  unsigned c = s[0];

  if (n == 2 && c == 0xC2 && s[1] < 0xA0) { /* U+0080..U+009F */
    snprintf(tmp, 8, "\\u%04x", s[1]);
    return tmp;
  }
  if (n == 3 && c == 0xE2 && s[1] == 0x80 && (s[2] == 0xA8 || s[2] == 0xA9)) {
    snprintf(tmp, 8, "\\u%04x", 0x2000u + (s[2] - 0x80u));
    return tmp;
  }
  if (n != 1)
    return NULL;
  switch (c) {
    case '\n':
      return "\\n";
    case '\r':
      return "\\r";
    case '\t':
      return format == LOG_JSON ? "\\t" : NULL;
    case '"':
      return format == LOG_JSON ? "\\\"" : NULL;
    case '\\':
      return format == LOG_JSON ? "\\\\" : NULL;
  }
  if (c < 0x20 || c == 0x7F) {
    snprintf(tmp, 8, format == LOG_JSON ? "\\u%04x" : "\\x%02x", c);
    return tmp;
  }
  return NULL;
}

/* Append s[0..n) escaped for `format`, using at most `room` bytes.  Returns
 * false when it had to stop early. */
static bool put_escaped(struct line *l, const char *s, size_t n,
                        enum log_format format, size_t room) {
  static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */
  const unsigned char *p = (const unsigned char *)s;
  size_t end = l->len + room;
  char tmp[8];

  while (n > 0) {
    size_t bad = 0, len = utf8_seq(p, n, &bad);
    const char *out;
    size_t out_len;

    if (len == 0) {
      out = replacement;
      out_len = 3;
      len = bad;
    } else if ((out = escape_char(p, len, format, tmp))) {
      out_len = strlen(out);
    } else {
      out = (const char *)p;
      out_len = len;
    }
    if (l->len + out_len > end)
      return false;
    put(l, out, out_len);
    p += len;
    n -= len;
  }
  return true;
}

static void format_line(struct line *l, enum log_format format, bool journal,
                        const char *stamp, int level, const char *source,
                        const char *msg, size_t msg_len, bool cut) {
  size_t source_len = strlen(source);

  l->len = 0;
  if (journal && format == LOG_TEXT) {
    /* The journal stamps the line and keeps the level as its priority. */
    puts_(l, journal_prefixes[level]);
    put_escaped(l, source, source_len, format, LOG_SOURCE_MAX);
    puts_(l, ": ");
  } else if (format == LOG_JSON) {
    puts_(l, "{\"time\":\"");
    puts_(l, stamp);
    puts_(l, "\",\"level\":\"");
    puts_(l, level_names[level]);
    puts_(l, "\",\"source\":\"");
    put_escaped(l, source, source_len, format, LOG_SOURCE_MAX);
    puts_(l, "\",\"msg\":\"");
  } else {
    puts_(l, stamp);
    puts_(l, " ");
    puts_(l, level_names[level]);
    puts_(l, " ");
    put_escaped(l, source, source_len, format, LOG_SOURCE_MAX);
    puts_(l, ": ");
  }
  if (!put_escaped(l, msg, msg_len, format, LOG_MSG_MAX) || cut)
    puts_(l, "\xE2\x80\xA6"); /* … */
  puts_(l, format == LOG_JSON ? "\"}\n" : "\n");
}

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);

    if (w < 0) {
      if (errno == EINTR)
        continue;
      return; /* nowhere to report it: drop the line */
    }
    p += w;
    n -= (size_t)w;
  }
}

void log_vmsg(const char *source, int level, const char *fmt, va_list ap) {
  int saved_errno = errno;
  char msg[LOG_MSG_MAX];
  char stamp[64];
  struct line line;
  struct timespec ts;
  struct tm tm;
  size_t msg_len;
  bool cut = false;
  int n;

  level = clamp_level(level);
  if (!source)
    source = "core";
  if (!log_enabled(source, level))
    return;

  n = vsnprintf(msg, sizeof msg, fmt, ap); /* first, for "%m" */
  if (n < 0) {
    msg_len = (size_t)snprintf(msg, sizeof msg, "(unformattable: %s)", fmt);
    if (msg_len >= sizeof msg)
      msg_len = sizeof msg - 1;
  } else if ((size_t)n >= sizeof msg) {
    msg_len = utf8_trim(msg, sizeof msg - 1);
    cut = true;
  } else {
    msg_len = (size_t)n;
  }

  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
           tm.tm_sec, ts.tv_nsec / 1000000);

  pthread_mutex_lock(&sink_lock);
  format_line(&line, sink_format, sink_journal, stamp, level, source, msg,
              msg_len, cut);
  write_all(sink_fd, line.buf, line.len);
  pthread_mutex_unlock(&sink_lock);
  errno = saved_errno;
}

void log_msg(const char *source, int level, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  log_vmsg(source, level, fmt, ap);
  va_end(ap);
}

/* ---- the sink ---------------------------------------------------------- */

/* Whether stderr is a stream to systemd's journal: the service manager
 * sets JOURNAL_STREAM to its "device:inode" (systemd.exec(5)).  A stderr
 * redirected elsewhere (a child of vmhostd's, a shell's 2>file) no longer
 * matches. */
static bool stderr_is_journal(void) {
  const char *v = getenv("JOURNAL_STREAM");
  unsigned long long dev, ino;
  struct stat st;
  int end = 0;

  if (!v || sscanf(v, "%llu:%llu%n", &dev, &ino, &end) != 2 || v[end])
    return false;
  if (fstat(STDERR_FILENO, &st) < 0)
    return false;
  return (unsigned long long)st.st_dev == dev &&
         (unsigned long long)st.st_ino == ino;
}

/* Make (fd, path, format) the sink; close and free the old one.  With
 * conf_lock held.  Takes ownership of path.  journal: fd is stderr and
 * that is the journal. */
static void swap_sink(int fd, char *path, enum log_format format,
                      bool journal) {
  int old_fd;

  pthread_mutex_lock(&sink_lock);
  old_fd = sink_fd;
  sink_fd = fd;
  sink_format = format;
  sink_journal = journal;
  pthread_mutex_unlock(&sink_lock);

  /* No writer can still be using old_fd: they read it under sink_lock. */
  if (old_fd != STDERR_FILENO && old_fd != fd)
    close(old_fd);
  if (sink_path != path) {
    free(sink_path);
    sink_path = path;
  }
}

/* With conf_lock held. */
static int open_sink(const char *path, enum log_format format) {
  char *copy = NULL;
  int fd = STDERR_FILENO;

  if (format != LOG_TEXT && format != LOG_JSON)
    return error_code(VMH_EINVAL, "log format %d is not text or json",
                      (int)format);
  if (path) {
    if (!*path)
      return error_code(VMH_EINVAL, "log file: empty path");
    copy = strdup(path);
    if (!copy)
      return error_code(VMH_ENOMEM, "log file %s: out of memory", path);
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
    if (fd < 0) {
      int err = errno;

      free(copy);
      errno = err;
      return error_code(errno_code(err), "log file %s: %m", path);
    }
  }
  swap_sink(fd, copy, format, !path && stderr_is_journal());
  return 0;
}

int log_open(const char *path, enum log_format format) {
  int ret;

  pthread_mutex_lock(&conf_lock);
  ret = open_sink(path, format);
  pthread_mutex_unlock(&conf_lock);
  return ret;
}

int log_reopen(void) {
  enum log_format format;
  int ret = 0;

  pthread_mutex_lock(&conf_lock);
  if (sink_path) {
    pthread_mutex_lock(&sink_lock);
    format = sink_format;
    pthread_mutex_unlock(&sink_lock);
    /* open_sink copies the path before swap_sink frees the old copy. */
    ret = open_sink(sink_path, format);
  }
  pthread_mutex_unlock(&conf_lock);
  return ret;
}

void log_close(void) {
  pthread_mutex_lock(&conf_lock);
  swap_sink(STDERR_FILENO, NULL, LOG_TEXT, false);
  pthread_mutex_unlock(&conf_lock);
  log_clear_source_levels();
  log_set_level(VMH_LOG_INFO);
}
