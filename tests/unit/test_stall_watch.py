"""The stall detector's rule (streams/stall_watch.py), fed samples by hand."""

from streams.stall_watch import PartitionSample, StallWatch


def test_a_partition_fetched_past_what_was_delivered_with_nothing_queued_is_stalled_after_the_set_looks():
    watch = StallWatch(checks=3)
    stuck = {"claims-1": PartitionSample(delivered_next=1726, position=2703, queued=0)}
    assert watch.stalled(stuck) == []
    assert watch.stalled(stuck) == []
    assert watch.stalled(stuck) == ["claims-1"]
    assert watch.stalled(stuck) == []  # sought back: its history starts over


def test_progress_queued_work_or_a_caught_up_partition_is_not_a_stall():
    watch = StallWatch(checks=2)
    for delivered in (100, 150, 200, 250):  # delivering: the sample changes every look
        assert watch.stalled({"p": PartitionSample(delivered, 300, 0)}) == []
    busy = {"p": PartitionSample(100, 300, queued=40)}
    assert watch.stalled(busy) == [] and watch.stalled(busy) == []
    caught_up = {"p": PartitionSample(300, 300, 0)}
    assert watch.stalled(caught_up) == [] and watch.stalled(caught_up) == []


def test_a_stall_must_be_the_same_for_every_look_in_a_row():
    watch = StallWatch(checks=2)
    assert watch.stalled({"p": PartitionSample(10, 50, 0)}) == []
    assert watch.stalled({"p": PartitionSample(10, 60, 0)}) == []  # the fetcher moved: start over
    assert watch.stalled({"p": PartitionSample(10, 60, 0)}) == ["p"]
