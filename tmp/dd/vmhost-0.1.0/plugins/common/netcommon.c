/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers the network plugins share: interface names, MAC addresses and
 * the port table. */
#include <config.h>

#include "netcommon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int net_valid_ifname(const char *s) {
  size_t len = strlen(s);

  if (len == 0 || len > NET_IFNAME_MAX || strcmp(s, ".") == 0 ||
      strcmp(s, "..") == 0)
    return 0;
  for (; *s; s++)
    if (*s <= ' ' || *s >= 0x7f || *s == '/' || *s == ':')
      return 0;
  return 1;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int net_parse_mac(const char *s, char out[NET_MAC_LEN + 1]) {
  int i, first = 0, any = 0;

  if (strlen(s) != NET_MAC_LEN)
    return 0;
  for (i = 0; i < NET_MAC_LEN; i++) {
    if (i % 3 == 2) {
      if (s[i] != ':')
        return 0;
      out[i] = ':';
    } else {
      int v = hexval(s[i]);
      if (v < 0)
        return 0;
      if (i == 1)
        first = hexval(s[0]) << 4 | v;
      any |= v;
      out[i] = "0123456789abcdef"[v];
    }
  }
  out[NET_MAC_LEN] = '\0';
  return (first & 1) || !any ? -1 : 1;
}

void net_format_mac(uint32_t v, char out[NET_MAC_LEN + 1]) {
  snprintf(out, NET_MAC_LEN + 1, "52:54:00:%02x:%02x:%02x",
           (unsigned)(v >> 16 & 0xff), (unsigned)(v >> 8 & 0xff),
           (unsigned)(v & 0xff));
}

uint64_t net_hash_port(const char *vm_id, const char *nic_name) {
  uint64_t h = UINT64_C(14695981039346656037);
  const char *parts[2] = {vm_id, nic_name};

  for (int i = 0; i < 2; i++) {
    for (const unsigned char *p = (const unsigned char *)parts[i]; *p; p++)
      h = (h ^ *p) * UINT64_C(1099511628211);
    h = (h ^ '/') * UINT64_C(1099511628211);
  }
  return h;
}

struct net_port *net_ports_find(const struct ptrvec *t, const char *vm_id,
                                const char *nic_name, size_t *ret_index) {
  for (size_t i = 0; i < t->n; i++) {
    struct net_port *p = t->v[i];
    if (strcmp(p->vm_id, vm_id) == 0 && strcmp(p->nic_name, nic_name) == 0) {
      if (ret_index)
        *ret_index = i;
      return p;
    }
  }
  return NULL;
}

struct net_port *net_ports_find_mac(const struct ptrvec *t, const char *mac) {
  for (size_t i = 0; i < t->n; i++)
    if (strcmp(net_port_at(t, i)->mac, mac) == 0)
      return t->v[i];
  return NULL;
}

int net_ports_new_mac(const struct ptrvec *t, uint32_t (*next)(void *opaque),
                      int (*taken)(void *opaque, const char *mac), void *opaque,
                      unsigned tries, char out[NET_MAC_LEN + 1]) {
  for (unsigned i = 0; i < tries; i++) {
    net_format_mac(next(opaque), out);
    if (!net_ports_find_mac(t, out) && !(taken && taken(opaque, out)))
      return 0;
  }
  return -1;
}
