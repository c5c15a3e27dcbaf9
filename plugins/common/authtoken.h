/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* authtoken — roles and the bearer-token store, shared by the core
 * (`vmhostd --token-create`, the admin token written at first start) and
 * the front-ends that authenticate callers (h2server's h2auth.c).
 *
 * The store is the directory STATE_DIR/auth (0700): `tokens` holds one
 * line per token, "NAME ROLE SHA256HEX CREATED", never a secret; the
 * secrets are shown once, to whoever created them.  Writers take an
 * exclusive flock on `tokens.lock` and replace `tokens` atomically, so the
 * daemon and `vmhostd --token-create` may write at the same time and a
 * reader never sees half a file.
 *
 * A secret is "vmh_" and 43 characters of base64url (32 random bytes).
 *
 * Errors: a VMH_E* code, and the message in err (errlen bytes). */
#ifndef VMH_AUTHTOKEN_H
#define VMH_AUTHTOKEN_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Roles, each including the ones below it. */
enum auth_role {
  AUTH_NONE = 0,     /* no credentials, or none that map to a role */
  AUTH_READER = 1,   /* GET, events, metrics */
  AUTH_OPERATOR = 2, /* VM lifecycle, snapshots, disks */
  AUTH_ADMIN = 3,    /* everything */
};

/* "reader", "operator", "admin" ("none" for AUTH_NONE). */
const char *auth_role_name(int role);
/* The role named s, or -1. */
int auth_role_parse(const char *s);

#define AUTH_SECRET_LEN 48  /* "vmh_" + 43 + NUL, rounded up */
#define AUTH_SECRET_MAX 128 /* longer strings are no token (checked fast) */
#define AUTH_NAME_MAX 64    /* a token's name: [a-z0-9-], 1..63 */

struct auth_token {
  char name[AUTH_NAME_MAX];
  int role;
  int64_t created; /* unix seconds */
};

/* A store: the directory (copied) and, for readers, what was last read. */
struct auth_store;
/* NULL when out of memory.  Nothing is read or created yet. */
struct auth_store *auth_store_new(const char *dir);
void auth_store_free(struct auth_store *st);

/* Create the directory (0700) if missing.  0 or a VMH_E* code. */
int auth_store_init(struct auth_store *st, char *err, size_t errlen);

/* A new token NAME with ROLE: its secret into secret (AUTH_SECRET_LEN
 * bytes).  VMH_EEXIST when the name is taken, VMH_EINVAL for a bad name or
 * role. */
int auth_token_create(struct auth_store *st, const char *name, int role,
                      char *secret, char *err, size_t errlen);
/* Remove token NAME; VMH_ENOENT when there is none. */
int auth_token_revoke(struct auth_store *st, const char *name, char *err,
                      size_t errlen);
/* The tokens, sorted by name, into *ret (malloc'ed, the caller frees) and
 * *n. */
int auth_token_list(struct auth_store *st, struct auth_token **ret, size_t *n,
                    char *err, size_t errlen);
/* The role of the token whose secret is secret, and its name into
 * ret_name (AUTH_NAME_MAX bytes); AUTH_NONE when no token matches.  Any
 * thread: the file is read again only when it changed. */
int auth_token_check(struct auth_store *st, const char *secret, char *ret_name);

/* For a caller that checks many requests (h2auth.c): read the file again
 * if it changed since it was read (one stat), and return the store's
 * generation, which changes with every read.  A check against the table
 * as read, without a stat (the caller refreshes, as often as freshness
 * needs), its generation into *ret_gen: an answer for a secret stays
 * true while the generation stays.  Any thread. */
uint64_t auth_store_refresh(struct auth_store *st);
int auth_token_check_read(struct auth_store *st, const char *secret,
                          char *ret_name, uint64_t *ret_gen);

/* First start: when the store has no tokens file yet, create a token
 * "admin" with role admin and write its secret to DIR/admin.token (0600);
 * *ret_path gets that path (malloc'ed) when it did, else NULL. */
int auth_store_bootstrap(struct auth_store *st, char **ret_path, char *err,
                         size_t errlen);

#endif /* VMH_AUTHTOKEN_H */
