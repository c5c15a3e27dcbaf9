/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* imagefetch — download an image over libcurl into a sink while hashing it
 * (SHA-256), resume an interrupted download, verify the digest at the end.
 *
 * Shared by the storage plugins that cache base images (local, nfs, rbd):
 * the bytes go wherever the plugin's sink puts them (a file, a libnfs file,
 * an RBD image).  A plugin calls fetch_global_init() once in load(),
 * fetch_check() on the spec before it makes anything, then fetch_run() with
 * its sink.  Errors are set through host->verror (vmh_fail) and say what to
 * fix; every message starts with the caller's `what` ("image NAME").
 *
 * Built as libimagefetch.la (libcurl + GnuTLS) when a plugin that needs it
 * is; link it and libvmhutil into the plugin. */
#ifndef VMHOST_IMAGEFETCH_H
#define VMHOST_IMAGEFETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <vmhost/vmhost-plugin.h>

#define FETCH_SHA256_HEX 64

/* Where the bytes go.  Each callback returns 0 (read: the bytes read, 0 at
 * the end), or a negative VMH_E* code after setting the message (vmh_fail)
 * — the sink knows what it writes to and what the user can do about it.
 * Calls come from the thread that called fetch_run(), one at a time. */
struct fetch_sink {
  /* Store len bytes at offset.  Offsets are sequential: offset is always the
   * number of bytes the sink holds, so a sink may simply append. */
  int (*write)(void *opaque, const void *buf, size_t len, uint64_t offset);
  /* Read back up to len bytes at offset, of the `have` bytes the sink held
   * when fetch_run() began (they are hashed before the download resumes).
   * May be NULL when the caller always passes have == 0. */
  ssize_t (*read)(void *opaque, void *buf, size_t len, uint64_t offset);
  /* Keep only the first size bytes (fetch_run() passes 0 to start over
   * when the server does not honour the range it resumes from). */
  int (*truncate)(void *opaque, uint64_t size);
  void *opaque;
};

/* What may be downloaded and how long a transfer may stall. */
struct fetch_policy {
  const char *protocols;       /* curl's list, "file,http,https" */
  const char *redir_protocols; /* where a redirect may lead, "http,https" */
  long max_redirs;
  long connect_timeout; /* seconds */
  long low_speed_limit; /* bytes/s: slower than this for ... */
  long low_speed_time;  /* ... this many seconds ends an attempt */
  unsigned tries;       /* attempts in one fetch_run, each resuming */
  /* file:// only for a file under one of these directories (absolute);
   * none: file:// is refused whatever protocols says. */
  char *const *file_dirs;
  size_t n_file_dirs;
  /* Connections to loopback, link-local, private (RFC 1918, ULA), CGNAT,
   * unspecified or multicast addresses, by name or after a redirect:
   * refused unless set. */
  bool allow_private;
};

/* file, http, https; redirects to http(s) only, at most 5; connect within
 * 30 s; under 1 byte/s for 60 s ends an attempt; 5 attempts; no file://
 * (no directories), no private addresses. */
extern const struct fetch_policy fetch_policy_default;

struct fetch_request {
  const struct vmh_host *host;
  const struct vmh_instance *inst; /* logs name it */
  const char *what;                /* starts every message: "image base" */
  const char *url;
  const char *sha256;                /* expected: from fetch_check() */
  const struct fetch_policy *policy; /* NULL: fetch_policy_default */
  const struct fetch_sink *sink;
  /* Bytes the sink already holds from an earlier fetch of this same url and
   * digest: read back, hashed, and the download resumes after them. */
  uint64_t have;
  /* Optional: at most five calls a second while bytes arrive, and one with
   * done == total when the download is complete (total 0: unknown). */
  void (*progress)(void *opaque, uint64_t done, uint64_t total);
  void *progress_opaque;
};

/* A ready-made progress callback (req->progress, with progress_opaque a
 * struct fetch_progress_target): fetch_emit_progress for that image. */
struct fetch_progress_target {
  const struct vmh_host *host;
  const struct vmh_instance *inst;
  const char *name; /* the image */
};
void fetch_progress_event(void *opaque, uint64_t done, uint64_t total);

struct fetch_result {
  uint64_t size; /* bytes in the sink at the end */
  /* On failure: the sink holds a prefix of the content worth resuming with
   * have = size (an interrupted transfer, or kept bytes that could not be
   * read back); false: the caller drops them. */
  bool keep;
  char sha256[FETCH_SHA256_HEX + 1]; /* on success: the verified digest */
};

/* A policy from the map `image_sources` of a plugin's config (absent: the
 * default): schemes (a list of http, https: what downloads and redirects
 * may use; default both), file_dirs (a list of directories),
 * allow_private (bool).
 * *ret starts from the default; free its directories with
 * fetch_policy_free.  0, or a VMH_E* code with the message set. */
int fetch_policy_read(const struct vmh_host *host, const struct vmh_config *cfg,
                      struct fetch_policy *ret);
void fetch_policy_free(struct fetch_policy *p);

/* Initialise libcurl.  Not thread-safe: call once from a plugin's load().
 * 0, or VMH_EINTERNAL with the message set. */
int fetch_global_init(const struct vmh_host *host);

/* Check url (its scheme must be one of policy's protocols; policy NULL: the
 * default; a file:// url must name a regular file under one of the
 * policy's file_dirs, links resolved) and sha256 (64 hex digits, any
 * case); write the digest in lower case into want.  0, or VMH_EINVAL /
 * VMH_EPERM with the message set. */
int fetch_check(const struct vmh_host *host, const char *what, const char *url,
                const char *sha256, const struct fetch_policy *policy,
                char want[FETCH_SHA256_HEX + 1]);

/* Download req->url into req->sink after its first req->have bytes,
 * retrying an interrupted transfer (resuming) up to policy->tries times,
 * hashing every byte, and compare the digest with req->sha256.  0: the sink
 * holds exactly the content (res->size bytes, digest res->sha256).  Else a
 * negative VMH_E* code with the message set: VMH_EIO (download failed),
 * VMH_EINVAL (the digest differs: res->keep false, the caller removes the
 * bytes), or a sink's own code.  res is always filled in. */
int fetch_run(const struct fetch_request *req, struct fetch_result *res);

/* Publishes progress of the import of image `name` as inst's
 * VMH_EVENT_PROGRESS event on object "image/NAME", for a plugin whose
 * progress callback has its own opaque (fetch_progress_event is the
 * ready-made one). */
void fetch_emit_progress(const struct vmh_host *host,
                         const struct vmh_instance *inst, const char *name,
                         uint64_t done, uint64_t total);

#endif
