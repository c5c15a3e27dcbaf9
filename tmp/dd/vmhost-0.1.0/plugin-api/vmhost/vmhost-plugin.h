/* SPDX-License-Identifier: MIT */
/* vmhost plugin ABI, version 1 — include this one header to write a plugin.
 * See plugin.h for the descriptor and VMH_PLUGIN_REGISTER, and vmhost-plugin(3)
 * in the README for a walk-through. */
#ifndef VMHOST_VMHOST_PLUGIN_H
#define VMHOST_VMHOST_PLUGIN_H

#include <vmhost/common.h>
#include <vmhost/core.h>
#include <vmhost/frontend.h>
#include <vmhost/host.h>
#include <vmhost/hypervisor.h>
#include <vmhost/instance.h>
#include <vmhost/network.h>
#include <vmhost/plugin.h>
#include <vmhost/storage.h>
#include <vmhost/types.h>
#include <vmhost/version.h>

#endif /* VMHOST_VMHOST_PLUGIN_H */
