/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmhostctl's commands that reach into a guest through its agent:
 *
 *   vm agent exec VM [--timeout S] [--stdin FILE] -- ARGV...
 *       POST /api/v1/vms/{vm}/agent/exec: the guest's stdout and stderr on
 *       ours, its exit status as ours (124 timed out, 128+N killed by N)
 *   vm agent file get VM PATH [-o FILE]
 *       GET /api/v1/vms/{vm}/agent/files?path=&offset=, as many reads as
 *       the file takes; FILE appears whole or not at all
 *   vm agent file put VM PATH FILE [--mode MODE]
 *       PUT /api/v1/vms/{vm}/agent/files?path=[&mode=] with FILE's bytes
 *
 * The bytes of files (both ways) travel as they are
 * (application/octet-stream, http_call_raw); exec's in JSON, base64 when
 * they are not UTF-8. */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomicfile.h"
#include "base64.h"
#include "cleanup.h"
#include "ctl.h"

/* What the REST front-end takes in one file write or exec stdin: the
 * guest channel's frame (1 MiB) less room for the rest of the message
 * (plugins/frontend/rest/agent.c). */
#define AGENT_DATA_MAX ((1u << 20) - 8192)
/* timeout(1)'s status for a command that ran out of time. */
#define EXIT_TIMED_OUT 124

/* FILE's bytes ("-": standard input), at most AGENT_DATA_MAX; NULL after a
 * usage error naming what. */
static char *read_bytes(const char *what, const char *path, size_t *len) {
  _cleanup_fclose_ FILE *f = strcmp(path, "-") ? fopen(path, "re") : NULL;
  FILE *in = strcmp(path, "-") ? f : stdin;
  if (!in) {
    usage_error("%s: cannot read %s: %s", what, path, strerror(errno));
    return NULL;
  }
  char *buf = malloc(AGENT_DATA_MAX + 1);
  if (!buf) {
    fprintf(stderr, "vmhostctl: out of memory\n");
    return NULL;
  }
  *len = fread(buf, 1, AGENT_DATA_MAX, in);
  if (ferror(in) || (*len == AGENT_DATA_MAX && fgetc(in) != EOF)) {
    usage_error("%s: %s: %s", what, path,
                ferror(in) ? strerror(errno)
                           : "over 1040384 bytes, the most the guest "
                             "channel carries at once");
    free(buf);
    return NULL;
  }
  return buf;
}

/* ---- exec --------------------------------------------------------------- */

/* The options of the request into body. */
static int exec_options(struct invocation *inv, json_t *body, long *timeout_s) {
  const char *v;
  json_int_t n;
  if ((v = inv_opt(inv, "timeout"))) {
    if (parse_int("--timeout", v, 1, 86400, &n))
      return EXIT_USAGE;
    *timeout_s = (long)n;
    json_object_set_new(body, "timeout_ms", json_integer(n * 1000));
  }
  if ((v = inv_opt(inv, "max-output"))) {
    if (parse_size("--max-output", v, &n))
      return EXIT_USAGE;
    json_object_set_new(body, "max_output", json_integer(n));
  }
  if ((v = inv_opt(inv, "stdin"))) {
    size_t len;
    _cleanup_free_ char *data = read_bytes("--stdin", v, &len);
    _cleanup_free_ char *b64 = data ? base64_encode(data, len) : NULL;
    if (!b64)
      return data ? EXIT_ERROR : EXIT_USAGE;
    json_object_set_new(body, "stdin", json_string(b64));
    json_object_set_new(body, "stdin_encoding", json_string("base64"));
  }
  return EXIT_OK;
}

/* The request: argv, and the options; *ret is the caller's. */
static int exec_body(struct invocation *inv, json_t **ret, long *timeout_s) {
  if (inv->rest[0][0] != '/')
    return usage_error(
        "exec: '%s' must be an absolute path (the agent runs it without a "
        "shell or a search path)",
        inv->rest[0]);
  json_t *body = json_object(), *argv = json_array();
  int r = body && argv && !json_object_set_new(body, "argv", argv) ? EXIT_OK
                                                                   : EXIT_ERROR;
  if (r == EXIT_ERROR)
    json_decref(argv);
  for (size_t i = 0; r == EXIT_OK && i < inv->n_rest; i++)
    if (json_array_append_new(argv, json_string(inv->rest[i])) < 0)
      r = usage_error("exec: argument %zu is not UTF-8 text", i + 1);
  if (r == EXIT_OK)
    r = exec_options(inv, body, timeout_s);
  if (r != EXIT_OK) {
    json_decref(body);
    return r;
  }
  *ret = body;
  return EXIT_OK;
}

/* One of the answer's streams to f, decoded; -1 when it is not what the
 * API documents. */
static int put_stream(json_t *res, const char *name, FILE *f) {
  char enc_key[32];
  snprintf(enc_key, sizeof enc_key, "%s_encoding", name);
  const char *text = json_string_value(json_object_get(res, name));
  const char *enc = json_string_value(json_object_get(res, enc_key));
  if (!text)
    return -1;
  if (enc && !strcmp(enc, "base64")) {
    size_t len;
    _cleanup_free_ unsigned char *b = base64_decode(text, &len);
    if (!b)
      return -1;
    fwrite(b, 1, len, f);
  } else {
    fputs(text, f);
  }
  return fflush(f) == 0 ? 0 : -1;
}

/* The guest's outcome as our exit status, with a line on stderr for what
 * its streams cannot say. */
static int exec_status(json_t *res) {
  static const char *const streams[] = {"stdout", "stderr"};
  for (int i = 0; i < 2; i++) {
    char key[32];
    snprintf(key, sizeof key, "%s_truncated", streams[i]);
    if (json_is_true(json_object_get(res, key)))
      fprintf(stderr,
              "vmhostctl: the guest's %s was cut at the output cap "
              "(--max-output, or the agent's)\n",
              streams[i]);
  }
  if (json_is_true(json_object_get(res, "timed_out"))) {
    fprintf(stderr, "vmhostctl: the program timed out in the guest (killed)\n");
    return EXIT_TIMED_OUT;
  }
  json_int_t sig = json_integer_value(json_object_get(res, "signal"));
  if (sig > 0 && sig < 128) {
    fprintf(stderr, "vmhostctl: the program was killed by signal %d\n",
            (int)sig);
    return 128 + (int)sig;
  }
  json_int_t st = json_integer_value(json_object_get(res, "exit_status"));
  return st >= 0 && st <= 255 ? (int)st : EXIT_ERROR;
}

int agent_exec(const struct settings *s, struct invocation *inv) {
  json_t *body = NULL;
  long timeout_s = 0;
  int ret = exec_body(inv, &body, &timeout_s);
  if (ret)
    return ret;
  /* The whole request lasts as long as the program may, and then some. */
  struct settings longer = *s;
  if (longer.timeout_s && longer.timeout_s < timeout_s + 30)
    longer.timeout_s = timeout_s + 30;
  _cleanup_free_ char *path = fill_path(inv->cmd->path, inv->pos, NULL);
  struct reply r;
  if (!path) {
    json_decref(body);
    fprintf(stderr, "vmhostctl: out of memory\n");
    return EXIT_ERROR;
  }
  ret = http_call(&longer, "POST", path, body, &r);
  json_decref(body);
  if (ret == EXIT_OK && (s->output == OUT_JSON || s->output == OUT_YAML)) {
    output_print(s, r.json, NULL, NULL);
    ret = exec_status(r.json);
  } else if (ret == EXIT_OK) {
    if (put_stream(r.json, "stdout", stdout) < 0 ||
        put_stream(r.json, "stderr", stderr) < 0) {
      fprintf(stderr, "vmhostctl: the answer has no stdout or stderr\n");
      ret = EXIT_ERROR;
    } else {
      ret = exec_status(r.json);
    }
  }
  reply_free(&r);
  return ret;
}

/* ---- files -------------------------------------------------------------- */

/* /api/v1/vms/{vm}/agent/files?path=P, then extra (an &… or "") */
static char *files_path(struct invocation *inv, const char *extra) {
  _cleanup_free_ char *base = fill_path(inv->cmd->path, inv->pos, NULL);
  _cleanup_free_ char *p = http_escape(inv->pos[1]);
  char *out = NULL;
  if (!base || !p || asprintf(&out, "%s?path=%s%s", base, p, extra) < 0)
    return NULL;
  return out;
}

/* Every read of the file, appended to fd. */
static int copy_out(const struct settings *s, struct invocation *inv, int fd) {
  unsigned long long offset = 0;
  for (;;) {
    char extra[48];
    snprintf(extra, sizeof extra, "&offset=%llu", offset);
    _cleanup_free_ char *path = files_path(inv, extra);
    if (!path) {
      fprintf(stderr, "vmhostctl: out of memory\n");
      return EXIT_ERROR;
    }
    struct reply r;
    int ret = http_call_raw(s, "GET", path, NULL, &r);
    if (ret == EXIT_OK && !r.text) {
      fprintf(stderr, "vmhostctl: the answer is not the file's bytes\n");
      ret = EXIT_ERROR;
    }
    _cleanup_free_ char *eof = ret ? NULL : reply_header(&r, "x-file-eof");
    if (ret == EXIT_OK && write_all(fd, r.text, r.text_len) < 0) {
      fprintf(stderr, "vmhostctl: cannot write the file: %s\n",
              strerror(errno));
      ret = EXIT_ERROR;
    }
    size_t got = r.text_len;
    reply_free(&r);
    if (ret)
      return ret;
    /* The end, or a file that stopped growing under a reader. */
    if (!eof || strcmp(eof, "false") || got == 0)
      return EXIT_OK;
    offset += got;
  }
}

int agent_file_get(const struct settings *s, struct invocation *inv) {
  const char *out = inv_opt(inv, "out");
  if (!out || !strcmp(out, "-"))
    return copy_out(s, inv, STDOUT_FILENO);
  struct atomic_file af;
  if (atomic_open(&af, out, 0644) < 0)
    return usage_error("-o %s: cannot write there: %s", out, strerror(errno));
  int ret = copy_out(s, inv, af.fd);
  if (ret) {
    atomic_abort(&af); /* nothing half-made left behind */
    return ret;
  }
  if (atomic_commit(&af) < 0) {
    fprintf(stderr, "vmhostctl: cannot write %s: %s\n", out, strerror(errno));
    return EXIT_ERROR;
  }
  return EXIT_OK;
}

int agent_file_put(const struct settings *s, struct invocation *inv) {
  const char *mode = inv_opt(inv, "mode");
  size_t len;
  _cleanup_free_ char *data = read_bytes("FILE", inv->pos[2], &len);
  if (!data)
    return EXIT_USAGE;
  _cleanup_free_ char *m = mode ? http_escape(mode) : NULL;
  _cleanup_free_ char *extra = NULL;
  if (asprintf(&extra, "%s%s", m ? "&mode=" : "", m ? m : "") < 0)
    extra = NULL;
  _cleanup_free_ char *path = extra ? files_path(inv, extra) : NULL;
  if (!path) {
    fprintf(stderr, "vmhostctl: out of memory\n");
    return EXIT_ERROR;
  }
  const struct raw_body raw = {"application/octet-stream", data, len};
  struct reply r;
  int ret = http_call_raw(s, "PUT", path, &raw, &r);
  if (ret == EXIT_OK && r.json)
    output_print(s, r.json, NULL, NULL);
  reply_free(&r);
  return ret;
}
