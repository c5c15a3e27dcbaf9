/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Checks on names and strings that come from outside (front-ends). */
#ifndef VMHOST_CORE_VALIDATE_H
#define VMHOST_CORE_VALIDATE_H

#include <stddef.h>

/* Names of VMs, pools, volumes, images, snapshots and networks follow the
 * ABI's one rule: vmh_name_valid() in <vmhost/common.h>. */
/* [a-z][a-z0-9]{0,15}: disk and NIC names inside a VM. */
int valid_device_name(const char *s);
/* The text form of a UUID (8-4-4-4-12 hex digits, either case): a VM's
 * id.  A VM name of that form is refused, since a lookup takes either. */
int valid_uuid(const char *s);
/* xx:xx:xx:xx:xx:xx, hex, unicast (low bit of the first octet clear). */
int valid_mac(const char *s);
/* Well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF)
 * with no NUL inside len. */
int valid_utf8(const char *s, size_t len);
/* Length of s[0..len) without a trailing incomplete UTF-8 sequence, so a
 * string cut to fit a buffer never ends in half a character. */
size_t utf8_trim(const char *s, size_t len);
/* A label (metadata) key as Kubernetes spells one: an optional prefix, a
 * DNS subdomain of at most 253 bytes (lower-case letters, digits, '-' and
 * '.', each part beginning and ending with a letter or digit), and '/';
 * then a name of 1..63 bytes of letters, digits, '-', '_' and '.',
 * beginning and ending with a letter or digit. */
int valid_label_key(const char *s);
#define LABEL_KEY_RULE                                                   \
  "[PREFIX/]NAME: NAME is 1..63 letters, digits, '-', '_' or '.' that "  \
  "begin and end with a letter or digit; PREFIX a DNS subdomain (lower " \
  "case, at most 253 bytes)"
/* A random (version 4) UUID, lower case, into out (VMH_ID_LEN + 1 bytes:
 * <vmhost/common.h>). */
void core_uuid_v4(char *out);

#endif
