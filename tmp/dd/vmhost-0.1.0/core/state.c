/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VM records on disk, as JSON (vmrecord.h). */
#include <config.h>

#include "state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomicfile.h"
#include "cleanup.h"
#include "error.h"
#include "log.h"

static char *vms_dir;

int state_init(const char *state_dir) {
  free(vms_dir);
  if (asprintf(&vms_dir, "%s/vms", state_dir) < 0) {
    vms_dir = NULL;
    return error_code(VMH_ENOMEM, "out of memory");
  }
  if ((mkdir(state_dir, 0700) < 0 && errno != EEXIST) ||
      (mkdir(vms_dir, 0700) < 0 && errno != EEXIST))
    return error_code(VMH_EIO, "cannot create %s: %s", vms_dir,
                      strerror(errno));
  return 0;
}

/* ---- files ------------------------------------------------------------- */

int state_save(const struct vm *vm) {
  _cleanup_free_ char *path = NULL, *text = NULL;
  if (asprintf(&path, "%s/%s.json", vms_dir, vm->id) < 0)
    return error_code(VMH_ENOMEM, "out of memory");
  json_t *o = vm_to_json(vm);
  text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
  json_decref(o);
  if (!text)
    return error_code(VMH_ENOMEM, "out of memory");
  if (atomic_write(path, text, strlen(text), 0600) < 0)
    return error_code(VMH_EIO, "cannot write the record of VM %s to %s: %s",
                      vm->name, path, strerror(errno));
  return 0;
}

int state_remove(const char *id) {
  _cleanup_free_ char *path = NULL;
  if (asprintf(&path, "%s/%s.json", vms_dir, id) < 0)
    return error_code(VMH_ENOMEM, "out of memory");
  if (unlink(path) < 0 && errno != ENOENT)
    return error_code(VMH_EIO, "cannot remove %s: %s", path, strerror(errno));
  fsync_parent(path);
  return 0;
}

/* What the core needs of a record beyond what the codec checks: an id it
 * made (a UUID) and the hypervisor it is on. */
static int core_record(const struct vm *vm) {
  return strlen(vm->id) == VMH_ID_LEN && vm->hypervisor;
}

static void set_aside(const char *path) {
  _cleanup_free_ char *aside = NULL;
  if (asprintf(&aside, "%s.corrupt", path) >= 0 && rename(path, aside) == 0)
    log_error("%s: unreadable VM record moved to %s", path, aside);
}

static int has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

int state_load(void (*fn)(void *opaque, struct vm *vm), void *opaque) {
  DIR *dir = opendir(vms_dir);
  if (!dir)
    return error_code(VMH_EIO, "cannot read %s: %s", vms_dir, strerror(errno));
  int count = 0;
  struct dirent *e;
  while ((e = readdir(dir))) {
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "%s/%s", vms_dir, e->d_name) < 0)
      break;
    if (e->d_name[0] == '.' && has_suffix(e->d_name, ".json.tmp")) {
      /* A write interrupted before its rename: the old record stands. */
      log_info("removing %s, left by an interrupted write", path);
      unlink(path);
      continue;
    }
    if (e->d_name[0] == '.' || !has_suffix(e->d_name, ".json"))
      continue;
    json_error_t jerr;
    json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    struct vm *vm = o ? vm_from_json(o) : NULL;
    json_decref(o);
    if (vm && !core_record(vm)) {
      vm_free(vm);
      vm = NULL;
    }
    if (!vm) {
      log_error("%s: not a valid VM record%s%s", path, o ? "" : ": ",
                o ? "" : jerr.text);
      set_aside(path);
      continue;
    }
    fn(opaque, vm);
    count++;
  }
  closedir(dir);
  return count;
}
