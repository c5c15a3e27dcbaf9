/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The plugin loader.  Every refusal is one line naming the file and the
 * reason; the reasons are listed in tests/test-loader.sh and README. */
#include <config.h>

#include "loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <link.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "conftree.h"
#include "error.h"
#include "log.h"
#include "ptrvec.h"
#include "settings.h"

/* One operation of an ops table: its name, where it lives, and whether the
 * loader refuses a plugin without it. */
struct op_desc {
  const char *name;
  size_t offset;
  int required;
};

#define OP(type, field, req) \
  { #field, offsetof(struct type, field), req }

static const struct op_desc hypervisor_ops[] = {
    OP(vmh_hypervisor_ops, open, 1),
    OP(vmh_hypervisor_ops, close, 1),
    OP(vmh_hypervisor_ops, health, 0),
    OP(vmh_hypervisor_ops, caps, 1),
    OP(vmh_hypervisor_ops, define, 1),
    OP(vmh_hypervisor_ops, undefine, 1),
    OP(vmh_hypervisor_ops, start, 1),
    OP(vmh_hypervisor_ops, stop, 1),
    OP(vmh_hypervisor_ops, reboot, 0),
    OP(vmh_hypervisor_ops, pause, 0),
    OP(vmh_hypervisor_ops, resume, 0),
    OP(vmh_hypervisor_ops, get, 1),
    OP(vmh_hypervisor_ops, list, 1),
    OP(vmh_hypervisor_ops, console, 0),
    OP(vmh_hypervisor_ops, snapshot_create, 0),
    OP(vmh_hypervisor_ops, snapshot_list, 0),
    OP(vmh_hypervisor_ops, snapshot_revert, 0),
    OP(vmh_hypervisor_ops, snapshot_delete, 0),
    OP(vmh_hypervisor_ops, attach_disk, 0),
    OP(vmh_hypervisor_ops, detach_disk, 0),
};

static const struct op_desc storage_ops[] = {
    OP(vmh_storage_ops, open, 1),       OP(vmh_storage_ops, close, 1),
    OP(vmh_storage_ops, health, 0),     OP(vmh_storage_ops, pool_info, 1),
    OP(vmh_storage_ops, vol_list, 1),   OP(vmh_storage_ops, vol_get, 1),
    OP(vmh_storage_ops, vol_create, 1), OP(vmh_storage_ops, vol_delete, 1),
    OP(vmh_storage_ops, vol_resize, 0), OP(vmh_storage_ops, vol_source, 1),
    OP(vmh_storage_ops, vol_unmap, 0),  OP(vmh_storage_ops, image_import, 0),
    OP(vmh_storage_ops, image_list, 0), OP(vmh_storage_ops, image_delete, 0),
};

static const struct op_desc network_ops[] = {
    OP(vmh_network_ops, open, 1),      OP(vmh_network_ops, close, 1),
    OP(vmh_network_ops, health, 0),    OP(vmh_network_ops, info, 1),
    OP(vmh_network_ops, port_bind, 1), OP(vmh_network_ops, port_unbind, 1),
    OP(vmh_network_ops, port_list, 0), OP(vmh_network_ops, port_addresses, 0),
};

static const struct op_desc frontend_ops[] = {
    OP(vmh_frontend_ops, open, 1),   OP(vmh_frontend_ops, close, 1),
    OP(vmh_frontend_ops, health, 0), OP(vmh_frontend_ops, start, 1),
    OP(vmh_frontend_ops, stop, 1),   OP(vmh_frontend_ops, agent_call, 0),
};

struct kind_desc {
  const struct op_desc *ops;
  size_t n_ops;
  size_t size;        /* the core's sizeof of the ops table */
  size_t desc_offset; /* where the descriptor points at this kind's table */
};

#define KIND(table, type, member)                               \
  {                                                             \
    table, sizeof table / sizeof table[0], sizeof(struct type), \
        offsetof(struct vmh_plugin, member)                     \
  }

static const struct kind_desc kinds[] = {
    [VMH_KIND_HYPERVISOR] =
        KIND(hypervisor_ops, vmh_hypervisor_ops, hypervisor),
    [VMH_KIND_STORAGE] = KIND(storage_ops, vmh_storage_ops, storage),
    [VMH_KIND_NETWORK] = KIND(network_ops, vmh_network_ops, network),
    [VMH_KIND_FRONTEND] = KIND(frontend_ops, vmh_frontend_ops, frontend),
};

/* ABI 1.0 already had every field of the descriptor. */
#define DESC_MIN_SIZE (offsetof(struct vmh_plugin, frontend) + sizeof(void *))

static struct plugin **registry;
static size_t n_registry;

/* The config section that holds instances of a kind. */
static const char *kind_section(int kind) {
  static const char *const sections[] = {
      [VMH_KIND_HYPERVISOR] = "hypervisors",
      [VMH_KIND_STORAGE] = "storage",
      [VMH_KIND_NETWORK] = "networks",
      [VMH_KIND_FRONTEND] = "frontends",
  };
  return sections[kind];
}

static int valid_kind(uint32_t kind) {
  return kind >= VMH_KIND_HYPERVISOR && kind <= VMH_KIND_FRONTEND;
}

const char *thread_model_name(uint32_t model) {
  switch (model) {
    case VMH_THREAD_SERIALIZE_ALL:
      return "serialize_all";
    case VMH_THREAD_SERIALIZE_INSTANCE:
      return "serialize_instance";
    case VMH_THREAD_PARALLEL:
      return "parallel";
  }
  return NULL;
}

/* The smallest ops table that holds every required operation. */
static size_t ops_min_size(const struct kind_desc *k) {
  size_t min = sizeof(uint32_t);
  for (size_t i = 0; i < k->n_ops; i++)
    if (k->ops[i].required && k->ops[i].offset + sizeof(void *) > min)
      min = k->ops[i].offset + sizeof(void *);
  return min;
}

static void *op_ptr(const struct plugin *p, const struct op_desc *op) {
  void *fn;
  memcpy(&fn, (const char *)&p->ops + op->offset, sizeof fn);
  return fn;
}

/* Check the descriptor and copy it and its ops table into p. */
static int check_plugin(struct plugin *p, const struct vmh_plugin *d,
                        int want_kind, const char *instance) {
  const char *file = p->file;

  if (d->struct_size < DESC_MIN_SIZE)
    return error_code(VMH_EINVAL,
                      "%s: descriptor struct_size %" PRIu32
                      " is too small (at least %zu)",
                      file, d->struct_size, (size_t)DESC_MIN_SIZE);
  if (d->abi_major != VMH_ABI_MAJOR)
    return error_code(VMH_EINVAL,
                      "%s: ABI major %" PRIu32
                      " is not supported (this vmhostd speaks ABI %d.%d)",
                      file, d->abi_major, VMH_ABI_MAJOR, VMH_ABI_MINOR);
  if (d->abi_minor > VMH_ABI_MINOR)
    return error_code(VMH_EINVAL,
                      "%s: ABI minor %" PRIu32 ".%" PRIu32
                      " is newer than this vmhostd (ABI %d.%d)",
                      file, d->abi_major, d->abi_minor, VMH_ABI_MAJOR,
                      VMH_ABI_MINOR);
  memcpy(&p->desc, d,
         d->struct_size < sizeof p->desc ? d->struct_size : sizeof p->desc);

  if (!valid_kind(p->desc.kind))
    return error_code(VMH_EINVAL, "%s: unknown plugin kind %" PRIu32, file,
                      p->desc.kind);
  if (!thread_model_name(p->desc.thread_model))
    return error_code(VMH_EINVAL, "%s: unknown thread model %" PRIu32, file,
                      p->desc.thread_model);
  if (!vmh_name_valid(p->desc.name))
    return error_code(VMH_EINVAL,
                      "%s: plugin name '%s' is invalid (expected " VMH_NAME_RULE
                      ")",
                      file, p->desc.name ? p->desc.name : "");
  if (want_kind && (int)p->desc.kind != want_kind)
    return error_code(
        VMH_EINVAL, "%s: is a %s plugin, but instance '%s' is under %s", file,
        kind_name(p->desc.kind), instance, kind_section(want_kind));

  const struct kind_desc *k = &kinds[p->desc.kind];
  const void *ops;
  memcpy(&ops, (const char *)&p->desc + k->desc_offset, sizeof ops);
  if (!ops)
    return error_code(VMH_EINVAL, "%s: ops table of kind %s is missing", file,
                      kind_name(p->desc.kind));
  uint32_t ops_size;
  memcpy(&ops_size, ops, sizeof ops_size);
  if (ops_size < ops_min_size(k))
    return error_code(VMH_EINVAL,
                      "%s: ops struct_size %" PRIu32
                      " is too small (at least %zu)",
                      file, ops_size, ops_min_size(k));
  p->ops_size = ops_size;
  memcpy(&p->ops, ops, ops_size < k->size ? ops_size : k->size);

  for (size_t i = 0; i < k->n_ops; i++)
    if (k->ops[i].required && !op_ptr(p, &k->ops[i]))
      return error_code(VMH_EINVAL, "%s: required operation '%s' is missing",
                        file, k->ops[i].name);

  for (size_t i = 0; i < n_registry; i++) {
    const struct plugin *o = registry[i];
    if (o->desc.kind == p->desc.kind && strcmp(o->desc.name, p->desc.name) == 0)
      return error_code(VMH_EINVAL,
                        "%s: plugin '%s' (%s) is already loaded from %s", file,
                        p->desc.name, kind_name(p->desc.kind), o->file);
  }
  return 0;
}

/* Count the strong global symbols the dynamic symbol table of the ELF image
 * (map, size) defines besides vmh_plugin_entry, and list them in buf,
 * comma-separated and cut to len.  Weak and unique symbols are not counted:
 * C++ compilers emit them for the standard library's templates whatever the
 * visibility (docs/design.md, rule 1).  A malformed image has none. */
static int count_extra_exports(const unsigned char *map, size_t size, char *buf,
                               size_t len) {
  const ElfW(Ehdr) *eh = (const void *)map;
  int n = 0;

  buf[0] = '\0';
  if (size < sizeof *eh || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
      eh->e_shentsize != sizeof(ElfW(Shdr)) || eh->e_shoff > size ||
      eh->e_shnum > (size - eh->e_shoff) / sizeof(ElfW(Shdr)))
    return 0;
  const ElfW(Shdr) *sh = (const void *)(map + eh->e_shoff);
  for (size_t i = 0; i < eh->e_shnum; i++) {
    if (sh[i].sh_type != SHT_DYNSYM || sh[i].sh_link >= eh->e_shnum)
      continue;
    const ElfW(Shdr) *str = &sh[sh[i].sh_link];
    if (sh[i].sh_offset > size || sh[i].sh_size > size - sh[i].sh_offset ||
        str->sh_offset > size || str->sh_size > size - str->sh_offset ||
        str->sh_size == 0 || map[str->sh_offset + str->sh_size - 1] != '\0')
      return 0;
    const ElfW(Sym) *sym = (const void *)(map + sh[i].sh_offset);
    const char *names = (const char *)map + str->sh_offset;
    for (size_t j = 0; j < sh[i].sh_size / sizeof *sym; j++) {
      const char *name = names + sym[j].st_name;
      if (sym[j].st_name >= str->sh_size || sym[j].st_shndx == SHN_UNDEF ||
          ELF64_ST_BIND(sym[j].st_info) != STB_GLOBAL || /* = ELF32_ */
          strcmp(name, "vmh_plugin_entry") == 0)
        continue;
      size_t used = strlen(buf);
      if (used + 1 < len)
        snprintf(buf + used, len - used, "%s%s", n ? "," : "", name);
      n++;
    }
  }
  return n;
}

/* count_extra_exports of a plugin file; 0 if it cannot be read. */
static int extra_exports(const char *file, char *buf, size_t len) {
  _cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC);
  struct stat st;
  buf[0] = '\0';
  if (fd < 0 || fstat(fd, &st) < 0 || st.st_size <= 0)
    return 0;
  void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (map == MAP_FAILED)
    return 0;
  int n = count_extra_exports(map, (size_t)st.st_size, buf, len);
  munmap(map, (size_t)st.st_size);
  return n;
}

/* Whether st is owned by root or by the daemon's own user. */
static int trusted_owner(const struct stat *st) {
  return st->st_uid == 0 || st->st_uid == geteuid();
}

/* Like sshd's StrictModes: a plugin runs as the daemon (its constructors
 * even before the loader sees its descriptor), so whoever may replace the
 * file, or rename another into its place, owns the daemon.  path is
 * absolute and resolved.  The file and its directory must be owned by root
 * or the daemon's user and writable by no one else; a directory further up
 * may be writable by others only when sticky (/tmp), where no one can
 * rename what another user owns. */
static int check_trusted(const char *path) {
  struct stat st;
  if (stat(path, &st) < 0)
    return error_code(VMH_EINVAL, "%s: cannot load: %s", path, strerror(errno));
  if (!S_ISREG(st.st_mode))
    return error_code(VMH_EINVAL, "%s: cannot load: not a regular file", path);
  if (!trusted_owner(&st))
    return error_code(VMH_EPERM,
                      "%s: refused: owned by uid %u, not by root or the "
                      "daemon's user (uid %u)",
                      path, (unsigned)st.st_uid, (unsigned)geteuid());
  if (st.st_mode & (S_IWGRP | S_IWOTH))
    return error_code(VMH_EPERM,
                      "%s: refused: the file is group- or world-writable "
                      "(mode %04o; chmod go-w it)",
                      path, (unsigned)(st.st_mode & 07777));
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  for (int first = 1;; first = 0) {
    char *slash = strrchr(dir, '/');
    if (!slash)
      return 0;
    slash[slash == dir] = '\0'; /* keep "/" itself */
    if (stat(dir, &st) < 0)
      return error_code(VMH_EINVAL, "%s: cannot check %s: %s", path, dir,
                        strerror(errno));
    if (!trusted_owner(&st))
      return error_code(VMH_EPERM,
                        "%s: refused: directory %s is owned by uid %u, not by "
                        "root or the daemon's user (uid %u)",
                        path, dir, (unsigned)st.st_uid, (unsigned)geteuid());
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) &&
        (first || !(st.st_mode & S_ISVTX)))
      return error_code(VMH_EPERM,
                        "%s: refused: directory %s is group- or "
                        "world-writable (mode %04o; chmod go-w it)",
                        path, dir, (unsigned)(st.st_mode & 07777));
    if (!strcmp(dir, "/"))
      return 0;
  }
}

static void plugin_free(struct plugin *p) {
  if (!p)
    return;
  if (p->dl)
    dlclose(p->dl);
  free(p->file);
  free(p);
}

int loader_load(const char *file, int want_kind, const char *instance,
                struct plugin **ret) {
  char path[PATH_MAX];
  if (!realpath(file, path))
    return error_code(VMH_EINVAL, "%s: cannot load: %s", file, strerror(errno));

  for (size_t i = 0; i < n_registry; i++) {
    struct plugin *o = registry[i];
    if (strcmp(o->file, path) != 0)
      continue;
    if (want_kind && (int)o->desc.kind != want_kind)
      return error_code(
          VMH_EINVAL, "%s: is a %s plugin, but instance '%s' is under %s", path,
          kind_name(o->desc.kind), instance, kind_section(want_kind));
    *ret = o;
    return 0;
  }

  struct plugin *p = calloc(1, sizeof *p);
  if (!p || !(p->file = strdup(path))) {
    free(p);
    return error_code(VMH_ENOMEM, "%s: out of memory", path);
  }
  int r = VMH_EINVAL;
  if ((r = check_trusted(path)) < 0)
    goto fail;
  r = VMH_EINVAL;
  /* Never unloaded: a plugin's threads or atexit handlers may outlive
   * close(), and a stable address keeps backtraces readable. */
  p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (!p->dl) {
    error_set("%s: cannot load: %s", path, dlerror());
    goto fail;
  }
  vmh_plugin_entry_fn entry;
  void *sym = dlsym(p->dl, "vmh_plugin_entry");
  if (!sym) {
    error_set("%s: no vmh_plugin_entry symbol (not a vmhost plugin?)", path);
    goto fail;
  }
  memcpy(&entry, &sym, sizeof entry);
  const struct vmh_plugin *d = entry();
  if (!d) {
    error_set("%s: vmh_plugin_entry returned NULL", path);
    goto fail;
  }
  if ((r = check_plugin(p, d, want_kind, instance)) < 0)
    goto fail;
  /* A warning, not a refusal: opened RTLD_LOCAL, the extra symbols harm no
   * other plugin, but the plugin's own calls to them may bind elsewhere. */
  char extra[256];
  int n_extra = extra_exports(path, extra, sizeof extra);
  if (n_extra > 0)
    log_warn(
        "%s: exports %d symbol%s besides vmh_plugin_entry (%s): its "
        "calls to them may bind to same-named symbols of vmhostd or its "
        "libraries; build with -fvisibility=hidden or a version script",
        path, n_extra, n_extra == 1 ? "" : "s", extra);

  struct plugin **n = realloc(registry, (n_registry + 1) * sizeof *n);
  if (!n) {
    r = error_code(VMH_ENOMEM, "%s: out of memory", path);
    goto fail;
  }
  registry = n;
  pthread_mutex_init(&p->lock, NULL);
  registry[n_registry++] = p;
  *ret = p;
  return 0;

fail:
  plugin_free(p);
  return r;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(struct ptrvec *v) {
  for (size_t i = 0; i < v->n; i++)
    free(v->v[i]);
  ptrvec_free(v);
}

/* Adds the name of each plugin of a kind in dir (files <kind>-<name>.so)
 * to v, each once; -1 when memory runs out. */
static int add_available(struct ptrvec *v, const char *dir, int kind) {
  char prefix[32];
  size_t np = (size_t)snprintf(prefix, sizeof prefix, "%s-", kind_name(kind));
  DIR *d = opendir(dir);
  struct dirent *e;
  int r = 0;
  while (d && r == 0 && (e = readdir(d))) {
    size_t len = strlen(e->d_name);
    if (len <= np + 3 || strncmp(e->d_name, prefix, np) ||
        strcmp(e->d_name + len - 3, ".so"))
      continue;
    bool dup = false;
    for (size_t i = 0; i < v->n && !dup; i++)
      dup = strlen(v->v[i]) == len - np - 3 &&
            !strncmp(v->v[i], e->d_name + np, len - np - 3);
    char *n = dup ? NULL : strndup(e->d_name + np, len - np - 3);
    if (!dup && (!n || ptrvec_push(v, n) < 0)) {
      free(n);
      r = -1;
    }
  }
  if (d)
    closedir(d);
  return r;
}

/* "no plugin 'mokc' (kind network); available: bridge, mock, nat; did you
 * mean 'mock'?": what exists, not where it was looked for. */
static void refuse_missing(const char *dirs, int kind, const char *name) {
  struct ptrvec v = {0};
  _cleanup_free_ char *copy = strdup(dirs ? dirs : "");
  char *save = NULL;
  for (char *dir = copy ? strtok_r(copy, ":", &save) : NULL; dir;
       dir = strtok_r(NULL, ":", &save))
    if (add_available(&v, dir, kind) < 0)
      break;
  qsort(v.v, v.n, sizeof *v.v, cmp_str);
  char list[512] = "";
  size_t o = 0;
  for (size_t i = 0; i < v.n && o < sizeof list; i++)
    o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "",
                          (char *)v.v[i]);
  const char *hint = config_suggest(name, (const char *const *)v.v, v.n);
  error_set("no plugin '%s' (kind %s); %s%s%s%s%s", name, kind_name(kind),
            v.n ? "available: " : "none of that kind is installed", list,
            hint ? "; did you mean '" : "", hint ? hint : "", hint ? "'?" : "");
  free_names(&v);
}

char *loader_find(const char *dirs, int kind, const char *name) {
  _cleanup_free_ char *copy = strdup(dirs ? dirs : "");
  if (!copy) {
    error_set("out of memory");
    return NULL;
  }
  char *save = NULL;
  for (char *dir = strtok_r(copy, ":", &save); dir;
       dir = strtok_r(NULL, ":", &save)) {
    char *path;
    if (asprintf(&path, "%s/%s-%s.so", dir, kind_name(kind), name) < 0) {
      error_set("out of memory");
      return NULL;
    }
    if (access(path, F_OK) == 0)
      return path;
    free(path);
  }
  refuse_missing(dirs, kind, name);
  return NULL;
}

int loader_call_load(struct plugin *p, const struct vmh_host *host) {
  if (p->load_called || !p->desc.load)
    return 0;
  error_clear();
  if (p->desc.load(host) != 0)
    return error_code(VMH_EINVAL, "%s: load failed: %s", p->file,
                      *error_get() ? error_get() : "(no message)");
  p->load_called = 1;
  return 0;
}

size_t loader_ops(const struct plugin *p, const char **names, size_t max) {
  const struct kind_desc *k = &kinds[p->desc.kind];
  size_t n = 0;
  for (size_t i = 0; i < k->n_ops && n < max; i++)
    if (op_ptr(p, &k->ops[i]))
      names[n++] = k->ops[i].name;
  return n;
}

void loader_dump(const struct plugin *p, FILE *out) {
  fprintf(out, "name=%s\n", p->desc.name);
  fprintf(out, "kind=%s\n", kind_name(p->desc.kind));
  if (p->desc.version)
    fprintf(out, "version=%s\n", p->desc.version);
  if (p->desc.description)
    fprintf(out, "description=%s\n", p->desc.description);
  fprintf(out, "file=%s\n", p->file);
  fprintf(out, "abi_version=%" PRIu32 ".%" PRIu32 "\n", p->desc.abi_major,
          p->desc.abi_minor);
  fprintf(out, "struct_size=%" PRIu32 "\n", p->desc.struct_size);
  fprintf(out, "thread_model=%s\n", thread_model_name(p->desc.thread_model));
  fprintf(out, "ops_struct_size=%" PRIu32 "\n", p->ops_size);
  char extra[256];
  if (extra_exports(p->file, extra, sizeof extra) > 0)
    fprintf(out, "extra_exports=%s\n", extra);
  const char *names[32];
  size_t n = loader_ops(p, names, sizeof names / sizeof names[0]);
  for (size_t i = 0; i < n; i++)
    fprintf(out, "has_%s=1\n", names[i]);
}

size_t loader_count(void) {
  return n_registry;
}

struct plugin *loader_at(size_t i) {
  return i < n_registry ? registry[i] : NULL;
}
