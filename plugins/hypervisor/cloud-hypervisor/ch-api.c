/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ch-api — see ch-api.h. */
#include <config.h>

#include "ch-api.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <vmhost/common.h>

#include "errname.h"

/* The API server refuses requests over 4 MiB; answers are smaller still
 * (vm.info with its config).  Anything past this is not a VMM. */
#define MAX_ANSWER (8u << 20)

struct cha {
  CURL *curl;
  char *sock;
  long timeout_ms;
  struct curl_slist *headers;      /* requests without a body */
  struct curl_slist *json_headers; /* requests with a JSON body */
  int refused;
};

struct buf {
  char *data;
  size_t len;
};

static size_t on_data(char *p, size_t size, size_t n, void *opaque) {
  struct buf *b = opaque;
  size_t len = size * n;
  char *d;

  if (b->len + len > MAX_ANSWER)
    return 0; /* curl fails the transfer: CURLE_WRITE_ERROR */
  d = realloc(b->data, b->len + len + 1);
  if (d == NULL)
    return 0;
  memcpy(d + b->len, p, len);
  b->len += len;
  d[b->len] = '\0';
  b->data = d;
  return len;
}

struct cha *cha_new(const char *sock_path, long timeout_ms) {
  struct cha *a = calloc(1, sizeof *a);

  if (a == NULL)
    return NULL;
  a->timeout_ms = timeout_ms;
  a->sock = strdup(sock_path);
  a->curl = curl_easy_init();
  /* A PUT with a body must not wait for "100 Continue". */
  a->headers = curl_slist_append(NULL, "Expect:");
  a->json_headers = curl_slist_append(NULL, "Expect:");
  if (a->json_headers != NULL)
    a->json_headers =
        curl_slist_append(a->json_headers, "Content-Type: application/json");
  if (a->sock == NULL || a->curl == NULL || a->headers == NULL ||
      a->json_headers == NULL) {
    cha_free(a);
    return NULL;
  }
  return a;
}

void cha_free(struct cha *a) {
  if (a == NULL)
    return;
  if (a->curl != NULL)
    curl_easy_cleanup(a->curl);
  curl_slist_free_all(a->headers);
  curl_slist_free_all(a->json_headers);
  free(a->sock);
  free(a);
}

int cha_refused(const struct cha *a) {
  return a->refused;
}

/* The VMM's messages ("a: b: c") from its JSON array; else the raw body. */
static void messages(const char *body, char *out, size_t size) {
  json_t *j = body ? json_loads(body, 0, NULL) : NULL;
  size_t i, used = 0;
  json_t *v;

  out[0] = '\0';
  if (json_is_array(j)) {
    json_array_foreach(j, i, v) {
      int n;
      if (!json_is_string(v))
        continue;
      n = snprintf(out + used, size - used, "%s%s", used ? ": " : "",
                   json_string_value(v));
      if (n < 0 || (size_t)n >= size - used)
        break;
      used += (size_t)n;
    }
  } else if (body != NULL) {
    snprintf(out, size, "%.*s", (int)strcspn(body, "\n"), body);
  }
  json_decref(j);
  if (out[0] == '\0')
    snprintf(out, size, "no message");
}

static int status_code(long status) {
  switch (status) {
    case 400:
      return VMH_EINVAL;
    case 404: /* the VM is not created (or no such device) */
      return VMH_ENOENT;
    case 405: /* not in a state that allows it */
      return VMH_ESTATE;
    case 409:
      return VMH_EEXIST;
    case 429:
      return VMH_EAGAIN;
    default:
      return VMH_EIO;
  }
}

int cha_call(struct cha *a, const char *method, const char *endpoint,
             const char *body, char **resp, const char *what, char *err,
             size_t errlen) {
  struct buf b = {NULL, 0};
  char url[256], msg[1024];
  long status = 0;
  CURLcode cc;
  CURL *c = a->curl;

  a->refused = 0;
  if (resp != NULL)
    *resp = NULL;
  snprintf(url, sizeof url, "http://localhost/api/v1/%s", endpoint);
  /* reset keeps the open connection; every option is set again. */
  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, a->sock);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, a->timeout_ms);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER,
                   body != NULL ? a->json_headers : a->headers);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
  if (strcmp(method, "GET") == 0) {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else {
    /* The body's size is given: no chunked encoding, which the API server
     * does not take. */
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)(body ? strlen(body) : 0));
  }
  cc = curl_easy_perform(c);
  if (cc != CURLE_OK) {
    free(b.data);
    a->refused = cc == CURLE_COULDNT_CONNECT;
    if (cc == CURLE_OPERATION_TIMEDOUT)
      return errbuf_fail(err, errlen, VMH_ETIMEDOUT,
                         "%s: the VMM did not answer within %ld ms", what,
                         a->timeout_ms);
    return errbuf_fail(err, errlen, VMH_EIO, "%s: VMM at %s: %s", what, a->sock,
                       curl_easy_strerror(cc));
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status == 200 || status == 204) {
    if (resp != NULL)
      *resp = b.data ? b.data : strdup("");
    else
      free(b.data);
    return 0;
  }
  messages(b.data, msg, sizeof msg);
  free(b.data);
  return errbuf_fail(err, errlen, status_code(status), "%s: %s (HTTP %ld)",
                     what, msg, status);
}
