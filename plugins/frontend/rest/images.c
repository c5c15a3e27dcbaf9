/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The REST routes of a pool's verified base-image cache (vmh_core.image_*):
 *
 *   GET    /api/v1/storage/pools/{pool}/images          the images, in
 *          name order, in pages with ?limit= (pages.c)
 *   GET    /api/v1/storage/pools/{pool}/images/{image}  one image
 *   POST   /api/v1/storage/pools/{pool}/images          import (operator):
 *          {"name","url","sha256"}; an operation (image.import) with byte
 *          progress: ?wait=false answers 202 with it at once
 *   DELETE /api/v1/storage/pools/{pool}/images/{image}  (operator) refused
 *          with 409 while volumes are clones of it
 *
 * Which URLs a pool downloads from is its own config (image_sources). */
#include <config.h>

#include <string.h>

#include "rest.h"

int rest_image_list(struct call *k) {
  if (rest_check_param(k, 0, "pool", false) < 0 ||
      rest_named_list(k, VMPAGE_IMAGES, "images", k->params[0]) < 0)
    return -1;
  k->rest->core->image_list(k->params[0], &k->reply.reply, 0);
  return 0;
}

/* The core lists a pool's images; the one asked for is the answer. */
static void finish_one_image(struct call *k, int code, const char *message) {
  if (code) {
    rest_answer_code(k, code, message);
    return;
  }
  size_t i;
  json_t *img;
  json_array_foreach(k->res, i, img) {
    const char *name = json_string_value(json_object_get(img, "name"));
    if (name && !strcmp(name, k->params[1])) {
      rest_answer_json(k, 200, json_incref(img));
      return;
    }
  }
  char msg[256];
  snprintf(msg, sizeof msg, "pool %s has no image %s", k->params[0],
           k->params[1]);
  rest_answer_code(k, VMH_ENOENT, msg);
}

int rest_image_get(struct call *k) {
  if (rest_check_param(k, 0, "pool", false) < 0 ||
      rest_check_param(k, 1, "image", false) < 0 || rest_no_query(k) < 0)
    return -1;
  k->finish = finish_one_image;
  k->rest->core->image_list(k->params[0], &k->reply.reply, 0);
  return 0;
}

int rest_image_import(struct call *k) {
  struct vmh_image_spec spec;
  uint32_t f;
  int r;
  if (rest_check_param(k, 0, "pool", false) < 0 || rest_wait_query(k, &f) < 0 ||
      rest_need_body(k, false) < 0)
    return -1;
  if ((r = abij_image_spec_in(&k->in, k->body, "", &spec)) < 0)
    return rest_refused(k, r);
  k->shape = ONE;
  k->ok_status = 201;
  k->rest->core->image_import(k->params[0], &spec, &k->reply.reply, f);
  return 0;
}

int rest_image_delete(struct call *k) {
  uint32_t f;
  if (rest_check_param(k, 0, "pool", false) < 0 ||
      rest_check_param(k, 1, "image", false) < 0 || rest_wait_query(k, &f) < 0)
    return -1;
  k->shape = ONE;
  k->rest->core->image_delete(k->params[0], k->params[1], &k->reply.reply, f);
  return 0;
}
