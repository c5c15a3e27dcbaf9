/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* reflect — see reflect.h. */
#include <config.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "grpcwire.h"
#include "reflect.h"

typedef Grpc__Reflection__V1alpha__ServerReflectionRequest Req;
typedef Grpc__Reflection__V1alpha__ServerReflectionResponse Resp;

/* The FileDescriptorProto in a one-file set: field 1, length-delimited. */
static int file_proto(const struct rpc_proto_file *f,
                      ProtobufCBinaryData *ret) {
  const uint8_t *p = f->set, *end = f->set + f->len;
  uint64_t n = 0;
  if (p == end || *p++ != 0x0a)
    return -1;
  for (int shift = 0; p < end && shift < 64; shift += 7) {
    n |= (uint64_t)(*p & 0x7f) << shift;
    if (!(*p++ & 0x80)) {
      if (n != (uint64_t)(end - p))
        return -1;
      *ret = (ProtobufCBinaryData){(size_t)n, (uint8_t *)p};
      return 0;
    }
  }
  return -1;
}

/* Whether s is prefix "." name. */
static bool is_member(const char *s, const char *prefix, size_t n,
                      const char *name) {
  return !strncmp(s, prefix, n) && s[n] == '.' && !strcmp(s + n + 1, name);
}

/* The messages and enums reachable from the services, each once: a
 * bounded walk (our files hold far fewer). */
#define MAX_TYPES 512
struct types {
  const void *seen[MAX_TYPES];
  size_t n;
};

static bool first_visit(struct types *t, const void *d) {
  for (size_t i = 0; i < t->n; i++)
    if (t->seen[i] == d)
      return false;
  if (t->n == MAX_TYPES)
    return false;
  t->seen[t->n++] = d;
  return true;
}

/* The package of the enum that declares symbol (the enum itself, or one
 * of its values, which live in the enum's enclosing scope). */
static const char *enum_symbol(const ProtobufCEnumDescriptor *e,
                               const char *symbol) {
  if (!strcmp(symbol, e->name))
    return e->package_name;
  const char *dot = strrchr(e->name, '.');
  size_t scope = dot ? (size_t)(dot - e->name) : 0;
  for (unsigned i = 0; i < e->n_values; i++)
    if (is_member(symbol, e->name, scope, e->values[i].name))
      return e->package_name;
  return NULL;
}

/* The package of the message (or of a type it reaches) that declares
 * symbol: the message, one of its fields, or a type nested in it. */
static const char *message_symbol(struct types *t,
                                  const ProtobufCMessageDescriptor *m,
                                  const char *symbol) {
  if (!m || !first_visit(t, m))
    return NULL;
  size_t n = strlen(m->name);
  if (!strcmp(symbol, m->name))
    return m->package_name;
  for (unsigned i = 0; i < m->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &m->fields[i];
    const char *pkg = NULL;
    if (is_member(symbol, m->name, n, f->name))
      return m->package_name;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE)
      pkg = message_symbol(t, f->descriptor, symbol);
    else if (f->type == PROTOBUF_C_TYPE_ENUM && first_visit(t, f->descriptor))
      pkg = enum_symbol(f->descriptor, symbol);
    if (pkg)
      return pkg;
  }
  return NULL;
}

/* The package that declares symbol ("pkg.Service", "pkg.Service.Method",
 * "pkg.Message", "pkg.Message.field", "pkg.Enum", "pkg.VALUE"), or NULL
 * when no service of ours reaches such a symbol. */
static const char *package_of_symbol(
    const ProtobufCServiceDescriptor *const *services, size_t n_services,
    const char *symbol) {
  struct types t = {.n = 0};
  for (size_t i = 0; i < n_services; i++) {
    const ProtobufCServiceDescriptor *s = services[i];
    size_t n = strlen(s->name);
    if (!strcmp(symbol, s->name))
      return s->package;
    for (unsigned m = 0; m < s->n_methods; m++) {
      const char *pkg;
      if (is_member(symbol, s->name, n, s->methods[m].name))
        return s->package;
      if ((pkg = message_symbol(&t, s->methods[m].input, symbol)) ||
          (pkg = message_symbol(&t, s->methods[m].output, symbol)))
        return pkg;
    }
  }
  return NULL;
}

/* The file of a package: named after its path (a.b.v1 → a/b/v1/…). */
static const struct rpc_proto_file *file_of_package(const char *pkg) {
  size_t n = strlen(pkg);
  for (size_t f = 0; f < rpc_n_proto_files; f++) {
    const char *name = rpc_proto_files[f].name;
    bool same = strlen(name) > n && name[n] == '/';
    for (size_t c = 0; same && c < n; c++)
      same = name[c] == (pkg[c] == '.' ? '/' : pkg[c]);
    if (same)
      return &rpc_proto_files[f];
  }
  return NULL;
}

/* The file that declares symbol; NULL (NOT_FOUND) for a symbol no file
 * of ours declares, even inside one of our packages. */
static const struct rpc_proto_file *file_of_symbol(
    const ProtobufCServiceDescriptor *const *services, size_t n_services,
    const char *symbol) {
  const char *pkg = package_of_symbol(services, n_services, symbol);
  return pkg ? file_of_package(pkg) : NULL;
}

static const struct rpc_proto_file *file_named(const char *name) {
  for (size_t f = 0; f < rpc_n_proto_files; f++)
    if (!strcmp(rpc_proto_files[f].name, name))
      return &rpc_proto_files[f];
  return NULL;
}

int reflect_answer(const ProtobufCServiceDescriptor *const *services,
                   size_t n_services, const uint8_t *in, size_t len,
                   uint8_t **ret, size_t *ret_len) {
  Req *req = grpc__reflection__v1alpha__server_reflection_request__unpack(
      NULL, len, in);
  if (!req)
    return -1;
  Resp resp = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__INIT;
  Grpc__Reflection__V1alpha__FileDescriptorResponse files =
      GRPC__REFLECTION__V1ALPHA__FILE_DESCRIPTOR_RESPONSE__INIT;
  Grpc__Reflection__V1alpha__ListServiceResponse list =
      GRPC__REFLECTION__V1ALPHA__LIST_SERVICE_RESPONSE__INIT;
  Grpc__Reflection__V1alpha__ExtensionNumberResponse ext =
      GRPC__REFLECTION__V1ALPHA__EXTENSION_NUMBER_RESPONSE__INIT;
  Grpc__Reflection__V1alpha__ErrorResponse error =
      GRPC__REFLECTION__V1ALPHA__ERROR_RESPONSE__INIT;
  Grpc__Reflection__V1alpha__ServiceResponse *svc = NULL, **svcp = NULL;
  ProtobufCBinaryData file;
  const struct rpc_proto_file *f = NULL;
  int r = -1;
  resp.valid_host = req->host;
  resp.original_request = req;

  switch (req->message_request_case) {
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
      svc = calloc(n_services, sizeof *svc);
      svcp = calloc(n_services, sizeof *svcp);
      if (!svc || !svcp)
        goto cleanup;
      for (size_t i = 0; i < n_services; i++) {
        grpc__reflection__v1alpha__service_response__init(&svc[i]);
        svc[i].name = (char *)services[i]->name;
        svcp[i] = &svc[i];
      }
      list.n_service = n_services;
      list.service = svcp;
      resp.message_response_case =
          GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
      resp.list_services_response = &list;
      break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
      f = file_named(req->file_by_filename);
      break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
      f = file_of_symbol(services, n_services, req->file_containing_symbol);
      break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
      /* Our files declare no extensions; a type they lack is not found. */
      if (!file_of_symbol(services, n_services,
                          req->all_extension_numbers_of_type))
        break;
      ext.base_type_name = req->all_extension_numbers_of_type;
      resp.message_response_case =
          GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
      resp.all_extension_numbers_response = &ext;
      break;
    default:
      break;
  }
  if (f && file_proto(f, &file) < 0)
    goto cleanup;
  if (f) {
    files.n_file_descriptor_proto = 1;
    files.file_descriptor_proto = &file;
    resp.message_response_case =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
    resp.file_descriptor_response = &files;
  }
  if (!resp.message_response_case) {
    error.error_code = GRPC_NOT_FOUND;
    error.error_message = (char *)"not found";
    resp.message_response_case =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    resp.error_response = &error;
  }
  *ret_len = protobuf_c_message_get_packed_size(&resp.base);
  if (!(*ret = malloc(*ret_len ? *ret_len : 1)))
    goto cleanup;
  protobuf_c_message_pack(&resp.base, *ret);
  r = 0;
cleanup:
  free(svc);
  free(svcp);
  grpc__reflection__v1alpha__server_reflection_request__free_unpacked(req,
                                                                      NULL);
  return r;
}
