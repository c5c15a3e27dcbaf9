/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The gRPC methods of a pool's image cache (vmh_core.image_*): ListImages,
 * GetImage (reader), ImportImage[Async], DeleteImage (operator).  The same
 * checks as the REST routes (plugins/frontend/rest/images.c). */
#include <config.h>

#include <string.h>

#include "rpc.h"
#include "speclimits.h"

int rpc_image_list(struct call *k) {
  const Vmhost__V1__PoolRequest *m = (const void *)rpc_in(k);
  if (rpc_ref(k, "pool", m->pool, false) < 0)
    return -1;
  rpc_core(k)->image_list(m->pool, rpc_reply(k), 0);
  return 0;
}

int rpc_image_get(struct call *k) {
  const Vmhost__V1__ImageRequest *m = (const void *)rpc_in(k);
  if (rpc_ref(k, "pool", m->pool, false) < 0 ||
      rpc_ref(k, "image", m->image, false) < 0 ||
      rpc_pick(k, m->image, "pool %s has no image %s", m->pool, m->image) < 0)
    return -1;
  rpc_core(k)->image_list(m->pool, rpc_reply(k), 0);
  return 0;
}

int rpc_image_import(struct call *k) {
  const Vmhost__V1__ImportImageRequest *m = (const void *)rpc_in(k);
  if (rpc_ref(k, "pool", m->pool, false) < 0)
    return -1;
  if (!m->name[0] || !m->url[0] || !m->sha256[0])
    return rpc_bad(k, "'%s' is required",
                   !m->name[0]  ? "name"
                   : !m->url[0] ? "url"
                                : "sha256");
  if (rpc_ref(k, "image", m->name, false) < 0)
    return -1;
  if (strlen(m->url) > SPEC_IMAGE_URL_MAX)
    return rpc_bad(k, "'url' is longer than %d bytes", SPEC_IMAGE_URL_MAX);
  if (strlen(m->sha256) != 64 || strspn(m->sha256, "0123456789abcdef") != 64)
    return rpc_bad(k,
                   "'sha256' must be 64 lower-case hex digits (the output "
                   "of sha256sum)");
  struct vmh_image_spec spec = {.struct_size = sizeof spec,
                                .name = m->name,
                                .url = m->url,
                                .sha256 = m->sha256};
  rpc_core(k)->image_import(m->pool, &spec, rpc_reply(k), rpc_async(k));
  return 0;
}

int rpc_image_delete(struct call *k) {
  const Vmhost__V1__ImageRequest *m = (const void *)rpc_in(k);
  if (rpc_ref(k, "pool", m->pool, false) < 0 ||
      rpc_ref(k, "image", m->image, false) < 0)
    return -1;
  rpc_core(k)->image_delete(m->pool, m->image, rpc_reply(k), 0);
  return 0;
}
