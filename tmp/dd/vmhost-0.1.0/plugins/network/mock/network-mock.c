/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* network-mock — an in-memory network for test harnesses.
 *
 * Ports are records only (no bridge, OVS port or tap is made); bindings,
 * MAC choice and limits behave as a real network plugin's would, and are
 * deterministic for a given seed, so the core's orchestration can be tested
 * without touching the host's network.  Latency and faults are injected
 * through the config (see mockcommon.h and etc/plugins/mock.yaml). */
#include <config.h>

#define VMH_THREAD_MODEL VMH_THREAD_PARALLEL
#include <vmhost/vmhost-plugin.h>

#include "netcommon.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mockcommon.h"

enum {
  OP_OPEN,
  OP_HEALTH,
  OP_INFO,
  OP_PORT_BIND,
  OP_PORT_UNBIND,
  OP_PORT_LIST,
};

static const char *const op_names[] = {
    "open", "health", "info", "port_bind", "port_unbind", "port_list", NULL,
};

#define IFNAME_MAX NET_IFNAME_MAX
#define MAC_LEN NET_MAC_LEN

struct port {
  struct net_port key; /* first: the port table holds &key */
  uint64_t n;          /* 1, 2, … in bind order: names the OVS port or tap */
  uint32_t type;
  char *bridge, *port, *interface_id, *tap;
  uint32_t vlan, mtu;
};

struct net {
  const struct vmh_host *host;
  const struct vmh_instance *inst;
  struct mock_common *mc;
  const char *bridge; /* borrowed from the config */
  char cidr[INET6_ADDRSTRLEN + 16];
  char gateway[INET6_ADDRSTRLEN];
  int64_t mtu, max_ports;
  uint32_t binding;    /* VMH_BINDING_* for new ports */
  struct ptrvec ports; /* of struct port, in bind order */
  uint64_t port_seq;   /* last port number given */
  uint64_t mac_seq;    /* MACs generated so far */
};

/* ---- Helpers ------------------------------------------------------------- */

static void free_port(struct port *p) {
  if (p == NULL)
    return;
  free(p->key.vm_id);
  free(p->key.nic_name);
  free(p->bridge);
  free(p->port);
  free(p->interface_id);
  free(p->tap);
  free(p);
}

/* The port whose key k is (NULL: NULL). */
static struct port *port_of(struct net_port *k) {
  return (struct port *)k;
}

static struct port *find_port(struct net *n, const char *vm_id,
                              const char *nic_name, size_t *ret_idx) {
  return port_of(net_ports_find(&n->ports, vm_id, nic_name, ret_idx));
}

static struct port *find_mac(struct net *n, const char *mac) {
  return port_of(net_ports_find_mac(&n->ports, mac));
}

/* "a.b.c.d/len" or "x::/len", host bits zero, room for a gateway; fills
 * the canonical cidr and gateway (network + 1). */
static int parse_cidr(struct net *n, const char *s, const char *where) {
  unsigned char addr[16];
  char ip[INET6_ADDRSTRLEN + 1], *end;
  const char *slash = strchr(s, '/');
  int family, bits, maxbits, i;
  size_t len;
  long plen;

  if (slash == NULL || (len = (size_t)(slash - s)) >= sizeof ip)
    goto bad;
  memcpy(ip, s, len);
  ip[len] = '\0';
  if (inet_pton(AF_INET, ip, addr) == 1) {
    family = AF_INET;
    maxbits = 32;
  } else if (inet_pton(AF_INET6, ip, addr) == 1) {
    family = AF_INET6;
    maxbits = 128;
  } else {
    goto bad;
  }
  if (slash[1] < '0' || slash[1] > '9')
    goto bad;
  plen = strtol(slash + 1, &end, 10);
  if (*end != '\0' || plen < 0 || plen > maxbits)
    goto bad;
  bits = (int)plen;
  if (bits > maxbits - 2)
    return vmh_fail(n->host, VMH_EINVAL,
                    "%s: cidr %s leaves no room for a gateway and guests; "
                    "use a prefix of at most /%d",
                    where, s, maxbits - 2);
  for (i = bits; i < maxbits; i++)
    if (addr[i / 8] & (0x80 >> (i % 8)))
      return vmh_fail(n->host, VMH_EINVAL,
                      "%s: cidr %s has host bits set; give the network "
                      "address",
                      where, s);
  inet_ntop(family, addr, ip, sizeof ip);
  snprintf(n->cidr, sizeof n->cidr, "%s/%d", ip, bits);
  addr[maxbits / 8 - 1] |= 1; /* the first host: the gateway */
  inet_ntop(family, addr, n->gateway, sizeof n->gateway);
  return 0;
bad:
  return vmh_fail(n->host, VMH_EINVAL,
                  "%s: cidr '%s' is not an IPv4 or IPv6 network such as "
                  "10.0.0.0/24",
                  where, s);
}

/* ---- State file ---------------------------------------------------------- */

static int net_dump(void *opaque, struct mock_out *out) {
  struct net *n = opaque;
  size_t i;

  mock_out_rec(out, "meta");
  mock_out_u64(out, "port_seq", n->port_seq);
  mock_out_u64(out, "mac_seq", n->mac_seq);
  for (i = 0; i < n->ports.n; i++) {
    const struct port *p = port_of(n->ports.v[i]);
    mock_out_rec(out, "port");
    mock_out_str(out, "vm_id", p->key.vm_id);
    mock_out_str(out, "nic", p->key.nic_name);
    mock_out_u64(out, "n", p->n);
    mock_out_u64(out, "type", p->type);
    mock_out_str(out, "bridge", p->bridge);
    mock_out_str(out, "port", p->port);
    mock_out_str(out, "interface_id", p->interface_id);
    mock_out_str(out, "tap", p->tap);
    mock_out_str(out, "mac", p->key.mac);
    mock_out_u64(out, "vlan", p->vlan);
    mock_out_u64(out, "mtu", p->mtu);
  }
  return 0;
}

static int save(struct net *n) {
  return mock_common_save(n->mc, net_dump, n);
}

static int rec_dup(struct net *n, struct mock_rec *rec, const char *key,
                   int required, char **ret) {
  const char *s;
  int rc = mock_rec_str(rec, key, required, &s);

  if (rc < 0)
    return rc;
  return mock_dup(n->host, s, ret);
}

static int load_record(void *opaque, struct mock_rec *rec) {
  struct net *n = opaque;
  const char *type = mock_rec_type(rec), *mac;
  struct port *p;
  uint64_t u, vlan, mtu;
  int rc;

  if (strcmp(type, "meta") == 0) {
    uint64_t ps, ms;
    if ((rc = mock_rec_u64(rec, "port_seq", 1, 0, UINT64_MAX, 0, &ps)) < 0 ||
        (rc = mock_rec_u64(rec, "mac_seq", 1, 0, UINT64_MAX, 0, &ms)) < 0)
      return rc;
    if (ps > n->port_seq)
      n->port_seq = ps;
    n->mac_seq = ms;
    return 0;
  }
  if (strcmp(type, "port") != 0)
    return mock_rec_fail(rec, "unknown record type %s", type);
  p = calloc(1, sizeof *p);
  if (p == NULL)
    return vmh_fail(n->host, VMH_ENOMEM, "out of memory");
  if ((rc = rec_dup(n, rec, "vm_id", 1, &p->key.vm_id)) < 0 ||
      (rc = rec_dup(n, rec, "nic", 1, &p->key.nic_name)) < 0 ||
      (rc = mock_rec_u64(rec, "n", 1, 1, UINT64_MAX, 0, &p->n)) < 0 ||
      (rc = mock_rec_u64(rec, "type", 1, VMH_BINDING_BRIDGE, VMH_BINDING_TAP, 0,
                         &u)) < 0 ||
      (rc = rec_dup(n, rec, "bridge", 0, &p->bridge)) < 0 ||
      (rc = rec_dup(n, rec, "port", 0, &p->port)) < 0 ||
      (rc = rec_dup(n, rec, "interface_id", 0, &p->interface_id)) < 0 ||
      (rc = rec_dup(n, rec, "tap", 0, &p->tap)) < 0 ||
      (rc = mock_rec_str(rec, "mac", 1, &mac)) < 0 ||
      (rc = mock_rec_u64(rec, "vlan", 1, 0, 4094, 0, &vlan)) < 0 ||
      (rc = mock_rec_u64(rec, "mtu", 1, 0, 65535, 0, &mtu)) < 0)
    goto fail;
  p->type = (uint32_t)u;
  p->vlan = (uint32_t)vlan;
  p->mtu = (uint32_t)mtu;
  if (net_parse_mac(mac, p->key.mac) != 1) {
    rc = mock_rec_fail(rec, "bad MAC %s", mac);
    goto fail;
  }
  if ((p->bridge && !net_valid_ifname(p->bridge)) ||
      (p->port && !net_valid_ifname(p->port)) ||
      (p->tap && !net_valid_ifname(p->tap)) ||
      (p->interface_id && strlen(p->interface_id) > MOCK_ID_MAX) ||
      mock_check_id(n->host, "vm_id", p->key.vm_id) < 0 ||
      strlen(p->key.nic_name) > VMH_NAME_MAX) {
    rc = mock_rec_fail(rec, "bad interface name, VM id or NIC name");
    goto fail;
  }
  if (find_port(n, p->key.vm_id, p->key.nic_name, NULL) ||
      find_mac(n, p->key.mac)) {
    rc = mock_rec_fail(rec, "port %s/%s or MAC %s twice", p->key.vm_id,
                       p->key.nic_name, p->key.mac);
    goto fail;
  }
  if (p->n > n->port_seq)
    n->port_seq = p->n;
  if (ptrvec_push(&n->ports, &p->key) < 0) {
    rc = vmh_fail(n->host, VMH_ENOMEM, "out of memory");
    goto fail;
  }
  return 0;
fail:
  free_port(p);
  return rc;
}

/* ---- Operations ---------------------------------------------------------- */

static int net_health(void *handle, uint32_t flags) {
  struct net *n = handle;
  int rc = mock_common_enter(n->mc, OP_HEALTH);

  if (rc < 0)
    return rc;
  return vmh_check_flags(n->host, "health", flags, 0);
}

static int net_info(void *handle, vmh_network_info_fn fn, void *opaque,
                    uint32_t flags) {
  struct net *n = handle;
  struct vmh_network_info info = {0};
  int rc = mock_common_enter(n->mc, OP_INFO);

  if (rc < 0)
    return rc;
  if ((rc = vmh_check_flags(n->host, "info", flags, 0)) < 0)
    return rc;
  if (fn == NULL)
    return vmh_fail(n->host, VMH_EINVAL, "info: no visitor");
  info.struct_size = sizeof info;
  info.bridge = n->bridge;
  info.cidr = n->cidr;
  info.gateway = n->gateway;
  info.mtu = (uint32_t)n->mtu;
  info.up = 1;
  mock_common_lock(n->mc);
  info.n_ports = (uint32_t)n->ports.n;
  mock_common_unlock(n->mc);
  return fn(opaque, &info);
}

/* A port as reported, copied under the lock so that visitors run without
 * it. */
struct port_view {
  char vm_id[MOCK_ID_MAX + 1];
  char nic_name[VMH_NAME_MAX + 1];
  char bridge[IFNAME_MAX + 1];
  char port[IFNAME_MAX + 1];
  char interface_id[MOCK_ID_MAX + 1];
  char tap[IFNAME_MAX + 1];
  char mac[MAC_LEN + 1];
  uint32_t type, vlan, mtu;
};

static void copy_opt(char *dst, size_t size, const char *src) {
  snprintf(dst, size, "%s", src ? src : "");
}

static void view_port(const struct port *p, struct port_view *v) {
  copy_opt(v->vm_id, sizeof v->vm_id, p->key.vm_id);
  copy_opt(v->nic_name, sizeof v->nic_name, p->key.nic_name);
  copy_opt(v->bridge, sizeof v->bridge, p->bridge);
  copy_opt(v->port, sizeof v->port, p->port);
  copy_opt(v->interface_id, sizeof v->interface_id, p->interface_id);
  copy_opt(v->tap, sizeof v->tap, p->tap);
  memcpy(v->mac, p->key.mac, sizeof v->mac);
  v->type = p->type;
  v->vlan = p->vlan;
  v->mtu = p->mtu;
}

static const char *opt(const char *s) {
  return s[0] ? s : NULL;
}

static void binding_of(const struct port_view *v, struct vmh_nic_binding *b) {
  memset(b, 0, sizeof *b);
  b->struct_size = sizeof *b;
  b->type = v->type;
  b->bridge = opt(v->bridge);
  b->port = opt(v->port);
  b->interface_id = opt(v->interface_id);
  b->tap = opt(v->tap);
  b->mac = v->mac;
  b->vlan = v->vlan;
  b->mtu = v->mtu;
}

/* A MAC nobody holds: 52:54:00 (QEMU's prefix) and 24 bits that follow a
 * seed-chosen start, so a given seed and bind order always give the same
 * MACs.  Under the lock. */
static uint32_t mac_bits(void *opaque) {
  struct net *n = opaque;
  return (uint32_t)((mock_mix64(mock_common_seed(n->mc)) + n->mac_seq++) &
                    0xffffff);
}

static void next_mac(struct net *n, char out[MAC_LEN + 1]) {
  /* 2^24 tries meet every value once: one is free while fewer ports are
   * bound (max_ports is far below). */
  net_ports_new_mac(&n->ports, mac_bits, NULL, n, 1u << 24, out);
}

static int net_port_bind(void *handle, const struct vmh_port_request *req,
                         vmh_nic_binding_fn fn, void *opaque, uint32_t flags) {
  struct net *n = handle;
  const char *name = mock_common_name(n->mc);
  struct vmh_nic_binding b;
  struct port_view v;
  struct port *p = NULL, *other;
  char mac[MAC_LEN + 1], buf[32];
  uint64_t old_mac_seq;
  int rc = mock_common_enter(n->mc, OP_PORT_BIND);

  if (rc < 0)
    return rc;
  if ((rc = vmh_check_flags(n->host, "port_bind", flags, 0)) < 0 ||
      (rc = mock_check_struct(n->host, "port request", req,
                              req ? req->struct_size : 0, sizeof *req)) < 0 ||
      (rc = mock_check_id(n->host, "VM id", req->vm_id)) < 0 ||
      (rc = mock_check_text(n->host, "NIC name", req->nic_name, VMH_NAME_MAX)) <
          0 ||
      (req->vm_name != NULL &&
       (rc = mock_check_text(n->host, "VM name", req->vm_name, VMH_NAME_MAX)) <
           0))
    return rc;
  if (req->vlan > 4094)
    return vmh_fail(n->host, VMH_EINVAL,
                    "NIC %s: VLAN %" PRIu32 " is not 0 (untagged) to 4094",
                    req->nic_name, req->vlan);
  if (req->mac != NULL) {
    int ok = net_parse_mac(req->mac, mac);
    if (ok == 0)
      return vmh_fail(n->host, VMH_EINVAL,
                      "NIC %s: MAC '%s' is not six hex octets like "
                      "52:54:00:12:34:56",
                      req->nic_name, req->mac);
    if (ok < 0)
      return vmh_fail(n->host, VMH_EINVAL,
                      "NIC %s: MAC %s is multicast or zero; a NIC needs a "
                      "unicast address",
                      req->nic_name, req->mac);
  }
  p = calloc(1, sizeof *p);
  if (p == NULL)
    return vmh_fail(n->host, VMH_ENOMEM, "out of memory");
  if ((rc = mock_dup(n->host, req->vm_id, &p->key.vm_id)) < 0 ||
      (rc = mock_dup(n->host, req->nic_name, &p->key.nic_name)) < 0) {
    free_port(p);
    return rc;
  }
  p->type = n->binding;
  p->vlan = req->vlan;
  p->mtu = (uint32_t)n->mtu;

  mock_common_lock(n->mc);
  old_mac_seq = n->mac_seq;
  if (find_port(n, req->vm_id, req->nic_name, NULL)) {
    rc = vmh_fail(n->host, VMH_EEXIST,
                  "network %s already has a port for VM %s NIC %s", name,
                  req->vm_id, req->nic_name);
    goto out;
  }
  if (n->ports.n >= (size_t)n->max_ports) {
    rc = vmh_fail(n->host, VMH_ENOSPC,
                  "network %s already has %zu ports, its max_ports", name,
                  n->ports.n);
    goto out;
  }
  if (req->mac != NULL) {
    if ((other = find_mac(n, mac)) != NULL) {
      rc = vmh_fail(n->host, VMH_EEXIST,
                    "MAC %s is already used by VM %s NIC %s", mac,
                    other->key.vm_id, other->key.nic_name);
      goto out;
    }
    memcpy(p->key.mac, mac, sizeof p->key.mac);
  } else {
    next_mac(n, p->key.mac);
  }
  p->n = n->port_seq + 1;
  if (n->binding != VMH_BINDING_TAP)
    rc = mock_dup(n->host, n->bridge, &p->bridge);
  if (rc == 0 && n->binding == VMH_BINDING_OVS) {
    snprintf(buf, sizeof buf, "vnet-%" PRIu64, p->n);
    if ((rc = mock_dup(n->host, buf, &p->port)) == 0)
      rc = mock_dup(n->host, req->vm_id, &p->interface_id);
  } else if (rc == 0 && n->binding == VMH_BINDING_TAP) {
    snprintf(buf, sizeof buf, "tap%" PRIu64, p->n);
    rc = mock_dup(n->host, buf, &p->tap);
  }
  if (rc == 0 && ptrvec_push(&n->ports, &p->key) < 0)
    rc = vmh_fail(n->host, VMH_ENOMEM, "out of memory");
  if (rc < 0)
    goto out;
  n->port_seq++;
  rc = save(n);
  if (rc < 0) {
    ptrvec_remove(&n->ports, n->ports.n - 1);
    n->port_seq--;
    goto out;
  }
  view_port(p, &v);
  p = NULL;
out:
  if (rc < 0)
    n->mac_seq = old_mac_seq;
  mock_common_unlock(n->mc);
  free_port(p);
  if (rc < 0)
    return rc;
  n->host->log(n->inst, VMH_LOG_DEBUG, "bound VM %s NIC %s, MAC %s", v.vm_id,
               v.nic_name, v.mac);
  if (fn == NULL)
    return 0;
  binding_of(&v, &b);
  return fn(opaque, &b);
}

static int net_port_unbind(void *handle, const char *vm_id,
                           const char *nic_name, uint32_t flags) {
  struct net *n = handle;
  struct port *p = NULL;
  size_t idx;
  int rc = mock_common_enter(n->mc, OP_PORT_UNBIND);

  if (rc < 0)
    return rc;
  if ((rc = vmh_check_flags(n->host, "port_unbind", flags, 0)) < 0 ||
      (rc = mock_check_id(n->host, "VM id", vm_id)) < 0 ||
      (rc = mock_check_text(n->host, "NIC name", nic_name, VMH_NAME_MAX)) < 0)
    return rc;
  mock_common_lock(n->mc);
  p = find_port(n, vm_id, nic_name, &idx);
  if (p == NULL) {
    rc =
        vmh_fail(n->host, VMH_ENOENT, "network %s has no port for VM %s NIC %s",
                 mock_common_name(n->mc), vm_id, nic_name);
  } else {
    ptrvec_remove(&n->ports, idx);
    rc = save(n);
    if (rc < 0) {
      /* No allocation: the array keeps its size. */
      ptrvec_insert(&n->ports, idx, &p->key);
      p = NULL;
    }
  }
  mock_common_unlock(n->mc);
  if (rc == 0)
    free_port(p);
  return rc;
}

static int net_port_list(void *handle, vmh_port_fn fn, void *opaque,
                         uint32_t flags) {
  struct net *n = handle;
  struct port_view *views = NULL;
  size_t count, i;
  int rc = mock_common_enter(n->mc, OP_PORT_LIST);

  if (rc < 0)
    return rc;
  if ((rc = vmh_check_flags(n->host, "port_list", flags, 0)) < 0)
    return rc;
  if (fn == NULL)
    return vmh_fail(n->host, VMH_EINVAL, "port_list: no visitor");
  mock_common_lock(n->mc);
  count = n->ports.n;
  if (count > 0 && (views = malloc(count * sizeof *views)) == NULL)
    rc = vmh_fail(n->host, VMH_ENOMEM, "out of memory");
  for (i = 0; views && i < count; i++)
    view_port(port_of(n->ports.v[i]), &views[i]);
  mock_common_unlock(n->mc);
  for (i = 0; rc == 0 && i < count; i++) {
    struct vmh_nic_binding b;
    binding_of(&views[i], &b);
    rc = fn(opaque, views[i].vm_id, views[i].nic_name, &b);
  }
  free(views);
  return rc;
}

/* ---- Open and close ------------------------------------------------------ */

static void net_close(void *handle) {
  struct net *n = handle;
  size_t i;

  if (n == NULL)
    return;
  for (i = 0; i < n->ports.n; i++)
    free_port(port_of(n->ports.v[i]));
  ptrvec_free(&n->ports);
  mock_common_close(n->mc);
  free(n);
}

static int net_open(const struct vmh_host *host,
                    const struct vmh_instance *inst,
                    const struct vmh_config *config, void **ret_handle,
                    uint32_t flags) {
  struct net *n;
  const char *cidr, *binding, *where;
  int rc, found = 0;

  n = calloc(1, sizeof *n);
  if (n == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  n->host = host;
  n->inst = inst;
  rc = mock_common_open(host, inst, config, "network", op_names, flags, &n->mc);
  if (rc < 0) {
    free(n);
    return rc;
  }
  if ((rc = host->config_string(config, "bridge", "mockbr0", &n->bridge, 0)) <
          0 ||
      (rc = host->config_string(config, "cidr", "10.0.0.0/24", &cidr, 0)) < 0 ||
      (rc = host->config_int(config, "mtu", 68, 65535, 1500, &n->mtu, 0)) < 0 ||
      (rc = host->config_int(config, "max_ports", 1, 1000000, 4096,
                             &n->max_ports, 0)) < 0 ||
      (rc = host->config_string(config, "binding", "bridge", &binding, 0)) < 0)
    goto fail;
  where = host->config_where(config);
  if (!net_valid_ifname(n->bridge)) {
    rc = vmh_fail(host, VMH_EINVAL,
                  "%s: bridge '%s' is not an interface name (1..15 "
                  "printable characters, no '/', ':' or blanks)",
                  where, n->bridge);
    goto fail;
  }
  if ((rc = parse_cidr(n, cidr, where)) < 0)
    goto fail;
  if (strcmp(binding, "bridge") == 0) {
    n->binding = VMH_BINDING_BRIDGE;
  } else if (strcmp(binding, "ovs") == 0) {
    n->binding = VMH_BINDING_OVS;
  } else if (strcmp(binding, "tap") == 0) {
    n->binding = VMH_BINDING_TAP;
  } else {
    rc = vmh_fail(host, VMH_EINVAL,
                  "%s: binding '%s' is not bridge, ovs or tap", where, binding);
    goto fail;
  }

  if (!mock_common_check_only(n->mc)) {
    rc = mock_common_load(n->mc, load_record, n, &found);
    if (rc < 0)
      goto fail;
    rc = mock_common_enter(n->mc, OP_OPEN);
    if (rc < 0)
      goto fail;
    host->log(inst, VMH_LOG_DEBUG, "mock network on %s (%s) with %zu port(s)",
              n->bridge, n->cidr, n->ports.n);
  }
  *ret_handle = n;
  return 0;
fail:
  net_close(n);
  return rc;
}

static struct vmh_network_ops ops = {
    .open = net_open,
    .close = net_close,
    .health = net_health,
    .info = net_info,
    .port_bind = net_port_bind,
    .port_unbind = net_port_unbind,
    .port_list = net_port_list,
};

static struct vmh_plugin plugin = {
    .kind = VMH_KIND_NETWORK,
    .name = "mock",
    .version = VMH_PACKAGE_VERSION,
    .description = "in-memory network for test harnesses",
    .network = &ops,
};

VMH_PLUGIN_REGISTER(plugin)
