/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ovs-direct — the reference loop of bench/ovs.py: add and remove N ports
 * straight through libopenvswitch's C IDL on one connection, with the rows
 * the OVS plugin writes for a tap port (ovs-rows.c): a Port with its tag
 * and one Interface with iface-id, attached-mac, vm-id and the vmhost
 * keys, added to the bridge; next_cfg incremented and cur_cfg waited for
 * (ovs-vswitchd applied it), as the plugin and ovs-vsctl do.
 *
 *   ovs-direct REMOTE BRIDGE PREFIX N
 *
 * The ports are named PREFIX0 … PREFIX<N-1> (taps the caller made).
 * Prints the add and remove seconds. */
#include <ovs/config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "openvswitch/poll-loop.h"
#include "openvswitch/vlog.h"
#include "ovsdb-idl.h"
#include "smap.h"
#include "vswitch-idl.h"

static struct ovsdb_idl *idl;

static double now(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Run the IDL until cond() holds. */
static void run_until(int (*cond)(void *), void *arg) {
  for (;;) {
    ovsdb_idl_run(idl);
    if (cond(arg))
      return;
    ovsdb_idl_wait(idl);
    poll_block();
  }
}

static int has_bridge(void *arg) {
  const struct ovsrec_bridge *br;

  OVSREC_BRIDGE_FOR_EACH(br, idl)
  if (strcmp(br->name, arg) == 0)
    return 1;
  return 0;
}

static int applied(void *arg) {
  const struct ovsrec_open_vswitch *ovs = ovsrec_open_vswitch_first(idl);
  return ovs != NULL && ovs->cur_cfg >= *(int64_t *)arg;
}

static const struct ovsrec_bridge *bridge(const char *name) {
  const struct ovsrec_bridge *br;

  OVSREC_BRIDGE_FOR_EACH(br, idl)
  if (strcmp(br->name, name) == 0)
    return br;
  return NULL;
}

/* Commit txn (with next_cfg incremented) and wait until it is applied. */
static void commit(struct ovsdb_idl_txn *txn) {
  const struct ovsrec_open_vswitch *ovs = ovsrec_open_vswitch_first(idl);
  enum ovsdb_idl_txn_status st;
  int64_t cfg;

  ovsdb_idl_txn_increment(txn, &ovs->header_, &ovsrec_open_vswitch_col_next_cfg,
                          false);
  st = ovsdb_idl_txn_commit_block(txn);
  if (st != TXN_SUCCESS) {
    fprintf(stderr, "commit: %s %s\n", ovsdb_idl_txn_status_to_string(st),
            ovsdb_idl_txn_get_error(txn));
    exit(1);
  }
  cfg = ovsdb_idl_txn_get_increment_new_value(txn);
  ovsdb_idl_txn_destroy(txn);
  run_until(applied, &cfg);
}

static void add(const char *brname, const char *name) {
  struct ovsdb_idl_txn *txn = ovsdb_idl_txn_create(idl);
  struct ovsrec_interface *iface = ovsrec_interface_insert(txn);
  struct ovsrec_port *port = ovsrec_port_insert(txn);
  struct smap ids = SMAP_INITIALIZER(&ids);
  int64_t tag = 10;

  ovsrec_interface_set_name(iface, name);
  smap_add(&ids, "iface-id", "8a5d2f0e-1c3b-8a6d-9e7f-0b1c2d3e4f50");
  smap_add(&ids, "attached-mac", "52:54:00:12:34:56");
  smap_add(&ids, "vm-id", "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b");
  smap_add(&ids, "vmhost-network", "bench");
  smap_add(&ids, "vmhost-nic", name);
  ovsrec_interface_set_external_ids(iface, &ids);
  smap_destroy(&ids);
  ovsrec_port_set_name(port, name);
  ovsrec_port_set_interfaces(port, &iface, 1);
  ovsrec_port_set_tag(port, &tag, 1);
  ovsrec_bridge_update_ports_addvalue(bridge(brname), port);
  commit(txn);
}

static void del(const char *brname, const char *name) {
  const struct ovsrec_port *p, *found = NULL;
  struct ovsdb_idl_txn *txn = ovsdb_idl_txn_create(idl);

  OVSREC_PORT_FOR_EACH(p, idl)
  if (strcmp(p->name, name) == 0)
    found = p;
  if (found == NULL) {
    fprintf(stderr, "no port %s\n", name);
    exit(1);
  }
  ovsrec_bridge_update_ports_delvalue(bridge(brname), found);
  ovsrec_interface_delete(found->interfaces[0]);
  ovsrec_port_delete(found);
  commit(txn);
}

int main(int argc, char **argv) {
  char name[32];
  double t0, t1, t2;
  int i, n;

  if (argc != 5) {
    fprintf(stderr, "usage: %s REMOTE BRIDGE PREFIX N\n", argv[0]);
    return 2;
  }
  n = atoi(argv[4]);
  vlog_set_levels(NULL, VLF_ANY_DESTINATION, VLL_WARN);
  idl = ovsdb_idl_create(argv[1], &ovsrec_idl_class, false, true);
  /* The plugin's columns (ovs-db.c). */
  ovsdb_idl_add_column(idl, &ovsrec_open_vswitch_col_bridges);
  ovsdb_idl_add_column(idl, &ovsrec_open_vswitch_col_next_cfg);
  ovsdb_idl_add_column(idl, &ovsrec_open_vswitch_col_cur_cfg);
  ovsdb_idl_add_column(idl, &ovsrec_bridge_col_name);
  ovsdb_idl_add_column(idl, &ovsrec_bridge_col_ports);
  ovsdb_idl_add_column(idl, &ovsrec_port_col_name);
  ovsdb_idl_add_column(idl, &ovsrec_port_col_interfaces);
  ovsdb_idl_add_column(idl, &ovsrec_port_col_tag);
  ovsdb_idl_add_column(idl, &ovsrec_interface_col_name);
  ovsdb_idl_add_column(idl, &ovsrec_interface_col_external_ids);
  run_until(has_bridge, argv[2]);
  t0 = now();
  for (i = 0; i < n; i++) {
    snprintf(name, sizeof name, "%s%d", argv[3], i);
    add(argv[2], name);
  }
  t1 = now();
  for (i = 0; i < n; i++) {
    snprintf(name, sizeof name, "%s%d", argv[3], i);
    del(argv[2], name);
  }
  t2 = now();
  printf("%.6f %.6f\n", t1 - t0, t2 - t1);
  ovsdb_idl_destroy(idl);
  return 0;
}
