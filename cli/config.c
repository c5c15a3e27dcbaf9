/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmhostctl's settings: defaults, then ~/.config/vmhost/ctl.yaml, then the
 * environment (VMHOST_*), then the flags (applied by main.c through
 * config_set).  Every value is checked where it is read, and a bad one
 * names its origin: the file and line, the variable or the flag. */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "cleanup.h"
#include "ctl.h"

#define DEFAULT_URL "http://127.0.0.1:8080"
#define DEFAULT_TIMEOUT 60

/* The settings, their variables and file keys: one table. */
static const struct {
  const char *key;
  const char *env;
} keys[] = {
    {"url", "VMHOST_URL"},
    {"token", "VMHOST_TOKEN"},
    {"token_file", "VMHOST_TOKEN_FILE"},
    {"cacert", "VMHOST_CACERT"},
    {"cert", "VMHOST_CERT"},
    {"key", "VMHOST_KEY"},
    {"insecure", "VMHOST_INSECURE"},
    {"timeout", "VMHOST_TIMEOUT"},
    {"output", "VMHOST_OUTPUT"},
};
#define N_KEYS (sizeof keys / sizeof keys[0])

static int bad(const char *where, const char *key, const char *value,
               const char *why) {
  fprintf(stderr, "vmhostctl: %s: %s '%s': %s\n", where, key, value, why);
  return -1;
}

static int set_str(char **field, const char *value) {
  char *v = strdup(value);
  if (!v) {
    fprintf(stderr, "vmhostctl: out of memory\n");
    return -1;
  }
  free(*field);
  *field = v;
  return 0;
}

static int set_url(struct settings *s, const char *v, const char *where) {
  if (!strncmp(v, "unix:", 5)) {
    const char *p = v + 5;
    /* unix:/path or unix:///path */
    if (!strncmp(p, "//", 2))
      p += 2;
    if (*p != '/')
      return bad(where, "url", v, "a unix socket URL is unix:/absolute/path");
  } else if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8)) {
    return bad(where, "url", v,
               "expected http://HOST:PORT, "
               "https://HOST:PORT or unix:/PATH");
  }
  return set_str(&s->url, v);
}

/* A path with a leading "~/" in $HOME (free it). */
static char *expand_home(const char *v) {
  const char *home = getenv("HOME");
  char *p = NULL;
  if (strncmp(v, "~/", 2) || !home || !*home)
    return strdup(v);
  return asprintf(&p, "%s%s", home, v + 1) < 0 ? NULL : p;
}

static int set_file(char **field, const char *key, const char *v,
                    const char *where) {
  _cleanup_free_ char *path = expand_home(v);
  if (!path)
    return set_str(field, v); /* out of memory: says so */
  if (access(path, R_OK) < 0)
    return bad(where, key, v, strerror(errno));
  return set_str(field, path);
}

/* A secret in a file others may read: say so (ssh would refuse; a
 * warning keeps scripts working while the file is fixed). */
static void warn_if_shared(FILE *f, const char *path, const char *what) {
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
    fprintf(stderr,
            "vmhostctl: warning: %s holds %s and others may read it "
            "(chmod 600 %s)\n",
            path, what, path);
}

/* The token in a file: its first line, without the line end. */
static int set_token_file(struct settings *s, const char *v,
                          const char *where) {
  _cleanup_free_ char *path = expand_home(v);
  _cleanup_fclose_ FILE *f = path ? fopen(path, "re") : NULL;
  if (!f)
    return bad(where, "token_file", v, strerror(errno));
  warn_if_shared(f, path, "a token");
  char line[4096];
  if (!fgets(line, sizeof line, f))
    return bad(where, "token_file", v, "the file is empty");
  line[strcspn(line, "\r\n")] = '\0';
  if (!*line)
    return bad(where, "token_file", v, "the first line is empty");
  return set_str(&s->token, line);
}

static int set_bool(bool *field, const char *key, const char *v,
                    const char *where) {
  if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcmp(v, "1"))
    *field = true;
  else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcmp(v, "0"))
    *field = false;
  else
    return bad(where, key, v, "expected true or false");
  return 0;
}

static int set_timeout(struct settings *s, const char *v, const char *where) {
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (errno || end == v || *end || n < 0 || n > 86400)
    return bad(where, "timeout", v, "expected seconds, 0 (none) to 86400");
  s->timeout_s = n;
  return 0;
}

static int set_output(struct settings *s, const char *v, const char *where) {
  if (!strcmp(v, "table"))
    s->output = OUT_TABLE;
  else if (!strcmp(v, "json"))
    s->output = OUT_JSON;
  else if (!strcmp(v, "yaml"))
    s->output = OUT_YAML;
  else if (!strcmp(v, "name"))
    s->output = OUT_NAME;
  else
    return bad(where, "output", v, "expected table, json, yaml or name");
  return 0;
}

int config_set(struct settings *s, const char *key, const char *v,
               const char *where) {
  if (!strcmp(key, "url"))
    return set_url(s, v, where);
  if (!strcmp(key, "token")) {
    if (!*v || strpbrk(v, "\r\n"))
      return bad(where, key, "…", "a token is one non-empty line");
    return set_str(&s->token, v);
  }
  if (!strcmp(key, "token_file"))
    return set_token_file(s, v, where);
  if (!strcmp(key, "cacert"))
    return set_file(&s->cacert, key, v, where);
  if (!strcmp(key, "cert"))
    return set_file(&s->cert, key, v, where);
  if (!strcmp(key, "key"))
    return set_file(&s->key, key, v, where);
  if (!strcmp(key, "insecure"))
    return set_bool(&s->insecure, key, v, where);
  if (!strcmp(key, "timeout"))
    return set_timeout(s, v, where);
  if (!strcmp(key, "output"))
    return set_output(s, v, where);
  fprintf(stderr, "vmhostctl: %s: unknown setting '%s'\n", where, key);
  return -1;
}

static bool known_key(const char *key) {
  for (size_t i = 0; i < N_KEYS; i++)
    if (!strcmp(keys[i].key, key))
      return true;
  return false;
}

/* The settings of a parsed file; *secret: it holds a token. */
static int load_document(struct settings *s, const char *path,
                         yaml_document_t *doc, bool *secret) {
  yaml_node_t *root = yaml_document_get_root_node(doc);
  if (!root)
    return 0; /* an empty file */
  if (root->type != YAML_MAPPING_NODE) {
    fprintf(stderr, "vmhostctl: %s:%zu: expected a mapping of settings\n", path,
            root->start_mark.line + 1);
    return -1;
  }
  for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
       p < root->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(doc, p->key);
    yaml_node_t *v = yaml_document_get_node(doc, p->value);
    char where[PATH_MAX + 32];
    snprintf(where, sizeof where, "%s:%zu", path, k->start_mark.line + 1);
    const char *key =
        k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "?";
    if (!known_key(key)) {
      fprintf(stderr,
              "vmhostctl: %s: unknown key '%s' (known: url, token, "
              "token_file, cacert, cert, key, insecure, timeout, output)\n",
              where, key);
      return -1;
    }
    if (v->type != YAML_SCALAR_NODE) {
      fprintf(stderr, "vmhostctl: %s: %s: expected a single value\n", where,
              key);
      return -1;
    }
    if (config_set(s, key, (const char *)v->data.scalar.value, where) < 0)
      return -1;
    *secret |= !strcmp(key, "token");
  }
  return 0;
}

static int load_file(struct settings *s, const char *path, bool must_exist) {
  _cleanup_fclose_ FILE *f = fopen(path, "re");
  if (!f) {
    if (errno == ENOENT && !must_exist)
      return 0;
    fprintf(stderr, "vmhostctl: cannot read config %s: %s\n", path,
            strerror(errno));
    return -1;
  }
  yaml_parser_t parser;
  yaml_document_t doc;
  if (!yaml_parser_initialize(&parser)) {
    fprintf(stderr, "vmhostctl: out of memory\n");
    return -1;
  }
  yaml_parser_set_input_file(&parser, f);
  int r = -1;
  if (!yaml_parser_load(&parser, &doc)) {
    fprintf(stderr, "vmhostctl: %s:%zu: %s\n", path,
            parser.problem_mark.line + 1,
            parser.problem ? parser.problem : "not YAML");
  } else {
    bool secret = false;
    r = load_document(s, path, &doc, &secret);
    yaml_document_delete(&doc);
    if (r == 0 && secret)
      warn_if_shared(f, path, "a token");
  }
  yaml_parser_delete(&parser);
  return r;
}

static char *default_path(void) {
  const char *xdg = getenv("XDG_CONFIG_HOME");
  const char *home = getenv("HOME");
  char *p = NULL;
  int n;
  if (xdg && *xdg == '/')
    n = asprintf(&p, "%s/vmhost/ctl.yaml", xdg);
  else if (home && *home)
    n = asprintf(&p, "%s/.config/vmhost/ctl.yaml", home);
  else
    return NULL;
  return n < 0 ? NULL : p;
}

int config_load(struct settings *s, const char *path) {
  memset(s, 0, sizeof *s);
  s->timeout_s = DEFAULT_TIMEOUT;
  s->output = OUT_TABLE;
  if (set_str(&s->url, DEFAULT_URL) < 0)
    return -1;
  bool named = path != NULL;
  if (!path)
    path = getenv("VMHOST_CONFIG"), named = path != NULL;
  _cleanup_free_ char *def = named ? NULL : default_path();
  if (named || def) {
    if (load_file(s, named ? path : def, named) < 0)
      return -1;
  }
  for (size_t i = 0; i < N_KEYS; i++) {
    const char *v = getenv(keys[i].env);
    /* Empty is unset, as in most tools. */
    if (v && *v && config_set(s, keys[i].key, v, keys[i].env) < 0)
      return -1;
  }
  return 0;
}

void config_free(struct settings *s) {
  free(s->url);
  free(s->token);
  free(s->cacert);
  free(s->cert);
  free(s->key);
  memset(s, 0, sizeof *s);
}
