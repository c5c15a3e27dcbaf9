/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The limits of a VM spec, once: the core enforces them
 * (core/orchestrate.c) and the front-ends refuse earlier with the field's
 * name (abijson for REST, abipb for gRPC).  openapi.yaml (minimum,
 * maximum, maxItems, maxProperties) and node.proto (the field comments,
 * "MIN..MAX" and "at most N") state the same numbers, and
 * tests/test-limits.py holds both documents to this file: keep each
 * definition on one line, a plain decimal number. */
#ifndef VMHOST_UTIL_SPECLIMITS_H
#define VMHOST_UTIL_SPECLIMITS_H

#include <stdint.h>

#define SPEC_VCPUS_MIN 1
#define SPEC_VCPUS_MAX 4096
#define SPEC_MEMORY_MIN UINT64_C(16777216)       /* 16 MiB */
#define SPEC_MEMORY_MAX UINT64_C(70368744177664) /* 64 TiB */
#define SPEC_DISKS_MAX 64
#define SPEC_NICS_MAX 32
#define SPEC_METADATA_MAX 128
#define SPEC_VLAN_MAX 4094
#define SPEC_BOOT_ORDER_MAX 255
/* cloud-init documents, metadata values, kernel command line (bytes) */
#define SPEC_TEXT_MAX 65536
/* an image import's url (bytes; openapi ImageImport.url maxLength) */
#define SPEC_IMAGE_URL_MAX 4096

#endif
