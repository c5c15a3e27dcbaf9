/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* network-bridge — NICs on a Linux bridge, over netlink (libnl-route-3).
 *
 * open() creates the bridge (or adopts an existing one), sets it up, applies
 * the MTU and VLAN filtering and enslaves an optional uplink.  A port is
 * either the bridge's name (binding: bridge — the hypervisor, libvirt say,
 * makes its own tap) or a persistent tap device the plugin makes and
 * enslaves (binding: tap — for hypervisors that open a tap by name).
 *
 * The host is the record of tap ports: each tap carries an ifalias
 * "vmhost <vm_id> <mac> <vlan> <nic>", so port_list and port_unbind work
 * after a restart without any file.  Ports of binding: bridge have nothing
 * on the host, so they are kept as one small file each under state_dir.
 * close() leaves the bridge and every port as they are.
 *
 * `ensure: absent` removes the network instead: open() deletes this
 * plugin's taps on the bridge and its port records, and the bridge itself
 * only if the "created" marker in state_dir says this plugin made it (an
 * adopted bridge stays, its uplink too, enslaved); the instance then stays
 * open serving nothing: port_bind is refused, info says down, health OK.
 *
 * Config keys: see etc/plugins/bridge.yaml.
 */
#include <config.h>

#define VMH_THREAD_MODEL VMH_THREAD_SERIALIZE_INSTANCE
#include <vmhost/vmhost-plugin.h>

#include "atomicfile.h"
#include "netcommon.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netlink/cache.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define IFNAME_MAX NET_IFNAME_MAX
#define MAC_LEN NET_MAC_LEN
#define TAP_PREFIX "vmh"
#define ALIAS_TAG "vmhost"
#define REC_PREFIX "port-"
#define REC_SUFFIX ".rec"

struct br {
  const struct vmh_host *host;
  const struct vmh_instance *inst;
  const char *bridge; /* borrowed from the config */
  const char *uplink; /* NULL: none */
  int create;         /* make the bridge if it is missing */
  int vlan_filtering;
  int absent;  /* ensure: absent: remove the network, serve nothing */
  int64_t mtu; /* 0: leave as it is */
  uint32_t binding;
  int created; /* this open() made the bridge */
  int ifindex; /* of the bridge */
  struct nl_sock *sk;
};

/* One port as reported to the core. */
struct port {
  char vm_id[VMH_ID_LEN + 1];
  char nic[VMH_NAME_MAX + 1];
  char mac[MAC_LEN + 1];
  char tap[IFNAME_MAX + 1]; /* "" for binding: bridge */
  uint32_t vlan;
};

/* ---- Helpers ------------------------------------------------------------- */

/* A libnl error as a VMH code: the kernel's "no such device" is ENOENT,
 * "exists" is EEXIST, permission is EPERM, the rest means the backend
 * (netlink) failed. */
static int nl_code(int nlerr) {
  switch (-nlerr) {
    case NLE_OBJ_NOTFOUND:
    case NLE_NODEV:
      return VMH_ENOENT;
    case NLE_EXIST:
      return VMH_EEXIST;
    case NLE_PERM:
      return VMH_EPERM;
    case NLE_NOMEM:
      return VMH_ENOMEM;
    case NLE_INVAL:
    case NLE_RANGE:
      return VMH_EINVAL;
    default:
      return VMH_EIO;
  }
}

static int nl_fail(struct br *b, int nlerr, const char *what) {
  return vmh_fail(b->host, nl_code(nlerr), "network %s: %s: %s",
                  b->host->instance_name(b->inst), what, nl_geterror(nlerr));
}

/* A VM id is a UUID in its canonical text form: it becomes part of file
 * names and of the tap's alias, so nothing else is let through. */
static int valid_vm_id(const char *s) {
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

/* The core's NIC names are [a-z][a-z0-9]{0,15}; accept a little more, but
 * nothing that could break a file name, an alias field or a log line. */
static int valid_nic(const char *s) {
  size_t len;

  if (s == NULL || (len = strlen(s)) == 0 || len > VMH_NAME_MAX)
    return 0;
  for (; *s; s++)
    if (*s <= ' ' || *s >= 0x7f || *s == '/')
      return 0;
  return 1;
}

/* "vmh" + the VM id's first 8 hex digits (so that a human can tell whose
 * tap it is) + 4 hex digits of a hash of the full id and the NIC name: 15
 * characters, the most an interface name holds.  A clash of two ports is
 * caught by the alias check in port_bind. */
static void tap_name(const char *vm_id, const char *nic,
                     char out[IFNAME_MAX + 1]) {
  snprintf(out, IFNAME_MAX + 1, TAP_PREFIX "%.8s%04x", vm_id,
           (unsigned)(net_hash_port(vm_id, nic) & 0xffff));
}

/* A MAC derived from the VM id and NIC name: stable for a port across
 * retries, and a hypervisor re-creating the NIC gets the same address. */
static void derive_mac(const char *vm_id, const char *nic,
                       char out[MAC_LEN + 1]) {
  net_format_mac((uint32_t)net_hash_port(vm_id, nic), out);
}

/* The tap's alias: "vmhost <vm_id> <mac> <vlan> <nic>" (nic last: it is
 * the only field of variable length). */
static void make_alias(const struct port *p, char *out, size_t size) {
  snprintf(out, size, ALIAS_TAG " %s %s %" PRIu32 " %s", p->vm_id, p->mac,
           p->vlan, p->nic);
}

static int parse_alias(const char *alias, struct port *p) {
  char vm_id[VMH_ID_LEN + 2], mac[MAC_LEN + 2], nic[VMH_NAME_MAX + 2];
  unsigned vlan;
  int n = 0;

  if (alias == NULL || strncmp(alias, ALIAS_TAG " ", sizeof ALIAS_TAG) != 0 ||
      sscanf(alias + sizeof ALIAS_TAG, "%37s %18s %u %64s%n", vm_id, mac, &vlan,
             nic, &n) != 4 ||
      alias[sizeof ALIAS_TAG + (size_t)n] != '\0' || !valid_vm_id(vm_id) ||
      net_parse_mac(mac, p->mac) != 1 || vlan > 4094 || !valid_nic(nic))
    return -1;
  memcpy(p->vm_id, vm_id, sizeof p->vm_id);
  memcpy(p->nic, nic, strlen(nic) + 1); /* valid_nic: it fits */
  p->vlan = vlan;
  return 0;
}

static void binding_of(const struct br *b, const struct port *p,
                       struct vmh_nic_binding *out) {
  memset(out, 0, sizeof *out);
  out->struct_size = sizeof *out;
  out->type = b->binding;
  out->bridge = b->bridge;
  out->tap = p->tap[0] ? p->tap : NULL;
  out->mac = p->mac;
  /* With a tap the bridge port already carries the VLAN (untagged for the
   * guest); with binding: bridge the hypervisor makes the port and must
   * apply it itself. */
  out->vlan = b->binding == VMH_BINDING_BRIDGE ? p->vlan : 0;
  out->mtu = (uint32_t)b->mtu;
}

/* ---- Netlink ------------------------------------------------------------- */

/* The link named `name`, or NULL (*ret_err = 0 when it does not exist). */
static struct rtnl_link *get_link(struct br *b, const char *name,
                                  int *ret_err) {
  struct rtnl_link *link = NULL;
  int err = rtnl_link_get_kernel(b->sk, 0, name, &link);

  *ret_err = 0;
  if (err < 0 && err != -NLE_OBJ_NOTFOUND && err != -NLE_NODEV)
    *ret_err = err;
  return err < 0 ? NULL : link;
}

/* Send a prepared message and wait for the kernel's ack. */
static int send_msg(struct br *b, struct nl_msg *msg) {
  int err = nl_send_sync(b->sk, msg); /* frees msg */
  return err < 0 ? err : 0;
}

/* IFLA_BR_VLAN_FILTERING: libnl 3.7 has no setter, so RTM_NEWLINK on the
 * existing bridge with IFLA_LINKINFO/IFLA_INFO_DATA (RTM_SETLINK ignores
 * link-kind data). */
static int set_vlan_filtering(struct br *b, int on) {
  struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_index = b->ifindex};
  struct nlattr *info, *data;
  struct nl_msg *msg = nlmsg_alloc_simple(RTM_NEWLINK, 0);

  if (msg == NULL)
    return -NLE_NOMEM;
  if (nlmsg_append(msg, &ifi, sizeof ifi, NLMSG_ALIGNTO) < 0 ||
      (info = nla_nest_start(msg, IFLA_LINKINFO)) == NULL ||
      nla_put_string(msg, IFLA_INFO_KIND, "bridge") < 0 ||
      (data = nla_nest_start(msg, IFLA_INFO_DATA)) == NULL ||
      nla_put_u8(msg, IFLA_BR_VLAN_FILTERING, on ? 1 : 0) < 0) {
    nlmsg_free(msg);
    return -NLE_NOMEM;
  }
  nla_nest_end(msg, data);
  nla_nest_end(msg, info);
  return send_msg(b, msg);
}

/* Add (RTM_SETLINK) or delete (RTM_DELLINK) one VLAN of a bridge port, as
 * `bridge vlan add|del dev PORT vid VID [pvid untagged]` does: AF_BRIDGE,
 * IFLA_AF_SPEC { IFLA_BRIDGE_VLAN_INFO }. */
static int port_vlan(struct br *b, int port_ifindex, int cmd, uint16_t vid,
                     uint16_t vflags) {
  struct ifinfomsg ifi = {.ifi_family = AF_BRIDGE, .ifi_index = port_ifindex};
  struct bridge_vlan_info vi = {.flags = vflags, .vid = vid};
  struct nlattr *spec;
  struct nl_msg *msg = nlmsg_alloc_simple(cmd, 0);

  if (msg == NULL)
    return -NLE_NOMEM;
  if (nlmsg_append(msg, &ifi, sizeof ifi, NLMSG_ALIGNTO) < 0 ||
      (spec = nla_nest_start(msg, IFLA_AF_SPEC)) == NULL ||
      nla_put(msg, IFLA_BRIDGE_VLAN_INFO, sizeof vi, &vi) < 0) {
    nlmsg_free(msg);
    return -NLE_NOMEM;
  }
  nla_nest_end(msg, spec);
  return send_msg(b, msg);
}

/* Bring a link up (and to `mtu`, if not 0). */
static int link_up(struct br *b, struct rtnl_link *link, int64_t mtu) {
  struct rtnl_link *change = rtnl_link_alloc();
  int err;

  if (change == NULL)
    return -NLE_NOMEM;
  if (mtu > 0 && rtnl_link_get_mtu(link) != (unsigned)mtu)
    rtnl_link_set_mtu(change, (unsigned)mtu);
  rtnl_link_set_flags(change, IFF_UP);
  err = rtnl_link_change(b->sk, link, change, 0);
  rtnl_link_put(change);
  return err;
}

static int setup_uplink(struct br *b) {
  struct rtnl_link *up;
  int err, rc = 0;

  up = get_link(b, b->uplink, &err);
  if (up == NULL)
    return err ? nl_fail(b, err, "cannot look up the uplink")
               : vmh_fail(b->host, VMH_ENOENT,
                          "network %s: uplink %s does not exist; name an "
                          "existing interface or remove the key",
                          b->host->instance_name(b->inst), b->uplink);
  if (rtnl_link_get_master(up) != b->ifindex) {
    if (rtnl_link_get_master(up) != 0) {
      rc = vmh_fail(b->host, VMH_EBUSY,
                    "network %s: uplink %s is already a port of another master "
                    "(ifindex %d)",
                    b->host->instance_name(b->inst), b->uplink,
                    rtnl_link_get_master(up));
      goto cleanup;
    }
    if ((err = rtnl_link_enslave_ifindex(b->sk, b->ifindex,
                                         rtnl_link_get_ifindex(up))) < 0) {
      rc = nl_fail(b, err, "cannot enslave the uplink to the bridge");
      goto cleanup;
    }
  }
  if ((err = link_up(b, up, 0)) < 0)
    rc = nl_fail(b, err, "cannot bring the uplink up");
cleanup:
  rtnl_link_put(up);
  return rc;
}

/* Bring the bridge to the config: VLAN filtering, uplink, MTU, up. */
static int setup_bridge(struct br *b, struct rtnl_link *link) {
  int err;

  /* Set either way: an adopted bridge is brought to the config too.  A
   * kernel built without CONFIG_BRIDGE_VLAN_FILTERING refuses the attribute
   * whatever its value; such a bridge cannot filter, so "off" is met. */
  err = set_vlan_filtering(b, b->vlan_filtering);
  if (err == -NLE_OPNOTSUPP && b->vlan_filtering)
    return vmh_fail(b->host, VMH_ENOTSUP,
                    "network %s: this kernel has no bridge VLAN filtering "
                    "(CONFIG_BRIDGE_VLAN_FILTERING); set vlan_filtering: false",
                    b->host->instance_name(b->inst));
  if (err < 0 && err != -NLE_OPNOTSUPP)
    return nl_fail(b, err, "cannot set vlan_filtering on the bridge");
  if (b->uplink != NULL && (err = setup_uplink(b)) < 0)
    return err;
  /* The MTU last, and through a change rather than at creation: only a
   * change marks it as set by the user, and a bridge whose MTU is not
   * follows its ports' (the uplink's 1500 would undo ours). */
  if ((err = link_up(b, link, b->mtu)) < 0)
    return nl_fail(b, err, "cannot set the bridge's MTU and bring it up");
  return 0;
}

/* ---- Tap devices --------------------------------------------------------- */

/* Make a persistent tap: it outlives our fd, so that the hypervisor can
 * open it by name later. */
static int tap_create(struct br *b, const char *name) {
  struct ifreq ifr;
  int fd, rc = 0;

  fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return vmh_fail(b->host, VMH_EIO, "cannot open /dev/net/tun: %s",
                    strerror(errno));
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    rc = vmh_fail(b->host, errno == EBUSY ? VMH_EEXIST : VMH_EIO,
                  "cannot create tap %s: %s", name, strerror(errno));
    goto cleanup;
  }
  if (ioctl(fd, TUNSETPERSIST, 1) < 0) {
    rc = vmh_fail(b->host, VMH_EIO, "cannot make tap %s persistent: %s", name,
                  strerror(errno));
    goto cleanup;
  }
cleanup:
  close(fd);
  return rc;
}

static int tap_delete(struct br *b, const char *name) {
  struct rtnl_link *link = rtnl_link_alloc();
  int err;

  if (link == NULL)
    return -NLE_NOMEM;
  rtnl_link_set_name(link, name);
  err = rtnl_link_delete(b->sk, link);
  rtnl_link_put(link);
  return err;
}

/* The tap's port in the bridge's VLAN table: untagged member of `vlan` and
 * its PVID, and no longer a member of the default VLAN 1 — else every
 * port would still share VLAN 1 and the separation would be void. */
static int tap_set_vlan(struct br *b, int ifindex, uint32_t vlan) {
  int err;

  err = port_vlan(b, ifindex, RTM_SETLINK, (uint16_t)vlan,
                  BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED);
  if (err < 0)
    return err;
  if (vlan != 1) {
    err = port_vlan(b, ifindex, RTM_DELLINK, 1, 0);
    /* The bridge may have default_pvid 0 or another one: nothing to drop. */
    if (err < 0 && err != -NLE_OBJ_NOTFOUND && err != -NLE_NOADDR &&
        err != -NLE_INVAL)
      return err;
  }
  return 0;
}

static int bind_tap(struct br *b, struct port *p) {
  struct rtnl_link *link = NULL, *change = NULL;
  char alias[256];
  int err, rc = 0, made = 0;
  struct port other;

  link = get_link(b, p->tap, &err);
  if (err < 0)
    return nl_fail(b, err, "cannot look up the tap");
  if (link != NULL) {
    if (parse_alias(rtnl_link_get_ifalias(link), &other) == 0 &&
        strcmp(other.vm_id, p->vm_id) == 0 && strcmp(other.nic, p->nic) == 0)
      rc = vmh_fail(b->host, VMH_EEXIST,
                    "network %s already has a port for VM %s NIC %s (tap %s)",
                    b->host->instance_name(b->inst), p->vm_id, p->nic, p->tap);
    else
      rc = vmh_fail(b->host, VMH_EBUSY,
                    "interface %s exists and is not this port's tap; delete it "
                    "or the VM whose tap it is",
                    p->tap);
    goto cleanup;
  }
  if ((rc = tap_create(b, p->tap)) < 0)
    goto cleanup;
  made = 1;
  link = get_link(b, p->tap, &err);
  if (link == NULL) {
    rc = nl_fail(b, err ? err : -NLE_OBJ_NOTFOUND, "tap vanished");
    goto cleanup;
  }
  change = rtnl_link_alloc();
  if (change == NULL) {
    rc = vmh_fail(b->host, VMH_ENOMEM, "out of memory");
    goto cleanup;
  }
  make_alias(p, alias, sizeof alias);
  rtnl_link_set_ifalias(change, alias);
  /* The bridge's MTU first: a smaller port would lower the bridge's. */
  if (b->mtu > 0)
    rtnl_link_set_mtu(change, (unsigned)b->mtu);
  rtnl_link_set_master(change, b->ifindex);
  rtnl_link_set_flags(change, IFF_UP);
  if ((err = rtnl_link_change(b->sk, link, change, 0)) < 0) {
    rc = nl_fail(b, err, "cannot enslave the tap to the bridge");
    goto cleanup;
  }
  if (p->vlan != 0 &&
      (err = tap_set_vlan(b, rtnl_link_get_ifindex(link), p->vlan)) < 0) {
    rc = nl_fail(b, err, "cannot set the tap's VLAN");
    goto cleanup;
  }
  /* The uplink is the trunk: it carries the port's VLAN tagged.  Left
   * there on unbind (other ports may share it; an idle VLAN is harmless). */
  if (p->vlan != 0 && b->uplink != NULL &&
      (err = port_vlan(b, (int)if_nametoindex(b->uplink), RTM_SETLINK,
                       (uint16_t)p->vlan, 0)) < 0) {
    rc = nl_fail(b, err, "cannot add the VLAN to the uplink");
    goto cleanup;
  }
cleanup:
  if (rc < 0 && made && (err = tap_delete(b, p->tap)) < 0)
    b->host->log(b->inst, VMH_LOG_WARN, "cannot remove tap %s again: %s",
                 p->tap, nl_geterror(err));
  if (change)
    rtnl_link_put(change);
  if (link)
    rtnl_link_put(link);
  return rc;
}

/* ---- Records of binding: bridge ports ------------------------------------
 */

static void rec_path(struct br *b, const char *vm_id, const char *nic,
                     char *out, size_t size) {
  snprintf(out, size, "%s/" REC_PREFIX "%s-%016" PRIx64 REC_SUFFIX,
           b->host->state_dir(b->inst), vm_id, net_hash_port(vm_id, nic));
}

/* Written crash-safely: a crash leaves the old record or the new one, never
 * half of one. */
static int rec_write(struct br *b, const struct port *p) {
  char path[4096], line[256];
  int len;

  rec_path(b, p->vm_id, p->nic, path, sizeof path);
  len = snprintf(line, sizeof line, "%s %s %" PRIu32 " %s\n", p->vm_id, p->mac,
                 p->vlan, p->nic);
  if (atomic_write(path, line, (size_t)len, 0600) < 0)
    return vmh_fail(b->host, VMH_EIO, "cannot write %s: %s", path,
                    strerror(errno));
  return 0;
}

/* 1: read; 0: no such record; <0: error. */
static int rec_read(struct br *b, const char *path, struct port *p) {
  char line[256], alias[300];
  FILE *f = fopen(path, "re");
  size_t len;

  if (f == NULL) {
    if (errno == ENOENT)
      return 0;
    return vmh_fail(b->host, VMH_EIO, "cannot read %s: %s", path,
                    strerror(errno));
  }
  if (fgets(line, sizeof line, f) == NULL)
    line[0] = '\0';
  fclose(f);
  len = strlen(line);
  if (len > 0 && line[len - 1] == '\n')
    line[len - 1] = '\0';
  /* Same fields as a tap's alias. */
  snprintf(alias, sizeof alias, ALIAS_TAG " %s", line);
  memset(p, 0, sizeof *p);
  if (parse_alias(alias, p) < 0)
    return vmh_fail(b->host, VMH_EIO, "%s is not a port record; remove it",
                    path);
  return 1;
}

/* ---- Operations ---------------------------------------------------------- */

static int br_health(void *handle, uint32_t flags) {
  struct br *b = handle;
  struct rtnl_link *link;
  int err, rc = 0;

  if (vmh_check_flags(b->host, "health", flags, 0) < 0)
    return VMH_EINVAL;
  if (b->absent)
    return 0; /* nothing to serve, nothing to fail */
  link = get_link(b, b->bridge, &err);
  if (link == NULL)
    return err ? nl_fail(b, err, "cannot look up the bridge")
               : vmh_fail(b->host, VMH_EIO, "bridge %s is gone", b->bridge);
  if (!(rtnl_link_get_flags(link) & IFF_UP))
    rc = vmh_fail(b->host, VMH_EIO, "bridge %s is down", b->bridge);
  else if (rtnl_link_get_ifindex(link) != b->ifindex)
    /* Deleted and made again by someone: our taps are no longer on it. */
    rc = vmh_fail(b->host, VMH_EIO,
                  "bridge %s was re-created (ifindex %d, was %d); restart "
                  "vmhostd",
                  b->bridge, rtnl_link_get_ifindex(link), b->ifindex);
  rtnl_link_put(link);
  return rc;
}

struct count {
  int master;
  uint32_t n;
};

static void count_port(struct nl_object *obj, void *arg) {
  struct count *c = arg;

  if (rtnl_link_get_master((struct rtnl_link *)obj) == c->master)
    c->n++;
}

static int br_info(void *handle, vmh_network_info_fn fn, void *opaque,
                   uint32_t flags) {
  struct br *b = handle;
  struct vmh_network_info info = {0};
  struct nl_cache *cache = NULL;
  struct rtnl_link *link;
  struct count c = {0};
  int err, rc;

  if (vmh_check_flags(b->host, "info", flags, 0) < 0)
    return VMH_EINVAL;
  if (fn == NULL)
    return vmh_fail(b->host, VMH_EINVAL, "info: no visitor");
  info.struct_size = sizeof info;
  info.bridge = b->bridge;
  if (b->absent) /* removed: down, no port */
    return fn(opaque, &info);
  if ((err = rtnl_link_alloc_cache(b->sk, AF_UNSPEC, &cache)) < 0)
    return nl_fail(b, err, "cannot list links");
  link = rtnl_link_get_by_name(cache, b->bridge);
  if (link != NULL) {
    c.master = rtnl_link_get_ifindex(link);
    nl_cache_foreach(cache, count_port, &c);
    info.mtu = rtnl_link_get_mtu(link);
    info.up = (rtnl_link_get_flags(link) & IFF_UP) ? 1 : 0;
    info.n_ports = c.n;
    rtnl_link_put(link);
  }
  rc = fn(opaque, &info);
  nl_cache_free(cache);
  return rc;
}

static int br_port_bind(void *handle, const struct vmh_port_request *req,
                        vmh_nic_binding_fn fn, void *opaque, uint32_t flags) {
  struct br *b = handle;
  struct vmh_nic_binding nb;
  struct port p, old;
  char path[4096];
  int rc, err;

  if (vmh_check_flags(b->host, "port_bind", flags, 0) < 0)
    return VMH_EINVAL;
  if (req == NULL || fn == NULL || !valid_vm_id(req->vm_id) ||
      !valid_nic(req->nic_name))
    return vmh_fail(b->host, VMH_EINVAL,
                    "port_bind: needs a VM id (UUID) and a NIC name");
  if (b->absent)
    return vmh_fail(b->host, VMH_EINVAL,
                    "network %s is configured ensure: absent; it binds no port",
                    b->host->instance_name(b->inst));
  if (req->vlan > 4094)
    return vmh_fail(b->host, VMH_EINVAL,
                    "NIC %s: VLAN %" PRIu32 " is not 0 (untagged) to 4094",
                    req->nic_name, req->vlan);
  if (req->vlan != 0 && !b->vlan_filtering)
    return vmh_fail(b->host, VMH_EINVAL,
                    "NIC %s: VLAN %" PRIu32
                    " asked for, but network %s has "
                    "vlan_filtering off; set vlan_filtering: true or drop the "
                    "VLAN",
                    req->nic_name, req->vlan, b->host->instance_name(b->inst));
  memset(&p, 0, sizeof p);
  memcpy(p.vm_id, req->vm_id, VMH_ID_LEN);
  snprintf(p.nic, sizeof p.nic, "%s", req->nic_name);
  p.vlan = req->vlan;
  if (req->mac != NULL) {
    int ok = net_parse_mac(req->mac, p.mac);
    if (ok <= 0)
      return vmh_fail(b->host, VMH_EINVAL,
                      "NIC %s: MAC '%s' is not a unicast address like "
                      "52:54:00:12:34:56",
                      req->nic_name, req->mac);
  } else {
    derive_mac(p.vm_id, p.nic, p.mac);
  }

  if (b->binding == VMH_BINDING_TAP) {
    tap_name(p.vm_id, p.nic, p.tap);
    if ((rc = bind_tap(b, &p)) < 0)
      return rc;
  } else {
    rec_path(b, p.vm_id, p.nic, path, sizeof path);
    if ((rc = rec_read(b, path, &old)) < 0)
      return rc;
    if (rc > 0)
      return vmh_fail(b->host, VMH_EEXIST,
                      "network %s already has a port for VM %s NIC %s",
                      b->host->instance_name(b->inst), p.vm_id, p.nic);
    if ((rc = rec_write(b, &p)) < 0)
      return rc;
  }
  binding_of(b, &p, &nb);
  rc = fn(opaque, &nb);
  if (rc < 0) {
    /* The core would not have the port: remove it, as the ABI asks. */
    if (b->binding == VMH_BINDING_TAP) {
      if ((err = tap_delete(b, p.tap)) < 0)
        b->host->log(b->inst, VMH_LOG_WARN, "cannot remove tap %s: %s", p.tap,
                     nl_geterror(err));
    } else {
      unlink(path);
    }
    return rc;
  }
  b->host->log(b->inst, VMH_LOG_INFO, "bound VM %s NIC %s: %s%s mac %s vlan %u",
               p.vm_id, p.nic, p.tap[0] ? "tap " : "bridge ",
               p.tap[0] ? p.tap : b->bridge, p.mac, (unsigned)p.vlan);
  return 0;
}

static int br_port_unbind(void *handle, const char *vm_id, const char *nic_name,
                          uint32_t flags) {
  struct br *b = handle;
  struct rtnl_link *link;
  struct port p;
  char tap[IFNAME_MAX + 1], path[4096];
  int err;

  if (vmh_check_flags(b->host, "port_unbind", flags, 0) < 0)
    return VMH_EINVAL;
  if (!valid_vm_id(vm_id) || !valid_nic(nic_name))
    return vmh_fail(b->host, VMH_EINVAL,
                    "port_unbind: needs a VM id (UUID) and a NIC name");
  if (b->absent) /* open() removed every port */
    return vmh_fail(
        b->host, VMH_ENOENT,
        "no port for VM %s NIC %s (network %s is configured ensure: "
        "absent)",
        vm_id, nic_name, b->host->instance_name(b->inst));
  if (b->binding != VMH_BINDING_TAP) {
    rec_path(b, vm_id, nic_name, path, sizeof path);
    if (unlink(path) == 0)
      return 0;
    if (errno == ENOENT)
      return vmh_fail(b->host, VMH_ENOENT, "no port for VM %s NIC %s", vm_id,
                      nic_name);
    return vmh_fail(b->host, VMH_EIO, "cannot remove %s: %s", path,
                    strerror(errno));
  }
  tap_name(vm_id, nic_name, tap);
  link = get_link(b, tap, &err);
  if (link == NULL)
    return err ? nl_fail(b, err, "cannot look up the tap")
               : vmh_fail(b->host, VMH_ENOENT, "no port for VM %s NIC %s",
                          vm_id, nic_name);
  /* Only the tap this port made: an interface of the same name with
   * another alias is someone else's. */
  if (parse_alias(rtnl_link_get_ifalias(link), &p) < 0 ||
      strcmp(p.vm_id, vm_id) != 0 || strcmp(p.nic, nic_name) != 0) {
    rtnl_link_put(link);
    return vmh_fail(b->host, VMH_ENOENT,
                    "no port for VM %s NIC %s (%s is not its tap)", vm_id,
                    nic_name, tap);
  }
  rtnl_link_put(link);
  if ((err = tap_delete(b, tap)) < 0)
    return nl_fail(b, err, "cannot delete the tap");
  b->host->log(b->inst, VMH_LOG_INFO, "unbound VM %s NIC %s: tap %s removed",
               vm_id, nic_name, tap);
  return 0;
}

struct list {
  struct br *b;
  struct port *v;
  size_t n, cap;
  int rc;
};

static int list_push(struct list *l, const struct port *p) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    struct port *v = realloc(l->v, cap * sizeof *v);
    if (v == NULL)
      return vmh_fail(l->b->host, VMH_ENOMEM, "out of memory");
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = *p;
  return 0;
}

/* A tap of ours: our prefix, our alias, and its name is the one the alias
 * says (so a renamed or foreign interface is not taken for a port). */
static void list_tap(struct nl_object *obj, void *arg) {
  struct list *l = arg;
  struct rtnl_link *link = (struct rtnl_link *)obj;
  const char *name = rtnl_link_get_name(link);
  struct port p;

  if (l->rc < 0 || name == NULL ||
      strncmp(name, TAP_PREFIX, sizeof TAP_PREFIX - 1) != 0)
    return;
  memset(&p, 0, sizeof p);
  if (parse_alias(rtnl_link_get_ifalias(link), &p) < 0)
    return;
  tap_name(p.vm_id, p.nic, p.tap);
  if (strcmp(p.tap, name) != 0)
    return;
  if (rtnl_link_get_master(link) != l->b->ifindex)
    l->b->host->log(l->b->inst, VMH_LOG_WARN,
                    "tap %s of VM %s is not on bridge %s", name, p.vm_id,
                    l->b->bridge);
  l->rc = list_push(l, &p);
}

static int list_records(struct list *l) {
  struct br *b = l->b;
  const char *dir = b->host->state_dir(b->inst);
  struct dirent *de;
  DIR *d = opendir(dir);
  char path[4096];
  struct port p;
  int rc = 0;

  if (d == NULL)
    return vmh_fail(b->host, VMH_EIO, "cannot read %s: %s", dir,
                    strerror(errno));
  while (rc >= 0 && (de = readdir(d)) != NULL) {
    size_t len = strlen(de->d_name);
    if (strncmp(de->d_name, REC_PREFIX, sizeof REC_PREFIX - 1) != 0 ||
        len < sizeof REC_SUFFIX ||
        strcmp(de->d_name + len - (sizeof REC_SUFFIX - 1), REC_SUFFIX) != 0)
      continue;
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    if ((rc = rec_read(b, path, &p)) > 0)
      rc = list_push(l, &p);
  }
  closedir(d);
  return rc < 0 ? rc : 0;
}

static int br_port_list(void *handle, vmh_port_fn fn, void *opaque,
                        uint32_t flags) {
  struct br *b = handle;
  struct list l = {.b = b};
  struct nl_cache *cache = NULL;
  size_t i;
  int err, rc;

  if (vmh_check_flags(b->host, "port_list", flags, 0) < 0)
    return VMH_EINVAL;
  if (fn == NULL)
    return vmh_fail(b->host, VMH_EINVAL, "port_list: no visitor");
  if (b->absent)
    return 0;
  if (b->binding == VMH_BINDING_TAP) {
    if ((err = rtnl_link_alloc_cache(b->sk, AF_UNSPEC, &cache)) < 0)
      return nl_fail(b, err, "cannot list links");
    nl_cache_foreach(cache, list_tap, &l);
    nl_cache_free(cache);
    rc = l.rc;
  } else {
    rc = list_records(&l);
  }
  /* Visitors run after the cache is gone: they may call back slowly. */
  for (i = 0; rc == 0 && i < l.n; i++) {
    struct vmh_nic_binding nb;
    binding_of(b, &l.v[i], &nb);
    rc = fn(opaque, l.v[i].vm_id, l.v[i].nic, &nb);
  }
  free(l.v);
  return rc;
}

/* ---- Open and close ------------------------------------------------------ */

static void br_close(void *handle) {
  struct br *b = handle;

  if (b == NULL)
    return;
  /* The bridge and its ports stay: VMs keep their network across a
   * restart of vmhostd. */
  if (b->sk)
    nl_socket_free(b->sk);
  free(b);
}

/* Remember that the bridge is ours (made by this plugin), for whoever
 * deletes the network later; written atomically. */
static void mark_created(struct br *b) {
  char path[4096], line[IFNAME_MAX + 2];

  snprintf(path, sizeof path, "%s/created", b->host->state_dir(b->inst));
  snprintf(line, sizeof line, "%s\n", b->bridge);
  if (atomic_write(path, line, strlen(line), 0600) < 0)
    b->host->log(b->inst, VMH_LOG_WARN, "cannot write %s: %s", path,
                 strerror(errno));
}

static int connect_nl(struct br *b) {
  int err;

  b->sk = nl_socket_alloc();
  if (b->sk == NULL)
    return vmh_fail(b->host, VMH_ENOMEM, "out of memory");
  if ((err = nl_connect(b->sk, NETLINK_ROUTE)) < 0)
    return nl_fail(b, err, "cannot open a netlink socket");
  return 0;
}

static int open_bridge(struct br *b) {
  const char *name = b->host->instance_name(b->inst);
  struct rtnl_link *link = NULL, *nb = NULL;
  int err, rc;

  if ((rc = connect_nl(b)) < 0)
    return rc;
  link = get_link(b, b->bridge, &err);
  if (err < 0)
    return nl_fail(b, err, "cannot look up the bridge");
  if (link == NULL) {
    if (!b->create)
      return vmh_fail(b->host, VMH_ENOENT,
                      "network %s: bridge %s does not exist and create is "
                      "false; make the bridge or set create: true",
                      name, b->bridge);
    nb = rtnl_link_bridge_alloc();
    if (nb == NULL)
      return vmh_fail(b->host, VMH_ENOMEM, "out of memory");
    rtnl_link_set_name(nb, b->bridge);
    err = rtnl_link_add(b->sk, nb, NLM_F_CREATE | NLM_F_EXCL);
    rtnl_link_put(nb);
    if (err < 0)
      return nl_fail(b, err, "cannot create the bridge");
    b->created = 1;
    link = get_link(b, b->bridge, &err);
    if (link == NULL)
      return nl_fail(b, err ? err : -NLE_OBJ_NOTFOUND,
                     "bridge vanished after creation");
  } else {
    const char *type = rtnl_link_get_type(link);
    if (type == NULL || strcmp(type, "bridge") != 0) {
      rc = vmh_fail(b->host, VMH_EINVAL,
                    "network %s: %s exists and is not a bridge (%s); name "
                    "another bridge",
                    name, b->bridge, type ? type : "no link kind");
      goto cleanup;
    }
  }
  b->ifindex = rtnl_link_get_ifindex(link);
  if ((rc = setup_bridge(b, link)) < 0) {
    /* A failed open() leaves nothing behind: a bridge it made goes. */
    if (b->created && (err = rtnl_link_delete(b->sk, link)) < 0)
      b->host->log(b->inst, VMH_LOG_WARN, "cannot remove bridge %s again: %s",
                   b->bridge, nl_geterror(err));
    goto cleanup;
  }
  if (b->created)
    mark_created(b);
  b->host->log(b->inst, VMH_LOG_INFO, "%s bridge %s (ifindex %d)",
               b->created ? "created" : "adopted", b->bridge, b->ifindex);
cleanup:
  rtnl_link_put(link);
  return rc;
}

/* ---- Teardown (ensure: absent) ------------------------------------------- */

/* This plugin's taps on the bridge (b->ifindex), found as list_tap finds
 * them; every other port of the bridge is only counted. */
struct sweep {
  struct br *b;
  char (*taps)[IFNAME_MAX + 1];
  size_t n, cap;
  unsigned others;
  int rc;
};

static void sweep_tap(struct nl_object *obj, void *arg) {
  struct sweep *s = arg;
  struct rtnl_link *link = (struct rtnl_link *)obj;
  const char *name = rtnl_link_get_name(link);
  struct port p;

  if (s->rc < 0 || name == NULL || rtnl_link_get_master(link) != s->b->ifindex)
    return;
  memset(&p, 0, sizeof p);
  if (strncmp(name, TAP_PREFIX, sizeof TAP_PREFIX - 1) != 0 ||
      parse_alias(rtnl_link_get_ifalias(link), &p) < 0 ||
      (tap_name(p.vm_id, p.nic, p.tap), strcmp(p.tap, name) != 0)) {
    s->others++;
    return;
  }
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 16;
    char(*v)[IFNAME_MAX + 1] = realloc(s->taps, cap * sizeof *v);
    if (v == NULL) {
      s->rc = vmh_fail(s->b->host, VMH_ENOMEM, "out of memory");
      return;
    }
    s->taps = v;
    s->cap = cap;
  }
  snprintf(s->taps[s->n++], IFNAME_MAX + 1, "%s", name);
}

static int ends_with(const char *s, const char *suffix) {
  size_t len = strlen(s), sl = strlen(suffix);

  return len > sl && strcmp(s + len - sl, suffix) == 0;
}

/* Our files in state_dir: port records (and their temporaries) and, when
 * `marker` is set, the "created" marker too.  *count: records removed. */
static int remove_files(struct br *b, int marker, size_t *count) {
  const char *dir = b->host->state_dir(b->inst);
  struct dirent *de;
  DIR *d = opendir(dir);
  char path[4096];
  int rc = 0;

  *count = 0;
  if (d == NULL)
    return errno == ENOENT ? 0
                           : vmh_fail(b->host, VMH_EIO, "cannot read %s: %s",
                                      dir, strerror(errno));
  while (rc == 0 && (de = readdir(d)) != NULL) {
    const char *n = de->d_name;
    /* 1: a record; 2: a record's temporary; 3: the marker or its own. */
    int kind = 0;
    if (strncmp(n, REC_PREFIX, sizeof REC_PREFIX - 1) == 0)
      kind = ends_with(n, REC_SUFFIX) ? 1 : ends_with(n, REC_SUFFIX ".tmp") * 2;
    else if (marker &&
             (strcmp(n, "created") == 0 || strcmp(n, "created.tmp") == 0))
      kind = 3;
    if (kind == 0)
      continue;
    snprintf(path, sizeof path, "%s/%s", dir, n);
    if (unlink(path) < 0 && errno != ENOENT)
      rc = vmh_fail(b->host, VMH_EIO, "cannot remove %s: %s", path,
                    strerror(errno));
    else if (kind == 1)
      (*count)++;
  }
  closedir(d);
  return rc;
}

/* The bridge named in the "created" marker, or "" (no marker). */
static int read_marker(struct br *b, char out[IFNAME_MAX + 2]) {
  char path[4096], line[64];
  size_t len;
  FILE *f;

  out[0] = '\0';
  snprintf(path, sizeof path, "%s/created", b->host->state_dir(b->inst));
  f = fopen(path, "re");
  if (f == NULL)
    return errno == ENOENT ? 0
                           : vmh_fail(b->host, VMH_EIO, "cannot read %s: %s",
                                      path, strerror(errno));
  if (fgets(line, sizeof line, f) == NULL)
    line[0] = '\0';
  fclose(f);
  len = strcspn(line, "\n");
  line[len] = '\0';
  /* Never empty: a marker that names nothing still says "made by us". */
  snprintf(out, IFNAME_MAX + 2, "%s", len ? line : "?");
  return 0;
}

/* Remove what this network made, in an order that a failed run can be
 * repeated: taps, port records, the bridge if ours, the marker last.
 * An adopted bridge is left as it is, with its uplink: whether this
 * plugin enslaved it is not recorded. */
static int teardown(struct br *b) {
  const char *name = b->host->instance_name(b->inst);
  struct sweep s = {.b = b};
  struct nl_cache *cache = NULL;
  struct rtnl_link *link;
  char marker[IFNAME_MAX + 2];
  const char *fate = "not present";
  size_t i, n_recs;
  int err, rc, ours;

  if ((rc = connect_nl(b)) < 0 || (rc = read_marker(b, marker)) < 0)
    return rc;
  ours = strcmp(marker, b->bridge) == 0;
  if (marker[0] && !ours)
    b->host->log(b->inst, VMH_LOG_WARN,
                 "the created marker names bridge %s, not %s: %s left alone",
                 marker, b->bridge, b->bridge);
  link = get_link(b, b->bridge, &err);
  if (err < 0)
    return nl_fail(b, err, "cannot look up the bridge");
  if (link != NULL) {
    const char *type = rtnl_link_get_type(link);
    if (type == NULL || strcmp(type, "bridge") != 0) {
      b->host->log(b->inst, VMH_LOG_WARN, "%s is not a bridge (%s); left alone",
                   b->bridge, type ? type : "no link kind");
      fate = "left (not a bridge)";
      rtnl_link_put(link);
      link = NULL;
    } else {
      b->ifindex = rtnl_link_get_ifindex(link);
    }
  }
  if (link != NULL) {
    if ((err = rtnl_link_alloc_cache(b->sk, AF_UNSPEC, &cache)) < 0) {
      rc = nl_fail(b, err, "cannot list links");
      goto cleanup;
    }
    nl_cache_foreach(cache, sweep_tap, &s);
    nl_cache_free(cache);
    if ((rc = s.rc) < 0)
      goto cleanup;
    for (i = 0; i < s.n; i++)
      if ((err = tap_delete(b, s.taps[i])) < 0 && err != -NLE_OBJ_NOTFOUND &&
          err != -NLE_NODEV) {
        rc = nl_fail(b, err, "cannot delete a tap");
        goto cleanup;
      }
  }
  if ((rc = remove_files(b, 0, &n_recs)) < 0)
    goto cleanup;
  if (link != NULL && ours) {
    if (s.others > 0)
      b->host->log(b->inst, VMH_LOG_WARN,
                   "bridge %s still has %u port%s not made by this plugin "
                   "(uplink, a hypervisor's taps); released with it",
                   b->bridge, s.others, s.others == 1 ? "" : "s");
    if ((err = rtnl_link_delete(b->sk, link)) < 0 && err != -NLE_OBJ_NOTFOUND &&
        err != -NLE_NODEV) {
      rc = nl_fail(b, err, "cannot delete the bridge");
      goto cleanup;
    }
    fate = "deleted";
  } else if (link != NULL) {
    fate = "left (not made by this plugin)";
  }
  if ((rc = remove_files(b, 1, &i)) < 0)
    goto cleanup;
  b->host->log(b->inst, VMH_LOG_INFO,
               "network %s removed (ensure: absent): %zu tap%s and %zu port "
               "record%s removed, bridge %s %s",
               name, s.n, s.n == 1 ? "" : "s", n_recs, n_recs == 1 ? "" : "s",
               b->bridge, fate);
cleanup:
  free(s.taps);
  if (link)
    rtnl_link_put(link);
  return rc;
}

static int br_open(const struct vmh_host *host, const struct vmh_instance *inst,
                   const struct vmh_config *config, void **ret_handle,
                   uint32_t flags) {
  struct br *b;
  const char *binding, *ensure, *where;
  int rc;

  if (vmh_check_flags(host, "open", flags, VMH_OPEN_CHECK_ONLY) < 0)
    return VMH_EINVAL;
  b = calloc(1, sizeof *b);
  if (b == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  b->host = host;
  b->inst = inst;
  /* Every key is read before anything is checked, so that a typo is
   * reported whatever else is wrong. */
  if ((rc = host->config_string(config, "bridge", NULL, &b->bridge,
                                VMH_CFG_REQUIRED)) < 0 ||
      (rc = host->config_bool(config, "create", 1, &b->create, 0)) < 0 ||
      (rc = host->config_int(config, "mtu", 68, 65535, 0, &b->mtu, 0)) < 0 ||
      (rc = host->config_bool(config, "vlan_filtering", 0, &b->vlan_filtering,
                              0)) < 0 ||
      (rc = host->config_string(config, "uplink", NULL, &b->uplink, 0)) < 0 ||
      (rc = host->config_string(config, "binding", "bridge", &binding, 0)) <
          0 ||
      (rc = host->config_string(config, "ensure", "present", &ensure, 0)) < 0)
    goto fail;
  where = host->config_where(config);
  if (!net_valid_ifname(b->bridge)) {
    rc = vmh_fail(host, VMH_EINVAL,
                  "%s: bridge '%s' is not an interface name (1..15 printable "
                  "characters, no '/', ':' or blanks)",
                  where, b->bridge);
    goto fail;
  }
  if (b->uplink != NULL &&
      (!net_valid_ifname(b->uplink) || strcmp(b->uplink, b->bridge) == 0)) {
    rc = vmh_fail(host, VMH_EINVAL,
                  "%s: uplink '%s' is not an interface name other than the "
                  "bridge's",
                  where, b->uplink);
    goto fail;
  }
  if (strcmp(binding, "bridge") == 0) {
    b->binding = VMH_BINDING_BRIDGE;
  } else if (strcmp(binding, "tap") == 0) {
    b->binding = VMH_BINDING_TAP;
  } else {
    rc = vmh_fail(host, VMH_EINVAL, "%s: binding '%s' is not bridge or tap",
                  where, binding);
    goto fail;
  }
  if (strcmp(ensure, "present") == 0) {
    b->absent = 0;
  } else if (strcmp(ensure, "absent") == 0) {
    b->absent = 1;
  } else {
    rc = vmh_fail(host, VMH_EINVAL, "%s: ensure '%s' is not present or absent",
                  where, ensure);
    goto fail;
  }
  if (!(flags & VMH_OPEN_CHECK_ONLY) &&
      (rc = b->absent ? teardown(b) : open_bridge(b)) < 0)
    goto fail;
  *ret_handle = b;
  return 0;
fail:
  br_close(b);
  return rc;
}

static struct vmh_network_ops ops = {
    .open = br_open,
    .close = br_close,
    .health = br_health,
    .info = br_info,
    .port_bind = br_port_bind,
    .port_unbind = br_port_unbind,
    .port_list = br_port_list,
};

static struct vmh_plugin plugin = {
    .kind = VMH_KIND_NETWORK,
    .name = "bridge",
    .version = VMH_PACKAGE_VERSION,
    .description = "Linux bridge network (netlink), bridge or tap ports",
    .network = &ops,
};

VMH_PLUGIN_REGISTER(plugin)
