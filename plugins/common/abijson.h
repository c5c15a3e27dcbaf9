/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* abijson — the ABI's result and request structs as JSON (jansson).
 *
 * In-tree convenience code shared by the front-ends that speak JSON (the
 * test-only ctl front-end and rest); never installed, not part of the ABI.
 *
 * Encoders: abij_<thing>(struct) returns a new JSON object (the caller owns
 * the reference), or NULL when out of memory.  They read only the fields
 * inside the struct's struct_size (types.h) and walk arrays with their
 * elements' struct_size as the stride.  Enums go out by name; a value
 * without a name goes out as its number.
 *
 * Decoders: abij_<field>(in, obj, where, key, &ret) read one member of a
 * JSON object into an ABI field.  Each returns 0, or a negative VMH_E* code
 * with in->err set to a message naming the field (`where` prefixes it:
 * "spec.disks[0].").  Strings are copied into in->arena, which the caller
 * frees with abij_arena_free() once the core call has returned (the core
 * copies its arguments).  An absent or null member reads as NULL / 0.
 *
 * With ABIJ_STRICT (an API's edge) decoders also refuse what a lenient
 * test tool lets through to the core: enums given as numbers, names that
 * break the name rule (vmh_name_valid), numbers out of their range, a VM
 * spec without a name, vcpus or memory.
 */
#ifndef VMH_ABIJSON_H
#define VMH_ABIJSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <vmhost/vmhost-plugin.h>

/* ---- Encoding ---------------------------------------------------------- */

/* A string, or null for NULL.  Bytes that are not UTF-8 (plugins' messages
 * are not guaranteed to be) become U+FFFD. */
json_t *abij_str(const char *s);
/* An unsigned 64-bit number; above INT64_MAX (jansson's limit) a real. */
json_t *abij_u64(uint64_t v);

json_t *abij_vm(const struct vmh_vm_record *vm);
json_t *abij_snapshot(const struct vmh_snapshot_info *snap);
json_t *abij_console(const struct vmh_console_info *console);
json_t *abij_pool(const struct vmh_pool_info *pool);
json_t *abij_volume(const struct vmh_volume_info *vol);
json_t *abij_image(const struct vmh_image_info *img);
json_t *abij_network(const struct vmh_network_info *net);
json_t *abij_host(const struct vmh_host_info *host);
/* The same record as the compact JSON text json_dumps(abij_host(host),
 * JSON_COMPACT) would write (the same bytes), without a tree: a malloc'ed
 * string into *ret (the caller frees) and its length, 0; or -1 when out
 * of memory or when a value needs the tree's handling (a string that is
 * not UTF-8, a number past INT64_MAX). */
int abij_host_text(const struct vmh_host_info *host, char **ret,
                   size_t *ret_len);
json_t *abij_check(const struct vmh_health_check *check);
json_t *abij_plugin(const struct vmh_plugin_info *plugin);
json_t *abij_event(const struct vmh_event *ev);
/* {"id","kind","status","target":{vm_id,vm_name,pool,object},
 *  "progress":{percent (null: unknown),done,total,message},
 *  "error":null|{code,message},"created_us","updated_us"}. */
json_t *abij_operation(const struct vmh_operation *op);
/* "queued" … "cancelled" for enum vmh_op_status; "" for others. */
const char *abij_operation_status(uint32_t status);
/* A guest agent's answer (its op's fields; bytes as UTF-8 text or
 * base64, with "<key>_encoding"). */
json_t *abij_agent(const struct vmh_agent_result *res);
/* len bytes as a base64 string. */
json_t *abij_base64(const uint8_t *p, size_t len);
/* Decodes base64 in into out (size bytes); the length, or -1 when in is
 * not base64 or does not fit. */
long abij_unbase64(const char *in, uint8_t *out, size_t size);

/* A core reply whose visitors encode each result: result() gets the
 * kind's key ("vms", "snapshots", "console", "pools", "volumes", "images",
 * "networks", "host", "checks", "plugins", "operations") and a new reference
 * (NULL when out of memory); text() and done() are the reply's own.  They run
 * where the core calls the visitors (core.h).  Give &r->reply to the core; r
 * must live until done(). */
struct abij_reply {
  struct vmh_reply reply;
  void *opaque;
  void (*result)(void *opaque, const char *key, json_t *v);
  void (*text)(void *opaque, const char *text, size_t len);
  void (*done)(void *opaque, int code, const char *message);
};
void abij_reply_init(struct abij_reply *r, void *opaque,
                     void (*result)(void *, const char *, json_t *),
                     void (*text)(void *, const char *, size_t),
                     void (*done)(void *, int, const char *));

/* ---- Decoding ---------------------------------------------------------- */

/* The names of an enum, indexed by value ("" where a value has none). */
struct abij_enum {
  const char *const *names;
  size_t n;
};
extern const struct abij_enum abij_formats, abij_buses, abij_nic_models,
    abij_actions, abij_vm_states;
/* Event types by name (enum vmh_event_type, "reset" included). */
extern const struct abij_enum abij_event_types;

/* Memory for decoded arguments: many blocks, freed together. */
struct abij_arena {
  void **v;
  size_t n, cap;
};

#define ABIJ_STRICT (UINT32_C(1) << 0)

struct abij_in {
  uint32_t flags; /* ABIJ_STRICT */
  struct abij_arena arena;
  char err[512]; /* the last refusal's message */
};

/* Frees every block and leaves the arena empty (reusable). */
void abij_arena_free(struct abij_arena *a);
/* size zeroed bytes that live until abij_arena_free; NULL: no memory. */
void *abij_arena_alloc(struct abij_arena *a, size_t size);

/* Sets in->err from the format; returns VMH_EINVAL. */
int abij_refuse(struct abij_in *in, const char *fmt, ...)
    __attribute__((__format__(__printf__, 2, 3)));

/* Refuses any member of obj not in keys (NULL-terminated). */
int abij_only_keys(struct abij_in *in, json_t *obj, const char *where,
                   const char *const *keys);
int abij_string(struct abij_in *in, json_t *obj, const char *where,
                const char *key, const char **ret);
/* A string that must be a name (vmh_name_valid) under ABIJ_STRICT,
 * any string otherwise. */
int abij_name(struct abij_in *in, json_t *obj, const char *where,
              const char *key, const char **ret);
int abij_bool(struct abij_in *in, json_t *obj, const char *where,
              const char *key, uint32_t *ret);
/* An integer in [0, max]. */
int abij_uint(struct abij_in *in, json_t *obj, const char *where,
              const char *key, uint64_t max, uint64_t *ret);
/* A size in bytes: an integer, or a string with a unit as the config takes
 * it ("2GiB", sizes.h); in [lo, hi] under ABIJ_STRICT, [0, hi] otherwise. */
int abij_size(struct abij_in *in, json_t *obj, const char *where,
              const char *key, uint64_t lo, uint64_t hi, uint64_t *ret);
int abij_u32(struct abij_in *in, json_t *obj, const char *where,
             const char *key, uint32_t *ret);
/* One of e's names; any number too unless ABIJ_STRICT. */
int abij_enum(struct abij_in *in, json_t *obj, const char *where,
              const char *key, const struct abij_enum *e, uint32_t *ret);
int abij_object(struct abij_in *in, json_t *obj, const char *where,
                const char *key, json_t **ret);
int abij_array(struct abij_in *in, json_t *obj, const char *where,
               const char *key, json_t **ret);

/* Whole structs; *ret is set up with its struct_size. */
int abij_disk_in(struct abij_in *in, json_t *o, const char *where,
                 struct vmh_disk *ret);
int abij_nic_in(struct abij_in *in, json_t *o, const char *where,
                struct vmh_nic *ret);
int abij_spec_in(struct abij_in *in, json_t *o, const char *where,
                 struct vmh_vm_spec *ret);
int abij_volume_spec_in(struct abij_in *in, json_t *o, const char *where,
                        struct vmh_volume_spec *ret);
int abij_image_spec_in(struct abij_in *in, json_t *o, const char *where,
                       struct vmh_image_spec *ret);

#endif /* VMH_ABIJSON_H */
