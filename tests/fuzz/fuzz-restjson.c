/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer harness: REST request decoding and validation
 * (plugins/common/abijson.c, strict, as the rest front-end decodes): any
 * bytes as a JSON body, decoded as a VM spec, a disk, a NIC, a volume and
 * an image spec.  A refusal always says why.  Built and run by
 * tests/test-fuzz.sh. */
#include <config.h>

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "abijson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void refused_says_why(int r, const struct abij_in *in) {
  if (r < 0 && !in->err[0])
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
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
