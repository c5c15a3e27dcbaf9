# SPDX-License-Identifier: LGPL-2.1-or-later
"""Request-body schemas of Cloud Hypervisor's REST API, as tables written
from the facts of its OpenAPI document (field names, types, formats,
minimums, required fields, enums) -- not a copy of it -- and a validator
that refuses what the VMM's parser refuses: an unknown field, a wrong
type, a value out of its format's range, a missing required field.

Types: "string", "boolean", "integer" (with a format: int8, uint8, int16,
uint16, int32, uint32, int64), "object" (free-form), "@Name" (another
schema), ["T"] (array of T), {"T"} is spelled ("map", T), an enum is
("enum", [values]).  A field may carry ("min", n) by being written as
("integer", fmt, min)."""

INT_RANGES = {
    "int8": (-2**7, 2**7 - 1), "uint8": (0, 2**8 - 1),
    "int16": (-2**15, 2**15 - 1), "uint16": (0, 2**16 - 1),
    "int32": (-2**31, 2**31 - 1), "uint32": (0, 2**32 - 1),
    "int64": (-2**63, 2**63 - 1),
}

I = ("integer", "int64")  # an integer without a format: Rust's usize/u64
I16 = ("integer", "int16")
U8 = ("integer", "uint8")
I32 = ("integer", "int32")
B = "boolean"
S = "string"

CONSOLE_MODE = ("enum", ["Off", "Pty", "Tty", "File", "Socket", "Null"])

# name: (required fields, {field: type})
SCHEMAS = {
    "PayloadConfig": ([], {
        "firmware": S, "kernel": S, "cmdline": S, "initramfs": S, "igvm": S,
        "host_data": S}),
    "VmConfig": (["payload"], {
        "cpus": "@CpusConfig", "memory": "@MemoryConfig",
        "payload": "@PayloadConfig",
        "rate_limit_groups": ["@RateLimitGroupConfig"],
        "disks": ["@DiskConfig"], "net": ["@NetConfig"], "rng": "@RngConfig",
        "balloon": "@BalloonConfig", "fs": ["@FsConfig"],
        "generic_vhost_user": ["@GenericVhostUserConfig"],
        "pmem": ["@PmemConfig"], "serial": "@SerialConfig",
        "console": "@ConsoleConfig", "debug_console": "@DebugConsoleConfig",
        "devices": ["@DeviceConfig"], "user_devices": ["@UserDeviceConfig"],
        "vdpa": ["@VdpaConfig"], "vsock": "@VsockConfig",
        "numa": ["@NumaConfig"], "iommu": B, "watchdog": B,
        "rtc": "@RtcConfig", "pvpanic": B,
        "pci_segments": ["@PciSegmentConfig"], "platform": "@PlatformConfig",
        "tpm": "@TpmConfig", "landlock_enable": B,
        "landlock_rules": ["@LandlockConfig"]}),
    "CpuAffinity": (["vcpu", "host_cpus"], {"vcpu": I, "host_cpus": [I]}),
    "CpuFeatures": ([], {"amx": B}),
    "CpuTopology": ([], {
        "threads_per_core": I, "cores_per_die": I, "dies_per_package": I,
        "packages": I}),
    "CpusConfig": (["boot_vcpus", "max_vcpus"], {
        "boot_vcpus": ("integer", "int64", 1),
        "max_vcpus": ("integer", "int64", 1),
        "topology": "@CpuTopology", "kvm_hyperv": B, "max_phys_bits": I,
        "nested": B, "affinity": ["@CpuAffinity"], "features": "@CpuFeatures",
        "core_scheduling": ("enum", ["Vm", "Vcpu", "Off"])}),
    "PciSegmentConfig": (["pci_segment"], {
        "pci_segment": I16, "mmio32_aperture_weight": I32,
        "mmio64_aperture_weight": I32}),
    "PlatformConfig": ([], {
        "num_pci_segments": I16, "iommu_segments": [I16],
        "iommu_address_width_bits": U8, "system_serial_number": S,
        "serial_number": S, "system_uuid": S, "uuid": S, "oem_strings": [S],
        "system_manufacturer": S, "system_product_name": S,
        "system_version": S, "system_family": S, "system_sku_number": S,
        "chassis_asset_tag": S, "tdx": B, "sev_snp": B, "iommufd": B,
        "vfio_p2p_dma": B}),
    "MemoryZoneConfig": (["id", "size"], {
        "id": S, "size": I, "file": S, "mergeable": B, "shared": B,
        "hugepages": B, "hugepage_size": I, "host_numa_node": I32,
        "hotplug_size": I, "hotplugged_size": I, "prefault": B,
        "reserve": B}),
    "MemoryConfig": (["size"], {
        "size": I, "hotplug_size": I, "hotplugged_size": I, "mergeable": B,
        "hotplug_method": S, "shared": B, "hugepages": B, "hugepage_size": I,
        "prefault": B, "reserve": B, "thp": B,
        "zones": ["@MemoryZoneConfig"]}),
    "TokenBucket": (["size", "refill_time"], {
        "size": ("integer", "int64", 0),
        "one_time_burst": ("integer", "int64", 0),
        "refill_time": ("integer", "int64", 0)}),
    "RateLimiterConfig": ([], {
        "bandwidth": "@TokenBucket", "ops": "@TokenBucket"}),
    "RateLimitGroupConfig": (["id", "rate_limiter_config"], {
        "id": S, "rate_limiter_config": "@RateLimiterConfig"}),
    "VirtQueueAffinity": (["queue_index", "host_cpus"], {
        "queue_index": I, "host_cpus": [I]}),
    "DiskConfig": ([], {
        "path": S, "readonly": B, "direct": B, "iommu": B, "num_queues": I,
        "queue_size": I, "vhost_user": B, "vhost_socket": S,
        "rate_limiter_config": "@RateLimiterConfig", "pci_segment": I16,
        "pci_device_id": U8, "id": S, "serial": S, "rate_limit_group": S,
        "queue_affinity": ["@VirtQueueAffinity"], "backing_files": B,
        "sparse": B,
        "image_type": ("enum", ["FixedVhd", "Qcow2", "Raw", "Vhdx",
                                "Unknown"]),
        "lock_granularity": ("enum", ["ByteRange", "Full"])}),
    "NetConfig": ([], {
        "tap": S, "ip": S, "mask": S, "mac": S, "host_mac": S, "mtu": I,
        "iommu": B, "num_queues": I, "queue_size": I, "vhost_user": B,
        "vhost_socket": S, "vhost_mode": S, "id": S, "pci_segment": I16,
        "pci_device_id": U8, "rate_limiter_config": "@RateLimiterConfig",
        "offload_tso": B, "offload_ufo": B, "offload_csum": B}),
    "RngConfig": (["src"], {
        "id": S, "pci_segment": I16, "pci_device_id": U8, "iommu": B,
        "src": S}),
    "RtcConfig": ([], {
        "id": S, "pci_segment": I16, "pci_device_id": U8, "iommu": B}),
    "BalloonConfig": (["size"], {
        "id": S, "pci_segment": I16, "pci_device_id": U8, "iommu": B,
        "size": I, "deflate_on_oom": B, "free_page_reporting": B}),
    "FsConfig": (["num_queues", "queue_size", "socket", "tag"], {
        "tag": S, "socket": S, "num_queues": I, "queue_size": I,
        "pci_segment": I16, "pci_device_id": U8, "id": S}),
    "GenericVhostUserConfig": (["queue_sizes", "socket", "device_type"], {
        "socket": S, "queue_sizes": [("integer", "uint16")],
        "pci_segment": I16, "pci_device_id": U8, "id": S,
        "device_type": ("integer", "uint32")}),
    "PmemConfig": (["file"], {
        "file": S, "size": I, "iommu": B, "discard_writes": B,
        "pci_segment": I16, "pci_device_id": U8, "id": S}),
    "ConsoleConfig": (["mode"], {
        "file": S, "socket": S, "mode": CONSOLE_MODE, "iommu": B, "id": S,
        "pci_segment": I16, "pci_device_id": U8}),
    "SerialConfig": (["mode"], {"file": S, "socket": S, "mode": CONSOLE_MODE}),
    "DebugConsoleConfig": (["mode"], {
        "file": S, "mode": CONSOLE_MODE, "iobase": I}),
    "DeviceConfig": ([], {
        "path": S, "iommu": B, "pci_segment": I16, "pci_device_id": U8,
        "id": S, "x_nv_gpudirect_clique": ("integer", "int8"),
        "x_exclude_mmap_bars": [I]}),
    "UserDeviceConfig": (["socket"], {
        "socket": S, "id": S, "pci_segment": I16, "pci_device_id": U8}),
    "TpmConfig": (["socket"], {"socket": S}),
    "VdpaConfig": (["path", "num_queues"], {
        "path": S, "num_queues": I, "iommu": B, "pci_segment": I16,
        "pci_device_id": U8, "id": S}),
    "VsockConfig": (["cid", "socket"], {
        "cid": ("integer", "int64", 3), "socket": S, "iommu": B,
        "pci_segment": I16, "pci_device_id": U8, "id": S}),
    "NumaDistance": (["destination", "distance"], {
        "destination": I32, "distance": I32}),
    "NumaConfig": (["guest_numa_id"], {
        "guest_numa_id": I32, "cpus": [I32], "distances": ["@NumaDistance"],
        "memory_zones": [S], "pci_segments": [I32], "device_id": S}),
    "LandlockConfig": (["path", "access"], {"path": S, "access": S}),
    "VmRemoveDevice": ([], {"id": S}),
    "VmSnapshotConfig": ([], {"destination_url": S}),
    "VmMemoryZoneUpdateData": (["id", "host_numa_node"], {
        "id": S, "host_numa_node": ("integer", "uint32", 0)}),
    "RestoreConfig": (["source_url"], {
        "source_url": S, "prefault": B,
        "memory_restore_mode": ("enum", ["Copy", "OnDemand"]), "resume": B,
        "zone_updates": ["@VmMemoryZoneUpdateData"]}),
}

# The body each PUT endpoint takes (None: no body).
BODIES = {
    "vm.create": "VmConfig", "vm.add-disk": "DiskConfig",
    "vm.remove-device": "VmRemoveDevice", "vm.snapshot": "VmSnapshotConfig",
    "vm.restore": "RestoreConfig",
}


class Invalid(Exception):
    """What the VMM's parser says about a body."""


def _check(value, t, where):
    if isinstance(t, list):
        if not isinstance(value, list):
            raise Invalid(f"{where}: invalid type: expected a sequence")
        for i, v in enumerate(value):
            _check(v, t[0], f"{where}[{i}]")
        return
    if isinstance(t, str) and t.startswith("@"):
        validate(t[1:], value, where)
        return
    if t == "string":
        if not isinstance(value, str):
            raise Invalid(f"{where}: invalid type: expected a string")
        return
    if t == "boolean":
        if not isinstance(value, bool):
            raise Invalid(f"{where}: invalid type: expected a boolean")
        return
    if t == "object":
        if not isinstance(value, dict):
            raise Invalid(f"{where}: invalid type: expected a map")
        return
    if t[0] == "enum":
        if value not in t[1]:
            raise Invalid(f"{where}: unknown variant `{value}`, expected one "
                          f"of {', '.join(t[1])}")
        return
    if t[0] == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"{where}: invalid type: expected an integer")
        lo, hi = INT_RANGES[t[1]]
        if len(t) > 2:
            lo = max(lo, t[2])
        if not lo <= value <= hi:
            raise Invalid(f"{where}: invalid value: {value}, expected "
                          f"{lo}..{hi}")
        return
    raise AssertionError(f"bad schema type {t!r}")


def validate(schema, body, where=None):
    """Raise Invalid when body is not a `schema`."""
    where = where or schema
    required, props = SCHEMAS[schema]
    if not isinstance(body, dict):
        raise Invalid(f"{where}: invalid type: expected struct {schema}")
    for k in body:
        if k not in props:
            raise Invalid(f"{where}: unknown field `{k}`, expected one of "
                          + ", ".join(f"`{p}`" for p in props))
    for k in required:
        if k not in body:
            raise Invalid(f"{where}: missing field `{k}`")
    for k, v in body.items():
        _check(v, props[k], f"{where}.{k}")
