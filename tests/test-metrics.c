/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Metrics: the exact exposition lines for known observations. */
#include <config.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#include <vmhost/common.h>
#include "core-unit.h"
#include "metrics.h"

/* Whether `line` is a whole line of text. */
static bool has_line(const char *text, const char *line) {
  size_t n = strlen(line);

  for (const char *p = text; (p = strstr(p, line)); p++)
    if ((p == text || p[-1] == '\n') && p[n] == '\n')
      return true;
  return false;
}

static size_t count(const char *text, const char *s) {
  size_t n = 0;

  for (const char *p = text; (p = strstr(p, s)); p += strlen(s))
    n++;
  return n;
}

#define CHECK_LINE(text, line)                                           \
  do {                                                                   \
    if (!has_line(text, line))                                           \
      unit_fail(__FILE__, __LINE__, "missing line \"%s\" in:\n%s", line, \
                text);                                                   \
  } while (0)

static char *render(void) {
  size_t len = 0;
  char *text = metrics_render(&len);

  CHECK(text != NULL);
  CHECK_INT(strlen(text), ==, len);
  CHECK(len > 0 && text[len - 1] == '\n');
  return text;
}

static void test_histogram(void) {
  char *text;

  metrics_observe("nfs1", "volume_create", 0, 0.003);
  metrics_observe("nfs1", "volume_create", VMH_ENOENT, 0.02);
  metrics_observe("nfs1", "volume_create", 0, 0.0001); /* le is inclusive */
  metrics_observe("nfs1", "volume_create", 0, 12.5);
  metrics_observe("nfs1", "volume_create", 7, -1.0); /* unknown code; < 0 */
  metrics_observe("nfs1", "volume_create", 0, 0.000001234);
  metrics_observe(NULL, "vm_list", 0, 0.25);
  text = render();

#define OPS "vmhost_plugin_calls_total{instance=\"nfs1\",op=\"volume_create\","
  CHECK_LINE(text, OPS "result=\"ok\"} 4");
  CHECK_LINE(text, OPS "result=\"not_found\"} 1");
  CHECK_LINE(text, OPS "result=\"internal\"} 1");
  CHECK_INT(count(text, OPS), ==, 3);
  /* Results in name order. */
  CHECK(strstr(text, OPS "result=\"internal\"") <
        strstr(text, OPS "result=\"not_found\""));
  CHECK(strstr(text, OPS "result=\"not_found\"") <
        strstr(text, OPS "result=\"ok\""));
#define B                                                         \
  "vmhost_plugin_call_duration_seconds_bucket{instance=\"nfs1\"," \
  "op=\"volume_create\",le="
  CHECK_LINE(text, B "\"0.0001\"} 3");
  CHECK_LINE(text, B "\"0.0005\"} 3");
  CHECK_LINE(text, B "\"0.001\"} 3");
  CHECK_LINE(text, B "\"0.005\"} 4");
  CHECK_LINE(text, B "\"0.01\"} 4");
  CHECK_LINE(text, B "\"0.05\"} 5");
  CHECK_LINE(text, B "\"0.1\"} 5");
  CHECK_LINE(text, B "\"0.5\"} 5");
  CHECK_LINE(text, B "\"1\"} 5");
  CHECK_LINE(text, B "\"5\"} 5");
  CHECK_LINE(text, B "\"10\"} 5");
  CHECK_LINE(text, B "\"+Inf\"} 6");
  CHECK_INT(count(text, B), ==, 12);
  CHECK_LINE(text,
             "vmhost_plugin_call_duration_seconds_sum{instance=\"nfs1\","
             "op=\"volume_create\"} 12.523101234");
  CHECK_LINE(text,
             "vmhost_plugin_call_duration_seconds_count{instance=\"nfs1\","
             "op=\"volume_create\"} 6");
  CHECK_LINE(text,
             "vmhost_plugin_calls_total{instance=\"core\",op=\"vm_list\","
             "result=\"ok\"} 1");

  /* Each family is described once. */
  CHECK_INT(count(text, "# TYPE vmhost_plugin_calls_total counter\n"), ==, 1);
  CHECK_INT(count(text, "# HELP vmhost_plugin_calls_total "), ==, 1);
  CHECK_INT(
      count(text, "# TYPE vmhost_plugin_call_duration_seconds histogram\n"), ==,
      1);
  CHECK_INT(count(text, "# HELP vmhost_plugin_call_duration_seconds "), ==, 1);
  free(text);
  metrics_free();
}

static void test_process(void) {
  unsigned long long v, v2;
  char *text = render();
  int fds[10];
  const char *p;

  CHECK_LINE(text, "# TYPE vmhost_build_info gauge");
  CHECK(strstr(text, "\nvmhost_build_info{version=\"" PACKAGE_VERSION
                     "\",abi=\"1.2\"} 1\n"));
  p = strstr(text, "\nprocess_start_time_seconds ");
  CHECK(p && sscanf(p, "\nprocess_start_time_seconds %llu.", &v) == 1);
  CHECK(v > 1600000000ull);
  p = strstr(text, "\nprocess_resident_memory_bytes ");
  CHECK(p && sscanf(p, "\nprocess_resident_memory_bytes %llu", &v) == 1);
  CHECK(v > 0);
  p = strstr(text, "\nprocess_virtual_memory_bytes ");
  CHECK(p && sscanf(p, "\nprocess_virtual_memory_bytes %llu", &v2) == 1);
  CHECK(v2 >= v);
  CHECK_LINE(text, "# TYPE process_cpu_seconds_total counter");
  CHECK(strstr(text, "\nprocess_cpu_seconds_total "));
  p = strstr(text, "\nprocess_max_fds ");
  CHECK(p && sscanf(p, "\nprocess_max_fds %llu", &v) == 1);
  CHECK(v > 10);
  CHECK_LACKS(text, "vmhost_up");
  p = strstr(text, "\nprocess_open_fds ");
  CHECK(p && sscanf(p, "\nprocess_open_fds %llu", &v) == 1);
  CHECK(v > 0);
  free(text);

  /* Ten more files open, ten more counted. */
  for (int i = 0; i < 10; i++)
    CHECK((fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0);
  text = render();
  p = strstr(text, "\nprocess_open_fds ");
  CHECK(p && sscanf(p, "\nprocess_open_fds %llu", &v2) == 1);
  CHECK_INT(v2, ==, v + 10);
  for (int i = 0; i < 10; i++)
    close(fds[i]);
  free(text);
}

static void test_escaping(void) {
  char *text;

  metrics_observe("a\"b\\c\nd", "op", 0, 0.5);
  metrics_counter_add("q\"uote", "requests", 1);
  text = render();
  CHECK_LINE(text,
             "vmhost_plugin_calls_total{instance=\"a\\\"b\\\\c\\nd\",op=\"op\","
             "result=\"ok\"} 1");
  CHECK_LINE(text, "vmhost_plugin_requests_total{instance=\"q\\\"uote\"} 1");
  free(text);
  metrics_free();
}

/* Lines that depend on the process, not on what the test recorded. */
static void drop_process_lines(char *text) {
  char *out = text;

  for (char *p = text; *p;) {
    char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p + 1) : strlen(p);

    if (strncmp(p, "process_", 8) != 0) {
      memmove(out, p, n);
      out += n;
    }
    p += n;
  }
  *out = '\0';
}

/* The lines starting with prefix come in strictly increasing order. */
static void check_sorted(const char *text, const char *prefix) {
  const char *prev = NULL, *p = text;
  size_t n = 0, plen = strlen(prefix);

  for (; *p; p = strchr(p, '\n') + 1) {
    if (strncmp(p, prefix, plen) == 0) {
      if (prev && strcmp(prev, p) >= 0)
        unit_fail(__FILE__, __LINE__, "out of order: %.60s before %.60s", prev,
                  p);
      prev = p;
      n++;
    }
  }
  CHECK_INT(n, >=, 40);
}

static void test_sorted(void) {
  const char *instances[] = {"zeta", "alpha", "mu"};
  const char *ops[] = {"vm_start", "vm_create", "vm_stop"};
  char *a, *b;
  const char *p1, *p2, *p3;

  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++)
      metrics_observe(instances[i], ops[j], 0, 0.001);
  metrics_gauge_set("zeta", "queue_depth", -3);
  metrics_gauge_set("alpha", "queue_depth", 7);
  metrics_counter_add("mu", "bytes_read", 10);
  metrics_counter_add("mu", "bytes_read", 5);

  a = render();
  p1 = strstr(a, "{instance=\"alpha\",op=\"vm_create\"");
  p2 = strstr(a, "{instance=\"alpha\",op=\"vm_start\"");
  p3 = strstr(a, "{instance=\"mu\",op=\"vm_create\"");
  CHECK(p1 && p2 && p3 && p1 < p2 && p2 < p3);
  p1 = strstr(a,
              "# TYPE vmhost_plugin_bytes_read_total counter\n"
              "vmhost_plugin_bytes_read_total{instance=\"mu\"} 15\n");
  p2 = strstr(a,
              "# TYPE vmhost_plugin_queue_depth gauge\n"
              "vmhost_plugin_queue_depth{instance=\"alpha\"} 7\n"
              "vmhost_plugin_queue_depth{instance=\"zeta\"} -3\n");
  CHECK(p1 && p2 && p1 < p2);
  CHECK_INT(count(a, "# HELP vmhost_plugin_queue_depth "), ==, 1);

  free(a);
  metrics_free();

  /* Enough series that hash order is not sorted order by chance. */
  for (int i = 0; i < 40; i++) {
    char inst[16], name[16];

    snprintf(inst, sizeof inst, "i%02d", (i * 17) % 40);
    snprintf(name, sizeof name, "m%02d", (i * 13) % 40);
    metrics_observe(inst, "op_b", 0, 0.1);
    metrics_observe(inst, "op_a", 0, 0.1);
    metrics_counter_add(inst, name, 1);
    metrics_counter_add("x", name, 1);
  }
  a = render();
  check_sorted(a, "vmhost_plugin_calls_total{instance=\"");
  check_sorted(a, "vmhost_plugin_call_duration_seconds_sum{instance=\"");
  check_sorted(a, "vmhost_plugin_m");

  /* Same state, same text. */
  b = render();
  drop_process_lines(a);
  drop_process_lines(b);
  CHECK_STR(a, b);
  free(a);
  free(b);
  metrics_free();
}

static void test_plugin_names(void) {
  char long_name[100];
  char *text;

  memset(long_name, 'a', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';
  metrics_counter_add("nfs1", "ok_name_2", 1);
  metrics_counter_add("nfs1", "Bad", 1);
  metrics_counter_add("nfs1", "a-b", 1);
  metrics_counter_add("nfs1", "a b", 1);
  metrics_counter_add("nfs1", "", 1);
  metrics_counter_add("nfs1", NULL, 1);
  metrics_counter_add("nfs1", long_name, 1);
  metrics_gauge_set("nfs1", "x{y=\"1\"}", 1);
  metrics_gauge_set("nfs1", "\xc3\xa9", 1);
  /* A name keeps the type it was first used with. */
  metrics_gauge_set("nfs1", "ok_name_2", 99);
  metrics_gauge_set("nfs2", "ok_name_2", 99);
  metrics_counter_add(NULL, "from_core", 2);
  metrics_counter_add("nfs1", "things_total", 5);

  text = render();
  CHECK_LINE(text, "vmhost_plugin_ok_name_2_total{instance=\"nfs1\"} 1");
  CHECK_LINE(text, "vmhost_plugin_from_core_total{instance=\"core\"} 2");
  CHECK_LINE(text, "vmhost_plugin_things_total{instance=\"nfs1\"} 5");
  CHECK_LINE(text, "# TYPE vmhost_plugin_things_total counter");
  CHECK_INT(count(text, "vmhost_plugin_things_total"), ==, 3);
  /* 3 series with their HELP and TYPE, and the HELP and TYPE of the two
   * calls families (no series here). */
  CHECK_INT(count(text, "vmhost_plugin_"), ==, 3 * 3 + 2 * 2);
  CHECK_LACKS(text, "instance=\"nfs2\"");
  free(text);
  metrics_free();
}

/* host->metrics_source: a source's text as fn writes it. */
static void source_a(void *opaque, metrics_write_fn write, void *wopaque) {
  const char *t =
      "stray_line_before_any_header 1\n"
      "# HELP fe_requests_total Requests.\n"
      "# TYPE fe_requests_total counter\n"
      "fe_requests_total{instance=\"a\",route=\"/x\"} 3\n"
      "# a comment\n"
      "# HELP fe_seconds Latency.\n"
      "# TYPE fe_seconds gauge\n"
      "fe_seconds{instance=\"a\"} 0.5\n";
  (void)opaque;
  write(wopaque, t, 10); /* in pieces */
  write(wopaque, t + 10, strlen(t) - 10);
}

static int b_calls;

static void source_b(void *opaque, metrics_write_fn write, void *wopaque) {
  const char *t =
      "# HELP fe_requests_total Other words.\n"
      "# TYPE fe_requests_total counter\n"
      "fe_requests_total{instance=\"b\",route=\"/x\"} 4"; /* no \n */
  (void)opaque;
  b_calls++;
  write(wopaque, t, strlen(t));
}

/* Two sources with the same family: one HELP and TYPE, both series; the
 * line before any header is dropped; a withdrawn source is not called. */
static void test_sources(void) {
  int key_a, key_b;
  char *text;

  CHECK_INT(metrics_source_set(&key_a, source_a, NULL), ==, 0);
  CHECK_INT(metrics_source_set(&key_b, source_b, NULL), ==, 0);
  text = render();
  CHECK_INT(count(text, "# HELP fe_requests_total "), ==, 1);
  CHECK_INT(count(text, "# TYPE fe_requests_total counter\n"), ==, 1);
  CHECK(strstr(text,
               "# HELP fe_requests_total Requests.\n"
               "# TYPE fe_requests_total counter\n"
               "fe_requests_total{instance=\"a\",route=\"/x\"} 3\n"
               "fe_requests_total{instance=\"b\",route=\"/x\"} 4\n"
               "# HELP fe_seconds Latency.\n"
               "# TYPE fe_seconds gauge\n"
               "fe_seconds{instance=\"a\"} 0.5\n"));
  CHECK_LACKS(text, "stray_line");
  CHECK_LACKS(text, "# a comment");
  CHECK_INT(b_calls, ==, 1);
  free(text);

  CHECK_INT(metrics_source_set(&key_b, NULL, NULL), ==, 0);
  text = render();
  CHECK_LACKS(text, "instance=\"b\"");
  CHECK_INT(b_calls, ==, 1);
  CHECK(strstr(text, "fe_requests_total{instance=\"a\",route=\"/x\"} 3\n"));
  free(text);
  metrics_free();
  text = render();
  CHECK_LACKS(text, "fe_requests_total");
  free(text);
}

#define THREADS 4
#define PER_THREAD 20000

static void *observer(void *arg) {
  (void)arg;
  for (int i = 0; i < PER_THREAD; i++) {
    metrics_observe("core", "vm_list", 0, 0.000001);
    metrics_counter_add("core", "hits", 1);
  }
  return NULL;
}

static void test_concurrent(void) {
  pthread_t t[THREADS];
  char *text;
  char line[128];

  for (int i = 0; i < THREADS; i++)
    CHECK_INT(pthread_create(&t[i], NULL, observer, NULL), ==, 0);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  text = render();
  snprintf(line, sizeof line,
           "vmhost_plugin_call_duration_seconds_count{instance=\"core\","
           "op=\"vm_list\"} %d",
           THREADS * PER_THREAD);
  CHECK_LINE(text, line);
  snprintf(line, sizeof line,
           "vmhost_plugin_call_duration_seconds_sum{instance=\"core\","
           "op=\"vm_list\"} 0.08");
  CHECK_LINE(text, line);
  snprintf(line, sizeof line,
           "vmhost_plugin_calls_total{instance=\"core\",op=\"vm_list\","
           "result=\"ok\"} %d",
           THREADS * PER_THREAD);
  CHECK_LINE(text, line);
  snprintf(line, sizeof line, "vmhost_plugin_hits_total{instance=\"core\"} %d",
           THREADS * PER_THREAD);
  CHECK_LINE(text, line);
  free(text);
  metrics_free();
}

int main(void) {
  test_histogram();
  test_process();
  test_escaping();
  test_sorted();
  test_plugin_names();
  test_concurrent();
  test_sources();
  return 0;
}
