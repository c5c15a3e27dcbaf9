/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* nfs-direct — the reference loop of bench/nfs.py: create and delete N raw
 * volumes straight through libnfs (one context, synchronous calls), with
 * the calls the nfs plugin makes for each (storage-nfs.c, nfsmeta.c):
 *
 *   create: statvfs (the space check); create a temporary file, truncate
 *           it to SIZE, close; the record: create a temporary file, write,
 *           fsync, close, link it to its name, unlink the temporary name;
 *           link the data to its name, unlink the temporary name
 *   delete: unlink the volume, unlink its record
 *
 *   nfs-direct SERVER EXPORT DIR N SIZE
 *
 * DIR (in the export, "/bench", made if missing) holds the volumes and
 * DIR/rec their records.  Prints the create and delete seconds. */
#include <errno.h>
#include <fcntl.h>
#include <sys/time.h> /* libnfs.h needs struct timeval */

#include <nfsc/libnfs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct nfs_context *nfs;

static void check(int rc, const char *what, const char *path) {
  if (rc < 0) {
    fprintf(stderr, "nfs-direct: %s %s: %s\n", what, path, nfs_get_error(nfs));
    exit(1);
  }
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void create_one(const char *dir, int i, uint64_t size) {
  static const char text[] = "format=raw\n";
  char tmp[512], path[512], rtmp[512], rec[512];
  struct nfs_statvfs_64 sv;
  struct nfsfh *fh;

  snprintf(tmp, sizeof tmp, "%s/.tmp-v%d.1", dir, i);
  snprintf(path, sizeof path, "%s/v%d", dir, i);
  snprintf(rtmp, sizeof rtmp, "%s/rec/.tmp-v%d.1", dir, i);
  snprintf(rec, sizeof rec, "%s/rec/v%d", dir, i);
  check(nfs_statvfs64(nfs, dir, &sv), "statvfs", dir);
  check(nfs_create(nfs, tmp, O_RDWR | O_EXCL, 0600, &fh), "create", tmp);
  check(nfs_ftruncate(nfs, fh, size), "truncate", tmp);
  nfs_close(nfs, fh);
  check(nfs_create(nfs, rtmp, O_WRONLY | O_EXCL, 0644, &fh), "create", rtmp);
  check(nfs_pwrite(nfs, fh, 0, sizeof text - 1, text), "write", rtmp);
  check(nfs_fsync(nfs, fh), "fsync", rtmp);
  nfs_close(nfs, fh);
  check(nfs_link(nfs, rtmp, rec), "link", rec);
  check(nfs_unlink(nfs, rtmp), "unlink", rtmp);
  check(nfs_link(nfs, tmp, path), "link", path);
  check(nfs_unlink(nfs, tmp), "unlink", tmp);
}

static void delete_one(const char *dir, int i) {
  char path[512];

  snprintf(path, sizeof path, "%s/v%d", dir, i);
  check(nfs_unlink(nfs, path), "unlink", path);
  snprintf(path, sizeof path, "%s/rec/v%d", dir, i);
  check(nfs_unlink(nfs, path), "unlink", path);
}

int main(int argc, char **argv) {
  char rec[512];
  double t0, t1, t2;
  int n;
  uint64_t size;

  if (argc != 6) {
    fprintf(stderr, "usage: nfs-direct SERVER EXPORT DIR N SIZE\n");
    return 2;
  }
  n = atoi(argv[4]);
  size = strtoull(argv[5], NULL, 10);
  nfs = nfs_init_context();
  if (nfs == NULL)
    return 1;
  nfs_set_autoreconnect(nfs, 0);
  nfs_set_dircache(nfs, 0);
  check(nfs_mount(nfs, argv[1], argv[2]), "mount", argv[2]);
  snprintf(rec, sizeof rec, "%s/rec", argv[3]);
  for (const char *d = argv[3]; d; d = d == argv[3] ? rec : NULL) {
    int rc = nfs_mkdir(nfs, d);
    if (rc != -EEXIST)
      check(rc, "mkdir", d);
  }
  t0 = now();
  for (int i = 0; i < n; i++)
    create_one(argv[3], i, size);
  t1 = now();
  for (int i = 0; i < n; i++)
    delete_one(argv[3], i);
  t2 = now();
  printf("%.6f %.6f\n", t1 - t0, t2 - t1);
  nfs_destroy_context(nfs);
  return 0;
}
