/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* authtoken — roles and the bearer-token store (see authtoken.h). */
#include <config.h>

#include "authtoken.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vmhost/common.h>

#include "atomicfile.h"
#include "cleanup.h"
#include "numfmt.h"

#define HASH_HEX 65 /* SHA-256 in hex, NUL */

struct entry {
  struct auth_token t;
  char hash[HASH_HEX];
};

struct auth_store {
  char *dir, *file, *lock;
  pthread_mutex_t mu; /* what follows: the file as last read */
  struct entry *e;
  size_t n;
  struct stat seen; /* of the file when read; st_ino 0: never read */
  uint64_t gen;     /* counts the reads (auth_store_refresh) */
};

static const char *const role_names[] = {"none", "reader", "operator", "admin"};

const char *auth_role_name(int role) {
  return role >= AUTH_NONE && role <= AUTH_ADMIN ? role_names[role] : "?";
}

int auth_role_parse(const char *s) {
  for (int i = AUTH_READER; i <= AUTH_ADMIN; i++)
    if (s && !strcmp(s, role_names[i]))
      return i;
  return -1;
}

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((__format__(__printf__, 4, 5)));
static int fail(char *err, size_t errlen, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (err && errlen)
    vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return code;
}

static char *join(const char *dir, const char *name) {
  char *r;
  return asprintf(&r, "%s/%s", dir, name) < 0 ? NULL : r;
}

struct auth_store *auth_store_new(const char *dir) {
  struct auth_store *st = calloc(1, sizeof *st);
  if (!st)
    return NULL;
  pthread_mutex_init(&st->mu, NULL);
  if (!(st->dir = strdup(dir)) || !(st->file = join(dir, "tokens")) ||
      !(st->lock = join(dir, "tokens.lock"))) {
    auth_store_free(st);
    return NULL;
  }
  return st;
}

void auth_store_free(struct auth_store *st) {
  if (!st)
    return;
  free(st->dir);
  free(st->file);
  free(st->lock);
  free(st->e);
  pthread_mutex_destroy(&st->mu);
  free(st);
}

int auth_store_init(struct auth_store *st, char *err, size_t errlen) {
  if (mkdir(st->dir, 0700) < 0 && errno != EEXIST)
    return fail(err, errlen, VMH_EIO, "cannot create %s: %s", st->dir,
                strerror(errno));
  return 0;
}

static bool name_ok(const char *name) {
  size_t n = name ? strlen(name) : 0;
  if (n == 0 || n >= AUTH_NAME_MAX)
    return false;
  return strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

static void sha256_hex(const char *s, char out[HASH_HEX]) {
  unsigned char h[32];
  gnutls_hash_fast(GNUTLS_DIG_SHA256, s, strlen(s), h);
  for (int i = 0; i < 32; i++)
    numfmt_hex(out + 2 * i, h[i], 2);
  out[64] = '\0';
}

/* Parse the tokens file into *ret; a missing file is no tokens. */
static int load(const char *file, struct entry **ret, size_t *ret_n,
                struct stat *ret_st, char *err, size_t errlen) {
  *ret = NULL;
  *ret_n = 0;
  _cleanup_fclose_ FILE *f = fopen(file, "re");
  if (!f) {
    if (errno == ENOENT) {
      memset(ret_st, 0, sizeof *ret_st);
      return 0;
    }
    return fail(err, errlen, VMH_EIO, "cannot read %s: %s", file,
                strerror(errno));
  }
  fstat(fileno(f), ret_st);
  char line[512];
  size_t cap = 0, lineno = 0;
  struct entry *e = NULL;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    char name[AUTH_NAME_MAX + 1], role[16], hash[HASH_HEX + 1];
    int64_t created;
    if (sscanf(line, "%64s %15s %65s %" SCNd64, name, role, hash, &created) !=
            4 ||
        !name_ok(name) || auth_role_parse(role) < 0 ||
        strlen(hash) != HASH_HEX - 1) {
      free(e);
      return fail(err, errlen, VMH_EIO, "%s:%zu: not a token line", file,
                  lineno);
    }
    if (*ret_n == cap) {
      cap = cap ? 2 * cap : 8;
      struct entry *ne = realloc(e, cap * sizeof *e);
      if (!ne) {
        free(e);
        return fail(err, errlen, VMH_ENOMEM, "out of memory");
      }
      e = ne;
    }
    struct entry *x = &e[(*ret_n)++];
    snprintf(x->t.name, sizeof x->t.name, "%s", name);
    x->t.role = auth_role_parse(role);
    x->t.created = created;
    memcpy(x->hash, hash, HASH_HEX);
  }
  *ret = e;
  return 0;
}

/* Write entries e[0..n) as the tokens file. */
static int save(const char *file, const struct entry *e, size_t n, char *err,
                size_t errlen) {
  _cleanup_free_ char *buf = NULL;
  size_t len = 0;
  _cleanup_fclose_ FILE *m = open_memstream(&buf, &len);
  if (!m)
    return fail(err, errlen, VMH_ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++)
    fprintf(m, "%s %s %s %" PRId64 "\n", e[i].t.name,
            auth_role_name(e[i].t.role), e[i].hash, e[i].t.created);
  if (fclose(m) != 0) {
    m = NULL;
    return fail(err, errlen, VMH_ENOMEM, "out of memory");
  }
  m = NULL;
  if (atomic_write(file, buf, len, 0600) < 0)
    return fail(err, errlen, VMH_EIO, "cannot write %s: %s", file,
                strerror(errno));
  return 0;
}

/* The writers' lock: an fd holding an exclusive flock, or -1. */
static int lock_store(struct auth_store *st, char *err, size_t errlen) {
  int fd = open(st->lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0 || flock(fd, LOCK_EX) < 0) {
    fail(err, errlen, VMH_EIO, "cannot lock %s: %s", st->lock, strerror(errno));
    if (fd >= 0)
      close(fd);
    return -1;
  }
  return fd;
}

/* The writers' lock taken (*lk), then the tokens read (*ret, *n). */
static int lock_and_load(struct auth_store *st, int *lk, struct entry **ret,
                         size_t *n, char *err, size_t errlen) {
  struct stat sb;
  if ((*lk = lock_store(st, err, errlen)) < 0)
    return VMH_EIO;
  return load(st->file, ret, n, &sb, err, errlen);
}

static int random_secret(char *secret, char *err, size_t errlen) {
  static const char b64u[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  unsigned char r[43];
  if (gnutls_rnd(GNUTLS_RND_KEY, r, sizeof r) < 0)
    return fail(err, errlen, VMH_EINTERNAL, "no random bytes");
  memcpy(secret, "vmh_", 4);
  for (size_t i = 0; i < sizeof r; i++)
    secret[4 + i] = b64u[r[i] & 63];
  secret[4 + sizeof r] = '\0';
  return 0;
}

int auth_token_create(struct auth_store *st, const char *name, int role,
                      char *secret, char *err, size_t errlen) {
  if (!name_ok(name))
    return fail(err, errlen, VMH_EINVAL,
                "token name '%s' is invalid (expected [a-z0-9-], 1 to %d "
                "characters)",
                name ? name : "", AUTH_NAME_MAX - 1);
  if (role < AUTH_READER || role > AUTH_ADMIN)
    return fail(err, errlen, VMH_EINVAL,
                "role must be reader, operator or admin");
  _cleanup_close_ int lk = -1;
  _cleanup_free_ struct entry *e = NULL;
  size_t n;
  int r = lock_and_load(st, &lk, &e, &n, err, errlen);
  if (r < 0)
    return r;
  for (size_t i = 0; i < n; i++)
    if (!strcmp(e[i].t.name, name))
      return fail(err, errlen, VMH_EEXIST, "a token named '%s' exists", name);
  struct entry *ne = realloc(e, (n + 1) * sizeof *e);
  if (!ne)
    return fail(err, errlen, VMH_ENOMEM, "out of memory");
  e = ne;
  if ((r = random_secret(secret, err, errlen)) < 0)
    return r;
  struct entry *x = &e[n];
  memset(x, 0, sizeof *x);
  snprintf(x->t.name, sizeof x->t.name, "%s", name);
  x->t.role = role;
  x->t.created = (int64_t)time(NULL);
  sha256_hex(secret, x->hash);
  return save(st->file, e, n + 1, err, errlen);
}

int auth_token_revoke(struct auth_store *st, const char *name, char *err,
                      size_t errlen) {
  _cleanup_close_ int lk = -1;
  _cleanup_free_ struct entry *e = NULL;
  size_t n;
  int r = lock_and_load(st, &lk, &e, &n, err, errlen);
  if (r < 0)
    return r;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(e[i].t.name, name))
      continue;
    memmove(&e[i], &e[i + 1], (n - i - 1) * sizeof *e);
    return save(st->file, e, n - 1, err, errlen);
  }
  return fail(err, errlen, VMH_ENOENT, "no token named '%s'", name);
}

static int by_name(const void *a, const void *b) {
  return strcmp(((const struct auth_token *)a)->name,
                ((const struct auth_token *)b)->name);
}

int auth_token_list(struct auth_store *st, struct auth_token **ret, size_t *n,
                    char *err, size_t errlen) {
  _cleanup_free_ struct entry *e = NULL;
  struct stat sb;
  int r = load(st->file, &e, n, &sb, err, errlen);
  if (r < 0)
    return r;
  *ret = calloc(*n ? *n : 1, sizeof **ret);
  if (!*ret)
    return fail(err, errlen, VMH_ENOMEM, "out of memory");
  for (size_t i = 0; i < *n; i++)
    (*ret)[i] = e[i].t;
  qsort(*ret, *n, sizeof **ret, by_name);
  return 0;
}

static bool same_file(const struct stat *a, const struct stat *b) {
  return a->st_ino == b->st_ino && a->st_dev == b->st_dev &&
         a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
         a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Compare two hashes in time independent of where they differ. */
static bool hash_eq(const char *a, const char *b) {
  unsigned char d = 0;
  for (int i = 0; i < HASH_HEX - 1; i++)
    d |= (unsigned char)(a[i] ^ b[i]);
  return d == 0;
}

/* Read the file again if it changed since it was read; under st->mu. */
static void refresh(struct auth_store *st) {
  struct stat sb;
  if (stat(st->file, &sb) < 0)
    memset(&sb, 0, sizeof sb);
  if (st->seen.st_ino && same_file(&sb, &st->seen))
    return;
  struct entry *e;
  size_t n;
  if (load(st->file, &e, &n, &sb, NULL, 0) == 0) {
    free(st->e);
    st->e = e;
    st->n = n;
    st->seen = sb;
    st->gen++;
  }
}

/* The role of secret in the table as last read; under st->mu. */
static int lookup(struct auth_store *st, const char *secret, char *ret_name) {
  if (!secret || strncmp(secret, "vmh_", 4) || strlen(secret) > AUTH_SECRET_MAX)
    return AUTH_NONE;
  char h[HASH_HEX];
  sha256_hex(secret, h);
  int role = AUTH_NONE;
  for (size_t i = 0; i < st->n; i++)
    if (hash_eq(st->e[i].hash, h)) {
      role = st->e[i].t.role;
      snprintf(ret_name, AUTH_NAME_MAX, "%s", st->e[i].t.name);
    }
  return role;
}

int auth_token_check(struct auth_store *st, const char *secret,
                     char *ret_name) {
  pthread_mutex_lock(&st->mu);
  refresh(st);
  int role = lookup(st, secret, ret_name);
  pthread_mutex_unlock(&st->mu);
  return role;
}

uint64_t auth_store_refresh(struct auth_store *st) {
  pthread_mutex_lock(&st->mu);
  refresh(st);
  uint64_t gen = st->gen;
  pthread_mutex_unlock(&st->mu);
  return gen;
}

int auth_token_check_read(struct auth_store *st, const char *secret,
                          char *ret_name, uint64_t *ret_gen) {
  pthread_mutex_lock(&st->mu);
  if (!st->gen)
    refresh(st); /* never read yet */
  int role = lookup(st, secret, ret_name);
  *ret_gen = st->gen;
  pthread_mutex_unlock(&st->mu);
  return role;
}

int auth_store_bootstrap(struct auth_store *st, char **ret_path, char *err,
                         size_t errlen) {
  *ret_path = NULL;
  int r = auth_store_init(st, err, errlen);
  if (r < 0)
    return r;
  if (access(st->file, F_OK) == 0)
    return 0;
  char secret[AUTH_SECRET_LEN];
  if ((r = auth_token_create(st, "admin", AUTH_ADMIN, secret, err, errlen)) < 0)
    return r;
  _cleanup_free_ char *path = join(st->dir, "admin.token");
  if (!path)
    return fail(err, errlen, VMH_ENOMEM, "out of memory");
  size_t len = strlen(secret);
  secret[len] = '\n';
  r = atomic_write(path, secret, len + 1, 0600);
  gnutls_memset(secret, 0, sizeof secret);
  if (r < 0)
    return fail(err, errlen, VMH_EIO, "cannot write %s: %s", path,
                strerror(errno));
  *ret_path = path;
  path = NULL;
  return 0;
}
