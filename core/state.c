/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VM records on disk: JSON (vmrecord.h) in the record journal (journal.h),
 * and the one-time migration from one file per VM. */
#include <config.h>

#include "state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "atomicfile.h"
#include "cleanup.h"
#include "error.h"
#include "journal.h"
#include "log.h"
#include "strmap.h"

static char *state_dir;
static struct journal *journal;
static uint64_t compact_size = STATE_COMPACT_DEFAULT;

void state_set_compact_size(uint64_t bytes) {
  compact_size = bytes;
}

int state_init(const char *dir) {
  state_close();
  if (!(state_dir = strdup(dir)))
    return error_code(VMH_ENOMEM, "out of memory");
  if (mkdir(state_dir, 0700) < 0 && errno != EEXIST)
    return error_code(VMH_EIO, "cannot create %s: %s", state_dir,
                      strerror(errno));
  return journal_open(state_dir, compact_size, &journal);
}

void state_close(void) {
  journal_close(journal);
  journal = NULL;
  free(state_dir);
  state_dir = NULL;
}

/* ---- saving ----------------------------------------------------------- */

int state_queue(const struct vm *vm, struct journal_wait *w) {
  json_t *o = vm_to_json(vm);
  _cleanup_free_ char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  if (!text)
    return error_code(VMH_ENOMEM, "out of memory");
  int r = journal_append(journal, JOURNAL_PUT, vm->id, text, strlen(text), w);
  if (r < 0)
    error_set("cannot save the record of VM %s: %s", vm->name, error_get());
  return r;
}

int state_wait(struct journal_wait *w) {
  int r = journal_wait(journal, w);
  if (r < 0)
    error_set("cannot save a VM record: %s", error_get());
  return r;
}

int state_save(const struct vm *vm) {
  struct journal_wait w;
  int r = state_queue(vm, &w);
  return r < 0 ? r : state_wait(&w);
}

int state_remove(const char *id) {
  struct journal_wait w;
  int r = journal_append(journal, JOURNAL_DEL, id, NULL, 0, &w);
  if (r == 0)
    r = journal_wait(journal, &w);
  if (r < 0)
    error_set("cannot remove the record of VM %s: %s", id, error_get());
  return r;
}

int state_sync(void) {
  int r = journal_sync(journal);
  if (r < 0)
    error_set("cannot save VM records: %s", error_get());
  return r;
}

void state_compact(void) {
  if (journal)
    journal_compact(journal);
}

/* ---- loading ---------------------------------------------------------- */

/* What the core needs of a record beyond what the codec checks: an id it
 * made (a UUID) and the hypervisor it is on. */
static int core_record(const struct vm *vm) {
  return strlen(vm->id) == VMH_ID_LEN && vm->hypervisor;
}

static struct vm *parse(json_t *o) {
  struct vm *vm = o ? vm_from_json(o) : NULL;
  if (vm && !core_record(vm)) {
    vm_free(vm);
    vm = NULL;
  }
  return vm;
}

struct load {
  void (*fn)(void *opaque, struct vm *vm);
  void *opaque;
  struct strmap seen; /* ids delivered (keys owned here) */
  int count, bad;
};

static int deliver(struct load *l, struct vm *vm) {
  char *id = strdup(vm->id);
  if (!id || strmap_put(&l->seen, id, id) < 0) {
    free(id);
    vm_free(vm);
    return error_code(VMH_ENOMEM, "out of memory");
  }
  l->fn(l->opaque, vm);
  l->count++;
  return 0;
}

static void journal_cb(void *opaque, const char *key, const char *value,
                       size_t len) {
  struct load *l = opaque;
  json_error_t jerr;
  json_t *o = json_loadb(value, len, JSON_REJECT_DUPLICATES, &jerr);
  struct vm *vm = parse(o);
  json_decref(o);
  if (vm && strcmp(vm->id, key) != 0) {
    vm_free(vm);
    vm = NULL;
  }
  if (!vm) {
    /* The frame's checksum held: what it carries was written so. */
    log_error("journal record %s is not a valid VM record%s%s; skipped", key,
              o ? "" : ": ", o ? "" : jerr.text);
    l->bad++;
    return;
  }
  deliver(l, vm);
}

static int has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void legacy_set_aside(const char *path) {
  _cleanup_free_ char *aside = NULL;
  if (asprintf(&aside, "%s.corrupt", path) >= 0 && rename(path, aside) == 0)
    log_error("%s: unreadable VM record moved to %s", path, aside);
}

/* One file of the old layout: a record to import, or NULL (handled). */
static struct vm *legacy_file(const char *dir, const char *name) {
  _cleanup_free_ char *path = NULL;
  if (asprintf(&path, "%s/%s", dir, name) < 0)
    return NULL;
  if (name[0] == '.' && has_suffix(name, ".json.tmp")) {
    log_info("removing %s, left by an interrupted write", path);
    unlink(path);
    return NULL;
  }
  if (name[0] == '.' || !has_suffix(name, ".json"))
    return NULL;
  json_error_t jerr;
  json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
  struct vm *vm = parse(o);
  json_decref(o);
  if (!vm) {
    log_error("%s: not a valid VM record%s%s", path, o ? "" : ": ",
              o ? "" : jerr.text);
    legacy_set_aside(path);
  }
  return vm;
}

/* The layout before the journal: one JSON file per VM in state_dir/vms.
 * Every record is put into the journal (one sync for all), then the
 * directory is renamed aside.  A crash in between imports again: a record
 * already delivered from the journal is skipped (the same content). */
static int migrate(struct load *l) {
  _cleanup_free_ char *dir = NULL, *aside = NULL;
  if (asprintf(&dir, "%s/vms", state_dir) < 0)
    return error_code(VMH_ENOMEM, "out of memory");
  DIR *d = opendir(dir);
  if (!d)
    return errno == ENOENT ? 0
                           : error_code(VMH_EIO, "cannot read %s: %s", dir,
                                        strerror(errno));
  int queued = 0, r = 0;
  struct dirent *e;
  while ((e = readdir(d)) && r == 0) {
    struct vm *vm = legacy_file(dir, e->d_name);
    if (!vm)
      continue;
    if (strmap_get(&l->seen, vm->id)) {
      vm_free(vm);
      continue;
    }
    /* Delivered before it is durable: nothing is served before the
     * sync below, and a failed sync fails the start. */
    if ((r = state_queue(vm, NULL)) == 0) {
      queued++;
      r = deliver(l, vm);
    } else {
      vm_free(vm);
    }
  }
  closedir(d);
  if (r == 0)
    r = journal_sync(journal);
  if (r < 0)
    return error_code(r, "migrating %s into the journal: %s", dir, error_get());
  char stamp[32];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  if (asprintf(&aside, "%s.migrated-%s", dir, stamp) < 0)
    return error_code(VMH_ENOMEM, "out of memory");
  if (rename(dir, aside) < 0 || fsync_parent(dir) < 0)
    return error_code(VMH_EIO, "cannot rename %s to %s after migrating it: %s",
                      dir, aside, strerror(errno));
  log_warn(
      "migrated %d VM record%s from %s (one file per VM) into the journal "
      "%s/vms.journal; the old files are kept in %s",
      queued, queued == 1 ? "" : "s", dir, state_dir, aside);
  return 0;
}

int state_load(void (*fn)(void *opaque, struct vm *vm), void *opaque) {
  struct load l = {.fn = fn, .opaque = opaque};
  journal_records(journal, journal_cb, &l);
  int r = migrate(&l);
  for (size_t i = 0; i < l.seen.cap; i++)
    free((char *)l.seen.slots[i].key);
  strmap_free(&l.seen);
  return r < 0 ? r : l.count;
}
