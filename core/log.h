/* Logging: text or JSON lines, to stderr or a file, level per source
 * ("core" or an instance name).  Thread-safe. */
#ifndef VMHOST_CORE_LOG_H
#define VMHOST_CORE_LOG_H

#include <stdarg.h>
#include <vmhost/common.h>

enum log_format { LOG_TEXT = 0, LOG_JSON = 1 };

/* Configure the sink.  path NULL: stderr.  Returns 0 or a VMH_E* code with
 * the error message set.  Safe to call again (SIGHUP): the old file is closed
 * once the new one is open. */
int log_open(const char *path, enum log_format format);
/* Reopen the same file (log rotation). */
int log_reopen(void);
void log_close(void);

/* Levels: a default and per-source overrides.  Replaces all overrides. */
void log_set_level(int level);
int log_set_source_level(const char *source, int level);
void log_clear_source_levels(void);
/* Parse "error" | "warn" | "info" | "debug"; -1 if none of them. */
int log_level_parse(const char *s);

/* Whether a line at `level` from `source` would be written. */
int log_enabled(const char *source, int level);

void log_msg(const char *source, int level, const char *fmt, ...)
    VMH_PRINTF(3, 4);
void log_vmsg(const char *source, int level, const char *fmt, va_list ap)
    VMH_PRINTF(3, 0);

#define log_error(...) log_msg("core", VMH_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg("core", VMH_LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg("core", VMH_LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg("core", VMH_LOG_DEBUG, __VA_ARGS__)

#endif
