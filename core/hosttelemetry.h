/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Host telemetry: CPU use (all and per CPU), load, memory, the state
 * directory's filesystem and each pool's space, NIC rates; sampled by one
 * thread every interval, the last TELEMETRY_HISTORY samples kept in memory
 * for struct vmh_core.host_samples. */
#ifndef VMHOST_CORE_HOSTTELEMETRY_H
#define VMHOST_CORE_HOSTTELEMETRY_H

#include <stdint.h>
#include <stdio.h>
#include <vmhost/core.h>

/* Samples kept. */
#define TELEMETRY_HISTORY 120

/* Start the sampler (after the instances are open): a first sample one
 * second from now, then one every interval_s.  state_dir is copied.
 * Returns 0 or VMH_ENOMEM / VMH_EIO with the message set. */
int telemetry_start(const char *state_dir, unsigned interval_s);
/* Stop it and free the history; safe when it never started. */
void telemetry_stop(void);

/* struct vmh_core.host_samples. */
int telemetry_samples(vmh_host_sample_fn fn, void *opaque, uint32_t flags);

#endif
