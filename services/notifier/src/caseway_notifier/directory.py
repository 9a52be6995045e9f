"""Kept for callers outside the notifier (the fault suite's invariants): the directory now lives in
`caseway_notifier.domain.directory`."""

from caseway_notifier.domain.directory import ChannelAddress, Directory, Team, load_directory

__all__ = ["ChannelAddress", "Directory", "Team", "load_directory"]
