/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qemu-img for the storage plugins: see qemuimg.h. */
#include <config.h>

#include "qemuimg.h"

#include "spawnproc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const char *disk_format_name(uint32_t f) {
  return f == VMH_FORMAT_RAW ? "raw" : f == VMH_FORMAT_QCOW2 ? "qcow2" : "?";
}

uint32_t disk_format_parse(const char *s) {
  if (strcmp(s, "raw") == 0)
    return VMH_FORMAT_RAW;
  if (strcmp(s, "qcow2") == 0)
    return VMH_FORMAT_QCOW2;
  return VMH_FORMAT_DEFAULT;
}

int qemu_img_run(char *const argv[], char **out, char *err, size_t errlen) {
  int opipe[2] = {-1, -1}, epipe[2] = {-1, -1}, status = 0, rc = VMH_EIO;
  char *obuf = NULL;
  size_t olen = 0, elen = 0;
  pid_t pid;

  err[0] = '\0';
  if (pipe2(opipe, O_CLOEXEC) < 0 || pipe2(epipe, O_CLOEXEC) < 0) {
    snprintf(err, errlen, "pipe: %s", strerror(errno));
    goto cleanup;
  }
  rc = spawn_process(argv, opipe[1], epipe[1], &pid);
  if (rc != 0) {
    snprintf(err, errlen, "cannot run %s: %s (install qemu-utils)", argv[0],
             strerror(rc));
    rc = VMH_EIO;
    goto cleanup;
  }
  close(opipe[1]);
  close(epipe[1]);
  opipe[1] = epipe[1] = -1;

  struct pollfd pf[2] = {{.fd = opipe[0], .events = POLLIN},
                         {.fd = epipe[0], .events = POLLIN}};
  int open_fds = 2;
  while (open_fds > 0) {
    if (poll(pf, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    for (int i = 0; i < 2; i++) {
      char buf[4096];
      ssize_t n;
      if (pf[i].fd < 0 || !pf[i].revents)
        continue;
      n = read(pf[i].fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0) {
        pf[i].fd = -1;
        open_fds--;
        continue;
      }
      if (i == 0 && out) {
        char *nb = realloc(obuf, olen + (size_t)n + 1);
        if (nb == NULL)
          continue; /* dropped; the parse below fails cleanly */
        obuf = nb;
        memcpy(obuf + olen, buf, (size_t)n);
        olen += (size_t)n;
        obuf[olen] = '\0';
      } else if (i == 1 && elen + 1 < errlen) {
        size_t k =
            (size_t)n < errlen - 1 - elen ? (size_t)n : errlen - 1 - elen;
        memcpy(err + elen, buf, k);
        elen += k;
        err[elen] = '\0';
      }
    }
  }
  status = spawn_wait(pid);
  /* One line is enough for a message. */
  while (elen > 0 && (err[elen - 1] == '\n' || err[elen - 1] == ' '))
    err[--elen] = '\0';
  for (size_t i = 0; i < elen; i++)
    if (err[i] == '\n')
      err[i] = ' ';
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    rc = 0;
  } else {
    /* QEMU's NFS driver says NFS3ERR_NOSPC, the file driver ENOSPC's
     * text. */
    rc = strstr(err, "No space left") || strstr(err, "ERR_NOSPC") ? VMH_ENOSPC
                                                                  : VMH_EIO;
    if (elen == 0)
      snprintf(
          err, errlen, "%s exited with status %d", argv[0],
          WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  }
cleanup:
  for (int i = 0; i < 2; i++) {
    if (opipe[i] >= 0)
      close(opipe[i]);
    if (epipe[i] >= 0)
      close(epipe[i]);
  }
  if (rc == 0 && out) {
    *out = obuf;
    obuf = NULL;
  }
  free(obuf);
  return rc;
}

int qemu_img_probe(const struct vmh_host *host, const char *qemu_img,
                   const char *file, const char *what, uint32_t *format,
                   uint64_t *vsize) {
  char err[QEMU_IMG_ERR_MAX], *out = NULL;
  char *argv[] = {(char *)qemu_img, "info", "--output=json", (char *)file,
                  NULL};
  json_t *j = NULL;
  json_error_t je;
  const char *fmt;
  json_int_t vs;
  int rc = qemu_img_run(argv, &out, err, sizeof err);

  if (rc < 0)
    return vmh_fail(host, VMH_EINVAL, "%s: qemu-img info failed: %s", what,
                    err);
  j = json_loads(out, 0, &je);
  if (j == NULL ||
      json_unpack(j, "{s:s, s:I}", "format", &fmt, "virtual-size", &vs) < 0) {
    rc = vmh_fail(host, VMH_EIO, "%s: cannot read the output of qemu-img info",
                  what);
    goto cleanup;
  }
  *format = disk_format_parse(fmt);
  if (*format == VMH_FORMAT_DEFAULT) {
    rc = vmh_fail(host, VMH_EINVAL,
                  "%s: format %s is not raw or qcow2; convert it with "
                  "qemu-img convert -O qcow2",
                  what, fmt);
    goto cleanup;
  }
  if (json_object_get(j, "backing-filename")) {
    rc = vmh_fail(host, VMH_EINVAL,
                  "%s has a backing file; flatten it first (qemu-img convert)",
                  what);
    goto cleanup;
  }
  *vsize = vs < 0 ? 0 : (uint64_t)vs;
  rc = 0;
cleanup:
  json_decref(j);
  free(out);
  return rc;
}

int file_vol_spec(const struct vmh_host *host,
                  const struct vmh_volume_spec *spec, uint32_t default_format,
                  uint32_t *format, uint64_t *size) {
  int rc;

  if ((rc = vmh_check_name(host, "volume", spec->name)) < 0 ||
      (spec->base_image &&
       (rc = vmh_check_name(host, "image", spec->base_image)) < 0))
    return rc;
  *format = spec->format == VMH_FORMAT_DEFAULT ? default_format : spec->format;
  *size = spec->size;
  if (*format != VMH_FORMAT_RAW && *format != VMH_FORMAT_QCOW2)
    return vmh_fail(host, VMH_EINVAL,
                    "volume %s: format %" PRIu32 " is not raw or qcow2",
                    spec->name, spec->format);
  if (spec->base_image == NULL)
    return spec->size ? 0
                      : vmh_fail(host, VMH_EINVAL,
                                 "volume %s: give a size in bytes", spec->name);
  if (spec->format == VMH_FORMAT_RAW)
    return vmh_fail(host, VMH_EINVAL,
                    "volume %s: a clone of image %s is always qcow2; leave the "
                    "format out or ask for qcow2",
                    spec->name, spec->base_image);
  *format = VMH_FORMAT_QCOW2;
  return 0;
}

int file_vol_clone_size(const struct vmh_host *host,
                        const struct vmh_volume_spec *spec, uint64_t bsize,
                        uint64_t *size) {
  if (*size == 0)
    *size = bsize;
  if (*size < bsize)
    return vmh_fail(host, VMH_EINVAL,
                    "volume %s: size %" PRIu64
                    " is smaller than its base image %s (%" PRIu64
                    " bytes); give at least that, or 0 for the same",
                    spec->name, *size, spec->base_image, bsize);
  return 0;
}

int file_vol_resize_check(const struct vmh_host *host, const char *name,
                          uint32_t format, uint64_t now, uint64_t size,
                          uint32_t flags, uint64_t *need) {
  *need = format == VMH_FORMAT_RAW && size > now ? size - now : 0;
  if (size == now)
    return 0;
  if (size < now && !(flags & VMH_RESIZE_SHRINK))
    return vmh_fail(host, VMH_EINVAL,
                    "volume %s: %" PRIu64 " bytes is smaller than its %" PRIu64
                    "; shrinking loses data, ask for it with the shrink flag",
                    name, size, now);
  if (size < now && format == VMH_FORMAT_QCOW2)
    return vmh_fail(host, VMH_EINVAL,
                    "volume %s is qcow2, which this pool does not shrink; only "
                    "raw volumes shrink",
                    name);
  return 1;
}
