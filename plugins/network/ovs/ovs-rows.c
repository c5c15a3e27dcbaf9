/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ovs-rows — the plugin's rows in the Open_vSwitch database (ovs-rows.h).
 * OVS's config.h first, not vmhost's: see ovs-db.c. */
#include <ovs/config.h>

#include "ovs-rows.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ovsdb-idl.h"
#include "smap.h"
#include "vswitch-idl.h"

#define KEY_CREATED "vmhost-created"
#define KEY_UPLINK "vmhost-uplink"
#define KEY_NETWORK "vmhost-network"
#define KEY_NIC "vmhost-nic"
#define KEY_RECORD "vmhost-port:" /* + network + ":" + ifname */

static int fail(char *err, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, int rc, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(err, ODB_ERR_LEN, fmt, ap);
  va_end(ap);
  return rc;
}

void rows_iface_id(const char *vm_id, const char *nic,
                   char out[VMH_ID_LEN + 1]) {
  uint64_t hi = net_hash_port(vm_id, nic), lo = net_hash_port(nic, vm_id);

  hi = (hi & ~UINT64_C(0xf000)) | UINT64_C(0x8000);       /* version 8 */
  lo = (lo & ~(UINT64_C(3) << 62)) | (UINT64_C(2) << 62); /* variant */
  snprintf(out, VMH_ID_LEN + 1,
           "%08" PRIx64 "-%04" PRIx64 "-%04" PRIx64 "-%04" PRIx64
           "-%012" PRIx64,
           hi >> 32, (hi >> 16) & 0xffff, hi & 0xffff, lo >> 48,
           lo & UINT64_C(0xffffffffffff));
}

static const struct ovsrec_bridge *find_bridge(struct ovsdb_idl *idl,
                                               const char *name) {
  const struct ovsrec_bridge *br;

  OVSREC_BRIDGE_FOR_EACH(br, idl)
  if (strcmp(br->name, name) == 0)
    return br;
  return NULL;
}

/* The bridge holding port p, or NULL. */
static const struct ovsrec_bridge *bridge_of(struct ovsdb_idl *idl,
                                             const struct ovsrec_port *p) {
  const struct ovsrec_bridge *br;
  size_t i;

  OVSREC_BRIDGE_FOR_EACH(br, idl)
  for (i = 0; i < br->n_ports; i++)
    if (br->ports[i] == p)
      return br;
  return NULL;
}

static const struct ovsrec_port *find_port(struct ovsdb_idl *idl,
                                           const char *name) {
  const struct ovsrec_port *p;

  OVSREC_PORT_FOR_EACH(p, idl)
  if (strcmp(p->name, name) == 0)
    return p;
  return NULL;
}

static const struct ovsrec_bridge *need_bridge(struct ovsdb_idl *idl,
                                               const struct rows_net *net,
                                               char *err, int *rc) {
  const struct ovsrec_bridge *br = find_bridge(idl, net->bridge);

  if (br == NULL)
    *rc = fail(err, VMH_EIO,
               "OVS bridge %s of network %s is gone from the database; "
               "restart vmhostd to make it again",
               net->bridge, net->name);
  return br;
}

/* A Port with one Interface of the same name (as ovs-vsctl add-port
 * makes), added to br. */
static struct ovsrec_port *add_port(struct ovsdb_idl_txn *txn,
                                    const struct ovsrec_bridge *br,
                                    const char *name, const char *type,
                                    int64_t mtu) {
  struct ovsrec_interface *iface = ovsrec_interface_insert(txn);
  struct ovsrec_port *port = ovsrec_port_insert(txn);

  ovsrec_interface_set_name(iface, name);
  if (type != NULL)
    ovsrec_interface_set_type(iface, type);
  if (mtu > 0)
    ovsrec_interface_set_mtu_request(iface, &mtu, 1);
  ovsrec_port_set_name(port, name);
  ovsrec_port_set_interfaces(port, &iface, 1);
  if (br != NULL)
    ovsrec_bridge_update_ports_addvalue(br, port);
  return port;
}

static int make_bridge(struct rows_ensure *e, struct ovsdb_idl *idl,
                       struct ovsdb_idl_txn *txn, char *err) {
  const struct rows_net *net = e->net;
  const struct ovsrec_open_vswitch *ovs = ovsrec_open_vswitch_first(idl);
  struct ovsrec_bridge *br;
  struct ovsrec_port *local;

  if (!net->create)
    return fail(err, VMH_ENOENT,
                "network %s: OVS bridge %s does not exist and create is "
                "false; make the bridge or set create: true",
                net->name, net->bridge);
  if (ovs == NULL)
    return fail(err, VMH_EIO,
                "the OVSDB has no Open_vSwitch row (run ovs-vsctl init, or "
                "start OVS as the distribution does)");
  if (find_port(idl, net->bridge) != NULL)
    return fail(err, VMH_EBUSY,
                "network %s: a port named %s exists on another bridge; name "
                "another bridge",
                net->name, net->bridge);
  br = ovsrec_bridge_insert(txn);
  ovsrec_bridge_set_name(br, net->bridge);
  if (net->datapath_type != NULL)
    ovsrec_bridge_set_datapath_type(br, net->datapath_type);
  if (net->fail_mode != NULL)
    ovsrec_bridge_set_fail_mode(br, net->fail_mode);
  {
    const struct smap ids = SMAP_CONST1(&ids, KEY_CREATED, net->name);
    ovsrec_bridge_set_external_ids(br, &ids);
  }
  local = add_port(txn, NULL, net->bridge, "internal", net->mtu);
  ovsrec_bridge_set_ports(br, &local, 1);
  ovsrec_open_vswitch_update_bridges_addvalue(ovs, br);
  e->created = 1;
  if (net->uplink != NULL) {
    struct ovsrec_port *up = add_port(txn, NULL, net->uplink, NULL, 0);
    const struct smap ids = SMAP_CONST1(&ids, KEY_UPLINK, net->name);
    ovsrec_port_set_external_ids(up, &ids);
    if (net->n_trunks > 0)
      ovsrec_port_set_trunks(up, net->trunks, net->n_trunks);
    ovsrec_bridge_update_ports_addvalue(br, up);
    e->uplink_created = 1;
  }
  return 0;
}

static int check_bridge(const struct rows_net *net,
                        const struct ovsrec_bridge *br, char *err) {
  const char *dp = br->datapath_type[0] ? br->datapath_type : "system";

  if (net->datapath_type != NULL && strcmp(dp, net->datapath_type) != 0)
    return fail(err, VMH_EINVAL,
                "network %s: OVS bridge %s has datapath_type %s, the config "
                "says %s; change the key or the bridge",
                net->name, net->bridge, dp, net->datapath_type);
  return 0;
}

static int ensure_uplink(struct rows_ensure *e, struct ovsdb_idl *idl,
                         struct ovsdb_idl_txn *txn,
                         const struct ovsrec_bridge *br, char *err) {
  const struct rows_net *net = e->net;
  const struct ovsrec_port *p = find_port(idl, net->uplink);
  const struct ovsrec_bridge *owner;
  struct ovsrec_port *up;

  if (p != NULL) {
    owner = bridge_of(idl, p);
    if (owner == br)
      return ODB_DONE; /* as the admin or an earlier start left it */
    return fail(err, VMH_EBUSY,
                "network %s: uplink %s is already a port of OVS bridge %s",
                net->name, net->uplink, owner ? owner->name : "(none)");
  }
  up = add_port(txn, br, net->uplink, NULL, 0);
  {
    const struct smap ids = SMAP_CONST1(&ids, KEY_UPLINK, net->name);
    ovsrec_port_set_external_ids(up, &ids);
  }
  if (net->n_trunks > 0)
    ovsrec_port_set_trunks(up, net->trunks, net->n_trunks);
  e->uplink_created = 1;
  return 0;
}

int rows_ensure(void *arg, struct ovsdb_idl *idl, struct ovsdb_idl_txn *txn,
                char *err) {
  struct rows_ensure *e = arg;
  const struct ovsrec_bridge *br = find_bridge(idl, e->net->bridge);
  int rc;

  e->created = e->uplink_created = 0;
  if (br == NULL)
    return make_bridge(e, idl, txn, err);
  if ((rc = check_bridge(e->net, br, err)) < 0)
    return rc;
  if (e->net->uplink == NULL)
    return ODB_DONE;
  return ensure_uplink(e, idl, txn, br, err);
}

/* ---- Ports ----------------------------------------------------------- */

static void record_key(const struct rows_net *net, const char *ifname,
                       char *out, size_t size) {
  snprintf(out, size, KEY_RECORD "%s:%s", net->name, ifname);
}

/* The port p describes, if iface is one of this network's tap ports: its
 * identities valid and its name the one they give. */
static int parse_iface(const struct rows_net *net,
                       const struct ovsrec_interface *iface,
                       struct rows_port *p) {
  const char *owner = smap_get(&iface->external_ids, KEY_NETWORK);
  const char *vm_id = smap_get(&iface->external_ids, "vm-id");
  const char *nic = smap_get(&iface->external_ids, KEY_NIC);
  const char *mac = smap_get(&iface->external_ids, "attached-mac");

  memset(p, 0, sizeof *p);
  if (owner == NULL || strcmp(owner, net->name) != 0 ||
      !net_valid_vm_id(vm_id) || !net_valid_nic(nic) || mac == NULL ||
      net_parse_mac(mac, p->mac) != 1)
    return -1;
  net_port_ifname(ROWS_PREFIX, vm_id, nic, p->ifname);
  if (strcmp(p->ifname, iface->name) != 0)
    return -1;
  memcpy(p->vm_id, vm_id, VMH_ID_LEN + 1);
  snprintf(p->nic, sizeof p->nic, "%s", nic);
  rows_iface_id(p->vm_id, p->nic, p->iface_id);
  p->tap = 1;
  return 0;
}

/* This network's tap port p (its single Interface parsed into out). */
static int our_port(const struct rows_net *net, const struct ovsrec_port *port,
                    struct rows_port *out) {
  if (port->n_interfaces != 1 || parse_iface(net, port->interfaces[0], out) < 0)
    return 0;
  out->vlan = port->n_tag == 1 ? (uint32_t)port->tag[0] : 0;
  return 1;
}

static int bind_tap(const struct rows_net *net, struct ovsdb_idl *idl,
                    struct ovsdb_idl_txn *txn, const struct ovsrec_bridge *br,
                    const struct rows_port *p) {
  struct ovsrec_port *port;
  struct smap ids = SMAP_INITIALIZER(&ids);

  (void)idl;
  port = add_port(txn, br, p->ifname, NULL, net->mtu);
  if (p->vlan != 0) {
    int64_t tag = p->vlan;
    ovsrec_port_set_tag(port, &tag, 1);
  }
  smap_add(&ids, "iface-id", p->iface_id);
  smap_add(&ids, "attached-mac", p->mac);
  smap_add(&ids, "vm-id", p->vm_id);
  smap_add(&ids, KEY_NETWORK, net->name);
  smap_add(&ids, KEY_NIC, p->nic);
  ovsrec_interface_set_external_ids(port->interfaces[0], &ids);
  smap_destroy(&ids);
  return 0;
}

int rows_bind(void *arg, struct ovsdb_idl *idl, struct ovsdb_idl_txn *txn,
              char *err) {
  struct rows_bind *b = arg;
  const struct rows_net *net = b->net;
  const struct rows_port *p = b->port;
  const struct ovsrec_bridge *br;
  const struct ovsrec_port *old;
  struct rows_port other;
  char key[256], value[256];
  int rc;

  if ((br = need_bridge(idl, net, err, &rc)) == NULL)
    return rc;
  record_key(net, p->ifname, key, sizeof key);
  old = find_port(idl, p->ifname);
  if (smap_get(&br->external_ids, key) != NULL ||
      (old != NULL && our_port(net, old, &other) &&
       strcmp(other.vm_id, p->vm_id) == 0 && strcmp(other.nic, p->nic) == 0))
    return fail(err, VMH_EEXIST,
                "network %s already has a port for VM %s NIC %s (%s)",
                net->name, p->vm_id, p->nic, p->ifname);
  if (old != NULL)
    return fail(err, VMH_EBUSY,
                "OVS port %s exists and is not this NIC's; delete it or the "
                "VM whose port it is",
                p->ifname);
  if (b->probe)
    return ODB_DONE;
  if (p->tap)
    return bind_tap(net, idl, txn, br, p);
  snprintf(value, sizeof value, NET_PORT_FIELDS_FMT, p->vm_id, p->mac, p->vlan,
           p->nic);
  ovsrec_bridge_update_external_ids_setkey(br, key, value);
  return 0;
}

/* Remove port from whichever bridge holds it (and with it its
 * Interface). */
static void drop_port(struct ovsdb_idl *idl, const struct ovsrec_port *port) {
  const struct ovsrec_bridge *br = bridge_of(idl, port);
  size_t i;

  if (br != NULL)
    ovsrec_bridge_update_ports_delvalue(br, port);
  for (i = 0; i < port->n_interfaces; i++)
    ovsrec_interface_delete(port->interfaces[i]);
  ovsrec_port_delete(port);
}

int rows_unbind(void *arg, struct ovsdb_idl *idl, struct ovsdb_idl_txn *txn,
                char *err) {
  struct rows_unbind *u = arg;
  const struct ovsrec_bridge *br;
  const struct ovsrec_port *port;
  struct rows_port p;
  char key[256];

  (void)txn;
  net_port_ifname(ROWS_PREFIX, u->vm_id, u->nic, u->ifname);
  u->was_tap = 0;
  port = find_port(idl, u->ifname);
  if (port != NULL && our_port(u->net, port, &p) &&
      strcmp(p.vm_id, u->vm_id) == 0 && strcmp(p.nic, u->nic) == 0) {
    drop_port(idl, port);
    u->was_tap = 1;
    return 0;
  }
  record_key(u->net, u->ifname, key, sizeof key);
  br = find_bridge(idl, u->net->bridge);
  if (br != NULL && smap_get(&br->external_ids, key) != NULL) {
    ovsrec_bridge_update_external_ids_delkey(br, key);
    return 0;
  }
  return fail(err, VMH_ENOENT, "no port for VM %s NIC %s on network %s",
              u->vm_id, u->nic, u->net->name);
}

static int list_push(struct rows_list *l, size_t *cap,
                     const struct rows_port *p) {
  if (l->n == *cap) {
    size_t c = *cap ? *cap * 2 : 16;
    struct rows_port *v = realloc(l->v, c * sizeof *v);
    if (v == NULL)
      return -1;
    l->v = v;
    *cap = c;
  }
  l->v[l->n++] = *p;
  return 0;
}

/* The records of binding-ovs ports in the bridge's external_ids. */
static int list_records(struct rows_list *l, const struct ovsrec_bridge *br,
                        size_t *cap) {
  const struct smap_node *node;
  char prefix[128];
  size_t plen;

  snprintf(prefix, sizeof prefix, KEY_RECORD "%s:", l->net->name);
  plen = strlen(prefix);
  SMAP_FOR_EACH(node, &br->external_ids) {
    struct rows_port p;
    memset(&p, 0, sizeof p);
    if (strncmp(node->key, prefix, plen) != 0 ||
        net_parse_port_fields(node->value, p.vm_id, p.mac, &p.vlan, p.nic) < 0)
      continue;
    net_port_ifname(ROWS_PREFIX, p.vm_id, p.nic, p.ifname);
    if (strcmp(p.ifname, node->key + plen) != 0)
      continue;
    rows_iface_id(p.vm_id, p.nic, p.iface_id);
    if (list_push(l, cap, &p) < 0)
      return -1;
  }
  return 0;
}

int rows_list(void *arg, struct ovsdb_idl *idl, struct ovsdb_idl_txn *txn,
              char *err) {
  struct rows_list *l = arg;
  const struct ovsrec_bridge *br;
  const struct ovsrec_port *port;
  struct rows_port p;
  size_t cap = 0;

  (void)txn;
  l->v = NULL;
  l->n = 0;
  OVSREC_PORT_FOR_EACH(port, idl)
  if (our_port(l->net, port, &p) && list_push(l, &cap, &p) < 0)
    goto nomem;
  br = find_bridge(idl, l->net->bridge);
  if (br != NULL && list_records(l, br, &cap) < 0)
    goto nomem;
  return ODB_DONE;
nomem:
  free(l->v);
  l->v = NULL;
  l->n = 0;
  return fail(err, VMH_ENOMEM, "out of memory");
}

int rows_info(void *arg, struct ovsdb_idl *idl, struct ovsdb_idl_txn *txn,
              char *err) {
  struct rows_info *in = arg;
  const struct ovsrec_bridge *br = find_bridge(idl, in->net->bridge);

  (void)txn;
  (void)err;
  in->exists = br != NULL;
  in->n_ports = br ? (uint32_t)br->n_ports : 0;
  return ODB_DONE;
}

/* ---- Teardown -------------------------------------------------------- */

static int owned_by(const struct smap *ids, const char *key,
                    const char *network) {
  const char *v = smap_get(ids, key);
  return v != NULL && strcmp(v, network) == 0;
}

static void drop_records(struct rows_teardown *t,
                         const struct ovsrec_bridge *br) {
  const struct smap_node *node;
  char prefix[128];

  snprintf(prefix, sizeof prefix, KEY_RECORD "%s:", t->net->name);
  SMAP_FOR_EACH(node, &br->external_ids)
  if (strncmp(node->key, prefix, strlen(prefix)) == 0) {
    ovsrec_bridge_update_external_ids_delkey(br, node->key);
    t->n_records++;
  }
}

int rows_teardown(void *arg, struct ovsdb_idl *idl, struct ovsdb_idl_txn *txn,
                  char *err) {
  struct rows_teardown *t = arg;
  const struct rows_net *net = t->net;
  const struct ovsrec_open_vswitch *ovs = ovsrec_open_vswitch_first(idl);
  const struct ovsrec_bridge *br = find_bridge(idl, net->bridge);
  const struct ovsrec_port *port;
  struct rows_port p;
  size_t n = 0, cap = 0;
  int changed = 0;

  (void)txn;
  free(t->taps);
  t->taps = NULL;
  t->n_taps = t->n_records = 0;
  t->others = 0;
  t->fate = "not present";
  OVSREC_PORT_FOR_EACH(port, idl) {
    int ours = our_port(net, port, &p);
    if (!ours && !(port->n_interfaces == 1 &&
                   owned_by(&port->external_ids, KEY_UPLINK, net->name))) {
      if (br != NULL && bridge_of(idl, port) == br &&
          strcmp(port->name, net->bridge) != 0)
        t->others++;
      continue;
    }
    if (ours) {
      if (n == cap) {
        size_t c = cap ? cap * 2 : 16;
        char(*v)[NET_IFNAME_MAX + 1] = realloc(t->taps, c * sizeof *v);
        if (v == NULL)
          return fail(err, VMH_ENOMEM, "out of memory");
        t->taps = v;
        cap = c;
      }
      snprintf(t->taps[n++], NET_IFNAME_MAX + 1, "%s", p.ifname);
    }
    drop_port(idl, port);
    changed = 1;
  }
  t->n_taps = n;
  if (br != NULL) {
    drop_records(t, br);
    changed |= t->n_records > 0;
    if (owned_by(&br->external_ids, KEY_CREATED, net->name) && ovs != NULL) {
      ovsrec_open_vswitch_update_bridges_delvalue(ovs, br);
      ovsrec_bridge_delete(br);
      t->fate = "deleted";
      changed = 1;
    } else {
      t->fate = "left (not made by this plugin)";
    }
  }
  return changed ? 0 : ODB_DONE;
}
