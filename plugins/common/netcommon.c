/* Helpers the network plugins share: interface names and MAC addresses. */
#include "netcommon.h"

#include <string.h>

int net_valid_ifname(const char *s) {
  size_t len = strlen(s);

  if (len == 0 || len > NET_IFNAME_MAX || strcmp(s, ".") == 0 ||
      strcmp(s, "..") == 0)
    return 0;
  for (; *s; s++)
    if (*s <= ' ' || *s >= 0x7f || *s == '/' || *s == ':')
      return 0;
  return 1;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int net_parse_mac(const char *s, char out[NET_MAC_LEN + 1]) {
  int i, first = 0, any = 0;

  if (strlen(s) != NET_MAC_LEN)
    return 0;
  for (i = 0; i < NET_MAC_LEN; i++) {
    if (i % 3 == 2) {
      if (s[i] != ':')
        return 0;
      out[i] = ':';
    } else {
      int v = hexval(s[i]);
      if (v < 0)
        return 0;
      if (i == 1)
        first = hexval(s[0]) << 4 | v;
      any |= v;
      out[i] = "0123456789abcdef"[v];
    }
  }
  out[NET_MAC_LEN] = '\0';
  return (first & 1) || !any ? -1 : 1;
}
