"""Agent presets (RL Zoo YAML format, one file per algorithm) and the factory that builds SB3 agents from them.

Installed as ``rl_adaloss.agents``; inside the repository ``agents`` is the same folder.
"""

from .factory import ALGOS, AgentConfig, build_agent, make_agent, make_vec_env_for, preset_summary, resolve_agent
from .presets import Preset, find_preset, parse_python_kwargs

__all__ = [
    "ALGOS",
    "AgentConfig",
    "Preset",
    "build_agent",
    "find_preset",
    "make_agent",
    "make_vec_env_for",
    "parse_python_kwargs",
    "preset_summary",
    "resolve_agent",
]
