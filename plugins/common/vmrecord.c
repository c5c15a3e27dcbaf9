/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmrecord — the VM record, its JSON and its ABI views: see vmrecord.h. */
#include <config.h>

#include "vmrecord.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abistruct.h"

#define STATE_VERSION 1

/* ---- Freeing -------------------------------------------------------------
 */

#define FREE_STR(p) free(p)
#define FREE_U32(v)
#define FREE_U64(v)
#define FREE_I64(v)
#define FREE_FIELD(type, name) FREE_##type(x->name);

void vm_strv_free(char **v, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

void vm_source_clear(struct vm_source *x) {
  VM_SOURCE_FIELDS(FREE_FIELD)
  vm_strv_free(x->monitors, x->n_monitors);
  free(x->auth_secret);
  memset(x, 0, sizeof *x);
}

static void binding_clear(struct vm_binding *x) {
  VM_BINDING_FIELDS(FREE_FIELD)
  memset(x, 0, sizeof *x);
}

void vm_disk_clear(struct vm_disk *x) {
  VM_DISK_SPEC(FREE_FIELD)
  vm_source_clear(&x->source);
  memset(x, 0, sizeof *x);
}

static void nic_clear(struct vm_nic *x) {
  VM_NIC_SPEC(FREE_FIELD)
  binding_clear(&x->binding);
}

void vm_kv_free(struct vm_kv *kv, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(kv[i].key);
    free(kv[i].value);
  }
  free(kv);
}

void vm_free(struct vm *x) {
  if (!x)
    return;
  VM_SPEC(FREE_FIELD)
  VM_PLACED(FREE_FIELD)
  VM_LIVE(FREE_FIELD)
  for (size_t i = 0; i < x->n_disks; i++)
    vm_disk_clear(&x->disks[i]);
  free(x->disks);
  for (size_t i = 0; i < x->n_nics; i++)
    nic_clear(&x->nics[i]);
  free(x->nics);
  vm_kv_free(x->metadata, x->n_metadata);
  vm_strv_free(x->ips, x->n_ips);
  free(x->agent_version);
  vm_strv_free(x->agent_ips, x->n_agent_ips);
  free(x);
}

/* ---- JSON ----------------------------------------------------------------
 *
 * The format of the state files written before these lists existed: every
 * number as a JSON integer, NULL strings left out. */

void vm_json_put_STR(json_t *o, const char *key, const char *s) {
  if (s)
    json_object_set_new(o, key, json_string(s));
}
void vm_json_put_U32(json_t *o, const char *key, uint32_t v) {
  json_object_set_new(o, key, json_integer(v));
}
void vm_json_put_U64(json_t *o, const char *key, uint64_t v) {
  json_object_set_new(o, key, json_integer((json_int_t)v));
}
void vm_json_put_I64(json_t *o, const char *key, int64_t v) {
  json_object_set_new(o, key, json_integer(v));
}

char *vm_json_get_STR(json_t *o, const char *key, int *bad) {
  json_t *v = json_object_get(o, key);
  if (!v)
    return NULL;
  char *s = json_is_string(v) ? strdup(json_string_value(v)) : NULL;
  if (!s)
    *bad = 1;
  return s;
}

uint64_t vm_json_get_U64(json_t *o, const char *key, int *bad) {
  json_t *v = json_object_get(o, key);
  if (!v)
    return 0;
  if (!json_is_integer(v) || json_integer_value(v) < 0) {
    *bad = 1;
    return 0;
  }
  return (uint64_t)json_integer_value(v);
}

uint32_t vm_json_get_U32(json_t *o, const char *key, int *bad) {
  uint64_t v = vm_json_get_U64(o, key, bad);
  if (v > UINT32_MAX)
    *bad = 1;
  return (uint32_t)v;
}

int64_t vm_json_get_I64(json_t *o, const char *key, int *bad) {
  json_t *v = json_object_get(o, key);
  if (!v)
    return 0;
  if (!json_is_integer(v))
    *bad = 1;
  return json_integer_value(v);
}

#define PUT_FIELD(type, name) vm_json_put_##type(o, #name, x->name);
#define GET_FIELD(type, name) x->name = vm_json_get_##type(o, #name, bad);

static json_t *source_to_json(const struct vm_source *x) {
  json_t *o = json_object();
  VM_SOURCE_FIELDS(PUT_FIELD)
  if (x->n_monitors) {
    json_t *a = json_array();
    for (uint32_t i = 0; i < x->n_monitors; i++)
      json_array_append_new(a, json_string(x->monitors[i]));
    json_object_set_new(o, "monitors", a);
  }
  return o;
}

static void source_from_json(json_t *o, struct vm_source *x, int *bad) {
  VM_SOURCE_FIELDS(GET_FIELD)
  json_t *a = json_object_get(o, "monitors");
  if (!a)
    return;
  size_t n = json_array_size(a);
  if (!json_is_array(a) || n > UINT32_MAX ||
      !(x->monitors = calloc(n ? n : 1, sizeof *x->monitors))) {
    *bad = 1;
    return;
  }
  for (size_t i = 0; i < n; i++) {
    json_t *v = json_array_get(a, i);
    if (!json_is_string(v) ||
        !(x->monitors[x->n_monitors] = strdup(json_string_value(v)))) {
      *bad = 1;
      return;
    }
    x->n_monitors++;
  }
}

static json_t *disk_to_json(const struct vm_disk *x) {
  json_t *o = json_object();
  VM_DISK_SPEC(PUT_FIELD)
  VM_DISK_PLACED(PUT_FIELD)
  if (x->source.type != VMH_SOURCE_NONE)
    json_object_set_new(o, "source", source_to_json(&x->source));
  return o;
}

static void disk_from_json(json_t *o, struct vm_disk *x, int *bad) {
  VM_DISK_SPEC(GET_FIELD)
  VM_DISK_PLACED(GET_FIELD)
  json_t *s = json_object_get(o, "source");
  if (json_is_object(s))
    source_from_json(s, &x->source, bad);
  else if (s)
    *bad = 1;
  if (!x->name || !x->pool || !x->volume)
    *bad = 1;
}

static json_t *binding_to_json(const struct vm_binding *x) {
  json_t *o = json_object();
  VM_BINDING_FIELDS(PUT_FIELD)
  return o;
}

static void binding_from_json(json_t *o, struct vm_binding *x, int *bad) {
  VM_BINDING_FIELDS(GET_FIELD)
}

static json_t *nic_to_json(const struct vm_nic *x) {
  json_t *o = json_object();
  VM_NIC_SPEC(PUT_FIELD)
  VM_NIC_PLACED(PUT_FIELD)
  if (x->bound)
    json_object_set_new(o, "binding", binding_to_json(&x->binding));
  return o;
}

static void nic_from_json(json_t *o, struct vm_nic *x, int *bad) {
  VM_NIC_SPEC(GET_FIELD)
  VM_NIC_PLACED(GET_FIELD)
  json_t *b = json_object_get(o, "binding");
  if (x->bound && json_is_object(b))
    binding_from_json(b, &x->binding, bad);
  else if (x->bound)
    *bad = 1;
  if (!x->name || !x->network)
    *bad = 1;
}

json_t *vm_to_json(const struct vm *x) {
  json_t *o = json_object();
  if (!o)
    return NULL;
  vm_json_put_U32(o, "version", STATE_VERSION);
  VM_SPEC(PUT_FIELD)
  VM_PLACED(PUT_FIELD)
  json_t *a = json_array();
  for (size_t i = 0; i < x->n_disks; i++)
    json_array_append_new(a, disk_to_json(&x->disks[i]));
  json_object_set_new(o, "disks", a);
  a = json_array();
  for (size_t i = 0; i < x->n_nics; i++)
    json_array_append_new(a, nic_to_json(&x->nics[i]));
  json_object_set_new(o, "nics", a);
  json_t *md = json_object();
  for (size_t i = 0; i < x->n_metadata; i++)
    json_object_set_new(md, x->metadata[i].key,
                        json_string(x->metadata[i].value));
  json_object_set_new(o, "metadata", md);
  return o;
}

/* An array of n elements of `size` bytes for the JSON array at key (none:
 * NULL, 0); *bad set when it is not an array or memory runs out. */
static void *array_of(json_t *o, const char *key, size_t size, size_t *n,
                      int *bad) {
  json_t *a = json_object_get(o, key);
  *n = 0;
  if (!a)
    return NULL;
  if (!json_is_array(a)) {
    *bad = 1;
    return NULL;
  }
  void *v = calloc(json_array_size(a) ? json_array_size(a) : 1, size);
  if (v)
    *n = json_array_size(a);
  else
    *bad = 1;
  return v;
}

static void metadata_from_json(json_t *md, struct vm *x, int *bad) {
  if (!md)
    return;
  if (!json_is_object(md) ||
      !(x->metadata = calloc(json_object_size(md) ? json_object_size(md) : 1,
                             sizeof *x->metadata))) {
    *bad = 1;
    return;
  }
  const char *k;
  json_t *v;
  json_object_foreach(md, k, v) {
    if (!json_is_string(v)) {
      *bad = 1;
      return;
    }
    struct vm_kv *kv = &x->metadata[x->n_metadata++];
    kv->key = strdup(k);
    kv->value = strdup(json_string_value(v));
    if (!kv->key || !kv->value)
      *bad = 1;
  }
}

static void vm_fill_from_json(json_t *o, struct vm *x, int *bad) {
  if (vm_json_get_U32(o, "version", bad) != STATE_VERSION)
    *bad = 1;
  VM_SPEC(GET_FIELD)
  VM_PLACED(GET_FIELD)
  if (!x->id || !x->name)
    *bad = 1;
  size_t n;
  x->disks = array_of(o, "disks", sizeof *x->disks, &n, bad);
  for (size_t i = 0; x->disks && i < n; i++) {
    x->n_disks++;
    disk_from_json(json_array_get(json_object_get(o, "disks"), i), &x->disks[i],
                   bad);
  }
  x->nics = array_of(o, "nics", sizeof *x->nics, &n, bad);
  for (size_t i = 0; x->nics && i < n; i++) {
    x->n_nics++;
    nic_from_json(json_array_get(json_object_get(o, "nics"), i), &x->nics[i],
                  bad);
  }
  metadata_from_json(json_object_get(o, "metadata"), x, bad);
}

struct vm *vm_from_json(json_t *o) {
  int bad = !json_is_object(o);
  struct vm *x = calloc(1, sizeof *x);
  if (!x)
    return NULL;
  if (!bad)
    vm_fill_from_json(o, x, &bad);
  if (bad) {
    vm_free(x);
    return NULL;
  }
  return x;
}

/* ---- From the ABI's structs ----------------------------------------------
 */

/* *dst = a copy of src (NULL stays NULL); -1 when out of memory. */
static int dup_str(char **dst, const char *src) {
  *dst = src ? strdup(src) : NULL;
  return src && !*dst ? -1 : 0;
}

#define COPY_STR(dst, src) dup_str(&(dst), (src))
#define COPY_U32(dst, src) ((dst) = (src), 0)
#define COPY_U64(dst, src) ((dst) = (src), 0)
#define COPY_I64(dst, src) ((dst) = (src), 0)
#define COPY_FIELD(type, name) bad |= COPY_##type(x->name, in.name);

static int strv_copy(char ***dst, uint32_t *n_dst, const char *const *src,
                     uint32_t n) {
  *dst = NULL;
  *n_dst = 0;
  if (!n || !src)
    return 0;
  if (!(*dst = calloc(n, sizeof **dst)))
    return VMH_ENOMEM;
  for (uint32_t i = 0; i < n; i++) {
    if (dup_str(&(*dst)[i], src[i]) < 0)
      return VMH_ENOMEM;
    ++*n_dst;
  }
  return 0;
}

int vm_source_copy(struct vm_source *x, const struct vmh_disk_source *src) {
  struct vmh_disk_source in;
  COPY_IN(in, src);
  vm_source_clear(x);
  int bad = 0;
  VM_SOURCE_FIELDS(COPY_FIELD)
  bad |= dup_str(&x->auth_secret, in.auth_secret);
  if (bad ||
      strv_copy(&x->monitors, &x->n_monitors, in.monitors, in.n_monitors) < 0)
    return VMH_ENOMEM;
  return 0;
}

int vm_source_record(struct vm_source *dst, const struct vm_source *src) {
  struct vmh_disk_source view;
  vm_source_view(src, &view);
  view.auth_secret = NULL;
  return vm_source_copy(dst, &view);
}

int vm_binding_copy(struct vm_binding *x, const struct vmh_nic_binding *src) {
  struct vmh_nic_binding in;
  COPY_IN(in, src);
  binding_clear(x);
  int bad = 0;
  VM_BINDING_FIELDS(COPY_FIELD)
  return bad ? VMH_ENOMEM : 0;
}

int vm_disk_copy(struct vm_disk *x, const struct vmh_disk *src,
                 uint32_t flags) {
  struct vmh_disk in;
  COPY_IN(in, src);
  memset(x, 0, sizeof *x);
  int bad = 0;
  VM_DISK_SPEC(COPY_FIELD)
  if (bad)
    return VMH_ENOMEM;
  if ((flags & VM_COPY_RESOLVED) && in.source)
    return vm_source_copy(&x->source, in.source);
  return 0;
}

static int nic_copy(struct vm_nic *x, const struct vmh_nic *src,
                    uint32_t flags) {
  struct vmh_nic in;
  COPY_IN(in, src);
  int bad = 0;
  VM_NIC_SPEC(COPY_FIELD)
  if (bad)
    return VMH_ENOMEM;
  if (!(flags & VM_COPY_RESOLVED) || !in.binding)
    return 0;
  x->bound = 1;
  return vm_binding_copy(&x->binding, in.binding);
}

static int disk_copy_v(void *dst, const void *src, uint32_t flags) {
  return vm_disk_copy(dst, src, flags);
}

static int nic_copy_v(void *dst, const void *src, uint32_t flags) {
  return nic_copy(dst, src, flags);
}

static int kv_copy_v(void *dst, const void *src, uint32_t flags) {
  struct vm_kv *x = dst;
  const struct vmh_keyval *in = src;
  (void)flags;
  return dup_str(&x->key, in->key) < 0 || dup_str(&x->value, in->value) < 0
             ? VMH_ENOMEM
             : 0;
}

/* A new array of n elements of `size` bytes, each copied by copy() from
 * the element of src at that index (src's elements are `stride` apart);
 * *n_done counts those begun, for the free.  *bad set when out of memory. */
static void *copy_array(const void *src, size_t stride, uint32_t n, size_t size,
                        size_t *n_done,
                        int (*copy)(void *, const void *, uint32_t),
                        uint32_t flags, int *bad) {
  if (!n || !src)
    return NULL;
  char *v = calloc(n, size);
  if (!v)
    *bad = 1;
  for (uint32_t i = 0; v && !*bad && i < n; i++) {
    ++*n_done;
    if (copy(v + i * size, (const char *)src + i * stride, flags) < 0)
      *bad = 1;
  }
  return v;
}

int vm_copy_spec(struct vm *x, const struct vmh_vm_spec *src, uint32_t flags) {
  struct vmh_vm_spec in;
  COPY_IN(in, src);
  int bad = 0;
  VM_SPEC(COPY_FIELD)
  if (in.n_disks && in.disks)
    x->disks =
        copy_array(in.disks, in.disks[0].struct_size, in.n_disks,
                   sizeof *x->disks, &x->n_disks, disk_copy_v, flags, &bad);
  if (in.n_nics && in.nics)
    x->nics = copy_array(in.nics, in.nics[0].struct_size, in.n_nics,
                         sizeof *x->nics, &x->n_nics, nic_copy_v, flags, &bad);
  x->metadata =
      copy_array(in.metadata, sizeof *in.metadata, in.n_metadata,
                 sizeof *x->metadata, &x->n_metadata, kv_copy_v, flags, &bad);
  return bad ? VMH_ENOMEM : 0;
}

/* ---- To the ABI's structs ------------------------------------------------
 */

#define VIEW_FIELD(type, name) out->name = x->name;

void vm_source_view(const struct vm_source *x, struct vmh_disk_source *out) {
  *out = (struct vmh_disk_source){.struct_size = sizeof *out};
  VM_SOURCE_FIELDS(VIEW_FIELD)
  out->monitors = (const char *const *)x->monitors;
  out->n_monitors = x->n_monitors;
  out->auth_secret = x->auth_secret;
}

static void binding_view(const struct vm_binding *x,
                         struct vmh_nic_binding *out) {
  *out = (struct vmh_nic_binding){.struct_size = sizeof *out};
  VM_BINDING_FIELDS(VIEW_FIELD)
}

void vm_disk_view(const struct vm_disk *x, struct vmh_disk *out,
                  struct vmh_disk_source *source) {
  *out = (struct vmh_disk){.struct_size = sizeof *out};
  VM_DISK_SPEC(VIEW_FIELD)
  if (x->source.type != VMH_SOURCE_NONE) {
    vm_source_view(&x->source, source);
    out->source = source;
  }
}

static void nic_view(const struct vm_nic *x, struct vmh_nic *out,
                     struct vmh_nic_binding *binding) {
  *out = (struct vmh_nic){.struct_size = sizeof *out};
  VM_NIC_SPEC(VIEW_FIELD)
  if (x->bound) {
    binding_view(&x->binding, binding);
    out->binding = binding;
    /* The address the port has, which the network may have chosen. */
    if (x->binding.mac)
      out->mac = x->binding.mac;
  }
}

static void info_view(const struct vm *x, struct vmh_vm_info *out) {
  *out = (struct vmh_vm_info){.struct_size = sizeof *out};
  VM_LIVE(VIEW_FIELD)
  out->id = x->id;
  out->name = x->name;
  out->state = x->state;
  out->vcpus = x->vcpus;
  out->memory = x->memory;
  out->ips = (const char *const *)x->ips;
  out->n_ips = (uint32_t)x->n_ips;
}

void vm_view_free(struct vm_view *v) {
  free(v->disks);
  free(v->sources);
  free(v->nics);
  free(v->bindings);
  free(v->metadata);
  memset(v, 0, sizeof *v);
}

int vm_view_init(struct vm_view *v, const struct vm *x) {
  memset(v, 0, sizeof *v);
  size_t nd = x->n_disks ? x->n_disks : 1, nn = x->n_nics ? x->n_nics : 1;
  v->disks = calloc(nd, sizeof *v->disks);
  v->sources = calloc(nd, sizeof *v->sources);
  v->nics = calloc(nn, sizeof *v->nics);
  v->bindings = calloc(nn, sizeof *v->bindings);
  v->metadata = calloc(x->n_metadata ? x->n_metadata : 1, sizeof *v->metadata);
  if (!v->disks || !v->sources || !v->nics || !v->bindings || !v->metadata) {
    vm_view_free(v);
    return VMH_ENOMEM;
  }
  for (size_t i = 0; i < x->n_disks; i++)
    vm_disk_view(&x->disks[i], &v->disks[i], &v->sources[i]);
  for (size_t i = 0; i < x->n_nics; i++)
    nic_view(&x->nics[i], &v->nics[i], &v->bindings[i]);
  for (size_t i = 0; i < x->n_metadata; i++)
    v->metadata[i] =
        (struct vmh_keyval){x->metadata[i].key, x->metadata[i].value};

  struct vmh_vm_spec *out = &v->spec;
  *out = (struct vmh_vm_spec){.struct_size = sizeof *out};
  VM_SPEC(VIEW_FIELD)
  out->disks = v->disks;
  out->n_disks = (uint32_t)x->n_disks;
  out->nics = v->nics;
  out->n_nics = (uint32_t)x->n_nics;
  out->metadata = v->metadata;
  out->n_metadata = (uint32_t)x->n_metadata;

  info_view(x, &v->info);
  return 0;
}
