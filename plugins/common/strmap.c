/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Open addressing with linear probing; removal shifts the following
 * entries back (no tombstones), so lookups stay short after churn. */
#include <config.h>

#include "strmap.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* ---- SipHash-1-3 (Aumasson and Bernstein) ------------------------------- */

static uint64_t sip_key[2];
static pthread_once_t sip_once = PTHREAD_ONCE_INIT;

static void sip_seed(void) {
  if (getrandom(sip_key, sizeof sip_key, 0) == (ssize_t)sizeof sip_key)
    return;
  /* No entropy yet (early boot): still differ from run to run. */
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  sip_key[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
  sip_key[1] = (uint64_t)ts.tv_sec * 0x9e3779b97f4a7c15ull;
}

static inline uint64_t rotl(uint64_t x, int b) {
  return (x << b) | (x >> (64 - b));
}

#define SIPROUND                                              \
  do {                                                        \
    v0 += v1, v1 = rotl(v1, 13), v1 ^= v0, v0 = rotl(v0, 32); \
    v2 += v3, v3 = rotl(v3, 16), v3 ^= v2;                    \
    v0 += v3, v3 = rotl(v3, 21), v3 ^= v0;                    \
    v2 += v1, v1 = rotl(v1, 17), v1 ^= v2, v2 = rotl(v2, 32); \
  } while (0)

static uint64_t load_le64(const unsigned char *p) {
  uint64_t x = 0;
  for (int i = 7; i >= 0; i--)
    x = (x << 8) | p[i];
  return x;
}

static uint64_t siphash13(const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s;
  uint64_t v0 = sip_key[0] ^ 0x736f6d6570736575ull;
  uint64_t v1 = sip_key[1] ^ 0x646f72616e646f6dull;
  uint64_t v2 = sip_key[0] ^ 0x6c7967656e657261ull;
  uint64_t v3 = sip_key[1] ^ 0x7465646279746573ull;
  uint64_t last = (uint64_t)len << 56;
  size_t whole = len & ~(size_t)7;

  for (size_t i = 0; i < whole; i += 8) {
    uint64_t m = load_le64(p + i);
    v3 ^= m;
    SIPROUND;
    v0 ^= m;
  }
  for (size_t i = whole; i < len; i++)
    last |= (uint64_t)p[i] << (8 * (i - whole));
  v3 ^= last;
  SIPROUND;
  v0 ^= last;
  v2 ^= 0xff;
  SIPROUND;
  SIPROUND;
  SIPROUND;
  return v0 ^ v1 ^ v2 ^ v3;
}

static uint64_t hash_key(const char *key) {
  pthread_once(&sip_once, sip_seed);
  return siphash13(key, strlen(key));
}

/* ---- the table ---------------------------------------------------------- */

/* The slot holding key, or the empty slot where it would go. */
static size_t probe(const struct strmap *m, const char *key, uint64_t h) {
  size_t mask = m->cap - 1;
  size_t i = (size_t)h & mask;
  while (m->slots[i].key &&
         (m->slots[i].hash != h || strcmp(m->slots[i].key, key) != 0))
    i = (i + 1) & mask;
  return i;
}

static int grow(struct strmap *m, size_t cap) {
  struct strmap_slot *slots = calloc(cap, sizeof *slots);
  if (!slots)
    return -1;
  struct strmap old = *m;
  m->slots = slots;
  m->cap = cap;
  for (size_t i = 0; i < old.cap; i++) {
    if (old.slots[i].key)
      m->slots[probe(m, old.slots[i].key, old.slots[i].hash)] = old.slots[i];
  }
  free(old.slots);
  return 0;
}

int strmap_reserve(struct strmap *m, size_t n) {
  /* At most 3/4 full: probes stay short. */
  size_t cap = m->cap ? m->cap : 16;
  while (n > cap / 4 * 3)
    cap *= 2;
  return cap == m->cap ? 0 : grow(m, cap);
}

int strmap_put(struct strmap *m, const char *key, void *value) {
  if (strmap_reserve(m, m->n + 1) < 0)
    return -1;
  uint64_t h = hash_key(key);
  struct strmap_slot *s = &m->slots[probe(m, key, h)];
  if (!s->key)
    m->n++;
  *s = (struct strmap_slot){.key = key, .value = value, .hash = h};
  return 0;
}

void *strmap_get(const struct strmap *m, const char *key) {
  if (!m->n)
    return NULL;
  const struct strmap_slot *s = &m->slots[probe(m, key, hash_key(key))];
  return s->key ? s->value : NULL;
}

/* Whether home lies cyclically in (hole, i]: then the entry at i must stay
 * where it is when hole empties. */
static bool between(size_t hole, size_t home, size_t i) {
  return hole <= i ? hole < home && home <= i : hole < home || home <= i;
}

void *strmap_remove(struct strmap *m, const char *key) {
  if (!m->n)
    return NULL;
  size_t mask = m->cap - 1;
  size_t hole = probe(m, key, hash_key(key));
  if (!m->slots[hole].key)
    return NULL;
  void *value = m->slots[hole].value;
  for (size_t i = (hole + 1) & mask; m->slots[i].key; i = (i + 1) & mask) {
    if (between(hole, (size_t)m->slots[i].hash & mask, i))
      continue;
    m->slots[hole] = m->slots[i];
    hole = i;
  }
  m->slots[hole] = (struct strmap_slot){0};
  m->n--;
  return value;
}

void strmap_free(struct strmap *m) {
  free(m->slots);
  *m = (struct strmap){0};
}
