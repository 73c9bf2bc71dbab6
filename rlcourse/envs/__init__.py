"""The course's environments, registered with gymnasium under the ``rlcourse/`` namespace.

==============================  ===============================================
id                              what it is
==============================  ===============================================
``rlcourse/GridWorld-v0``       a configurable grid world (``layout=[...]`` etc.)
``rlcourse/GridWorld5x5-v0``    Sutton & Barto Example 3.5 (A and B teleports)
``rlcourse/GridWorld4x4-v0``    Sutton & Barto Example 4.1 (terminal corners)
``rlcourse/Gambler-v0``         Sutton & Barto Example 4.3 (``p_h=0.4``)
``rlcourse/RandomWalk-v0``      Sutton & Barto Example 6.2 (5 states)
``rlcourse/WindyGridWorld-v0``  Sutton & Barto Example 6.5
==============================  ===============================================

Every env has ``env.unwrapped.to_mdp()``, the exact :class:`~rlcourse.mdp.TabularMDP`.

Batched torch versions, stepping N copies as tensors on any device (see
:mod:`rlcourse.envs.batched`): ``TorchCartPole`` (gymnasium's CartPole-v1, step for step)
and ``TorchTabularEnv`` (any of the tabular envs above, or a toy_text env).
"""

from __future__ import annotations

import os

import gymnasium as gym

# gymnasium renders CartPole and friends with pygame. On a machine without a display
# (a Jupyter server, Binder, CI) pygame's default video driver fails and prints an error
# at every render; "rgb_array" rendering needs no window, so use SDL's dummy driver there.
if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

from rlcourse.envs.batched import TorchCartPole, TorchTabularEnv, TorchVectorEnv
from rlcourse.envs.gambler import GamblerEnv
from rlcourse.envs.gridworld import GridWorldEnv, example_3_5, example_4_1, example_6_5
from rlcourse.envs.randomwalk import RandomWalkEnv
from rlcourse.envs.tabular import TabularEnv, as_tabular_env

__all__ = [
    "ENV_IDS",
    "GamblerEnv",
    "GridWorldEnv",
    "RandomWalkEnv",
    "TabularEnv",
    "TorchCartPole",
    "TorchTabularEnv",
    "TorchVectorEnv",
    "as_tabular_env",
    "example_3_5",
    "example_4_1",
    "example_6_5",
]

#: ids of the course's environments, and the episode step limit of each
ENV_IDS: dict[str, int] = {
    "rlcourse/GridWorld-v0": 100,
    "rlcourse/GridWorld5x5-v0": 100,
    "rlcourse/GridWorld4x4-v0": 100,
    "rlcourse/Gambler-v0": 1000,
    "rlcourse/RandomWalk-v0": 1000,
    "rlcourse/WindyGridWorld-v0": 10_000,
}
_ENTRY_POINTS = {
    "rlcourse/GridWorld-v0": "rlcourse.envs.gridworld:GridWorldEnv",
    "rlcourse/GridWorld5x5-v0": "rlcourse.envs.gridworld:example_3_5",
    "rlcourse/GridWorld4x4-v0": "rlcourse.envs.gridworld:example_4_1",
    "rlcourse/Gambler-v0": "rlcourse.envs.gambler:GamblerEnv",
    "rlcourse/RandomWalk-v0": "rlcourse.envs.randomwalk:RandomWalkEnv",
    "rlcourse/WindyGridWorld-v0": "rlcourse.envs.gridworld:example_6_5",
}

for _id, _entry in _ENTRY_POINTS.items():
    if _id not in gym.registry:
        gym.register(id=_id, entry_point=_entry, max_episode_steps=ENV_IDS[_id])
