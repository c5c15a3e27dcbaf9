/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lv-xml — see lv-xml.h. */
#include <config.h>

#include "lv-xml.h"

#include <inttypes.h>
#include <libxml/xmlwriter.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vmhost/common.h>

/* One document being written; the first failure sticks, so that the
 * builders can write straight through and check once at the end. */
struct w {
  xmlBufferPtr buf;
  xmlTextWriterPtr tw;
  int rc;
  char *err;
  size_t errlen;
};

static void fail(struct w *w, int code, const char *fmt, ...) VMH_PRINTF(3, 4);
static void fail(struct w *w, int code, const char *fmt, ...) {
  va_list ap;

  if (w->rc < 0)
    return;
  w->rc = code;
  va_start(ap, fmt);
  vsnprintf(w->err, w->errlen, fmt, ap);
  va_end(ap);
}

static void io(struct w *w, int r) {
  if (r < 0)
    fail(w, VMH_ENOMEM, "cannot write XML (out of memory)");
}

static void start(struct w *w, const char *el) {
  if (w->rc == 0)
    io(w, xmlTextWriterStartElement(w->tw, BAD_CAST el));
}

static void end(struct w *w) {
  if (w->rc == 0)
    io(w, xmlTextWriterEndElement(w->tw));
}

static void attr(struct w *w, const char *name, const char *value) {
  if (w->rc == 0 && value != NULL)
    io(w, xmlTextWriterWriteAttribute(w->tw, BAD_CAST name, BAD_CAST value));
}

static void attru(struct w *w, const char *name, uint64_t v) {
  char buf[24];

  snprintf(buf, sizeof buf, "%" PRIu64, v);
  attr(w, name, buf);
}

static void text(struct w *w, const char *s) {
  if (w->rc == 0)
    io(w, xmlTextWriterWriteString(w->tw, BAD_CAST s));
}

/* <el>text</el> */
static void elem(struct w *w, const char *el, const char *s) {
  start(w, el);
  text(w, s);
  end(w);
}

/* <el attr='value'/> */
static void empty(struct w *w, const char *el, const char *name,
                  const char *value) {
  start(w, el);
  attr(w, name, value);
  end(w);
}

static int begin(struct w *w, char *err, size_t errlen) {
  memset(w, 0, sizeof *w);
  w->err = err;
  w->errlen = errlen;
  w->buf = xmlBufferCreate();
  if (w->buf != NULL)
    w->tw = xmlNewTextWriterMemory(w->buf, 0);
  if (w->tw == NULL) {
    fail(w, VMH_ENOMEM, "cannot start XML (out of memory)");
    return w->rc;
  }
  /* Indented for people reading `virsh dumpxml` and test failures. */
  xmlTextWriterSetIndent(w->tw, 1);
  xmlTextWriterSetIndentString(w->tw, BAD_CAST "  ");
  return 0;
}

/* Ends the document and hands over its text. */
static int finish(struct w *w, char **ret) {
  if (w->tw != NULL) {
    if (w->rc == 0)
      io(w, xmlTextWriterEndDocument(w->tw));
    /* Frees the writer and flushes into buf. */
    xmlFreeTextWriter(w->tw);
  }
  if (w->rc == 0) {
    *ret = strdup((const char *)xmlBufferContent(w->buf));
    if (*ret == NULL)
      fail(w, VMH_ENOMEM, "out of memory");
  }
  if (w->buf != NULL)
    xmlBufferFree(w->buf);
  return w->rc;
}

int lvx_secret_usage(const char *vm_id, const char *disk, char *buf,
                     size_t size) {
  int n = snprintf(buf, size, "vmhost-%s-%s", vm_id, disk);

  return n < 0 || (size_t)n >= size ? VMH_EINVAL : 0;
}

/* "host:port" → <host name='host' port='port'/>; "[v6]:port" too. */
static void host_port(struct w *w, const char *what, const char *hp) {
  char name[256];
  const char *port = NULL, *colon;
  size_t n;

  if (hp == NULL || hp[0] == '\0') {
    fail(w, VMH_EINVAL, "%s: empty host", what);
    return;
  }
  if (hp[0] == '[') {
    const char *close = strchr(hp, ']');
    if (close == NULL) {
      fail(w, VMH_EINVAL, "%s '%s': no ']' after the IPv6 address", what, hp);
      return;
    }
    n = (size_t)(close - hp - 1);
    hp++;
    if (close[1] == ':')
      port = close + 2;
  } else {
    colon = strrchr(hp, ':');
    /* Several colons without brackets: a bare IPv6 address. */
    if (colon != NULL && strchr(hp, ':') == colon) {
      n = (size_t)(colon - hp);
      port = colon + 1;
    } else {
      n = strlen(hp);
    }
  }
  if (n == 0 || n >= sizeof name) {
    fail(w, VMH_EINVAL, "%s '%s': bad host", what, hp);
    return;
  }
  memcpy(name, hp, n);
  name[n] = '\0';
  start(w, "host");
  attr(w, "name", name);
  if (port != NULL && port[0] != '\0')
    attr(w, "port", port);
  end(w);
}

static void auth(struct w *w, const char *vm_id, const struct vmh_disk *d,
                 const char *secret_type) {
  const struct vmh_disk_source *s = d->source;
  char usage[256];

  if (s->auth_user == NULL)
    return;
  if (lvx_secret_usage(vm_id, d->name, usage, sizeof usage) < 0) {
    fail(w, VMH_EINVAL, "disk %s: secret name too long", d->name);
    return;
  }
  start(w, "auth");
  attr(w, "username", s->auth_user);
  start(w, "secret");
  attr(w, "type", secret_type);
  /* The key itself never appears in domain XML: it lives in a libvirt
   * secret the plugin defines under this usage name. */
  if (s->auth_secret != NULL)
    attr(w, "usage", usage);
  end(w);
  end(w);
}

static const char *format_name(uint32_t f) {
  /* The pool's default is raw for every storage plugin we have; naming it
   * keeps QEMU from probing the format of guest-writable data. */
  return f == VMH_FORMAT_QCOW2 ? "qcow2" : "raw";
}

static void need(struct w *w, const struct vmh_disk *d, const char *field,
                 const char *v) {
  if (v == NULL || v[0] == '\0')
    fail(w, VMH_EINVAL, "disk %s: source has no %s", d->name, field);
}

static void disk(struct w *w, const char *vm_id, const struct vmh_disk *d) {
  const struct vmh_disk_source *s = d->source;
  static const char *const buses[] = {"virtio", "scsi", "sata"};
  char name[1024];
  uint32_t i;

  if (d->name == NULL || d->name[0] == '\0') {
    fail(w, VMH_EINVAL, "a disk has no name");
    return;
  }
  if (s == NULL) {
    fail(w, VMH_EINVAL, "disk %s: no source", d->name);
    return;
  }
  if (d->bus >= sizeof buses / sizeof buses[0]) {
    fail(w, VMH_EINVAL, "disk %s: unknown bus %" PRIu32, d->name, d->bus);
    return;
  }
  start(w, "disk");
  switch (s->type) {
    case VMH_SOURCE_FILE:
      need(w, d, "path", s->path);
      attr(w, "type", "file");
      break;
    case VMH_SOURCE_BLOCK:
      need(w, d, "path", s->path);
      attr(w, "type", "block");
      break;
    case VMH_SOURCE_RBD:
      need(w, d, "pool", s->pool);
      need(w, d, "image", s->image);
      if (s->n_monitors == 0)
        fail(w, VMH_EINVAL, "disk %s: RBD source has no monitors", d->name);
      attr(w, "type", "network");
      break;
    case VMH_SOURCE_ISCSI:
      need(w, d, "portal", s->portal);
      need(w, d, "iqn", s->iqn);
      attr(w, "type", "network");
      break;
    case VMH_SOURCE_NFS:
      need(w, d, "server", s->server);
      need(w, d, "export_path", s->export_path);
      need(w, d, "path", s->path);
      attr(w, "type", "network");
      break;
    default:
      fail(w, VMH_EINVAL, "disk %s: source type %" PRIu32 " is not supported",
           d->name, s->type);
      return;
  }
  attr(w, "device", "disk");
  start(w, "driver");
  attr(w, "name", "qemu");
  attr(w, "type", format_name(s->format));
  end(w);

  start(w, "source");
  switch (s->type) {
    case VMH_SOURCE_FILE:
      attr(w, "file", s->path);
      break;
    case VMH_SOURCE_BLOCK:
      attr(w, "dev", s->path);
      break;
    case VMH_SOURCE_RBD:
      snprintf(name, sizeof name, "%s/%s", s->pool ? s->pool : "",
               s->image ? s->image : "");
      attr(w, "protocol", "rbd");
      attr(w, "name", name);
      for (i = 0; i < s->n_monitors; i++)
        host_port(w, "RBD monitor", s->monitors[i]);
      auth(w, vm_id, d, "ceph");
      break;
    case VMH_SOURCE_ISCSI:
      snprintf(name, sizeof name, "%s/%" PRIu32, s->iqn ? s->iqn : "", s->lun);
      attr(w, "protocol", "iscsi");
      attr(w, "name", name);
      host_port(w, "iSCSI portal", s->portal);
      auth(w, vm_id, d, "iscsi");
      break;
    case VMH_SOURCE_NFS:
      /* libvirt names an NFS disk by its path on the server: export + path
       * inside the export. */
      snprintf(name, sizeof name, "%s/%s", s->export_path ? s->export_path : "",
               s->path && s->path[0] == '/' ? s->path + 1 : s->path);
      attr(w, "protocol", "nfs");
      attr(w, "name", name);
      host_port(w, "NFS server", s->server);
      /* The schema wants it; without user/group libvirt keeps QEMU's own
       * identity for the NFS mount-less access. */
      start(w, "identity");
      end(w);
      break;
  }
  end(w); /* source */
  start(w, "target");
  attr(w, "dev", d->name);
  attr(w, "bus", buses[d->bus]);
  end(w);
  if (d->boot_order > 0) {
    start(w, "boot");
    attru(w, "order", d->boot_order);
    end(w);
  }
  if (d->readonly) {
    start(w, "readonly");
    end(w);
  }
  end(w); /* disk */
}

static void nic(struct w *w, const struct vmh_nic *n) {
  const struct vmh_nic_binding *b = n->binding;

  if (b == NULL) {
    fail(w, VMH_EINVAL, "NIC %s: no binding", n->name ? n->name : "?");
    return;
  }
  start(w, "interface");
  switch (b->type) {
    case VMH_BINDING_BRIDGE:
    case VMH_BINDING_OVS:
      if (b->bridge == NULL || b->bridge[0] == '\0')
        fail(w, VMH_EINVAL, "NIC %s: binding has no bridge", n->name);
      attr(w, "type", "bridge");
      break;
    case VMH_BINDING_TAP:
      if (b->tap == NULL || b->tap[0] == '\0')
        fail(w, VMH_EINVAL, "NIC %s: binding has no tap", n->name);
      attr(w, "type", "ethernet");
      break;
    default:
      fail(w, VMH_EINVAL, "NIC %s: binding type %" PRIu32 " is not supported",
           n->name, b->type);
      return;
  }
  if (b->mac != NULL)
    empty(w, "mac", "address", b->mac);
  if (b->type != VMH_BINDING_TAP)
    empty(w, "source", "bridge", b->bridge);
  if (b->type == VMH_BINDING_OVS) {
    start(w, "virtualport");
    attr(w, "type", "openvswitch");
    if (b->interface_id != NULL)
      empty(w, "parameters", "interfaceid", b->interface_id);
    end(w);
  }
  if (b->type == VMH_BINDING_TAP) {
    /* The network plugin made the tap: libvirt must neither create nor
     * delete it. */
    start(w, "target");
    attr(w, "dev", b->tap);
    attr(w, "managed", "no");
    end(w);
  } else if (b->type == VMH_BINDING_OVS && b->port != NULL) {
    empty(w, "target", "dev", b->port);
  }
  empty(w, "model", "type", n->model == VMH_NIC_E1000 ? "e1000" : "virtio");
  if (b->mtu > 0) {
    start(w, "mtu");
    attru(w, "size", b->mtu);
    end(w);
  }
  /* Only OVS takes a tag from libvirt: on a Linux bridge QEMU's start fails
   * on <vlan>, and the tag is the network plugin's business (bridge VLAN
   * filtering on the port it made). */
  if (b->vlan > 0 && b->type == VMH_BINDING_OVS) {
    start(w, "vlan");
    start(w, "tag");
    attru(w, "id", b->vlan);
    end(w);
    end(w);
  }
  end(w); /* interface */
}

/* The seed goes on the first SATA name no disk of the spec takes, as a
 * read-only CD-ROM. */
static void seed_cdrom(struct w *w, const struct vmh_vm_spec *spec,
                       const char *path) {
  char dev[4] = "sd?";
  uint32_t i;

  for (dev[2] = 'a'; dev[2] <= 'z'; dev[2]++) {
    for (i = 0; i < spec->n_disks; i++)
      if (spec->disks[i].name != NULL && strcmp(spec->disks[i].name, dev) == 0)
        break;
    if (i == spec->n_disks)
      break;
  }
  if (dev[2] > 'z') {
    fail(w, VMH_EINVAL, "no SATA name left for the cloud-init seed");
    return;
  }
  start(w, "disk");
  attr(w, "type", "file");
  attr(w, "device", "cdrom");
  start(w, "driver");
  attr(w, "name", "qemu");
  attr(w, "type", "raw");
  end(w);
  empty(w, "source", "file", path);
  start(w, "target");
  attr(w, "dev", dev);
  attr(w, "bus", "sata");
  end(w);
  start(w, "readonly");
  end(w);
  end(w);
}

static void unix_source(struct w *w, const char *path) {
  start(w, "source");
  attr(w, "mode", "bind");
  attr(w, "path", path);
  end(w);
}

int lvx_domain(const struct vmh_vm_spec *spec, const struct lvx_opts *o,
               char **ret, char *err, size_t errlen) {
  struct w w;
  uint32_t i;

  if (begin(&w, err, errlen) < 0)
    goto done;
  if (spec->id == NULL || spec->name == NULL)
    fail(&w, VMH_EINVAL, "the spec has no id or no name");
  io(&w, xmlTextWriterStartDocument(w.tw, NULL, NULL, NULL));
  start(&w, "domain");
  attr(&w, "type", o->domain_type);
  elem(&w, "name", spec->name);
  elem(&w, "uuid", spec->id);

  if (spec->n_metadata > 0) {
    start(&w, "metadata");
    if (w.rc == 0)
      io(&w, xmlTextWriterStartElementNS(w.tw, BAD_CAST LVX_NS_PREFIX,
                                         BAD_CAST "vm", BAD_CAST LVX_NS_URI));
    for (i = 0; i < spec->n_metadata; i++) {
      if (w.rc == 0)
        io(&w, xmlTextWriterStartElementNS(w.tw, BAD_CAST LVX_NS_PREFIX,
                                           BAD_CAST "meta", NULL));
      attr(&w, "key", spec->metadata[i].key);
      text(&w, spec->metadata[i].value ? spec->metadata[i].value : "");
      end(&w);
    }
    end(&w);
    end(&w);
  }

  start(&w, "memory");
  attr(&w, "unit", "KiB");
  {
    char kib[24];
    snprintf(kib, sizeof kib, "%" PRIu64, spec->memory / 1024);
    text(&w, kib);
  }
  end(&w);
  {
    char n[16];
    snprintf(n, sizeof n, "%" PRIu32, spec->vcpus);
    elem(&w, "vcpu", n);
  }

  start(&w, "os");
  if (spec->firmware != NULL && strcmp(spec->firmware, "uefi") == 0)
    attr(&w, "firmware", "efi");
  else if (spec->firmware != NULL && strcmp(spec->firmware, "bios") != 0)
    fail(&w, VMH_EINVAL, "firmware '%s': give bios or uefi", spec->firmware);
  start(&w, "type");
  attr(&w, "machine", o->machine);
  text(&w, "hvm");
  end(&w);
  if (spec->kernel != NULL) {
    elem(&w, "kernel", spec->kernel);
    if (spec->initrd != NULL)
      elem(&w, "initrd", spec->initrd);
    if (spec->cmdline != NULL)
      elem(&w, "cmdline", spec->cmdline);
  }
  end(&w); /* os */

  /* ACPI: without it a graceful stop has nobody to ask. */
  start(&w, "features");
  start(&w, "acpi");
  end(&w);
  start(&w, "apic");
  end(&w);
  end(&w);

  start(&w, "devices");
  if (o->emulator != NULL)
    elem(&w, "emulator", o->emulator);
  for (i = 0; i < spec->n_disks; i++)
    disk(&w, spec->id, &spec->disks[i]);
  if (o->seed_path != NULL)
    seed_cdrom(&w, spec, o->seed_path);
  for (i = 0; i < spec->n_nics; i++)
    nic(&w, &spec->nics[i]);
  if (o->console_path != NULL) {
    /* A unix socket rather than a pty: its path is known before start and
     * a console client can connect without owning a terminal. */
    start(&w, "serial");
    attr(&w, "type", "unix");
    unix_source(&w, o->console_path);
    empty(&w, "target", "port", "0");
    end(&w);
  }
  if (spec->guest_channel && o->channel_path != NULL) {
    start(&w, "channel");
    attr(&w, "type", "unix");
    unix_source(&w, o->channel_path);
    start(&w, "target");
    attr(&w, "type", "virtio");
    attr(&w, "name", LVX_CHANNEL_NAME);
    end(&w);
    end(&w);
  }
  end(&w); /* devices */
  end(&w); /* domain */
done:
  return finish(&w, ret);
}

int lvx_disk(const char *vm_id, const struct vmh_disk *d, char **ret, char *err,
             size_t errlen) {
  struct w w;

  if (begin(&w, err, errlen) == 0)
    disk(&w, vm_id, d);
  return finish(&w, ret);
}

int lvx_snapshot(const char *name, char **ret, char *err, size_t errlen) {
  struct w w;

  if (begin(&w, err, errlen) == 0) {
    start(&w, "domainsnapshot");
    elem(&w, "name", name);
    end(&w);
  }
  return finish(&w, ret);
}

int lvx_secret(const char *vm_id, const char *disk_name, uint32_t source_type,
               char **ret, char *err, size_t errlen) {
  struct w w;
  char usage[256];

  if (begin(&w, err, errlen) == 0) {
    if (lvx_secret_usage(vm_id, disk_name, usage, sizeof usage) < 0)
      fail(&w, VMH_EINVAL, "disk %s: secret name too long", disk_name);
    start(&w, "secret");
    attr(&w, "ephemeral", "no");
    attr(&w, "private", "yes");
    elem(&w, "description", "vmhost disk credentials");
    start(&w, "usage");
    attr(&w, "type", source_type == VMH_SOURCE_RBD ? "ceph" : "iscsi");
    elem(&w, source_type == VMH_SOURCE_RBD ? "name" : "target", usage);
    end(&w);
    end(&w);
  }
  return finish(&w, ret);
}
