/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The commands of vmhostctl: one table (the help, the argument checks and
 * the bash completion are made from it), each entry one REST call of
 * plugins/frontend/rest/openapi.yaml. */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cleanup.h"
#include "ctl.h"
#include "sizes.h"

#define V "/api/v1"

/* ---- the columns of the lists ---------------------------------------- */

static const struct column vm_cols[] = {{"NAME", "name"},
                                        {"ID", "id"},
                                        {"STATE", "state"},
                                        {"STATUS", "status"},
                                        {"VCPUS", "vcpus"},
                                        {"MEMORY", "memory"},
                                        {"HYPERVISOR", "hypervisor"},
                                        {"IPS", "ips"},
                                        {NULL, NULL}};
static const struct column snap_cols[] = {{"NAME", "name"},
                                          {"ID", "id"},
                                          {"CREATED", "created"},
                                          {"VM_STATE", "vm_state"},
                                          {"CURRENT", "current"},
                                          {"PARENT", "parent"},
                                          {NULL, NULL}};
static const struct column pool_cols[] = {{"NAME", "name"},
                                          {"TYPE", "type"},
                                          {"CAPACITY", "capacity"},
                                          {"ALLOCATION", "allocation"},
                                          {"AVAILABLE", "available"},
                                          {"VOLUMES", "n_volumes"},
                                          {"FORMAT", "default_format"},
                                          {"MESSAGE", "message"},
                                          {NULL, NULL}};
static const struct column vol_cols[] = {{"NAME", "name"},
                                         {"CAPACITY", "capacity"},
                                         {"ALLOCATION", "allocation"},
                                         {"FORMAT", "format"},
                                         {"BACKING", "backing"},
                                         {"LOCATION", "location"},
                                         {NULL, NULL}};
static const struct column net_cols[] = {
    {"NAME", "name"},     {"TYPE", "type"},       {"BRIDGE", "bridge"},
    {"CIDR", "cidr"},     {"GATEWAY", "gateway"}, {"MTU", "mtu"},
    {"PORTS", "n_ports"}, {"UP", "up"},           {NULL, NULL}};
static const struct column token_cols[] = {
    {"NAME", "name"}, {"ROLE", "role"}, {"CREATED", "created"}, {NULL, NULL}};
static const struct column op_cols[] = {{"ID", "id"},
                                        {"KIND", "kind"},
                                        {"STATUS", "status"},
                                        {"VM", "target.vm_name"},
                                        {"POOL", "target.pool"},
                                        {"OBJECT", "target.object"},
                                        {"PERCENT", "progress.percent"},
                                        {"CREATED", "created_us"},
                                        {NULL, NULL}};
static const struct column plugin_cols[] = {
    {"NAME", "name"},           {"KIND", "kind"},
    {"VERSION", "version"},     {"THREAD_MODEL", "thread_model"},
    {"INSTANCES", "instances"}, {NULL, NULL}};

/* ---- helpers ---------------------------------------------------------- */

const char *inv_opt(const struct invocation *inv, const char *name) {
  const char *v = NULL;
  for (size_t i = 0; i < inv->n_opt; i++)
    if (!strcmp(inv->opt[i].name, name))
      v = inv->opt[i].value;
  return v;
}

bool inv_flag(const struct invocation *inv, const char *name) {
  return inv_opt(inv, name) != NULL;
}

char *fill_path(const char *fmt, const char *const *args, const char *query) {
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  if (!f)
    return NULL;
  for (const char *p = fmt; *p; p++) {
    if (p[0] == '{' && p[1] == '}') {
      _cleanup_free_ char *seg = http_escape(*args++);
      fputs(seg ? seg : "", f);
      p++;
    } else {
      fputc(*p, f);
    }
  }
  if (query)
    fprintf(f, "?%s", query);
  fclose(f);
  return out;
}

/* How an answer is shown: a list under list_key with cols, one object
 * (as a one-row table with cols), or an operation's id alone. */
struct shown {
  const char *list_key;
  const struct column *cols;
  bool op_id; /* --no-wait */
};

/* Print r (ret: http_call's outcome); returns the exit code. */
static int show(const struct settings *s, const struct reply *r, int ret,
                const struct shown *how) {
  if (ret != EXIT_OK)
    return ret;
  if (how->op_id) {
    /* --no-wait: 202 with the operation; its id is all that is printed
     * (for `operation wait`). */
    const char *id = json_string_value(json_object_get(r->json, "id"));
    if (r->status == 202 && id) {
      printf("%s\n", id);
      return EXIT_OK;
    }
    fprintf(stderr,
            "vmhostctl: the server answered %ld without an operation "
            "(is it older than operations?)\n",
            r->status);
    return EXIT_ERROR;
  }
  if (!r->json)
    return ret; /* 204 prints nothing */
  if (how->cols && !how->list_key && s->output == OUT_TABLE) {
    /* One object shown as a one-row table (an action's VM). */
    json_t *wrap = json_pack("{s:[O]}", "rows", r->json);
    output_print(s, wrap, "rows", how->cols);
    json_decref(wrap);
  } else {
    output_print(s, r->json, how->list_key, how->cols);
  }
  return ret;
}

/* One call (it takes path and body), its answer shown as how says. */
static int call_show(const struct settings *s, const char *method, char *path,
                     json_t *body, const struct shown *how) {
  struct reply r;
  if (!path) {
    json_decref(body);
    fprintf(stderr, "vmhostctl: out of memory\n");
    return EXIT_ERROR;
  }
  int ret = show(s, &r, http_call(s, method, path, body, &r), how);
  reply_free(&r);
  json_decref(body);
  free(path);
  return ret;
}

int call_print(const struct settings *s, const char *method, char *path,
               json_t *body, const char *list_key, const struct column *cols) {
  const struct shown how = {.list_key = list_key, .cols = cols};
  return call_show(s, method, path, body, &how);
}

/* The command's call (its method, path, how to print) with body, which
 * it takes; the path's {} are the positional arguments in order. */
static int call_cmd(const struct settings *s, struct invocation *inv,
                    json_t *body) {
  const struct command *c = inv->cmd;
  if (inv_flag(inv, "no-wait"))
    return call_show(s, c->method, fill_path(c->path, inv->pos, "wait=false"),
                     body, &(const struct shown){.op_id = true});
  char *path =
      fill_path(c->path, inv->pos, inv_flag(inv, "live") ? "live=true" : NULL);
  return call_print(s, c->method, path, body, c->list_key, c->cols);
}

/* A command that is its call and nothing else. */
static int simple(const struct settings *s, struct invocation *inv) {
  return call_cmd(s, inv, NULL);
}

/* A size, read as the daemon reads one (sizes.h: KiB = 1024, KB = 1000);
 * JSON integers stop at INT64_MAX. */
int parse_size(const char *what, const char *text, json_int_t *out) {
  uint64_t n;
  if (size_parse(text, &n) != NUM_OK || n > (uint64_t)INT64_MAX)
    return usage_error("%s '%s': expected " SIZE_SYNTAX ": 512M, 10GiB", what,
                       text);
  *out = (json_int_t)n;
  return 0;
}

int parse_int(const char *what, const char *text, long min, long max,
              json_int_t *out) {
  char *end;
  errno = 0;
  long n = strtol(text, &end, 10);
  if (errno || end == text || *end || n < min || n > max)
    return usage_error("%s '%s': expected a whole number from %ld to %ld", what,
                       text, min, max);
  *out = n;
  return 0;
}

static int parse_bool(const char *what, const char *text, bool *out) {
  if (!strcmp(text, "true") || !strcmp(text, "yes") || !strcmp(text, "1"))
    *out = true;
  else if (!strcmp(text, "false") || !strcmp(text, "no") || !strcmp(text, "0"))
    *out = false;
  else
    return usage_error("%s '%s': expected true or false", what, text);
  return 0;
}

/* The keys of a disk or NIC spec and how each is read. */
enum kind { K_STR, K_SIZE, K_INT, K_BOOL };
struct field {
  const char *key;
  enum kind kind;
  long max; /* K_INT */
};
static const struct field disk_fields[] = {
    {"name", K_STR, 0},         {"pool", K_STR, 0},
    {"volume", K_STR, 0},       {"size", K_SIZE, 0},
    {"format", K_STR, 0},       {"bus", K_STR, 0},
    {"base_image", K_STR, 0},   {"readonly", K_BOOL, 0},
    {"boot_order", K_INT, 255}, {NULL, K_STR, 0}};
static const struct field nic_fields[] = {
    {"name", K_STR, 0},    {"network", K_STR, 0}, {"mac", K_STR, 0},
    {"vlan", K_INT, 4094}, {"model", K_STR, 0},   {NULL, K_STR, 0}};

static int spec_member(json_t *o, const char *what, const struct field *fields,
                       const char *key, const char *value) {
  const struct field *f = fields;
  while (f->key && strcmp(f->key, key))
    f++;
  if (!f->key) {
    _cleanup_free_ char *known = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&known, &len);
    for (const struct field *g = fields; m && g->key; g++)
      fprintf(m, "%s%s", g == fields ? "" : ", ", g->key);
    if (m)
      fclose(m);
    return usage_error("%s: unknown key '%s' (known: %s)", what, key,
                       known ? known : "?");
  }
  json_int_t n;
  bool b;
  json_t *v = NULL;
  char label[96];
  snprintf(label, sizeof label, "%s %s", what, key);
  switch (f->kind) {
    case K_STR:
      v = json_string(value);
      break;
    case K_SIZE:
      if (parse_size(label, value, &n))
        return EXIT_USAGE;
      v = json_integer(n);
      break;
    case K_INT:
      if (parse_int(label, value, 0, f->max, &n))
        return EXIT_USAGE;
      v = json_integer(n);
      break;
    case K_BOOL:
      if (parse_bool(label, value, &b))
        return EXIT_USAGE;
      v = json_boolean(b);
      break;
  }
  if (!v)
    return usage_error("%s: %s: not valid UTF-8", what, key);
  json_object_set_new(o, key, v);
  return 0;
}

/* "vda,size=10G,pool=pool0": a bare first item is the name. */
static json_t *parse_spec(const char *opt, const char *text,
                          const struct field *fields) {
  _cleanup_free_ char *copy = strdup(text);
  json_t *o = json_object();
  char what[64];
  snprintf(what, sizeof what, "--%s", opt);
  if (!copy || !o)
    goto fail;
  char *save = NULL;
  bool first = true;
  for (char *item = strtok_r(copy, ",", &save); item;
       item = strtok_r(NULL, ",", &save), first = false) {
    char *eq = strchr(item, '=');
    if (!eq && first) {
      if (spec_member(o, what, fields, "name", item))
        goto fail;
      continue;
    }
    if (!eq) {
      usage_error("%s '%s': expected KEY=VALUE, got '%s'", what, text, item);
      goto fail;
    }
    *eq = '\0';
    if (spec_member(o, what, fields, item, eq + 1))
      goto fail;
  }
  if (!json_object_get(o, "name")) {
    usage_error("%s '%s': the name is missing (NAME,KEY=VALUE... or name=...)",
                what, text);
    goto fail;
  }
  return o;
fail:
  json_decref(o);
  return NULL;
}

/* o[key] = text; a usage error naming what when text is no UTF-8 string
 * (an argument or a file of another encoding). */
static int put_str(json_t *o, const char *key, const char *what,
                   const char *text) {
  if (json_object_set_new(o, key, json_string(text)) < 0)
    return usage_error("%s: not UTF-8 text", what);
  return 0;
}

/* A file's text (at most 1 MiB, the server's default body limit); "-" is
 * standard input. */
static char *read_text(const char *what, const char *path) {
  _cleanup_fclose_ FILE *f = strcmp(path, "-") ? fopen(path, "re") : NULL;
  FILE *in = strcmp(path, "-") ? f : stdin;
  if (!in) {
    usage_error("%s: cannot read %s: %s", what, path, strerror(errno));
    return NULL;
  }
  char *buf = malloc((1u << 20) + 1);
  if (!buf)
    return NULL;
  size_t n = fread(buf, 1, 1u << 20, in);
  if (ferror(in) || (n == 1u << 20 && fgetc(in) != EOF)) {
    usage_error("%s: %s: %s", what, path,
                ferror(in) ? strerror(errno) : "over 1 MiB");
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  if (strlen(buf) != n) {
    usage_error("%s: %s holds a NUL byte: not text", what, path);
    free(buf);
    return NULL;
  }
  return buf;
}

/* ---- vm --------------------------------------------------------------- */

/* Write "?name=value" (or "&…" after the first: *sep), value
 * percent-encoded: 0, or -1 when out of memory. */
static int query_add(FILE *f, char *sep, const char *name, const char *value) {
  _cleanup_free_ char *v = http_escape(value);
  fprintf(f, "%c%s=%s", *sep, name, v ? v : "");
  *sep = '&';
  return v ? 0 : -1;
}

static bool is_paging(const char *option) {
  return !strcmp(option, "limit") || !strcmp(option, "chunk-size");
}

/* The command's path (its {} the positional arguments) with its options as
 * the query, each as given (a flag as "=true"; the server checks the
 * values), but for the paging options, vmhostctl's own (when paged).
 * NULL when out of memory. */
static char *options_path(const struct invocation *inv, bool paged) {
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  if (!f)
    return NULL;
  _cleanup_free_ char *path = fill_path(inv->cmd->path, inv->pos, NULL);
  fputs(path ? path : "", f);
  char sep = '?';
  bool failed = !path;
  for (size_t i = 0; i < inv->n_opt; i++) {
    const char *name = inv->opt[i].name;
    const char *value = *inv->opt[i].value ? inv->opt[i].value : "true";
    if (!(paged && is_paging(name)))
      failed |= query_add(f, &sep, name, value) < 0;
  }
  fclose(f);
  if (failed) {
    free(out);
    return NULL;
  }
  return out;
}

/* A list in one answer, the options its query (operation list). */
static int list_query(const struct settings *s, struct invocation *inv) {
  return call_print(s, "GET", options_path(inv, false), NULL,
                    inv->cmd->list_key, inv->cmd->cols);
}

/* A list in pages (list.c), the other options its query. */
static int list_paged(const struct settings *s, struct invocation *inv) {
  struct paging p;
  if (list_paging(inv, &p))
    return EXIT_USAGE;
  return list_print(s, options_path(inv, true), inv->cmd->list_key,
                    inv->cmd->cols, &p);
}

/* vm label VM CHANGE...: KEY=VALUE sets, KEY- removes (kubectl's way), as
 * one merge patch of the VM's labels. */
static int vm_label(const struct settings *s, struct invocation *inv) {
  json_t *body = json_pack("{s:{}}", "metadata");
  json_t *md = json_object_get(body, "metadata");
  int r = md ? 0 : usage_error("out of memory");
  for (size_t i = 1; i < inv->n_pos && !r; i++) {
    const char *a = inv->pos[i], *eq = strchr(a, '=');
    size_t n = eq ? (size_t)(eq - a) : strlen(a) - 1;
    _cleanup_free_ char *key = strndup(a, n);
    if (!eq && a[n] != '-')
      r = usage_error(
          "vm label: '%s': expected KEY=VALUE (set) or KEY- "
          "(remove)",
          a);
    else if (!key || !*key)
      r = usage_error("vm label: '%s': the label has no key", a);
    else if (json_object_get(md, key))
      r = usage_error("vm label: '%s' is changed twice", key);
    else
      json_object_set_new(md, key, eq ? json_string(eq + 1) : json_null());
  }
  if (r) {
    json_decref(body);
    return r;
  }
  return call_cmd(s, inv, body);
}

/* The options of vm create that are strings of the spec as they are, and
 * those read from a file. */
static const char *const vm_str_opts[] = {"kernel",   "initrd",     "cmdline",
                                          "firmware", "hypervisor", NULL};
static const char *const vm_file_opts[] = {"user-data", "meta-data",
                                           "network-config", NULL};

static int vm_spec_scalars(json_t *spec, struct invocation *inv) {
  const char *v;
  json_int_t n;
  if ((v = inv_opt(inv, "vcpus"))) {
    if (parse_int("--vcpus", v, 1, 4096, &n))
      return EXIT_USAGE;
    json_object_set_new(spec, "vcpus", json_integer(n));
  }
  if ((v = inv_opt(inv, "memory"))) {
    if (parse_size("--memory", v, &n))
      return EXIT_USAGE;
    json_object_set_new(spec, "memory", json_integer(n));
  }
  for (const char *const *o = vm_str_opts; *o; o++)
    if ((v = inv_opt(inv, *o)) && put_str(spec, *o, *o, v))
      return EXIT_USAGE;
  for (const char *const *o = vm_file_opts; *o; o++) {
    if (!(v = inv_opt(inv, *o)))
      continue;
    char what[32], key[32];
    snprintf(what, sizeof what, "--%s", *o);
    snprintf(key, sizeof key, "%s", *o);
    for (char *p = key; *p; p++)
      *p = *p == '-' ? '_' : *p;
    _cleanup_free_ char *text = read_text(what, v);
    if (!text || put_str(spec, key, what, text))
      return EXIT_USAGE;
  }
  if (inv_flag(inv, "guest-channel"))
    json_object_set_new(spec, "guest_channel", json_true());
  if (inv_flag(inv, "no-start"))
    json_object_set_new(spec, "start", json_false());
  return 0;
}

/* The repeated options: --disk, --nic, --metadata. */
static int vm_spec_lists(json_t *spec, struct invocation *inv) {
  for (size_t i = 0; i < inv->n_opt; i++) {
    const char *name = inv->opt[i].name, *v = inv->opt[i].value;
    bool disk = !strcmp(name, "disk"), nic = !strcmp(name, "nic");
    if (disk || nic) {
      json_t *item = parse_spec(name, v, disk ? disk_fields : nic_fields);
      if (!item)
        return EXIT_USAGE;
      const char *key = disk ? "disks" : "nics";
      if (!json_is_array(json_object_get(spec, key)))
        json_object_set_new(spec, key, json_array());
      json_array_append_new(json_object_get(spec, key), item);
    } else if (!strcmp(name, "metadata")) {
      const char *eq = strchr(v, '=');
      if (!eq || eq == v)
        return usage_error("--metadata '%s': expected KEY=VALUE", v);
      if (!json_is_object(json_object_get(spec, "metadata")))
        json_object_set_new(spec, "metadata", json_object());
      _cleanup_free_ char *k = strndup(v, (size_t)(eq - v));
      if (!k ||
          put_str(json_object_get(spec, "metadata"), k, "--metadata", eq + 1))
        return EXIT_USAGE;
    }
  }
  return 0;
}

static int vm_create(const struct settings *s, struct invocation *inv) {
  json_t *spec = NULL;
  const char *file = inv_opt(inv, "spec");
  if (file) {
    _cleanup_free_ char *text = read_text("--spec", file);
    json_error_t jerr;
    if (!text)
      return EXIT_USAGE;
    spec = json_loads(text, 0, &jerr);
    if (!json_is_object(spec)) {
      json_decref(spec);
      return usage_error(
          "--spec %s:%d: %s", file, jerr.line,
          spec ? "expected a JSON object (a VmSpec)" : jerr.text);
    }
  } else {
    spec = json_object();
    if (!inv_flag(inv, "vcpus") || !inv_flag(inv, "memory")) {
      json_decref(spec);
      return usage_error(
          "vm create: --vcpus and --memory are required "
          "(or --spec FILE)");
    }
  }
  int r = put_str(spec, "name", "NAME", inv->pos[0]);
  if (!r)
    r = vm_spec_scalars(spec, inv);
  if (!r)
    r = vm_spec_lists(spec, inv);
  if (r) {
    json_decref(spec);
    return r;
  }
  return call_cmd(s, inv, spec);
}

static int vm_stop(const struct settings *s, struct invocation *inv) {
  json_t *body = json_object();
  struct settings longer = *s;
  const char *t = inv_opt(inv, "timeout");
  if (inv_flag(inv, "force"))
    json_object_set_new(body, "force", json_true());
  if (t) {
    json_int_t n;
    if (parse_int("--timeout", t, 0, 3600, &n)) {
      json_decref(body);
      return EXIT_USAGE;
    }
    json_object_set_new(body, "timeout_s", json_integer(n));
    /* The request must outlast the guest's grace period. */
    if (longer.timeout_s && longer.timeout_s < n + 30)
      longer.timeout_s = (long)n + 30;
  }
  return call_cmd(&longer, inv, body);
}

static int snap_create(const struct settings *s, struct invocation *inv) {
  json_t *body = json_object();
  bool quiesce = inv_flag(inv, "quiesce"), try = inv_flag(inv, "quiesce-try");
  if (quiesce && try) {
    json_decref(body);
    return usage_error(
        "vm snapshot create: --quiesce and --quiesce-try "
        "exclude each other");
  }
  if (put_str(body, "name", "NAME", inv->pos[1])) {
    json_decref(body);
    return EXIT_USAGE;
  }
  if (quiesce)
    json_object_set_new(body, "quiesce", json_true());
  if (try)
    json_object_set_new(body, "quiesce", json_string("try"));
  return call_cmd(s, inv, body);
}

/* A POST whose body is an empty object. */
static int post_empty(const struct settings *s, struct invocation *inv) {
  return call_cmd(s, inv, json_object());
}

static int disk_attach(const struct settings *s, struct invocation *inv) {
  json_t *disk = parse_spec("disk", inv->pos[1], disk_fields);
  if (!disk)
    return EXIT_USAGE;
  return call_cmd(s, inv, disk);
}

/* ---- storage, networks, plugins, host --------------------------------- */

static int vol_create(const struct settings *s, struct invocation *inv) {
  const char *size = inv_opt(inv, "size"), *format = inv_opt(inv, "format"),
             *base = inv_opt(inv, "base-image");
  json_t *body = json_object();
  json_int_t n;
  int r = put_str(body, "name", "NAME", inv->pos[1]);
  if (!r && size && !(r = parse_size("--size", size, &n)))
    json_object_set_new(body, "size", json_integer(n));
  if (!r && format)
    r = put_str(body, "format", "--format", format);
  if (!r && base)
    r = put_str(body, "base_image", "--base-image", base);
  if (r) {
    json_decref(body);
    return EXIT_USAGE;
  }
  return call_cmd(s, inv, body);
}

static int vol_resize(const struct settings *s, struct invocation *inv) {
  json_int_t n;
  if (parse_size("SIZE", inv->pos[2], &n))
    return EXIT_USAGE;
  json_t *body = json_pack("{s:I}", "size", n);
  if (inv_flag(inv, "shrink"))
    json_object_set_new(body, "shrink", json_true());
  return call_cmd(s, inv, body);
}

/* ---- tokens and the agent ---------------------------------------------- */

static int token_create(const struct settings *s, struct invocation *inv) {
  const char *role = inv_opt(inv, "role");
  if (!role)
    return usage_error(
        "token create: --role reader|operator|admin is "
        "required");
  json_t *body = json_pack("{s:s,s:s}", "name", inv->pos[0], "role", role);
  return call_cmd(s, inv, body);
}

/* The script as it is, on standard output. */
static int agent_script(const struct settings *s, struct invocation *inv) {
  struct reply r;
  _cleanup_free_ char *path = fill_path(inv->cmd->path, inv->pos, NULL);
  if (!path) {
    fprintf(stderr, "vmhostctl: out of memory\n");
    return EXIT_ERROR;
  }
  int ret = http_get_text(s, path, &r);
  if (ret == EXIT_OK && r.text &&
      fwrite(r.text, 1, r.text_len, stdout) != r.text_len)
    ret = EXIT_ERROR;
  reply_free(&r);
  return ret;
}

/* ---- certificates ------------------------------------------------------ */

static int cert_upload(const struct settings *s, struct invocation *inv) {
  _cleanup_free_ char *cert = read_text("CERT", inv->pos[0]);
  _cleanup_free_ char *key = cert ? read_text("KEY", inv->pos[1]) : NULL;
  if (!cert || !key)
    return EXIT_USAGE;
  json_t *body = json_pack("{s:s,s:s}", "cert", cert, "key", key);
  if (!body)
    return usage_error("CERT and KEY must be PEM text");
  return call_cmd(s, inv, body);
}

/* ---- events ------------------------------------------------------------ */

struct follow {
  const struct settings *s;
  long left; /* events still to print; -1: all */
  char *vm_id;
};

static int on_event(const char *type, const char *data, void *opaque) {
  struct follow *f = opaque;
  json_t *ev = json_loads(data, 0, NULL);
  if (!ev)
    return 0; /* not JSON: not one of ours */
  const char *vm = json_string_value(json_object_get(ev, "vm_id"));
  if (!f->vm_id || (vm && !strcmp(vm, f->vm_id))) {
    output_event(f->s, type, ev);
    if (f->left > 0)
      f->left--;
  }
  json_decref(ev);
  return f->left == 0;
}

/* A VM's id from its id or name. */
static int resolve_vm(const struct settings *s, const char *vm, char **id) {
  struct reply r;
  _cleanup_free_ char *path = fill_path(V "/vms/{}", &vm, NULL);
  int ret = path ? http_call(s, "GET", path, NULL, &r) : EXIT_ERROR;
  if (ret == EXIT_OK) {
    const char *v = json_string_value(json_object_get(r.json, "id"));
    *id = v ? strdup(v) : NULL;
    ret = *id ? EXIT_OK : EXIT_ERROR;
  }
  reply_free(&r);
  return ret;
}

/* The stream's path: the VM (its id), types and resume point as the query
 * (the server checks the values); NULL when out of memory. */
static char *events_path(const struct invocation *inv, const char *vm_id) {
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  if (!f)
    return NULL;
  fputs(V "/events", f);
  char sep = '?';
  bool failed = false;
  for (size_t i = 0; i < inv->n_opt; i++)
    if (!strcmp(inv->opt[i].name, "type") || !strcmp(inv->opt[i].name, "since"))
      failed |= query_add(f, &sep, inv->opt[i].name, inv->opt[i].value) < 0;
  if (vm_id)
    failed |= query_add(f, &sep, "vm", vm_id) < 0;
  fclose(f);
  if (failed) {
    free(out);
    out = NULL;
  }
  return out;
}

static int events(const struct settings *s, struct invocation *inv) {
  struct settings forever = *s;
  struct follow f = {.s = &forever, .left = 1};
  const char *count = inv_opt(inv, "count");
  const char *vm = inv_opt(inv, "vm");
  if (count && inv_flag(inv, "follow"))
    return usage_error("events: --count and --follow exclude each other");
  if (count) {
    json_int_t n;
    if (parse_int("--count", count, 1, 1000000000, &n))
      return EXIT_USAGE;
    f.left = (long)n;
  }
  if (inv_flag(inv, "follow"))
    f.left = -1;
  if (vm) {
    int r = resolve_vm(s, vm, &f.vm_id);
    if (r)
      return r;
  }
  /* A stream has no end to wait for: no whole-request timeout. */
  forever.timeout_s = 0;
  _cleanup_free_ char *path = events_path(inv, f.vm_id);
  int r = EXIT_ERROR;
  if (path)
    r = http_stream(&forever, path, on_event, &f);
  else
    fprintf(stderr, "vmhostctl: out of memory\n");
  free(f.vm_id);
  return r;
}

/* ---- operations -------------------------------------------------------- */

/* One wait of at most chunk_s seconds on operation id: EXIT_OK with the
 * operation in *op (the caller frees it), or the call's failure. */
static int wait_once(const struct settings *s, const char *id, long chunk_s,
                     json_t **op) {
  struct settings longer = *s;
  char query[32];
  struct reply r;
  snprintf(query, sizeof query, "timeout=%ld", chunk_s);
  /* The request must outlast the server's wait. */
  if (longer.timeout_s && longer.timeout_s < chunk_s + 30)
    longer.timeout_s = chunk_s + 30;
  _cleanup_free_ char *path =
      fill_path(V "/operations/{}/wait", (const char *const[]){id}, query);
  int ret = path ? http_call(&longer, "GET", path, NULL, &r) : EXIT_ERROR;
  if (!path)
    return ret;
  *op = ret == EXIT_OK ? json_incref(r.json) : NULL;
  reply_free(&r);
  if (ret == EXIT_OK && !json_is_object(*op)) {
    fprintf(stderr, "vmhostctl: the server answered no operation\n");
    json_decref(*op);
    ret = EXIT_ERROR;
  }
  return ret;
}

/* operation wait: waits of at most an hour each (the server's most) until
 * the operation ends or --timeout passes; prints it.  Succeeded: 0;
 * failed or cancelled: 1 with its error; not ended in time: 7 (retry). */
static int op_wait(const struct settings *s, struct invocation *inv) {
  const char *t = inv_opt(inv, "timeout");
  json_int_t left = -1;
  if (t && parse_int("--timeout", t, 0, 31536000, &left))
    return EXIT_USAGE;
  json_t *op = NULL;
  const char *status = "";
  for (;;) {
    long chunk = left < 0 || left > 3600 ? 3600 : (long)left;
    int ret = wait_once(s, inv->pos[0], chunk, &op);
    if (ret)
      return ret;
    status = json_string_value(json_object_get(op, "status"));
    status = status ? status : "";
    bool ended = strcmp(status, "queued") && strcmp(status, "running");
    if (ended || (left >= 0 && (left -= chunk) <= 0))
      break;
    json_decref(op);
  }
  output_print(s, op, NULL, NULL);
  int ret = EXIT_OK;
  if (!strcmp(status, "queued") || !strcmp(status, "running")) {
    fprintf(stderr, "vmhostctl: operation %s is still %s after %ss\n",
            inv->pos[0], status, t);
    ret = EXIT_RETRY;
  } else if (strcmp(status, "succeeded")) {
    const char *m = json_string_value(
        json_object_get(json_object_get(op, "error"), "message"));
    _cleanup_free_ char *msg = strdup(m ? m : "");
    text_sanitize(msg, false);
    fprintf(stderr, "vmhostctl: operation %s %s: %s\n", inv->pos[0], status,
            msg ? msg : "");
    ret = EXIT_ERROR;
  }
  json_decref(op);
  return ret;
}

/* ---- the table ---------------------------------------------------------- */

static const struct option_spec live_opts[] = {
    {"live", NULL, "ask the hypervisor now instead of the daemon's record"},
    {NULL, NULL, NULL}};
static const struct option_spec vm_list_opts[] = {
    {"live", NULL, "ask the hypervisor now instead of the daemon's record"},
    {"state", "STATE", "only VMs in this state (repeat, or STATE,STATE...)"},
    {"label", "KEY[=VALUE]",
     "only VMs with this metadata label, of any value without =VALUE; "
     "KEY!=VALUE: not that value, !KEY: no such label (repeat: all of "
     "them)"},
    LIST_PAGE_OPTIONS,
    {NULL, NULL, NULL}};
static const struct option_spec list_page_opts[] = {LIST_PAGE_OPTIONS,
                                                    {NULL, NULL, NULL}};
static const struct option_spec create_opts[] = {
    {"vcpus", "N", "virtual CPUs (required without --spec)"},
    {"memory", "SIZE", "memory: 512M, 2G ... (required without --spec)"},
    {"disk", "NAME,KEY=VALUE...",
     "a disk (repeat): size, pool, volume, format, bus, base_image, "
     "readonly, boot_order"},
    {"nic", "NAME,KEY=VALUE...",
     "a network interface (repeat): network, mac, vlan, model"},
    {"kernel", "PATH", "direct kernel boot: the kernel on the node"},
    {"initrd", "PATH", "its initrd"},
    {"cmdline", "TEXT", "its command line"},
    {"firmware", "bios|uefi", "the firmware"},
    {"hypervisor", "NAME", "the hypervisor instance (default: the first)"},
    {"user-data", "FILE", "cloud-init user-data (- : standard input)"},
    {"meta-data", "FILE", "cloud-init meta-data"},
    {"network-config", "FILE", "cloud-init network-config"},
    {"metadata", "KEY=VALUE", "a metadata entry (repeat)"},
    {"guest-channel", NULL, "give the guest an agent channel"},
    {"no-start", NULL, "define it, do not start it"},
    {"spec", "FILE",
     "the whole VmSpec as JSON (- : standard input); "
     "options override its members"},
    {"no-wait", NULL, "print the operation's id at once, do not wait"},
    {NULL, NULL, NULL}};
static const struct option_spec stop_opts[] = {
    {"force", NULL, "power off now instead of a clean shutdown"},
    {"timeout", "SECONDS", "grace period of a clean shutdown (0 to 3600)"},
    {"no-wait", NULL, "print the operation's id at once, do not wait"},
    {NULL, NULL, NULL}};
static const struct option_spec volume_opts[] = {
    {"size", "SIZE", "its size: 10G ..."},
    {"format", "default|raw|qcow2", "its format"},
    {"base-image", "IMAGE", "a copy-on-write clone of this image"},
    {"no-wait", NULL, "print the operation's id at once, do not wait"},
    {NULL, NULL, NULL}};
static const struct option_spec resize_opts[] = {
    {"shrink", NULL, "allow a smaller size (data past it is lost)"},
    {"no-wait", NULL, "print the operation's id at once, do not wait"},
    {NULL, NULL, NULL}};
static const struct option_spec image_import_opts[] = {
    {"sha256", "HEX", "the image's SHA-256, as sha256sum prints it (required)"},
    {"no-wait", NULL, "print the operation at once instead of following it"},
    {NULL, NULL, NULL}};
static const struct option_spec token_opts[] = {
    {"role", "reader|operator|admin", "what the token may do (required)"},
    {NULL, NULL, NULL}};
static const struct option_spec snap_opts[] = {
    {"quiesce", NULL,
     "freeze the guest's filesystems through its agent while the snapshot "
     "is taken (refused without a connected agent)"},
    {"quiesce-try", NULL,
     "the same, but without an agent the snapshot is taken unfrozen"},
    {"no-wait", NULL, "print the operation's id at once, do not wait"},
    {NULL, NULL, NULL}};
static const struct option_spec no_wait_opts[] = {
    {"no-wait", NULL, "print the operation's id at once, do not wait"},
    {NULL, NULL, NULL}};
static const struct option_spec op_list_opts[] = {
    {"vm", "VM", "only the operations of this VM (id or name)"},
    {"status", "STATUS",
     "only those queued, running, succeeded, failed or cancelled"},
    {"limit", "N", "at most N, the newest"},
    {NULL, NULL, NULL}};
static const struct option_spec op_wait_opts[] = {
    {"timeout", "SECONDS",
     "give up after this long (exit 7); default: until it ends"},
    {NULL, NULL, NULL}};
static const struct option_spec agent_live_opts[] = {
    {"live", NULL, "fresh telemetry, asked of the agent now"},
    {NULL, NULL, NULL}};
static const struct option_spec exec_opts[] = {
    {"timeout", "SECONDS",
     "kill the program after SECONDS (1 to 86400; default: the node's "
     "exec_timeout_ms; the agent caps it)"},
    {"max-output", "SIZE", "bytes kept of stdout and of stderr each"},
    {"stdin", "FILE", "the program's standard input (- : ours)"},
    {NULL, NULL, NULL}};
static const struct option_spec file_get_opts[] = {
    {"out", "FILE",
     "write the bytes to FILE, whole or not at all (default: standard "
     "output)"},
    {NULL, NULL, NULL}};
static const struct option_spec file_put_opts[] = {
    {"mode", "MODE", "the permission bits of a new file, octal (0644)"},
    {NULL, NULL, NULL}};
static const struct option_spec event_opts[] = {
    {"follow", NULL, "print events until interrupted"},
    {"count", "N", "print the next N events (default 1)"},
    {"vm", "VM", "only the events of this VM (id or name)"},
    {"type", "TYPE",
     "only events of this type (repeat, or TYPE,TYPE...): vm_state, "
     "vm_created, vm_deleted, operation_ended, progress, plugin, "
     "operation_created, operation_updated"},
    {"since", "ID",
     "first the events kept after this event id (a reset event when they "
     "cannot be replayed)"},
    {NULL, NULL, NULL}};

#define C(w, a, h) .words = w, .args = a, .help = h
#define GET(p) .method = "GET", .path = V p, .run = simple
#define POST(p) .method = "POST", .path = V p
#define DELETE(p) .method = "DELETE", .path = V p, .run = simple
#define LIST(p, key, columns)                                       \
  .method = "GET", .path = V p, .run = list_paged, .list_key = key, \
  .cols = columns, .options = list_page_opts
const struct command commands[] = {
    {C("vm list", "", "list the VMs"), .method = "GET", .path = V "/vms",
     .options = vm_list_opts, .run = list_paged, .list_key = "vms",
     .cols = vm_cols},
    {C("vm show", "VM", "show a VM (id or name)"), GET("/vms/{}"),
     .options = live_opts},
    {C("vm label", "VM CHANGE [CHANGE...]",
       "set (KEY=VALUE) and remove (KEY-) labels; the others stay"),
     .method = "PATCH", .path = V "/vms/{}", .run = vm_label,
     .options = no_wait_opts, .cols = vm_cols},
    {C("vm create", "NAME", "create a VM, and start it unless --no-start"),
     POST("/vms"), .options = create_opts, .run = vm_create, .cols = vm_cols},
    {C("vm start", "VM", "start a VM"), POST("/vms/{}/start"), .run = simple,
     .options = no_wait_opts, .cols = vm_cols},
    {C("vm stop", "VM", "shut a VM down"), POST("/vms/{}/stop"),
     .options = stop_opts, .run = vm_stop, .cols = vm_cols},
    {C("vm reboot", "VM", "reboot a VM"), POST("/vms/{}/reboot"), .run = simple,
     .options = no_wait_opts, .cols = vm_cols},
    {C("vm pause", "VM", "pause a VM"), POST("/vms/{}/pause"), .run = simple,
     .options = no_wait_opts, .cols = vm_cols},
    {C("vm resume", "VM", "resume a paused VM"), POST("/vms/{}/resume"),
     .run = simple, .options = no_wait_opts, .cols = vm_cols},
    {C("vm delete", "VM", "power off and delete a VM and the volumes it made"),
     DELETE("/vms/{}"), .options = no_wait_opts, .cols = vm_cols},
    {C("vm console", "VM", "how to reach a VM's console"),
     GET("/vms/{}/console")},
    {C("vm snapshot list", "VM", "list a VM's snapshots"),
     LIST("/vms/{}/snapshots", "snapshots", snap_cols)},
    {C("vm snapshot show", "VM SNAPSHOT", "show a snapshot (by id or name)"),
     GET("/vms/{}/snapshots/{}")},
    {C("vm snapshot create", "VM NAME", "snapshot a VM"),
     POST("/vms/{}/snapshots"), .options = snap_opts, .run = snap_create,
     .cols = snap_cols},
    {C("vm snapshot delete", "VM SNAPSHOT", "delete a snapshot"),
     DELETE("/vms/{}/snapshots/{}"), .options = no_wait_opts},
    {C("vm snapshot revert", "VM SNAPSHOT", "revert a VM to a snapshot"),
     POST("/vms/{}/snapshots/{}/revert"), .run = simple,
     .options = no_wait_opts, .cols = vm_cols},
    {C("vm agent show", "VM",
       "the VM's guest agent: state, version, capabilities, telemetry"),
     GET("/vms/{}/agent"), .options = agent_live_opts},
    {C("vm agent ping", "VM", "a round trip to the VM's guest agent"),
     POST("/vms/{}/agent/ping"), .run = post_empty},
    {C("vm agent timesync", "VM", "set the guest's clock to the host's"),
     POST("/vms/{}/agent/time-sync"), .run = post_empty},
    {C("vm agent exec", "VM",
       "run a program in the guest (no shell): its output, and its exit "
       "status as ours"),
     .rest = "ARGV...", POST("/vms/{}/agent/exec"), .options = exec_opts,
     .run = agent_exec},
    {C("vm agent file get", "VM PATH",
       "a file of the guest, to standard output or -o FILE"),
     .method = "GET", .path = V "/vms/{}/agent/files", .options = file_get_opts,
     .run = agent_file_get, .short_name = 'o', .short_for = "out"},
    {C("vm agent file put", "VM PATH FILE",
       "write FILE (- : standard input) to PATH in the guest"),
     .method = "PUT", .path = V "/vms/{}/agent/files", .options = file_put_opts,
     .run = agent_file_put},
    {C("vm disk attach", "VM NAME,KEY=VALUE...",
       "hot-plug a disk (keys as vm create --disk)"),
     POST("/vms/{}/disks"), .run = disk_attach, .options = no_wait_opts,
     .cols = vm_cols},
    {C("vm disk detach", "VM DISK", "unplug a disk"),
     DELETE("/vms/{}/disks/{}"), .options = no_wait_opts, .cols = vm_cols},
    {C("pool list", "", "list the storage pools"),
     LIST("/storage/pools", "pools", pool_cols)},
    {C("pool show", "POOL", "show a storage pool"), GET("/storage/pools/{}")},
    {C("volume list", "POOL", "list a pool's volumes"),
     LIST("/storage/pools/{}/volumes", "volumes", vol_cols)},
    {C("volume show", "POOL VOLUME", "show a volume"),
     GET("/storage/pools/{}/volumes/{}")},
    {C("volume create", "POOL NAME", "create a volume"),
     POST("/storage/pools/{}/volumes"), .options = volume_opts,
     .run = vol_create, .cols = vol_cols},
    {C("volume resize", "POOL VOLUME SIZE", "resize a volume"),
     .method = "PATCH", .path = V "/storage/pools/{}/volumes/{}",
     .options = resize_opts, .run = vol_resize, .cols = vol_cols},
    {C("volume delete", "POOL VOLUME", "delete a volume"),
     DELETE("/storage/pools/{}/volumes/{}"), .options = no_wait_opts},
    {C("image list", "[POOL]", "list the images cached in a pool (or all)"),
     .run = image_list, .list_key = "images", .cols = image_cols,
     .options = list_page_opts},
    {C("image show", "POOL IMAGE", "show a cached image"),
     GET("/storage/pools/{}/images/{}")},
    {C("image import", "POOL NAME URL",
       "download an image into a pool's cache, checking its SHA-256"),
     .options = image_import_opts, .run = image_import, .cols = image_cols},
    {C("image delete", "POOL IMAGE",
       "delete a cached image no volume is a clone of"),
     DELETE("/storage/pools/{}/images/{}"), .options = no_wait_opts},
    {C("network list", "", "list the networks"),
     LIST("/networks", "networks", net_cols)},
    {C("network show", "NETWORK", "show a network"), GET("/networks/{}")},
    {C("plugin list", "", "list the loaded plugins and their instances"),
     GET("/plugins"), .list_key = "plugins", .cols = plugin_cols},
    {C("host show", "", "show the host"), GET("/host")},
    {C("host health", "", "the health checks of the core and each instance"),
     GET("/host/health")},
    {C("host metrics", "", "the host's usage"), GET("/host/metrics")},
    {C("host hardware", "", "the host's hardware"), GET("/host/hardware")},
    {C("operation list", "", "list the operations kept, newest first"),
     .method = "GET", .path = V "/operations", .options = op_list_opts,
     .run = list_query, .list_key = "operations", .cols = op_cols},
    {C("operation show", "OPERATION", "show an operation"),
     GET("/operations/{}")},
    {C("operation wait", "OPERATION",
       "wait for an operation to end and show it (exit 1 if it failed)"),
     .options = op_wait_opts, .run = op_wait},
    {C("operation cancel", "OPERATION",
       "cancel an operation still queued (a running one goes on)"),
     .method = "DELETE", .path = V "/operations/{}", .run = simple},
    {C("events", "", "print the next event, or N, or all (--follow)"),
     .options = event_opts, .run = events},
    {C("cert show", "", "the certificate the TLS listeners present"),
     GET("/settings/certificates")},
    {C("cert generate", "", "make a new self-signed certificate, used at once"),
     POST("/settings/certificates/generate"), .run = simple},
    {C("cert upload", "CERT KEY",
       "install a PEM chain (leaf first) and its key, used at once"),
     POST("/settings/certificates/upload"), .run = cert_upload},
    {C("token list", "", "list the API's bearer tokens (never their secrets)"),
     GET("/settings/tokens"), .list_key = "tokens", .cols = token_cols},
    {C("token create", "NAME", "make a bearer token; its secret is shown once"),
     POST("/settings/tokens"), .options = token_opts, .run = token_create},
    {C("token revoke", "NAME", "revoke a bearer token, at once"),
     DELETE("/settings/tokens/{}")},
    {C("agent version", "",
       "the guest agent this node gives out, and its sums"),
     GET("/agent/version")},
    {C("agent install-script", "",
       "print the guest agent's installer (for cloud-init)"),
     .method = "GET", .path = V "/agent/install.sh", .run = agent_script},
    {C("completion bash", "", "print the bash completion script"),
     .run = completion_bash, .local = true},
    {.words = NULL}};
