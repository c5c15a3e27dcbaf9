# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the tests of lists in pages by name share (test-rest-pages.py,
test-rpc-pages.py): a config with two pools, and a walk through the pages
while objects come and go between them."""
from vmhtest import check

# Two pools (a token of one is refused by the other), one hypervisor.
TWO_POOLS = """
hypervisors:
  - { name: hv0, plugin: mock }
storage:
  - { name: pool0, plugin: mock }
  - { name: pool1, plugin: mock }
networks:
  - { name: net1, plugin: mock }
  - { name: net0, plugin: mock }
"""


def churned_walk(walk, have, make, drop):
    """walk(between) goes through every page, calling between(names of the
    page) after each, and returns the names listed.  Between pages, the
    page's last object (the token's anchor) and the next one not listed yet
    are deleted (drop), and one object is made before the walk's position
    and one after it (make).  Every object of `have` there throughout is
    listed exactly once, in name order; the deleted-ahead ones never."""
    stable, gone, made = set(have), set(), []

    def between(got):
        if not got:
            return
        last = got[-1]
        drop(last)
        stable.discard(last)
        ahead = sorted(n for n in stable if n > last)
        if ahead:
            drop(ahead[0])
            stable.discard(ahead[0])
            gone.add(ahead[0])
        i = len(made)
        made.extend([f"a-new-{i}", f"zz-new-{i}"])
        make(f"a-new-{i}")
        make(f"zz-new-{i}")

    names = walk(between)
    check(len(names) == len(set(names)), "duplicates", names)
    check(names == sorted(names), "name order", names)
    check(stable <= set(names), "missing", sorted(stable - set(names)))
    check(not gone & set(names), "listed after its delete", gone)
    return names
