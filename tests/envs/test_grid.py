"""Item pick-up grid (SPEC §5): each rule on its own, item sources, greedy regression, batched evaluation."""

import hashlib
import pickle
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import is_envs  # noqa: F401
from is_envs.grid import (
    DEPOT,
    DISTRIBUTIONS,
    EpisodeTable,
    GreedyPolicy,
    ItemPickupEnv,
    core,
    episode_events,
    evaluate,
    released_episodes,
    shift_table,
)

GRADIENT1 = released_episodes("gradient1")
NO_ITEMS = np.zeros((1, 5, 5), dtype=bool)


def state(pos: tuple[int, int] = (2, 0), load: int = 0, items: dict | None = None) -> core.GridState:
    s = core.GridState.start(1)
    s.pos[0] = pos
    s.load[0] = load
    for cell, age in (items or {}).items():
        s.age[0][cell] = age
    return s


def spawn_at(*cells: tuple[int, int]) -> np.ndarray:
    m = NO_ITEMS.copy()
    for cell in cells:
        m[0][cell] = True
    return m


def go(s: core.GridState, action: int, spawns: np.ndarray = NO_ITEMS) -> core.StepEvents:
    return core.step(s, np.array([action]), spawns)


def test_moves_and_their_cost() -> None:
    s = state((2, 2))
    for action, target in [(1, (1, 2)), (2, (1, 3)), (3, (2, 3)), (4, (2, 2)), (0, (2, 2))]:
        ev = go(s, action)
        assert tuple(s.pos[0]) == target
        assert ev.reward[0] == (0.0 if action == 0 else -1.0)


def test_wall_bump_costs_nothing() -> None:
    s = state((0, 0))
    for action in (1, 4):
        ev = go(s, action)
        assert tuple(s.pos[0]) == (0, 0) and ev.reward[0] == 0.0 and ev.moved[0] == 0


def test_pick_up_when_empty() -> None:
    s = state((1, 1), items={(1, 2): 3})
    ev = go(s, 2)
    assert ev.reward[0] == 7.5 - 1 and s.load[0] == 1 and s.age[0, 1, 2] == -1 and ev.picked[0] == 1


def test_loaded_agent_does_not_pick_up() -> None:
    s = state((1, 1), load=1, items={(1, 2): 3})
    ev = go(s, 2)
    assert ev.reward[0] == -1 and s.load[0] == 1 and s.age[0, 1, 2] == 4  # still waiting, one step older


def test_drop_off_at_the_depot() -> None:
    s = state((1, 0), load=1)
    ev = go(s, 3)
    assert ev.reward[0] == 7.5 - 1 and s.load[0] == 0 and ev.delivered[0] == 1


def test_pick_up_excludes_drop_off_in_the_same_step() -> None:
    s = state((2, 0), load=0, items={(2, 0): 0})  # empty on the depot with an item on it
    ev = go(s, 0)
    assert ev.picked[0] == 1 and ev.delivered[0] == 0 and s.load[0] == 1 and ev.reward[0] == 7.5


def test_items_age_and_expire_after_ten_chances() -> None:
    s = state((4, 4))
    go(s, 0, spawn_at((0, 4)))  # arrives at step 1 with age 0
    seen = []
    for _ in range(10):
        ev = go(s, 0)
        seen.append(core.observe(s)[0, 1, 0, 4])
    np.testing.assert_allclose(seen[:9], np.arange(9, 0, -1) / 10)
    assert seen[9] == 0 and ev.expired[0] == 1  # gone after its 10th step


def test_an_item_can_be_picked_on_its_tenth_chance() -> None:
    s = state((0, 3))
    go(s, 0, spawn_at((0, 4)))
    for _ in range(9):
        go(s, 0)
    ev = go(s, 2)  # tenth step after its arrival
    assert ev.picked[0] == 1


def test_carried_items_never_expire() -> None:
    s = state((1, 0), items={(1, 0): 9})
    go(s, 0)
    assert s.load[0] == 1
    for _ in range(30):
        go(s, 0)
    ev = go(s, 3)
    assert ev.delivered[0] == 1


def test_spawn_on_a_live_item_is_dropped() -> None:
    s = state((4, 4), items={(0, 4): 3})
    go(s, 0, spawn_at((0, 4)))
    assert s.age[0, 0, 4] == 4


def test_spawn_on_the_agent_cell_waits_a_step() -> None:
    s = state((0, 4))
    ev = go(s, 0, spawn_at((0, 4)))
    assert ev.picked[0] == 0 and s.age[0, 0, 4] == 0
    ev = go(s, 0)
    assert ev.picked[0] == 1 and ev.reward[0] == 7.5


def test_observation_encoding() -> None:
    s = state((1, 1), load=1, items={(3, 3): 2})
    obs = core.observe(s)[0]
    assert obs.shape == (3, 5, 5) and obs.dtype == np.float32
    assert obs[0].sum() == 1 and obs[0, 2, 0] == 1
    assert obs[1, 3, 3] == pytest.approx(0.8) and obs[1].sum() == pytest.approx(0.8)
    assert obs[2, 1, 1] == 0.5 and obs[2].sum() == 0.5


def test_the_clock_channel_holds_the_time_left_and_nothing_else_changes() -> None:
    plain, timed = ItemPickupEnv("uniform"), ItemPickupEnv("uniform", clock=True)
    assert timed.observation_space.shape == (4, 5, 5) and plain.observation_space.shape == (3, 5, 5)
    obs_p, _ = plain.reset(seed=4)
    obs_t, _ = timed.reset(seed=4)
    actions = np.random.default_rng(0).integers(0, 5, size=200)
    for k, a in enumerate(actions):
        assert np.array_equal(obs_t[:3], obs_p) and np.all(obs_t[3] == (200 - k) / 200)
        obs_p, r_p, *_ = plain.step(a)
        obs_t, r_t, *_ = timed.step(a)
        assert r_t == r_p
    assert np.all(obs_t[3] == 0.0)  # after the last step: no time left
    old = ItemPickupEnv("uniform")  # an env pickled before the option (a checkpoint's env.pkl) had no clock
    old.reset(seed=1)
    del old.__dict__["clock"]
    revived = pickle.loads(pickle.dumps(old))
    assert revived.step(0)[0].shape == (3, 5, 5)
    with pytest.raises(ValueError, match="clock"):
        ItemPickupEnv(clock=1)  # type: ignore[arg-type]


def test_evaluation_shows_the_clock_to_a_policy_made_for_it() -> None:
    from gymnasium import spaces

    class Watcher(GreedyPolicy):
        observation_space = spaces.Box(0.0, 1.0, (4, 5, 5), np.float32)

        def __init__(self) -> None:
            self.left: list[float] = []

        def predict(self, obs, state=None, episode_start=None, deterministic=True):  # type: ignore[no-untyped-def]
            self.left.append(float(obs[0, 3, 0, 0]))
            return super().predict(obs, state, episode_start, deterministic)

    watcher = Watcher()
    returns = evaluate(watcher, "gradient1", n_episodes=4, seed=0)
    assert watcher.left == pytest.approx([(200 - k) / 200 for k in range(200)], rel=1e-6)  # float32
    assert np.array_equal(returns, evaluate(GreedyPolicy(), "gradient1", n_episodes=4, seed=0))  # greedy ignores it


def test_episode_length_terminated_and_info() -> None:
    env = gym.make("is_envs/ItemPickup-v0", distribution="uniform")
    env.reset(seed=0)
    for k in range(1, 201):
        _, _, terminated, truncated, info = env.step(0)
        assert terminated == (k == 200) and not truncated and info["t"] == k
    assert set(info) == {"t", "picked", "delivered", "expired", "moves"}
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


@pytest.mark.parametrize(
    ("name", "pl", "weight"),
    [
        ("gradient1", 0.24 / 74, lambda r, c: c + 1),
        ("gradient2", 0.24 / 70, lambda r, c: 5 - c),
        ("gradient3", 0.24 / 72, lambda r, c: r + 1),
        ("gradient4", 0.24 / 52, lambda r, c: (3, 2, 1, 2, 3)[c]),
        ("gradient5", 0.24 / 44, lambda r, c: (1, 2, 3, 2, 1)[c]),
        ("gradient6", 0.24 / 54, lambda r, c: (3, 2, 1, 2, 3)[r]),
        ("gradient7", 0.24 / 42, lambda r, c: (1, 2, 3, 2, 1)[r]),
        ("gradient8", 0.24 / 62, lambda r, c: 3 - min(r, c, 4 - r, 4 - c)),
        ("gradient9", 0.24 / 34, lambda r, c: 1 + min(r, c, 4 - r, 4 - c)),
        ("uniform", 0.01, lambda r, c: 1),
    ],
)
def test_named_distributions_are_the_spec_formulas(name: str, pl: float, weight) -> None:  # type: ignore[no-untyped-def]
    p = DISTRIBUTIONS[name]
    expected = np.array([[0.0 if (r, c) == (2, 0) else pl * weight(r, c) for c in range(5)] for r in range(5)])
    np.testing.assert_allclose(p, expected, rtol=1e-12)


def test_every_distribution_sums_to_0_24_with_an_empty_depot() -> None:
    assert len(DISTRIBUTIONS) == 12
    for p in DISTRIBUTIONS.values():
        assert p.sum() == pytest.approx(0.24) and p[2, 0] == 0 and p.min() >= 0
    hot = DISTRIBUTIONS["hotspots"]
    assert hot[1, 1] > hot[0, 0] and hot[2, 3] > hot[2, 4]
    assert DISTRIBUTIONS["unstructured"][2, 1] == pytest.approx(17.69e-3, rel=0.01)


def test_fresh_episodes_are_seeded_and_follow_the_grid() -> None:
    p = np.zeros((5, 5))
    p[0, 4] = 0.5
    env = ItemPickupEnv(distribution=p)
    env.reset(seed=1)
    a = [env.step(0)[0] for _ in range(20)]
    env.reset(seed=1)
    b = [env.step(0)[0] for _ in range(20)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    masks = env.source.next_episodes(200, np.random.default_rng(0))
    assert masks[:, :, 0, 4].mean() == pytest.approx(0.5, abs=0.01) and masks.sum() == masks[:, :, 0, 4].sum()


def test_released_table_splits() -> None:
    test = EpisodeTable(GRADIENT1, "test")
    with np.load(GRADIENT1) as d:
        ep0 = d["episode"] == 0
        steps, rows, cols = d["step"][ep0], d["row"][ep0], d["col"][ep0]
    got = np.argwhere(test.masks[0])
    np.testing.assert_array_equal(got, np.c_[steps - 1, rows, cols])
    env = ItemPickupEnv(episodes=GRADIENT1, split="test")
    env.reset(seed=0)
    served = [env._spawns[0]] + [(env.reset(), env._spawns[0])[1] for _ in range(99)]
    assert all(np.array_equal(m, test.masks[i]) for i, m in enumerate(served))
    train = EpisodeTable(GRADIENT1, "training")
    rng = np.random.default_rng(0)
    first = train.next_episodes(800, rng)
    index = {m.tobytes(): i for i, m in enumerate(train.masks)}
    order = [index[m.tobytes()] for m in first]
    assert sorted(order) == list(range(800)) and order != list(range(800))  # a permutation, not in order
    second = [index[m.tobytes()] for m in train.next_episodes(800, rng)]
    assert sorted(second) == list(range(800)) and second != order  # a new permutation per pass


def test_greedy_regression_on_the_released_test_episodes() -> None:
    returns = evaluate(GreedyPolicy(), GRADIENT1, split="test")
    assert len(returns) == 100
    assert returns.mean() == pytest.approx(215.06, abs=0.01)  # SPEC §5 reference
    assert evaluate(GreedyPolicy(), GRADIENT1, split="validation").mean() == pytest.approx(214.1, abs=0.05)


#: SHA-256 of the released tables (Enders' CSVs packed unchanged; the project's source copy)
RELEASED_SHA256 = {
    "gradient1": "b7ed3e9c61809409f8d8da1966e1d184977c2b7edbc3918682fbcb9fd29d82b3",
    "gradient2": "7b0066de9d4d6462d5d5768f5cc92117023698368a21d26add8660cf607a16df",
    "gradient3": "f9fec3b3c226c5396e842b3abeba3211ba9bc6ccc634fabb55e08801a89466bf",
    "gradient4": "7846b8a3a3f7c1f55274f69dd8047ee6854b1209f7d93208e55bc2b395c4d14a",
    "gradient5": "64d4a82024186857933828e96dde082ee47c794ec0d0d320657cbe3e6e57a67c",
    "gradient6": "faffbecf595aec4e53db30cf9f4766ab4258c886a42b5a179d6a54cf7e5861b4",
    "gradient7": "9fd502ba5c75fca0451045d0dcfdf25ae178556fb9779c41e83ea69ed859946e",
    "gradient8": "29653e3e3e1159b75d6f8edcbc6cb9c68302420b16a3808dcadab14e41b43dd4",
    "gradient9": "1c1c9f8dc8ed927a40918d9f5dec6b097e06e4ca1e85de2fac589359e077b425",
    "hotspots": "9452eb70f166f1adf4f9528315110842bdb63dc06cb1bb56bf5df0a2b31c8674",
    "uniform": "00c283b95065a0ac9457f0d3952bbf906ed9dd4fa076b9980e615582d0794af9",
    "unstructured": "80171efd4a2185086a136513581a6af526d284d296a5ca72b671d18d681918c8",
}


def test_released_tables_ship_with_the_package_unchanged() -> None:
    assert set(RELEASED_SHA256) == set(DISTRIBUTIONS)
    for name, digest in RELEASED_SHA256.items():
        assert hashlib.sha256(released_episodes(name).read_bytes()).hexdigest() == digest, name
    notice = (released_episodes("gradient1").parent / "README.md").read_text()
    assert "MIT License" in notice and "Enders" in notice


def test_released_episodes_by_name_through_gym_make() -> None:
    env = gym.make("is_envs/ItemPickup-v0", episodes="gradient2", split="validation")
    env.reset(seed=0)
    table = EpisodeTable(released_episodes("gradient2"), "validation")
    assert np.array_equal(env.unwrapped._spawns[0], table.masks[0])
    with pytest.raises(ValueError, match="distribution name"):
        ItemPickupEnv(episodes="gradient10")
    with pytest.raises(ValueError, match="gradient10"):
        released_episodes("gradient10")


def test_bad_episode_tables_are_refused_with_the_file_name(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"corrupt\.npz"):
        EpisodeTable(corrupt)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, episode=np.array([object()]), step=[1], row=[0], col=[1], test=[0])
    with pytest.raises(ValueError, match=r"pickled\.npz"):
        EpisodeTable(pickled)
    negative = tmp_path / "negative.npz"
    np.savez(negative, episode=[0], step=[1], row=[-1], col=[1], test=[0])
    with pytest.raises(ValueError, match=r"cells outside 0\.\.4"):
        EpisodeTable(negative)
    with pytest.raises(ValueError, match="lacks the tables"):
        shift_table(GreedyPolicy(), tmp_path)


class FixedRandom:
    """Deterministic pseudo-random actions from (t, observation) so single and batched runs agree."""

    def predict(self, obs, state=None, episode_start=None, deterministic=True):  # type: ignore[no-untyped-def]
        obs = np.asarray(obs).reshape(-1, 3, 5, 5)
        h = (obs * np.arange(75).reshape(3, 5, 5)).sum(axis=(1, 2, 3))
        return (np.floor(h * 7919) % 5).astype(np.int64), None


@pytest.mark.parametrize("policy", [GreedyPolicy(), FixedRandom()])
def test_batched_evaluation_equals_the_single_env(policy) -> None:  # type: ignore[no-untyped-def]
    batched = evaluate(policy, "hotspots", n_episodes=8, seed=3)
    spawns = ItemPickupEnv("hotspots").source.next_episodes(8, np.random.default_rng(3))
    for e in range(8):
        env = ItemPickupEnv("hotspots")
        obs, _ = env.reset(seed=0)
        env._spawns = spawns[e : e + 1]
        total, done = 0.0, False
        while not done:
            action, _ = policy.predict(obs)
            obs, r, done, _, _ = env.step(int(np.asarray(action).reshape(-1)[0]))
            total += r
        assert total == batched[e]


def test_greedy_beats_random_and_handles_single_observations() -> None:
    greedy = evaluate(GreedyPolicy(), "gradient1", n_episodes=50, seed=0)
    assert greedy.mean() > 150
    rand = evaluate(FixedRandom(), "gradient1", n_episodes=50, seed=0)
    assert rand.mean() < 0
    env = ItemPickupEnv()
    obs, _ = env.reset(seed=0)
    a, _ = GreedyPolicy().predict(obs)
    assert np.asarray(a).shape == ()


@pytest.mark.parametrize("clock", [False, True])
def test_checkers_pass(clock: bool) -> None:
    env = gym.make("is_envs/ItemPickup-v0", clock=clock)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env.unwrapped, warn=True)
    # SB3's only advice: a (3, 5, 5) array looks like an image to it (dtype, bounds, resolution); the
    # SPEC fixes this float32 encoding and the grid agents bring their own small CNN
    assert all("image" in str(w.message) for w in caught)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="unknown distribution"):
        ItemPickupEnv("gradient10")
    with pytest.raises(ValueError, match="5x5"):
        ItemPickupEnv(np.zeros((4, 5)))
    bad = np.full((5, 5), 0.01)
    with pytest.raises(ValueError, match="depot"):
        ItemPickupEnv(bad)
    bad[2, 0], bad[0, 0] = 0.0, 1.5
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ItemPickupEnv(bad)
    with pytest.raises(ValueError, match="split"):
        ItemPickupEnv(episodes=GRADIENT1, split="train")
    with pytest.raises(ValueError, match="npz file"):
        ItemPickupEnv(episodes="missing.npz")
    with pytest.raises(ValueError, match="action"):
        env = ItemPickupEnv()
        env.reset(seed=0)
        env.step(7)
    with pytest.raises(ValueError, match="observation"):
        GreedyPolicy().predict(np.zeros((2, 5, 5)))


def test_make_vec_env_works_on_every_registered_env_and_the_grid_draws_rgb() -> None:
    """SB3's ``make_vec_env`` makes its envs with ``render_mode="rgb_array"``; every is_envs id accepts it, and the
    grid draws a real picture: the agent's cell in its colour (blue empty), the depot grey, the floor white."""
    from stable_baselines3.common.env_util import make_vec_env

    ids = [env_id for env_id in gym.registry if env_id.startswith("is_envs/")]
    assert "is_envs/ItemPickup-v0" in ids and len(ids) >= 4
    import warnings

    for env_id in ids:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            vec = make_vec_env(env_id, n_envs=2, seed=0)
        assert not [w for w in caught if "render_mode" in str(w.message)], env_id  # rgb_array is a mode of each
        vec.reset()
        vec.step(np.array([vec.action_space.sample() for _ in range(2)]))
        assert vec.render(mode="rgb_array") is not None
        vec.close()
    finance = gym.make("is_envs/OptionHedging-v0", render_mode="rgb_array")
    finance.reset(seed=0)
    for a in (0.5, 0.5, -1.0):
        finance.step(np.array([a], dtype=np.float32))
    img = finance.render()
    assert img.shape == (80, 160, 3) and img.dtype == np.uint8
    band = img[60:]
    assert (band == (40, 90, 200)).all(axis=-1).any() and (band == (200, 50, 50)).all(axis=-1).any()  # long, short
    assert (img[:60] == 0).all(axis=-1).sum() >= 3  # the price path
    env = gym.make("is_envs/ItemPickup-v0", render_mode="rgb_array")
    env.reset(seed=0)
    env.step(2)  # right: the agent leaves the depot for (2, 1)
    img = env.render()
    k = env.unwrapped.CELL_PIXELS
    assert img.shape == (5 * k, 5 * k, 3) and img.dtype == np.uint8
    assert tuple(img[2 * k + k // 2, 1 * k + k // 2]) == (31, 119, 180)  # the agent, empty
    assert tuple(img[2 * k + k // 2, k // 2]) == (150, 150, 150)  # the depot


class AlwaysUp:
    def predict(self, obs, state=None, episode_start=None, deterministic=True):  # type: ignore[no-untyped-def]
        return np.ones(len(np.asarray(obs).reshape(-1, 3, 5, 5)), dtype=np.int64), None


@pytest.mark.parametrize("policy", [GreedyPolicy(), FixedRandom()])
def test_episode_events_add_up_to_the_returns(policy) -> None:  # type: ignore[no-untyped-def]
    e = episode_events(policy, "hotspots", n_episodes=16, seed=1, reference=GreedyPolicy())
    np.testing.assert_array_equal(e.returns, 7.5 * (e.picked + e.delivered) - e.moves)
    np.testing.assert_array_equal(e.returns, evaluate(policy, "hotspots", n_episodes=16, seed=1))
    assert set(np.unique(e.picked - e.delivered)) <= {0, 1}  # at most one item carried at the end
    assert np.all(e.moves + e.stays + e.wall_bumps == 200) and np.all(e.moves_loaded <= e.moves)
    assert e.agreement is not None and np.all((0 <= e.agreement) & (e.agreement <= 1))


def test_greedy_carries_straight_home_and_agrees_with_itself() -> None:
    greedy = episode_events(GreedyPolicy(), GRADIENT1, reference=GreedyPolicy())
    assert greedy.returns.mean() == pytest.approx(215.06, abs=0.005)  # the SPEC's reference
    assert np.all(greedy.loaded_detour == 0) and np.all(greedy.agreement == 1.0)
    assert greedy.stood_for_move is not None and greedy.moved_for_stand is not None
    assert greedy.stood_for_move.sum() == 0 and greedy.moved_for_stand.sum() == 0
    rand = episode_events(FixedRandom(), "gradient1", n_episodes=20, seed=0, reference=GreedyPolicy())
    assert rand.loaded_detour.sum() > 0 and rand.agreement is not None and rand.agreement.mean() < 0.5
    assert rand.stood_for_move is not None and rand.moved_for_stand is not None
    assert rand.stood_for_move.sum() > 0 and rand.moved_for_stand.sum() > 0
    up = episode_events(AlwaysUp(), "uniform", n_episodes=4, seed=0, reference=AlwaysUp())
    assert up.stood_for_move is not None and np.array_equal(up.stood_for_move, up.wall_bumps)  # a bump stands
    assert episode_events(GreedyPolicy(), GRADIENT1, n_episodes=2).agreement is None


def test_episode_events_count_moves_and_wall_bumps() -> None:
    e = episode_events(AlwaysUp(), "uniform", n_episodes=4, seed=0)
    np.testing.assert_array_equal(e.moves, DEPOT[0])  # up from the depot's row to row 0, then the wall
    np.testing.assert_array_equal(e.wall_bumps, 200 - DEPOT[0])
    np.testing.assert_array_equal(e.stays, 0)
    np.testing.assert_array_equal(e.delivered, 0)  # never back at the depot once gone
