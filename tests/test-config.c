/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit test of core/conftree.c (the YAML tree and its accessors) and
 * core/settings.c (the daemon's settings and the instance list).  Error
 * messages are part of the interface: they are compared in full.
 *
 * Fixtures are read from $srcdir/configs under their relative names (the
 * test changes to $srcdir), so the messages name "configs/NAME.yaml";
 * generated inputs go to a temporary directory and are named by absolute
 * path. */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The config tree (core/conftree.h). */
#include "../core/conftree.h"
#include "core-unit.h"
#include "error.h"
#include "settings.h"

/* How the core spells the name rule in its refusals. */
#define NAME_RULE_TEXT                                                  \
  "([a-z0-9][a-z0-9._-]{0,62}: 1 to 63 of a-z, 0-9, '.', '_' and '-', " \
  "starting with a letter or a digit)"

#ifndef PLUGINDIR
#error "PLUGINDIR must be defined (see tests/config.mk)"
#endif

#define CHECK_OK(expr)                                                      \
  do {                                                                      \
    int r_ = (expr);                                                        \
    if (r_ != 0)                                                            \
      unit_fail(__FILE__, __LINE__, "%s = %d: %s", #expr, r_, error_get()); \
  } while (0)

/* expr fails with code and exactly the message msg. */
#define CHECK_ERR(expr, code, msg) \
  do {                             \
    error_clear();                 \
    int r_ = (expr);               \
    CHECK_INT(r_, ==, (code));     \
    CHECK_STR(error_get(), (msg)); \
  } while (0)

static char tmpdir[256];         /* as created */
static char tmpdir_rp[PATH_MAX]; /* realpath: what config_dir says */
static char srcdir_rp[PATH_MAX];

/* printf into one of a few rotating buffers: for expected messages. */
static const char *fmt(const char *f, ...)
    __attribute__((format(printf, 1, 2)));
static const char *fmt(const char *f, ...) {
  static char bufs[4][2048];
  static int next;
  char *b = bufs[next++ % 4];
  va_list ap;
  va_start(ap, f);
  vsnprintf(b, sizeof bufs[0], f, ap);
  va_end(ap);
  return b;
}

/* Write data to tmpdir/name; returns the path (a rotating buffer). */
static const char *put(const char *name, const char *data, size_t len) {
  const char *path = fmt("%s/%s", tmpdir, name);
  FILE *f = fopen(path, "w");
  CHECK(f);
  CHECK(fwrite(data, 1, len, f) == len);
  CHECK(fclose(f) == 0);
  return path;
}

static const char *put_str(const char *name, const char *yaml) {
  return put(name, yaml, strlen(yaml));
}

static struct vmh_config *load_ok(const char *name, const char *yaml) {
  struct vmh_config *root = NULL;
  const char *path = put_str(name, yaml);
  CHECK_OK(config_load(path, &root));
  CHECK(root);
  return root;
}

/* ---- the tree -------------------------------------------------------- */

static void test_string(void) {
  struct vmh_config *root = load_ok("string.yaml",
                                    "s: hello\n"
                                    "q: \"quoted: yes\"\n"
                                    "empty:\n"
                                    "tilde: ~\n"
                                    "null_word: null\n"
                                    "quoted_null: \"null\"\n"
                                    "m: {a: 1}\n"
                                    "l: [1, 2]\n"
                                    "n: 42\n"
                                    "multi: |\n"
                                    "  line one\n"
                                    "  line two\n");
  const char *p = fmt("%s/string.yaml", tmpdir);
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s", p);
  const char *s = "untouched";

  CHECK_OK(config_string(root, "s", NULL, &s, 0));
  CHECK_STR(s, "hello");
  CHECK_OK(config_string(root, "q", NULL, &s, VMH_CFG_REQUIRED));
  CHECK_STR(s, "quoted: yes");
  /* Null forms are present: an explicit empty string, not the default. */
  CHECK_OK(config_string(root, "empty", "def", &s, 0));
  CHECK_STR(s, "");
  CHECK_OK(config_string(root, "tilde", "def", &s, 0));
  CHECK_STR(s, "");
  CHECK_OK(config_string(root, "null_word", "def", &s, 0));
  CHECK_STR(s, "");
  CHECK_OK(config_string(root, "quoted_null", "def", &s, 0));
  CHECK_STR(s, "null");
  CHECK_OK(config_string(root, "n", NULL, &s, 0));
  CHECK_STR(s, "42");
  CHECK_OK(config_string(root, "multi", NULL, &s, 0));
  CHECK_STR(s, "line one\nline two\n");
  /* Missing: the default, which may be NULL. */
  CHECK_OK(config_string(root, "nope", "def", &s, 0));
  CHECK_STR(s, "def");
  CHECK_OK(config_string(root, "nope", NULL, &s, 0));
  CHECK(s == NULL);

  s = "untouched";
  CHECK_ERR(config_string(root, "nope", "def", &s, VMH_CFG_REQUIRED),
            VMH_EINVAL, fmt("%s:1:1: missing required key 'nope'", path));
  CHECK_ERR(config_string(root, "m", NULL, &s, 0), VMH_EINVAL,
            fmt("%s:7:1: key 'm': expected a string, found a map", path));
  CHECK_ERR(config_string(root, "l", NULL, &s, 0), VMH_EINVAL,
            fmt("%s:8:1: key 'l': expected a string, found a list", path));
  CHECK_ERR(config_string(root, "s", NULL, &s, 2), VMH_EINVAL,
            "config accessor: unknown flags 0x2");
  CHECK_STR(s, "untouched");

  /* key NULL reads the node itself; a NULL map is an empty one. */
  const struct vmh_config *l, *e;
  uint32_t n;
  CHECK_OK(config_list(root, "l", &l, &n, 0));
  CHECK_OK(config_at(l, 1, &e));
  CHECK_OK(config_string(e, NULL, NULL, &s, 0));
  CHECK_STR(s, "2");
  CHECK_OK(config_string(NULL, "x", "def", &s, 0));
  CHECK_STR(s, "def");
  CHECK_ERR(config_string(NULL, "x", "def", &s, VMH_CFG_REQUIRED), VMH_EINVAL,
            "missing required key 'x'");
  /* A key of something that is not a map. */
  CHECK_ERR(config_string(l, "x", NULL, &s, 0), VMH_EINVAL,
            fmt("%s:8:1: key 'l': expected a map, found a list", path));
  config_free(root);
}

static void test_int(void) {
  struct vmh_config *root = load_ok("int.yaml",
                                    "a: 8\n"
                                    "b: -12\n"
                                    "c: +7\n"
                                    "d: 0\n"
                                    "big: 9223372036854775807\n"
                                    "small: -9223372036854775808\n"
                                    "over: 9223372036854775808\n"
                                    "huge: 99999999999999999999999\n"
                                    "octal: 010\n"
                                    "hex: 0x10\n"
                                    "float: 1.5\n"
                                    "word: lots\n"
                                    "empty:\n"
                                    "m: {}\n"
                                    "quoted: \"300\"\n"
                                    "space: \" 8\"\n"
                                    "long: "
                                    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                                    "aaaa\n"
                                    "ctl: \"a\\tb\"\n");
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/int.yaml", tmpdir);
  int64_t v = 12345;

  CHECK_OK(config_int(root, "a", 1, 256, 0, &v, 0));
  CHECK_INT(v, ==, 8);
  CHECK_OK(config_int(root, "b", -100, 100, 0, &v, 0));
  CHECK_INT(v, ==, -12);
  CHECK_OK(config_int(root, "c", -100, 100, 0, &v, 0));
  CHECK_INT(v, ==, 7);
  CHECK_OK(config_int(root, "d", 0, 0, 5, &v, 0));
  CHECK_INT(v, ==, 0);
  CHECK_OK(config_int(root, "big", INT64_MIN, INT64_MAX, 0, &v, 0));
  CHECK(v == INT64_MAX);
  CHECK_OK(config_int(root, "small", INT64_MIN, INT64_MAX, 0, &v, 0));
  CHECK(v == INT64_MIN);
  CHECK_OK(config_int(root, "quoted", 0, 1000, 0, &v, 0));
  CHECK_INT(v, ==, 300);
  CHECK_OK(config_int(root, "nope", 1, 256, 8, &v, 0));
  CHECK_INT(v, ==, 8);

  v = 12345;
  CHECK_ERR(config_int(root, "quoted", 1, 256, 8, &v, 0), VMH_EINVAL,
            fmt("%s:15:1: key 'quoted': 300 is out of range 1..256", path));
  CHECK_ERR(config_int(root, "b", 0, 10, 8, &v, 0), VMH_EINVAL,
            fmt("%s:2:1: key 'b': -12 is out of range 0..10", path));
  CHECK_ERR(config_int(root, "over", INT64_MIN, INT64_MAX, 0, &v, 0),
            VMH_EINVAL,
            fmt("%s:7:1: key 'over': 9223372036854775808 is out of range "
                "-9223372036854775808..9223372036854775807",
                path));
  CHECK_ERR(config_int(root, "huge", 0, 10, 0, &v, 0), VMH_EINVAL,
            fmt("%s:8:1: key 'huge': 99999999999999999999999 is out of range "
                "0..10",
                path));
  CHECK_ERR(config_int(root, "octal", 0, 100, 0, &v, 0), VMH_EINVAL,
            fmt("%s:9:1: key 'octal': expected an integer, found '010'", path));
  CHECK_ERR(config_int(root, "hex", 0, 100, 0, &v, 0), VMH_EINVAL,
            fmt("%s:10:1: key 'hex': expected an integer, found '0x10'", path));
  CHECK_ERR(
      config_int(root, "float", 0, 100, 0, &v, 0), VMH_EINVAL,
      fmt("%s:11:1: key 'float': expected an integer, found '1.5'", path));
  CHECK_ERR(
      config_int(root, "word", 0, 100, 0, &v, 0), VMH_EINVAL,
      fmt("%s:12:1: key 'word': expected an integer, found 'lots'", path));
  CHECK_ERR(config_int(root, "empty", 0, 100, 5, &v, 0), VMH_EINVAL,
            fmt("%s:13:1: key 'empty': expected an integer, found an empty "
                "value",
                path));
  CHECK_ERR(config_int(root, "m", 0, 100, 0, &v, 0), VMH_EINVAL,
            fmt("%s:14:1: key 'm': expected an integer, found a map", path));
  CHECK_ERR(config_int(root, "space", 0, 100, 0, &v, 0), VMH_EINVAL,
            fmt("%s:16:1: key 'space': expected an integer, found ' 8'", path));
  /* Long values are cut, control characters replaced. */
  CHECK_ERR(config_int(root, "long", 0, 100, 0, &v, 0), VMH_EINVAL,
            fmt("%s:17:1: key 'long': expected an integer, found "
                "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'",
                path));
  CHECK_ERR(config_int(root, "ctl", 0, 100, 0, &v, 0), VMH_EINVAL,
            fmt("%s:18:1: key 'ctl': expected an integer, found 'a?b'", path));
  CHECK_ERR(config_int(root, "nope", 0, 100, 0, &v, VMH_CFG_REQUIRED),
            VMH_EINVAL, fmt("%s:1:1: missing required key 'nope'", path));
  CHECK_INT(v, ==, 12345);
  config_free(root);
}

static void test_size(void) {
  static const struct {
    const char *text;
    uint64_t bytes;
  } good[] = {
      {"0", 0},
      {"512", 512},
      {"512B", 512},
      {"1K", 1024},
      {"1KiB", 1024},
      {"1KB", 1000},
      {"2M", 2 << 20},
      {"2MiB", 2 << 20},
      {"2MB", 2000000},
      {"3G", UINT64_C(3) << 30},
      {"3GiB", UINT64_C(3) << 30},
      {"3GB", UINT64_C(3000000000)},
      {"4T", UINT64_C(4) << 40},
      {"4TiB", UINT64_C(4) << 40},
      {"4TB", UINT64_C(4000000000000)},
      {"10 GiB", UINT64_C(10) << 30},
      {"10gib", UINT64_C(10) << 30},
      {"10g", UINT64_C(10) << 30},
      {"10kb", 10000},
      {"16777215T", UINT64_C(16777215) << 40},
      {"18446744073709551615", UINT64_MAX},
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    struct vmh_config *root =
        load_ok("size.yaml", fmt("size: %s\n", good[i].text));
    uint64_t v = 1;
    CHECK_OK(config_size(root, "size", 0, UINT64_MAX, 7, &v, 0));
    if (v != good[i].bytes)
      unit_fail(__FILE__, __LINE__, "size %s: %llu, want %llu", good[i].text,
                (unsigned long long)v, (unsigned long long)good[i].bytes);
    config_free(root);
  }

  static const struct {
    const char *text;
    uint64_t min, max;
    const char *msg; /* after "PATH:1:1: key 'size': " */
  } bad[] = {
      {"5G", 1 << 20, UINT64_C(4) << 30, "5G is out of range 1MiB..4GiB"},
      {"512", 1000, UINT64_C(1000000000000), "512 is out of range 1KB..1TB"},
      {"1000", 1001, UINT64_C(1048576000),
       "1000 is out of range 1001..1000MiB"},
      {"16777216T", 0, UINT64_MAX,
       "16777216T is out of range 0..18446744073709551615"},
      {"18446744073709551616", 0, UINT64_MAX,
       "18446744073709551616 is out of range 0..18446744073709551615"},
      {"12X", 0, UINT64_MAX,
       "expected a size (bytes, or a number with a unit: K/KiB, M/MiB, "
       "G/GiB, T/TiB, KB, MB, GB, TB), found '12X'"},
      {"1.5G", 0, UINT64_MAX,
       "expected a size (bytes, or a number with a unit: K/KiB, M/MiB, "
       "G/GiB, T/TiB, KB, MB, GB, TB), found '1.5G'"},
      {"-1", 0, UINT64_MAX,
       "expected a size (bytes, or a number with a unit: K/KiB, M/MiB, "
       "G/GiB, T/TiB, KB, MB, GB, TB), found '-1'"},
      {"G", 0, UINT64_MAX,
       "expected a size (bytes, or a number with a unit: K/KiB, M/MiB, "
       "G/GiB, T/TiB, KB, MB, GB, TB), found 'G'"},
      {"", 0, UINT64_MAX,
       "expected a size (bytes, or a number with a unit: K/KiB, M/MiB, "
       "G/GiB, T/TiB, KB, MB, GB, TB), found an empty value"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct vmh_config *root =
        load_ok("size.yaml", fmt("size: %s\n", bad[i].text));
    uint64_t v = 99;
    CHECK_ERR(config_size(root, "size", bad[i].min, bad[i].max, 7, &v, 0),
              VMH_EINVAL,
              fmt("%s/size.yaml:1:1: key 'size': %s", tmpdir, bad[i].msg));
    CHECK_INT(v, ==, 99);
    config_free(root);
  }

  struct vmh_config *root = load_ok("size.yaml", "x: 1\n");
  uint64_t v = 0;
  CHECK_OK(config_size(root, "size", 0, 100, 42, &v, 0));
  CHECK_INT(v, ==, 42);
  CHECK_ERR(config_size(root, "size", 0, 100, 42, &v, VMH_CFG_REQUIRED),
            VMH_EINVAL,
            fmt("%s/size.yaml:1:1: missing required key 'size'", tmpdir));
  config_free(root);
}

static void test_bool(void) {
  static const char *const yes[] = {"true", "True", "TRUE", "yes",
                                    "Yes",  "on",   "ON"};
  static const char *const no[] = {"false", "False", "no", "NO", "off", "Off"};
  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
    struct vmh_config *root = load_ok("bool.yaml", fmt("b: %s\n", yes[i]));
    int v = 0;
    CHECK_OK(config_bool(root, "b", 0, &v, 0));
    CHECK_INT(v, ==, 1);
    config_free(root);
  }
  for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
    struct vmh_config *root = load_ok("bool.yaml", fmt("b: %s\n", no[i]));
    int v = 1;
    CHECK_OK(config_bool(root, "b", 1, &v, 0));
    CHECK_INT(v, ==, 0);
    config_free(root);
  }
  struct vmh_config *root =
      load_ok("bool.yaml", "b: maybe\nn: 1\nl: [true]\ne:\n");
  int v = 7;
  CHECK_OK(config_bool(root, "nope", 1, &v, 0));
  CHECK_INT(v, ==, 1);
  v = 7;
  CHECK_ERR(config_bool(root, "b", 0, &v, 0), VMH_EINVAL,
            fmt("%s/bool.yaml:1:1: key 'b': expected true or false (or "
                "yes/no, on/off), found 'maybe'",
                tmpdir));
  CHECK_ERR(config_bool(root, "n", 0, &v, 0), VMH_EINVAL,
            fmt("%s/bool.yaml:2:1: key 'n': expected true or false (or "
                "yes/no, on/off), found '1'",
                tmpdir));
  CHECK_ERR(config_bool(root, "l", 0, &v, 0), VMH_EINVAL,
            fmt("%s/bool.yaml:3:1: key 'l': expected true or false (or "
                "yes/no, on/off), found a list",
                tmpdir));
  CHECK_ERR(config_bool(root, "e", 0, &v, 0), VMH_EINVAL,
            fmt("%s/bool.yaml:4:1: key 'e': expected true or false (or "
                "yes/no, on/off), found an empty value",
                tmpdir));
  CHECK_INT(v, ==, 7);
  config_free(root);
}

static int collect_keys(void *opaque, const char *key,
                        const struct vmh_config *value) {
  char *acc = opaque;
  strcat(acc, key);
  strcat(acc, ",");
  return strcmp(key, "stop") == 0 ? 42 : 0;
}

static void test_containers(void) {
  struct vmh_config *root = load_ok("maps.yaml",
                                    "m:\n"
                                    "  z: 1\n"
                                    "  a: 2\n"
                                    "  stop: 3\n"
                                    "  after: 4\n"
                                    "l:\n"
                                    "  - x\n"
                                    "  - {k: v}\n"
                                    "  -\n"
                                    "nul:\n"
                                    "s: text\n"
                                    "el: []\n");
  const char *p = fmt("%s/maps.yaml", tmpdir);
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s", p);
  const struct vmh_config *m = (void *)1, *l = (void *)1, *e = (void *)1;
  uint32_t n = 99;

  CHECK_OK(config_map(root, "m", &m, VMH_CFG_REQUIRED));
  CHECK(m && config_type(m) == CONFIG_MAP);
  CHECK_STR(config_where(m), fmt("%s:1:1", path));
  CHECK_STR(config_key_name(m), "m");
  CHECK_OK(config_list(root, "l", &l, &n, 0));
  CHECK(l && config_type(l) == CONFIG_LIST);
  CHECK_INT(n, ==, 3);
  CHECK_OK(config_list(root, "el", &e, &n, 0));
  CHECK(e && n == 0);

  /* Missing, or null: NULL (an absent section reads like an empty one). */
  CHECK_OK(config_map(root, "nope", &m, 0));
  CHECK(m == NULL);
  n = 5;
  CHECK_OK(config_list(root, "nope", &l, &n, 0));
  CHECK(l == NULL && n == 0);
  m = (void *)1;
  CHECK_OK(config_map(root, "nul", &m, 0));
  CHECK(m == NULL);
  n = 5;
  l = (void *)1;
  CHECK_OK(config_list(root, "nul", &l, &n, 0));
  CHECK(l == NULL && n == 0);

  m = (void *)1;
  CHECK_ERR(
      config_map(root, "nul", &m, VMH_CFG_REQUIRED), VMH_EINVAL,
      fmt("%s:10:1: key 'nul': expected a map, found an empty value", path));
  CHECK_ERR(config_map(root, "nope", &m, VMH_CFG_REQUIRED), VMH_EINVAL,
            fmt("%s:1:1: missing required key 'nope'", path));
  CHECK_ERR(config_map(root, "l", &m, 0), VMH_EINVAL,
            fmt("%s:6:1: key 'l': expected a map, found a list", path));
  CHECK_ERR(config_map(root, "s", &m, 0), VMH_EINVAL,
            fmt("%s:11:1: key 's': expected a map, found 'text'", path));
  CHECK(m == (void *)1);
  n = 5;
  CHECK_ERR(config_list(root, "m", &l, &n, 0), VMH_EINVAL,
            fmt("%s:1:1: key 'm': expected a list, found a map", path));
  CHECK_INT(n, ==, 5);
  CHECK_ERR(config_list(root, "nope", &l, &n, VMH_CFG_REQUIRED), VMH_EINVAL,
            fmt("%s:1:1: missing required key 'nope'", path));

  /* Elements: their own position, named by index (from 1) in messages. */
  CHECK_OK(config_list(root, "l", &l, &n, 0));
  CHECK_OK(config_at(l, 0, &e));
  CHECK_STR(config_where(e), fmt("%s:7:5", path));
  CHECK(config_key_name(e) == NULL);
  CHECK_ERR(config_map(e, NULL, &m, 0), VMH_EINVAL,
            fmt("%s:7:5: element 1 of 'l': expected a map, found 'x'", path));
  CHECK_OK(config_at(l, 1, &e));
  CHECK_OK(config_map(e, NULL, &m, 0));
  CHECK(m == e);
  const char *s;
  CHECK_OK(config_string(m, "k", NULL, &s, 0));
  CHECK_STR(s, "v");
  CHECK_OK(config_at(l, 2, &e));
  CHECK_ERR(config_map(e, NULL, &m, VMH_CFG_REQUIRED), VMH_EINVAL,
            fmt("%s:9:4: element 3 of 'l': expected a map, found an empty "
                "value",
                path));
  e = (void *)1;
  CHECK_ERR(config_at(l, 3, &e), VMH_EINVAL,
            fmt("%s:6:1: key 'l': index 3 is out of range (the list has 3 "
                "elements)",
                path));
  CHECK(e == (void *)1);
  CHECK_ERR(config_at(root, 0, &e), VMH_EINVAL,
            fmt("%s:1:1: expected a list, found a map", path));

  /* config_keys: file order; a non-zero return stops the walk. */
  char acc[256] = "";
  CHECK_OK(config_map(root, "m", &m, 0));
  CHECK_INT(config_keys(m, collect_keys, acc), ==, 42);
  CHECK_STR(acc, "z,a,stop,");
  CHECK_OK(config_keys(NULL, collect_keys, acc));
  CHECK_ERR(config_keys(l, collect_keys, acc), VMH_EINVAL,
            fmt("%s:6:1: key 'l': expected a map, found a list", path));
  config_free(root);
}

static void test_unread(void) {
  struct vmh_config *root = load_ok("unread.yaml",
                                    "name: hv0\n"
                                    "plugin: mock\n"
                                    "disks:\n"
                                    "  - size: 1G\n"
                                    "    bus: virtio\n"
                                    "  - plain\n"
                                    "tls:\n"
                                    "  cert: /c\n"
                                    "  kyy: /k\n"
                                    "max_vcpu: 4\n");
  const char *p = fmt("%s/unread.yaml", tmpdir);
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s", p);
  const char *s;
  const struct vmh_config *u, *l, *e, *tls;
  uint32_t n;

  u = config_unread(root);
  CHECK(u);
  CHECK_STR(config_key_name(u), "name");
  CHECK_OK(config_string(root, "name", NULL, &s, 0));
  CHECK_OK(config_string(root, "plugin", NULL, &s, 0));
  u = config_unread(root);
  CHECK_STR(config_key_name(u), "disks");
  CHECK_STR(config_where(u), fmt("%s:3:1", path));

  /* The list is read as a whole: its maps' keys are still unread. */
  CHECK_OK(config_list(root, "disks", &l, &n, 0));
  u = config_unread(root);
  CHECK_STR(config_key_name(u), "size");
  CHECK_STR(config_where(u), fmt("%s:4:5", path));
  CHECK_OK(config_at(l, 0, &e));
  uint64_t size;
  CHECK_OK(config_size(e, "size", 0, UINT64_MAX, 0, &size, 0));
  CHECK_OK(config_string(e, "bus", NULL, &s, 0));
  /* The scalar element "plain" is not a key: never reported. */
  u = config_unread(root);
  CHECK_STR(config_key_name(u), "tls");

  /* config_keys marks the keys it visits, not what is inside them. */
  char acc[64] = "";
  CHECK_OK(config_map(root, "tls", &tls, 0));
  u = config_unread(root);
  CHECK_STR(config_key_name(u), "cert");
  CHECK_OK(config_string(tls, "cert", NULL, &s, 0));
  u = config_unread(root);
  CHECK_STR(config_key_name(u), "kyy");
  CHECK_STR(config_where(u), fmt("%s:9:3", path));
  CHECK_OK(config_keys(tls, collect_keys, acc));
  u = config_unread(root);
  CHECK_STR(config_key_name(u), "max_vcpu");
  CHECK_STR(config_where(u), fmt("%s:10:1", path));
  CHECK(config_unread(tls) == NULL);

  /* A failed read does not mark. */
  int64_t v;
  CHECK_ERR(config_int(root, "max_vcpu", 5, 10, 0, &v, 0), VMH_EINVAL,
            fmt("%s:10:1: key 'max_vcpu': 4 is out of range 5..10", path));
  CHECK(config_unread(root) == u);
  CHECK_OK(config_int(root, "max_vcpu", 1, 10, 0, &v, 0));
  CHECK(config_unread(root) == NULL);
  CHECK(config_unread(NULL) == NULL);
  /* config_lookup does not mark either. */
  config_free(root);

  root = load_ok("lookup.yaml", "a: 1\n");
  CHECK(config_lookup(root, "b") == NULL);
  u = config_lookup(root, "a");
  CHECK(u);
  CHECK(config_unread(root) == u);
  config_free(root);
}

static void test_paths(void) {
  CHECK(mkdir(fmt("%s/sub", tmpdir), 0700) == 0);
  const char *p = put_str("sub/paths.yaml",
                          "abs: /var/lib/x\n"
                          "rel: data/x\n"
                          "dot: ./data\n"
                          "dotdot: ../y\n"
                          "self: .\n"
                          "empty:\n"
                          "m: {}\n");
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s", p);
  struct vmh_config *root;
  CHECK_OK(config_load(path, &root));
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", fmt("%s/sub", tmpdir_rp));
  CHECK_STR(config_dir(root), dir);
  CHECK_STR(config_file(root), path);

  char *s = NULL;
  CHECK_OK(config_path(root, "abs", NULL, &s, 0));
  CHECK_STR(s, "/var/lib/x");
  free(s);
  CHECK_OK(config_path(root, "rel", NULL, &s, 0));
  CHECK_STR(s, fmt("%s/data/x", dir));
  free(s);
  CHECK_OK(config_path(root, "dot", NULL, &s, 0));
  CHECK_STR(s, fmt("%s/data", dir));
  free(s);
  CHECK_OK(config_path(root, "dotdot", NULL, &s, 0));
  CHECK_STR(s, fmt("%s/../y", dir));
  free(s);
  CHECK_OK(config_path(root, "self", NULL, &s, 0));
  CHECK_STR(s, dir);
  free(s);
  CHECK_OK(config_path(root, "nope", "./state", &s, 0));
  CHECK_STR(s, fmt("%s/state", dir));
  free(s);
  CHECK_OK(config_path(root, "nope", "/abs", &s, 0));
  CHECK_STR(s, "/abs");
  free(s);
  s = (char *)"untouched";
  CHECK_OK(config_path(root, "nope", NULL, &s, 0));
  CHECK(s == NULL);
  s = (char *)"untouched";
  CHECK_ERR(
      config_path(root, "empty", NULL, &s, 0), VMH_EINVAL,
      fmt("%s:6:1: key 'empty': expected a path, found an empty value", path));
  CHECK_ERR(config_path(root, "m", NULL, &s, 0), VMH_EINVAL,
            fmt("%s:7:1: key 'm': expected a path, found a map", path));
  CHECK_ERR(config_path(root, "nope", NULL, &s, VMH_CFG_REQUIRED), VMH_EINVAL,
            fmt("%s:1:1: missing required key 'nope'", path));
  CHECK_STR(s, "untouched");
  CHECK_OK(config_resolve(root, "x", &s));
  CHECK_STR(s, fmt("%s/x", dir));
  free(s);

  /* The host services (ABI 1.2): config_path's string is the tree's. */
  const char *k = "untouched";
  CHECK_OK(config_path_kept(root, "rel", NULL, &k, 0));
  CHECK_STR(k, fmt("%s/data/x", dir));
  CHECK_OK(config_path_kept(root, "nope", "state", &k, 0));
  CHECK_STR(k, fmt("%s/state", dir));
  CHECK_OK(config_path_kept(NULL, "nope", "/abs", &k, 0));
  CHECK_STR(k, "/abs");
  CHECK_OK(config_path_kept(root, "nope", NULL, &k, 0));
  CHECK(k == NULL);
  CHECK_STR(config_key_where(root, "dot"), fmt("%s:3:1", path));
  CHECK_STR(config_key_where(root, "nope"), config_where(root));
  CHECK_STR(config_key_where(NULL, "dot"), "(no position)");
  /* config_key_where marks nothing: "empty" (refused above) is unread. */
  CHECK_STR(config_key_where(root, "empty"), fmt("%s:6:1", path));
  CHECK_STR(config_key_name(config_unread(root)), "empty");
  config_free(root);

  /* A file named without a directory: relative to the current one. */
  char cwd[PATH_MAX];
  CHECK(getcwd(cwd, sizeof cwd));
  CHECK(chdir(fmt("%s/sub", tmpdir)) == 0);
  CHECK_OK(config_load("paths.yaml", &root));
  CHECK_STR(config_dir(root), dir);
  CHECK_OK(config_path(root, "rel", NULL, &s, 0));
  CHECK_STR(s, fmt("%s/data/x", dir));
  free(s);
  config_free(root);
  CHECK(chdir(cwd) == 0);
  unlink(path);
  rmdir(fmt("%s/sub", tmpdir));
}

/* config_load refuses name (written with yaml) with exactly msg, where
 * "%s" in msg stands for the path. */
static void refuse(const char *name, const char *data, size_t len, int code,
                   const char *msg) {
  const char *p = put(name, data, len);
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s", p);
  struct vmh_config *root = (void *)1;
  error_clear();
  int r = config_load(path, &root);
  if (r != code)
    unit_fail(__FILE__, __LINE__, "%s: config_load = %d, want %d (%s)", name, r,
              code, error_get());
  char want[2048];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
  snprintf(want, sizeof want, msg, path);
#pragma GCC diagnostic pop
  if (strcmp(error_get(), want) != 0)
    unit_fail(__FILE__, __LINE__, "%s:\n  got  \"%s\"\n  want \"%s\"", name,
              error_get(), want);
  CHECK(root == (void *)1);
  unlink(path);
}

#define REFUSE(name, yaml, msg) \
  refuse(name, yaml, strlen(yaml), VMH_EINVAL, msg)

static void test_parse_errors(void) {
  REFUSE("dup.yaml", "a: 1\nb:\n  c: 1\n  d: 2\n  c: 3\n",
         "%s:5:3: duplicate key 'c' (first at 3:3)");
  REFUSE("dup-top.yaml", "a: 1\n\na: {x: 1}\n",
         "%s:3:1: duplicate key 'a' (first at 1:1)");
  REFUSE("dup-flow.yaml", "m: {a: 1, b: 2, a: 3}\n",
         "%s:1:17: duplicate key 'a' (first at 1:5)");
  REFUSE("anchor.yaml", "a: &x 1\nb: 2\n",
         "%s:1:4: anchor '&x': anchors and aliases are not supported");
  REFUSE("alias.yaml", "a: 1\nb: *x\n",
         "%s:2:4: alias '*x': anchors and aliases are not supported");
  REFUSE("key-list.yaml", "? [a, b]\n: 1\n",
         "%s:1:3: keys must be strings, found a list");
  REFUSE("key-map.yaml", "{a: 1}: 1\n",
         "%s:1:1: keys must be strings, found a map");
  REFUSE("key-empty.yaml", "a: 1\n~: 2\n", "%s:2:1: empty key");
  REFUSE("tag.yaml", "a: !python/object 1\n",
         "%s:1:4: tag '!python/object' is not supported");
  REFUSE("tag-kind.yaml", "a: !!map 1\n",
         "%s:1:4: tag '!!map' cannot be used on a string");
  REFUSE("tag-kind2.yaml", "a: !!str [1]\n",
         "%s:1:4: tag '!!str' cannot be used on a list");
  REFUSE("tag-set.yaml", "a: !!set {x}\n",
         "%s:1:4: tag '!!set' is not supported");
  REFUSE("tag-handle.yaml", "%TAG !e! tag:example.com,2000:\n---\na: !e!x 1\n",
         "%s:3:4: tag 'tag:example.com,2000:x' is not supported");
  REFUSE("top-list.yaml", "- a\n- b\n",
         "%s:1:1: the top level must be a map, found a list");
  REFUSE("top-scalar.yaml", "hello\n",
         "%s:1:1: the top level must be a map, found a string");
  REFUSE("two-docs.yaml", "a: 1\n---\nb: 2\n",
         "%s:2:1: more than one YAML document in the file");
  REFUSE("nul.yaml", "a: \"x\\0y\"\n",
         "%s:1:4: a NUL character in a string is not supported");
  REFUSE("utf8.yaml", "a: 1\nb: caf\xe9\n",
         "%s:2:7: invalid UTF-8 (byte 0xE9); the config file must be UTF-8 "
         "text");
  REFUSE("utf8-short.yaml", "a: \xc3",
         "%s:1:4: invalid UTF-8 (byte 0xC3); the config file must be UTF-8 "
         "text");
  REFUSE("utf8-cut.yaml", "a: \xc3(\n",
         "%s:1:4: invalid UTF-8 (byte 0xC3); the config file must be UTF-8 "
         "text");
  REFUSE("utf8-overlong.yaml", "a: x\xc0\x80\n",
         "%s:1:5: invalid UTF-8 (byte 0xC0); the config file must be UTF-8 "
         "text");
  REFUSE("utf8-surrogate.yaml", "# \xc3\xa9\xe2\x82\xac\n\xed\xa0\x80: 1\n",
         "%s:2:1: invalid UTF-8 (byte 0xED); the config file must be UTF-8 "
         "text");
  REFUSE("utf8-big.yaml", "a: \xf4\x90\x80\x80\n",
         "%s:1:4: invalid UTF-8 (byte 0xF4); the config file must be UTF-8 "
         "text");
  REFUSE("utf8-col.yaml", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80: \xff\n",
         "%s:1:6: invalid UTF-8 (byte 0xFF); the config file must be UTF-8 "
         "text");
  REFUSE("utf16.yaml",
         "\xff\xfe"
         "a\0:\0 \0"
         "1\0\n\0",
         "%s:1:1: invalid UTF-8 (byte 0xFF); the config file must be UTF-8 "
         "text");
  REFUSE("control.yaml", "a: 1\x01\n",
         "%s:1:5: control character 0x01 is not allowed");
  refuse("nul-byte.yaml", "a: 1\0\n", 6, VMH_EINVAL,
         "%s:1:5: control character 0x00 is not allowed");
  REFUSE("syntax.yaml", "a: [1, 2\nb: 3\n",
         "%s:2:2: syntax error: did not find expected ',' or ']' (while "
         "parsing a flow sequence at 1:4)");
  REFUSE("syntax-indent.yaml", "a:\n  b: 1\n c: 2\n",
         "%s:3:2: syntax error: did not find expected key (while parsing a "
         "block mapping at 1:1)");
  REFUSE("tab.yaml", "a:\n\tb: 1\n",
         "%s:2:1: syntax error: found character that cannot start any token "
         "(while scanning for the next token at 2:1)");
  error_clear();
  struct vmh_config *root = (void *)1;
  const char *missing = fmt("%s/no-such.yaml", tmpdir);
  CHECK_INT(config_load(missing, &root), ==, VMH_ENOENT);
  CHECK_STR(error_get(),
            fmt("%s: cannot open: No such file or directory", missing));
  CHECK(root == (void *)1);
  CHECK_INT(config_load(tmpdir, &root), ==, VMH_EIO);
  CHECK_STR(error_get(), fmt("%s: cannot read: Is a directory", tmpdir));

  /* A UTF-8 byte order mark is fine. */
  root = load_ok("bom.yaml",
                 "\xef\xbb\xbf"
                 "a: 1\n");
  CHECK_STR(config_where(config_lookup(root, "a")),
            fmt("%s/bom.yaml:1:1", tmpdir));
  config_free(root);

  /* Standard tags are fine; !!str keeps "null" a string. */
  root = load_ok("tags.yaml",
                 "a: !!str null\nb: !!int 3\nc: !!map {}\n"
                 "d: !!seq []\ne: ! x\nf: !!null\n");
  const char *s;
  CHECK_OK(config_string(root, "a", NULL, &s, 0));
  CHECK_STR(s, "null");
  const struct vmh_config *m = (void *)1;
  CHECK_OK(config_map(root, "f", &m, 0));
  CHECK(m == NULL);
  config_free(root);
}

static void test_empty(void) {
  static const char *const empty[] = {
      "", "# only a comment\n", "---\n", "--- ~\n", "{}\n", "\n\n"};
  for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
    struct vmh_config *root = load_ok("empty.yaml", empty[i]);
    CHECK(config_type(root) == CONFIG_MAP);
    CHECK(config_unread(root) == NULL);
    const char *s;
    CHECK_OK(config_string(root, "x", "d", &s, 0));
    CHECK_STR(s, "d");
    config_free(root);
  }
  struct vmh_config *root = load_ok("empty.yaml", "");
  CHECK_STR(config_where(root), fmt("%s/empty.yaml:1:1", tmpdir));
  config_free(root);
  root = load_ok("empty.yaml", "# comment\n\n  a: 1\n");
  CHECK_STR(config_where(root), fmt("%s/empty.yaml:3:3", tmpdir));
  config_free(root);
}

/* Nesting: 32 containers are fine, 33 are refused, in block and flow
 * style. */
static void test_depth(void) {
  char buf[4096];
  size_t o = 0;
  /* The root map is level 1; 31 more maps; a scalar at the bottom. */
  for (int i = 0; i < 31; i++)
    o += (size_t)snprintf(buf + o, sizeof buf - o, "%*sk%d:\n", 2 * i, "", i);
  snprintf(buf + o, sizeof buf - o, "%*sleaf: 1\n", 2 * 31, "");
  struct vmh_config *root = load_ok("deep.yaml", buf);
  const struct vmh_config *n = root;
  for (int i = 0; i < 31; i++)
    CHECK_OK(config_map(n, fmt("k%d", i), &n, VMH_CFG_REQUIRED));
  int64_t v;
  CHECK_OK(config_int(n, "leaf", 0, 1, 0, &v, 0));
  CHECK(config_unread(root) == NULL);
  config_free(root);

  /* One more level. */
  o = 0;
  for (int i = 0; i < 32; i++)
    o += (size_t)snprintf(buf + o, sizeof buf - o, "%*sk%d:\n", 2 * i, "", i);
  snprintf(buf + o, sizeof buf - o, "%*sleaf: 1\n", 2 * 32, "");
  REFUSE("deeper.yaml", buf, "%s:33:65: nesting deeper than 32 levels");

  /* Flow lists: a: [[[...]]] with 31 lists is 32 levels, 32 lists too
   * many; and a very deep one (libyaml itself would go far deeper). */
  o = (size_t)snprintf(buf, sizeof buf, "a: ");
  for (int i = 0; i < 31; i++)
    buf[o++] = '[';
  for (int i = 0; i < 31; i++)
    buf[o++] = ']';
  buf[o++] = '\n';
  buf[o] = '\0';
  root = load_ok("flow.yaml", buf);
  config_free(root);
  o = (size_t)snprintf(buf, sizeof buf, "a: ");
  for (int i = 0; i < 2000; i++)
    buf[o++] = '[';
  buf[o++] = '\n';
  buf[o] = '\0';
  REFUSE("flow-deep.yaml", buf, "%s:1:35: nesting deeper than 32 levels");
}

static void test_huge(void) {
  /* Exactly 1 MiB is fine, one byte more is not. */
  size_t len = 1024 * 1024;
  char *buf = malloc(len + 1);
  CHECK(buf);
  memset(buf, '#', len + 1);
  for (size_t i = 99; i < len + 1; i += 100)
    buf[i] = '\n';
  buf[len - 1] = '\n';
  const char *p = put("huge.yaml", buf, len);
  struct vmh_config *root;
  CHECK_OK(config_load(p, &root));
  config_free(root);
  refuse("huge.yaml", buf, len + 1, VMH_EINVAL,
         "%s: the file is larger than 1 MiB");

  /* Many keys in one map (about 70 000): duplicates are still found, and
   * in linear time. */
  size_t o = 0;
  int lines = 0;
  for (int i = 0; o < len - 64; i++, lines++)
    o += (size_t)snprintf(buf + o, len - o, "key%d: %d\n", i, i);
  o += (size_t)snprintf(buf + o, len - o, "key1000: 1\n");
  CHECK_INT(lines, >, 60000);
  refuse("many.yaml", buf, o, VMH_EINVAL,
         fmt("%%s:%d:1: duplicate key 'key1000' (first at 1001:1)", lines + 1));
  free(buf);
}

/* ---- settings -------------------------------------------------------- */

static bool all_zero(const void *p, size_t n) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++)
    if (c[i])
      return false;
  return true;
}

/* settings_load refuses the fixture with exactly msg; *ret is left zero. */
static void refuse_settings(const char *path, int code, const char *msg) {
  struct settings s;
  memset(&s, 0xA5, sizeof s);
  error_clear();
  int r = settings_load(path, &s);
  if (r != code)
    unit_fail(__FILE__, __LINE__, "%s: settings_load = %d, want %d (%s)", path,
              r, code, error_get());
  if (strcmp(error_get(), msg) != 0)
    unit_fail(__FILE__, __LINE__, "%s:\n  got  \"%s\"\n  want \"%s\"", path,
              error_get(), msg);
  CHECK(all_zero(&s, sizeof s));
  settings_free(&s);
}

static void test_settings_minimal(void) {
  struct settings s;
  CHECK_OK(settings_load("configs/good-minimal.yaml", &s));
  CHECK_STR(s.state_dir, fmt("%s/configs/state", srcdir_rp));
  CHECK_STR(s.plugin_dir, PLUGINDIR);
  CHECK(s.log_file == NULL);
  CHECK(s.log_format == LOG_TEXT);
  CHECK_INT(s.log_level, ==, VMH_LOG_INFO);
  CHECK_INT(s.n_levels, ==, 0);
  CHECK_INT(s.workers, ==, 8);
  CHECK_INT(s.drain_timeout_s, ==, 30);
  CHECK_INT(s.reconcile_interval_s, ==, 30);
  CHECK_INT(s.n_instances, ==, 3);
  static const struct {
    int kind;
    const char *name;
    const char *where;
  } want[] = {
      {VMH_KIND_STORAGE, "pool0", "configs/good-minimal.yaml:8:5"},
      {VMH_KIND_NETWORK, "net0", "configs/good-minimal.yaml:11:5"},
      {VMH_KIND_HYPERVISOR, "hv0", "configs/good-minimal.yaml:5:5"},
  };
  for (size_t i = 0; i < 3; i++) {
    const struct instance_conf *ic = &s.instances[i];
    CHECK_INT(ic->kind, ==, want[i].kind);
    CHECK_STR(ic->name, want[i].name);
    CHECK_STR(ic->plugin, "mock");
    CHECK(ic->file == NULL);
    CHECK_INT(ic->optional, ==, 0);
    CHECK_STR(config_where(ic->config), want[i].where);
    /* Everything the core reads is read; nothing else is there. */
    CHECK(config_unread(ic->config) == NULL);
  }
  settings_free(&s);
  CHECK(all_zero(&s, sizeof s));
  settings_free(&s); /* twice is fine */
}

static void test_settings_full(void) {
  struct settings s;
  CHECK_OK(settings_load("configs/good-full.yaml", &s));
  CHECK_STR(s.state_dir, fmt("%s/configs/state-full", srcdir_rp));
  CHECK_STR(s.plugin_dir, "/opt/vmhost/plugins");
  CHECK_STR(s.log_file, fmt("%s/configs/logs/vmhostd.log", srcdir_rp));
  CHECK(s.log_format == LOG_JSON);
  CHECK_INT(s.log_level, ==, VMH_LOG_DEBUG);
  CHECK_INT(s.n_levels, ==, 3);
  CHECK_STR(s.levels[0].source, "core");
  CHECK_INT(s.levels[0].level, ==, VMH_LOG_WARN);
  CHECK_STR(s.levels[1].source, "hv0");
  CHECK_INT(s.levels[1].level, ==, VMH_LOG_DEBUG);
  CHECK_STR(s.levels[2].source, "pool0");
  CHECK_INT(s.levels[2].level, ==, VMH_LOG_ERROR);
  CHECK_INT(s.workers, ==, 16);
  CHECK_INT(s.drain_timeout_s, ==, 60);
  CHECK_INT(s.reconcile_interval_s, ==, 0);
  /* Load order, whatever the order in the file. */
  CHECK_INT(s.n_instances, ==, 4);
  CHECK_STR(s.instances[0].name, "pool0");
  CHECK_INT(s.instances[0].kind, ==, VMH_KIND_STORAGE);
  CHECK_STR(s.instances[1].name, "net0");
  CHECK_INT(s.instances[1].kind, ==, VMH_KIND_NETWORK);
  CHECK_INT(s.instances[1].optional, ==, 0);
  CHECK_STR(s.instances[2].name, "hv0");
  CHECK_INT(s.instances[2].kind, ==, VMH_KIND_HYPERVISOR);
  CHECK_INT(s.instances[2].optional, ==, 0);
  CHECK_STR(s.instances[3].name, "hv1");
  CHECK_INT(s.instances[3].optional, ==, 1);
  for (size_t i = 0; i < s.n_instances; i++)
    CHECK(config_unread(s.instances[i].config) == NULL);
  settings_free(&s);
}

static void test_settings_env(void) {
  struct settings s;
  CHECK(setenv("VMHOST_PLUGIN_DIR", "/a/plugins:/b/plugins", 1) == 0);
  CHECK_OK(settings_load("configs/good-full.yaml", &s));
  CHECK_STR(s.plugin_dir, "/a/plugins:/b/plugins");
  settings_free(&s);
  CHECK_OK(settings_load("configs/good-minimal.yaml", &s));
  CHECK_STR(s.plugin_dir, "/a/plugins:/b/plugins");
  settings_free(&s);
  /* Set but empty: as if unset. */
  CHECK(setenv("VMHOST_PLUGIN_DIR", "", 1) == 0);
  CHECK_OK(settings_load("configs/good-full.yaml", &s));
  CHECK_STR(s.plugin_dir, "/opt/vmhost/plugins");
  settings_free(&s);
  CHECK(unsetenv("VMHOST_PLUGIN_DIR") == 0);
}

static void test_settings_fixtures(void) {
  refuse_settings("configs/bad-unknown-top.yaml", VMH_EINVAL,
                  "configs/bad-unknown-top.yaml:3:1: unknown key 'hypervisor' "
                  "at the top level (expected one of: daemon, hypervisors, "
                  "storage, networks, frontends, resources); did you mean "
                  "'hypervisors'?");
  refuse_settings("configs/bad-unknown-daemon.yaml", VMH_EINVAL,
                  "configs/bad-unknown-daemon.yaml:3:3: unknown key "
                  "'stat_dir' under daemon (expected one of: state_dir, "
                  "plugin_dir, log, workers, drain_timeout, "
                  "reconcile_interval, boot_dirs, operations_retention, "
                  "operations_max, journal_compact_size, telemetry_interval, "
                  "liveness_stall, event_history); "
                  "did you mean 'state_dir'?");
  refuse_settings("configs/bad-range.yaml", VMH_EINVAL,
                  "configs/bad-range.yaml:3:3: key 'workers': 0 is out of "
                  "range 1..256");
  refuse_settings("configs/bad-type.yaml", VMH_EINVAL,
                  "configs/bad-type.yaml:3:3: key 'workers': expected an "
                  "integer, found 'lots'");
  refuse_settings("configs/bad-dup-instance.yaml", VMH_EINVAL,
                  "configs/bad-dup-instance.yaml:6:5: duplicate instance "
                  "name 'hv0' (first at configs/bad-dup-instance.yaml:3:5)");
  refuse_settings("configs/bad-dup-key.yaml", VMH_EINVAL,
                  "configs/bad-dup-key.yaml:4:3: duplicate key 'workers' "
                  "(first at 3:3)");
  refuse_settings("configs/bad-syntax.yaml", VMH_EINVAL,
                  "configs/bad-syntax.yaml:4:12: syntax error: did not find "
                  "expected ',' or ']' (while parsing a flow sequence at "
                  "3:12)");
  refuse_settings("configs/bad-missing-plugin.yaml", VMH_EINVAL,
                  "configs/bad-missing-plugin.yaml:3:5: missing required key "
                  "'plugin'");
  refuse_settings("configs/bad-name.yaml", VMH_EINVAL,
                  "configs/bad-name.yaml:3:5: key 'name': 'Hv_0' is not a "
                  "valid instance name " NAME_RULE_TEXT);
  refuse_settings("configs/bad-alias.yaml", VMH_EINVAL,
                  "configs/bad-alias.yaml:3:5: anchor '&base': anchors and "
                  "aliases are not supported");
  refuse_settings("configs/bad-utf8.yaml", VMH_EINVAL,
                  "configs/bad-utf8.yaml:3:33: invalid UTF-8 (byte 0xE9); "
                  "the config file must be UTF-8 text");
  refuse_settings("configs/no-such.yaml", VMH_ENOENT,
                  "configs/no-such.yaml: cannot open: No such file or "
                  "directory");

  /* The settings load; the plugin's open() would leave max_vcpu unread. */
  struct settings s;
  CHECK_OK(settings_load("configs/bad-plugin-key.yaml", &s));
  CHECK_INT(s.n_instances, ==, 1);
  const struct vmh_config *u = config_unread(s.instances[0].config);
  CHECK(u);
  CHECK_STR(config_key_name(u), "max_vcpu");
  CHECK_STR(config_where(u), "configs/bad-plugin-key.yaml:7:5");
  settings_free(&s);
}

/* Settings from generated files: the corners the fixtures do not show. */
static void settings_refuse(const char *yaml, const char *msg) {
  const char *p = put_str("settings.yaml", yaml);
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s", p);
  char want[2048];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
  snprintf(want, sizeof want, msg, path, path);
#pragma GCC diagnostic pop
  refuse_settings(path, VMH_EINVAL, want);
}

static void test_settings_more(void) {
  struct settings s;
  const char *p;

  /* Absent or null sections are empty; instance file: is resolved. */
  p = put_str("settings.yaml",
              "daemon:\n"
              "hypervisors:\n"
              "storage: []\n"
              "networks:\n"
              "  - name: n-1\n"
              "    plugin: vendor-net\n"
              "    file: plugins/vendor.so\n"
              "    optional: yes\n"
              "    bridge: br0\n");
  CHECK_OK(settings_load(p, &s));
  CHECK_STR(s.state_dir, fmt("%s/state", tmpdir_rp));
  CHECK_INT(s.workers, ==, 8);
  CHECK_INT(s.n_instances, ==, 1);
  CHECK_STR(s.instances[0].name, "n-1");
  CHECK_STR(s.instances[0].plugin, "vendor-net");
  CHECK_STR(s.instances[0].file, fmt("%s/plugins/vendor.so", tmpdir_rp));
  CHECK_INT(s.instances[0].optional, ==, 1);
  const struct vmh_config *u = config_unread(s.instances[0].config);
  CHECK_STR(config_key_name(u), "bridge");
  settings_free(&s);

  p = put_str("settings.yaml", "");
  CHECK_OK(settings_load(p, &s));
  CHECK_STR(s.state_dir, fmt("%s/state", tmpdir_rp));
  CHECK_STR(s.plugin_dir, PLUGINDIR);
  CHECK_INT(s.n_instances, ==, 0);
  CHECK(s.instances == NULL);
  settings_free(&s);

  settings_refuse(
      "hypervisors:\n  - name: hv0\n    plugin: mock\n"
      "daemon:\n  log:\n    levels:\n      hv1: debug\n",
      "%s:7:7: unknown log source 'hv1' under daemon.log.levels "
      "(expected 'core' or an instance name); did you mean "
      "'hv0'?");
  settings_refuse("daemon:\n  log:\n    levels:\n      frontend: debug\n",
                  "%s:4:7: unknown log source 'frontend' under "
                  "daemon.log.levels (expected 'core' or an instance name)");
  settings_refuse("daemon:\n  log:\n    levels:\n      core: loud\n",
                  "%s:4:7: key 'core': expected one of error, warn, info, "
                  "debug, found 'loud'");
  settings_refuse("daemon:\n  log:\n    levels: [core]\n",
                  "%s:3:5: key 'levels': expected a map, found a list");
  settings_refuse("daemon:\n  log:\n    level: verbose\n",
                  "%s:3:5: key 'level': expected one of error, warn, info, "
                  "debug, found 'verbose'");
  settings_refuse("daemon:\n  log:\n    level:\n",
                  "%s:3:5: key 'level': expected one of error, warn, info, "
                  "debug, found an empty value");
  settings_refuse("daemon:\n  log:\n    format: xml\n",
                  "%s:3:5: key 'format': expected text or json, found 'xml'");
  settings_refuse("daemon:\n  log:\n    fromat: json\n",
                  "%s:3:5: unknown key 'fromat' under daemon.log (expected "
                  "one of: format, level, file, levels); did you mean "
                  "'format'?");
  settings_refuse("daemon:\n  log: stderr\n",
                  "%s:2:3: key 'log': expected a map, found 'stderr'");
  settings_refuse("daemon:\n  drain_timeout: 3601\n",
                  "%s:2:3: key 'drain_timeout': 3601 is out of range "
                  "0..3600");
  settings_refuse("daemon:\n  reconcile_interval: -1\n",
                  "%s:2:3: key 'reconcile_interval': -1 is out of range "
                  "0..86400");
  settings_refuse("daemon:\n  workers: 257\n",
                  "%s:2:3: key 'workers': 257 is out of range 1..256");
  settings_refuse("daemon:\n  wokrers: 2\n",
                  "%s:2:3: unknown key 'wokrers' under daemon (expected one "
                  "of: state_dir, plugin_dir, log, workers, drain_timeout, "
                  "reconcile_interval, boot_dirs, operations_retention, "
                  "operations_max, journal_compact_size, telemetry_interval, "
                  "liveness_stall, event_history); "
                  "did you mean 'workers'?");
  /* Two transpositions: two edits, though four for plain Levenshtein. */
  settings_refuse("daemon:\n  drian_tiemout: 2\n",
                  "%s:2:3: unknown key 'drian_tiemout' under daemon (expected "
                  "one of: state_dir, plugin_dir, log, workers, "
                  "drain_timeout, reconcile_interval, boot_dirs, "
                  "operations_retention, operations_max, "
                  "journal_compact_size, telemetry_interval, "
                  "liveness_stall, event_history); did you mean "
                  "'drain_timeout'?");
  /* Three edits: no hint. */
  settings_refuse("daemon:\n  work: 2\n",
                  "%s:2:3: unknown key 'work' under daemon (expected one of: "
                  "state_dir, plugin_dir, log, workers, drain_timeout, "
                  "reconcile_interval, boot_dirs, operations_retention, "
                  "operations_max, journal_compact_size, telemetry_interval, "
                  "liveness_stall, event_history)");
  settings_refuse("daemon:\n  color: blue\n",
                  "%s:2:3: unknown key 'color' under daemon (expected one "
                  "of: state_dir, plugin_dir, log, workers, drain_timeout, "
                  "reconcile_interval, boot_dirs, operations_retention, "
                  "operations_max, journal_compact_size, telemetry_interval, "
                  "liveness_stall, event_history)");
  settings_refuse("daemon:\n  journal_compact_size: 100\n",
                  "%s:2:3: key 'journal_compact_size': 100 bytes is too "
                  "small (0: never compact, or 4KiB and up)");
  settings_refuse("daemon:\n  state_dir:\n",
                  "%s:2:3: key 'state_dir': expected a path, found an empty "
                  "value");
  settings_refuse("daemon: [1]\n",
                  "%s:1:1: key 'daemon': expected a map, found a list");
  settings_refuse("plugins: []\n",
                  "%s:1:1: unknown key 'plugins' at the top level (expected "
                  "one of: daemon, hypervisors, storage, networks, "
                  "frontends, resources)");
  settings_refuse("hypervisors: {name: hv0}\n",
                  "%s:1:1: key 'hypervisors': expected a list, found a map");
  settings_refuse("hypervisors:\n  - mock\n",
                  "%s:2:5: element 1 of 'hypervisors': expected a map, "
                  "found 'mock'");
  settings_refuse("hypervisors:\n  -\n",
                  "%s:2:4: element 1 of 'hypervisors': expected a map, "
                  "found an empty value");
  settings_refuse("storage:\n  - plugin: mock\n",
                  "%s:2:5: missing required key 'name'");
  settings_refuse("storage:\n  - name: core\n    plugin: mock\n",
                  "%s:2:5: key 'name': 'core' is reserved for the daemon "
                  "itself");
  settings_refuse(
      "storage:\n  - name: -x\n    plugin: mock\n",
      "%s:2:5: key 'name': '-x' is not a valid instance name " NAME_RULE_TEXT);
  settings_refuse(
      "storage:\n  - name: \"\"\n    plugin: mock\n",
      "%s:2:5: key 'name': '' is not a valid instance name " NAME_RULE_TEXT);
  settings_refuse(
      "storage:\n  - name: "
      "a123456789012345678901234567890123456789012345678901234567890123\n"
      "    plugin: mock\n",
      "%s:2:5: key 'name': "
      "'a123456789012345678901234567890123456789012345678901234567890123' is "
      "not a valid instance name " NAME_RULE_TEXT);
  settings_refuse("storage:\n  - name: p0\n    plugin: Mock\n",
                  "%s:3:5: key 'plugin': 'Mock' is not a valid plugin "
                  "name " NAME_RULE_TEXT);
  settings_refuse("storage:\n  - name: p0\n    plugin: mock\n    optional: 1\n",
                  "%s:4:5: key 'optional': expected true or false (or "
                  "yes/no, on/off), found '1'");
  settings_refuse("storage:\n  - name: p0\n    plugin: mock\n    file:\n",
                  "%s:4:5: key 'file': expected a path, found an empty value");
  /* Duplicates are reported at their second appearance in the file,
   * whatever the load order. */
  settings_refuse(
      "frontends:\n  - name: x\n    plugin: rest\n"
      "storage:\n  - name: x\n    plugin: mock\n",
      "%s:5:5: duplicate instance name 'x' (first at %s:2:5)");
  settings_refuse(
      "storage:\n  - name: x\n    plugin: mock\n"
      "  - name: x\n    plugin: mock\n",
      "%s:4:5: duplicate instance name 'x' (first at %s:2:5)");

  /* A long name is fine (63 characters). */
  p = put_str("settings.yaml",
              "storage:\n  - name: "
              "a12345678901234567890123456789012345678901234567890123456789012"
              "\n    plugin: mock\n");
  CHECK_OK(settings_load(p, &s));
  CHECK_INT(strlen(s.instances[0].name), ==, 63);
  settings_free(&s);

  CHECK_STR(kind_name(VMH_KIND_HYPERVISOR), "hypervisor");
  CHECK_STR(kind_name(VMH_KIND_STORAGE), "storage");
  CHECK_STR(kind_name(VMH_KIND_NETWORK), "network");
  CHECK_STR(kind_name(VMH_KIND_FRONTEND), "frontend");
  CHECK_STR(kind_name(0), "unknown");
}

/* Remove tmpdir and what is in it (one level of subdirectories), pass or
 * fail. */
static void remove_tmpdir(void) {
  DIR *d = opendir(tmpdir);
  if (!d)
    return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
    if (unlink(path) != 0 && errno == EISDIR) {
      DIR *sub = opendir(path);
      struct dirent *f;
      while (sub && (f = readdir(sub))) {
        char p2[PATH_MAX * 2];
        snprintf(p2, sizeof p2, "%s/%s", path, f->d_name);
        unlink(p2);
      }
      if (sub)
        closedir(sub);
      rmdir(path);
    }
  }
  closedir(d);
  if (rmdir(tmpdir) != 0)
    fprintf(stderr, "cannot remove %s: %s\n", tmpdir, strerror(errno));
}

int main(void) {
  const char *srcdir = getenv("srcdir");
  if (!srcdir)
    srcdir = ".";
  if (chdir(srcdir) != 0) {
    fprintf(stderr, "cannot change to srcdir %s: %s\n", srcdir,
            strerror(errno));
    return 1;
  }
  CHECK(realpath(".", srcdir_rp));
  const char *tmp = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/test-config.XXXXXX",
           tmp && tmp[0] ? tmp : "/tmp");
  CHECK(mkdtemp(tmpdir));
  CHECK(realpath(tmpdir, tmpdir_rp));
  atexit(remove_tmpdir);
  /* The tests of plugin_dir decide this themselves. */
  unsetenv("VMHOST_PLUGIN_DIR");

  test_string();
  test_int();
  test_size();
  test_bool();
  test_containers();
  test_unread();
  test_paths();
  test_parse_errors();
  test_empty();
  test_depth();
  test_huge();
  test_settings_minimal();
  test_settings_full();
  test_settings_env();
  test_settings_fixtures();
  test_settings_more();

  return 0;
}
