"""Temporal windows: reflection at clip ends and scene cuts, never across a cut."""

from __future__ import annotations

import random

import pytest

from vssavsr.engine import windows


def test_middle_of_clip_is_plain_window():
    assert windows.window_indices(10, 100) == [7, 8, 9, 10, 11, 12, 13]


def test_clip_ends_reflect_without_repeating_the_edge():
    assert windows.window_indices(0, 100) == [3, 2, 1, 0, 1, 2, 3]
    assert windows.window_indices(1, 100) == [2, 1, 0, 1, 2, 3, 4]
    assert windows.window_indices(99, 100) == [96, 97, 98, 99, 98, 97, 96]


def test_short_clips():
    assert windows.window_indices(0, 1) == [0] * 7
    assert windows.window_indices(0, 2) == [1, 0, 1, 0, 1, 0, 1]
    assert windows.window_indices(1, 3) == [2, 1, 0, 1, 2, 1, 0]


def test_scene_change_prev_starts_a_scene():
    # Frame 5 has _SceneChangePrev: scenes 0..4 and 5..
    flags = {5: (True, False)}
    cut = windows.cut_before_from_flags(flags)
    assert windows.window_indices(4, 20, cut) == [1, 2, 3, 4, 3, 2, 1]
    assert windows.window_indices(5, 20, cut) == [8, 7, 6, 5, 6, 7, 8]
    assert windows.window_indices(6, 20, cut) == [7, 6, 5, 6, 7, 8, 9]


def test_scene_change_next_ends_a_scene():
    flags = {4: (False, True)}  # last frame of its scene
    cut = windows.cut_before_from_flags(flags)
    assert windows.window_indices(4, 20, cut) == [1, 2, 3, 4, 3, 2, 1]
    assert windows.window_indices(5, 20, cut) == [8, 7, 6, 5, 6, 7, 8]


def test_one_frame_scene_repeats_itself():
    flags = {5: (True, True)}
    cut = windows.cut_before_from_flags(flags)
    assert windows.window_indices(5, 20, cut) == [5] * 7


@pytest.mark.parametrize("seed", range(20))
def test_random_cuts_never_cross_and_stay_in_the_fetched_span(seed):
    rng = random.Random(seed)
    n_frames = rng.randint(1, 40)
    flags = {i: (rng.random() < 0.15, rng.random() < 0.1) for i in range(n_frames)}
    cut = windows.cut_before_from_flags(flags)
    # Scene id of every frame, from the same flags.
    scene, sid = [], 0
    for i in range(n_frames):
        if i > 0 and cut(i):
            sid += 1
        scene.append(sid)
    for n in range(n_frames):
        win = windows.window_indices(n, n_frames, cut)
        assert len(win) == 7 and win[3] == n
        assert all(scene[i] == scene[n] for i in win), (n, win)
        assert set(win) <= set(windows.needed_frames(n, n_frames))
        # symmetric reflection: the window reads the same backwards around the centre
        # whenever the scene is long enough on both sides
        assert all(0 <= i < n_frames for i in win)


def test_windows_from_flags_matches_window_indices():
    flags = {3: (True, False), 9: (False, True)}
    outs = list(range(15))
    got = windows.windows_from_flags(outs, 15, flags)
    cut = windows.cut_before_from_flags(flags)
    assert got == [windows.window_indices(n, 15, cut) for n in outs]


def test_bad_arguments():
    with pytest.raises(IndexError):
        windows.window_indices(5, 5)
    with pytest.raises(ValueError):
        windows.window_indices(0, 5, window=4)
