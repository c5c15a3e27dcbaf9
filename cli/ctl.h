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
  char *text;       /* http_get_text, http_call_raw: a body that is not
                       application/json (bytes, NUL after them), or NULL */
  size_t text_len;
  char *headers; /* the answer's header lines ("name: value\r\n"…), or NULL */
};

/* A body that is not JSON: len bytes of type (a content type). */
struct raw_body {
  const char *type;
  const void *data;
  size_t len;
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
/* A request whose body (raw, NULL: none) and answer may be any bytes: the
 * answer in r->text unless it is application/json (r->json: an error, or
 * a JSON result).  As http_call otherwise. */
int http_call_raw(const struct settings *s, const char *method,
                  const char *path, const struct raw_body *raw,
                  struct reply *r);
/* The value of the answer's header name (case-insensitive), or NULL;
 * free it. */
char *reply_header(const struct reply *r, const char *name);
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

/* After the last call: close the connections the calls kept open. */
void http_end(void);

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
  const char *words;     /* "vm stop" */
  const char *args;      /* positional arguments: "VM [NAME]" */
  const char *rest;      /* the words after "--", taken as they are ("ARGV..."),
                            or NULL: "--" only ends the options */
  char short_name;       /* a one-letter form of one of its options, */
  const char *short_for; /* which wins over a global's (-o FILE), or 0 */
  const char *help;
  const struct option_spec *options; /* ends with {NULL}; NULL: none */
  int (*run)(const struct settings *s, struct invocation *inv);
  bool local; /* needs no server (and no settings) */
  const char *method, *path;
  const char *list_key;
  const struct column *cols;
};

extern const struct command commands[];

/* image.c: vmhostctl image … */
extern const struct column image_cols[];
int image_import(const struct settings *s, struct invocation *inv);
int image_list(const struct settings *s, struct invocation *inv);

/* ---- list.c: lists in pages ---- */

/* The page size vmhostctl asks for (kubectl's --chunk-size default). */
#define LIST_CHUNK_DEFAULT 500
/* The options of a paged list, in its option table. */
// clang-format off
#define LIST_PAGE_OPTIONS                                                    \
  {"limit", "N", "at most N, the first in the list's order"},                \
  {"chunk-size", "N",                                                        \
   "ask the server for pages of N (default 500; 0: the whole list in one "   \
   "answer)"}
// clang-format on
struct paging {
  long limit; /* the most items taken; 0: every one */
  long chunk; /* the page size asked; 0: no pages (one answer) */
};
/* --limit and --chunk-size of inv into p; 0, or a usage error (printed). */
int list_paging(const struct invocation *inv, struct paging *p);
/* GET path's list under list_key, page after page as p says, merged into
 * *out ({list_key: [...]}, as an unpaged answer; the caller owns it).
 * EXIT_OK or the exit code of the failure (printed unless s->quiet); with
 * failed, the error answer is left there (the caller frees it; status 0:
 * none). */
int list_fetch(const struct settings *s, const char *path, const char *list_key,
               const struct paging *p, json_t **out, struct reply *failed);
/* list_fetch, then the list printed in cols; takes path (NULL: out of
 * memory, reported). */
int list_print(const struct settings *s, char *path, const char *list_key,
               const struct column *cols, const struct paging *p);

/* The parsed command line of a command. */
#define MAX_POSITIONAL 64
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
  char **rest; /* command->rest: the words after "--" (in argv) */
  size_t n_rest;
};

/* The value of option name (the last one given), or NULL. */
const char *inv_opt(const struct invocation *inv, const char *name);
bool inv_flag(const struct invocation *inv, const char *name);

/* A path from fmt, each "{}" replaced by the next of args,
 * percent-encoded, and "?" query after it unless query is NULL; free it;
 * NULL when out of memory (commands.c). */
char *fill_path(const char *fmt, const char *const *args, const char *query);
/* One call, its answer printed (a list under list_key with cols, or one
 * object); 204 prints nothing.  Takes body and path (NULL: out of
 * memory, reported). */
int call_print(const struct settings *s, const char *method, char *path,
               json_t *body, const char *list_key, const struct column *cols);

/* A size, read as the daemon reads one (plugins/common/sizes.h: KiB =
 * 1024, KB = 1000), or a whole number from min to max.  0, or a usage
 * error (printed, naming what) (commands.c). */
int parse_size(const char *what, const char *text, json_int_t *out);
int parse_int(const char *what, const char *text, long min, long max,
              json_int_t *out);

/* vm agent exec, vm agent file get|put (agent.c). */
int agent_exec(const struct settings *s, struct invocation *inv);
int agent_file_get(const struct settings *s, struct invocation *inv);
int agent_file_put(const struct settings *s, struct invocation *inv);

/* vmhostctl completion bash (main.c). */
int completion_bash(const struct settings *s, struct invocation *inv);

/* A usage error: print "vmhostctl: <msg>" and a hint; returns EXIT_USAGE. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
