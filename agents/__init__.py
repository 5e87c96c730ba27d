"""Agent presets (RL Zoo YAML format, one file per algorithm) and the factory that builds SB3 agents from them.

Always imported as ``rl_adaloss.agents`` (never as ``agents``): installed there by a ``package-dir`` mapping in
pyproject.toml, and found there in a plain checkout by the finder in ``rl_adaloss/__init__.py``.
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
