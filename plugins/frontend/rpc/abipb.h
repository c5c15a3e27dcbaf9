/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* abipb — the ABI's structs as the protobuf messages of proto/vmhost/v1
 * (protobuf-c), both ways.  The one place where they are converted.
 *
 * Memory: every message, string and array an encoder makes, and every
 * struct a decoder makes, comes from an arena (abijson's struct
 * abij_arena); abij_arena_free() frees them all at once.  Encoded
 * messages are therefore never handed to
 * protobuf_c_message_free_unpacked().  Strings are copied; NULL becomes ""
 * (proto3's unset string) and "" read back becomes NULL.
 *
 * Encoders read only the fields inside each struct's struct_size
 * (types.h) and walk arrays with their elements' struct_size as the
 * stride.  They return NULL only when out of memory.
 *
 * Decoders check what the REST API checks (names, ranges, enum values)
 * and return 0, or VMH_EINVAL / VMH_ENOMEM with a message naming the field
 * in err.
 */
#ifndef VMH_ABIPB_H
#define VMH_ABIPB_H

#include <stddef.h>
#include <vmhost/vmhost-plugin.h>

#include "abijson.h"
#include "vmhost/v1/node.pb-c.h"

/* A copy of s in the arena ("" for NULL, not copied: proto3's unset
 * string); NULL when out of memory. */
char *abipb_str(struct abij_arena *a, const char *s);

Vmhost__V1__Vm *abipb_vm(struct abij_arena *a, const struct vmh_vm_record *vm);
Vmhost__V1__VmStatusResponse *abipb_vm_status(struct abij_arena *a,
                                              const struct vmh_vm_record *vm);
Vmhost__V1__Snapshot *abipb_snapshot(struct abij_arena *a,
                                     const struct vmh_snapshot_info *snap);
Vmhost__V1__Console *abipb_console(struct abij_arena *a,
                                   const struct vmh_console_info *console);
Vmhost__V1__Pool *abipb_pool(struct abij_arena *a,
                             const struct vmh_pool_info *pool);
Vmhost__V1__Volume *abipb_volume(struct abij_arena *a,
                                 const struct vmh_volume_info *vol);
Vmhost__V1__Image *abipb_image(struct abij_arena *a,
                               const struct vmh_image_info *img);
Vmhost__V1__Network *abipb_network(struct abij_arena *a,
                                   const struct vmh_network_info *net);
Vmhost__V1__NodeInfo *abipb_host(struct abij_arena *a,
                                 const struct vmh_host_info *host);
Vmhost__V1__Check *abipb_check(struct abij_arena *a,
                               const struct vmh_health_check *check);
Vmhost__V1__Plugin *abipb_plugin(struct abij_arena *a,
                                 const struct vmh_plugin_info *plugin);
/* A guest agent's answer as the message of its op (Agent,
 * AgentExecResponse, AgentReadFileResponse, AgentWriteFileResponse,
 * AgentTimeSyncResponse), bytes copied.  NULL: out of memory or an op
 * with no message. */
ProtobufCMessage *abipb_agent(struct abij_arena *a,
                              const struct vmh_agent_result *res);
/* The error name of an OPERATION event's code comes from name(code). */
Vmhost__V1__Event *abipb_event(struct abij_arena *a, const struct vmh_event *ev,
                               const char *(*name)(int code));
/* name: the core's error_name, for error_code. */
Vmhost__V1__Operation *abipb_operation(struct abij_arena *a,
                                       const struct vmh_operation *op,
                                       const char *(*name)(int code));

/* A name (vmh_name_valid) or, with uuid, a VM id. */
int abipb_ref(const char *what, const char *s, int uuid, char *err,
              size_t errlen);
int abipb_spec_in(struct abij_arena *a, const Vmhost__V1__VmSpec *m,
                  struct vmh_vm_spec *ret, char *err, size_t errlen);
int abipb_disk_in(struct abij_arena *a, const Vmhost__V1__Disk *m,
                  const char *where, struct vmh_disk *ret, char *err,
                  size_t errlen);
int abipb_volume_spec_in(struct abij_arena *a,
                         const Vmhost__V1__CreateVolumeRequest *m,
                         struct vmh_volume_spec *ret, char *err, size_t errlen);

#endif /* VMH_ABIPB_H */
