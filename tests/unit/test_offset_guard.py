"""The skipped-records rule (streams/offset_guard.py)."""

from streams.offset_guard import OffsetGuard


def test_contiguous_offsets_and_repeats_pass_a_jump_is_reported_with_the_missing_offset():
    guard = OffsetGuard()
    assert [guard.skipped_to("claims-2", o, generation=1) for o in (100, 101, 102)] == [None] * 3
    assert guard.skipped_to("claims-2", 101, generation=1) is None  # a repeat after a seek
    assert guard.skipped_to("claims-2", 103, generation=1) is None
    assert guard.skipped_to("claims-2", 106, generation=1) == 104  # 104 and 105 never came


def test_a_new_generation_starts_wherever_the_partition_is():
    guard = OffsetGuard()
    assert guard.skipped_to("claims-1", 10, generation=1) is None
    assert guard.skipped_to("claims-1", 500, generation=2) is None  # another worker moved it on
    assert guard.skipped_to("claims-1", 501, generation=2) is None
    assert guard.skipped_to("claims-0", 7, generation=2) is None  # partitions are apart


def test_a_forgotten_partition_starts_over_at_the_seek():
    guard = OffsetGuard()
    assert guard.skipped_to("claims-1", 1725, generation=3) is None
    guard.forget("claims-1")  # the stall watch sought it to its committed offset, 1886
    assert guard.skipped_to("claims-1", 1886, generation=3) is None


def test_a_generation_must_start_at_or_before_the_committed_offset():
    guard = OffsetGuard()
    assert guard.skipped_to("claims-2", 1434, generation=4, committed=1434) is None
    assert guard.skipped_to("claims-2", 1435, generation=4, committed=1434) is None
    assert guard.skipped_to("claims-1", 90, generation=4, committed=100) is None  # a repeat
    # one record past the committed offset: Faust would commit over 1434 unread
    assert OffsetGuard().skipped_to("claims-2", 1435, generation=5, committed=1434) == 1434
    assert OffsetGuard().skipped_to("claims-2", 1435, generation=5, committed=None) is None  # nothing known


def test_after_a_stall_watch_seek_the_first_record_is_not_held_to_the_committed_offset():
    guard = OffsetGuard()
    assert guard.skipped_to("claims-1", 1725, generation=3, committed=1725) is None
    guard.forget("claims-1")
    assert guard.skipped_to("claims-1", 1890, generation=3, committed=1886) is None  # fetched before the seek
    assert guard.skipped_to("claims-1", 1891, generation=3, committed=1886) is None


def test_starts_tells_the_first_record_of_a_partition_in_a_generation():
    guard = OffsetGuard()
    assert guard.starts("claims-2", generation=1)
    guard.skipped_to("claims-2", 40, generation=1)
    assert not guard.starts("claims-2", generation=1)
    assert guard.starts("claims-2", generation=2) and guard.starts("claims-3", generation=1)
