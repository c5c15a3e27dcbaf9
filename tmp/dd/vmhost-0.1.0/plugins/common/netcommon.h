/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers the network plugins share (libvmhutil: in-tree only, never
 * installed, not part of the ABI): interface names, MAC addresses and the
 * table of bound ports. */
#ifndef VMHOST_PLUGINS_NETCOMMON_H
#define VMHOST_PLUGINS_NETCOMMON_H

#include <stddef.h>
#include <stdint.h>

#include "ptrvec.h"

#define NET_IFNAME_MAX 15 /* IFNAMSIZ - 1 */
#define NET_MAC_LEN 17    /* "52:54:00:xx:xx:xx" */

/* Linux's dev_valid_name(), plus printable ASCII only. */
int net_valid_ifname(const char *s);

/* Parse "xx:xx:xx:xx:xx:xx" in any case into out, in lower case.  Returns
 * 1 for a unicast address, -1 for a multicast or all-zero one, 0 when s is
 * not a MAC address. */
int net_parse_mac(const char *s, char out[NET_MAC_LEN + 1]);

/* "52:54:00:xx:xx:xx" (QEMU's locally administered prefix) with the low 24
 * bits of v. */
void net_format_mac(uint32_t v, char out[NET_MAC_LEN + 1]);

/* FNV-1a over vm_id "/" nic_name "/": a stable hash of a port's identity
 * (tap names and derived MACs depend on it: never change it). */
uint64_t net_hash_port(const char *vm_id, const char *nic_name);

/* A bound port as the table knows it: the first member of the plugin's own
 * port struct, which owns the strings. */
struct net_port {
  char *vm_id, *nic_name;
  char mac[NET_MAC_LEN + 1];
};

/* The ports of an instance are a struct ptrvec of struct net_port *, in
 * an order the plugin chooses (bind order, say). */
static inline struct net_port *net_port_at(const struct ptrvec *t, size_t i) {
  return t->v[i];
}

/* The port of vm_id + nic_name (and its index), or NULL. */
struct net_port *net_ports_find(const struct ptrvec *t, const char *vm_id,
                                const char *nic_name, size_t *ret_index);
/* The port holding mac, or NULL. */
struct net_port *net_ports_find_mac(const struct ptrvec *t, const char *mac);

/* A MAC no port of t holds and `taken` (may be NULL) does not refuse: the
 * low 24 bits come from next(opaque), called until one is free, at most
 * `tries` times.  Returns 0, or -1 when every try was taken. */
int net_ports_new_mac(const struct ptrvec *t, uint32_t (*next)(void *opaque),
                      int (*taken)(void *opaque, const char *mac), void *opaque,
                      unsigned tries, char out[NET_MAC_LEN + 1]);

#endif
