/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmhostctl's command line: global options anywhere, the command's words,
 * its arguments and options (in any order after the words); help and the
 * bash completion script come from the command table (commands.c). */
#include <config.h>

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* The options of every command, and the setting each one sets. */
static const struct {
  struct option_spec spec;
  const char *setting; /* NULL: handled by main */
  char short_name;
} globals[] = {
    {{"url", "URL",
      "the server: http://HOST:PORT (h2c), https://HOST:PORT, "
      "unix:/PATH"},
     "url",
     0},
    {{"token", "TOKEN", "send Authorization: Bearer TOKEN"}, "token", 0},
    {{"token-file", "FILE", "read the token from FILE's first line"},
     "token_file",
     0},
    {{"cacert", "FILE", "trust the server certificates FILE issued"},
     "cacert",
     0},
    {{"cert", "FILE", "client certificate (mTLS), PEM"}, "cert", 0},
    {{"key", "FILE", "its private key, PEM (default: in --cert)"}, "key", 0},
    {{"insecure", NULL, "do not verify the server's certificate"},
     "insecure",
     0},
    {{"request-timeout", "SECONDS",
      "give up a request after SECONDS "
      "(0: never; default 60)"},
     "timeout",
     0},
    {{"output", "FORMAT",
      "table (the default), json, yaml, or name: one name a line"},
     "output",
     'o'},
    {{"config", "FILE",
      "settings file (default "
      "~/.config/vmhost/ctl.yaml)"},
     NULL,
     0},
    {{"help", NULL, "this help, or a command's"}, NULL, 'h'},
    {{"version", NULL, "print the version"}, NULL, 0},
};
#define N_GLOBALS (sizeof globals / sizeof globals[0])

int usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("vmhostctl: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputs("\n(vmhostctl --help lists the commands and options)\n", stderr);
  va_end(ap);
  return EXIT_USAGE;
}

/* ---- help ------------------------------------------------------------- */

static bool has_prefix(const char *words, const char *prefix) {
  size_t n = strlen(prefix);
  return !n || (!strncmp(words, prefix, n) && (!words[n] || words[n] == ' '));
}

/* "  -o, --output FORMAT    help" (short_name 0: none). */
static void print_option(char short_name, const struct option_spec *o) {
  char left[64];
  int n = short_name ? snprintf(left, sizeof left, "-%c, ", short_name) : 0;
  snprintf(left + n, sizeof left - (size_t)n, "--%s%s%s", o->name,
           o->arg ? " " : "", o->arg ? o->arg : "");
  printf("  %-28s %s\n", left, o->help);
}

static void print_globals(void) {
  printf("\nOptions (anywhere on the line):\n");
  for (size_t i = 0; i < N_GLOBALS; i++)
    print_option(globals[i].short_name, &globals[i].spec);
}

static void help_commands(const char *prefix) {
  printf("usage: vmhostctl [OPTIONS] %s%sCOMMAND [ARGS]\n\nCommands:\n", prefix,
         *prefix ? " " : "");
  for (const struct command *c = commands; c->words; c++) {
    if (!has_prefix(c->words, prefix))
      continue;
    char left[96];
    snprintf(left, sizeof left, "%s%s%s%s%s", c->words, *c->args ? " " : "",
             c->args, c->rest ? " -- " : "", c->rest ? c->rest : "");
    printf("  %-36s %s\n", left, c->help);
  }
  print_globals();
  printf(
      "\nSettings come from the options, then the environment (VMHOST_URL,\n"
      "VMHOST_TOKEN, VMHOST_TOKEN_FILE, VMHOST_CACERT, VMHOST_CERT, "
      "VMHOST_KEY,\nVMHOST_INSECURE, VMHOST_TIMEOUT, VMHOST_OUTPUT, "
      "VMHOST_CONFIG), then the\nconfig file.\n"
      "\nExit status: 0 done, 1 failed, 2 bad usage, 3 not found, 4 "
      "conflict\n(exists, busy, wrong state), 5 server unreachable, 6 not "
      "allowed,\n7 server busy: retry later.  See vmhostctl(1).\n");
}

static void help_command(const struct command *c) {
  printf("usage: vmhostctl %s%s%s [OPTIONS]%s%s\n\n%s\n", c->words,
         *c->args ? " " : "", c->args, c->rest ? " -- " : "",
         c->rest ? c->rest : "", c->help);
  if (c->options) {
    printf("\nOptions:\n");
    for (const struct option_spec *o = c->options; o->name; o++)
      print_option(
          c->short_for && !strcmp(c->short_for, o->name) ? c->short_name : 0,
          o);
  }
  print_globals();
}

/* ---- bash completion --------------------------------------------------- */

/* The words that may follow prefix (the next word of each command). */
static void next_words(const char *prefix) {
  const char *seen[64];
  size_t n = 0;
  size_t plen = strlen(prefix);
  for (const struct command *c = commands; c->words; c++) {
    if (!has_prefix(c->words, prefix) || strlen(c->words) == plen)
      continue;
    const char *w = c->words + plen + (plen ? 1 : 0);
    size_t wlen = strcspn(w, " ");
    bool dup = false;
    for (size_t i = 0; i < n; i++)
      dup |= strcspn(seen[i], " ") == wlen && !strncmp(seen[i], w, wlen);
    if (dup || n == 64)
      continue;
    seen[n++] = w;
    printf("%s%.*s", n > 1 ? " " : "", (int)wlen, w);
  }
}

static void completion_prefixes(void) {
  /* Every proper prefix of a command's words, once. */
  char done[4096] = "|";
  for (const struct command *c = commands; c->words; c++) {
    for (const char *sp = c->words;; sp++) {
      if (*sp && *sp != ' ')
        continue;
      char prefix[128], key[132];
      size_t len = (size_t)(sp - c->words);
      if (!*sp)
        break;
      snprintf(prefix, sizeof prefix, "%.*s", (int)len, c->words);
      snprintf(key, sizeof key, "|%s|", prefix);
      if (strstr(done, key))
        continue;
      strncat(done, prefix, sizeof done - strlen(done) - 2);
      strcat(done, "|");
      printf("    \"%s\") cands=\"", prefix);
      next_words(prefix);
      printf("\" ;;\n");
    }
  }
}

/* The options that take a value, as a bash case pattern ("--url|--disk"):
 * global (when global) or of any command. */
static void options_with_value(bool global) {
  bool first = true;
  for (size_t i = 0; global && i < N_GLOBALS; i++)
    if (globals[i].spec.arg) {
      printf("%s--%s", first ? "" : "|", globals[i].spec.name);
      first = false;
    }
  for (const struct command *c = commands; !global && c->words; c++)
    for (const struct option_spec *o = c->options; o && o->name; o++)
      if (o->arg) {
        printf("%s--%s", first ? "" : "|", o->name);
        first = false;
      }
}

/* The script: the words typed so far (options and their values left
 * out, global ones kept to ask the same server) select the next words,
 * or a command's options, or the names of the VMs, pools, volumes or
 * networks its next argument takes (asked with -o name). */
int completion_bash(const struct settings *s, struct invocation *inv) {
  printf(
      "# bash completion for vmhostctl (made by vmhostctl completion "
      "bash)\n"
      "_vmhostctl_names() {\n"
      "  local IFS=$'\\n'\n"
      "  COMPREPLY+=($(compgen -W \"$(\"${COMP_WORDS[0]}\" "
      "\"${g[@]}\" \"$@\" -o name 2>/dev/null)\" -- \"$cur\"))\n"
      "}\n"
      "_vmhostctl() {\n"
      "  local cur=${COMP_WORDS[COMP_CWORD]} "
      "prev=${COMP_WORDS[COMP_CWORD-1]}\n"
      "  local words=\"\" cands=\"\" opts=\"\" args=\"\" nw=0 i w\n"
      "  local -a g=()\n"
      "  case $prev in\n"
      "    -o|--output) COMPREPLY=($(compgen -W \"table json yaml name\" "
      "-- \"$cur\")); return ;;\n"
      "    --cacert|--cert|--key|--token-file|--config|--spec|--user-data|"
      "--meta-data|--network-config)\n"
      "      COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n"
      "  esac\n"
      "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
      "    w=${COMP_WORDS[i]}\n"
      "    case $w in\n      ");
  options_with_value(true);
  printf("|-o) g+=(\"$w\" \"${COMP_WORDS[i+1]}\"); ((i++)) ;;\n      ");
  options_with_value(false);
  printf(
      ") ((i++)) ;;\n"
      "      --insecure) g+=(\"$w\") ;;\n"
      "      -*) ;;\n"
      "      *) words=\"${words:+$words }$w\" ;;\n"
      "    esac\n"
      "  done\n"
      "  case $words in\n");
  completion_prefixes();
  printf("    \"\") cands=\"");
  next_words("");
  printf("\" ;;\n");
  for (const struct command *c = commands; c->words; c++) {
    size_t nw = 1;
    for (const char *p = c->words; *p; p++)
      nw += *p == ' ';
    printf("    \"%s\"|\"%s \"*) nw=%zu args=\"%s\" opts=\"", c->words,
           c->words, nw, c->args);
    for (const struct option_spec *o = c->options; o && o->name; o++)
      printf("%s--%s", o == c->options ? "" : " ", o->name);
    printf("\" ;;\n");
  }
  printf("  esac\n  if [[ $cur == -* ]]; then\n    cands=\"$opts");
  for (size_t i = 0; i < N_GLOBALS; i++)
    printf(" --%s", globals[i].spec.name);
  printf(
      "\"\n  fi\n"
      "  COMPREPLY=($(compgen -W \"$cands\" -- \"$cur\"))\n"
      "  [[ $cur == -* || -z $args ]] && return\n"
      "  local -a typed=($words) want=($args)\n"
      "  local k=$((${#typed[@]} - nw))\n"
      "  case ${want[k]} in\n"
      "    VM) _vmhostctl_names vm list ;;\n"
      "    POOL) _vmhostctl_names pool list ;;\n"
      "    NETWORK) _vmhostctl_names network list ;;\n"
      "    VOLUME) _vmhostctl_names volume list \"${typed[nw+k-1]}\" ;;\n"
      "    OPERATION) _vmhostctl_names operation list ;;\n"
      "    IMAGE) _vmhostctl_names image list \"${typed[nw+k-1]}\" ;;\n"
      "  esac\n"
      "}\n"
      "complete -F _vmhostctl vmhostctl\n");
  return EXIT_OK;
}

/* ---- parsing ------------------------------------------------------------ */

struct global_value {
  size_t index; /* in globals */
  const char *value;
};

/* The option arg (at *i in argv) among specs: its name and value
 * ("--name=v", "--name v", or a flag).  -1 (usage error printed) if it
 * needs a value and has none or has one it does not take; 1 if not among
 * specs. */
static int take_option(int argc, char **argv, int *i, const char *name,
                       size_t nlen, const char *inline_value,
                       const struct option_spec *spec, const char **value) {
  if (strlen(spec->name) != nlen || strncmp(spec->name, name, nlen))
    return 1;
  if (!spec->arg) {
    if (inline_value)
      return usage_error("--%s takes no value", spec->name), -1;
    *value = "";
  } else if (inline_value) {
    *value = inline_value;
  } else if (*i + 1 < argc) {
    *value = argv[++*i];
  } else {
    return usage_error("--%s needs a value (%s)", spec->name, spec->arg), -1;
  }
  return 0;
}

/* The command whose words are exactly words, or NULL; *prefix_ok: some
 * command starts with them. */
static const struct command *find_command(const char *words, bool *prefix_ok) {
  *prefix_ok = false;
  for (const struct command *c = commands; c->words; c++) {
    if (!strcmp(c->words, words))
      return c;
    if (has_prefix(c->words, words))
      *prefix_ok = true;
  }
  return NULL;
}

static void arity(const char *args, size_t *min, size_t *max) {
  *min = *max = 0;
  bool optional = false;
  for (const char *p = args; *p;) {
    while (*p == ' ')
      p++;
    if (!*p)
      break;
    if (*p == '[')
      optional = true;
    size_t n = strcspn(p, " ");
    /* "[ARG...]": any number more. */
    if (n > 5 && !strncmp(p + n - 4, "...]", 4) && *p == '[') {
      *max = MAX_POSITIONAL;
      return;
    }
    (*max)++;
    if (!optional)
      (*min)++;
    p += strcspn(p, " ");
  }
}

struct cmdline {
  char words[128];
  bool help, version;
  const char *config;
  struct global_value g[64];
  size_t n_g;
  struct invocation inv;
};

static int parse_option(int argc, char **argv, int *i, struct cmdline *cl) {
  const char *a = argv[*i];
  const char *name, *inline_value = NULL;
  size_t nlen;
  if (a[1] != '-') { /* -o json, -h; a command's own -x first */
    const struct command *c = cl->inv.cmd;
    name = c && c->short_name && c->short_name == a[1] ? c->short_for : NULL;
    for (size_t g = 0; g < N_GLOBALS && !name; g++)
      if (globals[g].short_name && globals[g].short_name == a[1])
        name = globals[g].spec.name;
    if (!name)
      return usage_error("unknown option '%s'", a);
    if (a[2])
      inline_value = a + 2;
    nlen = strlen(name);
  } else {
    name = a + 2;
    const char *eq = strchr(name, '=');
    nlen = eq ? (size_t)(eq - name) : strlen(name);
    inline_value = eq ? eq + 1 : NULL;
  }
  for (size_t g = 0; g < N_GLOBALS; g++) {
    const char *v;
    int r = take_option(argc, argv, i, name, nlen, inline_value,
                        &globals[g].spec, &v);
    if (r < 0)
      return EXIT_USAGE;
    if (r > 0)
      continue;
    if (!strcmp(globals[g].spec.name, "help"))
      cl->help = true;
    else if (!strcmp(globals[g].spec.name, "version"))
      cl->version = true;
    else if (!strcmp(globals[g].spec.name, "config"))
      cl->config = v;
    else if (cl->n_g < sizeof cl->g / sizeof cl->g[0])
      cl->g[cl->n_g++] = (struct global_value){g, v};
    else
      return usage_error("too many options");
    return 0;
  }
  const struct command *c = cl->inv.cmd;
  for (const struct option_spec *o = c ? c->options : NULL; o && o->name; o++) {
    const char *v;
    int r = take_option(argc, argv, i, name, nlen, inline_value, o, &v);
    if (r < 0)
      return EXIT_USAGE;
    if (r > 0)
      continue;
    if (cl->inv.n_opt == MAX_OPTIONS)
      return usage_error("too many options");
    cl->inv.opt[cl->inv.n_opt].name = o->name;
    cl->inv.opt[cl->inv.n_opt++].value = v;
    return 0;
  }
  if (!c)
    return usage_error(
        "unknown option '%s' (a command's options follow "
        "the command)",
        a);
  return usage_error("%s: unknown option '%s' (vmhostctl %s --help)", c->words,
                     a, c->words);
}

static int parse_word(const char *a, struct cmdline *cl) {
  if (cl->inv.cmd) {
    if (cl->inv.n_pos == MAX_POSITIONAL)
      return usage_error("too many arguments");
    cl->inv.pos[cl->inv.n_pos++] = a;
    return 0;
  }
  size_t len = strlen(cl->words);
  if (len + strlen(a) + 2 > sizeof cl->words)
    return usage_error("unknown command '%s %s'", cl->words, a);
  snprintf(cl->words + len, sizeof cl->words - len, "%s%s", len ? " " : "", a);
  bool prefix_ok;
  cl->inv.cmd = find_command(cl->words, &prefix_ok);
  if (!cl->inv.cmd && !prefix_ok) {
    cl->words[len] = '\0';
    return usage_error("unknown command '%s%s%s'", cl->words, len ? " " : "",
                       a);
  }
  return 0;
}

static int parse(int argc, char **argv, struct cmdline *cl) {
  bool only_words = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int r;
    if (!only_words && !strcmp(a, "--") && cl->inv.cmd && cl->inv.cmd->rest) {
      /* The rest is the command's, as it is (a guest's argv). */
      cl->inv.rest = argv + i + 1;
      cl->inv.n_rest = (size_t)(argc - i - 1);
      return 0;
    }
    if (!only_words && !strcmp(a, "--"))
      only_words = true, r = 0;
    else if (!only_words && a[0] == '-' && a[1])
      r = parse_option(argc, argv, &i, cl);
    else
      r = parse_word(a, cl);
    if (r)
      return r;
  }
  return 0;
}

/* ---- main -------------------------------------------------------------- */

static int run(struct cmdline *cl) {
  struct settings s;
  int r = config_load(&s, cl->config) < 0 ? EXIT_USAGE : EXIT_OK;
  for (size_t i = 0; i < cl->n_g && r == EXIT_OK; i++) {
    char where[64];
    const struct option_spec *o = &globals[cl->g[i].index].spec;
    snprintf(where, sizeof where, "--%s", o->name);
    if (config_set(&s, globals[cl->g[i].index].setting,
                   o->arg ? cl->g[i].value : "true", where) < 0)
      r = EXIT_USAGE;
  }
  if (r == EXIT_OK && s.key && !s.cert)
    r = usage_error("--key (or key, VMHOST_KEY) needs --cert");
  if (r == EXIT_OK)
    r = cl->inv.cmd->run(&s, &cl->inv);
  config_free(&s);
  return r;
}

int main(int argc, char **argv) {
  static struct cmdline cl;
  int r = parse(argc, argv, &cl);
  if (r)
    return r;
  if (cl.version) {
    printf("vmhostctl %s\n", VERSION);
    return EXIT_OK;
  }
  if (cl.help) {
    if (cl.inv.cmd)
      help_command(cl.inv.cmd);
    else
      help_commands(cl.words);
    return EXIT_OK;
  }
  if (!cl.inv.cmd) {
    if (!*cl.words) {
      help_commands("");
      return EXIT_USAGE;
    }
    return usage_error("'%s' needs a command after it (vmhostctl %s --help)",
                       cl.words, cl.words);
  }
  size_t min, max;
  arity(cl.inv.cmd->args, &min, &max);
  if (cl.inv.n_pos < min || cl.inv.n_pos > max)
    return usage_error("usage: vmhostctl %s %s (%zu argument%s given)",
                       cl.inv.cmd->words, cl.inv.cmd->args, cl.inv.n_pos,
                       cl.inv.n_pos == 1 ? "" : "s");
  if (cl.inv.cmd->rest && !cl.inv.n_rest)
    return usage_error("usage: vmhostctl %s %s -- %s (nothing after --)",
                       cl.inv.cmd->words, cl.inv.cmd->args, cl.inv.cmd->rest);
  for (size_t i = 0; i < cl.inv.n_pos; i++)
    if (!*cl.inv.pos[i])
      return usage_error("%s: argument %zu (of %s) is empty", cl.inv.cmd->words,
                         i + 1, cl.inv.cmd->args);
  if (cl.inv.cmd->local)
    return cl.inv.cmd->run(NULL, &cl.inv);
  if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
    fprintf(stderr, "vmhostctl: cannot initialize libcurl\n");
    return EXIT_ERROR;
  }
  r = run(&cl);
  http_end();
  curl_global_cleanup();
  return r;
}
