/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The HTTP client of vmhostctl over libcurl: HTTP/2 always (TLS with ALPN
 * h2 for https://, prior knowledge for http:// and unix sockets), bearer
 * token, CA or --insecure, client certificate.  API errors become one line
 * on stderr and an exit code (ctl.h). */
#include <config.h>

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cleanup.h"
#include "ctl.h"

/* Bigger answers are refused: no list of this API comes near it. */
#define MAX_BODY (64u << 20)

struct buf {
  char *data;
  size_t len;
  bool too_big;
};

struct exchange {
  struct buf body;
  struct buf headers; /* the final answer's header lines */
  char *request_id;
  bool event_stream; /* content-type: text/event-stream */
  bool json;         /* content-type: application/json */
  /* Streams only: */
  struct buf line;
  char *ev_type;
  struct buf ev_data;
  event_cb on_event;
  void *opaque;
  bool stopped;     /* on_event asked to stop */
  int stream_error; /* an "error" event's exit code */
};

static void buf_free(struct buf *b) {
  free(b->data);
  memset(b, 0, sizeof *b);
}

static bool buf_add(struct buf *b, const char *p, size_t n) {
  if (b->len + n + 1 > MAX_BODY) {
    b->too_big = true;
    return false;
  }
  char *d = realloc(b->data, b->len + n + 1);
  if (!d)
    return false;
  memcpy(d + b->len, p, n);
  b->len += n;
  d[b->len] = '\0';
  b->data = d;
  return true;
}

static size_t on_header(char *p, size_t size, size_t n, void *opaque) {
  struct exchange *x = opaque;
  size_t len = size * n;
  /* A status line starts the headers of another answer (after a 100
   * Continue, say): only the last one's are kept. */
  if (len > 5 && !strncmp(p, "HTTP/", 5))
    x->headers.len = 0;
  else if (!buf_add(&x->headers, p, len))
    return 0;
  static const char rid[] = "x-request-id:";
  static const char ctype[] = "content-type:";
  if (len > sizeof rid - 1 && !strncasecmp(p, rid, sizeof rid - 1)) {
    const char *v = p + sizeof rid - 1;
    size_t vlen = len - (sizeof rid - 1);
    while (vlen && (*v == ' ' || *v == '\t'))
      v++, vlen--;
    while (vlen &&
           (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
      vlen--;
    free(x->request_id);
    x->request_id = strndup(v, vlen);
  } else if (len > sizeof ctype - 1 &&
             !strncasecmp(p, ctype, sizeof ctype - 1)) {
    x->event_stream = strstr(p, "text/event-stream") != NULL;
    x->json = strstr(p, "application/json") != NULL;
  }
  return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *opaque) {
  struct exchange *x = opaque;
  return buf_add(&x->body, p, size * n) ? size * n : 0;
}

/* The exit code of an API error code (errname's names, upper case). */
static int exit_for_code(const char *code, long status) {
  static const struct {
    const char *code;
    int exit;
  } map[] = {
      {"NOT_FOUND", EXIT_NOT_FOUND},    {"ALREADY_EXISTS", EXIT_CONFLICT},
      {"BUSY", EXIT_CONFLICT},          {"INVALID_STATE", EXIT_CONFLICT},
      {"UNAUTHENTICATED", EXIT_DENIED}, {"PERMISSION_DENIED", EXIT_DENIED},
      {"TRY_AGAIN", EXIT_RETRY},        {"UNAVAILABLE", EXIT_RETRY},
      {"RATE_LIMITED", EXIT_RETRY},
  };
  for (size_t i = 0; code && i < sizeof map / sizeof map[0]; i++)
    if (!strcmp(code, map[i].code))
      return map[i].exit;
  if (code)
    return EXIT_ERROR;
  switch (status) {
    case 404:
      return EXIT_NOT_FOUND;
    case 409:
      return EXIT_CONFLICT;
    case 401:
    case 403:
      return EXIT_DENIED;
    case 429:
    case 503:
      return EXIT_RETRY;
    default:
      return EXIT_ERROR;
  }
}

/* Print an error answer; returns its exit code. */
static int report_error(long status, json_t *body, const char *raw,
                        const char *request_id) {
  json_t *e = json_object_get(body, "error");
  const char *code = json_string_value(json_object_get(e, "code"));
  const char *msg = json_string_value(json_object_get(e, "message"));
  const char *rid = json_string_value(json_object_get(e, "request_id"));
  if (!rid)
    rid = request_id;
  /* Not the API's error shape (a proxy's page, say): its first line. */
  bool api = code && msg;
  int n = raw ? (int)strcspn(raw, "\r\n") : 0;
  _cleanup_free_ char *text = NULL;
  int len = api ? asprintf(&text, "vmhostctl: %s: %s", code, msg)
                : asprintf(&text, "vmhostctl: HTTP %ld%s%.*s", status,
                           n ? ": " : "", n > 200 ? 200 : n, raw ? raw : "");
  if (len < 0)
    text = NULL;
  _cleanup_free_ char *tail = NULL;
  if (rid && asprintf(&tail, " (request %s)", rid) < 0)
    tail = NULL;
  text_sanitize(text, false);
  text_sanitize(tail, false);
  fprintf(stderr, "%s%s\n", text ? text : "vmhostctl: error", tail ? tail : "");
  return exit_for_code(api ? code : NULL, status);
}

int http_report(const struct reply *r) {
  return report_error(r->status, r->json, NULL, r->request_id);
}

int http_exit_for_code(const char *code) {
  return exit_for_code(code, 0);
}

char *http_escape(const char *segment) {
  return curl_easy_escape(NULL, segment, 0);
}

/* The one handle every call of a run uses, reset between calls: it keeps
 * its connection (and TLS session), so the pages of a list or an import's
 * polls go over one connection, not one each. */
static CURL *handle;

/* Whether a connection to base may serve the next call too: libcurl before
 * 8.0.0 fails the second request on a cleartext connection begun with
 * prior knowledge ("Error in the HTTP2 framing layer", curl issue 10634;
 * Debian 12 has 7.88.1), so there each call has its own. */
static bool reusable(const char *base) {
  return !strncmp(base, "https:", 6) ||
         curl_version_info(CURLVERSION_NOW)->version_num >= 0x080000;
}

void http_end(void) {
  if (handle)
    curl_easy_cleanup(handle);
  handle = NULL;
}

/* A handle for s, path, with the answer's headers and body going to x
 * (the body through write); headers (owned by the caller) begun here. */
static CURL *easy_new(const struct settings *s, const char *path,
                      const char *accept, struct curl_slist **headers,
                      char *errbuf, struct exchange *x,
                      curl_write_callback write) {
  if (handle)
    curl_easy_reset(handle);
  else if (!(handle = curl_easy_init()))
    return NULL;
  CURL *c = handle;
  const char *base = s->url;
  _cleanup_free_ char *url = NULL;
  if (!strncmp(base, "unix:", 5)) {
    const char *sock = base + 5;
    if (!strncmp(sock, "//", 2))
      sock += 2;
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
    base = "http://localhost";
  }
  size_t blen = strlen(base);
  while (blen && base[blen - 1] == '/')
    blen--;
  if (asprintf(&url, "%.*s%s", (int)blen, base, path) < 0)
    return NULL;
  curl_easy_setopt(c, CURLOPT_URL, url);
  if (!reusable(base))
    curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_HTTP_VERSION,
                   !strncmp(base, "https:", 6)
                       ? (long)CURL_HTTP_VERSION_2TLS
                       : (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 20L);
  /* With libcurl's default 16 KiB receive buffer, every h2c answer over
   * 16 KiB (a list of 15 VMs) took 200 ms more here (libcurl 7.88;
   * tests/bench/vmhostctl.py); curl's own tool reads 100 KiB at a time. */
  curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 102400L);
  if (s->cacert) {
    /* Only these CAs: libcurl would also read its CA directory, every
     * certificate in it, which is not wanted and not cheap (a call over
     * TLS took 131 ms with it, 32 ms without). */
    curl_easy_setopt(c, CURLOPT_CAINFO, s->cacert);
    curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
  }
  if (s->insecure) {
    curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (s->cert)
    curl_easy_setopt(c, CURLOPT_SSLCERT, s->cert);
  if (s->key)
    curl_easy_setopt(c, CURLOPT_SSLKEY, s->key);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
  *headers = curl_slist_append(*headers, "User-Agent: vmhostctl/" VERSION);
  *headers = curl_slist_append(*headers, accept);
  if (s->token) {
    _cleanup_free_ char *auth = NULL;
    if (asprintf(&auth, "Authorization: Bearer %s", s->token) >= 0)
      *headers = curl_slist_append(*headers, auth);
  }
  return c;
}

static void exchange_end(struct exchange *x, struct curl_slist *headers,
                         CURL *c) {
  buf_free(&x->body);
  buf_free(&x->headers);
  buf_free(&x->line);
  buf_free(&x->ev_data);
  free(x->ev_type);
  free(x->request_id);
  /* The handle stays, with its connection; not the options pointing at
   * what the call freed (its header list, error buffer, x). */
  if (c)
    curl_easy_reset(c);
  curl_slist_free_all(headers);
}

/* Run the transfer; the exit code of a transport failure, or EXIT_OK. */
static int perform(CURL *c, struct curl_slist *headers,
                   const struct settings *s, const char *errbuf,
                   struct exchange *x) {
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && x->stopped))
    return EXIT_OK;
  if (rc == CURLE_WRITE_ERROR && x->body.too_big) {
    fprintf(stderr, "vmhostctl: the answer is over %u MiB: refused\n",
            MAX_BODY >> 20);
    return EXIT_ERROR;
  }
  if (x->stream_error)
    return x->stream_error;
  fprintf(stderr, "vmhostctl: %s: %s\n", s->url,
          *errbuf ? errbuf : curl_easy_strerror(rc));
  return rc == CURLE_OUT_OF_MEMORY ? EXIT_ERROR : EXIT_UNREACHABLE;
}

/* http_call, and with text set the answer's body may be other than JSON
 * (r->text: whatever is not application/json); raw: a body sent as it is
 * (instead of body). */
static int request(const struct settings *s, const char *method,
                   const char *path, json_t *body, const struct raw_body *raw,
                   bool text, struct reply *r) {
  memset(r, 0, sizeof *r);
  char errbuf[CURL_ERROR_SIZE] = "";
  struct curl_slist *headers = NULL;
  struct exchange x = {0};
  _cleanup_free_ char *payload = NULL;
  CURL *c = easy_new(s, path, text ? "Accept: */*" : "Accept: application/json",
                     &headers, errbuf, &x, on_body);
  int ret = EXIT_ERROR;
  if (!c) {
    fprintf(stderr, "vmhostctl: out of memory\n");
    goto cleanup;
  }
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  if (body) {
    payload = json_dumps(body, JSON_COMPACT);
    if (!payload)
      goto cleanup;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload);
  } else if (raw) {
    _cleanup_free_ char *ct = NULL;
    if (asprintf(&ct, "Content-Type: %s", raw->type) < 0)
      goto cleanup;
    headers = curl_slist_append(headers, ct);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)raw->len);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, raw->len ? raw->data : "");
  } else if (!strcmp(method, "POST")) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
  }
  curl_easy_setopt(c, CURLOPT_TIMEOUT, s->timeout_s);
  ret = perform(c, headers, s, errbuf, &x);
  if (ret != EXIT_OK)
    goto cleanup;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
  r->request_id = steal_ptr(&x.request_id);
  r->headers = steal_ptr(&x.headers.data);
  if (text && !x.json && r->status >= 200 && r->status < 300) {
    /* Bytes as they came, even when they would parse as JSON. */
    r->text = x.body.data ? steal_ptr(&x.body.data) : strdup("");
    r->text_len = x.body.len;
    ret = r->text ? EXIT_OK : EXIT_ERROR;
    goto cleanup;
  }
  if (x.body.len) {
    json_error_t jerr;
    r->json = json_loadb(x.body.data, x.body.len, 0, &jerr);
  }
  if (r->status >= 200 && r->status < 300) {
    if (text && !r->json) {
      r->text = steal_ptr(&x.body.data);
      r->text_len = x.body.len;
    } else if (x.body.len && !r->json) {
      fprintf(stderr, "vmhostctl: the answer of %s %s is not JSON%s%s%s\n",
              method, path, r->request_id ? " (request " : "",
              r->request_id ? r->request_id : "", r->request_id ? ")" : "");
      ret = EXIT_ERROR;
    }
  } else if (s->quiet) {
    ret = exit_for_code(json_string_value(json_object_get(
                            json_object_get(r->json, "error"), "code")),
                        r->status);
  } else {
    ret = report_error(r->status, r->json, x.body.data, r->request_id);
  }
cleanup:
  exchange_end(&x, headers, c);
  return ret;
}

int http_call(const struct settings *s, const char *method, const char *path,
              json_t *body, struct reply *r) {
  return request(s, method, path, body, NULL, false, r);
}

int http_get_text(const struct settings *s, const char *path, struct reply *r) {
  return request(s, "GET", path, NULL, NULL, true, r);
}

int http_call_raw(const struct settings *s, const char *method,
                  const char *path, const struct raw_body *raw,
                  struct reply *r) {
  return request(s, method, path, NULL, raw, true, r);
}

char *reply_header(const struct reply *r, const char *name) {
  size_t n = strlen(name);
  for (const char *p = r->headers; p && *p; p += strcspn(p, "\n"), p += !!*p) {
    if (strncasecmp(p, name, n) || p[n] != ':')
      continue;
    const char *v = p + n + 1;
    v += strspn(v, " \t");
    size_t len = strcspn(v, "\r\n");
    while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
      len--;
    return strndup(v, len);
  }
  return NULL;
}

void reply_free(struct reply *r) {
  free(r->text);
  free(r->headers);
  json_decref(r->json);
  free(r->request_id);
  memset(r, 0, sizeof *r);
}

/* ---- text/event-stream ---------------------------------------------- */

/* A blank line ends an event: hand it over, unless it is the server's
 * "error" event (the subscription failed), which ends the stream. */
static int dispatch_event(struct exchange *x) {
  int stop = 0;
  if (x->ev_data.len) {
    const char *type = x->ev_type ? x->ev_type : "message";
    if (!strcmp(type, "error")) {
      json_t *e = json_loads(x->ev_data.data, 0, NULL);
      json_t *wrap = json_pack("{s:o}", "error", e ? e : json_object());
      x->stream_error = report_error(0, wrap, x->ev_data.data, NULL);
      json_decref(wrap);
      stop = 1;
    } else {
      stop = x->on_event(type, x->ev_data.data, x->opaque);
      x->stopped = stop != 0;
    }
  }
  free(x->ev_type);
  x->ev_type = NULL;
  buf_free(&x->ev_data);
  return stop;
}

/* One line of the stream, without its end. */
static int stream_line(struct exchange *x, char *line) {
  if (!*line)
    return dispatch_event(x);
  if (*line == ':')
    return 0; /* a comment */
  char *v = strchr(line, ':');
  if (v) {
    *v++ = '\0';
    if (*v == ' ')
      v++;
  } else {
    v = line + strlen(line);
  }
  if (!strcmp(line, "event")) {
    free(x->ev_type);
    x->ev_type = strdup(v);
  } else if (!strcmp(line, "data")) {
    if ((x->ev_data.len && !buf_add(&x->ev_data, "\n", 1)) ||
        !buf_add(&x->ev_data, v, strlen(v)))
      return -1;
  }
  return 0;
}

static size_t on_stream(char *p, size_t size, size_t n, void *opaque) {
  struct exchange *x = opaque;
  size_t len = size * n;
  if (!x->event_stream) /* an error answer: keep it whole */
    return on_body(p, size, n, opaque);
  for (size_t i = 0; i < len; i++) {
    if (p[i] != '\n') {
      if (p[i] != '\r' && !buf_add(&x->line, &p[i], 1))
        return 0;
      continue;
    }
    int r = stream_line(x, x->line.data ? x->line.data : (char[]){""});
    x->line.len = 0;
    if (x->line.data)
      x->line.data[0] = '\0';
    if (r)
      return 0;
  }
  return len;
}

int http_stream(const struct settings *s, const char *path, event_cb on_event,
                void *opaque) {
  char errbuf[CURL_ERROR_SIZE] = "";
  struct curl_slist *headers = NULL;
  struct exchange x = {.on_event = on_event, .opaque = opaque};
  CURL *c = easy_new(s, path, "Accept: text/event-stream", &headers, errbuf, &x,
                     on_stream);
  int ret = EXIT_ERROR;
  if (!c) {
    fprintf(stderr, "vmhostctl: out of memory\n");
    goto cleanup;
  }
  ret = perform(c, headers, s, errbuf, &x);
  if (ret != EXIT_OK || x.stopped)
    goto cleanup;
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200 || !x.event_stream) {
    json_t *j =
        x.body.len ? json_loadb(x.body.data, x.body.len, 0, NULL) : NULL;
    ret = report_error(status, j, x.body.data, x.request_id);
    json_decref(j);
  } else {
    fprintf(stderr, "vmhostctl: the server ended the event stream\n");
    ret = EXIT_UNREACHABLE;
  }
cleanup:
  exchange_end(&x, headers, c);
  return ret;
}
