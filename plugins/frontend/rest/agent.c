/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The REST routes of a VM's guest agent (vmh_core.vm_agent, answered by
 * the guest front-end through the core):
 *
 *   GET  /api/v1/vms/{vm}/agent[?live=true] state, version, capabilities,
 *                                           last (live: fresh) telemetry
 *   POST /api/v1/vms/{vm}/agent/ping        a round trip (reader)
 *   POST /api/v1/vms/{vm}/agent/exec        argv, no shell (admin)
 *   GET  /api/v1/vms/{vm}/agent/files?path= the file's bytes (admin)
 *   PUT  /api/v1/vms/{vm}/agent/files?path= bytes in (admin)
 *   POST /api/v1/vms/{vm}/agent/time-sync   guest clock := host's (operator)
 *
 * Exec and files are admin: they act as root inside the guest without the
 * guest's own credentials (the console, an operator's, still needs a
 * login).  Time sync only sets the guest clock to the host's.
 *
 * Also the snapshot's "quiesce" field (frontend-rest.c's snap_create). */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"
#include "rest.h"

/* The most a file or exec's stdin may carry: the guest channel's frame
 * (1 MiB) less room for the rest of the message.  The guest front-end and
 * the agent have their own caps, which may be lower. */
#define AGENT_DATA_MAX ((UINT64_C(1) << 20) - 8192)
#define MAX_ARGS 256

static bool have_agent_api(struct call *k) {
  const struct vmh_core *core = k->rest->core;
  if (VMH_HAS_FIELD(core, vm_agent) && core->vm_agent)
    return true;
  rest_answer_code(k, VMH_ENOTSUP, "this vmhostd has no guest agent API");
  return false;
}

static int start(struct call *k, const struct vmh_agent_request *req) {
  k->shape = ONE;
  k->rest->core->vm_agent(k->params[0], req, &k->reply.reply, 0);
  return 0;
}

int rest_agent_show(struct call *k) {
  uint32_t live;
  if (rest_check_param(k, 0, "vm", true) < 0 || rest_query_live(k, &live) < 0 ||
      !have_agent_api(k))
    return -1;
  /* live: fresh telemetry, a round trip to the agent. */
  struct vmh_agent_request req = {
      .struct_size = sizeof req,
      .op = live ? VMH_AGENT_TELEMETRY : VMH_AGENT_SHOW};
  return start(k, &req);
}

/* A request without arguments (an empty JSON object or no body). */
static int no_args(struct call *k, uint32_t op) {
  if (rest_check_param(k, 0, "vm", true) < 0 || rest_no_query(k) < 0 ||
      rest_need_body(k, true) < 0 || !have_agent_api(k))
    return -1;
  if (json_object_size(k->body))
    return rest_bad(k, "unknown field '%s'",
                    json_object_iter_key(json_object_iter(k->body)));
  struct vmh_agent_request req = {.struct_size = sizeof req, .op = op};
  return start(k, &req);
}

int rest_agent_ping(struct call *k) {
  return no_args(k, VMH_AGENT_PING);
}

int rest_agent_time_sync(struct call *k) {
  return no_args(k, VMH_AGENT_TIME_SYNC);
}

/* "stdin" with "stdin_encoding" (utf-8, the default, or base64) into
 * req's data (in the call's arena). */
static int exec_stdin(struct call *k, struct vmh_agent_request *req) {
  json_t *in = json_object_get(k->body, "stdin");
  json_t *enc = json_object_get(k->body, "stdin_encoding");
  const char *e = "utf-8";
  if (enc && !(e = json_string_value(enc)))
    return rest_bad(k, "'stdin_encoding' must be \"utf-8\" or \"base64\"");
  if (strcmp(e, "utf-8") && strcmp(e, "base64"))
    return rest_bad(k, "'stdin_encoding' must be \"utf-8\" or \"base64\"");
  if (!in)
    return 0;
  if (!json_is_string(in))
    return rest_bad(k, "'stdin' must be a string");
  size_t len = json_string_length(in);
  if (!strcmp(e, "utf-8")) {
    if (len > AGENT_DATA_MAX)
      return rest_bad(k, "'stdin' is over %" PRIu64 " bytes", AGENT_DATA_MAX);
    req->data = (const uint8_t *)json_string_value(in);
    req->len = len;
    return 0;
  }
  uint8_t *buf = abij_arena_alloc(&k->in.arena, len / 4 * 3 + 1);
  if (!buf)
    return rest_refused(k, VMH_ENOMEM);
  long n = abij_unbase64(json_string_value(in), buf, len / 4 * 3 + 1);
  if (n < 0)
    return rest_bad(k, "'stdin' is not base64");
  if ((uint64_t)n > AGENT_DATA_MAX)
    return rest_bad(k, "'stdin' is over %" PRIu64 " bytes", AGENT_DATA_MAX);
  req->data = buf;
  req->len = (size_t)n;
  return 0;
}

int rest_agent_exec(struct call *k) {
  static const char *const keys[] = {"argv",  "timeout_ms",     "max_output",
                                     "stdin", "stdin_encoding", NULL};
  struct vmh_agent_request req = {.struct_size = sizeof req,
                                  .op = VMH_AGENT_EXEC};
  int r;
  if (rest_check_param(k, 0, "vm", true) < 0 || rest_no_query(k) < 0 ||
      rest_need_body(k, false) < 0 || !have_agent_api(k))
    return -1;
  if ((r = abij_only_keys(&k->in, k->body, "", keys)) < 0 ||
      (r = abij_u32(&k->in, k->body, "", "timeout_ms", &req.timeout_ms)) < 0 ||
      (r = abij_u32(&k->in, k->body, "", "max_output", &req.max_output)) < 0)
    return rest_refused(k, r);
  json_t *argv = json_object_get(k->body, "argv");
  size_t n = json_array_size(argv);
  if (!json_is_array(argv) || n < 1 || n > MAX_ARGS)
    return rest_bad(k, "'argv' must be an array of 1 to %d strings", MAX_ARGS);
  const char **v = abij_arena_alloc(&k->in.arena, n * sizeof *v);
  if (!v)
    return rest_refused(k, VMH_ENOMEM);
  for (size_t i = 0; i < n; i++) {
    json_t *a = json_array_get(argv, i);
    if (!json_is_string(a) ||
        strlen(json_string_value(a)) != json_string_length(a))
      return rest_bad(k, "'argv[%zu]' must be a string without NUL", i);
    v[i] = json_string_value(a);
  }
  if (v[0][0] != '/')
    return rest_bad(k,
                    "'argv[0]' must be an absolute path (there is no "
                    "shell and no PATH search)");
  if (exec_stdin(k, &req) < 0)
    return -1;
  req.argv = v;
  req.argc = (uint32_t)n;
  return start(k, &req);
}

/* ---- files ------------------------------------------------------------- */

/* Percent-decodes len bytes of s ('+' is a space) into the arena; NULL
 * when malformed, holding a NUL, or out of memory. */
static char *decode(struct call *k, const char *s, size_t len) {
  char *out = abij_arena_alloc(&k->in.arena, len + 1);
  if (!out)
    return NULL;
  memcpy(out, s, len);
  out[len] = '\0';
  return query_decode(out) == 0 ? out : NULL;
}

struct file_query {
  const char *path;
  uint64_t offset;
  uint32_t max_bytes;
  uint32_t mode;
};

static int parse_u64(const char *s, uint64_t max, uint64_t *v, int base) {
  char *end;
  if (!*s || *s == '-' || *s == '+')
    return -1;
  errno = 0;
  unsigned long long x = strtoull(s, &end, base);
  if (*end || errno || x > max)
    return -1;
  *v = x;
  return 0;
}

/* ?path=…[&offset=N&max_bytes=N] (GET) or ?path=…[&mode=0644] (PUT). */
static int file_query(struct call *k, bool put, struct file_query *q) {
  const char *s = h2s_query(k->req);
  *q = (struct file_query){0};
  while (s && *s) {
    size_t len = strcspn(s, "&");
    const char *eq = memchr(s, '=', len);
    if (!eq)
      return rest_bad(k, "query '%.*s' has no value",
                      (int)(len > 64 ? 64 : len), s);
    size_t klen = (size_t)(eq - s);
    char *val = decode(k, eq + 1, len - klen - 1);
    if (!val)
      return rest_bad(k, "the query's value of '%.*s' is malformed",
                      (int)(klen > 64 ? 64 : klen), s);
    uint64_t v;
    if (klen == 4 && !memcmp(s, "path", 4)) {
      q->path = val;
    } else if (!put && klen == 6 && !memcmp(s, "offset", 6)) {
      if (parse_u64(val, INT64_MAX, &v, 10) < 0)
        return rest_bad(k, "'offset' must be a byte offset");
      q->offset = v;
    } else if (!put && klen == 9 && !memcmp(s, "max_bytes", 9)) {
      if (parse_u64(val, AGENT_DATA_MAX, &v, 10) < 0)
        return rest_bad(k, "'max_bytes' must be 0 to %" PRIu64, AGENT_DATA_MAX);
      q->max_bytes = (uint32_t)v;
    } else if (put && klen == 4 && !memcmp(s, "mode", 4)) {
      if (parse_u64(val, 07777, &v, 8) < 0)
        return rest_bad(k, "'mode' must be octal permission bits, e.g. 0644");
      q->mode = (uint32_t)v;
    } else {
      return rest_bad(k, "unknown query parameter '%.*s' (%s)",
                      (int)(klen > 64 ? 64 : klen), s,
                      put ? "path, mode" : "path, offset, max_bytes");
    }
    s += len;
    if (*s == '&')
      s++;
  }
  if (!q->path || q->path[0] != '/')
    return rest_bad(k, "'path' must be given, an absolute path in the guest");
  return 0;
}

/* GET: the bytes as they come from the agent, answered as they are. */
static void file_bytes(void *o, const struct vmh_agent_result *in) {
  struct abij_reply *ar = o;
  struct call *k = ar->opaque;
  struct vmh_agent_result res = {0};
  memcpy(&res, in, in->struct_size < sizeof res ? in->struct_size : sizeof res);
  pthread_mutex_lock(&k->lock);
  free(k->text);
  k->text = malloc(res.len ? res.len : 1);
  if (k->text) {
    if (res.len)
      memcpy(k->text, res.data, res.len);
    k->text_len = res.len;
    char n[32];
    snprintf(n, sizeof n, "%" PRIu64, res.size);
    h2s_add_header(k->req, "x-file-size", n);
    h2s_add_header(k->req, "x-file-eof", res.eof ? "true" : "false");
  }
  pthread_mutex_unlock(&k->lock);
}

static void finish_file(struct call *k, int code, const char *message) {
  if (code) {
    rest_answer_code(k, code, message);
    return;
  }
  if (!k->text) {
    rest_answer_code(k, VMH_ENOMEM, "out of memory");
    return;
  }
  rest_answer_bytes(k, 200, "application/octet-stream", k->text, k->text_len);
}

int rest_agent_file_get(struct call *k) {
  struct file_query q;
  if (rest_check_param(k, 0, "vm", true) < 0 || !have_agent_api(k) ||
      file_query(k, false, &q) < 0)
    return -1;
  struct vmh_agent_request req = {.struct_size = sizeof req,
                                  .op = VMH_AGENT_FILE_READ,
                                  .path = q.path,
                                  .offset = q.offset,
                                  .max_bytes = q.max_bytes};
  k->reply.reply.agent = file_bytes;
  k->finish = finish_file;
  return start(k, &req);
}

static int too_large(struct call *k) {
  rest_answer_error(k, 413, "payload_too_large",
                    "a file written through the agent is at most 1040384 "
                    "bytes");
  return -1;
}

static int file_put_start(struct call *k, const uint8_t *data, size_t len) {
  struct vmh_agent_request req = {.struct_size = sizeof req,
                                  .op = VMH_AGENT_FILE_WRITE,
                                  .path = k->upload_path,
                                  .mode = k->upload_mode,
                                  .data = data,
                                  .len = len};
  return start(k, &req);
}

/* The body of an early PUT as it comes (I/O thread): kept up to the cap,
 * refused past it at once, handed to the agent when whole. */
static void upload_data(void *o, const char *d, size_t n, int end) {
  struct call *k = o;
  if (k->upload_started || k->upload_answered)
    return;
  if (n > AGENT_DATA_MAX - k->upload_len) {
    k->upload_answered = true;
    h2s_on_data(k->req, NULL, NULL);
    too_large(k);
    return;
  }
  if (n) {
    uint8_t *b = realloc(k->upload, k->upload_len + n);
    if (!b) {
      k->upload_answered = true;
      h2s_on_data(k->req, NULL, NULL);
      rest_answer_code(k, VMH_ENOMEM, "out of memory");
      return;
    }
    memcpy(b + k->upload_len, d, n);
    k->upload = b;
    k->upload_len += n;
  }
  if (!end)
    return;
  k->upload_started = true;
  h2s_on_data(k->req, NULL, NULL);
  file_put_start(k, k->upload, k->upload_len);
}

/* The stream's end (I/O thread): a client gone mid-body leaves nobody to
 * answer, so the call is answered (into the void) and released here. */
static void upload_watch(void *o, enum h2s_watch_event ev) {
  struct call *k = o;
  if (ev == H2S_WATCH_DEADLINE)
    return;
  if (!k->upload_started && !k->upload_answered) {
    k->upload_answered = true;
    h2s_on_data(k->req, NULL, NULL);
    rest_answer_error(k, 400, "invalid_argument",
                      "the body ended before it was whole");
  }
  rest_call_unref(k);
}

int rest_early(void *opaque, const char *path) {
  (void)opaque;
  static const char prefix[] = "/api/v1/vms/", suffix[] = "/agent/files";
  size_t n = strlen(path);
  return n > sizeof prefix + sizeof suffix - 2 &&
         !strncmp(path, prefix, sizeof prefix - 1) &&
         !strcmp(path + n - (sizeof suffix - 1), suffix);
}

int rest_agent_file_put(struct call *k) {
  struct file_query q;
  if (rest_check_param(k, 0, "vm", true) < 0 || !have_agent_api(k))
    return -1;
  /* The cap by the announced length first: nothing of a body over it is
   * kept (over HTTP/2 the body is not read yet; over HTTP/1.1 the server
   * holds at most its max_body_size). */
  const char *cl = h2s_header(k->req, "content-length");
  uint64_t announced;
  if (cl && (parse_u64(cl, UINT64_MAX, &announced, 10) < 0 ||
             announced > AGENT_DATA_MAX))
    return too_large(k);
  const char *ct = h2s_header(k->req, "content-type");
  if (ct && strncmp(ct, "application/octet-stream", 24)) {
    rest_answer_error(k, 415, "unsupported_media_type",
                      "the body must be application/octet-stream (the "
                      "file's bytes)");
    return -1;
  }
  if (file_query(k, true, &q) < 0)
    return -1;
  k->upload_path = q.path;
  k->upload_mode = q.mode;
  if (!h2s_body_done(k->req)) {
    /* HTTP/2, handed over before the body (rest_early): taken as it
     * comes, bounded here. */
    rest_call_ref(k); /* the watch's */
    h2s_watch(k->req, 0, upload_watch, k);
    h2s_on_data(k->req, upload_data, k);
    return 0;
  }
  size_t len;
  const char *body = h2s_body(k->req, &len);
  if (len > AGENT_DATA_MAX)
    return too_large(k);
  return file_put_start(k, (const uint8_t *)body, len);
}

/* ---- snapshots --------------------------------------------------------- */

int rest_quiesce_flags(struct call *k, uint32_t *flags) {
  json_t *q = json_object_get(k->body, "quiesce");
  *flags = 0;
  if (!q || json_is_false(q))
    return 0;
  if (json_is_true(q)) {
    *flags = VMH_SNAPSHOT_QUIESCE;
    return 0;
  }
  if (json_is_string(q) && !strcmp(json_string_value(q), "try")) {
    *flags = VMH_SNAPSHOT_QUIESCE | VMH_SNAPSHOT_QUIESCE_TRY;
    return 0;
  }
  return rest_bad(k, "'quiesce' must be true, false or \"try\"");
}
