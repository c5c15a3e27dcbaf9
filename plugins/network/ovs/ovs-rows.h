/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ovs-rows — what the OVS network plugin reads and writes in the
 * Open_vSwitch database: its bridge, its uplink, its ports and their
 * identities.  Each rows_* function is an odb_build_fn (ovs-db.h): it runs
 * on the IDL thread with its argument struct, owned by the caller.
 *
 * The database is the record of ports, so they are found again after a
 * restart of vmhostd:
 *  - a port of binding tap is a Port + Interface the plugin added, named
 *    after the NIC (net_port_ifname "vmo..."); the Interface's external_ids
 *    carry iface-id, attached-mac, vm-id, vmhost-network and vmhost-nic;
 *  - a port of binding ovs is made by the hypervisor (libvirt adds and
 *    removes it with the VM), so its record is a key of the bridge's
 *    external_ids: "vmhost-port:NETWORK:IFNAME" = "VM-ID MAC VLAN NIC";
 *  - a bridge the plugin made carries external_ids vmhost-created=NETWORK,
 *    an uplink port it added vmhost-uplink=NETWORK. */
#ifndef VMHOST_OVS_ROWS_H
#define VMHOST_OVS_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include <vmhost/vmhost-plugin.h>

#include "netcommon.h"
#include "ovs-db.h"

#define ROWS_PREFIX "vmo" /* interface names of the plugin's ports */

/* The network as configured: set by open(), read-only afterwards. */
struct rows_net {
  const char *name; /* the instance's */
  const char *bridge;
  const char *uplink;        /* NULL: none */
  int create;                /* make the bridge if missing */
  const char *datapath_type; /* NULL: OVS's default (at creation) */
  const char *fail_mode;     /* NULL: standalone */
  const int64_t *trunks;     /* the uplink's, from vlans; NULL: all */
  size_t n_trunks;
  int64_t mtu; /* 0: leave */
};

/* One port, as bound or as found in the records. */
struct rows_port {
  char vm_id[VMH_ID_LEN + 1];
  char nic[VMH_NAME_MAX + 1];
  char mac[NET_MAC_LEN + 1];
  char ifname[NET_IFNAME_MAX + 1];
  char iface_id[VMH_ID_LEN + 1];
  uint32_t vlan;
  int tap; /* 1: a Port the plugin added (binding tap); 0: a record */
};

/* The iface-id of a port: a UUID (version 8, RFC 9562) made from two
 * hashes of VM id and NIC name, the same on every bind. */
void rows_iface_id(const char *vm_id, const char *nic,
                   char out[VMH_ID_LEN + 1]);

/* rows_ensure: the bridge exists (made if missing and create is set, with
 * its datapath type and fail mode) and so does the uplink port. */
struct rows_ensure {
  const struct rows_net *net;
  int created;        /* out: this call made the bridge */
  int uplink_created; /* out: this call added the uplink port */
};
int rows_ensure(void *arg, struct ovsdb_idl *idl, struct ovsdb_idl_txn *txn,
                char *err);

/* rows_bind: add port (tap: a Port + Interface with the identities and
 * the VLAN tag; otherwise a record).  VMH_EEXIST if this network already
 * has the port, VMH_EBUSY if the name is someone else's.  With probe set,
 * only those checks: nothing is written. */
struct rows_bind {
  const struct rows_net *net;
  const struct rows_port *port;
  int probe;
};
int rows_bind(void *arg, struct ovsdb_idl *idl, struct ovsdb_idl_txn *txn,
              char *err);

/* rows_unbind: remove the port or record of vm_id + nic.  VMH_ENOENT if
 * this network has none.  *was_tap: it was a Port (its tap to delete). */
struct rows_unbind {
  const struct rows_net *net;
  const char *vm_id, *nic;
  char ifname[NET_IFNAME_MAX + 1]; /* out */
  int was_tap;                     /* out */
};
int rows_unbind(void *arg, struct ovsdb_idl *idl, struct ovsdb_idl_txn *txn,
                char *err);

/* rows_list: every port of this network (a read).  v is malloc'd: the
 * caller frees it. */
struct rows_list {
  const struct rows_net *net;
  struct rows_port *v; /* out */
  size_t n;            /* out */
};
int rows_list(void *arg, struct ovsdb_idl *idl, struct ovsdb_idl_txn *txn,
              char *err);

/* rows_info: the bridge as the database has it (a read). */
struct rows_info {
  const struct rows_net *net;
  int exists;       /* out */
  uint32_t n_ports; /* out: the bridge's ports, its own internal one too */
};
int rows_info(void *arg, struct ovsdb_idl *idl, struct ovsdb_idl_txn *txn,
              char *err);

/* rows_teardown (ensure: absent): remove this network's ports and
 * records, the uplink port if it added it, and the bridge if it made it.
 * Ports of others stay. */
struct rows_teardown {
  const struct rows_net *net;
  char (*taps)[NET_IFNAME_MAX + 1]; /* out, malloc'd: the ports' taps */
  size_t n_taps;                    /* out */
  size_t n_records;                 /* out */
  unsigned others;                  /* out: ports left on the bridge */
  const char *fate;                 /* out: what became of the bridge */
};
int rows_teardown(void *arg, struct ovsdb_idl *idl, struct ovsdb_idl_txn *txn,
                  char *err);

#endif
