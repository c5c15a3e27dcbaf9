/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The reference of bench/rbd.py: N clones of one base image made and then
 * deleted by a plain librbd loop, with the calls vmhostd makes for each
 * over one cluster connection: create is the plugin's vol_create
 * (rbd_clone3 of the base's snapshot "base") and the vol_get the core
 * answers with (open read-only, size, used bytes, parent, close); delete
 * is vol_delete (open read-only, list snapshots and clones, close,
 * remove).  Prints the seconds of the create loop and of the delete
 * loop.
 *
 *   rbd-direct MON_HOST USER KEY POOL BASE N
 */
#include <rados/librados.h>
#include <rbd/librbd.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what, int r) {
  fprintf(stderr, "rbd-direct: %s: %d\n", what, r);
  exit(1);
}

static int add_extent(uint64_t off, size_t len, int exists, void *opaque) {
  (void)off;
  if (exists)
    *(uint64_t *)opaque += len;
  return 0;
}

int main(int argc, char **argv) {
  rados_t cluster;
  rados_ioctx_t io;
  char id[128], name[64];
  double t0, t1, t2;
  int n, r;

  if (argc != 7) {
    fprintf(stderr, "usage: rbd-direct MON_HOST USER KEY POOL BASE N\n");
    return 2;
  }
  n = atoi(argv[6]);
  snprintf(id, sizeof id, "client.%s", argv[2]);
  if ((r = rados_create2(&cluster, "ceph", id, 0)) < 0 ||
      (r = rados_conf_set(cluster, "mon_host", argv[1])) < 0 ||
      (r = rados_conf_set(cluster, "key", argv[3])) < 0 ||
      (r = rados_connect(cluster)) < 0 ||
      (r = rados_ioctx_create(cluster, argv[4], &io)) < 0)
    die("connect", r);

  t0 = now();
  for (int i = 0; i < n; i++) {
    rbd_image_options_t opts;
    rbd_image_t img;
    rbd_linked_image_spec_t parent;
    rbd_snap_spec_t psnap;
    uint64_t size, used = 0;
    snprintf(name, sizeof name, "d%d", i);
    rbd_image_options_create(&opts);
    r = rbd_clone3(io, argv[5], "base", io, name, opts);
    rbd_image_options_destroy(opts);
    if (r < 0)
      die("rbd_clone3", r);
    if ((r = rbd_open_read_only(io, name, &img, NULL)) < 0 ||
        (r = rbd_get_size(img, &size)) < 0 ||
        (r = rbd_diff_iterate2(img, NULL, 0, size, 0, 1, add_extent, &used)) <
            0 ||
        (r = rbd_get_parent(img, &parent, &psnap)) < 0)
      die("get", r);
    rbd_linked_image_spec_cleanup(&parent);
    rbd_snap_spec_cleanup(&psnap);
    rbd_close(img);
  }
  t1 = now();
  for (int i = 0; i < n; i++) {
    rbd_image_t img;
    rbd_snap_info_t snaps[16];
    rbd_linked_image_spec_t kids[16];
    size_t n_kids = 16;
    int n_snaps = 16;
    snprintf(name, sizeof name, "d%d", i);
    if ((r = rbd_open_read_only(io, name, &img, NULL)) < 0)
      die("rbd_open_read_only", r);
    if ((r = rbd_snap_list(img, snaps, &n_snaps)) < 0 ||
        (r = rbd_list_children3(img, kids, &n_kids)) < 0)
      die("list", r);
    rbd_snap_list_end(snaps);
    rbd_linked_image_spec_list_cleanup(kids, n_kids);
    rbd_close(img);
    if ((r = rbd_remove(io, name)) < 0)
      die("rbd_remove", r);
  }
  t2 = now();
  printf("%.4f %.4f\n", t1 - t0, t2 - t1);
  rados_ioctx_destroy(io);
  rados_shutdown(cluster);
  return 0;
}
