/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A shared object that is not a vmhost plugin: it exports a symbol, but not
 * vmh_plugin_entry.  The loader must refuse it by name. */
#include <vmhost/vmhost-plugin.h>

VMH_EXPORT const struct vmh_plugin *vmh_plugin_entry_v0(void);
VMH_EXPORT const struct vmh_plugin *
vmh_plugin_entry_v0(void)
{
  return NULL;
}
