"""The demonstration record: container, ``.npz`` file format, validation (sb3_swfp.demos.record, .npz, .validation)."""

import dataclasses
import warnings

import numpy as np
import pytest
from gymnasium import spaces

from sb3_swfp.demos import Demonstrations, load_demonstrations, validate

from helpers import ACTION_SPACE, DICT_SPACE, OBS_SPACE, assert_same, episodic_demos

# ----------------------------------------------------------------------------------------
# Container and file format


def test_episode_structure():
    demos = episodic_demos(n_episodes=3, length=5)
    assert len(demos) == 15
    assert demos.n_episodes == 3
    assert demos.episode_bounds() == [(0, 5), (5, 10), (10, 15)]
    np.testing.assert_allclose(demos.episode_returns(), demos.rewards.reshape(3, 5).sum(axis=1), rtol=1e-6)
    part = demos.subset(slice(0, 7))
    assert len(part) == 7 and part.n_episodes == 1 and part.episode_bounds() == [(0, 5), (5, 7)]
    joined = Demonstrations.concatenate([demos.subset(slice(0, 5)), demos.subset(slice(5, 15))])
    assert_same(joined, demos)
    # a part that leaves its episode running ends it at the join: no episode runs into the next part
    cut = Demonstrations.concatenate([demos.subset(slice(0, 3)), demos.subset(slice(5, 15))])
    assert cut.episode_bounds() == [(0, 3), (3, 8), (8, 13)] and cut.truncations[2] and not cut.terminations[2]
    assert not demos.subset(slice(0, 3)).truncations[-1]  # the part itself is left as it was


@pytest.mark.parametrize("dict_obs", [False, True])
@pytest.mark.parametrize("compressed", [False, True])
def test_save_load_round_trip(tmp_path, dict_obs, compressed):
    demos = episodic_demos(dict_obs=dict_obs)
    path = demos.save(tmp_path / "demos", compressed=compressed)
    assert path.name == "demos.npz" and path.is_file()
    loaded = load_demonstrations(path)
    assert_same(loaded, demos)
    assert loaded.actions.dtype == demos.actions.dtype
    assert loaded.metadata == demos.metadata
    assert_same(Demonstrations.load(path), demos)
    assert_same(load_demonstrations(tmp_path / "demos"), demos)  # the name save() was given: .npz appended, as save did


def test_a_save_of_python_objects_is_refused_and_leaves_the_existing_file(tmp_path):
    demos = episodic_demos()
    path = demos.save(tmp_path / "demos")
    before = path.read_bytes()
    broken = dataclasses.replace(demos, rewards=np.array([1.0, None] + [0.0] * 13, dtype=object))
    with pytest.raises(ValueError, match=r"demonstration rewards hold Python objects \(None, mixed types\); expected a numeric array"):
        broken.save(path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["demos.npz"]


def test_validate_takes_in_range_signed_integers_for_an_unsigned_space():
    space = spaces.Box(0, 255, shape=(2,), dtype=np.uint8)
    demos = episodic_demos()
    demos.observations = np.tile(np.array([[1, 200]], dtype=np.int64), (15, 1))  # np.asarray of Python ints
    demos.next_observations = demos.observations.copy()
    checked = validate(demos, space, ACTION_SPACE)
    assert checked.observations.dtype == np.uint8 and checked.observations[0].tolist() == [1, 200]
    demos.observations[3, 0] = -1
    with pytest.raises(ValueError, match=r"observations contain 1 values outside uint8's range \[0, 255\]; .* transition 3, element \(0,\): -1"):
        validate(demos, space, ACTION_SPACE)


def test_a_save_that_fails_midway_leaves_the_existing_file_intact(tmp_path, monkeypatch):
    path = episodic_demos(seed=0).save(tmp_path / "demos.npz")
    before = path.read_bytes()

    def killed_midway(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")  # what a kill during the write leaves
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        episodic_demos(seed=1).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["demos.npz"]  # no temporary file left behind
    monkeypatch.undo()
    episodic_demos(seed=1).save(path)  # a save that completes replaces the file
    assert_same(load_demonstrations(path), episodic_demos(seed=1))


def test_load_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "demos.npz"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_demonstrations(missing)
    with pytest.raises(FileNotFoundError, match=r"no demonstrations file at 'demos/x.npz' \(relative to the working directory '/"):
        load_demonstrations("demos/x.npz")
    with pytest.raises(FileNotFoundError, match="no demonstrations file at '/'$"):
        load_demonstrations("/")  # a path without a name: nothing to append .npz to


def test_load_foreign_npz_names_missing_keys(tmp_path):
    path = tmp_path / "foreign.npz"
    np.savez(path, observations=np.zeros((3, 2)), acts=np.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"missing keys \['actions', 'rewards', 'terminations', 'truncations', 'next_obs"):
        load_demonstrations(path)


def test_load_names_the_file_and_what_is_wrong_in_a_hand_written_npz(tmp_path):
    fields = {name: getattr(episodic_demos(), name) for name in ("actions", "rewards", "terminations", "truncations")}
    obs = episodic_demos().observations
    cases = [
        (dict(observations=np.array([object()] * 15, dtype=object), next_observations=obs), r"'observations' holds Python objects"),
        (dict(observations=obs, next_observations=obs, metadata=np.array("{not json")), "its metadata is not JSON"),
        (dict(observations=obs, next_observations=obs, metadata=np.array("[1, 2]")), "its metadata is a JSON list, expected an object"),
        (dict(observations=obs, **{"observations/goal": obs}, next_observations=obs), r"both 'observations' and observations/<key> arrays \['goal'\]"),
    ]
    for i, (arrays, message) in enumerate(cases):
        path = tmp_path / f"hand_{i}.npz"
        np.savez(path, **fields, **arrays)
        with pytest.raises(ValueError, match=f"{path.name}'.*{message}"):
            load_demonstrations(path)


def test_load_non_npz_file(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("these are not arrays")
    with pytest.raises(ValueError, match="not a readable .npz"):
        load_demonstrations(path)


def test_construction_rejects_mismatched_lengths():
    demos = episodic_demos()
    with pytest.raises(ValueError, match=r"different lengths \(observations 15, next_observations 15, actions 14"):
        Demonstrations(
            demos.observations, demos.actions[:-1], demos.rewards, demos.next_observations,
            demos.terminations, demos.truncations,
        )


# ----------------------------------------------------------------------------------------
# Validation


def test_validate_returns_cast_copy():
    demos = episodic_demos()
    demos.observations = demos.observations.astype(np.float64)
    demos.terminations = demos.terminations.astype(np.int64)
    checked = validate(demos, OBS_SPACE, ACTION_SPACE)
    assert checked.observations.dtype == np.float32 and checked.terminations.dtype == np.bool_
    assert checked.rewards.dtype == np.float32
    checked.actions[:] = 0.0
    assert not np.all(demos.actions == 0.0)  # the caller's arrays are untouched


def test_validate_wrong_action_shape():
    demos = episodic_demos()
    demos.actions = np.zeros((15, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"actions have shape \(15, 3\), expected \(15, 2\)"):
        validate(demos, OBS_SPACE, ACTION_SPACE)


def test_validate_wrong_observation_shape():
    demos = episodic_demos()
    with pytest.raises(ValueError, match=r"observations have shape \(15, 3\), expected \(15, 5\)"):
        validate(demos, spaces.Box(-1, 1, shape=(5,)), ACTION_SPACE)


def test_validate_missing_and_extra_dict_keys():
    demos = episodic_demos(dict_obs=True)
    space = spaces.Dict({**DICT_SPACE.spaces, "achieved_goal": spaces.Box(-np.inf, np.inf, shape=(2,))})
    with pytest.raises(ValueError, match=r"missing keys \['achieved_goal'\]"):
        validate(demos, space, ACTION_SPACE)
    with pytest.raises(ValueError, match=r"keys \['desired_goal'\] that the Dict observation space does not have"):
        validate(demos, spaces.Dict({"observation": DICT_SPACE["observation"]}), ACTION_SPACE)
    with pytest.raises(ValueError, match="is a dict with keys"):
        validate(demos, OBS_SPACE, ACTION_SPACE)


def test_validate_reports_non_finite_values():
    demos = episodic_demos(dict_obs=True)
    demos.observations["observation"][3, 2] = np.nan
    demos.observations["observation"][7, 0] = np.inf
    message = r"observations\['observation'\] contain 2 non-finite .* transition 3, element \(2,\): nan"
    with pytest.raises(ValueError, match=message):
        validate(demos, DICT_SPACE, ACTION_SPACE)


def test_validate_reports_values_the_cast_to_the_space_dtype_would_change():
    demos = episodic_demos()
    demos.rewards = demos.rewards.astype(np.float64)
    demos.rewards[5] = 1e39  # finite as float64, inf as the float32 it is stored as
    with pytest.raises(ValueError, match=r"rewards contain 1 non-finite values \(.*beyond float32's range\); .* transition 5: 1e\+39"):
        validate(demos, OBS_SPACE, ACTION_SPACE)
    images = spaces.Box(0, 255, shape=(3,), dtype=np.uint8)
    demos = episodic_demos()
    demos.observations = np.full((15, 3), 7, dtype=np.uint16)
    demos.next_observations = demos.observations.copy()
    demos.observations[2, 1] = 300  # would wrap to 44
    with pytest.raises(ValueError, match=r"observations contain 1 values outside uint8's range \[0, 255\]; .* transition 2, element \(1,\): 300"):
        validate(demos, images, ACTION_SPACE)


def test_validate_actions_out_of_bounds_and_opt_in_clipping():
    demos = episodic_demos()
    demos.actions[4, 1] = 1.5  # dimension 1 lives in [0, 1]
    demos.actions[9, 0] = -3.0
    original = demos.actions.copy()
    message = r"2 demonstration action values .* transition 4, dimension \(1,\): 1.5 not in \[0, 1\]"
    with pytest.raises(ValueError, match=message):
        validate(demos, OBS_SPACE, ACTION_SPACE)
    clipped = validate(demos, OBS_SPACE, ACTION_SPACE, clip_actions=True)
    assert clipped.actions[4, 1] == 1.0 and clipped.actions[9, 0] == -2.0
    np.testing.assert_array_equal(demos.actions, original)


def test_validate_empty_and_bad_flags():
    demos = episodic_demos()
    with pytest.raises(ValueError, match="empty"):
        validate(demos.subset(slice(0, 0)), OBS_SPACE, ACTION_SPACE)
    demos.truncations = np.full(15, 2)
    with pytest.raises(ValueError, match="truncations must be booleans .* the first is 2 at transition 0"):
        validate(demos, OBS_SPACE, ACTION_SPACE)


def test_validate_rejects_non_box_action_space():
    with pytest.raises(TypeError, match="Box action space"):
        validate(episodic_demos(), OBS_SPACE, spaces.Discrete(3))


def test_channel_last_images_are_transposed_for_a_channel_first_space_as_sb3_transposes_the_env():
    """SB3 wraps an env with (H, W, C) images in VecTransposeImage for CNN policies: the model's space is (C, H, W),
    and demonstrations recorded on the env are transposed the same way, with a warning."""
    rng = np.random.default_rng(0)
    demos = episodic_demos()
    demos.observations = rng.integers(0, 256, (15, 6, 5, 3), dtype=np.uint8)  # H 6, W 5, C 3
    demos.next_observations = rng.integers(0, 256, (15, 6, 5, 3), dtype=np.uint8)
    channel_first = spaces.Box(0, 255, (3, 6, 5), np.uint8)
    with pytest.warns(UserWarning, match=r"observations are channel-last images \(6, 5, 3\) and the observation space is channel-first \(3, 6, 5\)"):
        checked = validate(demos, channel_first, ACTION_SPACE)
    np.testing.assert_array_equal(checked.observations, np.transpose(demos.observations, (0, 3, 1, 2)))
    np.testing.assert_array_equal(checked.next_observations[4, 2], demos.next_observations[4, :, :, 2])
    # in a Dict space too; already channel-first: unchanged, without a warning
    vector = rng.standard_normal((15, 2)).astype(np.float32)
    in_dicts = dataclasses.replace(
        demos, observations={"img": demos.observations, "vec": vector}, next_observations={"img": demos.next_observations, "vec": vector}
    )
    dict_space = spaces.Dict({"img": channel_first, "vec": spaces.Box(-5, 5, (2,), np.float32)})
    with pytest.warns(UserWarning, match=r"observations\['img'\] are channel-last"):
        dict_checked = validate(in_dicts, dict_space, ACTION_SPACE)
    np.testing.assert_array_equal(dict_checked.observations["img"], checked.observations)
    np.testing.assert_array_equal(dict_checked.observations["vec"], vector)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = validate(checked, channel_first, ACTION_SPACE)
    np.testing.assert_array_equal(same.observations, checked.observations)
    # a shape that is not the transposition is still refused, with the expected shape
    with pytest.raises(ValueError, match=r"have shape \(15, 6, 3, 5\), expected \(15, 3, 6, 5\)"):
        validate(dataclasses.replace(demos, observations=np.transpose(demos.observations, (0, 1, 3, 2))), channel_first, ACTION_SPACE)
