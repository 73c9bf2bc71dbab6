"""rlcourse: the helper package of the reinforcement-learning course.

Importing it registers the course's environments under the ``rlcourse/``
namespace of gymnasium (``gymnasium.make("rlcourse/GridWorld5x5-v0")``).
"""

from rlcourse import envs as envs
from rlcourse.evaluate import evaluate
from rlcourse.mdp import GridInfo, TabularMDP, from_gymnasium

__version__ = "0.1.0"

__all__ = ["GridInfo", "TabularMDP", "__version__", "envs", "evaluate", "from_gymnasium"]
