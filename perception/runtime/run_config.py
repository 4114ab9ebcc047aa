"""``RunConfig``: the config of ``dualstream run``: the pipeline's groups (``perception.config.Config``) plus
``adaptation`` (``perception.adaptation.AdaptationConfig``, off by default), the same group and keys the perception
node takes as ``adaptation.*`` parameters.

It lives here rather than in ``perception.config`` because ``AdaptationConfig`` imports ``perception.config`` (for
``ConfigError``): ``load_config(path, overrides, cls=RunConfig)`` reads it with the same checks (an unknown key under
``adaptation:`` is an error naming ``adaptation.<key>``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from perception.adaptation.config import AdaptationConfig
from perception.config import Config


@dataclass
class RunConfig(Config):
    adaptation: AdaptationConfig = field(default_factory=AdaptationConfig)
