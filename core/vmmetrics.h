/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The metric families of the core's objects, rendered on each scrape from
 * what the core holds (no plugin is called): every VM record (state,
 * size, usage), the ports on each network, each plugin instance's health
 * as last checked.  Names, labels and meanings: docs/metrics.md. */
#ifndef VMHOST_CORE_VMMETRICS_H
#define VMHOST_CORE_VMMETRICS_H

#include <stdbool.h>
#include <stdio.h>

/* vmhost_vm_*, vmhost_network_ports, vmhost_instance_up into f. */
void vmmetrics_render(FILE *f);

#endif
