/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers the network plugins share: interface names, MAC addresses and
 * the port table. */
#include <config.h>

#include "netcommon.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <vmhost/common.h>

int net_split_hostport(const char *a, char *host, size_t size, int allow_any,
                       unsigned *port, const char **why) {
  const char *h = a, *colon;
  size_t n;
  if (a[0] == '[') {
    const char *close = strchr(a, ']');
    if (!close || close[1] != ':') {
      *why = "expected [v6 address]:port";
      return -1;
    }
    h = a + 1;
    n = (size_t)(close - h);
    colon = close + 1;
  } else {
    colon = strrchr(a, ':');
    if (!colon || strchr(a, ':') != colon) {
      *why = colon ? "write an IPv6 address in brackets, [addr]:port"
                   : "expected host:port";
      return -1;
    }
    n = (size_t)(colon - a);
  }
  if (n >= size) {
    *why = "the host is too long";
    return -1;
  }
  const char *p = colon + 1;
  size_t digits = strspn(p, "0123456789");
  unsigned long v = digits && digits <= 5 ? strtoul(p, NULL, 10) : 0;
  if (!digits || p[digits] || digits > 5 || v > 65535 ||
      (v == 0 && !allow_any)) {
    *why = allow_any ? "the port is not a number from 0 (any free port) to "
                       "65535"
                     : "the port is not a number from 1 to 65535";
    return -1;
  }
  memcpy(host, h, n);
  host[n] = '\0';
  *port = (unsigned)v;
  return 0;
}

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

int net_valid_vm_id(const char *s) {
  int i;

  if (s == NULL || strlen(s) != VMH_ID_LEN)
    return 0;
  for (i = 0; i < VMH_ID_LEN; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-')
        return 0;
    } else if (!isxdigit((unsigned char)s[i])) {
      return 0;
    }
  }
  return 1;
}

int net_valid_nic(const char *s) {
  size_t len;

  if (s == NULL || (len = strlen(s)) == 0 || len > VMH_NAME_MAX)
    return 0;
  for (; *s; s++)
    if (*s <= ' ' || *s >= 0x7f || *s == '/')
      return 0;
  return 1;
}

void net_port_ifname(const char *prefix, const char *vm_id, const char *nic,
                     char out[NET_IFNAME_MAX + 1]) {
  snprintf(out, NET_IFNAME_MAX + 1, "%.3s%.8s%04x", prefix, vm_id,
           (unsigned)(net_hash_port(vm_id, nic) & 0xffff));
}

int net_parse_port_fields(const char *s, char vm_id[VMH_ID_LEN + 1],
                          char mac[NET_MAC_LEN + 1], uint32_t *vlan,
                          char nic[VMH_NAME_MAX + 1]) {
  char id[VMH_ID_LEN + 2], m[NET_MAC_LEN + 2], n[VMH_NAME_MAX + 2];
  unsigned v;
  int end = 0;

  if (s == NULL || sscanf(s, "%37s %18s %u %64s%n", id, m, &v, n, &end) != 4 ||
      s[end] != '\0' || !net_valid_vm_id(id) || net_parse_mac(m, mac) != 1 ||
      v > 4094 || !net_valid_nic(n))
    return -1;
  memcpy(vm_id, id, VMH_ID_LEN + 1);
  memcpy(nic, n, strlen(n) + 1); /* net_valid_nic: it fits */
  *vlan = v;
  return 0;
}

/* Attach to tap `name` (made if missing) and set its persistence. */
static int tap_persist(const char *name, int persist, const char **what) {
  struct ifreq ifr;
  int fd, rc = 0;

  *what = "open /dev/net/tun";
  fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
  *what = "create";
  if (ioctl(fd, TUNSETIFF, &ifr) < 0)
    rc = -errno;
  else if ((*what = "make persistent", ioctl(fd, TUNSETPERSIST, persist)) < 0)
    rc = -errno;
  close(fd);
  return rc;
}

int net_tap_create(const char *name, const char **what) {
  return tap_persist(name, 1, what);
}

int net_tap_delete(const char *name) {
  const char *what;

  /* TUNSETIFF would make a missing tap: look first. */
  if (if_nametoindex(name) == 0)
    return -ENODEV;
  return tap_persist(name, 0, &what);
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
