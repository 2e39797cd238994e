"""Card and suggestion ids: random UUIDs, unique across threads and forked processes."""

from __future__ import annotations

import os
import threading
import uuid

from cds_service.cards import ids


def test_ids_are_version_4_uuids_and_never_repeat_across_blocks():
    made = [ids.new_uuid() for _ in range(3 * ids.BLOCK_BYTES // 16 + 5)]  # several blocks
    assert len(set(made)) == len(made)
    assert {uuid.UUID(u).version for u in made} == {4} and {uuid.UUID(u).variant for u in made} == {uuid.RFC_4122}
    assert all(str(uuid.UUID(u)) == u for u in made)


def test_threads_do_not_share_a_block():
    made: list[list[str]] = [[] for _ in range(4)]

    def make(into: list[str]) -> None:
        into += [ids.new_uuid() for _ in range(300)]

    threads = [threading.Thread(target=make, args=(into,)) for into in made]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [u for into in made for u in into]
    assert len(set(everything)) == len(everything) == 1200


def test_a_forked_child_does_not_hand_out_its_parents_next_ids():
    ids.new_uuid()  # the parent holds a partly used block
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.close(read)
        os.write(write, ",".join(ids.new_uuid() for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split(",")
    os.waitpid(pid, 0)
    parent = [ids.new_uuid() for _ in range(5)]
    assert len(child) == 5 and not set(child) & set(parent)
