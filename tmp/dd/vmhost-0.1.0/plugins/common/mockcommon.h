/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* mockcommon — the code the three mock plugins (hypervisor, storage,
 * network) share: the common config keys (seed, latency, faults, persist),
 * the per-instance lock, fault injection, the crash-safe state file and a
 * few validation helpers.
 *
 * A static convenience library linked into each mock; never installed and
 * not part of the ABI, so it may change with the mocks at any time.
 *
 * Usage in a mock's open():
 *
 *   static const char *const ops[] = {"open", "health", "define", …, NULL};
 *   rc = mock_common_open(host, inst, config, "hypervisor", ops, flags, &mc);
 *   … read the plugin's own keys …
 *   if (!(flags & VMH_OPEN_CHECK_ONLY)) {
 *     rc = mock_common_load(mc, load_record, h, &found);   // persist: true
 *     rc = mock_common_enter(mc, OP_OPEN);                 // fault on open
 *   }
 *
 * and at the start of every operation:
 *
 *   rc = mock_common_enter(mc, OP_DEFINE);  // latency, call count, faults
 *   if (rc < 0) return rc;                  // message already set
 *   mock_common_lock(mc); … mutate … rc = mock_common_save(mc, dump, h);
 *   mock_common_unlock(mc);
 */
#ifndef VMHOST_MOCKCOMMON_H
#define VMHOST_MOCKCOMMON_H

#include <vmhost/vmhost-plugin.h>

#include "ptrvec.h"

/* Longest VM id the mocks accept (bytes, without the NUL). */
#define MOCK_ID_MAX 64

/* ---- Validation ----------------------------------------------------------
 *
 * Errors: vmh_fail, vmh_check_flags and vmh_check_name (<vmhost/host.h>). */

/* A VM id: opaque, 1..MOCK_ID_MAX bytes.  Control characters and '/' are
 * refused because ids end up in paths (the guest channel's socket). */
int mock_check_id(const struct vmh_host *host, const char *what,
                  const char *id);

/* Any other string: not NULL, not empty, at most `max` bytes, no control
 * characters. */
int mock_check_text(const struct vmh_host *host, const char *what,
                    const char *s, size_t max);

/* A struct handed over by the core must be at least as large as ours. */
int mock_check_struct(const struct vmh_host *host, const char *what,
                      const void *p, uint32_t struct_size, size_t need);

/* strdup that tells "NULL in" (*ret = NULL, 0) from "out of memory"
 * (VMH_ENOMEM, message set). */
int mock_dup(const struct vmh_host *host, const char *s, char **ret);

/* splitmix64's finaliser: a cheap, well-mixed 64-bit hash. */
uint64_t mock_mix64(uint64_t x);

/* ---- A growable array of pointers (struct ptrvec, libvmhutil) ---------- */

/* ptrvec_insert/ptrvec_push that set the message: VMH_ENOMEM when out of
 * memory. */
int mock_vec_insert(const struct vmh_host *host, struct ptrvec *vec, size_t at,
                    void *item);
int mock_vec_push(const struct vmh_host *host, struct ptrvec *vec, void *item);

/* ---- The instance -------------------------------------------------------- */

struct mock_common;

/* Read the common keys of `config` (seed, latency, faults, persist) and make
 * the shared part of an instance.  `kind` names the state file and messages
 * ("hypervisor", "storage", "network"); `ops` is the NULL-terminated list of
 * the operation names of that kind (the index of a name is the `op` given to
 * mock_common_enter); it must outlive the instance.  With
 * VMH_OPEN_CHECK_ONLY in `open_flags` the config is checked the same way but
 * nothing is loaded or written later.  On failure the message is set. */
int mock_common_open(const struct vmh_host *host,
                     const struct vmh_instance *inst,
                     const struct vmh_config *config, const char *kind,
                     const char *const *ops, uint32_t open_flags,
                     struct mock_common **ret);
void mock_common_close(struct mock_common *mc);

/* Start of an operation: sleep its configured latency (without the lock, so
 * parallel calls overlap), count the call, then return 0 or the error of the
 * first configured fault that fires (message set: "injected fault: <op>
 * (<mode>)" or the configured one). */
int mock_common_enter(struct mock_common *mc, unsigned op);

/* Calls of `op` so far (for tests and debug logs). */
uint64_t mock_common_calls(struct mock_common *mc, unsigned op);

/* The instance lock: one per instance, guarding the plugin's data, the
 * fault counters and the PRNG.  Never held while calling out of the plugin
 * (visitors, emit). */
void mock_common_lock(struct mock_common *mc);
void mock_common_unlock(struct mock_common *mc);

uint64_t mock_common_seed(const struct mock_common *mc);
int mock_common_check_only(const struct mock_common *mc);
int mock_common_persist(const struct mock_common *mc);
/* The instance's state directory ("" in check-only mode, where the core
 * need not have made it). */
const char *mock_common_state_dir(const struct mock_common *mc);
const char *mock_common_name(const struct mock_common *mc);

/* ---- The state file (persist: true) -------------------------------------
 *
 * A text file, one record a line: a type word, then key=value fields
 * separated by single spaces; values are percent-encoded (every byte outside
 * [A-Za-z0-9._:/@+,-] is %XX), so a value may be empty but never holds a
 * space or a newline.  An absent key means NULL.  The first line is
 * "vmhost-mock-state 1 <kind>", the last "end records=<N>"; anything else is
 * refused on load, with the file and line in the message. */

struct mock_out;

void mock_out_rec(struct mock_out *out, const char *type);
void mock_out_str(struct mock_out *out, const char *key, const char *value);
void mock_out_u64(struct mock_out *out, const char *key, uint64_t value);
void mock_out_i64(struct mock_out *out, const char *key, int64_t value);

/* Writes every record of the instance with mock_out_*; returns 0 or an
 * error code (message set). */
typedef int (*mock_dump_fn)(void *opaque, struct mock_out *out);

/* With persist: true, rewrite the state file from `dump` atomically;
 * otherwise do nothing.  Call with the lock held, after each change, and
 * undo the change when it fails (VMH_EIO or VMH_ENOMEM, message set). */
int mock_common_save(struct mock_common *mc, mock_dump_fn dump, void *opaque);

struct mock_rec;

const char *mock_rec_type(const struct mock_rec *rec);
/* A string field; absent → *ret = NULL, or an error when `required`. */
int mock_rec_str(struct mock_rec *rec, const char *key, int required,
                 const char **ret);
/* An unsigned field in [min, max]; absent → *ret = def, or an error when
 * `required`. */
int mock_rec_u64(struct mock_rec *rec, const char *key, int required,
                 uint64_t min, uint64_t max, uint64_t def, uint64_t *ret);
int mock_rec_i64(struct mock_rec *rec, const char *key, int required,
                 int64_t def, int64_t *ret);
/* Fail the load naming the file and line; returns VMH_EIO. */
int mock_rec_fail(struct mock_rec *rec, const char *fmt, ...) VMH_PRINTF(2, 3);

/* Called once per record (not the header and end lines); 0 or an error
 * (message set, preferably with mock_rec_fail).  A field the callback did
 * not read fails the load as corrupt. */
typedef int (*mock_load_fn)(void *opaque, struct mock_rec *rec);

/* With persist: true (and not check-only), read the state file if there is
 * one: *ret_found = 1 and `fn` is called for each record.  No file, or
 * persist: false → *ret_found = 0.  A corrupt file → VMH_EIO, message set. */
int mock_common_load(struct mock_common *mc, mock_load_fn fn, void *opaque,
                     int *ret_found);

#endif /* VMHOST_MOCKCOMMON_H */
