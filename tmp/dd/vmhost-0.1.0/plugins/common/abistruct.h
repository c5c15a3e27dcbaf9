/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* abistruct — reading the ABI's structs as types.h says: only the bytes
 * inside struct_size, arrays with their elements' struct_size as the
 * stride.  Header-only, shared by the front-ends' encoders (abijson,
 * the rpc front-end's abipb); not part of the ABI.
 */
#ifndef VMH_ABISTRUCT_H
#define VMH_ABISTRUCT_H

#include <string.h>

/* Copy a struct that crossed the boundary into one of our size: only the
 * bytes the other side said it filled, zeros after (types.h). */
#define COPY_IN(dst, src)                                          \
  do {                                                             \
    memset(&(dst), 0, sizeof(dst));                                \
    if ((src) != NULL)                                             \
      memcpy(&(dst), (src),                                        \
             (src)->struct_size < sizeof(dst) ? (src)->struct_size \
                                              : sizeof(dst));      \
  } while (0)

/* Arrays of structs are walked with their elements' struct_size as the
 * stride (types.h), so an older side's arrays read right. */
#define ELEM(arr, i)                                                         \
  ((const void *)((const char *)(arr) +                                      \
                  (size_t)(i) * ((arr)[0].struct_size ? (arr)[0].struct_size \
                                                      : sizeof(arr)[0])))

#endif /* VMH_ABISTRUCT_H */
