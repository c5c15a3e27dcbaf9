/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Logging: text or JSON lines, to stderr or a file, level per source
 * ("core" or an instance name).  Thread-safe.
 *
 *   text: 2026-11-22T03:04:05.123Z info core: message
 *   json: {"time":"2026-11-22T03:04:05.123Z","level":"info",
 *          "source":"core","msg":"message"}
 *
 * Each line is written with one write(2) under a lock, so lines never
 * interleave.  Control characters in a message are escaped (text: \n, \r,
 * \xHH; JSON: the JSON escapes), invalid UTF-8 becomes U+FFFD, and a message
 * longer than LOG_MSG_MAX bytes is cut and ends in "…": a message can never
 * start a line of its own.  Until log_open, lines go to stderr as text.
 *
 * Text on a stderr that systemd connected to its journal (JOURNAL_STREAM,
 * checked at log_open) has no time and starts with the level as the
 * journal's priority (sd-daemon(3)), which journald takes off the line:
 *   <6>core: message      (<3> error, <4> warn, <6> info, <7> debug) */
#ifndef VMHOST_CORE_LOG_H
#define VMHOST_CORE_LOG_H

#include <stdarg.h>
#include <vmhost/common.h>

/* Bytes of (escaped) message kept per line. */
#define LOG_MSG_MAX 8192

enum log_format { LOG_TEXT = 0, LOG_JSON = 1 };

/* Configure the sink.  path NULL: stderr; otherwise the file is opened for
 * appending (created 0640).  Returns 0 or a VMH_E* code with the error
 * message set, in which case the old sink stays.  Safe to call again
 * (SIGHUP) while other threads log: the old file is closed once the new one
 * is open.  Not async-signal-safe: call it from a thread, not a handler. */
int log_open(const char *path, enum log_format format);
/* Reopen the same path (log rotation: after a rename, lines go to the new
 * file).  No-op on stderr. */
int log_reopen(void);
/* Back to the initial state: stderr, text, level info, no per-source levels.
 * At exit (frees everything) or between tests. */
void log_close(void);

/* Levels: a default (initially VMH_LOG_INFO) and per-source overrides.
 * log_set_level sets the default; out-of-range levels are clamped. */
void log_set_level(int level);
/* Add or replace the override for one source.  Returns 0, or VMH_EINVAL
 * (empty source, bad level) or VMH_ENOMEM with the error message set. */
int log_set_source_level(const char *source, int level);
/* Remove all overrides. */
void log_clear_source_levels(void);
/* Parse "error" | "warn" | "info" | "debug"; -1 if none of them. */
int log_level_parse(const char *s);

/* Whether a line at `level` from `source` would be written.  Lock-free when
 * the level is above every configured level (the common debug case) or
 * there are no overrides. */
int log_enabled(const char *source, int level);

/* source NULL means "core".  "%m" works, and errno is left as it was, so a
 * caller may log before it looks at errno. */
void log_msg(const char *source, int level, const char *fmt, ...)
    VMH_PRINTF(3, 4);
void log_vmsg(const char *source, int level, const char *fmt, va_list ap)
    VMH_PRINTF(3, 0);

#define log_error(...) log_msg("core", VMH_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg("core", VMH_LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg("core", VMH_LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg("core", VMH_LOG_DEBUG, __VA_ARGS__)

#endif
