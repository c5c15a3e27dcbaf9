/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentdist — the REST front-end's agent distribution: the open routes
 * /api/v1/agent/version, /install.sh, /linux/{arch} and /linux/{arch}.deb
 * that a guest fetches during cloud-init, without credentials.
 *
 * Artifacts come from the directories of `agent.paths` (in order), then
 * from `agent.cache_dir`, then from `agent.upstream` (only those whose
 * SHA-256 `agent.sha256` pins; verified, then cached atomically).  The
 * names are a fixed set (linux/amd64, linux/arm64, and .deb), so no
 * request names a file.  Requests are rate-limited per peer address on the
 * I/O thread; files are read, hashed and fetched on the instance's own
 * worker thread, which answers. */
#ifndef VMH_AGENTDIST_H
#define VMH_AGENTDIST_H

#include <vmhost/vmhost-plugin.h>

struct agentdist;
struct call;

/* Once, from the plugin's load(): libcurl's global init.  0 or a VMH_E*
 * code with the host's error set. */
int agentdist_load(const struct vmh_host *host);

/* Read the instance's `agent` map (absent: the defaults).  0 and *ret (NULL
 * in check-only mode), or a VMH_E* code with the host's error set. */
int agentdist_open(const struct vmh_host *host, const struct vmh_instance *inst,
                   const struct vmh_config *cfg, bool check_only,
                   struct agentdist **ret);
/* Start the worker thread.  0 or a VMH_E* code with the error set. */
int agentdist_start(struct agentdist *a);
/* Answer what is queued (503), join the worker; after the server stopped. */
void agentdist_stop(struct agentdist *a);
void agentdist_free(struct agentdist *a);

/* The route functions (frontend-rest.c's table). */
int agent_version(struct call *k);
int agent_script(struct call *k);
int agent_binary(struct call *k);
int agent_deb(struct call *k);

#endif
