/* SPDX-License-Identifier: MIT */
/* vmhost plugin ABI — network plugins.
 *
 * A network instance gives NICs a place to plug in: a bridge, an OVS port, a
 * tap.  The core binds one port per NIC before defining a VM and unbinds it
 * after undefining the VM, in that VM's order (one VM's port calls never
 * overlap); calls for different VMs may overlap as the thread model allows.
 *
 * Visitors (vmh_*_fn): called with a struct or strings valid only during
 * the call (copy what you keep); a non-zero return stops the operation,
 * which returns that value.
 */
#ifndef VMHOST_NETWORK_H
#define VMHOST_NETWORK_H

#include <vmhost/instance.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int (*vmh_network_info_fn)(void *opaque,
                                   const struct vmh_network_info *net);
typedef int (*vmh_nic_binding_fn)(void *opaque,
                                  const struct vmh_nic_binding *binding);
/* port_addresses visitor: one IP address (text form, v4 or v6). */
typedef int (*vmh_address_fn)(void *opaque, const char *address);
/* port_list visitor: one bound port. */
typedef int (*vmh_port_fn)(void *opaque, const char *vm_id,
                           const char *nic_name,
                           const struct vmh_nic_binding *binding);

struct vmh_network_ops {
  VMH_INSTANCE_OPS;

  /* Required.  The network as it is now; the core fills name and type. */
  int (*info)(void *handle, vmh_network_info_fn fn, void *opaque,
              uint32_t flags);

  /* Required.  Make the port for one NIC and call fn once with its binding
   * (a MAC chosen if the request has none).  The same vm_id + nic_name bound
   * twice → VMH_EEXIST.  On failure nothing of the port remains. */
  int (*port_bind)(void *handle, const struct vmh_port_request *req,
                   vmh_nic_binding_fn fn, void *opaque, uint32_t flags);
  /* Required.  Remove the port; unknown → VMH_ENOENT (the core treats that
   * as done when deleting). */
  int (*port_unbind)(void *handle, const char *vm_id, const char *nic_name,
                     uint32_t flags);
  /* Optional.  Every port bound now, for reconciliation. */
  int (*port_list)(void *handle, vmh_port_fn fn, void *opaque, uint32_t flags);

#if VMH_ABI_TARGET_MINOR >= 1
  /* Optional (ABI 1.1).  The addresses the guest behind the port holds now,
   * as the network knows them (DHCP leases, say): fn once per address, none
   * when it has none yet.  Unknown port → VMH_ENOENT.  The core adds them
   * to the VM's info when the hypervisor reports no address itself. */
  int (*port_addresses)(void *handle, const char *vm_id, const char *nic_name,
                        vmh_address_fn fn, void *opaque, uint32_t flags);
#endif
};

#ifdef __cplusplus
}
#endif

#endif /* VMHOST_NETWORK_H */
