/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer harness: REST request decoding and validation
 * (plugins/common/abijson.c, strict, as the rest front-end decodes): any
 * bytes as a JSON body, decoded as a VM spec, a disk, a NIC, a volume and
 * an image spec.  A refusal always says why.  And the same bytes as the
 * strings and numbers of a host record: abij_host_text writes what
 * json_dumps(abij_host(), JSON_COMPACT) writes, or declines.  Built and
 * run by tests/test-fuzz.sh. */
#include <config.h>

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "abijson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void refused_says_why(int r, const struct abij_in *in) {
  if (r < 0 && !in->err[0])
    abort();
}

/* The text writer against the tree, on strings cut from data. */
static void host_text_is_tree(const uint8_t *data, size_t size) {
  char buf[512];
  size_t n = size < sizeof buf - 1 ? size : sizeof buf - 1;
  memcpy(buf, data, n);
  buf[n] = '\0';
  const char *part[3] = {buf, buf + n / 3, buf + 2 * n / 3};
  uint64_t num = 0;
  memcpy(&num, data, size < sizeof num ? size : sizeof num);
  struct vmh_host_info h = {.struct_size = sizeof h,
                            .hostname = part[0],
                            .os_name = part[1],
                            .kernel = part[2],
                            .arch = "x86_64",
                            .cpu_model = size & 1 ? NULL : part[1],
                            .memory_total = num,
                            .memory_available = num >> 1,
                            .uptime_s = num >> 33};
  char *text;
  size_t len;
  if (abij_host_text(&h, &text, &len) < 0)
    return;
  json_t *tree = abij_host(&h);
  char *want = tree ? json_dumps(tree, JSON_COMPACT) : NULL;
  if (want && (strlen(want) != len || memcmp(want, text, len)))
    abort();
  free(want);
  json_decref(tree);
  free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  host_text_is_tree(data, size);
  json_t *o = json_loadb((const char *)data, size,
                         JSON_REJECT_DUPLICATES | JSON_DISABLE_EOF_CHECK, NULL);
  if (!o)
    return 0;
  struct abij_in in = {.flags = ABIJ_STRICT};
  struct vmh_vm_spec spec;
  struct vmh_disk disk;
  struct vmh_nic nic;
  struct vmh_volume_spec vol;
  struct vmh_image_spec img;
  refused_says_why(abij_spec_in(&in, o, "", &spec), &in);
  in.err[0] = '\0';
  refused_says_why(abij_disk_in(&in, o, "", &disk), &in);
  in.err[0] = '\0';
  refused_says_why(abij_nic_in(&in, o, "", &nic), &in);
  in.err[0] = '\0';
  refused_says_why(abij_volume_spec_in(&in, o, "", &vol), &in);
  in.err[0] = '\0';
  refused_says_why(abij_image_spec_in(&in, o, "", &img), &in);
  abij_arena_free(&in.arena);
  json_decref(o);
  return 0;
}
