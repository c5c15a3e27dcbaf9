/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* network-ovs — NICs on an Open vSwitch bridge, over OVSDB through
 * libopenvswitch's C IDL (the library ovs-vsctl uses; no subprocess).
 *
 * open() connects to the OVSDB server (a thread of the instance drives the
 * IDL: ovs-db.c), creates the bridge if missing (or adopts an existing
 * one) and adds the uplink as a trunk port.  A port is either a name
 * handed to the hypervisor with the bridge, an interface-id and the VLAN
 * tag (binding: ovs — libvirt adds it with <virtualport
 * type='openvswitch'>), or a persistent tap the plugin makes and adds to
 * the bridge itself with its tag and the identities SDN controllers read
 * (binding: tap).  The database is the record of every port (ovs-rows.h),
 * so port_list and port_unbind work after a restart of vmhostd; close()
 * leaves the bridge and every port as they are.
 *
 * `ensure: absent` removes what this plugin made instead (its ports, taps
 * and records, the uplink port it added, the bridge if it made it); the
 * instance then stays open serving nothing.
 *
 * Config keys: see etc/plugins/ovs.yaml.
 */
#include <config.h>

#define VMH_THREAD_MODEL VMH_THREAD_SERIALIZE_INSTANCE
#include <vmhost/vmhost-plugin.h>

#include "netcommon.h"
#include "ovs-db.h"
#include "ovs-rows.h"

#include <errno.h>
#include <inttypes.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define VLAN_MAX 4094

struct ovsp {
  const struct vmh_host *host;
  const struct vmh_instance *inst;
  struct rows_net net;
  const char *remote;
  int64_t timeout_s;
  int wait_applied; /* wait for ovs-vswitchd to apply each change */
  uint32_t binding;
  uint32_t default_vlan;
  int absent;
  unsigned char allowed[(VLAN_MAX + 8) / 8]; /* all set: any VLAN */
  int64_t *trunks;                           /* owns net.trunks */
  char vlans_text[128]; /* the allowed set as configured, for messages */
  struct odb *db;       /* NULL when absent */
};

static const char *name_of(struct ovsp *o) {
  return o->host->instance_name(o->inst);
}

static int vlan_allowed(const struct ovsp *o, uint32_t vlan) {
  return vlan == 0 || (o->allowed[vlan / 8] >> (vlan % 8)) & 1;
}

/* A job on the OVSDB thread; its failure becomes this call's message. */
static int run(struct ovsp *o, odb_build_fn fn, void *arg, int wait_applied,
               int *committed) {
  char err[ODB_ERR_LEN];
  int rc =
      odb_run(o->db, fn, arg, wait_applied && o->wait_applied, err, committed);

  return rc < 0 ? vmh_fail(o->host, rc, "%s", err) : 0;
}

/* ---- Taps ---------------------------------------------------------------- */

/* Bring a tap up, at the network's MTU if it has one. */
static int tap_up(struct ovsp *o, const char *name) {
  struct ifreq ifr;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;

  if (fd < 0)
    return vmh_fail(o->host, VMH_EIO, "cannot open a socket: %s",
                    strerror(errno));
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
  if (o->net.mtu > 0) {
    ifr.ifr_mtu = (int)o->net.mtu;
    if (ioctl(fd, SIOCSIFMTU, &ifr) < 0) {
      rc = vmh_fail(o->host, VMH_EIO,
                    "cannot set tap %s's MTU to %" PRId64 ": %s", name,
                    o->net.mtu, strerror(errno));
      goto cleanup;
    }
  }
  if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0 ||
      (ifr.ifr_flags |= IFF_UP, ioctl(fd, SIOCSIFFLAGS, &ifr)) < 0)
    rc = vmh_fail(o->host, VMH_EIO, "cannot bring tap %s up: %s", name,
                  strerror(errno));
cleanup:
  close(fd);
  return rc;
}

static void tap_remove(struct ovsp *o, const char *name) {
  int err = net_tap_delete(name);

  if (err < 0 && err != -ENODEV)
    o->host->log(o->inst, VMH_LOG_WARN, "cannot delete tap %s: %s%s", name,
                 strerror(-err),
                 err == -EBUSY ? " (a hypervisor still holds it)" : "");
}

/* ---- Operations ---------------------------------------------------------- */

static int ovs_health(void *handle, uint32_t flags) {
  struct ovsp *o = handle;
  struct rows_info in = {.net = &o->net};
  int rc;

  if (vmh_check_flags(o->host, "health", flags, 0) < 0)
    return VMH_EINVAL;
  if (o->absent)
    return 0; /* nothing to serve, nothing to fail */
  if ((rc = run(o, rows_info, &in, 0, NULL)) < 0)
    return rc;
  if (!in.exists)
    return vmh_fail(o->host, VMH_EIO,
                    "OVS bridge %s is gone from the database; restart "
                    "vmhostd to make it again",
                    o->net.bridge);
  return 0;
}

static int ovs_info(void *handle, vmh_network_info_fn fn, void *opaque,
                    uint32_t flags) {
  struct ovsp *o = handle;
  struct vmh_network_info info = {0};
  struct rows_info in = {.net = &o->net};
  int rc;

  if (vmh_check_flags(o->host, "info", flags, 0) < 0)
    return VMH_EINVAL;
  if (fn == NULL)
    return vmh_fail(o->host, VMH_EINVAL, "info: no visitor");
  info.struct_size = sizeof info;
  info.bridge = o->net.bridge;
  info.mtu = (uint32_t)o->net.mtu;
  if (!o->absent) {
    if ((rc = run(o, rows_info, &in, 0, NULL)) < 0)
      return rc;
    info.up = in.exists ? 1 : 0;
    info.n_ports = in.n_ports;
  }
  return fn(opaque, &info);
}

static void binding_of(const struct ovsp *o, const struct rows_port *p,
                       struct vmh_nic_binding *out) {
  memset(out, 0, sizeof *out);
  out->struct_size = sizeof *out;
  out->type = p->tap ? VMH_BINDING_TAP : VMH_BINDING_OVS;
  out->bridge = o->net.bridge;
  out->port = p->ifname;
  out->interface_id = p->iface_id;
  out->tap = p->tap ? p->ifname : NULL;
  out->mac = p->mac;
  /* A tap port carries the tag in OVS (the guest is untagged); with
   * binding: ovs the hypervisor adds the port and sets the tag itself. */
  out->vlan = p->tap ? 0 : p->vlan;
  out->mtu = (uint32_t)o->net.mtu;
}

/* The port a request asks for, checked: VLAN (the default when none) in
 * the allowed set, MAC valid or derived. */
static int port_of_request(struct ovsp *o, const struct vmh_port_request *req,
                           struct rows_port *p) {
  uint32_t vlan = req->vlan ? req->vlan : o->default_vlan;

  if (vlan > VLAN_MAX)
    return vmh_fail(o->host, VMH_EINVAL,
                    "NIC %s: VLAN %" PRIu32 " is not 0 (untagged) to 4094",
                    req->nic_name, vlan);
  if (!vlan_allowed(o, vlan))
    return vmh_fail(o->host, VMH_EINVAL,
                    "NIC %s: VLAN %" PRIu32
                    " is not allowed on network %s (vlans: %s)",
                    req->nic_name, vlan, name_of(o), o->vlans_text);
  memset(p, 0, sizeof *p);
  memcpy(p->vm_id, req->vm_id, VMH_ID_LEN);
  snprintf(p->nic, sizeof p->nic, "%s", req->nic_name);
  p->vlan = vlan;
  p->tap = o->binding == VMH_BINDING_TAP;
  net_port_ifname(ROWS_PREFIX, p->vm_id, p->nic, p->ifname);
  rows_iface_id(p->vm_id, p->nic, p->iface_id);
  if (req->mac == NULL) {
    net_format_mac((uint32_t)net_hash_port(p->vm_id, p->nic), p->mac);
    return 0;
  }
  if (net_parse_mac(req->mac, p->mac) <= 0)
    return vmh_fail(o->host, VMH_EINVAL,
                    "NIC %s: MAC '%s' is not a unicast address like "
                    "52:54:00:12:34:56",
                    req->nic_name, req->mac);
  return 0;
}

/* Make the tap of p, and refuse a name someone else's interface holds
 * (after asking the database whether it is this very port: EEXIST). */
static int make_tap(struct ovsp *o, const struct rows_port *p) {
  struct rows_bind probe = {.net = &o->net, .port = p, .probe = 1};
  const char *what;
  int rc, err;

  if (if_nametoindex(p->ifname) != 0) {
    if ((rc = run(o, rows_bind, &probe, 0, NULL)) < 0)
      return rc;
    return vmh_fail(o->host, VMH_EBUSY,
                    "interface %s exists and is not this port's tap; delete "
                    "it or the VM whose tap it is",
                    p->ifname);
  }
  if ((err = net_tap_create(p->ifname, &what)) < 0)
    return vmh_fail(o->host, err == -EBUSY ? VMH_EBUSY : VMH_EIO,
                    "cannot %s for tap %s: %s", what, p->ifname,
                    strerror(-err));
  if ((rc = tap_up(o, p->ifname)) < 0)
    tap_remove(o, p->ifname);
  return rc;
}

/* Undo a bind whose later step failed: the rows (if they were written)
 * and the tap. */
static void undo_bind(struct ovsp *o, const struct rows_port *p,
                      int committed) {
  struct rows_unbind u = {.net = &o->net, .vm_id = p->vm_id, .nic = p->nic};
  char err[ODB_ERR_LEN];

  if (committed && odb_run(o->db, rows_unbind, &u, 0, err, NULL) < 0)
    o->host->log(o->inst, VMH_LOG_WARN,
                 "cannot remove the port of VM %s NIC %s again: %s", p->vm_id,
                 p->nic, err);
  if (p->tap)
    tap_remove(o, p->ifname);
}

static int ovs_port_bind(void *handle, const struct vmh_port_request *req,
                         vmh_nic_binding_fn fn, void *opaque, uint32_t flags) {
  struct ovsp *o = handle;
  struct vmh_nic_binding nb;
  struct rows_port p;
  struct rows_bind b = {.net = &o->net, .port = &p};
  int rc, committed = 0;

  if (vmh_check_flags(o->host, "port_bind", flags, 0) < 0)
    return VMH_EINVAL;
  if (req == NULL || fn == NULL || !net_valid_vm_id(req->vm_id) ||
      !net_valid_nic(req->nic_name))
    return vmh_fail(o->host, VMH_EINVAL,
                    "port_bind: needs a VM id (UUID) and a NIC name");
  if (o->absent)
    return vmh_fail(o->host, VMH_EINVAL,
                    "network %s is configured ensure: absent; it binds no port",
                    name_of(o));
  if ((rc = port_of_request(o, req, &p)) < 0)
    return rc;
  if (p.tap && (rc = make_tap(o, &p)) < 0)
    return rc;
  rc = run(o, rows_bind, &b, p.tap, &committed);
  if (rc == 0) {
    binding_of(o, &p, &nb);
    rc = fn(opaque, &nb);
  }
  if (rc < 0) {
    /* The core will not have the port: nothing of it may remain. */
    undo_bind(o, &p, committed);
    return rc;
  }
  o->host->log(o->inst, VMH_LOG_INFO,
               "bound VM %s NIC %s: %s %s on %s, mac %s, vlan %" PRIu32,
               p.vm_id, p.nic, p.tap ? "tap" : "port", p.ifname, o->net.bridge,
               p.mac, p.vlan);
  return 0;
}

static int ovs_port_unbind(void *handle, const char *vm_id,
                           const char *nic_name, uint32_t flags) {
  struct ovsp *o = handle;
  struct rows_unbind u = {.net = &o->net, .vm_id = vm_id, .nic = nic_name};
  int rc;

  if (vmh_check_flags(o->host, "port_unbind", flags, 0) < 0)
    return VMH_EINVAL;
  if (!net_valid_vm_id(vm_id) || !net_valid_nic(nic_name))
    return vmh_fail(o->host, VMH_EINVAL,
                    "port_unbind: needs a VM id (UUID) and a NIC name");
  if (o->absent) /* open() removed every port */
    return vmh_fail(o->host, VMH_ENOENT,
                    "no port for VM %s NIC %s (network %s is configured "
                    "ensure: absent)",
                    vm_id, nic_name, name_of(o));
  if ((rc = run(o, rows_unbind, &u, 1, NULL)) < 0)
    return rc;
  if (u.was_tap)
    tap_remove(o, u.ifname);
  o->host->log(o->inst, VMH_LOG_INFO, "unbound VM %s NIC %s: %s %s removed",
               vm_id, nic_name, u.was_tap ? "tap" : "port record", u.ifname);
  return 0;
}

static int ovs_port_list(void *handle, vmh_port_fn fn, void *opaque,
                         uint32_t flags) {
  struct ovsp *o = handle;
  struct rows_list l = {.net = &o->net};
  size_t i;
  int rc;

  if (vmh_check_flags(o->host, "port_list", flags, 0) < 0)
    return VMH_EINVAL;
  if (fn == NULL)
    return vmh_fail(o->host, VMH_EINVAL, "port_list: no visitor");
  if (o->absent)
    return 0;
  if ((rc = run(o, rows_list, &l, 0, NULL)) < 0)
    return rc;
  for (i = 0; rc == 0 && i < l.n; i++) {
    struct vmh_nic_binding nb;
    binding_of(o, &l.v[i], &nb);
    rc = fn(opaque, l.v[i].vm_id, l.v[i].nic, &nb);
  }
  free(l.v);
  return rc;
}

/* ---- Open and close ------------------------------------------------------ */

static void ovs_close(void *handle) {
  struct ovsp *o = handle;

  if (o == NULL)
    return;
  /* The bridge and its ports stay: VMs keep their network across a
   * restart of vmhostd. */
  odb_close(o->db);
  free(o->trunks);
  free(o);
}

static int open_present(struct ovsp *o) {
  struct rows_ensure e = {.net = &o->net};
  int rc;

  if ((rc = run(o, rows_ensure, &e, 1, NULL)) < 0)
    return rc;
  o->host->log(o->inst, VMH_LOG_INFO, "%s OVS bridge %s%s%s (OVSDB %s)",
               e.created ? "created" : "adopted", o->net.bridge,
               e.uplink_created ? ", added uplink " : "",
               e.uplink_created ? o->net.uplink : "", o->remote);
  return 0;
}

/* ensure: absent.  The rows first (one transaction), then the taps they
 * named; repeated, it finds nothing left and says so. */
static int teardown(struct ovsp *o) {
  struct rows_teardown t = {.net = &o->net};
  size_t i;
  int rc;

  rc = run(o, rows_teardown, &t, 1, NULL);
  if (rc == 0) {
    for (i = 0; i < t.n_taps; i++)
      tap_remove(o, t.taps[i]);
    if (t.others > 0)
      o->host->log(
          o->inst, VMH_LOG_WARN,
          "bridge %s had %u port%s not made by this plugin%s", o->net.bridge,
          t.others, t.others == 1 ? "" : "s",
          strcmp(t.fate, "deleted") == 0 ? "; removed with it" : "; left");
    o->host->log(o->inst, VMH_LOG_INFO,
                 "network %s removed (ensure: absent): %zu tap port%s and "
                 "%zu port record%s removed, bridge %s %s",
                 name_of(o), t.n_taps, t.n_taps == 1 ? "" : "s", t.n_records,
                 t.n_records == 1 ? "" : "s", o->net.bridge, t.fate);
  }
  free(t.taps);
  /* Nothing to serve: no connection kept. */
  odb_close(o->db);
  o->db = NULL;
  return rc;
}

/* One element of `vlans`: N or "N-M". */
static int add_vlans(struct ovsp *o, const struct vmh_config *node) {
  const char *s;
  unsigned lo, hi;
  int n = 0, rc;

  if ((rc = o->host->config_string(node, NULL, NULL, &s, 0)) < 0)
    return rc;
  if (sscanf(s, "%u%n", &lo, &n) == 1 && s[n] == '\0') {
    hi = lo;
  } else if (sscanf(s, "%u-%u%n", &lo, &hi, &n) != 2 || s[n] != '\0') {
    lo = 0;
    hi = VLAN_MAX + 1;
  }
  if (lo < 1 || hi > VLAN_MAX || lo > hi)
    return vmh_fail(o->host, VMH_EINVAL,
                    "%s: vlans: '%s' is not a VLAN (1..4094) or a range of "
                    "them (\"100-199\")",
                    o->host->config_where(node), s);
  for (; lo <= hi; lo++)
    o->allowed[lo / 8] |= (unsigned char)(1u << (lo % 8));
  if (strlen(o->vlans_text) + strlen(s) + 3 < sizeof o->vlans_text)
    snprintf(o->vlans_text + strlen(o->vlans_text),
             sizeof o->vlans_text - strlen(o->vlans_text), "%s%s",
             o->vlans_text[0] ? ", " : "", s);
  return 0;
}

/* The allowed VLANs, and the uplink's trunks made of them. */
static int read_vlans(struct ovsp *o, const struct vmh_config *config) {
  const struct vmh_config *list, *node;
  uint32_t n, i;
  size_t k = 0;
  int rc;

  if ((rc = o->host->config_list(config, "vlans", &list, &n, 0)) < 0)
    return rc;
  if (n == 0) {
    memset(o->allowed, 0xff, sizeof o->allowed);
    snprintf(o->vlans_text, sizeof o->vlans_text, "any");
    return 0;
  }
  for (i = 0; i < n; i++)
    if ((rc = o->host->config_at(list, i, &node)) < 0 ||
        (rc = add_vlans(o, node)) < 0)
      return rc;
  o->trunks = calloc(VLAN_MAX + 1, sizeof *o->trunks);
  if (o->trunks == NULL)
    return vmh_fail(o->host, VMH_ENOMEM, "out of memory");
  /* VLAN 0: untagged frames, which untagged NICs send and get. */
  for (i = 0; i <= VLAN_MAX; i++)
    if (vlan_allowed(o, i))
      o->trunks[k++] = i;
  o->net.trunks = o->trunks;
  o->net.n_trunks = k;
  return 0;
}

static int one_of(struct ovsp *o, const struct vmh_config *config,
                  const char *key, const char *value, const char *a,
                  const char *b) {
  if (value == NULL || strcmp(value, a) == 0 || strcmp(value, b) == 0)
    return 0;
  return vmh_fail(o->host, VMH_EINVAL, "%s: %s '%s' is not %s or %s",
                  o->host->config_key_where(config, key), key, value, a, b);
}

static int read_config(struct ovsp *o, const struct vmh_config *config) {
  const struct vmh_host *host = o->host;
  const char *binding, *ensure, *where;
  int64_t vlan;
  int rc;

  /* Every key is read before anything is checked, so that a typo is
   * reported whatever else is wrong. */
  if ((rc = host->config_string(config, "ovsdb",
                                "unix:/var/run/openvswitch/db.sock", &o->remote,
                                0)) < 0 ||
      (rc = host->config_string(config, "bridge", NULL, &o->net.bridge,
                                VMH_CFG_REQUIRED)) < 0 ||
      (rc = host->config_bool(config, "create", 1, &o->net.create, 0)) < 0 ||
      (rc = host->config_string(config, "datapath_type", NULL,
                                &o->net.datapath_type, 0)) < 0 ||
      (rc = host->config_string(config, "fail_mode", NULL, &o->net.fail_mode,
                                0)) < 0 ||
      (rc = host->config_string(config, "uplink", NULL, &o->net.uplink, 0)) <
          0 ||
      (rc = host->config_int(config, "vlan", 0, VLAN_MAX, 0, &vlan, 0)) < 0 ||
      (rc = read_vlans(o, config)) < 0 ||
      (rc = host->config_int(config, "mtu", 68, 65535, 0, &o->net.mtu, 0)) <
          0 ||
      (rc = host->config_string(config, "binding", "ovs", &binding, 0)) < 0 ||
      (rc = host->config_int(config, "timeout", 1, 3600, 10, &o->timeout_s,
                             0)) < 0 ||
      (rc = host->config_bool(config, "wait_vswitchd", 1, &o->wait_applied,
                              0)) < 0 ||
      (rc = host->config_string(config, "ensure", "present", &ensure, 0)) < 0)
    return rc;
  where = host->config_where(config);
  o->default_vlan = (uint32_t)vlan;
  char h[256];
  unsigned port;
  const char *why = NULL;
  if ((strncmp(o->remote, "unix:", 5) != 0 &&
       strncmp(o->remote, "tcp:", 4) != 0) ||
      (strncmp(o->remote, "tcp:", 4) == 0 &&
       net_split_hostport(o->remote + 4, h, sizeof h, 0, &port, &why) < 0))
    return vmh_fail(host, VMH_EINVAL,
                    "%s: ovsdb '%s' is not unix:PATH or tcp:HOST:PORT%s%s",
                    host->config_key_where(config, "ovsdb"), o->remote,
                    why ? ": " : "", why ? why : "");
  if (!net_valid_ifname(o->net.bridge))
    return vmh_fail(host, VMH_EINVAL,
                    "%s: bridge '%s' is not an interface name (1..15 "
                    "printable characters, no '/', ':' or blanks)",
                    where, o->net.bridge);
  if (o->net.uplink != NULL && (!net_valid_ifname(o->net.uplink) ||
                                strcmp(o->net.uplink, o->net.bridge) == 0))
    return vmh_fail(host, VMH_EINVAL,
                    "%s: uplink '%s' is not an interface name other than the "
                    "bridge's",
                    where, o->net.uplink);
  if ((rc = one_of(o, config, "datapath_type", o->net.datapath_type, "system",
                   "netdev")) < 0 ||
      (rc = one_of(o, config, "fail_mode", o->net.fail_mode, "standalone",
                   "secure")) < 0 ||
      (rc = one_of(o, config, "binding", binding, "ovs", "tap")) < 0 ||
      (rc = one_of(o, config, "ensure", ensure, "present", "absent")) < 0)
    return rc;
  if (!vlan_allowed(o, o->default_vlan))
    return vmh_fail(
        host, VMH_EINVAL, "%s: vlan %" PRIu32 " is not in vlans (%s)",
        host->config_key_where(config, "vlan"), o->default_vlan, o->vlans_text);
  o->binding = strcmp(binding, "tap") == 0 ? VMH_BINDING_TAP : VMH_BINDING_OVS;
  o->absent = strcmp(ensure, "absent") == 0;
  return 0;
}

static int ovs_open(const struct vmh_host *host,
                    const struct vmh_instance *inst,
                    const struct vmh_config *config, void **ret_handle,
                    uint32_t flags) {
  struct ovsp *o;
  int rc;

  if (vmh_check_flags(host, "open", flags, VMH_OPEN_CHECK_ONLY) < 0)
    return VMH_EINVAL;
  o = calloc(1, sizeof *o);
  if (o == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  o->host = host;
  o->inst = inst;
  o->net.name = host->instance_name(inst);
  if ((rc = read_config(o, config)) < 0)
    goto fail;
  if (!(flags & VMH_OPEN_CHECK_ONLY)) {
    if ((rc = odb_open(host, inst, o->remote, o->timeout_s * 1000, &o->db)) < 0)
      goto fail;
    if ((rc = o->absent ? teardown(o) : open_present(o)) < 0)
      goto fail;
  }
  *ret_handle = o;
  return 0;
fail:
  ovs_close(o);
  return rc;
}

static struct vmh_network_ops ops = {
    .open = ovs_open,
    .close = ovs_close,
    .health = ovs_health,
    .info = ovs_info,
    .port_bind = ovs_port_bind,
    .port_unbind = ovs_port_unbind,
    .port_list = ovs_port_list,
};

static struct vmh_plugin plugin = {
    .kind = VMH_KIND_NETWORK,
    .name = "ovs",
    .version = VMH_PACKAGE_VERSION,
    .description = "Open vSwitch network (OVSDB IDL), ovs or tap ports",
    .network = &ops,
};

VMH_PLUGIN_REGISTER(plugin)
