/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* reflect — grpc.reflection.v1alpha.ServerReflection's answers: which
 * services the server has, and the .proto files (as serialized
 * FileDescriptorProtos) that define them.
 *
 * The files' descriptors are made by protoc-c at build time
 * (--descriptor_set_out, one file per set) and compiled in as
 * rpc_proto_files (descriptors.c, generated).
 */
#ifndef VMH_REFLECT_H
#define VMH_REFLECT_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* A .proto file: its name as clients know it ("vmhost/v1/node.proto")
 * and a FileDescriptorSet holding just it. */
struct rpc_proto_file {
  const char *name;
  const uint8_t *set;
  size_t len;
};
extern const struct rpc_proto_file rpc_proto_files[];
extern const size_t rpc_n_proto_files;

/* The answer to one ServerReflectionRequest (its serialized bytes), for a
 * server with the given services: 0 and *ret (malloc'd) / *ret_len, or
 * -1 when the request does not parse or memory runs out.  Questions it
 * cannot answer get an error_response, as the protocol says. */
int reflect_answer(const ProtobufCServiceDescriptor *const *services,
                   size_t n_services, const uint8_t *req, size_t len,
                   uint8_t **ret, size_t *ret_len);

#endif /* VMH_REFLECT_H */
