/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The config file: YAML parsed (libyaml) into a read-only tree of maps,
 * lists and scalars, each node knowing its file:line:column and whether
 * anyone has read it.  The accessors here are the vmh_host config_*
 * services; the core reads its own settings through them too.
 *
 * What the file may contain: one YAML document whose top level is a map
 * (an empty file is an empty map); maps with string keys, each key once;
 * lists; scalars.  Refused: anchors and aliases, tags other than the
 * standard ones (!!str, !!int, !!float, !!bool, !!null on scalars, !!map,
 * !!seq), NUL characters in strings, nesting deeper than 32 maps/lists,
 * bytes that are not UTF-8, files larger than 1 MiB.
 *
 * Null: a plain `key:` with nothing after it, `key: ~` and `key: null` are
 * present, not missing (defaults apply only to keys that are not there).
 * config_string reads them as "" (an explicit empty string); config_map
 * and config_list read them as an absent (empty) map or list, unless
 * VMH_CFG_REQUIRED; every other accessor refuses them ("found an empty
 * value").  Quoting does not change how a scalar is read, except that a
 * quoted "" or "null" is never null.
 *
 * Positions: a map value stands where its key stands (that is the line the
 * user must look at); a list element where it starts; the root at its first
 * key (1:1 when empty).
 *
 * Read marks: every successful access marks the node it returns or reads
 * (a map or list fetched as a whole is marked, its children are not).  The
 * mark is the only thing that changes after config_load: a plain store, no
 * lock, no allocation. */
#ifndef VMHOST_CORE_CONFTREE_H
#define VMHOST_CORE_CONFTREE_H

#include <stdint.h>
#include <vmhost/host.h>

enum config_type { CONFIG_MAP = 1, CONFIG_LIST = 2, CONFIG_SCALAR = 3 };

/* Parse path.  On success *ret_root is the top map (the caller owns it; free
 * with config_free).  On failure returns a VMH_E* code with the error
 * message set, and *ret_root is untouched:
 *   VMH_EINVAL  "FILE:LINE:COLUMN: what is wrong" (syntax, a non-map top
 *               level, a duplicate key, an alias/anchor, a bad tag, a
 *               non-UTF-8 byte, too deep), or "FILE: the file is larger
 *               than 1 MiB";
 *   VMH_ENOENT, VMH_EPERM, VMH_EIO  "FILE: cannot open: REASON" (or read);
 *   VMH_ENOMEM. */
int config_load(const char *path, struct vmh_config **ret_root);
/* Free a tree; only the root frees anything (other nodes are borrowed). */
void config_free(struct vmh_config *root);

enum config_type config_type(const struct vmh_config *node);
/* The file the tree came from (as given to config_load), and its directory
 * (absolute, symlinks resolved; for relative paths). */
const char *config_file(const struct vmh_config *node);
const char *config_dir(const struct vmh_config *node);

/* Accessors: see struct vmh_host in <vmhost/host.h> for their contract.
 * Flags other than VMH_CFG_REQUIRED are refused.  A NULL map reads as an
 * empty one (so the keys of an optional section that config_map returned
 * as NULL read as their defaults).  Error messages (VMH_EINVAL):
 *   "FILE:L:C: key 'K': expected a string, found a map"     (or a list)
 *   "FILE:L:C: key 'K': expected an integer, found 'lots'"
 *   "FILE:L:C: key 'K': 300 is out of range 1..256"         (as written)
 *   "FILE:L:C: key 'K': expected a size (bytes, or a number with a unit:
 *    K/KiB, M/MiB, G/GiB, T/TiB, KB, MB, GB, TB), found '12X'"
 *   "FILE:L:C: key 'K': 5G is out of range 1MiB..4GiB"
 *   "FILE:L:C: key 'K': expected true or false (or yes/no, on/off),
 *    found 'maybe'"
 *   "FILE:L:C: key 'K': expected a map, found an empty value"
 *   "FILE:L:C: missing required key 'K'"   (L:C: the map's position)
 * where "found" names a map, a list, an empty value, or quotes the value
 * (cut after 40 bytes).  With key NULL the node itself is read and named
 * "key 'K'" if it is a map value, "element N of 'K'" (N from 1) if it is a
 * list element.
 *
 * Integers are decimal with an optional sign, no leading zeros (010 would
 * be octal to a YAML 1.1 reader).  Sizes are a decimal number, optional
 * spaces, and an optional unit, case-insensitive: B; K, KiB, M, MiB, G,
 * GiB, T, TiB (powers of 1024); KB, MB, GB, TB (powers of 1000).  Booleans
 * are true/false, yes/no, on/off, case-insensitive. */
int config_string(const struct vmh_config *map, const char *key,
                  const char *def, const char **ret, uint32_t flags);
int config_int(const struct vmh_config *map, const char *key, int64_t min,
               int64_t max, int64_t def, int64_t *ret, uint32_t flags);
int config_size(const struct vmh_config *map, const char *key, uint64_t min,
                uint64_t max, uint64_t def, uint64_t *ret, uint32_t flags);
int config_bool(const struct vmh_config *map, const char *key, int def,
                int *ret, uint32_t flags);
int config_map(const struct vmh_config *map, const char *key,
               const struct vmh_config **ret, uint32_t flags);
int config_list(const struct vmh_config *map, const char *key,
                const struct vmh_config **ret, uint32_t *ret_count,
                uint32_t flags);
/* Marks the element read.  Out of range: "FILE:L:C: key 'K': index 3 is
 * out of range (the list has 2 elements)". */
int config_at(const struct vmh_config *list, uint32_t index,
              const struct vmh_config **ret);
/* Marks the map and each value visited (not what is inside the values). */
int config_keys(const struct vmh_config *map, vmh_config_key_fn fn,
                void *opaque);
/* "FILE:LINE:COLUMN", owned by the node; "(no position)" for NULL. */
const char *config_where(const struct vmh_config *node);

/* A path read from the config: absolute as is, relative (the default too)
 * resolved against the config file's directory; "./x" is written "x", ".."
 * is kept (the path need not exist).  Returns 0 with *ret a new string
 * (caller frees), or NULL when the key is missing and def is NULL; or a
 * VMH_E* code with the message set ("expected a path, found an empty
 * value") and *ret untouched. */
int config_path(const struct vmh_config *map, const char *key, const char *def,
                char **ret, uint32_t flags);
/* The same resolution for a path that does not come from a key (a
 * built-in default): relative to the directory of node's file. */
int config_resolve(const struct vmh_config *node, const char *path, char **ret);

/* config_path as the host service: *ret is borrowed and lives as long as
 * the tree (the tree keeps what it resolved). */
int config_path_kept(const struct vmh_config *map, const char *key,
                     const char *def, const char **ret, uint32_t flags);

/* Where the value of key in map stands, without marking it read; a missing
 * key (or key NULL) gives map's own position.  The host's
 * config_key_where. */
const char *config_key_where(const struct vmh_config *map, const char *key);

/* The value of key in map without marking it read, or NULL (missing, or
 * map is not a map).  For positions in messages. */
const struct vmh_config *config_lookup(const struct vmh_config *map,
                                       const char *key);

/* The first map entry under `node` (depth first, in file order) that
 * nobody read, or NULL.  It returns the entry's value node: config_key_name
 * gives the key, config_where the key's position.  Below a read entry the
 * walk goes on (a map read as a whole whose keys were not read reports the
 * first such key); list elements are walked for the maps inside them, but
 * are not themselves reported.  `node`'s own mark is not looked at.
 * Used after a plugin's open() and after the core read its own settings. */
const struct vmh_config *config_unread(const struct vmh_config *node);
/* The key of a map entry (value) node, e.g. one found by config_unread;
 * NULL for other nodes. */
const char *config_key_name(const struct vmh_config *node);

/* Every entry config_unread would find, one after the other: fn(opaque,
 * entry) for each (not below it); the first non-zero return ends the walk
 * and is returned. */
int config_unread_each(const struct vmh_config *node,
                       int (*fn)(void *opaque, const struct vmh_config *entry),
                       void *opaque);
/* The map or list node holds; NULL for the root. */
const struct vmh_config *config_parent(const struct vmh_config *node);

/* "Did you mean": the candidate closest to word, if it is at most two edits
 * away (adjacent transpositions count one) and not so short that two edits
 * could turn anything into it; NULL otherwise. */
const char *config_suggest(const char *word, const char *const *candidates,
                           size_t n);

/* The keys a reader asked of each map, so that a key nobody read can be
 * matched with the one it misspells even when that one is absent (a
 * plugin's keys are known only by what it asks).  This thread records from
 * config_asked_begin() to config_asked_end(), which forgets them. */
void config_asked_begin(void);
void config_asked_end(void);
/* The key asked of entry's map nearest to entry's key (config_suggest), or
 * NULL. */
const char *config_asked_suggest(const struct vmh_config *entry);

#endif
