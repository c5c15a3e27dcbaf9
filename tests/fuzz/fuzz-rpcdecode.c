/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer harness: what the rpc front-end does with a request message
 * once its frame is read (plugins/frontend/rpc): protobuf-c's unpack with
 * the input type of a NodeService method (the first byte picks which), the
 * NUL check of its strings (pbcheck.c), and the conversions to the ABI of
 * the requests that carry specs (abipb.c).  Built and run by
 * tests/test-fuzz.sh. */
#include <config.h>

#include <stddef.h>
#include <stdint.h>
#include <vmhost/vmhost-plugin.h>

#include "abipb.h"
#include "pbcheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void to_abi(const ProtobufCMessage *m) {
  struct abij_arena a = {0};
  char err[512];

  if (m->descriptor == &vmhost__v1__create_vmrequest__descriptor) {
    const Vmhost__V1__CreateVMRequest *r = (const void *)m;
    struct vmh_vm_spec spec;
    (void)abipb_spec_in(&a, r->spec, &spec, err, sizeof err);
  } else if (m->descriptor == &vmhost__v1__attach_disk_request__descriptor) {
    const Vmhost__V1__AttachDiskRequest *r = (const void *)m;
    struct vmh_disk d;
    (void)abipb_disk_in(&a, r->disk, "disk.", &d, err, sizeof err);
  } else if (m->descriptor == &vmhost__v1__create_volume_request__descriptor) {
    struct vmh_volume_spec spec;
    (void)abipb_volume_spec_in(&a, (const void *)m, &spec, err, sizeof err);
  }
  abij_arena_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const ProtobufCServiceDescriptor *sd = &vmhost__v1__node_service__descriptor;

  if (size < 1)
    return 0;
  const ProtobufCMessageDescriptor *md =
      sd->methods[data[0] % sd->n_methods].input;
  ProtobufCMessage *m = protobuf_c_message_unpack(md, NULL, size - 1, data + 1);
  if (!m)
    return 0;
  /* The server refuses a NUL before converting anything. */
  if (!pb_string_has_nul(md, data + 1, size - 1))
    to_abi(m);
  protobuf_c_message_free_unpacked(m, NULL);
  return 0;
}
