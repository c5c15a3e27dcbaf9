/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* URLs for vmh_volume_info.location (libvmhutil): the path part of a URL,
 * percent-encoded. */
#ifndef VMHOST_UTIL_URL_H
#define VMHOST_UTIL_URL_H

/* base (copied as is: "file://", "nfs://server", "iscsi://host:3260")
 * followed by path with every byte percent-encoded except RFC 3986's
 * unreserved characters, '/' and ':' (so an IQN stays readable):
 * ("file://", "/srv/my pool") → "file:///srv/my%20pool".  Returns a string
 * the caller frees, or NULL when out of memory. */
char *url_path(const char *base, const char *path);

#endif
