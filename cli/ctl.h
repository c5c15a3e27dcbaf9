/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmhostctl: the command-line client of the REST API.  The pieces share
 * this header: the connection settings (config.c), the HTTP client
 * (http.c), the printers (output.c), the command table (commands.c) and
 * the command line (main.c). */
#ifndef VMHOSTCTL_CTL_H
#define VMHOSTCTL_CTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The documented exit codes (vmhostctl(1), EXIT STATUS). */
enum {
  EXIT_OK = 0,
  EXIT_ERROR = 1,       /* any other failure */
  EXIT_USAGE = 2,       /* bad command line, option, environment or config */
  EXIT_NOT_FOUND = 3,   /* NOT_FOUND */
  EXIT_CONFLICT = 4,    /* ALREADY_EXISTS, BUSY, INVALID_STATE */
  EXIT_UNREACHABLE = 5, /* no connection: refused, TLS, timeout */
  EXIT_DENIED = 6,      /* 401, UNAUTHENTICATED, PERMISSION_DENIED */
  EXIT_RETRY = 7,       /* TRY_AGAIN, UNAVAILABLE, RATE_LIMITED: retry later */
};

enum output { OUT_TABLE, OUT_JSON, OUT_YAML, OUT_NAME };

/* Where and how to connect, and how to print.  Every string is owned by
 * the struct (config_free). */
struct settings {
  char *url;    /* http://, https://, unix:/path */
  char *token;  /* bearer token, or NULL */
  char *cacert; /* CA file for https, or NULL: the system's */
  char *cert;   /* client certificate (mTLS), or NULL */
  char *key;    /* its key, or NULL: in cert */
  bool insecure;
  long timeout_s; /* whole request; 0: none */
  enum output output;
  bool quiet; /* http_call prints no error answer: the caller looks */
};

/* ---- config.c ---- */

/* Fill s from the environment and the config file (path, or the default
 * $XDG_CONFIG_HOME/vmhost/ctl.yaml when NULL; a missing default file is
 * fine, a missing named one is not).  Flags are applied by the caller
 * afterwards, so they win.  On failure prints why and returns -1. */
int config_load(struct settings *s, const char *path);
/* The value of an option taking a setting: sets the field key names
 * ("url", "token", "output" …); -1 with a message if value is bad. */
int config_set(struct settings *s, const char *key, const char *value,
               const char *where);
void config_free(struct settings *s);

/* ---- http.c ---- */

/* An answer of the API. */
struct reply {
  long status;      /* HTTP status; 0: no answer (see exit) */
  json_t *json;     /* parsed body, or NULL (204, not JSON) */
  char *request_id; /* x-request-id, or NULL */
  char *text;       /* http_get_text: a body that is not JSON, or NULL */
  size_t text_len;
};

/* One request; body may be NULL (not sent).  Returns the exit code the
 * outcome maps to (EXIT_OK for 2xx) after printing any error as
 * "vmhostctl: CODE: message (request ID)".  *r is filled in either case;
 * the caller frees it with reply_free. */
int http_call(const struct settings *s, const char *method, const char *path,
              json_t *body, struct reply *r);
/* A GET whose answer may be any text (a script): r->text, unless it is
 * JSON (r->json).  As http_call otherwise. */
int http_get_text(const struct settings *s, const char *path, struct reply *r);
void reply_free(struct reply *r);
/* Print the error answer r as http_call does; its exit code. */
int http_report(const struct reply *r);
/* The exit code of an API error code ("NOT_FOUND" …). */
int http_exit_for_code(const char *code);

/* GET a text/event-stream: on_event(type, data, opaque) for each event
 * until it returns nonzero (stop: EXIT_OK) or the stream ends. */
typedef int (*event_cb)(const char *type, const char *data, void *opaque);
int http_stream(const struct settings *s, const char *path, event_cb on_event,
                void *opaque);

/* A path segment, percent-encoded (free it). */
char *http_escape(const char *segment);

/* ---- output.c ---- */

/* A table column: heading and the member shown (bytes, lists, times and
 * nulls formatted by the member's name and type). */
struct column {
  const char *heading;
  const char *key;
};

/* Print v as JSON or YAML; in table form, the list under list_key (NULL:
 * v is one object, printed as "key: value" lines with its arrays of
 * objects as tables under them). */
void output_print(const struct settings *s, json_t *v, const char *list_key,
                  const struct column *cols);
/* One event of the stream: JSON lines, YAML documents, or a line. */
void output_event(const struct settings *s, const char *type, json_t *data);

/* Replace in place the control characters of a server's text (terminal
 * escapes) by '?'; line ends too unless newlines. */
void text_sanitize(char *s, bool newlines);

/* ---- the commands (commands.c) and the command line (main.c) ---- */

struct invocation;
/* An option of a command; arg names its value ("SIZE"), NULL: a flag. */
struct option_spec {
  const char *name; /* without the dashes */
  const char *arg;
  const char *help;
};

/* A command: its words, arguments and options, and the REST call it
 * makes (method, path with a {} per positional argument, in order) with
 * how to print the answer (a list under list_key in cols; one object with
 * cols: a one-row table; without: "key value" lines). */
struct command {
  const char *words; /* "vm stop" */
  const char *args;  /* positional arguments: "VM [NAME]" */
  const char *help;
  const struct option_spec *options; /* ends with {NULL}; NULL: none */
  int (*run)(const struct settings *s, struct invocation *inv);
  bool local; /* needs no server (and no settings) */
  const char *method, *path;
  const char *list_key;
  const struct column *cols;
};

extern const struct command commands[];

/* commands.c, for the commands in other files: a path from fmt, each "{}"
 * replaced by the next of args percent-encoded (and ?live=true when live;
 * free it, NULL: out of memory); one call with its answer printed (takes
 * path and body). */
char *fill_path(const char *fmt, const char *const *args, bool live);
int call_print(const struct settings *s, const char *method, char *path,
               json_t *body, const char *list_key, const struct column *cols);

/* image.c: vmhostctl image … */
extern const struct column image_cols[];
int image_import(const struct settings *s, struct invocation *inv);
int image_list(const struct settings *s, struct invocation *inv);

/* The parsed command line of a command. */
#define MAX_POSITIONAL 8
#define MAX_OPTIONS 64
struct invocation {
  const struct command *cmd;
  const char *pos[MAX_POSITIONAL];
  size_t n_pos;
  struct {
    const char *name;
    const char *value; /* "" for a flag */
  } opt[MAX_OPTIONS];
  size_t n_opt;
};

/* The value of option name (the last one given), or NULL. */
const char *inv_opt(const struct invocation *inv, const char *name);
bool inv_flag(const struct invocation *inv, const char *name);

/* vmhostctl completion bash (main.c). */
int completion_bash(const struct settings *s, struct invocation *inv);

/* A usage error: print "vmhostctl: <msg>" and a hint; returns EXIT_USAGE. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
