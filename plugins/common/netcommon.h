/* Helpers the network plugins share (in-tree only, never installed, not
 * part of the ABI): interface names and MAC addresses. */
#ifndef VMHOST_PLUGINS_NETCOMMON_H
#define VMHOST_PLUGINS_NETCOMMON_H

#define NET_IFNAME_MAX 15 /* IFNAMSIZ - 1 */
#define NET_MAC_LEN 17    /* "52:54:00:xx:xx:xx" */

/* Linux's dev_valid_name(), plus printable ASCII only. */
int net_valid_ifname(const char *s);

/* Parse "xx:xx:xx:xx:xx:xx" in any case into out, in lower case.  Returns
 * 1 for a unicast address, -1 for a multicast or all-zero one, 0 when s is
 * not a MAC address. */
int net_parse_mac(const char *s, char out[NET_MAC_LEN + 1]);

#endif
