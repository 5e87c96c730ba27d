"""Agent presets (RL Zoo YAML format, one file per algorithm) and the factory that builds SB3 agents from them."""

from agents.factory import ALGOS, AgentConfig, available_presets, load_preset, make_agent, make_vec_env_for

__all__ = ["ALGOS", "AgentConfig", "available_presets", "load_preset", "make_agent", "make_vec_env_for"]
