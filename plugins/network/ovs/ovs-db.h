/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ovs-db — one OVSDB connection (libopenvswitch's C IDL) driven by a
 * thread of its own, for the OVS network plugin.
 *
 * The IDL is not thread-safe, so only that thread touches it.  Other
 * threads hand it jobs and wait: a job's build function runs on the IDL
 * thread against the current replica and fills a transaction (or only
 * reads); the thread commits it, retries a commit that raced another
 * client, and (when asked) waits until ovs-vswitchd has applied it
 * (cur_cfg).  Every job has a deadline the thread enforces, so a caller
 * never waits longer than the timeout given to odb_open().
 *
 * When the connection is down, jobs fail at once with VMH_EIO
 * ("unavailable"); a transaction in flight when it drops fails the same
 * way.  The IDL reconnects by itself (with backoff) and later jobs
 * succeed. */
#ifndef VMHOST_OVS_DB_H
#define VMHOST_OVS_DB_H

#include <stddef.h>
#include <stdint.h>

#include <vmhost/vmhost-plugin.h>

struct odb;
struct ovsdb_idl;
struct ovsdb_idl_txn;

/* Runs on the IDL thread.  Reads the replica through idl; when txn is not
 * NULL, writes what the job changes into it.  Returns 0 to commit txn,
 * ODB_DONE when nothing is to be committed (a read, or nothing to change),
 * or a VMH_E* code with a message in err (size ODB_ERR_LEN). */
#define ODB_DONE 1
#define ODB_ERR_LEN 512
typedef int (*odb_build_fn)(void *arg, struct ovsdb_idl *idl,
                            struct ovsdb_idl_txn *txn, char *err);

/* Connects to remote ("unix:PATH" or "tcp:HOST:PORT") and starts the
 * thread; waits up to timeout_ms for the first copy of the database.  The
 * returned connection is the caller's, released with odb_close().  On
 * failure returns a VMH_E* code with the message set through host. */
int odb_open(const struct vmh_host *host, const struct vmh_instance *inst,
             const char *remote, int64_t timeout_ms, struct odb **ret);

/* Stops the thread (a job still queued fails with VMH_ECANCELED) and
 * closes the connection.  NULL is fine. */
void odb_close(struct odb *db);

/* Runs build(arg) on the IDL thread and commits what it wrote (see
 * odb_build_fn); with wait_applied, also waits for ovs-vswitchd to apply
 * the change.  arg is used only until odb_run returns.  Returns 0, or a
 * VMH_E* code with the message in err; *committed (may be NULL) says
 * whether the transaction reached the database, for callers that must
 * undo it when a later step fails. */
int odb_run(struct odb *db, odb_build_fn build, void *arg, int wait_applied,
            char err[ODB_ERR_LEN], int *committed);

/* Whether the connection is up now (its last state, as the thread saw
 * it). */
int odb_connected(struct odb *db);

#endif
