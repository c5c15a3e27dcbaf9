/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers the network plugins share (libvmhutil: in-tree only, never
 * installed, not part of the ABI): interface names, MAC addresses and the
 * table of bound ports. */
#ifndef VMHOST_PLUGINS_NETCOMMON_H
#define VMHOST_PLUGINS_NETCOMMON_H

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <vmhost/common.h>

#include "ptrvec.h"

#define NET_IFNAME_MAX 15 /* IFNAMSIZ - 1 */
#define NET_MAC_LEN 17    /* "52:54:00:xx:xx:xx" */

/* "host:port" or "[v6 address]:port" (every address a config names):
 * host copied without brackets into host[size], the port to *port.  The
 * port is decimal, 1..65535, or 0 when allow_any (a listener: the kernel
 * picks a free one).  Returns 0, or -1 with *why saying what is wrong (a
 * static string for messages). */
int net_split_hostport(const char *a, char *host, size_t size, int allow_any,
                       unsigned *port, const char **why);

/* Linux's dev_valid_name(), plus printable ASCII only. */
int net_valid_ifname(const char *s);

/* A VM id is a UUID in its canonical text form (it becomes part of file
 * names, interface aliases and OVSDB records): 1 if s is one. */
int net_valid_vm_id(const char *s);

/* A NIC name: the core's are [a-z][a-z0-9]{0,15}; this accepts a little
 * more, but nothing that could break a file name, an alias field or a log
 * line (1..VMH_NAME_MAX printable characters, no blank, no '/'). */
int net_valid_nic(const char *s);

/* The interface name of a port: prefix (3 characters) + the VM id's first
 * 8 hex digits (so that a human can tell whose it is) + 4 hex digits of
 * net_hash_port(vm_id, nic): 15 characters, the most a name holds. */
void net_port_ifname(const char *prefix, const char *vm_id, const char *nic,
                     char out[NET_IFNAME_MAX + 1]);

/* A port's identity as one line of text, "VM-ID MAC VLAN NIC" (a tap's
 * alias, a port record): written with NET_PORT_FIELDS_FMT, parsed (and
 * every field checked, the MAC lower-cased) by net_parse_port_fields.
 * Returns 0, or -1 when s is not such a line. */
#define NET_PORT_FIELDS_FMT "%s %s %" PRIu32 " %s"
int net_parse_port_fields(const char *s, char vm_id[VMH_ID_LEN + 1],
                          char mac[NET_MAC_LEN + 1], uint32_t *vlan,
                          char nic[VMH_NAME_MAX + 1]);

/* Make a persistent tap `name` (it outlives this call, so that a
 * hypervisor can open it by name later).  Returns 0, or -errno with *what
 * naming the step that failed ("open /dev/net/tun", "create",
 * "make persistent"); EBUSY from "create": the name is taken. */
int net_tap_create(const char *name, const char **what);

/* Delete the persistent tap `name` (it must not be attached: EBUSY while
 * a hypervisor holds it).  Returns 0 or -errno (ENODEV: no such tap). */
int net_tap_delete(const char *name);

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
