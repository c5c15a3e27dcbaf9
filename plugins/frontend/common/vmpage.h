/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmpage — what the REST and gRPC front-ends share to list VMs at scale
 * (core.h vm_query): page tokens, label selectors, and the cache of each
 * VM's encoding that a list is concatenated from.
 *
 * A page token is opaque to clients: the position after which the next
 * page starts (creation time and id of the last VM of the page) and a
 * fingerprint of the filter it was made for, under an HMAC-SHA256 with a
 * key drawn at random once per process.  So a token cannot be forged or
 * altered, one made for another filter is refused, and tokens end with
 * the daemon (a client starts its walk over after a restart).
 *
 * The fragment cache keeps, per VM id, the front-end's encoding of the
 * record at its generation (vmh_vm_record.generation): a record that
 * changed has a newer generation and is encoded again, so a list never
 * lags a change.  Thread-safe (one mutex). */
#ifndef VMHOST_FRONTEND_VMPAGE_H
#define VMHOST_FRONTEND_VMPAGE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <vmhost/vmhost-plugin.h>

/* Pages hold at most this many VMs: a larger size asked for is taken as
 * this (AIP-158). */
#define VMPAGE_MAX_SIZE 1000
/* Labels one query may select on. */
#define VMPAGE_MAX_LABELS 16
/* A token's length in characters (base64url, no padding). */
#define VMPAGE_TOKEN_LEN 92

/* ---- Filters --------------------------------------------------------- */

/* The VM state named `name` ("running" …) as a VMH_VM_STATE_BIT; 0 when
 * there is no such state. */
uint32_t vmpage_state_bit(const char *name);
/* The state names, comma-separated, for messages. */
const char *vmpage_state_names(void);

/* Check one label selector's key and value (value NULL: the key with any
 * value): 0, or -1 with why in err. */
int vmpage_label_check(const char *key, const char *value, char *err,
                       size_t err_len);

/* A fingerprint of the filter of q (its states and labels, in any order),
 * which a token carries. */
uint64_t vmpage_fingerprint(const struct vmh_vm_query *q);

/* ---- Tokens ---------------------------------------------------------- */

/* The token for the page after the record of (created_us, id), under
 * fingerprint fp, into out (VMPAGE_TOKEN_LEN + 1 bytes).  0, or -1 (no
 * random key: the system's generator failed). */
int vmpage_token(int64_t created, const char *id, uint64_t fp,
                 char out[VMPAGE_TOKEN_LEN + 1]);
/* Read token into q's position (q->after_id points into id_buf).  0, or
 * -1 with why in err (malformed, altered or from an earlier run, made for
 * another filter). */
int vmpage_token_read(const char *token, uint64_t fp, struct vmh_vm_query *q,
                      char id_buf[VMH_ID_LEN + 1], char *err, size_t err_len);

/* ---- The fragment cache ------------------------------------------------ */

/* A growable byte buffer; `failed` once an append ran out of memory.
 * Past VMPAGE_BUF_MAPPED bytes it lives in a mapping of its own (grown
 * with mremap, given back whole when freed): an answer of megabytes then
 * leaves nothing behind in the allocator's arenas, whichever thread made
 * it and whatever size it had. */
#define VMPAGE_BUF_MAPPED (256 * 1024)
struct vmpage_buf {
  char *data;
  size_t len, cap;
  bool failed;
  bool mapped;
};
void vmpage_buf_add(struct vmpage_buf *b, const void *d, size_t n);
/* The buffer as an answer's body (taken: b is empty after), or NULL when
 * out of memory or an append failed. */
struct h2s_body *vmpage_buf_body(struct vmpage_buf *b);
void vmpage_buf_free(struct vmpage_buf *b);

/* An encoder: rec's bytes (malloc'ed, *len set), with its secrets hidden
 * when hide; NULL when out of memory. */
typedef char *(*vmpage_encode_fn)(const struct vmh_vm_record *rec, bool hide,
                                  size_t *len);

struct vmpage_cache;
struct vmpage_cache *vmpage_cache_new(vmpage_encode_fn enc);
void vmpage_cache_free(struct vmpage_cache *c);
/* Append rec's encoding to out: the kept one when it is of rec's
 * generation, else a new one, kept.  A record without a secret to hide
 * shares its encoding between both audiences. */
void vmpage_cache_append(struct vmpage_cache *c,
                         const struct vmh_vm_record *rec, bool hide,
                         struct vmpage_buf *out);
/* Drop what is kept for VM id (it was deleted). */
void vmpage_cache_forget(struct vmpage_cache *c, const char *id);
/* Forget each VM the core deletes, from now until vmpage_cache_unfollow
 * (called before the cache is freed).  0, or the core's VMH_E* code (its
 * message set with host->error). */
int vmpage_cache_follow(struct vmpage_cache *c, const struct vmh_host *host,
                        const struct vmh_core *core);
void vmpage_cache_unfollow(struct vmpage_cache *c);
/* A walk over every VM: begin, append each, end; end drops what the walk
 * did not use (VMs gone without a word). */
uint64_t vmpage_cache_walk_begin(struct vmpage_cache *c);
void vmpage_cache_walk_end(struct vmpage_cache *c, uint64_t walk);
/* After an answer: when VMPAGE_TRIM_AFTER encodings or more were made
 * since the last time, give the free memory of the allocator's arenas
 * back (malloc_trim): encoding thousands of VMs leaves megabytes of freed
 * document trees between the fragments kept. */
#define VMPAGE_TRIM_AFTER 1000
void vmpage_cache_trim(struct vmpage_cache *c);
/* Entries and bytes kept, for tests and metrics. */
void vmpage_cache_size(struct vmpage_cache *c, size_t *entries, size_t *bytes);

/* ---- A VM listing ------------------------------------------------------ */

/* What a front-end's VM list (vm_query) keeps from its request to its
 * answer: the query, the page being built and where it ends.  The
 * front-end fills q's filter (states, labels pointing into `labels` or
 * into `text`, which the listing owns), then calls vmpage_listing_begin;
 * each record the core answers goes through vmpage_listing_add (any
 * thread: the listing has its own lock), and vmpage_listing_end closes the
 * walk and makes the next page's token. */
struct vmpage_listing {
  struct vmh_vm_query q;
  struct vmh_keyval labels[VMPAGE_MAX_LABELS];
  struct vmh_keyval labels_not[VMPAGE_MAX_LABELS];
  char *text; /* owned: a decoded request the labels may point into */
  char after_id[VMH_ID_LEN + 1];
  uint64_t fp;   /* the filter's fingerprint, for tokens */
  uint32_t page; /* the page size; 0: everything */
  uint64_t walk; /* a walk over every VM: vmpage_cache_walk_begin's */
  uint32_t n;    /* VMs in the answer so far */
  bool more;     /* one more than the page came: there is a next page */
  int64_t last_created;
  char last_id[VMH_ID_LEN + 1];
  struct vmpage_cache *cache;
  pthread_mutex_t lock;
  struct vmpage_buf out; /* the answer: the front-end's head, the VMs … */
};

/* A new listing over cache (q's struct_size set), or NULL. */
struct vmpage_listing *vmpage_listing_new(struct vmpage_cache *cache);
void vmpage_listing_free(struct vmpage_listing *ls);
/* One label selector, as REST's ?label= and gRPC's label_selectors say
 * it: "key" (the label is there), "key=value", "key!=value" (not there, or
 * another value), "!key" (not there).  Cut in place (sel must live as
 * long as ls) into q's labels or labels_not: 0, or -1 with why in err
 * (a bad key or value, more than VMPAGE_MAX_LABELS selectors). */
int vmpage_listing_select(struct vmpage_listing *ls, char *sel, char *err,
                          size_t err_len);
/* The filter is set: take the page size asked (0: none, above
 * VMPAGE_MAX_SIZE taken as that) and token (NULL or "": none; a token
 * alone means pages of VMPAGE_MAX_SIZE), set q's limit and position, and
 * begin a cache walk when the answer is every VM.  0, or -1 with why in
 * err (a bad token). */
int vmpage_listing_begin(struct vmpage_listing *ls, uint32_t page,
                         const char *token, char *err, size_t err_len);
/* One record of the core's answer: appended (after sep, between VMs)
 * while the page has room; past it, noted as a next page. */
void vmpage_listing_add(struct vmpage_listing *ls,
                        const struct vmh_vm_record *rec, bool hide,
                        const char *sep);
/* The answer is complete: ends the walk, and puts the next page's token
 * in token ("" on the last page).  0, or -1 (no token could be made). */
int vmpage_listing_end(struct vmpage_listing *ls,
                       char token[VMPAGE_TOKEN_LEN + 1]);

/* ---- Lists of named objects ------------------------------------------- */

/* Volumes, snapshots, pools, networks and images come from the backends whole
 * and in their own order; a front-end pages over that answer by name
 * (byte order), which is stable: a page resumes after the last name of
 * the page before, so paging is complete and without duplicates for the
 * objects that exist throughout, whatever is created or deleted between
 * pages.  Their tokens carry the kind of list, its scope (the pool, the
 * VM as the request named it) and that name, under the same MAC as VM
 * tokens: one made for another list, another scope, or a VM list, is
 * refused. */
enum vmpage_kind {
  VMPAGE_VOLUMES = 1,
  VMPAGE_SNAPSHOTS = 2,
  VMPAGE_POOLS = 3,
  VMPAGE_NETWORKS = 4,
  VMPAGE_IMAGES = 5,
};
/* A named list's token length in characters. */
#define VMPAGE_NAMED_TOKEN_LEN 120

struct vmpage_named {
  uint32_t page; /* 0: everything */
  uint8_t kind;  /* enum vmpage_kind */
  uint64_t fp;   /* of the kind and the scope */
  bool after;    /* a token was given: start after after_name */
  char after_name[VMH_NAME_MAX + 1];
};

/* Read the request of a list of kind under scope (NULL: none): the page
 * size asked (0: every object, unless a token came: then pages of
 * VMPAGE_MAX_SIZE) and token (NULL or "": the first page).  0, or -1 with
 * why in err. */
int vmpage_named_begin(struct vmpage_named *p, enum vmpage_kind kind,
                       const char *scope, uint32_t page, const char *token,
                       char *err, size_t err_len);
/* The page of the n objects named names[]: their indexes, in name order,
 * into order (room for n), and their count; *more says whether objects
 * come after the page.  A NULL name sorts as "". */
size_t vmpage_named_select(const struct vmpage_named *p,
                           const char *const *names, size_t n, size_t *order,
                           bool *more);
/* The token of the page after the one ending at name `last`, into out
 * (VMPAGE_NAMED_TOKEN_LEN + 1 bytes).  0, or -1 (no random key). */
int vmpage_named_token(const struct vmpage_named *p, const char *last,
                       char out[VMPAGE_NAMED_TOKEN_LEN + 1]);

#endif
