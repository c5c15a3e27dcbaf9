/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A URL query (`a=1&b=x%20y`) read pair by pair, decoded in place. */
#ifndef VMHOST_REST_QUERY_H
#define VMHOST_REST_QUERY_H

/* The next pair of the query at *cursor (a writable copy the caller owns;
 * the pairs point into it): 1 with *key and *value (value "" when the pair
 * has no '='), 0 at the end, -1 when a pair has a bad %-escape or decodes
 * to a NUL byte (*key then points at the pair as given). */
int query_next(char **cursor, char **key, char **value);

/* Decode s in place ('+' is a space, as forms send it): 0, or -1 for a
 * bad %-escape or one that decodes to a NUL byte. */
int query_decode(char *s);

#endif
