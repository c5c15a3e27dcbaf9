/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmhost-agent: the guest side of the guest channel.  One thread; each
 * request is answered before the next is read.  The parts share this
 * header: the config (config.c), and one handler per request kind, each
 * filling a Response and returning 0 or setting its Error. */
#ifndef VMH_AGENT_H
#define VMH_AGENT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "vmhost/agent/v1/agent.pb-c.h"

typedef Vmhost__Agent__V1__Request AgentRequest;
typedef Vmhost__Agent__V1__Response AgentResponse;

#define AGENT_DEVICE "/dev/virtio-ports/org.vmhost.agent.0"
#define AGENT_CONFIG "/etc/vmhost/agent.yaml"
/* The port vmhostd's Cloud Hypervisor plugin asks for (its agent_port). */
#define AGENT_VSOCK_PORT 1024

/* The agent's config (/etc/vmhost/agent.yaml; agent.yaml documents every
 * key).  Owned by the process, read once at start. */
/* How the agent reaches the host (agent.yaml's transport). */
enum agent_transport {
  TRANSPORT_DEVICE = 0,  /* open device: a character device, or a unix socket
                        to connect to */
  TRANSPORT_VSOCK,       /* listen on AF_VSOCK vsock_port; the host connects */
  TRANSPORT_UNIX_LISTEN, /* listen on the unix socket device (a vsock bridge's
                        stand-in, tests) */
};

struct agent_config {
  int transport;       /* enum agent_transport */
  uint32_t vsock_port; /* TRANSPORT_VSOCK */
  char *device;        /* the channel: a character device or unix socket */
  uint32_t max_frame;  /* bytes, frames in both directions */
  char **exec_allow;   /* absolute paths of the programs exec may run */
  size_t n_exec_allow;
  uint32_t exec_timeout_ms;     /* default */
  uint32_t exec_max_timeout_ms; /* cap */
  uint32_t exec_max_output;     /* bytes, per stream */
  char **read_dirs;             /* directories files may be read under */
  size_t n_read_dirs;
  char **write_dirs; /* directories files may be written under */
  size_t n_write_dirs;
  uint32_t file_max_bytes;   /* read and write */
  uint32_t freeze_timeout_s; /* default and cap of the automatic thaw */
  int allow_freeze;          /* freeze/thaw requests */
  int allow_shutdown;        /* shutdown/reboot requests */
  int allow_time_sync;       /* time_sync requests */
};

/* Loads path into *c (defaults for keys not given); config_free() it
 * afterwards, also when it failed.  A missing file at the
 * default path means the defaults (nothing allowed); any other failure
 * prints what is wrong and returns -1. */
int config_load(struct agent_config *c, const char *path, int must_exist);
void config_free(struct agent_config *c);

/* Log to stderr (the journal under systemd): "vmhost-agent: …". */
void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Sets resp's error (code, printf message); returns -1. */
int agent_error(AgentResponse *resp, Vmhost__Agent__V1__ErrorCode code,
                const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The handlers.  What they put in resp is freed by agent_response_free()
 * (agent.c): strings and bytes are malloc'ed, sub-messages too. */
int do_telemetry(const struct agent_config *c, AgentResponse *resp);
int do_exec(const struct agent_config *c,
            const Vmhost__Agent__V1__ExecRequest *req, AgentResponse *resp);
int do_file_read(const struct agent_config *c,
                 const Vmhost__Agent__V1__FileReadRequest *req,
                 AgentResponse *resp);
int do_file_write(const struct agent_config *c,
                  const Vmhost__Agent__V1__FileWriteRequest *req,
                  AgentResponse *resp);
int do_freeze(const struct agent_config *c,
              const Vmhost__Agent__V1__FreezeRequest *req, AgentResponse *resp);
int do_thaw(AgentResponse *resp);
/* Thaws what is frozen (at exit, and on a channel loss). */
void freeze_release(void);

#endif /* VMH_AGENT_H */
