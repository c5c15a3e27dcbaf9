/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmpage — page tokens, label selectors and the VM fragment cache shared
 * by the REST and gRPC front-ends (see vmpage.h). */
#include <config.h>

#include "vmpage.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "abijson.h"
#include "h2server.h"
#include "strmap.h"

/* ---- Filters ------------------------------------------------------------ */

uint32_t vmpage_state_bit(const char *name) {
  for (size_t i = 0; name && i < abij_vm_states.n; i++)
    if (strcmp(abij_vm_states.names[i], name) == 0)
      return VMH_VM_STATE_BIT(i);
  return 0;
}

const char *vmpage_state_names(void) {
  return "unknown, stopped, running, paused, suspended, crashed";
}

/* Keys follow the core's rule for metadata keys (1..63 bytes); neither
 * keys nor values may hold control characters. */
static bool printable(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f)
      return false;
  return true;
}

int vmpage_label_check(const char *key, const char *value, char *err,
                       size_t err_len) {
  size_t n = key ? strlen(key) : 0;
  if (n < 1 || n > 63 || !printable(key)) {
    snprintf(err, err_len,
             "label key '%.80s' must be 1 to 63 bytes without control "
             "characters",
             key ? key : "");
    return -1;
  }
  if (value && (strlen(value) > 4096 || !printable(value))) {
    snprintf(err, err_len,
             "label '%s': the value must be at most 4096 bytes without "
             "control characters",
             key);
    return -1;
  }
  return 0;
}

static uint64_t fnv1a(uint64_t h, const void *d, size_t n) {
  const unsigned char *p = d;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

/* A sum of each label's hash (from seed): the same whatever their
 * order. */
static uint64_t labels_hash(uint64_t seed, const struct vmh_keyval *kvs,
                            uint32_t n) {
  uint64_t h = 0;
  for (uint32_t i = 0; i < n; i++) {
    const struct vmh_keyval *kv = &kvs[i];
    uint64_t l = fnv1a(seed, kv->key, strlen(kv->key) + 1);
    l = kv->value ? fnv1a(l, kv->value, strlen(kv->value) + 1)
                  : fnv1a(l, "\xff", 1);
    h += l;
  }
  return h;
}

uint64_t vmpage_fingerprint(const struct vmh_vm_query *q) {
  uint64_t h = fnv1a(0xcbf29ce484222325ULL, &q->states, sizeof q->states);
  h += labels_hash(0xcbf29ce484222325ULL, q->labels, q->n_labels);
  return h + labels_hash(0x84222325cbf29ce4ULL, q->labels_not, q->n_labels_not);
}

/* ---- Tokens ------------------------------------------------------------- */

/* A VM list's: version 1, created (8, big-endian), id, fingerprint (8).
 * A named list's: version 2, kind, fingerprint (8), name (NUL-padded).
 * Then the MAC of what comes before it. */
#define TOKEN_VM 1
#define TOKEN_NAMED 2
#define TOKEN_MAC 16
#define TOKEN_DATA (1 + 8 + VMH_ID_LEN + 8)
#define TOKEN_RAW (TOKEN_DATA + TOKEN_MAC)
#define NAMED_DATA (1 + 1 + 8 + VMH_NAME_MAX + 1)
#define NAMED_RAW (NAMED_DATA + TOKEN_MAC)
_Static_assert(TOKEN_RAW % 3 == 0 && TOKEN_RAW / 3 * 4 == VMPAGE_TOKEN_LEN,
               "a token is whole base64 groups");
_Static_assert(NAMED_RAW % 3 == 0 &&
                   NAMED_RAW / 3 * 4 == VMPAGE_NAMED_TOKEN_LEN,
               "a named list's token is whole base64 groups");

static unsigned char mac_key[32];
static int mac_key_ok;
static pthread_once_t mac_key_once = PTHREAD_ONCE_INIT;

static void mac_key_init(void) {
  mac_key_ok = gnutls_rnd(GNUTLS_RND_KEY, mac_key, sizeof mac_key) == 0;
}

static int mac(const unsigned char *data, size_t n,
               unsigned char out[TOKEN_MAC]) {
  unsigned char full[32];
  pthread_once(&mac_key_once, mac_key_init);
  if (!mac_key_ok || gnutls_hmac_fast(GNUTLS_MAC_SHA256, mac_key,
                                      sizeof mac_key, data, n, full))
    return -1;
  memcpy(out, full, TOKEN_MAC);
  return 0;
}

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void put_u64(unsigned char *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (unsigned char)v;
}

static uint64_t get_u64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | p[i];
  return v;
}

/* Sign raw (n bytes, the last TOKEN_MAC of them the MAC's place) and
 * write it as base64url into out (n / 3 * 4 + 1 bytes).  0, or -1. */
static int token_seal(unsigned char *raw, size_t n, char *out) {
  if (mac(raw, n - TOKEN_MAC, raw + n - TOKEN_MAC) < 0)
    return -1;
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v =
        (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
    for (int s = 18; s >= 0; s -= 6)
      out[o++] = b64[(v >> s) & 63];
  }
  out[o] = '\0';
  return 0;
}

static int unb64(char c) {
  const char *p = c ? strchr(b64, c) : NULL;
  return p ? (int)(p - b64) : -1;
}

/* Equal, in a time that does not depend on where they differ. */
static bool same(const unsigned char *a, const unsigned char *b, size_t n) {
  unsigned char d = 0;
  for (size_t i = 0; i < n; i++)
    d |= a[i] ^ b[i];
  return d == 0;
}

static const char not_a_token[] =
    "page_token is not a token this server gave (it is the next_page_token "
    "of a previous page, as is)";

/* Decode token into raw (n bytes) and check it is a token of version and
 * sealed by this process: 0, or -1 with why in err. */
static int token_open(const char *token, unsigned char *raw, size_t n,
                      unsigned version, char *err, size_t err_len) {
  unsigned char want[TOKEN_MAC];
  if (!token || strlen(token) != n / 3 * 4) {
    /* The other kind of token, by its length: a VM list's or a named
     * list's. */
    size_t other =
        version == TOKEN_VM ? VMPAGE_NAMED_TOKEN_LEN : VMPAGE_TOKEN_LEN;
    if (token && strlen(token) == other)
      goto elsewhere;
    goto malformed;
  }
  for (size_t i = 0, o = 0; i < n / 3 * 4; i += 4) {
    uint32_t v = 0;
    for (size_t j = 0; j < 4; j++) {
      int x = unb64(token[i + j]);
      if (x < 0)
        goto malformed;
      v = v << 6 | (uint32_t)x;
    }
    raw[o++] = (unsigned char)(v >> 16);
    raw[o++] = (unsigned char)(v >> 8);
    raw[o++] = (unsigned char)v;
  }
  if (raw[0] != version)
    goto malformed;
  if (mac(raw, n - TOKEN_MAC, want) < 0) {
    snprintf(err, err_len, "page tokens cannot be checked (no random key)");
    return -1;
  }
  if (!same(want, raw + n - TOKEN_MAC, TOKEN_MAC)) {
    snprintf(err, err_len,
             "page_token was altered or comes from an earlier run of "
             "vmhostd: list again from the first page");
    return -1;
  }
  return 0;
elsewhere:
  snprintf(err, err_len,
           "page_token was made for another list: ask for the next page of "
           "the list that gave it");
  return -1;
malformed:
  snprintf(err, err_len, "%s", not_a_token);
  return -1;
}

static const char other_filter[] =
    "page_token was made for another filter: ask for the next page with the "
    "same state and label filters as the first";

int vmpage_token(int64_t created, const char *id, uint64_t fp,
                 char out[VMPAGE_TOKEN_LEN + 1]) {
  unsigned char raw[TOKEN_RAW] = {TOKEN_VM};
  put_u64(raw + 1, (uint64_t)created);
  strncpy((char *)raw + 9, id, VMH_ID_LEN);
  put_u64(raw + 9 + VMH_ID_LEN, fp);
  return token_seal(raw, sizeof raw, out);
}

int vmpage_token_read(const char *token, uint64_t fp, struct vmh_vm_query *q,
                      char id_buf[VMH_ID_LEN + 1], char *err, size_t err_len) {
  unsigned char raw[TOKEN_RAW];
  if (token_open(token, raw, sizeof raw, TOKEN_VM, err, err_len) < 0)
    return -1;
  if (get_u64(raw + 9 + VMH_ID_LEN) != fp) {
    snprintf(err, err_len, "%s", other_filter);
    return -1;
  }
  q->after_created_us = (int64_t)get_u64(raw + 1);
  memcpy(id_buf, raw + 9, VMH_ID_LEN);
  id_buf[VMH_ID_LEN] = '\0';
  q->after_id = id_buf;
  return 0;
}

/* ---- A VM listing ------------------------------------------------------- */

struct vmpage_listing *vmpage_listing_new(struct vmpage_cache *cache) {
  struct vmpage_listing *ls = calloc(1, sizeof *ls);
  if (!ls)
    return NULL;
  ls->q.struct_size = sizeof ls->q;
  ls->q.labels = ls->labels;
  ls->q.labels_not = ls->labels_not;
  ls->cache = cache;
  pthread_mutex_init(&ls->lock, NULL);
  return ls;
}

void vmpage_listing_free(struct vmpage_listing *ls) {
  if (!ls)
    return;
  free(ls->text);
  vmpage_buf_free(&ls->out);
  pthread_mutex_destroy(&ls->lock);
  free(ls);
}

int vmpage_listing_select(struct vmpage_listing *ls, char *sel, char *err,
                          size_t err_len) {
  char *value = NULL, *ne = strstr(sel, "!=");
  bool not = false;
  if (ls->q.n_labels + ls->q.n_labels_not == VMPAGE_MAX_LABELS) {
    snprintf(err, err_len, "at most %d label selectors", VMPAGE_MAX_LABELS);
    return -1;
  }
  if (*sel == '!' && !strchr(sel, '=')) {
    sel++, not = true; /* !key */
  } else if (ne) {
    *ne = '\0', value = ne + 2, not = true; /* key!=value */
  } else if ((value = strchr(sel, '='))) {
    *value++ = '\0'; /* key=value */
  }
  if (vmpage_label_check(sel, value, err, err_len) < 0)
    return -1;
  if (not )
    ls->labels_not[ls->q.n_labels_not++] = (struct vmh_keyval){sel, value};
  else
    ls->labels[ls->q.n_labels++] = (struct vmh_keyval){sel, value};
  return 0;
}

int vmpage_listing_begin(struct vmpage_listing *ls, uint32_t page,
                         const char *token, char *err, size_t err_len) {
  ls->page = page > VMPAGE_MAX_SIZE ? VMPAGE_MAX_SIZE : page;
  ls->fp = vmpage_fingerprint(&ls->q);
  if (token && *token) {
    if (vmpage_token_read(token, ls->fp, &ls->q, ls->after_id, err, err_len) <
        0)
      return -1;
    if (!ls->page)
      ls->page = VMPAGE_MAX_SIZE;
  }
  /* One more than the page: whether there is a next one. */
  ls->q.limit = ls->page ? ls->page + 1 : 0;
  if (!ls->page && !ls->q.states && !ls->q.n_labels && !ls->q.n_labels_not)
    ls->walk = vmpage_cache_walk_begin(ls->cache);
  return 0;
}

void vmpage_listing_add(struct vmpage_listing *ls,
                        const struct vmh_vm_record *rec, bool hide,
                        const char *sep) {
  pthread_mutex_lock(&ls->lock);
  if (ls->page && ls->n == ls->page) {
    ls->more = true;
  } else {
    if (ls->n++ && sep)
      vmpage_buf_add(&ls->out, sep, strlen(sep));
    vmpage_cache_append(ls->cache, rec, hide, &ls->out);
    ls->last_created = rec->created_us;
    snprintf(ls->last_id, sizeof ls->last_id, "%s",
             rec->spec && rec->spec->id ? rec->spec->id : "");
  }
  pthread_mutex_unlock(&ls->lock);
}

int vmpage_listing_end(struct vmpage_listing *ls,
                       char token[VMPAGE_TOKEN_LEN + 1]) {
  token[0] = '\0';
  if (ls->walk)
    vmpage_cache_walk_end(ls->cache, ls->walk);
  return ls->more ? vmpage_token(ls->last_created, ls->last_id, ls->fp, token)
                  : 0;
}

/* ---- Lists of named objects --------------------------------------------- */

int vmpage_named_begin(struct vmpage_named *p, enum vmpage_kind kind,
                       const char *scope, uint32_t page, const char *token,
                       char *err, size_t err_len) {
  *p = (struct vmpage_named){
      .page = page > VMPAGE_MAX_SIZE ? VMPAGE_MAX_SIZE : page,
      .kind = (uint8_t)kind};
  p->fp = fnv1a(0xcbf29ce484222325ULL, &p->kind, 1);
  if (scope)
    p->fp = fnv1a(p->fp, scope, strlen(scope) + 1);
  if (!token || !*token)
    return 0;
  unsigned char raw[NAMED_RAW];
  if (token_open(token, raw, sizeof raw, TOKEN_NAMED, err, err_len) < 0)
    return -1;
  if (raw[1] != p->kind || get_u64(raw + 2) != p->fp) {
    snprintf(err, err_len, "page_token was made for another list%s",
             raw[1] == p->kind ? " (of another pool or VM)" : "");
    return -1;
  }
  memcpy(p->after_name, raw + 10, VMH_NAME_MAX + 1);
  p->after_name[VMH_NAME_MAX] = '\0';
  p->after = true;
  if (!p->page)
    p->page = VMPAGE_MAX_SIZE;
  return 0;
}

/* For qsort_r: indexes into names, by the names they point at. */
static int by_name(const void *a, const void *b, void *names) {
  const char *x = ((const char *const *)names)[*(const size_t *)a];
  const char *y = ((const char *const *)names)[*(const size_t *)b];
  return strcmp(x ? x : "", y ? y : "");
}

size_t vmpage_named_select(const struct vmpage_named *p,
                           const char *const *names, size_t n, size_t *order,
                           bool *more) {
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    const char *x = names[i] ? names[i] : "";
    if (!p->after || strcmp(x, p->after_name) > 0)
      order[m++] = i;
  }
  qsort_r(order, m, sizeof *order, by_name, (void *)names);
  *more = p->page && m > p->page;
  return *more ? p->page : m;
}

int vmpage_named_token(const struct vmpage_named *p, const char *last,
                       char out[VMPAGE_NAMED_TOKEN_LEN + 1]) {
  unsigned char raw[NAMED_RAW] = {TOKEN_NAMED, p->kind};
  put_u64(raw + 2, p->fp);
  strncpy((char *)raw + 10, last ? last : "", VMH_NAME_MAX);
  return token_seal(raw, sizeof raw, out);
}

/* ---- The fragment cache ------------------------------------------------- */

static void unmap(char *data, size_t len) {
  (void)len;
  /* The mapping's size is kept before the data. */
  size_t *base = (size_t *)(void *)data - 2;
  munmap(base, base[0]);
}

/* Room for n more bytes: 0, or -1. */
static int buf_grow(struct vmpage_buf *b, size_t n) {
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + n)
    cap *= 2;
  if (cap < VMPAGE_BUF_MAPPED) {
    char *p = realloc(b->data, cap);
    if (!p)
      return -1;
    b->data = p;
    b->cap = cap;
    return 0;
  }
  /* A header of two words (the mapping's size, padding) keeps the data
   * aligned. */
  size_t head = 2 * sizeof(size_t), size = cap + head;
  size_t *base;
  if (b->mapped) {
    size_t *old = (size_t *)(void *)b->data - 2;
    base = mremap(old, old[0], size, MREMAP_MAYMOVE);
  } else {
    base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                -1, 0);
    if (base != MAP_FAILED && b->len)
      memcpy((char *)base + head, b->data, b->len);
  }
  if (base == MAP_FAILED)
    return -1;
  if (!b->mapped)
    free(b->data);
  base[0] = size;
  b->data = (char *)base + head;
  b->cap = cap;
  b->mapped = true;
  return 0;
}

void vmpage_buf_add(struct vmpage_buf *b, const void *d, size_t n) {
  if (b->failed)
    return;
  if (b->len + n > b->cap && buf_grow(b, n) < 0) {
    b->failed = true;
    return;
  }
  memcpy(b->data + b->len, d, n);
  b->len += n;
}

void vmpage_buf_free(struct vmpage_buf *b) {
  if (b->mapped)
    unmap(b->data, b->len);
  else
    free(b->data);
  *b = (struct vmpage_buf){0};
}

struct h2s_body *vmpage_buf_body(struct vmpage_buf *b) {
  if (b->failed) {
    vmpage_buf_free(b);
    return NULL;
  }
  struct h2s_body *body = b->mapped ? h2s_body_wrap(b->data, b->len, unmap)
                                    : h2s_body_take(b->data, b->len);
  *b = (struct vmpage_buf){0}; /* the body's, or freed with its failure */
  return body;
}

struct frag {
  char id[VMH_ID_LEN + 1]; /* the map's key */
  uint64_t gen;
  uint64_t walk;  /* the last walk (or any list during it) that used it */
  char *bytes[2]; /* [0] as is, [1] secrets hidden; NULL: not made yet */
  size_t len[2];
  bool shared; /* nothing to hide: bytes[1] is bytes[0] */
};

struct vmpage_cache {
  pthread_mutex_t lock;
  vmpage_encode_fn enc;
  struct strmap map; /* id -> struct frag */
  uint64_t walk;
  size_t bytes;
  size_t encoded; /* encodings made since the last vmpage_cache_trim */
  const struct vmh_core *core; /* following its deletions */
  uint64_t sub;                /* the subscription, 0: none */
};

struct vmpage_cache *vmpage_cache_new(vmpage_encode_fn enc) {
  struct vmpage_cache *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  pthread_mutex_init(&c->lock, NULL);
  c->enc = enc;
  return c;
}

/* Forget f's encodings (lock held). */
static void frag_clear(struct vmpage_cache *c, struct frag *f) {
  c->bytes -= f->len[0] + (f->shared ? 0 : f->len[1]);
  free(f->bytes[0]);
  if (!f->shared)
    free(f->bytes[1]);
  f->bytes[0] = f->bytes[1] = NULL;
  f->len[0] = f->len[1] = 0;
  f->shared = false;
}

static void frag_drop(struct vmpage_cache *c, struct frag *f) {
  strmap_remove(&c->map, f->id);
  frag_clear(c, f);
  free(f);
}

void vmpage_cache_free(struct vmpage_cache *c) {
  if (!c)
    return;
  for (size_t i = 0; i < c->map.cap; i++)
    if (c->map.slots[i].key) {
      struct frag *f = c->map.slots[i].value;
      frag_clear(c, f);
      free(f);
    }
  strmap_free(&c->map);
  pthread_mutex_destroy(&c->lock);
  free(c);
}

/* The entry of rec, current (lock held); NULL when out of memory. */
static struct frag *frag_of(struct vmpage_cache *c,
                            const struct vmh_vm_record *rec) {
  const char *id = rec->spec->id;
  struct frag *f = strmap_get(&c->map, id);
  if (!f) {
    if (strlen(id) > VMH_ID_LEN || !(f = calloc(1, sizeof *f)))
      return NULL;
    strcpy(f->id, id);
    if (strmap_put(&c->map, f->id, f) < 0) {
      free(f);
      return NULL;
    }
  } else if (f->gen != rec->generation) {
    frag_clear(c, f);
  }
  f->gen = rec->generation;
  f->walk = c->walk;
  return f;
}

/* What the encoder made, copied now that its working memory (a document
 * tree) is free: the copy takes the tree's place, so what is kept lies
 * together instead of between the holes of every tree, which malloc_trim
 * cannot give back.  Frees b; NULL when out of memory. */
static char *kept_copy(char *b, size_t len) {
  char *copy = b ? malloc(len ? len : 1) : NULL;
  if (copy)
    memcpy(copy, b, len);
  free(b);
  return copy;
}

void vmpage_cache_append(struct vmpage_cache *c,
                         const struct vmh_vm_record *rec, bool hide,
                         struct vmpage_buf *out) {
  bool secret = rec->spec->user_data && rec->spec->user_data[0];
  int v = hide && secret ? 1 : 0;
  pthread_mutex_lock(&c->lock);
  struct frag *f = rec->spec->id ? frag_of(c, rec) : NULL;
  if (f && !f->bytes[v]) {
    char *made = c->enc(rec, v == 1, &f->len[v]);
    f->bytes[v] = kept_copy(made, f->len[v]);
    c->encoded++;
    c->bytes += f->bytes[v] ? f->len[v] : 0;
    if (!secret && f->bytes[0]) {
      f->bytes[1] = f->bytes[0];
      f->len[1] = f->len[0];
      f->shared = true;
    }
  }
  if (f && f->bytes[v]) {
    vmpage_buf_add(out, f->bytes[v], f->len[v]);
  } else {
    /* Not kept (out of memory): encoded for this answer alone. */
    size_t len;
    char *b = c->enc(rec, v == 1, &len);
    if (b)
      vmpage_buf_add(out, b, len);
    else
      out->failed = true;
    free(b);
  }
  pthread_mutex_unlock(&c->lock);
}

void vmpage_cache_forget(struct vmpage_cache *c, const char *id) {
  pthread_mutex_lock(&c->lock);
  struct frag *f = id ? strmap_get(&c->map, id) : NULL;
  if (f)
    frag_drop(c, f);
  pthread_mutex_unlock(&c->lock);
}

static void on_event(void *opaque, const struct vmh_event *ev) {
  if (ev->type == VMH_EVENT_VM_DELETED && ev->vm_id)
    vmpage_cache_forget(opaque, ev->vm_id);
}

int vmpage_cache_follow(struct vmpage_cache *c, const struct vmh_host *host,
                        const struct vmh_core *core) {
  int r = core->subscribe(on_event, c, &c->sub, 0);
  if (r < 0)
    host->error("%s", core->error_message());
  else
    c->core = core;
  return r;
}

void vmpage_cache_unfollow(struct vmpage_cache *c) {
  if (c && c->sub)
    c->core->unsubscribe(c->sub);
  if (c)
    c->sub = 0;
}

uint64_t vmpage_cache_walk_begin(struct vmpage_cache *c) {
  pthread_mutex_lock(&c->lock);
  uint64_t w = ++c->walk;
  pthread_mutex_unlock(&c->lock);
  return w;
}

void vmpage_cache_walk_end(struct vmpage_cache *c, uint64_t walk) {
  pthread_mutex_lock(&c->lock);
  for (size_t i = 0; i < c->map.cap;) {
    struct frag *f = c->map.slots[i].key ? c->map.slots[i].value : NULL;
    if (f && f->walk < walk)
      frag_drop(c, f); /* the map may move entries: look at i again */
    else
      i++;
  }
  pthread_mutex_unlock(&c->lock);
}

void vmpage_cache_trim(struct vmpage_cache *c) {
  pthread_mutex_lock(&c->lock);
  bool many = c->encoded >= VMPAGE_TRIM_AFTER;
  if (many)
    c->encoded = 0;
  pthread_mutex_unlock(&c->lock);
  if (many)
    malloc_trim(0);
}

void vmpage_cache_size(struct vmpage_cache *c, size_t *entries, size_t *bytes) {
  pthread_mutex_lock(&c->lock);
  *entries = c->map.n;
  *bytes = c->bytes;
  pthread_mutex_unlock(&c->lock);
}
