/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* exec: runs a program of the allowlist with argv (no shell), feeds it
 * stdin, collects stdout and stderr up to a cap, kills its process group
 * at the timeout. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

#define E(x) VMHOST__AGENT__V1__ERROR_CODE__ERROR_##x

struct stream {
  int fd;
  ProtobufCBinaryData *out;
  protobuf_c_boolean *truncated;
  size_t cap;
};

/* Killed programs not reaped yet (see do_exec). */
#define MAX_STRAGGLERS 64
static pid_t stragglers[MAX_STRAGGLERS];
static size_t n_stragglers;

static void reap_stragglers(void) {
  for (size_t i = n_stragglers; i-- > 0;)
    if (waitpid(stragglers[i], NULL, WNOHANG) != 0)
      stragglers[i] = stragglers[--n_stragglers];
}

static void keep_straggler(pid_t pid) {
  reap_stragglers();
  if (n_stragglers < MAX_STRAGGLERS)
    stragglers[n_stragglers++] = pid;
  /* else: a zombie until the agent exits; never more than that. */
}

static int allowed(const struct agent_config *c, const char *prog) {
  for (size_t i = 0; i < c->n_exec_allow; i++)
    if (!strcmp(c->exec_allow[i], prog))
      return 1;
  return 0;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads what is there; keeps up to cap bytes and drops the rest (the
 * child must not block on a full pipe). */
static int drain(struct stream *s) {
  char buf[8192];
  ssize_t n = read(s->fd, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return 0;
  if (n <= 0)
    return -1;
  size_t keep = s->out->len < s->cap ? s->cap - s->out->len : 0;
  if ((size_t)n > keep)
    *s->truncated = 1;
  if (keep > (size_t)n)
    keep = (size_t)n;
  if (keep) {
    uint8_t *p = realloc(s->out->data, s->out->len + keep);
    if (p == NULL)
      return -1;
    memcpy(p + s->out->len, buf, keep);
    s->out->data = p;
    s->out->len += keep;
  }
  return 0;
}

static pid_t spawn(char *const *argv, int in[2], int out[2], int err[2]) {
  pid_t pid = fork();
  if (pid != 0)
    return pid;
  setpgid(0, 0);
  dup2(in[0], 0);
  dup2(out[1], 1);
  dup2(err[1], 2);
  /* Only 0-2 reach the program (the channel's descriptor is CLOEXEC). */
  execv(argv[0], argv);
  _exit(127);
}

static void close_pair(int p[2]) {
  if (p[0] >= 0)
    close(p[0]);
  if (p[1] >= 0)
    close(p[1]);
  p[0] = p[1] = -1;
}

int do_exec(const struct agent_config *c,
            const Vmhost__Agent__V1__ExecRequest *req, AgentResponse *resp) {
  reap_stragglers();
  if (req->n_argv == 0 || req->argv[0][0] != '/')
    return agent_error(resp, E(INVALID_ARGUMENT),
                       "argv[0] must be the absolute path of a program");
  if (req->n_argv > 256)
    return agent_error(resp, E(INVALID_ARGUMENT), "more than 256 arguments");
  if (!allowed(c, req->argv[0]))
    return agent_error(resp, E(PERMISSION_DENIED),
                       "%s is not in the agent's exec allowlist", req->argv[0]);
  uint32_t timeout = req->timeout_ms ? req->timeout_ms : c->exec_timeout_ms;
  if (timeout > c->exec_max_timeout_ms)
    timeout = c->exec_max_timeout_ms;
  size_t cap = req->max_output && req->max_output < c->exec_max_output
                   ? req->max_output
                   : c->exec_max_output;
  if (req->stdin.len > c->exec_max_output)
    return agent_error(resp, E(TOO_LARGE), "stdin over %u bytes",
                       c->exec_max_output);

  Vmhost__Agent__V1__ExecResponse *x = malloc(sizeof *x);
  char **argv = calloc(req->n_argv + 1, sizeof *argv);
  if (x == NULL || argv == NULL) {
    free(x);
    free(argv);
    return -1;
  }
  vmhost__agent__v1__exec_response__init(x);
  resp->body_case = VMHOST__AGENT__V1__RESPONSE__BODY_EXEC;
  resp->exec = x;
  memcpy(argv, req->argv, req->n_argv * sizeof *argv);

  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, r = -1;
  if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 ||
      pipe2(err, O_CLOEXEC) < 0) {
    agent_error(resp, E(IO), "pipe: %s", strerror(errno));
    goto out;
  }
  pid_t pid = spawn(argv, in, out, err);
  if (pid < 0) {
    agent_error(resp, E(IO), "fork: %s", strerror(errno));
    goto out;
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  in[0] = out[1] = err[1] = -1;
  fcntl(in[1], F_SETFL, O_NONBLOCK);
  struct stream s[2] = {{out[0], &x->stdout, &x->stdout_truncated, cap},
                        {err[0], &x->stderr, &x->stderr_truncated, cap}};
  size_t fed = 0;
  int64_t deadline = now_ms() + timeout;
  if (req->stdin.len == 0)
    close_pair(in);
  while (s[0].fd >= 0 || s[1].fd >= 0) {
    struct pollfd p[3] = {
        {s[0].fd, POLLIN, 0}, {s[1].fd, POLLIN, 0}, {in[1], POLLOUT, 0}};
    int64_t left = deadline - now_ms();
    if (left <= 0) {
      x->timed_out = 1;
      kill(-pid, SIGKILL);
      break;
    }
    if (poll(p, 3, (int)left) < 0 && errno != EINTR)
      break;
    for (int i = 0; i < 2; i++)
      if (p[i].revents && drain(&s[i]) < 0) {
        close(s[i].fd);
        s[i].fd = -1;
      }
    if (p[2].revents) {
      ssize_t w = write(in[1], req->stdin.data + fed, req->stdin.len - fed);
      if (w > 0)
        fed += (size_t)w;
      if (w < 0 || fed == req->stdin.len)
        close_pair(in);
    }
  }
  close_pair(in);
  for (int i = 0; i < 2; i++)
    if (s[i].fd >= 0)
      close(s[i].fd);
  out[0] = err[0] = -1;
  /* The program may outlive its pipes (closed them, or forked): it gets
   * what is left of the timeout, then is killed.  A killed program may
   * still not die at once (stuck on a frozen filesystem, say): it is left
   * to reap_stragglers() rather than block the agent, whose next request
   * may well be the thaw. */
  int st = 0;
  pid_t w;
  int64_t grace = now_ms() + 200; /* after a kill in the loop above */
  while ((w = waitpid(pid, &st, WNOHANG)) == 0) {
    int64_t now = now_ms();
    if (now >= deadline && !x->timed_out) {
      x->timed_out = 1;
      kill(-pid, SIGKILL);
      grace = now + 200;
    } else if (x->timed_out && now >= grace) {
      keep_straggler(pid);
      break;
    }
    struct timespec ts = {0, 10 * 1000000L};
    nanosleep(&ts, NULL);
  }
  if (w != pid)
    st = 0;
  if (WIFEXITED(st)) {
    x->exit_status = WEXITSTATUS(st);
  } else if (WIFSIGNALED(st)) {
    x->exit_status = -1;
    x->signal = WTERMSIG(st);
  }
  if (!x->timed_out && WIFEXITED(st) && WEXITSTATUS(st) == 127 &&
      access(argv[0], X_OK) < 0) {
    agent_error(resp, E(NOT_FOUND), "cannot run %s: %s", argv[0],
                strerror(errno));
    goto out;
  }
  r = 0;
out:
  close_pair(in);
  close_pair(out);
  close_pair(err);
  free(argv);
  return r;
}
