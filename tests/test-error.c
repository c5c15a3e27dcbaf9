/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The error table and the thread-local message. */
#include <config.h>

#include <pthread.h>
#include <string.h>

#include "core-unit.h"
#include "error.h"

static const struct {
  int code;
  const char *name;
  unsigned http, grpc;
} expected[] = {
    {VMH_OK, "ok", 200, 0},
    {VMH_EINVAL, "invalid_argument", 400, 3},
    {VMH_ENOENT, "not_found", 404, 5},
    {VMH_EEXIST, "already_exists", 409, 6},
    {VMH_EBUSY, "busy", 409, 9},
    {VMH_ESTATE, "invalid_state", 409, 9},
    {VMH_ENOSPC, "no_space", 507, 8},
    {VMH_ENOTSUP, "not_supported", 501, 12},
    {VMH_EPERM, "permission_denied", 403, 7},
    {VMH_ETIMEDOUT, "timeout", 504, 4},
    {VMH_EIO, "io_error", 502, 14},
    {VMH_ENOMEM, "no_memory", 503, 8},
    {VMH_EAGAIN, "try_again", 503, 14},
    {VMH_ELIMIT, "limit_exceeded", 429, 8},
    {VMH_ECANCELED, "canceled", 499, 1},
    {VMH_EINTERNAL, "internal", 500, 13},
    {VMH_ECAPACITY, "insufficient_capacity", 409, 8},
};

static void test_table(void) {
  size_t n = sizeof expected / sizeof expected[0];

  CHECK_INT(n, ==, -VMH_ERROR_LOWEST + 1);
  for (size_t i = 0; i < n; i++) {
    CHECK_STR(error_name(expected[i].code), expected[i].name);
    CHECK_INT(error_http_status(expected[i].code), ==, expected[i].http);
    CHECK_INT(error_grpc_status(expected[i].code), ==, expected[i].grpc);
    CHECK_INT(error_from_name(expected[i].name), ==, expected[i].code);
  }
}

static void test_unknown(void) {
  int unknown[] = {1, 42, VMH_ERROR_LOWEST - 1, -1000};

  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    CHECK_STR(error_name(unknown[i]), "internal");
    CHECK_INT(error_http_status(unknown[i]), ==, 500);
    CHECK_INT(error_grpc_status(unknown[i]), ==, 13);
  }
  CHECK_INT(error_from_name("no_such_error"), ==, 1);
  CHECK_INT(error_from_name(""), ==, 1);
  CHECK_INT(error_from_name("OK"), ==, 1);
  CHECK_INT(error_from_name(NULL), ==, 1);
}

static void test_message(void) {
  char big[3000];
  const char *msg;
  size_t len;

  CHECK_STR(error_get(), "");
  CHECK_INT(error_code(VMH_ENOENT, "vm %s: %s", "web1", "not found"), ==,
            VMH_ENOENT);
  CHECK_STR(error_get(), "vm web1: not found");
  /* The message may be its own argument, to add context. */
  error_set("create: %s", error_get());
  CHECK_STR(error_get(), "create: vm web1: not found");
  error_clear();
  CHECK_STR(error_get(), "");

  /* Too long: cut to the buffer, never inside a UTF-8 character. */
  for (size_t i = 0; i + 2 < sizeof big; i += 2)
    memcpy(big + i, "\xC3\xA9", 2); /* é */
  big[sizeof big - 1 - (sizeof big - 1) % 2] = '\0';
  error_set("%s", big); /* 1023 bytes would end in half an é */
  msg = error_get();
  len = strlen(msg);
  CHECK_INT(len, <, ERROR_MSG_MAX);
  CHECK_INT(len, >=, ERROR_MSG_MAX - 4);
  CHECK_INT(len % 2, ==, 0);
  CHECK(memcmp(msg + len - 2, "\xC3\xA9", 2) == 0);
}

static void *other_thread(void *arg) {
  (void)arg;
  CHECK_STR(error_get(), "");
  error_set("from the other thread");
  return NULL;
}

static void test_thread_local(void) {
  pthread_t t;

  error_set("main thread");
  CHECK_INT(pthread_create(&t, NULL, other_thread, NULL), ==, 0);
  pthread_join(t, NULL);
  CHECK_STR(error_get(), "main thread");
}

int main(void) {
  test_table();
  test_unknown();
  test_message();
  test_thread_local();
  return 0;
}
