/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Numbers and sizes as people write them (libvmhutil): the one parser of
 * the config file (core/conftree.c) and of the JSON API (abijson), so that
 * "2GiB" means the same in both.
 *
 * A number is decimal digits only: "0x10", "1_000", " 8", "" and leading
 * zeros are refused (YAML 1.1 readers take 010 as octal 8, and the same
 * text must not mean two things).  A size is such a number, optionally
 * followed by spaces and a unit, matched without regard to case (these are
 * always bytes, never bits): B; K, KiB, M, MiB, G, GiB, T, TiB (powers of
 * 1024); KB, MB, GB, TB (powers of 1000). */
#ifndef VMHOST_UTIL_SIZES_H
#define VMHOST_UTIL_SIZES_H

#include <stddef.h>
#include <stdint.h>

enum num { NUM_BAD, NUM_OK, NUM_OVERFLOW };

/* What a size may look like, for messages. */
#define SIZE_SYNTAX                          \
  "a size (bytes, or a number with a unit: " \
  "K/KiB, M/MiB, G/GiB, T/TiB, KB, MB, GB, TB)"

/* Decimal digits at s to *ret; *end is set past them.  NUM_OVERFLOW: the
 * digits are a number above UINT64_MAX (*ret is then meaningless). */
enum num num_parse(const char *s, const char **end, uint64_t *ret);

/* The whole of s as a size in bytes.  NUM_OVERFLOW: above UINT64_MAX. */
enum num size_parse(const char *s, uint64_t *ret);

/* v for messages, in whichever unit (binary or decimal) that divides it
 * gives the smallest number: "4GiB", "1TB", "1000MiB", "1000".  Returns
 * buf. */
const char *size_format(uint64_t v, char *buf, size_t size);

#endif
